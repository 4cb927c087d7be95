#!/bin/bash
# Side-by-side benchmark of spt (build/sptd) and tgtd (package tgt) on
# loopback, with single-stream loopback TCP (iperf3) as the ceiling.
#
#   bench/compare.sh            # as root; installs tgt and iperf3 if missing
#
# Both daemons serve an equal sparse backing file (tgtd with bs rdwr). Each
# round runs every workload against both targets, alternating which goes
# first, with build/spt-bench (libiscsi, one session unless told otherwise);
# the table shows the median of the rounds, the server CPU time per command
# (utime+stime of the daemon from /proc/PID/stat over the measured window,
# all threads), the ratios, and the sequential rows as a share of iperf3.
# Nothing here is a test: it prints figures and asserts none.
#
# Environment (defaults in brackets):
#   BENCH_ROUNDS [3]        rounds; the table shows medians
#   BENCH_DURATION [10]     measured seconds per workload run
#   BENCH_WARMUP [2]        seconds run before each measurement
#   BENCH_SIZE [1G]         size of each sparse backing file
#   BENCH_SEQ_QD [8]        queue depth of the 256 KiB sequential workloads
#   BENCH_SESSIONS [1]      sessions per run (each its own connection)
#   BENCH_WORKLOADS [rr4k rw4k sr256k sw256k lat4k]
#   BENCH_TARGETS [spt tgtd]
#   BENCH_PREWARM [0]       1: read both backing files once before the rounds, so
#                           that on a disk file system no read pays for first
#                           touches (but 4 KiB writes then land in large folios)
#   BENCH_NICE [0]          run the daemons, spt-bench and iperf3 at this nice value
#                           (e.g. -10 on a machine shared with other work; the
#                           report shows how much other load there was anyway)
#   BENCH_PERF [0]          1: after the rounds, profile sptd with perf record
#                           during one 4 KiB random-read run (package linux-perf)
#   BENCH_TMPDIR            where the backing files and logs go [/dev/shm if it is
#                           a tmpfs with room for both files, else /var/tmp]
#   BENCH_KEEP [0]          1: keep that directory (raw RESULT lines, logs)
#   BENCH_OUT               also write the report (markdown) to this file
#   SPTD, SPT_BENCH         binaries [build/sptd, build/spt-bench; built if missing]
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
SIZE=${BENCH_SIZE:-1G}
SEQ_QD=${BENCH_SEQ_QD:-8}
SESSIONS=${BENCH_SESSIONS:-1}
WORKLOADS=${BENCH_WORKLOADS:-rr4k rw4k sr256k sw256k lat4k}
TARGETS=${BENCH_TARGETS:-spt tgtd}
PERF=${BENCH_PERF:-0}
PREWARM=${BENCH_PREWARM:-0}
NICE=${BENCH_NICE:-0}
SPTD=${SPTD:-$ROOT/build/sptd}
SPT_BENCH=${SPT_BENCH:-$ROOT/build/spt-bench}
IQN_SPT=iqn.2026-11.org.spt:bench-spt
IQN_TGT=iqn.2026-11.org.spt:bench-tgt
INITIATOR=iqn.2026-11.org.spt:bench-initiator

COMMAND="$0${*:+ $*}"
for v in BENCH_ROUNDS BENCH_DURATION BENCH_WARMUP BENCH_SIZE BENCH_SEQ_QD BENCH_SESSIONS \
	BENCH_WORKLOADS BENCH_TARGETS BENCH_PERF BENCH_PREWARM BENCH_NICE BENCH_TMPDIR; do
	[ -n "${!v+x}" ] && COMMAND="$v='${!v}' $COMMAND"
done

WORK=
SPT_PID=
TGT_PID=
TGT_CP=
IPERF_PID=
BENCH_BG_PID=

say() { echo "compare.sh: $*" >&2; }
die() {
	say "$*"
	exit 1
}

