#!/bin/bash
# The load generator (bench/spt-bench) against the daemon: a short verified
# mixed run over two sessions reports a RESULT line with zero errors, a
# sequential write run is read back and checked, the verifier catches a
# block changed behind its back, and bad options are refused. It measures
# nothing: no figure is compared with anything here.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
spt_init bench

MiB=1048576

# spt-bench is not part of `make all`: build it for the same pass as the daemon.
san=0
case $SPTD in */build-san/*) san=1 ;; esac
build=build
[ $san = 1 ] && build="build-san"
BENCH=$SPT_ROOT/$build/spt-bench
if ! check "make bench builds $build/spt-bench" make -s -C "$SPT_ROOT" SAN=$san bench; then
	spt_finish
fi

# result_field FILE KEY: the value of KEY in the RESULT line of FILE
result_field() {
	sed -n 's/^RESULT .*[ ]'"$2"'=\([^ ]*\).*/\1/p' "$1" | tail -n 1
}

# bench_run WHAT EXPECTED-EXIT OUTFILE ARGS...: run spt-bench, PASS if it exits
# as expected, prints a RESULT line and no sanitizer report.
bench_run() {
	local what=$1 want=$2 out=$3 rc
	shift 3
	timeout -k 5 "$(spt_t 60)" "$BENCH" --initiator "$SPT_INITIATOR" "$@" >"$out" 2>&1
	rc=$?
	if [ $rc -ne "$want" ]; then
		fail "$what: spt-bench exits $want (status $rc)"
		spt_show "$out" 20
		return 1
	fi
	if ! grep -q '^RESULT ' "$out"; then
		fail "$what: spt-bench prints a RESULT line"
		spt_show "$out" 20
		return 1
	fi
	if spt_log_has_sanitizer_report "$out"; then
		fail "$what: spt-bench output has no sanitizer report"
		spt_show "$out" 40
		return 1
	fi
	pass "$what: exit $rc and a RESULT line"
	return 0
}

img=$SPT_TMP/bench.img
spt_mkimg "$img" $((64 * MiB))
if spt_start --lun "$img,size=$((64 * MiB))"; then
	url=$(spt_url 0)

	# --- mixed random I/O, verified, two sessions from one poll loop ------------
	out=$SPT_TMP/mixed.out
	if bench_run "mixed 4 KiB random, --verify, 2 sessions x QD 16, 2 s" 0 "$out" \
		--rw mixed --mix 50 --random --bs 4k --qd 16 --sessions 2 --range 8M \
		--duration 2 --warmup 0 --verify --server-pid "$SPT_PID" "$url"; then
		expect_eq "mixed run: errors=0" "$(result_field "$out" errors)" 0
		expect_eq "mixed run: mismatches=0" "$(result_field "$out" mismatches)" 0
		expect_eq "mixed run: status=ok" "$(result_field "$out" status)" ok
		ios=$(result_field "$out" ios)
		reads=$(result_field "$out" reads)
		writes=$(result_field "$out" writes)
		verified=$(result_field "$out" verified)
		if [ "${ios:-0}" -gt 0 ] && [ "${reads:-0}" -gt 0 ] && [ "${writes:-0}" -gt 0 ] &&
			[ $((reads + writes)) -eq "$ios" ]; then
			pass "mixed run: $ios commands = $reads reads + $writes writes"
		else
			fail "mixed run: commands counted as reads plus writes (ios=$ios reads=$reads writes=$writes)"
		fi
		if [ "${verified:-0}" -gt 0 ]; then
			pass "mixed run: $verified reads checked against the pattern"
		else
			fail "mixed run: some reads checked against the pattern (verified=$verified)"
		fi
		for key in iops lat_p50_us lat_p99_us lat_p999_us srv_cpu_us_per_io; do
			v=$(result_field "$out" $key)
			if [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
				pass "mixed run: RESULT has a number for $key ($v)"
			else
				fail "mixed run: RESULT has a number for $key (got '$v')"
			fi
		done
	fi

	# --- sequential 256 KiB writes, read back and checked at the end -----------
	out=$SPT_TMP/seq.out
	if bench_run "sequential 256 KiB writes, --verify" 0 "$out" \
		--rw write --seq --bs 256k --qd 4 --range 16M --duration 1 --warmup 0 --verify "$url"; then
		expect_eq "sequential writes: errors=0" "$(result_field "$out" errors)" 0
		verified=$(result_field "$out" verified)
		if [ "${verified:-0}" -gt 0 ]; then
			pass "sequential writes: $verified ranges read back and checked"
		else
			fail "sequential writes: ranges read back and checked (verified=$verified)"
		fi
	fi

	# --- the verifier sees a block changed behind its back ----------------------
	out=$SPT_TMP/prefill.out
	if bench_run "--prefill then random reads, --verify" 0 "$out" \
		--rw read --bs 4k --qd 8 --range 1M --duration 1 --warmup 0 --prefill --verify "$url"; then
		expect_eq "prefilled reads: mismatches=0" "$(result_field "$out" mismatches)" 0
		# Change one 512-byte block (LBA 700) in the backing file directly.
		head -c 512 /dev/urandom | dd of="$img" bs=512 seek=700 conv=notrunc,fsync status=none
		out=$SPT_TMP/corrupt.out
		if bench_run "reads after a block was changed in the backing file" 1 "$out" \
			--rw read --bs 4k --qd 8 --range 1M --duration 1 --warmup 0 --prefilled --verify "$url"; then
			m=$(result_field "$out" mismatches)
			if [ "${m:-0}" -gt 0 ] && grep -q 'data mismatch at LBA 700' "$out"; then
				pass "the verifier reports the changed block: $m mismatches, LBA 700 named"
			else
				fail "the verifier reports the changed block (mismatches=$m)"
				spt_show "$out" 20
			fi
			expect_eq "reads after the change: status=errors" "$(result_field "$out" status)" errors
		fi
	fi

	# --- bad options are refused before connecting ----------------------------------
	bad_opt() {
		local what=$1 rc
		shift
		timeout -k 5 "$(spt_t 20)" "$BENCH" "$@" >"$SPT_TMP/bad.out" 2>&1
		rc=$?
		if [ $rc -eq 2 ]; then
			pass "refuses $what (exit 2: $(head -n 1 "$SPT_TMP/bad.out"))"
		else
			fail "refuses $what with exit 2 (status $rc)"
			spt_show "$SPT_TMP/bad.out" 10
		fi
	}
	bad_opt "--qd 0" --qd 0 "$url"
	bad_opt "--rw sideways" --rw sideways "$url"
	bad_opt "--bs 1000 on 512-byte blocks" --bs 1000 --duration 1 "$url"
	bad_opt "a URL of an unknown LUN" --duration 1 "$(spt_portal_url)/$SPT_TARGET/99"

	spt_stop
fi

spt_finish
