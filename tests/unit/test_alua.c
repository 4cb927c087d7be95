/*
 * ALUA and target port groups (SPC-4 5.16, issue 5): REPORT TARGET PORT
 * GROUPS in both formats, INQUIRY TPGS, the Device Identification page per
 * I_T nexus, command blocking in standby and unavailable, and the unit
 * attention a state change gives every nexus.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "scsi/spc.h"
#include "scsi/alua.h"

#define BUF_LEN 4096
#define NEXUS_1 0x1111		/* through target portal group 1 */
#define NEXUS_2 0x2222		/* through target portal group 2 */
#define NEXUS_X 0x3333		/* an ITNexus without a TPGT */

static uint8_t buffer[BUF_LEN];
static struct spt_bdev bdev;
static struct spt_cmd cmd;
static bool completed;

static void fake_submit(struct spt_bdev *b, struct spt_bdev_io *io)
{
	(void)b;
	memset(io->buf, 0, io->length);
	io->done(io, 0);
}

static const struct spt_bdev_ops fake_ops = { .submit = fake_submit };

static void on_done(struct spt_cmd *c)
{
	(void)c;
	completed = true;
}

static void session_start(uint64_t handle, const char *itnexus)
{
	struct spt_session_start ss;

	memset(&ss, 0, sizeof(ss));
	ss.itnexus_handle = handle;
	snprintf(ss.itnexus, sizeof(ss.itnexus), "%s", itnexus);
	spt_bdev_session_start(&bdev, &ss);
}

static int setup(void **state)
{
	(void)state;
	memset(&bdev, 0, sizeof(bdev));
	bdev.ops = &fake_ops;
	bdev.block_size = 512;
	bdev.num_blocks = 2048;
	bdev.max_transfer_bytes = 1 << 20;
	strcpy(bdev.serial, "SER1");
	bdev.naa = 0x3000112233445566ull;
	strcpy(bdev.target_name, "iqn.2026-11.org.spt:t");
	spt_scsi_set_port_groups(NULL, 0);
	assert_int_equal(spt_bdev_init(&bdev), 0);
	session_start(NEXUS_1, "iqn.i,i,0x023d00000001,iqn.2026-11.org.spt:t,t,0x0001");
	session_start(NEXUS_2, "iqn.i,i,0x023d00000001,iqn.2026-11.org.spt:t,t,0x0002");
	session_start(NEXUS_X, "iqn.i,i,0x023d00000002,iqn.2026-11.org.spt:t");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	spt_bdev_fini(&bdev);
	spt_scsi_set_port_groups(NULL, 0);
	return 0;
}

static void run(uint64_t nexus, const uint8_t *cdb, size_t len)
{
	memset(&cmd, 0, sizeof(cmd));
	memset(buffer, 0xee, sizeof(buffer));
	memcpy(cmd.req.cdb, cdb, len);
	cmd.req.cdb_length = (uint8_t)len;
	cmd.req.session_cookie = nexus;
	cmd.req.is_final = 1;
	cmd.buf = buffer;
	cmd.buf_len = BUF_LEN;
	cmd.done = on_done;
	completed = false;
	spt_bdev_execute(&bdev, &cmd);
	assert_true(completed);
}

static void expect_sense(uint8_t key, uint8_t asc, uint8_t ascq)
{
	const uint8_t *s = cmd.cpl.sense;

	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(s[2] & 0x0f, key);
	assert_int_equal(s[12], asc);
	assert_int_equal(s[13], ascq);
}

static void set_groups(uint8_t state1, uint8_t state2)
{
	const struct spt_port_group g[] = { { 1, state1 }, { 2, state2 } };

	spt_scsi_set_port_groups(g, 2);
}

static void rtpg(uint64_t nexus, uint8_t format)
{
	const uint8_t cdb[12] = { 0xa3, (uint8_t)(format << 5 | 0x0a), 0, 0, 0, 0, 0, 0, 4, 0, 0, 0 };

	run(nexus, cdb, sizeof(cdb));
}

