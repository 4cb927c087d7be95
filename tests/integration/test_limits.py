#!/usr/bin/env python3
"""The named limits (README "Limits") and hostile load against a good session.

Part 1 starts sptd with small limits and checks each one from the wire:
--max-connections-per-address and --max-half-open (the excess is closed at
accept, the others stay), --max-login-keys and --max-login-text (login
status 0302, out of resources), --max-pending-commands (MaxCmdSN - ExpCmdSN
+ 1), --max-session-buffer-mib (TASK SET FULL, the retry succeeds),
--pdu-timeout (a half-sent header in full feature phase is dropped, an idle
session is not), and RFC 7143 7.8 digest errors (Reject 0x02 then close for
a data digest error, a close for a header digest error, both counted in the
log). Loopback addresses 127.0.0.x stand for initiators on different hosts.

Part 2 runs hostile processes for HOSTILE_SECONDS (random bytes, truncated
and oversized headers, bad opcodes before login, thousands of login keys,
huge DataSegmentLengths, slow half-sent headers held open, half-sent
headers after a login) from several addresses while a good session does
WRITE/READ-verify I/O (single commands, QD 32 x 4 KiB and QD 8 x 1 MiB
reads): every good command must finish within STALL_MAX, every byte must
verify, the daemon must live, and its VmRSS must stay below RSS_MAX during
and after. Python 3 standard library only.
"""

import multiprocessing
import os
import random
import select
import shutil
import signal
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spt_iscsi  # noqa: E402
from spt_iscsi import (  # noqa: E402
    BHS_LEN, OP_DATA_IN, OP_LOGIN_REQ, OP_LOGIN_RSP, OP_NOP_IN, OP_NOP_OUT, OP_REJECT,
    OP_SCSI_CMD, OP_SCSI_RSP, OP_TEXT_REQ, RESERVED_TAG, Connection, Daemon, IscsiError,
    LoginFailed, Reporter, Session, bhs, cdb_read10, encode_keys, encode_lun, make_workdir,
    pad4, timeout_scale)

TARGET = "iqn.2026-11.org.spt:target0"
SCALE = timeout_scale()
SAN = os.environ.get("SPT_PASS") == "san"
BLOCK = 512

# Part 1: small limits.
PER_ADDRESS = 4
HALF_OPEN = 6
LOGIN_KEYS = 32
LOGIN_TEXT = 16384
PENDING = 8
PDU_TIMEOUT = 2 * SCALE
BUFFER_MIB = 8
LUN1_SIZE = 32 << 20

# Part 2: hostile load.
HOSTILE_SECONDS = 20
HOSTILE_PROCS = 6
HOSTILE_ADDRS = ["127.0.0.%d" % i for i in range(10, 16)]
SLOW_PER_PROC = 12          # half-sent headers each hostile process keeps open
GOOD_ADDR = "127.0.0.2"
STALL_MAX = 5.0 * SCALE     # no good command may take longer
RSS_MAX = 200 << 20
LUN2_SIZE = 64 << 20
CONTENT = 16 << 20          # known data at the start of LUN 2, read and verified
SCRATCH_LBA = (32 << 20) // BLOCK


# --- CRC32C (RFC 7143 B.4, least significant byte first on the wire) -------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def digest(data):
    return struct.pack("<I", crc32c(data))


# --- connections from a chosen loopback address ------------------------------

