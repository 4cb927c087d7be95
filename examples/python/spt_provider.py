#!/usr/bin/env python3
"""spt_provider.py: an external spt storage provider in pure Python.

It serves one LUN of sptd (a RAM disk, or a file or block device with --file)
over sptd's provider socket, and shows that the wire format of
include/spt/spt.h needs nothing but a Unix socket, struct and mmap.

The protocol in a few lines (all integers little-endian, structs packed):

  * every frame is a 28-byte header -- HeaderLength u32 (= 28), Signature
    "SPTPT001", Timeout u32, ControlCode u32, ReturnCode u32, Length u32 --
    followed by Length bytes of payload;
  * the provider connects to `sptd --provider-socket PATH` and sends
    PROVIDER_REGISTER (0x110) with version 1 and the NAME of a
    `--lun provider:NAME`; sptd answers with PROVIDER_REGISTER, ReturnCode 0,
    struct spt_provider_registered (LUN, shared memory size, largest command
    buffer, target name...) and a memfd attached with SCM_RIGHTS;
  * sptd then sends SESSION_START (0x100) / SESSION_END (0x101)
    notifications, TMF (0x102) requests (answered with the same tmf_cookie)
    and SCSI_REQUEST (0x103) frames, each answered by one SCSI_COMPLETION
    (0x104) with the same task_cookie;
  * bulk data never crosses the socket: a request names its command buffer,
    shm[data_offset : data_offset + buf_len]. Data-out of a sequence is at
    [sequence_byte_offset, + data_length) of that buffer; data-in is written
    at its start. A WRITE larger than one burst comes as several requests of
    one task_cookie; is_final=1 marks the last, a GOOD completion of an
    earlier one asks for more data.

The SCSI emulation (SPC-4 / SBC-3: INQUIRY and its VPD pages, mode pages,
READ/WRITE/VERIFY/WRITE SAME/UNMAP/COMPARE AND WRITE ...) mirrors the C
helpers in src/scsi/ so that the LUN answers like a built-in one.

Usage:
  python3 spt_provider.py --socket /run/sptd/provider.sock --name py0 \\
      --size 1G [--block-size 512|4096] [--file PATH] [--read-only] \\
      [--once] [-v]

Only the Python standard library is used. The process reconnects every
second while sptd is not there (unless --once) and exits 0 on SIGTERM.
"""

import argparse
import errno
import hashlib
import mmap
import os
import re
import select
import signal
import socket
import stat
import struct
import sys

# ---------------------------------------------------------------------------
# Wire format (include/spt/spt.h)
# ---------------------------------------------------------------------------

SIGNATURE = b"SPTPT001"
HEADER = struct.Struct("<I8sIIII")  # HeaderLength, Signature, Timeout, ControlCode, ReturnCode, Length
FRAME_MAX = 4096                    # SPT_PROVIDER_FRAME_MAX: largest payload either side sends
PROVIDER_VERSION = 1
NAME_MAX = 64                       # NUL included

CC_SESSION_START = 0x100
CC_SESSION_END = 0x101
CC_TMF = 0x102
CC_SCSI_REQUEST = 0x103
CC_SCSI_COMPLETION = 0x104
CC_PROVIDER_REGISTER = 0x110

# enum spt_ctl_return_code, the values PROVIDER_REGISTER can answer with
RC_NAMES = {
    0: "SUCCESS", 1: "BAD_FRAME", 2: "UNSUPPORTED", 3: "BAD_REQUEST",
    6: "PERMISSION", 7: "BUSY", 8: "NO_MEMORY", 9: "SHUTTING_DOWN",
    10: "UNKNOWN_PROVIDER", 11: "PROVIDER_IN_USE", 12: "VERSION",
}
RC_RETRY = {7, 8, 9, 10, 11}        # worth trying again a second later

# struct spt_provider_register: version, flags, name[64]
REGISTER = struct.Struct("<II64s")
# struct spt_provider_registered: lun, shm_size, max_transfer_bytes,
# command_timeout, relative_port, tpgt, version, target_name[224]
REGISTERED = struct.Struct("<QQIIHHI224s")
# struct spt_session_start: is_reinstated, reserved[7], itnexus_handle,
# peer_address[64], itnexus[512], chap_user_name[256]
SESSION_START = struct.Struct("<B7xQ64s512s256s")
# struct spt_session_end: itnexus_handle (struct spt_ctl_session_stop adds 8 bytes)
SESSION_END = struct.Struct("<Q")
# struct spt_wire_tmf: tmf_cookie, then struct spt_tmf_wire: itnexus_handle,
# lun, function, response, reference_task_cookie
WIRE_TMF = struct.Struct("<QQQIIQ")
# struct spt_wire_scsi_request: struct spt_scsi_request (session_cookie,
# task_cookie, lun, sequence_byte_offset, data_length, expected_length,
# is_final, direction, cdb_length, task_attribute, cdb[32]), then
# data_offset, buf_len, reserved
WIRE_SCSI_REQUEST = struct.Struct("<QQQIIIBBBB32sQII")
# struct spt_scsi_completion: task_cookie, transfer_length, data_in_length,
# scsi_status, sense_length, reserved[2], sense[252]
COMPLETION = struct.Struct("<QIIBB2x252s")
SENSE_MAX = 252

assert HEADER.size == 28 and REGISTER.size == 72 and REGISTERED.size == 256
assert SESSION_START.size == 848 and WIRE_TMF.size == 40
assert WIRE_SCSI_REQUEST.size == 88 and COMPLETION.size == 272

# TMF functions and responses (RFC 7143 11.5.1, 11.6.1)
TMF_ABORT_TASK, TMF_ABORT_TASK_SET, TMF_CLEAR_ACA, TMF_CLEAR_TASK_SET = 1, 2, 3, 4
TMF_LUN_RESET, TMF_TARGET_WARM_RESET, TMF_TARGET_COLD_RESET = 5, 6, 7
TMF_RSP_COMPLETE, TMF_RSP_NOT_SUPPORTED = 0, 5

# SAM status codes
GOOD, CHECK_CONDITION, BUSY = 0x00, 0x02, 0x08

# Sense keys (SPC-4 4.5.6)
NO_SENSE, NOT_READY, MEDIUM_ERROR, HARDWARE_ERROR = 0x0, 0x2, 0x3, 0x4
ILLEGAL_REQUEST, UNIT_ATTENTION, DATA_PROTECT = 0x5, 0x6, 0x7
ABORTED_COMMAND, MISCOMPARE = 0xB, 0xE

# ---------------------------------------------------------------------------
# Sense data and CHECK CONDITION
# ---------------------------------------------------------------------------


def build_sense(descriptor, key, asc, ascq, information=None, sks=None):
    """Fixed (0x70) or descriptor (0x72) sense data, as src/scsi/sense.c builds it."""
    if not descriptor:
        s = bytearray(18)
        s[0] = 0x70
        s[2] = key & 0x0F
        s[7] = 10                       # additional sense length
        s[12], s[13] = asc, ascq
        if information is not None and information <= 0xFFFFFFFF:
            s[0] |= 0x80                # VALID: the INFORMATION field means something
            s[3:7] = information.to_bytes(4, "big")
        if sks is not None:
            s[15] = sks[0] | 0x80       # SKSV
            s[16], s[17] = sks[1], sks[2]
        return bytes(s)
    s = bytearray([0x72, key & 0x0F, asc, ascq, 0, 0, 0, 0])
    if information is not None:         # information descriptor
        s += bytes([0x00, 0x0A, 0x80, 0x00]) + information.to_bytes(8, "big")
    if sks is not None:                 # sense-key specific descriptor
        s += bytes([0x02, 0x06, 0, 0, sks[0] | 0x80, sks[1], sks[2], 0])
    s[7] = len(s) - 8
    return bytes(s)


class CheckCondition(Exception):
    """Ends a command with CHECK CONDITION and this sense."""

    def __init__(self, key, asc, ascq=0, information=None, sks=None):
        super().__init__("sense %x/%02x/%02x" % (key, asc, ascq))
        self.key, self.asc, self.ascq = key, asc, ascq
        self.information, self.sks = information, sks


def field_pointer(in_cdb, byte, bit):
    """SPC-4 4.5.2.4.2 field pointer: C/D bit, bit pointer, byte."""
    b0 = 0x40 if in_cdb else 0x00
    if bit is not None:
        b0 |= 0x08 | bit                # BPV
    return (b0, (byte >> 8) & 0xFF, byte & 0xFF)


def invalid_field_in_cdb(byte, bit=None):
    return CheckCondition(ILLEGAL_REQUEST, 0x24, 0x00, sks=field_pointer(True, byte, bit))


def invalid_field_in_param(byte, bit=None):
    return CheckCondition(ILLEGAL_REQUEST, 0x26, 0x00, sks=field_pointer(False, byte, bit))


def invalid_opcode():
    return CheckCondition(ILLEGAL_REQUEST, 0x20, 0x00)


def lba_out_of_range():
    return CheckCondition(ILLEGAL_REQUEST, 0x21, 0x00)


def invalid_field_in_cmd_iu():
    # 0E/03: the data-out the initiator announced does not fit the CDB
    return CheckCondition(ILLEGAL_REQUEST, 0x0E, 0x03)


def not_enough_data():
    # 0C/0D NOT ENOUGH UNSOLICITED DATA: the data-out ended early
    return CheckCondition(ABORTED_COMMAND, 0x0C, 0x0D)


def param_list_length_error():
    return CheckCondition(ILLEGAL_REQUEST, 0x1A, 0x00)


