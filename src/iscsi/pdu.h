/*
 * iSCSI PDU layouts (RFC 7143 section 11): the 48-byte Basic Header Segment
 * of each opcode as a packed struct. Multi-byte fields are big-endian on the
 * wire and are converted with the pdu_get/pdu_put helpers below.
 */
#ifndef ISCSI_PDU_H
#define ISCSI_PDU_H

#include <stddef.h>
#include <stdint.h>
#include <endian.h>

#define ISCSI_BHS_LEN 48
#define ISCSI_DIGEST_LEN 4
#define ISCSI_RESERVED_TAG 0xffffffffu
/* RFC 7143 11.2.1.4: DataSegmentLength is 24 bits */
#define ISCSI_DSL_MAX 0xffffffu
/* RFC 7143 11.2.1.2: TotalAHSLength in 4-byte words, one byte */
#define ISCSI_AHS_MAX (255 * 4)

enum iscsi_opcode {
	/* initiator */
	ISCSI_OP_NOP_OUT = 0x00,
	ISCSI_OP_SCSI_CMD = 0x01,
	ISCSI_OP_TMF_REQ = 0x02,
	ISCSI_OP_LOGIN_REQ = 0x03,
	ISCSI_OP_TEXT_REQ = 0x04,
	ISCSI_OP_DATA_OUT = 0x05,
	ISCSI_OP_LOGOUT_REQ = 0x06,
	ISCSI_OP_SNACK = 0x10,
	/* target */
	ISCSI_OP_NOP_IN = 0x20,
	ISCSI_OP_SCSI_RSP = 0x21,
	ISCSI_OP_TMF_RSP = 0x22,
	ISCSI_OP_LOGIN_RSP = 0x23,
	ISCSI_OP_TEXT_RSP = 0x24,
	ISCSI_OP_DATA_IN = 0x25,
	ISCSI_OP_LOGOUT_RSP = 0x26,
	ISCSI_OP_R2T = 0x31,
	ISCSI_OP_ASYNC = 0x32,
	ISCSI_OP_REJECT = 0x3f,
};

#define ISCSI_OPCODE_MASK 0x3f
#define ISCSI_FLAG_IMMEDIATE 0x40	/* byte 0 */
#define ISCSI_FLAG_FINAL 0x80		/* byte 1 */
#define ISCSI_FLAG_CONTINUE 0x40	/* Login / Text byte 1 */

/* SCSI Command flags (byte 1) */
#define ISCSI_CMD_READ 0x40
#define ISCSI_CMD_WRITE 0x20
#define ISCSI_CMD_ATTR_MASK 0x07

/* SCSI Response / Data-In flags (byte 1) */
#define ISCSI_RSP_BIDI_OVERFLOW 0x10
#define ISCSI_RSP_BIDI_UNDERFLOW 0x08
#define ISCSI_RSP_OVERFLOW 0x04
#define ISCSI_RSP_UNDERFLOW 0x02
#define ISCSI_DATAIN_ACK 0x40
#define ISCSI_DATAIN_STATUS 0x01

/* Login flags (byte 1) */
#define ISCSI_LOGIN_TRANSIT 0x80
#define ISCSI_LOGIN_CSG(f) (((f) >> 2) & 3)
#define ISCSI_LOGIN_NSG(f) ((f) & 3)

enum iscsi_reject_reason {
	ISCSI_REJECT_DATA_DIGEST = 0x02,
	ISCSI_REJECT_SNACK = 0x03,
	ISCSI_REJECT_PROTOCOL_ERROR = 0x04,
	ISCSI_REJECT_CMD_NOT_SUPPORTED = 0x05,
	ISCSI_REJECT_IMMEDIATE_REJECT = 0x06,
	ISCSI_REJECT_TASK_IN_PROGRESS = 0x07,
	ISCSI_REJECT_INVALID_DATA_ACK = 0x08,
	ISCSI_REJECT_INVALID_PDU_FIELD = 0x09,
	ISCSI_REJECT_OUT_OF_RESOURCES = 0x0a,
	ISCSI_REJECT_WAITING_FOR_LOGOUT = 0x0c,
	/* not on the wire: Reject, then close the connection */
	ISCSI_REJECT_FATAL = 0x100,
};

/* Any PDU: the fields common to all opcodes. */
struct iscsi_bhs {
	uint8_t opcode;		/* I bit | opcode */
	uint8_t flags;
	uint8_t opspec[2];
	uint8_t total_ahs_len;	/* 4-byte words */
	uint8_t dsl[3];		/* DataSegmentLength */
	uint8_t lun[8];		/* or opcode-specific */
	uint32_t itt;
	uint8_t opspec2[28];
} __attribute__((packed));

