#!/usr/bin/env python3
"""Persistent reservations with APTPL=1 survive a daemon restart (SPC-4 APTPL).

Two initiators register through a file LUN with APTPL=1 and the first one
reserves it (Exclusive Access). The daemon is stopped with SIGTERM and
started again on the same file: READ KEYS, READ RESERVATION and READ FULL
STATUS show the same keys, generation, holder and type, the reservation is
enforced again, and a new session of the same initiator port (same name and
ISID) is recognised as the holder and can release it. A REGISTER with
APTPL=0 removes the state file ("<backing file>.pr"), and the next restart
starts without registrations. Raw CDBs over the harness's own initiator;
Python 3 standard library only.
"""

import os
import shutil
import signal
import struct
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spt_iscsi import (  # noqa: E402
    INITIATOR, Daemon, IscsiError, Reporter, Session, cdb_read10, cdb_write10, lun_base,
    make_workdir)

TARGET = "iqn.2026-11.org.spt:target0"
INITIATOR2 = "iqn.2026-11.org.spt:test-initiator-2"
INITIATOR3 = "iqn.2026-11.org.spt:test-initiator-3"
ISID1 = bytes.fromhex("0000000101")
ISID2 = bytes.fromhex("0000000202")
ISID3 = bytes.fromhex("0000000303")
LUN_SIZE = 16 * 1024 * 1024
BLOCK = 512

GOOD, CHECK, CONFLICT = 0x00, 0x02, 0x18
# SPC-4 6.15 / 6.16
READ_KEYS, READ_RESERVATION, REPORT_CAPABILITIES, READ_FULL_STATUS = 0, 1, 2, 3
REGISTER, RESERVE, RELEASE, REGISTER_AND_IGNORE = 0, 1, 2, 6
EXCLUSIVE_ACCESS = 3
APTPL = 0x01
KEY1 = 0x1111222233334444
KEY2 = 0x5555666677778888


def prin_cdb(sa, alloc=4096):
    return struct.pack(">BB5xHB", 0x5E, sa, alloc, 0)


def prout(session, sa, rk, sark, pr_type=0, flags=0, lun=0):
    plist = struct.pack(">QQ4xBx2x", rk, sark, flags)
    cdb = struct.pack(">BBB2xIB", 0x5F, sa, pr_type, len(plist), 0)
    status, _data, _sense = session.scsi_retry_ua(cdb, lun=lun, write=plist)
    return status


def isid_hex(isid):
    # the harness sends ISID type 80h (random) and the five bytes given
    return "80" + isid.hex()


