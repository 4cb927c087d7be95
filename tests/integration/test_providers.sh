#!/bin/bash
# External providers against real initiators: build/spt-memprovider (C, on
# libspt) and examples/python/spt_provider.py (Python standard library only)
# each serve a LUN of one sptd through --provider-socket.
#  - libiscsi's conformance suites (every suite of the ALL family, each in
#    its own run) pass on both LUNs (per-test verdicts compared with
#    tests/conformance/accepted-failures.txt, like test_conformance.sh);
#  - `sptctl session stop` of a session running iscsi-perf on a provider LUN:
#    gone within grace + 2 s, a second iscsi-perf session unaffected;
#  - the memprovider killed (SIGKILL) during I/O and restarted: the daemon
#    lives, the LUN answers NOT READY meanwhile and comes back, I/O works;
#  - the daemon exits cleanly (sanitizer-clean under the san pass).
#
#   SPT_PROVIDER_SUITES="ALL.Read10 ..."   the suites run on each provider LUN
#                                          (ALL: every suite of the ALL family)
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
spt_init providers

MEMPROV=${SPT_MEMPROVIDER:-$(dirname "$SPTD")/spt-memprovider}
PYPROV=$SPT_ROOT/examples/python/spt_provider.py
SPTCTL=$(dirname "$SPTD")/sptctl
CONF=$SPT_ROOT/tests/conformance
PARSE=$CONF/cu_parse.py
ACCEPTED=$CONF/accepted-failures.txt
TARGET=iqn.2026-11.org.spt:providers
INITIATOR2=iqn.2026-11.org.spt:test-initiator-2
SUITES=${SPT_PROVIDER_SUITES:-ALL}
SIZE_MB=64
GRACE=2

for bin in "$MEMPROV" "$SPTCTL"; do
	if [ ! -x "$bin" ]; then
		fail "$bin is built"
		spt_finish
	fi
done
if ! command -v iscsi-test-cu >/dev/null || ! command -v iscsi-perf >/dev/null; then
	fail "libiscsi-bin is installed (iscsi-test-cu, iscsi-perf; run tests/install-deps.sh)"
	spt_finish
fi

DDIR=$SPT_TMP/daemon
PSOCK=$DDIR/providers.sock
mkdir -p "$DDIR"
spt_start --dir "$DDIR" --target "$TARGET" -- --provider-socket "$PSOCK" \
	--lun provider:mem0 --lun provider:py0 --logout-grace "$GRACE" || spt_finish
DAEMON_PID=$SPT_PID

# start_provider NAME LOG CMD...: spawns a provider; prints its PID.
MEM_PID=
PY_PID=
start_memprovider() {
	spt_spawn "$SPT_TMP" "$SPT_TMP/memprovider.log" "$MEMPROV" --socket "$PSOCK" --name mem0 \
		--size ${SIZE_MB}M
	MEM_PID=$SPT_PID
	SPT_PID=$DAEMON_PID
}
start_pyprovider() {
	spt_spawn "$SPT_TMP" "$SPT_TMP/pyprovider.log" python3 "$PYPROV" --socket "$PSOCK" --name py0 \
		--size ${SIZE_MB}M
	PY_PID=$SPT_PID
	SPT_PID=$DAEMON_PID
}

