#!/usr/bin/env python3
"""Malformed iSCSI traffic must never crash the daemon nor disturb others.

A good session (our own raw initiator: login, TEST UNIT READY, READ(10) of
known data, WRITE(10)/READ(10) round trips, NOP-Out pings) stays logged in
for the whole test; after every bad case it must still work and the daemon
must still run. Each bad case runs on a connection of its own and must end
in a login failure status, a Reject, or a closed connection (RFC 7143 7.9,
11.17, 11.13.5) within a few seconds: never an accepted login, never
silence. Python 3 standard library only.
"""

import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spt_iscsi import (  # noqa: E402
    BHS_LEN, CDB_TEST_UNIT_READY, OP_LOGIN_REQ, OP_LOGIN_RSP, OP_NOP_IN, OP_NOP_OUT,
    OP_REJECT, OP_SCSI_CMD, OP_TEXT_REQ, OP_TEXT_RSP, OP_DATA_OUT, RESERVED_TAG,
    Connection, Daemon, IscsiError, LoginFailed, Reporter, Session, bhs, cdb_read10,
    cdb_read_capacity10, cdb_write10, encode_keys, encode_lun, lun_base, make_workdir,
    timeout_scale)

TARGET = "iqn.2026-11.org.spt:target0"
BAD_INITIATOR = "iqn.2026-11.org.spt:badinput"
LUN_SIZE = 16 * 1024 * 1024
CONTENT_SIZE = 1024 * 1024
# Bad cases must be answered within ANSWER_WAIT seconds; the daemon's login
# timeout is twice that, so a close by the login timer never passes for an
# answer.
ANSWER_WAIT = 3 * timeout_scale()
LOGIN_TIMEOUT = 2 * ANSWER_WAIT
SCRATCH_LBA = 8192  # 4 MiB into the LUN at 512-byte blocks: never holds CONTENT