class AptplTest:
    def __init__(self):
        self.rep = Reporter("pr_aptpl")
        self.work = make_workdir("pr-aptpl")
        self.img = os.path.join(self.work, "lun.img")
        with open(self.img, "wb") as f:
            f.truncate(LUN_SIZE)
        self.state = os.path.realpath(self.img) + ".pr"
        self.daemon = Daemon(self.rep, self.work,
                             ["--lun", "%s,size=%d" % (self.img, LUN_SIZE)], target=TARGET)
        self.lun = lun_base()
        self.sessions = []

    def session(self, initiator, isid):
        s = Session(self.daemon.host, self.daemon.port, TARGET, initiator=initiator, isid=isid)
        s.login()
        self.sessions.append(s)
        # a first command may meet a unit attention (power on, I_T nexus loss)
        s.scsi_retry_ua(bytes(6), lun=self.lun)
        return s

    def logout_all(self):
        for s in self.sessions:
            try:
                s.logout()
            except (IscsiError, OSError):
                pass
            s.close()
        self.sessions = []

    def prin(self, s, sa):
        status, data, sense = s.scsi_retry_ua(prin_cdb(sa), lun=self.lun, read_len=4096)
        if status != GOOD:
            raise IscsiError("PERSISTENT RESERVE IN 0x%x: status 0x%02x sense %s" %
                             (sa, status, sense.hex()))
        return data

    def keys(self, s):
        data = self.prin(s, READ_KEYS)
        gen, length = struct.unpack_from(">II", data)
        return gen, sorted(struct.unpack_from(">Q", data, 8 + 8 * i)[0]
                           for i in range(length // 8))

    def reservation(self, s):
        data = self.prin(s, READ_RESERVATION)
        gen, length = struct.unpack_from(">II", data)
        if length == 0:
            return gen, None, None
        key = struct.unpack_from(">Q", data, 8)[0]
        return gen, key, data[21] & 0x0F

    def full_status(self, s):
        """[(key, holder, transport id name)] from READ FULL STATUS."""
        data = self.prin(s, READ_FULL_STATUS)
        _gen, length = struct.unpack_from(">II", data)
        out, off = [], 8
        while off < 8 + length:
            key = struct.unpack_from(">Q", data, off)[0]
            holder = bool(data[off + 12] & 0x01)
            tlen = struct.unpack_from(">I", data, off + 20)[0]
            tid = data[off + 24:off + 24 + tlen]
            out.append((key, holder, tid[4:].split(b"\0")[0].decode()))
            off += 24 + tlen
        return sorted(out)

    def read(self, s):
        return s.scsi(cdb_read10(0, 1), lun=self.lun, read_len=BLOCK)[0]

    def write(self, s):
        return s.scsi(cdb_write10(0, 1), lun=self.lun, write=b"\xa5" * BLOCK)[0]

    def first_run(self):
        s1 = self.session(INITIATOR, ISID1)
        s2 = self.session(INITIATOR2, ISID2)
        caps = self.prin(s1, REPORT_CAPABILITIES)
        self.rep.check(caps[2] & 0x01, "REPORT CAPABILITIES: PTPL_C set for a file LUN")
        self.rep.check(prout(s1, REGISTER, 0, KEY1, flags=APTPL) == GOOD,
                       "REGISTER with APTPL=1 (initiator 1)")
        self.rep.check(os.path.exists(self.state), "the state file %s exists" % self.state)
        self.rep.check(prout(s2, REGISTER_AND_IGNORE, 0, KEY2, flags=APTPL) == GOOD,
                       "REGISTER AND IGNORE EXISTING KEY with APTPL=1 (initiator 2)")
        self.rep.check(prout(s1, RESERVE, KEY1, 0, EXCLUSIVE_ACCESS) == GOOD,
                       "RESERVE Exclusive Access (initiator 1)")
        caps = self.prin(s1, REPORT_CAPABILITIES)
        self.rep.check(caps[3] & 0x01, "REPORT CAPABILITIES: PTPL_A set")
        self.rep.check(self.read(s2) == CONFLICT, "initiator 2 READ: RESERVATION CONFLICT")
        before = (self.keys(s1), self.reservation(s1), self.full_status(s1))
        self.logout_all()
        return before

    def after_restart(self, before):
        (gen, keys), res, status = before
        s1 = self.session(INITIATOR, ISID1)
        s2 = self.session(INITIATOR2, ISID2)
        s3 = self.session(INITIATOR3, ISID3)
        self.rep.check(self.keys(s3) == (gen, keys), "READ KEYS after the restart: same "
                       "generation and keys", "%r vs %r" % (self.keys(s3), (gen, keys)))
        self.rep.check(self.reservation(s3) == res, "READ RESERVATION after the restart: "
                       "same holder key and type", "%r vs %r" % (self.reservation(s3), res))
        self.rep.check(res[1] == KEY1 and res[2] == EXCLUSIVE_ACCESS,
                       "the reservation is initiator 1's Exclusive Access")
        want = sorted([(KEY1, True, "%s,i,0x%s" % (INITIATOR, isid_hex(ISID1))),
                       (KEY2, False, "%s,i,0x%s" % (INITIATOR2, isid_hex(ISID2)))])
        got = self.full_status(s3)
        self.rep.check(got == status == want, "READ FULL STATUS after the restart: same "
                       "initiator ports and holder", "%r" % got)
        self.rep.check(self.read(s2) == CONFLICT,
                       "registered initiator 2 READ: still RESERVATION CONFLICT")
        self.rep.check(self.read(s3) == CONFLICT,
                       "unregistered initiator 3 READ: RESERVATION CONFLICT")
        self.rep.check(self.write(s1) == GOOD,
                       "a new session of initiator 1's port is the holder: WRITE GOOD")
        other = self.session(INITIATOR, bytes.fromhex("0000000999"))
        self.rep.check(prout(other, RELEASE, KEY1, 0, EXCLUSIVE_ACCESS) == CONFLICT,
                       "the same initiator name with another ISID is not registered")
        self.rep.check(prout(s1, RELEASE, KEY1, 0, EXCLUSIVE_ACCESS) == GOOD,
                       "the holder's new session releases the reservation")
        self.rep.check(self.reservation(s3)[1] is None, "READ RESERVATION: none")
        self.rep.check(self.read(s3) == GOOD, "initiator 3 READ after RELEASE: GOOD")
        self.rep.check(prout(s1, REGISTER, KEY1, KEY1 + 1) == GOOD,
                       "REGISTER with APTPL=0 (new key)")
        self.rep.check(not os.path.exists(self.state), "APTPL=0 removed the state file")
        self.logout_all()

    def after_second_restart(self):
        s = self.session(INITIATOR3, ISID3)
        gen, keys = self.keys(s)
        self.rep.check(keys == [] and gen == 0, "after APTPL=0 and a restart: no registrations,"
                       " generation 0", "generation %d keys %r" % (gen, keys))
        self.logout_all()

    def run(self):
        try:
            if not self.daemon.start():
                return self.rep.finish()
            before = self.first_run()
            self.daemon.stop()
            if not self.daemon.start():
                return self.rep.finish()
            self.after_restart(before)
            self.daemon.stop()
            if not self.daemon.start():
                return self.rep.finish()
            self.after_second_restart()
            self.daemon.stop()
        except (IscsiError, OSError) as e:
            self.rep.fail("persistent reservation exchange raised %s: %s" % (type(e).__name__, e))
            self.daemon.show_log()
        return self.rep.finish()


def main():
    # tests/run.sh ends a test that overruns with SIGTERM: clean up on it too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t = AptplTest()
    try:
        return t.run()
    finally:
        t.logout_all()
        t.daemon.kill()
        if os.environ.get("SPT_KEEP_TMP") != "1":
            shutil.rmtree(t.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
