#!/bin/bash
# Multipath and ALUA (issue 5): one daemon, two portals in two target portal
# groups (two ports on 127.0.0.1). libiscsi's MultipathIO suite with both
# URLs; iscsi-ls shows each portal with its own tag; REPORT TARGET PORT
# GROUPS, INQUIRY TPGS and the per-path Device Identification designators
# through raw CDBs; `sptctl alua set 2 standby` makes READ through group 2
# NOT READY 04/0B (after the 2A/06 unit attention) while group 1 works;
# a persistent reservation made through one path is seen and enforced
# through the other.
. "$(dirname "$0")/lib.sh"
spt_init multipath

SPTCTL=$SPT_ROOT/build/sptctl
PORT2=$(spt_free_port)
spt_start -- --lun "ram:64M" --listen "127.0.0.1:$PORT2,tpg=2" || spt_finish
PORT1=$SPT_PORT
URL1=iscsi://127.0.0.1:$PORT1/$SPT_TARGET/0
URL2=iscsi://127.0.0.1:$PORT2/$SPT_TARGET/0
SOCK=$SPT_RUNDIR/control.sock

# --- discovery: each portal with the tag of its group (RFC 7143 appendix C) --
out=$(iscsi-ls "iscsi://127.0.0.1:$PORT1" 2>&1)
if grep -q "Portal:127.0.0.1:$PORT1,1" <<<"$out" && grep -q "Portal:127.0.0.1:$PORT2,2" <<<"$out"; then
	pass "iscsi-ls lists 127.0.0.1:$PORT1,1 and 127.0.0.1:$PORT2,2"
else
	fail "iscsi-ls lists both portals with their tags: $out"
fi

# --- libiscsi MultipathIO with two paths ------------------------------------
log=$SPT_TMP/mpio.log
iscsi-test-cu --dataloss -t ALL.MultipathIO "$URL1" "$URL2" >"$log" 2>&1
rc=$?
if [ $rc = 0 ] && grep -q "found matching LU device identifier for all (2) paths" "$log" &&
   grep -Eq "tests +4 +4 +4 +0" "$log" && ! grep -qi "skipped\|multipath unavailable" "$log"; then
	pass "iscsi-test-cu ALL.MultipathIO with two URLs: 4 of 4 passed, same LU designator on both paths"
else
	fail "iscsi-test-cu ALL.MultipathIO with two URLs (status $rc)"
	spt_show "$log" 40
fi

# --- sptctl alua list ---------------------------------------------------------
out=$("$SPTCTL" --socket "$SOCK" alua list 2>&1)
if grep -Eq "^1 +active-optimized +127.0.0.1:$PORT1\$" <<<"$out" &&
   grep -Eq "^2 +active-optimized +127.0.0.1:$PORT2,tpg=2\$" <<<"$out"; then
	pass "sptctl alua list: groups 1 and 2, active-optimized, with their portals"
else
	fail "sptctl alua list: $out"
fi
check_fails "sptctl alua set 0 standby is refused" "$SPTCTL" --socket "$SOCK" alua set 0 standby
check_fails "sptctl alua set 2 sleepy is refused" "$SPTCTL" --socket "$SOCK" alua set 2 sleepy

# --- raw CDBs through both paths ---------------------------------------------
python3 - "$PORT1" "$PORT2" "$SPT_TARGET" "$SPTCTL" "$SOCK" "$SPT_ROOT/tests/integration" <<'PYEOF'
import os, struct, subprocess, sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[6])
from spt_iscsi import Reporter, Session, cdb_inquiry, cdb_read10  # noqa: E402

port1, port2, target, sptctl, sock = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
r = Reporter("multipath")
ISID = bytes.fromhex("023d000001")
GOOD, CHECK, CONFLICT = 0x00, 0x02, 0x18

def sense_kcq(sense):
    if not sense:
        return None
    if sense[0] & 0x7F in (0x72, 0x73):
        return sense[1] & 0x0F, sense[2], sense[3]
    return sense[2] & 0x0F, sense[12], sense[13]

