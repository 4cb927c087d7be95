/*
 * Unit tests: SPC-4 emulation (spc.c, spc_inquiry.c, spc_rsoc.c) against a
 * fake block device. Nothing here needs sbc.c: spc_execute() and the
 * helpers are called the way the SBC dispatcher calls them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "scsi/spc.h"

#define BUF_LEN 4096
#define NEXUS_A 0x1111
#define NEXUS_B 0x2222
#define NEXUS_C 0x3333

static uint8_t buffer[BUF_LEN];
static struct spt_bdev bdev;
static struct spt_cmd cmd;
static int tmf_done_calls;

static void fake_submit(struct spt_bdev *b, struct spt_bdev_io *io)
{
	(void)b;
	io->done(io, -EIO);	/* nothing in SPC does I/O */
}

static const struct spt_bdev_ops fake_ops = { .submit = fake_submit };

static void noop_done(struct spt_cmd *c)
{
	(void)c;
}

static void tmf_done(struct spt_tmf *tmf)
{
	(void)tmf;
	tmf_done_calls++;
}

static void session_start(uint64_t handle, bool reinstated)
{
	struct spt_session_start ss;

	memset(&ss, 0, sizeof(ss));
	ss.itnexus_handle = handle;
	ss.is_reinstated = reinstated;
	spt_bdev_session_start(&bdev, &ss);
}

static void session_end(uint64_t handle)
{
	struct spt_session_end se = { .itnexus_handle = handle };

	spt_bdev_session_end(&bdev, &se);
}

static void fake_bdev_fill(bool thin, bool read_only)
{
	memset(&bdev, 0, sizeof(bdev));
	bdev.ops = &fake_ops;
	bdev.block_size = 512;
	bdev.num_blocks = 2048;
	bdev.read_only = read_only;
	bdev.thin = thin;
	bdev.write_cache = true;
	bdev.max_transfer_bytes = 4 * 1024 * 1024;
	strcpy(bdev.vendor, "VEND");
	strcpy(bdev.product, "DISK\x01" "X");	/* a control character to sanitize */
	strcpy(bdev.revision, "1.0");
	strcpy(bdev.serial, "SER123");
	bdev.naa = 0x3000112233445566ull;
	bdev.relative_port = 2;
	strcpy(bdev.target_name, "iqn.2024-01.test:tgt,t,0x0001");
}

static int setup_thin(void **state)
{
	(void)state;
	fake_bdev_fill(true, false);
	assert_int_equal(spt_bdev_init(&bdev), 0);
	session_start(NEXUS_A, false);
	session_start(NEXUS_B, false);
	tmf_done_calls = 0;
	return 0;
}

static int setup_thick_ro(void **state)
{
	(void)state;
	fake_bdev_fill(false, true);
	assert_int_equal(spt_bdev_init(&bdev), 0);
	session_start(NEXUS_A, false);
	session_start(NEXUS_B, false);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	spt_bdev_fini(&bdev);
	assert_null(bdev.state);
	return 0;
}

/* A command on NEXUS_A unless told otherwise. */
static void cmd_on(uint64_t nexus, const uint8_t *cdb, size_t cdb_len)
{
	memset(&cmd, 0, sizeof(cmd));
	memset(buffer, 0xee, sizeof(buffer));
	memcpy(cmd.req.cdb, cdb, cdb_len);
	cmd.req.cdb_length = (uint8_t)cdb_len;
	cmd.req.session_cookie = nexus;
	cmd.req.is_final = 1;
	cmd.buf = buffer;
	cmd.buf_len = BUF_LEN;
	cmd.done = noop_done;
}

static void run(uint64_t nexus, const uint8_t *cdb, size_t cdb_len)
{
	cmd_on(nexus, cdb, cdb_len);
	assert_true(spc_execute(&bdev, &cmd));
}

/* Sense key / ASC / ASCQ from fixed or descriptor sense. */
static void sense_of(const uint8_t *s, uint8_t *key, uint8_t *asc, uint8_t *ascq)
{
	if ((s[0] & 0x7f) == 0x72) {
		*key = s[1] & 0x0f;
		*asc = s[2];
		*ascq = s[3];
	} else {
		*key = s[2] & 0x0f;
		*asc = s[12];
		*ascq = s[13];
	}
}

/* Sense key specific bytes (SKSV set) from either format; NULL if none. */
static const uint8_t *sks_of(const uint8_t *s, size_t len)
{
	if ((s[0] & 0x7f) == 0x72) {
		for (size_t i = 8; i + 1 < len; i += 2 + s[i + 1])
			if (s[i] == 0x02)
				return (s[i + 4] & 0x80) ? &s[i + 4] : NULL;
		return NULL;
	}
	return (s[15] & 0x80) ? &s[15] : NULL;
}

static void expect_sense(uint8_t key, uint8_t asc, uint8_t ascq)
{
	uint8_t k, a, q;

	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_CHECK_CONDITION);
	sense_of(cmd.cpl.sense, &k, &a, &q);
	assert_int_equal(k, key);
	assert_int_equal(a, asc);
	assert_int_equal(q, ascq);
}

/* INVALID FIELD IN CDB/PARAMETER LIST with the field pointer. */
static void expect_invalid(uint8_t asc, uint16_t byte, int bit)
{
	const uint8_t *sks;

	expect_sense(SPT_KEY_ILLEGAL_REQUEST, asc, 0x00);
	sks = sks_of(cmd.cpl.sense, cmd.cpl.sense_length);
	assert_non_null(sks);
	assert_int_equal(!!(sks[0] & 0x40), asc == 0x24);
	if (bit >= 0) {
		assert_true(sks[0] & 0x08);
		assert_int_equal(sks[0] & 0x07, bit);
	} else {
		assert_false(sks[0] & 0x08);
	}
	assert_int_equal(spt_get_be16(&sks[1]), byte);
}

static void expect_good(void)
{
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(cmd.cpl.sense_length, 0);
}

/* ------------------------------------------------------------------ */

static void test_init_rejects_bad_block_size(void **state)
{
	struct spt_bdev b;

	(void)state;
	memset(&b, 0, sizeof(b));
	b.block_size = 520;
	assert_int_equal(spt_bdev_init(&b), -EINVAL);
	b.block_size = 256;
	assert_int_equal(spt_bdev_init(&b), -EINVAL);
	b.block_size = 4096;
	assert_int_equal(spt_bdev_init(&b), 0);
	spt_bdev_fini(&b);
	spt_bdev_fini(&b);	/* twice is harmless */
}

