/* Unit tests: sense builders (SPC-4 4.5), missing-LUN answers, REPORT LUNS. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <spt/scsi.h>

#define BUF_LEN 4096

static uint8_t buffer[BUF_LEN];

static void noop_done(struct spt_cmd *cmd)
{
	(void)cmd;
}

static void cmd_setup(struct spt_cmd *cmd, const uint8_t *cdb, size_t cdb_len, uint32_t buf_len)
{
	memset(cmd, 0, sizeof(*cmd));
	memset(buffer, 0xee, sizeof(buffer));
	memcpy(cmd->req.cdb, cdb, cdb_len);
	cmd->req.cdb_length = (uint8_t)cdb_len;
	cmd->req.is_final = 1;
	cmd->buf = buffer;
	cmd->buf_len = buf_len;
	cmd->done = noop_done;
}

/* ---- spt_sense_build ---- */

static void test_fixed_plain(void **state)
{
	uint8_t s[64];
	size_t len;

	(void)state;
	memset(s, 0xaa, sizeof(s));
	len = spt_sense_build(s, sizeof(s), false, SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00, NULL);
	assert_int_equal(len, 18);
	assert_int_equal(s[0], 0x70);
	assert_int_equal(s[2], 0x05);
	assert_int_equal(s[7], 10);
	assert_int_equal(s[12], 0x24);
	assert_int_equal(s[13], 0x00);
	for (int i = 3; i < 7; i++)
		assert_int_equal(s[i], 0);
	assert_int_equal(s[15], 0);
	assert_int_equal(s[16], 0);
	assert_int_equal(s[17], 0);
}

static void test_fixed_information(void **state)
{
	struct spt_sense_info info = { .info_valid = true, .information = 0x01020304 };
	uint8_t s[64];
	size_t len;

	(void)state;
	len = spt_sense_build(s, sizeof(s), false, SPT_KEY_MISCOMPARE, 0x1d, 0x00, &info);
	assert_int_equal(len, 18);
	assert_int_equal(s[0], 0xf0);	/* VALID | 70h */
	assert_int_equal(s[2], 0x0e);
	assert_int_equal(spt_get_be32(&s[3]), 0x01020304);
	assert_int_equal(s[12], 0x1d);
}

static void test_fixed_information_too_large(void **state)
{
	struct spt_sense_info info = { .info_valid = true, .information = 0x100000000ull };
	uint8_t s[64];

	(void)state;
	spt_sense_build(s, sizeof(s), false, SPT_KEY_MISCOMPARE, 0x1d, 0x00, &info);
	/* four bytes cannot hold it: VALID must be clear */
	assert_int_equal(s[0], 0x70);
	assert_int_equal(spt_get_be32(&s[3]), 0);
}

static void test_fixed_sks(void **state)
{
	struct spt_sense_info info = { .sksv = true, .sks = { 0x4b, 0x00, 0x02 } };
	uint8_t s[64];

	(void)state;
	spt_sense_build(s, sizeof(s), false, SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00, &info);
	assert_int_equal(s[15], 0xcb);	/* SKSV added by the builder */
	assert_int_equal(s[16], 0x00);
	assert_int_equal(s[17], 0x02);
}

static void test_descriptor_plain(void **state)
{
	uint8_t s[64];
	size_t len;

	(void)state;
	len = spt_sense_build(s, sizeof(s), true, SPT_KEY_UNIT_ATTENTION, 0x29, 0x03, NULL);
	assert_int_equal(len, 8);
	assert_int_equal(s[0], 0x72);
	assert_int_equal(s[1], 0x06);
	assert_int_equal(s[2], 0x29);
	assert_int_equal(s[3], 0x03);
	assert_int_equal(s[7], 0);
}

static void test_descriptor_info_and_sks(void **state)
{
	struct spt_sense_info info = {
		.info_valid = true, .information = 0x1122334455667788ull,
		.sksv = true, .sks = { 0x40, 0x00, 0x05 },
	};
	uint8_t s[64];
	size_t len;

	(void)state;
	len = spt_sense_build(s, sizeof(s), true, SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00, &info);
	assert_int_equal(len, 8 + 12 + 8);
	assert_int_equal(s[7], 20);
	/* information descriptor */
	assert_int_equal(s[8], 0x00);
	assert_int_equal(s[9], 0x0a);
	assert_int_equal(s[10], 0x80);
	assert_true(spt_get_be64(&s[12]) == 0x1122334455667788ull);
	/* sense key specific descriptor */
	assert_int_equal(s[20], 0x02);
	assert_int_equal(s[21], 0x06);
	assert_int_equal(s[24], 0xc0);
	assert_int_equal(s[25], 0x00);
	assert_int_equal(s[26], 0x05);
}

