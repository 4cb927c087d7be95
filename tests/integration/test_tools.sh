#!/bin/bash
# The daemon as an administrator meets it: libiscsi's command-line tools
# (discovery, INQUIRY and VPD pages, READ CAPACITY), several LUNs, a
# read-only LUN, IPv6, the embedded default LUN, bad command lines, signals.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
spt_init tools

HERE=$(cd "$(dirname "$0")" && pwd)
MiB=1048576
I=(-i "$SPT_INITIATOR")

# Raw VPD page $2 (hex) of LUN $1 through the test client: iscsi-inq prints
# binary designators as text, which cannot be compared byte for byte.
vpd_hex() {
	python3 "$HERE/spt_iscsi.py" inquiry "$SPT_HOST" "$SPT_PORT" "$SPT_TARGET" \
		"$(($1 + SPT_LUN_BASE))" --vpd "$2"
}

# The NAA designators (type 3) of a VPD 0x83 page given in hex, one per line.
naa_designators() {
	python3 - "$1" <<'EOF'
import sys
page = bytes.fromhex(sys.argv[1])
n = int.from_bytes(page[2:4], "big")
off, end = 4, min(len(page), 4 + n)
while off + 4 <= end:
    dlen = page[off + 3]
    if page[off + 1] & 0x0F == 3:  # SPC-4 7.8.6.1: designator type 3 is NAA
        print(page[off + 4:off + 4 + dlen].hex())
    off += 4 + dlen
EOF
}

# --- one LUN: discovery, inquiry, VPD, capacity --------------------------------
img=$SPT_TMP/lun-a.img
size=$((64 * MiB))
spt_mkimg "$img" $size
if spt_start --lun "$img,size=$size"; then
	out=$(iscsi-ls "${I[@]}" "$(spt_portal_url)" 2>&1)
	if grep -q "Target:$SPT_TARGET Portal:127.0.0.1:$SPT_PORT," <<<"$out"; then
		pass "iscsi-ls discovery lists $SPT_TARGET at 127.0.0.1:$SPT_PORT"
	else
		fail "iscsi-ls discovery lists $SPT_TARGET at 127.0.0.1:$SPT_PORT"
		spt_show - <<<"$out"
	fi

	out=$(iscsi-ls -s "${I[@]}" "$(spt_portal_url)" 2>&1)
	# iscsi-ls prints the size in whole MiB rounded down from the last LBA.
	if grep -Eq "^Lun:$SPT_LUN_BASE +Type:DIRECT_ACCESS \(Size:(63|64)M\)" <<<"$out"; then
		pass "iscsi-ls -s shows LUN 0 as a 64 MiB disk"
	else
		fail "iscsi-ls -s shows LUN 0 as a 64 MiB disk"
		spt_show - <<<"$out"
	fi

	out=$(iscsi-inq "${I[@]}" "$(spt_url 0)" 2>&1)
	if grep -q '^Peripheral Device Type:DIRECT_ACCESS' <<<"$out" &&
		grep -q '^Peripheral Qualifier:CONNECTED' <<<"$out" &&
		grep -q '^Vendor:.\+' <<<"$out" && grep -q '^Product:.\+' <<<"$out"; then
		pass "iscsi-inq standard INQUIRY: connected direct-access device with vendor and product"
	else
		fail "iscsi-inq standard INQUIRY: connected direct-access device with vendor and product"
		spt_show - <<<"$out"
	fi

	out=$(iscsi-inq "${I[@]}" -e 1 -c 0 "$(spt_url 0)" 2>&1)
	if grep -q '^Page:0x80' <<<"$out" && grep -q '^Page:0x83' <<<"$out"; then
		pass "VPD 0x00 lists pages 0x80 and 0x83"
	else
		fail "VPD 0x00 lists pages 0x80 and 0x83"
		spt_show - <<<"$out"
	fi

	out=$(iscsi-inq "${I[@]}" -e 1 -c 128 "$(spt_url 0)" 2>&1)
	if grep -Eq '^Unit Serial Number:\[ *[^] ]+' <<<"$out"; then
		pass "VPD 0x80 has a unit serial number"
	else
		fail "VPD 0x80 has a unit serial number"
		spt_show - <<<"$out"
	fi

	out=$(iscsi-inq "${I[@]}" -e 1 -c 131 "$(spt_url 0)" 2>&1)
	if grep -q '^Designator Type:(3) NAA' <<<"$out"; then
		pass "VPD 0x83 has an NAA designator (iscsi-inq)"
	else
		fail "VPD 0x83 has an NAA designator (iscsi-inq)"
		spt_show - <<<"$out"
	fi
	naa1=$(naa_designators "$(vpd_hex 0 0x83 2>/dev/null)")
	if [ -n "$naa1" ]; then
		pass "VPD 0x83 NAA designator read raw: $(echo $naa1)"
	else
		fail "VPD 0x83 NAA designator read raw"
	fi

	out=$(iscsi-readcapacity16 "${I[@]}" "$(spt_url 0)" 2>&1)
	lba=$(sed -n 's/^RETURNED LOGICAL BLOCK ADDRESS:\([0-9]*\).*/\1/p' <<<"$out")
	bl=$(sed -n 's/^LOGICAL BLOCK LENGTH IN BYTES:\([0-9]*\).*/\1/p' <<<"$out")
	if [ -n "$lba" ] && [ -n "$bl" ] && [ $(((lba + 1) * bl)) -eq $size ] && [ "$bl" = 512 ]; then
		pass "READ CAPACITY(16): $((lba + 1)) blocks of $bl bytes = --lun size"
	else
		fail "READ CAPACITY(16) matches --lun size $size with 512-byte blocks"
		spt_show - <<<"$out"
	fi
	spt_stop

	# SPC-4 7.8.6.1: the NAA name identifies the logical unit, so it must
	# not change when the daemon restarts on the same backing file.
	if spt_start --lun "$img,size=$size"; then
		naa2=$(naa_designators "$(vpd_hex 0 0x83 2>/dev/null)")
		if [ -n "$naa1" ] && [ "$naa1" = "$naa2" ]; then
			pass "VPD 0x83 NAA is the same after a restart on the same file"
		else
			fail "VPD 0x83 NAA is the same after a restart on the same file (before: $(echo $naa1), after: $(echo $naa2))"
		fi
		spt_stop
	fi