static void test_not_spc(void **state)
{
	uint8_t read10[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	uint8_t report_luns[12] = { 0xa0 };

	(void)state;
	cmd_on(NEXUS_A, read10, 10);
	assert_false(spc_execute(&bdev, &cmd));
	cmd_on(NEXUS_A, report_luns, 12);
	assert_false(spc_execute(&bdev, &cmd));
}

static void test_data_in_bounded(void **state)
{
	uint8_t src[64];

	(void)state;
	memset(src, 0x5a, sizeof(src));
	cmd_on(NEXUS_A, (const uint8_t[]){ 0x12 }, 1);
	cmd.buf_len = 10;
	spc_data_in(&cmd, src, sizeof(src));
	assert_int_equal(cmd.cpl.data_in_length, 10);
	assert_int_equal(cmd.cpl.transfer_length, 64);
	assert_int_equal(buffer[9], 0x5a);
	assert_int_equal(buffer[10], 0xee);
}

/* ---- INQUIRY ---- */

static void test_inquiry_standard(void **state)
{
	uint8_t cdb[6] = { 0x12, 0, 0, 0x01, 0x04, 0 };	/* 260 bytes */

	(void)state;
	run(NEXUS_A, cdb, 6);
	expect_good();
	assert_int_equal(cmd.cpl.data_in_length, 96);
	assert_int_equal(cmd.cpl.transfer_length, 96);
	assert_int_equal(buffer[0], 0x00);
	assert_int_equal(buffer[1] & 0x80, 0);		/* RMB */
	assert_int_equal(buffer[2], 0x06);
	assert_int_equal(buffer[3], 0x12);		/* HISUP, format 2 */
	assert_int_equal(buffer[4], 96 - 5);
	assert_int_equal(buffer[7] & 0x02, 0x02);	/* CMDQUE */
	assert_memory_equal(&buffer[8], "VEND    ", 8);
	assert_memory_equal(&buffer[16], "DISK X          ", 16);
	assert_memory_equal(&buffer[32], "1.0 ", 4);
	assert_int_equal(spt_get_be16(&buffer[58]), 0x00a0);
	assert_int_equal(spt_get_be16(&buffer[60]), 0x0960);
	assert_int_equal(spt_get_be16(&buffer[62]), 0x0460);
	assert_int_equal(spt_get_be16(&buffer[64]), 0x04c0);
}

static void test_inquiry_alloc_length(void **state)
{
	uint8_t cdb[6] = { 0x12, 0, 0, 0, 0, 0 };

	(void)state;
	for (unsigned alloc = 0; alloc < 256; alloc++) {
		cdb[4] = (uint8_t)alloc;
		run(NEXUS_A, cdb, 6);
		expect_good();
		assert_int_equal(cmd.cpl.transfer_length, alloc < 96 ? alloc : 96);
	}
}

static void test_inquiry_invalid(void **state)
{
	uint8_t cdb[6] = { 0x12, 0, 0x80, 0, 0xff, 0 };

	(void)state;
	run(NEXUS_A, cdb, 6);		/* EVPD=0 with a page code */
	expect_invalid(0x24, 2, -1);
	assert_int_equal(cmd.cpl.data_in_length, 0);
	cdb[1] = 0x02;			/* CMDDT */
	cdb[2] = 0;
	run(NEXUS_A, cdb, 6);
	expect_invalid(0x24, 1, 1);
	cdb[1] = 0x01;			/* unknown VPD page */
	cdb[2] = 0x89;
	run(NEXUS_A, cdb, 6);
	expect_invalid(0x24, 2, -1);
}

static void test_vpd_supported_pages(void **state)
{
	static const uint8_t want[] = { 0x00, 0x80, 0x83, 0x8f, 0xb0, 0xb1, 0xb2 };
	uint8_t cdb[6] = { 0x12, 0x01, 0x00, 0, 0xff, 0 };
	uint8_t pages[16];
	uint16_t n;

	(void)state;
	run(NEXUS_A, cdb, 6);
	expect_good();
	n = spt_get_be16(&buffer[2]);
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(&buffer[4], want, sizeof(want));
	memcpy(pages, &buffer[4], n);
	/* every listed page reads back, its length matching the data */
	for (uint16_t i = 0; i < n; i++) {
		cdb[2] = pages[i];
		run(NEXUS_A, cdb, 6);
		expect_good();
		assert_int_equal(buffer[1], pages[i]);
		assert_int_equal(cmd.cpl.data_in_length, spt_get_be16(&buffer[2]) + 4u);
	}
}

static void test_vpd_serial(void **state)
{
	uint8_t cdb[6] = { 0x12, 0x01, 0x80, 0, 0xff, 0 };

	(void)state;
	run(NEXUS_A, cdb, 6);
	expect_good();
	assert_int_equal(spt_get_be16(&buffer[2]), 6);
	assert_memory_equal(&buffer[4], "SER123", 6);

	bdev.serial[0] = '\0';
	run(NEXUS_A, cdb, 6);
	expect_good();
	assert_int_equal(spt_get_be16(&buffer[2]), 4);
	assert_memory_equal(&buffer[4], "    ", 4);
}

static void test_vpd_device_identification(void **state)
{
	uint8_t cdb[6] = { 0x12, 0x01, 0x83, 0x01, 0x00, 0 };
	const char *name = "iqn.2024-01.test:tgt,t,0x0001";
	uint32_t len, pos = 4;
	int seen = 0;

	(void)state;
	run(NEXUS_A, cdb, 6);
	expect_good();
	len = spt_get_be16(&buffer[2]) + 4u;
	assert_int_equal(cmd.cpl.data_in_length, len);
	while (pos + 4 <= len) {
		uint8_t *d = &buffer[pos];
		uint8_t type = d[1] & 0x0f, assoc = (d[1] >> 4) & 3;

		switch (type) {
		case 0x3:	/* NAA, LU */
			assert_int_equal(d[0] & 0x0f, 1);
			assert_int_equal(assoc, 0);
			assert_int_equal(d[3], 8);
			assert_true(spt_get_be64(&d[4]) == 0x3000112233445566ull);
			seen |= 1;
			break;
		case 0x1:	/* T10 vendor ID */
			assert_int_equal(d[0] & 0x0f, 2);
			assert_int_equal(d[3], 8 + 6);
			assert_memory_equal(&d[4], "SPT     SER123", 14);
			seen |= 2;
			break;
		case 0x4:	/* relative target port */
			assert_int_equal(d[0], 0x51);
			assert_int_equal(d[1], 0x94);
			assert_int_equal(spt_get_be16(&d[6]), 2);
			seen |= 4;
			break;
		case 0x5:	/* target port group (issue 5: ALUA), = the relative port */
			assert_int_equal(d[0], 0x01);
			assert_int_equal(d[1], 0x15);
			assert_int_equal(spt_get_be16(&d[6]), 2);
			seen |= 16;
			break;
		case 0x8:	/* SCSI name string of the target port */
			assert_int_equal(d[0], 0x53);
			assert_int_equal(d[1], 0x98);
			assert_int_equal(d[3] % 4, 0);
			assert_true(d[3] > strlen(name));
			assert_memory_equal(&d[4], name, strlen(name));
			assert_int_equal(d[4 + strlen(name)], 0);
			seen |= 8;
			break;
		default:
			fail_msg("unexpected designator type %u", type);
		}
		pos += 4u + d[3];
	}
	assert_int_equal(pos, len);
	assert_int_equal(seen, 31);

	/* no target name: no SCSI name string designator */
	bdev.target_name[0] = '\0';
	bdev.relative_port = 0;
	run(NEXUS_A, cdb, 6);
	assert_int_equal(spt_get_be16(&buffer[2]), 12 + 18 + 8 + 8);
	assert_int_equal(spt_get_be16(&buffer[4 + 12 + 18 + 6]), 1);	/* port 0 is reserved */
}

static void test_vpd_block_limits_thin(void **state)
{
	uint8_t cdb[6] = { 0x12, 0x01, 0xb0, 0, 64, 0 };

	(void)state;
	run(NEXUS_A, cdb, 6);
	expect_good();
	assert_int_equal(cmd.cpl.data_in_length, 64);
	assert_int_equal(buffer[3], 0x3c);
	assert_int_equal(buffer[4] & 0x01, SPC_WRITE_SAME_NO_ZERO);
	assert_int_equal(buffer[5], 255);	/* MAXIMUM COMPARE AND WRITE LENGTH */
	assert_int_equal(spt_get_be16(&buffer[6]), 8);
	assert_int_equal(spt_get_be32(&buffer[8]), 8192);	/* 4 MiB / 512 */
	assert_int_equal(spt_get_be32(&buffer[12]), 2048);	/* 1 MiB / 512 */
	assert_int_equal(spt_get_be32(&buffer[20]), SPC_MAX_UNMAP_LBA_COUNT);
	assert_int_equal(spt_get_be32(&buffer[24]), SPC_MAX_UNMAP_DESCRIPTORS);
	assert_int_equal(spt_get_be32(&buffer[28]), 8);
	assert_int_equal(spt_get_be32(&buffer[32]), 0x80000000u);
	assert_true(spt_get_be64(&buffer[36]) == SPC_MAX_WRITE_SAME_BLOCKS);
}

static void test_vpd_block_limits_thick(void **state)
{
	uint8_t cdb[6] = { 0x12, 0x01, 0xb0, 0, 64, 0 };

	(void)state;
	bdev.max_transfer_bytes = 256 * 1024;
	run(NEXUS_A, cdb, 6);
	expect_good();
	assert_int_equal(spt_get_be32(&buffer[8]), 512);
	assert_int_equal(spt_get_be32(&buffer[12]), 512);	/* capped at the maximum */
	assert_int_equal(spt_get_be32(&buffer[20]), 0);
	assert_int_equal(spt_get_be32(&buffer[24]), 0);
	assert_int_equal(spt_get_be32(&buffer[28]), 0);
}

static void test_vpd_characteristics_provisioning(void **state)
{
	uint8_t cdb[6] = { 0x12, 0x01, 0xb1, 0, 0xff, 0 };

	(void)state;
	run(NEXUS_A, cdb, 6);
	expect_good();
	assert_int_equal(spt_get_be16(&buffer[2]), 0x3c);
	assert_int_equal(spt_get_be16(&buffer[4]), 1);	/* non-rotating */

	cdb[2] = 0xb2;
	run(NEXUS_A, cdb, 6);
	expect_good();
	assert_int_equal(spt_get_be16(&buffer[2]), 4);
	assert_int_equal(buffer[4], 0);
	assert_int_equal(buffer[5], 0x80 | 0x40 | 0x20 | 0x04);
	assert_int_equal(buffer[6] & 0x07, 2);

	bdev.thin = false;
	run(NEXUS_A, cdb, 6);
	assert_int_equal(buffer[5], 0);
	assert_int_equal(buffer[6] & 0x07, 0);
}

/* ---- MODE SENSE ---- */

static void mode_sense6(uint8_t dbd_flags, uint8_t pc_page, uint8_t subpage, uint8_t alloc)
{
	uint8_t cdb[6] = { 0x1a, dbd_flags, pc_page, subpage, alloc, 0 };

	run(NEXUS_A, cdb, 6);
}

static void mode_sense10(uint8_t flags, uint8_t pc_page, uint8_t subpage, uint16_t alloc)
{
	uint8_t cdb[10] = { 0x5a, flags, pc_page, subpage, 0, 0, 0, 0, 0, 0 };

	spt_put_be16(&cdb[7], alloc);
	run(NEXUS_A, cdb, 10);
}

/* Finds a page in MODE SENSE data; NULL if absent. */
static const uint8_t *find_page(const uint8_t *d, uint32_t len, uint32_t first, uint8_t page)
{
	for (uint32_t pos = first; pos + 2 <= len; pos += 2u + d[pos + 1])
		if ((d[pos] & 0x3f) == page)
			return &d[pos];
	return NULL;
}

static void test_mode_sense6_all_pages(void **state)
{
	const uint8_t *p;
	uint32_t len;

	(void)state;
	mode_sense6(0, 0x3f, 0, 255);
	expect_good();
	len = cmd.cpl.data_in_length;
	assert_int_equal(len, 4 + 8 + 20 + 12 + 12);
	assert_int_equal(buffer[0], len - 1);
	assert_int_equal(buffer[1], 0);
	assert_int_equal(buffer[2], 0x10);		/* DPOFUA, not WP */
	assert_int_equal(buffer[3], 8);
	assert_int_equal(spt_get_be32(&buffer[4]), 2048);
	assert_int_equal(spt_get_be24(&buffer[9]), 512);
	p = find_page(buffer, len, 12, 0x08);
	assert_non_null(p);
	assert_int_equal(p[1], 0x12);
	assert_int_equal(p[2] & 0x04, 0x04);		/* WCE from write_cache */
	assert_int_equal(p[2] & 0x01, 0);		/* RCD */
	p = find_page(buffer, len, 12, 0x0a);
	assert_non_null(p);
	assert_int_equal(p[1], 0x0a);
	assert_int_equal(p[2] & 0x04, 0);		/* D_SENSE */
	assert_int_equal(p[3] >> 4, 1);			/* QAM */
	assert_int_equal(p[3] & 0x06, 0);		/* QERR */
	assert_int_equal(p[5] & 0x40, 0);		/* TAS */
	assert_int_equal(p[2] >> 5, 0);			/* TST */
	assert_int_equal(spt_get_be16(&p[8]), 0xffff);
	p = find_page(buffer, len, 12, 0x1c);
	assert_non_null(p);
	assert_int_equal(p[2] & 0x08, 0x08);		/* DEXCPT */

	/* subpage FFh: all pages and subpages, the same here */
	mode_sense6(0x08, 0x3f, 0xff, 255);
	expect_good();
	assert_int_equal(cmd.cpl.data_in_length, 4 + 20 + 12 + 12);
	assert_int_equal(buffer[3], 0);
}

static void test_mode_sense6_residuals(void **state)
{
	(void)state;
	mode_sense6(0, 0x3f, 0, 4);
	expect_good();
	assert_int_equal(cmd.cpl.data_in_length, 4);
	assert_int_equal(cmd.cpl.transfer_length, 4);
	assert_int_equal(buffer[0], 55);	/* the full length is still reported */
}

static void test_mode_sense6_single_page(void **state)
{
	const uint8_t *p;

	(void)state;
	mode_sense6(0x08, 0x0a, 0, 255);
	expect_good();
	assert_int_equal(cmd.cpl.data_in_length, 4 + 12);
	p = &buffer[4];
	assert_int_equal(p[0], 0x0a);
	assert_int_equal(p[1], 0x0a);
	mode_sense6(0x08, 0x08, 0xff, 255);
	expect_good();
	assert_int_equal(buffer[4], 0x08);
}

static void test_mode_sense_changeable_default(void **state)
{
	const uint8_t *p;

	(void)state;
	mode_sense6(0, 0x40 | 0x3f, 0, 255);
	expect_good();
	assert_int_equal(buffer[3], 8);
	assert_int_equal(spt_get_be32(&buffer[4]), 0);	/* descriptor is a mask */
	p = find_page(buffer, cmd.cpl.data_in_length, 12, 0x08);
	assert_int_equal(p[2], 0x04);
	for (int i = 3; i < 20; i++)
		assert_int_equal(p[i], 0);
	p = find_page(buffer, cmd.cpl.data_in_length, 12, 0x0a);
	assert_int_equal(p[2], 0x04);
	assert_int_equal(p[3], 0x00);
	assert_int_equal(p[4], 0x08);
	assert_int_equal(p[5], 0x00);
	p = find_page(buffer, cmd.cpl.data_in_length, 12, 0x1c);
	for (int i = 2; i < 12; i++)
		assert_int_equal(p[i], 0);

	mode_sense6(0x08, 0x80 | 0x0a, 0, 255);	/* default */
	expect_good();
	assert_int_equal(buffer[4 + 2] & 0x04, 0);

	mode_sense6(0x08, 0xc0 | 0x0a, 0, 255);	/* saved */
	expect_sense(SPT_KEY_ILLEGAL_REQUEST, 0x39, 0x00);
}

static void test_mode_sense_invalid(void **state)
{
	(void)state;
	mode_sense6(0, 0x19, 0, 255);		/* a page this LU lacks */
	expect_invalid(0x24, 2, 5);
	mode_sense6(0, 0x0a, 0x01, 255);	/* a subpage it lacks */
	expect_invalid(0x24, 3, -1);
	mode_sense10(0, 0x00, 0, 255);
	expect_invalid(0x24, 2, 5);
}

static void test_mode_sense10(void **state)
{
	(void)state;
	bdev.num_blocks = 0x123456789ull;
	mode_sense10(0x10, 0x3f, 0, 1024);	/* LLBAA */
	expect_good();
	assert_int_equal(cmd.cpl.data_in_length, 8 + 16 + 44);
	assert_int_equal(spt_get_be16(&buffer[0]), 8 + 16 + 44 - 2);
	assert_int_equal(buffer[3], 0x10);
	assert_int_equal(buffer[4] & 0x01, 1);	/* LONGLBA */
	assert_int_equal(spt_get_be16(&buffer[6]), 16);
	assert_true(spt_get_be64(&buffer[8]) == 0x123456789ull);
	assert_int_equal(spt_get_be32(&buffer[20]), 512);

	mode_sense10(0, 0x3f, 0, 1024);		/* short descriptor saturates */
	expect_good();
	assert_int_equal(buffer[4] & 0x01, 0);
	assert_int_equal(spt_get_be16(&buffer[6]), 8);
	assert_int_equal(spt_get_be32(&buffer[8]), 0xffffffffu);

	mode_sense10(0x18, 0x3f, 0, 1024);	/* DBD wins over LLBAA */
	expect_good();
	assert_int_equal(buffer[4] & 0x01, 0);
	assert_int_equal(spt_get_be16(&buffer[6]), 0);

	mode_sense10(0x08, 0x3f, 0, 10);
	assert_int_equal(cmd.cpl.transfer_length, 10);
}

static void test_mode_sense_write_protect(void **state)
{
	(void)state;
	mode_sense6(0x08, 0x08, 0, 255);
	assert_int_equal(buffer[2], 0x90);	/* WP | DPOFUA */
	assert_true(spc_write_protect_active(&bdev));
	cmd_on(NEXUS_A, (const uint8_t[]){ 0x2a }, 1);
	assert_true(spc_write_protected(&bdev, &cmd));
	expect_sense(SPT_KEY_DATA_PROTECT, 0x27, 0x00);
}

/* ---- MODE SELECT ---- */

/* MODE SELECT with the parameter list already in the buffer. */
static void mode_select(bool ten, uint8_t flags, const uint8_t *param, uint32_t len,
			uint64_t nexus)
{
	uint8_t cdb[10] = { 0 };

	cdb[0] = ten ? 0x55 : 0x15;
	cdb[1] = flags;
	if (ten)
		spt_put_be16(&cdb[7], (uint16_t)len);
	else
		cdb[4] = (uint8_t)len;
	cmd_on(nexus, cdb, ten ? 10 : 6);
	memcpy(buffer, param, len);
	cmd.req.data_length = len;
	cmd.req.expected_length = len;
	assert_true(spc_execute(&bdev, &cmd));
}

/* Reads the current page with MODE SENSE(6) DBD=1 into a MODE SELECT(6)
 * parameter list, the way libiscsi and Linux do it. */
static uint32_t current_page_param(uint8_t page, uint8_t *param)
{
	uint32_t len;

	mode_sense6(0x08, page, 0, 255);
	expect_good();
	len = cmd.cpl.data_in_length;
	memcpy(param, buffer, len);
	param[0] = 0;	/* MODE DATA LENGTH is reserved in MODE SELECT */
	param[2] = 0;
	return len;
}

static bool take_ua(uint64_t nexus, uint8_t asc, uint8_t ascq)
{
	uint8_t tur[6] = { 0 };

	cmd_on(nexus, tur, 6);
	if (!spc_report_unit_attention(&bdev, &cmd))
		return false;
	expect_sense(SPT_KEY_UNIT_ATTENTION, asc, ascq);
	return true;
}

static void test_mode_select_wce(void **state)
{
	uint8_t param[64];
	uint32_t len;

	(void)state;
	assert_true(spc_write_cache_enabled(&bdev));
	len = current_page_param(0x08, param);
	param[4 + 2] &= (uint8_t)~0x04;
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_good();
	assert_int_equal(cmd.cpl.transfer_length, len);
	assert_false(spc_write_cache_enabled(&bdev));
	mode_sense6(0x08, 0x08, 0, 255);
	assert_int_equal(buffer[4 + 2] & 0x04, 0);

	/* SPC-4 6.11: the other I_T nexus is told, the issuer is not */
	assert_false(take_ua(NEXUS_A, 0, 0));
	assert_true(take_ua(NEXUS_B, 0x2a, 0x01));
	assert_false(take_ua(NEXUS_B, 0, 0));

	/* no change, no unit attention */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_good();
	assert_false(take_ua(NEXUS_B, 0, 0));
}

static void test_mode_select_d_sense_swp(void **state)
{
	uint8_t param[64];
	uint8_t bad_inquiry[6] = { 0x12, 0, 0x83, 0, 0xff, 0 };
	uint32_t len;

	(void)state;
	len = current_page_param(0x0a, param);
	param[4 + 2] |= 0x04;	/* D_SENSE */
	param[4 + 4] |= 0x08;	/* SWP */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_good();
	assert_true(spc_sense_descriptor(&bdev));
	assert_true(spc_write_protect_active(&bdev));

	run(NEXUS_A, bad_inquiry, 6);
	assert_int_equal(cmd.cpl.sense[0], 0x72);
	expect_invalid(0x24, 2, -1);

	cmd_on(NEXUS_A, (const uint8_t[]){ 0x2a }, 1);
	assert_true(spc_write_protected(&bdev, &cmd));
	expect_sense(SPT_KEY_DATA_PROTECT, 0x27, 0x02);
	mode_sense6(0x08, 0x0a, 0, 255);
	assert_int_equal(buffer[2] & 0x80, 0x80);
	assert_int_equal(buffer[4 + 4] & 0x08, 0x08);

	/* and back, with MODE SELECT(10) */
	mode_sense10(0x08, 0x0a, 0, 255);
	len = cmd.cpl.data_in_length;
	memcpy(param, buffer, len);
	param[0] = param[1] = 0;
	param[3] = 0;
	param[8 + 2] &= (uint8_t)~0x04;
	param[8 + 4] &= (uint8_t)~0x08;
	mode_select(true, 0x10, param, len, NEXUS_A);
	expect_good();
	assert_false(spc_sense_descriptor(&bdev));
	cmd_on(NEXUS_A, (const uint8_t[]){ 0x2a }, 1);
	assert_false(spc_write_protected(&bdev, &cmd));
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
}

static void test_mode_select_not_changeable(void **state)
{
	uint8_t param[64];
	uint32_t len;

	(void)state;
	len = current_page_param(0x0a, param);
	param[4 + 5] |= 0x40;	/* TAS */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 4 + 5, 6);

	len = current_page_param(0x08, param);
	param[4 + 2] |= 0x01;	/* RCD */
	param[4 + 2] &= (uint8_t)~0x04;	/* and a legal WCE change: must not apply */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 4 + 2, 0);
	assert_true(spc_write_cache_enabled(&bdev));

	len = current_page_param(0x1c, param);
	param[4 + 2] &= (uint8_t)~0x08;	/* DEXCPT */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 4 + 2, 3);
}