static void test_descriptor_sks_only(void **state)
{
	struct spt_sense_info info = { .sksv = true, .sks = { 0x00, 0x01, 0x02 } };
	uint8_t s[64];
	size_t len;

	(void)state;
	len = spt_sense_build(s, sizeof(s), true, SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00, &info);
	assert_int_equal(len, 16);
	assert_int_equal(s[7], 8);
	assert_int_equal(s[8], 0x02);
	assert_int_equal(s[12], 0x80);
	assert_int_equal(s[13], 0x01);
	assert_int_equal(s[14], 0x02);
}

static void test_build_truncates_to_cap(void **state)
{
	uint8_t s[32];
	size_t len;

	(void)state;
	memset(s, 0xaa, sizeof(s));
	len = spt_sense_build(s, 10, false, SPT_KEY_NOT_READY, 0x04, 0x02, NULL);
	assert_int_equal(len, 10);
	assert_int_equal(s[0], 0x70);
	assert_int_equal(s[10], 0xaa);	/* nothing beyond cap */
	assert_int_equal(spt_sense_build(NULL, 0, true, 0, 0, 0, NULL), 0);
}

/* ---- command-level builders ---- */

static void test_check_condition(void **state)
{
	struct spt_cmd cmd;
	uint8_t cdb[6] = { 0 };

	(void)state;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_cmd_check_condition(&cmd, false, SPT_KEY_NOT_READY, 0x04, 0x02, NULL);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(cmd.cpl.sense_length, 18);
	assert_int_equal(cmd.cpl.sense[2], 0x02);
	assert_int_equal(cmd.cpl.sense[12], 0x04);
	assert_int_equal(cmd.cpl.sense[13], 0x02);
}

static void test_invalid_field_in_cdb_bit(void **state)
{
	struct spt_cmd cmd;
	uint8_t cdb[6] = { 0 };

	(void)state;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_cmd_invalid_field_in_cdb(&cmd, false, 4, 1);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(cmd.cpl.sense[2], 0x05);
	assert_int_equal(cmd.cpl.sense[12], 0x24);
	/* SKSV | C/D | BPV | bit 1 */
	assert_int_equal(cmd.cpl.sense[15], 0x80 | 0x40 | 0x08 | 0x01);
	assert_int_equal(spt_get_be16(&cmd.cpl.sense[16]), 4);
}

static void test_invalid_field_in_cdb_no_bit(void **state)
{
	struct spt_cmd cmd;
	uint8_t cdb[6] = { 0 };

	(void)state;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_cmd_invalid_field_in_cdb(&cmd, true, 0x0102, -1);
	assert_int_equal(cmd.cpl.sense[0], 0x72);
	assert_int_equal(cmd.cpl.sense[1], 0x05);
	assert_int_equal(cmd.cpl.sense[2], 0x24);
	assert_int_equal(cmd.cpl.sense_length, 16);
	assert_int_equal(cmd.cpl.sense[8], 0x02);
	assert_int_equal(cmd.cpl.sense[12], 0xc0);	/* SKSV | C/D, no BPV */
	assert_int_equal(spt_get_be16(&cmd.cpl.sense[13]), 0x0102);
}

static void test_invalid_field_in_param(void **state)
{
	struct spt_cmd cmd;
	uint8_t cdb[6] = { 0 };

	(void)state;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_cmd_invalid_field_in_param(&cmd, false, 13, 7);
	assert_int_equal(cmd.cpl.sense[12], 0x26);
	assert_int_equal(cmd.cpl.sense[15], 0x80 | 0x08 | 0x07);	/* C/D = 0 */
	assert_int_equal(spt_get_be16(&cmd.cpl.sense[16]), 13);
}

/* ---- missing LUN ---- */

