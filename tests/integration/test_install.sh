#!/bin/bash
# Packaging and operating: `make install DESTDIR=... PREFIX=/usr` (files,
# modes, the unit's paths, a provider built against the installed headers
# and libspt.a, `make uninstall`), the man pages (no groff warnings, every
# option and command of the programs' --help documented), the systemd unit
# (systemd-analyze verify), sd_notify readiness (READY=1 only once the
# portal accepts connections, from sptd's own pid; STOPPING=1 on SIGTERM;
# path and abstract addresses), the journal's "<N>" priority prefixes on
# stderr, and --log-target syslog (messages with facility daemon on
# /dev/log, checked inside a private mount namespace where the test owns
# /dev/log; without one, only that nothing goes to stderr).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
spt_init install

BUILD_DIR=$(dirname "$SPTD")
MAKE_ARGS=()
case $(basename "$BUILD_DIR") in build-san) MAKE_ARGS=(SAN=1) ;; esac
ROOT=$SPT_TMP/root
MANPAGES=(man8/sptd.8 man8/sptctl.8 man1/spt-memprovider.1)

# mode_is WHAT PATH MODE: PATH is a regular file of octal MODE.
mode_is() {
	local path=$1 mode=$2 got
	if [ ! -f "$path" ] || [ -L "$path" ]; then
		fail "installs ${path#"$ROOT"} (missing)"
		return 1
	fi
	got=$(stat -c %a "$path")
	expect_eq "installs ${path#"$ROOT"} with mode $mode" "$got" "$mode"
}

# ---- make install ---------------------------------------------------------

install_log=$SPT_TMP/install.log
# the modes a packager's umask gives the directories install creates
umask 022
if make -C "$SPT_ROOT" "${MAKE_ARGS[@]}" install DESTDIR="$ROOT" PREFIX=/usr >"$install_log" 2>&1; then
	pass "make ${MAKE_ARGS[*]} install DESTDIR=\$SPT_TMP/root PREFIX=/usr (as $(id -un))"
else
	fail "make install DESTDIR=\$SPT_TMP/root PREFIX=/usr"
	spt_show "$install_log" 30
	spt_finish
fi