static void test_mode_select_cdb_errors(void **state)
{
	uint8_t param[64];
	uint32_t len;

	(void)state;
	len = current_page_param(0x08, param);
	mode_select(false, 0x11, param, len, NEXUS_A);	/* SP */
	expect_invalid(0x24, 1, 0);
	mode_select(false, 0x00, param, len, NEXUS_A);	/* PF=0 with a page */
	expect_invalid(0x24, 1, 4);
	mode_select(false, 0x00, param, 4, NEXUS_A);	/* header only, PF=0 */
	expect_good();
	mode_select(false, 0x10, param, 0, NEXUS_A);	/* nothing at all */
	expect_good();
}

static void test_mode_select_length_errors(void **state)
{
	uint8_t param[64];
	uint32_t len;

	(void)state;
	len = current_page_param(0x08, param);
	mode_select(false, 0x10, param, 3, NEXUS_A);		/* short header */
	expect_sense(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	mode_select(false, 0x10, param, len - 1, NEXUS_A);	/* cut page */
	expect_sense(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	mode_select(false, 0x10, param, 5, NEXUS_A);		/* cut page header */
	expect_sense(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);

	/* less data arrived than the CDB announced */
	mode_select(false, 0x10, param, len, NEXUS_A);
	cmd.req.data_length = len - 4;
	cmd.cpl.scsi_status = 0;
	cmd.cpl.sense_length = 0;
	assert_true(spc_execute(&bdev, &cmd));
	expect_sense(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);

	param[4 + 1] = 0x0a;	/* wrong PAGE LENGTH for Caching */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 4 + 1, -1);

	param[4 + 1] = 0x12;
	param[4] = 0x19;	/* a page this LU lacks */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 4, 5);

	param[4] = 0x48;	/* sub_page format */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 4, 6);
}

