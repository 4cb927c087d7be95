/*
 * Unit tests for src/iscsi/pdu.{h,c}: the Basic Header Segment layouts of
 * RFC 7143 section 11, the 24-bit DataSegmentLength and padding (11.2),
 * LUN addressing (SAM-5 4.7), serial number arithmetic (RFC 1982 as used by
 * RFC 7143 4.2.2.1) and the CRC32C digest (RFC 7143 appendix B.4).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "iscsi/pdu.h"

/* ---- BHS layouts: every opcode's struct is 48 bytes, fields where RFC 7143 puts them ---- */

#define OFF(t, f, o) assert_int_equal(offsetof(struct t, f), (o))

static void test_bhs_sizes(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct iscsi_bhs), 48);
	assert_int_equal(sizeof(struct iscsi_scsi_cmd), 48);
	assert_int_equal(sizeof(struct iscsi_scsi_rsp), 48);
	assert_int_equal(sizeof(struct iscsi_data_in), 48);
	assert_int_equal(sizeof(struct iscsi_data_out), 48);
	assert_int_equal(sizeof(struct iscsi_r2t), 48);
	assert_int_equal(sizeof(struct iscsi_nop), 48);
	assert_int_equal(sizeof(struct iscsi_tmf_req), 48);
	assert_int_equal(sizeof(struct iscsi_tmf_rsp), 48);
	assert_int_equal(sizeof(struct iscsi_login_req), 48);
	assert_int_equal(sizeof(struct iscsi_login_rsp), 48);
	assert_int_equal(sizeof(struct iscsi_text), 48);
	assert_int_equal(sizeof(struct iscsi_logout_req), 48);
	assert_int_equal(sizeof(struct iscsi_logout_rsp), 48);
	assert_int_equal(sizeof(struct iscsi_async), 48);
	assert_int_equal(sizeof(struct iscsi_reject), 48);
}

/* RFC 7143 11.2.1: the fields every PDU shares */
static void test_bhs_common_offsets(void **state)
{
	(void)state;
	OFF(iscsi_bhs, opcode, 0);
	OFF(iscsi_bhs, flags, 1);
	OFF(iscsi_bhs, total_ahs_len, 4);
	OFF(iscsi_bhs, dsl, 5);
	OFF(iscsi_bhs, lun, 8);
	OFF(iscsi_bhs, itt, 16);
}

