#!/usr/bin/env python3
"""sptd's --provider-socket seen from both ends at once.

This script is the external provider (speaking the frames of
include/spt/spt.h by hand, so every byte is checked) and the initiator
(spt_iscsi.py) of one daemon, and checks what the provider interface
promises: NOT READY while no provider is registered; registration answers
(unknown name, name in use, wrong version, a first frame that is not
PROVIDER_REGISTER); the memfd; SESSION_START with the peer address, the
I_T nexus and IsReinstated, replayed to a provider that registers late;
SESSION_END on logout, on connection loss and on `sptctl session stop`;
TMF on ABORT TASK and LOGICAL UNIT RESET; a 4 MiB WRITE arriving as
several sequences with their offsets and IsFinal; the command timeout; a
TMF the provider never answers; a provider that dies with commands in
flight and one that comes back; SESSION_END sent by the provider; bad
frames from the provider. The daemon must survive all of it and exit
cleanly.
"""

import array
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spt_iscsi as si  # noqa: E402

SIG = b"SPTPT001"
HDR = struct.Struct("<I8sIIII")
CC_SESSION_START, CC_SESSION_END, CC_TMF, CC_SCSI_REQUEST, CC_SCSI_COMPLETION = \
    0x100, 0x101, 0x102, 0x103, 0x104
CC_PROVIDER_REGISTER = 0x110
RC_UNKNOWN_PROVIDER, RC_PROVIDER_IN_USE, RC_VERSION = 10, 11, 12
RC_NO_SUCH_SESSION = 4
SESSION_START = struct.Struct("<B7xQ64s512s256s")
REGISTERED = struct.Struct("<QQIIHHI224s")
# spt_wire_scsi_request: spt_scsi_request (72) + data_offset, buf_len, reserved
REQUEST = struct.Struct("<QQQIIIBBBB32sQII")
COMPLETION = struct.Struct("<QIIBB2x252s")
WIRE_TMF = struct.Struct("<QQQIIQ")

BLOCK = 512
DISK_BLOCKS = 32768  # 16 MiB
SCALE = si.timeout_scale()
CMD_TIMEOUT = 2
TMF_TIMEOUT = 1


def cstr(b):
    return b.split(b"\0", 1)[0].decode(errors="replace")


def fixed_sense(key, asc, ascq):
    s = bytearray(18)
    s[0], s[2], s[7], s[12], s[13] = 0x70, key, 10, asc, ascq
    return bytes(s)


def sense_kcq(sense):
    if len(sense) >= 14 and (sense[0] & 0x7F) in (0x70, 0x71):
        return sense[2] & 0x0F, sense[12], sense[13]
    if len(sense) >= 4 and (sense[0] & 0x7F) in (0x72, 0x73):
        return sense[1] & 0x0F, sense[2], sense[3]
    return None


