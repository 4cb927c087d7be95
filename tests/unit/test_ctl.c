/*
 * Unit tests for the control plane: the frame codec of src/ctl/frame.c
 * (byte layout, every check of a header and payload where it arrives,
 * resumable parsing), and the control server of src/ctl/ctl.c with the
 * session, target and LUN administration of src/iscsi/admin.c, run on a
 * real event loop in a second thread and driven through its Unix socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "ctl/frame.h"
#include "iscsi/admin.h"
#include "iscsi/server.h"
#include "util/log.h"

/* ------------------------------------------------------------------ */
/* codec                                                              */
/* ------------------------------------------------------------------ */

static void header_bytes(uint8_t out[CTL_HEADER_LEN], uint32_t code, uint32_t rc, uint32_t timeout,
			 uint32_t len)
{
	struct spt_io_header h;

	ctl_header_init(&h, code, rc, timeout, len);
	ctl_header_encode(out, &h);
}

static void test_header_layout_is_little_endian(void **state)
{
	uint8_t b[CTL_HEADER_LEN];
	static const uint8_t want[CTL_HEADER_LEN] = {
		28, 0, 0, 0,				/* HeaderLength */
		'S', 'P', 'T', 'P', 'T', '0', '0', '1',	/* Signature */
		0x04, 0x03, 0x02, 0x01,			/* Timeout */
		0x01, 0x01, 0x00, 0x00,			/* ControlCode 0x101 */
		0x05, 0x00, 0x00, 0x00,			/* ReturnCode */
		0x10, 0x00, 0x00, 0x00,			/* Length */
	};

	header_bytes(b, SPT_CC_SESSION_END, 5, 0x01020304, 16);
	assert_memory_equal(b, want, sizeof(want));
}

static void test_header_decode_round_trip(void **state)
{
	uint8_t b[CTL_HEADER_LEN];
	struct spt_io_header h;

	header_bytes(b, SPT_CC_SESSION_LIST, 0, 7, 65536);
	ctl_header_decode(b, &h);
	assert_int_equal(h.header_length, 28);
	assert_memory_equal(h.signature, SPT_SIGNATURE, 8);
	assert_int_equal(h.timeout, 7);
	assert_int_equal(h.control_code, SPT_CC_SESSION_LIST);
	assert_int_equal(h.return_code, 0);
	assert_int_equal(h.length, 65536);
}

static void test_header_check(void **state)
{
	struct spt_io_header h;
	char why[CTL_WHY_MAX];

	ctl_header_init(&h, SPT_CC_SESSION_LIST, 0, 0, SPT_CTL_REQUEST_MAX);
	assert_int_equal(ctl_header_check(&h, SPT_CTL_REQUEST_MAX, why, sizeof(why)), 0);
	h.length = SPT_CTL_REQUEST_MAX + 1;
	assert_int_equal(ctl_header_check(&h, SPT_CTL_REQUEST_MAX, why, sizeof(why)),
			 SPT_CTL_RC_BAD_FRAME);
	assert_non_null(strstr(why, "Length"));
	h.length = 0;
	h.header_length = 27;
	assert_int_equal(ctl_header_check(&h, SPT_CTL_REQUEST_MAX, why, sizeof(why)),
			 SPT_CTL_RC_BAD_FRAME);
	assert_non_null(strstr(why, "HeaderLength"));
	h.header_length = 29;
	assert_int_equal(ctl_header_check(&h, SPT_CTL_REQUEST_MAX, why, sizeof(why)),
			 SPT_CTL_RC_BAD_FRAME);
	h.header_length = 28;
	h.signature[7] = '2';	/* another version of the interface */
	assert_int_equal(ctl_header_check(&h, SPT_CTL_REQUEST_MAX, why, sizeof(why)),
			 SPT_CTL_RC_BAD_FRAME);
	assert_non_null(strstr(why, "signature"));
}

static void test_rx_byte_by_byte(void **state)
{
	uint8_t f[CTL_HEADER_LEN + 16];
	struct ctl_rx rx;

	header_bytes(f, SPT_CC_SESSION_END, 0, 3, 16);
	for (int i = 0; i < 16; i++)
		f[CTL_HEADER_LEN + i] = (uint8_t)(0xa0 + i);
	ctl_rx_init(&rx, SPT_CTL_REQUEST_MAX);
	for (size_t i = 0; i < sizeof(f); i++) {
		size_t used;
		enum ctl_rx_status st = ctl_rx_feed(&rx, f + i, 1, &used);

		assert_int_equal(used, 1);
		assert_int_equal(st, i + 1 == sizeof(f) ? CTL_RX_FRAME : CTL_RX_MORE);
	}
	assert_int_equal(rx.h.control_code, SPT_CC_SESSION_END);
	assert_int_equal(rx.h.timeout, 3);
	assert_int_equal(rx.h.length, 16);
	assert_memory_equal(rx.payload, f + CTL_HEADER_LEN, 16);
	ctl_rx_reset(&rx);
	assert_null(rx.payload);
	assert_int_equal(rx.hdr_have, 0);
}

static void test_rx_two_frames_in_one_buffer(void **state)
{
	uint8_t f[2 * CTL_HEADER_LEN + 8];
	struct ctl_rx rx;
	size_t used;

	header_bytes(f, SPT_CC_SESSION_END, 0, 0, 8);
	memset(f + CTL_HEADER_LEN, 0x11, 8);
	header_bytes(f + CTL_HEADER_LEN + 8, SPT_CC_SESSION_LIST, 0, 0, 0);
	ctl_rx_init(&rx, SPT_CTL_REQUEST_MAX);
	assert_int_equal(ctl_rx_feed(&rx, f, sizeof(f), &used), CTL_RX_FRAME);
	assert_int_equal(used, CTL_HEADER_LEN + 8);	/* not a byte of the next frame */
	assert_int_equal(rx.h.control_code, SPT_CC_SESSION_END);
	ctl_rx_reset(&rx);
	assert_int_equal(ctl_rx_feed(&rx, f + used, sizeof(f) - used, &used), CTL_RX_FRAME);
	assert_int_equal(used, CTL_HEADER_LEN);
	assert_int_equal(rx.h.control_code, SPT_CC_SESSION_LIST);
	assert_int_equal(rx.h.length, 0);
	assert_null(rx.payload);
	ctl_rx_reset(&rx);
}

static void test_rx_rejects_before_the_payload(void **state)
{
	uint8_t f[CTL_HEADER_LEN];
	struct ctl_rx rx;
	size_t used;

	/* a Length of 4 GiB - 1 is refused from the header alone: nothing
	 * allocated, nothing waited for */
	header_bytes(f, SPT_CC_SESSION_LIST, 0, 0, 0xffffffffu);
	ctl_rx_init(&rx, SPT_CTL_REQUEST_MAX);
	assert_int_equal(ctl_rx_feed(&rx, f, sizeof(f), &used), CTL_RX_BAD);
	assert_null(rx.payload);
	assert_non_null(strstr(rx.why, "Length"));
	ctl_rx_reset(&rx);

	memset(f, 'A', sizeof(f));	/* garbage */
	assert_int_equal(ctl_rx_feed(&rx, f, sizeof(f), &used), CTL_RX_BAD);
	assert_non_null(strstr(rx.why, "signature"));
	ctl_rx_reset(&rx);
}

