/*
 * Sense data builders (SPC-4 4.5) and the answers for LUNs the target does
 * not have: REPORT LUNS and the peripheral-qualifier-011b INQUIRY.
 */
#include <spt/scsi.h>

#include <string.h>

/* SPC-4 4.5.3: fixed format is 18 bytes with ADDITIONAL SENSE LENGTH 10. */
#define SENSE_FIXED_LEN 18
#define SENSE_FIXED_ADDITIONAL 10
/* SPC-4 4.5.2: descriptor format header; descriptors follow byte 7. */
#define SENSE_DESC_HEADER_LEN 8
#define SENSE_DESC_INFO_LEN 12	/* SPC-4 4.5.2.2 information descriptor */
#define SENSE_DESC_SKS_LEN 8	/* SPC-4 4.5.2.4 sense key specific descriptor */
#define SENSE_BUILD_MAX (SENSE_DESC_HEADER_LEN + SENSE_DESC_INFO_LEN + SENSE_DESC_SKS_LEN)

#define SENSE_RESPONSE_FIXED 0x70
#define SENSE_RESPONSE_DESC 0x72
#define SENSE_VALID 0x80
#define SENSE_SKSV 0x80
#define SENSE_SKS_CD 0x40	/* SPC-4 4.5.2.4.2: error is in the CDB */
#define SENSE_SKS_BPV 0x08	/* bit pointer valid */

/* SPC-4 4.5.2.1 descriptor types. */
#define SENSE_DESC_TYPE_INFO 0x00
#define SENSE_DESC_TYPE_SKS 0x02

/* ASC/ASCQ used here (SPC-4 Annex D). */
#define ASC_INVALID_FIELD_IN_CDB 0x24
#define ASC_INVALID_FIELD_IN_PARAM 0x26
#define ASC_LU_NOT_SUPPORTED 0x25

#define OP_REQUEST_SENSE 0x03
#define OP_INQUIRY 0x12

/* SPC-4 6.6.2: the shortest standard INQUIRY data an initiator may rely on. */
#define NO_LUN_INQUIRY_LEN 36
/* SPC-4 6.33: REPORT LUNS header, then 8 bytes per LUN. */
#define REPORT_LUNS_HEADER 8
#define REPORT_LUNS_ENTRY 8
#define REPORT_LUNS_MIN_ALLOC 16
/* SAM-5 4.7: LUN address methods. */
#define LUN_PERIPHERAL_MAX 256u		/* peripheral device addressing, bus 0 */
#define LUN_FLAT_MAX 16384u		/* flat space addressing, 14 bits */
#define LUN_EXT_FLAT_MAX 0x1000000u	/* extended flat space, 24 bits */
#define LUN_FLAT_METHOD 0x40
#define LUN_EXT_FLAT_METHOD 0xD2	/* extended LUN, length 01b, method 2h */

size_t spt_sense_build(uint8_t *out, size_t cap, bool descriptor, uint8_t key,
		       uint8_t asc, uint8_t ascq, const struct spt_sense_info *extra)
{
	uint8_t s[SENSE_BUILD_MAX];
	size_t len;

	memset(s, 0, sizeof(s));
	if (!descriptor) {
		s[0] = SENSE_RESPONSE_FIXED;
		s[2] = key & 0x0f;
		s[7] = SENSE_FIXED_ADDITIONAL;
		s[12] = asc;
		s[13] = ascq;
		/* SPC-4 4.5.3: the fixed INFORMATION field holds four bytes;
		 * a larger value cannot be valid there. */
		if (extra && extra->info_valid && extra->information <= UINT32_MAX) {
			s[0] |= SENSE_VALID;
			spt_put_be32(&s[3], (uint32_t)extra->information);
		}
		if (extra && extra->sksv) {
			s[15] = (uint8_t)(extra->sks[0] | SENSE_SKSV);
			s[16] = extra->sks[1];
			s[17] = extra->sks[2];
		}
		len = SENSE_FIXED_LEN;
	} else {
		len = SENSE_DESC_HEADER_LEN;
		s[0] = SENSE_RESPONSE_DESC;
		s[1] = key & 0x0f;
		s[2] = asc;
		s[3] = ascq;
		if (extra && extra->info_valid) {
			uint8_t *d = &s[len];

			d[0] = SENSE_DESC_TYPE_INFO;
			d[1] = SENSE_DESC_INFO_LEN - 2;
			d[2] = SENSE_VALID;
			spt_put_be64(&d[4], extra->information);
			len += SENSE_DESC_INFO_LEN;
		}
		if (extra && extra->sksv) {
			uint8_t *d = &s[len];

			d[0] = SENSE_DESC_TYPE_SKS;
			d[1] = SENSE_DESC_SKS_LEN - 2;
			d[4] = (uint8_t)(extra->sks[0] | SENSE_SKSV);
			d[5] = extra->sks[1];
			d[6] = extra->sks[2];
			len += SENSE_DESC_SKS_LEN;
		}
		s[7] = (uint8_t)(len - SENSE_DESC_HEADER_LEN);
	}
	if (len > cap)
		len = cap;
	if (out && len)
		memcpy(out, s, len);
	return len;
}