fi

# --- two LUNs, one of them read-only, 4096-byte blocks ------------------------
img_b=$SPT_TMP/lun-b.img
img_ro=$SPT_TMP/lun-ro.img
spt_mkimg "$img_b" $((32 * MiB))
head -c $MiB /dev/urandom >"$SPT_TMP/ro-content"
spt_mkimg "$img_ro" $((16 * MiB))
dd if="$SPT_TMP/ro-content" of="$img_ro" conv=notrunc status=none
sum_before=$(sha256sum <"$img_ro")
if spt_start --lun "$img,size=$size" --lun "$img_b,size=$((32 * MiB)),block_size=4096" \
	--lun "$img_ro,size=$((16 * MiB)),ro"; then
	out=$(iscsi-ls -s "${I[@]}" "$(spt_portal_url)" 2>&1)
	n=0
	for l in 0 1 2; do
		grep -Eq "^Lun:$((l + SPT_LUN_BASE)) +Type:DIRECT_ACCESS" <<<"$out" && n=$((n + 1))
	done
	if [ $n = 3 ]; then
		pass "three --lun options give LUNs 0, 1 and 2"
	else
		fail "three --lun options give LUNs 0, 1 and 2"
		spt_show - <<<"$out"
	fi

	out=$(iscsi-readcapacity16 "${I[@]}" "$(spt_url 1)" 2>&1)
	lba=$(sed -n 's/^RETURNED LOGICAL BLOCK ADDRESS:\([0-9]*\).*/\1/p' <<<"$out")
	bl=$(sed -n 's/^LOGICAL BLOCK LENGTH IN BYTES:\([0-9]*\).*/\1/p' <<<"$out")
	if [ "$bl" = 4096 ] && [ -n "$lba" ] && [ $(((lba + 1) * bl)) -eq $((32 * MiB)) ]; then
		pass "LUN 1: block_size=4096 and size reported by READ CAPACITY(16)"
	else
		fail "LUN 1: block_size=4096 and size reported by READ CAPACITY(16)"
		spt_show - <<<"$out"
	fi

	a=$(naa_designators "$(vpd_hex 0 0x83 2>/dev/null)")
	b=$(naa_designators "$(vpd_hex 1 0x83 2>/dev/null)")
	if [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ]; then
		pass "LUNs 0 and 1 have different NAA designators"
	else
		fail "LUNs 0 and 1 have different NAA designators (LUN 0: $(echo $a), LUN 1: $(echo $b))"
	fi

	check "read-only LUN: reads work" \
		qemu-io -r -f raw -c "read -P 0 $((2 * MiB)) 4k" "$(spt_url 2)"
	out=$(qemu-io -f raw -c "write -P 0x5a 0 64k" "$(spt_url 2)" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || grep -qi 'error\|fail\|denied\|read-only\|protect' <<<"$out"; then
		pass "read-only LUN: qemu-io write fails"
	else
		fail "read-only LUN: qemu-io write fails (exit $rc)"
		spt_show - <<<"$out"
	fi
	spt_stop
	if [ "$(sha256sum <"$img_ro")" = "$sum_before" ]; then
		pass "read-only LUN: backing file unchanged"
	else
		fail "read-only LUN: backing file unchanged"
	fi
fi

# --- IPv6 ------------------------------------------------------------------------
if spt_have_ipv6_loopback; then
	img6=$SPT_TMP/lun-6.img
	spt_mkimg "$img6" $((8 * MiB))
	if spt_start --host ::1 --lun "$img6,size=$((8 * MiB))"; then
		out=$(iscsi-ls -s "${I[@]}" "$(spt_portal_url)" 2>&1)
		if grep -q "Target:$SPT_TARGET" <<<"$out" && grep -q "^Lun:$SPT_LUN_BASE " <<<"$out"; then
			pass "IPv6: listening on [::1]:$SPT_PORT, discovery and LUN listing work"
		else
			fail "IPv6: listening on [::1]:$SPT_PORT, discovery and LUN listing work"
			spt_show - <<<"$out"
		fi
		check "IPv6: qemu-io write and read back over [::1]" \
			qemu-io -f raw -c "write -P 0x66 4096 64k" -c "read -P 0x66 4096 64k" "$(spt_url 0)"
		spt_stop
	fi
else
	skip "IPv6: this machine has no ::1 (cannot bind a socket to it)"
fi

# --- embedded default: no --lun --------------------------------------------------
ddir=$SPT_TMP/default
mkdir -p "$ddir"
if spt_start --dir "$ddir" --no-control; then
	if grep -q 'spt-lun0.img' "$SPT_LOG"; then
		pass "default invocation says on stderr that it uses spt-lun0.img"
	else
		fail "default invocation says on stderr that it uses spt-lun0.img"
		spt_show "$SPT_LOG"
	fi
	if [ -f "$ddir/spt-lun0.img" ]; then
		sz=$(stat -c %s "$ddir/spt-lun0.img")
		used=$(($(stat -c %b "$ddir/spt-lun0.img") * $(stat -c %B "$ddir/spt-lun0.img")))
		expect_eq "default spt-lun0.img is 1 GiB" "$sz" 1073741824
		if [ $used -le $((16 * MiB)) ]; then
			pass "default spt-lun0.img is sparse ($used bytes allocated)"
		else
			fail "default spt-lun0.img is sparse ($used bytes allocated)"
		fi
	else
		fail "default invocation creates spt-lun0.img in its working directory"
	fi
	out=$(iscsi-readcapacity16 "${I[@]}" "$(spt_url 0)" 2>&1)
	if grep -q '^Total size:1073741824$' <<<"$out"; then
		pass "default target $SPT_TARGET_DEFAULT LUN 0 is 1 GiB"
	else
		fail "default target $SPT_TARGET_DEFAULT LUN 0 is 1 GiB"
		spt_show - <<<"$out"
	fi
	# SIGINT is a clean shutdown too.
	spt_stop INT
fi

# --- bad command lines -----------------------------------------------------------
# Each must exit non-zero at once with a message on stderr naming the problem.
# A free port is given so that a daemon that wrongly starts never meets 3260.
bad_cmdline() {
	local what=$1 word=$2 port rc err
	shift 2
	port=$(spt_free_port)
	err=$SPT_TMP/bad.err
	(cd "$SPT_TMP" && timeout -k 5 "$(spt_t 10)" "$SPTD" --listen "127.0.0.1:$port" "$@" \
		</dev/null >/dev/null 2>"$err")
	rc=$?
	if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then
		fail "bad command line ($what) exits non-zero at once (status $rc)"
		spt_show "$err"
		return
	fi
	if spt_log_has_sanitizer_report "$err"; then
		fail "bad command line ($what): no sanitizer report"
		spt_show "$err"
	elif grep -qi -- "$word" "$err"; then
		pass "bad command line ($what) exits $rc with: $(grep -i -m 1 -- "$word" "$err")"
	else
		fail "bad command line ($what) exits $rc with a message naming '$word'"
		spt_show "$err"
	fi
}
bad_cmdline "--lun with size=banana" 'size' --lun "$SPT_TMP/bad.img,size=banana"
bad_cmdline "unknown flag --frobnicate" 'frobnicate' --frobnicate
bad_cmdline "block_size=1000" 'block_size\|1000' --lun "$SPT_TMP/bad.img,size=1048576,block_size=1000"
bad_cmdline "--lun without a path" 'lun' --lun
bad_cmdline "--listen with port 99999" 'listen\|port\|99999' --listen 127.0.0.1:99999
rm -f "$SPT_TMP/bad.img"

spt_finish
