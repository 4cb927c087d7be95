#!/bin/bash
# QEMU's iSCSI initiator (qemu-img, qemu-io) against the daemon: whole-image
# copies both ways, patterns at many offsets and sizes (sub-4K and unaligned
# ones, transfers spanning several R2Ts, the last blocks, concurrent AIO,
# vectored I/O, write-zeroes, discard, flush) on a 512-byte and a
# 4096-byte-block LUN, and the data surviving a restart.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
spt_init qemu

MiB=1048576
SIZE=$((64 * MiB))
img512=$SPT_TMP/lun512.img
img4k=$SPT_TMP/lun4k.img
spt_mkimg "$img512" $SIZE
spt_mkimg "$img4k" $SIZE
head -c $SIZE /dev/urandom >"$SPT_TMP/random.img"

# qemu_io WHAT LUN CMD...: one qemu-io session (one login) running every -c
# command; any failed command or pattern mismatch fails the check.
qemu_io() {
	local what=$1 lun=$2 out rc
	shift 2
	local -a args=()
	local c
	for c in "$@"; do
		args+=(-c "$c")
	done
	out=$(qemu-io -f raw "${args[@]}" "$(spt_url "$lun")" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && ! grep -qi 'Pattern verification failed\|failed:\|error' <<<"$out"; then
		pass "$what"
	else
		fail "$what (qemu-io exit $rc)"
		spt_show - 30 <<<"$out"
	fi
}

# Offsets and lengths in bytes; "end" regions are the last bytes of the LUN.
patterns_write_and_verify() {
	local lun=$1 bs=$2
	qemu_io "LUN $lun ($bs): write/read 1 MiB at 0" "$lun" \
		"write -P 0xab 0 1M" "read -P 0xab 0 1M"
	# 512-aligned but not 4K-aligned: 7 sectors at sector 3. On a 4096-byte
	# LUN QEMU must read-modify-write the enclosing blocks.
	qemu_io "LUN $lun ($bs): unaligned multi-sector write keeps its neighbours" "$lun" \
		"write -P 0x11 1536 3584" "read -P 0x11 1536 3584" \
		"read -P 0xab 0 1536" "read -P 0xab 5120 1043456"
	qemu_io "LUN $lun ($bs): single-sector write at an odd sector" "$lun" \
		"write -P 0x12 $((3 * MiB + 512 * 9)) 512" "read -P 0x12 $((3 * MiB + 512 * 9)) 512" \
		"read -P 0 $((3 * MiB)) 4608" "read -P 0 $((3 * MiB + 512 * 10)) 512"
	qemu_io "LUN $lun ($bs): 4 MiB write and read (several R2Ts and Data-In PDUs)" "$lun" \
		"write -P 0x22 8M 4M" "read -P 0x22 8M 4M"
	qemu_io "LUN $lun ($bs): last 64 KiB of the LUN" "$lun" \
		"write -P 0x33 $((SIZE - 65536)) 64k" "read -P 0x33 $((SIZE - 65536)) 64k"
	qemu_io "LUN $lun ($bs): concurrent AIO writes then reads" "$lun" \
		"aio_write -P 0x41 16M 256k" "aio_write -P 0x42 17M 128k" \
		"aio_write -P 0x43 18M 4k" "aio_write -P 0x44 19M 1M" "aio_flush" \
		"aio_read -P 0x41 16M 256k" "aio_read -P 0x42 17M 128k" \
		"aio_read -P 0x43 18M 4k" "aio_read -P 0x44 19M 1M" "aio_flush"
	qemu_io "LUN $lun ($bs): vectored write and read" "$lun" \
		"writev -P 0x55 20M 4k 8k 512 512" "readv -P 0x55 20M 8k 4k 1k"
	qemu_io "LUN $lun ($bs): write zeroes then read zeroes" "$lun" \
		"write -P 0x66 24M 1M" "write -z 24M 1M" "read -P 0 24M 1M"
	qemu_io "LUN $lun ($bs): discard and flush succeed" "$lun" \
		"write -P 0x77 28M 1M" "discard 28M 1M" "flush"
	# "map" first: QEMU 7.2's iSCSI driver asserts (block/iscsi.c,
	# iscsi_co_block_status: offset|bytes aligned) on a read of >= 32 KiB that
	# a new session starts with on a 4096-byte LUN with LBPME=1, because
	# iscsi_co_readv asks for BDRV_REQUEST_MAX_BYTES, not a multiple of 4096.
	# "map" fills its allocation map through the aligned generic path.
	qemu_io "LUN $lun ($bs): read back the earlier patterns in a new session" "$lun" \
		"map" "read -P 0x22 8M 4M" "read -P 0x33 $((SIZE - 65536)) 64k" "read -P 0x11 1536 3584" \
		"read -P 0x44 19M 1M"
}

# Check bytes [OFF, OFF+LEN) of FILE all equal BYTE (hex).
file_has_pattern() {
	python3 - "$@" <<'EOF'
import sys
path, off, length, byte = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4], 16)
with open(path, "rb") as f:
    f.seek(off)
    data = f.read(length)
