#!/bin/bash
# sptctl against a live sptd: the control socket (mode 0600, peers checked
# with SO_PEERCRED), `session list` as a table and as JSON with the bytes
# each session read and wrote, `target list` and `lun list` (tables and
# JSON: portals, LUN and session counts, ACL, CHAP; backend, state, size,
# block size, read-only), `session stop` (the initiator gets the Async
# Message asking it to log out; a session that does not log out is closed
# after the grace time; other sessions go on), unknown handles, a missing
# socket, malformed frames and too many clients, none of which may hurt the
# daemon.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
spt_init sptctl

HERE=$(cd "$(dirname "$0")" && pwd)
SPTCTL=${SPTCTL:-$(dirname "$SPTD")/sptctl}
MiB=1048576
GRACE=2
# what the "io" initiator moves: 1.1M written (several R2T bursts after the
# immediate data), 3.0M read (several Data-In PDUs)
IO_WRITE=$((MiB + 128 * 1024))
IO_READ=$((3 * MiB))

if [ ! -x "$SPTCTL" ]; then
	fail "sptctl binary $SPTCTL exists and is executable"
	spt_finish
fi

# A raw iSCSI initiator that stays logged in (tests/integration/spt_iscsi.py)
# and says what the target asks of it. Modes:
#   obey    log out when the target asks (RFC 7143 11.9.1 AsyncEvent 1)
#   ignore  do not log out: wait for the target to close the connection
#   busy    keep writing and reading while ignoring the request
#   second  ignore the first request, log out at the second (a shutdown's)
#   io      write IO_WRITE bytes and read IO_READ bytes of LUN 0 (after a
#           TEST UNIT READY that takes the unit attention), then as obey
# Lines on stdout: LOGGED_IN local=ADDR:PORT isid=0x..., ASYNC event=E
# param3=P, LOGOUT response=R, CLOSED after=SECONDS (since the Async),
# IO_ERROR ..., IO_DONE, DONE.
cat >"$SPT_TMP/initiator.py" <<'EOF'
import socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
import spt_iscsi as si

host, port, target, name, mode, limit = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], float(sys.argv[7])
s = si.Session(host, port, target, initiator=name, timeout=limit)
s.login()
local = s.conn.sock.getsockname()
print("LOGGED_IN local=%s:%d isid=0x80%s" % (local[0], local[1], s.isid[:5].hex()), flush=True)
async_at = None
asyncs = 0
orig_recv = s.conn.recv_pdu

def recv(timeout=None):
    global async_at, asyncs
    p = orig_recv(timeout)
    if p.opcode == si.OP_ASYNC:
        asyncs += 1
        if async_at is None:
            async_at = time.time()
        # RFC 7143 11.9: AsyncEvent at byte 36, Parameter3 at 42
        print("ASYNC event=%d param3=%d" % (p.hdr[36], struct.unpack(">H", p.hdr[42:44])[0]), flush=True)
    return p

