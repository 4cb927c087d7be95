# shellcheck shell=bash
# Shared helpers for the integration tests (sourced, never run).
#
# A test script does:
#   . "$(dirname "$0")/lib.sh"
#   spt_init tools                  # names the test, makes $SPT_TMP, installs the cleanup trap
#   spt_start --lun "$SPT_TMP/a.img,size=67108864"
#   check "inquiry works" iscsi-inq "$(spt_url 0)"
#   spt_stop                        # SIGTERM, expects exit 0 and a log without sanitizer reports
#   spt_finish                      # exit status: 1 if any check failed
#
# Every check prints one line "PASS: <test>: <what>" or "FAIL: <test>: <what>"
# (plus "SKIP: ..." with a reason); tests/run.sh counts those lines.
#
# Environment:
#   SPTD           daemon binary (default: build/sptd of this tree)
#   SPT_TIMEOUT_SCALE  multiply every timeout (tests/run.sh sets 3 for sanitizer builds)
#   SPT_KEEP_TMP=1 keep the temporary directory for inspection
#   SPT_LUN_BASE   LUN number the daemon gives its first --lun (0 for sptd; only a
#                  reference target that reserves LUN 0 for itself needs another value)
#   SPT_NO_CONTROL=1  do not pass --control (by default each daemon gets its own socket
#                  in its temporary directory so parallel runs never share one)

SPT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SPTD=${SPTD:-$SPT_ROOT/build/sptd}
SPT_TIMEOUT_SCALE=${SPT_TIMEOUT_SCALE:-1}
SPT_LUN_BASE=${SPT_LUN_BASE:-0}
SPT_TARGET_DEFAULT=iqn.2026-11.org.spt:target0
SPT_INITIATOR=iqn.2026-11.org.spt:test-initiator

SPT_TEST=unnamed
SPT_TMP=
SPT_PASSED=0
SPT_FAILED=0
SPT_STARTED_PIDS=()

# Current daemon (one at a time is enough for every test).
SPT_PID=
SPT_PORT=
SPT_HOST=127.0.0.1
SPT_LOG=
SPT_RUNDIR=
SPT_TARGET=$SPT_TARGET_DEFAULT
SPT_EXIT=

spt_init() {
	SPT_TEST=$1
	SPT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/spt-$SPT_TEST.XXXXXX") || {
		echo "FAIL: $SPT_TEST: cannot create a temporary directory"
		exit 1
	}
	trap spt_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	if [ ! -x "$SPTD" ]; then
		fail "daemon binary $SPTD exists and is executable"
		exit 1
	fi
}

# Scale a timeout in seconds by SPT_TIMEOUT_SCALE (sanitizer builds are slower).
spt_t() {
	echo $(($1 * SPT_TIMEOUT_SCALE))
}

pass() {
	SPT_PASSED=$((SPT_PASSED + 1))
	echo "PASS: $SPT_TEST: $*"
}

fail() {
	SPT_FAILED=$((SPT_FAILED + 1))
	echo "FAIL: $SPT_TEST: $*"
}

skip() {
	echo "SKIP: $SPT_TEST: $*"
}

# Indent a file (or stdin) for diagnostics, keeping at most the last $2 lines.
spt_show() {
	local file=${1:--} lines=${2:-40}
	tail -n "$lines" "$file" 2>/dev/null | sed 's/^/    | /'
}

# check WHAT CMD...: run CMD (output to a file); PASS if it exits 0, else FAIL
# and show the end of its output. Returns CMD's exit status.
check() {
	local what=$1 out rc
	shift
	out=$(mktemp "$SPT_TMP/check.XXXXXX")
	"$@" >"$out" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		pass "$what"
	else
		fail "$what (exit $rc: $*)"
		spt_show "$out" 20
	fi
	return $rc
}

# check_fails WHAT CMD...: PASS if CMD exits non-zero.
check_fails() {
	local what=$1 out rc
	shift
	out=$(mktemp "$SPT_TMP/check.XXXXXX")
	"$@" >"$out" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		pass "$what"
	else
		fail "$what (unexpectedly succeeded: $*)"
		spt_show "$out" 20
	fi
	[ $rc -ne 0 ]
}