static void test_mode_select_block_descriptor(void **state)
{
	uint8_t param[64];
	uint32_t len;

	(void)state;
	mode_sense6(0, 0x08, 0, 255);
	len = cmd.cpl.data_in_length;
	memcpy(param, buffer, len);
	param[0] = param[2] = 0;
	param[12 + 2] &= (uint8_t)~0x04;
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_good();
	assert_false(spc_write_cache_enabled(&bdev));

	spt_put_be32(&param[4], 0);		/* zero blocks: no change */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_good();

	spt_put_be32(&param[4], 1000);		/* resizing is not possible */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 4, -1);

	spt_put_be32(&param[4], 2048);
	spt_put_be24(&param[9], 4096);		/* nor is a new block length */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 9, -1);

	spt_put_be24(&param[9], 512);
	param[3] = 7;				/* bad BLOCK DESCRIPTOR LENGTH */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 3, -1);

	param[3] = 8;
	mode_select(false, 0x10, param, 10, NEXUS_A);	/* cut descriptor */
	expect_sense(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
}

static void test_mode_select10_long_descriptor(void **state)
{
	uint8_t param[64];
	uint32_t len;

	(void)state;
	mode_sense10(0x10, 0x08, 0, 255);
	len = cmd.cpl.data_in_length;
	assert_int_equal(len, 8 + 16 + 20);
	memcpy(param, buffer, len);
	param[0] = param[1] = param[3] = 0;
	mode_select(true, 0x10, param, len, NEXUS_A);
	expect_good();
	spt_put_be64(&param[8], 4096);
	mode_select(true, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 8, -1);
	spt_put_be64(&param[8], 2048);
	param[4] = 0;			/* 16 bytes without LONGLBA */
	mode_select(true, 0x10, param, len, NEXUS_A);
	expect_invalid(0x26, 6, -1);
}

