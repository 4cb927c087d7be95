#!/bin/bash
# Build spt and run every test: the cmocka unit tests, then the integration
# tests (tests/integration/test_*.sh and test_*.py) against the daemon.
#
#   tests/run.sh            both passes: the normal build (build/), then the
#                           ASan+UBSan build (build-san/); one combined tally
#   tests/run.sh --normal   the normal build only
#   tests/run.sh --san      the sanitizer build only
#   tests/run.sh [..] NAME  only the tests whose file name contains NAME
#                           (e.g. "qemu", "test_pdu"); may be repeated
#
# Every check prints "PASS: [pass] ..." or "FAIL: [pass] ..."; the last line
# is "N passed, N failed" (the counts of those lines over both passes) and
# the exit status is non-zero if anything failed.
#
# Environment: SPT_TEST_TIMEOUT (seconds per integration test script, default
# 900, tripled for --san), SPT_KEEP_TMP=1 (keep the tests' temporary files),
# JOBS (parallel make jobs, default: number of cores). Each test sees its pass
# as SPT_PASS (normal or san); a script that only prints SKIP: lines for a
# pass it does not apply to counts as neither passed nor failed.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

passes=()
filters=()
for arg in "$@"; do
	case $arg in
	--normal) passes+=(normal) ;;
	--san) passes+=(san) ;;
	--all) passes=(normal san) ;;
	-h | --help)
		sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "tests/run.sh: unknown option '$arg' (try --help)" >&2
		exit 2
		;;
	*) filters+=("$arg") ;;
	esac
done
[ ${#passes[@]} -gt 0 ] || passes=(normal san)

JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/spt-run.XXXXXX")
trap 'rm -rf "$LOGDIR"' EXIT
TOTAL_PASSED=0
TOTAL_FAILED=0
FAILURES=$LOGDIR/failures
: >"$FAILURES"
START=$SECONDS

selected() {
	local name=$1 f
	[ ${#filters[@]} -eq 0 ] && return 0
	for f in "${filters[@]}"; do
		case $name in *"$f"*) return 0 ;; esac
	done
	return 1
}

# Record one check outside a test script (build steps, crashed binaries).
note_pass() {
	echo "PASS: $*"
	TOTAL_PASSED=$((TOTAL_PASSED + 1))
}
note_fail() {
	echo "FAIL: $*"
	echo "FAIL: $*" >>"$FAILURES"
	TOTAL_FAILED=$((TOTAL_FAILED + 1))
}

# Count the PASS:/FAIL: lines of a finished step's log.
tally() {
	local log=$1 p f
	p=$(grep -c '^PASS: ' "$log")
	f=$(grep -c '^FAIL: ' "$log")
	grep '^FAIL: ' "$log" >>"$FAILURES"
	TOTAL_PASSED=$((TOTAL_PASSED + p))
	TOTAL_FAILED=$((TOTAL_FAILED + f))
	LAST_P=$p
	LAST_F=$f
}

# Prefix check lines with the pass name while streaming them.
label() {
	sed -u "s/^\(PASS\|FAIL\|SKIP\|ACCEPTED\|NOTE\): /\1: [$1] /"
}

# cmocka output -> one PASS/FAIL line per test. A binary that dies before
# reporting, or exits non-zero without naming a failed test, is one FAIL.
run_unit() {
	local pass=$1 bin=$2 name log rc
	name=$(basename "$bin")
	log=$LOGDIR/$pass-$name.log
	CMOCKA_MESSAGE_OUTPUT=stdout timeout -k 5 300 "$bin" >"$log.raw" 2>&1 </dev/null
	rc=$?
	python3 - "$pass" "$name" "$rc" "$log.raw" >"$log" <<'EOF'
import re, sys
pass_, name, rc, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
text = open(path, errors="replace").read()
ok, bad, seen = [], [], set()
for line in text.splitlines():
    m = re.match(r"^\[\s+OK\s+\] (\S+)", line)
    if m:
        ok.append(m.group(1))
        continue
    m = re.match(r"^\[\s+(FAILED|ERROR)\s+\] (\S+)$", line)
    if m and m.group(2) not in seen:
        seen.add(m.group(2))
        bad.append(m.group(2))
for t in ok:
    print("PASS: [%s] unit/%s: %s" % (pass_, name, t))
for t in bad:
    print("FAIL: [%s] unit/%s: %s" % (pass_, name, t))
sanitizer = any(s in text for s in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                     "runtime error:"))
if rc != 0 and not bad:
    why = "timed out" if rc in (124, 137) else "exit status %d" % rc
    print("FAIL: [%s] unit/%s: binary failed without naming a test (%s)" % (pass_, name, why))
elif sanitizer:
    print("FAIL: [%s] unit/%s: sanitizer report in the output" % (pass_, name))
if not ok and not bad and rc == 0:
    print("FAIL: [%s] unit/%s: ran no test" % (pass_, name))
EOF
	cat "$log"
	if grep -q '^FAIL: ' "$log"; then
		# The failing tests' own lines, or the end of the output after a crash.
		if grep -q '^\[  \(FAILED\|ERROR\|  LINE\)  ' "$log.raw"; then
			grep -B 3 '^\[  \(FAILED\|ERROR\) \|^\[   LINE   \]' "$log.raw" | head -n 80
		else
			tail -n 40 "$log.raw"
		fi | sed 's/^/    | /'
	fi
	tally "$log"
}

run_integration() {
	local pass=$1 script=$2 name log rc t0 limit
	name=$(basename "$script")
	log=$LOGDIR/$pass-$name.log
	limit=${SPT_TEST_TIMEOUT:-900}
	[ "$pass" = san ] && limit=$((limit * 3))
	echo "== [$pass] $name"
	t0=$SECONDS
	case $script in
	*.py) timeout -k 15 "$limit" python3 "$script" </dev/null 2>&1 | label "$pass" | tee "$log" ;;
	*) timeout -k 15 "$limit" bash "$script" </dev/null 2>&1 | label "$pass" | tee "$log" ;;
	esac
	rc=${PIPESTATUS[0]}
	tally "$log"
	if [ "$rc" -ne 0 ] && [ "$LAST_F" -eq 0 ]; then
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			note_fail "[$pass] $name: timed out after ${limit}s"
		else
			note_fail "[$pass] $name: exited with status $rc without reporting a failed check"
		fi
	fi
	if [ "$LAST_P" -eq 0 ] && [ "$LAST_F" -eq 0 ] && [ "$rc" -eq 0 ] && ! grep -q '^SKIP: ' "$log"; then
		note_fail "[$pass] $name: reported no check"
	fi
	echo "== [$pass] $name: $LAST_P passed, $LAST_F failed in $((SECONDS - t0))s"
}

