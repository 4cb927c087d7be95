#!/bin/bash
# Authentication and authorization (issue 4): CHAP (RFC 7143 12.1.3, RFC
# 1994), mutual CHAP, CHAP for discovery sessions and the initiator ACL,
# against libiscsi's tools (iscsi-inq, iscsi-ls) and QEMU as initiators, plus
# a raw login client (Python, hashlib) for what libiscsi cannot do: SHA-1,
# SHA-256 and SHA3-256, base64 values, a reflected challenge.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
spt_init auth

HERE=$(cd "$(dirname "$0")" && pwd)
MiB=1048576

# Credentials. The initiator secret holds ':' after the first one on purpose.
CU=bob
CS='s3cret:with:colons'
TU=spt-target
TS=target-secret-77
DU=finder
DS=discovery-secret-5
OTHER=iqn.2026-11.org.spt:someone-else

img=$SPT_TMP/lun.img
spt_mkimg "$img" $((16 * MiB))

# run_tool OUTFILE CMD...: the tool's stdout and stderr in OUTFILE, its exit status returned.
run_tool() {
	local out=$1
	shift
	"$@" >"$out" 2>&1
}

# login_refused WHAT STATUS-TEXT CMD...: CMD fails and says why (libiscsi prints
# "Status: Authentication failure(513)" for 0x0201, "Authorization failure(514)" for 0x0202).
login_refused() {
	local what=$1 want=$2 out rc
	shift 2
	out=$(mktemp "$SPT_TMP/out.XXXXXX")
	run_tool "$out" "$@"
	rc=$?
	if [ $rc -ne 0 ] && grep -q "$want" "$out"; then
		pass "$what"
	else
		fail "$what (exit $rc, expected a failure saying '$want')"
		spt_show "$out" 10
	fi
}

