#!/usr/bin/env python3
"""COMPARE AND WRITE is atomic across sessions; EXTENDED COPY between LUNs.

Two sessions (two I_T nexuses, as two ESXi hosts sharing a datastore) race
COMPARE AND WRITE (SBC-3 5.2) on one block many times: each reads the block
(a counter, the writer's name and a fill that shows torn writes), and tries
to replace exactly what it read by the counter plus one under its own name.
A COMPARE AND WRITE that compared against a value another one had already
replaced must get MISCOMPARE; so every success must have written a distinct
counter value, the values written must be 1..N without a gap or a repeat,
and the block must end as the last successful writer left it (no lost
update). The file LUN completes its reads and writes through io_uring, so
the two sessions' reads and writes really interleave in the daemon.

Then one EXTENDED COPY (SPC-4 6.4, LID1) moves data from LUN 0 to LUN 1 of
the same daemon, naming both by the NAA designators of their Device
Identification VPD pages; RECEIVE COPY RESULTS reports it, and LUN 1 reads
back what LUN 0 held. Python 3 standard library only.
"""

import os
import random
import shutil
import signal
import struct
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spt_iscsi import (  # noqa: E402
    Daemon, IscsiError, Reporter, Session, cdb_inquiry, lun_base, make_workdir,
    timeout_scale)

TARGET = "iqn.2026-11.org.spt:target0"
LUN_SIZE = 16 * 1024 * 1024
BS = 512
RACE_LBA = 100
ROUNDS = 300                    # COMPARE AND WRITE attempts per session
MAGIC = b"SPTCAW01"
COPY_SRC_LBA = 2048
COPY_DST_LBA = 8192
COPY_BLOCKS = 3000              # 1.5 MiB: more than one chunk of the copy manager
COPY_LIST_ID = 0x5a

STATUS_GOOD = 0x00
STATUS_CHECK = 0x02
KEY_ILLEGAL_REQUEST = 0x05
KEY_MISCOMPARE = 0x0E


def cdb_caw(lba, blocks, fua=False):
    return struct.pack(">BBQ3xBBB", 0x89, 0x08 if fua else 0, lba, blocks, 0, 0)


def cdb_read16(lba, blocks):
    return struct.pack(">BBQIBB", 0x88, 0, lba, blocks, 0, 0)


def cdb_write16(lba, blocks):
    return struct.pack(">BBQIBB", 0x8A, 0, lba, blocks, 0, 0)


def cdb_xcopy(length):
    return struct.pack(">BB8xIBB", 0x83, 0x00, length, 0, 0)


def cdb_rcr(sa, list_id, alloc):
    return struct.pack(">BBB7xIBB", 0x84, sa, list_id, alloc, 0, 0)


def sense_fields(sense):
    """(key, asc, ascq, information or None) of fixed or descriptor sense."""
    if len(sense) >= 14 and (sense[0] & 0x7F) in (0x70, 0x71):
        info = struct.unpack(">I", sense[3:7])[0] if sense[0] & 0x80 else None
        return sense[2] & 0x0F, sense[12], sense[13], info
    if len(sense) >= 8 and (sense[0] & 0x7F) in (0x72, 0x73):
        info = None
        pos = 8
        while pos + 2 <= len(sense):
            if sense[pos] == 0x00 and pos + 12 <= len(sense) and sense[pos + 2] & 0x80:
                info = struct.unpack(">Q", sense[pos + 4:pos + 12])[0]
            pos += 2 + sense[pos + 1]
        return sense[1] & 0x0F, sense[2], sense[3], info
    return None, None, None, None


def block_for(counter, writer):
    """One block: magic, counter, writer, then a fill only that write makes."""
    name = writer.encode().ljust(16, b"\0")
    head = MAGIC + struct.pack(">Q", counter) + name
    fill = bytes([(counter * 31 + sum(name)) & 0xFF]) * (BS - len(head))
    return head + fill


def parse_block(data):
    """(counter, writer) or None if the block is not one whole write."""
    if len(data) != BS or data[:8] != MAGIC:
        return None
    counter = struct.unpack(">Q", data[8:16])[0]
    writer = data[16:32].rstrip(b"\0").decode(errors="replace")
    if data != block_for(counter, writer):
        return None
    return counter, writer