static void test_session_list_request_decode(void **state)
{
	struct spt_ctl_session_list_request in = { .after_handle = 0x0102030405060708ull,
						   .max_entries = 9 }, out;
	uint8_t b[sizeof(in)];
	char why[CTL_WHY_MAX];

	assert_int_equal(ctl_session_list_request_decode(NULL, 0, &out, why, sizeof(why)), 0);
	assert_int_equal(out.after_handle, 0);
	assert_int_equal(out.max_entries, 0);
	ctl_session_list_request_encode(b, &in);
	assert_int_equal(b[0], 0x08);	/* little-endian */
	assert_int_equal(b[7], 0x01);
	assert_int_equal(b[8], 9);
	assert_int_equal(ctl_session_list_request_decode(b, sizeof(b), &out, why, sizeof(why)), 0);
	assert_int_equal(out.after_handle, in.after_handle);
	assert_int_equal(out.max_entries, 9);
	assert_int_equal(ctl_session_list_request_decode(b, 8, &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	b[12] = 1;	/* reserved */
	assert_int_equal(ctl_session_list_request_decode(b, sizeof(b), &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
}

static void test_session_stop_decode(void **state)
{
	struct spt_ctl_session_stop in = { .itnexus_handle = 0xfeedfacecafebeefull, .grace_seconds = 5 };
	struct spt_ctl_session_stop out;
	uint8_t b[sizeof(in)];
	char why[CTL_WHY_MAX];
	bool grace;

	ctl_session_stop_encode(b, &in);
	/* the plain SESSION_END payload: the first 8 bytes */
	assert_int_equal(ctl_session_stop_decode(b, sizeof(struct spt_session_end), &out, &grace, why,
						 sizeof(why)), 0);
	assert_false(grace);
	assert_int_equal(out.itnexus_handle, in.itnexus_handle);
	assert_int_equal(ctl_session_stop_decode(b, sizeof(b), &out, &grace, why, sizeof(why)), 0);
	assert_true(grace);
	assert_int_equal(out.grace_seconds, 5);
	assert_int_equal(ctl_session_stop_decode(b, 12, &out, &grace, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	assert_int_equal(ctl_session_stop_decode(b, 0, &out, &grace, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	in.grace_seconds = SPT_CTL_GRACE_MAX + 1;
	ctl_session_stop_encode(b, &in);
	assert_int_equal(ctl_session_stop_decode(b, sizeof(b), &out, &grace, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	assert_non_null(strstr(why, "grace"));
	in.grace_seconds = 1;
	in.reserved = 7;
	ctl_session_stop_encode(b, &in);
	assert_int_equal(ctl_session_stop_decode(b, sizeof(b), &out, &grace, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
}

static void test_session_entry_round_trip(void **state)
{
	struct spt_ctl_session in, out;
	uint8_t b[sizeof(in)];

	memset(&in, 0, sizeof(in));
	in.itnexus_handle = 0x1122334455667788ull;
	memcpy(in.isid, "\x80\x01\x02\x03\x04\x05", 6);
	in.tsih = 0x0102;
	in.tpgt = 1;
	in.session_type = SPT_CTL_SESSION_NORMAL;
	in.state = SPT_CTL_SESSION_STOPPING;
	in.commands_in_flight = 3;
	in.connection_count = 1;
	strcpy(in.initiator_name, "iqn.2026-11.org.spt:i");
	strcpy(in.target_name, "iqn.2026-11.org.spt:t");
	strcpy(in.chap_user_name, "alice");
	in.conns[0].cid = 0x0203;
	strcpy(in.conns[0].peer_address, "127.0.0.1:5000");
	in.bytes_read = 0x0000000100000002ull;
	in.bytes_written = 0x0a0b0c0d0e0f1011ull;
	ctl_session_encode(b, &in);
	assert_int_equal(b[0], 0x88);
	assert_int_equal(b[7], 0x11);
	assert_int_equal(b[14], 0x02);	/* TSIH, little-endian at 14 */
	assert_int_equal(b[15], 0x01);
	assert_int_equal(b[20], 3);
	assert_string_equal((const char *)b + 32, "iqn.2026-11.org.spt:i");
	assert_int_equal(b[736], 0x03);	/* first connection's CID */
	/* the byte counters, appended after the connections, little-endian */
	assert_int_equal(b[1312], 0x02);
	assert_int_equal(b[1316], 0x01);
	assert_int_equal(b[1320], 0x11);
	assert_int_equal(b[1327], 0x0a);
	ctl_session_decode(b, sizeof(b), &out);
	assert_memory_equal(&in, &out, sizeof(in));
	/* an entry of the first version (no counters) reads them as 0 */
	ctl_session_decode(b, CTL_SESSION_V1_LEN, &out);
	assert_int_equal(out.bytes_read, 0);
	assert_int_equal(out.bytes_written, 0);
	assert_int_equal(out.conns[0].cid, 0x0203);
	assert_false(CTL_SESSION_HAS_BYTES(CTL_SESSION_V1_LEN));
	assert_false(CTL_SESSION_HAS_BYTES(CTL_SESSION_V1_LEN + 8));
	assert_true(CTL_SESSION_HAS_BYTES(sizeof(struct spt_ctl_session)));
}

static void test_session_entry_decode_is_bounded(void **state)
{
	uint8_t b[sizeof(struct spt_ctl_session) + 100];
	struct spt_ctl_session out;

	/* a longer entry (a later version) is read up to what we know, and
	 * strings without a NUL end within their field */
	memset(b, 'x', sizeof(b));
	ctl_session_decode(b, sizeof(b), &out);
	assert_int_equal(strlen(out.initiator_name), SPT_CTL_NAME_MAX - 1);
	assert_int_equal(strlen(out.target_name), SPT_CTL_NAME_MAX - 1);
	assert_int_equal(strlen(out.chap_user_name), SPT_CHAP_USER_MAX - 1);
	for (int i = 0; i < SPT_CTL_CONNS_MAX; i++)
		assert_int_equal(strlen(out.conns[i].peer_address), SPT_PEER_ADDRESS_MAX - 1);
	/* a shorter one reads as zeros beyond its end */
	ctl_session_decode(b, 8, &out);
	assert_int_equal(out.tsih, 0);
	assert_string_equal(out.initiator_name, "");
}

static void test_session_list_decode(void **state)
{
	uint8_t b[sizeof(struct spt_ctl_session_list) + 2 * sizeof(struct spt_ctl_session)];
	struct spt_ctl_session_list l = { .count = 2, .entry_length = sizeof(struct spt_ctl_session),
					  .total = 5, .more = 1 }, out;
	char why[CTL_WHY_MAX];

	memset(b, 0, sizeof(b));
	ctl_session_list_encode(b, &l);
	assert_int_equal(ctl_session_list_decode(b, sizeof(b), &out, why, sizeof(why)), 0);
	assert_int_equal(out.count, 2);
	assert_int_equal(out.total, 5);
	assert_int_equal(out.more, 1);
	/* count and payload disagree */
	assert_int_equal(ctl_session_list_decode(b, sizeof(b) - 1, &out, why, sizeof(why)), -1);
	assert_int_equal(ctl_session_list_decode(b, 15, &out, why, sizeof(why)), -1);
	/* entries shorter than the first version's */
	l.entry_length = 100;
	ctl_session_list_encode(b, &l);
	assert_int_equal(ctl_session_list_decode(b, 16 + 200, &out, why, sizeof(why)), -1);
	/* entries of the first version, without the byte counters, are read */
	l.entry_length = CTL_SESSION_V1_LEN;
	ctl_session_list_encode(b, &l);
	assert_int_equal(ctl_session_list_decode(b, 16 + 2 * CTL_SESSION_V1_LEN, &out, why,
						 sizeof(why)), 0);
	assert_int_equal(out.entry_length, CTL_SESSION_V1_LEN);
	l.entry_length = CTL_SESSION_V1_LEN - 1;
	ctl_session_list_encode(b, &l);
	assert_int_equal(ctl_session_list_decode(b, 16 + 2 * (CTL_SESSION_V1_LEN - 1), &out, why,
						 sizeof(why)), -1);
	l.entry_length = sizeof(struct spt_ctl_session);
	/* a count whose product with entry_length overflows 32 bits */
	l.count = 0x00400000;
	l.entry_length = 0x1000;
	ctl_session_list_encode(b, &l);
	assert_int_equal(ctl_session_list_decode(b, 16, &out, why, sizeof(why)), -1);
}

static void test_message_decode(void **state)
{
	char out[SPT_CTL_MESSAGE_MAX];
	uint8_t unterminated[SPT_CTL_MESSAGE_MAX + 50];

	ctl_message_decode((const uint8_t *)"no such\tsession\0tail", 20, out, sizeof(out));
	assert_string_equal(out, "no such?session");
	ctl_message_decode(NULL, 0, out, sizeof(out));
	assert_string_equal(out, "");
	memset(unterminated, 'm', sizeof(unterminated));
	ctl_message_decode(unterminated, sizeof(unterminated), out, sizeof(out));
	assert_int_equal(strlen(out), SPT_CTL_MESSAGE_MAX - 1);
	assert_string_equal(ctl_return_code_name(SPT_CTL_RC_NO_SUCH_SESSION), "no such session");
	assert_string_equal(ctl_return_code_name(999), "unknown error");
}

static void test_target_list_request_decode(void **state)
{
	struct spt_ctl_target_list_request in, out;
	uint8_t b[sizeof(in)];
	char why[CTL_WHY_MAX];

	memset(&in, 0, sizeof(in));
	strcpy(in.after_name, "iqn.2026-11.org.spt:a");
	in.max_entries = 0x0102;
	assert_int_equal(ctl_target_list_request_decode(NULL, 0, &out, why, sizeof(why)), 0);
	assert_string_equal(out.after_name, "");
	assert_int_equal(out.max_entries, 0);
	ctl_target_list_request_encode(b, &in);
	assert_string_equal((const char *)b, "iqn.2026-11.org.spt:a");
	assert_int_equal(b[224], 0x02);	/* little-endian */
	assert_int_equal(b[225], 0x01);
	assert_int_equal(ctl_target_list_request_decode(b, sizeof(b), &out, why, sizeof(why)), 0);
	assert_string_equal(out.after_name, in.after_name);
	assert_int_equal(out.max_entries, 0x0102);
	/* neither 0 nor the struct's size */
	assert_int_equal(ctl_target_list_request_decode(b, sizeof(b) - 1, &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	assert_non_null(strstr(why, "TARGET_LIST payload of 231 bytes"));
	assert_int_equal(ctl_target_list_request_decode(b, 16, &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	/* a cursor that never ends within its field */
	memset(b, 'x', SPT_CTL_NAME_MAX);
	assert_int_equal(ctl_target_list_request_decode(b, sizeof(b), &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	assert_non_null(strstr(why, "NUL"));
	/* reserved */
	in.reserved = 1;
	ctl_target_list_request_encode(b, &in);
	assert_int_equal(ctl_target_list_request_decode(b, sizeof(b), &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	assert_non_null(strstr(why, "reserved"));
}

static void test_lun_list_request_decode(void **state)
{
	struct spt_ctl_lun_list_request in, out;
	uint8_t b[sizeof(in)];
	char why[CTL_WHY_MAX];

	memset(&in, 0, sizeof(in));
	strcpy(in.after_target, "iqn.2026-11.org.spt:t");
	in.after_lun = 0x0807060504030201ull;
	in.max_entries = 7;
	assert_int_equal(ctl_lun_list_request_decode(NULL, 0, &out, why, sizeof(why)), 0);
	assert_string_equal(out.after_target, "");
	ctl_lun_list_request_encode(b, &in);
	assert_int_equal(b[224], 0x01);	/* after_lun, little-endian */
	assert_int_equal(b[231], 0x08);
	assert_int_equal(b[232], 7);
	assert_int_equal(ctl_lun_list_request_decode(b, sizeof(b), &out, why, sizeof(why)), 0);
	assert_memory_equal(&in, &out, sizeof(in));
	assert_int_equal(ctl_lun_list_request_decode(b, sizeof(b) + 1, &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	assert_int_equal(ctl_lun_list_request_decode(b, 8, &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	memset(b, 'y', SPT_CTL_NAME_MAX);
	assert_int_equal(ctl_lun_list_request_decode(b, sizeof(b), &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	in.reserved = 0x100;
	ctl_lun_list_request_encode(b, &in);
	assert_int_equal(ctl_lun_list_request_decode(b, sizeof(b), &out, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
}

/* A TARGET_LIST payload with parts of the given lengths (longer than
 * ours: a later version's): target 0 with 2 portals and no ACL, target 1
 * with 1 portal and 3 ACL names. Returns its length. */
static size_t build_target_page(uint8_t *b, uint32_t tlen, uint32_t plen, uint32_t ilen)
{
	struct spt_ctl_target_list l = { .count = 2, .target_entry_length = tlen,
					 .portal_entry_length = plen,
					 .initiator_entry_length = ilen, .total = 2 };
	static const char *const portals[2] = { "127.0.0.1:3260", "[::1]:3260" };
	size_t off = sizeof(l);

	ctl_target_list_encode(b, &l);
	for (int t = 0; t < 2; t++) {
		struct spt_ctl_target e;

		memset(&e, 0, sizeof(e));
		snprintf(e.name, sizeof(e.name), "iqn.2026-11.org.spt:t%d", t);
		e.tpgt = (uint16_t)(0x0101 + t);
		e.flags = t ? SPT_CTL_TARGET_CHAP : 0;
		e.lun_count = (uint32_t)(3 + t);
		e.session_count = (uint32_t)(10 + t);
		e.portal_count = t ? 1 : 2;
		e.initiator_count = t ? 3 : 0;
		memset(b + off, 0xee, tlen);	/* a later version's fields */
		ctl_target_encode(b + off, &e);
		off += tlen;
		for (uint32_t k = 0; k < e.portal_count; k++) {
			memset(b + off, 0xee, plen);
			ctl_string_encode(b + off, SPT_CTL_PORTAL_MAX, portals[k]);
			off += plen;
		}
		for (uint32_t k = 0; k < e.initiator_count; k++) {
			char name[64];

			snprintf(name, sizeof(name), "iqn.2026-11.org.spt:i%u", k);
			memset(b + off, 0xee, ilen);
			ctl_string_encode(b + off, SPT_CTL_NAME_MAX, name);
			off += ilen;
		}
	}
	return off;
}

/* Walks a page as sptctl does: every record checked against what is left. */
static void check_target_page(const uint8_t *b, size_t len)
{
	struct spt_ctl_target_list l;
	struct spt_ctl_target e;
	char why[CTL_WHY_MAX], text[SPT_CTL_NAME_MAX];
	size_t off = sizeof(l), rl;

	assert_int_equal(ctl_target_list_decode(b, (uint32_t)len, &l, why, sizeof(why)), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.total, 2);
	/* target 0 */
	assert_int_equal(ctl_target_decode(b + off, len - off, &l, &e, &rl, why, sizeof(why)), 0);
	assert_string_equal(e.name, "iqn.2026-11.org.spt:t0");
	assert_int_equal(e.tpgt, 0x0101);
	assert_int_equal(e.flags, 0);
	assert_int_equal(e.lun_count, 3);
	assert_int_equal(e.session_count, 10);
	assert_int_equal(e.portal_count, 2);
	assert_int_equal(e.initiator_count, 0);
	assert_int_equal(rl, l.target_entry_length + 2 * l.portal_entry_length);
	ctl_string_decode(ctl_target_portal_at(b + off, &l, 1), l.portal_entry_length,
			  SPT_CTL_PORTAL_MAX, text);
	assert_string_equal(text, "[::1]:3260");
	off += rl;
	/* target 1 */
	assert_int_equal(ctl_target_decode(b + off, len - off, &l, &e, &rl, why, sizeof(why)), 0);
	assert_string_equal(e.name, "iqn.2026-11.org.spt:t1");
	assert_int_equal(e.flags, SPT_CTL_TARGET_CHAP);
	assert_int_equal(e.portal_count, 1);
	assert_int_equal(e.initiator_count, 3);
	ctl_string_decode(ctl_target_portal_at(b + off, &l, 0), l.portal_entry_length,
			  SPT_CTL_PORTAL_MAX, text);
	assert_string_equal(text, "127.0.0.1:3260");
	ctl_string_decode(ctl_target_initiator_at(b + off, &l, &e, 2), l.initiator_entry_length,
			  SPT_CTL_NAME_MAX, text);
	assert_string_equal(text, "iqn.2026-11.org.spt:i2");
	off += rl;
	assert_int_equal(off, len);
}

static void test_target_page_round_trip(void **state)
{
	uint8_t *b = calloc(1, 8192);

	assert_non_null(b);
	/* this version's lengths, with the layout pinned */
	size_t len = build_target_page(b, sizeof(struct spt_ctl_target), sizeof(struct spt_ctl_portal),
				       sizeof(struct spt_ctl_initiator));

	assert_int_equal(len, 24 + 2 * 248 + 3 * 80 + 3 * 224);
	assert_int_equal(b[0], 2);	/* count */
	assert_int_equal(b[4], 248);	/* target entry length */
	assert_int_equal(b[8], 80);
	assert_int_equal(b[12], 224);
	assert_string_equal((const char *)b + 24, "iqn.2026-11.org.spt:t0");
	assert_int_equal(b[24 + 224], 0x01);	/* TPGT, little-endian */
	assert_int_equal(b[24 + 225], 0x01);
	assert_int_equal(b[24 + 236], 2);	/* portal_count */
	assert_string_equal((const char *)b + 24 + 248 + 80, "[::1]:3260");
	check_target_page(b, len);
	/* a later version's longer parts: the reader steps by the lengths given */
	len = build_target_page(b, 300, 100, 256);
	check_target_page(b, len);
	free(b);
}

static void test_target_page_is_checked(void **state)
{
	uint8_t *b = calloc(1, 8192);
	struct spt_ctl_target_list l;
	struct spt_ctl_target e;
	char why[CTL_WHY_MAX], text[SPT_CTL_PORTAL_MAX];
	size_t len, rl;

	assert_non_null(b);
	len = build_target_page(b, sizeof(struct spt_ctl_target), sizeof(struct spt_ctl_portal),
				sizeof(struct spt_ctl_initiator));
	/* shorter than its header */
	assert_int_equal(ctl_target_list_decode(b, 23, &l, why, sizeof(why)), -1);
	/* parts shorter than the first version's */
	for (int field = 1; field <= 3; field++) {
		uint8_t c[24];

		memcpy(c, b, sizeof(c));
		c[field * 4] = (uint8_t)(c[field * 4] - 1);
		assert_int_equal(ctl_target_list_decode(c, (uint32_t)len, &l, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "length"));
	}
	/* a part longer than a response */
	{
		struct spt_ctl_target_list big = { .count = 0, .target_entry_length = 248,
						   .portal_entry_length = SPT_CTL_RESPONSE_MAX + 1,
						   .initiator_entry_length = 224 };
		uint8_t c[24];

		ctl_target_list_encode(c, &big);
		assert_int_equal(ctl_target_list_decode(c, sizeof(c), &l, why, sizeof(why)), -1);
	}
	/* a count the payload cannot hold, also one whose product overflows 32 bits */
	{
		struct spt_ctl_target_list bad = { .count = 3, .target_entry_length = 248,
						   .portal_entry_length = 80,
						   .initiator_entry_length = 224 };
		uint8_t c[24 + 2 * 248];

		memset(c, 0, sizeof(c));
		ctl_target_list_encode(c, &bad);
		assert_int_equal(ctl_target_list_decode(c, sizeof(c), &l, why, sizeof(why)), -1);
		bad.count = 0x01000000;
		bad.target_entry_length = 0x100;
		ctl_target_list_encode(c, &bad);
		assert_int_equal(ctl_target_list_decode(c, sizeof(c), &l, why, sizeof(why)), -1);
	}
	/* records that claim more parts than the bytes left */
	assert_int_equal(ctl_target_list_decode(b, (uint32_t)len, &l, why, sizeof(why)), 0);
	assert_int_equal(ctl_target_decode(b + 24, len - 24 - 248 - 3 * 224 - 1, &l, &e, &rl, why,
					   sizeof(why)), 0);	/* target 0 alone still fits */
	assert_int_equal(ctl_target_decode(b + 24, 247, &l, &e, &rl, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "cut short"));
	assert_int_equal(ctl_target_decode(b + 24, 248 + 80, &l, &e, &rl, why, sizeof(why)), -1);
	b[24 + 240] = 0xff;	/* initiator_count 0xffffffff */
	b[24 + 241] = 0xff;
	b[24 + 242] = 0xff;
	b[24 + 243] = 0xff;
	assert_int_equal(ctl_target_decode(b + 24, len - 24, &l, &e, &rl, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "initiators needs"));
	/* strings without a NUL end within their field, also in a longer part */
	memset(b, 'z', 300);
	ctl_string_decode(b, 300, sizeof(text), text);
	assert_int_equal(strlen(text), SPT_CTL_PORTAL_MAX - 1);
	ctl_string_decode(b, 10, sizeof(text), text);
	assert_int_equal(strlen(text), 10);
	{
		struct spt_ctl_target_list ll = { .target_entry_length = 300 };

		ctl_target_decode(b, 300, &ll, &e, &rl, why, sizeof(why));
		assert_int_equal(strlen(e.name), SPT_CTL_NAME_MAX - 1);
	}
	/* an over-long string is cut, still terminated */
	ctl_string_encode(b, 8, "0123456789");
	assert_string_equal((const char *)b, "0123456");
	free(b);
}

static void test_lun_entry_round_trip(void **state)
{
	struct spt_ctl_lun in, out;
	uint8_t b[sizeof(in) + 64];

	memset(&in, 0, sizeof(in));
	strcpy(in.target_name, "iqn.2026-11.org.spt:t");
	in.lun = 0x0102;
	in.size_bytes = 1ull << 30;
	in.block_size = 4096;
	in.read_only = 1;
	strcpy(in.state, "no provider");
	strcpy(in.backend, "provider:ram0");
	ctl_lun_encode(b, &in);
	assert_int_equal(b[224], 0x02);	/* LUN, little-endian */
	assert_int_equal(b[225], 0x01);
	assert_int_equal(b[232 + 3], 0x40);	/* 1 GiB = 0x40000000 */
	assert_int_equal(b[240 + 1], 0x10);	/* 4096 */
	assert_int_equal(b[244], 1);
	assert_string_equal((const char *)b + 248, "no provider");
	assert_string_equal((const char *)b + 280, "provider:ram0");
	ctl_lun_decode(b, sizeof(in), &out);
	assert_memory_equal(&in, &out, sizeof(in));
	/* a longer entry is read up to what we know; strings end in their field */
	memset(b, 'q', sizeof(b));
	ctl_lun_decode(b, sizeof(b), &out);
	assert_int_equal(strlen(out.target_name), SPT_CTL_NAME_MAX - 1);
	assert_int_equal(strlen(out.state), SPT_CTL_LUN_STATE_MAX - 1);
	assert_int_equal(strlen(out.backend), SPT_CTL_BACKEND_MAX - 1);
	/* a shorter one reads as zeros beyond its end */
	ctl_lun_decode(b, 224, &out);
	assert_int_equal(out.lun, 0);
	assert_string_equal(out.backend, "");
}

static void test_lun_list_decode(void **state)
{
	uint8_t b[sizeof(struct spt_ctl_lun_list) + 2 * sizeof(struct spt_ctl_lun)];
	struct spt_ctl_lun_list l = { .count = 2, .entry_length = sizeof(struct spt_ctl_lun),
				      .total = 9, .more = 1 }, out;
	char why[CTL_WHY_MAX];

	memset(b, 0, sizeof(b));
	ctl_lun_list_encode(b, &l);
	assert_int_equal(ctl_lun_list_decode(b, sizeof(b), &out, why, sizeof(why)), 0);
	assert_int_equal(out.count, 2);
	assert_int_equal(out.total, 9);
	assert_int_equal(out.more, 1);
	assert_int_equal(ctl_lun_list_decode(b, sizeof(b) - 1, &out, why, sizeof(why)), -1);
	assert_int_equal(ctl_lun_list_decode(b, 15, &out, why, sizeof(why)), -1);
	l.entry_length = sizeof(struct spt_ctl_lun) - 1;
	ctl_lun_list_encode(b, &l);
	assert_int_equal(ctl_lun_list_decode(b, 16 + 2 * l.entry_length, &out, why, sizeof(why)), -1);
	l.count = 0x00400000;
	l.entry_length = 0x1000;
	ctl_lun_list_encode(b, &l);
	assert_int_equal(ctl_lun_list_decode(b, 16, &out, why, sizeof(why)), -1);
}

/* ------------------------------------------------------------------ */
/* the control server on a live event loop                            */
/* ------------------------------------------------------------------ */

#define NSESS 3
#define IO_TIMEOUT_S 5

struct fx {
	char dir[64];
	char path[100];	/* fits sun_path */
	struct ev_loop *loop;
	struct iscsi_server *srv;
	struct ctl_server *cs;
	struct ev_handler quit;
	int quit_pipe[2];
	pthread_t thread;
	bool running;
	uint64_t handles[NSESS];
	int nsess;
};

static void fx_on_quit(struct ev_handler *h, uint32_t events)
{
	struct fx *f = h->arg;

	ev_loop_stop(f->loop);
}

static void *fx_thread(void *arg)
{
	struct fx *f = arg;

	ev_loop_run(f->loop);
	return NULL;
}

/* Fills the server (targets, LUNs, portals) before the loop runs. */
typedef int (*fx_populate)(struct fx *f);

static int fx_setup_with(void **state, int nsess, fx_populate populate)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	if (!f)
		return -1;
	log_threshold = LOG_ERR;
	snprintf(f->dir, sizeof(f->dir), "/tmp/spt-test-ctl.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/control.sock", f->dir);
	f->loop = ev_loop_new();
	f->srv = f->loop ? iscsi_server_new(f->loop) : NULL;
	if (!f->srv)
		return -1;
	for (int i = 0; i < nsess; i++) {
		struct iscsi_session_params sp;
		uint8_t isid[6] = { 0x80, 0, 0, 0, 0, (uint8_t)i };
		struct iscsi_session *s;

		iscsi_session_params_default(&sp);
		snprintf(sp.initiator_name, sizeof(sp.initiator_name), "iqn.2026-11.org.spt:init%d", i);
		s = iscsi_session_new(f->srv, NULL, &sp, isid);
		if (!s)
			return -1;
		/* what task.c counts as data-in and data-out moves */
		s->bytes_read = 1000000000000ull * (uint64_t)(i + 1);
		s->bytes_written = 512ull * (uint64_t)(i + 1);
		if (i < NSESS)
			f->handles[i] = s->handle;
	}
	f->nsess = nsess;
	if (populate && populate(f) < 0)
		return -1;
	f->cs = ctl_server_open(f->loop, f->srv, f->path, err, sizeof(err));
	if (!f->cs) {
		fprintf(stderr, "ctl_server_open: %s\n", err);
		return -1;
	}
	if (pipe2(f->quit_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	f->quit.fd = f->quit_pipe[0];
	f->quit.cb = fx_on_quit;
	f->quit.arg = f;
	if (ev_add(f->loop, &f->quit, EPOLLIN) < 0)
		return -1;
	if (pthread_create(&f->thread, NULL, fx_thread, f) != 0)
		return -1;
	f->running = true;
	*state = f;
	return 0;
}

static int fx_setup(void **state, int nsess)
{
	return fx_setup_with(state, nsess, NULL);
}

static int setup_empty(void **state)
{
	return fx_setup(state, 0);
}

static int setup_sessions(void **state)
{
	return fx_setup(state, NSESS);
}

/* more sessions than one response page holds */
#define MANY_SESSIONS (SPT_CTL_SESSION_PAGE_MAX + 88)

static int setup_many(void **state)
{
	return fx_setup(state, MANY_SESSIONS);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct list_node *n, *tmp;

	if (!f)
		return 0;
	if (f->running) {
		if (write(f->quit_pipe[1], "q", 1) != 1)
			return -1;
		pthread_join(f->thread, NULL);
	}
	ev_del(f->loop, &f->quit);
	close(f->quit_pipe[0]);
	close(f->quit_pipe[1]);
	ctl_server_close(f->cs);
	/* the socket goes with the server */
	assert_int_equal(access(f->path, F_OK), -1);
	list_for_each_safe(n, tmp, &f->srv->sessions)
		iscsi_session_stop(list_entry(n, struct iscsi_session, srv_node), "test over");
	iscsi_server_free(f->srv);
	ev_loop_free(f->loop);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int cli_connect(const struct fx *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void cli_send(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void cli_request(int fd, uint32_t code, uint32_t rc, uint32_t timeout, const void *payload,
			uint32_t len)
{
	size_t flen;
	uint8_t *frame = ctl_frame_new(code, 0, timeout, payload, len, &flen);
	struct spt_io_header h;

	assert_non_null(frame);
	if (rc) {
		ctl_header_decode(frame, &h);
		h.return_code = rc;
		ctl_header_encode(frame, &h);
	}
	cli_send(fd, frame, flen);
	free(frame);
}

/* One response frame into rx (reset by the caller); false on EOF. */
static bool cli_response(int fd, struct ctl_rx *rx)
{
	uint8_t b;

	ctl_rx_init(rx, SPT_CTL_RESPONSE_MAX);
	/* one byte at a time: never a byte of the next frame */
	for (;;) {
		ssize_t r = recv(fd, &b, 1, 0);
		size_t used;
		enum ctl_rx_status st;

		if (r == 0)
			return false;
		assert_int_equal(r, 1);
		st = ctl_rx_feed(rx, &b, 1, &used);
		assert_true(st == CTL_RX_MORE || st == CTL_RX_FRAME);
		if (st == CTL_RX_FRAME)
			return true;
	}
}

static bool cli_eof(int fd)
{
	uint8_t b;

	return recv(fd, &b, 1, 0) == 0;
}

static void cli_list(int fd, uint64_t after, uint32_t max, struct spt_ctl_session_list *lh,
		     struct spt_ctl_session *out)
{
	struct spt_ctl_session_list_request req = { .after_handle = after, .max_entries = max };
	uint8_t b[sizeof(req)];
	struct ctl_rx rx;
	char why[CTL_WHY_MAX];

	ctl_session_list_request_encode(b, &req);
	cli_request(fd, SPT_CC_SESSION_LIST, 0, 0, b, sizeof(b));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.control_code, SPT_CC_SESSION_LIST);
	assert_int_equal(rx.h.return_code, 0);
	assert_int_equal(ctl_session_list_decode(rx.payload, rx.h.length, lh, why, sizeof(why)), 0);
	for (uint32_t i = 0; i < lh->count; i++)
		ctl_session_decode(rx.payload + sizeof(*lh) + i * lh->entry_length, lh->entry_length,
				   &out[i]);
	ctl_rx_reset(&rx);
}

static void test_socket_is_0600(void **state)
{
	struct fx *f = *state;
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_list_empty(void **state)
{
	struct fx *f = *state;
	struct spt_ctl_session_list lh;
	struct spt_ctl_session v[1];
	int fd = cli_connect(f);

	cli_list(fd, 0, 0, &lh, v);
	assert_int_equal(lh.count, 0);
	assert_int_equal(lh.total, 0);
	assert_int_equal(lh.more, 0);
	/* Length 0 is the same request */
	struct ctl_rx rx;

	cli_request(fd, SPT_CC_SESSION_LIST, 0, 0, NULL, 0);
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, 0);
	assert_int_equal(rx.h.length, sizeof(struct spt_ctl_session_list));
	ctl_rx_reset(&rx);
	close(fd);
}

static void test_list_sessions_sorted_and_paged(void **state)
{
	struct fx *f = *state;
	struct spt_ctl_session_list lh;
	struct spt_ctl_session v[NSESS];
	int fd = cli_connect(f);
	uint64_t sorted[NSESS];

	memcpy(sorted, f->handles, sizeof(sorted));
	for (int i = 0; i < NSESS; i++)
		for (int j = i + 1; j < NSESS; j++)
			if (sorted[j] < sorted[i]) {
				uint64_t t = sorted[i];

				sorted[i] = sorted[j];
				sorted[j] = t;
			}
	cli_list(fd, 0, 0, &lh, v);
	assert_int_equal(lh.count, NSESS);
	assert_int_equal(lh.total, NSESS);
	assert_int_equal(lh.entry_length, sizeof(struct spt_ctl_session));
	for (int i = 0; i < NSESS; i++) {
		assert_int_equal(v[i].itnexus_handle, sorted[i]);
		assert_int_equal(v[i].session_type, SPT_CTL_SESSION_NORMAL);
		/* no connection left: the state says so */
		assert_int_equal(v[i].state, SPT_CTL_SESSION_ENDING);
		assert_int_equal(v[i].connection_count, 0);
		assert_int_equal(v[i].isid[0], 0x80);
		assert_non_null(strstr(v[i].initiator_name, "iqn.2026-11.org.spt:init"));
		assert_int_not_equal(v[i].tsih, 0);
		/* the session's byte counters, exactly */
		for (int k = 0; k < NSESS; k++) {
			if (f->handles[k] != v[i].itnexus_handle)
				continue;
			assert_int_equal(v[i].bytes_read, 1000000000000ull * (uint64_t)(k + 1));
			assert_int_equal(v[i].bytes_written, 512ull * (uint64_t)(k + 1));
		}
	}
	/* pages of 2: the cursor is the last handle seen */
	cli_list(fd, 0, 2, &lh, v);
	assert_int_equal(lh.count, 2);
	assert_int_equal(lh.more, 1);
	assert_int_equal(v[1].itnexus_handle, sorted[1]);
	cli_list(fd, v[1].itnexus_handle, 2, &lh, v);
	assert_int_equal(lh.count, 1);
	assert_int_equal(lh.more, 0);
	assert_int_equal(v[0].itnexus_handle, sorted[2]);
	close(fd);
}

static void test_stop_unknown_handle(void **state)
{
	struct fx *f = *state;
	struct spt_session_end se = { .itnexus_handle = htole64(f->handles[0] ^ 1) };
	struct ctl_rx rx;
	char msg[SPT_CTL_MESSAGE_MAX];
	int fd = cli_connect(f);

	cli_request(fd, SPT_CC_SESSION_END, 0, 0, &se, sizeof(se));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.control_code, SPT_CC_SESSION_END);
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_NO_SUCH_SESSION);
	ctl_message_decode(rx.payload, rx.h.length, msg, sizeof(msg));
	assert_non_null(strstr(msg, "no session has handle 0x"));
	ctl_rx_reset(&rx);
	close(fd);
}

static void test_stop_session(void **state)
{
	struct fx *f = *state;
	struct spt_ctl_session_stop stop = { .itnexus_handle = f->handles[1], .grace_seconds = 0 };
	struct spt_ctl_session_list lh;
	struct spt_ctl_session v[NSESS];
	uint8_t b[sizeof(stop)];
	struct ctl_rx rx;
	struct spt_session_end se;
	int fd = cli_connect(f);

	ctl_session_stop_encode(b, &stop);
	cli_request(fd, SPT_CC_SESSION_END, 0, 5, b, sizeof(b));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.control_code, SPT_CC_SESSION_END);
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_SUCCESS);
	/* the answer names the session that is gone */
	assert_int_equal(rx.h.length, sizeof(se));
	memcpy(&se, rx.payload, sizeof(se));
	assert_int_equal(le64toh(se.itnexus_handle), f->handles[1]);
	ctl_rx_reset(&rx);
	cli_list(fd, 0, 0, &lh, v);
	assert_int_equal(lh.count, NSESS - 1);
	for (uint32_t i = 0; i < lh.count; i++)
		assert_true(v[i].itnexus_handle != f->handles[1]);
	close(fd);
}

static void test_garbage_gets_bad_frame_and_close(void **state)
{
	struct fx *f = *state;
	struct ctl_rx rx;
	char msg[SPT_CTL_MESSAGE_MAX];
	int fd = cli_connect(f);
	static const char junk[] = "GET / HTTP/1.1\r\nHost: sptd\r\n\r\n";

	cli_send(fd, junk, sizeof(junk) - 1);
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.control_code, 0);
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_FRAME);
	ctl_message_decode(rx.payload, rx.h.length, msg, sizeof(msg));
	assert_non_null(strstr(msg, "signature"));
	ctl_rx_reset(&rx);
	assert_true(cli_eof(fd));
	close(fd);

	/* the daemon still serves the next client */
	struct spt_ctl_session_list lh;
	struct spt_ctl_session v[1];

	fd = cli_connect(f);
	cli_list(fd, 0, 0, &lh, v);
	assert_int_equal(lh.count, 0);
	close(fd);
}

static void test_oversized_length_closes(void **state)
{
	struct fx *f = *state;
	uint8_t h[CTL_HEADER_LEN];
	struct ctl_rx rx;
	int fd = cli_connect(f);

	header_bytes(h, SPT_CC_SESSION_LIST, 0, 0, SPT_CTL_REQUEST_MAX + 1);
	cli_send(fd, h, sizeof(h));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_FRAME);
	ctl_rx_reset(&rx);
	assert_true(cli_eof(fd));
	close(fd);
}

static void test_unsupported_code_keeps_connection(void **state)
{
	struct fx *f = *state;
	struct ctl_rx rx;
	uint8_t tmf[sizeof(struct spt_tmf_wire)] = { 0 };
	struct spt_ctl_session_list lh;
	struct spt_ctl_session v[1];
	int fd = cli_connect(f);

	/* TMF belongs to the provider socket, not this one */
	cli_request(fd, SPT_CC_TMF, 0, 0, tmf, sizeof(tmf));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.control_code, SPT_CC_TMF);
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_UNSUPPORTED);
	ctl_rx_reset(&rx);
	/* the payload was consumed: the next request frames correctly */
	cli_list(fd, 0, 0, &lh, v);
	assert_int_equal(lh.count, 0);
	close(fd);
}

static void test_bad_requests(void **state)
{
	struct fx *f = *state;
	struct ctl_rx rx;
	uint8_t odd[12] = { 0 };
	int fd = cli_connect(f);

	/* a request that carries a status */
	cli_request(fd, SPT_CC_SESSION_LIST, 3, 0, NULL, 0);
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_REQUEST);
	ctl_rx_reset(&rx);
	/* a Timeout beyond the limit */
	cli_request(fd, SPT_CC_SESSION_LIST, 0, SPT_CTL_TIMEOUT_MAX + 1, NULL, 0);
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_REQUEST);
	ctl_rx_reset(&rx);
	/* a SESSION_END payload of neither size */
	cli_request(fd, SPT_CC_SESSION_END, 0, 0, odd, sizeof(odd));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_REQUEST);
	ctl_rx_reset(&rx);
	/* a SESSION_LIST payload of the wrong size */
	cli_request(fd, SPT_CC_SESSION_LIST, 0, 0, odd, sizeof(odd));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_REQUEST);
	ctl_rx_reset(&rx);
	close(fd);
}

static void test_fragmented_and_pipelined(void **state)
{
	struct fx *f = *state;
	uint8_t two[2 * CTL_HEADER_LEN];
	struct ctl_rx rx;
	int fd = cli_connect(f);

	header_bytes(two, SPT_CC_SESSION_LIST, 0, 0, 0);
	header_bytes(two + CTL_HEADER_LEN, SPT_CC_SESSION_LIST, 0, 0, 0);
	/* the first header a byte at a time, with pauses the server sees */
	for (size_t i = 0; i < CTL_HEADER_LEN; i++) {
		cli_send(fd, two + i, 1);
		if (i % 7 == 0)
			usleep(2000);
	}
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, 0);
	ctl_rx_reset(&rx);
	/* two requests in one write: two answers, in order */
	cli_send(fd, two, sizeof(two));
	for (int i = 0; i < 2; i++) {
		assert_true(cli_response(fd, &rx));
		assert_int_equal(rx.h.control_code, SPT_CC_SESSION_LIST);
		assert_int_equal(rx.h.return_code, 0);
		ctl_rx_reset(&rx);
	}
	close(fd);
}

static void test_client_limit(void **state)
{
	struct fx *f = *state;
	int fds[CTL_MAX_CLIENTS];
	struct ctl_rx rx;
	struct spt_ctl_session_list lh;
	struct spt_ctl_session v[1];
	int extra;

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		fds[i] = cli_connect(f);
		cli_list(fds[i], 0, 0, &lh, v);	/* accepted and served */
	}
	extra = cli_connect(f);
	assert_true(cli_response(extra, &rx));
	assert_int_equal(rx.h.control_code, 0);
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BUSY);
	ctl_rx_reset(&rx);
	assert_true(cli_eof(extra));
	close(extra);
	/* a slot freed is a slot for the next one */
	close(fds[0]);
	usleep(100000);
	fds[0] = cli_connect(f);
	cli_list(fds[0], 0, 0, &lh, v);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		close(fds[i]);
}

static void test_large_list_to_a_slow_reader(void **state)
{
	struct fx *f = *state;
	struct spt_ctl_session_list lh;
	struct spt_ctl_session *v = calloc(SPT_CTL_SESSION_PAGE_MAX, sizeof(*v));
	uint64_t last;
	int fd = cli_connect(f);

	assert_non_null(v);
	/* a full page is far more than a socket buffer: the server writes it
	 * in pieces as this reader, asleep first, makes room */
	cli_request(fd, SPT_CC_SESSION_LIST, 0, 0, NULL, 0);
	usleep(200000);
	struct ctl_rx rx;
	char why[CTL_WHY_MAX];

	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, 0);
	assert_int_equal(rx.h.length, sizeof(lh) + SPT_CTL_SESSION_PAGE_MAX * sizeof(*v));
	assert_int_equal(ctl_session_list_decode(rx.payload, rx.h.length, &lh, why, sizeof(why)), 0);
	assert_int_equal(lh.count, SPT_CTL_SESSION_PAGE_MAX);
	assert_int_equal(lh.total, MANY_SESSIONS);
	assert_int_equal(lh.more, 1);
	last = 0;
	for (uint32_t i = 0; i < lh.count; i++) {
		ctl_session_decode(rx.payload + sizeof(lh) + i * lh.entry_length, lh.entry_length, &v[i]);
		assert_true(v[i].itnexus_handle > last);
		last = v[i].itnexus_handle;
	}
	ctl_rx_reset(&rx);
	/* the rest on the next page */
	cli_list(fd, last, 0, &lh, v);
	assert_int_equal(lh.count, MANY_SESSIONS - SPT_CTL_SESSION_PAGE_MAX);
	assert_int_equal(lh.more, 0);
	assert_true(v[0].itnexus_handle > last);
	free(v);
	close(fd);
}

/* ---- targets and LUNs ---- */

#define TGT_A "iqn.2026-11.org.spt:ta"
#define TGT_B "iqn.2026-11.org.spt:tb"

static const struct spt_provider_ops fake_ops = { .name = "fake" };

/* What an external provider's LUN says while its provider is away. */
static void fake_status(void *ctx, struct spt_lun_status *st)
{
	snprintf(st->backend, sizeof(st->backend), "provider:%s", (const char *)ctx);
	st->state = "no provider";
	st->size_bytes = 3ull << 30;
	st->block_size = 4096;
	st->read_only = true;
}

static void fake_lun(struct iscsi_target *t, uint64_t lun, const char *desc, bool with_status)
{
	struct spt_lun *l = &t->luns.luns[t->luns.count++];

	memset(l, 0, sizeof(*l));
	l->lun = lun;
	l->ops = &fake_ops;
	l->ctx = (void *)"ram0";
	snprintf(l->desc, sizeof(l->desc), "%s", desc);
	l->status = with_status ? fake_status : NULL;
}

/* A portal on a port nobody uses: bound first here with SO_REUSEADDR and
 * kept bound (not listening) until the server listens on it too. */
static int fx_portal(struct fx *f, int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	char spec[64], err[256];
	int one = 1, rc = -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen) < 0)
		goto out;
	*port = ntohs(sa.sin_port);
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", *port);
	rc = iscsi_server_listen(f->srv, spec, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "iscsi_server_listen: %s\n", err);
out:
	close(fd);
	return rc;
}

static int g_port;

/* Two targets, added out of name order; LUNs out of number order. */
static int populate_targets(struct fx *f)
{
	struct iscsi_target *b = iscsi_server_add_target(f->srv, TGT_B);
	struct iscsi_target *a = iscsi_server_add_target(f->srv, TGT_A);
	struct iscsi_session_params sp;
	uint8_t isid[6] = { 0x80, 1, 2, 3, 4, 5 };
	char err[256];

	if (!a || !b)
		return -1;
	b->tpgt = 7;
	fake_lun(b, 5, "fake:five", false);
	fake_lun(b, 2, "fake:two", true);
	fake_lun(a, 0, "fake:zero", false);
	if (iscsi_target_allow(b, "iqn.2026-11.org.spt:i1", err, sizeof(err)) < 0 ||
	    iscsi_target_allow(b, "iqn.2026-11.org.spt:i2", err, sizeof(err)) < 0)
		return -1;
	/* CHAP is the server's: both targets show it */
	f->srv->limits.chap_normal = true;
	f->srv->chap.target.set = true;
	iscsi_session_params_default(&sp);
	snprintf(sp.initiator_name, sizeof(sp.initiator_name), "iqn.2026-11.org.spt:i1");
	if (!iscsi_session_new(f->srv, b, &sp, isid))
		return -1;
	return fx_portal(f, &g_port);
}

static int setup_targets(void **state)
{
	return fx_setup_with(state, 0, populate_targets);
}

/* Many targets whose ACLs together pass one response. */
#define BIG_TARGETS 6
#define BIG_ACL ISCSI_MAX_ALLOW

static int populate_big_acls(struct fx *f)
{
	char name[64], err[256];

	for (int t = 0; t < BIG_TARGETS; t++) {
		struct iscsi_target *tg;

		snprintf(name, sizeof(name), "iqn.2026-11.org.spt:big%d", t);
		tg = iscsi_server_add_target(f->srv, name);
		if (!tg)
			return -1;
		for (int i = 0; i < BIG_ACL; i++) {
			snprintf(name, sizeof(name), "iqn.2026-11.org.spt:t%d-i%04d", t, i);
			if (iscsi_target_allow(tg, name, err, sizeof(err)) < 0)
				return -1;
		}
	}
	return 0;
}

static int setup_big_acls(void **state)
{
	return fx_setup_with(state, 0, populate_big_acls);
}

/* One TARGET_LIST page; the caller frees rx with ctl_rx_reset. */
static void cli_target_page(int fd, const char *after, uint32_t max, struct ctl_rx *rx,
			    struct spt_ctl_target_list *lh)
{
	struct spt_ctl_target_list_request req;
	uint8_t b[sizeof(req)];
	char why[CTL_WHY_MAX];

	memset(&req, 0, sizeof(req));
	snprintf(req.after_name, sizeof(req.after_name), "%s", after);
	req.max_entries = max;
	ctl_target_list_request_encode(b, &req);
	cli_request(fd, SPT_CC_TARGET_LIST, 0, 0, b, sizeof(b));
	assert_true(cli_response(fd, rx));
	assert_int_equal(rx->h.control_code, SPT_CC_TARGET_LIST);
	assert_int_equal(rx->h.return_code, 0);
	assert_int_equal(ctl_target_list_decode(rx->payload, rx->h.length, lh, why, sizeof(why)), 0);
}

static void test_target_list(void **state)
{
	struct fx *f = *state;
	struct spt_ctl_target_list lh;
	struct spt_ctl_target e;
	struct ctl_rx rx;
	char why[CTL_WHY_MAX], text[SPT_CTL_NAME_MAX], portal[32];
	size_t off, rl;
	int fd = cli_connect(f);

	snprintf(portal, sizeof(portal), "127.0.0.1:%d", g_port);
	cli_target_page(fd, "", 0, &rx, &lh);
	assert_int_equal(lh.count, 2);
	assert_int_equal(lh.total, 2);
	assert_int_equal(lh.more, 0);
	off = sizeof(lh);
	/* by name: ta first though added second */
	assert_int_equal(ctl_target_decode(rx.payload + off, rx.h.length - off, &lh, &e, &rl, why,
					   sizeof(why)), 0);
	assert_string_equal(e.name, TGT_A);
	assert_int_equal(e.tpgt, 1);
	assert_int_equal(e.lun_count, 1);
	assert_int_equal(e.session_count, 0);
	assert_int_equal(e.initiator_count, 0);	/* any initiator */
	assert_int_equal(e.flags, SPT_CTL_TARGET_CHAP | SPT_CTL_TARGET_MUTUAL_CHAP);
	assert_int_equal(e.portal_count, 1);
	ctl_string_decode(ctl_target_portal_at(rx.payload + off, &lh, 0), lh.portal_entry_length,
			  SPT_CTL_PORTAL_MAX, text);
	assert_string_equal(text, portal);
	off += rl;
	assert_int_equal(ctl_target_decode(rx.payload + off, rx.h.length - off, &lh, &e, &rl, why,
					   sizeof(why)), 0);
	assert_string_equal(e.name, TGT_B);
	assert_int_equal(e.tpgt, 7);
	assert_int_equal(e.lun_count, 2);
	assert_int_equal(e.session_count, 1);
	assert_int_equal(e.initiator_count, 2);
	ctl_string_decode(ctl_target_initiator_at(rx.payload + off, &lh, &e, 1),
			  lh.initiator_entry_length, SPT_CTL_NAME_MAX, text);
	assert_string_equal(text, "iqn.2026-11.org.spt:i2");
	off += rl;
	assert_int_equal(off, rx.h.length);
	ctl_rx_reset(&rx);

	/* pages of one: the cursor is the last name seen */
	cli_target_page(fd, "", 1, &rx, &lh);
	assert_int_equal(lh.count, 1);
	assert_int_equal(lh.more, 1);
	ctl_rx_reset(&rx);
	cli_target_page(fd, TGT_A, 1, &rx, &lh);
	assert_int_equal(lh.count, 1);
	assert_int_equal(lh.more, 0);
	assert_string_equal((const char *)rx.payload + sizeof(lh), TGT_B);
	ctl_rx_reset(&rx);
	cli_target_page(fd, TGT_B, 0, &rx, &lh);
	assert_int_equal(lh.count, 0);
	assert_int_equal(lh.total, 2);
	assert_int_equal(rx.h.length, sizeof(lh));
	ctl_rx_reset(&rx);
	/* Length 0 is the first page */
	cli_request(fd, SPT_CC_TARGET_LIST, 0, 0, NULL, 0);
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, 0);
	assert_int_equal(ctl_target_list_decode(rx.payload, rx.h.length, &lh, why, sizeof(why)), 0);
	assert_int_equal(lh.count, 2);
	ctl_rx_reset(&rx);
	close(fd);
}

static void test_target_list_pages_by_size(void **state)
{
	struct fx *f = *state;
	struct spt_ctl_target_list lh;
	struct spt_ctl_target e;
	struct ctl_rx rx;
	char after[SPT_CTL_NAME_MAX] = "", why[CTL_WHY_MAX], text[SPT_CTL_NAME_MAX], want[64];
	int seen = 0, pages = 0;
	int fd = cli_connect(f);

	/* 6 targets of 1024 ACL names (~230 KB each) pass 1 MiB: the daemon
	 * ends a page early, every name still arrives once */
	do {
		size_t off = sizeof(struct spt_ctl_target_list), rl;

		cli_target_page(fd, after, 0, &rx, &lh);
		assert_true(rx.h.length <= SPT_CTL_RESPONSE_MAX);
		assert_true(lh.count > 0);
		for (uint32_t i = 0; i < lh.count; i++) {
			assert_int_equal(ctl_target_decode(rx.payload + off, rx.h.length - off, &lh, &e,
							   &rl, why, sizeof(why)), 0);
			snprintf(want, sizeof(want), "iqn.2026-11.org.spt:big%d", seen);
			assert_string_equal(e.name, want);
			assert_int_equal(e.initiator_count, BIG_ACL);
			ctl_string_decode(ctl_target_initiator_at(rx.payload + off, &lh, &e, BIG_ACL - 1),
					  lh.initiator_entry_length, SPT_CTL_NAME_MAX, text);
			snprintf(want, sizeof(want), "iqn.2026-11.org.spt:t%d-i%04d", seen, BIG_ACL - 1);
			assert_string_equal(text, want);
			snprintf(after, sizeof(after), "%s", e.name);
			off += rl;
			seen++;
		}
		assert_int_equal(off, rx.h.length);
		pages++;
		ctl_rx_reset(&rx);
	} while (lh.more);
	assert_int_equal(seen, BIG_TARGETS);
	assert_true(pages >= 2);
	close(fd);
}

static void cli_lun_page(int fd, const char *after_target, uint64_t after_lun, uint32_t max,
			 struct spt_ctl_lun_list *lh, struct spt_ctl_lun *out)
{
	struct spt_ctl_lun_list_request req;
	uint8_t b[sizeof(req)];
	struct ctl_rx rx;
	char why[CTL_WHY_MAX];

	memset(&req, 0, sizeof(req));
	snprintf(req.after_target, sizeof(req.after_target), "%s", after_target);
	req.after_lun = after_lun;
	req.max_entries = max;
	ctl_lun_list_request_encode(b, &req);
	cli_request(fd, SPT_CC_LUN_LIST, 0, 0, b, sizeof(b));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.control_code, SPT_CC_LUN_LIST);
	assert_int_equal(rx.h.return_code, 0);
	assert_int_equal(ctl_lun_list_decode(rx.payload, rx.h.length, lh, why, sizeof(why)), 0);
	for (uint32_t i = 0; i < lh->count; i++)
		ctl_lun_decode(rx.payload + sizeof(*lh) + i * lh->entry_length, lh->entry_length, &out[i]);
	ctl_rx_reset(&rx);
}

static void test_lun_list(void **state)
{
	struct fx *f = *state;
	struct spt_ctl_lun_list lh;
	struct spt_ctl_lun v[4];
	int fd = cli_connect(f);

	cli_lun_page(fd, "", 0, 0, &lh, v);
	assert_int_equal(lh.count, 3);
	assert_int_equal(lh.total, 3);
	assert_int_equal(lh.more, 0);
	assert_int_equal(lh.entry_length, sizeof(struct spt_ctl_lun));
	/* by target name, then LUN number */
	assert_string_equal(v[0].target_name, TGT_A);
	assert_int_equal(v[0].lun, 0);
	/* no status from the provider: its description, online, geometry unknown */
	assert_string_equal(v[0].backend, "fake:zero");
	assert_string_equal(v[0].state, "online");
	assert_int_equal(v[0].size_bytes, 0);
	assert_int_equal(v[0].block_size, 0);
	assert_int_equal(v[0].read_only, 0);
	assert_string_equal(v[1].target_name, TGT_B);
	assert_int_equal(v[1].lun, 2);
	assert_string_equal(v[1].backend, "provider:ram0");
	assert_string_equal(v[1].state, "no provider");
	assert_int_equal(v[1].size_bytes, 3ull << 30);
	assert_int_equal(v[1].block_size, 4096);
	assert_int_equal(v[1].read_only, 1);
	assert_string_equal(v[2].target_name, TGT_B);
	assert_int_equal(v[2].lun, 5);
	assert_string_equal(v[2].backend, "fake:five");

	/* pages: the cursor is (target, LUN) of the last entry */
	cli_lun_page(fd, "", 0, 2, &lh, v);
	assert_int_equal(lh.count, 2);
	assert_int_equal(lh.more, 1);
	cli_lun_page(fd, TGT_B, 2, 2, &lh, v);
	assert_int_equal(lh.count, 1);
	assert_int_equal(lh.more, 0);
	assert_int_equal(v[0].lun, 5);
	/* a cursor between targets starts at the next one */
	cli_lun_page(fd, TGT_A, 99, 0, &lh, v);
	assert_int_equal(lh.count, 2);
	assert_string_equal(v[0].target_name, TGT_B);
	assert_int_equal(v[0].lun, 2);
	cli_lun_page(fd, TGT_B, 5, 0, &lh, v);
	assert_int_equal(lh.count, 0);
	assert_int_equal(lh.total, 3);
	close(fd);
}

static void test_inventory_on_an_empty_daemon(void **state)
{
	struct fx *f = *state;
	struct spt_ctl_lun_list lh;
	struct spt_ctl_target_list th;
	struct spt_ctl_lun v[1];
	struct ctl_rx rx;
	int fd = cli_connect(f);

	cli_lun_page(fd, "", 0, 0, &lh, v);
	assert_int_equal(lh.count, 0);
	assert_int_equal(lh.total, 0);
	cli_target_page(fd, "", 0, &rx, &th);
	assert_int_equal(th.count, 0);
	assert_int_equal(th.total, 0);
	ctl_rx_reset(&rx);
	close(fd);
}

static void test_inventory_bad_requests(void **state)
{
	struct fx *f = *state;
	struct ctl_rx rx;
	uint8_t b[sizeof(struct spt_ctl_lun_list_request)];
	char msg[SPT_CTL_MESSAGE_MAX];
	struct spt_ctl_lun_list lh;
	struct spt_ctl_lun v[4];
	int fd = cli_connect(f);

	/* a TARGET_LIST payload of the wrong size */
	memset(b, 0, sizeof(b));
	cli_request(fd, SPT_CC_TARGET_LIST, 0, 0, b, 16);
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.control_code, SPT_CC_TARGET_LIST);
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_REQUEST);
	ctl_message_decode(rx.payload, rx.h.length, msg, sizeof(msg));
	assert_non_null(strstr(msg, "TARGET_LIST payload of 16 bytes"));
	ctl_rx_reset(&rx);
	/* a cursor without its NUL */
	memset(b, 'n', SPT_CTL_NAME_MAX);
	cli_request(fd, SPT_CC_TARGET_LIST, 0, 0, b, sizeof(struct spt_ctl_target_list_request));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_REQUEST);
	ctl_rx_reset(&rx);
	cli_request(fd, SPT_CC_LUN_LIST, 0, 0, b, sizeof(b));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.control_code, SPT_CC_LUN_LIST);
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_REQUEST);
	ctl_rx_reset(&rx);
	/* LUN_LIST with a reserved field set, and of a wrong size */
	memset(b, 0, sizeof(b));
	b[sizeof(b) - 1] = 1;
	cli_request(fd, SPT_CC_LUN_LIST, 0, 0, b, sizeof(b));
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_REQUEST);
	ctl_rx_reset(&rx);
	cli_request(fd, SPT_CC_LUN_LIST, 0, 0, b, 1);
	assert_true(cli_response(fd, &rx));
	assert_int_equal(rx.h.return_code, SPT_CTL_RC_BAD_REQUEST);
	ctl_rx_reset(&rx);
	/* the connection still serves */
	cli_lun_page(fd, "", 0, 0, &lh, v);
	assert_int_equal(lh.count, 3);
	close(fd);
}

static void test_open_refuses_a_file_and_a_live_socket(void **state)
{
	struct fx *f = *state;
	char err[256], path[160];
	int fd;

	/* a live daemon's socket is not taken over */
	assert_null(ctl_server_open(f->loop, f->srv, f->path, err, sizeof(err)));
	assert_non_null(strstr(err, "in use"));
	/* a regular file is not removed */
	snprintf(path, sizeof(path), "%s/file", f->dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_null(ctl_server_open(f->loop, f->srv, path, err, sizeof(err)));
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	/* a path longer than sun_path */
	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_null(ctl_server_open(f->loop, f->srv, path, err, sizeof(err)));
	assert_non_null(strstr(err, "too long"));
}

static void test_open_replaces_a_stale_socket(void **state)
{
	char dir[] = "/tmp/spt-test-ctl.XXXXXX", path[100], err[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ev_loop *loop;
	struct iscsi_server *srv;
	struct ctl_server *cs;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	/* what a killed daemon leaves: a socket nobody listens on */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	loop = ev_loop_new();
	srv = iscsi_server_new(loop);
	cs = ctl_server_open(loop, srv, path, err, sizeof(err));
	assert_non_null(cs);
	ctl_server_close(cs);
	assert_int_equal(access(path, F_OK), -1);
	iscsi_server_free(srv);
	ev_loop_free(loop);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_layout_is_little_endian),
		cmocka_unit_test(test_header_decode_round_trip),
		cmocka_unit_test(test_header_check),
		cmocka_unit_test(test_rx_byte_by_byte),
		cmocka_unit_test(test_rx_two_frames_in_one_buffer),
		cmocka_unit_test(test_rx_rejects_before_the_payload),
		cmocka_unit_test(test_session_list_request_decode),
		cmocka_unit_test(test_session_stop_decode),
		cmocka_unit_test(test_session_entry_round_trip),
		cmocka_unit_test(test_session_entry_decode_is_bounded),
		cmocka_unit_test(test_session_list_decode),
		cmocka_unit_test(test_message_decode),
		cmocka_unit_test(test_target_list_request_decode),
		cmocka_unit_test(test_lun_list_request_decode),
		cmocka_unit_test(test_target_page_round_trip),
		cmocka_unit_test(test_target_page_is_checked),
		cmocka_unit_test(test_lun_entry_round_trip),
		cmocka_unit_test(test_lun_list_decode),
		cmocka_unit_test_setup_teardown(test_socket_is_0600, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_list_empty, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_list_sessions_sorted_and_paged, setup_sessions, teardown),
		cmocka_unit_test_setup_teardown(test_stop_unknown_handle, setup_sessions, teardown),
		cmocka_unit_test_setup_teardown(test_stop_session, setup_sessions, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_gets_bad_frame_and_close, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_length_closes, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_code_keeps_connection, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_fragmented_and_pipelined, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_client_limit, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_large_list_to_a_slow_reader, setup_many, teardown),
		cmocka_unit_test_setup_teardown(test_target_list, setup_targets, teardown),
		cmocka_unit_test_setup_teardown(test_target_list_pages_by_size, setup_big_acls, teardown),
		cmocka_unit_test_setup_teardown(test_lun_list, setup_targets, teardown),
		cmocka_unit_test_setup_teardown(test_inventory_on_an_empty_daemon, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_inventory_bad_requests, setup_targets, teardown),
		cmocka_unit_test_setup_teardown(test_open_refuses_a_file_and_a_live_socket, setup_empty,
						teardown),
		cmocka_unit_test(test_open_replaces_a_stale_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
