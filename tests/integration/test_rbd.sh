#!/bin/bash
# The Ceph RBD provider (issue 8) against a one-node cluster on loopback
# (tests/integration/ceph_cluster.sh: one mon, one bluestore OSD on a
# sparse file, no mgr):
#  - sptd serves --lun rbd:POOL/IMAGE,conf=...,id=admin: INQUIRY, READ
#    CAPACITY(16) with the image's size, LBPME/LBPRZ;
#  - a second sptd on the same image shows the same VPD 0x80 serial and
#    0x83 designators (derived from the image, not the host);
#  - qemu-io writes and reads back 4 MiB, and `rbd export` of the image sees
#    the written bytes (the flush at qemu-io's exit reached the OSD);
#  - libiscsi's conformance suites for the basics (SPT_RBD_SUITES) with the
#    verdicts compared with tests/conformance/accepted-failures.txt;
#  - `rbd resize` reaches initiators as the new capacity;
#  - the OSD stopped (SIGSTOP): INQUIRY still answers, a read ends with BUSY
#    after rados_osd_op_timeout, and qemu-io's retry succeeds after SIGCONT;
#  - sptd stops cleanly (sanitizer-clean under the san pass);
#  - a cluster nobody answers for: sptd refuses the LUN within a bounded
#    time with a readable error.
# Without the ceph packages it prints one SKIP line (CI installs them).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph_cluster.sh"
spt_init rbd
trap 'rc=$?; ceph_cluster_stop >/dev/null 2>&1; (exit $rc); spt_cleanup' EXIT

CONF=$SPT_ROOT/tests/conformance
PARSE=$CONF/cu_parse.py
ACCEPTED=$CONF/accepted-failures.txt
POOL=spt
IMAGE=lun0
SIZE_MB=64
SUITES=${SPT_RBD_SUITES:-ALL.Inquiry ALL.ReadCapacity16 ALL.Read10 ALL.Write10 ALL.Write16 \
ALL.WriteSame10 ALL.WriteSame16 ALL.Unmap ALL.SyncCache10 ALL.SyncCache16 ALL.CompareAndWrite \
ALL.GetLBAStatus ALL.Verify10}
CONNECT_TIMEOUT=10	# RBD_CONNECT_TIMEOUT_S in src/providers/rbd.h
OSD_OP_TIMEOUT=20	# RBD_OSD_OP_TIMEOUT_S

if ! ceph_cluster_have; then
	skip "ceph-mon, ceph-osd and ceph-common are not installed (tests/install-deps.sh installs them)"
	exit 0
fi
for tool in iscsi-test-cu iscsi-inq iscsi-readcapacity16 qemu-io; do
	if ! command -v $tool >/dev/null; then
		fail "$tool is installed (run tests/install-deps.sh)"
		spt_finish
	fi
done

t0=$SECONDS
if ceph_cluster_start "$SPT_TMP/ceph" "$POOL" "$IMAGE" ${SIZE_MB}M >"$SPT_TMP/ceph-start.log" 2>&1; then
	pass "a one-node Ceph cluster starts with pool $POOL and image $IMAGE ($((SECONDS - t0)) s)"
	echo "# rbd: cluster up, pool and image created in $((SECONDS - t0)) s"
else
	fail "a one-node Ceph cluster starts with pool $POOL and image $IMAGE"
	spt_show "$SPT_TMP/ceph-start.log" 30
	spt_show "$SPT_TMP/ceph/log/osd.0.log" 20
	spt_finish
fi
RBD=(rbd -c "$CEPH_CONF")
LUNSPEC="rbd:$POOL/$IMAGE,conf=$CEPH_CONF,id=admin"

spt_start --dir "$SPT_TMP/d1" -- --lun "$LUNSPEC" || spt_finish
URL=$(spt_url 0)

check "INQUIRY of the RBD LUN" iscsi-inq "$URL"
cap=$(iscsi-readcapacity16 "$URL" 2>&1)
expect_eq "READ CAPACITY(16): last LBA of the ${SIZE_MB} MiB image" \
	"$(sed -n 's/^RETURNED LOGICAL BLOCK ADDRESS:\([0-9]*\).*/\1/p' <<<"$cap")" \
	$((SIZE_MB * 2048 - 1))