static void test_bhs_opcode_offsets(void **state)
{
	(void)state;
	/* 11.3 SCSI Command */
	OFF(iscsi_scsi_cmd, lun, 8);
	OFF(iscsi_scsi_cmd, itt, 16);
	OFF(iscsi_scsi_cmd, edtl, 20);
	OFF(iscsi_scsi_cmd, cmdsn, 24);
	OFF(iscsi_scsi_cmd, exp_statsn, 28);
	OFF(iscsi_scsi_cmd, cdb, 32);
	/* 11.4 SCSI Response */
	OFF(iscsi_scsi_rsp, response, 2);
	OFF(iscsi_scsi_rsp, status, 3);
	OFF(iscsi_scsi_rsp, itt, 16);
	OFF(iscsi_scsi_rsp, snack_tag, 20);
	OFF(iscsi_scsi_rsp, statsn, 24);
	OFF(iscsi_scsi_rsp, exp_cmdsn, 28);
	OFF(iscsi_scsi_rsp, max_cmdsn, 32);
	OFF(iscsi_scsi_rsp, exp_datasn, 36);
	OFF(iscsi_scsi_rsp, bidi_residual, 40);
	OFF(iscsi_scsi_rsp, residual, 44);
	/* 11.5 Task Management Function Request */
	OFF(iscsi_tmf_req, function, 1);
	OFF(iscsi_tmf_req, lun, 8);
	OFF(iscsi_tmf_req, itt, 16);
	OFF(iscsi_tmf_req, ref_itt, 20);
	OFF(iscsi_tmf_req, cmdsn, 24);
	OFF(iscsi_tmf_req, exp_statsn, 28);
	OFF(iscsi_tmf_req, ref_cmdsn, 32);
	OFF(iscsi_tmf_req, exp_datasn, 36);
	/* 11.6 Task Management Function Response */
	OFF(iscsi_tmf_rsp, response, 2);
	OFF(iscsi_tmf_rsp, itt, 16);
	OFF(iscsi_tmf_rsp, statsn, 24);
	OFF(iscsi_tmf_rsp, exp_cmdsn, 28);
	OFF(iscsi_tmf_rsp, max_cmdsn, 32);
	/* 11.7.1 SCSI Data-Out */
	OFF(iscsi_data_out, lun, 8);
	OFF(iscsi_data_out, itt, 16);
	OFF(iscsi_data_out, ttt, 20);
	OFF(iscsi_data_out, exp_statsn, 28);
	OFF(iscsi_data_out, datasn, 36);
	OFF(iscsi_data_out, buffer_offset, 40);
	/* 11.7.2 SCSI Data-In */
	OFF(iscsi_data_in, status, 3);
	OFF(iscsi_data_in, lun, 8);
	OFF(iscsi_data_in, itt, 16);
	OFF(iscsi_data_in, ttt, 20);
	OFF(iscsi_data_in, statsn, 24);
	OFF(iscsi_data_in, exp_cmdsn, 28);
	OFF(iscsi_data_in, max_cmdsn, 32);
	OFF(iscsi_data_in, datasn, 36);
	OFF(iscsi_data_in, buffer_offset, 40);
	OFF(iscsi_data_in, residual, 44);
	/* 11.8 Ready To Transfer */
	OFF(iscsi_r2t, lun, 8);
	OFF(iscsi_r2t, itt, 16);
	OFF(iscsi_r2t, ttt, 20);
	OFF(iscsi_r2t, statsn, 24);
	OFF(iscsi_r2t, exp_cmdsn, 28);
	OFF(iscsi_r2t, max_cmdsn, 32);
	OFF(iscsi_r2t, r2tsn, 36);
	OFF(iscsi_r2t, buffer_offset, 40);
	OFF(iscsi_r2t, desired_length, 44);
	/* 11.9 Asynchronous Message */
	OFF(iscsi_async, lun, 8);
	OFF(iscsi_async, itt, 16);
	OFF(iscsi_async, statsn, 24);
	OFF(iscsi_async, exp_cmdsn, 28);
	OFF(iscsi_async, max_cmdsn, 32);
	OFF(iscsi_async, event, 36);
	OFF(iscsi_async, vcode, 37);
	OFF(iscsi_async, param1, 38);
	OFF(iscsi_async, param2, 40);
	OFF(iscsi_async, param3, 42);
	/* 11.10, 11.11 Text Request / Response */
	OFF(iscsi_text, lun, 8);
	OFF(iscsi_text, itt, 16);
	OFF(iscsi_text, ttt, 20);
	OFF(iscsi_text, sn1, 24);
	OFF(iscsi_text, sn2, 28);
	OFF(iscsi_text, max_cmdsn, 32);
	/* 11.12 Login Request */
	OFF(iscsi_login_req, version_max, 2);
	OFF(iscsi_login_req, version_min, 3);
	OFF(iscsi_login_req, isid, 8);
	OFF(iscsi_login_req, tsih, 14);
	OFF(iscsi_login_req, itt, 16);
	OFF(iscsi_login_req, cid, 20);
	OFF(iscsi_login_req, cmdsn, 24);
	OFF(iscsi_login_req, exp_statsn, 28);
	/* 11.13 Login Response */
	OFF(iscsi_login_rsp, version_max, 2);
	OFF(iscsi_login_rsp, version_active, 3);
	OFF(iscsi_login_rsp, isid, 8);
	OFF(iscsi_login_rsp, tsih, 14);
	OFF(iscsi_login_rsp, itt, 16);
	OFF(iscsi_login_rsp, statsn, 24);
	OFF(iscsi_login_rsp, exp_cmdsn, 28);
	OFF(iscsi_login_rsp, max_cmdsn, 32);
	OFF(iscsi_login_rsp, status_class, 36);
	OFF(iscsi_login_rsp, status_detail, 37);
	/* 11.14 Logout Request */
	OFF(iscsi_logout_req, reason, 1);
	OFF(iscsi_logout_req, itt, 16);
	OFF(iscsi_logout_req, cid, 20);
	OFF(iscsi_logout_req, cmdsn, 24);
	OFF(iscsi_logout_req, exp_statsn, 28);
	/* 11.15 Logout Response */
	OFF(iscsi_logout_rsp, response, 2);
	OFF(iscsi_logout_rsp, itt, 16);
	OFF(iscsi_logout_rsp, statsn, 24);
	OFF(iscsi_logout_rsp, exp_cmdsn, 28);
	OFF(iscsi_logout_rsp, max_cmdsn, 32);
	OFF(iscsi_logout_rsp, time2wait, 40);
	OFF(iscsi_logout_rsp, time2retain, 42);
	/* 11.17 Reject */
	OFF(iscsi_reject, reason, 2);
	OFF(iscsi_reject, itt, 16);
	OFF(iscsi_reject, statsn, 24);
	OFF(iscsi_reject, exp_cmdsn, 28);
	OFF(iscsi_reject, max_cmdsn, 32);
	OFF(iscsi_reject, datasn, 36);
	/* 11.18, 11.19 NOP-Out / NOP-In */
	OFF(iscsi_nop, lun, 8);
	OFF(iscsi_nop, itt, 16);
	OFF(iscsi_nop, ttt, 20);
	OFF(iscsi_nop, sn1, 24);
	OFF(iscsi_nop, sn2, 28);
	OFF(iscsi_nop, max_cmdsn, 32);
}

