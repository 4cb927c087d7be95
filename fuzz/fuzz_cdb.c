/*
 * fuzz_cdb: bytes into the SCSI emulation (spt_bdev_execute, through
 * spt_dispatch_scsi as the engine calls it) of a RAM block device whose
 * backing-store operations complete inside submit, so every request must
 * complete before spt_dispatch_scsi returns.
 *
 * Input layout:
 *   byte 0   device: bit 0 4096-byte blocks (else 512), bit 1 read-only,
 *            bit 2 thin provisioned, bit 3 write cache enabled,
 *            bit 4 a bad block: backing-store operations covering LBA 3 fail,
 *            with an errno chosen by byte 1 (and FLUSH too if its bit 7 is set),
 *            bits 5-7 capacity in blocks, one of fz_capacities[]
 *   byte 1   (bit 4 of byte 0 only) the errno: fz_errnos[byte & 7]
 *   then records until the input ends; the first byte of each says what it is:
 *   SCSI command   (byte & 3) == 0 or 1
 *            byte   bits 2-4 task attribute, bit 5 LUN 1 (no such LUN)
 *            byte   CDB length - 1 (low 5 bits: 1 to 32 bytes), then the CDB
 *            byte   bits 0-1 direction (none, out, in, none), bits 4-7 data-out
 *                   sequences - 1 (the engine hands a write over burst by burst)
 *            3 bytes ExpectedDataTransferLength, big-endian
 *            2 bytes n, then n bytes of data-out (zeros after them)
 *   TMF            (byte & 3) == 2, then a byte: the function (1-8), bit 7 LUN 1
 *   I_T nexus      (byte & 3) == 3: bits 2-3 the nexus to use from now on (its
 *                  SESSION_START is sent when first used); bit 4 sends its
 *                  SESSION_END first (a new session of the same nexus)
 *
 * The harness checks what the engine relies on: spt_cmd_complete called
 * exactly once per request; a SAM status; data-in within the buffer; sense
 * of at most SPT_SENSE_MAX bytes; any sense (always with CHECK CONDITION)
 * well formed: response code 70h-73h, ADDITIONAL SENSE LENGTH matching its
 * length, descriptors within it, a sense key, and a field pointer (SKSV)
 * inside the CDB or the parameter data it points into. Every backing-store
 * operation must lie within the medium (ram_bdev.c aborts otherwise).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spt/scsi.h>

#include "ram_bdev.h"
#include "spt/dispatch.h"
#include "util/log.h"

/* VPD B0 limit and the largest command buffer: the engine's 8 MiB scaled down,
 * as is the memory behind the medium, to keep each input fast */
#define FZ_MAX_TRANSFER (64u * 1024)
#define FZ_BACKED_BYTES (64u * 1024)
#define FZ_MAX_COMMANDS 64
#define FZ_NEXUS 4
#define FZ_SENSE_FIXED 0x70
#define FZ_SENSE_DESC 0x72
#define FZ_SKSV 0x80
#define FZ_SKS_CD 0x40
#define FZ_ASC_INVALID_FIELD_IN_CDB 0x24
#define FZ_ASC_INVALID_FIELD_IN_PARAM 0x26

/* backing-store errors the helpers map to status and sense (sbc_io_error) */
static const int fz_errnos[8] = { EIO, ENOSPC, EROFS, ENOMEM, EAGAIN, ENODATA, EINVAL, EACCES };
#define FZ_BAD_LBA 3

static const uint64_t fz_capacities[8] = {
	1, 8, 256, 2048, 65535, 1ull << 32, (1ull << 32) + 7, 0xffffffffffull,
};

struct fz_input {
	const uint8_t *p;
	size_t left;
};