for n in "$ROUNDS" "$DURATION" "$WARMUP" "$SEQ_QD" "$SESSIONS"; do
	[[ $n =~ ^[0-9]+$ ]] || die "BENCH_ROUNDS, _DURATION, _WARMUP, _SEQ_QD and _SESSIONS take whole numbers (got '$n')"
done
if [ "$ROUNDS" -lt 1 ] || [ "$DURATION" -lt 1 ]; then
	die "BENCH_ROUNDS and BENCH_DURATION must be at least 1"
fi
[[ $NICE =~ ^-?[0-9]+$ ]] && [ "$NICE" -ge -20 ] && [ "$NICE" -le 19 ] ||
	die "BENCH_NICE takes a nice value from -20 to 19 (got '$NICE')"
# everything measured runs at the same priority
RUN=(nice -n "$NICE")

# ---- stop what we started, by PID, and remove our files ------------------
stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "pid $pid still running 10 s after SIGTERM: SIGKILL"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

stop_tgtd() {
	[ -n "$TGT_PID" ] || return 0
	if kill -0 "$TGT_PID" 2>/dev/null && [ -n "$TGT_CP" ]; then
		# tgtd ignores SIGTERM; it leaves when asked through its own control
		# socket, once it has no target left
		tgtadm -C "$TGT_CP" --lld iscsi --op delete --mode target --tid 1 --force >/dev/null 2>&1
		tgtadm -C "$TGT_CP" --op delete --mode system >/dev/null 2>&1
		for _ in $(seq 50); do
			kill -0 "$TGT_PID" 2>/dev/null || break
			sleep 0.1
		done
	fi
	stop_pid "$TGT_PID"
	TGT_PID=
}

cleanup() {
	local rc=$?
	stop_pid "$IPERF_PID"
	stop_pid "$BENCH_BG_PID"
	stop_pid "$SPT_PID"
	stop_tgtd
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ "${BENCH_KEEP:-0}" = 1 ]; then
			say "kept $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- prerequisites ------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root (tgtd needs it, and apt-get installs tgt and iperf3)"
need_pkgs=()
command -v tgtd >/dev/null 2>&1 && command -v tgtadm >/dev/null 2>&1 || need_pkgs+=(tgt)
command -v iperf3 >/dev/null 2>&1 || need_pkgs+=(iperf3)
[ "$PERF" = 1 ] && ! command -v perf >/dev/null 2>&1 && need_pkgs+=(linux-perf)
if [ ${#need_pkgs[@]} -gt 0 ]; then
	say "installing ${need_pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >/dev/null && apt-get install -y "${need_pkgs[@]}" >/dev/null ||
		die "apt-get install ${need_pkgs[*]} failed"
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed (tests/install-deps.sh installs it)"
if [ ! -x "$SPTD" ]; then
	make -C "$ROOT" "${SPTD#"$ROOT"/}" >/dev/null || die "cannot build $SPTD"
fi
if [ ! -x "$SPT_BENCH" ]; then
	make -C "$ROOT" bench >/dev/null || die "cannot build $SPT_BENCH (make bench)"
fi
command -v ss >/dev/null 2>&1 || die "ss (package iproute2) is needed"

# Size in bytes of a K/M/G/T size such as BENCH_SIZE.
size_bytes() {
	local n=${1%[KkMmGgTt]} m=1
	case $1 in *[Kk]) m=1024 ;; *[Mm]) m=$((1 << 20)) ;; *[Gg]) m=$((1 << 30)) ;; *[Tt]) m=$((1 << 40)) ;; esac
	[[ $n =~ ^[0-9]+$ ]] || return 1
	echo $((n * m))
}
SIZE_BYTES=$(size_bytes "$SIZE") || die "BENCH_SIZE '$SIZE' is not a size (bytes, or with K/M/G/T)"
# Default: tmpfs (/dev/shm) when it has room for both files and a margin.
# There the backing store costs next to nothing and the same for both
# targets, so the figures are the targets' own; on ext4, 4 KiB writes into
# page-cache folios that readahead made large cost the kernel more than the
# target itself (buffer heads for the whole folio), for both alike.
if [ -z "${BENCH_TMPDIR:-}" ]; then
	BENCH_TMPDIR=/var/tmp
	if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && [ -w /dev/shm ] &&
		[ "$(df -P -B1 /dev/shm | awk 'NR == 2 {print $4}')" -gt $((2 * SIZE_BYTES + (1 << 30))) ]; then
		BENCH_TMPDIR=/dev/shm
	fi