static void test_mode_select_waits_for_final(void **state)
{
	uint8_t param[64];
	uint32_t len;

	(void)state;
	len = current_page_param(0x08, param);
	param[4 + 2] &= (uint8_t)~0x04;
	mode_select(false, 0x10, param, len, NEXUS_A);
	/* that ran as final; now the same as a first, non-final sequence */
	param[4 + 2] |= 0x04;
	mode_select(false, 0x10, param, 0, NEXUS_A);
	cmd_on(NEXUS_A, (const uint8_t[]){ 0x15, 0x10, 0, 0, (uint8_t)len, 0 }, 6);
	memcpy(buffer, param, len);
	cmd.req.is_final = 0;
	cmd.req.data_length = 8;
	assert_true(spc_execute(&bdev, &cmd));
	expect_good();
	assert_false(spc_write_cache_enabled(&bdev));
	cmd.req.is_final = 1;
	cmd.req.sequence_byte_offset = 8;
	cmd.req.data_length = len - 8;
	assert_true(spc_execute(&bdev, &cmd));
	expect_good();
	assert_true(spc_write_cache_enabled(&bdev));
}

/* ---- TEST UNIT READY, START STOP UNIT, REQUEST SENSE ---- */

static void start_stop(uint8_t byte1, uint8_t byte3, uint8_t byte4)
{
	uint8_t cdb[6] = { 0x1b, byte1, 0, byte3, byte4, 0 };

	run(NEXUS_A, cdb, 6);
}