sys.exit(0 if data == bytes([byte]) * length else 1)
EOF
}

if spt_start --lun "$img512,size=$SIZE" --lun "$img4k,size=$SIZE,block_size=4096"; then
	for lun in 0 1; do
		bs=512
		[ $lun = 1 ] && bs=4096
		out=$(qemu-img info --output=json "$(spt_url $lun)" 2>&1)
		vsize=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])' \
			<<<"$out" 2>/dev/null)
		expect_eq "LUN $lun ($bs): qemu-img info virtual-size" "$vsize" "$SIZE"

		check "LUN $lun ($bs): qemu-img convert of a 64 MiB random image onto the LUN" \
			qemu-img convert -n -f raw -O raw "$SPT_TMP/random.img" "$(spt_url $lun)"
		rm -f "$SPT_TMP/back.img"
		if check "LUN $lun ($bs): qemu-img convert of the LUN back to a file" \
			qemu-img convert -f raw -O raw "$(spt_url $lun)" "$SPT_TMP/back.img"; then
			check "LUN $lun ($bs): image read back is identical" \
				cmp "$SPT_TMP/random.img" "$SPT_TMP/back.img"
		fi
		f=$img512
		[ $lun = 1 ] && f=$img4k
		check "LUN $lun ($bs): backing file holds the same bytes" cmp "$SPT_TMP/random.img" "$f"
		check "LUN $lun ($bs): qemu-img compare says identical" \
			qemu-img compare -f raw -F raw "$SPT_TMP/random.img" "$(spt_url $lun)"

		# Start the pattern tests from zeroes where they expect them.
		check "LUN $lun ($bs): zero the first 4 MiB" \
			qemu-io -f raw -c "write -P 0 0 4M" "$(spt_url $lun)"
		patterns_write_and_verify $lun $bs
	done
	spt_stop

	for pair in "$img512 512" "$img4k 4096"; do
		set -- $pair
		if file_has_pattern "$1" $((8 * MiB)) $((4 * MiB)) 22 &&
			file_has_pattern "$1" 1536 3584 11 && file_has_pattern "$1" 1024 512 ab &&
			file_has_pattern "$1" 5120 512 ab && file_has_pattern "$1" $((SIZE - 65536)) 65536 33; then
			pass "$2-byte LUN: written patterns are at the right offsets of the backing file"
		else
			fail "$2-byte LUN: written patterns are at the right offsets of the backing file"
		fi
	done

	# Acknowledged writes survive a restart of the daemon.
	if spt_start --lun "$img512,size=$SIZE" --lun "$img4k,size=$SIZE,block_size=4096"; then
		for lun in 0 1; do
			# "map" first: see the QEMU 7.2 note in patterns_write_and_verify.
			qemu_io "LUN $lun: data written before a restart reads back after it" "$lun" \
				"map" "read -P 0x22 8M 4M" "read -P 0x11 1536 3584" "read -P 0x33 $((SIZE - 65536)) 64k"
		done
		spt_stop
	fi
fi

spt_finish