mode_is "$ROOT/usr/sbin/sptd" 755
mode_is "$ROOT/usr/sbin/sptctl" 755
mode_is "$ROOT/usr/bin/spt-memprovider" 755
mode_is "$ROOT/usr/lib/libspt.a" 644
mode_is "$ROOT/usr/lib/pkgconfig/spt.pc" 644
for h in "$SPT_ROOT"/include/spt/*.h; do
	mode_is "$ROOT/usr/include/spt/$(basename "$h")" 644
done
for page in "${MANPAGES[@]}"; do
	mode_is "$ROOT/usr/share/man/$page" 644
done
mode_is "$ROOT/usr/lib/systemd/system/sptd.service" 644
mode_is "$ROOT/usr/share/doc/spt/README.md" 644
mode_is "$ROOT/usr/share/doc/spt/examples/python/spt_provider.py" 644
mode_is "$ROOT/usr/share/doc/spt/examples/sptd.default" 644
# the admin's file, which may hold CHAP secrets
mode_is "$ROOT/etc/default/sptd" 600

writable=$(find "$ROOT" -perm /022 ! -type l -printf '%P (%m)\n')
expect_eq "nothing installed is group- or world-writable" "$writable" ""
strays=$(find "$ROOT" -mindepth 1 -maxdepth 1 ! -name usr ! -name etc -printf '%P\n')
expect_eq "everything lands under usr/ and etc/ of DESTDIR" "$strays" ""
check "installed sptd is the one built" cmp "$BUILD_DIR/sptd" "$ROOT/usr/sbin/sptd"

unit=$ROOT/usr/lib/systemd/system/sptd.service
expect_eq "unit runs the installed sptd" \
	"$(grep -c '^ExecStart=/usr/sbin/sptd --control /run/sptd/control.sock \$SPTD_ARGS$' "$unit")" 1
expect_eq "unit reads /etc/default/sptd" "$(grep -c '^EnvironmentFile=-/etc/default/sptd$' "$unit")" 1
expect_eq "unit is Type=notify" "$(grep -c '^Type=notify$' "$unit")" 1
# shellcheck disable=SC1090,SC1091
SPTD_ARGS=$(. "$ROOT/etc/default/sptd" && echo "$SPTD_ARGS")
case $SPTD_ARGS in
*--lun\ /var/lib/spt/*) pass "/etc/default/sptd sets SPTD_ARGS with a LUN under the StateDirectory" ;;
*) fail "/etc/default/sptd sets SPTD_ARGS with a LUN under the StateDirectory (got '$SPTD_ARGS')" ;;
esac

# The unit as systemd reads it (the manager need not run: verify loads the
# unit file offline); the man pages of Documentation= are the installed ones.
if command -v systemd-analyze >/dev/null 2>&1; then
	verify_out=$SPT_TMP/verify.log
	# the staged sptd stands in for /usr/sbin/sptd, which need not exist here
	sed "s|/usr/sbin/sptd|$ROOT/usr/sbin/sptd|" "$unit" >"$SPT_TMP/sptd.service"
	if MANPATH=$ROOT/usr/share/man SYSTEMD_LOG_LEVEL=notice \
		systemd-analyze verify "$SPT_TMP/sptd.service" >"$verify_out" 2>&1 &&
		! grep -v '^$' "$verify_out" | grep -q .; then
		pass "systemd-analyze verify: the unit has no error or warning"
	else
		fail "systemd-analyze verify: the unit has no error or warning"
		spt_show "$verify_out" 20
	fi
	# every directive understood and every syscall group known to this systemd
	if systemd-analyze security --offline=true "$SPT_TMP/sptd.service" >"$verify_out" 2>&1; then
		pass "systemd-analyze security --offline reads the hardening settings ($(grep -o 'Overall exposure level.*' "$verify_out" | head -n 1))"
	else
		fail "systemd-analyze security --offline reads the hardening settings"
		spt_show "$verify_out" 20
	fi
else
	skip "systemd-analyze is not installed: the unit is not verified"
fi

# Another prefix: the unit follows the programs, the default file /usr/local/etc.
root2=$SPT_TMP/root-local
if make -C "$SPT_ROOT" "${MAKE_ARGS[@]}" install DESTDIR="$root2" >"$install_log" 2>&1; then
	unit2=$root2/usr/local/lib/systemd/system/sptd.service
	expect_eq "PREFIX=/usr/local (default): unit runs /usr/local/sbin/sptd" \
		"$(grep -c '^ExecStart=/usr/local/sbin/sptd ' "$unit2" 2>/dev/null)" 1
	expect_eq "PREFIX=/usr/local: unit reads /usr/local/etc/default/sptd" \
		"$(grep -c '^EnvironmentFile=-/usr/local/etc/default/sptd$' "$unit2" 2>/dev/null)" 1
	expect_eq "PREFIX=/usr/local: spt.pc names the prefix" \
		"$(grep -c '^prefix=/usr/local$' "$root2/usr/local/lib/pkgconfig/spt.pc" 2>/dev/null)" 1
else
	fail "make install DESTDIR=\$SPT_TMP/root-local (default PREFIX)"
	spt_show "$install_log" 30
fi

# A reinstall keeps the admin's /etc/default/sptd.
echo 'SPTD_ARGS="--lun ram:1G"' >"$ROOT/etc/default/sptd"
make -C "$SPT_ROOT" "${MAKE_ARGS[@]}" install DESTDIR="$ROOT" PREFIX=/usr >"$install_log" 2>&1
expect_eq "a reinstall keeps an edited /etc/default/sptd" "$(cat "$ROOT/etc/default/sptd")" \
	'SPTD_ARGS="--lun ram:1G"'
cp "$SPT_ROOT/packaging/sptd.default" "$ROOT/etc/default/sptd"

# ---- the installed programs -------------------------------------------------

for prog in usr/sbin/sptd usr/sbin/sptctl usr/bin/spt-memprovider; do
	check "installed $(basename "$prog") --help exits 0" "$ROOT/$prog" --help
done
expect_eq "installed sptd --help is the built one's" "$("$ROOT/usr/sbin/sptd" --help 2>&1)" \
	"$("$SPTD" --help 2>&1)"
check "installed sptctl --version" "$ROOT/usr/sbin/sptctl" --version

# A provider built against the installed headers and libspt.a only, found
# through the installed spt.pc.
cat >"$SPT_TMP/provider.c" <<'EOF'
#include <stdio.h>
#include <spt/provider.h>
#include <spt/scsi.h>

int main(void)
{
	struct spt_provider *p = NULL;
	char err[256];
	/* nobody listens there: the library must say so, not crash */
	int rc = spt_provider_connect("/nonexistent/spt.sock", "x", NULL, NULL, &p, err, sizeof(err));

	printf("%d %s\n", rc, err);
	return rc < 0 ? 0 : 1;
}
EOF
san_flags=()
[ ${#MAKE_ARGS[@]} -gt 0 ] && san_flags=(-fsanitize=address,undefined)
if command -v pkg-config >/dev/null 2>&1; then
	pc_flags=$(PKG_CONFIG_SYSROOT_DIR=$ROOT PKG_CONFIG_LIBDIR=$ROOT/usr/lib/pkgconfig \
		pkg-config --cflags --libs spt 2>&1)
	# shellcheck disable=SC2086
	if cc -std=c11 -Wall -Werror "${san_flags[@]}" -o "$SPT_TMP/provider" "$SPT_TMP/provider.c" \
		$pc_flags >"$SPT_TMP/cc.log" 2>&1; then
		pass "a provider compiles and links against the installed headers and libspt.a (pkg-config spt: $pc_flags)"
		check "that provider runs" "$SPT_TMP/provider"
	else
		fail "a provider compiles and links against the installed headers and libspt.a (pkg-config spt: $pc_flags)"
		spt_show "$SPT_TMP/cc.log" 20
	fi
else
	skip "pkg-config is not installed: no provider built against the installed library"
fi

# ---- man pages ---------------------------------------------------------------

for page in "${MANPAGES[@]}"; do
	f=$ROOT/usr/share/man/$page
	warn=$(groff -man -Tutf8 -ww -z "$f" 2>&1)
	expect_eq "$(basename "$page") renders without groff warnings" "$warn" ""
	if command -v man >/dev/null 2>&1; then
		check "man -l $(basename "$page") renders" env MANWIDTH=80 man -l "$f"
	fi
done

# Every option (and sptctl command) of a --help, written in the roff source
# as \-\-name, appears in the program's man page.
documented() {
	local page=$1 what=$2 word roff missing=()
	shift 2
	while read -r word; do
		roff=${word//-/\\-}
		grep -qF -- "$roff" "$page" || missing+=("$word")
	done < <("$@" 2>&1 | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
	expect_eq "$(basename "$page") documents every $what" "${missing[*]}" ""
}
documented "$ROOT/usr/share/man/man8/sptd.8" "option of sptd --help" "$SPTD" --help
documented "$ROOT/usr/share/man/man8/sptctl.8" "option of sptctl --help" "$ROOT/usr/sbin/sptctl" --help
documented "$ROOT/usr/share/man/man1/spt-memprovider.1" "option of spt-memprovider --help" \
	"$ROOT/usr/bin/spt-memprovider" --help
missing=()
while read -r noun verb; do
	grep -qF -- ".B $noun $verb" "$ROOT/usr/share/man/man8/sptctl.8" ||
		grep -qF -- ".BR \"$noun $verb " "$ROOT/usr/share/man/man8/sptctl.8" ||
		grep -qF -- ".BI \"$noun $verb " "$ROOT/usr/share/man/man8/sptctl.8" ||
		missing+=("$noun $verb")
done < <("$ROOT/usr/sbin/sptctl" --help | sed -n 's/^  \([a-z]\+\) \([a-z]\+\)\( .*\)\?$/\1 \2/p')
expect_eq "sptctl.8 documents every command of sptctl --help" "${missing[*]}" ""

# ---- make uninstall ---------------------------------------------------------

if make -C "$SPT_ROOT" "${MAKE_ARGS[@]}" uninstall DESTDIR="$ROOT" PREFIX=/usr >"$install_log" 2>&1; then
	left=$(find "$ROOT" ! -type d -printf '%P\n')
	expect_eq "make uninstall removes every installed file" "$left" ""
else
	fail "make uninstall DESTDIR=\$SPT_TMP/root PREFIX=/usr"
	spt_show "$install_log" 20
fi

# ---- sd_notify --------------------------------------------------------------

# The service manager's side: binds NOTIFY_SOCKET (a path, or an abstract
# name with '@'), starts sptd, reports PASS/FAIL lines. Stops only its sptd.
cat >"$SPT_TMP/notify_check.py" <<'EOF'
import os, signal, socket, struct, subprocess, sys

SCALE = int(os.environ.get("SPT_TIMEOUT_SCALE", "1"))


def report(ok, what):
    print("%s %s" % ("PASS" if ok else "FAIL", what), flush=True)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def recv_state(sock, timeout):
    """The next datagram and its sender's pid (SCM_CREDENTIALS)."""
    sock.settimeout(timeout)
    try:
        data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    except socket.timeout:
        return None, None
    pid = None
    for level, typ, payload in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    return data.decode(errors="replace"), pid


def fields(state):
    return dict(l.split("=", 1) for l in (state or "").split("\n") if "=" in l)


address, port, log, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
kind = "abstract address" if address.startswith("@") else "path address"
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind("\0" + address[1:] if address.startswith("@") else address)
env = dict(os.environ, NOTIFY_SOCKET=address)
env.pop("JOURNAL_STREAM", None)
with open(log, "ab") as out:
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
try:
    state, pid = recv_state(sock, 30 * SCALE)
    report(state is not None, "%s: sptd sends a notification once started" % kind)
    if state is not None:
        # a manager starts what needs the target as soon as READY=1 arrives
        listening = port_open(port)
        f = fields(state)
        report(f.get("READY") == "1", "%s: the first message is READY=1 (%r)" % (kind, state))
        report(listening, "%s: the portal accepts connections when READY=1 arrives" % kind)
        report("1 LUN(s)" in f.get("STATUS", "") and "1 portal(s)" in f.get("STATUS", ""),
               "%s: READY=1 comes with STATUS= (%r)" % (kind, f.get("STATUS")))
        report(pid == proc.pid, "%s: sent from sptd's own pid, as NotifyAccess=main wants (%s, %s)"
               % (kind, pid, proc.pid))
        state, _ = recv_state(sock, 0.5)
        report(state is None, "%s: nothing more while it serves (%r)" % (kind, state))
        proc.send_signal(signal.SIGTERM)
        state, pid = recv_state(sock, 10 * SCALE)
        report(fields(state).get("STOPPING") == "1", "%s: SIGTERM: STOPPING=1 (%r)" % (kind, state))
        report(pid == proc.pid, "%s: STOPPING=1 from sptd's own pid" % kind)
        try:
            rc = proc.wait(timeout=20 * SCALE)
        except subprocess.TimeoutExpired:
            rc = "still running"
        report(rc == 0, "%s: sptd then exits 0 (status %s)" % (kind, rc))
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if not address.startswith("@"):
        os.unlink(address)
EOF

# run_checks WHAT LOG CMD...: CMD's "PASS what" / "FAIL what" lines become
# checks; a CMD that reports none fails WHAT. LOG is its sptd's log.
run_checks() {
	local what=$1 log=$2 line n=0
	shift 2
	while IFS= read -r line; do
		case $line in
		"PASS "*) pass "${line#PASS }"; n=$((n + 1)) ;;
		"FAIL "*) fail "${line#FAIL }"; n=$((n + 1)) ;;
		*) echo "    | $line" ;;
		esac
	done < <(timeout -k 5 "$(spt_t 120)" "$@" 2>&1)
	[ $n -gt 0 ] || fail "$what: the checks ran (none reported)"
	if [ -f "$log" ] && spt_log_has_sanitizer_report "$log"; then
		fail "$what: sptd log has no sanitizer report"
		spt_show "$log" 40
	fi
}

for address in "$SPT_TMP/notify.sock" "@spt-test-notify-$$-$RANDOM"; do
	port=$(spt_free_port)
	log=$SPT_TMP/notify-$port.log
	run_checks "sd_notify ($address)" "$log" python3 "$SPT_TMP/notify_check.py" "$address" "$port" "$log" \
		"$SPTD" --listen "127.0.0.1:$port" --lun ram:16M --control "$SPT_TMP/notify-$port.sock"
done

# ---- the journal's priority prefixes ---------------------------------------

# systemd.exec(5): JOURNAL_STREAM is "device:inode" of the stream stderr is
# connected to; the test's log file stands in for the journal's socket.
dir=$SPT_TMP/journal
mkdir -p "$dir"
: >"$dir/sptd.log"
export JOURNAL_STREAM
JOURNAL_STREAM=$(stat -c '%d:%i' "$dir/sptd.log")
# a NOTIFY_SOCKET nobody reads: a warning, and sptd serves all the same
export NOTIFY_SOCKET=$SPT_TMP/nobody-listens.sock
if spt_start --dir "$dir" -- --lun ram:16M; then
	pass "sptd serves although NOTIFY_SOCKET names a socket nobody reads"
	spt_stop
	body=$(grep -v '^# ' "$dir/sptd.log" | grep -v '^$')
	unprefixed=$(printf '%s\n' "$body" | grep -v '^<[3467]>' | grep -v 'Sanitizer\|^ *#\|^==' | head -n 3)
	expect_eq "under the journal every line carries a <N> priority prefix" "$unprefixed" ""
	case $body in *"<6>sptd "*" ready: target"*) pass "info as <6> (ready)" ;;
	*) fail "info as <6> (ready)"; spt_show "$dir/sptd.log" 10 ;; esac
	case $body in *"<4>NOTIFY_SOCKET: "*) pass "warning as <4> (NOTIFY_SOCKET unreachable)" ;;
	*) fail "warning as <4> (NOTIFY_SOCKET unreachable)"; spt_show "$dir/sptd.log" 10 ;; esac
	stamped=$(printf '%s\n' "$body" | grep -c '^<[0-9]>[0-9]\{4\}-[0-9][0-9]-')
	expect_eq "under the journal lines carry no time stamp of their own" "$stamped" 0
