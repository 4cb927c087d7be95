#!/usr/bin/env python3
"""sptd --metrics and `sptctl stats` against a live daemon.

The Prometheus endpoint is scraped around I/O of known shape from the
harness's initiator (spt_iscsi.py): N writes and M reads of known sizes
move the LUN's command, byte and latency counters by exactly that much, the
queue depth is back to 0, the session has its series; a CDB no one knows
counts as an error; a write whose connection is lost before its data counts
as an abort. The text is checked line by line against the exposition format
(HELP/TYPE before each family, label escapes, cumulative buckets), other
paths answer 404, other methods 405 and a body 400, scrapes reuse their
connection, `sptctl stats --json` tells the same
numbers as the scrape, and the endpoint keeps serving, counters rising,
while iscsi-perf runs. Also: --metrics on [::1], and a --metrics the daemon
cannot serve stops it at startup.
"""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spt_iscsi as si  # noqa: E402

SCALE = si.timeout_scale()
BLOCK = 512
N_WRITES, WRITE_BLOCKS = 5, 8      # 5 x 4 KiB
M_READS, READ_BLOCKS = 3, 16       # 3 x 8 KiB
TARGET = "iqn.2026-11.org.spt:metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
NAME = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*$')


class Scrape:
    """One scrape: samples by (name, labels) and the families' types."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        self.helps = set()
        self.errors = []
        self._parse()

    def _parse(self):
        current = None
        seen_families = set()
        for line in self.text.split("\n")[:-1]:
            if line.startswith("# HELP "):
                self.helps.add(line.split(" ")[2])
                continue
            if line.startswith("# TYPE "):
                parts = line.split(" ")
                if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram"):
                    self.errors.append("bad TYPE line: %r" % line)
                    continue
                if parts[2] in self.types:
                    self.errors.append("family typed twice: %s" % parts[2])
                if parts[2] not in self.helps:
                    self.errors.append("TYPE without HELP before it: %s" % parts[2])
                self.types[parts[2]] = parts[3]
                current = parts[2]
                continue
            m = SAMPLE.match(line)
            if not m:
                self.errors.append("not a sample: %r" % line)
                continue
            name, labels, value = m.group(1), m.group(2), m.group(3)
            family = name
            if current and name != current and self.types.get(current) == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    if name == current + suffix:
                        family = current
            if family != current:
                self.errors.append("sample %s outside its family (after TYPE %s)" % (name, current))
            if family in seen_families and family != current:
                self.errors.append("family %s not contiguous" % family)
            seen_families.add(family)
            try:
                lab = parse_labels(labels or "")
                v = float(value)
            except ValueError as e:
                self.errors.append("%r: %s" % (line, e))
                continue
            key = (name, tuple(sorted(lab.items())))
            if key in self.samples:
                self.errors.append("sample twice: %r" % line)
            self.samples[key] = v

    def get(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def find(self, name, **labels):
        """Samples of name whose labels include these."""
        out = []
        for (n, lab), v in self.samples.items():
            d = dict(lab)
            if n == name and all(d.get(k) == w for k, w in labels.items()):
                out.append((d, v))
        return out


def parse_labels(s):
    """The label set of a sample, unescaping values (\\\\, \\", \\n)."""
    out = {}
    i = 0
    while i < len(s):
        eq = s.index("=", i)
        name = s[i:eq]
        if not NAME.match(name):
            raise ValueError("bad label name %r" % name)
        if s[eq + 1] != '"':
            raise ValueError("label value not quoted")
        j = eq + 2
        val = []
        while s[j] != '"':
            if s[j] == "\\":
                nxt = s[j + 1]
                if nxt not in ('\\', '"', 'n'):
                    raise ValueError("bad escape \\%s" % nxt)
                val.append("\n" if nxt == "n" else nxt)
                j += 2
            else:
                val.append(s[j])
                j += 1
        if name in out:
            raise ValueError("label %s twice" % name)
        out[name] = "".join(val)
        i = j + 1
        if i < len(s):
            if s[i] != ",":
                raise ValueError("expected , after a label")
            i += 1
    return out


def http_get(port, path, method="GET", host="127.0.0.1", body=None):
    conn = http.client.HTTPConnection(host, port, timeout=10 * SCALE)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def scrape(port, host="127.0.0.1"):
    url = "http://%s:%d/metrics" % ("[%s]" % host if ":" in host else host, port)
    with urllib.request.urlopen(url, timeout=10 * SCALE) as r:
        return r.headers.get("Content-Type"), Scrape(r.read().decode("utf-8"))


def lun_labels(lun=0):
    return {"target": TARGET, "lun": str(lun)}


def lun_figures(s, lun=0):
    lab = lun_labels(lun)
    return {
        "read": s.get("spt_lun_commands_total", op="read", **lab),
        "write": s.get("spt_lun_commands_total", op="write", **lab),
        "other": s.get("spt_lun_commands_total", op="other", **lab),
        "bytes_read": s.get("spt_lun_bytes_total", direction="read", **lab),
        "bytes_written": s.get("spt_lun_bytes_total", direction="write", **lab),
        "errors": s.get("spt_lun_errors_total", **lab),
        "aborts": s.get("spt_lun_aborts_total", **lab),
        "qd": s.get("spt_lun_queue_depth", **lab),
        "count": s.get("spt_lun_command_duration_seconds_count", **lab),
        "sum": s.get("spt_lun_command_duration_seconds_sum", **lab),
        "inf": s.get("spt_lun_command_duration_seconds_bucket", le="+Inf", **lab),
    }


def delta(a, b, key):
    if a[key] is None or b[key] is None:
        return None
    return b[key] - a[key]


def session_isid(s):
    # the harness's Login PDU: ISID type random (0x80), then 5 bytes
    return "0x80" + s.isid[:5].hex()


def check_histogram(rep, s, what):
    """Buckets cumulative and non-decreasing, +Inf the count, bounds rising."""
    ok = True
    for lab, _ in s.find("spt_lun_command_duration_seconds_count"):
        buckets = [(d["le"], v) for d, v in s.find("spt_lun_command_duration_seconds_bucket",
                                                    target=lab["target"], lun=lab["lun"])]
        finite = sorted((float(le), v) for le, v in buckets if le != "+Inf")
        inf = [v for le, v in buckets if le == "+Inf"]
        count = s.get("spt_lun_command_duration_seconds_count", **lab)
        if len(finite) != 25 or len(inf) != 1 or inf[0] != count:
            ok = False
        if any(finite[i][1] > finite[i + 1][1] for i in range(len(finite) - 1)):
            ok = False
        if finite and finite[-1][1] > inf[0]:
            ok = False
        if finite and (finite[0][0] != 0.000001 or abs(finite[-1][0] - 16.777216) > 1e-9):
            ok = False
    rep.check(ok, "%s: latency histogram buckets cumulative, 1 us to 16.8 s, +Inf = count" % what)


def run_sptctl(sptctl, sock, *args):
    return subprocess.run([sptctl, "--socket", sock] + list(args), capture_output=True, text=True,
                          timeout=30 * SCALE)


def write_without_data(sess, lun=0, blocks=2048):
    """A WRITE(10) of 1 MiB with no immediate data: the target asks for the
    data with an R2T and waits. Returns the R2T PDU."""
    itt = sess.next_itt()
    edtl = blocks * BLOCK
    hdr = si.bhs(si.OP_SCSI_CMD, 0x80 | 0x20 | 0x01, dsl=0, lun8=si.encode_lun(lun), itt=itt,
                 f20=edtl, f24=sess.cmdsn, f28=sess.expstatsn)
    cdb = si.cdb_write10(0, blocks)
    hdr = hdr[:32] + cdb + b"\0" * (16 - len(cdb))
    sess.cmdsn = (sess.cmdsn + 1) & 0xFFFFFFFF
    sess.conn.send_pdu(hdr)
    return sess._recv_for(itt)


def main():
    rep = si.Reporter("metrics")
    work = si.make_workdir("metrics")
    mport = si.free_port()
    d = si.Daemon(rep, work, ["--target", TARGET, "--lun", "ram:64M",
                              "--metrics", "127.0.0.1:%d" % mport], target=TARGET)
    if not d.start():
        return rep.finish()
    sptctl = os.path.join(os.path.dirname(d.binary), "sptctl")
    ctl_sock = os.path.join(work, "control.sock")
    try:
        run(rep, d, mport, sptctl, ctl_sock)
    except Exception as e:  # a broken step must not hide the others' results
        rep.fail("test body ran to the end (%s: %s)" % (type(e).__name__, e))
        d.show_log(60)
    rep.check(d.alive(), "daemon still running after every scrape")
    d.stop()
    try:
        startup_checks(rep, work)
    except Exception as e:
        rep.fail("startup checks ran to the end (%s: %s)" % (type(e).__name__, e))
    if os.environ.get("SPT_KEEP_TMP") != "1":
        shutil.rmtree(work, ignore_errors=True)
    return rep.finish()


def run(rep, d, mport, sptctl, ctl_sock):
    # -- the endpoint before any session --
    ctype, s0 = scrape(mport)
    rep.check(ctype == CONTENT_TYPE, "GET /metrics answers %s" % CONTENT_TYPE, ctype)
    rep.check(not s0.errors, "the exposition is well formed", "; ".join(s0.errors[:3]))
    rep.check(s0.get("spt_up") == 1 and s0.get("spt_sessions") == 0 and s0.get("spt_luns") == 1,
              "spt_up 1, spt_sessions 0, spt_luns 1 before any login")
    rep.check(len(s0.find("spt_build_info")) == 1, "spt_build_info has the version")
    for fam, typ in (("spt_lun_commands_total", "counter"), ("spt_lun_bytes_total", "counter"),
                     ("spt_lun_errors_total", "counter"), ("spt_lun_aborts_total", "counter"),
                     ("spt_lun_queue_depth", "gauge"),
                     ("spt_lun_command_duration_seconds", "histogram"),
                     ("spt_session_commands_total", "counter"),
                     ("spt_connection_digest_errors_total", "counter"),
                     ("spt_digest_errors_total", "counter")):
        rep.check(s0.types.get(fam) == typ, "family %s has TYPE %s" % (fam, typ), s0.types.get(fam))

    # -- other paths and methods --
    status, _, _ = http_get(mport, "/other")
    rep.check(status == 404, "GET /other answers 404", status)
    status, _, _ = http_get(mport, "/")
    rep.check(status == 404, "GET / answers 404", status)
    status, hdrs, _ = http_get(mport, "/metrics", method="POST", body=b"x=1")
    rep.check(status == 405 and "GET" in hdrs.get("allow", ""),
              "POST /metrics answers 405 with Allow: GET", "%s %s" % (status, hdrs.get("allow")))
    status, _, _ = http_get(mport, "/metrics", method="DELETE")
    rep.check(status == 405, "DELETE /metrics answers 405", status)
    status, hdrs, body = http_get(mport, "/metrics", method="HEAD")
    rep.check(status == 200 and body == b"", "HEAD /metrics answers 200 without a body", status)
    status, _, _ = http_get(mport, "/metrics", body=b"x" * 100)
    rep.check(status == 400, "GET /metrics with a body answers 400", status)
    # Prometheus keeps its connection from scrape to scrape
    conn = http.client.HTTPConnection("127.0.0.1", mport, timeout=10 * SCALE)
    try:
        statuses, socks = [], []
        for _ in range(3):
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            r.read()
            statuses.append(r.status)
            socks.append(conn.sock)
        rep.check(statuses == [200] * 3 and socks[0] is not None and socks[0] is socks[2],
                  "three scrapes on one kept-alive connection", statuses)
    finally:
        conn.close()

    # -- known I/O moves the counters by exactly its amount --
    sess = si.Session(d.host, d.port, TARGET)
    sess.login()
    status, _, _ = sess.scsi_retry_ua(si.CDB_TEST_UNIT_READY)
    rep.check(status == 0, "TEST UNIT READY through the harness", status)
    _, before = scrape(mport)
    a = lun_figures(before)
    rep.check(a["qd"] == 0 and a["count"] is not None, "LUN 0 has its series, queue depth 0", a)
    pattern = bytes(range(256)) * (WRITE_BLOCKS * BLOCK // 256)
    ok = True
    for i in range(N_WRITES):
        st, _, _ = sess.scsi(si.cdb_write10(i * WRITE_BLOCKS, WRITE_BLOCKS), write=pattern)
        ok = ok and st == 0
    for i in range(M_READS):
        st, data, _ = sess.scsi(si.cdb_read10(0, READ_BLOCKS), read_len=READ_BLOCKS * BLOCK)
        ok = ok and st == 0 and len(data) == READ_BLOCKS * BLOCK
    rep.check(ok, "%d writes and %d reads through a session" % (N_WRITES, M_READS))
    _, after = scrape(mport)
    b = lun_figures(after)
    rep.check(delta(a, b, "write") == N_WRITES, "spt_lun_commands_total{op=write} moved by %d" % N_WRITES,
              delta(a, b, "write"))
    rep.check(delta(a, b, "read") == M_READS, "spt_lun_commands_total{op=read} moved by %d" % M_READS,
              delta(a, b, "read"))
    rep.check(delta(a, b, "other") == 0, "spt_lun_commands_total{op=other} did not move",
              delta(a, b, "other"))
    rep.check(delta(a, b, "bytes_written") == N_WRITES * WRITE_BLOCKS * BLOCK,
              "spt_lun_bytes_total{direction=write} moved by %d" % (N_WRITES * WRITE_BLOCKS * BLOCK),
              delta(a, b, "bytes_written"))
    rep.check(delta(a, b, "bytes_read") == M_READS * READ_BLOCKS * BLOCK,
              "spt_lun_bytes_total{direction=read} moved by %d" % (M_READS * READ_BLOCKS * BLOCK),
              delta(a, b, "bytes_read"))
    rep.check(delta(a, b, "count") == N_WRITES + M_READS and delta(a, b, "inf") == N_WRITES + M_READS,
              "the latency histogram's count moved by %d" % (N_WRITES + M_READS), delta(a, b, "count"))
    rep.check(delta(a, b, "sum") is not None and delta(a, b, "sum") > 0,
              "the latency histogram's sum grew", delta(a, b, "sum"))
    rep.check(b["qd"] == 0, "spt_lun_queue_depth back to 0", b["qd"])
    rep.check(delta(a, b, "errors") == 0 and delta(a, b, "aborts") == 0, "no errors, no aborts")
    check_histogram(rep, after, "after the I/O")
    tb = after.get("spt_target_commands_total", target=TARGET, op="write")
    rep.check(tb == b["write"], "the target's counters are its LUN's", "%s vs %s" % (tb, b["write"]))

    isid = session_isid(sess)
    mine = after.find("spt_session_commands_total", initiator=si.INITIATOR, isid=isid, target=TARGET)
    rep.check(len(mine) == 1, "a session series exists for the session (isid %s)" % isid, len(mine))
    handle = mine[0][0]["handle"] if mine else None
    if mine:
        sb = before.find("spt_session_commands_total", handle=handle)
        moved = mine[0][1] - (sb[0][1] if sb else 0)
        rep.check(moved == N_WRITES + M_READS, "spt_session_commands_total moved by %d" %
                  (N_WRITES + M_READS), moved)
        rep.check(after.get("spt_session_queue_depth", **mine[0][0]) == 0,
                  "spt_session_queue_depth back to 0")
        wb = after.find("spt_session_bytes_total", handle=handle, direction="write")
        rep.check(wb and wb[0][1] == N_WRITES * WRITE_BLOCKS * BLOCK,
                  "spt_session_bytes_total{direction=write} counts the session's data-out", wb)
        conns = after.find("spt_connection_pdus_total", handle=handle, direction="in")
        rep.check(len(conns) == 1 and conns[0][1] >= 1 + N_WRITES + M_READS,
                  "spt_connection_pdus_total{direction=in} counts the connection's PDUs", conns)
        cb = after.find("spt_connection_bytes_total", handle=handle, direction="out")
        rep.check(cb and cb[0][1] >= M_READS * READ_BLOCKS * BLOCK,
                  "spt_connection_bytes_total{direction=out} holds the data-in", cb)
    rep.check(after.get("spt_sessions") == 1 and after.get("spt_connections") == 1,
              "spt_sessions 1 and spt_connections 1 with one session logged in")

    # -- a CDB no one knows is an error --
    st, _, _ = sess.scsi(b"\xff" + b"\0" * 9)
    _, s_err = scrape(mport)
    c = lun_figures(s_err)
    rep.check(st == 2, "an unknown opcode gets CHECK CONDITION", st)
    rep.check(delta(b, c, "errors") == 1 and delta(b, c, "other") == 1,
              "an unknown opcode moves spt_lun_errors_total and op=other by 1",
              "%s %s" % (delta(b, c, "errors"), delta(b, c, "other")))
    if handle:
        se = s_err.find("spt_session_errors_total", handle=handle)
        rep.check(se and se[0][1] == 1, "spt_session_errors_total is 1", se)

    # -- a write whose connection is lost before its data is an abort --
    s2 = si.Session(d.host, d.port, TARGET)
    s2.login()
    s2.scsi_retry_ua(si.CDB_TEST_UNIT_READY)
    _, s_pre = scrape(mport)
    p = lun_figures(s_pre)
    r2t = write_without_data(s2)
    rep.check(r2t.opcode == si.OP_R2T, "a 1 MiB write without immediate data gets an R2T", r2t)
    _, s_mid = scrape(mport)
    rep.check(lun_figures(s_mid)["qd"] == 1, "spt_lun_queue_depth is 1 while the write waits",
              lun_figures(s_mid)["qd"])
    s2.close()
    deadline = time.time() + 10 * SCALE
    while True:
        _, s_ab = scrape(mport)
        q = lun_figures(s_ab)
        if q["qd"] == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    rep.check(delta(p, q, "aborts") == 1, "the lost connection's write moves spt_lun_aborts_total by 1",
              delta(p, q, "aborts"))
    rep.check(q["qd"] == 0 and delta(p, q, "count") == 0,
              "... and leaves the queue depth at 0 and the histogram alone")

    # -- sptctl stats --json agrees with a scrape taken with nothing in between --
    r = run_sptctl(sptctl, ctl_sock, "stats", "--json")
    _, s_now = scrape(mport)
    rep.check(r.returncode == 0, "sptctl stats --json exits 0", r.stderr.strip())
    js = None
    try:
        js = json.loads(r.stdout)
    except ValueError as e:
        rep.fail("sptctl stats --json prints JSON (%s)" % e)
    if js is not None:
        now = lun_figures(s_now)
        luns = [x for x in js.get("luns", []) if x.get("target") == TARGET and x.get("lun") == 0]
        rep.check(len(luns) == 1, "sptctl stats --json lists the LUN")
        if luns:
            x = luns[0]
            same = (x["read_commands"] == now["read"] and x["write_commands"] == now["write"] and
                    x["other_commands"] == now["other"] and x["bytes_read"] == now["bytes_read"] and
                    x["bytes_written"] == now["bytes_written"] and x["errors"] == now["errors"] and
                    x["aborts"] == now["aborts"] and x["queue_depth"] == now["qd"] and
                    x["latency"]["count"] == now["count"] and
                    abs(x["latency"]["sum_ns"] / 1e9 - now["sum"]) < 1e-6)
            rep.check(same, "sptctl stats --json agrees with the scrape on the LUN", (x, now))
            cum, ok = 0, len(x["latency"]["buckets"]) == 26
            for bk in x["latency"]["buckets"]:
                cum += bk["count"]
                le = "+Inf" if bk["le_us"] is None else \
                    ("%d.%06d" % divmod(bk["le_us"], 1000000)).rstrip("0")
                got = s_now.get("spt_lun_command_duration_seconds_bucket", le=le, **lun_labels())
                ok = ok and got == cum
            rep.check(ok, "sptctl stats --json's buckets add up to the scrape's")
        tg = [x for x in js.get("targets", []) if x.get("name") == TARGET]
        rep.check(len(tg) == 1 and tg[0]["commands"] ==
                  now["read"] + now["write"] + now["other"] and tg[0]["session_count"] == 1,
                  "sptctl stats --json's target sums its LUN and counts its session")
        ss = [x for x in js.get("sessions", []) if x.get("handle") == handle]
        sm = s_now.find("spt_session_commands_total", handle=handle)
        rep.check(len(ss) == 1 and sm and ss[0]["commands"] == sm[0][1] and
                  ss[0]["isid"] == isid and ss[0]["errors"] == 1 and
                  len(ss[0]["connections"]) == 1,
                  "sptctl stats --json's session agrees with the scrape")
        rep.check(js.get("server", {}).get("sessions") == s_now.get("spt_sessions"),
                  "sptctl stats --json's server agrees on the session count")
    r = run_sptctl(sptctl, ctl_sock, "stats")
    rep.check(r.returncode == 0 and "LUNs:" in r.stdout and "connections:" in r.stdout and
              "0x80" in r.stdout, "sptctl stats prints its tables", r.stderr.strip())
    r = run_sptctl(sptctl, ctl_sock, "stats", "--bogus")
    rep.check(r.returncode == 2, "sptctl stats --bogus exits 2", r.returncode)
    sess.logout()
    sess.close()

    # -- the endpoint serves during an iscsi-perf run, counters rising --
    perf_run(rep, d, mport)


def perf_run(rep, d, mport):
    perf = shutil.which("iscsi-perf")
    if not perf:
        rep.skip("iscsi-perf not installed")
        return
    proc = subprocess.Popen([perf, "-t", "5", d.url()], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    reads, times, saw_perf_session, ok = [], [], False, True
    try:
        time.sleep(1)
        for _ in range(4):
            t0 = time.time()
            try:
                _, s = scrape(mport)
            except (OSError, urllib.error.URLError) as e:
                ok = False
                rep.fail("a scrape during iscsi-perf answers (%s)" % e)
                break
            times.append(time.time() - t0)
            reads.append(lun_figures(s)["read"] or 0)
            if s.find("spt_session_commands_total", initiator="iqn.2010-11.libiscsi:iscsi-perf"):
                saw_perf_session = True
            ok = ok and not s.errors
            time.sleep(0.8)
    finally:
        try:
            proc.wait(30 * SCALE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rising = len(reads) == 4 and all(reads[i] < reads[i + 1] for i in range(3))
    rep.check(rising, "spt_lun_commands_total{op=read} rises from scrape to scrape during iscsi-perf",
              reads)
    rep.check(ok, "every scrape during iscsi-perf is well formed")
    rep.check(saw_perf_session, "iscsi-perf's session has its series while it runs")
    rep.check(proc.returncode == 0, "iscsi-perf ran to its end", proc.returncode)
    deadline = time.time() + 10 * SCALE
    while True:
        _, s = scrape(mport)
        if lun_figures(s)["qd"] == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    rep.check(lun_figures(s)["qd"] == 0, "spt_lun_queue_depth back to 0 after iscsi-perf")
    check_histogram(rep, s, "after iscsi-perf")


def startup_checks(rep, work):
    binary = os.environ.get("SPTD") or os.path.join(si.repo_root(), "build", "sptd")
    # IPv6 loopback, where the machine has it
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        probe.close()
        have_v6 = True
    except OSError:
        have_v6 = False
    if have_v6:
        w6 = os.path.join(work, "v6")
        os.makedirs(w6, exist_ok=True)
        port6 = si.free_port("::1")
        d6 = si.Daemon(rep, w6, ["--lun", "ram:16M", "--metrics", "[::1]:%d" % port6])
        if d6.start():
            try:
                ctype, s = scrape(port6, host="::1")
                rep.check(s.get("spt_up") == 1 and not s.errors, "--metrics [::1]:PORT serves /metrics")
            except OSError as e:
                rep.fail("--metrics [::1]:PORT serves /metrics (%s)" % e)
            d6.stop()
    else:
        rep.skip("no IPv6 loopback: --metrics [::1] not tried")
    # a --metrics the daemon cannot serve stops it before it serves anything
    for bad, why in (("127.0.0.1", "no port"), ("localhost:9100", "a name, not an address")):
        r = subprocess.run([binary, "--listen", "127.0.0.1:%d" % si.free_port(), "--lun", "ram:1M",
                            "--metrics", bad], cwd=work, capture_output=True, text=True,
                           timeout=30 * SCALE)
        rep.check(r.returncode != 0 and "--metrics" in r.stderr,
                  "--metrics %s (%s) stops sptd at startup" % (bad, why), r.stderr.strip()[-200:])
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        r = subprocess.run([binary, "--listen", "127.0.0.1:%d" % si.free_port(), "--lun", "ram:1M",
                            "--metrics", "127.0.0.1:%d" % busy.getsockname()[1]], cwd=work,
                           capture_output=True, text=True, timeout=30 * SCALE)
        rep.check(r.returncode != 0 and "in use" in r.stderr,
                  "a --metrics port in use stops sptd at startup", r.stderr.strip()[-200:])
    finally:
        busy.close()


if __name__ == "__main__":
    sys.exit(main())