s.conn.recv_pdu = recv
deadline = time.time() + limit
if mode == "io":
    # SCSI payload only is counted: the status, sense and the TEST UNIT
    # READY (no data) add nothing to the session's byte counters
    nw, nr = int(sys.argv[8]), int(sys.argv[9])
    st, _, _ = s.scsi_retry_ua(b"\0" * 6)
    st2, _, _ = s.scsi(si.cdb_write10(0, nw // 512), write=bytes([0xa5]) * nw)
    st3, back, _ = s.scsi(si.cdb_read10(0, nr // 512), read_len=nr)
    if st or st2 or st3 or len(back) != nr:
        print("IO_ERROR status %d/%d/%d, read %d" % (st, st2, st3, len(back)), flush=True)
    print("IO_DONE", flush=True)
    mode = "obey"
try:
    while time.time() < deadline:
        if mode == "busy":
            data = bytes([0x5a]) * 65536
            st, _, _ = s.scsi(si.cdb_write10(0, 128), write=data)
            st2, back, _ = s.scsi(si.cdb_read10(0, 128), read_len=65536)
            if st != 0 or st2 != 0 or back != data:
                print("IO_ERROR status %d/%d" % (st, st2), flush=True)
            continue
        try:
            p = s.conn.recv_pdu(0.5)
        except socket.timeout:
            continue
        if p.opcode == si.OP_NOP_IN and p.u32(20) != si.RESERVED_TAG:
            s.conn.send_pdu(si.bhs(si.OP_NOP_OUT, 0x80, lun8=p.hdr[8:16], itt=si.RESERVED_TAG,
                                   f20=p.u32(20), f24=s.cmdsn, f28=s.expstatsn, immediate=True))
        if (mode == "obey" and asyncs >= 1) or (mode == "second" and asyncs >= 2):
            print("LOGOUT response=%d" % s.logout(), flush=True)
            break
except (si.ConnectionClosed, OSError) as e:
    print("CLOSED after=%.2f (%s)" % (time.time() - (async_at or time.time()), e), flush=True)
print("DONE", flush=True)
EOF

# initiator NAME MODE: starts one in the background (pid in INIT_PID, output in
# $SPT_TMP/NAME.out) and waits until it is logged in.
initiator() {
	local name=$1 mode=$2 out=$SPT_TMP/$1.out deadline
	: >"$out"
	python3 "$SPT_TMP/initiator.py" "$HERE" "$SPT_HOST" "$SPT_PORT" "$SPT_TARGET" \
		"iqn.2026-11.org.spt:$name" "$mode" "$(spt_t 60)" "$IO_WRITE" "$IO_READ" >"$out" 2>&1 &
	INIT_PID=$!
	deadline=$((SECONDS + $(spt_t 10)))
	while ! grep -q '^LOGGED_IN' "$out" && kill -0 $INIT_PID 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		sleep 0.1
	done
	grep -q '^LOGGED_IN' "$out"
}

ctl() {
	"$SPTCTL" --socket "$CTL" "$@"
}

# The JSON list's field FIELD of the session of initiator NAME ("" if none);
# NAME without a dot is one of ours (iqn.2026-11.org.spt:NAME).
json_field() {
	local name=$1
	case $name in *.*) ;; *) name=iqn.2026-11.org.spt:$name ;; esac
	ctl session list --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["initiator"] == sys.argv[1]:
        print(s[sys.argv[2]])
        break' "$name" "$2"
}
QEMU_INITIATOR=iqn.2008-11.org.linux-kvm

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# --- the command line without a daemon ----------------------------------------------
check "sptctl --help exits 0" "$SPTCTL" --help
out=$("$SPTCTL" --help 2>&1)
if grep -q 'session list' <<<"$out" && grep -q 'session stop HANDLE' <<<"$out" &&
	grep -q 'target list \[--json\]' <<<"$out" && grep -q 'lun list \[--json\]' <<<"$out"; then
	pass "sptctl --help names session list, session stop, target list and lun list"
else
	fail "sptctl --help names session list, session stop, target list and lun list"
fi
out=$("$SPTCTL" help 2>&1)
rc=$?
if [ $rc = 0 ] && grep -q 'lun list' <<<"$out"; then
	pass "sptctl help prints the usage too"
else
	fail "sptctl help prints the usage too (exit $rc)"
fi
for args in "" "frobnicate" "session" "session frob" "session list --frob" "session stop" \
	"session stop not-a-handle" "session stop 0x12345678901234567" "session stop 1 --grace 601" \
	"--timeout 0 session list" "target" "target frob" "target list --frob" "target list x" \
	"lun" "lun stop" "lun list --json --frob"; do
	# shellcheck disable=SC2086
	"$SPTCTL" --socket "$SPT_TMP/none.sock" $args >/dev/null 2>"$SPT_TMP/err"
	rc=$?
	if [ $rc = 2 ] && [ -s "$SPT_TMP/err" ]; then
		pass "bad command line 'sptctl $args' exits 2 with a message"
	else
		fail "bad command line 'sptctl $args' exits 2 with a message (exit $rc)"
		spt_show "$SPT_TMP/err"
	fi
done

out=$("$SPTCTL" --socket "$SPT_TMP/none.sock" session list 2>&1)
rc=$?
if [ $rc = 3 ] && grep -q "cannot connect to $SPT_TMP/none.sock" <<<"$out"; then
	pass "missing socket: exit 3, '$out'"
else
	fail "missing socket: exit 3 with 'cannot connect' (exit $rc: $out)"
fi
for cmd in "target list" "lun list --json"; do
	# shellcheck disable=SC2086
	"$SPTCTL" --socket "$SPT_TMP/none.sock" $cmd >"$SPT_TMP/out" 2>"$SPT_TMP/err"
	rc=$?
	if [ $rc = 3 ] && [ ! -s "$SPT_TMP/out" ] && [ "$(wc -l <"$SPT_TMP/err")" = 1 ] &&
		grep -q "^sptctl: cannot connect to $SPT_TMP/none.sock" "$SPT_TMP/err"; then
		pass "missing socket, '$cmd': exit 3, one line on stderr, nothing on stdout"
	else
		fail "missing socket, '$cmd': exit 3, one line on stderr, nothing on stdout (exit $rc)"
		spt_show "$SPT_TMP/err"
	fi
done
# what a killed daemon leaves: a socket file nobody listens on
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' \
	"$SPT_TMP/stale.sock"
out=$("$SPTCTL" --socket "$SPT_TMP/stale.sock" session list 2>&1)
rc=$?
if [ $rc = 3 ] && grep -qi 'refused' <<<"$out"; then
	pass "socket nobody listens on: exit 3, '$out'"
else
	fail "socket nobody listens on: exit 3 with 'refused' (exit $rc: $out)"
fi

# --- a daemon with a control socket ---------------------------------------------------
img=$SPT_TMP/lun.img
spt_mkimg "$img" $((64 * MiB))
# LUN 1: another size and block size, read-only (so it must exist already)
img2=$SPT_TMP/lun1.img
spt_mkimg "$img2" $((16 * MiB))
ddir=$SPT_TMP/d1
mkdir -p "$ddir"
CTL=$ddir/control.sock
if ! spt_start --dir "$ddir" --no-control -- --lun "$img,size=$((64 * MiB))" \
	--lun "$img2,block_size=4096,ro" --control "$CTL" --logout-grace $GRACE; then
	spt_finish
fi

mode=$(stat -c '%a %u' "$CTL" 2>/dev/null)
expect_eq "control socket is mode 0600, owned by the daemon's user" "$mode" "600 $(id -u)"

out=$(ctl session list 2>&1)
expect_eq "session list without sessions says so" "$out" "no sessions"
out=$(ctl session list --json 2>&1)
expect_eq "session list --json without sessions is []" "$out" "[]"

if initiator obey obey; then
	pass "initiator 'obey' logged in"
else
	fail "initiator 'obey' logged in"
	spt_show "$SPT_TMP/obey.out"
fi
OBEY_PID=$INIT_PID
if initiator ignore ignore; then
	pass "initiator 'ignore' logged in"
else
	fail "initiator 'ignore' logged in"
	spt_show "$SPT_TMP/ignore.out"
fi
IGNORE_PID=$INIT_PID

table=$(ctl session list 2>&1)
rc=$?
hdr=$(head -n 1 <<<"$table")
if [ $rc = 0 ] && [[ $hdr == HANDLE*TSIH*TYPE*STATE*INITIATOR*ISID*TARGET*"CHAP USER"*CMDS*READ*WRITTEN*CONNECTIONS ]]; then
	pass "session list prints a table with its header"
else
	fail "session list prints a table with its header (exit $rc)"
	spt_show - <<<"$table"
fi
ok=1
for name in obey ignore; do
	local_addr=$(sed -n 's/^LOGGED_IN local=\([^ ]*\) .*/\1/p' "$SPT_TMP/$name.out")
	isid=$(sed -n 's/^LOGGED_IN .* isid=\(0x[0-9a-f]*\)/\1/p' "$SPT_TMP/$name.out")
	line=$(grep "iqn.2026-11.org.spt:$name " <<<"$table")
	if ! grep -Eq "^0x[0-9a-f]{16} +0x[0-9a-f]{4} +normal +active +iqn.2026-11.org.spt:$name +$isid +$SPT_TARGET +- +0 +0 +0 +$local_addr\$" <<<"$line"; then
		ok=0
		echo "    | expected $name with ISID $isid from $local_addr in: $line"
	fi
done
if [ $ok = 1 ]; then
	pass "session list shows both sessions: handle, TSIH, type, state, initiator, ISID, target, CHAP user, commands, bytes read and written (0), peer"
else
	fail "session list shows both sessions with their fields"
	spt_show - <<<"$table"
fi
# columns line up: every row starts its INITIATOR column where the header does
col=$(awk 'NR == 1 { print index($0, "INITIATOR") }' <<<"$table")
misaligned=$(awk -v c="$col" 'NR > 1 && substr($0, c, 4) != "iqn." { print }' <<<"$table")
if [ -n "$col" ] && [ -z "$misaligned" ]; then
	pass "session list columns are aligned"
else
	fail "session list columns are aligned"
	spt_show - <<<"$table"
fi

json=$(ctl session list --json 2>&1)
if python3 - "$json" "$SPT_TARGET" "$SPT_TMP/obey.out" "$SPT_TMP/ignore.out" <<'EOF'; then
import json, re, sys
v = json.loads(sys.argv[1])
assert isinstance(v, list) and len(v) == 2, v
for out in sys.argv[3:]:
    line = open(out).read().split("\n")[0]
    local = re.search(r"local=(\S+)", line).group(1)
    isid = re.search(r"isid=(\S+)", line).group(1)
    s = [x for x in v if x["isid"] == isid]
    assert len(s) == 1, (isid, v)
    s = s[0]
    assert re.fullmatch(r"0x[0-9a-f]{16}", s["handle"]), s
    assert s["initiator"].startswith("iqn.2026-11.org.spt:"), s
    assert s["target"] == sys.argv[2] and s["tpgt"] == 1, s
    assert isinstance(s["tsih"], int) and s["tsih"] > 0, s
    assert s["type"] == "normal" and s["state"] == "active", s
    assert s["chap_user"] == "" and s["commands_in_flight"] == 0, s
    assert s["bytes_read"] == 0 and s["bytes_written"] == 0, s
    assert s["peer_address"] == local and s["connection_count"] == 1, s
    assert s["connections"] == [{"cid": 0, "peer_address": local, "state": "full-feature"}], s
EOF
	pass "session list --json: an array of objects with handle, initiator, isid, target, tsih, type, state, chap_user, bytes_read, bytes_written, peer and connections"
else
	fail "session list --json has the expected fields"
	spt_show - <<<"$json"
fi

# --- target list and lun list ------------------------------------------------------------
# misaligned_at TABLE HEADER: the rows whose cell in column HEADER does not
# start where the header's does (empty when the column lines up)
misaligned_at() {
	awk -v h="$2" 'NR == 1 { c = index($0, h); next }
		c == 0 || substr($0, c, 1) == " " || (c > 1 && substr($0, c - 1, 1) != " ") { print }' <<<"$1"
}
table=$(ctl target list 2>&1)
rc=$?
if [ $rc = 0 ] && [[ $(head -n 1 <<<"$table") =~ ^TARGET\ +TPGT\ +PORTALS\ +LUNS\ +SESSIONS\ +ACL\ +CHAP$ ]] &&
	[ "$(wc -l <<<"$table")" = 2 ] &&
	[ "$(sed -n 2p <<<"$table" | tr -s ' ')" = "$SPT_TARGET 1 $SPT_HOST:$SPT_PORT 2 2 any no" ]; then
	pass "target list: the target with TPGT 1, its portal, 2 LUNs, 2 sessions, any initiator, no CHAP"
else
	fail "target list shows the target with TPGT, portal, LUNs, sessions, CHAP and ACL (exit $rc)"
	spt_show - <<<"$table"
fi
if [ -z "$(misaligned_at "$table" PORTALS)" ] && [ -z "$(misaligned_at "$table" ACL)" ]; then
	pass "target list columns are aligned"
else
	fail "target list columns are aligned"
	spt_show - <<<"$table"
fi
json=$(ctl target list --json 2>&1)
if python3 - "$json" "$SPT_TARGET" "$SPT_HOST:$SPT_PORT" <<'EOF'; then
import json, sys
v = json.loads(sys.argv[1])
assert v == [{"name": sys.argv[2], "tpgt": 1, "portals": [sys.argv[3]], "lun_count": 2,
              "session_count": 2, "chap_required": False, "mutual_chap": False,
              "any_initiator": True, "allowed_initiators": []}], v
EOF
	pass "target list --json: name, tpgt, portals, lun_count, session_count, chap_required, any_initiator, allowed_initiators"
else
	fail "target list --json has the expected fields"
	spt_show - <<<"$json"
fi

table=$(ctl lun list 2>&1)
rc=$?
if [ $rc = 0 ] && [[ $(head -n 1 <<<"$table") =~ ^TARGET\ +LUN\ +BACKEND\ +STATE\ +SIZE\ +BLOCK\ +MODE$ ]] &&
	[ "$(wc -l <<<"$table")" = 3 ] &&
	[ "$(sed -n 2p <<<"$table" | tr -s ' ')" = "$SPT_TARGET 0 file:$img online 64.0M 512 rw" ] &&
	[ "$(sed -n 3p <<<"$table" | tr -s ' ')" = "$SPT_TARGET 1 file:$img2 online 16.0M 4096 ro" ]; then
	pass "lun list: file backends online, LUN 0 64.0M in 512-byte blocks read-write, LUN 1 16.0M in 4096-byte blocks read-only"
else
	fail "lun list shows both LUNs with size, block size, mode, state and backend (exit $rc)"
	spt_show - <<<"$table"
fi
if [ -z "$(misaligned_at "$table" BACKEND)" ] && [ -z "$(misaligned_at "$table" STATE)" ] &&
	[ -z "$(misaligned_at "$table" MODE)" ]; then
	pass "lun list columns are aligned"
else
	fail "lun list columns are aligned"
	spt_show - <<<"$table"
fi
json=$(ctl lun list --json 2>&1)
if python3 - "$json" "$SPT_TARGET" "$img" "$img2" <<'EOF'; then
import json, sys
v = json.loads(sys.argv[1])
t = sys.argv[2]
assert v == [
    {"target": t, "lun": 0, "backend": "file:" + sys.argv[3], "state": "online",
     "size_bytes": 64 * 1048576, "block_size": 512, "read_only": False},
    {"target": t, "lun": 1, "backend": "file:" + sys.argv[4], "state": "online",
     "size_bytes": 16 * 1048576, "block_size": 4096, "read_only": True},
], v
EOF
	pass "lun list --json: exact sizes in bytes, block sizes, read_only, state and backend"
else
	fail "lun list --json has the expected fields"
	spt_show - <<<"$json"
fi

# --- stop: an initiator that logs out when asked -------------------------------------
h_obey=$(json_field obey handle)
h_ignore=$(json_field ignore handle)
t0=$(now_ms)
out=$(ctl session stop "$h_obey" 2>&1)
rc=$?
dt=$(($(now_ms) - t0))
if [ $rc = 0 ] && [ "$out" = "session $h_obey stopped" ]; then
	pass "session stop of a cooperative initiator: '$out' after ${dt} ms"
else
	fail "session stop of a cooperative initiator exits 0 saying it stopped (exit $rc: $out)"
fi
if [ $dt -lt $((GRACE * 1000)) ]; then
	pass "the reply comes once the initiator logged out, before the grace time (${dt} ms < ${GRACE} s)"
else
	fail "the reply comes once the initiator logged out, before the grace time (${dt} ms)"
fi
wait $OBEY_PID 2>/dev/null
if grep -q "^ASYNC event=1 param3=$GRACE\$" "$SPT_TMP/obey.out" &&
	grep -q '^LOGOUT response=0$' "$SPT_TMP/obey.out"; then
	pass "the initiator got the Async Message (AsyncEvent 1, Parameter3 = $GRACE s) and logged out"
else
	fail "the initiator got the Async Message (AsyncEvent 1, Parameter3 = $GRACE s) and logged out"
	spt_show "$SPT_TMP/obey.out"
fi
if [ -z "$(json_field obey handle)" ] && [ "$(json_field ignore handle)" = "$h_ignore" ]; then
	pass "the stopped session is gone; the other one is still listed"
else
	fail "the stopped session is gone; the other one is still listed"
	ctl session list 2>&1 | spt_show -
fi

# --- stop: an initiator that does not log out -----------------------------------------
out=$(ctl session stop "$h_obey" 2>&1)
rc=$?
if [ $rc = 1 ] && grep -q "no such session: no session has handle $h_obey" <<<"$out"; then
	pass "stopping it again: exit 1, '$out'"
else
	fail "stopping a session that is gone: exit 1 with 'no such session' (exit $rc: $out)"
fi
out=$(ctl session stop 0x0123456789abcdef 2>&1)
rc=$?
if [ $rc = 1 ] && grep -q 'no such session' <<<"$out"; then
	pass "unknown handle: exit 1, '$out'"
else
	fail "unknown handle: exit 1 with 'no such session' (exit $rc: $out)"
fi

t0=$(now_ms)
(ctl session stop "$h_ignore" --grace 1 >"$SPT_TMP/stop-ignore.out" 2>&1; echo $? >"$SPT_TMP/stop-ignore.rc") &
stopper=$!
sleep 0.3
state=$(json_field ignore state)
expect_eq "during the grace time the session is listed as stopping" "$state" "stopping"
wait $stopper
dt=$(($(now_ms) - t0))
rc=$(cat "$SPT_TMP/stop-ignore.rc")
if [ "$rc" = 0 ] && [ $dt -ge 1000 ] && [ $dt -lt 3000 ]; then
	pass "session stop --grace 1 of an initiator that ignores it returns after the grace time (${dt} ms)"
else
	fail "session stop --grace 1 of an initiator that ignores it returns 0 after 1 to 3 s (exit $rc, ${dt} ms)"
	spt_show "$SPT_TMP/stop-ignore.out"
fi
wait $IGNORE_PID 2>/dev/null
if grep -q '^ASYNC event=1 param3=1$' "$SPT_TMP/ignore.out" && grep -q '^CLOSED after=' "$SPT_TMP/ignore.out"; then
	pass "the ignoring initiator got the Async Message and then its connection was closed ($(grep -o 'after=[0-9.]*' "$SPT_TMP/ignore.out") s)"
else
	fail "the ignoring initiator got the Async Message and then its connection was closed"
	spt_show "$SPT_TMP/ignore.out"
fi
out=$(ctl session list 2>&1)
expect_eq "no session is left" "$out" "no sessions"

# --- bytes read and written -----------------------------------------------------------------
if initiator io io; then
	IO_PID=$INIT_PID
	deadline=$((SECONDS + $(spt_t 20)))
	while ! grep -q '^IO_DONE' "$SPT_TMP/io.out" && kill -0 $IO_PID 2>/dev/null &&
		[ $SECONDS -lt $deadline ]; do
		sleep 0.1
	done
	if grep -q '^IO_DONE' "$SPT_TMP/io.out" && ! grep -q '^IO_ERROR' "$SPT_TMP/io.out"; then
		pass "the initiator wrote $IO_WRITE bytes and read $IO_READ bytes"
	else
		fail "the initiator wrote $IO_WRITE bytes and read $IO_READ bytes"
		spt_show "$SPT_TMP/io.out"
	fi
	expect_eq "session list --json: bytes_read is exactly the data-in payload" \
		"$(json_field io bytes_read)" "$IO_READ"
	expect_eq "session list --json: bytes_written is exactly the data-out payload" \
		"$(json_field io bytes_written)" "$IO_WRITE"
	line=$(ctl session list | grep 'iqn.2026-11.org.spt:io ')
	if grep -Eq " 0 +3\.0M +1\.1M +[^ ]+\$" <<<"$line"; then
		pass "session list shows them human-readable: read 3.0M, written 1.1M"
	else
		fail "session list shows them human-readable: read 3.0M, written 1.1M"
		spt_show - <<<"$line"
	fi
	ctl session stop "$(json_field io handle)" >/dev/null 2>&1
	wait $IO_PID 2>/dev/null
else
	fail "initiator 'io' logged in"
	spt_show "$SPT_TMP/io.out"
fi

# --- stop during I/O ---------------------------------------------------------------------
# QEMU's initiator (libiscsi logs out when asked and logs in again by
# itself, so qemu-io finishes its work) and a raw initiator that keeps
# writing and reading without logging out.
if initiator busy busy; then
	BUSY_PID=$INIT_PID
	qargs=()
	for i in $(seq 1 60); do
		qargs+=(-c "write -P 0x5a $((i * 65536)) 64k" -c "sleep 50")
	done
	qargs+=(-c "read -P 0x5a 65536 64k")
	qemu-io -f raw "${qargs[@]}" "$(spt_url 0)" >"$SPT_TMP/qemu.out" 2>&1 &
	QEMU_PID=$!
	deadline=$((SECONDS + $(spt_t 10)))
	while [ -z "$(json_field $QEMU_INITIATOR handle 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do
		sleep 0.1
	done
	sleep 0.3
	h_busy=$(json_field busy handle)
	h_qemu=$(json_field $QEMU_INITIATOR handle)
	t0=$(now_ms)
	out=$(ctl session stop "$h_qemu" 2>&1)
	rc=$?
	dt=$(($(now_ms) - t0))
	if [ -n "$h_qemu" ] && [ $rc = 0 ] && [ $dt -le $(((GRACE + 2) * 1000)) ]; then
		pass "session stop of qemu-io during its writes: gone after ${dt} ms"
	else
		fail "session stop of qemu-io during its writes: gone within grace + 2 s (handle '$h_qemu', exit $rc, ${dt} ms: $out)"
	fi
	if [ -n "$h_busy" ] && [ "$(json_field busy handle)" = "$h_busy" ]; then
		pass "the other session was not touched by the stop"
	else
		fail "the other session was not touched by the stop"
	fi
	t0=$(now_ms)
	out=$(ctl session stop "$h_busy" 2>&1)
	rc=$?
	dt=$(($(now_ms) - t0))
	if [ $rc = 0 ] && [ $dt -le $(((GRACE + 2) * 1000)) ] && [ -z "$(json_field busy handle)" ]; then
		pass "session stop of an initiator busy with I/O that ignores the request: gone after ${dt} ms (grace $GRACE s)"
	else
		fail "session stop during I/O: gone within grace + 2 s (exit $rc, ${dt} ms: $out)"
	fi
	wait $BUSY_PID 2>/dev/null
	if grep -q '^ASYNC event=1' "$SPT_TMP/busy.out" && grep -q '^CLOSED' "$SPT_TMP/busy.out" &&
		! grep -q '^IO_ERROR' "$SPT_TMP/busy.out"; then
		pass "the busy initiator got the Async Message, its I/O was intact until the close"
	else
		fail "the busy initiator got the Async Message, its I/O was intact until the close"
		spt_show "$SPT_TMP/busy.out"
	fi
	wait $QEMU_PID
	rc=$?
	if [ $rc = 0 ] && ! grep -qi 'Pattern verification failed\|failed:\|error' "$SPT_TMP/qemu.out"; then
		pass "qemu-io logged out when asked, logged in again and finished its writes (exit 0)"
	else
		fail "qemu-io logged out when asked, logged in again and finished its writes (exit $rc)"
		spt_show "$SPT_TMP/qemu.out"
	fi
	if grep -q "stop requested" "$SPT_LOG" && spt_alive; then
		pass "the daemon logged the stops and is still running"
	else
		fail "the daemon logged the stops and is still running"
	fi
else
	fail "initiator 'busy' logged in"
	spt_show "$SPT_TMP/busy.out"
fi

# --- malformed frames and misbehaving clients ------------------------------------------
# Each case: what the daemon answers (ReturnCode of one response frame, or
# EOF), then whether it closed the connection.
frames=$(python3 - "$CTL" <<'EOF'
import socket, struct, sys, time

path = sys.argv[1]
SIG = b"SPTPT001"

def hdr(code, length, rc=0, timeout=0, hl=28, sig=SIG):
    return struct.pack("<I8sIIII", hl, sig, timeout, code, rc, length)

def talk(data, pause=0.0):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    try:
        try:
            if pause:
                for b in data:
                    s.send(bytes([b]))
                    time.sleep(pause)
            else:
                s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused at once: the answer is waiting to be read
        buf = b""
        while len(buf) < 28:
            c = s.recv(28 - len(buf))
            if not c:
                return "EOF"
            buf += c
        hl, sig, to, code, rc, length = struct.unpack("<I8sIIII", buf)
        assert sig == SIG and hl == 28, buf
        body = b""
        while len(body) < length:
            c = s.recv(length - len(body))
            assert c, "short body"
            body += c
        s.settimeout(0.5)
        try:
            more = s.recv(1)
            closed = "closed" if more == b"" else "open"
        except socket.timeout:
            closed = "open"
        except ConnectionResetError:
            closed = "closed"
        return "rc=%d code=0x%x %s" % (rc, code, closed)
    finally:
        s.close()

cases = [
    ("random bytes", bytes(range(256)) * 4),
    ("HTTP request", b"GET / HTTP/1.0\r\n\r\n" + b"x" * 20),
    ("bad signature", hdr(0x200, 0, sig=b"SPTPT999")),
    ("HeaderLength 64", hdr(0x200, 0, hl=64)),
    ("Length 4 GiB - 1", hdr(0x200, 0xFFFFFFFF)),
    ("Length 64 KiB + 1", hdr(0x200, 65537)),
    ("unknown control code 0x7777", hdr(0x7777, 4) + b"abcd"),
    ("SCSI request on the control socket", hdr(0x103, 72) + bytes(72)),
    ("SESSION_END of 3 bytes", hdr(0x101, 3) + b"abc"),
    ("SESSION_LIST with ReturnCode 5", hdr(0x200, 0, rc=5)),
    ("SESSION_LIST with Timeout 100000", hdr(0x200, 0, timeout=100000)),
    ("SESSION_LIST a byte at a time", hdr(0x200, 0)),
]
for name, data in cases:
    pause = 0.01 if "a byte at a time" in name else 0.0
    print("%s: %s" % (name, talk(data, pause)))
# a header cut short, then the peer goes: no answer, no harm
s = socket.socket(socket.AF_UNIX); s.connect(path); s.sendall(hdr(0x200, 16)[:10]); s.close()
s = socket.socket(socket.AF_UNIX); s.connect(path); s.sendall(hdr(0x200, 16) + b"12345"); s.close()
# more clients than the daemon serves at once
held = []
for i in range(16):
    c = socket.socket(socket.AF_UNIX); c.settimeout(5); c.connect(path)
    c.sendall(hdr(0x200, 0))
    c.recv(28 + 16)
    held.append(c)
print("17th client: %s" % talk(hdr(0x200, 0)))
for c in held:
    c.close()
time.sleep(0.3)
print("after the others left: %s" % talk(hdr(0x200, 0)))
EOF
)
expect_line() {
	if grep -qxF "$1" <<<"$frames"; then
		pass "malformed frame: $1"
	else
		fail "malformed frame: expected '$1'"
		spt_show - <<<"$frames"
	fi
}
expect_line "random bytes: rc=1 code=0x0 closed"
expect_line "HTTP request: rc=1 code=0x0 closed"
expect_line "bad signature: rc=1 code=0x0 closed"
expect_line "HeaderLength 64: rc=1 code=0x0 closed"
expect_line "Length 4 GiB - 1: rc=1 code=0x0 closed"
expect_line "Length 64 KiB + 1: rc=1 code=0x0 closed"
expect_line "unknown control code 0x7777: rc=2 code=0x7777 open"
expect_line "SCSI request on the control socket: rc=2 code=0x103 open"
expect_line "SESSION_END of 3 bytes: rc=3 code=0x101 open"
expect_line "SESSION_LIST with ReturnCode 5: rc=3 code=0x200 open"
expect_line "SESSION_LIST with Timeout 100000: rc=3 code=0x200 open"
expect_line "SESSION_LIST a byte at a time: rc=0 code=0x200 open"
expect_line "17th client: rc=7 code=0x0 closed"
expect_line "after the others left: rc=0 code=0x200 open"
if spt_alive && [ "$(ctl session list 2>&1)" = "no sessions" ]; then
	pass "after the malformed frames the daemon runs and sptctl works"
else
	fail "after the malformed frames the daemon runs and sptctl works"
	spt_show "$SPT_LOG"
fi

# --- who may connect -------------------------------------------------------------------------
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	# let another user reach the socket's directory; the socket stays 0600
	chmod 0711 "$SPT_TMP" "$ddir"
	out=$("${nobody[@]}" "$SPTCTL" --socket "$CTL" session list 2>&1)
	rc=$?
	if [ $rc = 3 ] && grep -qi 'permission denied' <<<"$out"; then
		pass "another user cannot connect to the 0600 socket: exit 3, '$out'"
	else
		fail "another user cannot connect to the 0600 socket (exit $rc: $out)"
	fi
	# with the mode opened up, SO_PEERCRED still turns the user away
	chmod 0666 "$CTL"
	out=$("${nobody[@]}" "$SPTCTL" --socket "$CTL" session list 2>&1)
	rc=$?
	if [ $rc = 3 ] && grep -q "permission denied: only root or the daemon's user may manage sptd" <<<"$out"; then
		pass "with the socket made 0666 the daemon still refuses another user (SO_PEERCRED): '$out'"
	else
		fail "with the socket made 0666 the daemon still refuses another user (exit $rc: $out)"
	fi
	chmod 0600 "$CTL"
	chmod 0700 "$SPT_TMP" "$ddir"
else
	skip "peer credentials: needs root and setpriv to act as another user"
fi

# --- a requester that goes away, a daemon that stops ------------------------------
# The stop goes on without the requester; a stop still waiting when the
# daemon shuts down gets an answer, not a hang.
if initiator gone ignore; then
	h=$(json_field gone handle)
	"$SPTCTL" --socket "$CTL" session stop "$h" --grace 1 >/dev/null 2>&1 &
	stopper=$!
	sleep 0.3
	kill -KILL $stopper 2>/dev/null
	wait $stopper 2>/dev/null
	t0=$(now_ms)
	while [ -n "$(json_field gone handle)" ] && [ $(($(now_ms) - t0)) -lt 4000 ]; do
		sleep 0.1
	done
	if [ -z "$(json_field gone handle)" ] && spt_alive; then
		pass "sptctl killed while its stop waits: the stop still ends the session after the grace time"
	else
		fail "sptctl killed while its stop waits: the stop still ends the session after the grace time"
	fi
	wait $INIT_PID 2>/dev/null
else
	fail "initiator 'gone' logged in"
fi
if initiator last second; then
	h=$(json_field last handle)
	"$SPTCTL" --socket "$CTL" session stop "$h" --grace 30 >"$SPT_TMP/stop-last.out" 2>&1 &
	stopper=$!
	sleep 0.3
	spt_stop
	wait $stopper
	rc=$?
	# the daemon's shutdown asks again and the initiator logs out, before
	# the stop's grace: either the session's end or the shutdown is reported
	if { [ $rc = 0 ] && grep -q stopped "$SPT_TMP/stop-last.out"; } ||
		{ [ $rc = 3 ] && grep -q 'shutting down' "$SPT_TMP/stop-last.out"; }; then
		pass "a stop waiting while the daemon shuts down gets an answer (exit $rc: $(cat "$SPT_TMP/stop-last.out"))"
	else
		fail "a stop waiting while the daemon shuts down gets an answer (exit $rc)"
		spt_show "$SPT_TMP/stop-last.out"
	fi
	wait $INIT_PID 2>/dev/null
else
	fail "initiator 'last' logged in"
	spt_stop
fi
if [ ! -e "$CTL" ]; then
	pass "the control socket is removed when the daemon stops"
else
	fail "the control socket is removed when the daemon stops"
fi

# a second daemon on the same path while the first runs is refused; a stale
# socket left behind is replaced
ddir2=$SPT_TMP/d2
mkdir -p "$ddir2"
if spt_start --dir "$ddir2" --no-control -- --lun "$img,size=$((64 * MiB))" --control "$CTL"; then
	first=$SPT_PID
	port=$(spt_free_port)
	out=$(cd "$ddir2" && timeout -k 5 "$(spt_t 10)" "$SPTD" --listen "127.0.0.1:$port" \
		--lun "$SPT_TMP/other.img,size=1M" --control "$CTL" 2>&1 </dev/null)
	rc=$?
	if [ $rc != 0 ] && [ $rc -lt 124 ] && grep -q 'in use' <<<"$out" && kill -0 "$first" &&
		[ "$(ctl session list 2>&1)" = "no sessions" ]; then
		pass "a second daemon on the same --control path is refused; the first keeps it"
	else
		fail "a second daemon on the same --control path is refused (exit $rc: $out)"
	fi
	{ spt_kill_pid "$SPT_PID" KILL; } 2>/dev/null
	SPT_PID=
	# SIGKILL leaves the socket behind; the next daemon takes the path over
	if [ -S "$CTL" ] && spt_start --dir "$ddir2" --no-control -- --lun "$img,size=$((64 * MiB))" \
		--control "$CTL"; then
		out=$(ctl session list 2>&1)
		expect_eq "a stale socket of a killed daemon is replaced" "$out" "no sessions"
		spt_stop
	else
		fail "a stale socket of a killed daemon is replaced (socket left: $([ -S "$CTL" ] && echo yes || echo no))"
	fi
fi

# --- target list with an ACL, CHAP and two portals ---------------------------------------
ddir3=$SPT_TMP/d3
mkdir -p "$ddir3"
port2=$(spt_free_port)
CTL=$ddir3/control.sock
if spt_start --dir "$ddir3" --no-control --target iqn.2026-11.org.spt:acl -- \
	--listen "127.0.0.1:$port2" --lun "$SPT_TMP/big.img,size=1G" --control "$CTL" \
	--allow iqn.2026-11.org.spt:alice --allow iqn.2026-11.org.spt:bob \
	--chap "user:secret-of-twelve" --mutual-chap "target:other-secret-12"; then
	row=$(ctl target list 2>&1 | sed -n 2p | tr -s ' ')
	want="iqn.2026-11.org.spt:acl 1 127.0.0.1:$SPT_PORT, 127.0.0.1:$port2 1 0 iqn.2026-11.org.spt:alice, iqn.2026-11.org.spt:bob yes, mutual"
	expect_eq "target list: both portals, CHAP required (mutual offered), the ACL's initiators" "$row" "$want"
	json=$(ctl target list --json 2>&1)
	if python3 - "$json" "127.0.0.1:$SPT_PORT" "127.0.0.1:$port2" <<'EOF'; then
import json, sys
v = json.loads(sys.argv[1])
assert len(v) == 1, v
t = v[0]
assert t["name"] == "iqn.2026-11.org.spt:acl" and t["portals"] == sys.argv[2:], t
assert t["chap_required"] is True and t["mutual_chap"] is True, t
assert t["any_initiator"] is False, t
assert t["allowed_initiators"] == ["iqn.2026-11.org.spt:alice", "iqn.2026-11.org.spt:bob"], t
assert t["lun_count"] == 1 and t["session_count"] == 0, t
EOF
		pass "target list --json: portals, chap_required, mutual_chap and allowed_initiators"
	else
		fail "target list --json: portals, chap_required, mutual_chap and allowed_initiators"
		spt_show - <<<"$json"
	fi
	row=$(ctl lun list 2>&1 | sed -n 2p | tr -s ' ')
	expect_eq "lun list: a 1 GiB LUN shows as 1.0G" "$row" \
		"iqn.2026-11.org.spt:acl 0 file:$SPT_TMP/big.img online 1.0G 512 rw"
	size=$(ctl lun list --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["size_bytes"])')
	expect_eq "lun list --json: the exact size in bytes" "$size" "1073741824"
	spt_stop
fi

spt_finish