fi
unset NOTIFY_SOCKET
# inherited by a process whose stderr is elsewhere: plain lines again
JOURNAL_STREAM=1:2
if spt_start -- --lun ram:16M; then
	spt_stop
	expect_eq "a JOURNAL_STREAM that is not stderr is ignored (time-stamped lines)" \
		"$(grep -c '^[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T.*Z sptd info: ' "$SPT_LOG")" \
		"$(grep -v '^# ' "$SPT_LOG" | grep -c 'sptd info: ')"
	expect_eq "... and without a <N> prefix" "$(grep -c '^<[0-9]>' "$SPT_LOG")" 0
fi
unset JOURNAL_STREAM

# ---- --log-target syslog ----------------------------------------------------

check_fails "--log-target with an unknown target is refused" "$SPTD" --log-target journal
expect_eq "... with exit status 2" "$("$SPTD" --log-target journal >/dev/null 2>&1; echo $?)" 2

# Whatever /dev/log is here: sptd serves and writes nothing to stderr.
if spt_start -- --lun ram:16M --log-target syslog; then
	check "with --log-target syslog sptd serves (sptctl lun list)" \
		"$BUILD_DIR/sptctl" --socket "$SPT_RUNDIR/control.sock" lun list
	spt_stop
	expect_eq "with --log-target syslog nothing is logged to stderr" \
		"$(grep -v '^# ' "$SPT_LOG" | head -n 3)" ""