if grep -q 'LBPME:1 LBPRZ:1' <<<"$cap"; then pass "LBPME=1 LBPRZ=1 (UNMAP reads back zeros)"; else
	fail "LBPME=1 LBPRZ=1 (UNMAP reads back zeros)"
	spt_show - <<<"$cap"
fi

# ---- the same designators from a second gateway ----
vpd() { # URL PAGE: the page's payload, without the transport-specific lines
	iscsi-inq -e 1 -c "$2" "$1" 2>&1 | grep -iv 'relative\|port group\|target port'
}
serial1=$(vpd "$URL" 0x80)
ident1=$(vpd "$URL" 0x83)
D1_PID=$SPT_PID D1_PORT=$SPT_PORT D1_LOG=$SPT_LOG
if spt_start --dir "$SPT_TMP/d2" -- --lun "$LUNSPEC"; then
	serial2=$(vpd "$(spt_url 0)" 0x80)
	ident2=$(vpd "$(spt_url 0)" 0x83)
	if [ -n "$serial1" ] && [ "$serial1" = "$serial2" ] && grep -qi 'serial' <<<"$serial1"; then
		pass "a second gateway shows the same unit serial number (VPD 0x80)"
	else
		fail "a second gateway shows the same unit serial number (VPD 0x80)"
		spt_show - <<<"$serial1
---
$serial2"
	fi
	if [ -n "$ident1" ] && [ "$ident1" = "$ident2" ]; then
		pass "a second gateway shows the same LU designators (VPD 0x83)"
	else
		fail "a second gateway shows the same LU designators (VPD 0x83)"
		spt_show - <<<"$ident1
---
$ident2"
	fi
	spt_stop
fi
SPT_PID=$D1_PID SPT_PORT=$D1_PORT SPT_LOG=$D1_LOG

# ---- data through sptd is in the image ----
check "qemu-io writes 4 MiB of 0x5a and reads them back" \
	qemu-io -f raw -c 'write -P 0x5a 0 4M' -c 'read -P 0x5a 0 4M' "$URL"
head -c 1048576 /dev/zero | tr '\0' '\132' >"$SPT_TMP/expect-5a"
if "${RBD[@]}" export "$POOL/$IMAGE" "$SPT_TMP/export.img" >"$SPT_TMP/export.log" 2>&1 &&
	cmp -n 1048576 "$SPT_TMP/export.img" "$SPT_TMP/expect-5a"; then
	pass "rbd export sees the first MiB written through sptd"
else
	fail "rbd export sees the first MiB written through sptd"
	spt_show "$SPT_TMP/export.log" 10
fi
rm -f "$SPT_TMP/export.img"
check "qemu-io writes 0xc3 at 8 MiB with FUA" \
	qemu-io -f raw -c 'write -f -P 0xc3 8M 64k' -c 'read -P 0xc3 8M 64k' "$URL"

# ---- conformance suites ----
LIST=$SPT_TMP/list.txt
OUT=$SPT_TMP/out
TALLY=$SPT_TMP/tally
mkdir -p "$OUT"
: >"$TALLY"
iscsi-test-cu --list >"$LIST" 2>&1
export CU_ROUND=rbd
t0=$SECONDS
for suite in $SUITES; do
	timeout -k 10 "$(spt_t 120)" iscsi-test-cu --dataloss -i "$SPT_INITIATOR" \
		-I "$SPT_INITIATOR-2" -t "$suite" "$URL" >"$OUT/$suite.txt" 2>&1 </dev/null
	rc=$?
	died=0
	spt_alive || died=1
	python3 "$PARSE" check "$LIST" "$ACCEPTED" "$suite" "$OUT/$suite.txt" "$rc" "$died" "$TALLY"
	if [ $died = 1 ]; then
		fail "daemon survives suite $suite on the RBD LUN"
		spt_show "$SPT_LOG" 60
		spt_finish
	fi