static void test_no_lun_inquiry(void **state)
{
	struct spt_cmd cmd;
	uint8_t cdb[6] = { 0x12, 0, 0, 0, 0xff, 0 };

	(void)state;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_scsi_no_such_lun(&cmd);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(cmd.cpl.data_in_length, 36);
	assert_int_equal(cmd.cpl.transfer_length, 36);
	assert_int_equal(buffer[0], 0x7f);	/* qualifier 011b, type 1Fh */
	assert_int_equal(buffer[4], 31);
	assert_int_equal(buffer[3] & 0x0f, 2);

	cdb[4] = 8;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_scsi_no_such_lun(&cmd);
	assert_int_equal(cmd.cpl.data_in_length, 8);
	assert_int_equal(cmd.cpl.transfer_length, 8);
}

static void test_no_lun_inquiry_vpd(void **state)
{
	struct spt_cmd cmd;
	uint8_t cdb[6] = { 0x12, 0x01, 0x00, 0, 0xff, 0 };

	(void)state;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_scsi_no_such_lun(&cmd);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(buffer[0], 0x7f);
	assert_int_equal(buffer[1], 0x00);
	assert_int_equal(spt_get_be16(&buffer[2]), 1);

	cdb[2] = 0x83;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_scsi_no_such_lun(&cmd);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(cmd.cpl.sense[12], 0x24);

	cdb[1] = 0;
	cdb[2] = 0x80;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_scsi_no_such_lun(&cmd);
	assert_int_equal(cmd.cpl.sense[12], 0x24);
	assert_int_equal(spt_get_be16(&cmd.cpl.sense[16]), 2);
}

static void test_no_lun_request_sense(void **state)
{
	struct spt_cmd cmd;
	uint8_t cdb[6] = { 0x03, 0, 0, 0, 252, 0 };

	(void)state;
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_scsi_no_such_lun(&cmd);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(cmd.cpl.data_in_length, 18);
	assert_int_equal(buffer[0], 0x70);
	assert_int_equal(buffer[2], 0x05);
	assert_int_equal(buffer[12], 0x25);
	assert_int_equal(buffer[13], 0x00);

	cdb[1] = 0x01;	/* DESC */
	cmd_setup(&cmd, cdb, 6, BUF_LEN);
	spt_scsi_no_such_lun(&cmd);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(cmd.cpl.data_in_length, 8);
	assert_int_equal(buffer[0], 0x72);
	assert_int_equal(buffer[2], 0x25);
}

static void test_no_lun_other(void **state)
{
	struct spt_cmd cmd;
	uint8_t cdb[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };

	(void)state;
	cmd_setup(&cmd, cdb, 10, BUF_LEN);
	spt_scsi_no_such_lun(&cmd);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(cmd.cpl.sense[2], 0x05);
	assert_int_equal(cmd.cpl.sense[12], 0x25);
	assert_int_equal(cmd.cpl.data_in_length, 0);
}

/* ---- REPORT LUNS ---- */

static void report_luns_cdb(uint8_t *cdb, uint8_t select, uint32_t alloc)
{
	memset(cdb, 0, 12);
	cdb[0] = 0xa0;
	cdb[2] = select;
	spt_put_be32(&cdb[6], alloc);
}

static void test_report_luns_encoding(void **state)
{
	static const uint64_t luns[] = { 0, 255, 256, 16383, 16384, 0x1000000 };
	struct spt_cmd cmd;
	uint8_t cdb[12];

	(void)state;
	report_luns_cdb(cdb, 0, 4096);
	cmd_setup(&cmd, cdb, 12, BUF_LEN);
	spt_scsi_report_luns(&cmd, luns, 6);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	/* the last LUN cannot be addressed and is left out */
	assert_int_equal(spt_get_be32(&buffer[0]), 5 * 8);
	assert_int_equal(cmd.cpl.transfer_length, 8 + 5 * 8);
	assert_int_equal(cmd.cpl.data_in_length, 8 + 5 * 8);
	/* peripheral device addressing */
	assert_int_equal(buffer[8], 0x00);
	assert_int_equal(buffer[9], 0x00);
	assert_int_equal(buffer[16], 0x00);
	assert_int_equal(buffer[17], 0xff);
	/* flat space addressing */
	assert_int_equal(buffer[24], 0x41);
	assert_int_equal(buffer[25], 0x00);
	assert_int_equal(buffer[32], 0x7f);
	assert_int_equal(buffer[33], 0xff);
	for (int i = 34; i < 40; i++)
		assert_int_equal(buffer[i], 0);
	/* extended flat space addressing */
	assert_int_equal(buffer[40], 0xd2);
	assert_int_equal(spt_get_be24(&buffer[41]), 16384);
}

