/*
 * REPORT SUPPORTED OPERATION CODES (SPC-4 6.35): the table of every command
 * a block LU served by the emulation helpers accepts (SPC-4 and SBC-3 parts
 * alike), each with its CDB usage data: a bit set for every CDB bit the
 * device server looks at.
 *
 * Keep it in step with spc_execute() and the SBC dispatcher in sbc.c.
 */
#include "scsi/spc.h"

#include <string.h>

#define RSOC_RCTD 0x80
#define RSOC_OPTIONS_MASK 0x07
#define RSOC_ALL 0x0
#define RSOC_ONE_NO_SA 0x1
#define RSOC_ONE_SA 0x2
#define RSOC_ONE_SA_OR_NOT 0x3

#define RSOC_HEADER 4			/* COMMAND DATA LENGTH */
#define RSOC_DESC_LEN 8			/* command descriptor */
#define RSOC_TIMEOUTS_LEN 12		/* command timeouts descriptor */
#define RSOC_ONE_HEADER 4
#define RSOC_CDB_MAX 16
#define RSOC_CTDP_ALL 0x02		/* command descriptor byte 5 */
#define RSOC_SERVACTV 0x01
#define RSOC_CTDP_ONE 0x80		/* one_command byte 1 */
#define RSOC_SUPPORT_NONE 0x01		/* SUPPORT 001b: not supported */
#define RSOC_SUPPORT_STD 0x03		/* SUPPORT 011b: as the standard says */
/* Seconds an application client should allow any of these commands; the
 * nominal processing time is left unspecified (0). */
#define RSOC_RECOMMENDED_TIMEOUT 30

struct rsoc_command {
	uint8_t opcode;
	bool has_sa;
	uint16_t sa;
	uint8_t cdb_len;
	uint8_t usage[RSOC_CDB_MAX];	/* CDB usage data, usage[0] = opcode */
};

/*
 * Byte-1 usage (SBC-3 5.x): the protect field (checked: must be zero), DPO,
 * FUA, FUA_NV; obsolete and reserved bits are not used.
 */
#define U_RW 0xfa
#define U_VERIFY 0xf6		/* VERIFY, WRITE AND VERIFY: protect, DPO, BYTCHK */
#define U_WRITE_SAME10 0xf8	/* WRPROTECT, ANCHOR, UNMAP */
#define U_WRITE_SAME16 0xf9	/* ... and NDOB */
#define U_GROUP 0x1f		/* GROUP NUMBER */
#define U_FF4 0xff, 0xff, 0xff, 0xff
#define U_FF8 U_FF4, U_FF4