fi
WORK=$(mktemp -d "$BENCH_TMPDIR/spt-compare.XXXXXX") || die "cannot create a work directory"
mkdir -p "$WORK/runs"
cp "$SPT_BENCH" "$WORK/spt-bench" || die "cannot copy $SPT_BENCH"
SPT_BENCH=$WORK/spt-bench
RESULTS=$WORK/results.txt
: >"$RESULTS"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_open() {
	python3 - "$1" <<'EOF'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
}

# wait_listen PID PORT [noconnect]: until PORT accepts, or PID dies, or 20 s
# pass. With noconnect, look at the socket table instead of connecting (a
# one-shot server would take the probe for its client).
wait_listen() {
	local pid=$1 port=$2 how=${3:-connect}
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || return 1
		if [ "$how" = noconnect ]; then
			[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] && return 0
		else
			port_open "$port" && return 0
		fi
		sleep 0.1
	done
	return 1
}

# ---- the daemons --------------------------------------------------------------
start_spt() {
	SPT_PORT=$(free_port)
	# a private copy: a rebuild of build/ during the run changes nothing here
	# and perf still finds the binary's symbols
	cp "$SPTD" "$WORK/sptd" || die "cannot copy $SPTD"
	"${RUN[@]}" "$WORK/sptd" --listen "127.0.0.1:$SPT_PORT" --target "$IQN_SPT" \
		--lun "$WORK/spt.img,size=$SIZE" --log-level warn \
		</dev/null >"$WORK/sptd.log" 2>&1 &
	SPT_PID=$!
	wait_listen "$SPT_PID" "$SPT_PORT" || { tail -20 "$WORK/sptd.log" >&2; die "sptd did not start"; }
	SPT_URL=iscsi://127.0.0.1:$SPT_PORT/$IQN_SPT/0
}

start_tgtd() {
	local T
	TGT_PORT=$(free_port)
	# tgtd's management socket is /var/run/tgtd/socket.N: pick an unused N
	for _ in $(seq 50); do
		TGT_CP=$((20000 + RANDOM % 12000))	# tgtadm takes up to 32767
		[ -e "/var/run/tgtd/socket.$TGT_CP" ] || break
	done
	"${RUN[@]}" tgtd -f -C "$TGT_CP" --iscsi "portal=127.0.0.1:$TGT_PORT" </dev/null >"$WORK/tgtd.log" 2>&1 &
	TGT_PID=$!
	for _ in $(seq 100); do
		tgtadm -C "$TGT_CP" --op show --mode system >/dev/null 2>&1 && break
		kill -0 "$TGT_PID" 2>/dev/null || break
		sleep 0.1
	done
	T=(tgtadm -C "$TGT_CP" --lld iscsi)
	# tgt keeps LUN 0 for its controller: the disk is LUN 1
	"${T[@]}" --op new --mode target --tid 1 -T "$IQN_TGT" &&
		"${T[@]}" --op new --mode logicalunit --tid 1 --lun 1 -b "$WORK/tgt.img" --bstype rdwr &&
		"${T[@]}" --op bind --mode target --tid 1 -I ALL ||
		{ tail -20 "$WORK/tgtd.log" >&2; die "tgtadm could not set up the target"; }
	wait_listen "$TGT_PID" "$TGT_PORT" || { tail -20 "$WORK/tgtd.log" >&2; die "tgtd did not listen"; }
	TGT_URL=iscsi://127.0.0.1:$TGT_PORT/$IQN_TGT/1
}