void spt_cmd_check_condition(struct spt_cmd *cmd, bool descriptor, uint8_t key,
			     uint8_t asc, uint8_t ascq, const struct spt_sense_info *extra)
{
	cmd->cpl.scsi_status = SPT_STATUS_CHECK_CONDITION;
	cmd->cpl.sense_length = (uint8_t)spt_sense_build(cmd->cpl.sense, sizeof(cmd->cpl.sense),
							 descriptor, key, asc, ascq, extra);
}

/* SPC-4 4.5.2.4.2 field pointer sense-key specific data. */
static void sense_field_pointer(struct spt_sense_info *info, bool in_cdb, uint16_t byte, int bit)
{
	memset(info, 0, sizeof(*info));
	info->sksv = true;
	info->sks[0] = in_cdb ? SENSE_SKS_CD : 0;
	if (bit >= 0 && bit <= 7)
		info->sks[0] |= (uint8_t)(SENSE_SKS_BPV | bit);
	info->sks[1] = (uint8_t)(byte >> 8);
	info->sks[2] = (uint8_t)byte;
}

void spt_cmd_invalid_field_in_cdb(struct spt_cmd *cmd, bool descriptor, uint16_t byte, int bit)
{
	struct spt_sense_info info;

	sense_field_pointer(&info, true, byte, bit);
	spt_cmd_check_condition(cmd, descriptor, SPT_KEY_ILLEGAL_REQUEST,
				ASC_INVALID_FIELD_IN_CDB, 0x00, &info);
}

void spt_cmd_invalid_field_in_param(struct spt_cmd *cmd, bool descriptor, uint16_t byte, int bit)
{
	struct spt_sense_info info;

	sense_field_pointer(&info, false, byte, bit);
	spt_cmd_check_condition(cmd, descriptor, SPT_KEY_ILLEGAL_REQUEST,
				ASC_INVALID_FIELD_IN_PARAM, 0x00, &info);
}

/* Copies data-in bounded by the command buffer; transfer_length = len. */
static void sense_data_in(struct spt_cmd *cmd, const void *data, uint32_t len)
{
	uint32_t n = len < cmd->buf_len ? len : cmd->buf_len;

	if (n && cmd->buf)
		memcpy(cmd->buf, data, n);
	else
		n = 0;
	cmd->cpl.data_in_length = n;
	cmd->cpl.transfer_length = len;
	cmd->cpl.scsi_status = SPT_STATUS_GOOD;
}

static void spt_scsi_no_such_lun_inquiry(struct spt_cmd *cmd, uint8_t qualifier_type)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint8_t data[NO_LUN_INQUIRY_LEN];
	uint32_t alloc = spt_get_be16(&cdb[3]);
	uint32_t len;

	memset(data, 0, sizeof(data));
	/* SPC-4 6.6.2: peripheral qualifier 011b, device type 1Fh: the target
	 * cannot support a device on this logical unit; or 001b: it can, but
	 * the device is not connected now */
	data[0] = qualifier_type;
	if (cdb[1] & 0x02) {
		/* SPC-4 6.6.1: CMDDT is obsolete and must be zero. */
		spt_cmd_invalid_field_in_cdb(cmd, false, 1, 1);
		return;
	}
	if (cdb[1] & 0x01) {
		/* Only the Supported VPD Pages page, listing itself. */
		if (cdb[2] != 0x00) {
			spt_cmd_invalid_field_in_cdb(cmd, false, 2, -1);
			return;
		}
		data[1] = 0x00;
		spt_put_be16(&data[2], 1);
		data[4] = 0x00;
		len = 5;
	} else {
		/* SPC-4 6.6.1: PAGE CODE must be zero when EVPD is zero. */
		if (cdb[2] != 0x00) {
			spt_cmd_invalid_field_in_cdb(cmd, false, 2, -1);
			return;
		}
		data[2] = 0x06;		/* SPC-4 */
		data[3] = 0x12;		/* HISUP, response data format 2 */
		data[4] = NO_LUN_INQUIRY_LEN - 5;
		memcpy(&data[8], "SPT     ", 8);
		memset(&data[16], ' ', 16 + 4);
		len = NO_LUN_INQUIRY_LEN;
	}
	sense_data_in(cmd, data, len < alloc ? len : alloc);
}

/* INQUIRY and REQUEST SENSE answered with data, anything else with the
 * sense as CHECK CONDITION. */