# Raw logins through spt_iscsi.Connection: prints PASS|what or FAIL|what|detail lines.
raw_checks() {
	python3 - "$HERE" "$SPT_HOST" "$SPT_PORT" "$SPT_TARGET" "$SPT_INITIATOR" "$OTHER" \
		"$CU" "$CS" "$TU" "$TS" <<'EOF'
import base64, hashlib, os, sys
sys.path.insert(0, sys.argv[1])
from spt_iscsi import (Connection, ConnectionClosed, OP_LOGIN_REQ, OP_LOGIN_RSP, bhs,
                       decode_keys, encode_keys)

host, port, target, initiator, other, cu, cs, tu, ts = sys.argv[2:11]
port = int(port)
HASH = {5: "md5", 6: "sha1", 7: "sha256", 8: "sha3_256"}


def say(ok, what, detail=""):
    print("%s|%s|%s" % ("PASS" if ok else "FAIL", what, detail), flush=True)


def response(alg, ident, secret, challenge):
    # RFC 1994 4.1: H(Identifier || secret || Challenge)
    return hashlib.new(HASH[alg], bytes([ident]) + secret + challenge).digest()


def decode(value):
    # RFC 7143 6.1 binary-value, as the test reads it
    if value[:2] in ("0x", "0X"):
        digits = value[2:]
        return bytes.fromhex(("0" + digits) if len(digits) % 2 else digits), "hex"
    if value[:2] in ("0b", "0B"):
        return base64.b64decode(value[2:]), "base64"
    raise ValueError(value)


def encode(data, how):
    return "0x" + data.hex() if how == "hex" else "0b" + base64.b64encode(data).decode()


class Login:
    def __init__(self, name=initiator):
        self.c = Connection(host, port, 10.0)
        self.isid = b"\x80" + os.urandom(5)
        self.expstatsn = 0
        self.name = name

    def req(self, csg, nsg, transit, pairs):
        data = encode_keys(pairs)
        flags = (0x80 if transit else 0) | (csg << 2) | nsg
        hdr = bhs(OP_LOGIN_REQ, flags, 0, 0, 0, len(data), self.isid + b"\0\0", 0x42, 0, 1,
                  self.expstatsn, immediate=True)
        self.c.send_pdu(hdr, data)
        rsp = self.c.recv_pdu()
        assert rsp.opcode == OP_LOGIN_RSP, rsp
        self.expstatsn = (rsp.u32(24) + 1) & 0xFFFFFFFF
        return (rsp.hdr[36] << 8) | rsp.hdr[37], rsp.flags, decode_keys(rsp.data), rsp

    def first(self, auth="CHAP,None"):
        return self.req(0, 1, True, [("InitiatorName", self.name), ("TargetName", target),
                                     ("SessionType", "Normal"), ("AuthMethod", auth)])

    def closed(self):
        kind, _ = self.c.outcome(5.0)
        return kind == "closed"

    def challenge(self, algs):
        st, fl, k, _ = self.first()
        assert st == 0 and fl & 0x80 == 0 and k.get("AuthMethod") == "CHAP", (st, fl, k)
        st, fl, k, _ = self.req(0, 1, False, [("CHAP_A", algs)])
        assert st == 0, st
        return int(k["CHAP_A"]), int(k["CHAP_I"]), decode(k["CHAP_C"])


# Every algorithm, both encodings, mutual CHAP, then the operational stage.
for alg, how in ((5, "base64"), (6, "hex"), (7, "base64"), (8, "hex")):
    name = "CHAP_A=%d (%s) with %s values and mutual CHAP" % (alg, HASH[alg], how)
    try:
        lg = Login()
        got_alg, ident, (chal, enc) = lg.challenge("%d,5" % alg if alg != 5 else "5")
        want_len = max(16, hashlib.new(HASH[alg]).digest_size)
        if got_alg != alg or enc != "hex" or len(chal) != want_len:
            say(False, name, "CHAP_A=%d, challenge %d bytes in %s" % (got_alg, len(chal), enc))
            continue
        mine = os.urandom(24)
        st, fl, k, rsp = lg.req(0, 1, True, [
            ("CHAP_N", cu), ("CHAP_R", encode(response(alg, ident, cs.encode(), chal), how)),
            ("CHAP_I", "77"), ("CHAP_C", encode(mine, how))])
        theirs, their_enc = decode(k.get("CHAP_R", "0x"))
        ok = (st == 0 and fl & 0x80 and (fl & 3) == 1 and k.get("CHAP_N") == tu and
              their_enc == how and theirs == response(alg, 77, ts.encode(), mine))
        if ok:
            st, fl, k, rsp = lg.req(1, 3, True, [("HeaderDigest", "None"), ("DataDigest", "None"),
                                                 ("MaxRecvDataSegmentLength", "8192")])
            ok = st == 0 and fl & 0x80 and (fl & 3) == 3 and rsp.hdr[14:16] != b"\0\0"
        say(ok, name, "status 0x%04x flags 0x%02x keys %r" % (st, fl, k))
        lg.c.close()
    except Exception as e:  # noqa: BLE001 - any surprise is this check's failure
        say(False, name, repr(e))


def expect_refusal(name, fn, want_status, key=None, key_value=None):
    try:
        lg, (st, fl, k, rsp) = fn()
        ok = st == want_status and lg.closed()
        if key is not None:
            ok = ok and k.get(key) == key_value
        say(ok, name, "status 0x%04x keys %r" % (st, k))
        lg.c.close()
    except Exception as e:  # noqa: BLE001
        say(False, name, repr(e))


def reflected():
    lg = Login()
    alg, ident, (chal, _) = lg.challenge("5")
    return lg, lg.req(0, 1, True, [("CHAP_N", cu), ("CHAP_R", encode(response(alg, ident, cs.encode(), chal), "hex")),
                                   ("CHAP_I", str(ident)), ("CHAP_C", encode(chal, "hex"))])


def wrong_secret_sha256():
    lg = Login()
    alg, ident, (chal, _) = lg.challenge("7")
    return lg, lg.req(0, 1, True, [("CHAP_N", cu), ("CHAP_R", encode(response(alg, ident, b"not-the-secret", chal), "hex"))])


def no_algorithm():
    lg = Login()
    lg.first()
    return lg, lg.req(0, 1, False, [("CHAP_A", "1,2,3")])


def none_only():
    lg = Login()
    return lg, lg.first("None")


def unlisted():
    lg = Login(other)
    return lg, lg.first()


expect_refusal("a reflected challenge (our CHAP_C sent back) gets 0x0201 and no response",
               reflected, 0x0201, "CHAP_R", None)
expect_refusal("a wrong SHA-256 response gets 0x0201", wrong_secret_sha256, 0x0201)
expect_refusal("CHAP_A with no algorithm we support gets CHAP_A=Reject and 0x0201",
               no_algorithm, 0x0201, "CHAP_A", "Reject")
expect_refusal("AuthMethod=None while CHAP is required gets AuthMethod=Reject and 0x0201",
               none_only, 0x0201, "AuthMethod", "Reject")
expect_refusal("an initiator outside the ACL gets 0x0202 before any CHAP", unlisted, 0x0202,
               "AuthMethod", None)
EOF
}