# ---- workloads -------------------------------------------------------------------
workload_args() {
	case $1 in
	rr4k) echo "--rw read --random --bs 4k --qd 32" ;;
	rw4k) echo "--rw write --random --bs 4k --qd 32" ;;
	sr256k) echo "--rw read --seq --bs 256k --qd $SEQ_QD" ;;
	sw256k) echo "--rw write --seq --bs 256k --qd $SEQ_QD" ;;
	lat4k) echo "--rw read --random --bs 4k --qd 1" ;;
	*) return 1 ;;
	esac
}
for w in $WORKLOADS; do
	workload_args "$w" >/dev/null || die "unknown workload '$w' (rr4k rw4k sr256k sw256k lat4k)"
done
for t in $TARGETS; do
	case $t in spt | tgtd) ;; *) die "unknown target '$t' (spt tgtd)" ;; esac
done

FAILED_RUNS=0
# run_one TARGET WORKLOAD ROUND
run_one() {
	local target=$1 wl=$2 round=$3 url pid out rc line
	if [ "$target" = spt ]; then url=$SPT_URL pid=$SPT_PID; else url=$TGT_URL pid=$TGT_PID; fi
	kill -0 "$pid" 2>/dev/null || die "$target (pid $pid) is no longer running"
	out=$WORK/runs/$target-$wl-$round.txt
	# shellcheck disable=SC2046
	timeout -k 5 $((DURATION + WARMUP + 120)) "${RUN[@]}" "$SPT_BENCH" $(workload_args "$wl") \
		--sessions "$SESSIONS" --duration "$DURATION" --warmup "$WARMUP" \
		--initiator "$INITIATOR" --server-pid "$pid" --label "$target-$wl-r$round" \
		"$url" >"$out" 2>&1
	rc=$?
	line=$(grep '^RESULT ' "$out" | tail -n 1)
	if [ $rc -ne 0 ] || [ -z "$line" ]; then
		FAILED_RUNS=$((FAILED_RUNS + 1))
		say "round $round $wl on $target: spt-bench exit $rc"
		sed 's/^/    | /' "$out" | tail -n 12 >&2
	fi
	[ -n "$line" ] || line="RESULT label=$target-$wl-r$round status=failed"
	echo "target=$target workload=$wl round=$round exit=$rc ${line#RESULT }" >>"$RESULTS"
	printf 'compare.sh: round %d %-7s %-5s %s\n' "$round" "$wl" "$target" \
		"$(sed -n 's/.* iops=\([^ ]*\) mb_s=\([^ ]*\) .* lat_p99_us=\([^ ]*\) .* srv_cpu_us_per_io=\([^ ]*\) .*/\1 IOPS, \2 MB\/s, p99 \3 us, server \4 us CPU per command/p' <<<"$line")" >&2
}

# run_iperf ROUND: one single-stream loopback TCP run; Gbit/s into RESULTS
run_iperf() {
	local round=$1 port out gbit
	port=$(free_port)
	"${RUN[@]}" iperf3 -s -B 127.0.0.1 -p "$port" >"$WORK/iperf3-server-$round.log" 2>&1 &
	IPERF_PID=$!
	wait_listen "$IPERF_PID" "$port" noconnect || die "iperf3 server did not start"
	out=$WORK/runs/iperf3-$round.json
	timeout -k 5 $((DURATION + WARMUP + 60)) "${RUN[@]}" iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" \
		-O "$WARMUP" -J >"$out" 2>&1
	gbit=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.3f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' "$out" 2>/dev/null)
	stop_pid "$IPERF_PID"
	stop_pid "$BENCH_BG_PID"
	IPERF_PID=
	if [ -z "$gbit" ]; then
		say "round $round: iperf3 gave no result"
		FAILED_RUNS=$((FAILED_RUNS + 1))
		return
	fi
	echo "target=iperf3 workload=tcp round=$round exit=0 gbit_s=$gbit" >>"$RESULTS"
	say "round $round iperf3 single stream: $gbit Gbit/s"
}

