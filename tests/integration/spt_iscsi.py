"""A small iSCSI initiator and daemon harness for the integration tests.

Python 3 standard library only. The PDU layouts are those of RFC 7143
section 11 (Basic Header Segment, 48 bytes, big-endian). This is a test
client: one connection per session, one command in flight, no digests, no
error recovery; it exists to drive a target into corners a real initiator
never visits and to read raw SCSI data back.

Also usable from the shell:
    python3 spt_iscsi.py inquiry HOST PORT TARGET LUN [--vpd PAGE]   # hex dump
"""

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

# RFC 7143 11.2: opcodes (initiator) ...
OP_NOP_OUT = 0x00
OP_SCSI_CMD = 0x01
OP_TMF_REQ = 0x02
OP_LOGIN_REQ = 0x03
OP_TEXT_REQ = 0x04
OP_DATA_OUT = 0x05
OP_LOGOUT_REQ = 0x06
OP_SNACK = 0x10
# ... and (target)
OP_NOP_IN = 0x20
OP_SCSI_RSP = 0x21
OP_TMF_RSP = 0x22
OP_LOGIN_RSP = 0x23
OP_TEXT_RSP = 0x24
OP_DATA_IN = 0x25
OP_LOGOUT_RSP = 0x26
OP_R2T = 0x31
OP_ASYNC = 0x32
OP_REJECT = 0x3F

IMMEDIATE = 0x40
BHS_LEN = 48
RESERVED_TAG = 0xFFFFFFFF
# RFC 7143 13.12: the default MaxRecvDataSegmentLength, in force during login.
DEFAULT_MRDSL = 8192
# Largest data segment this client accepts from a target (sanity bound).
CLIENT_MAX_DSL = 16 * 1024 * 1024

INITIATOR = "iqn.2026-11.org.spt:test-initiator"


class IscsiError(Exception):
    pass


class ConnectionClosed(IscsiError):
    pass


class LoginFailed(IscsiError):
    def __init__(self, status_class, status_detail, keys):
        super().__init__("login failed: status class 0x%02x detail 0x%02x" %
                         (status_class, status_detail))
        self.status_class = status_class
        self.status_detail = status_detail
        self.keys = keys


def pad4(n):
    return (4 - n % 4) % 4


def encode_lun(lun):
    """SAM-5 4.7: single-level LUN, peripheral (< 256) or flat (< 16384) addressing."""
    if lun < 256:
        return struct.pack(">BB6x", 0, lun)
    return struct.pack(">BB6x", 0x40 | (lun >> 8), lun & 0xFF)


def bhs(opcode, flags=0, b2=0, b3=0, ahs_words=0, dsl=0, lun8=b"\0" * 8,
        itt=0, f20=0, f24=0, f28=0, f32=0, f36=0, f40=0, f44=0, immediate=False):
    """Build a 48-byte BHS. f20..f44 are the opcode-specific u32 words."""
    op = opcode | (IMMEDIATE if immediate else 0)
    hdr = struct.pack(">BBBBB", op, flags, b2, b3, ahs_words)
    hdr += struct.pack(">I", dsl)[1:]
    hdr += lun8
    hdr += struct.pack(">IIIIIIIII", itt, f20, f24, f28, f32, f36, f40, f44, 0)[:32]
    assert len(hdr) == BHS_LEN, len(hdr)
    return hdr


def encode_keys(pairs):
    """RFC 7143 6.1: key=value pairs, each terminated by a NUL."""
    out = b""
    for k, v in pairs:
        out += ("%s=%s" % (k, v)).encode() + b"\0"
    return out


def decode_keys(data):
    keys = {}
    for item in data.split(b"\0"):
        if not item:
            continue
        k, _, v = item.decode(errors="replace").partition("=")
        keys[k] = v
    return keys


class Pdu:
    def __init__(self, hdr, data):
        self.hdr = hdr
        self.data = data
        self.opcode = hdr[0] & 0x3F
        self.flags = hdr[1]
        self.b2 = hdr[2]
        self.b3 = hdr[3]
        self.itt = struct.unpack_from(">I", hdr, 16)[0]

    def u32(self, off):
        return struct.unpack_from(">I", self.hdr, off)[0]

    def __repr__(self):
        return "<PDU opcode 0x%02x flags 0x%02x itt 0x%08x dsl %d>" % (
            self.opcode, self.flags, self.itt, len(self.data))