# --- bad configurations stop the daemon at startup -------------------------------
startup_refused() {
	local what=$1 want=$2 out rc
	shift 2
	out=$(mktemp "$SPT_TMP/out.XXXXXX")
	timeout "$(spt_t 10)" "$SPTD" --listen 127.0.0.1:1 --lun "$img" "$@" >"$out" 2>&1
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "$want" "$out"; then
		pass "$what"
	else
		fail "$what (exit $rc, expected an error saying '$want')"
		spt_show "$out" 10
	fi
}
startup_refused "an 11-byte CHAP secret is refused at startup" "at least 12 bytes" --chap "$CU:12345678901"
startup_refused "a short mutual CHAP secret is refused at startup" "at least 12 bytes" \
	--chap "$CU:$CS" --mutual-chap "$TU:short"
startup_refused "--chap without a ':' is refused" "USER:SECRET" --chap "$CU"
startup_refused "the same secret for --chap and --mutual-chap is refused (RFC 7143 12.1.3)" "must differ" \
	--chap "$CU:$CS" --mutual-chap "$TU:$CS"
startup_refused "--mutual-chap alone is refused" "needs CHAP" --mutual-chap "$TU:$TS"
startup_refused "--allow with something that is not an iSCSI name is refused" "not an iSCSI name" \
	--allow host1