class Provider:
    """A provider over the raw wire: a RAM disk with knobs to misbehave."""

    def __init__(self, path, name):
        self.path = path
        self.name = name
        self.sock = None
        self.shm = None
        self.info = None
        self.disk = bytearray(DISK_BLOCKS * BLOCK)
        self.events = []          # (kind, dict) in arrival order
        self.cond = threading.Condition()
        self.stall = False        # hold SCSI requests instead of answering
        self.answer_tmf = True
        self.held = []            # requests held while stalling
        self.thread = None
        self.closed = False

    # -- framing --
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10 * SCALE)
        self.sock.connect(self.path)

    def send(self, code, payload=b"", rc=0):
        self.sock.sendall(HDR.pack(28, SIG, 0, code, rc, len(payload)) + payload)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("daemon closed the provider connection")
            buf += chunk
        return buf

    def recv_frame(self, want_fds=False):
        fds = []
        if want_fds:
            msg, anc, _flags, _addr = self.sock.recvmsg(HDR.size, socket.CMSG_SPACE(16))
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(data[:len(data) - len(data) % a.itemsize])
                    fds.extend(a)
            if not msg:
                raise EOFError("daemon closed the provider connection")
            hdr = msg + self.recv_exact(HDR.size - len(msg))
        else:
            hdr = self.recv_exact(HDR.size)
        hl, sig, timeout, code, rc, length = HDR.unpack(hdr)
        if hl != 28 or sig != SIG:
            raise ValueError("bad header from the daemon: %r" % hdr)
        payload = self.recv_exact(length) if length else b""
        return code, rc, timeout, payload, fds

    def register(self, name=None, version=1):
        """Returns (return_code, payload); maps the memfd on success."""
        name = (name or self.name).encode()
        self.send(CC_PROVIDER_REGISTER, struct.pack("<II64s", version, 0, name))
        code, rc, _t, payload, fds = self.recv_frame(want_fds=True)
        if code != CC_PROVIDER_REGISTER:
            raise ValueError("register answered with code 0x%x" % code)
        if rc == 0:
            if len(payload) != REGISTERED.size or len(fds) != 1:
                raise ValueError("register answer of %d bytes with %d fds" % (len(payload), len(fds)))
            f = REGISTERED.unpack(payload)
            self.info = dict(lun=f[0], shm_size=f[1], max_transfer=f[2], timeout=f[3],
                             relative_port=f[4], tpgt=f[5], version=f[6], target=cstr(f[7]),
                             memfd_size=os.fstat(fds[0]).st_size)
            import mmap
            self.shm = mmap.mmap(fds[0], f[1])
        for fd in fds:
            os.close(fd)
        return rc, payload

    def start(self):
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self.thread:
            self.thread.join(5)

    # -- serving --
    def note(self, kind, **kw):
        with self.cond:
            self.events.append((kind, kw))
            self.cond.notify_all()

    def wait_for(self, pred, timeout):
        deadline = time.time() + timeout * SCALE
        with self.cond:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def loop(self):
        try:
            while True:
                code, rc, timeout, payload, _ = self.recv_frame()
                self.handle(code, rc, timeout, payload)
        except (EOFError, OSError, ValueError) as e:
            if not self.closed:
                self.note("eof", why=str(e))

    def handle(self, code, rc, timeout, p):
        if code == CC_SESSION_START:
            reinst, handle, peer, itn, chap = SESSION_START.unpack(p)
            self.note("start", handle=handle, reinstated=reinst, peer=cstr(peer),
                      itnexus=cstr(itn), chap=cstr(chap))
        elif code == CC_SESSION_END and len(p) == 8:
            self.note("end", handle=struct.unpack("<Q", p)[0], rc=rc)
        elif code == CC_TMF:
            cookie, handle, lun, fn, _resp, ref = WIRE_TMF.unpack(p)
            self.note("tmf", cookie=cookie, handle=handle, lun=lun, function=fn, ref=ref)
            if self.answer_tmf:
                self.send(CC_TMF, WIRE_TMF.pack(cookie, handle, lun, fn, 0, ref))
        elif code == CC_SCSI_REQUEST:
            f = REQUEST.unpack(p)
            req = dict(session=f[0], cookie=f[1], lun=f[2], seq_off=f[3], data_length=f[4],
                       expected=f[5], final=f[6], direction=f[7], cdb=f[10][:f[8]],
                       data_offset=f[11], buf_len=f[12], timeout=timeout)
            self.note("scsi", **req)
            if self.stall:
                self.held.append(req)
                return
            self.complete(req)

    def complete(self, req, status=None, data_in_length=None):
        self.send(CC_SCSI_COMPLETION, self.execute(req, status, data_in_length))

    def execute(self, req, status=None, data_in_length=None):
        cdb, off = req["cdb"], req["data_offset"]
        op = cdb[0]
        st, sense, data = 0, b"", b""
        if op == 0x12:  # INQUIRY: enough for the test
            data = bytes([0, 0, 6, 2, 31, 0, 0, 0]) + b"SPTTEST " + b"raw provider    " + b"0001"
        elif op == 0x25:
            data = struct.pack(">II", DISK_BLOCKS - 1, BLOCK)
        elif op in (0x28, 0x2A):
            lba, n = struct.unpack(">I", cdb[2:6])[0], struct.unpack(">H", cdb[7:9])[0]
            if lba + n > DISK_BLOCKS:
                st, sense = 2, fixed_sense(5, 0x21, 0)
            elif op == 0x28:
                data = bytes(self.disk[lba * BLOCK:(lba + n) * BLOCK])
            elif req["final"]:
                self.disk[lba * BLOCK:(lba + n) * BLOCK] = self.shm[off:off + n * BLOCK]
        transfer = len(data) if op != 0x2A else req["expected"]
        n = min(len(data), req["buf_len"], req["expected"])
        if n:
            self.shm[off:off + n] = data[:n]
        if status is not None:
            st = status
        if data_in_length is not None:
            n = data_in_length
        return COMPLETION.pack(req["cookie"], transfer, n, st, len(sense), sense)