static void test_report_luns_select(void **state)
{
	static const uint64_t luns[] = { 0, 1 };
	struct spt_cmd cmd;
	uint8_t cdb[12];

	(void)state;
	report_luns_cdb(cdb, 2, 64);
	cmd_setup(&cmd, cdb, 12, BUF_LEN);
	spt_scsi_report_luns(&cmd, luns, 2);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(spt_get_be32(&buffer[0]), 16);

	/* well-known LUs only: there are none */
	report_luns_cdb(cdb, 1, 64);
	cmd_setup(&cmd, cdb, 12, BUF_LEN);
	spt_scsi_report_luns(&cmd, luns, 2);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(spt_get_be32(&buffer[0]), 0);
	assert_int_equal(cmd.cpl.transfer_length, 8);

	report_luns_cdb(cdb, 0x10, 64);
	cmd_setup(&cmd, cdb, 12, BUF_LEN);
	spt_scsi_report_luns(&cmd, luns, 2);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(cmd.cpl.sense[12], 0x24);
	assert_int_equal(spt_get_be16(&cmd.cpl.sense[16]), 2);
}

static void test_report_luns_alloc(void **state)
{
	static const uint64_t luns[] = { 0, 1, 2 };
	struct spt_cmd cmd;
	uint8_t cdb[12];

	(void)state;
	report_luns_cdb(cdb, 0, 15);
	cmd_setup(&cmd, cdb, 12, BUF_LEN);
	spt_scsi_report_luns(&cmd, luns, 3);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_CHECK_CONDITION);
	assert_int_equal(spt_get_be16(&cmd.cpl.sense[16]), 6);

	/* truncated to the allocation length; LUN LIST LENGTH is the full one */
	report_luns_cdb(cdb, 0, 16);
	cmd_setup(&cmd, cdb, 12, BUF_LEN);
	spt_scsi_report_luns(&cmd, luns, 3);
	assert_int_equal(cmd.cpl.scsi_status, SPT_STATUS_GOOD);
	assert_int_equal(cmd.cpl.transfer_length, 16);
	assert_int_equal(cmd.cpl.data_in_length, 16);
	assert_int_equal(spt_get_be32(&buffer[0]), 24);
	assert_int_equal(buffer[16], 0xee);

	/* and to the buffer the engine has */
	report_luns_cdb(cdb, 0, 4096);
	cmd_setup(&cmd, cdb, 12, 20);
	spt_scsi_report_luns(&cmd, luns, 3);
	assert_int_equal(cmd.cpl.transfer_length, 32);
	assert_int_equal(cmd.cpl.data_in_length, 20);
	assert_int_equal(buffer[17], 0x01);
	assert_int_equal(buffer[20], 0xee);

	cmd_setup(&cmd, cdb, 12, 5);
	spt_scsi_report_luns(&cmd, luns, 3);
	assert_int_equal(cmd.cpl.data_in_length, 5);
	assert_int_equal(buffer[3], 24);
	assert_int_equal(buffer[5], 0xee);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_plain),
		cmocka_unit_test(test_fixed_information),
		cmocka_unit_test(test_fixed_information_too_large),
		cmocka_unit_test(test_fixed_sks),
		cmocka_unit_test(test_descriptor_plain),
		cmocka_unit_test(test_descriptor_info_and_sks),
		cmocka_unit_test(test_descriptor_sks_only),
		cmocka_unit_test(test_build_truncates_to_cap),
		cmocka_unit_test(test_check_condition),
		cmocka_unit_test(test_invalid_field_in_cdb_bit),
		cmocka_unit_test(test_invalid_field_in_cdb_no_bit),
		cmocka_unit_test(test_invalid_field_in_param),
		cmocka_unit_test(test_no_lun_inquiry),
		cmocka_unit_test(test_no_lun_inquiry_vpd),
		cmocka_unit_test(test_no_lun_request_sense),
		cmocka_unit_test(test_no_lun_other),
		cmocka_unit_test(test_report_luns_encoding),
		cmocka_unit_test(test_report_luns_select),
		cmocka_unit_test(test_report_luns_alloc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