class Connection:
    """A raw TCP connection speaking iSCSI PDUs."""

    def __init__(self, host, port, timeout=10.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host.strip("[]"), port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_pdu(self, hdr, data=b""):
        self.sock.sendall(hdr + data + b"\0" * pad4(len(data)))

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed("connection closed by target after %d of %d bytes" %
                                       (len(buf), n))
            buf += chunk
        return bytes(buf)

    def recv_pdu(self, timeout=None):
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        hdr = self.recv_exact(BHS_LEN)
        ahs = hdr[4] * 4
        dsl = struct.unpack(">I", b"\0" + hdr[5:8])[0]
        if dsl > CLIENT_MAX_DSL:
            raise IscsiError("target sent DataSegmentLength %d" % dsl)
        if ahs:
            self.recv_exact(ahs)
        data = self.recv_exact(dsl + pad4(dsl))[:dsl] if dsl else b""
        return Pdu(hdr, data)

    def outcome(self, timeout):
        """Wait for the target's reaction to something bad: returns
        ('closed', None), ('pdu', Pdu) or ('timeout', None)."""
        try:
            return ("pdu", self.recv_pdu(timeout))
        except ConnectionClosed:
            return ("closed", None)
        except socket.timeout:
            return ("timeout", None)
        except OSError:
            return ("closed", None)


class Session:
    """One Normal session on one connection, LUN-addressed SCSI commands."""

    def __init__(self, host, port, target, initiator=INITIATOR, timeout=10.0, isid=None):
        self.host = host
        self.port = port
        self.target = target
        self.initiator = initiator
        self.conn = Connection(host, port, timeout)
        self.isid = isid if isid is not None else os.urandom(5)
        self.itt = 0x1000
        self.cmdsn = 1
        self.expstatsn = 0
        self.maxcmdsn = 1
        self.target_mrdsl = DEFAULT_MRDSL
        self.first_burst = 65536
        self.max_burst = 262144
        self.immediate_data = True
        self.initial_r2t = True
        self.login_keys = {}
        self.nop_ins_answered = 0

    def next_itt(self):
        self.itt = (self.itt + 1) & 0xFFFFFFFF
        if self.itt == RESERVED_TAG:
            self.itt = 1
        return self.itt

    def close(self):
        self.conn.close()

    def _note_sn(self, pdu, has_statsn=True):
        if has_statsn:
            statsn = pdu.u32(24)
            self.expstatsn = (statsn + 1) & 0xFFFFFFFF
        expcmdsn = pdu.u32(28)
        maxcmdsn = pdu.u32(32)
        # RFC 7143 4.2.2.1: MaxCmdSN - ExpCmdSN < 2**31 else the window is ignored.
        if ((maxcmdsn - expcmdsn + 1) & 0xFFFFFFFF) < 2 ** 31:
            self.maxcmdsn = maxcmdsn

    def login_pdu(self, csg, nsg, transit, data, cont=False, itt=None, vmax=0, vmin=0):
        flags = (0x80 if transit else 0) | (0x40 if cont else 0) | (csg << 2) | nsg
        lun8 = b"\x80" + self.isid[:5] + b"\0\0"  # ISID type random (0x80), TSIH 0
        return bhs(OP_LOGIN_REQ, flags, vmax, vmin, 0, len(data), lun8,
                   itt if itt is not None else self.itt, 0, self.cmdsn,
                   self.expstatsn, immediate=True)

    def login(self, extra=(), mrdsl=262144):
        """Operational-stage-only login (RFC 7143 6.3: security stage is optional
        when the target needs no authentication), CSG=1 -> NSG=3 with T=1."""
        keys = [
            ("InitiatorName", self.initiator),
            ("TargetName", self.target),
            ("SessionType", "Normal"),
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("DefaultTime2Wait", "2"),
            ("DefaultTime2Retain", "0"),
            ("IFMarker", "No"),
            ("OFMarker", "No"),
            ("ErrorRecoveryLevel", "0"),
            ("InitialR2T", "Yes"),
            ("ImmediateData", "Yes"),
            ("MaxBurstLength", "262144"),
            ("FirstBurstLength", "65536"),
            ("MaxOutstandingR2T", "1"),
            ("MaxConnections", "1"),
            ("DataPDUInOrder", "Yes"),
            ("DataSequenceInOrder", "Yes"),
            ("MaxRecvDataSegmentLength", str(mrdsl)),
        ] + list(extra)
        data = encode_keys(keys)
        itt = self.next_itt()
        for _round in range(8):
            self.conn.send_pdu(self.login_pdu(1, 3, True, data, itt=itt), data)
            rsp = self.conn.recv_pdu()
            if rsp.opcode == OP_REJECT:
                raise IscsiError("login rejected with Reject reason 0x%02x" % rsp.b2)
            if rsp.opcode != OP_LOGIN_RSP:
                raise IscsiError("expected a Login Response, got %r" % rsp)
            status_class, status_detail = rsp.hdr[36], rsp.hdr[37]
            got = decode_keys(rsp.data)
            self.login_keys.update(got)
            if status_class != 0:
                raise LoginFailed(status_class, status_detail, got)
            self.expstatsn = (rsp.u32(24) + 1) & 0xFFFFFFFF
            self.maxcmdsn = rsp.u32(32)
            transit = bool(rsp.flags & 0x80)
            nsg = rsp.flags & 0x3
            if transit and nsg == 3:
                break
            # The target wants another round (RFC 7143 6.2): send nothing new.
            data = b""
        else:
            raise IscsiError("login did not reach full feature phase in 8 rounds")
        k = self.login_keys
        if "MaxRecvDataSegmentLength" in k:
            self.target_mrdsl = int(k["MaxRecvDataSegmentLength"])
        if "FirstBurstLength" in k:
            self.first_burst = int(k["FirstBurstLength"])
        if "MaxBurstLength" in k:
            self.max_burst = int(k["MaxBurstLength"])
        if k.get("ImmediateData") == "No":
            self.immediate_data = False
        if k.get("InitialR2T") == "No":
            self.initial_r2t = False
        return k

    def _recv_for(self, itt):
        """Receive PDUs until one for ITT arrives, answering target NOP-Ins."""
        while True:
            pdu = self.conn.recv_pdu()
            if pdu.opcode == OP_NOP_IN and pdu.itt == RESERVED_TAG:
                ttt = pdu.u32(20)
                self._note_sn(pdu, has_statsn=False)
                if ttt != RESERVED_TAG:
                    # RFC 7143 11.18: answer a target ping with the same TTT.
                    self.conn.send_pdu(bhs(OP_NOP_OUT, 0x80, lun8=pdu.hdr[8:16],
                                           itt=RESERVED_TAG, f20=ttt, f24=self.cmdsn,
                                           f28=self.expstatsn, immediate=True))
                    self.nop_ins_answered += 1
                continue
            if pdu.opcode == OP_ASYNC:
                self._note_sn(pdu)
                continue
            if pdu.opcode == OP_REJECT:
                self._note_sn(pdu)
                raise IscsiError("target sent Reject reason 0x%02x" % pdu.b2)
            if pdu.itt != itt:
                raise IscsiError("unexpected %r while waiting for itt 0x%08x" % (pdu, itt))
            return pdu

    def nop(self, payload=b"ping"):
        """NOP-Out ping (immediate), expects a NOP-In echoing the data."""
        itt = self.next_itt()
        self.conn.send_pdu(bhs(OP_NOP_OUT, 0x80, dsl=len(payload), itt=itt, f20=RESERVED_TAG,
                               f24=self.cmdsn, f28=self.expstatsn, immediate=True), payload)
        rsp = self._recv_for(itt)
        if rsp.opcode != OP_NOP_IN:
            raise IscsiError("NOP-Out answered by %r" % rsp)
        self._note_sn(rsp)
        if rsp.data != payload:
            raise IscsiError("NOP-In echoed %r, sent %r" % (rsp.data, payload))
        return True

    def scsi(self, cdb, lun=0, read_len=0, write=None):
        """Run one SCSI command; returns (status, data_in, sense)."""
        itt = self.next_itt()
        write = write or b""
        flags = 0x80 | 0x01  # F, ATTR=SIMPLE
        if read_len:
            flags |= 0x40
        if write:
            flags |= 0x20
        imm = b""
        if write and self.immediate_data:
            imm = write[:min(self.first_burst, self.target_mrdsl)]
        edtl = len(write) if write else read_len
        cdb16 = cdb + b"\0" * (16 - len(cdb))
        hdr = bhs(OP_SCSI_CMD, flags, dsl=len(imm), lun8=encode_lun(lun), itt=itt,
                  f20=edtl, f24=self.cmdsn, f28=self.expstatsn)
        hdr = hdr[:32] + cdb16
        self.cmdsn = (self.cmdsn + 1) & 0xFFFFFFFF
        self.conn.send_pdu(hdr, imm)
        data = bytearray(read_len)
        got = 0
        while True:
            pdu = self._recv_for(itt)
            if pdu.opcode == OP_DATA_IN:
                off = pdu.u32(40)
                if off + len(pdu.data) > read_len:
                    raise IscsiError("Data-In beyond the expected length")
                data[off:off + len(pdu.data)] = pdu.data
                got = max(got, off + len(pdu.data))
                if pdu.flags & 0x01:  # S bit: status in the last Data-In
                    self._note_sn(pdu)
                    return pdu.b3, bytes(data[:got]), b""
                self._note_sn(pdu, has_statsn=False)
                continue
            if pdu.opcode == OP_R2T:
                self._note_sn(pdu, has_statsn=False)
                ttt, off, length = pdu.u32(20), pdu.u32(40), pdu.u32(44)
                if off + length > len(write):
                    raise IscsiError("R2T beyond the write length")
                datasn = 0
                pos = off
                while pos < off + length:
                    n = min(self.target_mrdsl, off + length - pos)
                    final = 0x80 if pos + n == off + length else 0
                    self.conn.send_pdu(bhs(OP_DATA_OUT, final, dsl=n, lun8=encode_lun(lun),
                                           itt=itt, f20=ttt, f28=self.expstatsn, f36=datasn,
                                           f40=pos), write[pos:pos + n])
                    datasn += 1
                    pos += n
                continue
            if pdu.opcode == OP_SCSI_RSP:
                self._note_sn(pdu)
                sense = b""
                if len(pdu.data) >= 2:
                    slen = struct.unpack(">H", pdu.data[:2])[0]
                    sense = pdu.data[2:2 + slen]
                if pdu.b2 != 0:
                    raise IscsiError("SCSI Response with iSCSI response 0x%02x" % pdu.b2)
                return pdu.b3, bytes(data[:got]), sense
            raise IscsiError("unexpected %r for a SCSI command" % pdu)

    def scsi_retry_ua(self, cdb, **kw):
        """As scsi(), retrying while the target reports UNIT ATTENTION (SAM-5 5.14)."""
        for _ in range(4):
            status, data, sense = self.scsi(cdb, **kw)
            if status == 0x02 and len(sense) > 2 and (sense[0] & 0x7F) in (0x70, 0x71) \
                    and (sense[2] & 0x0F) == 0x06:
                continue
            if status == 0x02 and len(sense) > 1 and (sense[0] & 0x7F) in (0x72, 0x73) \
                    and (sense[1] & 0x0F) == 0x06:
                continue
            return status, data, sense
        return status, data, sense

    def logout(self):
        itt = self.next_itt()
        self.conn.send_pdu(bhs(OP_LOGOUT_REQ, 0x80, itt=itt, f24=self.cmdsn,
                               f28=self.expstatsn, immediate=True))
        rsp = self._recv_for(itt)
        if rsp.opcode != OP_LOGOUT_RSP:
            raise IscsiError("Logout answered by %r" % rsp)
        return rsp.b2


# SCSI helpers ---------------------------------------------------------------

def cdb_inquiry(evpd=False, page=0, alloc=4096):
    return struct.pack(">BBBH", 0x12, 1 if evpd else 0, page, alloc) + b"\0"


def cdb_read10(lba, blocks):
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)


