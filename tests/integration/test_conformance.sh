#!/bin/bash
# libiscsi's SCSI/iSCSI conformance suite (iscsi-test-cu) against the daemon,
# one invocation per suite of the ALL family so that a crash or hang is
# attributed to the suite that caused it. Per-test verdicts are compared with
# tests/conformance/accepted-failures.txt.
#
#   SPT_CONFORMANCE_SUITES="ALL.Read10 ALL.Write10"  run only these suites
#   SPT_CONFORMANCE_BUDGET=900   seconds for all suites; the rest fail as not run
#   SPT_CONFORMANCE_MIN_PASSED=175  fewer passed tests in ALL is a failure
#   SPT_CONFORMANCE_BLOCK_SIZE=512  block size of the LUN under test
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
spt_init conformance

CONF=$SPT_ROOT/tests/conformance
ACCEPTED=$CONF/accepted-failures.txt
PARSE=$CONF/cu_parse.py
MIN_PASSED=${SPT_CONFORMANCE_MIN_PASSED:-175}
BUDGET=${SPT_CONFORMANCE_BUDGET:-900}
BS=${SPT_CONFORMANCE_BLOCK_SIZE:-512}
SIZE=$((64 * 1048576))
SUITE_TIMEOUT=$(spt_t 120)
INITIATOR2=iqn.2026-11.org.spt:test-initiator-2

if ! command -v iscsi-test-cu >/dev/null; then
	fail "iscsi-test-cu is installed (package libiscsi-bin; run tests/install-deps.sh)"
	spt_finish
fi
if lint=$(python3 "$PARSE" lint "$ACCEPTED"); then
	pass "accepted-failures.txt is well formed"
else
	fail "accepted-failures.txt is well formed"
	spt_show - <<<"$lint"
fi

LIST=$SPT_TMP/list.txt
iscsi-test-cu --list >"$LIST" 2>&1
if [ -n "${SPT_CONFORMANCE_SUITES:-}" ]; then
	read -ra SUITES <<<"$SPT_CONFORMANCE_SUITES"
	FULL_RUN=0
else
	mapfile -t SUITES < <(python3 "$PARSE" suites "$LIST" ALL)
	FULL_RUN=1
fi
if [ ${#SUITES[@]} -eq 0 ]; then
	fail "iscsi-test-cu --list names suites of the ALL family"
	spt_show "$LIST"
	spt_finish
fi

img=$SPT_TMP/conformance.img
spt_mkimg "$img" $SIZE
start_daemon() {
	spt_start --lun "$img,size=$SIZE,block_size=$BS"
}
start_daemon || spt_finish

TALLY=$SPT_TMP/tally
: >"$TALLY"
OUT=$SPT_TMP/out
mkdir -p "$OUT"
t0=$SECONDS
for suite in "${SUITES[@]}"; do
	if [ $((SECONDS - t0)) -ge "$BUDGET" ]; then
		# Out of time: every remaining test counts as failed (no silent skips).
		echo 1 >"$OUT/$suite.timeout"
		: >"$OUT/$suite.txt"
		echo "# conformance: budget of ${BUDGET}s used up before $suite" >>"$OUT/$suite.txt"
		python3 "$PARSE" check "$LIST" "$ACCEPTED" "$suite" "$OUT/$suite.txt" budget 0 "$TALLY"
		continue
	fi
	if ! spt_alive; then
		start_daemon || {
			python3 "$PARSE" check "$LIST" "$ACCEPTED" "$suite" /dev/null no-daemon 1 "$TALLY"
			continue
		}
	fi
	ts=$SECONDS
	timeout -k 10 "$SUITE_TIMEOUT" iscsi-test-cu --dataloss --allow-sanitize \
		-i "$SPT_INITIATOR" -I "$INITIATOR2" -t "$suite" "$(spt_url 0)" \
		>"$OUT/$suite.txt" 2>&1 </dev/null
	rc=$?
	died=0
	spt_alive || died=1
	echo "# conformance: $suite: iscsi-test-cu exit $rc in $((SECONDS - ts))s"
	python3 "$PARSE" check "$LIST" "$ACCEPTED" "$suite" "$OUT/$suite.txt" "$rc" "$died" "$TALLY"
	if [ $died = 1 ]; then
		fail "daemon survives suite $suite (log follows; restarting it for the next suite)"
		spt_stop
		spt_show "$SPT_LOG" 60
	fi
done
spt_stop

read -r passed failed accepted skipped xpass < <(awk '{p+=$1; f+=$2; a+=$3; s+=$4; x+=$5}
	END {print p+0, f+0, a+0, s+0, x+0}' "$TALLY")
SPT_PASSED=$((SPT_PASSED + passed))
SPT_FAILED=$((SPT_FAILED + failed))
echo "# conformance: ${#SUITES[@]} suites in $((SECONDS - t0))s: $passed passed" \
	"($skipped of them skipped by the test itself), $failed failed," \
	"$accepted accepted failures, $xpass accepted but passing"
if [ $FULL_RUN = 1 ]; then
	if [ "$passed" -ge "$MIN_PASSED" ]; then
		pass "at least $MIN_PASSED ALL tests pass ($passed)"
	else
		fail "at least $MIN_PASSED ALL tests pass (only $passed)"
	fi
fi
spt_finish