struct iscsi_scsi_cmd {
	uint8_t opcode, flags, rsvd[2], total_ahs_len, dsl[3];
	uint8_t lun[8];
	uint32_t itt;
	uint32_t edtl;		/* ExpectedDataTransferLength */
	uint32_t cmdsn;
	uint32_t exp_statsn;
	uint8_t cdb[16];
} __attribute__((packed));

struct iscsi_scsi_rsp {
	uint8_t opcode, flags, response, status, total_ahs_len, dsl[3];
	uint8_t rsvd[8];
	uint32_t itt;
	uint32_t snack_tag;
	uint32_t statsn;
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint32_t exp_datasn;
	uint32_t bidi_residual;
	uint32_t residual;
} __attribute__((packed));

struct iscsi_data_in {
	uint8_t opcode, flags, rsvd, status, total_ahs_len, dsl[3];
	uint8_t lun[8];
	uint32_t itt;
	uint32_t ttt;
	uint32_t statsn;
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint32_t datasn;
	uint32_t buffer_offset;
	uint32_t residual;
} __attribute__((packed));

struct iscsi_data_out {
	uint8_t opcode, flags, rsvd[2], total_ahs_len, dsl[3];
	uint8_t lun[8];
	uint32_t itt;
	uint32_t ttt;
	uint32_t rsvd2;
	uint32_t exp_statsn;
	uint32_t rsvd3;
	uint32_t datasn;
	uint32_t buffer_offset;
	uint32_t rsvd4;
} __attribute__((packed));

struct iscsi_r2t {
	uint8_t opcode, flags, rsvd[2], total_ahs_len, dsl[3];
	uint8_t lun[8];
	uint32_t itt;
	uint32_t ttt;
	uint32_t statsn;
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint32_t r2tsn;
	uint32_t buffer_offset;
	uint32_t desired_length;
} __attribute__((packed));

/* NOP-Out and NOP-In share a layout (RFC 7143 11.18, 11.19). */
struct iscsi_nop {
	uint8_t opcode, flags, rsvd[2], total_ahs_len, dsl[3];
	uint8_t lun[8];
	uint32_t itt;
	uint32_t ttt;
	uint32_t sn1;		/* CmdSN (out) / StatSN (in) */
	uint32_t sn2;		/* ExpStatSN (out) / ExpCmdSN (in) */
	uint32_t max_cmdsn;	/* in only */
	uint8_t rsvd2[12];
} __attribute__((packed));

struct iscsi_tmf_req {
	uint8_t opcode, function, rsvd[2], total_ahs_len, dsl[3];
	uint8_t lun[8];
	uint32_t itt;
	uint32_t ref_itt;
	uint32_t cmdsn;
	uint32_t exp_statsn;
	uint32_t ref_cmdsn;
	uint32_t exp_datasn;
	uint8_t rsvd2[8];
} __attribute__((packed));

struct iscsi_tmf_rsp {
	uint8_t opcode, flags, response, rsvd, total_ahs_len, dsl[3];
	uint8_t rsvd2[8];
	uint32_t itt;
	uint32_t rsvd3;
	uint32_t statsn;
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint8_t rsvd4[12];
} __attribute__((packed));

struct iscsi_login_req {
	uint8_t opcode, flags, version_max, version_min, total_ahs_len, dsl[3];
	uint8_t isid[6];
	uint16_t tsih;
	uint32_t itt;
	uint16_t cid;
	uint16_t rsvd;
	uint32_t cmdsn;
	uint32_t exp_statsn;
	uint8_t rsvd2[16];
} __attribute__((packed));

struct iscsi_login_rsp {
	uint8_t opcode, flags, version_max, version_active, total_ahs_len, dsl[3];
	uint8_t isid[6];
	uint16_t tsih;
	uint32_t itt;
	uint32_t rsvd;
	uint32_t statsn;
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint8_t status_class;
	uint8_t status_detail;
	uint8_t rsvd2[10];
} __attribute__((packed));

/* Text request and response (RFC 7143 11.10, 11.11). */
struct iscsi_text {
	uint8_t opcode, flags, rsvd[2], total_ahs_len, dsl[3];
	uint8_t lun[8];
	uint32_t itt;
	uint32_t ttt;
	uint32_t sn1;		/* CmdSN (req) / StatSN (rsp) */
	uint32_t sn2;		/* ExpStatSN (req) / ExpCmdSN (rsp) */
	uint32_t max_cmdsn;	/* rsp only */
	uint8_t rsvd2[12];
} __attribute__((packed));

struct iscsi_logout_req {
	uint8_t opcode, reason, rsvd[2], total_ahs_len, dsl[3];
	uint8_t rsvd2[8];
	uint32_t itt;
	uint16_t cid;
	uint16_t rsvd3;
	uint32_t cmdsn;
	uint32_t exp_statsn;
	uint8_t rsvd4[16];
} __attribute__((packed));

