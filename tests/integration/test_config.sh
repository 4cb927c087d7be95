#!/bin/bash
# sptd --config: the shipped example file (examples/spt.conf, paths and
# portal made local) starts a daemon libiscsi can use; flags override the
# file; a broken file is refused with its line; SIGHUP adds a target and a
# LUN that initiators then reach (REPORTED LUNS DATA HAS CHANGED for the
# sessions that were there), refuses a broken file and keeps the running
# configuration, and a changed ACL stops the removed initiator's session and
# refuses its logins while other sessions stay; `sptctl config save` then a
# restart from the saved file gives the same `target list` and `lun list`.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
spt_init config

SPTCTL=$(dirname "$SPTD")/sptctl
EXAMPLE=$SPT_ROOT/examples/spt.conf
INI_A=iqn.2026-11.org.spt:config-a
INI_B=iqn.2026-11.org.spt:config-b
T0=iqn.2026-11.org.spt:target0
T1=iqn.2026-11.org.spt:added

DIR=$SPT_TMP/d
mkdir -p "$DIR"
CONF=$DIR/spt.conf
PORT=$(spt_free_port) || { fail "pick a free port"; spt_finish; }

# the example, with its paths and portal made local
sed -e "s|/run/sptd/control.sock|$DIR/control.sock|" \
	-e "s|/run/sptd/providers.sock|$DIR/providers.sock|" \
	-e "s|/var/lib/spt/lun0.img|$DIR/lun0.img|" \
	-e "s|portals = \[.*\];|portals = [ \"127.0.0.1:$PORT\" ];|" "$EXAMPLE" >"$CONF"
chmod 600 "$CONF"

start_conf() { # FILE [FLAGS...]: starts sptd with --config on $PORT; waits for it
	local file=$1 deadline
	shift
	spt_spawn "$DIR" "$DIR/sptd.log" "$SPTD" --config "$file" "$@"
	deadline=$((SECONDS + $(spt_t 20)))
	until spt_port_open 127.0.0.1 "$PORT"; do
		if ! kill -0 "$SPT_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			fail "sptd starts with --config $file"
			spt_show "$DIR/sptd.log"
			return 1
		fi
		sleep 0.1
	done
	SPT_PORT=$PORT
	SPT_LOG=$DIR/sptd.log
	return 0
}
ctl() { "$SPTCTL" --socket "$DIR/control.sock" "$@"; }
url() { echo "iscsi://127.0.0.1:$PORT/$1/$2"; }

# ---- a broken file is refused with its line, nothing starts ----
printf 'portals = [ "127.0.0.1:%s" ];\ntargets = (\n  { name = "iqn.2026-11.org.spt:x";\n    luns = ( { lun = 0; ram = "1M"; block_size = 1000; } ); }\n);\n' \
	"$PORT" >"$DIR/broken.conf"
out=$("$SPTD" --config "$DIR/broken.conf" 2>&1)
rc=$?
if [ $rc = 2 ] && grep -q "broken.conf:4:" <<<"$out"; then
	pass "a broken file is refused with exit 2 and its line (broken.conf:4)"
else
	fail "a broken file is refused with exit 2 and its line (exit $rc)"
	spt_show - <<<"$out"
fi
printf 'portalz = [ "x" ];\n' >"$DIR/typo.conf"
out=$("$SPTD" --config "$DIR/typo.conf" 2>&1)
if [ $? = 2 ] && grep -q "typo.conf:1: unknown setting 'portalz'" <<<"$out"; then
	pass "an unknown setting is refused with its name and line"
else
	fail "an unknown setting is refused with its name and line"
	spt_show - <<<"$out"
fi
out=$("$SPTD" --config "$DIR/nonexistent.conf" 2>&1)
if [ $? = 2 ] && grep -q "nonexistent.conf" <<<"$out"; then
	pass "a missing file is refused, naming it"
else
	fail "a missing file is refused, naming it"
fi

# ---- the example file ----
start_conf "$CONF" || spt_finish
DPID=$SPT_PID
check "iscsi-inq reaches LUN 0 of the example's target" iscsi-inq "$(url $T0 0)"
expect_eq "sptctl lun list: the example's one LUN" "$(ctl lun list --json | python3 -c '
import json, sys
print(" ".join("%s/%d" % (l["target"], l["lun"]) for l in json.load(sys.stdin)))')" "$T0/0"