/* A SCSI Command built through the struct, read back as wire bytes (big-endian). */
static void test_bhs_scsi_cmd_bytes(void **state)
{
	struct iscsi_scsi_cmd c;
	const uint8_t *b = (const uint8_t *)&c;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.opcode = ISCSI_OP_SCSI_CMD | ISCSI_FLAG_IMMEDIATE;
	c.flags = ISCSI_FLAG_FINAL | ISCSI_CMD_READ | 1;
	pdu_set_dsl(&c, 0x010203);
	c.lun[1] = 7;
	c.itt = pdu_put32(0x11223344);
	c.edtl = pdu_put32(0x00001000);
	c.cmdsn = pdu_put32(0xa1a2a3a4);
	c.exp_statsn = pdu_put32(0xb1b2b3b4);
	c.cdb[0] = 0x28;
	c.cdb[15] = 0x99;

	assert_int_equal(b[0], 0x41);
	assert_int_equal(b[1], 0xc1);
	assert_int_equal(b[5], 0x01);
	assert_int_equal(b[6], 0x02);
	assert_int_equal(b[7], 0x03);
	assert_int_equal(b[9], 7);
	assert_int_equal(b[16], 0x11);
	assert_int_equal(b[19], 0x44);
	assert_int_equal(b[22], 0x10);
	assert_int_equal(b[23], 0x00);
	assert_int_equal(b[24], 0xa1);
	assert_int_equal(b[27], 0xa4);
	assert_int_equal(b[28], 0xb1);
	assert_int_equal(b[31], 0xb4);
	assert_int_equal(b[32], 0x28);
	assert_int_equal(b[47], 0x99);
	assert_int_equal(pdu_opcode((const struct iscsi_bhs *)&c), ISCSI_OP_SCSI_CMD);
	assert_true(pdu_immediate((const struct iscsi_bhs *)&c));
	assert_int_equal(pdu_dsl((const struct iscsi_bhs *)&c), 0x010203);
}

static void test_bhs_login_rsp_bytes(void **state)
{
	struct iscsi_login_rsp r;
	const uint8_t *b = (const uint8_t *)&r;
	static const uint8_t isid[6] = { 0x80, 0x01, 0x02, 0x03, 0x04, 0x05 };

	(void)state;
	memset(&r, 0, sizeof(r));
	r.opcode = ISCSI_OP_LOGIN_RSP;
	r.flags = ISCSI_LOGIN_TRANSIT | (1 << 2) | 3;
	memcpy(r.isid, isid, 6);
	r.tsih = pdu_put16(0xbeef);
	r.statsn = pdu_put32(5);
	r.status_class = 2;
	r.status_detail = 3;

	assert_int_equal(b[0], 0x23);
	assert_int_equal(b[1], 0x87);
	assert_int_equal(ISCSI_LOGIN_CSG(b[1]), 1);
	assert_int_equal(ISCSI_LOGIN_NSG(b[1]), 3);
	assert_memory_equal(b + 8, isid, 6);
	assert_int_equal(b[14], 0xbe);
	assert_int_equal(b[15], 0xef);
	assert_int_equal(b[27], 5);
	assert_int_equal(b[36], 2);
	assert_int_equal(b[37], 3);
}