struct iscsi_logout_rsp {
	uint8_t opcode, flags, response, rsvd, total_ahs_len, dsl[3];
	uint8_t rsvd2[8];
	uint32_t itt;
	uint32_t rsvd3;
	uint32_t statsn;
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint32_t rsvd4;
	uint16_t time2wait;
	uint16_t time2retain;
	uint32_t rsvd5;
} __attribute__((packed));

struct iscsi_async {
	uint8_t opcode, flags, rsvd[2], total_ahs_len, dsl[3];
	uint8_t lun[8];
	uint32_t itt;		/* 0xffffffff */
	uint32_t rsvd2;
	uint32_t statsn;
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint8_t event;
	uint8_t vcode;
	uint16_t param1;
	uint16_t param2;
	uint16_t param3;
	uint32_t rsvd3;
} __attribute__((packed));

struct iscsi_reject {
	uint8_t opcode, flags, reason, rsvd, total_ahs_len, dsl[3];
	uint8_t rsvd2[8];
	uint32_t itt;		/* 0xffffffff */
	uint32_t rsvd3;
	uint32_t statsn;
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint32_t datasn;
	uint8_t rsvd4[8];
} __attribute__((packed));

#define ISCSI_BHS_ASSERT(t) _Static_assert(sizeof(struct t) == ISCSI_BHS_LEN, #t " is 48 bytes")
ISCSI_BHS_ASSERT(iscsi_bhs);
ISCSI_BHS_ASSERT(iscsi_scsi_cmd);
ISCSI_BHS_ASSERT(iscsi_scsi_rsp);
ISCSI_BHS_ASSERT(iscsi_data_in);
ISCSI_BHS_ASSERT(iscsi_data_out);
ISCSI_BHS_ASSERT(iscsi_r2t);
ISCSI_BHS_ASSERT(iscsi_nop);
ISCSI_BHS_ASSERT(iscsi_tmf_req);
ISCSI_BHS_ASSERT(iscsi_tmf_rsp);
ISCSI_BHS_ASSERT(iscsi_login_req);
ISCSI_BHS_ASSERT(iscsi_login_rsp);
ISCSI_BHS_ASSERT(iscsi_text);
ISCSI_BHS_ASSERT(iscsi_logout_req);
ISCSI_BHS_ASSERT(iscsi_logout_rsp);
ISCSI_BHS_ASSERT(iscsi_async);
ISCSI_BHS_ASSERT(iscsi_reject);
_Static_assert(offsetof(struct iscsi_scsi_cmd, cdb) == 32, "CDB at byte 32");
_Static_assert(offsetof(struct iscsi_login_rsp, status_class) == 36, "login status at 36");
_Static_assert(offsetof(struct iscsi_data_in, buffer_offset) == 40, "offset at 40");
_Static_assert(offsetof(struct iscsi_logout_rsp, time2wait) == 40, "time2wait at 40");
_Static_assert(offsetof(struct iscsi_async, event) == 36, "async event at 36");

static inline uint8_t pdu_opcode(const struct iscsi_bhs *b) { return b->opcode & ISCSI_OPCODE_MASK; }
static inline int pdu_immediate(const struct iscsi_bhs *b) { return (b->opcode & ISCSI_FLAG_IMMEDIATE) != 0; }

static inline uint32_t pdu_dsl(const struct iscsi_bhs *b)
{
	return (uint32_t)b->dsl[0] << 16 | (uint32_t)b->dsl[1] << 8 | b->dsl[2];
}

static inline void pdu_set_dsl(void *bhs, uint32_t len)
{
	struct iscsi_bhs *b = bhs;

	b->dsl[0] = (uint8_t)(len >> 16);
	b->dsl[1] = (uint8_t)(len >> 8);
	b->dsl[2] = (uint8_t)len;
}

/* Data segments are padded to a multiple of 4 bytes (RFC 7143 11.2.3). */
static inline uint32_t pdu_pad(uint32_t len) { return (4 - (len & 3)) & 3; }

#define pdu_get32(x) be32toh(x)
#define pdu_put32(x) htobe32(x)
#define pdu_get16(x) be16toh(x)
#define pdu_put16(x) htobe16(x)

/* SAM LUN (8 bytes) to a flat LUN number; UINT64_MAX if the addressing
 * method is not one we serve (peripheral or flat space, SAM-5 4.7). */
uint64_t pdu_lun_to_flat(const uint8_t lun[8]);
void pdu_flat_to_lun(uint64_t flat, uint8_t lun[8]);

/* Serial number arithmetic (RFC 1982, RFC 7143 4.2.2.1). */
static inline int sn_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline int sn_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

const char *pdu_opcode_name(uint8_t opcode);

/* CRC32C over a buffer, as the header and data digests use it. */
uint32_t pdu_crc32c(const void *buf, size_t len, uint32_t crc);
#define PDU_CRC32C_INIT 0xffffffffu

#endif