static void spt_scsi_lun_absent(struct spt_cmd *cmd, uint8_t qualifier_type, uint8_t key,
				uint8_t asc, uint8_t ascq)
{
	const uint8_t *cdb = cmd->req.cdb;

	switch (cdb[0]) {
	case OP_INQUIRY:
		spt_scsi_no_such_lun_inquiry(cmd, qualifier_type);
		break;
	case OP_REQUEST_SENSE: {
		/* SPC-4 6.39: REQUEST SENSE returns the sense the LUN would
		 * report as data, status GOOD. */
		uint8_t sense[SENSE_BUILD_MAX];
		uint32_t alloc = cdb[4];
		uint32_t len = (uint32_t)spt_sense_build(sense, sizeof(sense), cdb[1] & 0x01, key,
							 asc, ascq, NULL);

		sense_data_in(cmd, sense, len < alloc ? len : alloc);
		break;
	}
	default:
		/* SAM-5 5.9.5 / SPC-4 4.5 */
		spt_cmd_check_condition(cmd, false, key, asc, ascq, NULL);
		break;
	}
}

void spt_scsi_no_such_lun(struct spt_cmd *cmd)
{
	spt_scsi_lun_absent(cmd, 0x7f, SPT_KEY_ILLEGAL_REQUEST, ASC_LU_NOT_SUPPORTED, 0x00);
}

void spt_scsi_lun_not_connected(struct spt_cmd *cmd)
{
	/* SPC-4 6.6.2 qualifier 001b, direct-access block device; 04/00
	 * LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE */
	spt_scsi_lun_absent(cmd, 0x20, SPT_KEY_NOT_READY, 0x04, 0x00);
}

/* SAM-5 4.7: a single-level LUN in the smallest address method it fits. */
static bool report_luns_encode(uint64_t lun, uint8_t out[REPORT_LUNS_ENTRY])
{
	memset(out, 0, REPORT_LUNS_ENTRY);
	if (lun < LUN_PERIPHERAL_MAX) {
		out[1] = (uint8_t)lun;
	} else if (lun < LUN_FLAT_MAX) {
		out[0] = (uint8_t)(LUN_FLAT_METHOD | (lun >> 8));
		out[1] = (uint8_t)lun;
	} else if (lun < LUN_EXT_FLAT_MAX) {
		out[0] = LUN_EXT_FLAT_METHOD;
		spt_put_be24(&out[1], (uint32_t)lun);
	} else {
		return false;
	}
	return true;
}

void spt_scsi_report_luns(struct spt_cmd *cmd, const uint64_t *luns, size_t nluns)
{
	const uint8_t *cdb = cmd->req.cdb;
	uint32_t alloc = spt_get_be32(&cdb[6]);
	uint8_t select = cdb[2];
	uint64_t list_len = 0;
	uint32_t total, transfer, pos;

	/* SPC-4 6.33: SELECT REPORT 00h all, 01h well-known only, 02h all;
	 * the administrative selections are not supported. */
	if (select > 0x02) {
		spt_cmd_invalid_field_in_cdb(cmd, false, 2, -1);
		return;
	}
	/* SPC-4 6.33: an allocation length below 16 is an error. */
	if (alloc < REPORT_LUNS_MIN_ALLOC) {
		spt_cmd_invalid_field_in_cdb(cmd, false, 6, -1);
		return;
	}
	/* This target has no well-known logical units: 01h lists none. */
	if (select != 0x01) {
		for (size_t i = 0; i < nluns; i++) {
			uint8_t entry[REPORT_LUNS_ENTRY];

			if (report_luns_encode(luns[i], entry))
				list_len += REPORT_LUNS_ENTRY;
		}
	}
	/* The LUN LIST LENGTH field is four bytes. */
	if (list_len > UINT32_MAX - REPORT_LUNS_HEADER)
		list_len = (UINT32_MAX - REPORT_LUNS_HEADER) / REPORT_LUNS_ENTRY * REPORT_LUNS_ENTRY;
	total = (uint32_t)list_len + REPORT_LUNS_HEADER;
	transfer = total < alloc ? total : alloc;
	if (transfer > cmd->buf_len)
		transfer = cmd->buf_len;

	/* Written straight into the command buffer, bounded by `transfer`. */
	pos = 0;
	if (cmd->buf && transfer >= REPORT_LUNS_HEADER) {
		memset(cmd->buf, 0, REPORT_LUNS_HEADER);
		spt_put_be32(cmd->buf, (uint32_t)list_len);
		pos = REPORT_LUNS_HEADER;
		for (size_t i = 0; select != 0x01 && i < nluns; i++) {
			uint8_t entry[REPORT_LUNS_ENTRY];
			uint32_t n;

			if (pos >= transfer)
				break;
			if (!report_luns_encode(luns[i], entry))
				continue;
			n = transfer - pos < REPORT_LUNS_ENTRY ? transfer - pos : REPORT_LUNS_ENTRY;
			memcpy(cmd->buf + pos, entry, n);
			pos += n;
		}
	} else if (cmd->buf && transfer) {
		uint8_t header[REPORT_LUNS_HEADER] = { 0 };

		spt_put_be32(header, (uint32_t)list_len);
		memcpy(cmd->buf, header, transfer);
		pos = transfer;
	}
	cmd->cpl.scsi_status = SPT_STATUS_GOOD;
	cmd->cpl.data_in_length = pos;
	cmd->cpl.transfer_length = total < alloc ? total : alloc;
}
