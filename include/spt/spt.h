/*
 * spt: the SCSI pass-through provider interface.
 *
 * Every message between the iSCSI engine and a storage provider, in-process
 * or over the provider socket, is one of the payloads below, preceded on the
 * wire by struct spt_io_header. All wire integers are little-endian.
 * In-process providers see the same payload structs inside struct spt_cmd /
 * struct spt_tmf and never see the header.
 */
#ifndef SPT_SPT_H
#define SPT_SPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SPT_SIGNATURE "SPTPT001" /* 8 bytes, no NUL on the wire */
#define SPT_SIGNATURE_LEN 8

enum spt_control_code {
	SPT_CC_SESSION_START = 0x100,
	SPT_CC_SESSION_END = 0x101,
	SPT_CC_TMF = 0x102,
	SPT_CC_SCSI_REQUEST = 0x103,
	SPT_CC_SCSI_COMPLETION = 0x104,
};

/* SRB_IO_CONTROL-style header that starts every wire message. */
struct spt_io_header {
	uint32_t header_length; /* sizeof(struct spt_io_header) */
	uint8_t signature[SPT_SIGNATURE_LEN];
	uint32_t timeout;	/* seconds the sender waits for completion */
	uint32_t control_code;	/* enum spt_control_code */
	uint32_t return_code;	/* 0 = success */
	uint32_t length;	/* payload bytes that follow */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_io_header) == 28, "spt_io_header size");
_Static_assert(offsetof(struct spt_io_header, control_code) == 16, "cc offset");

#define SPT_PEER_ADDRESS_MAX 64
#define SPT_ITNEXUS_MAX 512
#define SPT_CHAP_USER_MAX 256

/* SESSION_START (0x100): a session that can reach the LUN is in full
 * feature phase. Strings are NUL-terminated within their field. */
struct spt_session_start {
	uint8_t is_reinstated;	/* 1 if it replaced a session of the same I_T nexus */
	uint8_t reserved[7];
	uint64_t itnexus_handle;	/* opaque, unguessable session cookie */
	char peer_address[SPT_PEER_ADDRESS_MAX];	/* "192.0.2.1:50000", "[::1]:5" */
	char itnexus[SPT_ITNEXUS_MAX];	/* "<initiator>,i,0x<isid>,<target>,t,0x<tpgt>" */
	char chap_user_name[SPT_CHAP_USER_MAX];	/* empty without CHAP */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_session_start) == 16 + 64 + 512 + 256, "session_start size");

/* SESSION_END (0x101). */
struct spt_session_end {
	uint64_t itnexus_handle;
} __attribute__((packed));
_Static_assert(sizeof(struct spt_session_end) == 8, "session_end size");

/* Task management function codes (RFC 7143 11.5.1). */
enum spt_tmf_function {
	SPT_TMF_ABORT_TASK = 1,
	SPT_TMF_ABORT_TASK_SET = 2,
	SPT_TMF_CLEAR_ACA = 3,
	SPT_TMF_CLEAR_TASK_SET = 4,
	SPT_TMF_LOGICAL_UNIT_RESET = 5,
	SPT_TMF_TARGET_WARM_RESET = 6,
	SPT_TMF_TARGET_COLD_RESET = 7,
	SPT_TMF_TASK_REASSIGN = 8,
};

/* TMF responses (RFC 7143 11.6.1). */
enum spt_tmf_response {
	SPT_TMF_RSP_COMPLETE = 0,
	SPT_TMF_RSP_NO_TASK = 1,
	SPT_TMF_RSP_NO_LUN = 2,
	SPT_TMF_RSP_TASK_ALLEGIANT = 3,
	SPT_TMF_RSP_NO_REASSIGN = 4,
	SPT_TMF_RSP_NOT_SUPPORTED = 5,
	SPT_TMF_RSP_AUTH_FAILED = 6,
	SPT_TMF_RSP_REJECTED = 255,
};

/* TMF (0x102). */
struct spt_tmf_wire {
	uint64_t itnexus_handle;
	uint64_t lun;			/* flat LUN number */
	uint32_t function;		/* enum spt_tmf_function */
	uint32_t response;		/* enum spt_tmf_response, filled on completion */
	uint64_t reference_task_cookie;	/* ABORT TASK: the task to abort */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_tmf_wire) == 32, "tmf size");

enum spt_data_direction {
	SPT_DIR_NONE = 0,
	SPT_DIR_OUT = 1,	/* initiator to target (WRITE) */
	SPT_DIR_IN = 2,		/* target to initiator (READ) */
	SPT_DIR_BIDI = 3,
};

enum spt_task_attribute {
	SPT_TASK_UNTAGGED = 0,
	SPT_TASK_SIMPLE = 1,
	SPT_TASK_ORDERED = 2,
	SPT_TASK_HEAD_OF_QUEUE = 3,
	SPT_TASK_ACA = 4,
};