# sessions that stay while the configuration changes: A and B on target0
iscsi-perf -i "$INI_A" -m 4 -t 120 "$(url $T0 0)" >"$DIR/perf-a.txt" 2>&1 </dev/null &
PERF_A=$!
SPT_STARTED_PIDS+=("$PERF_A")
iscsi-perf -i "$INI_B" -m 4 -t 120 "$(url $T0 0)" >"$DIR/perf-b.txt" 2>&1 </dev/null &
PERF_B=$!
SPT_STARTED_PIDS+=("$PERF_B")
handle_of() {
	ctl session list --json 2>/dev/null | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s.get("initiator") == sys.argv[1]:
        print(s["handle"]); break' "$1"
}
for _ in $(seq 50); do
	[ -n "$(handle_of "$INI_A")" ] && [ -n "$(handle_of "$INI_B")" ] && break
	sleep 0.2
done
HA=$(handle_of "$INI_A")
HB=$(handle_of "$INI_B")
[ -n "$HA" ] && [ -n "$HB" ] && pass "two initiators have sessions on target0" ||
	fail "two initiators have sessions on target0 (a='$HA' b='$HB')"

# ---- SIGHUP: a new LUN in target0 and a new target ----
python3 - "$CONF" "$DIR" <<'EOF'
import sys
path, d = sys.argv[1], sys.argv[2]
s = open(path).read()
s = s.replace('''size = "1G"; block_size = 512; }''', '''size = "1G"; block_size = 512; },
      { lun = 1; ram = "64M"; }''', 1)
s = s.replace('''targets = (''', '''targets = (
  { name = "iqn.2026-11.org.spt:added"; luns = ( { lun = 0; path = "%s/added.img"; size = "32M"; } ); },''' % d, 1)
open(path, "w").write(s)
EOF
kill -HUP "$DPID"
sleep 1
check "SIGHUP: the added target serves its LUN (iscsi-inq)" iscsi-inq "$(url $T1 0)"
check "SIGHUP: the added LUN 1 of target0 is reachable" iscsi-inq "$(url $T0 1)"
if python3 "$SPT_ROOT/tests/integration/spt_iscsi.py" inquiry 127.0.0.1 "$PORT" "$T0" 1 >/dev/null; then
	pass "a new session sees LUN 1"
else
	fail "a new session sees LUN 1"
fi
expect_eq "the sessions of A and B survived the reload" "$(handle_of "$INI_A") $(handle_of "$INI_B")" "$HA $HB"
grep -q "spt.conf: [1-9][0-9]* target/LUN" "$DIR/sptd.log" && pass "the log says what changed" ||
	{ fail "the log says what changed"; spt_show "$DIR/sptd.log" 10; }

# the raw initiator: an existing session gets REPORTED LUNS DATA HAS CHANGED once
cat >"$DIR/ua.py" <<'EOF'
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import spt_iscsi as si
s = si.Session("127.0.0.1", int(sys.argv[2]), sys.argv[3], initiator=sys.argv[4])
s.login()
print("READY", flush=True)
sys.stdin.readline()          # the test changes the configuration meanwhile
st, _, sense = s.scsi(si.CDB_TEST_UNIT_READY, lun=0)
print("FIRST %d %s" % (st, sense[:14].hex()), flush=True)
st, _, sense = s.scsi(si.CDB_TEST_UNIT_READY, lun=0)
print("SECOND %d" % st, flush=True)
s.logout()
EOF
coproc UA { python3 "$DIR/ua.py" "$SPT_ROOT/tests/integration" "$PORT" "$T1" "$INI_B" 2>&1; }
read -r -t 10 line <&"${UA[0]}"
python3 - "$CONF" "$DIR" <<'EOF'
import sys
path, d = sys.argv[1], sys.argv[2]
s = open(path).read()
s = s.replace('''size = "32M"; } ); },''', '''size = "32M"; }, { lun = 2; ram = "8M"; } ); },''', 1)
open(path, "w").write(s)
EOF
kill -HUP "$DPID"
sleep 1
echo go >&"${UA[1]}"
read -r -t 10 first <&"${UA[0]}"
read -r -t 10 second <&"${UA[0]}"
if [[ $first == "FIRST 2 "* ]] && [[ $first == *3f0e* ]] && [ "$second" = "SECOND 0" ]; then
	pass "a session present when LUN 2 came gets UNIT ATTENTION 3F/0E once, then GOOD"