fi

# syslog(3) writes to /dev/log, a path the test cannot redirect in the
# container itself: inside a private mount namespace with its own /dev
# (a tmpfs with the host's null, zero, random, urandom), the test binds
# /dev/log and reads what sptd sends.
cat >"$SPT_TMP/syslog_check.py" <<'EOF'
import os, re, signal, socket, subprocess, sys, threading, time

SCALE = int(os.environ.get("SPT_TIMEOUT_SCALE", "1"))


def report(ok, what):
    print("%s %s" % ("PASS" if ok else "FAIL", what), flush=True)


port, log, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/dev/log")
msgs = []


def reader():
    # read as they come, as a syslog daemon does: syslog(3) blocks once a
    # few datagrams wait unread (net.unix.max_dgram_qlen)
    while True:
        data = sock.recv(65536)
        if not data:
            return
        msgs.append(data.decode(errors="replace"))


threading.Thread(target=reader, daemon=True).start()
env = dict(os.environ, NOTIFY_SOCKET="/nonexistent/notify.sock")
env.pop("JOURNAL_STREAM", None)
with open(log, "ab") as out:
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
try:
    deadline = time.time() + 30 * SCALE
    up = False
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            up = True
            break
        except OSError:
            time.sleep(0.1)
    report(up, "syslog: sptd --log-target syslog listens")
    if "--control" in cmd:
        # a control client that says nothing: a debug message
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(cmd[cmd.index("--control") + 1])
        time.sleep(0.2)
        c.close()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=20 * SCALE)
    except subprocess.TimeoutExpired:
        rc = "still running"
    report(rc == 0, "syslog: sptd exits 0 on SIGTERM (status %s)" % rc)
    time.sleep(0.5)
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    os.unlink("/dev/log")
# glibc: "<PRI>Mmm dd hh:mm:ss sptd[PID]: message"; PRI = facility * 8 + severity
pat = re.compile(r"^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d sptd\[(\d+)\]: (.*)$", re.S)
msgs = list(msgs)
parsed = [pat.match(m) for m in msgs]
report(msgs and all(parsed), "syslog: %d messages, each '<PRI>DATE sptd[PID]: text' (%r)"
       % (len(msgs), [m for m, p in zip(msgs, parsed) if not p][:2]))