static void test_bhs_r2t_and_logout_bytes(void **state)
{
	struct iscsi_r2t r;
	struct iscsi_logout_rsp l;
	struct iscsi_async a;
	const uint8_t *b;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.r2tsn = pdu_put32(0x01020304);
	r.buffer_offset = pdu_put32(0x00100000);
	r.desired_length = pdu_put32(0x00040000);
	b = (const uint8_t *)&r;
	assert_int_equal(b[36], 0x01);
	assert_int_equal(b[39], 0x04);
	assert_int_equal(b[41], 0x10);
	assert_int_equal(b[45], 0x04);

	memset(&l, 0, sizeof(l));
	l.time2wait = pdu_put16(0x0102);
	l.time2retain = pdu_put16(0x0304);
	b = (const uint8_t *)&l;
	assert_int_equal(b[40], 0x01);
	assert_int_equal(b[41], 0x02);
	assert_int_equal(b[42], 0x03);
	assert_int_equal(b[43], 0x04);

	memset(&a, 0, sizeof(a));
	a.event = 1;
	a.param3 = pdu_put16(3);
	b = (const uint8_t *)&a;
	assert_int_equal(b[36], 1);
	assert_int_equal(b[42], 0);
	assert_int_equal(b[43], 3);
}

/* ---- DataSegmentLength and padding (RFC 7143 11.2.1.4, 11.2.3) ---- */

static void test_dsl_round_trip(void **state)
{
	static const uint32_t v[] = { 0, 1, 3, 4, 255, 256, 8192, 65535, 65536, 262144,
				      0x123456, ISCSI_DSL_MAX };
	struct iscsi_bhs b;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		memset(&b, 0xa5, sizeof(b));
		pdu_set_dsl(&b, v[i]);
		assert_int_equal(pdu_dsl(&b), v[i]);
		/* big-endian on the wire, bytes 5..7, nothing else touched */
		assert_int_equal(b.dsl[0], (v[i] >> 16) & 0xff);
		assert_int_equal(b.dsl[1], (v[i] >> 8) & 0xff);
		assert_int_equal(b.dsl[2], v[i] & 0xff);
		assert_int_equal(b.total_ahs_len, 0xa5);
		assert_int_equal(b.lun[0], 0xa5);
	}
	/* 24 bits only: the top byte of a larger value is dropped */
	pdu_set_dsl(&b, 0x01000005);
	assert_int_equal(pdu_dsl(&b), 5);
}

static void test_pad(void **state)
{
	(void)state;
	assert_int_equal(pdu_pad(0), 0);
	assert_int_equal(pdu_pad(1), 3);
	assert_int_equal(pdu_pad(2), 2);
	assert_int_equal(pdu_pad(3), 1);
	assert_int_equal(pdu_pad(4), 0);
	assert_int_equal(pdu_pad(5), 3);
	assert_int_equal(pdu_pad(8191), 1);
	assert_int_equal(pdu_pad(ISCSI_DSL_MAX), 1);
	for (uint32_t n = 0; n < 64; n++)
		assert_int_equal((n + pdu_pad(n)) % 4, 0);
}

static void test_opcode_names(void **state)
{
	(void)state;
	assert_string_equal(pdu_opcode_name(ISCSI_OP_SCSI_CMD), "SCSI Command");
	assert_string_equal(pdu_opcode_name(ISCSI_OP_SCSI_CMD | ISCSI_FLAG_IMMEDIATE), "SCSI Command");
	assert_string_equal(pdu_opcode_name(ISCSI_OP_REJECT), "Reject");
	assert_string_equal(pdu_opcode_name(0x1c), "unknown");
}

/* ---- LUN addressing (SAM-5 4.7) ---- */

static void test_lun_peripheral(void **state)
{
	uint8_t lun[8] = { 0 };

	(void)state;
	assert_int_equal(pdu_lun_to_flat(lun), 0);
	lun[1] = 5;
	assert_int_equal(pdu_lun_to_flat(lun), 5);
	lun[1] = 255;
	assert_int_equal(pdu_lun_to_flat(lun), 255);
	/* peripheral device addressing with a bus number: not a LUN we serve */
	lun[0] = 0x01;
	assert_true(pdu_lun_to_flat(lun) == UINT64_MAX);
	lun[0] = 0x3f;
	assert_true(pdu_lun_to_flat(lun) == UINT64_MAX);
}

