#!/usr/bin/env python3
"""Scale (issue 6): 1,000 idle sessions in bounded memory, login churn
without leaks.

Part 1 starts sptd with an open-files soft limit of 1024, which it must
raise itself, logs in IDLE_SESSIONS sessions from the loopback addresses
127.0.0.2 .. 127.0.0.50 (standing for initiator hosts, under
--max-connections-per-address), runs a burst of BURST_QD pipelined 4 KiB
READs on each (the whole default CmdSN window: the most task state a
session caches), then holds them idle for HOLD_SECONDS while answering the
target's NOP-In pings. The daemon's VmRSS at the end of the hold must be
below RSS_MAX (issue 6: 256 MiB); every session must then answer a NOP,
log out cleanly, and the daemon's session list must empty.

Part 2 logs in and out CHURN_ROUNDS x CHURN_LOGINS times, one session at a
time: all of them must succeed within CHURN_TIME_MAX, no session may be
left, and VmRSS after the last round must be within CHURN_GROWTH_MAX of
VmRSS after the first (the first round is the warm-up). The achieved rate
is printed, not asserted. For the figure in bench/RESULTS.md,
`test_scale.py --churn-seconds N` goes on with rounds until N seconds of
churn have passed. Under the sanitizer pass (SPT_PASS=san) ASan's
shadow memory and quarantine inflate and delay what RSS shows, so the RSS
bounds are skipped there; the functional checks stay and LeakSanitizer
looks for leaks when the daemon exits. Python 3 standard library only.
"""

import json
import os
import resource
import select
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spt_iscsi  # noqa: E402
from spt_iscsi import (  # noqa: E402
    OP_DATA_IN, OP_NOP_IN, OP_NOP_OUT, OP_SCSI_CMD, OP_SCSI_RSP, RESERVED_TAG, Daemon,
    IscsiError, Reporter, Session, bhs, cdb_read10, encode_lun, make_workdir, timeout_scale)

TARGET = "iqn.2026-11.org.spt:target0"
SCALE = timeout_scale()
SAN = os.environ.get("SPT_PASS") == "san"

SOURCES = ["127.0.0.%d" % i for i in range(2, 51)]
PER_ADDRESS = 64            # --max-connections-per-address: 1,000 / 49 is 21 each
IDLE_SESSIONS = 1000
BURST_QD = 128              # READs in flight per session in its burst
BLOCK = 512
READ_BLOCKS = 8             # 4 KiB
HOLD_SECONDS = 10
NOP_INTERVAL = 2            # the daemon pings every held session several times
RSS_MAX = 256 << 20         # issue 6
FD_SPARE = 64               # the test's own descriptors besides the sessions'
DAEMON_SOFT_NOFILE = 1024   # the usual soft limit, which sptd must raise

CHURN_ROUNDS = 3
CHURN_LOGINS = 500
CHURN_TIME_MAX = 300 * SCALE
CHURN_GROWTH_MAX = 4 << 20
SETTLE_MAX = 15 * SCALE     # for the session list to empty after logouts