def rtpg(s, fmt):
    cdb = bytes([0xA3, (fmt << 5) | 0x0A, 0, 0, 0, 0]) + struct.pack(">I", 1024) + b"\0\0"
    return s.scsi_retry_ua(cdb, read_len=1024)

def groups_of(data, fmt):
    off = 8 if fmt == 1 else 4
    out = {}
    while off + 8 <= len(data):
        state, gid, count = data[off] & 0x0F, struct.unpack(">H", data[off + 2:off + 4])[0], data[off + 7]
        ports = [struct.unpack(">H", data[off + 8 + 4 * i + 2:off + 8 + 4 * i + 4])[0] for i in range(count)]
        out[gid] = (state, ports)
        off += 8 + 4 * count
    return out

def designators(data):
    off, out = 4, []
    while off + 4 <= len(data):
        length = data[off + 3]
        out.append((data[off + 1] & 0x30, data[off + 1] & 0x0F, data[off + 4:off + 4 + length]))
        off += 4 + length
    return out

# the same initiator port (name + ISID) through both portals: two I_T nexuses
s1 = Session("127.0.0.1", port1, target, isid=ISID)
s1.login()
s2 = Session("127.0.0.1", port2, target, isid=ISID)
s2.login()
st, data, _ = s1.scsi_retry_ua(cdb_read10(0, 1), read_len=512)
r.check(st == GOOD, "a second login through group 2 with the same ISID leaves path 1's session alone")

st, data, _ = s1.scsi_retry_ua(cdb_inquiry(alloc=96), read_len=96)
r.check(st == GOOD and (data[5] >> 4) & 3 == 1, "INQUIRY: TPGS = 01b (implicit ALUA)", "byte 5 0x%02x" % data[5])

ids = {}
for name, s, port in (("path 1", s1, 1), ("path 2", s2, 2)):
    st, data, _ = s.scsi_retry_ua(cdb_inquiry(evpd=True, page=0x83, alloc=512), read_len=512)
    d = designators(data)
    lu = [x for x in d if x[0] == 0x00]
    rel = [struct.unpack(">H", x[2][2:4])[0] for x in d if x[0] == 0x10 and x[1] == 4]
    tpg = [struct.unpack(">H", x[2][2:4])[0] for x in d if x[0] == 0x10 and x[1] == 5]
    ids[name] = lu
    r.check(st == GOOD and rel == [port] and tpg == [port],
            "VPD 0x83 through %s: relative target port %d, target port group %d" % (name, port, port),
            "rel %s tpg %s" % (rel, tpg))
r.check(ids["path 1"] == ids["path 2"] and ids["path 1"], "VPD 0x83: LU designators identical on both paths")

for fmt in (0, 1):
    st, data, _ = rtpg(s2, fmt)
    g = groups_of(data, fmt)
    ok = st == GOOD and g == {1: (0, [1]), 2: (0, [2])}
    if fmt == 1:
        ok = ok and (data[4] >> 4) & 7 == 1
    r.check(ok, "REPORT TARGET PORT GROUPS format %d: groups 1 and 2 active/optimized, port = group" % fmt,
            "status %d groups %s" % (st, g))

rc = subprocess.run([sptctl, "--socket", sock, "alua", "set", "2", "standby"], capture_output=True, text=True)
r.check(rc.returncode == 0, "sptctl alua set 2 standby", rc.stderr.strip())
st, _, sense = s2.scsi(cdb_read10(0, 1), read_len=512)
r.check(st == CHECK and sense_kcq(sense) == (6, 0x2A, 0x06),
        "path 2: first command after the change gets UNIT ATTENTION 2A/06", "%d %s" % (st, sense_kcq(sense)))