static void test_start_stop_tur(void **state)
{
	uint8_t tur[6] = { 0 };
	uint8_t rs[6] = { 0x03, 0, 0, 0, 252, 0 };

	(void)state;
	run(NEXUS_A, tur, 6);
	expect_good();

	start_stop(0x01, 0, 0x00);	/* IMMED, stop */
	expect_good();
	run(NEXUS_A, tur, 6);
	expect_sense(SPT_KEY_NOT_READY, 0x04, 0x02);
	cmd_on(NEXUS_A, (const uint8_t[]){ 0x28 }, 1);
	assert_false(spc_unit_ready(&bdev, &cmd));
	expect_sense(SPT_KEY_NOT_READY, 0x04, 0x02);
	run(NEXUS_A, rs, 6);
	expect_good();
	assert_int_equal(buffer[2], 0x02);
	assert_int_equal(buffer[12], 0x04);
	assert_int_equal(buffer[13], 0x02);
	/* INQUIRY works on a stopped LU */
	run(NEXUS_A, (const uint8_t[]){ 0x12, 0, 0, 0, 36, 0 }, 6);
	expect_good();

	start_stop(0, 0, 0x01);		/* start */
	expect_good();
	run(NEXUS_A, tur, 6);
	expect_good();
	cmd_on(NEXUS_A, (const uint8_t[]){ 0x28 }, 1);
	assert_true(spc_unit_ready(&bdev, &cmd));
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
}

static void test_start_stop_loej_and_power(void **state)
{
	uint8_t tur[6] = { 0 };

	(void)state;
	start_stop(0x01, 0, 0x02);	/* eject: not removable */
	expect_invalid(0x24, 4, 1);
	start_stop(0, 0, 0x03);		/* load */
	expect_invalid(0x24, 4, 1);
	run(NEXUS_A, tur, 6);
	expect_good();

	start_stop(0, 0, 0x00);		/* stop, then ACTIVE brings it back */
	start_stop(0, 0, 0x10);
	expect_good();
	run(NEXUS_A, tur, 6);
	expect_good();

	start_stop(0, 2, 0x20);		/* IDLE, idle_c */
	expect_good();
	start_stop(0, 3, 0x20);
	expect_invalid(0x24, 3, 3);
	start_stop(0, 1, 0x30);		/* STANDBY, standby_y */
	expect_good();
	start_stop(0, 0, 0x52);		/* reserved power condition */
	expect_invalid(0x24, 4, 7);
	start_stop(0, 0, 0xb0);		/* FORCE_STANDBY_0 */
	expect_good();
}

static void test_stop_needs_flush(void **state)
{
	(void)state;
	cmd_on(NEXUS_A, (const uint8_t[]){ 0x1b, 0, 0, 0, 0x00, 0 }, 6);
	assert_true(spc_stop_needs_flush(&bdev, &cmd));
	cmd.req.cdb[4] = 0x04;		/* NO_FLUSH */
	assert_false(spc_stop_needs_flush(&bdev, &cmd));
	cmd.req.cdb[4] = 0x01;		/* start */
	assert_false(spc_stop_needs_flush(&bdev, &cmd));
	cmd.req.cdb[4] = 0x30;		/* power condition */
	assert_false(spc_stop_needs_flush(&bdev, &cmd));
	cmd.req.cdb[0] = 0x00;
	cmd.req.cdb[4] = 0x00;
	assert_false(spc_stop_needs_flush(&bdev, &cmd));
}

static void test_request_sense_no_sense(void **state)
{
	uint8_t rs[6] = { 0x03, 0, 0, 0, 252, 0 };

	(void)state;
	run(NEXUS_A, rs, 6);
	expect_good();
	assert_int_equal(cmd.cpl.data_in_length, 18);
	assert_int_equal(buffer[0], 0x70);
	assert_int_equal(buffer[2], 0);
	assert_int_equal(buffer[12], 0);
	rs[1] = 0x01;
	run(NEXUS_A, rs, 6);
	expect_good();
	assert_int_equal(cmd.cpl.data_in_length, 8);
	assert_int_equal(buffer[0], 0x72);
	rs[4] = 4;
	run(NEXUS_A, rs, 6);
	assert_int_equal(cmd.cpl.data_in_length, 4);
}

static void test_prevent_allow(void **state)
{
	uint8_t cdb[6] = { 0x1e, 0, 0, 0, 0x01, 0 };

	(void)state;
	run(NEXUS_A, cdb, 6);
	expect_good();
	cdb[4] = 0x00;
	run(NEXUS_A, cdb, 6);
	expect_good();
	cdb[4] = 0x02;
	run(NEXUS_A, cdb, 6);
	expect_invalid(0x24, 4, 1);
	cdb[4] = 0x01;
	run(NEXUS_C, cdb, 6);		/* unknown nexus: still fine */
	expect_good();
}

/* ---- unit attentions, sessions, TMFs ---- */

static void tmf(uint64_t nexus, uint32_t function, uint32_t want)
{
	struct spt_tmf t;
	int before = tmf_done_calls;

	memset(&t, 0, sizeof(t));
	t.w.itnexus_handle = nexus;
	t.w.function = function;
	t.w.response = 0xdead;
	t.done = tmf_done;
	spt_bdev_tmf(&bdev, &t);
	assert_int_equal(tmf_done_calls, before + 1);
	assert_int_equal(t.w.response, want);
}

static void test_no_ua_at_login(void **state)
{
	(void)state;
	assert_false(take_ua(NEXUS_A, 0, 0));
	assert_false(take_ua(NEXUS_B, 0, 0));
	session_start(NEXUS_C, true);		/* reinstated: nexus loss */
	assert_true(take_ua(NEXUS_C, 0x29, 0x07));
	assert_false(take_ua(NEXUS_C, 0, 0));
	session_start(NEXUS_C, true);		/* a repeated start adds nothing */
	assert_false(take_ua(NEXUS_C, 0, 0));
}