def cdb_write10(lba, blocks):
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


def cdb_read_capacity10():
    return b"\x25" + b"\0" * 9


CDB_TEST_UNIT_READY = b"\0" * 6


# Daemon harness (same contract as lib.sh) -----------------------------------

class Reporter:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def ok(self, what):
        self.passed += 1
        print("PASS: %s: %s" % (self.name, what), flush=True)

    def fail(self, what):
        self.failed += 1
        print("FAIL: %s: %s" % (self.name, what), flush=True)

    def check(self, cond, what, detail=""):
        if cond:
            self.ok(what)
        else:
            self.fail(what + (" (%s)" % detail if detail else ""))
        return cond

    def skip(self, what):
        print("SKIP: %s: %s" % (self.name, what), flush=True)

    def finish(self):
        print("# %s: %d checks passed, %d checks failed" % (self.name, self.passed, self.failed))
        return 1 if self.failed else 0


def repo_root():
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def timeout_scale():
    return int(os.environ.get("SPT_TIMEOUT_SCALE", "1"))


def lun_base():
    return int(os.environ.get("SPT_LUN_BASE", "0"))


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer", "SUMMARY: AddressSanitizer")


class Daemon:
    """Start the daemon on a free loopback port in a directory of its own."""

    def __init__(self, rep, workdir, args, target="iqn.2026-11.org.spt:target0"):
        self.rep = rep
        self.workdir = workdir
        self.args = list(args)
        self.target = target
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.log_path = os.path.join(workdir, "sptd.log")
        self.binary = os.environ.get("SPTD") or os.path.join(repo_root(), "build", "sptd")

    def url(self, lun=0):
        return "iscsi://%s:%d/%s/%d" % (self.host, self.port, self.target, lun + lun_base())

    def start(self):
        for _attempt in range(3):
            self.port = free_port(self.host)
            cmd = [self.binary, "--listen", "%s:%d" % (self.host, self.port)]
            if os.environ.get("SPT_NO_CONTROL", "0") != "1":
                cmd += ["--control", os.path.join(self.workdir, "control.sock")]
            cmd += self.args
            with open(self.log_path, "w") as log:
                log.write("# starting: %s\n" % " ".join(cmd))
                log.flush()
                self.proc = subprocess.Popen(
                    cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            deadline = time.time() + 20 * timeout_scale()
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                if port_open(self.host, self.port):
                    return True
                time.sleep(0.1)
            if self.proc.poll() is not None and "already in use" in self.log().lower():
                continue
            break
        if self.proc.poll() is None:
            self.rep.fail("daemon listens on port %d within %ds" % (self.port, 20 * timeout_scale()))
            self.kill()
        else:
            self.rep.fail("daemon starts (exited with status %s)" % self.proc.returncode)
        self.show_log()
        return False

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def show_log(self, lines=40):
        for line in self.log().splitlines()[-lines:]:
            print("    | " + line)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        """SIGTERM; expect exit 0 and a clean log (two checks)."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            self.rep.fail("daemon still running before SIGTERM (exit status %s)" %
                          self.proc.returncode)
            self.show_log(60)
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10 * timeout_scale())
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "killed after %ds" % (10 * timeout_scale())
        ok1 = self.rep.check(rc == 0, "daemon exits 0 on SIGTERM", "status %s" % rc)
        text = self.log()
        ok2 = self.rep.check(not any(m in text for m in SANITIZER_MARKS),
                             "daemon log has no sanitizer report")
        if not (ok1 and ok2):
            self.show_log(60)


def make_workdir(name):
    return tempfile.mkdtemp(prefix="spt-%s." % name, dir=os.environ.get("TMPDIR", "/tmp"))


def _main(argv):
    if len(argv) >= 6 and argv[1] == "inquiry":
        host, port, target, lun = argv[2], int(argv[3]), argv[4], int(argv[5])
        page = None
        if len(argv) >= 8 and argv[6] == "--vpd":
            page = int(argv[7], 0)
        s = Session(host, port, target)
        s.login()
        status, data, sense = s.scsi_retry_ua(
            cdb_inquiry(page is not None, page or 0, 4096), lun=lun, read_len=4096)
        if status != 0:
            print("status 0x%02x sense %s" % (status, sense.hex()), file=sys.stderr)
            return 1
        print(data.hex())
        s.logout()
        s.close()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