# expect WHAT COND-STRING ACTUAL EXPECTED: PASS if ACTUAL == EXPECTED.
expect_eq() {
	local what=$1 actual=$2 expected=$3
	if [ "$actual" = "$expected" ]; then
		pass "$what"
	else
		fail "$what (got '$actual', expected '$expected')"
	fi
}

# A TCP port on 127.0.0.1 (or $1) that nothing listens on right now. The kernel
# picks it (bind to port 0); spt_start retries with a new one if the daemon
# loses the race for it.
spt_free_port() {
	local host=${1:-127.0.0.1}
	python3 - "$host" <<'EOF'
import socket, sys
host = sys.argv[1].strip('[]')
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.bind((host, 0))
print(s.getsockname()[1])
s.close()
EOF
}

# True if something accepts TCP connections on HOST PORT.
spt_port_open() {
	python3 - "$1" "$2" <<'EOF'
import socket, sys
host = sys.argv[1].strip('[]')
try:
    socket.create_connection((host, int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
}

spt_have_ipv6_loopback() {
	python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0)); s.close()' 2>/dev/null
}

# iSCSI URL of LUN $1 (default 0) of the current daemon.
spt_url() {
	local lun=${1:-0} host=$SPT_HOST
	case $host in *:*) host="[$host]" ;; esac
	echo "iscsi://$host:$SPT_PORT/$SPT_TARGET/$((lun + SPT_LUN_BASE))"
}

spt_portal_url() {
	local host=$SPT_HOST
	case $host in *:*) host="[$host]" ;; esac
	echo "iscsi://$host:$SPT_PORT"
}

# spt_start [--host ADDR] [--dir DIR] [--target IQN] [--no-control] [--] ARGS...
# Starts the daemon in the background in DIR (default: a fresh directory under
# $SPT_TMP) listening on ADDR (default 127.0.0.1) at a free port, with ARGS
# appended. --target IQN is passed to the daemon and used by spt_url.
# Waits until the port accepts connections. On failure prints FAIL with the
# daemon log and returns 1.
spt_start() {
	local host=127.0.0.1 dir= control=1 attempt port deadline name
	local -a extra=()
	SPT_TARGET=$SPT_TARGET_DEFAULT
	while [ $# -gt 0 ]; do
		case $1 in
		--host) host=$2; shift 2 ;;
		--dir) dir=$2; shift 2 ;;
		--target) SPT_TARGET=$2; extra+=(--target "$2"); shift 2 ;;
		--no-control) control=0; shift ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	[ "${SPT_NO_CONTROL:-0}" = 1 ] && control=0
	if [ -z "$dir" ]; then
		dir=$(mktemp -d "$SPT_TMP/daemon.XXXXXX")
	fi
	mkdir -p "$dir"
	SPT_RUNDIR=$dir
	SPT_HOST=$host
	SPT_EXIT=
	for attempt in 1 2 3; do
		port=$(spt_free_port "$host") || { fail "pick a free port on $host"; return 1; }
		SPT_PORT=$port
		name=$host:$port
		case $host in *:*) name="[$host]:$port" ;; esac
		local -a cmd=("$SPTD" --listen "$name")
		[ $control = 1 ] && cmd+=(--control "$dir/control.sock")
		cmd+=("${extra[@]}" "$@")
		SPT_LOG=$dir/sptd.log
		echo "# $SPT_TEST: starting: ${cmd[*]}" >"$SPT_LOG"
		spt_spawn "$dir" "$SPT_LOG" "${cmd[@]}"
		deadline=$((SECONDS + $(spt_t 20)))
		while :; do
			if ! kill -0 "$SPT_PID" 2>/dev/null; then
				wait "$SPT_PID" 2>/dev/null
				SPT_EXIT=$?
				break
			fi
			if spt_port_open "$host" "$port"; then
				return 0
			fi
			if [ $SECONDS -ge $deadline ]; then
				break
			fi
			sleep 0.1
		done
		# The daemon died or never listened. Retry only a lost port race.
		if [ -n "$SPT_EXIT" ] && grep -qi 'address already in use\|EADDRINUSE' "$SPT_LOG"; then
			echo "# $SPT_TEST: port $port was taken meanwhile, retrying" >&2
			continue
		fi
		break
	done
	if [ -n "$SPT_EXIT" ]; then
		fail "daemon starts and listens on $name (it exited with status $SPT_EXIT; log follows)"
	else
		fail "daemon starts and listens on $name (no connection after $(spt_t 20)s; log follows)"
		spt_kill_pid "$SPT_PID"
	fi
	spt_show "$SPT_LOG" 40
	SPT_PID=
	return 1
}