static void test_lu_reset(void **state)
{
	uint8_t param[64];
	uint8_t inquiry[6] = { 0x12, 0, 0, 0, 36, 0 };
	uint32_t len;

	(void)state;
	len = current_page_param(0x0a, param);
	param[4 + 4] |= 0x08;	/* SWP */
	mode_select(false, 0x10, param, len, NEXUS_A);
	expect_good();
	start_stop(0, 0, 0);
	assert_true(take_ua(NEXUS_B, 0x2a, 0x01));

	tmf(NEXUS_A, SPT_TMF_LOGICAL_UNIT_RESET, SPT_TMF_RSP_COMPLETE);
	assert_false(spc_write_protect_active(&bdev));
	assert_true(spc_write_cache_enabled(&bdev));

	/* INQUIRY is not held up by the unit attention */
	cmd_on(NEXUS_A, inquiry, 6);
	assert_false(spc_report_unit_attention(&bdev, &cmd));
	/* the issuer gets it too (SAM-5 6.3.3) */
	assert_true(take_ua(NEXUS_A, 0x29, 0x03));
	assert_false(take_ua(NEXUS_A, 0, 0));
	assert_true(take_ua(NEXUS_B, 0x29, 0x03));
	run(NEXUS_A, (const uint8_t[]){ 0, 0, 0, 0, 0, 0 }, 6);
	expect_good();		/* started again */
}

static void test_target_resets(void **state)
{
	(void)state;
	tmf(NEXUS_B, SPT_TMF_TARGET_WARM_RESET, SPT_TMF_RSP_COMPLETE);
	assert_true(take_ua(NEXUS_A, 0x29, 0x03));
	assert_true(take_ua(NEXUS_B, 0x29, 0x03));
	tmf(NEXUS_B, SPT_TMF_TARGET_COLD_RESET, SPT_TMF_RSP_COMPLETE);
	assert_true(take_ua(NEXUS_A, 0x29, 0x01));
	assert_true(take_ua(NEXUS_B, 0x29, 0x01));
}

static void test_clear_task_set_and_aborts(void **state)
{
	(void)state;
	tmf(NEXUS_A, SPT_TMF_ABORT_TASK, SPT_TMF_RSP_COMPLETE);
	tmf(NEXUS_A, SPT_TMF_ABORT_TASK_SET, SPT_TMF_RSP_COMPLETE);
	tmf(NEXUS_A, SPT_TMF_CLEAR_ACA, SPT_TMF_RSP_COMPLETE);
	assert_false(take_ua(NEXUS_A, 0, 0));
	assert_false(take_ua(NEXUS_B, 0, 0));
	tmf(NEXUS_A, SPT_TMF_CLEAR_TASK_SET, SPT_TMF_RSP_COMPLETE);
	assert_false(take_ua(NEXUS_A, 0, 0));
	assert_true(take_ua(NEXUS_B, 0x2f, 0x00));
	tmf(NEXUS_A, SPT_TMF_TASK_REASSIGN, SPT_TMF_RSP_NOT_SUPPORTED);
}

static void test_request_sense_reports_ua(void **state)
{
	uint8_t rs[6] = { 0x03, 0x01, 0, 0, 252, 0 };

	(void)state;
	spt_bdev_set_capacity(&bdev, 4096);
	assert_int_equal(bdev.num_blocks, 4096);
	cmd_on(NEXUS_A, rs, 6);
	assert_false(spc_report_unit_attention(&bdev, &cmd));
	run(NEXUS_A, rs, 6);
	expect_good();
	assert_int_equal(buffer[0], 0x72);
	assert_int_equal(buffer[1], 0x06);
	assert_int_equal(buffer[2], 0x2a);
	assert_int_equal(buffer[3], 0x09);
	assert_false(take_ua(NEXUS_A, 0, 0));	/* cleared by REQUEST SENSE */
	assert_true(take_ua(NEXUS_B, 0x2a, 0x09));
}

static void test_ua_queue_order_and_limits(void **state)
{
	(void)state;
	spc_unit_attention_all(&bdev, 0, 0x2a, 0x09);
	spc_unit_attention_all(&bdev, 0, 0x29, 0x03);
	spc_unit_attention_all(&bdev, 0, 0x2a, 0x09);	/* duplicate */
	spc_unit_attention_all(&bdev, NEXUS_B, 0x3f, 0x0e);
	assert_true(take_ua(NEXUS_A, 0x2a, 0x09));
	assert_true(take_ua(NEXUS_A, 0x29, 0x03));
	assert_true(take_ua(NEXUS_A, 0x3f, 0x0e));
	assert_false(take_ua(NEXUS_A, 0, 0));
	assert_true(take_ua(NEXUS_B, 0x2a, 0x09));
	assert_true(take_ua(NEXUS_B, 0x29, 0x03));
	assert_false(take_ua(NEXUS_B, 0, 0));

	/* overflow drops the oldest */
	for (uint8_t i = 0; i < 10; i++)
		spc_unit_attention_all(&bdev, NEXUS_B, 0x50, i);
	assert_true(take_ua(NEXUS_A, 0x50, 2));
	for (uint8_t i = 3; i < 10; i++)
		assert_true(take_ua(NEXUS_A, 0x50, i));
	assert_false(take_ua(NEXUS_A, 0, 0));

	/* a session that ends takes its conditions along */
	spc_unit_attention_all(&bdev, 0, 0x2a, 0x09);
	session_end(NEXUS_A);
	assert_false(take_ua(NEXUS_A, 0, 0));
	assert_true(take_ua(NEXUS_B, 0x2a, 0x09));
	session_end(NEXUS_A);	/* unknown: harmless */
}

static void test_many_sessions(void **state)
{
	(void)state;
	for (uint64_t h = 100; h < 200; h++)
		session_start(h, false);
	spc_unit_attention_all(&bdev, 150, 0x2a, 0x09);
	for (uint64_t h = 100; h < 200; h++)
		assert_int_equal(take_ua(h, 0x2a, 0x09), h != 150);
	for (uint64_t h = 100; h < 200; h += 2)
		session_end(h);
	spc_unit_attention_all(&bdev, 0, 0x29, 0x03);
	for (uint64_t h = 101; h < 200; h += 2)
		assert_true(take_ua(h, 0x29, 0x03));
	assert_true(take_ua(NEXUS_A, 0x2a, 0x09));
	assert_true(take_ua(NEXUS_A, 0x29, 0x03));
}

/* ---- REPORT SUPPORTED OPERATION CODES ---- */

static void rsoc(uint8_t options, uint8_t opcode, uint16_t sa, uint32_t alloc)
{
	uint8_t cdb[12] = { 0xa3, 0x0c, options, opcode };

	spt_put_be16(&cdb[4], sa);
	spt_put_be32(&cdb[6], alloc);
	run(NEXUS_A, cdb, 12);
}