# ---- go -----------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
truncate -s "$SIZE" "$WORK/spt.img" "$WORK/tgt.img" || die "cannot create the backing files"
if [ "$PREWARM" = 1 ]; then
	# Reading the holes puts zeroed pages in the page cache, so that no run
	# pays for first touches that the one before it already paid for.
	dd if="$WORK/spt.img" of=/dev/null bs=1M status=none &&
		dd if="$WORK/tgt.img" of=/dev/null bs=1M status=none || die "cannot read the backing files"
fi
case " $TARGETS " in *" spt "*) start_spt ;; esac
case " $TARGETS " in *" tgtd "*) start_tgtd ;; esac
say "work directory $WORK; sptd pid ${SPT_PID:-none} on ${SPT_PORT:-}, tgtd pid ${TGT_PID:-none} on ${TGT_PORT:-}"
say "$ROUNDS rounds of: $WORKLOADS; ${DURATION} s each after ${WARMUP} s of warm-up"

for round in $(seq "$ROUNDS"); do
	run_iperf "$round"
	for wl in $WORKLOADS; do
		# alternate which target goes first, so neither always finds a warmer cache
		order=$TARGETS
		if [ $((round % 2)) -eq 0 ]; then
			order=$(echo "$TARGETS" | tr ' ' '\n' | tac | tr '\n' ' ')
		fi
		for t in $order; do
			run_one "$t" "$wl" "$round"
		done
	done
done

PERF_REPORT=
if [ "$PERF" = 1 ] && [ -n "$SPT_PID" ]; then
	say "profiling sptd (perf record -g) during one 4 KiB random-read run"
	# The load runs first and outlasts the recording (stopped below, bounded
	# anyway): perf's own start-up takes seconds, more on a busy machine.
	# shellcheck disable=SC2046
	"${RUN[@]}" "$SPT_BENCH" $(workload_args rr4k) --duration $((DURATION + 300)) --warmup 0 \
		--initiator "$INITIATOR" --label perf "$SPT_URL" >"$WORK/runs/perf-run.txt" 2>&1 &
	BENCH_BG_PID=$!
	sleep 2
	# Attached once the load runs, so that io_uring's io-wq workers
	# (iou-wrk-*) already exist: -p follows only the threads it finds.
	perf record -p "$SPT_PID" -F 4999 -g -o "$WORK/perf.data" -- sleep "$DURATION" \
		>"$WORK/perf-record.log" 2>&1
	kill -TERM "$BENCH_BG_PID" 2>/dev/null	# background jobs ignore SIGINT
	wait "$BENCH_BG_PID"
	BENCH_BG_PID=
	PERF_REPORT=$WORK/perf-sptd.txt
	{
		echo "### perf: where sptd's CPU time goes during 4 KiB random read QD32"
		echo
		echo "sptd's threads (the main thread; iou-wrk-* are io_uring's io-wq workers):"
		echo '```'
		perf report -i "$WORK/perf.data" --stdio --no-children --sort comm -g none \
			--percent-limit 0.5 2>/dev/null | grep '%' | sed 's/[[:space:]-]*$//' | head -n 12
		echo '```'
		echo "By binary (self time):"
		echo '```'
		perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -g none \
			--percent-limit 0.5 2>/dev/null | grep '%' | sed 's/[[:space:]-]*$//' | head -n 10
		echo '```'
		echo "sptd: call paths, inclusive time (children), above 2%:"
		echo '```'
		perf report -i "$WORK/perf.data" --stdio --children --sort symbol -g none \
			--percent-limit 2 2>/dev/null | grep '%' | grep -v '\] 0x0' | sed 's/[[:space:]-]*$//' | head -n 60
		echo '```'
		echo "sptd: hottest functions, self time:"
		echo '```'
		perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol \
			-g none --percent-limit 0.7 2>/dev/null | grep '%' | sed 's/[[:space:]-]*$//' | head -n 30
		echo '```'
	} >"$PERF_REPORT"