static void test_inquiry_tpgs(void **state)
{
	const uint8_t cdb[6] = { 0x12, 0, 0, 0, 96, 0 };

	(void)state;
	run(NEXUS_1, cdb, sizeof(cdb));
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	/* SPC-4 6.6.2: TPGS 01b, implicit only */
	assert_int_equal((buffer[5] >> 4) & 3, 1);
}

static void test_rtpg_formats(void **state)
{
	(void)state;
	set_groups(SPT_ALUA_ACTIVE_OPTIMIZED, SPT_ALUA_ACTIVE_NON_OPTIMIZED);
	/* the change: every nexus first gets 2A/06 */
	rtpg(NEXUS_1, 0);
	expect_sense(SPT_KEY_UNIT_ATTENTION, 0x2a, 0x06);
	rtpg(NEXUS_1, 0);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(cmd.cpl.transfer_length, 4 + 2 * 12);
	assert_int_equal(spt_get_be32(buffer), 2 * 12);
	assert_int_equal(buffer[4] & 0x0f, SPT_ALUA_ACTIVE_OPTIMIZED);
	assert_int_equal(buffer[5], 0x0f);			/* U, S, AN, AO supported */
	assert_int_equal(spt_get_be16(&buffer[6]), 1);		/* group 1 */
	assert_int_equal(buffer[11], 1);			/* one port */
	assert_int_equal(spt_get_be16(&buffer[14]), 1);		/* relative port 1 */
	assert_int_equal(buffer[16] & 0x0f, SPT_ALUA_ACTIVE_NON_OPTIMIZED);
	assert_int_equal(buffer[16 + 5], 0x02);		/* changed implicitly */
	assert_int_equal(spt_get_be16(&buffer[18]), 2);
	assert_int_equal(spt_get_be16(&buffer[26]), 2);
	/* extended header: format type 1, implicit transition time */
	rtpg(NEXUS_1, 1);
	assert_int_equal(cmd.cpl.transfer_length, 8 + 2 * 12);
	assert_int_equal((buffer[4] >> 4) & 7, 1);
	assert_int_equal(buffer[5], 1);
	assert_int_equal(spt_get_be16(&buffer[8 + 2]), 1);
	/* reserved parameter data format */
	rtpg(NEXUS_1, 2);
	expect_sense(SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
}

static void test_rtpg_no_table(void **state)
{
	(void)state;
	/* no groups set: the one port of the nexus asking */
	rtpg(NEXUS_2, 0);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(spt_get_be32(buffer), 12);
	assert_int_equal(spt_get_be16(&buffer[6]), 2);
	/* a nexus without a TPGT: bdev->relative_port, else 1 */
	rtpg(NEXUS_X, 0);
	assert_int_equal(spt_get_be16(&buffer[6]), 1);
}

/* Finds designator (association, type) in a VPD 0x83 page; its body or NULL. */
static const uint8_t *designator(uint8_t assoc, uint8_t type)
{
	uint32_t len = spt_get_be16(&buffer[2]) + 4u;

	for (uint32_t off = 4; off + 4 <= len; off += 4u + buffer[off + 3])
		if ((buffer[off + 1] & 0x30) == assoc && (buffer[off + 1] & 0x0f) == type)
			return &buffer[off + 4];
	return NULL;
}

static void test_vpd83_per_nexus(void **state)
{
	const uint8_t cdb[6] = { 0x12, 1, 0x83, 2, 0, 0 };
	uint8_t naa1[8];

	(void)state;
	run(NEXUS_1, cdb, sizeof(cdb));
	assert_non_null(designator(0x00, 3));
	memcpy(naa1, designator(0x00, 3), 8);
	assert_int_equal(spt_get_be16(designator(0x10, 4) + 2), 1);
	assert_int_equal(spt_get_be16(designator(0x10, 5) + 2), 1);
	run(NEXUS_2, cdb, sizeof(cdb));
	/* the LU designator is the same on every path, the port ones are not */
	assert_memory_equal(designator(0x00, 3), naa1, 8);
	assert_int_equal(spt_get_be16(designator(0x10, 4) + 2), 2);
	assert_int_equal(spt_get_be16(designator(0x10, 5) + 2), 2);
}

static void test_standby_blocks_media(void **state)
{
	const uint8_t read10[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
	const uint8_t tur[6] = { 0 };
	const uint8_t inquiry[6] = { 0x12, 0, 0, 0, 36, 0 };
	const uint8_t pr_in[10] = { 0x5e, 0, 0, 0, 0, 0, 0, 0, 64, 0 };

	(void)state;
	set_groups(SPT_ALUA_ACTIVE_OPTIMIZED, SPT_ALUA_STANDBY);
	run(NEXUS_1, tur, sizeof(tur));
	expect_sense(SPT_KEY_UNIT_ATTENTION, 0x2a, 0x06);
	run(NEXUS_2, tur, sizeof(tur));
	expect_sense(SPT_KEY_UNIT_ATTENTION, 0x2a, 0x06);
	/* SPC-4 5.16.2.4.4 */
	run(NEXUS_2, read10, sizeof(read10));
	expect_sense(SPT_KEY_NOT_READY, 0x04, 0x0b);
	run(NEXUS_2, tur, sizeof(tur));
	expect_sense(SPT_KEY_NOT_READY, 0x04, 0x0b);
	run(NEXUS_2, inquiry, sizeof(inquiry));
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	run(NEXUS_2, pr_in, sizeof(pr_in));
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	rtpg(NEXUS_2, 0);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	/* the other group serves media commands */
	run(NEXUS_1, read10, sizeof(read10));
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);

	/* SPC-4 5.16.2.4.5: unavailable also refuses PERSISTENT RESERVE IN */
	set_groups(SPT_ALUA_ACTIVE_OPTIMIZED, SPT_ALUA_UNAVAILABLE);
	run(NEXUS_2, inquiry, sizeof(inquiry));
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	run(NEXUS_2, pr_in, sizeof(pr_in));
	expect_sense(SPT_KEY_UNIT_ATTENTION, 0x2a, 0x06);
	run(NEXUS_2, pr_in, sizeof(pr_in));
	expect_sense(SPT_KEY_NOT_READY, 0x04, 0x0c);
	rtpg(NEXUS_2, 0);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);

	/* back to active: served again */
	set_groups(SPT_ALUA_ACTIVE_OPTIMIZED, SPT_ALUA_ACTIVE_OPTIMIZED);
	run(NEXUS_2, read10, sizeof(read10));
	expect_sense(SPT_KEY_UNIT_ATTENTION, 0x2a, 0x06);
	run(NEXUS_2, read10, sizeof(read10));
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
}

static void test_same_table_no_ua(void **state)
{
	const uint8_t tur[6] = { 0 };

	(void)state;
	set_groups(SPT_ALUA_ACTIVE_OPTIMIZED, SPT_ALUA_ACTIVE_OPTIMIZED);
	/* nothing changed (default states): no unit attention */
	run(NEXUS_1, tur, sizeof(tur));
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
}

static void test_state_names(void **state)
{
	uint8_t s;

	(void)state;
	assert_int_equal(spt_alua_state_parse("standby", &s), 0);
	assert_int_equal(s, SPT_ALUA_STANDBY);
	assert_int_equal(spt_alua_state_parse("active-non-optimized", &s), 0);
	assert_int_equal(s, SPT_ALUA_ACTIVE_NON_OPTIMIZED);
	assert_int_equal(spt_alua_state_parse("asleep", &s), -1);
	assert_string_equal(spt_alua_state_name(SPT_ALUA_UNAVAILABLE), "unavailable");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inquiry_tpgs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtpg_formats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtpg_no_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vpd83_per_nexus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_standby_blocks_media, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_table_no_ua, setup, teardown),
		cmocka_unit_test(test_state_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