static uint8_t fz_byte(struct fz_input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

struct fz_state {
	struct fuzz_ram ram;
	struct spt_lun_map map;
	bool started[FZ_NEXUS];
	int nexus;
	uint64_t next_cookie;
	int done_calls;
};

static struct fz_state fz;

static void fz_fail(const char *what, const struct spt_cmd *cmd)
{
	fprintf(stderr, "fuzz_cdb: %s", what);
	if (cmd) {
		fprintf(stderr, " (CDB");
		for (unsigned i = 0; i < 16; i++)
			fprintf(stderr, " %02x", cmd->req.cdb[i]);
		fprintf(stderr, ", status 0x%02x, sense", cmd->cpl.scsi_status);
		for (unsigned i = 0; i < cmd->cpl.sense_length && i < SPT_SENSE_MAX; i++)
			fprintf(stderr, " %02x", cmd->cpl.sense[i]);
		fprintf(stderr, ")");
	}
	fprintf(stderr, "\n");
	abort();
}

static void fz_cmd_done(struct spt_cmd *cmd)
{
	fz.done_calls++;
}

static void fz_tmf_done(struct spt_tmf *tmf)
{
	fz.done_calls++;
}

static uint64_t fz_handle(int nexus)
{
	return 0x1000 + (uint64_t)nexus;
}

static void fz_session_start(int nexus)
{
	struct spt_session_start ss;

	memset(&ss, 0, sizeof(ss));
	ss.itnexus_handle = fz_handle(nexus);
	snprintf(ss.peer_address, sizeof(ss.peer_address), "127.0.0.1:%d", 40000 + nexus);
	snprintf(ss.itnexus, sizeof(ss.itnexus),
		 "iqn.2026-11.org.spt:fuzz-initiator,i,0x80000000000%d,iqn.2026-11.org.spt:fuzz,t,0x0001",
		 nexus);
	spt_dispatch_session_start(&fz.map, &ss);
	fz.started[nexus] = true;
}

/* SPC-4 4.5.2.4.2: a field pointer names a byte of the CDB or of the parameter data. */
static void fz_check_sks(const struct spt_cmd *cmd, const uint8_t *sks, uint8_t asc, uint32_t data_out)
{
	uint16_t field = spt_get_be16(sks + 1);

	if (!(sks[0] & FZ_SKSV))
		return;
	if (asc != FZ_ASC_INVALID_FIELD_IN_CDB && asc != FZ_ASC_INVALID_FIELD_IN_PARAM)
		return;	/* other sense-key specific formats (progress, retry count) */
	if (asc == FZ_ASC_INVALID_FIELD_IN_CDB) {
		if (!(sks[0] & FZ_SKS_CD))
			fz_fail("INVALID FIELD IN CDB with C/D = 0", cmd);
		if (field >= SPT_CDB_MAX)
			fz_fail("field pointer beyond the CDB", cmd);
	} else {
		if (sks[0] & FZ_SKS_CD)
			fz_fail("INVALID FIELD IN PARAMETER LIST with C/D = 1", cmd);
		if (field >= data_out)
			fz_fail("field pointer beyond the parameter data received", cmd);
	}
}

/* SPC-4 4.5: fixed or descriptor format, self-consistent. */
static void fz_check_sense(const struct spt_cmd *cmd, uint32_t data_out)
{
	const uint8_t *s = cmd->cpl.sense;
	unsigned len = cmd->cpl.sense_length;
	uint8_t rc, key, asc;

	if (len > SPT_SENSE_MAX)
		fz_fail("sense longer than SPT_SENSE_MAX", cmd);
	if (cmd->cpl.scsi_status != SPT_STATUS_CHECK_CONDITION) {
		if (len)
			fz_fail("sense data without CHECK CONDITION", cmd);
		return;
	}
	if (len < 8)
		fz_fail("CHECK CONDITION with less than 8 bytes of sense", cmd);
	rc = s[0] & 0x7f;
	if (rc != FZ_SENSE_FIXED && rc != FZ_SENSE_FIXED + 1 && rc != FZ_SENSE_DESC &&
	    rc != FZ_SENSE_DESC + 1)
		fz_fail("sense response code not 70h-73h", cmd);
	if (8u + s[7] != len)
		fz_fail("ADDITIONAL SENSE LENGTH does not match the sense length", cmd);
	if (rc == FZ_SENSE_FIXED || rc == FZ_SENSE_FIXED + 1) {
		if (len < 18)
			fz_fail("fixed-format sense shorter than 18 bytes", cmd);
		key = s[2] & 0x0f;
		asc = s[12];
		fz_check_sks(cmd, s + 15, asc, data_out);
	} else {
		key = s[1] & 0x0f;
		asc = s[2];
		for (unsigned off = 8; off < len;) {
			if (off + 2 > len || off + 2u + s[off + 1] > len)
				fz_fail("sense descriptor beyond the sense data", cmd);
			/* SPC-4 4.5.2.4: sense key specific descriptor */
			if (s[off] == 0x02 && s[off + 1] >= 6)
				fz_check_sks(cmd, s + off + 4, asc, data_out);
			off += 2u + s[off + 1];
		}
	}
	if (key == 0)
		fz_fail("CHECK CONDITION with sense key NO SENSE", cmd);
}

static void fz_check_completion(const struct spt_cmd *cmd, uint32_t data_out)
{
	switch (cmd->cpl.scsi_status) {
	case SPT_STATUS_GOOD:
	case SPT_STATUS_CHECK_CONDITION:
	case SPT_STATUS_CONDITION_MET:
	case SPT_STATUS_BUSY:
	case SPT_STATUS_RESERVATION_CONFLICT:
	case SPT_STATUS_TASK_SET_FULL:
	case SPT_STATUS_ACA_ACTIVE:
	case SPT_STATUS_TASK_ABORTED:
		break;
	default:
		fz_fail("not a SAM status", cmd);
	}
	if (cmd->cpl.data_in_length > cmd->buf_len)
		fz_fail("data-in longer than the command's buffer", cmd);
	fz_check_sense(cmd, data_out);
}

static void fz_command(struct fz_input *in, uint8_t head)
{
	uint8_t attr_lun = head;
	uint8_t cdb_len = (uint8_t)((fz_byte(in) & 0x1f) + 1);
	struct spt_cmd *cmd = calloc(1, sizeof(*cmd));

	if (!cmd)
		abort();
	for (unsigned i = 0; i < cdb_len; i++)
		cmd->req.cdb[i] = fz_byte(in);
	uint8_t dirseq = fz_byte(in);
	uint32_t edtl = (uint32_t)fz_byte(in) << 16;

	edtl |= (uint32_t)fz_byte(in) << 8;
	edtl |= fz_byte(in);
	uint32_t n = (uint32_t)fz_byte(in) << 8;

	n |= fz_byte(in);

	uint8_t dir = dirseq & 3;
	unsigned nseq = (dirseq >> 4) + 1u;

	if (dir == SPT_DIR_BIDI)
		dir = SPT_DIR_NONE;
	/* task.c: the buffer holds min(EDTL, limit) bytes; none without EDTL */
	uint32_t cap = edtl < FZ_MAX_TRANSFER ? edtl : FZ_MAX_TRANSFER;
	bool oversize = dir == SPT_DIR_OUT && edtl > FZ_MAX_TRANSFER;

	if (cap) {
		cmd->buf = malloc(cap);
		if (!cmd->buf)
			abort();
		/* what the pool hands out is not zeroed: a stale pattern */
		memset(cmd->buf, 0xa5, cap);
		cmd->buf_len = cap;
	}
	if (dir == SPT_DIR_OUT && cap) {
		uint32_t take = n < in->left ? n : (uint32_t)in->left;

		take = take < cap ? take : cap;
		memcpy(cmd->buf, in->p, take);
		memset(cmd->buf + take, 0, cap - take);
	}
	/* the data-out bytes are in the input whatever the command */
	n = n < in->left ? n : (uint32_t)in->left;
	in->p += n;
	in->left -= n;

	cmd->req.session_cookie = fz_handle(fz.nexus);
	cmd->req.task_cookie = fz.next_cookie++;
	cmd->req.lun = (attr_lun & 0x20) ? 1 : 0;
	cmd->req.expected_length = edtl;
	cmd->req.direction = dir;
	cmd->req.cdb_length = cdb_len;
	cmd->req.task_attribute = (uint8_t)((attr_lun >> 2) & 7);
	cmd->done = fz_cmd_done;

	/* task.c: data-out reaches the provider one sequence at a time */
	uint32_t total = dir == SPT_DIR_OUT && !oversize ? cap : 0;
	uint32_t seq = total / nseq + (total % nseq ? 1 : 0);
	uint32_t off = 0;

	for (;;) {
		uint32_t len = total - off < seq ? total - off : seq;
		bool final = off + len >= total;

		memset(&cmd->cpl, 0, sizeof(cmd->cpl));
		cmd->cpl.task_cookie = cmd->req.task_cookie;
		cmd->req.sequence_byte_offset = off;
		cmd->req.data_length = len;
		cmd->req.is_final = final;
		fz.done_calls = 0;
		spt_dispatch_scsi(&fz.map, cmd);
		if (fz.done_calls != 1)
			fz_fail(fz.done_calls ? "request completed more than once" :
				"request not completed with a synchronous backing store", cmd);
		fz_check_completion(cmd, off + len);
		if (final)
			break;
		if (cmd->cpl.scsi_status != SPT_STATUS_GOOD) {
			if (cmd->cpl.data_in_length)
				fz_fail("data-in on a non-final data-out sequence", cmd);
			break;
		}
		off += len;
	}
	free(cmd->buf);
	free(cmd);
}

static void fz_tmf(struct fz_input *in)
{
	uint8_t b = fz_byte(in);
	struct spt_tmf tmf;

	memset(&tmf, 0, sizeof(tmf));
	tmf.w.itnexus_handle = fz_handle(fz.nexus);
	tmf.w.lun = (b & 0x80) ? 1 : 0;
	tmf.w.function = (b & 0x0f) % 8 + 1;
	tmf.w.reference_task_cookie = fz.next_cookie - 1;
	tmf.done = fz_tmf_done;
	fz.done_calls = 0;
	if (!spt_dispatch_tmf(&fz.map, &tmf))
		return;		/* no such LUN: the engine answers itself */
	if (fz.done_calls != 1)
		fz_fail("TMF not completed exactly once", NULL);
	switch (tmf.w.response) {
	case SPT_TMF_RSP_COMPLETE:
	case SPT_TMF_RSP_NO_TASK:
	case SPT_TMF_RSP_NO_LUN:
	case SPT_TMF_RSP_TASK_ALLEGIANT:
	case SPT_TMF_RSP_NO_REASSIGN:
	case SPT_TMF_RSP_NOT_SUPPORTED:
	case SPT_TMF_RSP_AUTH_FAILED:
	case SPT_TMF_RSP_REJECTED:
		break;
	default:
		fz_fail("TMF response not in RFC 7143 11.6.1", NULL);
	}
}

static void fz_nexus(uint8_t head)
{
	int nexus = (head >> 2) & 3;

	if ((head & 0x10) && fz.started[nexus]) {
		spt_dispatch_session_end(&fz.map, fz_handle(nexus));
		fz.started[nexus] = false;
	}
	fz.nexus = nexus;
	if (!fz.started[nexus])
		fz_session_start(nexus);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *lvl = getenv("FUZZ_LOG");

	if (!lvl || log_parse_level(lvl, &log_threshold) < 0)
		log_threshold = LOG_ERR;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_input in = { data, size };
	uint8_t dev;

	if (size < 1)
		return 0;
	dev = fz_byte(&in);
	memset(&fz, 0, sizeof(fz));
	struct fuzz_ram_geometry g = {
		.block_size = (dev & 1) ? 4096 : 512,
		.read_only = dev & 2,
		.thin = dev & 4,
		.write_cache = dev & 8,
		.num_blocks = fz_capacities[dev >> 5],
		.max_transfer_bytes = FZ_MAX_TRANSFER,
		.backed_bytes = FZ_BACKED_BYTES,
	};

	if (dev & 0x10) {
		uint8_t fault = fz_byte(&in);

		g.fail_offset = (uint64_t)FZ_BAD_LBA * g.block_size;
		g.fail_errno = fz_errnos[fault & 7];
		g.fail_flush = fault & 0x80;
	}
	if (fuzz_ram_init(&fz.ram, &g, NULL) != 0)
		abort();
	fz.map.luns[0] = (struct spt_lun){ .lun = 0, .ops = &fuzz_ram_ops, .ctx = &fz.ram };
	fz.map.count = 1;
	fz.next_cookie = 1;
	fz_session_start(0);

	for (int i = 0; i < FZ_MAX_COMMANDS && in.left; i++) {
		uint8_t head = fz_byte(&in);

		switch (head & 3) {
		case 0:
		case 1:
			fz_command(&in, head);
			break;
		case 2:
			fz_tmf(&in);
			break;
		default:
			fz_nexus(head);
			break;
		}
	}
	for (int i = 0; i < FZ_NEXUS; i++)
		if (fz.started[i])
			spt_dispatch_session_end(&fz.map, fz_handle(i));
	spt_lun_map_close(&fz.map);
	fuzz_ram_free(&fz.ram);
	return 0;
}