fi

# ---- the table ------------------------------------------------------------------------
python3 - "$RESULTS" "$SEQ_QD" "$SESSIONS" "$WORKLOADS" >"$WORK/table.md" <<'EOF'
import statistics, sys

path, seq_qd, sessions, workloads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
runs = {}
for line in open(path):
    kv = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
    runs.setdefault((kv["target"], kv["workload"]), []).append(kv)

def med(target, wl, key):
    vals = []
    for kv in runs.get((target, wl), []):
        if kv.get("exit") != "0" and target != "iperf3":
            continue
        try:
            vals.append(float(kv[key]))
        except (KeyError, ValueError):
            pass
    return statistics.median(vals) if vals else None

def n_ok(target, wl):
    return sum(1 for kv in runs.get((target, wl), []) if kv.get("exit") == "0")

def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"

def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.{digits}f}x"

names = {
    "rr4k": ("4 KiB random read, QD32", "iops"),
    "rw4k": ("4 KiB random write, QD32", "iops"),
    "sr256k": (f"256 KiB sequential read, QD{seq_qd}", "mb_s"),
    "sw256k": (f"256 KiB sequential write, QD{seq_qd}", "mb_s"),
    "lat4k": ("4 KiB random read, QD1", "iops"),
}
tcp = med("iperf3", "tcp", "gbit_s")
tcp_mb = tcp * 1e9 / 8 / 1e6 if tcp else None