parsed = [p for p in parsed if p]
report(parsed and all(p.group(2) == str(proc.pid) for p in parsed),
       "syslog: LOG_PID: the pid is sptd's (%d)" % proc.pid)
report(all(int(p.group(1)) >> 3 == 3 for p in parsed), "syslog: facility daemon (3) throughout")
report(any(int(p.group(1)) == 30 and re.match(r"sptd \S+ ready", p.group(3)) for p in parsed),
       "syslog: 'ready' at daemon.info (<30>)")
report(any(int(p.group(1)) == 28 and p.group(3).startswith("NOTIFY_SOCKET:") for p in parsed),
       "syslog: a warning at daemon.warning (<28>)")
report(any(int(p.group(1)) == 31 for p in parsed),
       "syslog: --log-level debug messages at daemon.debug (<31>)")
report(any(int(p.group(1)) == 30 and "backing stores synced" in p.group(3) for p in parsed),
       "syslog: the last message, after SIGTERM, is sent too")
EOF

# "${own_dev[@]}" CMD...: CMD in a private mount namespace whose /dev is a
# new tmpfs holding only the host's null, zero, full, random and urandom
# (and /dev/fd), so that the test may bind /dev/log there. Nothing outside
# the namespace sees it.
unshare_cmd=()
if unshare -m --propagation private true 2>/dev/null; then
	unshare_cmd=(unshare -m --propagation private)