def raw_from(src, port, timeout=5.0):
    """A TCP connection to the daemon from source address src."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(src, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def session_from(src, port, initiator=spt_iscsi.INITIATOR, timeout=10.0):
    """A spt_iscsi.Session whose connection comes from source address src."""
    real = spt_iscsi.Connection

    class Bound(real):
        def __init__(self, host, port_, timeout=10.0):
            self.timeout = timeout
            self.sock = raw_from(src, port_, timeout)

    spt_iscsi.Connection = Bound
    try:
        return Session("127.0.0.1", port, TARGET, initiator=initiator, timeout=timeout)
    finally:
        spt_iscsi.Connection = real


def closed_by_peer(sock, wait):
    """True if the daemon closes sock within wait seconds (EOF or reset)."""
    deadline = time.time() + wait
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            return False
        except OSError:
            return True
    return False


def still_open(sock, wait=0.3):
    return not closed_by_peer(sock, wait)


# --- pipelined reads on a Session ----------------------------------------------

def pipelined_reads(s, cmds, timeout, lun=0):
    """Sends READ(10)s [(lba, blocks)] back to back with consecutive CmdSNs;
    returns [(status, data)] in the same order."""
    order, results, data = [], {}, {}
    wire = b""
    for lba, blocks in cmds:
        itt = s.next_itt()
        length = blocks * BLOCK
        hdr = bhs(OP_SCSI_CMD, 0x80 | 0x40 | 0x01, lun8=encode_lun(lun), itt=itt, f20=length,
                  f24=s.cmdsn, f28=s.expstatsn)
        wire += hdr[:32] + cdb_read10(lba, blocks) + b"\0" * 6
        s.cmdsn = (s.cmdsn + 1) & 0xFFFFFFFF
        order.append(itt)
        data[itt] = bytearray(length)
    s.conn.send_raw(wire)
    while len(results) < len(order):
        pdu = s.conn.recv_pdu(timeout)
        if pdu.opcode == OP_NOP_IN and pdu.itt == RESERVED_TAG:
            ttt = pdu.u32(20)
            if ttt != RESERVED_TAG:
                s.conn.send_pdu(bhs(OP_NOP_OUT, 0x80, lun8=pdu.hdr[8:16], itt=RESERVED_TAG,
                                    f20=ttt, f24=s.cmdsn, f28=s.expstatsn, immediate=True))
            continue
        if pdu.opcode == OP_REJECT:
            raise IscsiError("Reject reason 0x%02x" % pdu.b2)
        if pdu.itt not in data:
            raise IscsiError("unexpected %r" % pdu)
        if pdu.opcode == OP_DATA_IN:
            off = pdu.u32(40)
            buf = data[pdu.itt]
            if off + len(pdu.data) > len(buf):
                raise IscsiError("Data-In beyond the expected length")
            buf[off:off + len(pdu.data)] = pdu.data
            if pdu.flags & 0x01:
                s._note_sn(pdu)
                results[pdu.itt] = pdu.b3
            else:
                s._note_sn(pdu, has_statsn=False)
        elif pdu.opcode == OP_SCSI_RSP:
            s._note_sn(pdu)
            results[pdu.itt] = pdu.b3
        else:
            raise IscsiError("unexpected %r" % pdu)
    return [(results[i], bytes(data[i])) for i in order]


def nop_window(s):
    """An immediate NOP-Out; returns (ExpCmdSN, MaxCmdSN) of the NOP-In."""
    itt = s.next_itt()
    s.conn.send_pdu(bhs(OP_NOP_OUT, 0x80, itt=itt, f20=RESERVED_TAG, f24=s.cmdsn,
                        f28=s.expstatsn, immediate=True))
    pdu = s._recv_for(itt)
    s._note_sn(pdu)
    return pdu.u32(28), pdu.u32(32)


def vm_rss(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# --- Part 1 -----------------------------------------------------------------------

class LimitsTest:
    def __init__(self, rep, work):
        self.rep = rep
        self.work = work
        self.img = os.path.join(work, "limits.img")
        rnd = random.Random(4)
        self.content = bytes(rnd.getrandbits(8) for _ in range(1 << 16)) * (LUN1_SIZE >> 16)
        with open(self.img, "wb") as f:
            f.write(self.content)
        self.daemon = Daemon(rep, work, [
            "--lun", "%s,size=%d" % (self.img, LUN1_SIZE),
            "--login-timeout", str(60 * SCALE),
            "--max-connections-per-address", str(PER_ADDRESS),
            "--max-half-open", str(HALF_OPEN),
            "--max-login-keys", str(LOGIN_KEYS),
            "--max-login-text", str(LOGIN_TEXT),
            "--max-pending-commands", str(PENDING),
            "--pdu-timeout", str(PDU_TIMEOUT),
            "--max-session-buffer-mib", str(BUFFER_MIB)], target=TARGET)

    def login(self, src):
        s = session_from(src, self.daemon.port, timeout=10.0 * SCALE)
        s.login()
        s.scsi_retry_ua(b"\0" * 6)
        return s

    def check_connections(self):
        port = self.daemon.port
        good = self.login("127.0.0.1")
        held = [raw_from("127.0.0.1", port) for _ in range(PER_ADDRESS - 1)]
        time.sleep(0.2)
        extra = raw_from("127.0.0.1", port)
        self.rep.check(closed_by_peer(extra, 3.0 * SCALE),
                       "--max-connections-per-address %d: connection %d from 127.0.0.1 "
                       "(a session and %d logging in) is closed at accept" %
                       (PER_ADDRESS, PER_ADDRESS + 1, PER_ADDRESS - 1))
        extra.close()
        self.rep.check(all(still_open(h) for h in held),
                       "the %d connections before it stay open" % (PER_ADDRESS - 1))
        status, _d, _s = good.scsi(b"\0" * 6)
        self.rep.check(status == 0, "the session from 127.0.0.1 still works", "status 0x%02x" % status)
        others = [raw_from("127.0.0.2", port) for _ in range(HALF_OPEN - len(held))]
        time.sleep(0.2)
        self.rep.check(all(still_open(o) for o in others),
                       "%d connections from 127.0.0.2 are taken (another address)" % len(others))
        third = raw_from("127.0.0.3", port)
        self.rep.check(closed_by_peer(third, 3.0 * SCALE),
                       "--max-half-open %d: one more login-phase connection, from 127.0.0.3, "
                       "is closed at accept" % HALF_OPEN)
        third.close()
        self.rep.check(all(still_open(h) for h in held + others),
                       "the %d half-open connections already there stay open" % HALF_OPEN)
        held[0].close()
        time.sleep(0.3)
        again = raw_from("127.0.0.3", port)
        self.rep.check(still_open(again, 0.5), "a place freed by a close is taken again")
        for c in held[1:] + others + [again]:
            c.close()
        self.rep.check(good.logout() == 0, "the session from 127.0.0.1 logs out")
        good.close()
        time.sleep(0.3)

    def check_login_limits(self):
        port = self.daemon.port
        extra = [("X-org.spt.limit-%d" % i, "v") for i in range(LOGIN_KEYS - 19)]
        s = session_from("127.0.0.4", port, timeout=5.0 * SCALE)
        try:
            s.login(extra=extra)
            self.rep.ok("a login request of exactly --max-login-keys %d keys is served" % LOGIN_KEYS)
            s.logout()
        except (IscsiError, OSError) as e:
            self.rep.fail("a login request of exactly --max-login-keys %d keys is served (%s)" %
                          (LOGIN_KEYS, e))
        s.close()
        s = session_from("127.0.0.4", port, timeout=5.0 * SCALE)
        try:
            s.login(extra=extra + [("X-org.spt.limit-last", "v")])
            self.rep.fail("a login request of %d keys fails (it was accepted)" % (LOGIN_KEYS + 1))
        except LoginFailed as e:
            self.rep.check((e.status_class, e.status_detail) == (3, 2),
                           "a login request of %d keys fails with 0302, out of resources" %
                           (LOGIN_KEYS + 1), "status %02x%02x" % (e.status_class, e.status_detail))
        except (IscsiError, OSError) as e:
            self.rep.fail("a login request of %d keys fails with 0302 (%s)" % (LOGIN_KEYS + 1, e))
        s.close()
        # Text over C-bit continuations: 3 x 6000 bytes pass 16384 in the third.
        s = session_from("127.0.0.4", port, timeout=5.0 * SCALE)
        chunk = encode_keys([("InitiatorName", spt_iscsi.INITIATOR),
                             ("X-org.spt.pad", "a" * 5000)])
        chunk = chunk + b"b" * (6000 - len(chunk))
        statuses = []
        try:
            for i in range(3):
                s.conn.send_pdu(s.login_pdu(1, 3, False, chunk, cont=True, itt=0x77), chunk)
                rsp = s.conn.recv_pdu(5.0 * SCALE)
                statuses.append((rsp.opcode, rsp.hdr[36], rsp.hdr[37]))
                if rsp.hdr[36]:
                    break
        except (IscsiError, OSError) as e:
            statuses.append(str(e))
        want = [(OP_LOGIN_RSP, 0, 0), (OP_LOGIN_RSP, 0, 0), (OP_LOGIN_RSP, 3, 2)]
        self.rep.check(statuses == want, "login text of 18000 bytes over continued PDUs fails "
                       "with 0302 at the PDU that passes --max-login-text %d" % LOGIN_TEXT,
                       "got %r" % statuses)
        self.rep.check(closed_by_peer(s.conn.sock, 3.0 * SCALE),
                       "... and the target closes that connection")
        s.close()

    def check_window(self):
        s = self.login("127.0.0.5")
        exp, mx = nop_window(s)
        self.rep.check((mx - exp + 1) & 0xFFFFFFFF == PENDING,
                       "MaxCmdSN - ExpCmdSN + 1 is --max-pending-commands %d" % PENDING,
                       "ExpCmdSN %d MaxCmdSN %d" % (exp, mx))
        res = pipelined_reads(s, [(i * 8, 8) for i in range(PENDING)], 10.0 * SCALE)
        ok = all(st == 0 and d == self.content[i * 8 * BLOCK:(i + 1) * 8 * BLOCK]
                 for i, (st, d) in enumerate(res))
        self.rep.check(ok, "%d reads in flight at once (a full window) complete and verify" %
                       PENDING)
        exp, mx = nop_window(s)
        self.rep.check((mx - exp + 1) & 0xFFFFFFFF == PENDING,
                       "the window is whole again once they are answered",
                       "ExpCmdSN %d MaxCmdSN %d" % (exp, mx))
        s.logout()
        s.close()

    def check_buffer_budget(self):
        s = self.login("127.0.0.6")
        blocks = (BUFFER_MIB << 20) // BLOCK
        cmds = [(i * blocks, blocks) for i in range(3)]
        try:
            res = pipelined_reads(s, cmds, 20.0 * SCALE)
        except (IscsiError, OSError) as e:
            self.rep.fail("three 8 MiB reads at once (%s)" % e)
            s.close()
            return
        statuses = [st for st, _d in res]
        self.rep.check(statuses == [0x00, 0x28, 0x28],
                       "--max-session-buffer-mib %d: with one 8 MiB read held, two more get "
                       "TASK SET FULL (0x28)" % BUFFER_MIB, "statuses %r" % statuses)
        lba, n = cmds[0]
        self.rep.check(res[0][1] == self.content[lba * BLOCK:(lba + n) * BLOCK],
                       "the read that fit returns the right 8 MiB")
        ok = True
        for lba, n in cmds[1:]:
            st, d = pipelined_reads(s, [(lba, n)], 20.0 * SCALE)[0]
            ok = ok and st == 0 and d == self.content[lba * BLOCK:(lba + n) * BLOCK]
        self.rep.check(ok, "each refused read, retried alone, succeeds and verifies")
        s.logout()
        s.close()

    def check_pdu_timeout(self):
        slow = self.login("127.0.0.7")
        idle = self.login("127.0.0.8")
        hdr = bhs(OP_NOP_OUT, 0x80, itt=0x4242, f20=RESERVED_TAG, f24=slow.cmdsn,
                  f28=slow.expstatsn, immediate=True)
        t0 = time.time()
        slow.conn.send_raw(hdr[:20])
        closed = closed_by_peer(slow.conn.sock, PDU_TIMEOUT + 5.0 * SCALE)
        took = time.time() - t0
        self.rep.check(closed and PDU_TIMEOUT - 0.5 <= took <= PDU_TIMEOUT + 3.0 * SCALE,
                       "a half-sent header in full feature phase is dropped after --pdu-timeout "
                       "%ds" % PDU_TIMEOUT, "closed %s after %.1fs" % (closed, took))
        slow.close()
        try:
            idle.nop(b"still here")
            self.rep.ok("an idle session (no PDU begun) is not dropped by --pdu-timeout")
            idle.logout()
        except (IscsiError, OSError) as e:
            self.rep.fail("an idle session is not dropped by --pdu-timeout (%s)" % e)
        idle.close()

    # RFC 7143 7.8 on a connection with CRC32C header and data digests.
    def digest_login(self, src):
        sock = raw_from(src, self.daemon.port, 5.0 * SCALE)
        keys = encode_keys([
            ("InitiatorName", spt_iscsi.INITIATOR), ("TargetName", TARGET),
            ("SessionType", "Normal"), ("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C"),
            ("ErrorRecoveryLevel", "0"), ("MaxRecvDataSegmentLength", "65536")])
        isid = b"\x80" + os.urandom(5)
        hdr = bhs(OP_LOGIN_REQ, 0x87, 0, 0, 0, len(keys), isid + b"\0\0", 0x10, 0, 1, 0,
                  immediate=True)
        sock.sendall(hdr + keys + b"\0" * pad4(len(keys)))
        conn = Connection.__new__(Connection)
        conn.sock, conn.timeout = sock, 5.0 * SCALE
        rsp = conn.recv_pdu()
        keys = spt_iscsi.decode_keys(rsp.data)
        if rsp.opcode != OP_LOGIN_RSP or rsp.hdr[36] != 0 or not rsp.flags & 0x80 or \
                keys.get("HeaderDigest") != "CRC32C" or keys.get("DataDigest") != "CRC32C":
            raise IscsiError("digest login answered %r %r" % (rsp, keys))
        return conn, rsp.u32(24) + 1

    def check_digests(self):
        try:
            conn, statsn = self.digest_login("127.0.0.9")
        except (IscsiError, OSError) as e:
            self.rep.fail("a login with CRC32C header and data digests (%s)" % e)
            return
        payload = b"digest!!"
        hdr = bhs(OP_NOP_OUT, 0x80, dsl=len(payload), itt=0x51, f20=RESERVED_TAG, f24=1,
                  f28=statsn, immediate=True)
        conn.sock.sendall(hdr + digest(hdr) + payload + struct.pack("<I", crc32c(payload) ^ 1))
        verdict = None
        try:
            head = conn.recv_exact(BHS_LEN + 4)
            dsl = struct.unpack(">I", b"\0" + head[5:8])[0]
            body = conn.recv_exact(dsl + pad4(dsl) + 4) if dsl else b""
            hd_ok = head[48:52] == digest(head[:48])
            dd_ok = not dsl or body[-4:] == digest(body[:-4])
            verdict = (head[0] & 0x3F, head[2], hd_ok, dd_ok, body[16:20] if dsl else b"")
        except (IscsiError, OSError) as e:
            verdict = str(e)
        want = (OP_REJECT, 0x02, True, True, struct.pack(">I", 0x51))
        self.rep.check(verdict == want, "RFC 7143 7.8: a data digest error is answered with a "
                       "Reject 0x02 carrying the header, with good digests", "got %r" % (verdict,))
        self.rep.check(closed_by_peer(conn.sock, 3.0 * SCALE),
                       "ErrorRecoveryLevel 0: the connection then closes (session recovery)")
        conn.close()
        try:
            conn, statsn = self.digest_login("127.0.0.9")
        except (IscsiError, OSError) as e:
            self.rep.fail("a second login with digests (%s)" % e)
            return
        hdr = bhs(OP_NOP_OUT, 0x80, itt=0x52, f20=RESERVED_TAG, f24=1, f28=statsn, immediate=True)
        conn.sock.sendall(hdr + struct.pack("<I", crc32c(hdr) ^ 0x100))
        t0 = time.time()
        try:
            conn.sock.settimeout(3.0 * SCALE)
            got = conn.sock.recv(4096)
            verdict = "closed" if got == b"" else "answered %r" % got[:8]
        except socket.timeout:
            verdict = "nothing within %.0fs" % (time.time() - t0)
        except OSError:
            verdict = "closed"
        self.rep.check(verdict == "closed", "RFC 7143 7.8: a header digest error closes the "
                       "connection without an answer", verdict)
        conn.close()
        time.sleep(0.3)
        log = self.daemon.log()
        self.rep.check("data digest error on NOP-Out (session" in log and
                       "0 header, 1 data digest errors" in log,
                       "the data digest error is counted in the daemon's log")
        self.rep.check("header digest error on NOP-Out (session" in log and
                       "1 header, 0 data digest errors" in log,
                       "the header digest error is counted in the daemon's log")

    def run(self):
        if not self.daemon.start():
            return
        for check in (self.check_connections, self.check_login_limits, self.check_window,
                      self.check_buffer_budget, self.check_pdu_timeout, self.check_digests):
            if not self.daemon.alive():
                self.rep.fail("%s: not run, the daemon is gone" % check.__name__)
                continue
            try:
                check()
            except (IscsiError, OSError) as e:
                self.rep.fail("%s raised %s: %s" % (check.__name__, type(e).__name__, e))
        self.daemon.stop()


# --- Part 2: hostile load ---------------------------------------------------------------

def hostile_login_hdr(dsl, flags=0x87, ahs_words=0, itt=0x77):
    return bhs(OP_LOGIN_REQ, flags, 0, 0, ahs_words, dsl, b"\x80\x01\x02\x03\x04\x05\0\0", itt,
               0, 1, 0, immediate=True)


def hostile_worker(idx, port, seconds, result_q):
    """One hostile process: keeps SLOW_PER_PROC half-sent headers open and
    sends every kind of malformed traffic in turn until the time is up."""
    rnd = random.Random(idx)
    src = HOSTILE_ADDRS[idx % len(HOSTILE_ADDRS)]
    deadline = time.time() + seconds
    slow = []
    counts = {"connections": 0, "max_open": 0, "refused_or_closed": 0}

    def connect():
        counts["connections"] += 1
        return raw_from(src, port, 2.0)

    def send(sock, data):
        try:
            sock.sendall(data)
        except OSError:
            pass

    def drain_close(sock, wait=0.5):
        if closed_by_peer(sock, wait):
            counts["refused_or_closed"] += 1
        sock.close()

    def random_bytes():
        sock = connect()
        junk = bytearray(os.urandom(4096))
        junk[0] = 0x1C
        send(sock, bytes(junk))
        drain_close(sock)

    def truncated():
        sock = connect()
        send(sock, hostile_login_hdr(64)[:rnd.randint(1, 47)])
        sock.close()

    def oversized():
        sock = connect()
        send(sock, hostile_login_hdr(0xFFFFFF, ahs_words=255) + os.urandom(65536))
        drain_close(sock)

    def bad_opcode():
        sock = connect()
        op = rnd.choice([0x1B, OP_SCSI_CMD, OP_NOP_OUT, OP_TEXT_REQ, 0x3F, OP_SCSI_RSP])
        send(sock, bhs(op, 0x80, itt=5, f20=4096, immediate=True))
        drain_close(sock)

    def many_keys():
        sock = connect()
        blob = encode_keys([("InitiatorName", "iqn.2026-11.org.spt:hostile"),
                            ("TargetName", TARGET)] +
                           [("X-org.spt.hostile-%d" % i, "v%d" % i) for i in range(4000)])
        conn = Connection.__new__(Connection)
        conn.sock, conn.timeout = sock, 2.0
        try:
            for i in range(0, len(blob), 8000):
                part = blob[i:i + 8000]
                last = i + 8000 >= len(blob)
                send(sock, hostile_login_hdr(len(part), flags=0x87 if last else 0x47) + part +
                     b"\0" * pad4(len(part)))
                rsp = conn.recv_pdu(2.0)
                if rsp.opcode != OP_LOGIN_RSP or rsp.hdr[36] != 0:
                    break
        except (IscsiError, OSError):
            pass
        sock.close()

    def huge_dsl():
        sock = connect()
        send(sock, bhs(OP_NOP_OUT, 0x80, dsl=0xFFFFFF, itt=1, f20=RESERVED_TAG, immediate=True) +
             os.urandom(32768))
        drain_close(sock)

    def ffp_half_header():
        try:
            s = session_from(src, port, initiator="iqn.2026-11.org.spt:hostile-%d" % idx,
                             timeout=3.0)
            s.login()
            s.conn.send_raw(bhs(OP_NOP_OUT, 0x80, itt=9, f20=RESERVED_TAG, f24=s.cmdsn,
                                immediate=True)[:30])
            slow.append(s.conn.sock)
        except (IscsiError, OSError):
            pass

    actions = [random_bytes, truncated, oversized, bad_opcode, many_keys, huge_dsl]
    while time.time() < deadline:
        # keep the slow ones topped up; the daemon drops them at its timeouts
        for sock in list(slow):
            r, _w, _x = select.select([sock], [], [], 0)
            if r:
                try:
                    gone = sock.recv(4096) == b""
                except OSError:
                    gone = True
                if gone:
                    slow.remove(sock)
                    sock.close()
        while len(slow) < SLOW_PER_PROC:
            try:
                sock = connect()
                send(sock, hostile_login_hdr(64)[:30])
                slow.append(sock)
            except OSError:
                break
        counts["max_open"] = max(counts["max_open"], len(slow) + 1)
        try:
            if rnd.random() < 0.03:
                ffp_half_header()
            else:
                rnd.choice(actions)()
        except OSError:
            pass
        time.sleep(0.01)
    for sock in slow:
        sock.close()
    result_q.put(counts)


class HostileTest:
    def __init__(self, rep, work):
        self.rep = rep
        self.work = work
        self.img = os.path.join(work, "hostile.img")
        rnd = random.Random(7143)
        self.content = bytes(rnd.getrandbits(8) for _ in range(1 << 16)) * (CONTENT >> 16)
        with open(self.img, "wb") as f:
            f.write(self.content)
            f.truncate(LUN2_SIZE)
        self.daemon = Daemon(rep, work, [
            "--lun", "%s,size=%d" % (self.img, LUN2_SIZE),
            "--login-timeout", str(3 * SCALE), "--pdu-timeout", str(3 * SCALE),
            "--log-level", "warn"], target=TARGET)
        self.rss_max = 0
        self.rss_stop = threading.Event()

    def sample_rss(self):
        while not self.rss_stop.is_set():
            self.rss_max = max(self.rss_max, vm_rss(self.daemon.proc.pid))
            self.rss_stop.wait(0.25)

    def good_round(self, s, n, stats):
        """One round of good I/O; returns the slowest command or batch in seconds."""
        worst = 0.0
        rnd = random.Random(n)
        # a WRITE of 64 KiB and its READ back
        payload = os.urandom(65536)
        lba = SCRATCH_LBA + (n % 256) * (len(payload) // BLOCK)
        t0 = time.time()
        status, _d, sense = s.scsi(struct.pack(">BBIBHB", 0x2A, 0, lba, 0, len(payload) // BLOCK, 0),
                                   write=payload)
        worst = max(worst, time.time() - t0)
        if status != 0:
            raise IscsiError("WRITE(10) status 0x%02x sense %s" % (status, sense.hex()))
        t0 = time.time()
        status, data, _s = s.scsi(cdb_read10(lba, len(payload) // BLOCK), read_len=len(payload))
        worst = max(worst, time.time() - t0)
        if status != 0 or data != payload:
            raise IscsiError("READ(10) after WRITE(10): status 0x%02x, data %s" %
                             (status, "matches" if data == payload else "differs"))
        stats["commands"] += 2
        # QD 32 x 4 KiB and QD 8 x 1 MiB of known data
        for qd, blocks in ((32, 8), (8, 2048)):
            lbas = [rnd.randrange(0, CONTENT // BLOCK - blocks) for _ in range(qd)]
            t0 = time.time()
            res = pipelined_reads(s, [(x, blocks) for x in lbas], STALL_MAX + 5)
            worst = max(worst, time.time() - t0)
            for x, (st, d) in zip(lbas, res):
                if st == 0x28:
                    stats["task_set_full"] += 1
                if st != 0 or d != self.content[x * BLOCK:(x + blocks) * BLOCK]:
                    raise IscsiError("QD %d read of LBA %d: status 0x%02x, data %s" %
                                     (qd, x, st, "matches" if d == self.content[
                                         x * BLOCK:(x + blocks) * BLOCK] else "differs"))
            stats["commands"] += qd
        return worst

    def run(self):
        if SAN:
            # ASan's quarantine holds freed memory back for reuse checks; keep it
            # small so VmRSS shows what the daemon itself holds
            os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + \
                ":quarantine_size_mb=16:thread_local_quarantine_size_kb=256"
        if not self.daemon.start():
            return
        try:
            good = session_from(GOOD_ADDR, self.daemon.port, timeout=STALL_MAX + 5)
            good.login()
            good.scsi_retry_ua(b"\0" * 6)
            exp, mx = nop_window(good)
            self.rep.check((mx - exp + 1) & 0xFFFFFFFF == 128,
                           "by default the window is 128 commands (--max-pending-commands)",
                           "ExpCmdSN %d MaxCmdSN %d" % (exp, mx))
        except (IscsiError, OSError) as e:
            self.rep.fail("the good session logs in (%s)" % e)
            self.daemon.stop()
            return
        stats = {"commands": 0, "task_set_full": 0, "rounds": 0}
        worst = self.good_round(good, 0, stats)
        rss_before = vm_rss(self.daemon.proc.pid)
        sampler = threading.Thread(target=self.sample_rss, daemon=True)
        sampler.start()
        ctx = multiprocessing.get_context("fork")
        result_q = ctx.Queue()
        procs = [ctx.Process(target=hostile_worker,
                             args=(i, self.daemon.port, HOSTILE_SECONDS, result_q), daemon=True)
                 for i in range(HOSTILE_PROCS)]
        for p in procs:
            p.start()
        t_end = time.time() + HOSTILE_SECONDS
        error = None
        n = 1
        while time.time() < t_end and error is None:
            try:
                worst = max(worst, self.good_round(good, n, stats))
                stats["rounds"] += 1
            except (IscsiError, OSError) as e:
                error = "%s: %s" % (type(e).__name__, e)
            n += 1
        results = []
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        while not result_q.empty():
            results.append(result_q.get())
        hostile_conns = sum(r["connections"] for r in results)
        held = sum(r["max_open"] for r in results)
        self.rep.check(len(results) == HOSTILE_PROCS and held >= 50,
                       "%d hostile processes from %d addresses opened %d connections, about "
                       "%d held open at once" % (HOSTILE_PROCS, len(HOSTILE_ADDRS), hostile_conns,
                                                 held), "%d reported" % len(results))
        self.rep.check(self.daemon.alive(), "the daemon lives through %ds of hostile load" %
                       HOSTILE_SECONDS)
        self.rep.check(error is None, "the good session's %d commands in %d rounds all "
                       "completed and verified under hostile load" %
                       (stats["commands"], stats["rounds"]), error or "")
        self.rep.check(stats["rounds"] >= 3, "the good session kept working (%d rounds)" %
                       stats["rounds"])
        self.rep.check(worst < STALL_MAX, "no good command or batch took more than %.0fs "
                       "(slowest %.2fs)" % (STALL_MAX, worst), "slowest %.2fs" % worst)
        self.rep.check(stats["task_set_full"] == 0, "QD 32 x 4 KiB and QD 8 x 1 MiB never meet "
                       "--max-session-buffer-mib", "%d TASK SET FULL" % stats["task_set_full"])
        # the daemon drops what the hostile processes left behind at its timeouts
        time.sleep(3 * SCALE + 2)
        try:
            worst_after = self.good_round(good, n, stats)
            self.rep.check(worst_after < STALL_MAX, "the good session still works afterwards")
        except (IscsiError, OSError) as e:
            self.rep.fail("the good session still works afterwards (%s)" % e)
        self.rss_stop.set()
        sampler.join()
        rss_after = vm_rss(self.daemon.proc.pid)
        self.rep.check(self.rss_max < RSS_MAX,
                       "VmRSS stays below %d MiB under load (peak %.1f MiB, %.1f MiB before)" %
                       (RSS_MAX >> 20, self.rss_max / 1048576.0, rss_before / 1048576.0))
        self.rep.check(0 < rss_after < RSS_MAX,
                       "VmRSS below %d MiB afterwards (%.1f MiB)" % (RSS_MAX >> 20,
                                                                       rss_after / 1048576.0))
        try:
            self.rep.check(good.logout() == 0, "the good session logs out")
        except (IscsiError, OSError) as e:
            self.rep.fail("the good session logs out (%s)" % e)
        good.close()
        self.daemon.stop()


def main():
    # tests/run.sh ends a test that overruns with SIGTERM: clean up on it too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rep = Reporter("limits")
    work = make_workdir("limits")
    tests = []
    try:
        for cls in (LimitsTest, HostileTest):
            sub = os.path.join(work, cls.__name__)
            os.mkdir(sub)
            t = cls(rep, sub)
            tests.append(t)
            t.run()
    finally:
        for t in tests:
            t.daemon.kill()
        if os.environ.get("SPT_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