def find_ev(kind, **match):
    def pred(ev):
        return ev[0] == kind and all(ev[1].get(k) == v for k, v in match.items())
    return pred


def send_cmd(s, cdb, lun, read_len=0):
    """Sends a SCSI command without waiting; returns its ITT."""
    itt = s.next_itt()
    flags = 0x80 | 0x01 | (0x40 if read_len else 0)
    hdr = si.bhs(si.OP_SCSI_CMD, flags, lun8=si.encode_lun(lun), itt=itt, f20=read_len,
                 f24=s.cmdsn, f28=s.expstatsn)
    hdr = hdr[:32] + cdb + b"\0" * (16 - len(cdb))
    s.cmdsn = (s.cmdsn + 1) & 0xFFFFFFFF
    s.conn.send_pdu(hdr)
    return itt


def wait_cmd(s, itt):
    """Waits for the status of ITT: (status, sense)."""
    while True:
        pdu = s._recv_for(itt)
        if pdu.opcode == si.OP_DATA_IN:
            s._note_sn(pdu, has_statsn=bool(pdu.flags & 0x01))
            if pdu.flags & 0x01:
                return pdu.b3, b""
            continue
        if pdu.opcode == si.OP_SCSI_RSP:
            s._note_sn(pdu)
            sense = b""
            if len(pdu.data) >= 2:
                sense = pdu.data[2:2 + struct.unpack(">H", pdu.data[:2])[0]]
            return pdu.b3, sense
        raise si.IscsiError("unexpected %r" % pdu)


def tmf(s, function, lun, ref_itt=0xFFFFFFFF, ref_cmdsn=0):
    """Sends a TMF (immediate) and returns its response code."""
    itt = s.next_itt()
    hdr = si.bhs(si.OP_TMF_REQ, 0x80 | function, lun8=si.encode_lun(lun), itt=itt, f20=ref_itt,
                 f24=s.cmdsn, f28=s.expstatsn, f32=ref_cmdsn, immediate=True)
    s.conn.send_pdu(hdr)
    pdu = s._recv_for(itt)
    if pdu.opcode != si.OP_TMF_RSP:
        raise si.IscsiError("TMF answered by %r" % pdu)
    s._note_sn(pdu)
    return pdu.b2


def local_peer(s):
    host, port = s.conn.sock.getsockname()[:2]
    return "%s:%d" % (host, port)


def main():
    rep = si.Reporter("provider_socket")
    work = si.make_workdir("provsock")
    psock = os.path.join(work, "providers.sock")
    target = "iqn.2026-11.org.spt:provsock"
    d = si.Daemon(rep, work, ["--target", target,
                              "--lun", os.path.join(work, "file.img") + ",size=16M",
                              "--lun", "provider:raw1",
                              "--provider-socket", psock,
                              "--provider-timeout", str(CMD_TIMEOUT * SCALE),
                              "--provider-tmf-timeout", str(TMF_TIMEOUT * SCALE),
                              "--logout-grace", "1"], target=target)
    if not d.start():
        return rep.finish()
    sptctl = os.path.join(os.path.dirname(d.binary), "sptctl")
    ctl_sock = os.path.join(work, "control.sock")
    try:
        run(rep, d, psock, target, sptctl, ctl_sock)
    except Exception as e:  # a broken step must not hide the others' results
        rep.fail("test body ran to the end (%s: %s)" % (type(e).__name__, e))
        d.show_log(60)
    rep.check(d.alive(), "daemon still running after everything the providers did")
    d.stop()
    return rep.finish()