class Racer(threading.Thread):
    def __init__(self, test, name, lun):
        super().__init__(name=name, daemon=True)
        self.test = test
        self.writer = name
        self.lun = lun
        self.written = []           # counter values this racer's successes wrote
        self.miscompares = 0
        self.errors = []
        self.start_gate = test.start_gate

    def run(self):
        s = None
        try:
            s = Session("127.0.0.1", self.test.daemon.port, TARGET, isid=os.urandom(5),
                        timeout=30.0 * timeout_scale())
            s.login()
        except (IscsiError, OSError) as e:
            self.errors.append("login: %s" % e)
            self.start_gate.abort()
            if s is not None:
                s.close()
            return
        try:
            # both sessions logged in: start together so that they race
            self.start_gate.wait(60 * timeout_scale())
            for _ in range(ROUNDS):
                st, old, sense = s.scsi_retry_ua(cdb_read16(RACE_LBA, 1), lun=self.lun,
                                                 read_len=BS)
                parsed = parse_block(old) if st == STATUS_GOOD else None
                if parsed is None:
                    self.errors.append("READ(16) of the race block: status 0x%02x, "
                                       "torn or foreign block" % st)
                    return
                new = block_for(parsed[0] + 1, self.writer)
                st, _, sense = s.scsi(cdb_caw(RACE_LBA, 1), lun=self.lun, write=old + new)
                if st == STATUS_GOOD:
                    self.written.append(parsed[0] + 1)
                    continue
                key, asc, ascq, info = sense_fields(sense)
                if st == STATUS_CHECK and (key, asc, ascq) == (KEY_MISCOMPARE, 0x1D, 0x00):
                    self.miscompares += 1
                    continue
                self.errors.append("COMPARE AND WRITE: status 0x%02x sense %s" %
                                   (st, sense.hex()))
                return
            s.logout()
        except (IscsiError, OSError, threading.BrokenBarrierError) as e:
            self.errors.append("%s" % (e or "the other racer did not start"))
        finally:
            s.close()


def naa_designator(s, lun):
    """The 8-byte NAA designator of the LU (Device Identification VPD page)."""
    st, data, _ = s.scsi_retry_ua(cdb_inquiry(True, 0x83, 1024), lun=lun, read_len=1024)
    if st != STATUS_GOOD or len(data) < 4:
        return None
    end = min(len(data), 4 + struct.unpack(">H", data[2:4])[0])
    pos = 4
    while pos + 4 <= end:
        code_set, assoc_type, dlen = data[pos] & 0x0F, data[pos + 1], data[pos + 3]
        if code_set == 1 and (assoc_type & 0x3F) == 0x03 and dlen == 8:
            return data[pos + 4:pos + 12]
        pos += 4 + dlen
    return None


def xcopy_list(list_id, designators, segments):
    """LID1 parameter list (SPC-4 6.4.3): identification CSCDs, then block
    to block segments (src index, dst index, blocks, src lba, dst lba)."""
    cscds = b""
    for naa in designators:
        cscds += (bytes([0xE4, 0x00, 0, 0, 0x01, 0x03, 0, 8]) + naa + b"\0" * 12 +
                  bytes([0]) + BS.to_bytes(3, "big"))
    segs = b""
    for src, dst, blocks, src_lba, dst_lba in segments:
        segs += struct.pack(">BBHHHHHQQ", 0x02, 0, 0x18, src, dst, 0, blocks, src_lba, dst_lba)
    header = struct.pack(">BBH4xII", list_id, 0x00, len(cscds), len(segs), 0)
    return header + cscds + segs