# lun_ready LUN SECONDS: true once the LUN answers TEST UNIT READY.
lun_ready() {
	local lun=$1 deadline=$((SECONDS + $2))
	while [ $SECONDS -lt "$deadline" ]; do
		iscsi-inq "$(spt_url "$lun")" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

check_fails "LUN 0 answers NOT READY before its provider registers" iscsi-inq "$(spt_url 0)"
start_memprovider
start_pyprovider
if lun_ready 0 "$(spt_t 10)"; then pass "spt-memprovider registers and serves LUN 0"; else
	fail "spt-memprovider registers and serves LUN 0"
	spt_show "$SPT_TMP/memprovider.log"
fi
if lun_ready 1 "$(spt_t 10)"; then pass "the Python provider registers and serves LUN 1"; else
	fail "the Python provider registers and serves LUN 1"
	spt_show "$SPT_TMP/pyprovider.log"
fi
lunlist=$("$SPTCTL" --socket "$DDIR/control.sock" lun list 2>&1)
if grep -q 'provider:mem0.*online' <<<"$lunlist" && grep -q 'provider:py0.*online' <<<"$lunlist"; then
	pass "sptctl lun list shows both provider LUNs online"
else
	fail "sptctl lun list shows both provider LUNs online"
	spt_show - <<<"$lunlist"
fi

# ---- conformance suites on each provider LUN ----
LIST=$SPT_TMP/list.txt
iscsi-test-cu --list >"$LIST" 2>&1
if [ "$SUITES" = ALL ]; then
	SUITES=$(python3 "$PARSE" suites "$LIST" ALL | tr '\n' ' ')
fi
OUT=$SPT_TMP/out
mkdir -p "$OUT"
for lun in 0 1; do
	name=memprovider
	[ "$lun" = 1 ] && name=pyprovider
	tally=$SPT_TMP/tally-$name
	: >"$tally"
	export CU_ROUND=$name
	for suite in $SUITES; do
		timeout -k 10 "$(spt_t 120)" iscsi-test-cu --dataloss -i "$SPT_INITIATOR" \
			-I "$INITIATOR2" -t "$suite" "$(spt_url $lun)" >"$OUT/$name-$suite.txt" 2>&1 </dev/null
		rc=$?
		died=0
		spt_alive || died=1
		python3 "$PARSE" check "$LIST" "$ACCEPTED" "$suite" "$OUT/$name-$suite.txt" "$rc" "$died" "$tally"
		if [ $died = 1 ]; then
			fail "daemon survives suite $suite on the $name LUN"
			spt_show "$SPT_LOG" 60
			spt_finish
		fi
	done
	read -r passed failed _ skipped _ < <(awk '{p+=$1; f+=$2; a+=$3; s+=$4; x+=$5}
		END {print p+0, f+0, a+0, s+0, x+0}' "$tally")
	SPT_PASSED=$((SPT_PASSED + passed))
	SPT_FAILED=$((SPT_FAILED + failed))
	echo "# providers [$name]: $passed conformance tests passed ($skipped of them [SKIPPED]), $failed failed"
done

# ---- sptctl session stop during iscsi-perf ----
session_handle() { # INITIATOR: the handle of its session, if any
	"$SPTCTL" --socket "$DDIR/control.sock" session list --json 2>/dev/null | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s.get("initiator") == sys.argv[1] or s.get("initiator_name") == sys.argv[1]:
        print(s["handle"]); break' "$1"
}
PERF_A=iqn.2026-11.org.spt:perf-a
PERF_B=iqn.2026-11.org.spt:perf-b
iscsi-perf -i "$PERF_A" -m 16 -t 60 -x 0 "$(spt_url 0)" >"$SPT_TMP/perf-a.txt" 2>&1 </dev/null &
PERF_A_PID=$!
SPT_STARTED_PIDS+=("$PERF_A_PID")
iscsi-perf -i "$PERF_B" -m 16 -t 60 "$(spt_url 1)" >"$SPT_TMP/perf-b.txt" 2>&1 </dev/null &
PERF_B_PID=$!
SPT_STARTED_PIDS+=("$PERF_B_PID")
ha= hb=
for _ in $(seq 50); do
	ha=$(session_handle "$PERF_A")
	hb=$(session_handle "$PERF_B")
	[ -n "$ha" ] && [ -n "$hb" ] && break
	sleep 0.2
done
if [ -z "$ha" ] || [ -z "$hb" ]; then
	fail "both iscsi-perf sessions appear in sptctl session list (a='$ha' b='$hb')"
	spt_show "$SPT_TMP/perf-a.txt" 10
else
	sleep 1
	t0=$(date +%s.%N)
	if "$SPTCTL" --socket "$DDIR/control.sock" session stop "$ha" --grace "$GRACE" \
		>"$SPT_TMP/stop.txt" 2>&1; then
		took=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" \
			"$t0" "$(date +%s.%N)")
		if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" \
			"$took" "$((GRACE * SPT_TIMEOUT_SCALE + 2))"; then
			pass "sptctl session stop during iscsi-perf on the memprovider LUN: gone in ${took}s (grace ${GRACE}s)"
		else
			fail "sptctl session stop during iscsi-perf: gone in ${took}s, more than grace + 2 s"
		fi
	else
		fail "sptctl session stop during iscsi-perf"
		spt_show "$SPT_TMP/stop.txt"
	fi
	if "$SPTCTL" --socket "$DDIR/control.sock" session list --json | grep -q "$ha"; then
		fail "the stopped session is no longer listed"
	else
		pass "the stopped session is no longer listed"
	fi
	expect_eq "the other iscsi-perf session (Python provider LUN) is still there" \
		"$(session_handle "$PERF_B")" "$hb"
	if kill -0 "$PERF_B_PID" 2>/dev/null; then
		pass "the other iscsi-perf is still running"
	else
		fail "the other iscsi-perf is still running"
		spt_show "$SPT_TMP/perf-b.txt" 10
	fi
fi

# ---- the memprovider dies during I/O and comes back ----
# iscsi-perf -n keeps its session and goes on through the errors; once the
# provider is back its commands must succeed again
PERF_C=iqn.2026-11.org.spt:perf-c
iscsi-perf -n -i "$PERF_C" -m 8 -t 60 "$(spt_url 0)" >"$SPT_TMP/perf-c.txt" 2>&1 </dev/null &
PERF_C_PID=$!
SPT_STARTED_PIDS+=("$PERF_C_PID")
sleep 1.5
hc=$(session_handle "$PERF_C")
spt_kill_pid "$MEM_PID" KILL
MEM_PID=
SPT_PID=$DAEMON_PID
sleep 0.5
if spt_alive; then pass "the daemon lives when a provider is killed during I/O"; else
	fail "the daemon lives when a provider is killed during I/O"
	spt_show "$SPT_LOG" 40
	spt_finish
fi
check_fails "the LUN of a killed provider answers NOT READY" iscsi-inq "$(spt_url 0)"
lunlist=$("$SPTCTL" --socket "$DDIR/control.sock" lun list 2>&1)
if grep -q 'provider:mem0.*no provider' <<<"$lunlist"; then
	pass "sptctl lun list shows mem0 without provider"
else
	fail "sptctl lun list shows mem0 without provider"
	spt_show - <<<"$lunlist"
fi
start_memprovider
if lun_ready 0 "$(spt_t 10)"; then pass "a restarted memprovider takes LUN 0 back"; else
	fail "a restarted memprovider takes LUN 0 back"
	spt_show "$SPT_TMP/memprovider.log"
fi
# last "iops current N" that iscsi-perf printed
perf_iops() {
	tr '\r' '\n' <"$1" | sed -n 's/.*iops current \([0-9]*\).*/\1/p' | tail -n 1
}
sleep 3
iops=$(perf_iops "$SPT_TMP/perf-c.txt")
if [ -n "$iops" ] && [ "$iops" -gt 0 ] && kill -0 "$PERF_C_PID" 2>/dev/null; then
	pass "iscsi-perf's commands succeed again after the provider came back ($iops IOPS)"
else
	fail "iscsi-perf's commands succeed again after the provider came back (last: '${iops:-none}')"
	spt_show "$SPT_TMP/perf-c.txt" 5
fi
expect_eq "... in the same session as before the provider died" "$(session_handle "$PERF_C")" "$hc"
spt_kill_pid "$PERF_C_PID" TERM
SPT_PID=$DAEMON_PID
if command -v qemu-io >/dev/null; then
	check "I/O works on the LUN after the provider restarted (qemu-io write + verify 4 MiB)" \
		qemu-io -f raw -c "write -P 0x5a 1M 4M" -c "read -P 0x5a 1M 4M" "$(spt_url 0)"
fi
spt_kill_pid "$PERF_A_PID" TERM
spt_kill_pid "$PERF_B_PID" TERM
SPT_PID=$DAEMON_PID

spt_stop
spt_kill_pid "$MEM_PID" TERM
expect_eq "spt-memprovider exits 0 on SIGTERM" "$SPT_EXIT" 0
spt_kill_pid "$PY_PID" TERM
expect_eq "the Python provider exits 0 on SIGTERM" "$SPT_EXIT" 0
if spt_log_has_sanitizer_report "$SPT_TMP/memprovider.log"; then
	fail "spt-memprovider log has no sanitizer report"
	spt_show "$SPT_TMP/memprovider.log" 40
else
	pass "spt-memprovider log has no sanitizer report"
fi
spt_finish