def run(rep, d, psock, target, sptctl, ctl_sock):
    st = os.stat(psock)
    rep.check(st.st_mode & 0o777 == 0o600, "provider socket has mode 0600", oct(st.st_mode))

    # -- no provider yet --
    early = si.Session(d.host, d.port, target, timeout=10 * SCALE)
    early.login()
    status, data, _ = early.scsi(si.cdb_inquiry(), lun=1, read_len=96)
    rep.check(status == 0 and data[:1] == b"\x20",
              "INQUIRY of a provider LUN without provider: qualifier 001b (not connected)",
              "status %d byte0 %r" % (status, data[:1]))
    status, _, sense = early.scsi(si.CDB_TEST_UNIT_READY, lun=1)
    rep.check(status == 2 and sense_kcq(sense) == (2, 0x04, 0x00),
              "TEST UNIT READY without provider: NOT READY 04/00", "%d %r" % (status, sense_kcq(sense)))
    status, data, _ = early.scsi(b"\x03\0\0\0\xfc\0", lun=1, read_len=252)
    rep.check(status == 0 and sense_kcq(data) == (2, 0x04, 0x00),
              "REQUEST SENSE without provider: GOOD with NOT READY sense data")
    status, _, _ = early.scsi(si.cdb_read10(0, 1), lun=0, read_len=512)
    rep.check(status == 0, "the file LUN of the same target works meanwhile")
    early_peer = local_peer(early)

    # -- registration answers --
    bad = Provider(psock, "nosuch")
    bad.connect()
    rc, payload = bad.register()
    rep.check(rc == RC_UNKNOWN_PROVIDER, "registering a name no --lun has: UNKNOWN_PROVIDER",
              "rc %d %r" % (rc, payload))
    try:
        gone = bad.sock.recv(1) == b""
    except OSError:
        gone = True
    rep.check(gone, "... and the daemon closes that connection")
    bad.sock.close()

    bad = Provider(psock, "raw1")
    bad.connect()
    rc, _ = bad.register(version=99)
    rep.check(rc == RC_VERSION, "registering with protocol version 99: VERSION", "rc %d" % rc)
    bad.sock.close()

    bad = Provider(psock, "raw1")
    bad.connect()
    bad.send(CC_SCSI_COMPLETION, b"\0" * COMPLETION.size)
    try:
        code, rc, _t, _p, _f = bad.recv_frame()
        closed = bad.sock.recv(1) == b""
    except (EOFError, OSError):
        closed, rc = True, -1
    rep.check(closed and rc != 0, "a first frame other than PROVIDER_REGISTER is refused and closed")
    bad.sock.close()

    bad = Provider(psock, "raw1")
    bad.connect()
    bad.sock.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"\0" * 20)
    try:
        closed = bad.sock.recv(4096) == b"" or bad.sock.recv(1) == b""
    except OSError:
        closed = True
    rep.check(closed, "garbage on the provider socket closes that connection")
    bad.sock.close()

    p = Provider(psock, "raw1")
    p.connect()
    rc, _ = p.register()
    ok = rep.check(rc == 0 and p.info is not None, "provider raw1 registers", "rc %d" % rc)
    if not ok:
        return
    i = p.info
    rep.check(i["lun"] == 1 and i["target"] == target and i["tpgt"] == 1,
              "register answer names LUN 1 of the target", repr(i))
    rep.check(i["max_transfer"] == 8 << 20 and i["timeout"] == CMD_TIMEOUT * SCALE
              and i["version"] == 1, "register answer has max transfer, command timeout, version",
              repr(i))
    rep.check(i["memfd_size"] >= i["shm_size"] > 0, "the memfd passed with SCM_RIGHTS is "
              "as large as the shared area", repr(i))
    p.start()
    ev = p.wait_for(find_ev("start", peer=early_peer), 5)
    rep.check(ev is not None, "a session that logged in before registration is replayed "
              "as SESSION_START", "events %r" % p.events[:4])
    if ev:
        rep.check(si.INITIATOR in ev[1]["itnexus"] and target in ev[1]["itnexus"]
                  and ",i,0x80" in ev[1]["itnexus"] and ev[1]["reinstated"] == 0,
                  "SESSION_START carries the I_T nexus (initiator, ISID, target)", ev[1]["itnexus"])
    second = Provider(psock, "raw1")
    second.connect()
    rc, _ = second.register()
    rep.check(rc == RC_PROVIDER_IN_USE, "a second provider for raw1: PROVIDER_IN_USE", "rc %d" % rc)
    second.sock.close()

    # -- I/O through the provider --
    status, _, _ = early.scsi(si.CDB_TEST_UNIT_READY, lun=1)
    rep.check(status == 0, "TEST UNIT READY once the provider is there")
    blob = os.urandom(8 * BLOCK)
    status, _, _ = early.scsi(si.cdb_write10(100, 8), lun=1, write=blob)
    status2, back, _ = early.scsi(si.cdb_read10(100, 8), lun=1, read_len=len(blob))
    rep.check(status == 0 and status2 == 0 and back == blob,
              "WRITE(10) then READ(10) through the shared memory return the data")
    rep.check(bytes(p.disk[100 * BLOCK:108 * BLOCK]) == blob, "the provider holds what was written")

    # -- SESSION_START for a new session, reinstatement, SESSION_END on logout --
    s1 = si.Session(d.host, d.port, target, timeout=10 * SCALE)
    s1.login()
    ev1 = p.wait_for(find_ev("start", peer=local_peer(s1)), 5)
    rep.check(ev1 is not None and ev1[1]["reinstated"] == 0,
              "SESSION_START with the initiator's address as PeerAddress", local_peer(s1))
    s2 = si.Session(d.host, d.port, target, timeout=10 * SCALE, isid=s1.isid)
    s2.login()
    ev2 = p.wait_for(find_ev("start", peer=local_peer(s2)), 5)
    rep.check(ev2 is not None and ev2[1]["reinstated"] == 1,
              "a login with the same initiator and ISID: SESSION_START with IsReinstated=1")
    if ev1:
        rep.check(p.wait_for(find_ev("end", handle=ev1[1]["handle"]), 5) is not None,
                  "the reinstated session gets SESSION_END")
    if ev1 and ev2:
        rep.check(ev1[1]["handle"] != ev2[1]["handle"], "the new session has a new ITNexusHandle")
    s1.close()
    s2.logout()
    s2.close()
    if ev2:
        rep.check(p.wait_for(find_ev("end", handle=ev2[1]["handle"]), 5) is not None,
                  "SESSION_END on logout")

    # -- connection loss --
    s3 = si.Session(d.host, d.port, target, timeout=10 * SCALE)
    s3.login()
    ev3 = p.wait_for(find_ev("start", peer=local_peer(s3)), 5)
    s3.close()
    if ev3:
        rep.check(p.wait_for(find_ev("end", handle=ev3[1]["handle"]), 5) is not None,
                  "SESSION_END on connection loss")

    # -- sptctl session stop --
    s4 = si.Session(d.host, d.port, target, timeout=10 * SCALE)
    s4.login()
    ev4 = p.wait_for(find_ev("start", peer=local_peer(s4)), 5)
    if ev4 and os.path.exists(sptctl):
        t0 = time.time()
        r = subprocess.run([sptctl, "--socket", ctl_sock, "session", "stop",
                            "0x%016x" % ev4[1]["handle"], "--grace", "1"],
                           capture_output=True, text=True, timeout=30 * SCALE)
        rep.check(r.returncode == 0, "sptctl session stop of a provider LUN's session", r.stderr)
        rep.check(p.wait_for(find_ev("end", handle=ev4[1]["handle"]), 5) is not None,
                  "SESSION_END after sptctl session stop (%.1f s)" % (time.time() - t0))
    s4.close()

    # -- a 4 MiB WRITE: one request per data sequence --
    s5 = si.Session(d.host, d.port, target, timeout=30 * SCALE)
    s5.login()
    big = os.urandom(4 << 20)
    mark = len(p.events)
    status, _, _ = s5.scsi(si.cdb_write10(2048, len(big) // BLOCK), lun=1, write=big)
    reqs = [e[1] for e in p.events[mark:] if e[0] == "scsi"]
    offs = [(r["seq_off"], r["data_length"], r["final"]) for r in reqs]
    contiguous = all(offs[k][0] + offs[k][1] == offs[k + 1][0] for k in range(len(offs) - 1))
    rep.check(status == 0 and len(reqs) >= 4, "a 4 MiB WRITE reaches the provider as %d sequences"
              % len(reqs), repr(offs[:4]))
    rep.check(contiguous and offs and offs[0][0] == 0 and
              offs[-1][0] + offs[-1][1] == len(big),
              "sequence offsets are contiguous from 0 to 4 MiB", repr(offs))
    rep.check(offs and all(f == 0 for _, _, f in offs[:-1]) and offs[-1][2] == 1,
              "IsFinal only on the last sequence")
    rep.check(len({r["cookie"] for r in reqs}) == 1 and len({r["data_offset"] for r in reqs}) == 1,
              "every sequence has the same TaskCookie and buffer")
    rep.check(bytes(p.disk[2048 * BLOCK:2048 * BLOCK + len(big)]) == big,
              "the provider assembled the 4 MiB exactly")
    status, back, _ = s5.scsi(si.cdb_read10(2048, 256), lun=1, read_len=256 * BLOCK)
    rep.check(status == 0 and back == big[:256 * BLOCK], "and reads it back")

    # -- TMF: ABORT TASK reaches the provider with the task's cookie --
    p.stall = True
    mark = len(p.events)
    itt = send_cmd(s5, si.cdb_read10(0, 8), 1, 8 * BLOCK)
    req = p.wait_for(lambda e: e[0] == "scsi" and p.events.index(e) >= mark, 5)
    resp = tmf(s5, 1, 1, ref_itt=itt, ref_cmdsn=(s5.cmdsn - 1) & 0xFFFFFFFF) if req else None
    ev = p.wait_for(find_ev("tmf", function=1), 1)
    rep.check(req is not None and ev is not None and ev[1]["ref"] == req[1]["cookie"]
              and ev[1]["lun"] == 1, "ABORT TASK reaches the provider naming the task's cookie")
    # the aborted read is still with the provider: the TMF answer waits for it
    # (or for the TMF timeout); completing it lets the TMF finish
    rep.check(resp == 0, "ABORT TASK answered Function Complete", "response %r" % resp)
    for r in p.held:
        p.complete(r)
    p.held.clear()
    p.stall = False
    s5.nop()
    status, _, _ = s5.scsi(si.CDB_TEST_UNIT_READY, lun=1)
    rep.check(status == 0, "the session goes on after ABORT TASK")

    resp = tmf(s5, 5, 1)
    rep.check(resp == 0 and p.wait_for(find_ev("tmf", function=5, lun=1), 2) is not None,
              "LOGICAL UNIT RESET reaches the provider and completes")

    # -- a completion with a non-zero ReturnCode: HARDWARE ERROR 08/00 --
    p.stall = True
    itt = send_cmd(s5, si.cdb_read10(0, 8), 1, 8 * BLOCK)
    p.wait_for(lambda e: bool(p.held), 5)
    req = p.held.pop()
    p.stall = False
    p.send(CC_SCSI_COMPLETION, p.execute(req), rc=1)
    status, sense = wait_cmd(s5, itt)
    rep.check(status == 2 and sense_kcq(sense) == (0x4, 0x08, 0x00),
              "a completion with ReturnCode 1 fails the command: HARDWARE ERROR 08/00",
              "%d %r" % (status, sense_kcq(sense)))
    status, _, _ = s5.scsi(si.CDB_TEST_UNIT_READY, lun=1)
    rep.check(status == 0 and not p.wait_for(find_ev("eof"), 0.2),
              "... and the provider stays connected")

    # -- the command timeout --
    p.stall = True
    mark = len(p.events)
    t0 = time.time()
    itt = send_cmd(s5, si.cdb_read10(0, 8), 1, 8 * BLOCK)
    status, sense = wait_cmd(s5, itt)
    took = time.time() - t0
    rep.check(status == 2 and sense_kcq(sense) == (0xB, 0x08, 0x01),
              "a command the provider sits on fails after the command timeout: ABORTED "
              "COMMAND 08/01 (%.1f s)" % took, "%d %r" % (status, sense_kcq(sense)))
    rep.check(took < (CMD_TIMEOUT + 3) * SCALE, "... within the timeout plus the tick",
              "%.1f s" % took)
    req = [e for e in p.events[mark:] if e[0] == "scsi"]
    rep.check(p.wait_for(lambda e: e[0] == "tmf" and req and e[1]["ref"] == req[0][1]["cookie"], 2)
              is not None, "the provider is told with ABORT TASK")
    # a late answer is accepted quietly (its buffer is released)
    for r in p.held:
        p.complete(r)
    p.held.clear()
    p.stall = False
    status, _, _ = s5.scsi(si.CDB_TEST_UNIT_READY, lun=1)
    rep.check(status == 0 and not p.wait_for(find_ev("eof"), 0.2),
              "a late completion is accepted and the provider stays connected")

    # -- a TMF the provider never answers --
    p.stall = True
    p.answer_tmf = False
    itt = send_cmd(s5, si.cdb_read10(0, 8), 1, 8 * BLOCK)
    p.wait_for(lambda e: e[0] == "scsi" and e[1]["cookie"] not in (0,) and p.held, 5)
    t0 = time.time()
    resp = tmf(s5, 1, 1, ref_itt=itt, ref_cmdsn=(s5.cmdsn - 1) & 0xFFFFFFFF)
    took = time.time() - t0
    rep.check(resp == 0 and took < (TMF_TIMEOUT + 3) * SCALE,
              "ABORT TASK completes although the provider answers nothing (%.1f s)" % took,
              "response %r" % resp)
    p.held.clear()
    p.stall = False
    p.answer_tmf = True
    s5.nop()

    # -- SESSION_END completes although the provider sits on a command --
    s7 = si.Session(d.host, d.port, target, timeout=30 * SCALE)
    s7.login()
    ev7 = p.wait_for(find_ev("start", peer=local_peer(s7)), 5)
    p.stall = True
    p.answer_tmf = False
    held_before = len(p.held)
    send_cmd(s7, si.cdb_read10(0, 8), 1, 8 * BLOCK)
    p.wait_for(lambda e: len(p.held) > held_before, 5)
    if ev7 and os.path.exists(sptctl):
        t0 = time.time()
        r = subprocess.run([sptctl, "--socket", ctl_sock, "session", "stop",
                            "0x%016x" % ev7[1]["handle"], "--grace", "1"],
                           capture_output=True, text=True, timeout=60 * SCALE)
        took = time.time() - t0
        rep.check(r.returncode == 0 and took < (1 + TMF_TIMEOUT + 3) * SCALE,
                  "sptctl session stop completes while the provider sits on the session's "
                  "command (%.1f s)" % took, r.stderr.strip())
        rep.check(p.wait_for(find_ev("end", handle=ev7[1]["handle"]), 5) is not None,
                  "... and the provider gets SESSION_END")
    s7.close()
    p.held.clear()
    p.stall = False
    p.answer_tmf = True
    s5.nop()

    # -- the provider dies with a command in flight, then comes back --
    p.stall = True
    itt = send_cmd(s5, si.cdb_read10(0, 8), 1, 8 * BLOCK)
    p.wait_for(lambda e: bool(p.held), 5)
    t0 = time.time()
    p.close()
    status, sense = wait_cmd(s5, itt)
    rep.check(status == 2 and sense_kcq(sense) == (0xB, 0x08, 0x00) and time.time() - t0 < 3 * SCALE,
              "a provider that dies: its command fails at once with ABORTED COMMAND 08/00",
              "%d %r" % (status, sense_kcq(sense)))
    s5.nop()
    rep.check(True, "the session outlives its provider")
    status, _, sense = s5.scsi(si.CDB_TEST_UNIT_READY, lun=1)
    rep.check(status == 2 and sense_kcq(sense) == (2, 0x04, 0x00), "the LUN is NOT READY meanwhile")
    status, _, _ = s5.scsi(si.cdb_read10(0, 1), lun=0, read_len=512)
    rep.check(status == 0, "the file LUN is unaffected")

    p2 = Provider(psock, "raw1")
    p2.disk = p.disk
    p2.connect()
    rc, _ = p2.register()
    rep.check(rc == 0, "a restarted provider registers under the same name")
    p2.start()
    rep.check(p2.wait_for(find_ev("start", peer=local_peer(s5)), 5) is not None,
              "the restarted provider hears of the live sessions (SESSION_START replay)")
    status, back, _ = s5.scsi(si.cdb_read10(2048, 256), lun=1, read_len=256 * BLOCK)
    rep.check(status == 0 and back == big[:256 * BLOCK], "the LUN is back: the next READ succeeds")

    # -- SESSION_END sent by the provider stops a session --
    s6 = si.Session(d.host, d.port, target, timeout=10 * SCALE)
    s6.login()
    ev6 = p2.wait_for(find_ev("start", peer=local_peer(s6)), 5)
    if ev6:
        mark = len(p2.events)
        p2.send(CC_SESSION_END, struct.pack("<QII", ev6[1]["handle"], 1, 0))
        ans = p2.wait_for(lambda e: e[0] == "end" and p2.events.index(e) >= mark and
                          e[1]["handle"] == ev6[1]["handle"], 5)
        rep.check(ans is not None and ans[1]["rc"] == 0,
                  "SESSION_END from the provider is answered SUCCESS")
        got_async = False
        try:
            pdu = s6.conn.recv_pdu(timeout=5 * SCALE)
            got_async = pdu.opcode == si.OP_ASYNC and pdu.hdr[36] == 1
        except Exception:
            pass
        rep.check(got_async, "the initiator is asked to log out (Async Message, event 1)")
        ends = lambda: [e for e in p2.events[mark:] if e[0] == "end" and
                        e[1]["handle"] == ev6[1]["handle"]]
        deadline = time.time() + 5 * SCALE
        while len(ends()) < 2 and time.time() < deadline:
            time.sleep(0.1)
        rep.check(len(ends()) >= 2, "the session ends after the grace (SESSION_END notification)")
    s6.close()
    mark = len(p2.events)
    p2.send(CC_SESSION_END, struct.pack("<Q", 0x1234))
    ans = p2.wait_for(lambda e: e[0] == "end" and p2.events.index(e) >= mark, 5)
    rep.check(ans is not None and ans[1]["rc"] == RC_NO_SUCH_SESSION,
              "SESSION_END for an unknown handle: NO_SUCH_SESSION")

    # -- bad frames from the provider end only its connection --
    p2.stall = True
    itt = send_cmd(s5, si.cdb_read10(0, 8), 1, 8 * BLOCK)
    p2.wait_for(lambda e: bool(p2.held), 5)
    req = p2.held.pop()
    p2.send(CC_SCSI_COMPLETION, p2.execute(req, data_in_length=req["buf_len"] + 4096))
    status, sense = wait_cmd(s5, itt)
    rep.check(status == 2 and sense_kcq(sense) == (0xB, 0x08, 0x00),
              "a completion claiming more data-in than the buffer: command fails 08/00")
    rep.check(p2.wait_for(find_ev("eof"), 5) is not None, "... and that provider is disconnected")
    p2.close()

    p3 = Provider(psock, "raw1")
    p3.disk = p.disk
    p3.connect()
    rc, _ = p3.register()
    p3.start()
    p3.send(CC_SCSI_COMPLETION, COMPLETION.pack(0xdeadbeef, 0, 0, 0, 0, b""))
    rep.check(rc == 0 and p3.wait_for(find_ev("eof"), 5) is not None,
              "a completion for a task it does not hold disconnects the provider")
    p3.close()

    p4 = Provider(psock, "raw1")
    p4.disk = p.disk
    p4.connect()
    rc, _ = p4.register()
    p4.start()
    status, back, _ = s5.scsi(si.cdb_read10(100, 8), lun=1, read_len=8 * BLOCK)
    rep.check(rc == 0 and status == 0 and back == blob, "a fourth provider serves the same data")
    s5.logout()
    s5.close()
    early.logout()
    early.close()
    p4.close()


if __name__ == "__main__":
    sys.exit(main())
