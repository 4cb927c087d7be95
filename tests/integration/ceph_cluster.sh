#!/bin/bash
# shellcheck shell=bash
# A single-node Ceph cluster on 127.0.0.1 for tests: one monitor on a free
# port (msgr2 only), one bluestore OSD on a sparse file, no mgr (I/O does
# not need one), everything under one directory and stopped by PID.
#
# Sourced:
#   . tests/integration/ceph_cluster.sh
#   ceph_cluster_start DIR [POOL IMAGE SIZE]   # sets CEPH_CONF CEPH_MON_PORT CEPH_PIDS
#   ceph ... -c "$CEPH_CONF"; rbd ... -c "$CEPH_CONF"
#   ceph_cluster_stop                          # SIGTERM, then SIGKILL, the PIDs it started
# Run:
#   tests/integration/ceph_cluster.sh start DIR [POOL IMAGE SIZE]   # prints CEPH_CONF=...
#   tests/integration/ceph_cluster.sh stop DIR
#
# Facts it relies on (issue 8): each daemon has its own keyring; one OSD
# needs pool size 1, `mon allow pool size one` and chooseleaf type 0;
# bluestore creates its block file itself (sparse). Without a mgr the
# cluster never reports PG states, so readiness is "the OSD is up and in"
# and then "rbd create succeeds" (RADOS ops wait for the PGs to peer).
#
# Environment: CEPH_START_TIMEOUT (s, default 90), SPT_TIMEOUT_SCALE.

CEPH_CONF=
CEPH_MON_PORT=
CEPH_DIR=
CEPH_PIDS=()

ceph_cluster_have() {
	command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null &&
		command -v ceph >/dev/null && command -v rbd >/dev/null &&
		command -v ceph-authtool >/dev/null && command -v monmaptool >/dev/null
}

ceph_cluster_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ceph_cluster_uuid() {
	cat /proc/sys/kernel/random/uuid
}