static void test_rsoc_all(void **state)
{
	uint8_t list[BUF_LEN];
	uint32_t len, n, pos;
	int prev = -1;

	(void)state;
	rsoc(0x00, 0, 0, 65535);
	expect_good();
	len = spt_get_be32(&buffer[0]);
	assert_int_equal(cmd.cpl.data_in_length, len + 4);
	assert_int_equal(len % 8, 0);
	n = len / 8;
	assert_true(n >= 30);
	memcpy(list, buffer, len + 4);
	for (pos = 4; pos < len + 4; pos += 8) {
		const uint8_t *d = &list[pos];
		bool servactv = d[5] & 0x01;
		uint16_t sa = spt_get_be16(&d[2]);
		uint16_t cdb_len = spt_get_be16(&d[6]);
		int key = d[0] << 16 | sa;

		assert_false(d[5] & 0x02);	/* no CTDP without RCTD */
		assert_true(key > prev);	/* sorted, no duplicates */
		prev = key;
		if (!servactv)
			assert_int_equal(sa, 0);
		/* the one-command forms agree with the list (libiscsi
		 * OneCommand): 001b fails for service actions, 010b without */
		rsoc(0x01, d[0], sa, 65535);
		if (servactv) {
			expect_invalid(0x24, 2, 2);
		} else {
			expect_good();
			assert_int_equal(buffer[1] & 0x07, 0x03);
			assert_int_equal(spt_get_be16(&buffer[2]), cdb_len);
			assert_int_equal(buffer[4], d[0]);
		}
		rsoc(0x02, d[0], sa, 65535);
		if (servactv) {
			expect_good();
			assert_int_equal(spt_get_be16(&buffer[2]), cdb_len);
			assert_int_equal(buffer[4], d[0]);
			/* SERVICE ACTION used (REPORT TARGET PORT GROUPS also
			 * uses bits 7-5, PARAMETER DATA FORMAT) */
			assert_int_equal(buffer[5] & 0x1f, 0x1f);
		} else {
			expect_invalid(0x24, 2, 2);
		}
		rsoc(0x03, d[0], sa, 65535);
		expect_good();
		assert_int_equal(buffer[1] & 0x07, 0x03);
		assert_int_equal(buffer[4], d[0]);
		assert_int_equal(cmd.cpl.data_in_length, 4u + cdb_len);
	}
	rsoc(0x00, 0, 0, 10);
	assert_int_equal(cmd.cpl.data_in_length, 10);
	assert_int_equal(spt_get_be32(&buffer[0]), len);
}

static void test_rsoc_rctd(void **state)
{
	uint32_t len;

	(void)state;
	rsoc(0x80, 0, 0, 65535);
	expect_good();
	len = spt_get_be32(&buffer[0]);
	assert_int_equal(len % 20, 0);
	for (uint32_t pos = 4; pos < len + 4; pos += 20) {
		assert_true(buffer[pos + 5] & 0x02);
		assert_int_equal(spt_get_be16(&buffer[pos + 8]), 0x0a);
	}
	rsoc(0x81, 0x28, 0, 65535);
	expect_good();
	assert_int_equal(buffer[1], 0x83);
	assert_int_equal(cmd.cpl.data_in_length, 4 + 10 + 12);
	assert_int_equal(spt_get_be16(&buffer[14]), 0x0a);
}

static void test_rsoc_one_details(void **state)
{
	static const uint8_t read16[16] = {
		0x88, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0x1f, 0x00,
	};

	(void)state;
	rsoc(0x01, 0x88, 0, 512);
	expect_good();
	assert_memory_equal(&buffer[4], read16, 16);
	rsoc(0x01, 0xff, 0, 512);	/* not supported */
	expect_good();
	assert_int_equal(buffer[1] & 0x07, 0x01);
	assert_int_equal(spt_get_be16(&buffer[2]), 0);
	assert_int_equal(cmd.cpl.data_in_length, 4);
	rsoc(0x02, 0x9e, 0x11, 512);	/* a service action we lack */
	expect_good();
	assert_int_equal(buffer[1] & 0x07, 0x01);
	rsoc(0x03, 0x28, 0x05, 512);	/* 011b with a bogus service action */
	expect_good();
	assert_int_equal(buffer[1] & 0x07, 0x01);
	rsoc(0x01, 0x9e, 0x10, 512);	/* 001b on SERVICE ACTION IN(16) */
	expect_invalid(0x24, 2, 2);
	rsoc(0x04, 0x28, 0, 512);	/* reserved reporting options */
	expect_invalid(0x24, 2, 2);
}

static void test_maintenance_in_other(void **state)
{
	/* 0Bh: neither REPORT TARGET PORT GROUPS (0Ah) nor RSOC (0Ch) */
	uint8_t cdb[12] = { 0xa3, 0x0b, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 };

	(void)state;
	run(NEXUS_A, cdb, 12);
	expect_invalid(0x24, 1, 4);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_thin, teardown)
#define T_RO(f) cmocka_unit_test_setup_teardown(f, setup_thick_ro, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rejects_bad_block_size),
		T(test_not_spc),
		T(test_data_in_bounded),
		T(test_inquiry_standard),
		T(test_inquiry_alloc_length),
		T(test_inquiry_invalid),
		T(test_vpd_supported_pages),
		T(test_vpd_serial),
		T(test_vpd_device_identification),
		T(test_vpd_block_limits_thin),
		T_RO(test_vpd_block_limits_thick),
		T(test_vpd_characteristics_provisioning),
		T(test_mode_sense6_all_pages),
		T(test_mode_sense6_residuals),
		T(test_mode_sense6_single_page),
		T(test_mode_sense_changeable_default),
		T(test_mode_sense_invalid),
		T(test_mode_sense10),
		T_RO(test_mode_sense_write_protect),
		T(test_mode_select_wce),
		T(test_mode_select_d_sense_swp),
		T(test_mode_select_not_changeable),
		T(test_mode_select_cdb_errors),
		T(test_mode_select_length_errors),
		T(test_mode_select_block_descriptor),
		T(test_mode_select10_long_descriptor),
		T(test_mode_select_waits_for_final),
		T(test_start_stop_tur),
		T(test_start_stop_loej_and_power),
		T(test_stop_needs_flush),
		T(test_request_sense_no_sense),
		T(test_prevent_allow),
		T(test_no_ua_at_login),
		T(test_lu_reset),
		T(test_target_resets),
		T(test_clear_task_set_and_aborts),
		T(test_request_sense_reports_ua),
		T(test_ua_queue_order_and_limits),
		T(test_many_sessions),
		T(test_rsoc_all),
		T(test_rsoc_rctd),
		T(test_rsoc_one_details),
		T(test_maintenance_in_other),
	};
#undef T
#undef T_RO

	return cmocka_run_group_tests(tests, NULL, NULL);
}