# spt_spawn DIR LOG CMD...: run CMD in DIR in the background, stdout+stderr to
# LOG, with SIGINT/SIGTERM at their default disposition (a non-interactive
# shell would start background jobs with SIGINT ignored). Sets SPT_PID.
spt_spawn() {
	local dir=$1 log=$2
	shift 2
	(cd "$dir" && exec python3 -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$@" >>"$log" 2>&1 </dev/null) &
	SPT_PID=$!
	SPT_STARTED_PIDS+=("$SPT_PID")
}

# SIGTERM a PID we started, SIGKILL after a bound. Sets SPT_EXIT.
spt_kill_pid() {
	local pid=$1 sig=${2:-TERM} deadline
	SPT_EXIT=
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null
	deadline=$((SECONDS + $(spt_t 10)))
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "# $SPT_TEST: pid $pid still alive $(spt_t 10)s after SIG$sig, sending SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		SPT_EXIT=killed
	else
		wait "$pid" 2>/dev/null
		SPT_EXIT=$?
	fi
	local -a keep=()
	local p
	for p in "${SPT_STARTED_PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	SPT_STARTED_PIDS=("${keep[@]}")
}

# True if the log has a sanitizer report.
spt_log_has_sanitizer_report() {
	grep -q 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:\|SUMMARY: UndefinedBehaviorSanitizer\|SUMMARY: AddressSanitizer' "$1"
}

# spt_stop [SIGNAL]: stop the current daemon (default SIGTERM), expect exit 0
# within the bound and a log without sanitizer reports (two checks).
spt_stop() {
	local sig=${1:-TERM} label
	if [ -z "$SPT_PID" ]; then
		return 0
	fi
	label="daemon (port $SPT_PORT)"
	if ! kill -0 "$SPT_PID" 2>/dev/null; then
		spt_kill_pid "$SPT_PID"
		fail "$label was still running before SIG$sig (it had exited with status $SPT_EXIT)"
		spt_show "$SPT_LOG" 40
		SPT_PID=
		return 1
	fi
	spt_kill_pid "$SPT_PID" "$sig"
	SPT_PID=
	local ok=0
	if [ "$SPT_EXIT" = 0 ]; then
		pass "$label exits 0 on SIG$sig"
	else
		fail "$label exits 0 on SIG$sig (status $SPT_EXIT)"
		ok=1
	fi
	if spt_log_has_sanitizer_report "$SPT_LOG"; then
		fail "$label log has no sanitizer report"
		ok=1
	else
		pass "$label log has no sanitizer report"
	fi
	[ $ok = 0 ] || spt_show "$SPT_LOG" 60
	return $ok
}

# True while the current daemon runs.
spt_alive() {
	[ -n "$SPT_PID" ] && kill -0 "$SPT_PID" 2>/dev/null
}

# Make a sparse file of SIZE bytes.
spt_mkimg() {
	rm -f "$1"
	truncate -s "$2" "$1"
}

spt_cleanup() {
	local rc=$? p
	for p in "${SPT_STARTED_PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null || continue
		echo "# $SPT_TEST: cleanup: stopping daemon pid $p" >&2
		spt_kill_pid "$p"
	done
	if [ -n "$SPT_TMP" ] && [ -d "$SPT_TMP" ]; then
		if [ "${SPT_KEEP_TMP:-0}" = 1 ]; then
			echo "# $SPT_TEST: kept $SPT_TMP" >&2
		else
			rm -rf "$SPT_TMP"
		fi
	fi
	exit $rc
}

# Print the per-script tally and exit 1 if any check failed.
spt_finish() {
	echo "# $SPT_TEST: $SPT_PASSED checks passed, $SPT_FAILED checks failed"
	[ "$SPT_FAILED" -eq 0 ]
	exit $?
}