done
read -r passed failed _ skipped _ < <(awk '{p+=$1; f+=$2; a+=$3; s+=$4; x+=$5}
	END {print p+0, f+0, a+0, s+0, x+0}' "$TALLY")
SPT_PASSED=$((SPT_PASSED + passed))
SPT_FAILED=$((SPT_FAILED + failed))
echo "# rbd: $passed conformance tests passed ($skipped of them [SKIPPED]), $failed failed in $((SECONDS - t0)) s"

# ---- a resize of the image reaches initiators ----
if "${RBD[@]}" resize --size $((SIZE_MB * 2))M "$POOL/$IMAGE" >"$SPT_TMP/resize.log" 2>&1; then
	want=$((SIZE_MB * 2 * 2048 - 1)) got=
	for _ in $(seq 50); do
		got=$(iscsi-readcapacity16 "$URL" 2>/dev/null |
			sed -n 's/^RETURNED LOGICAL BLOCK ADDRESS:\([0-9]*\).*/\1/p')
		[ "$got" = "$want" ] && break
		sleep 0.2
	done
	expect_eq "rbd resize to $((SIZE_MB * 2)) MiB: READ CAPACITY(16) follows" "$got" "$want"
else
	fail "rbd resize of the image"
	spt_show "$SPT_TMP/resize.log"
fi

# ---- the OSD stops answering: the reactor lives, the command gets BUSY
# after rados_osd_op_timeout, and completes once the OSD is back ----
OSD_PID=${CEPH_PIDS[1]}
kill -STOP "$OSD_PID"
qemu-io -f raw -c 'read 100M 64k' "$URL" >"$SPT_TMP/stalled.log" 2>&1 </dev/null &
QIO_PID=$!
SPT_STARTED_PIDS+=("$QIO_PID")
sleep 1
check "INQUIRY answers while the OSD is stopped (no reactor waits on the cluster)" \
	timeout 5 iscsi-inq "$URL"
busy=0
for _ in $(seq $((OSD_OP_TIMEOUT * 5 + 50))); do
	grep -q BUSY "$SPT_TMP/stalled.log" && { busy=1; break; }
	sleep 0.2
done
kill -CONT "$OSD_PID"
if [ $busy = 1 ]; then pass "a read the OSD does not answer ends with BUSY (rados_osd_op_timeout)"; else
	fail "a read the OSD does not answer ends with BUSY (rados_osd_op_timeout)"
	spt_show "$SPT_TMP/stalled.log" 10
fi
deadline=$((SECONDS + $(spt_t 60)))
while kill -0 "$QIO_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
	sleep 0.2
done
spt_kill_pid "$QIO_PID"
if [ "$SPT_EXIT" = 0 ] && grep -q 'read 65536/65536' "$SPT_TMP/stalled.log"; then
	pass "the initiator's retry succeeds once the OSD answers again"
else
	fail "the initiator's retry succeeds once the OSD answers again (qemu-io: $SPT_EXIT)"
	spt_show "$SPT_TMP/stalled.log" 10
fi

spt_stop

# ---- an unreachable cluster: the LUN is refused in bounded time ----
dead_port=$(spt_free_port)
sed "s/^mon host = .*/mon host = v2:127.0.0.1:$dead_port/" "$CEPH_CONF" >"$SPT_TMP/dead.conf"
mkdir -p "$SPT_TMP/d3"
t0=$SECONDS
spt_spawn "$SPT_TMP/d3" "$SPT_TMP/d3/sptd.log" "$SPTD" --listen "127.0.0.1:$(spt_free_port)" \
	--lun "rbd:$POOL/$IMAGE,conf=$SPT_TMP/dead.conf,id=admin"
DEAD_PID=$SPT_PID
deadline=$((SECONDS + $(spt_t $((CONNECT_TIMEOUT + 10)))))
while kill -0 "$DEAD_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
	sleep 0.2
done
if kill -0 "$DEAD_PID" 2>/dev/null; then
	fail "sptd refuses an RBD LUN of an unreachable cluster within $((deadline - t0)) s"
	spt_kill_pid "$DEAD_PID"
else
	spt_kill_pid "$DEAD_PID"
	if [ "$SPT_EXIT" != 0 ] && grep -q 'cannot connect to the Ceph cluster' "$SPT_TMP/d3/sptd.log"; then
		pass "sptd refuses an RBD LUN of an unreachable cluster in $((SECONDS - t0)) s, exit $SPT_EXIT, with a readable error"
	else
		fail "sptd refuses an RBD LUN of an unreachable cluster with a readable error (exit $SPT_EXIT)"
		spt_show "$SPT_TMP/d3/sptd.log" 20
	fi
	if spt_log_has_sanitizer_report "$SPT_TMP/d3/sptd.log"; then
		fail "the refused start leaves no sanitizer report"
		spt_show "$SPT_TMP/d3/sptd.log" 60
	else
		pass "the refused start leaves no sanitizer report"
	fi
fi
SPT_PID=

ceph_cluster_stop
spt_finish