print(f"Throughput (median of rounds; {sessions} session(s); server CPU = daemon utime+stime per command)")
print()
print("| workload | unit | spt | tgtd | spt/tgtd | spt CPU us/cmd | tgtd CPU us/cmd | CPU spt/tgtd | spt % of iperf3 | tgtd % of iperf3 | issue 6 goal |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for wl in workloads:
    title, key = names[wl]
    unit = "IOPS" if key == "iops" else "MB/s"
    s, t = med("spt", wl, key), med("tgtd", wl, key)
    cs, ct = med("spt", wl, "srv_cpu_us_per_io"), med("tgtd", wl, "srv_cpu_us_per_io")
    ps = pt = "-"
    goal = "-"
    if key == "mb_s" and tcp_mb:
        ps = f"{100 * s / tcp_mb:.0f}%" if s is not None else "n/a"
        pt = f"{100 * t / tcp_mb:.0f}%" if t is not None else "n/a"
    if s is not None and t is not None and t > 0:
        if wl == "rr4k":
            ok = s >= 3 * t and cs is not None and ct and cs <= ct / 3
            goal = ("met" if ok else "missed") + " (>=3x IOPS, <=1/3 CPU)"
        elif wl == "rw4k":
            goal = ("met" if s >= 3 * t else "missed") + " (>=3x IOPS)"
        elif key == "mb_s" and tcp_mb:
            goal = ("met" if s >= 0.8 * tcp_mb and s > t else "missed") + " (>=80% iperf3, > tgtd)"
        elif wl == "lat4k":
            ls, lt = med("spt", wl, "lat_p99_us"), med("tgtd", wl, "lat_p99_us")
            if ls is not None and lt is not None:
                goal = ("met" if ls < lt else "missed") + " (p99 below tgtd)"
    print(f"| {title} | {unit} | {fmt(s, 0 if key == 'iops' else 1)} | {fmt(t, 0 if key == 'iops' else 1)} "
          f"| {ratio(s, t)} | {fmt(cs, 1)} | {fmt(ct, 1)} | {ratio(cs, ct)} | {ps} | {pt} | {goal} |")
print()
print(f"Loopback TCP, iperf3 single stream (median): {fmt(tcp, 2)} Gbit/s = {fmt(tcp_mb, 0)} MB/s")
print()
print("Latency in microseconds, and cores busy during the window (median of rounds)")
print()
print("| workload | spt p50 | tgtd p50 | spt p99 | tgtd p99 | spt p99.9 | tgtd p99.9 | spt server cores | tgtd server cores | client cores (spt / tgtd runs) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for wl in workloads:
    title, _ = names[wl]
    cells = []
    for key in ("lat_p50_us", "lat_p99_us", "lat_p999_us"):
        cells += [fmt(med("spt", wl, key), 0), fmt(med("tgtd", wl, key), 0)]
    cells += [fmt(med("spt", wl, "srv_cpu_util"), 2), fmt(med("tgtd", wl, "srv_cpu_util"), 2)]
    cells += [fmt(med("spt", wl, "cli_cpu_util"), 2) + " / " + fmt(med("tgtd", wl, "cli_cpu_util"), 2)]
    print(f"| {title} | " + " | ".join(cells) + " |")
print()
# what ran beside the benchmark: every CPU's busy time minus server and client
others = []
for (t, w), kvs in runs.items():
    for kv in kvs:
        try:
            others.append((float(kv["host_busy_cores"]) - float(kv["srv_cpu_util"])
                           - float(kv["cli_cpu_util"]), f"{t}/{w}/r{kv['round']}"))
        except (KeyError, ValueError):
            pass
if others:
    vals = sorted(v for v, _ in others)
    noisy = sorted(((v, name) for v, name in others if v > 0.25), reverse=True)
    worst = ", ".join(f"{name} {v:.2f}" for v, name in noisy[:5])
    print(f"Other CPU load during the windows (all CPUs busy minus server and client; includes "
          f"softirq and writeback work charged to no process): median {statistics.median(vals):.2f} "
          f"cores, max {vals[-1]:.2f}; {len(noisy)} of {len(others)} runs above 0.25 cores"
          + (f" (worst: {worst})" if noisy else ""))
    print()
bad = [f"{t}/{w}" for (t, w), kvs in runs.items() for kv in kvs if kv.get("exit") != "0"]
rounds = max((len(v) for v in runs.values()), default=0)
print(f"Runs per cell: {rounds}; failed runs (excluded from medians): {', '.join(bad) if bad else 'none'}")
EOF

{
	echo "## spt vs tgtd, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- command: \`$COMMAND\`"
	echo "- machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r); load average before: $LOAD_BEFORE"
	echo "- spt: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src include 2>/dev/null || echo ' (with uncommitted changes in src/ or include/)'); tgt $(dpkg-query -W -f='${Version}' tgt 2>/dev/null) (bs rdwr, defaults); iperf3 $(dpkg-query -W -f='${Version}' iperf3 2>/dev/null)"
	echo "- backing files: $SIZE sparse, on $(df -T "$WORK" | awk 'NR == 2 {print $2}')$([ "$PREWARM" = 1 ] && echo ', read once before the rounds (page cache warm)'); $ROUNDS rounds, ${DURATION} s measured after ${WARMUP} s warm-up per run, targets alternating$([ "$NICE" != 0 ] && echo ", everything measured at nice $NICE")"
	echo
	cat "$WORK/table.md"
	if [ -n "$PERF_REPORT" ]; then
		echo
		cat "$PERF_REPORT"
	fi
} >"$WORK/report.md"
cat "$WORK/report.md"
if [ -n "${BENCH_OUT:-}" ]; then
	cp "$WORK/report.md" "$BENCH_OUT"
fi
if [ "$FAILED_RUNS" -gt 0 ]; then
	say "$FAILED_RUNS runs failed (see above)"
	exit 1
fi
exit 0
