#!/usr/bin/env python3
"""Writes the seed corpora of the spt fuzzers (fuzz/corpus/<harness>/) and
their dictionaries (fuzz/dict/<harness>.dict).

    python3 fuzz/make_corpus.py          # rewrite the seeds (idempotent)

The seeds follow the input layouts documented at the top of each harness
(fuzz/fuzz_*.c): login key sets as open-iscsi, libiscsi (QEMU) and others
send them, real PDUs (login, SCSI READ/WRITE with immediate, unsolicited and
solicited data, Data-Out, NOP-Out, TMF, Text SendTargets, Logout), a CDB of
every operation code the SCSI emulation serves (and a few it does not), and
CHAP exchanges. Files are named after what they hold; crashing inputs found
later are added next to them by hand (see fuzz/README.md) and are not
rewritten by this script.
"""
import os
import struct
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))

TARGET = b"iqn.2026-11.org.spt:fuzz"
INITIATOR = b"iqn.2026-11.org.spt:fuzz-initiator"
OPEN_ISCSI_NAME = b"iqn.1993-08.org.debian:01:8b3b2f5e1c2d"
LIBISCSI_NAME = b"iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test"
ISID = bytes([0x80, 0, 0, 0, 0, 1])

written = []


def write(harness, name, data):
    d = os.path.join(ROOT, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    written.append((harness, name))


def text(*pairs):
    """key=value pairs as on the wire, each NUL-terminated."""
    return b"".join(p + b"\0" for p in pairs)


# --------------------------------------------------------------------------
# Login key sets
# --------------------------------------------------------------------------

OPEN_ISCSI_SECURITY = text(
    b"InitiatorName=" + OPEN_ISCSI_NAME, b"InitiatorAlias=host1", b"TargetName=" + TARGET,
    b"SessionType=Normal", b"AuthMethod=None")
OPEN_ISCSI_SECURITY_CHAP = text(
    b"InitiatorName=" + OPEN_ISCSI_NAME, b"InitiatorAlias=host1", b"TargetName=" + TARGET,
    b"SessionType=Normal", b"AuthMethod=CHAP,None")
OPEN_ISCSI_OPERATIONAL = text(
    b"HeaderDigest=None", b"DataDigest=None", b"DefaultTime2Wait=2", b"DefaultTime2Retain=0",
    b"IFMarker=No", b"OFMarker=No", b"ErrorRecoveryLevel=0", b"InitialR2T=No",
    b"ImmediateData=Yes", b"MaxBurstLength=16776192", b"FirstBurstLength=262144",
    b"MaxOutstandingR2T=1", b"MaxConnections=1", b"DataPDUInOrder=Yes",
    b"DataSequenceInOrder=Yes", b"MaxRecvDataSegmentLength=262144")
OPEN_ISCSI_DISCOVERY = text(
    b"InitiatorName=" + OPEN_ISCSI_NAME, b"InitiatorAlias=host1", b"SessionType=Discovery",
    b"AuthMethod=None")
OPEN_ISCSI_DISCOVERY_OPS = text(
    b"HeaderDigest=None", b"DataDigest=None", b"DefaultTime2Wait=2", b"DefaultTime2Retain=0",
    b"IFMarker=No", b"OFMarker=No", b"ErrorRecoveryLevel=0", b"MaxRecvDataSegmentLength=32768")

LIBISCSI_SECURITY = text(
    b"InitiatorName=" + LIBISCSI_NAME, b"InitiatorAlias=iscsi-test", b"TargetName=" + TARGET,
    b"SessionType=Normal", b"AuthMethod=None")
LIBISCSI_OPERATIONAL = text(
    b"HeaderDigest=None,CRC32C", b"DataDigest=None", b"InitialR2T=Yes", b"ImmediateData=Yes",
    b"MaxBurstLength=262144", b"FirstBurstLength=262144", b"MaxRecvDataSegmentLength=262144",
    b"DataPDUInOrder=Yes", b"DataSequenceInOrder=Yes", b"MaxConnections=1",
    b"ErrorRecoveryLevel=0", b"DefaultTime2Wait=2", b"DefaultTime2Retain=0",
    b"MaxOutstandingR2T=1")
# newer Linux initiators and others
MODERN_OPERATIONAL = text(
    b"HeaderDigest=CRC32C,None", b"DataDigest=CRC32C,None", b"iSCSIProtocolLevel=2",
    b"TaskReporting=ResponseFence", b"X#NodeArchitecture=Linux/6.1,open-iscsi/2.1.8",
    b"X-com.example.vendor=1", b"MaxRecvDataSegmentLength=65536", b"MaxBurstLength=1048576",
    b"FirstBurstLength=65536", b"InitialR2T=No", b"ImmediateData=Yes")
WEIRD_KEYS = text(
    b"MaxBurstLength=0x1000", b"FirstBurstLength=999999999", b"MaxConnections=0",
    b"DefaultTime2Wait=3601", b"ErrorRecoveryLevel=2", b"IFMarkInt=2048~8192", b"OFMarkInt=Reject",
    b"InitialR2T=Maybe", b"ImmediateData=", b"HeaderDigest=MD5,SHA1", b"TargetAlias=me",
    b"TargetPortalGroupTag=1", b"TargetAddress=10.0.0.1:3260,1", b"UnknownKey=1",
    b"SessionType=Discovery", b"MaxOutstandingR2T=65536", b"NotUnderstood=Irrelevant")


# --------------------------------------------------------------------------
# PDUs (RFC 7143 section 11)
# --------------------------------------------------------------------------

def pad4(b):
    return b + b"\0" * ((4 - len(b) % 4) % 4)


def pdu(bhs, data=b""):
    assert len(bhs) == 48
    bhs = bytearray(bhs)
    bhs[5:8] = len(data).to_bytes(3, "big")
    return bytes(bhs) + pad4(data)


def login_req(flags, keys, itt=0, cmdsn=0, exp_statsn=0, tsih=0, cid=0, vmin=0):
    bhs = struct.pack(">BBBBB3s6sHIHHII16s", 0x43, flags, 0, vmin, 0, b"\0\0\0", ISID, tsih,
                      itt, cid, 0, cmdsn, exp_statsn, b"\0" * 16)
    return pdu(bhs, keys)


def lflags(t, csg, nsg, c=False):
    return (0x80 if t else 0) | (0x40 if c else 0) | csg << 2 | nsg


def lun(n):
    return struct.pack(">Q", n << 48) if n < 256 else struct.pack(">Q", (0x4000 | n) << 48)


def scsi_cmd(itt, cmdsn, cdb, edtl=0, read=False, write=False, final=True, data=b"",
             immediate=False, attr=1, lun_n=0, exp_statsn=0):
    flags = (0x80 if final else 0) | (0x40 if read else 0) | (0x20 if write else 0) | attr
    bhs = struct.pack(">BBHB3s8sIIII16s", 0x01 | (0x40 if immediate else 0), flags, 0, 0, b"\0\0\0",
                      lun(lun_n), itt, edtl, cmdsn, exp_statsn, cdb.ljust(16, b"\0"))
    return pdu(bhs, data)


def data_out(itt, ttt, datasn, offset, data, final=True, lun_n=0):
    bhs = struct.pack(">BBHB3s8sIIIIIIII", 0x05, 0x80 if final else 0, 0, 0, b"\0\0\0", lun(lun_n),
                      itt, ttt, 0, 0, 0, datasn, offset, 0)
    return pdu(bhs, data)


def nop_out(itt, cmdsn, data=b"", ttt=0xffffffff, immediate=True):
    bhs = struct.pack(">BBHB3s8sIIII16s", 0x00 | (0x40 if immediate else 0), 0x80, 0, 0, b"\0\0\0",
                      b"\0" * 8, itt, ttt, cmdsn, 0, b"\0" * 16)
    return pdu(bhs, data)


def tmf(itt, cmdsn, function, ref_itt=0xffffffff, ref_cmdsn=0, lun_n=0):
    bhs = struct.pack(">BBHB3s8sIIIIII8s", 0x42, 0x80 | function, 0, 0, b"\0\0\0", lun(lun_n), itt,
                      ref_itt, cmdsn, 0, ref_cmdsn, 0, b"\0" * 8)
    return pdu(bhs)


def text_req(itt, cmdsn, keys, ttt=0xffffffff, final=True, cont=False):
    flags = (0x80 if final else 0) | (0x40 if cont else 0)
    bhs = struct.pack(">BBHB3s8sIIII16s", 0x44, flags, 0, 0, b"\0\0\0", b"\0" * 8, itt, ttt,
                      cmdsn, 0, b"\0" * 16)
    return pdu(bhs, keys)


def logout(itt, cmdsn, reason=0, cid=0):
    bhs = struct.pack(">BBHB3s8sIHHII16s", 0x46, 0x80 | reason, 0, 0, b"\0\0\0", b"\0" * 8, itt,
                      cid, 0, cmdsn, 0, b"\0" * 16)
    return pdu(bhs)


def snack(itt):
    bhs = struct.pack(">BBHB3s8sII24s", 0x10, 0x80, 0, 0, b"\0\0\0", b"\0" * 8, itt, 0xffffffff,
                      b"\0" * 24)
    return pdu(bhs)


# CDBs
def cdb6(op, b1=0, b2=0, b3=0, b4=0, ctl=0):
    return bytes([op, b1, b2, b3, b4, ctl])


def cdb10(op, lba=0, n=0, b1=0, b6=0):
    return struct.pack(">BBIBHB", op, b1, lba, b6, n, 0)


def cdb12(op, lba=0, n=0, b1=0):
    return struct.pack(">BBIIBB", op, b1, lba, n, 0, 0)


def cdb16(op, lba=0, n=0, b1=0):
    return struct.pack(">BBQIBB", op, b1, lba, n, 0, 0)


INQUIRY = cdb6(0x12, 0, 0, 0, 96)
TUR = cdb6(0x00)


def read10(lba, n):
    return cdb10(0x28, lba, n)


def write10(lba, n):
    return cdb10(0x2a, lba, n)


def pattern(n, seed=1):
    return bytes(((i * 131 + seed * 7) ^ seed) & 0xff for i in range(n))


# --------------------------------------------------------------------------
# fuzz_pdu: byte 0 options, byte 1 write size, then the stream
# --------------------------------------------------------------------------

def pdu_seed(name, opts, wsize, stream):
    write("fuzz_pdu", name, bytes([opts, wsize]) + stream)


def seeds_pdu():
    # raw: the bytes are the login itself (security, then operational stage)
    login_ffp = (login_req(lflags(1, 0, 1), OPEN_ISCSI_SECURITY) +
                 login_req(lflags(1, 1, 3), OPEN_ISCSI_OPERATIONAL))
    pdu_seed("raw-login-open-iscsi", 0, 0, login_ffp)
    pdu_seed("raw-login-open-iscsi-inquiry-read", 0, 0, login_ffp +
             scsi_cmd(1, 0, INQUIRY, 96, read=True) + scsi_cmd(2, 1, read10(0, 8), 4096, read=True))
    pdu_seed("raw-login-libiscsi", 0, 0,
             login_req(lflags(1, 0, 1), LIBISCSI_SECURITY) +
             login_req(lflags(1, 1, 3), LIBISCSI_OPERATIONAL) +
             scsi_cmd(1, 0, TUR) + logout(2, 1))
    pdu_seed("raw-login-modern-keys", 0, 0,
             login_req(lflags(1, 0, 1), OPEN_ISCSI_SECURITY) +
             login_req(lflags(1, 1, 3), MODERN_OPERATIONAL))
    pdu_seed("raw-login-chap-offered", 0, 0,
             login_req(lflags(0, 0, 0), OPEN_ISCSI_SECURITY_CHAP) +
             login_req(lflags(0, 0, 0), text(b"CHAP_A=5")) +
             login_req(lflags(1, 0, 1), text(b"CHAP_N=user", b"CHAP_R=0x" + b"00" * 16)))
    pdu_seed("raw-login-straight-to-operational", 0, 0,
             login_req(lflags(1, 1, 3), OPEN_ISCSI_SECURITY[:-len(b"AuthMethod=None\0")] +
                       OPEN_ISCSI_OPERATIONAL))
    pdu_seed("raw-login-discovery-sendtargets", 0, 0,
             login_req(lflags(1, 0, 1), OPEN_ISCSI_DISCOVERY) +
             login_req(lflags(1, 1, 3), OPEN_ISCSI_DISCOVERY_OPS) +
             text_req(1, 0, text(b"SendTargets=All")) + logout(2, 1))
    half = len(OPEN_ISCSI_SECURITY) // 2
    pdu_seed("raw-login-continue-bit", 0, 0,
             login_req(lflags(0, 0, 1, c=True), OPEN_ISCSI_SECURITY[:half]) +
             login_req(lflags(1, 0, 1), OPEN_ISCSI_SECURITY[half:]) +
             login_req(lflags(1, 1, 3), OPEN_ISCSI_OPERATIONAL))
    pdu_seed("raw-login-bad-version", 0, 0, login_req(lflags(1, 0, 1), OPEN_ISCSI_SECURITY, vmin=2))
    pdu_seed("raw-login-join-unknown-tsih", 0, 0,
             login_req(lflags(1, 0, 1), OPEN_ISCSI_SECURITY, tsih=0x1234, cid=1))
    pdu_seed("raw-login-unknown-target", 0, 0,
             login_req(lflags(1, 0, 1), text(b"InitiatorName=" + INITIATOR,
                                             b"TargetName=iqn.2026-11.org.spt:nope",
                                             b"AuthMethod=None")))
    pdu_seed("raw-not-login-first", 0, 0, scsi_cmd(1, 0, INQUIRY, 96, read=True))
    pdu_seed("raw-login-trickle", 0, 7, login_ffp + scsi_cmd(1, 0, TUR))

    # after a normal-session login (phase 1): ExpCmdSN 0, ITTs from 1
    pdu_seed("ffp-inquiry", 1, 0, scsi_cmd(1, 0, INQUIRY, 96, read=True))
    pdu_seed("ffp-inquiry-vpd-luns-capacity", 1, 0,
             scsi_cmd(1, 0, cdb6(0x12, 1, 0x83, 0, 255), 255, read=True) +
             scsi_cmd(2, 1, bytes([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), 256, read=True) +
             scsi_cmd(3, 2, cdb10(0x25), 8, read=True) +
             scsi_cmd(4, 3, bytes([0x9e, 0x10]) + b"\0" * 8 + struct.pack(">I", 32) + b"\0\0", 32,
                      read=True) +
             scsi_cmd(5, 4, INQUIRY, 96, read=True, lun_n=1) +
             scsi_cmd(6, 5, INQUIRY, 96, read=True, lun_n=7))
    pdu_seed("ffp-tur-then-read", 1, 0,
             scsi_cmd(1, 0, TUR) + scsi_cmd(2, 1, read10(0, 8), 4096, read=True))
    pdu_seed("ffp-read-large", 1, 0, scsi_cmd(1, 0, read10(8, 128), 65536, read=True))
    pdu_seed("ffp-read-huge-edtl", 1, 0, scsi_cmd(1, 0, read10(0, 1), 0xffffffff, read=True) +
             scsi_cmd(2, 1, write10(0, 1), 0x10000000, write=True, final=False, data=pattern(512)))
    pdu_seed("ffp-write-immediate", 1, 0,
             scsi_cmd(1, 0, write10(0, 8), 4096, write=True, data=pattern(4096)) +
             scsi_cmd(2, 1, read10(0, 8), 4096, read=True))
    pdu_seed("ffp-write-immediate-unsolicited", 1, 0,
             scsi_cmd(1, 0, write10(16, 16), 8192, write=True, final=False, data=pattern(1024)) +
             data_out(1, 0xffffffff, 0, 1024, pattern(3072, 2), final=False) +
             data_out(1, 0xffffffff, 1, 4096, pattern(4096, 3)))
    pdu_seed("ffp-write-unsolicited-only", 1, 0,
             scsi_cmd(1, 0, write10(0, 4), 2048, write=True, final=False) +
             data_out(1, 0xffffffff, 0, 0, pattern(2048)))
    pdu_seed("ffp-write-beyond-first-burst", 1, 0,
             scsi_cmd(1, 0, write10(0, 24), 12288, write=True, final=False, data=pattern(4096)) +
             data_out(1, 0xffffffff, 0, 4096, pattern(4096, 4)) +
             data_out(1, 1, 0, 8192, pattern(4096, 5)))
    pdu_seed("ffp-write-read-only-lun", 1, 0,
             scsi_cmd(1, 0, write10(0, 1), 512, write=True, data=pattern(512), lun_n=1))
    # LUN 0 fails I/O at byte 102400 (LBA 200): failed reads and writes, a write that
    # fails while its data is still coming
    pdu_seed("ffp-bad-block", 1, 0,
             scsi_cmd(1, 0, read10(196, 8), 4096, read=True) +
             scsi_cmd(2, 1, write10(196, 8), 4096, write=True, data=pattern(4096)) +
             scsi_cmd(3, 2, write10(199, 24), 12288, write=True, final=False, data=pattern(4096)) +
             data_out(3, 0xffffffff, 0, 4096, pattern(4096, 4)) +
             data_out(3, 1, 0, 8192, pattern(4096, 5)) + scsi_cmd(4, 3, TUR))
    pdu_seed("r2t-bad-block", 3, 0,
             scsi_cmd(1, 0, write10(192, 16), 8192, write=True) +
             data_out(1, 1, 0, 0, pattern(4096, 1)) + data_out(1, 2, 0, 4096, pattern(4096, 2)) +
             scsi_cmd(2, 1, TUR))
    pdu_seed("ffp-nop-ping", 1, 0,
             nop_out(0x10, 0, b"ping-data-16byte") + nop_out(0xffffffff, 0) +
             nop_out(0x11, 0, immediate=False))
    pdu_seed("ffp-tmf-abort-task", 1, 0,
             scsi_cmd(1, 0, write10(0, 16), 8192, write=True, final=False, data=pattern(512)) +
             tmf(2, 1, 1, ref_itt=1, ref_cmdsn=0) + scsi_cmd(3, 1, TUR))
    pdu_seed("ffp-tmf-resets", 1, 0,
             scsi_cmd(1, 0, read10(0, 8), 4096, read=True) +
             tmf(2, 1, 2) + tmf(3, 1, 4) + tmf(4, 1, 5) + tmf(5, 1, 6) + tmf(6, 1, 3) +
             tmf(7, 1, 8, ref_itt=1) + scsi_cmd(8, 1, TUR) + scsi_cmd(9, 2, TUR))
    pdu_seed("ffp-tmf-cold-reset", 1, 0, tmf(1, 0, 7))
    pdu_seed("ffp-text-sendtargets", 1, 0,
             text_req(1, 0, text(b"SendTargets=All")) +
             text_req(2, 0, text(b"SendTargets=" + TARGET, b"MaxRecvDataSegmentLength=8192",
                                 b"X-vendor=1")))
    pdu_seed("ffp-text-renegotiate", 1, 0,
             text_req(1, 0, text(b"MaxRecvDataSegmentLength=4096", b"InitiatorAlias=renamed",
                                 b"MaxBurstLength=512", b"CHAP_A=5", b"HeaderDigest=CRC32C")))
    pdu_seed("ffp-logout-session", 1, 0, scsi_cmd(1, 0, TUR) + logout(2, 1, 0))
    pdu_seed("ffp-logout-connection", 1, 0, logout(1, 0, 1, cid=0))
    pdu_seed("ffp-logout-other-cid", 1, 0, logout(1, 0, 1, cid=5) + logout(2, 0, 2))
    pdu_seed("ffp-cmdsn-out-of-order", 1, 0,
             scsi_cmd(2, 1, read10(0, 1), 512, read=True) +
             scsi_cmd(3, 2, TUR) + nop_out(4, 3, immediate=False) +
             scsi_cmd(1, 0, TUR) + scsi_cmd(5, 500, TUR))
    pdu_seed("ffp-rejects", 1, 0,
             snack(1) + bytes([0x3c]) + b"\0" * 47 +
             login_req(lflags(1, 1, 3), OPEN_ISCSI_OPERATIONAL, itt=2) +
             scsi_cmd(0xffffffff, 0, TUR) + scsi_cmd(3, 0, TUR) + scsi_cmd(3, 1, TUR) +
             data_out(0x77, 0x99, 0, 0, pattern(512)) +
             scsi_cmd(4, 2, read10(0, 1), 512, read=True, data=pattern(16)))
    with_ahs = bytearray(scsi_cmd(1, 0, INQUIRY, 96, read=True))
    with_ahs[4] = 2     # TotalAHSLength: one 8-byte AHS (extended CDB, RFC 7143 11.3.5)
    pdu_seed("ffp-ahs", 1, 0, bytes(with_ahs[:48]) + b"\0\x05\x01\0" + b"\0" * 4 + bytes(with_ahs[48:]))
    pdu_seed("ffp-trickle-write", 1, 3,
             scsi_cmd(1, 0, write10(0, 2), 1024, write=True, data=pattern(1024)))
    pdu_seed("ffp-chunked-read", 1, 0x85,
             scsi_cmd(1, 0, read10(0, 8), 4096, read=True) + nop_out(2, 1, b"x" * 100))

    # discovery session (phase 2)
    pdu_seed("disc-sendtargets", 2, 0,
             text_req(1, 0, text(b"SendTargets=All")) + text_req(2, 0, text(b"SendTargets=")) +
             text_req(3, 0, text(b"SendTargets=" + TARGET)) + logout(4, 0))
    pdu_seed("disc-scsi-rejected", 2, 0, scsi_cmd(1, 0, INQUIRY, 96, read=True) + tmf(2, 0, 5))

    # InitialR2T=Yes, ImmediateData=No, MaxBurstLength 4096, our MaxRecvDSL 4096 (phase 3)
    pdu_seed("r2t-write-one-burst", 3, 0,
             scsi_cmd(1, 0, write10(0, 8), 4096, write=True) +
             data_out(1, 1, 0, 0, pattern(4096)))
    pdu_seed("r2t-write-two-bursts", 3, 0,
             scsi_cmd(1, 0, write10(0, 16), 8192, write=True) +
             data_out(1, 1, 0, 0, pattern(2048, 1), final=False) +
             data_out(1, 1, 1, 2048, pattern(2048, 2)) +
             data_out(1, 2, 0, 4096, pattern(4096, 3)) +
             scsi_cmd(2, 1, read10(0, 16), 8192, read=True))
    pdu_seed("r2t-immediate-refused", 3, 0,
             scsi_cmd(1, 0, write10(0, 1), 512, write=True, data=pattern(512)))
    # 100 unknown keys answered NotUnderstood: a response longer than our 4096-byte
    # MaxRecvDataSegmentLength, sent in pieces the initiator asks for by TTT
    many = b"".join(b"X-k%03d-" % i + b"p" * 52 + b"=1\0" for i in range(100))
    pdu_seed("r2t-text-continuation", 3, 0,
             text_req(1, 0, text(b"SendTargets=All") + many) +
             text_req(1, 0, b"", ttt=1) + text_req(1, 0, b"", ttt=2) + text_req(2, 0, b"", ttt=9))
    # digests (phase 1 + bit 2): the harness inserts CRC32C
    pdu_seed("digest-read-write", 1 | 4, 0,
             scsi_cmd(1, 0, write10(0, 2), 1024, write=True, data=pattern(1024)) +
             scsi_cmd(2, 1, read10(0, 2), 1024, read=True) + nop_out(3, 2, b"abc"))
    pdu_seed("digest-r2t", 3 | 4, 0,
             scsi_cmd(1, 0, write10(0, 8), 4096, write=True) + data_out(1, 1, 0, 0, pattern(4096)))
    def bad(p, flag):
        b = bytearray(p)
        b[3] |= flag
        return bytes(b)
    pdu_seed("digest-errors", 1 | 4 | 0x80, 0,
             scsi_cmd(1, 0, TUR) +
             bad(scsi_cmd(2, 1, write10(0, 2), 1024, write=True, data=pattern(1024)), 0x40) +
             scsi_cmd(3, 1, TUR) + bad(nop_out(4, 2, b"abcd"), 0x80))
    pdu_seed("digest-error-data-out", 3 | 4 | 0x80, 0,
             scsi_cmd(1, 0, write10(0, 8), 4096, write=True) +
             bad(data_out(1, 1, 0, 0, pattern(4096)), 0x40))
    # deferred I/O (bit 3): tasks at the provider when the TMF and logout come
    pdu_seed("defer-write-abort-logout", 1 | 8, 0,
             scsi_cmd(1, 0, write10(0, 8), 4096, write=True, data=pattern(4096)) +
             scsi_cmd(2, 1, read10(0, 8), 4096, read=True) +
             tmf(3, 2, 1, ref_itt=2, ref_cmdsn=1) + tmf(4, 2, 5) + logout(5, 2))
    pdu_seed("defer-4k-blocks", 1 | 8 | 16, 0,
             scsi_cmd(1, 0, write10(0, 1), 4096, write=True, data=pattern(4096)) +
             scsi_cmd(2, 1, read10(0, 1), 4096, read=True))
    # session reinstatement (bit 5) with a task in flight
    pdu_seed("reinstate-with-task", 1 | 8 | 32, 0,
             scsi_cmd(1, 0, write10(0, 16), 8192, write=True, final=False, data=pattern(512)))
    pdu_seed("reinstate-r2t", 3 | 32, 0, scsi_cmd(1, 0, write10(0, 8), 4096, write=True))
    # CHAP required, mutual credentials, ACL (bit 6): raw logins meet every check
    pdu_seed("auth-raw-chap-login", 0x40, 0,
             login_req(lflags(0, 0, 0), text(b"InitiatorName=" + INITIATOR, b"TargetName=" + TARGET,
                                             b"SessionType=Normal", b"AuthMethod=CHAP,None")) +
             login_req(lflags(0, 0, 0), text(b"CHAP_A=7,5")) +
             login_req(lflags(1, 0, 1), text(b"CHAP_N=fuzz-chap-user", b"CHAP_R=0x" + b"00" * 32,
                                             b"CHAP_I=1", b"CHAP_C=0x" + b"11" * 16)))
    pdu_seed("auth-raw-none-refused", 0x40, 0, login_ffp)
    pdu_seed("auth-raw-not-in-acl", 0x40, 0,
             login_req(lflags(0, 0, 0), OPEN_ISCSI_SECURITY_CHAP) +
             login_req(lflags(0, 0, 0), text(b"CHAP_A=5")))
    pdu_seed("auth-raw-skip-security", 0x40, 0,
             login_req(lflags(1, 1, 3), text(b"InitiatorName=" + INITIATOR, b"TargetName=" + TARGET) +
                       OPEN_ISCSI_OPERATIONAL))
    pdu_seed("auth-ffp-inquiry", 0x41, 0, scsi_cmd(1, 0, INQUIRY, 96, read=True) +
             text_req(2, 1, text(b"SendTargets=All")))
    pdu_seed("auth-discovery", 0x42, 0, text_req(1, 0, text(b"SendTargets=All")))
    pdu_seed("auth-reinstate", 0x61, 0, scsi_cmd(1, 0, TUR))


# --------------------------------------------------------------------------
# fuzz_text_keys: byte 0 options, then requests [flags][text] split by 0xff
# --------------------------------------------------------------------------

SEP = b"\xff"


def keys_seed(name, opts, *requests):
    write("fuzz_text_keys", name, bytes([opts]) + SEP.join(bytes([f]) + t for f, t in requests))


def seeds_text_keys():
    sec_t = 0x04 | 0       # CSG 0, T (NSG 1)
    ops_full = 0x04 | 0x08 | 1   # CSG 1, T, NSG 3
    keys_seed("open-iscsi", 0, (sec_t, OPEN_ISCSI_SECURITY), (ops_full, OPEN_ISCSI_OPERATIONAL))
    keys_seed("open-iscsi-chap-offer", 0, (0, OPEN_ISCSI_SECURITY_CHAP), (0, text(b"CHAP_A=5")))
    keys_seed("libiscsi", 0, (sec_t, LIBISCSI_SECURITY), (ops_full, LIBISCSI_OPERATIONAL))
    keys_seed("libiscsi-strict-target", 2, (sec_t, LIBISCSI_SECURITY),
              (ops_full, LIBISCSI_OPERATIONAL))
    keys_seed("modern", 4, (sec_t, OPEN_ISCSI_SECURITY), (ops_full, MODERN_OPERATIONAL))
    keys_seed("discovery", 0, (sec_t, OPEN_ISCSI_DISCOVERY), (ops_full, OPEN_ISCSI_DISCOVERY_OPS))
    keys_seed("discovery-with-normal-keys", 0, (sec_t, OPEN_ISCSI_DISCOVERY),
              (ops_full, OPEN_ISCSI_OPERATIONAL))
    keys_seed("non-leading", 1, (sec_t, OPEN_ISCSI_SECURITY), (ops_full, OPEN_ISCSI_OPERATIONAL))
    keys_seed("non-leading-minimal", 1, (ops_full, text(b"InitiatorName=" + INITIATOR,
                                                         b"TargetName=" + TARGET,
                                                         b"HeaderDigest=None",
                                                         b"MaxRecvDataSegmentLength=8192")))
    keys_seed("straight-to-operational", 0, (ops_full, OPEN_ISCSI_SECURITY + OPEN_ISCSI_OPERATIONAL))
    keys_seed("security-to-full", 0, (0x04 | 0x08, OPEN_ISCSI_SECURITY))
    keys_seed("operational-in-security", 0, (sec_t, OPEN_ISCSI_SECURITY + OPEN_ISCSI_OPERATIONAL))
    keys_seed("weird-values", 0, (sec_t, OPEN_ISCSI_SECURITY), (ops_full, WEIRD_KEYS))
    keys_seed("redeclared", 0, (sec_t, OPEN_ISCSI_SECURITY),
              (0x01, text(b"MaxRecvDataSegmentLength=8192", b"InitiatorAlias=host1")),
              (ops_full, text(b"MaxRecvDataSegmentLength=16384", b"InitiatorName=" + OPEN_ISCSI_NAME,
                              b"MaxBurstLength=1024", b"FirstBurstLength=2048")))
    keys_seed("duplicate-key", 0, (sec_t, text(b"InitiatorName=a", b"InitiatorName=b")))
    keys_seed("no-final-nul", 0, (sec_t, b"InitiatorName=" + INITIATOR + b"\0AuthMethod=None"))
    keys_seed("malformed", 0, (sec_t, b"=value\0NoEquals\0" + b"K" * 70 + b"=1\0"))
    keys_seed("long-value", 0, (sec_t, b"InitiatorAlias=" + b"a" * 300 + b"\0X-long=" + b"b" * 9000))
    keys_seed("stage-3", 0, (0x03, OPEN_ISCSI_SECURITY))
    keys_seed("text-phase", 0, (0x01, text(b"SendTargets=All", b"MaxRecvDataSegmentLength=4096",
                                           b"InitiatorAlias=x", b"X-vendor=1", b"CHAP_A=5",
                                           b"MaxConnections=2", b"TargetAlias=t",
                                           b"HeaderDigest=CRC32C", b"Foo=Reject")))


# --------------------------------------------------------------------------
# fuzz_cdb: byte 0 device, then records
# --------------------------------------------------------------------------

def cmd_rec(cdb, edtl=0, direction=0, data=b"", nseq=1, attr=1, lun1=False):
    head = (attr & 7) << 2 | (0x20 if lun1 else 0)
    return (bytes([head, len(cdb) - 1]) + cdb + bytes([direction | (nseq - 1) << 4]) +
            edtl.to_bytes(3, "big") + len(data).to_bytes(2, "big") + data)


def tmf_rec(function, lun1=False):
    return bytes([2, function | (0x80 if lun1 else 0)])


def nexus_rec(n, end_first=False):
    return bytes([3 | n << 2 | (0x10 if end_first else 0)])


NONE, OUT, IN = 0, 1, 2
DEV_512_WCE = 0x08 | 2 << 5         # 256 blocks of 512
DEV_4K_THIN = 0x01 | 0x04 | 3 << 5  # 2048 blocks of 4096, thin
DEV_RO = 0x02 | 2 << 5
DEV_HUGE = 0x08 | 7 << 5            # 2^40 - 1 blocks of 512


def cdb_seed(name, dev, *records):
    # a TEST UNIT READY first takes the power-on unit attention
    write("fuzz_cdb", name, bytes([dev]) + cmd_rec(TUR) + b"".join(records))


def mode_caching(wce=True):
    # MODE SELECT(6) parameter list: header, caching page (08h)
    page = bytes([0x08, 0x12, 0x04 if wce else 0]) + b"\0" * 17
    return bytes([0, 0, 0, 0]) + page


def mode_control(d_sense=True):
    page = bytes([0x0a, 0x0a, 0x04 if d_sense else 0]) + b"\0" * 9
    return bytes([0, 0, 0, 0]) + page


def unmap_list(*extents):
    desc = b"".join(struct.pack(">QI4s", lba, n, b"\0" * 4) for lba, n in extents)
    return struct.pack(">HH4s", 6 + len(desc), len(desc), b"\0" * 4) + desc


def seeds_cdb():
    d = DEV_512_WCE
    cdb_seed("tur", d)
    cdb_seed("request-sense", d, cmd_rec(cdb6(0x03, 0, 0, 0, 252), 252, IN),
             cmd_rec(cdb6(0x03, 1, 0, 0, 252), 252, IN))
    cdb_seed("inquiry-standard", d, cmd_rec(INQUIRY, 96, IN), cmd_rec(cdb6(0x12, 0, 0, 0, 5), 5, IN))
    for page in (0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2, 0x86, 0xc0):
        cdb_seed("inquiry-vpd-%02x" % page, d, cmd_rec(cdb6(0x12, 1, page, 1, 0), 256, IN))
    cdb_seed("inquiry-bad", d, cmd_rec(cdb6(0x12, 0, 0x80, 0, 96), 96, IN),
             cmd_rec(cdb6(0x12, 2, 0, 0, 96), 96, IN))
    for pc in (0x3f, 0x08, 0x0a, 0x1c, 0x48, 0x7f, 0x00):
        cdb_seed("mode-sense6-%02x" % pc, d, cmd_rec(cdb6(0x1a, 0, pc, 0, 255), 255, IN))
    cdb_seed("mode-sense10", d,
             cmd_rec(bytes([0x5a, 0x08, 0x3f, 0, 0, 0, 0, 0x10, 0, 0]), 4096, IN),
             cmd_rec(bytes([0x5a, 0x10, 0x3f, 0xff, 0, 0, 0, 0x10, 0, 0]), 4096, IN))
    cdb_seed("mode-select6-caching", d,
             cmd_rec(cdb6(0x15, 0x10, 0, 0, len(mode_caching(False))), len(mode_caching(False)), OUT,
                     mode_caching(False)),
             cmd_rec(cdb6(0x1a, 0, 0x08, 0, 255), 255, IN))
    cdb_seed("mode-select6-control-dsense", d,
             cmd_rec(cdb6(0x15, 0x10, 0, 0, len(mode_control())), len(mode_control()), OUT,
                     mode_control()),
             cmd_rec(cdb10(0x28, 1 << 30, 1), 512, IN))
    sel10 = bytes([0, 0, 0, 0, 0, 0, 0, 0]) + mode_caching()[4:]
    cdb_seed("mode-select10", d,
             cmd_rec(bytes([0x55, 0x10, 0, 0, 0, 0, 0, 0, len(sel10), 0]), len(sel10), OUT, sel10,
                     nseq=2))
    cdb_seed("start-stop", d, cmd_rec(cdb6(0x1b, 0, 0, 0, 0)), cmd_rec(cdb6(0x1b, 0, 0, 0, 1)),
             cmd_rec(cdb6(0x1b, 1, 0, 4, 0)), cmd_rec(cdb6(0x1b, 0, 0, 0, 2)))
    cdb_seed("prevent-allow", d, cmd_rec(cdb6(0x1e, 0, 0, 0, 1)), cmd_rec(cdb6(0x1e, 0, 0, 0, 0)))
    cdb_seed("report-luns", d,
             cmd_rec(bytes([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), 256, IN),
             cmd_rec(bytes([0xa0, 0, 2, 0, 0, 0, 0, 0, 0, 8, 0, 0]), 8, IN))
    cdb_seed("report-supported-opcodes", d,
             cmd_rec(bytes([0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]), 4096, IN),
             cmd_rec(bytes([0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]), 4096, IN),
             cmd_rec(bytes([0xa3, 0x0c, 0x01, 0x28, 0, 0, 0, 0, 0x10, 0, 0, 0]), 4096, IN),
             cmd_rec(bytes([0xa3, 0x0c, 0x02, 0x9e, 0, 0x10, 0, 0, 0x10, 0, 0, 0]), 4096, IN),
             cmd_rec(bytes([0xa3, 0x05, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]), 4096, IN))
    cdb_seed("read6", d, cmd_rec(cdb6(0x08, 0, 0, 0, 8), 4096, IN),
             cmd_rec(cdb6(0x08, 0, 0, 0, 0), 131072, IN))
    cdb_seed("write6", d, cmd_rec(cdb6(0x0a, 0, 0, 1, 2), 1024, OUT, pattern(1024)))
    cdb_seed("read10-write10", d, cmd_rec(write10(10, 8), 4096, OUT, pattern(4096), nseq=3),
             cmd_rec(read10(10, 8), 4096, IN), cmd_rec(cdb10(0x28, 250, 8), 4096, IN),
             cmd_rec(cdb10(0x28, 0, 8, b1=0x08), 2048, IN))
    cdb_seed("read12-write12", d, cmd_rec(cdb12(0xaa, 3, 2), 1024, OUT, pattern(1024)),
             cmd_rec(cdb12(0xa8, 3, 2), 1024, IN))
    cdb_seed("read16-write16-fua", d, cmd_rec(cdb16(0x8a, 100, 4, b1=0x08), 2048, OUT, pattern(2048),
                                              nseq=4),
             cmd_rec(cdb16(0x88, 100, 4, b1=0x08), 2048, IN),
             cmd_rec(cdb16(0x88, 1 << 40, 1), 512, IN))
    cdb_seed("write-verify", d,
             cmd_rec(cdb10(0x2e, 0, 2, b1=0x02), 1024, OUT, pattern(1024)),
             cmd_rec(cdb12(0xae, 0, 2), 1024, OUT, pattern(1024)),
             cmd_rec(cdb16(0x8e, 0, 2), 1024, OUT, pattern(1024)))
    cdb_seed("verify", d, cmd_rec(write10(0, 2), 1024, OUT, pattern(1024)),
             cmd_rec(cdb10(0x2f, 0, 2)),
             cmd_rec(cdb10(0x2f, 0, 2, b1=0x02), 1024, OUT, pattern(1024)),
             cmd_rec(cdb12(0xaf, 0, 2, b1=0x06), 512, OUT, pattern(512)),
             cmd_rec(cdb16(0x8f, 0, 2, b1=0x02), 1024, OUT, pattern(1024, 9)))
    cdb_seed("prefetch-sync", d, cmd_rec(cdb10(0x34, 0, 8)), cmd_rec(cdb16(0x90, 0, 8, b1=2)),
             cmd_rec(cdb10(0x35, 0, 0)), cmd_rec(cdb16(0x91, 0, 0, b1=2)))
    cdb_seed("write-same", DEV_4K_THIN,
             cmd_rec(cdb10(0x41, 0, 4), 4096, OUT, pattern(4096)),
             cmd_rec(cdb10(0x41, 4, 4, b1=0x08), 4096, OUT, bytes(4096)),
             cmd_rec(cdb16(0x93, 8, 16, b1=0x09)),
             cmd_rec(cdb16(0x93, 0, 0), 4096, OUT, pattern(4096)))
    um = unmap_list((0, 8), (100, 16), (2040, 8))
    cdb_seed("unmap", DEV_4K_THIN, cmd_rec(cdb10(0x42, 0, len(um)), len(um), OUT, um, nseq=2),
             cmd_rec(cdb10(0x42, 0, 8), 8, OUT, um[:8]))
    cdb_seed("read-capacity", d, cmd_rec(cdb10(0x25), 8, IN),
             cmd_rec(bytes([0x9e, 0x10]) + b"\0" * 8 + struct.pack(">I", 32) + b"\0\0", 32, IN))
    cdb_seed("read-capacity-huge", DEV_HUGE, cmd_rec(cdb10(0x25), 8, IN),
             cmd_rec(bytes([0x9e, 0x10]) + b"\0" * 8 + struct.pack(">I", 32) + b"\0\0", 32, IN),
             cmd_rec(cdb16(0x88, (1 << 40) - 2, 1), 512, IN))
    cdb_seed("get-lba-status", DEV_4K_THIN, cmd_rec(cdb10(0x2a, 3, 1), 4096, OUT, pattern(4096)),
             cmd_rec(bytes([0x9e, 0x12]) + struct.pack(">Q", 0) + struct.pack(">I", 1024) + b"\0\0",
                     1024, IN))
    cdb_seed("compare-and-write", d,
             cmd_rec(bytes([0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]), 1024, OUT,
                     bytes(512) + pattern(512)))
    cdb_seed("orwrite", d, cmd_rec(cdb16(0x8b, 0, 2), 1024, OUT, pattern(1024)))
    cdb_seed("persistent-reserve", d,
             cmd_rec(bytes([0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0]), 24, OUT,
                     bytes(8) + struct.pack(">Q", 0x1234) + bytes(8)),
             cmd_rec(bytes([0x5e, 0x00, 0, 0, 0, 0, 0, 0x10, 0, 0]), 4096, IN),
             cmd_rec(bytes([0x5f, 0x01, 0x03, 0, 0, 0, 0, 0, 24, 0]), 24, OUT,
                     struct.pack(">Q", 0x1234) + bytes(16)),
             cmd_rec(bytes([0x5e, 0x01, 0, 0, 0, 0, 0, 0x10, 0, 0]), 4096, IN))
    cdb_seed("unsupported-opcodes", d,
             cmd_rec(cdb6(0x16)), cmd_rec(cdb6(0x17)), cmd_rec(cdb6(0x04)),
             cmd_rec(cdb10(0x4d, 0, 0x100), 256, IN), cmd_rec(cdb6(0x1d)),
             cmd_rec(cdb10(0x3b), 0, OUT), cmd_rec(cdb10(0x3c, 0, 64), 64, IN),
             cmd_rec(bytes([0x7f, 0, 0, 0, 0, 0, 0, 0x18, 0, 9] + [0] * 22), 512, IN),
             cmd_rec(bytes([0xff]) + b"\0" * 15))
    cdb_seed("read-only-writes", DEV_RO, cmd_rec(write10(0, 1), 512, OUT, pattern(512)),
             cmd_rec(cdb10(0x41, 0, 1, b1=0x08), 512, OUT, bytes(512)),
             cmd_rec(cdb10(0x42, 0, len(um)), len(um), OUT, um),
             cmd_rec(cdb10(0x35)))
    cdb_seed("no-such-lun", d, cmd_rec(INQUIRY, 96, IN, lun1=True),
             cmd_rec(cdb6(0x03, 0, 0, 0, 252), 252, IN, lun1=True),
             cmd_rec(read10(0, 1), 512, IN, lun1=True))
    cdb_seed("residuals", d, cmd_rec(read10(0, 8), 1024, IN), cmd_rec(read10(0, 1), 4096, IN),
             cmd_rec(write10(0, 8), 1024, OUT, pattern(1024)),
             cmd_rec(write10(0, 1), 0xffffff, OUT, pattern(512)),
             cmd_rec(read10(0, 0), 512, IN))
    cdb_seed("task-attributes", d, cmd_rec(TUR, attr=0), cmd_rec(TUR, attr=2), cmd_rec(TUR, attr=3),
             cmd_rec(TUR, attr=4), cmd_rec(TUR, attr=7))
    cdb_seed("tmfs-and-unit-attentions", d, tmf_rec(5), cmd_rec(TUR), nexus_rec(1), cmd_rec(TUR),
             tmf_rec(6), nexus_rec(0), cmd_rec(cdb6(0x03, 0, 0, 0, 252), 252, IN),
             tmf_rec(1), tmf_rec(2), tmf_rec(4), tmf_rec(7), tmf_rec(3), tmf_rec(8),
             tmf_rec(5, lun1=True), nexus_rec(1, end_first=True), cmd_rec(TUR))
    cdb_seed("mode-select-other-nexus", d,
             cmd_rec(cdb6(0x15, 0x11, 0, 0, len(mode_caching(False))), len(mode_caching(False)), OUT,
                     mode_caching(False)),
             nexus_rec(2), cmd_rec(TUR), cmd_rec(TUR))
    # a bad block at LBA 3 (device bit 4, then the errno index; bit 7: FLUSH fails too)
    for i, name in enumerate(("eio", "enospc", "erofs", "enomem")):
        write("fuzz_cdb", "bad-block-" + name,
              bytes([0x08 | 0x04 | 0x10 | 2 << 5, i | 0x80]) + cmd_rec(TUR) +
              cmd_rec(read10(0, 8), 4096, IN) + cmd_rec(write10(2, 4), 2048, OUT, pattern(2048), nseq=2) +
              cmd_rec(cdb10(0x41, 0, 8, b1=0x08), 512, OUT, bytes(512)) +
              cmd_rec(cdb10(0x2f, 0, 8, b1=0x02), 4096, OUT, bytes(4096)) + cmd_rec(cdb10(0x35)) +
              cmd_rec(cdb6(0x1b, 0, 0, 0, 0)))
    cdb_seed("cdb-lengths", d, cmd_rec(b"\x00"), cmd_rec(cdb16(0x88, 0, 1)[:10], 512, IN),
             cmd_rec(bytes([0x28]) + b"\0" * 31, 512, IN))


# --------------------------------------------------------------------------
# fuzz_chap: byte 0 options, then requests split by 0xff
# --------------------------------------------------------------------------

def chap_seed(name, opts, *requests):
    write("fuzz_chap", name, bytes([opts]) + SEP.join(requests))


def seeds_chap():
    user1 = b"CHAP_N=fuzz-chap-user"
    zero_r16 = b"CHAP_R=0x" + b"00" * 16
    for alg, dlen in ((5, 16), (6, 20), (7, 32), (8, 32)):
        chap_seed("alg%d-right-response" % alg, 0x02,
                  text(b"CHAP_A=%d" % alg), text(user1, b"CHAP_R=0x" + b"00" * dlen))
        chap_seed("alg%d-mutual" % alg, 0x03,
                  text(b"CHAP_A=%d" % alg),
                  text(user1, b"CHAP_R=0x" + b"00" * dlen, b"CHAP_I=7",
                       b"CHAP_C=0x" + bytes(range(16)).hex().encode()))
    chap_seed("open-iscsi-flow", 0x02, text(b"AuthMethod=CHAP,None"), text(b"CHAP_A=5"),
              text(user1, zero_r16), b"")
    chap_seed("alg-list", 0x02, text(b"CHAP_A=9,0x07,5,256,abc"), text(user1, b"CHAP_R=0x" + b"00" * 32))
    chap_seed("base64-response", 0x06, text(b"CHAP_A=5"), text(user1, b"CHAP_R=0bAAAAAAAAAAAAAAAAAAAAAA=="))
    chap_seed("base64-mutual", 0x07, text(b"CHAP_A=5"),
              text(user1, zero_r16, b"CHAP_I=0x10", b"CHAP_C=0bAAECAwQFBgcICQoLDA0ODw=="))
    chap_seed("short-user", 0x0a, text(b"CHAP_A=5"), text(b"CHAP_N=u", zero_r16))
    chap_seed("wrong-response", 0x00, text(b"CHAP_A=5"), text(user1, zero_r16))
    chap_seed("wrong-user", 0x02, text(b"CHAP_A=5"), text(b"CHAP_N=someone", zero_r16))
    chap_seed("reflection", 0x03, text(b"CHAP_A=5"),
              text(user1, zero_r16, b"CHAP_I=1", b"CHAP_C=0x" + b"00" * 16))
    chap_seed("mutual-not-configured", 0x02, text(b"CHAP_A=5"),
              text(user1, zero_r16, b"CHAP_I=1", b"CHAP_C=0x0102030405060708090a0b0c0d0e0f10"))
    chap_seed("keys-out-of-order", 0x02, text(user1, zero_r16), text(b"CHAP_A=5", b"CHAP_I=1"))
    chap_seed("duplicate-keys", 0x02, text(b"CHAP_A=5", b"CHAP_A=6"))
    chap_seed("after-done", 0x02, text(b"CHAP_A=5"), text(user1, zero_r16), text(b"CHAP_A=5"))
    chap_seed("odd-hex-and-limits", 0x03, text(b"CHAP_A=5"),
              text(user1, b"CHAP_R=0x" + b"0" * 31, b"CHAP_I=256", b"CHAP_C=0x" + b"f" * 2049))
    chap_seed("no-peer-credentials", 0x10, text(b"CHAP_A=5"), text(user1, zero_r16))
    chap_seed("credentials-values", 0x00,
              text(b"X=user:twelve-bytes", b"Y=:secretsecretsecret", b"Z=nouser",
                   b"W=u:short", b"V=0B" + b"A" * 8 + b"=="))


# --------------------------------------------------------------------------
# dictionaries
# --------------------------------------------------------------------------

KEYS = [b"HeaderDigest", b"DataDigest", b"MaxConnections", b"SendTargets", b"TargetName",
        b"InitiatorName", b"TargetAlias", b"InitiatorAlias", b"TargetAddress",
        b"TargetPortalGroupTag", b"InitialR2T", b"ImmediateData", b"MaxRecvDataSegmentLength",
        b"MaxBurstLength", b"FirstBurstLength", b"DefaultTime2Wait", b"DefaultTime2Retain",
        b"MaxOutstandingR2T", b"DataPDUInOrder", b"DataSequenceInOrder", b"ErrorRecoveryLevel",
        b"SessionType", b"TaskReporting", b"iSCSIProtocolLevel", b"IFMarker", b"OFMarker",
        b"IFMarkInt", b"OFMarkInt", b"X#NodeArchitecture", b"AuthMethod", b"CHAP_A", b"CHAP_I",
        b"CHAP_C", b"CHAP_N", b"CHAP_R"]
VALUES = [b"None", b"CRC32C", b"Yes", b"No", b"Normal", b"Discovery", b"All", b"CHAP",
          b"Reject", b"Irrelevant", b"NotUnderstood", b"ResponseFence", b"FastAbort", b"0x",
          b"0b", b"16777215", b"16777216", b"512", b"511", b"65535", b"65536", b"3600", b"0",
          b"1", b"2", b"5", b"6", b"7", b"8", TARGET, INITIATOR]


def dict_line(b):
    return '"' + "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else "\\x%02x" % c
                         for c in b) + '"\n'


def write_dicts():
    d = os.path.join(ROOT, "dict")
    os.makedirs(d, exist_ok=True)
    keys = [k + b"=" for k in KEYS] + VALUES + [b"\0", b"\xff"]
    for name in ("fuzz_text_keys", "fuzz_chap"):
        with open(os.path.join(d, name + ".dict"), "w") as f:
            f.write("# generated by fuzz/make_corpus.py: key names and values of RFC 7143\n")
            for k in keys:
                f.write(dict_line(k))
    with open(os.path.join(d, "fuzz_pdu.dict"), "w") as f:
        f.write("# generated by fuzz/make_corpus.py: key names and values of RFC 7143\n")
        for k in [k + b"=" for k in KEYS] + VALUES:
            f.write(dict_line(k))
        f.write(dict_line(b"\xff\xff\xff\xff"))


def main():
    seeds_pdu()
    seeds_text_keys()
    seeds_cdb()
    seeds_chap()
    write_dicts()
    total = sum(os.path.getsize(os.path.join(ROOT, "corpus", h, n)) for h, n in written)
    print("make_corpus.py: %d seeds, %d bytes" % (len(written), total), file=sys.stderr)


if __name__ == "__main__":
    main()