# --- CHAP, mutual CHAP, discovery CHAP and the ACL together ----------------------
if spt_start --lun "$img" --chap "$CU:$CS" --mutual-chap "$TU:$TS" \
	--discovery-chap "$DU:$DS" --allow "$SPT_INITIATOR"; then
	URL=$(spt_url 0)
	HP=$SPT_HOST:$SPT_PORT
	TGT=$SPT_TARGET
	I=(-i "$SPT_INITIATOR")

	if tr '\0' ' ' <"/proc/$SPT_PID/cmdline" | grep -qF -e "$CS" -e "$TS" -e "$DS"; then
		fail "the secrets are blanked in the daemon's command line (ps)"
	else
		pass "the secrets are blanked in the daemon's command line (ps)"
	fi

	out=$SPT_TMP/inq.out
	if run_tool "$out" env LIBISCSI_CHAP_USERNAME="$CU" LIBISCSI_CHAP_PASSWORD="$CS" \
		iscsi-inq "${I[@]}" "$URL" && grep -q '^Peripheral Device Type:DIRECT_ACCESS' "$out"; then
		pass "right credentials (secret with ':') log in and INQUIRY works"
	else
		fail "right credentials (secret with ':') log in and INQUIRY works"
		spt_show "$out" 10
	fi
	check "right credentials in the URL (iscsi://USER%SECRET@...) log in" \
		iscsi-inq "${I[@]}" "iscsi://$CU%$CS@$HP/$TGT/0"
	check "the ACL compares initiator names case-insensitively" \
		iscsi-inq -i "${SPT_INITIATOR^^}" "iscsi://$CU%$CS@$HP/$TGT/0"
	login_refused "a wrong secret is refused with 0x0201" "Authentication failure(513)" \
		iscsi-inq "${I[@]}" "iscsi://$CU%wrong-secret-123@$HP/$TGT/0"
	login_refused "a wrong user is refused with 0x0201" "Authentication failure(513)" \
		iscsi-inq "${I[@]}" "iscsi://alice%$CS@$HP/$TGT/0"
	login_refused "no credentials are refused with 0x0201" "Authentication failure(513)" \
		iscsi-inq "${I[@]}" "$URL"
	login_refused "an initiator outside the ACL is refused with 0x0202" "Authorization failure(514)" \
		iscsi-inq -i "$OTHER" "iscsi://$CU%$CS@$HP/$TGT/0"

	# Mutual CHAP: libiscsi sends CHAP_I/CHAP_C and checks our CHAP_N/CHAP_R.
	check "mutual CHAP: the initiator verifies the target's name and response" \
		env LIBISCSI_CHAP_TARGET_USERNAME="$TU" LIBISCSI_CHAP_TARGET_PASSWORD="$TS" \
		iscsi-inq "${I[@]}" "iscsi://$CU%$CS@$HP/$TGT/0"
	login_refused "mutual CHAP: an initiator expecting another target secret rejects us" \
		"Invalid CHAP_R response from the target" \
		env LIBISCSI_CHAP_TARGET_USERNAME="$TU" LIBISCSI_CHAP_TARGET_PASSWORD=other-secret-12 \
		iscsi-inq "${I[@]}" "iscsi://$CU%$CS@$HP/$TGT/0"
	login_refused "mutual CHAP: an initiator expecting another target name rejects us" \
		"Wrong CHAP targetname" \
		env LIBISCSI_CHAP_TARGET_USERNAME=someone LIBISCSI_CHAP_TARGET_PASSWORD="$TS" \
		iscsi-inq "${I[@]}" "iscsi://$CU%$CS@$HP/$TGT/0"

	# Discovery requires its own CHAP credentials here.
	out=$SPT_TMP/ls.out
	if run_tool "$out" iscsi-ls "${I[@]}" "iscsi://$DU%$DS@$HP" &&
		grep -q "Target:$TGT Portal:$HP," "$out"; then
		pass "discovery with --discovery-chap credentials lists the target"
	else
		fail "discovery with --discovery-chap credentials lists the target"
		spt_show "$out" 10
	fi
	login_refused "discovery without credentials is refused with 0x0201" "Authentication failure(513)" \
		iscsi-ls "${I[@]}" "$(spt_portal_url)"
	login_refused "discovery with the normal-session credentials is refused with 0x0201" \
		"Authentication failure(513)" iscsi-ls "${I[@]}" "iscsi://$CU%$CS@$HP"
	if run_tool "$out" iscsi-ls -i "$OTHER" "iscsi://$DU%$DS@$HP" && ! grep -q "Target:" "$out"; then
		pass "discovery by an initiator outside the ACL lists no target"
	else
		fail "discovery by an initiator outside the ACL lists no target"
		spt_show "$out" 10
	fi

	while IFS='|' read -r verdict what detail; do
		case $verdict in
		PASS) pass "raw login: $what" ;;
		FAIL) fail "raw login: $what ($detail)" ;;
		*) [ -n "$verdict" ] && fail "raw login client said: $verdict $what $detail" ;;
		esac
	done < <(raw_checks 2>&1)

	# QEMU's iSCSI driver (libiscsi inside) with user and password-secret options.
	if command -v qemu-img >/dev/null 2>&1; then
		out=$SPT_TMP/qemu.out
		qopts="driver=iscsi,transport=tcp,portal=$HP,target=$TGT,lun=0,initiator-name=$SPT_INITIATOR"
		if run_tool "$out" timeout "$(spt_t 20)" qemu-img info \
			--object "secret,id=sec0,data=$CS" \
			--image-opts "$qopts,user=$CU,password-secret=sec0" &&
			grep -q "virtual size: 16 MiB" "$out"; then
			pass "qemu-img with CHAP user and password-secret reads the LUN size"
		else
			fail "qemu-img with CHAP user and password-secret reads the LUN size"
			spt_show "$out" 10
		fi
		if run_tool "$out" timeout "$(spt_t 20)" qemu-img info \
			--object "secret,id=sec0,data=wrong-secret-123" \
			--image-opts "$qopts,user=$CU,password-secret=sec0"; then
			fail "qemu-img with a wrong CHAP secret is refused"
			spt_show "$out" 10
		else
			pass "qemu-img with a wrong CHAP secret is refused"
		fi
	else
		skip "qemu-img not installed: no QEMU CHAP check"
	fi

	if grep -q "failed with status 0x0201" "$SPT_LOG" && grep -q "failed with status 0x0202" "$SPT_LOG"; then
		pass "the daemon logs the refused logins with their status"
	else
		fail "the daemon logs the refused logins with their status"
	fi
	# (the first line is lib.sh's note of the command line, not the daemon's output)
	if grep -v '^# ' "$SPT_LOG" | grep -qF -e "$CS" -e "$TS" -e "$DS"; then
		fail "no secret appears in the daemon log"
	else
		pass "no secret appears in the daemon log"
	fi
	spt_stop