# ceph_cluster_wait SECONDS CMD...: retries CMD until it succeeds.
ceph_cluster_wait() {
	local deadline=$((SECONDS + $1))
	shift
	while [ $SECONDS -lt $deadline ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	"$@"
}

ceph_cluster_spawn() {
	local log=$1
	shift
	"$@" >>"$log" 2>&1 &
	CEPH_PIDS+=($!)
	echo $! >>"$CEPH_DIR/pids"
}

ceph_cluster_start() {
	local dir=$1 pool=${2:-} image=${3:-} size=${4:-64M}
	local scale=${SPT_TIMEOUT_SCALE:-1} t=${CEPH_START_TIMEOUT:-90}
	local fsid osd_uuid osd_key id

	t=$((t * scale))
	ceph_cluster_have || { echo "ceph_cluster: ceph-mon, ceph-osd, ceph-common needed" >&2; return 1; }
	mkdir -p "$dir/mon" "$dir/osd.0" "$dir/run" "$dir/log" || return 1
	CEPH_DIR=$(cd "$dir" && pwd)
	: >"$CEPH_DIR/pids"
	CEPH_CONF=$CEPH_DIR/ceph.conf
	CEPH_MON_PORT=$(ceph_cluster_free_port) || return 1
	fsid=$(ceph_cluster_uuid)
	cat >"$CEPH_CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$CEPH_MON_PORT
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind msgr2 = true
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $CEPH_DIR/\$name.keyring
run dir = $CEPH_DIR/run
log file = $CEPH_DIR/log/\$name.log
pid file = $CEPH_DIR/run/\$name.pid
crash dir = $CEPH_DIR/crash
exec dir = $CEPH_DIR/run
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon data avail warn = 1
mon data avail crit = 0
[mon]
mon data = $CEPH_DIR/mon/\$name
mon cluster log file = $CEPH_DIR/log/cluster.log
[osd]
osd data = $CEPH_DIR/\$name
osd objectstore = bluestore
bluestore block path = $CEPH_DIR/\$name.block
bluestore block create = true
bluestore block size = 10737418240
bluestore fsck on mount = false
bluestore cache autotune = false
bluestore cache size = 134217728
osd memory target = 939524096
osd op num shards = 1
osd op num threads per shard = 2
osd heartbeat grace = 60
EOF
	# own keyrings: mon. for the monitor, client.admin for the tools and sptd
	ceph-authtool --create-keyring "$CEPH_DIR/mon.a.keyring" --gen-key -n mon. \
		--cap mon 'allow *' >/dev/null || return 1
	ceph-authtool --create-keyring "$CEPH_DIR/client.admin.keyring" --gen-key -n client.admin \
		--cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null || return 1
	ceph-authtool "$CEPH_DIR/mon.a.keyring" --import-keyring "$CEPH_DIR/client.admin.keyring" \
		>/dev/null || return 1
	monmaptool --create --addv a "[v2:127.0.0.1:$CEPH_MON_PORT]" --fsid "$fsid" \
		"$CEPH_DIR/monmap" >/dev/null || return 1
	ceph-mon -c "$CEPH_CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" \
		--keyring "$CEPH_DIR/mon.a.keyring" >>"$CEPH_DIR/log/mkfs.log" 2>&1 || {
		cat "$CEPH_DIR/log/mkfs.log" >&2
		return 1
	}
	ceph_cluster_spawn "$CEPH_DIR/log/mon.a.out" ceph-mon -f -c "$CEPH_CONF" -i a
	ceph_cluster_wait "$t" timeout 10 ceph -c "$CEPH_CONF" mon stat || return 1

	osd_uuid=$(ceph_cluster_uuid)
	osd_key=$(ceph-authtool --gen-print-key) || return 1
	printf '{"cephx_secret": "%s"}\n' "$osd_key" >"$CEPH_DIR/osd.0.secret.json"
	id=$(ceph -c "$CEPH_CONF" osd new "$osd_uuid" -i "$CEPH_DIR/osd.0.secret.json") || return 1
	[ "$id" = 0 ] || { echo "ceph_cluster: osd new gave id '$id'" >&2; return 1; }
	ceph-authtool --create-keyring "$CEPH_DIR/osd.0.keyring" -n osd.0 --add-key "$osd_key" \
		>/dev/null || return 1
	ceph-osd -c "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" \
		>>"$CEPH_DIR/log/mkfs.log" 2>&1 || {
		tail -20 "$CEPH_DIR/log/mkfs.log" >&2
		return 1
	}
	ceph_cluster_spawn "$CEPH_DIR/log/osd.0.out" ceph-osd -f -c "$CEPH_CONF" -i 0
	ceph_cluster_wait "$t" ceph_cluster_osd_up || return 1

	[ -n "$pool" ] || return 0
	ceph -c "$CEPH_CONF" osd pool create "$pool" 8 8 >/dev/null 2>&1 || return 1
	ceph -c "$CEPH_CONF" osd pool application enable "$pool" rbd >/dev/null 2>&1 || return 1
	[ -n "$image" ] || return 0
	# the first RADOS op waits for the pool's PGs to peer
	timeout "$t" rbd -c "$CEPH_CONF" create --size "$size" --image-feature layering \
		"$pool/$image" || return 1
}

ceph_cluster_osd_up() {
	ceph -c "$CEPH_CONF" osd dump 2>/dev/null | grep -q '^osd\.0 up *in '
}

# Stops what ceph_cluster_start started (or the PIDs in DIR/pids).
ceph_cluster_stop() {
	local dir=${1:-$CEPH_DIR} pid deadline pids=("${CEPH_PIDS[@]}")

	if [ ${#pids[@]} -eq 0 ] && [ -n "$dir" ] && [ -f "$dir/pids" ]; then
		mapfile -t pids <"$dir/pids"
	fi
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		kill -CONT "$pid" 2>/dev/null	# a test may have stopped it
	done
	deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	CEPH_PIDS=()
	[ -n "$dir" ] && rm -f "$dir/pids"
	return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	case ${1:-} in
	start)
		[ $# -ge 2 ] || { echo "usage: $0 start DIR [POOL IMAGE SIZE]" >&2; exit 2; }
		ceph_cluster_start "$2" "${3:-}" "${4:-}" "${5:-64M}" || {
			ceph_cluster_stop "$2"
			exit 1
		}
		echo "CEPH_CONF=$CEPH_CONF"
		;;
	stop)
		[ $# -ge 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
		ceph_cluster_stop "$2"
		;;
	*)
		echo "usage: $0 start DIR [POOL IMAGE SIZE] | stop DIR" >&2
		exit 2
		;;
	esac
fi