class CawRaceTest:
    def __init__(self):
        self.rep = Reporter("caw_race")
        self.work = make_workdir("caw_race")
        self.imgs = [os.path.join(self.work, "lun%d.img" % i) for i in range(2)]
        self.daemon = Daemon(self.rep, self.work,
                             ["--lun", "%s,size=%d" % (self.imgs[0], LUN_SIZE),
                              "--lun", "%s,size=%d" % (self.imgs[1], LUN_SIZE)], target=TARGET)
        self.lun0 = lun_base()
        self.lun1 = lun_base() + 1
        self.start_gate = threading.Barrier(2)

    def session(self):
        s = Session("127.0.0.1", self.daemon.port, TARGET, timeout=30.0 * timeout_scale())
        s.login()
        return s

    def race(self, s):
        rep = self.rep
        st, _, _ = s.scsi_retry_ua(cdb_write16(RACE_LBA, 1), lun=self.lun0,
                                   write=block_for(0, "init"))
        if not rep.check(st == STATUS_GOOD, "the race block is initialised"):
            return
        racers = [Racer(self, "alpha", self.lun0), Racer(self, "bravo", self.lun0)]
        for r in racers:
            r.start()
        for r in racers:
            r.join(120 * timeout_scale())
        if not rep.check(not any(r.is_alive() for r in racers), "both racers finish"):
            return
        errors = [e for r in racers for e in r.errors]
        rep.check(not errors, "every COMPARE AND WRITE ends GOOD or MISCOMPARE "
                  "(1D/00), every read sees one whole write", "; ".join(errors[:3]))
        successes = sum(len(r.written) for r in racers)
        miscompares = sum(r.miscompares for r in racers)
        print("# caw_race: %d successes (%s), %d miscompares" %
              (successes, ", ".join("%s %d" % (r.writer, len(r.written)) for r in racers),
               miscompares))
        rep.check(successes + miscompares == 2 * ROUNDS,
                  "every attempt is counted once (%d + %d)" % (successes, miscompares))
        rep.check(successes >= ROUNDS, "at least one success per round on average",
                  "%d successes" % successes)
        written = sorted(v for r in racers for v in r.written)
        rep.check(written == list(range(1, successes + 1)),
                  "successful writes carry counter values 1..%d, each once "
                  "(no two COMPARE AND WRITEs saw the same old block)" % successes,
                  "duplicates or gaps: %s" % [v for v in written
                                             if written.count(v) != 1][:5])
        st, data, _ = s.scsi_retry_ua(cdb_read16(RACE_LBA, 1), lun=self.lun0, read_len=BS)
        final = parse_block(data) if st == STATUS_GOOD else None
        last = None
        for r in racers:
            if r.written and r.written[-1] == successes:
                last = r.writer
        rep.check(final is not None and final == (successes, last),
                  "the block holds the last successful writer's data (%s, %d): no lost "
                  "update" % (last, successes), "read %r" % (final,))

    def caw_errors(self, s):
        rep = self.rep
        lba = RACE_LBA + 8
        base = block_for(7, "probe")
        st, _, _ = s.scsi_retry_ua(cdb_write16(lba, 1), lun=self.lun0, write=base)
        rep.check(st == STATUS_GOOD, "probe block written")
        verify = bytearray(base)
        verify[300] ^= 0x40
        st, _, sense = s.scsi(cdb_caw(lba, 1), lun=self.lun0,
                              write=bytes(verify) + block_for(8, "probe"))
        key, asc, ascq, info = sense_fields(sense)
        rep.check(st == STATUS_CHECK and (key, asc, ascq, info) == (KEY_MISCOMPARE, 0x1D, 0, 300),
                  "MISCOMPARE reports the offset of the first differing byte (300)",
                  "status 0x%02x sense %s" % (st, sense.hex()))
        # SBC-3 5.2: the data-out is 2 x n blocks; libiscsi's InvalidDataOutSize
        # only runs on LUs with several logical blocks per physical block
        st, _, sense = s.scsi(cdb_caw(lba, 1), lun=self.lun0, write=base * 4)
        key = sense_fields(sense)[0]
        rep.check(st == STATUS_CHECK and key == KEY_ILLEGAL_REQUEST,
                  "COMPARE AND WRITE with 4 blocks of data-out for 1 is refused",
                  "status 0x%02x sense %s" % (st, sense.hex()))
        st, _, sense = s.scsi(cdb_caw(lba, 3), lun=self.lun0, write=base * 4)
        key = sense_fields(sense)[0]
        rep.check(st == STATUS_CHECK and key == KEY_ILLEGAL_REQUEST,
                  "COMPARE AND WRITE with 4 blocks of data-out for 6 is refused",
                  "status 0x%02x sense %s" % (st, sense.hex()))
        st, data, _ = s.scsi(cdb_read16(lba, 1), lun=self.lun0, read_len=BS)
        rep.check(st == STATUS_GOOD and data == base, "refused COMPARE AND WRITEs wrote nothing")

    def xcopy(self, s):
        rep = self.rep
        rnd = random.Random(0x83)
        payload = rnd.randbytes(COPY_BLOCKS * BS)
        pos = 0
        while pos < len(payload):
            n = min(256 * 1024, len(payload) - pos)
            st, _, _ = s.scsi_retry_ua(cdb_write16(COPY_SRC_LBA + pos // BS, n // BS),
                                       lun=self.lun0, write=payload[pos:pos + n])
            if not rep.check(st == STATUS_GOOD, "source data written (%d KiB at %d)" %
                             (n // 1024, pos // 1024)):
                return
            pos += n
        naa0 = naa_designator(s, self.lun0)
        naa1 = naa_designator(s, self.lun1)
        if not rep.check(naa0 is not None and naa1 is not None and naa0 != naa1,
                         "both LUNs report distinct NAA designators"):
            return
        plist = xcopy_list(COPY_LIST_ID, [naa0, naa1],
                           [(0, 1, COPY_BLOCKS, COPY_SRC_LBA, COPY_DST_LBA)])
        st, _, sense = s.scsi(cdb_xcopy(len(plist)), lun=self.lun0, write=plist)
        rep.check(st == STATUS_GOOD, "EXTENDED COPY from LUN 0 to LUN 1 is GOOD",
                  "status 0x%02x sense %s" % (st, sense.hex()))
        st, data, _ = s.scsi(cdb_rcr(0x00, COPY_LIST_ID, 64), lun=self.lun0, read_len=64)
        ok = st == STATUS_GOOD and len(data) >= 12
        rep.check(ok and data[4] == 0x01 and struct.unpack(">H", data[5:7])[0] == 1 and
                  data[7] == 0 and struct.unpack(">I", data[8:12])[0] == len(payload),
                  "RECEIVE COPY RESULTS: completed, 1 segment, %d bytes" % len(payload),
                  data.hex())
        got = b""
        pos = 0
        while pos < len(payload):
            n = min(256 * 1024, len(payload) - pos)
            st, data, _ = s.scsi(cdb_read16(COPY_DST_LBA + pos // BS, n // BS), lun=self.lun1,
                                 read_len=n)
            if st != STATUS_GOOD:
                break
            got += data
            pos += n
        rep.check(got == payload, "LUN 1 reads back what LUN 0 held (%d bytes)" % len(payload))
        # a designator of no LU here: COPY ABORTED, UNREACHABLE COPY TARGET
        plist = xcopy_list(0, [naa0, b"\x60\x01\x40\x5f\xff\xff\xff\xfe"],
                           [(0, 1, 8, COPY_SRC_LBA, COPY_DST_LBA)])
        st, _, sense = s.scsi(cdb_xcopy(len(plist)), lun=self.lun0, write=plist)
        key, asc, ascq, _ = sense_fields(sense)
        rep.check(st == STATUS_CHECK and (key, asc, ascq) == (0x0A, 0x08, 0x04),
                  "an unknown CSCD designator is COPY ABORTED, UNREACHABLE COPY TARGET",
                  "status 0x%02x sense %s" % (st, sense.hex()))

    def run(self):
        if not self.daemon.start():
            return self.rep.finish()
        try:
            s = self.session()
        except (IscsiError, OSError) as e:
            self.rep.fail("login (%s)" % e)
            self.daemon.stop()
            return self.rep.finish()
        self.rep.ok("logged in")
        try:
            self.race(s)
            self.caw_errors(s)
            self.xcopy(s)
            s.logout()
        except (IscsiError, OSError) as e:
            self.rep.fail("session error: %s" % e)
        finally:
            s.close()
        self.daemon.stop()
        return self.rep.finish()


def main():
    # tests/run.sh ends a test that overruns with SIGTERM: clean up on it too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t = CawRaceTest()
    try:
        return t.run()
    finally:
        t.daemon.kill()
        if os.environ.get("SPT_KEEP_TMP") != "1":
            shutil.rmtree(t.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