def daemon_memory(pid):
    """VmRSS and VmHWM of pid, in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0]) * 1024
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def mib(n):
    return n / (1 << 20)


def session_from(src, port, initiator, timeout):
    """A spt_iscsi.Session whose connection comes from source address src."""
    real = spt_iscsi.Connection

    class Bound(real):
        def __init__(self, host, port_, timeout=10.0):
            self.timeout = timeout
            self.sock = socket.create_connection((host, port_), timeout=timeout,
                                                 source_address=(src, 0))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    spt_iscsi.Connection = Bound
    try:
        return Session("127.0.0.1", port, TARGET, initiator=initiator, timeout=timeout)
    finally:
        spt_iscsi.Connection = real


def answer_ping(s, pdu):
    """RFC 7143 11.18: a target NOP-In with a TTT is answered by a NOP-Out
    carrying the same TTT; returns True if pdu was such a ping."""
    if pdu.opcode != OP_NOP_IN or pdu.itt != RESERVED_TAG:
        return False
    ttt = pdu.u32(20)
    if ttt != RESERVED_TAG:
        s.conn.send_pdu(bhs(OP_NOP_OUT, 0x80, lun8=pdu.hdr[8:16], itt=RESERVED_TAG, f20=ttt,
                            f24=s.cmdsn, f28=s.expstatsn, immediate=True))
    return True


def read_burst(s, qd):
    """qd READ(10)s of 4 KiB sent at once, then every answer taken; returns
    how many ended with GOOD status."""
    out = bytearray()
    for q in range(qd):
        itt = s.next_itt()
        cdb = cdb_read10(q * READ_BLOCKS, READ_BLOCKS)
        hdr = bhs(OP_SCSI_CMD, 0x80 | 0x40 | 0x01, lun8=encode_lun(0), itt=itt,
                  f20=READ_BLOCKS * BLOCK, f24=s.cmdsn, f28=s.expstatsn)
        out += hdr[:32] + cdb + b"\0" * (16 - len(cdb))
        s.cmdsn = (s.cmdsn + 1) & 0xFFFFFFFF
    s.conn.send_raw(bytes(out))
    done = good = 0
    while done < qd:
        pdu = s.conn.recv_pdu()
        if answer_ping(s, pdu):
            continue
        final = pdu.opcode == OP_SCSI_RSP or (pdu.opcode == OP_DATA_IN and pdu.flags & 0x01)
        if not final:
            continue
        done += 1
        s.expstatsn = (pdu.u32(24) + 1) & 0xFFFFFFFF
        if pdu.b3 == 0 and (pdu.opcode == OP_DATA_IN or pdu.b2 == 0):
            good += 1
    return good


class ScaleTest:
    def __init__(self, rep, workdir, churn_seconds=0):
        self.rep = rep
        self.churn_seconds = churn_seconds
        self.workdir = workdir
        self.d = None
        self.sptctl = None
        self.sessions = []

    def start(self):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < IDLE_SESSIONS + FD_SPARE + 256:
            self.rep.skip("open-files hard limit %d is too low for %d sessions" %
                          (hard, IDLE_SESSIONS))
            return False
        # sptd starts with the usual soft limit and must raise it itself;
        # the test then takes what it needs for its own connections
        soft = DAEMON_SOFT_NOFILE if hard == resource.RLIM_INFINITY else min(DAEMON_SOFT_NOFILE, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        self.d = Daemon(self.rep, self.workdir, [
            "--lun", "ram:64M",
            "--nop-interval", str(NOP_INTERVAL), "--nop-timeout", str(10 * SCALE),
            "--max-connections-per-address", str(PER_ADDRESS),
            "--login-timeout", str(30 * SCALE)])
        started = self.d.start()
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if not started:
            return False
        self.sptctl = os.path.join(os.path.dirname(self.d.binary), "sptctl")
        if not os.path.exists(self.sptctl):
            self.sptctl = os.path.join(spt_iscsi.repo_root(), "build", "sptctl")
        return True

    def memory(self):
        return daemon_memory(self.d.proc.pid)

    def session_list(self):
        r = subprocess.run([self.sptctl, "--socket", os.path.join(self.workdir, "control.sock"),
                            "session", "list", "--json"], capture_output=True, text=True,
                           timeout=30 * SCALE)
        if r.returncode != 0:
            raise IscsiError("sptctl session list: %s" % r.stderr.strip())
        return json.loads(r.stdout)

    def wait_sessions(self, want):
        """Polls the session list until it holds want sessions; returns the count."""
        deadline = time.time() + SETTLE_MAX
        while True:
            n = len(self.session_list())
            if n == want or time.time() > deadline:
                return n
            time.sleep(0.2)

    def login_all(self):
        t0 = time.time()
        try:
            for i in range(IDLE_SESSIONS):
                s = session_from(SOURCES[i % len(SOURCES)], self.d.port,
                                 "iqn.2026-11.org.spt:scale-%d" % i, 10.0 * SCALE)
                self.sessions.append(s)
                s.login()
        except (IscsiError, OSError) as e:
            self.rep.fail("%d sessions log in (session %d: %s)" %
                          (IDLE_SESSIONS, len(self.sessions), e))
            return False
        took = time.time() - t0
        self.rep.ok("%d sessions log in from %d addresses (%.1f s)" %
                    (IDLE_SESSIONS, len(SOURCES), took))
        rss, _ = self.memory()
        print("NOTE: logged in: VmRSS %.1f MiB" % mib(rss), flush=True)
        n = len(self.session_list())
        self.rep.check(n == IDLE_SESSIONS, "sptctl session list shows %d sessions" % IDLE_SESSIONS,
                       "%d" % n)
        log = self.d.log()
        self.rep.check("open files: soft limit raised from %d" % DAEMON_SOFT_NOFILE in log,
                       "sptd raised its open-files soft limit from %d" % DAEMON_SOFT_NOFILE)
        return True

    def burst_all(self):
        t0 = time.time()
        bad = 0
        try:
            for s in self.sessions:
                if read_burst(s, BURST_QD) != BURST_QD:
                    bad += 1
        except (IscsiError, OSError) as e:
            self.rep.fail("a burst of %d READs on every session (%s)" % (BURST_QD, e))
            return False
        rss, hwm = self.memory()
        self.rep.check(bad == 0, "a burst of %d pipelined 4 KiB READs on each of %d sessions, "
                       "all GOOD (%.1f s)" % (BURST_QD, IDLE_SESSIONS, time.time() - t0),
                       "%d sessions had a failed READ" % bad)
        print("NOTE: after the bursts: VmRSS %.1f MiB, VmHWM %.1f MiB" % (mib(rss), mib(hwm)),
              flush=True)
        return bad == 0

    def hold(self):
        """HOLD_SECONDS idle, answering the daemon's pings; returns the
        VmRSS samples."""
        poller = select.poll()
        by_fd = {}
        for s in self.sessions:
            by_fd[s.conn.sock.fileno()] = s
            poller.register(s.conn.sock.fileno(), select.POLLIN)
        pinged = set()
        pings = 0
        samples = []
        errors = []
        deadline = time.time() + HOLD_SECONDS
        next_sample = time.time() + 1
        while time.time() < deadline:
            for fd, _ev in poller.poll(200):
                s = by_fd[fd]
                try:
                    pdu = s.conn.recv_pdu(timeout=5.0 * SCALE)
                except (IscsiError, OSError) as e:
                    errors.append(str(e))
                    poller.unregister(fd)
                    continue
                if answer_ping(s, pdu):
                    pings += 1
                    pinged.add(fd)
                else:
                    errors.append("unexpected %r while idle" % pdu)
            if time.time() >= next_sample:
                samples.append(self.memory()[0])
                next_sample += 1
        samples.append(self.memory()[0])
        self.rep.check(not errors, "%d sessions held idle for %d s" % (IDLE_SESSIONS, HOLD_SECONDS),
                       "; ".join(errors[:3]))
        self.rep.check(len(pinged) == IDLE_SESSIONS,
                       "every idle session was pinged with NOP-In and answered (%d pings)" % pings,
                       "%d of %d sessions pinged" % (len(pinged), IDLE_SESSIONS))
        return samples

    def idle_part(self):
        if not self.login_all() or not self.burst_all():
            return
        samples = self.hold()
        rss, hwm = self.memory()
        print("NOTE: figure: %d idle sessions: VmRSS %.1f MiB at the end of %d s idle "
              "(max %.1f MiB while idle), VmHWM %.1f MiB" %
              (IDLE_SESSIONS, mib(samples[-1]), HOLD_SECONDS, mib(max(samples)), mib(hwm)),
              flush=True)
        if SAN:
            self.rep.skip("VmRSS below %d MiB with %d idle sessions: ASan's shadow memory and "
                          "quarantine inflate RSS in the sanitizer build (%.1f MiB here)" %
                          (RSS_MAX >> 20, IDLE_SESSIONS, mib(samples[-1])))
        else:
            self.rep.check(samples[-1] < RSS_MAX, "VmRSS below %d MiB with %d idle sessions "
                           "(%.1f MiB)" % (RSS_MAX >> 20, IDLE_SESSIONS, mib(samples[-1])))
        answered = 0
        try:
            for s in self.sessions:
                if s.nop(b"still-there"):
                    answered += 1
        except (IscsiError, OSError) as e:
            print("NOTE: NOP failed: %s" % e, flush=True)
        self.rep.check(answered == IDLE_SESSIONS, "every held session answers a NOP after the hold",
                       "%d of %d" % (answered, IDLE_SESSIONS))
        out = 0
        try:
            for s in self.sessions:
                if s.logout() == 0:
                    out += 1
                s.close()
        except (IscsiError, OSError) as e:
            print("NOTE: logout failed: %s" % e, flush=True)
        for s in self.sessions:
            s.close()
        self.sessions = []
        self.rep.check(out == IDLE_SESSIONS, "all %d sessions log out with response 0" %
                       IDLE_SESSIONS, "%d did" % out)
        n = self.wait_sessions(0)
        self.rep.check(n == 0, "the daemon's session list is empty after the logouts", "%d left" % n)

    def churn_round(self, r):
        t0 = time.time()
        for i in range(CHURN_LOGINS):
            s = session_from(SOURCES[i % len(SOURCES)], self.d.port,
                             "iqn.2026-11.org.spt:churn-%d" % r, 10.0 * SCALE)
            try:
                s.login()
                rc = s.logout()
            finally:
                s.close()
            if rc != 0:
                raise IscsiError("logout response %d" % rc)
        return time.time() - t0

    def churn_part(self):
        after = []
        total = 0.0
        r = 0
        try:
            while r < CHURN_ROUNDS or total < self.churn_seconds:
                total += self.churn_round(r)
                r += 1
                if self.wait_sessions(0) != 0:
                    raise IscsiError("sessions left after round %d" % (r + 1))
                after.append(self.memory()[0])
        except (IscsiError, OSError) as e:
            self.rep.fail("%d x %d logins and logouts (%s)" % (CHURN_ROUNDS, CHURN_LOGINS, e))
            return
        logins = r * CHURN_LOGINS
        rate = logins / total * 60
        limit = max(CHURN_TIME_MAX, 2 * self.churn_seconds)
        self.rep.check(total < limit, "%d logins and logouts, one at a time, within %d s "
                       "(%.1f s)" % (logins, limit, total))
        print("NOTE: figure: login churn: %d logins + logouts in %.1f s = %.0f per minute; "
              "VmRSS after round 1 %.1f MiB, after round %d %.1f MiB, largest %.1f MiB" %
              (logins, total, rate, mib(after[0]), r, mib(after[-1]), mib(max(after))), flush=True)
        n = len(self.session_list())
        self.rep.check(n == 0, "no session is left after the churn", "%d left" % n)
        growth = after[-1] - after[0]
        if SAN:
            self.rep.skip("VmRSS growth over the churn within %d MiB: ASan's quarantine holds "
                          "freed memory (LeakSanitizer checks leaks at exit; %+.1f MiB here)" %
                          (CHURN_GROWTH_MAX >> 20, mib(growth)))
        else:
            self.rep.check(growth <= CHURN_GROWTH_MAX,
                           "VmRSS after round %d within %d MiB of after round 1 (%+.1f MiB)" %
                           (r, CHURN_GROWTH_MAX >> 20, mib(growth)))

    def run(self):
        if not self.start():
            return
        try:
            self.idle_part()
            if self.d.alive():
                self.churn_part()
        finally:
            for s in self.sessions:
                s.close()
            self.rep.check("NOP-In ping not answered" not in self.d.log(),
                           "no connection was dropped for an unanswered ping")
            self.d.stop()


def main(argv):
    churn_seconds = 0
    if len(argv) == 3 and argv[1] == "--churn-seconds":
        churn_seconds = float(argv[2])
    elif len(argv) != 1:
        print("usage: %s [--churn-seconds N]" % argv[0], file=sys.stderr)
        return 2
    rep = Reporter("scale")
    workdir = make_workdir("scale")
    try:
        ScaleTest(rep, workdir, churn_seconds).run()
    finally:
        if os.environ.get("SPT_KEEP_TMP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