else
	fail "a session present when LUN 2 came gets UNIT ATTENTION 3F/0E once ('$first' '$second')"
fi
wait "$UA_PID" 2>/dev/null

# ---- SIGHUP with a broken file changes nothing ----
cp "$CONF" "$DIR/good.conf"
before=$(ctl lun list)
echo 'bogus_setting = 3;' >>"$CONF"
kill -HUP "$DPID"
sleep 0.5
if grep -q "configuration not changed: .*spt.conf:[0-9]*: unknown setting 'bogus_setting'" "$DIR/sptd.log"; then
	pass "SIGHUP with a broken file: refused with its line"
else
	fail "SIGHUP with a broken file: refused with its line"
	spt_show "$DIR/sptd.log" 5
fi
expect_eq "... and the running configuration is unchanged" "$(ctl lun list)" "$before"
cp "$DIR/good.conf" "$CONF"

# ---- SIGHUP with a changed ACL: A is out, B stays ----
python3 - "$CONF" "$INI_B" <<'EOF'
import sys
path, b = sys.argv[1], sys.argv[2]
s = open(path).read()
s = s.replace('''# allow = [ "iqn.1993-08.org.debian:01:0123456789ab" ];''', '''allow = [ "%s" ];''' % b, 1)
open(path, "w").write(s)
EOF
kill -HUP "$DPID"
gone=0
for _ in $(seq $((10 * $(spt_t 8)))); do
	if [ -z "$(handle_of "$INI_A")" ]; then gone=1; break; fi
	sleep 0.1
done
[ $gone = 1 ] && pass "SIGHUP with A removed from the ACL: A's session is stopped" ||
	fail "SIGHUP with A removed from the ACL: A's session is stopped"
expect_eq "B's session stays" "$(handle_of "$INI_B")" "$HB"
check_fails "A can no longer log in to target0" iscsi-inq -i "$INI_A" "$(url $T0 0)"
check "B still can" iscsi-inq -i "$INI_B" "$(url $T0 0)"
spt_kill_pid "$PERF_A" TERM
spt_kill_pid "$PERF_B" TERM
SPT_PID=$DPID

# ---- live changes through sptctl ----
T2=iqn.2026-11.org.spt:live
check "sptctl target add" ctl target add "$T2"
check "sptctl lun add (a file)" ctl lun add "$T2" 0 "$DIR/live.img,size=16M"
check "sptctl lun add (ram)" ctl lun add "$T2" 4 ram:8M
check "iscsi-inq logs in to the target added at run time" iscsi-inq "$(url $T2 0)"
check_fails "a second target of the same name is refused" ctl target add "$T2"
check_fails "a LUN number in use is refused" ctl lun add "$T2" 0 ram:1M
check_fails "a relative path is refused by sptctl" ctl lun add "$T2" 9 live2.img,size=1M
# resize while an initiator is connected: CAPACITY DATA HAS CHANGED, then the new size
cat >"$DIR/resize.py" <<'EOF'
import struct, sys
sys.path.insert(0, sys.argv[1])
import spt_iscsi as si
s = si.Session("127.0.0.1", int(sys.argv[2]), sys.argv[3])
s.login()
st, data, _ = s.scsi(si.cdb_read_capacity10(), lun=0, read_len=8)
print("BEFORE %d" % ((struct.unpack(">I", data[:4])[0] + 1) * 512), flush=True)
sys.stdin.readline()
st, _, sense = s.scsi(si.CDB_TEST_UNIT_READY, lun=0)
print("UA %d %s" % (st, sense[:14].hex()), flush=True)
st, data, _ = s.scsi(si.cdb_read_capacity10(), lun=0, read_len=8)
print("AFTER %d %d" % (st, (struct.unpack(">I", data[:4])[0] + 1) * 512), flush=True)
s.logout()
EOF
coproc RS { python3 "$DIR/resize.py" "$SPT_ROOT/tests/integration" "$PORT" "$T2" 2>&1; }
read -r -t 10 before <&"${RS[0]}"
check "sptctl lun resize while an initiator is connected" ctl lun resize "$T2" 0 32M
echo go >&"${RS[1]}"
read -r -t 10 ua <&"${RS[0]}"
read -r -t 10 after <&"${RS[0]}"
expect_eq "capacity before the resize" "$before" "BEFORE 16777216"
if [[ $ua == "UA 2 "*2a09* ]]; then pass "the connected initiator gets CAPACITY DATA HAS CHANGED (2A/09)"; else
	fail "the connected initiator gets CAPACITY DATA HAS CHANGED (2A/09) ('$ua')"; fi