static void test_lun_flat_space(void **state)
{
	uint8_t lun[8] = { 0x40, 0x00 };

	(void)state;
	assert_int_equal(pdu_lun_to_flat(lun), 0);
	lun[0] = 0x41;
	lun[1] = 0x23;
	assert_int_equal(pdu_lun_to_flat(lun), 0x123);
	lun[0] = 0x7f;
	lun[1] = 0xff;
	assert_int_equal(pdu_lun_to_flat(lun), 0x3fff);
}

static void test_lun_rejected_methods(void **state)
{
	uint8_t lun[8] = { 0 };

	(void)state;
	/* logical unit addressing (10b) and extended addressing (11b) */
	lun[0] = 0x80;
	assert_true(pdu_lun_to_flat(lun) == UINT64_MAX);
	lun[0] = 0xc0;
	assert_true(pdu_lun_to_flat(lun) == UINT64_MAX);
	lun[0] = 0xd2;
	lun[1] = 0x01;
	assert_true(pdu_lun_to_flat(lun) == UINT64_MAX);
}

static void test_lun_trailing_bytes(void **state)
{
	(void)state;
	/* single level only: bytes 2..7 of a served LUN are zero */
	for (int i = 2; i < 8; i++) {
		uint8_t lun[8] = { 0x00, 0x05 };

		lun[i] = 0x01;
		assert_true(pdu_lun_to_flat(lun) == UINT64_MAX);
		lun[0] = 0x40;
		assert_true(pdu_lun_to_flat(lun) == UINT64_MAX);
	}
}

static void test_lun_flat_to_sam(void **state)
{
	uint8_t lun[8];

	(void)state;
	memset(lun, 0xee, sizeof(lun));
	pdu_flat_to_lun(0, lun);
	assert_memory_equal(lun, ((uint8_t[8]){ 0 }), 8);
	pdu_flat_to_lun(7, lun);
	assert_memory_equal(lun, ((uint8_t[8]){ 0x00, 0x07 }), 8);
	pdu_flat_to_lun(255, lun);
	assert_memory_equal(lun, ((uint8_t[8]){ 0x00, 0xff }), 8);
	/* 256 and up need flat space addressing */
	pdu_flat_to_lun(256, lun);
	assert_memory_equal(lun, ((uint8_t[8]){ 0x41, 0x00 }), 8);
	pdu_flat_to_lun(0x3fff, lun);
	assert_memory_equal(lun, ((uint8_t[8]){ 0x7f, 0xff }), 8);
	/* round trip over the whole flat space */
	for (uint64_t n = 0; n <= 0x3fff; n++) {
		pdu_flat_to_lun(n, lun);
		assert_true(pdu_lun_to_flat(lun) == n);
	}
}

/* ---- serial number arithmetic (RFC 1982 with SERIAL_BITS = 32) ---- */

static void test_sn_arithmetic(void **state)
{
	(void)state;
	assert_true(sn_lt(1, 2));
	assert_false(sn_lt(2, 1));
	assert_false(sn_lt(5, 5));
	assert_true(sn_le(5, 5));
	assert_true(sn_le(4, 5));
	assert_false(sn_le(6, 5));
	/* across the wrap: 0xffffffff comes just before 0 */
	assert_true(sn_lt(0xffffffffu, 0));
	assert_false(sn_lt(0, 0xffffffffu));
	assert_true(sn_le(0xffffffffu, 0));
	assert_true(sn_lt(0xfffffff0u, 0x10));
	assert_false(sn_lt(0x10, 0xfffffff0u));
	assert_true(sn_le(0xfffffff0u, 0xfffffff0u));
	/* the largest distance that still compares: 2^31 - 1 */
	assert_true(sn_lt(0, 0x7fffffffu));
	assert_false(sn_lt(0x7fffffffu, 0));
	assert_true(sn_lt(0x80000000u, 0xffffffffu));
	assert_true(sn_lt(0xc0000000u, 0x3fffffffu));
	assert_false(sn_lt(0x3fffffffu, 0xc0000000u));
	/* a window of 128 that straddles the wrap */
	uint32_t exp = 0xffffffc0u, max = exp + 127;
	assert_true(sn_le(exp, 0x3f) && sn_le(0x3f, max));
	assert_false(sn_le(0x40, max));
	assert_true(sn_lt(0xffffffbfu, exp));
}