def high_bit(value):
    """Highest set bit of a non-zero byte (for sense bit pointers)."""
    return value.bit_length() - 1


# ---------------------------------------------------------------------------
# Backing stores
# ---------------------------------------------------------------------------

CHUNK = 1 << 20                         # bytes per bounce buffer / zeroing step


class RamStore:
    """Anonymous memory; deallocated pages read as zeros (thin provisioning)."""

    description = "RAM"

    def __init__(self, size):
        self.size = size
        # private anonymous memory: pages given back with MADV_DONTNEED read as zeros
        self.map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
        self.view = memoryview(self.map)

    def read_into(self, dst, offset):
        dst[:] = self.view[offset:offset + len(dst)]

    def write(self, offset, src, durable=False):
        self.view[offset:offset + len(src)] = src

    def zero(self, offset, length):
        page = mmap.PAGESIZE
        first = -(-offset // page) * page
        last = (offset + length) // page * page
        if last > first and hasattr(self.map, "madvise"):
            # give whole pages back to the kernel: they read as zeros again
            self.map.madvise(mmap.MADV_DONTNEED, first, last - first)
            self._fill(offset, first - offset)
            self._fill(last, offset + length - last)
        else:
            self._fill(offset, length)

    def _fill(self, offset, length):
        while length > 0:
            n = min(length, CHUNK)
            self.view[offset:offset + n] = bytes(n)
            offset += n
            length -= n

    def flush(self):
        pass                            # nothing is durable in RAM anyway

    def close(self):
        self.view.release()
        self.map.close()


class FileStore:
    """A regular file or a block device, through pread/pwrite."""

    description = "file"

    def __init__(self, path, size, read_only):
        flags = os.O_RDONLY if read_only else os.O_RDWR | os.O_CREAT
        self.fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
        st = os.fstat(self.fd)
        if stat.S_ISBLK(st.st_mode):
            have = os.lseek(self.fd, 0, os.SEEK_END)
        elif stat.S_ISREG(st.st_mode):
            have = st.st_size
        else:
            raise ValueError("%s is neither a regular file nor a block device" % path)
        if size is None:
            size = have
        elif size > have:
            if read_only or not stat.S_ISREG(st.st_mode):
                raise ValueError("%s holds %d bytes, less than --size" % (path, have))
            os.ftruncate(self.fd, size)     # grows sparse
        self.size = size
        self.path = path

    def read_into(self, dst, offset):
        done = 0
        while done < len(dst):
            n = os.preadv(self.fd, [dst[done:]], offset + done)
            if n == 0:                  # beyond the end of a short file: zeros
                dst[done:] = bytes(len(dst) - done)
                return
            done += n

    def write(self, offset, src, durable=False):
        # RWF_DSYNC makes just this write durable (FUA) without a full fdatasync
        dsync = getattr(os, "RWF_DSYNC", None) if durable else 0
        done = 0
        while done < len(src):
            done += os.pwritev(self.fd, [src[done:]], offset + done, dsync or 0)
        if durable and dsync is None:
            os.fdatasync(self.fd)

    def zero(self, offset, length):
        zeros = bytes(min(length, CHUNK))
        while length > 0:
            n = min(length, CHUNK)
            self.write(offset, zeros[:n])
            offset += n
            length -= n

    def flush(self):
        os.fdatasync(self.fd)

    def close(self):
        os.close(self.fd)


# ---------------------------------------------------------------------------
# One SCSI request and its completion
# ---------------------------------------------------------------------------


class Command:
    """A SCSI_REQUEST as the emulation sees it, and the completion it builds."""

    def __init__(self, fields, buf):
        (self.session, self.cookie, self.lun, self.seq_offset, self.data_length,
         self.expected_length, is_final, self.direction, self.cdb_length,
         self.task_attribute, cdb, _data_offset, _buf_len, _reserved) = fields
        self.is_final = bool(is_final)
        self.cdb = cdb                  # all 32 bytes; zeros after cdb_length
        self.buf = buf                  # memoryview of the command buffer in shm
        # the completion
        self.status = GOOD
        self.sense = b""
        self.transfer_length = 0
        self.data_in_length = 0

    @property
    def received(self):
        """Data-out bytes in the buffer so far (all sequences up to this one)."""
        return min(self.seq_offset + self.data_length, len(self.buf))

    def data_in(self, data, limit=None):
        """Returns data-in: at most `limit` (allocation length) bytes of data,
        bounded by the buffer. transfer_length is what the CDB asks for."""
        if limit is not None:
            data = data[:limit]
        n = min(len(data), len(self.buf))
        self.buf[:n] = data[:n]
        self.data_in_length = n
        self.transfer_length = len(data)


class Task:
    """A command that spans several requests (data-out in sequences), or that
    acts once its data-out is complete."""

    def __init__(self, session, transfer_length, on_final=None, on_data=None):
        self.session = session
        self.cdb = None                 # set by the dispatcher
        self.received = 0               # data-out bytes seen so far
        self.transfer_length = transfer_length
        self.on_final = on_final        # called with the is_final request
        self.on_data = on_data          # called with every request, first included


class Nexus:
    """Per I_T nexus state: pending unit attentions, PREVENT ALLOW state."""

    UA_MAX = 8

    def __init__(self):
        self.unit_attentions = []       # (asc, ascq), oldest first
        self.prevent = False

    def queue_ua(self, asc, ascq):
        if (asc, ascq) in self.unit_attentions:
            return
        if len(self.unit_attentions) == self.UA_MAX:
            self.unit_attentions.pop(0)     # SAM-5 5.14: keep the newest
        self.unit_attentions.append((asc, ascq))


# ---------------------------------------------------------------------------
# The logical unit: SPC-4 / SBC-3 emulation
# ---------------------------------------------------------------------------

# Operation codes
OP_TEST_UNIT_READY, OP_REQUEST_SENSE, OP_INQUIRY = 0x00, 0x03, 0x12
OP_MODE_SELECT6, OP_MODE_SENSE6, OP_START_STOP_UNIT, OP_PREVENT_ALLOW = 0x15, 0x1A, 0x1B, 0x1E
OP_MODE_SELECT10, OP_MODE_SENSE10 = 0x55, 0x5A
OP_REPORT_LUNS, OP_MAINTENANCE_IN = 0xA0, 0xA3
SA_READ_CAPACITY16, SA_GET_LBA_STATUS, SA_REPORT_SUPPORTED_OPCODES = 0x10, 0x12, 0x0C

# Kinds of block commands
(K_READ, K_WRITE, K_WRITE_VERIFY, K_ORWRITE, K_VERIFY, K_PREFETCH, K_SYNC_CACHE,
 K_WRITE_SAME, K_UNMAP, K_READ_CAPACITY10, K_SERVICE_ACTION_IN, K_COMPARE_AND_WRITE) = range(12)


class CdbLayout:
    """Where one block command keeps LBA and count, and its reserved bits."""

    def __init__(self, kind, length, lba, count, protect, reserved):
        self.kind, self.length, self.protect = kind, length, protect
        self.lba_off, self.lba_len = lba
        self.count_off, self.count_len = count
        self.reserved = reserved        # {byte: mask of reserved bits}, CONTROL excluded


_G = 0xE0                               # reserved bits 7-5 of GROUP NUMBER
CDB_LAYOUTS = {
    0x08: CdbLayout(K_READ, 6, (1, 3), (4, 1), False, {1: 0xE0}),
    0x0A: CdbLayout(K_WRITE, 6, (1, 3), (4, 1), False, {1: 0xE0}),
    0x28: CdbLayout(K_READ, 10, (2, 4), (7, 2), True, {1: 0x04, 6: _G}),
    0x2A: CdbLayout(K_WRITE, 10, (2, 4), (7, 2), True, {1: 0x04, 6: _G}),
    0xA8: CdbLayout(K_READ, 12, (2, 4), (6, 4), True, {1: 0x04, 10: _G}),
    0xAA: CdbLayout(K_WRITE, 12, (2, 4), (6, 4), True, {1: 0x04, 10: _G}),
    0x88: CdbLayout(K_READ, 16, (2, 8), (10, 4), True, {1: 0x05, 14: _G}),
    0x8A: CdbLayout(K_WRITE, 16, (2, 8), (10, 4), True, {1: 0x05, 14: _G}),
    0x2F: CdbLayout(K_VERIFY, 10, (2, 4), (7, 2), True, {1: 0x08, 6: _G}),
    0xAF: CdbLayout(K_VERIFY, 12, (2, 4), (6, 4), True, {1: 0x08, 10: _G}),
    0x8F: CdbLayout(K_VERIFY, 16, (2, 8), (10, 4), True, {1: 0x09, 14: _G}),
    0x2E: CdbLayout(K_WRITE_VERIFY, 10, (2, 4), (7, 2), True, {1: 0x08, 6: _G}),
    0xAE: CdbLayout(K_WRITE_VERIFY, 12, (2, 4), (6, 4), True, {1: 0x08, 10: _G}),
    0x8E: CdbLayout(K_WRITE_VERIFY, 16, (2, 8), (10, 4), True, {1: 0x09, 14: _G}),
    0x8B: CdbLayout(K_ORWRITE, 16, (2, 8), (10, 4), True, {1: 0x05, 14: _G}),
    0x34: CdbLayout(K_PREFETCH, 10, (2, 4), (7, 2), False, {1: 0xFC, 6: _G}),
    0x90: CdbLayout(K_PREFETCH, 16, (2, 8), (10, 4), False, {1: 0xFD, 14: _G}),
    0x35: CdbLayout(K_SYNC_CACHE, 10, (2, 4), (7, 2), False, {1: 0xF8, 6: _G}),
    0x91: CdbLayout(K_SYNC_CACHE, 16, (2, 8), (10, 4), False, {1: 0xF9, 14: _G}),
    0x41: CdbLayout(K_WRITE_SAME, 10, (2, 4), (7, 2), True, {1: 0x07, 6: _G}),
    0x93: CdbLayout(K_WRITE_SAME, 16, (2, 8), (10, 4), True, {1: 0x06, 14: _G}),
    0x42: CdbLayout(K_UNMAP, 10, (0, 0), (7, 2), False,
                    {1: 0xFE, 2: 0xFF, 3: 0xFF, 4: 0xFF, 5: 0xFF, 6: _G}),
    0x25: CdbLayout(K_READ_CAPACITY10, 10, (2, 4), (0, 0), False, {1: 0xFE, 6: 0xFF, 7: 0xFF, 8: 0xFE}),
    0x9E: CdbLayout(K_SERVICE_ACTION_IN, 16, (2, 8), (10, 4), False, {1: 0xE0}),
    0x89: CdbLayout(K_COMPARE_AND_WRITE, 16, (2, 8), (13, 1), True,
                    {1: 0x05, 10: 0xFF, 11: 0xFF, 12: 0xFF, 14: _G}),
}

# REPORT SUPPORTED OPERATION CODES: (opcode, service action or None, CDB usage data)
_RW = 0xFA                              # protect field, DPO, FUA, FUA_NV
_VFY = 0xF6                             # protect field, DPO, BYTCHK
_F4 = (0xFF,) * 4
SUPPORTED_OPCODES = [
    (0x00, None, (0x00, 0, 0, 0, 0, 0)),
    (0x03, None, (0x03, 0x01, 0, 0, 0xFF, 0)),
    (0x08, None, (0x08, 0x1F, 0xFF, 0xFF, 0xFF, 0)),
    (0x0A, None, (0x0A, 0x1F, 0xFF, 0xFF, 0xFF, 0)),
    (0x12, None, (0x12, 0x01, 0xFF, 0xFF, 0xFF, 0)),
    (0x15, None, (0x15, 0x11, 0, 0, 0xFF, 0)),
    (0x1A, None, (0x1A, 0x08, 0xFF, 0xFF, 0xFF, 0)),
    (0x1B, None, (0x1B, 0x01, 0, 0x0F, 0xF7, 0)),
    (0x1E, None, (0x1E, 0, 0, 0, 0x03, 0)),
    (0x25, None, (0x25, 0) + _F4 + (0, 0, 0x01, 0)),
    (0x28, None, (0x28, _RW) + _F4 + (0x1F, 0xFF, 0xFF, 0)),
    (0x2A, None, (0x2A, _RW) + _F4 + (0x1F, 0xFF, 0xFF, 0)),
    (0x2E, None, (0x2E, _VFY) + _F4 + (0x1F, 0xFF, 0xFF, 0)),
    (0x2F, None, (0x2F, _VFY) + _F4 + (0x1F, 0xFF, 0xFF, 0)),
    (0x34, None, (0x34, 0x02) + _F4 + (0x1F, 0xFF, 0xFF, 0)),
    (0x35, None, (0x35, 0x06) + _F4 + (0x1F, 0xFF, 0xFF, 0)),
    (0x41, None, (0x41, 0xF8) + _F4 + (0x1F, 0xFF, 0xFF, 0)),
    (0x42, None, (0x42, 0x01, 0, 0, 0, 0, 0x1F, 0xFF, 0xFF, 0)),
    (0x55, None, (0x55, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0)),
    (0x5A, None, (0x5A, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0)),
    (0x88, None, (0x88, _RW) + _F4 + _F4 + _F4 + (0x1F, 0)),
    (0x89, None, (0x89, 0xFA) + _F4 + _F4 + (0, 0, 0, 0xFF, 0x1F, 0)),
    (0x8A, None, (0x8A, _RW) + _F4 + _F4 + _F4 + (0x1F, 0)),
    (0x8B, None, (0x8B, _RW) + _F4 + _F4 + _F4 + (0x1F, 0)),
    (0x8E, None, (0x8E, _VFY) + _F4 + _F4 + _F4 + (0x1F, 0)),
    (0x8F, None, (0x8F, _VFY) + _F4 + _F4 + _F4 + (0x1F, 0)),
    (0x90, None, (0x90, 0x02) + _F4 + _F4 + _F4 + (0x1F, 0)),
    (0x91, None, (0x91, 0x06) + _F4 + _F4 + _F4 + (0x1F, 0)),
    (0x93, None, (0x93, 0xF9) + _F4 + _F4 + _F4 + (0x1F, 0)),
    (0x9E, 0x10, (0x9E, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0) + _F4 + (0, 0)),
    (0x9E, 0x12, (0x9E, 0x1F) + _F4 + _F4 + _F4 + (0, 0)),
    (0xA0, None, (0xA0, 0, 0xFF, 0, 0, 0) + _F4 + (0, 0)),
    (0xA3, 0x0C, (0xA3, 0x1F, 0x87, 0xFF, 0xFF, 0xFF) + _F4 + (0, 0)),
    (0xA8, None, (0xA8, _RW) + _F4 + _F4 + (0x1F, 0)),
    (0xAA, None, (0xAA, _RW) + _F4 + _F4 + (0x1F, 0)),
    (0xAE, None, (0xAE, _VFY) + _F4 + _F4 + (0x1F, 0)),
    (0xAF, None, (0xAF, _VFY) + _F4 + _F4 + (0x1F, 0)),
]

# Mode pages (SPC-4 7.5, SBC-3 6.4)
MP_CACHING, MP_CONTROL, MP_IEC, MP_ALL = 0x08, 0x0A, 0x1C, 0x3F
MODE_PAGE_LENGTHS = {MP_CACHING: 20, MP_CONTROL: 12, MP_IEC: 12}
PC_CURRENT, PC_CHANGEABLE, PC_DEFAULT, PC_SAVED = 0, 1, 2, 3

# Limits advertised in the Block Limits VPD page and enforced here
MAX_WRITE_SAME_BLOCKS = 65535
MAX_UNMAP_DESCRIPTORS = 256
OPTIMAL_TRANSFER_BYTES = 1 << 20


class LogicalUnit:
    """A direct-access block device over a store, with the per-LU SCSI state."""

    TASKS_MAX = 4096                    # commands waiting for data-out, at most

    def __init__(self, store, block_size, name, read_only=False, vendor="SPT",
                 product="PYTHON PROVIDER", revision="0001"):
        self.store = store
        self.block_size = block_size
        self.num_blocks = store.size // block_size
        self.read_only = read_only
        self.thin = not read_only       # UNMAP and WRITE SAME(UNMAP): zeroing is enough (LBPRZ)
        self.vendor, self.product, self.revision = vendor, product, revision
        # identity, stable across restarts: NAA 3h (locally assigned) from the name
        h = int.from_bytes(hashlib.sha256(("spt-provider:" + name).encode()).digest()[:8], "big")
        self.naa = (0x3 << 60) | (h & ((1 << 60) - 1))
        self.serial = "%016x" % h
        # mode parameters MODE SELECT can change (reset by a LUN reset)
        self.wce_default = True         # acknowledged writes may sit in the page cache
        self.wce = self.wce_default
        self.d_sense = False
        self.swp = False
        self.stopped = False            # START STOP UNIT START=0
        # set from the registration answer
        self.lun = 0
        self.max_transfer_bytes = 0
        self.relative_port = 1
        self.target_name = ""
        self.nexus = {}                 # itnexus_handle -> Nexus
        self.tasks = {}                 # task_cookie -> Task, commands awaiting more data-out

    # -- life cycle --------------------------------------------------------

    def attach(self, lun, max_transfer_bytes, relative_port, target_name):
        """A new connection to sptd: forget the sessions and tasks of the last."""
        self.lun = lun
        self.max_transfer_bytes = max_transfer_bytes
        self.relative_port = relative_port
        self.target_name = target_name
        self.nexus.clear()
        self.tasks.clear()

    def session_start(self, handle, reinstated):
        if handle not in self.nexus:
            self.nexus[handle] = Nexus()
            # SAM-5 6.3.4: a reinstated session means the previous I_T nexus was lost
            if reinstated:
                self.nexus[handle].queue_ua(0x29, 0x07)

    def session_end(self, handle):
        self.nexus.pop(handle, None)
        self._drop_tasks(lambda t: t.session == handle)

    def _drop_tasks(self, match):
        for cookie in [c for c, t in self.tasks.items() if match(t)]:
            del self.tasks[cookie]

    def unit_attention_all(self, asc, ascq, except_handle=None):
        for handle, nexus in self.nexus.items():
            if handle != except_handle:
                nexus.queue_ua(asc, ascq)

    def _lu_reset(self, ascq):
        """SAM-5 6.3.3: mode pages to their defaults, started, UA for everyone."""
        self.wce, self.d_sense, self.swp, self.stopped = self.wce_default, False, False, False
        self.tasks.clear()
        for nexus in self.nexus.values():
            nexus.prevent = False
            nexus.queue_ua(0x29, ascq)

    def tmf(self, handle, function, ref_cookie):
        """Applies a task management function; returns the TMF response.
        Commands complete synchronously here, so only the ones waiting for
        more data-out can be aborted."""
        if function == TMF_ABORT_TASK:
            self.tasks.pop(ref_cookie, None)
        elif function == TMF_ABORT_TASK_SET:
            self._drop_tasks(lambda t: t.session == handle)
        elif function == TMF_CLEAR_ACA:
            pass                        # NACA is not supported: there is never an ACA
        elif function == TMF_CLEAR_TASK_SET:
            self.tasks.clear()
            self.unit_attention_all(0x2F, 0x00, except_handle=handle)   # COMMANDS CLEARED
        elif function in (TMF_LUN_RESET, TMF_TARGET_WARM_RESET):
            self._lu_reset(0x03)        # BUS DEVICE RESET FUNCTION OCCURRED
        elif function == TMF_TARGET_COLD_RESET:
            self._lu_reset(0x01)        # POWER ON OCCURRED
        else:
            return TMF_RSP_NOT_SUPPORTED
        return TMF_RSP_COMPLETE

    # -- dispatch ----------------------------------------------------------

    def execute(self, cmd):
        """Runs one SCSI request and fills its completion."""
        task = self.tasks.pop(cmd.cookie, None)
        if task is not None and (task.cdb != cmd.cdb or cmd.seq_offset < task.received):
            task = None                 # not a continuation: the cookie names a new command
        try:
            if task is None:
                # first request of the command
                if cmd.cdb[0] not in (OP_INQUIRY, OP_REPORT_LUNS, OP_REQUEST_SENSE):
                    self._report_unit_attention(cmd)
                task = self._start(cmd)
                if task is None:
                    return              # done: completion filled
                task.cdb = cmd.cdb
            cmd.transfer_length = task.transfer_length
            task.received = cmd.seq_offset + cmd.data_length
            if task.on_data is not None:
                task.on_data(cmd)
            if not cmd.is_final:
                # GOOD: send the next data sequence
                if len(self.tasks) >= self.TASKS_MAX:
                    self.tasks.pop(next(iter(self.tasks)))  # forget the oldest
                self.tasks[cmd.cookie] = task
            elif task.on_final is not None:
                task.on_final(cmd)
        except CheckCondition as cc:
            cmd.status = CHECK_CONDITION
            cmd.sense = build_sense(self.d_sense, cc.key, cc.asc, cc.ascq, cc.information, cc.sks)
            cmd.data_in_length = 0
        except OSError as e:
            self._io_error(cmd, e)

    def _io_error(self, cmd, e):
        reading = cmd.direction == 2
        if e.errno in (errno.ENOMEM, errno.EAGAIN, errno.EBUSY):
            cmd.status, cmd.sense = BUSY, b""
            return
        if e.errno == errno.ENOSPC:
            key, asc = MEDIUM_ERROR, 0x0C
        elif e.errno in (errno.EROFS, errno.EPERM, errno.EACCES, errno.EBADF):
            key, asc = DATA_PROTECT, 0x27
        elif e.errno in (errno.EIO, errno.ENODATA):
            key, asc = MEDIUM_ERROR, 0x11 if reading else 0x0C
        else:
            key, asc = HARDWARE_ERROR, 0x44
        cmd.status = CHECK_CONDITION
        cmd.sense = build_sense(self.d_sense, key, asc, 0)
        cmd.data_in_length = 0
        log("I/O error: %s" % e)

    def _report_unit_attention(self, cmd):
        nexus = self.nexus.get(cmd.session)
        if nexus is not None and nexus.unit_attentions:
            asc, ascq = nexus.unit_attentions.pop(0)
            raise CheckCondition(UNIT_ATTENTION, asc, ascq)

    # SPC commands without data-out, answered at once
    SPC_COMMANDS = {
        OP_TEST_UNIT_READY: "_test_unit_ready",
        OP_REQUEST_SENSE: "_request_sense",
        OP_INQUIRY: "_inquiry",
        OP_MODE_SENSE6: "_mode_sense",
        OP_MODE_SENSE10: "_mode_sense",
        OP_START_STOP_UNIT: "_start_stop_unit",
        OP_PREVENT_ALLOW: "_prevent_allow",
        OP_MAINTENANCE_IN: "_maintenance_in",
    }

    def _start(self, cmd):
        """Decodes and checks the CDB. Returns a Task if the command needs
        more requests or acts on the final one, None if it completed."""
        op = cmd.cdb[0]
        layout = CDB_LAYOUTS.get(op)
        if layout is not None:
            return self._block_command(cmd, layout)
        handler = self.SPC_COMMANDS.get(op)
        if handler is not None:
            getattr(self, handler)(cmd)
            return None
        if op in (OP_MODE_SELECT6, OP_MODE_SELECT10):
            # parameter list first: act on the final request
            plen = cmd.cdb[4] if op == OP_MODE_SELECT6 else be(cmd.cdb, 7, 2)
            return Task(cmd.session, plen, on_final=self._mode_select)
        raise invalid_opcode()

    # -- helpers -----------------------------------------------------------

    def _check_ready(self):
        # SBC-3 4.20: a stopped LU needs START STOP UNIT START=1
        if self.stopped:
            raise CheckCondition(NOT_READY, 0x04, 0x02)

    def _check_writable(self):
        if self.read_only:
            raise CheckCondition(DATA_PROTECT, 0x27, 0x00)  # WRITE PROTECTED
        if self.swp:
            raise CheckCondition(DATA_PROTECT, 0x27, 0x02)  # SOFTWARE WRITE PROTECTED

    def _check_range(self, lba, count):
        if lba > self.num_blocks or count > self.num_blocks - lba:
            raise lba_out_of_range()

    def _check_transfer(self, layout, nbytes):
        # MAXIMUM TRANSFER LENGTH of the Block Limits VPD page
        if self.max_transfer_bytes and nbytes > self.max_transfer_bytes:
            raise invalid_field_in_cdb(layout.count_off)

    def _data_out_extent(self, cmd, layout, nbytes):
        """Data-out bytes the command consumes: min(CDB, expected length),
        whole blocks, within the buffer."""
        n = min(nbytes, cmd.expected_length)
        if n % self.block_size:
            raise invalid_field_in_cmd_iu()
        if n > len(cmd.buf):
            raise invalid_field_in_cdb(layout.count_off)
        return n

    def _need_data(self, cmd, nbytes):
        if cmd.received < nbytes:
            raise not_enough_data()

    # -- SPC commands ------------------------------------------------------

    def _test_unit_ready(self, cmd):
        self._check_ready()

    def _request_sense(self, cmd):
        desc = bool(cmd.cdb[1] & 0x01)
        nexus = self.nexus.get(cmd.session)
        # SPC-4 6.39: a pending unit attention is reported (and cleared),
        # else the LU's state
        if nexus is not None and nexus.unit_attentions:
            asc, ascq = nexus.unit_attentions.pop(0)
            data = build_sense(desc, UNIT_ATTENTION, asc, ascq)
        elif self.stopped:
            data = build_sense(desc, NOT_READY, 0x04, 0x02)
        else:
            data = build_sense(desc, NO_SENSE, 0x00, 0x00)
        cmd.data_in(data, cmd.cdb[4])

    def _inquiry(self, cmd):
        cdb = cmd.cdb
        alloc = be(cdb, 3, 2)
        if cdb[1] & 0x02:               # CMDDT is obsolete
            raise invalid_field_in_cdb(1, 1)
        if cdb[1] & 0x01:
            cmd.data_in(self._vpd_page(cdb[2]), alloc)
            return
        if cdb[2] != 0:                 # PAGE CODE without EVPD
            raise invalid_field_in_cdb(2)
        d = bytearray(96)
        d[0] = 0x00                     # qualifier 000b, direct access block device
        d[2] = 0x06                     # SPC-4
        d[3] = 0x10 | 0x02              # HISUP, response data format 2
        d[4] = len(d) - 5
        d[7] = 0x02                     # CMDQUE
        d[8:16] = ascii_field(self.vendor, 8)
        d[16:32] = ascii_field(self.product, 16)
        d[32:36] = ascii_field(self.revision, 4)
        # version descriptors: SAM-5, iSCSI, SPC-4, SBC-3
        for i, v in enumerate((0x00A0, 0x0960, 0x0460, 0x04C0)):
            d[58 + 2 * i:60 + 2 * i] = v.to_bytes(2, "big")
        cmd.data_in(bytes(d), alloc)

    def _vpd_page(self, page):
        bs = self.block_size
        if page == 0x00:                # Supported VPD Pages
            body = bytes([0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2])
        elif page == 0x80:              # Unit Serial Number
            body = ascii_field(self.serial, len(self.serial))
        elif page == 0x83:              # Device Identification
            body = self._device_identification()
        elif page == 0xB0:              # Block Limits
            b = bytearray(0x3C)
            max_xfer = self.max_transfer_bytes // bs
            granularity = 4096 // bs if bs < 4096 else 1
            optimal = OPTIMAL_TRANSFER_BYTES // bs
            if max_xfer:
                optimal = min(optimal, max_xfer)
            b[0] = 0x01                 # WSNZ: WRITE SAME of zero blocks is refused
            b[1] = self._max_compare_and_write()
            b[2:4] = granularity.to_bytes(2, "big")
            b[4:8] = max_xfer.to_bytes(4, "big")
            b[8:12] = optimal.to_bytes(4, "big")
            if self.thin:
                b[16:20] = (0xFFFFFFFF).to_bytes(4, "big")          # MAXIMUM UNMAP LBA COUNT
                b[20:24] = MAX_UNMAP_DESCRIPTORS.to_bytes(4, "big")
                b[24:28] = granularity.to_bytes(4, "big")
                b[28:32] = (0x80000000).to_bytes(4, "big")          # UGAVALID, alignment 0
            b[32:40] = MAX_WRITE_SAME_BLOCKS.to_bytes(8, "big")
            body = bytes(b)
        elif page == 0xB1:              # Block Device Characteristics: non-rotating
            body = (1).to_bytes(2, "big") + bytes(0x3C - 2)
        elif page == 0xB2:              # Logical Block Provisioning
            b = bytearray(4)
            if self.thin:
                b[1] = 0x80 | 0x40 | 0x20 | 0x04    # LBPU, LBPWS, LBPWS10, LBPRZ
                b[2] = 0x02                         # thin provisioned
            body = bytes(b)
        else:
            raise invalid_field_in_cdb(2)
        return bytes([0x00, page]) + len(body).to_bytes(2, "big") + body

    def _device_identification(self):
        """SPC-4 7.8.6, laid out as src/scsi/spc_inquiry.c does."""

        def designator(code_set, assoc_type, ident):
            return bytes([code_set, assoc_type, 0, len(ident)]) + ident

        iscsi, piv, port = 0x50, 0x80, 0x10
        out = designator(0x01, 0x03, self.naa.to_bytes(8, "big"))                 # NAA, LU
        out += designator(0x02, 0x01, b"SPT     " + ascii_field(self.serial, len(self.serial)))  # T10
        rel = self.relative_port or 1   # 0 is reserved; port A is 1
        out += designator(iscsi | 0x01, piv | port | 0x04, rel.to_bytes(4, "big"))  # relative port
        if self.target_name:            # SCSI name string: NUL-terminated, padded to 4
            name = self.target_name.encode()
            name += bytes(-(len(name) + 1) % 4 + 1)
            out += designator(iscsi | 0x03, piv | port | 0x08, name)
        return out

    def _max_compare_and_write(self):
        n = 255
        if self.max_transfer_bytes:
            n = min(n, self.max_transfer_bytes // (2 * self.block_size))
        return n

    def _mode_values(self, pc):
        if pc == PC_DEFAULT:
            return self.wce_default, False, False
        return self.wce, self.d_sense, self.swp

    @staticmethod
    def _mode_page(page, pc, values):
        wce, d_sense, swp = values
        length = MODE_PAGE_LENGTHS[page]
        p = bytearray(length)
        p[0], p[1] = page, length - 2
        mask = pc == PC_CHANGEABLE
        if page == MP_CACHING:          # SBC-3 6.4.5: WCE is the changeable bit
            if mask or wce:
                p[2] = 0x04
        elif page == MP_CONTROL:        # SPC-4 7.5.8
            if mask:
                p[2], p[4] = 0x04, 0x08                 # D_SENSE, SWP changeable
            else:
                p[2] = 0x02 | (0x04 if d_sense else 0)  # GLTSD, D_SENSE
                p[3] = 0x10                             # QUEUE ALGORITHM MODIFIER: unrestricted
                p[4] = 0x08 if swp else 0
                p[8:10] = b"\xff\xff"                   # BUSY TIMEOUT PERIOD: unlimited
        elif page == MP_IEC:            # no informational exceptions: DEXCPT
            if not mask:
                p[2] = 0x08
        return bytes(p)

    def _mode_sense(self, cmd):
        cdb = cmd.cdb
        ten = cdb[0] == OP_MODE_SENSE10
        dbd = bool(cdb[1] & 0x08)
        llbaa = ten and bool(cdb[1] & 0x10)
        pc, page, subpage = cdb[2] >> 6, cdb[2] & 0x3F, cdb[3]
        alloc = be(cdb, 7, 2) if ten else cdb[4]
        if pc == PC_SAVED:              # SAVING PARAMETERS NOT SUPPORTED
            raise CheckCondition(ILLEGAL_REQUEST, 0x39, 0x00)
        if page != MP_ALL and page not in MODE_PAGE_LENGTHS:
            raise invalid_field_in_cdb(2, 5)
        if subpage not in (0x00, 0xFF):  # no page here has subpages
            raise invalid_field_in_cdb(3)
        bd = b""
        if not dbd:
            if llbaa:
                bd = bytearray(16)
                if pc != PC_CHANGEABLE:
                    bd[0:8] = self.num_blocks.to_bytes(8, "big")
                    bd[12:16] = self.block_size.to_bytes(4, "big")
            else:
                bd = bytearray(8)
                if pc != PC_CHANGEABLE:
                    bd[0:4] = min(self.num_blocks, 0xFFFFFFFF).to_bytes(4, "big")
                    bd[5:8] = self.block_size.to_bytes(3, "big")
        values = self._mode_values(pc)
        pages = b"".join(self._mode_page(code, pc, values) for code in (MP_CACHING, MP_CONTROL, MP_IEC)
                         if page in (MP_ALL, code))
        dsp = (0x80 if (self.read_only or self.swp) else 0) | 0x10     # WP, DPOFUA
        if ten:
            total = 8 + len(bd) + len(pages)
            hdr = (total - 2).to_bytes(2, "big") + bytes([0, dsp, 0x01 if (llbaa and bd) else 0, 0])
            hdr += len(bd).to_bytes(2, "big")
        else:
            total = 4 + len(bd) + len(pages)
            hdr = bytes([total - 1, 0, dsp, len(bd)])
        cmd.data_in(hdr + bytes(bd) + pages, alloc)

    def _mode_select(self, cmd):
        """MODE SELECT(6/10) on its final request: Caching WCE, Control D_SENSE and SWP."""
        cdb = cmd.cdb
        ten = cdb[0] == OP_MODE_SELECT10
        pf, sp = bool(cdb[1] & 0x10), bool(cdb[1] & 0x01)
        plen = be(cdb, 7, 2) if ten else cdb[4]
        hdr = 8 if ten else 4
        if sp:                          # no saved pages
            raise invalid_field_in_cdb(1, 0)
        if plen == 0:
            return
        if plen < hdr:
            raise param_list_length_error()
        if cmd.received < plen:
            raise param_list_length_error()
        p = bytes(cmd.buf[:plen])
        longlba = ten and bool(p[4] & 0x01)
        bd_len = be(p, 6, 2) if ten else p[3]
        if bd_len not in (0, 16 if longlba else 8):
            raise invalid_field_in_param(6 if ten else 3)
        if hdr + bd_len > plen:
            raise param_list_length_error()
        if bd_len:                      # a block descriptor may only restate the geometry
            if longlba:
                blocks, len_off = be(p, hdr, 8), hdr + 12
                block_len, current = be(p, len_off, 4), self.num_blocks
            else:
                blocks, len_off = be(p, hdr, 4), hdr + 5
                block_len, current = be(p, len_off, 3), min(self.num_blocks, 0xFFFFFFFF)
            if blocks not in (0, current):
                raise invalid_field_in_param(hdr)
            if block_len != self.block_size:
                raise invalid_field_in_param(len_off)
        off = hdr + bd_len
        if off < plen and not pf:       # vendor-specific pages: we have none
            raise invalid_field_in_cdb(1, 4)
        cur = self._mode_values(PC_CURRENT)
        wce, d_sense, swp = cur
        while off < plen:               # validate every page before applying any
            if plen - off < 2:
                raise param_list_length_error()
            page = p[off] & 0x3F
            if p[off] & 0x40:           # SPF: no subpages here
                raise invalid_field_in_param(off, 6)
            want = MODE_PAGE_LENGTHS.get(page)
            if want is None:
                raise invalid_field_in_param(off, 5)
            length = p[off + 1] + 2
            if length != want:
                raise invalid_field_in_param(off + 1)
            if length > plen - off:
                raise param_list_length_error()
            current = self._mode_page(page, PC_CURRENT, cur)
            changeable = self._mode_page(page, PC_CHANGEABLE, cur)
            for i in range(2, length):
                diff = (p[off + i] ^ current[i]) & ~changeable[i] & 0xFF
                if diff:
                    raise invalid_field_in_param(off + i, high_bit(diff))
            if page == MP_CACHING:
                wce = bool(p[off + 2] & 0x04)
            elif page == MP_CONTROL:
                d_sense = bool(p[off + 2] & 0x04)
                swp = bool(p[off + 4] & 0x08)
            off += length
        if (wce, d_sense, swp) != cur:
            self.wce, self.d_sense, self.swp = wce, d_sense, swp
            # the other I_T nexuses learn that the parameters changed
            self.unit_attention_all(0x2A, 0x01, except_handle=cmd.session)

    def _start_stop_unit(self, cmd):
        cdb = cmd.cdb
        pc, modifier = cdb[4] >> 4, cdb[3] & 0x0F
        if pc == 0x0:
            if cdb[4] & 0x02:           # LOEJ: the medium is not removable
                raise invalid_field_in_cdb(4, 1)
            start = bool(cdb[4] & 0x01)
            if not start and not (cdb[4] & 0x04) and self.wce:
                self.store.flush()      # stopping with NO_FLUSH=0 writes the cache
            self.stopped = not start
            return
        max_modifier = {0x1: 0, 0x2: 2, 0x3: 1, 0x7: 0, 0xA: 0, 0xB: 0}.get(pc)
        if max_modifier is None:        # reserved power conditions
            raise invalid_field_in_cdb(4, 7)
        if modifier > max_modifier:
            raise invalid_field_in_cdb(3, 3)
        self.stopped = False            # every other power condition serves media access

    def _prevent_allow(self, cmd):
        prevent = cmd.cdb[4] & 0x03
        if prevent > 1:                 # 10b and 11b are obsolete
            raise invalid_field_in_cdb(4, 1)
        nexus = self.nexus.get(cmd.session)
        if nexus is not None:
            nexus.prevent = bool(prevent)

    def _maintenance_in(self, cmd):
        cdb = cmd.cdb
        if (cdb[1] & 0x1F) != SA_REPORT_SUPPORTED_OPCODES:
            raise invalid_field_in_cdb(1, 4)
        rctd, options = bool(cdb[2] & 0x80), cdb[2] & 0x07
        opcode, sa, alloc = cdb[3], be(cdb, 4, 2), be(cdb, 6, 4)
        commands = [c for c in SUPPORTED_OPCODES if self.thin or c[0] != 0x42]   # UNMAP
        timeouts = (10).to_bytes(2, "big") + bytes(2) + (0).to_bytes(4, "big") + (30).to_bytes(4, "big")
        if options == 0:                # all commands
            out = bytearray()
            for op, op_sa, usage in commands:
                out += bytes([op, 0]) + (op_sa or 0).to_bytes(2, "big")
                out += bytes([0, (0x02 if rctd else 0) | (0x01 if op_sa is not None else 0)])
                out += len(usage).to_bytes(2, "big")
                if rctd:
                    out += timeouts
            cmd.data_in(len(out).to_bytes(4, "big") + bytes(out), alloc)
            return
        if options > 3:
            raise invalid_field_in_cdb(2, 2)
        found, has_sa = None, False
        for entry in commands:
            if entry[0] != opcode:
                continue
            has_sa = entry[1] is not None
            if entry[1] is None or entry[1] == sa:
                found = entry
                break
        if (options == 1 and has_sa) or (options == 2 and found and found[1] is None):
            raise invalid_field_in_cdb(2, 2)
        if options == 3 and found and found[1] is None and sa != 0:
            found = None
        if found is None:
            out = bytes([0, 0x01, 0, 0])                # SUPPORT 001b: not supported
        else:
            usage = bytes(found[2])
            out = bytes([0, (0x80 if rctd else 0) | 0x03]) + len(usage).to_bytes(2, "big") + usage
            if rctd:
                out += timeouts
        cmd.data_in(out, alloc)

    # -- SBC commands ------------------------------------------------------

    def _block_command(self, cmd, layout):
        cdb = cmd.cdb
        if layout.kind == K_UNMAP and not self.thin:
            raise invalid_opcode()
        if layout.protect and cdb[1] & 0xE0:
            # no protection information: RD/WR/VR/ORPROTECT must be zero
            raise invalid_field_in_cdb(1, 7)
        for byte, mask in layout.reserved.items():
            if cdb[byte] & mask:
                raise invalid_field_in_cdb(byte, high_bit(cdb[byte] & mask))
        control = cdb[layout.length - 1]
        if control & 0x05:              # NACA (no ACA support), LINK (obsolete)
            raise invalid_field_in_cdb(layout.length - 1, high_bit(control & 0x05))
        self._check_ready()
        if layout.length == 6:          # READ(6)/WRITE(6): 21-bit LBA, 0 means 256 blocks
            lba = ((cdb[1] & 0x1F) << 16) | be(cdb, 2, 2)
            count = cdb[4] or 256
        else:
            lba = be(cdb, layout.lba_off, layout.lba_len)
            count = be(cdb, layout.count_off, layout.count_len)
        kind = layout.kind
        if kind == K_READ:
            return self._read(cmd, layout, lba, count)
        if kind in (K_WRITE, K_WRITE_VERIFY, K_ORWRITE):
            return self._write(cmd, layout, lba, count)
        if kind == K_VERIFY:
            return self._verify(cmd, layout, lba, count)
        if kind in (K_PREFETCH, K_SYNC_CACHE):
            self._check_range(lba, count)
            if kind == K_SYNC_CACHE:    # IMMED or not, status after the flush
                self.store.flush()
            return None                 # PRE-FETCH: nothing is cached here, GOOD
        if kind == K_WRITE_SAME:
            return self._write_same(cmd, layout, lba, count)
        if kind == K_UNMAP:
            return self._unmap(cmd)
        if kind == K_READ_CAPACITY10:
            return self._read_capacity10(cmd)
        if kind == K_SERVICE_ACTION_IN:
            return self._service_action_in(cmd)
        if kind == K_COMPARE_AND_WRITE:
            return self._compare_and_write(cmd, layout, lba, count)
        raise invalid_opcode()

    def _read(self, cmd, layout, lba, count):
        nbytes = count * self.block_size
        cmd.transfer_length = min(nbytes, 0xFFFFFFFF)
        self._check_transfer(layout, nbytes)
        self._check_range(lba, count)
        # a smaller expected length gets what fits; the engine reports the residual
        n = min(nbytes, cmd.expected_length)
        if n > len(cmd.buf):
            raise invalid_field_in_cdb(layout.count_off)
        self.store.read_into(cmd.buf[:n], lba * self.block_size)
        cmd.data_in_length = n
        return None

    def _write(self, cmd, layout, lba, count):
        cdb, bs = cmd.cdb, self.block_size
        nbytes = count * bs
        cmd.transfer_length = min(nbytes, 0xFFFFFFFF)
        if layout.kind == K_WRITE_VERIFY and ((cdb[1] >> 1) & 0x3) > 1:
            raise invalid_field_in_cdb(1, 2)        # BYTCHK is 0 or 1 here
        self._check_transfer(layout, nbytes)
        self._check_range(lba, count)
        self._check_writable()
        data_end = self._data_out_extent(cmd, layout, nbytes)
        # FUA, or WCE=0: durable before GOOD; WRITE AND VERIFY writes to the medium
        fua = (layout.length > 6 and bool(cdb[1] & 0x08)) or not self.wce or \
            layout.kind == K_WRITE_VERIFY
        offset = lba * bs

        if layout.kind == K_ORWRITE:
            def orwrite(c):
                self._need_data(c, data_end)
                medium = bytearray(data_end)
                self.store.read_into(memoryview(medium), offset)
                # OR of the medium and the data-out, byte for byte (as big integers)
                data = int.from_bytes(c.buf[:data_end], "big") | int.from_bytes(medium, "big")
                self.store.write(offset, data.to_bytes(data_end, "big"), fua)
            return Task(cmd.session, cmd.transfer_length, on_final=orwrite)

        # WRITE family: write every whole block as its data sequence arrives
        state = {"written": 0}

        def stream(c):
            avail = min(c.received, data_end)
            avail -= avail % bs
            done = state["written"]
            if avail > done:
                self.store.write(offset + done, c.buf[done:avail], fua)
                state["written"] = avail
            if c.is_final and state["written"] < data_end:
                raise not_enough_data()
        return Task(cmd.session, cmd.transfer_length, on_data=stream)

    def _verify(self, cmd, layout, lba, count):
        bs = self.block_size
        nbytes = count * bs
        bytchk = (cmd.cdb[1] >> 1) & 0x3
        if bytchk == 2:                 # reserved
            raise invalid_field_in_cdb(1, 2)
        # BYTCHK 0 transfers nothing, 01b the range, 11b one block
        if bytchk == 0 or count == 0:
            cmd.transfer_length = 0
        else:
            cmd.transfer_length = min(nbytes, 0xFFFFFFFF) if bytchk == 1 else bs
            self._check_transfer(layout, nbytes)
        self._check_range(lba, count)
        if bytchk == 0 or count == 0:
            return None                 # nothing to check against a RAM disk or a file
        if bytchk == 1:
            data_end = self._data_out_extent(cmd, layout, nbytes)
        else:
            data_end = self._data_out_extent(cmd, layout, bs)
            if data_end < bs:
                raise invalid_field_in_cmd_iu()

        def compare(c):
            self._need_data(c, data_end)
            data = bytes(c.buf[:data_end])
            pos = 0
            while pos < nbytes and (bytchk == 3 or pos < data_end):
                n = min(CHUNK - CHUNK % bs, nbytes - pos)
                if bytchk == 1:
                    n = min(n, data_end - pos)
                medium = bytearray(n)
                self.store.read_into(memoryview(medium), lba * bs + pos)
                expect = data[pos:pos + n] if bytchk == 1 else data * (n // bs)
                if medium != expect:
                    raise CheckCondition(MISCOMPARE, 0x1D, 0x00,
                                         information=pos + first_difference(medium, expect))
                pos += n
        return Task(cmd.session, cmd.transfer_length, on_final=compare)

    def _write_same(self, cmd, layout, lba, count):
        cdb, bs = cmd.cdb, self.block_size
        unmap = bool(cdb[1] & 0x08)
        ndob = layout.length == 16 and bool(cdb[1] & 0x01)     # NO DATA-OUT BUFFER: zeros
        cmd.transfer_length = 0 if ndob else bs
        if cdb[1] & 0x10:               # ANCHOR is not supported
            raise invalid_field_in_cdb(1, 4)
        if count == 0:                  # WSNZ=1
            raise invalid_field_in_cdb(layout.count_off)
        if count > MAX_WRITE_SAME_BLOCKS:
            raise invalid_field_in_cdb(layout.count_off)
        self._check_range(lba, count)
        self._check_writable()
        if unmap and not self.thin:
            raise invalid_field_in_cdb(1, 3)
        if not ndob and cmd.expected_length != bs:      # exactly one block of data-out
            raise invalid_field_in_cmd_iu()
        if not ndob and len(cmd.buf) < bs:
            raise invalid_field_in_cdb(layout.count_off)
        offset, total = lba * bs, count * bs

        def write_same(c):
            if ndob:
                block = bytes(bs)
            else:
                self._need_data(c, bs)
                block = bytes(c.buf[:bs])
            if block.count(0) == bs:
                # zeros: deallocate (UNMAP=1) or zero; both read back as zeros (LBPRZ)
                self.store.zero(offset, total)
                if not self.wce:
                    self.store.flush()
                return
            chunk = block * max(1, min(count, CHUNK // bs))
            pos = 0
            while pos < total:
                n = min(len(chunk), total - pos)
                self.store.write(offset + pos, chunk[:n], not self.wce)
                pos += n
        return Task(cmd.session, cmd.transfer_length, on_final=write_same)

    def _unmap(self, cmd):
        cdb = cmd.cdb
        plen = be(cdb, 7, 2)
        cmd.transfer_length = plen
        if cdb[1] & 0x01:               # ANCHOR is not supported
            raise invalid_field_in_cdb(1, 0)
        if 0 < plen < 8:
            raise param_list_length_error()
        self._check_writable()

        def unmap(c):
            avail = min(plen, c.received)
            if plen == 0:
                return
            if avail < 8:
                raise param_list_length_error()
            p = bytes(c.buf[:avail])
            # descriptors beyond the list, or a partial last one, are ignored
            bd_len = min(be(p, 2, 2), avail - 8)
            ranges = [(be(p, 8 + 16 * i, 8), be(p, 16 + 16 * i, 4)) for i in range(bd_len // 16)]
            if len(ranges) > MAX_UNMAP_DESCRIPTORS:
                raise invalid_field_in_param(2)
            for lba, count in ranges:   # check them all before deallocating any
                self._check_range(lba, count)
            for lba, count in ranges:
                if count:
                    self.store.zero(lba * self.block_size, count * self.block_size)
            if not self.wce:
                self.store.flush()
        return Task(cmd.session, plen, on_final=unmap)

    def _read_capacity10(self, cmd):
        cdb = cmd.cdb
        if not (cdb[8] & 0x01) and be(cdb, 2, 4) != 0:   # LBA must be 0 without PMI
            raise invalid_field_in_cdb(2)
        last = max(self.num_blocks - 1, 0)
        cmd.data_in(min(last, 0xFFFFFFFF).to_bytes(4, "big") + self.block_size.to_bytes(4, "big"))
        return None

    def _service_action_in(self, cmd):
        cdb = cmd.cdb
        sa = cdb[1] & 0x1F
        if sa == SA_READ_CAPACITY16:
            if cdb[14] & 0xFE:
                raise invalid_field_in_cdb(14, high_bit(cdb[14] & 0xFE))
            d = bytearray(32)
            d[0:8] = max(self.num_blocks - 1, 0).to_bytes(8, "big")
            d[8:12] = self.block_size.to_bytes(4, "big")
            if self.thin:
                d[14] = 0x80 | 0x40     # LBPME, LBPRZ
            cmd.data_in(bytes(d), be(cdb, 10, 4))
        elif sa == SA_GET_LBA_STATUS:
            if cdb[14]:
                raise invalid_field_in_cdb(14, high_bit(cdb[14]))
            start = be(cdb, 2, 8)
            if start >= self.num_blocks:
                raise lba_out_of_range()
            # one descriptor: everything from start on reads as mapped (this
            # store cannot tell which pages were given back)
            n = min(self.num_blocks - start, 0xFFFFFFFF)
            desc = start.to_bytes(8, "big") + n.to_bytes(4, "big") + bytes([0, 0, 0, 0])
            cmd.data_in((20).to_bytes(4, "big") + bytes(4) + desc, be(cdb, 10, 4))
        else:
            raise invalid_field_in_cdb(1, 4)
        return None

    def _compare_and_write(self, cmd, layout, lba, count):
        bs = self.block_size
        cmd.transfer_length = 2 * count * bs
        if count > self._max_compare_and_write():
            raise invalid_field_in_cdb(13)
        self._check_range(lba, count)
        self._check_writable()
        if count == 0:
            # nothing to compare; but data-out announced for zero blocks means the
            # one-byte count was cut short (libiscsi sends 256 as 0): refuse it
            if cmd.expected_length:
                raise invalid_field_in_cdb(13)
            return None
        if cmd.expected_length != 2 * count * bs:      # verify and write data, exactly
            raise invalid_field_in_cmd_iu()
        if len(cmd.buf) < 2 * count * bs:
            raise invalid_field_in_cdb(13)
        fua = bool(cmd.cdb[1] & 0x08) or not self.wce
        offset, n = lba * bs, count * bs

        def compare_and_write(c):
            # one thread serves every request, so compare and write are atomic
            self._need_data(c, 2 * n)
            medium = bytearray(n)
            self.store.read_into(memoryview(medium), offset)
            verify = bytes(c.buf[:n])
            if medium != verify:
                raise CheckCondition(MISCOMPARE, 0x1D, 0x00,
                                     information=first_difference(medium, verify))
            self.store.write(offset, c.buf[n:2 * n], fua)
        return Task(cmd.session, cmd.transfer_length, on_final=compare_and_write)


def be(data, offset, length):
    """Big-endian unsigned integer from data[offset:offset+length]."""
    return int.from_bytes(data[offset:offset + length], "big")


def ascii_field(text, width):
    """SPC-4 4.4.1: printable ASCII, left-aligned, space padded."""
    raw = text.encode("ascii", "replace")[:width]
    raw = bytes(c if 0x20 <= c <= 0x7E else 0x20 for c in raw)
    return raw.ljust(width, b" ")


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# ---------------------------------------------------------------------------
# The connection to sptd
# ---------------------------------------------------------------------------

VERBOSE = 0


def log(msg, level=0):
    if level <= VERBOSE:
        sys.stderr.write("spt_provider: %s\n" % msg)
        sys.stderr.flush()


class ProtocolError(Exception):
    """A frame from sptd that cannot be accepted: the connection ends."""


class RegistrationRefused(Exception):
    def __init__(self, code, message):
        super().__init__("registration refused: %s (%d)%s" % (
            RC_NAMES.get(code, "?"), code, ": " + message if message else ""))
        self.code = code


def frame(control_code, payload=b"", return_code=0):
    return HEADER.pack(HEADER.size, SIGNATURE, 0, control_code, return_code, len(payload)) + payload


def cstring(raw):
    """A NUL-terminated string field."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class Connection:
    """One registered connection: reads frames, dispatches, answers."""

    def __init__(self, sock, name, lu, stop_fd):
        self.sock = sock
        self.name = name
        self.lu = lu
        self.stop_fd = stop_fd
        self.rbuf = bytearray()
        self.shm = None
        self.shm_view = None
        self.shm_size = 0

    # -- registration ------------------------------------------------------

    def _recv_exact(self, n, fds):
        """Reads exactly n bytes with recvmsg, collecting SCM_RIGHTS fds."""
        data = bytearray()
        fd_size = struct.calcsize("i")
        while len(data) < n:
            chunk, ancdata, flags, _ = self.sock.recvmsg(n - len(data), socket.CMSG_SPACE(4 * fd_size))
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    usable = len(cdata) - len(cdata) % fd_size
                    fds.extend(struct.unpack("%di" % (usable // fd_size), cdata[:usable]))
            if flags & socket.MSG_CTRUNC:
                raise ProtocolError("ancillary data truncated")
            if not chunk:
                raise ProtocolError("sptd closed the connection during registration")
            data += chunk
        return bytes(data)

    def register(self):
        name = self.name.encode()
        self.sock.sendall(frame(CC_PROVIDER_REGISTER, REGISTER.pack(PROVIDER_VERSION, 0, name)))
        fds = []
        try:
            hdr = self._recv_exact(HEADER.size, fds)
            hlen, sig, _timeout, cc, rc, length = HEADER.unpack(hdr)
            if hlen != HEADER.size or sig != SIGNATURE or length > FRAME_MAX:
                raise ProtocolError("bad frame header in the registration answer")
            payload = self._recv_exact(length, fds) if length else b""
            if cc != CC_PROVIDER_REGISTER:
                raise ProtocolError("expected the PROVIDER_REGISTER answer, got 0x%x" % cc)
            if rc != 0:
                raise RegistrationRefused(rc, cstring(payload) if payload.isascii() else "")
            if length != REGISTERED.size:
                raise ProtocolError("registration answer of %d bytes, expected %d"
                                    % (length, REGISTERED.size))
            if len(fds) != 1:
                raise ProtocolError("registration answer carried %d descriptors, expected 1" % len(fds))
            (lun, shm_size, max_transfer, cmd_timeout, rel_port, tpgt, version,
             target) = REGISTERED.unpack(payload)
            if version != PROVIDER_VERSION:
                raise ProtocolError("sptd speaks version %d" % version)
            if b"\0" not in target:
                raise ProtocolError("target name not NUL-terminated")
            if shm_size == 0 or max_transfer == 0 or max_transfer > shm_size:
                raise ProtocolError("shm_size %d / max_transfer_bytes %d make no sense"
                                    % (shm_size, max_transfer))
            if os.fstat(fds[0]).st_size < shm_size:
                raise ProtocolError("the memfd is smaller than shm_size")
            self.shm = mmap.mmap(fds[0], shm_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            for fd in fds:              # the mapping keeps the memory; the fd can go
                os.close(fd)
        self.shm_view = memoryview(self.shm)
        self.shm_size = shm_size
        self.lu.attach(lun, max_transfer, rel_port, cstring(target))
        log("registered as '%s': LUN %d of %s (tpgt %d, port %d), %d bytes shared, "
            "commands up to %d bytes, timeout %ds" % (self.name, lun, cstring(target), tpgt,
                                                     rel_port, shm_size, max_transfer, cmd_timeout))

    # -- the frame loop ----------------------------------------------------

    def serve(self):
        """Returns when sptd goes away (or the stop fd fires: returns True)."""
        while True:
            readable, _, _ = select.select([self.sock, self.stop_fd], [], [])
            if self.stop_fd in readable:
                return True
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                log("sptd closed the connection")
                return False
            self.rbuf += chunk
            out = []
            while len(self.rbuf) >= HEADER.size:
                hlen, sig, timeout, cc, rc, length = HEADER.unpack_from(self.rbuf)
                if hlen != HEADER.size or sig != SIGNATURE:
                    raise ProtocolError("bad frame header (length %d, signature %r)" % (hlen, sig))
                if length > FRAME_MAX:
                    raise ProtocolError("frame of %d bytes exceeds %d" % (length, FRAME_MAX))
                if len(self.rbuf) < HEADER.size + length:
                    break
                payload = bytes(self.rbuf[HEADER.size:HEADER.size + length])
                del self.rbuf[:HEADER.size + length]
                answer = self.dispatch(cc, payload)
                if answer:
                    out.append(answer)
            if out:
                self.sock.sendall(b"".join(out))

    def dispatch(self, cc, payload):
        """Handles one frame; returns the answer frame or None."""
        if cc == CC_SCSI_REQUEST:
            return self.scsi_request(payload)
        if cc == CC_TMF:
            return self.tmf(payload)
        if cc == CC_SESSION_START:
            if len(payload) != SESSION_START.size:
                raise ProtocolError("SESSION_START of %d bytes" % len(payload))
            reinstated, handle, peer, nexus, chap = SESSION_START.unpack(payload)
            log("session 0x%016x started%s: %s from %s%s" % (
                handle, " (reinstated)" if reinstated else "", cstring(nexus), cstring(peer),
                ", CHAP user " + cstring(chap) if chap[0] else ""), 1)
            self.lu.session_start(handle, bool(reinstated))
            return None
        if cc == CC_SESSION_END:
            if len(payload) not in (8, 16):     # spt_session_end, or spt_ctl_session_stop
                raise ProtocolError("SESSION_END of %d bytes" % len(payload))
            (handle,) = SESSION_END.unpack_from(payload)
            log("session 0x%016x ended" % handle, 1)
            self.lu.session_end(handle)
            return None
        raise ProtocolError("unexpected control code 0x%x" % cc)

    def tmf(self, payload):
        if len(payload) != WIRE_TMF.size:
            raise ProtocolError("TMF of %d bytes" % len(payload))
        tmf_cookie, handle, lun, function, _response, ref = WIRE_TMF.unpack(payload)
        response = self.lu.tmf(handle, function, ref)
        log("TMF %d from session 0x%016x (task 0x%x): response %d" % (function, handle, ref, response), 1)
        return frame(CC_TMF, WIRE_TMF.pack(tmf_cookie, handle, lun, function, response, ref))

    def scsi_request(self, payload):
        if len(payload) != WIRE_SCSI_REQUEST.size:
            raise ProtocolError("SCSI_REQUEST of %d bytes" % len(payload))
        fields = WIRE_SCSI_REQUEST.unpack(payload)
        (_session, cookie, lun, seq_off, data_length, _expected, is_final, direction,
         cdb_length, _attr, _cdb, data_offset, buf_len, _reserved) = fields
        if data_offset + buf_len > self.shm_size:
            raise ProtocolError("command buffer [%d, +%d) outside the %d-byte shared memory"
                                % (data_offset, buf_len, self.shm_size))
        if seq_off + data_length > buf_len:
            raise ProtocolError("data sequence [%d, +%d) outside the %d-byte buffer"
                                % (seq_off, data_length, buf_len))
        if not 1 <= cdb_length <= 32 or direction > 3 or is_final > 1:
            raise ProtocolError("SCSI_REQUEST with cdb_length %d, direction %d, is_final %d"
                                % (cdb_length, direction, is_final))
        cmd = Command(fields, self.shm_view[data_offset:data_offset + buf_len])
        try:
            if lun != self.lu.lun:
                # sptd routes only our LUN here; answer like a missing LUN
                cmd.status = CHECK_CONDITION
                cmd.sense = build_sense(False, ILLEGAL_REQUEST, 0x25, 0x00)
            else:
                self.lu.execute(cmd)
        finally:
            cmd.buf.release()           # no view may outlive the mapping
        if VERBOSE >= 2:
            log("task 0x%x CDB %s seq %d+%d%s -> status 0x%02x%s, in %d of %d" % (
                cookie, cmd.cdb[:cdb_length].hex(), seq_off, data_length,
                " final" if is_final else "", cmd.status,
                " sense " + cmd.sense[:14].hex() if cmd.sense else "",
                cmd.data_in_length, cmd.transfer_length), 2)
        sense = cmd.sense[:SENSE_MAX]
        return frame(CC_SCSI_COMPLETION, COMPLETION.pack(
            cookie, min(cmd.transfer_length, 0xFFFFFFFF), cmd.data_in_length,
            cmd.status, len(sense), sense))

    def close(self):
        if self.shm_view is not None:
            self.shm_view.release()
            self.shm_view = None
        if self.shm is not None:
            try:
                self.shm.close()
            except BufferError:
                pass                    # a view still exists: unmapped once it is gone
            self.shm = None
        self.sock.close()


# ---------------------------------------------------------------------------
# Command line and the reconnect loop
# ---------------------------------------------------------------------------


def parse_size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError("not a size: %r (e.g. 512M, 1G)" % text)
    return int(m.group(1)) << (10 * " kmgt".index(m.group(2).lower() or " "))


def parse_name(text):
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,%d}" % (NAME_MAX - 1), text):
        raise argparse.ArgumentTypeError("provider names are 1-63 characters of [A-Za-z0-9._-]")
    return text


def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(description="An spt storage provider (RAM disk or file) in Python.")
    ap.add_argument("--socket", required=True, help="sptd's --provider-socket path")
    ap.add_argument("--name", required=True, type=parse_name, help="the NAME of sptd's --lun provider:NAME")
    ap.add_argument("--size", type=parse_size, help="LUN size, e.g. 64M or 1G (with --file: "
                    "defaults to the file's size; a smaller file is extended)")
    ap.add_argument("--block-size", type=int, choices=(512, 4096), default=512)
    ap.add_argument("--file", help="back the LUN with this file or block device instead of RAM")
    ap.add_argument("--read-only", action="store_true", help="refuse writes (DATA PROTECT)")
    ap.add_argument("--once", action="store_true", help="serve one connection, do not reconnect")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="-v: sessions and TMFs, -vv: every command")
    args = ap.parse_args(argv)
    VERBOSE = args.verbose

    if args.file is None and args.size is None:
        ap.error("--size is required without --file")
    try:
        store = FileStore(args.file, args.size, args.read_only) if args.file else RamStore(args.size)
    except (OSError, ValueError) as e:
        ap.error(str(e))
    if store.size < args.block_size or store.size % args.block_size:
        ap.error("the size (%d) must be a non-zero multiple of the block size" % store.size)
    lu = LogicalUnit(store, args.block_size, args.name, read_only=args.read_only,
                     product="PYTHON FILE" if args.file else "PYTHON RAMDISK")
    log("%s LUN of %d blocks of %d bytes, serial %s" % (
        store.description, lu.num_blocks, lu.block_size, lu.serial))

    # SIGTERM/SIGINT wake the select() loops through a pipe; exit 0
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_w, False)
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)
        try:
            os.write(stop_w, b"x")
        except OSError:
            pass
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def wait(seconds):
        """Sleeps, or returns True at once when asked to stop."""
        if stopping:
            return True
        readable, _, _ = select.select([stop_r], [], [], seconds)
        return bool(readable) or bool(stopping)

    status = 0
    waiting_logged = False
    last_refusal = None
    while not stopping:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(args.socket)
        except OSError as e:
            sock.close()
            if args.once:
                log("cannot connect to %s: %s" % (args.socket, e.strerror))
                status = 1
                break
            if not waiting_logged:
                log("waiting for sptd at %s (%s)" % (args.socket, e.strerror))
                waiting_logged = True
            if wait(1.0):
                break
            continue
        waiting_logged = False
        conn = Connection(sock, args.name, lu, stop_r)
        try:
            conn.register()
            last_refusal = None
            if conn.serve():
                break                   # asked to stop
        except RegistrationRefused as e:
            if e.code not in RC_RETRY or args.once:
                log(str(e))
                status = 1
                break
            if str(e) != last_refusal:  # say it once, not every second
                log("%s; retrying every second" % e)
                last_refusal = str(e)
        except ProtocolError as e:
            log("protocol error, closing the connection: %s" % e)
            status = 1
        except OSError as e:
            log("connection lost: %s" % e)
            status = 1
        finally:
            conn.close()
        if args.once:
            break
        status = 0
        if wait(1.0):
            break
    if stopping:
        status = 0
    try:
        store.flush()
    except OSError as e:
        log("flush failed: %s" % e)
        status = 1
    store.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