#define SPT_CDB_MAX 32

/*
 * SCSI request (0x103). A command with data-out reaches the provider once per
 * data sequence as the data arrives: [sequence_byte_offset,
 * sequence_byte_offset + data_length) of the command's buffer is new; all
 * bytes before it arrived in earlier sequences. is_final marks the last one
 * (a command without data-out has one request with is_final = 1). A provider
 * completes a non-final sequence with status GOOD to ask for more, or with any
 * other status to end the command early.
 */
struct spt_scsi_request {
	uint64_t session_cookie;	/* ITNexusHandle of the session */
	uint64_t task_cookie;		/* opaque per task, unique while referenced */
	uint64_t lun;			/* flat LUN number */
	uint32_t sequence_byte_offset;
	uint32_t data_length;		/* data-out bytes new in this sequence */
	uint32_t expected_length;	/* the initiator's ExpectedDataTransferLength */
	uint8_t is_final;
	uint8_t direction;		/* enum spt_data_direction */
	uint8_t cdb_length;
	uint8_t task_attribute;		/* enum spt_task_attribute */
	uint8_t cdb[SPT_CDB_MAX];
} __attribute__((packed));
_Static_assert(sizeof(struct spt_scsi_request) == 72, "scsi_request size");

#define SPT_SENSE_MAX 252

/* SCSI completion (0x104). */
struct spt_scsi_completion {
	uint64_t task_cookie;
	/* bytes the command, as the CDB asks, would move: the engine compares
	 * it with expected_length for the overflow/underflow residual */
	uint32_t transfer_length;
	uint32_t data_in_length;	/* bytes of data-in placed in the buffer */
	uint8_t scsi_status;		/* SAM status: 0 GOOD, 2 CHECK CONDITION, ... */
	uint8_t sense_length;
	uint8_t reserved[2];
	uint8_t sense[SPT_SENSE_MAX];
} __attribute__((packed));
_Static_assert(sizeof(struct spt_scsi_completion) == 20 + SPT_SENSE_MAX, "completion size");

enum spt_scsi_status {
	SPT_STATUS_GOOD = 0x00,
	SPT_STATUS_CHECK_CONDITION = 0x02,
	SPT_STATUS_CONDITION_MET = 0x04,
	SPT_STATUS_BUSY = 0x08,
	SPT_STATUS_RESERVATION_CONFLICT = 0x18,
	SPT_STATUS_TASK_SET_FULL = 0x28,
	SPT_STATUS_ACA_ACTIVE = 0x30,
	SPT_STATUS_TASK_ABORTED = 0x40,
};

/* ------------------------------------------------------------------ */
/* In-process provider API                                              */
/* ------------------------------------------------------------------ */

#define SPT_PROVIDER_SCRATCH 512

/*
 * One SCSI command as a provider sees it. The engine owns it; the provider
 * may use `scratch` for its per-command state (no malloc per command) and
 * must call spt_cmd_complete() exactly once per request it received.
 */
struct spt_cmd {
	struct spt_scsi_request req;
	struct spt_scsi_completion cpl;	/* zeroed by the engine before each request */
	uint8_t *buf;		/* the command's whole data buffer */
	uint32_t buf_len;	/* its capacity: min(expected_length, engine limit) */
	bool aborted;		/* set by the engine when a TMF aborted the task */
	void (*done)(struct spt_cmd *cmd);	/* engine's completion hook */
	void *engine_priv;
	_Alignas(16) uint8_t scratch[SPT_PROVIDER_SCRATCH];
};

static inline void spt_cmd_complete(struct spt_cmd *cmd)
{
	cmd->done(cmd);
}

/* One task management request as a provider sees it. */
struct spt_tmf {
	struct spt_tmf_wire w;
	void (*done)(struct spt_tmf *tmf);
	void *engine_priv;
};

static inline void spt_tmf_complete(struct spt_tmf *tmf)
{
	tmf->done(tmf);
}

/*
 * A provider serves LUNs. All calls happen on the thread of the reactor that
 * owns the session; completions must be made on that thread too.
 */
struct spt_provider_ops {
	const char *name;
	void (*session_start)(void *lun_ctx, const struct spt_session_start *ss);
	void (*session_end)(void *lun_ctx, const struct spt_session_end *se);
	/* must complete the TMF (set w.response) with spt_tmf_complete() */
	void (*tmf)(void *lun_ctx, struct spt_tmf *tmf);
	void (*scsi)(void *lun_ctx, struct spt_cmd *cmd);
	/* flush and release the LUN (daemon shutdown) */
	void (*close)(void *lun_ctx);
};

#endif