/* Sorted by operation code, then service action. */
static const struct rsoc_command rsoc_commands[] = {
	/* SPC-4 6.47 TEST UNIT READY */
	{ 0x00, false, 0, 6, { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 } },
	/* SPC-4 6.39 REQUEST SENSE: DESC, ALLOCATION LENGTH */
	{ 0x03, false, 0, 6, { 0x03, 0x01, 0x00, 0x00, 0xff, 0x00 } },
	/* SBC-3 5.12 READ(6) */
	{ 0x08, false, 0, 6, { 0x08, 0x1f, 0xff, 0xff, 0xff, 0x00 } },
	/* SBC-3 5.34 WRITE(6) */
	{ 0x0a, false, 0, 6, { 0x0a, 0x1f, 0xff, 0xff, 0xff, 0x00 } },
	/* SPC-4 6.6 INQUIRY: EVPD, PAGE CODE, ALLOCATION LENGTH */
	{ 0x12, false, 0, 6, { 0x12, 0x01, 0xff, 0xff, 0xff, 0x00 } },
	/* SPC-4 6.9 MODE SELECT(6): PF, SP, PARAMETER LIST LENGTH */
	{ 0x15, false, 0, 6, { 0x15, 0x11, 0x00, 0x00, 0xff, 0x00 } },
	/* SPC-2 7.21 RESERVE(6): 3RDPTY and EXTENT looked at (refused) */
	{ 0x16, false, 0, 6, { 0x16, 0x11, 0x00, 0x00, 0x00, 0x00 } },
	/* SPC-2 7.19 RELEASE(6) */
	{ 0x17, false, 0, 6, { 0x17, 0x11, 0x00, 0x00, 0x00, 0x00 } },
	/* SPC-4 6.11 MODE SENSE(6): DBD, PC, PAGE CODE, SUBPAGE, ALLOCATION */
	{ 0x1a, false, 0, 6, { 0x1a, 0x08, 0xff, 0xff, 0xff, 0x00 } },
	/* SBC-3 5.25 START STOP UNIT: IMMED, POWER CONDITION (MODIFIER),
	 * NO_FLUSH, LOEJ, START */
	{ 0x1b, false, 0, 6, { 0x1b, 0x01, 0x00, 0x0f, 0xf7, 0x00 } },
	/* SBC-3 5.14 PREVENT ALLOW MEDIUM REMOVAL: PREVENT */
	{ 0x1e, false, 0, 6, { 0x1e, 0x00, 0x00, 0x00, 0x03, 0x00 } },
	/* SBC-3 5.15 READ CAPACITY(10): LBA, PMI */
	{ 0x25, false, 0, 10, { 0x25, 0x00, U_FF4, 0x00, 0x00, 0x01, 0x00 } },
	/* SBC-3 5.8 READ(10) */
	{ 0x28, false, 0, 10, { 0x28, U_RW, U_FF4, U_GROUP, 0xff, 0xff, 0x00 } },
	/* SBC-3 5.30 WRITE(10) */
	{ 0x2a, false, 0, 10, { 0x2a, U_RW, U_FF4, U_GROUP, 0xff, 0xff, 0x00 } },
	/* SBC-3 5.37 WRITE AND VERIFY(10) */
	{ 0x2e, false, 0, 10, { 0x2e, U_VERIFY, U_FF4, U_GROUP, 0xff, 0xff, 0x00 } },
	/* SBC-3 5.27 VERIFY(10) */
	{ 0x2f, false, 0, 10, { 0x2f, U_VERIFY, U_FF4, U_GROUP, 0xff, 0xff, 0x00 } },
	/* SBC-3 5.4 PRE-FETCH(10): IMMED */
	{ 0x34, false, 0, 10, { 0x34, 0x02, U_FF4, U_GROUP, 0xff, 0xff, 0x00 } },
	/* SBC-3 5.22 SYNCHRONIZE CACHE(10): SYNC_NV, IMMED */
	{ 0x35, false, 0, 10, { 0x35, 0x06, U_FF4, U_GROUP, 0xff, 0xff, 0x00 } },
	/* SBC-3 5.41 WRITE SAME(10) */
	{ 0x41, false, 0, 10, { 0x41, U_WRITE_SAME10, U_FF4, U_GROUP, 0xff, 0xff, 0x00 } },
	/* SBC-3 5.28 UNMAP: ANCHOR, GROUP NUMBER, PARAMETER LIST LENGTH */
	{ 0x42, false, 0, 10, { 0x42, 0x01, 0x00, 0x00, 0x00, 0x00, U_GROUP, 0xff, 0xff, 0x00 } },
	/* SPC-4 6.10 MODE SELECT(10) */
	{ 0x55, false, 0, 10, { 0x55, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00 } },
	/* SPC-2 7.22 RESERVE(10): 3RDPTY, LONGID, EXTENT looked at (refused) */
	{ 0x56, false, 0, 10, { 0x56, 0x13, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 } },
	/* SPC-2 7.20 RELEASE(10) */
	{ 0x57, false, 0, 10, { 0x57, 0x13, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 } },
	/* SPC-4 6.12 MODE SENSE(10): LLBAA, DBD */
	{ 0x5a, false, 0, 10, { 0x5a, 0x18, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00 } },
	/* SPC-4 6.15 PERSISTENT RESERVE IN: SERVICE ACTION, ALLOCATION LENGTH */
	{ 0x5e, true, 0x00, 10, { 0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0x00 } },	/* READ KEYS */
	{ 0x5e, true, 0x01, 10, { 0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0x00 } },	/* READ RESERVATION */
	{ 0x5e, true, 0x02, 10, { 0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0x00 } },	/* REPORT CAPABILITIES */
	{ 0x5e, true, 0x03, 10, { 0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0x00 } },	/* READ FULL STATUS */
	/* SPC-4 6.16 PERSISTENT RESERVE OUT: SERVICE ACTION, SCOPE, TYPE,
	 * PARAMETER LIST LENGTH (SCOPE and TYPE matter to RESERVE, RELEASE,
	 * PREEMPT, PREEMPT AND ABORT only) */
	{ 0x5f, true, 0x00, 10, { 0x5f, 0x1f, 0x00, 0, 0, U_FF4, 0x00 } },	/* REGISTER */
	{ 0x5f, true, 0x01, 10, { 0x5f, 0x1f, 0xff, 0, 0, U_FF4, 0x00 } },	/* RESERVE */
	{ 0x5f, true, 0x02, 10, { 0x5f, 0x1f, 0xff, 0, 0, U_FF4, 0x00 } },	/* RELEASE */
	{ 0x5f, true, 0x03, 10, { 0x5f, 0x1f, 0x00, 0, 0, U_FF4, 0x00 } },	/* CLEAR */
	{ 0x5f, true, 0x04, 10, { 0x5f, 0x1f, 0xff, 0, 0, U_FF4, 0x00 } },	/* PREEMPT */
	{ 0x5f, true, 0x05, 10, { 0x5f, 0x1f, 0xff, 0, 0, U_FF4, 0x00 } },	/* PREEMPT AND ABORT */
	{ 0x5f, true, 0x06, 10, { 0x5f, 0x1f, 0x00, 0, 0, U_FF4, 0x00 } },	/* REGISTER AND IGNORE EXISTING KEY */
	{ 0x5f, true, 0x07, 10, { 0x5f, 0x1f, 0x00, 0, 0, U_FF4, 0x00 } },	/* REGISTER AND MOVE */
	/* SPC-4 6.4 EXTENDED COPY(LID1): PARAMETER LIST LENGTH */
	{ 0x83, true, 0x00, 16,
	  { 0x83, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, U_FF4, 0x00, 0x00 } },
	/* SPC-4 6.18.3 RECEIVE COPY RESULTS / COPY STATUS: LIST IDENTIFIER,
	 * ALLOCATION LENGTH */
	{ 0x84, true, 0x00, 16,
	  { 0x84, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, U_FF4, 0x00, 0x00 } },
	/* SPC-4 6.18.4 RECEIVE COPY RESULTS / OPERATING PARAMETERS */
	{ 0x84, true, 0x03, 16,
	  { 0x84, 0x1f, 0x00, 0, 0, 0, 0, 0, 0, 0, U_FF4, 0x00, 0x00 } },
	/* SBC-3 5.11 READ(16) */
	{ 0x88, false, 0, 16, { 0x88, U_RW, U_FF8, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.2 COMPARE AND WRITE: WRPROTECT, DPO, FUA, FUA_NV, LBA,
	 * NUMBER OF LOGICAL BLOCKS, GROUP NUMBER */
	{ 0x89, false, 0, 16,
	  { 0x89, U_RW, U_FF8, 0x00, 0x00, 0x00, 0xff, U_GROUP, 0x00 } },
	/* SBC-3 5.32 WRITE(16) */
	{ 0x8a, false, 0, 16, { 0x8a, U_RW, U_FF8, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.2 ORWRITE(16): ORPROTECT, DPO, FUA, FUA_NV */
	{ 0x8b, false, 0, 16, { 0x8b, U_RW, U_FF8, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.39 WRITE AND VERIFY(16) */
	{ 0x8e, false, 0, 16, { 0x8e, U_VERIFY, U_FF8, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.29 VERIFY(16) */
	{ 0x8f, false, 0, 16, { 0x8f, U_VERIFY, U_FF8, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.5 PRE-FETCH(16) */
	{ 0x90, false, 0, 16, { 0x90, 0x02, U_FF8, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.23 SYNCHRONIZE CACHE(16) */
	{ 0x91, false, 0, 16, { 0x91, 0x06, U_FF8, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.42 WRITE SAME(16) */
	{ 0x93, false, 0, 16, { 0x93, U_WRITE_SAME16, U_FF8, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.16 SERVICE ACTION IN(16) / READ CAPACITY(16): ALLOCATION LENGTH */
	{ 0x9e, true, 0x10, 16,
	  { 0x9e, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, U_FF4, 0x00, 0x00 } },
	/* SBC-3 5.7 SERVICE ACTION IN(16) / GET LBA STATUS: LBA, ALLOCATION LENGTH */
	{ 0x9e, true, 0x12, 16, { 0x9e, 0x1f, U_FF8, U_FF4, 0x00, 0x00 } },
	/* SPC-4 6.33 REPORT LUNS: SELECT REPORT, ALLOCATION LENGTH */
	{ 0xa0, false, 0, 12,
	  { 0xa0, 0x00, 0xff, 0x00, 0x00, 0x00, U_FF4, 0x00, 0x00 } },
	/* SPC-4 6.35 MAINTENANCE IN / REPORT SUPPORTED OPERATION CODES */
	/* SPC-4 6.36 REPORT TARGET PORT GROUPS: PARAMETER DATA FORMAT,
	 * ALLOCATION LENGTH */
	{ 0xa3, true, 0x0a, 12,
	  { 0xa3, 0xff, 0x00, 0x00, 0x00, 0x00, U_FF4, 0x00, 0x00 } },
	{ 0xa3, true, 0x0c, 12,
	  { 0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff, U_FF4, 0x00, 0x00 } },
	/* SBC-3 5.10 READ(12) */
	{ 0xa8, false, 0, 12, { 0xa8, U_RW, U_FF4, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.31 WRITE(12) */
	{ 0xaa, false, 0, 12, { 0xaa, U_RW, U_FF4, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.38 WRITE AND VERIFY(12) */
	{ 0xae, false, 0, 12, { 0xae, U_VERIFY, U_FF4, U_FF4, U_GROUP, 0x00 } },
	/* SBC-3 5.28 VERIFY(12) */
	{ 0xaf, false, 0, 12, { 0xaf, U_VERIFY, U_FF4, U_FF4, U_GROUP, 0x00 } },
};

#define RSOC_COUNT (sizeof(rsoc_commands) / sizeof(rsoc_commands[0]))
#define RSOC_BUF_MAX (RSOC_HEADER + RSOC_COUNT * (RSOC_DESC_LEN + RSOC_TIMEOUTS_LEN))

/* SPC-4 6.35.4 command timeouts descriptor. */
static uint32_t rsoc_timeouts(uint8_t *p)
{
	memset(p, 0, RSOC_TIMEOUTS_LEN);
	spt_put_be16(&p[0], RSOC_TIMEOUTS_LEN - 2);
	spt_put_be32(&p[4], 0);
	spt_put_be32(&p[8], RSOC_RECOMMENDED_TIMEOUT);
	return RSOC_TIMEOUTS_LEN;
}

static void rsoc_all(struct spt_cmd *cmd, bool rctd, uint32_t alloc)
{
	uint8_t buf[RSOC_BUF_MAX];
	uint32_t pos = RSOC_HEADER;

	memset(buf, 0, sizeof(buf));
	for (size_t i = 0; i < RSOC_COUNT; i++) {
		const struct rsoc_command *c = &rsoc_commands[i];
		uint8_t *d = &buf[pos];

		/* SPC-4 6.35.3 command descriptor. */
		d[0] = c->opcode;
		spt_put_be16(&d[2], c->sa);
		d[5] = (uint8_t)((rctd ? RSOC_CTDP_ALL : 0) | (c->has_sa ? RSOC_SERVACTV : 0));
		spt_put_be16(&d[6], c->cdb_len);
		pos += RSOC_DESC_LEN;
		if (rctd)
			pos += rsoc_timeouts(&buf[pos]);
	}
	spt_put_be32(buf, pos - RSOC_HEADER);
	spc_data_in(cmd, buf, alloc < pos ? alloc : pos);
}

static void rsoc_one(struct spt_cmd *cmd, const struct rsoc_command *c, bool rctd, uint32_t alloc)
{
	uint8_t buf[RSOC_ONE_HEADER + RSOC_CDB_MAX + RSOC_TIMEOUTS_LEN];
	uint32_t pos = RSOC_ONE_HEADER;

	memset(buf, 0, sizeof(buf));
	if (!c) {
		/* SPC-4 6.35.3: SUPPORT 001b and no CDB usage data. */
		buf[1] = RSOC_SUPPORT_NONE;
	} else {
		buf[1] = (uint8_t)((rctd ? RSOC_CTDP_ONE : 0) | RSOC_SUPPORT_STD);
		spt_put_be16(&buf[2], c->cdb_len);
		memcpy(&buf[pos], c->usage, c->cdb_len);
		pos += c->cdb_len;
		if (rctd)
			pos += rsoc_timeouts(&buf[pos]);
	}
	spc_data_in(cmd, buf, alloc < pos ? alloc : pos);
}

void spc_report_supported_opcodes(struct spt_bdev *bdev, struct spt_cmd *cmd)
{
	const uint8_t *cdb = cmd->req.cdb;
	bool rctd = cdb[2] & RSOC_RCTD;
	uint8_t options = cdb[2] & RSOC_OPTIONS_MASK;
	uint8_t opcode = cdb[3];
	uint16_t sa = spt_get_be16(&cdb[4]);
	uint32_t alloc = spt_get_be32(&cdb[6]);
	const struct rsoc_command *found = NULL;
	bool opcode_has_sa = false;

	if (options == RSOC_ALL) {
		rsoc_all(cmd, rctd, alloc);
		return;
	}
	/* SPC-4 6.35.2: REPORTING OPTIONS 100b and up are reserved. */
	if (options > RSOC_ONE_SA_OR_NOT) {
		spc_invalid_field_in_cdb(bdev, cmd, 2, 2);
		return;
	}
	for (size_t i = 0; i < RSOC_COUNT; i++) {
		const struct rsoc_command *c = &rsoc_commands[i];

		if (c->opcode != opcode)
			continue;
		opcode_has_sa = c->has_sa;
		if (!c->has_sa || c->sa == sa) {
			found = c;
			break;
		}
	}
	/* SPC-4 6.35.2: 001b for an operation code with service actions, or
	 * 010b for one without, is an invalid request. The field pointer
	 * names REPORTING OPTIONS. */
	if ((options == RSOC_ONE_NO_SA && opcode_has_sa) ||
	    (options == RSOC_ONE_SA && found && !found->has_sa)) {
		spc_invalid_field_in_cdb(bdev, cmd, 2, 2);
		return;
	}
	/* 001b ignores REQUESTED SERVICE ACTION; 011b matches it exactly
	 * (a command without service actions has service action 0). */
	if (options == RSOC_ONE_SA_OR_NOT && found && !found->has_sa && sa != 0)
		found = NULL;
	rsoc_one(cmd, found, rctd, alloc);
}