st, _, sense = s2.scsi(cdb_read10(0, 1), read_len=512)
r.check(st == CHECK and sense_kcq(sense) == (2, 0x04, 0x0B),
        "READ through group 2 in standby: NOT READY 04/0B", "%d %s" % (st, sense_kcq(sense)))
st, data, _ = s2.scsi(cdb_inquiry(alloc=96), read_len=96)
r.check(st == GOOD, "INQUIRY through group 2 in standby still works")
st, data, _ = rtpg(s2, 1)
r.check(st == GOOD and groups_of(data, 1).get(2, (None,))[0] == 2,
        "REPORT TARGET PORT GROUPS through the standby path shows group 2 standby")
st, _, sense = s1.scsi_retry_ua(cdb_read10(0, 1), read_len=512)
r.check(st == GOOD, "READ through group 1 works while group 2 is in standby")
rc = subprocess.run([sptctl, "--socket", sock, "alua", "list"], capture_output=True, text=True)
r.check(" standby " in rc.stdout, "sptctl alua list shows group 2 standby")
subprocess.run([sptctl, "--socket", sock, "alua", "set", "2", "unavailable"], capture_output=True)
st, _, sense = s2.scsi_retry_ua(bytes(6), read_len=0)
r.check(st == CHECK and sense_kcq(sense) == (2, 0x04, 0x0C),
        "TEST UNIT READY through group 2 unavailable: NOT READY 04/0C", "%d %s" % (st, sense_kcq(sense)))
subprocess.run([sptctl, "--socket", sock, "alua", "set", "2", "active-optimized"], capture_output=True)
st, _, _ = s2.scsi_retry_ua(cdb_read10(0, 1), read_len=512)
r.check(st == GOOD, "READ through group 2 works again once active-optimized")

# persistent reservations: one I_T nexus per path (SPC-4 5.13)
def pr_out(s, sa, key, sakey, typ=0, aptpl=False, all_tg_pt=False):
    param = struct.pack(">QQ", key, sakey) + b"\0" * 4 + bytes([(0x04 if all_tg_pt else 0) | (1 if aptpl else 0), 0, 0, 0])
    cdb = bytes([0x5F, sa, typ, 0, 0]) + struct.pack(">I", len(param)) + b"\0"
    return s.scsi_retry_ua(cdb, write=param)

def read_keys(s):
    cdb = bytes([0x5E, 0, 0, 0, 0, 0, 0]) + struct.pack(">H", 256) + b"\0"
    st, data, _ = s.scsi_retry_ua(cdb, read_len=256)
    n = struct.unpack(">I", data[4:8])[0] // 8
    return st, [struct.unpack(">Q", data[8 + 8 * i:16 + 8 * i])[0] for i in range(n)]

st, _, _ = pr_out(s1, 0, 0, 0xAAAA)
r.check(st == GOOD, "PR REGISTER key 0xAAAA through path 1")
st, keys = read_keys(s2)
r.check(st == GOOD and keys == [0xAAAA], "READ KEYS through path 2 sees the key registered through path 1", str(keys))
st, _, _ = pr_out(s1, 1, 0xAAAA, 0, typ=3)
r.check(st == GOOD, "PR RESERVE Exclusive Access through path 1")
st, _, _ = s2.scsi_retry_ua(cdb_read10(0, 1), read_len=512)
r.check(st == CONFLICT, "READ through path 2 (another I_T nexus, unregistered): RESERVATION CONFLICT")
st, _, _ = s1.scsi_retry_ua(cdb_read10(0, 1), read_len=512)
r.check(st == GOOD, "READ through path 1 (the holder) works")
st, _, _ = pr_out(s1, 2, 0xAAAA, 0, typ=3)
r.check(st == GOOD, "PR RELEASE through path 1")
pr_out(s1, 0, 0xAAAA, 0)
s1.logout(); s2.logout()
sys.exit(r.finish())
PYEOF
[ $? = 0 ] || SPT_FAILED=$((SPT_FAILED + 1))

spt_stop
spt_finish