/* ---- CRC32C (RFC 7143 B.4): ~crc, least significant byte first ---- */

/* A bitwise CRC32C (Castagnoli, reflected 0x82f63b78), independent of ISA-L. */
static uint32_t ref_crc32c(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void digest_bytes(const uint8_t *buf, size_t len, uint8_t out[4])
{
	uint32_t crc = ~pdu_crc32c(buf, len, PDU_CRC32C_INIT);

	/* as conn.c puts it on the wire */
	out[0] = (uint8_t)crc;
	out[1] = (uint8_t)(crc >> 8);
	out[2] = (uint8_t)(crc >> 16);
	out[3] = (uint8_t)(crc >> 24);
}

static void test_crc32c_vectors(void **state)
{
	uint8_t buf[32], d[4];

	(void)state;
	memset(buf, 0x00, sizeof(buf));
	digest_bytes(buf, 32, d);
	assert_memory_equal(d, ((uint8_t[4]){ 0xaa, 0x36, 0x91, 0x8a }), 4);
	assert_int_equal(ref_crc32c(buf, 32), 0x8a9136aau);

	memset(buf, 0xff, sizeof(buf));
	digest_bytes(buf, 32, d);
	assert_memory_equal(d, ((uint8_t[4]){ 0x43, 0xab, 0xa8, 0x62 }), 4);
	assert_int_equal(ref_crc32c(buf, 32), 0x62a8ab43u);

	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	digest_bytes(buf, 32, d);
	assert_memory_equal(d, ((uint8_t[4]){ 0x4e, 0x79, 0xdd, 0x46 }), 4);
	assert_int_equal(ref_crc32c(buf, 32), 0x46dd794eu);

	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	digest_bytes(buf, 32, d);
	assert_memory_equal(d, ((uint8_t[4]){ 0x5c, 0xdb, 0x3f, 0x11 }), 4);
	assert_int_equal(ref_crc32c(buf, 32), 0x113fdb5cu);
}

/* B.4's iSCSI Read command PDU and the usual check value "123456789". */
static void test_crc32c_pdu_vector(void **state)
{
	static const uint8_t read_pdu[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	uint8_t d[4];

	(void)state;
	digest_bytes(read_pdu, sizeof(read_pdu), d);
	assert_memory_equal(d, ((uint8_t[4]){ 0x56, 0x3a, 0x96, 0xd9 }), 4);
	assert_int_equal(~pdu_crc32c("123456789", 9, PDU_CRC32C_INIT), 0xe3069283u);
	assert_int_equal(ref_crc32c((const uint8_t *)"123456789", 9), 0xe3069283u);
}

/* Digests are computed over data then padding in pieces (conn.c): chaining
 * the un-inverted register must equal one pass. */
static void test_crc32c_chaining(void **state)
{
	uint8_t buf[1000];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	for (size_t split = 0; split <= sizeof(buf); split += 37) {
		uint32_t crc = pdu_crc32c(buf, split, PDU_CRC32C_INIT);

		crc = ~pdu_crc32c(buf + split, sizeof(buf) - split, crc);
		assert_int_equal(crc, ref_crc32c(buf, sizeof(buf)));
	}
	/* odd lengths exercise ISA-L's tail handling */
	for (size_t len = 0; len < 40; len++)
		assert_int_equal(~pdu_crc32c(buf, len, PDU_CRC32C_INIT), ref_crc32c(buf, len));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bhs_sizes),
		cmocka_unit_test(test_bhs_common_offsets),
		cmocka_unit_test(test_bhs_opcode_offsets),
		cmocka_unit_test(test_bhs_scsi_cmd_bytes),
		cmocka_unit_test(test_bhs_login_rsp_bytes),
		cmocka_unit_test(test_bhs_r2t_and_logout_bytes),
		cmocka_unit_test(test_dsl_round_trip),
		cmocka_unit_test(test_pad),
		cmocka_unit_test(test_opcode_names),
		cmocka_unit_test(test_lun_peripheral),
		cmocka_unit_test(test_lun_flat_space),
		cmocka_unit_test(test_lun_rejected_methods),
		cmocka_unit_test(test_lun_trailing_bytes),
		cmocka_unit_test(test_lun_flat_to_sam),
		cmocka_unit_test(test_sn_arithmetic),
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_crc32c_pdu_vector),
		cmocka_unit_test(test_crc32c_chaining),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