run_pass() {
	local pass=$1 build make_args=() t0 bin script
	if [ "$pass" = san ]; then
		build=build-san
		make_args=(SAN=1)
		export SPT_TIMEOUT_SCALE=3
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	else
		build=build
		export SPT_TIMEOUT_SCALE=1
		unset ASAN_OPTIONS UBSAN_OPTIONS
	fi
	# a test that does not apply to one pass (test_fuzz.sh in "san") reads it here
	export SPT_PASS=$pass
	local mk="make${make_args[*]:+ ${make_args[*]}}"
	echo "=== [$pass] build: $mk all unit"
	t0=$SECONDS
	if make -j"$JOBS" "${make_args[@]}" all >"$LOGDIR/$pass-build.log" 2>&1; then
		note_pass "[$pass] build: $mk all ($((SECONDS - t0))s)"
	else
		note_fail "[$pass] build: $mk all"
		tail -n 60 "$LOGDIR/$pass-build.log" | sed 's/^/    | /'
		return
	fi
	t0=$SECONDS
	local units_ok=1
	if make -j"$JOBS" "${make_args[@]}" unit >"$LOGDIR/$pass-build-unit.log" 2>&1; then
		note_pass "[$pass] build: $mk unit ($((SECONDS - t0))s)"
	else
		note_fail "[$pass] build: $mk unit"
		tail -n 60 "$LOGDIR/$pass-build-unit.log" | sed 's/^/    | /'
		units_ok=0
	fi

	if [ $units_ok = 1 ]; then
		echo "=== [$pass] unit tests"
		t0=$SECONDS
		for bin in "$build"/tests/test_*; do
			[ -x "$bin" ] && [ -f "$bin" ] || continue
			selected "$(basename "$bin")" || continue
			run_unit "$pass" "$bin"
		done
		echo "=== [$pass] unit tests done in $((SECONDS - t0))s"
	fi

	echo "=== [$pass] integration tests (SPTD=$build/sptd)"
	export SPTD=$ROOT/$build/sptd
	for script in tests/integration/test_*.sh tests/integration/test_*.py; do
		[ -f "$script" ] || continue
		selected "$(basename "$script")" || continue
		run_integration "$pass" "$script"
	done
}

for pass in "${passes[@]}"; do
	t0=$SECONDS
	run_pass "$pass"
	echo "=== [$pass] done in $((SECONDS - t0))s"
done

if [ $((TOTAL_PASSED + TOTAL_FAILED)) -eq 0 ]; then
	note_fail "tests/run.sh: no test ran (filters: ${filters[*]:-none})"
fi
echo "=== all passes done in $((SECONDS - START))s"
if [ -s "$FAILURES" ]; then
	echo "=== failed checks:"
	cat "$FAILURES"
fi
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]