expect_eq "... and reads the new capacity" "$after" "AFTER 0 33554432"
wait "$RS_PID" 2>/dev/null
check_fails "shrinking a LUN is refused" ctl lun resize "$T2" 0 8M
# removal: refused in use, forced when idle
iscsi-perf -i "$INI_B" -m 1 -t 60 "$(url $T2 0)" >"$DIR/perf-live.txt" 2>&1 </dev/null &
PERF_L=$!
SPT_STARTED_PIDS+=("$PERF_L")
sleep 1
check_fails "lun remove of a target with sessions is refused" ctl lun remove "$T2" 4
check_fails "target remove of a target with sessions is refused" ctl target remove "$T2"
spt_kill_pid "$PERF_L" TERM
SPT_PID=$DPID
sleep 0.5
check "lun remove once idle" ctl lun remove "$T2" 4
expect_eq "lun list after the removal" "$(ctl lun list --json | python3 -c '
import json, sys
print(" ".join(str(l["lun"]) for l in json.load(sys.stdin) if l["target"] == sys.argv[1]))' "$T2")" "0"
check "acl add" ctl acl add "$T2" "$INI_B"
check_fails "an initiator not on the new list cannot log in" iscsi-inq -i "$INI_A" "$(url $T2 0)"
check "the listed one can" iscsi-inq -i "$INI_B" "$(url $T2 0)"
check "acl remove" ctl acl remove "$T2" "$INI_B"
check "with an empty list any initiator may log in again" iscsi-inq -i "$INI_A" "$(url $T2 0)"
PORT3=$(spt_free_port)
check "portal add" ctl portal add "127.0.0.1:$PORT3"
check "iscsi-inq through the added portal" iscsi-inq "iscsi://127.0.0.1:$PORT3/$T2/0"
check "portal remove" ctl portal remove "127.0.0.1:$PORT3"
if spt_port_open 127.0.0.1 "$PORT3"; then fail "the removed portal no longer listens"; else
	pass "the removed portal no longer listens"; fi
check "chap set discovery" ctl chap set discovery iqn.2026-11.org.spt:disc-user disc-secret-1234
check_fails "discovery without credentials is refused now" iscsi-ls "iscsi://127.0.0.1:$PORT"
check "chap set discovery none" ctl chap set discovery none
check "discovery without credentials works again" iscsi-ls "iscsi://127.0.0.1:$PORT"

# ---- config save, restart from the saved file ----
targets_before=$(ctl target list)
luns_before=$(ctl lun list)
check "sptctl config save FILE" ctl config save "$DIR/saved.conf"
mode=$(stat -c %a "$DIR/saved.conf" 2>/dev/null)
expect_eq "the saved file has mode 600 (it may hold CHAP secrets)" "$mode" 600
check "sptctl config save (to the --config file)" ctl config save
spt_stop
start_conf "$DIR/saved.conf" || spt_finish
expect_eq "after a restart from the saved file: the same target list" "$(ctl target list)" "$targets_before"
expect_eq "... and the same lun list" "$(ctl lun list)" "$luns_before"
spt_stop

# ---- flags override the file ----
PORT2=$(spt_free_port)
spt_spawn "$DIR" "$DIR/sptd2.log" "$SPTD" --config "$DIR/saved.conf" --listen "127.0.0.1:$PORT2" \
	--control "$DIR/control2.sock" --max-sessions 7
for _ in $(seq 100); do spt_port_open 127.0.0.1 "$PORT2" && break; sleep 0.1; done
if spt_port_open 127.0.0.1 "$PORT2" && ! spt_port_open 127.0.0.1 "$PORT"; then
	pass "--listen replaces the file's portals"
else
	fail "--listen replaces the file's portals"
	spt_show "$DIR/sptd2.log"
fi
"$SPTCTL" --socket "$DIR/control2.sock" config save "$DIR/saved2.conf" >/dev/null 2>&1
if grep -q "max_sessions = 7" "$DIR/saved2.conf" && grep -q "127.0.0.1:$PORT2" "$DIR/saved2.conf"; then
	pass "the running configuration holds the flags' values"
else
	fail "the running configuration holds the flags' values"
	spt_show "$DIR/saved2.conf"
fi
SPT_LOG=$DIR/sptd2.log
spt_stop
spt_finish