fi

# --- ACL without CHAP; discovery open by default ---------------------------------
if spt_start --lun "$img" --chap "$CU:$CS" --allow "$SPT_INITIATOR" --allow "iqn.2026-11.org.spt:second"; then
	HP=$SPT_HOST:$SPT_PORT
	out=$SPT_TMP/ls2.out
	if run_tool "$out" iscsi-ls -i "$SPT_INITIATOR" "$(spt_portal_url)" &&
		grep -q "Target:$SPT_TARGET Portal:$HP," "$out"; then
		pass "without --discovery-chap, discovery needs no credentials and lists the target"
	else
		fail "without --discovery-chap, discovery needs no credentials and lists the target"
		spt_show "$out" 10
	fi
	if run_tool "$out" iscsi-ls -i "$OTHER" "$(spt_portal_url)" && ! grep -q "Target:" "$out"; then
		pass "open discovery lists nothing to an initiator outside the ACL"
	else
		fail "open discovery lists nothing to an initiator outside the ACL"
		spt_show "$out" 10
	fi
	check "a second listed initiator gets in" \
		iscsi-inq -i iqn.2026-11.org.spt:second "iscsi://$CU%$CS@$HP/$SPT_TARGET/0"
	spt_stop
fi

if spt_start --lun "$img" --allow "$SPT_INITIATOR"; then
	HP=$SPT_HOST:$SPT_PORT
	check "ACL without CHAP: a listed initiator gets in without credentials" \
		iscsi-inq -i "$SPT_INITIATOR" "$(spt_url 0)"
	login_refused "ACL without CHAP: an unlisted initiator is refused with 0x0202" \
		"Authorization failure(514)" iscsi-inq -i "$OTHER" "$(spt_url 0)"
	# an initiator offering CHAP to a target that does not ask for it gets None
	check "credentials offered to a target without CHAP are not needed (AuthMethod=None)" \
		iscsi-inq -i "$SPT_INITIATOR" "iscsi://$CU%$CS@$HP/$SPT_TARGET/0"
	spt_stop
fi

spt_finish