elif unshare -r -m --propagation private true 2>/dev/null; then
	unshare_cmd=(unshare -r -m --propagation private)
fi
# shellcheck disable=SC2016
own_dev=("${unshare_cmd[@]}" bash -c '
	set -e
	old=$1; shift
	mount --bind /dev "$old"
	mount -t tmpfs -o mode=0755,size=1m spt-test-dev /dev
	for n in null zero full random urandom; do
		touch "/dev/$n"
		mount --bind "$old/$n" "/dev/$n"
	done
	ln -s /proc/self/fd /dev/fd
	exec "$@"' _ "$SPT_TMP/host-dev")
mkdir -p "$SPT_TMP/host-dev"
if [ ${#unshare_cmd[@]} -gt 0 ] &&
	"${own_dev[@]}" sh -c '[ -c /dev/null ] && [ ! -e /dev/log ] && echo ok >/dev/null' 2>/dev/null; then
	port=$(spt_free_port)
	log=$SPT_TMP/syslog.log
	run_checks "syslog" "$log" "${own_dev[@]}" python3 "$SPT_TMP/syslog_check.py" "$port" "$log" \
		"$SPTD" --listen "127.0.0.1:$port" --lun ram:16M --log-target syslog --log-level debug \
		--control "$SPT_TMP/syslog-control.sock"
	expect_eq "syslog: nothing on stderr" "$(grep -v 'Sanitizer\|^==' "$log" 2>/dev/null | head -n 3)" ""
else
	skip "no private mount namespace with a /dev of its own (unshare -m, mount): syslog messages not read; only that sptd serves and writes nothing to stderr was checked"
fi

spt_finish