class BadInputTest:
    def __init__(self):
        self.rep = Reporter("badinput")
        self.work = make_workdir("badinput")
        self.img = os.path.join(self.work, "lun.img")
        rnd = random.Random(7143)
        self.content = bytes(rnd.getrandbits(8) for _ in range(CONTENT_SIZE))
        with open(self.img, "wb") as f:
            f.write(self.content)
            f.truncate(LUN_SIZE)
        # A short login timeout so that the idle half-login is seen to be dropped.
        self.daemon = Daemon(self.rep, self.work, ["--lun", "%s,size=%d" % (self.img, LUN_SIZE),
                                                   "--login-timeout", str(LOGIN_TIMEOUT)],
                             target=TARGET)
        self.lun = lun_base()
        self.good = None
        self.block = 512
        self.op_count = 0
        self.wait = float(ANSWER_WAIT)
        self.idle = []

    # --- the good session -------------------------------------------------
    def good_login(self):
        s = Session("127.0.0.1", self.daemon.port, TARGET, timeout=10.0 * timeout_scale())
        s.login()
        status, _data, _sense = s.scsi_retry_ua(CDB_TEST_UNIT_READY, lun=self.lun)
        if status != 0:
            raise IscsiError("TEST UNIT READY status 0x%02x" % status)
        status, data, _sense = s.scsi_retry_ua(cdb_read_capacity10(), lun=self.lun, read_len=8)
        if status != 0 or len(data) != 8:
            raise IscsiError("READ CAPACITY(10) status 0x%02x, %d bytes" % (status, len(data)))
        self.block = struct.unpack(">I", data[4:8])[0]
        return s

    def good_ops(self, s):
        """TUR, NOP, a READ of known data, a WRITE+READ round trip."""
        self.op_count += 1
        n = self.op_count
        status, _d, sense = s.scsi(CDB_TEST_UNIT_READY, lun=self.lun)
        if status != 0:
            raise IscsiError("TEST UNIT READY status 0x%02x sense %s" % (status, sense.hex()))
        s.nop(b"ping %d" % n)
        blocks = 4096 // self.block
        lba = (n * 37 * blocks) % (CONTENT_SIZE // self.block - blocks)
        status, data, sense = s.scsi(cdb_read10(lba, blocks), lun=self.lun, read_len=4096)
        want = self.content[lba * self.block:lba * self.block + 4096]
        if status != 0 or data != want:
            raise IscsiError("READ(10) of LBA %d: status 0x%02x, data %s" %
                             (lba, status, "matches" if data == want else "differs"))
        payload = bytes([n & 0xFF]) * 8192 + os.urandom(8192)
        wlba = SCRATCH_LBA * 512 // self.block + (n % 64) * (len(payload) // self.block)
        wblocks = len(payload) // self.block
        status, _d, sense = s.scsi(cdb_write10(wlba, wblocks), lun=self.lun, write=payload)
        if status != 0:
            raise IscsiError("WRITE(10) status 0x%02x sense %s" % (status, sense.hex()))
        status, data, sense = s.scsi(cdb_read10(wlba, wblocks), lun=self.lun,
                                     read_len=len(payload))
        if status != 0 or data != payload:
            raise IscsiError("READ(10) after WRITE(10): status 0x%02x, data %s" %
                             (status, "matches" if data == payload else "differs"))

    def after(self, case):
        """The checks that follow every bad case."""
        alive = self.daemon.alive()
        self.rep.check(alive, "daemon alive after: %s" % case)
        if not alive:
            self.daemon.show_log(60)
            return False
        try:
            self.good_ops(self.good)
            self.rep.ok("good session still works after: %s" % case)
        except (IscsiError, OSError) as e:
            self.rep.fail("good session still works after: %s (%s)" % (case, e))
            try:
                self.good.close()
                self.good = self.good_login()
            except (IscsiError, OSError) as e2:
                self.rep.fail("a new good session can log in after: %s (%s)" % (case, e2))
                return False
        return True

    # --- outcome of a bad case --------------------------------------------
    def judge(self, case, conn, allow_login_ok=False, allow=()):
        """Expect a login failure, a Reject or a close within self.wait."""
        kind, pdu = conn.outcome(self.wait)
        verdict = None
        if kind == "closed":
            verdict = "connection closed"
        elif kind == "timeout":
            verdict = None
            detail = "no answer and connection still open after %.0fs" % self.wait
        elif pdu.opcode == OP_REJECT:
            verdict = "Reject reason 0x%02x" % pdu.b2
        elif pdu.opcode == OP_LOGIN_RSP and pdu.hdr[36] != 0:
            verdict = "login failed, status 0x%02x%02x" % (pdu.hdr[36], pdu.hdr[37])
        elif pdu.opcode == OP_LOGIN_RSP and allow_login_ok:
            verdict = "login answered with status 0"
        elif pdu.opcode in allow:
            verdict = "answered with opcode 0x%02x" % pdu.opcode
        else:
            detail = "unexpected answer %r" % pdu
            if pdu.opcode == OP_LOGIN_RSP:
                detail = "the target accepted it (login status 0)"
        conn.close()
        if verdict:
            self.rep.ok("%s: %s" % (case, verdict))
        else:
            self.rep.fail("%s: expected a login failure, a Reject or a close (%s)" % (case, detail))
        return verdict

    def connect(self):
        return Connection("127.0.0.1", self.daemon.port, timeout=self.wait)

    def send_ignoring_close(self, conn, data):
        """Send; a target that closes on us first is a fine outcome."""
        try:
            conn.send_raw(data)
        except OSError:
            pass

    def login_hdr(self, data_len, flags=0x87, vmax=0, vmin=0, isid=b"\x80\x01\x02\x03\x04\x05",
                  ahs_words=0):
        # Login: T=1, CSG=1 (operational), NSG=3 (full feature) unless told otherwise.
        return bhs(OP_LOGIN_REQ, flags, vmax, vmin, ahs_words, data_len,
                   isid + b"\0\0", 0x77, 0, 1, 0, immediate=True)

    def login_keys(self, extra=()):
        return encode_keys([("InitiatorName", BAD_INITIATOR), ("TargetName", TARGET),
                            ("SessionType", "Normal")] + list(extra))

    def padded(self, data):
        return data + b"\0" * ((4 - len(data) % 4) % 4)

    # --- the cases ----------------------------------------------------------
    def case_random_bytes(self):
        rnd = random.Random(3720)
        for i in range(3):
            junk = bytearray(rnd.getrandbits(8) for _ in range(4096))
            junk[0] = 0x1C + i  # an unassigned opcode, so no real PDU is implied
            c = self.connect()
            self.send_ignoring_close(c, bytes(junk))
            self.judge("4 KiB of random bytes (seed %d)" % i, c)
        self.after("random bytes")

    def case_truncated_bhs(self):
        c = self.connect()
        data = self.login_keys()
        c.send_raw(self.login_hdr(len(data))[:20])
        c.close()
        self.rep.ok("a truncated BHS then close was sent")
        self.after("truncated BHS then close")

    def case_huge_dsl(self):
        c = self.connect()
        self.send_ignoring_close(c, self.login_hdr(0xFFFFFF))
        self.judge("login BHS with DataSegmentLength 16 MiB - 1", c)
        c = self.connect()
        self.send_ignoring_close(c, bhs(OP_NOP_OUT, 0x80, dsl=0xFFFFFF, itt=1,
                                        f20=RESERVED_TAG, immediate=True))
        self.judge("NOP-Out BHS with DataSegmentLength 16 MiB - 1 before login", c)
        self.after("absurd DataSegmentLength")

    def case_huge_ahs(self):
        c = self.connect()
        data = self.login_keys()
        # TotalAHSLength 255 words (1020 bytes): a Login Request has no AHS.
        self.send_ignoring_close(c, self.login_hdr(len(data), ahs_words=255) +
                                 b"\xee" * 1020 + self.padded(data))
        # No AHS is defined for a Login Request; a target may ignore it.
        self.judge("login BHS with TotalAHSLength 255", c, allow_login_ok=True)
        c = self.connect()
        self.send_ignoring_close(c, self.login_hdr(0xFFFFFF, ahs_words=255))
        self.judge("login BHS with TotalAHSLength 255 and DataSegmentLength 16 MiB - 1", c)
        self.after("absurd TotalAHSLength")

    def case_unknown_opcode(self):
        c = self.connect()
        self.send_ignoring_close(c, bhs(0x1B, 0x80, itt=5, immediate=True))
        self.judge("unknown opcode 0x1b before login", c)
        self.after("unknown opcode before login")

    def case_scsi_before_login(self):
        c = self.connect()
        hdr = bhs(OP_SCSI_CMD, 0xC1, lun8=encode_lun(0), itt=9, f20=4096, f24=1)
        hdr = hdr[:32] + cdb_read10(0, 8) + b"\0" * 6
        self.send_ignoring_close(c, hdr)
        self.judge("SCSI READ(10) before login", c)
        self.after("SCSI command before login")

    def login_exchange(self, conn, chunks):
        """Send login PDUs carrying CHUNKS (C bit on all but the last), fetch
        any continued answer; returns the final response PDU."""
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            flags = (0x87 if last else 0x47)  # last: T=1; others: C=1, T=0
            conn.send_pdu(self.login_hdr(len(chunk), flags=flags), chunk)
            rsp = conn.recv_pdu(self.wait)
            if rsp.opcode != OP_LOGIN_RSP or rsp.hdr[36] != 0 or last:
                break
        rounds = 0
        while rsp.opcode == OP_LOGIN_RSP and rsp.hdr[36] == 0 and rsp.flags & 0x40 and rounds < 64:
            # RFC 7143 6.1: the target continues its text; answer with empty PDUs.
            conn.send_pdu(self.login_hdr(0, flags=0x07))
            rsp = conn.recv_pdu(self.wait)
            rounds += 1
        return rsp

    def judge_login(self, case, chunks, allow_login_ok):
        c = self.connect()
        try:
            rsp = self.login_exchange(c, chunks)
        except (IscsiError, OSError) as e:
            # Closed or silent: let judge() tell which.
            self.judge(case, c, allow_login_ok=allow_login_ok)
            return
        if rsp.opcode == OP_REJECT:
            self.rep.ok("%s: Reject reason 0x%02x" % (case, rsp.b2))
        elif rsp.opcode == OP_LOGIN_RSP and rsp.hdr[36] != 0:
            self.rep.ok("%s: login failed, status 0x%02x%02x" % (case, rsp.hdr[36], rsp.hdr[37]))
        elif rsp.opcode == OP_LOGIN_RSP and allow_login_ok:
            self.rep.ok("%s: answered with login status 0" % case)
        else:
            self.rep.fail("%s: expected a login failure, a Reject or a close (got %r)" %
                          (case, rsp))
        c.close()

    def case_many_keys(self):
        extra = [("X-org.spt.test-%d" % i, "v%d" % i) for i in range(4000)]
        blob = self.login_keys(extra)
        chunks = [blob[i:i + 8000] for i in range(0, len(blob), 8000)]
        # Unknown X- keys are legal (answered NotUnderstood or ignored), so a
        # successful login is fine as long as the target survives the volume.
        self.judge_login("login with 4000 private keys over %d continued PDUs" % len(chunks),
                         chunks, allow_login_ok=True)
        dup = encode_keys([("InitiatorName", BAD_INITIATOR), ("TargetName", TARGET)] +
                          [("MaxRecvDataSegmentLength", "8192")] * 250)
        # RFC 7143 6.1: a key must not be offered twice in one negotiation.
        self.judge_login("login offering the same key 250 times", [dup], allow_login_ok=False)
        self.after("logins with thousands of keys")

    def case_long_text(self):
        c = self.connect()
        data = self.login_keys([("X-org.spt.long", "a" * 70000)])
        self.send_ignoring_close(c, self.login_hdr(len(data)) + self.padded(data))
        self.judge("login PDU of %d bytes (MaxRecvDataSegmentLength is 8192)" % len(data), c)
        c = self.connect()
        data = encode_keys([("InitiatorName", "iqn.2026-11.org.spt:" + "n" * 300),
                            ("TargetName", TARGET), ("SessionType", "Normal")])
        self.send_ignoring_close(c, self.login_hdr(len(data)) + self.padded(data))
        self.judge("login with a 320-byte InitiatorName (limit 223)", c)
        self.after("oversized login text")

    def case_half_header_idle(self):
        c = self.connect()
        c.send_raw(self.login_hdr(64)[:30])
        self.idle.append(c)
        self.rep.ok("half a BHS sent, connection left idle")
        self.after("a half-sent header left idle")

    def case_bad_version(self):
        c = self.connect()
        data = self.login_keys()
        self.send_ignoring_close(c, self.login_hdr(len(data), vmax=0x05, vmin=0x03) +
                                 self.padded(data))
        # RFC 7143 11.13.4: only version 0x00 exists; status 0x0205 is expected.
        self.judge("login with Version-max 5, Version-min 3", c)
        self.after("bad version range")

    def case_no_equals(self):
        c = self.connect()
        data = self.login_keys() + b"ThisKeyHasNoValue\0"
        self.send_ignoring_close(c, self.login_hdr(len(data)) + self.padded(data))
        self.judge("login text with a key that has no '='", c)
        c = self.connect()
        data = b"\0\0\0=\0==\0"
        self.send_ignoring_close(c, self.login_hdr(len(data)) + self.padded(data))
        self.judge("login text of NULs and bare '='", c)
        c = self.connect()
        data = self.login_keys()[:-1] + b"xyz"  # last pair not NUL-terminated
        self.send_ignoring_close(c, self.login_hdr(len(data)) + self.padded(data))
        self.judge("login text whose last key=value has no NUL", c, allow_login_ok=True)
        self.after("malformed login text")

    def case_bad_csg(self):
        c = self.connect()
        data = self.login_keys()
        # CSG=2 is reserved (RFC 7143 11.12.3) and NSG 3 from it meaningless.
        self.send_ignoring_close(c, self.login_hdr(len(data), flags=0x8B) + self.padded(data))
        self.judge("login with the reserved stage CSG=2", c)
        c = self.connect()
        # T=1 together with C=1 is forbidden (RFC 7143 11.12.2).
        self.send_ignoring_close(c, self.login_hdr(len(data), flags=0xC7) + self.padded(data))
        self.judge("login with both T and C bits set", c)
        self.after("bad login stages")

    # After login: each on a session of its own that may be torn down.
    def fresh_session(self):
        s = Session("127.0.0.1", self.daemon.port, TARGET, initiator=BAD_INITIATOR,
                    timeout=self.wait)
        s.login()
        return s

    def judge_ffp(self, case, s, allow=()):
        kind, pdu = s.conn.outcome(self.wait)
        if kind == "closed":
            self.rep.ok("%s: connection closed" % case)
        elif kind == "timeout":
            self.rep.fail("%s: expected a Reject or a close (nothing within %.0fs)" %
                          (case, self.wait))
        elif pdu.opcode == OP_REJECT:
            self.rep.ok("%s: Reject reason 0x%02x" % (case, pdu.b2))
            # A Reject leaves the session usable (RFC 7143 7.9).
            try:
                s.nop()
                self.rep.ok("%s: session still answers NOP-Out after the Reject" % case)
            except (IscsiError, OSError) as e:
                self.rep.fail("%s: session still answers NOP-Out after the Reject (%s)" %
                              (case, e))
        elif pdu.opcode in allow:
            self.rep.ok("%s: answered with opcode 0x%02x" % (case, pdu.opcode))
        else:
            self.rep.fail("%s: expected a Reject or a close (got %r)" % (case, pdu))
        s.close()

    def case_after_login(self):
        try:
            s = self.fresh_session()
        except (IscsiError, OSError) as e:
            self.rep.fail("a second session logs in (%s)" % e)
            return
        s.conn.send_pdu(bhs(0x1B, 0x80, itt=0x4242, f24=s.cmdsn, f28=s.expstatsn,
                            immediate=True))
        self.judge_ffp("unknown opcode 0x1b in full feature phase", s)

        s = self.fresh_session()
        mrdsl = s.target_mrdsl
        big = mrdsl + 65536
        hdr = bhs(OP_SCSI_CMD, 0xA1, dsl=big, lun8=encode_lun(self.lun), itt=0x99, f20=big,
                  f24=s.cmdsn, f28=s.expstatsn)
        hdr = hdr[:32] + cdb_write10(SCRATCH_LBA, big // self.block) + b"\0" * 6
        self.send_ignoring_close(s.conn, hdr + b"\x5a" * big)
        self.judge_ffp("SCSI WRITE with immediate data of %d bytes over the target's "
                       "MaxRecvDataSegmentLength %d" % (big, mrdsl), s)

        s = self.fresh_session()
        s.conn.send_pdu(bhs(OP_DATA_OUT, 0x80, dsl=512, lun8=encode_lun(self.lun),
                            itt=0xDEAD, f20=0xBEEF, f28=s.expstatsn, f36=0, f40=0),
                        b"\0" * 512)
        # RFC 7143 11.7: Data-Out for no task; a Reject or a close, or (since
        # the stray data may simply be discarded) a session that still works.
        kind, pdu = s.conn.outcome(2.0 * timeout_scale())
        if kind == "timeout":
            try:
                s.nop()
                self.rep.ok("Data-Out for an unknown task: discarded, session works")
            except (IscsiError, OSError) as e:
                self.rep.fail("Data-Out for an unknown task: session works afterwards (%s)" % e)
            s.close()
        elif kind == "closed" or pdu.opcode == OP_REJECT:
            self.rep.ok("Data-Out for an unknown task: %s" %
                        ("connection closed" if kind == "closed" else "Reject"))
            s.close()
        else:
            self.rep.fail("Data-Out for an unknown task: unexpected %r" % pdu)
            s.close()

        s = self.fresh_session()
        self.send_ignoring_close(s.conn, bhs(OP_NOP_OUT, 0x80, dsl=0xFFFFFF, itt=0x31,
                                             f20=RESERVED_TAG, f24=s.cmdsn,
                                             f28=s.expstatsn, immediate=True))
        self.judge_ffp("NOP-Out with DataSegmentLength 16 MiB - 1 in full feature phase", s)

        s = self.fresh_session()
        data = b"NoEqualsSignHere\0"
        s.conn.send_pdu(bhs(OP_TEXT_REQ, 0x80, dsl=len(data), itt=0x51, f20=RESERVED_TAG,
                            f24=s.cmdsn, f28=s.expstatsn, immediate=True), data)
        # A Text Response that answers the bad key (Reject=...) is also correct.
        self.judge_ffp("Text Request with no '='", s, allow=(OP_TEXT_RSP,))

        s = self.fresh_session()
        hdr = bhs(OP_SCSI_CMD, 0xC1, lun8=encode_lun(self.lun), itt=0x61, f20=4096,
                  f24=s.cmdsn, f28=s.expstatsn, ahs_words=255)
        hdr = hdr[:32] + cdb_read10(0, 4096 // self.block) + b"\0" * 6
        self.send_ignoring_close(s.conn, hdr)
        time.sleep(0.2)
        self.send_ignoring_close(s.conn, b"\0" * 1020)
        # An AHS of 1020 zero bytes is a malformed AHS (length 0, type 0).
        self.judge_ffp("SCSI command with a 1020-byte AHS of zeroes", s, allow=(0x21, 0x25))
        self.after("malformed PDUs in full feature phase")

    def case_connection_churn(self):
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.daemon.port), timeout=5).close()
            except OSError:
                pass
        held = []
        for _ in range(64):
            try:
                held.append(socket.create_connection(("127.0.0.1", self.daemon.port),
                                                     timeout=5))
            except OSError:
                break
        self.rep.check(len(held) == 64, "64 idle connections accepted at once",
                       "%d accepted" % len(held))
        self.after("200 connects and closes, 64 idle connections")
        for h in held:
            h.close()

    def run(self):
        if not self.daemon.start():
            return self.rep.finish()
        try:
            self.good = self.good_login()
            self.rep.ok("good session logs in (block size %d)" % self.block)
            self.good_ops(self.good)
            self.rep.ok("good session: TUR, NOP-Out, READ(10) of known data, WRITE/READ")
        except (IscsiError, OSError) as e:
            self.rep.fail("good session logs in and works (%s)" % e)
            self.daemon.show_log()
            self.daemon.stop()
            return self.rep.finish()
        cases = [self.case_random_bytes, self.case_truncated_bhs, self.case_huge_dsl,
                 self.case_huge_ahs, self.case_unknown_opcode, self.case_scsi_before_login,
                 self.case_many_keys, self.case_long_text, self.case_half_header_idle,
                 self.case_bad_version, self.case_no_equals, self.case_bad_csg,
                 self.case_after_login, self.case_connection_churn]
        for case in cases:
            if not self.daemon.alive():
                self.rep.fail("%s: not run, the daemon is gone" % case.__name__)
                continue
            try:
                case()
            except (IscsiError, OSError) as e:
                self.rep.fail("%s raised %s: %s" % (case.__name__, type(e).__name__, e))
                self.after(case.__name__)
        for c in self.idle:
            kind, _pdu = c.outcome(LOGIN_TIMEOUT + self.wait)
            self.rep.check(kind == "closed", "the idle half-sent login is closed by the "
                           "--login-timeout of %ds" % LOGIN_TIMEOUT, "got %s" % kind)
            c.close()
        try:
            self.good.logout()
            self.rep.ok("good session logs out")
        except (IscsiError, OSError) as e:
            self.rep.fail("good session logs out (%s)" % e)
        self.good.close()
        if shutil.which("iscsi-inq") and self.daemon.alive():
            r = subprocess.run(["iscsi-inq", "-i", "iqn.2026-11.org.spt:test-initiator",
                                self.daemon.url(0)], capture_output=True, text=True,
                               timeout=30 * timeout_scale())
            self.rep.check(r.returncode == 0, "libiscsi iscsi-inq still works at the end",
                           r.stderr.strip()[:200])
        self.daemon.stop()
        return self.rep.finish()


def main():
    # tests/run.sh ends a test that overruns with SIGTERM: clean up on it too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t = BadInputTest()
    try:
        return t.run()
    finally:
        t.daemon.kill()
        if os.environ.get("SPT_KEEP_TMP") != "1":
            shutil.rmtree(t.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
