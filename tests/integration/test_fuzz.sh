#!/bin/bash
# The libFuzzer harnesses of fuzz/ (PDU receive path, text keys, CHAP, CDBs):
# builds them with clang (make -f fuzz/Makefile, into build/fuzz/) and runs
# each for a bounded time on a copy of its seed corpus, so CI never grows
# the committed corpus. One PASS per harness that ran clean; a crash, a leak,
# a sanitizer report or a timeout is a FAIL that names the reproducer, kept
# in build/fuzz/artifacts/<harness>/ (replay it with build/fuzz/<harness> FILE).
#
# Environment:
#   SPT_FUZZ_SECONDS   seconds per harness (default 20; 0 replays the seeds only)
#   SPT_FUZZ_ONLY      run only the harnesses whose name contains this
#   SPT_PASS           set by tests/run.sh; the "san" pass skips this test (the
#                      fuzzers carry ASan and UBSan themselves)
# Skipped, with the reason printed, when clang cannot build a libFuzzer binary.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

# spt_init would insist on a daemon binary this test never starts
SPT_TEST=fuzz
SPT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/spt-fuzz.XXXXXX") || {
	echo "FAIL: $SPT_TEST: cannot create a temporary directory"
	exit 1
}
trap spt_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SECONDS_EACH=${SPT_FUZZ_SECONDS:-20}
FUZZ_BUILD=$SPT_ROOT/build/fuzz
ARTIFACTS=$FUZZ_BUILD/artifacts
# libFuzzer limits: one input may take this long, and be this big
PER_INPUT_TIMEOUT=10
MAX_LEN=16384

case $SECONDS_EACH in
'' | *[!0-9]*)
	fail "SPT_FUZZ_SECONDS is a whole number of seconds (got '$SECONDS_EACH')"
	spt_finish
	;;
esac

if [ "${SPT_PASS:-}" = san ]; then
	skip "not run in the sanitizer pass: the fuzzers are built with ASan and UBSan already (tests/run.sh --normal runs them)"
	spt_finish
fi

# clang with the libFuzzer runtime (Debian: clang, libclang-rt-14-dev)
if ! command -v clang >/dev/null 2>&1; then
	skip "clang is not installed (tests/install-deps.sh installs clang and libclang-rt-14-dev)"
	spt_finish
fi
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' \
	>"$SPT_TMP/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined -o "$SPT_TMP/probe" "$SPT_TMP/probe.c" >"$SPT_TMP/probe.log" 2>&1; then
	skip "clang cannot link a libFuzzer binary (is libclang-rt-14-dev installed?): $(head -n 1 "$SPT_TMP/probe.log")"
	spt_finish
fi

jobs=$(nproc 2>/dev/null || echo 2)
if make -C "$SPT_ROOT" -f fuzz/Makefile -j"$jobs" >"$SPT_TMP/build.log" 2>&1; then
	pass "fuzzers build (make -f fuzz/Makefile)"
else
	fail "fuzzers build (make -f fuzz/Makefile)"
	spt_show "$SPT_TMP/build.log" 40
	spt_finish
fi

# run_fuzzer NAME: one bounded libFuzzer run on a copy of fuzz/corpus/NAME
run_fuzzer() {
	local name=$1 bin=$FUZZ_BUILD/$1 corpus=$SPT_TMP/corpus-$1 log=$SPT_TMP/$1.log
	local art=$ARTIFACTS/$1 rc runs cov repro
	local -a args=()

	mkdir -p "$corpus" "$art"
	if [ -d "$SPT_ROOT/fuzz/corpus/$name" ]; then
		cp "$SPT_ROOT/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
	fi
	[ -f "$SPT_ROOT/fuzz/dict/$name.dict" ] && args+=(-dict="$SPT_ROOT/fuzz/dict/$name.dict")
	# libFuzzer reads -max_total_time=0 as "no limit"
	if [ "$SECONDS_EACH" -eq 0 ]; then
		args+=(-runs=0)
	else
		args+=(-max_total_time="$SECONDS_EACH")
	fi
	ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		timeout -k 10 $((SECONDS_EACH + 120)) "$bin" \
		-timeout=$PER_INPUT_TIMEOUT -max_len=$MAX_LEN -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/" "${args[@]}" "$corpus" \
		</dev/null >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
	repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
	if [ $rc -eq 0 ] && [ -z "$repro" ] && grep -q '^Done [0-9]* runs' "$log"; then
		pass "$name: ${runs:-?} executions in ${SECONDS_EACH}s ($cov), no crash, leak or timeout"
		return
	fi
	local what="exit status $rc" said
	# a harness's own check names what went wrong (fuzz_pdu: ..., exact_bufpool: ...)
	said=$(grep -m 1 '^\(fuzz_[a-z_]*\|exact_bufpool\|fuzz_ram\): ' "$log")
	if [ -n "$said" ]; then
		what="check failed: $said"
	elif grep -q 'ERROR: LeakSanitizer' "$log"; then
		what="memory leak"
	elif grep -q 'ERROR: libFuzzer: timeout' "$log"; then
		what="an input took more than ${PER_INPUT_TIMEOUT}s"
	elif grep -q 'ERROR: libFuzzer: out-of-memory' "$log"; then
		what="out of memory"
	elif grep -q 'ERROR: AddressSanitizer\|runtime error:\|ERROR: libFuzzer: deadly signal' "$log"; then
		what="crash: $(grep -m 1 'ERROR: AddressSanitizer\|runtime error:\|ERROR: libFuzzer' "$log" | sed 's/^==[0-9]*==//')"
	elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		what="the run did not end ${SECONDS_EACH}s + 120s after it started"
	fi
	if [ -n "$repro" ]; then
		fail "$name: $what; reproducer: $repro (replay: $bin $repro)"
	else
		fail "$name: $what; no reproducer written"
	fi
	# the harness's message and the sanitizer report, without libFuzzer's own frames
	grep -v '^#[0-9]\|^INFO:\|^\s*$\|in fuzzer::\|libc\.so\|in _start \|^"\|^MS: \|^0x\|^\\\|^Base64: \|^stat::' "$log" |
		head -n 50 | spt_show - 50
}

ran=0
for src in "$SPT_ROOT"/fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	case $name in *"${SPT_FUZZ_ONLY:-}"*) ;; *) continue ;; esac
	if [ ! -x "$FUZZ_BUILD/$name" ]; then
		fail "$name: built ($FUZZ_BUILD/$name missing after make)"
		continue
	fi
	run_fuzzer "$name"
	ran=$((ran + 1))
done
[ $ran -gt 0 ] || fail "at least one harness runs (SPT_FUZZ_ONLY='${SPT_FUZZ_ONLY:-}')"
spt_finish
