#!/bin/bash
# What the out-of-process provider interface costs: one sptd serves the same
# RAM disk twice, once in-process (`--lun ram:SIZE`, LUN 0) and once through
# --provider-socket from build/spt-memprovider (`--lun provider:mem0`,
# LUN 1; both are src/providers/ram.c on the same SCSI helpers), and
# build/spt-bench runs each workload against both LUNs, alternating which
# goes first. The table shows the medians of the rounds, the external/
# in-process ratio, and server CPU per command (sptd, plus the memprovider
# for the external LUN). Nothing here is a test: it prints figures.
#
#   bench/provider-compare.sh
#
# Environment (defaults in brackets):
#   BENCH_ROUNDS [3]  BENCH_DURATION [10]  BENCH_WARMUP [2]  BENCH_SIZE [1G]
#   BENCH_WORKLOADS [rr4k rw4k sr256k sw256k lat4k]
#   BENCH_OUT         also write the report (markdown) to this file
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
SIZE=${BENCH_SIZE:-1G}
WORKLOADS=${BENCH_WORKLOADS:-rr4k rw4k sr256k sw256k lat4k}
SPTD=${SPTD:-$ROOT/build/sptd}
MEMPROV=${MEMPROV:-$ROOT/build/spt-memprovider}
SPT_BENCH=${SPT_BENCH:-$ROOT/build/spt-bench}
IQN=iqn.2026-11.org.spt:bench-provider

[ -x "$SPTD" ] && [ -x "$MEMPROV" ] || make -C "$ROOT" -j"$(nproc)" >/dev/null || exit 1
[ -x "$SPT_BENCH" ] || make -C "$ROOT" bench >/dev/null || exit 1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/spt-provbench.XXXXXX")
SPTD_PID=
MEM_PID=
cleanup() {
	[ -n "$MEM_PID" ] && kill "$MEM_PID" 2>/dev/null && wait "$MEM_PID" 2>/dev/null
	[ -n "$SPTD_PID" ] && kill "$SPTD_PID" 2>/dev/null && wait "$SPTD_PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cd "$WORK" || exit 1
"$SPTD" --listen "127.0.0.1:$PORT" --target "$IQN" --lun "ram:$SIZE" --lun provider:mem0 \
	--provider-socket "$WORK/p.sock" --log-level warn >"$WORK/sptd.log" 2>&1 &
SPTD_PID=$!
for _ in $(seq 50); do [ -S "$WORK/p.sock" ] && break; sleep 0.1; done
"$MEMPROV" --socket "$WORK/p.sock" --name mem0 --size "$SIZE" >"$WORK/mem.log" 2>&1 &
MEM_PID=$!
for _ in $(seq 50); do grep -q serving "$WORK/mem.log" && break; sleep 0.1; done
cd "$ROOT" || exit 1

run() { # WORKLOAD LUN LABEL -> a RESULT line
	local w=$1 lun=$2 label=$3
	local -a args pids=(--server-pid "$SPTD_PID")
	[ "$lun" = 1 ] && pids+=(--server-pid "$MEM_PID")
	case $w in
	rr4k) args=(--rw read --random --bs 4k --qd 32) ;;
	rw4k) args=(--rw write --random --bs 4k --qd 32) ;;
	sr256k) args=(--rw read --seq --bs 256k --qd 8) ;;
	sw256k) args=(--rw write --seq --bs 256k --qd 8) ;;
	lat4k) args=(--rw read --random --bs 4k --qd 1) ;;
	*) echo "unknown workload $w" >&2; return 1 ;;
	esac
	"$SPT_BENCH" "${args[@]}" --duration "$DURATION" --warmup "$WARMUP" "${pids[@]}" \
		--label "$label:$w" "iscsi://127.0.0.1:$PORT/$IQN/$lun" 2>>"$WORK/bench.err" | grep '^RESULT'
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
for r in $(seq "$ROUNDS"); do
	for w in $WORKLOADS; do
		if [ $((r % 2)) = 1 ]; then order="0 1"; else order="1 0"; fi
		for lun in $order; do
			label=inproc
			[ "$lun" = 1 ] && label=external
			run "$w" "$lun" "$label" >>"$RESULTS"
			echo "round $r $w $label: $(tail -n 1 "$RESULTS" | grep -o 'iops=[0-9.]*')" >&2
		done
	done
done

REPORT=$(python3 - "$RESULTS" "$ROUNDS" "$WORKLOADS" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    if kv.get("status") != "ok":
        continue
    label, w = kv["label"].split(":")
    rows.setdefault((w, label), []).append(kv)
def med(w, label, key):
    vals = [float(r[key]) for r in rows.get((w, label), []) if r.get(key) not in (None, "na")]
    return statistics.median(vals) if vals else None
def fmt(v, nd=0):
    return "-" if v is None else f"{v:,.{nd}f}"
print("| workload | in-process IOPS | external IOPS | external / in-process | MB/s in / ext | p99 µs in / ext | server CPU µs/IO in / ext |")
print("|---|---:|---:|---:|---:|---:|---:|")
for w in sys.argv[3].split():
    a, b = med(w, "inproc", "iops"), med(w, "external", "iops")
    ratio = f"{b / a:.2f}" if a and b else "-"
    print(f"| {w} | {fmt(a)} | {fmt(b)} | {ratio} | {fmt(med(w, 'inproc', 'mb_s'))} / {fmt(med(w, 'external', 'mb_s'))} "
          f"| {fmt(med(w, 'inproc', 'lat_p99_us'))} / {fmt(med(w, 'external', 'lat_p99_us'))} "
          f"| {fmt(med(w, 'inproc', 'srv_cpu_us_per_io'), 1)} / {fmt(med(w, 'external', 'srv_cpu_us_per_io'), 1)} |")
print()
print(f"Median of {sys.argv[2]} rounds. rr4k/rw4k: 4 KiB random read/write QD32; sr256k/sw256k: "
      "256 KiB sequential QD8; lat4k: 4 KiB random read QD1. External server CPU counts sptd and "
      "spt-memprovider.")
EOF
)
{
	echo "## External provider vs in-process ($(date -u +%Y-%m-%d), $(nproc) cores, Linux $(uname -r))"
	echo
	echo "Command: \`bench/provider-compare.sh\` (BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION BENCH_SIZE=$SIZE)"
	echo
	echo "$REPORT"
} | tee ${BENCH_OUT:+"$BENCH_OUT"}
