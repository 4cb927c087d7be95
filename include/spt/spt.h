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
_Static_assert(offsetof(struct spt_session_start, itnexus_handle) == 8, "session_start handle offset");
_Static_assert(offsetof(struct spt_session_start, peer_address) == 16, "session_start peer offset");
_Static_assert(offsetof(struct spt_session_start, itnexus) == 80, "session_start itnexus offset");
_Static_assert(offsetof(struct spt_session_start, chap_user_name) == 592, "session_start chap offset");

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
_Static_assert(offsetof(struct spt_tmf_wire, function) == 16, "tmf function offset");
_Static_assert(offsetof(struct spt_tmf_wire, reference_task_cookie) == 24, "tmf ref cookie offset");

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
 * other status to end the command early. A command that ends after the
 * provider accepted a sequence but before its final one reached the provider
 * (connection lost, data sequence error, aborted between sequences) is
 * followed by a TMF ABORT TASK naming its task_cookie, so the provider can
 * drop what it kept for it.
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
_Static_assert(offsetof(struct spt_scsi_request, lun) == 16, "scsi_request lun offset");
_Static_assert(offsetof(struct spt_scsi_request, sequence_byte_offset) == 24, "scsi_request seq offset");
_Static_assert(offsetof(struct spt_scsi_request, is_final) == 36, "scsi_request is_final offset");
_Static_assert(offsetof(struct spt_scsi_request, cdb) == 40, "scsi_request cdb offset");

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
_Static_assert(offsetof(struct spt_scsi_completion, scsi_status) == 16, "completion status offset");
_Static_assert(offsetof(struct spt_scsi_completion, sense) == 20, "completion sense offset");

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
/* The provider socket: external providers (sptd --provider-socket)    */
/* ------------------------------------------------------------------ */
/*
 * An external provider connects to sptd's --provider-socket (a Unix stream
 * socket, mode 0600, peers checked with SO_PEERCRED) and serves one LUN: the
 * one sptd declared with `--lun provider:NAME`. A process may open several
 * connections for several LUNs. Every message is a struct spt_io_header
 * followed by its payload, all little-endian. Bulk data never crosses the
 * socket: sptd passes a memfd (SCM_RIGHTS, on the PROVIDER_REGISTER answer)
 * that both sides map shared; each SCSI request names where its command's
 * buffer lies in it.
 *
 * provider -> sptd
 *   PROVIDER_REGISTER (0x110): struct spt_provider_register, the first frame
 *       and only once. Answered with PROVIDER_REGISTER, ReturnCode (enum
 *       spt_ctl_return_code: SPT_CTL_RC_SUCCESS, or UNKNOWN_PROVIDER when no
 *       --lun names it, PROVIDER_IN_USE when another connection serves it,
 *       VERSION, BAD_REQUEST) and on success struct spt_provider_registered
 *       with the memfd attached. On failure sptd closes the connection.
 *   SCSI_COMPLETION (0x104): struct spt_scsi_completion answering the
 *       SCSI_REQUEST with the same task_cookie; data-in, if any, already
 *       written into the command's buffer in the shared memory. ReturnCode 0;
 *       any other value fails the command (CHECK CONDITION, HARDWARE ERROR,
 *       LOGICAL UNIT COMMUNICATION FAILURE).
 *   TMF (0x102): struct spt_wire_tmf answering sptd's TMF with the same
 *       tmf_cookie, tmf.response filled.
 *   SESSION_END (0x101): struct spt_session_end or struct
 *       spt_ctl_session_stop: stop that session (Async Message, grace,
 *       close). Answered with SESSION_END, the same handle and ReturnCode
 *       SUCCESS once the stop has begun, or NO_SUCH_SESSION.
 * sptd -> provider
 *   SESSION_START (0x100), SESSION_END (0x101): notifications, not answered.
 *       On registration sptd first sends SESSION_START for every session
 *       that already reaches the LUN.
 *   TMF (0x102): struct spt_wire_tmf; answer it. sptd answers the initiator
 *       itself once Timeout seconds have passed without an answer, and then
 *       fails the commands the TMF aborted (their late completions are
 *       ignored).
 *   SCSI_REQUEST (0x103): struct spt_wire_scsi_request; answer each with
 *       one SCSI_COMPLETION. At most one request per task_cookie is
 *       outstanding. A command with data-out comes once per data sequence
 *       (see struct spt_scsi_request), always with the same buffer; the
 *       bytes of earlier sequences stay in place. The header's Timeout is
 *       the command timeout: a command not completed within it is failed to
 *       the initiator (CHECK CONDITION, ABORTED COMMAND, LOGICAL UNIT
 *       COMMUNICATION TIME-OUT 08/01) and its buffer stays reserved until
 *       the late completion arrives or the provider disconnects.
 * A frame sptd cannot accept (bad header, unknown cookie with a bad length,
 * data_in_length beyond the buffer) ends the connection: its commands fail
 * with CHECK CONDITION, ABORTED COMMAND, LOGICAL UNIT COMMUNICATION FAILURE
 * (08/00), sessions stay, and the LUN answers NOT READY (04/00) until a
 * provider registers under the name again.
 */
#define SPT_PROVIDER_VERSION 1
#define SPT_PROVIDER_NAME_MAX 64	/* NUL included; [A-Za-z0-9._-] */
#define SPT_PROVIDER_FRAME_MAX 4096	/* largest payload either side sends */

enum spt_provider_control_code {
	SPT_CC_PROVIDER_REGISTER = 0x110,
};

/* PROVIDER_REGISTER, provider -> sptd. */
struct spt_provider_register {
	uint32_t version;	/* SPT_PROVIDER_VERSION */
	uint32_t flags;		/* 0 */
	char name[SPT_PROVIDER_NAME_MAX];	/* the NAME of --lun provider:NAME */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_provider_register) == 72, "provider_register size");

/* PROVIDER_REGISTER answer, sptd -> provider (memfd attached). */
struct spt_provider_registered {
	uint64_t lun;			/* the flat LUN number this connection serves */
	uint64_t shm_size;		/* bytes of the memfd to mmap (MAP_SHARED) */
	uint32_t max_transfer_bytes;	/* largest command buffer (buf_len) sptd sends */
	uint32_t command_timeout;	/* seconds, as in each SCSI_REQUEST's Timeout */
	uint16_t relative_port;		/* relative target port identifier (VPD 0x83) */
	uint16_t tpgt;			/* target portal group tag */
	uint32_t version;		/* SPT_PROVIDER_VERSION sptd speaks */
	char target_name[224];		/* the target's iSCSI name (VPD 0x83), NUL-terminated */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_provider_registered) == 32 + 224, "provider_registered size");
_Static_assert(offsetof(struct spt_provider_registered, target_name) == 32, "registered name offset");

/* SCSI_REQUEST on the provider socket. */
struct spt_wire_scsi_request {
	struct spt_scsi_request req;
	uint64_t data_offset;	/* where the command's buffer starts in the shared memory */
	uint32_t buf_len;	/* its size: min(expected_length, max_transfer_bytes) */
	uint32_t reserved;	/* 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_wire_scsi_request) == 88, "wire_scsi_request size");
_Static_assert(offsetof(struct spt_wire_scsi_request, data_offset) == 72, "wire data_offset");

/* TMF on the provider socket, both directions. */
struct spt_wire_tmf {
	uint64_t tmf_cookie;	/* sptd's; repeated in the answer */
	struct spt_tmf_wire tmf;
} __attribute__((packed));
_Static_assert(sizeof(struct spt_wire_tmf) == 40, "wire_tmf size");

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

/* ------------------------------------------------------------------ */
/* Control plane: sptctl <-> sptd --control socket                      */
/* ------------------------------------------------------------------ */
/*
 * Added for the management part of issue 3 (control socket and sptctl).
 *
 * Every message on the control socket is a struct spt_io_header (Signature
 * SPT_SIGNATURE, HeaderLength 28, Length = payload bytes, all little-endian)
 * followed by its payload; payload integers are little-endian too. A client
 * sends one request and reads one response: the response repeats the
 * request's ControlCode and sets ReturnCode (enum spt_ctl_return_code).
 *
 * Requests served on the control socket:
 *   SESSION_LIST (0x200): payload empty or struct spt_ctl_session_list_request;
 *       response: struct spt_ctl_session_list + `count` entries.
 *   SESSION_END (0x101): payload struct spt_session_end (the stop uses the
 *       daemon's --logout-grace) or struct spt_ctl_session_stop; the target
 *       asks every connection of the session to log out (Async Message,
 *       AsyncEvent 1, Parameter3 = grace), waits at most the grace time,
 *       then closes every connection and aborts the tasks. The response
 *       comes once the session is gone (providers have had their
 *       SESSION_END), with payload struct spt_session_end; or after the
 *       request's Timeout (0: grace + SPT_CTL_STOP_SLACK_S) with ReturnCode
 *       SPT_CTL_RC_TIMEOUT if tasks still hold it.
 * A response with ReturnCode != 0 may carry a message instead of its usual
 * payload: UTF-8 text, NUL-terminated, at most SPT_CTL_MESSAGE_MAX bytes.
 * An error frame not tied to a request (peer refused, a header that cannot
 * be framed) has ControlCode 0, and the daemon closes the connection after
 * it. Requests on one connection are answered one at a time, in order.
 */
enum spt_ctl_control_code {
	SPT_CC_SESSION_LIST = 0x200,
};

enum spt_ctl_return_code {
	SPT_CTL_RC_SUCCESS = 0,
	/* the header cannot be trusted (Signature, HeaderLength, Length over
	 * the limit): the daemon answers, then closes the connection */
	SPT_CTL_RC_BAD_FRAME = 1,
	SPT_CTL_RC_UNSUPPORTED = 2,	/* ControlCode not served on this socket */
	SPT_CTL_RC_BAD_REQUEST = 3,	/* Length, Timeout, ReturnCode or a payload field invalid */
	SPT_CTL_RC_NO_SUCH_SESSION = 4,	/* no session has this ITNexusHandle */
	SPT_CTL_RC_TIMEOUT = 5,		/* connections closed, but the session outlived Timeout */
	SPT_CTL_RC_PERMISSION = 6,	/* peer is neither root nor the daemon's user */
	SPT_CTL_RC_BUSY = 7,		/* too many control clients at once */
	SPT_CTL_RC_NO_MEMORY = 8,
	SPT_CTL_RC_SHUTTING_DOWN = 9,	/* the daemon stopped before the request completed */
	/* provider socket, PROVIDER_REGISTER */
	SPT_CTL_RC_UNKNOWN_PROVIDER = 10,	/* no --lun provider:NAME has this name */
	SPT_CTL_RC_PROVIDER_IN_USE = 11,	/* another connection serves this name */
	SPT_CTL_RC_VERSION = 12,		/* version not spoken by this sptd */
};

#define SPT_CTL_REQUEST_MAX 65536	/* largest request payload the daemon reads */
#define SPT_CTL_RESPONSE_MAX (1u << 20)	/* largest response payload the daemon sends */
#define SPT_CTL_MESSAGE_MAX 256		/* error text, NUL included */
#define SPT_CTL_TIMEOUT_MAX 3600	/* largest Timeout a request may carry, seconds */
#define SPT_CTL_GRACE_MAX 600		/* largest grace_seconds of a stop */
#define SPT_CTL_STOP_SLACK_S 10		/* default wait beyond the grace time */
#define SPT_CTL_NAME_MAX 224		/* RFC 7143 4.2.7.1: 223-byte iSCSI names + NUL */
#define SPT_CTL_CONNS_MAX 8		/* connections described per session entry */
#define SPT_CTL_SESSION_PAGE_MAX 512	/* session entries per SESSION_LIST response */

/* SESSION_LIST request (Length 0 means after_handle 0, max_entries 0). */
struct spt_ctl_session_list_request {
	uint64_t after_handle;	/* only sessions whose handle is greater (0: from the first) */
	uint32_t max_entries;	/* at most this many (0 or more than the page: SPT_CTL_SESSION_PAGE_MAX) */
	uint32_t reserved;	/* 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_session_list_request) == 16, "session_list_request size");

/* SESSION_LIST response payload: this, then `count` entries of entry_length
 * bytes each, sorted by ascending itnexus_handle. A reader takes the first
 * min(entry_length, sizeof(struct spt_ctl_session)) bytes of each entry, so
 * later versions may append fields. */
struct spt_ctl_session_list {
	uint32_t count;		/* entries that follow */
	uint32_t entry_length;	/* bytes per entry: sizeof(struct spt_ctl_session) today */
	uint32_t total;		/* sessions in the daemon when the page was made */
	uint8_t more;		/* 1: sessions with a greater handle exist; ask again with
				 * after_handle = the last entry's handle */
	uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_session_list) == 16, "session_list size");

enum spt_ctl_session_type {
	SPT_CTL_SESSION_NORMAL = 0,
	SPT_CTL_SESSION_DISCOVERY = 1,
};

enum spt_ctl_session_state {
	SPT_CTL_SESSION_ACTIVE = 0,	/* in full feature phase */
	SPT_CTL_SESSION_LOGGING_OUT = 1,	/* the initiator asked to log out */
	SPT_CTL_SESSION_STOPPING = 2,	/* a stop is in progress: Async logout sent, grace running */
	SPT_CTL_SESSION_ENDING = 3,	/* no connection left; tasks still finishing */
};

enum spt_ctl_conn_state {
	SPT_CTL_CONN_FULL_FEATURE = 0,
	SPT_CTL_CONN_LOGGING_OUT = 1,	/* Logout Response queued, closing once sent */
};

/* One connection of a session. Strings are NUL-terminated within their field. */
struct spt_ctl_connection {
	uint16_t cid;			/* RFC 7143 CID chosen by the initiator */
	uint8_t state;			/* enum spt_ctl_conn_state */
	uint8_t reserved[5];
	char peer_address[SPT_PEER_ADDRESS_MAX];	/* "192.0.2.1:50000", "[::1]:5" */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_connection) == 72, "ctl_connection size");
_Static_assert(offsetof(struct spt_ctl_connection, peer_address) == 8, "ctl_connection peer offset");

/* One session in a SESSION_LIST response. */
struct spt_ctl_session {
	uint64_t itnexus_handle;	/* the ITNexusHandle providers know it by */
	uint8_t isid[6];		/* RFC 7143 10.12.5, as on the wire (big-endian) */
	uint16_t tsih;			/* target session identifying handle */
	uint16_t tpgt;			/* target portal group tag; 0 for discovery */
	uint8_t session_type;		/* enum spt_ctl_session_type */
	uint8_t state;			/* enum spt_ctl_session_state */
	uint32_t commands_in_flight;	/* SCSI tasks the session holds */
	uint32_t connection_count;	/* connections in the session (conns[] shows the
					 * first min(count, SPT_CTL_CONNS_MAX)) */
	uint32_t reserved;
	char initiator_name[SPT_CTL_NAME_MAX];
	char target_name[SPT_CTL_NAME_MAX];	/* empty for discovery */
	char chap_user_name[SPT_CHAP_USER_MAX];	/* empty without CHAP */
	struct spt_ctl_connection conns[SPT_CTL_CONNS_MAX];
	/* appended for `sptctl session list` byte counters; SCSI payload only */
	uint64_t bytes_read;		/* data-in bytes sent to the initiator */
	uint64_t bytes_written;		/* data-out bytes received from the initiator */
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_session, isid) == 8, "ctl_session isid offset");
_Static_assert(offsetof(struct spt_ctl_session, tsih) == 14, "ctl_session tsih offset");
_Static_assert(offsetof(struct spt_ctl_session, commands_in_flight) == 20, "ctl_session cmds offset");
_Static_assert(offsetof(struct spt_ctl_session, initiator_name) == 32, "ctl_session initiator offset");
_Static_assert(offsetof(struct spt_ctl_session, target_name) == 256, "ctl_session target offset");
_Static_assert(offsetof(struct spt_ctl_session, chap_user_name) == 480, "ctl_session chap offset");
_Static_assert(offsetof(struct spt_ctl_session, conns) == 736, "ctl_session conns offset");
_Static_assert(offsetof(struct spt_ctl_session, bytes_read) == 736 + 8 * 72, "ctl_session bytes_read offset");
_Static_assert(offsetof(struct spt_ctl_session, bytes_written) == 736 + 8 * 72 + 8,
	       "ctl_session bytes_written offset");
_Static_assert(sizeof(struct spt_ctl_session) == 736 + 8 * 72 + 16, "ctl_session size");
_Static_assert(sizeof(struct spt_ctl_session_list) +
	       SPT_CTL_SESSION_PAGE_MAX * sizeof(struct spt_ctl_session) <= SPT_CTL_RESPONSE_MAX,
	       "a full page fits in a response");

/* SESSION_END on the control socket with a grace time of its own. */
struct spt_ctl_session_stop {
	uint64_t itnexus_handle;
	uint32_t grace_seconds;	/* <= SPT_CTL_GRACE_MAX; Parameter3 of the Async Message */
	uint32_t reserved;	/* 0 */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_session_stop) == 16, "ctl_session_stop size");
_Static_assert(offsetof(struct spt_ctl_session_stop, itnexus_handle) ==
	       offsetof(struct spt_session_end, itnexus_handle), "stop extends session_end");

/* ------------------------------------------------------------------ */
/* Control plane: targets and LUNs (sptctl target list, lun list)       */
/* ------------------------------------------------------------------ */
/*
 * Two more requests on the control socket, framed, answered and refused
 * like SESSION_LIST above:
 *   TARGET_LIST (0x201): payload empty or struct spt_ctl_target_list_request;
 *       response: struct spt_ctl_target_list, then `count` target records
 *       by ascending name (bytewise). A record is a struct spt_ctl_target
 *       (target_entry_length bytes), then its portal_count portals
 *       (portal_entry_length bytes each, struct spt_ctl_portal), then its
 *       initiator_count ACL entries (initiator_entry_length bytes each,
 *       struct spt_ctl_initiator). No ACL entry: any initiator may log in.
 *   LUN_LIST (0x202): payload empty or struct spt_ctl_lun_list_request;
 *       response: struct spt_ctl_lun_list, then `count` entries of
 *       entry_length bytes (struct spt_ctl_lun), by ascending target name,
 *       then LUN number.
 * Both are paged: `more` = 1 says entries beyond this page exist; ask again
 * with the last entry's key as the cursor. A reader takes the first
 * min(length, sizeof) bytes of each entry or part, so later versions may
 * append fields; strings are NUL-terminated within their field.
 */
enum spt_ctl_inventory_code {
	SPT_CC_TARGET_LIST = 0x201,
	SPT_CC_LUN_LIST = 0x202,
};

#define SPT_CTL_PORTAL_MAX 80		/* "[2001:db8::1]:3260", NUL included */
#define SPT_CTL_BACKEND_MAX 256		/* "file:/srv/a.img", "provider:ram0", NUL included */
#define SPT_CTL_LUN_STATE_MAX 32	/* "online", "no provider", NUL included */
#define SPT_CTL_TARGET_PAGE_MAX 64	/* target records per TARGET_LIST response (fewer if
					 * they would exceed SPT_CTL_RESPONSE_MAX) */
#define SPT_CTL_LUN_PAGE_MAX 1024	/* entries per LUN_LIST response */

/* TARGET_LIST request (Length 0 means after_name "", max_entries 0). */
struct spt_ctl_target_list_request {
	char after_name[SPT_CTL_NAME_MAX];	/* only targets whose name sorts after this
						 * ("": from the first) */
	uint32_t max_entries;	/* 0 or more than the page: SPT_CTL_TARGET_PAGE_MAX */
	uint32_t reserved;	/* 0 */
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_target_list_request, max_entries) == 224,
	       "target_list_request max_entries offset");
_Static_assert(sizeof(struct spt_ctl_target_list_request) == 232, "target_list_request size");

/* TARGET_LIST response payload header. */
struct spt_ctl_target_list {
	uint32_t count;			/* target records that follow */
	uint32_t target_entry_length;	/* sizeof(struct spt_ctl_target) today */
	uint32_t portal_entry_length;	/* sizeof(struct spt_ctl_portal) today */
	uint32_t initiator_entry_length;	/* sizeof(struct spt_ctl_initiator) today */
	uint32_t total;			/* targets in the daemon when the page was made */
	uint8_t more;			/* 1: targets sorting after the last one exist */
	uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_target_list, total) == 16, "target_list total offset");
_Static_assert(sizeof(struct spt_ctl_target_list) == 24, "target_list size");

enum spt_ctl_target_flags {
	SPT_CTL_TARGET_CHAP = 1u << 0,		/* normal sessions must authenticate with CHAP */
	SPT_CTL_TARGET_MUTUAL_CHAP = 1u << 1,	/* the target proves itself when asked */
};

/* One target: what `sptctl target list` shows. */
struct spt_ctl_target {
	char name[SPT_CTL_NAME_MAX];	/* the target's iSCSI name */
	uint16_t tpgt;			/* target portal group tag */
	uint16_t flags;			/* enum spt_ctl_target_flags */
	uint32_t lun_count;		/* LUNs the target serves */
	uint32_t session_count;		/* sessions logged in to it now */
	uint32_t portal_count;		/* struct spt_ctl_portal parts after this entry */
	uint32_t initiator_count;	/* struct spt_ctl_initiator parts after the portals;
					 * 0: any initiator may log in */
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_target, tpgt) == 224, "ctl_target tpgt offset");
_Static_assert(offsetof(struct spt_ctl_target, lun_count) == 228, "ctl_target lun_count offset");
_Static_assert(offsetof(struct spt_ctl_target, portal_count) == 236, "ctl_target portal_count offset");
_Static_assert(offsetof(struct spt_ctl_target, initiator_count) == 240,
	       "ctl_target initiator_count offset");
_Static_assert(sizeof(struct spt_ctl_target) == 248, "ctl_target size");

/* A portal (listen address) the target is reached on. */
struct spt_ctl_portal {
	char address[SPT_CTL_PORTAL_MAX];	/* "0.0.0.0:3260", "[::1]:3260" */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_portal) == 80, "ctl_portal size");

/* An initiator the target's ACL allows. */
struct spt_ctl_initiator {
	char name[SPT_CTL_NAME_MAX];
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_initiator) == 224, "ctl_initiator size");

/* LUN_LIST request (Length 0 means from the first, max_entries 0). */
struct spt_ctl_lun_list_request {
	char after_target[SPT_CTL_NAME_MAX];	/* only LUNs after (after_target, after_lun) in
						 * the list's order ("": from the first) */
	uint64_t after_lun;
	uint32_t max_entries;	/* 0 or more than the page: SPT_CTL_LUN_PAGE_MAX */
	uint32_t reserved;	/* 0 */
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_lun_list_request, after_lun) == 224,
	       "lun_list_request after_lun offset");
_Static_assert(sizeof(struct spt_ctl_lun_list_request) == 240, "lun_list_request size");

/* LUN_LIST response payload header. */
struct spt_ctl_lun_list {
	uint32_t count;		/* entries that follow */
	uint32_t entry_length;	/* bytes per entry: sizeof(struct spt_ctl_lun) today */
	uint32_t total;		/* LUNs in the daemon when the page was made */
	uint8_t more;		/* 1: LUNs after the last entry exist */
	uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_lun_list) == 16, "lun_list size");

/* One LUN: what `sptctl lun list` shows. */
struct spt_ctl_lun {
	char target_name[SPT_CTL_NAME_MAX];
	uint64_t lun;			/* flat LUN number */
	uint64_t size_bytes;		/* 0: not known to the daemon */
	uint32_t block_size;		/* logical block size; 0: not known */
	uint8_t read_only;		/* 1: writes are refused */
	uint8_t reserved[3];
	char state[SPT_CTL_LUN_STATE_MAX];	/* "online"; "no provider" (NOT READY) ... */
	char backend[SPT_CTL_BACKEND_MAX];	/* "file:/srv/a.img", "provider:ram0" */
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_lun, lun) == 224, "ctl_lun lun offset");
_Static_assert(offsetof(struct spt_ctl_lun, size_bytes) == 232, "ctl_lun size offset");
_Static_assert(offsetof(struct spt_ctl_lun, block_size) == 240, "ctl_lun block_size offset");
_Static_assert(offsetof(struct spt_ctl_lun, state) == 248, "ctl_lun state offset");
_Static_assert(offsetof(struct spt_ctl_lun, backend) == 280, "ctl_lun backend offset");
_Static_assert(sizeof(struct spt_ctl_lun) == 536, "ctl_lun size");
_Static_assert(sizeof(struct spt_ctl_lun_list) +
	       SPT_CTL_LUN_PAGE_MAX * sizeof(struct spt_ctl_lun) <= SPT_CTL_RESPONSE_MAX,
	       "a full LUN page fits in a response");

/* ------------------------------------------------------------------ */
/* Control plane: statistics (sptctl stats, issue 7)                    */
/* ------------------------------------------------------------------ */
/*
 * STATS (0x203) on the control socket, framed, answered and refused like
 * the lists above. The request names one kind of object; the response is
 * struct spt_ctl_stats, then `count` entries of entry_length bytes:
 *   SERVER (0):   one struct spt_ctl_stats_server (the daemon as a whole);
 *   TARGETS (1):  struct spt_ctl_stats_target by ascending name; cursor
 *                 after_name;
 *   LUNS (2):     struct spt_ctl_stats_lun by ascending target name, then
 *                 LUN; cursor (after_name, after_number);
 *   SESSIONS (3): struct spt_ctl_stats_session by ascending handle, each
 *                 with its first SPT_CTL_CONNS_MAX connections; cursor
 *                 after_number.
 * `more` = 1 says entries beyond this page exist. A reader takes the first
 * min(entry_length, sizeof) bytes of each entry, so later versions may
 * append fields; strings are NUL-terminated within their field.
 *
 * Counters count from the daemon's start (a LUN's, a target's) or the
 * session's login; a target's are the sums of its LUNs'. A command counts
 * once its status is sent: `commands`, its class (read: READ(6/10/12/16);
 * write: WRITE(6/10/12/16), WRITE AND VERIFY(10/12/16); other: the rest),
 * its data bytes, `errors` if the status is neither GOOD nor CONDITION MET,
 * and its latency, from the arrival of the SCSI Command PDU to the status,
 * in a histogram of SPT_CTL_STATS_BUCKETS log2 buckets: bucket i (i <
 * SPT_CTL_STATS_BUCKETS - 1) counts latencies in (2^(i-1), 2^i]
 * microseconds (bucket 0: up to 1 us), the last one those above
 * 2^(SPT_CTL_STATS_BUCKETS - 2) us (about 16.8 s). A command ended by a
 * TMF or the loss of its connection counts in `aborts` only.
 */
enum spt_ctl_stats_code {
	SPT_CC_STATS = 0x203,
};

enum spt_ctl_stats_kind {
	SPT_CTL_STATS_SERVER = 0,
	SPT_CTL_STATS_TARGETS = 1,
	SPT_CTL_STATS_LUNS = 2,
	SPT_CTL_STATS_SESSIONS = 3,
};

#define SPT_CTL_STATS_BUCKETS 26		/* latency buckets: <= 2^0 .. 2^24 us, then more */
#define SPT_CTL_STATS_TARGET_PAGE_MAX 64	/* entries per TARGETS response */
#define SPT_CTL_STATS_LUN_PAGE_MAX 1024		/* entries per LUNS response */
#define SPT_CTL_STATS_SESSION_PAGE_MAX 256	/* entries per SESSIONS response */

/* STATS request (Length 0 means kind SERVER). */
struct spt_ctl_stats_request {
	uint32_t kind;		/* enum spt_ctl_stats_kind */
	uint32_t max_entries;	/* 0 or more than the kind's page: the page maximum */
	char after_name[SPT_CTL_NAME_MAX];	/* TARGETS, LUNS: only entries after this target
						 * ("": from the first) */
	uint64_t after_number;	/* LUNS: after this LUN of after_name; SESSIONS: handles
				 * greater than this (0: from the first) */
	uint64_t reserved;	/* 0 */
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_stats_request, after_name) == 8, "stats_request name offset");
_Static_assert(offsetof(struct spt_ctl_stats_request, after_number) == 232,
	       "stats_request number offset");
_Static_assert(sizeof(struct spt_ctl_stats_request) == 248, "stats_request size");

/* STATS response payload header. */
struct spt_ctl_stats {
	uint32_t kind;		/* as requested */
	uint32_t count;		/* entries that follow */
	uint32_t entry_length;	/* bytes per entry: sizeof the kind's entry today */
	uint32_t total;		/* objects of this kind in the daemon when the page was made */
	uint8_t more;		/* 1: entries after the last one exist */
	uint8_t reserved[3];
	uint32_t latency_buckets;	/* SPT_CTL_STATS_BUCKETS: buckets in each histogram */
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_stats, latency_buckets) == 20, "stats latency_buckets offset");
_Static_assert(sizeof(struct spt_ctl_stats) == 24, "stats size");

/* The I/O counters of a LUN or a target. */
struct spt_ctl_stats_io {
	uint64_t commands;	/* completed with a status */
	uint64_t read_commands;
	uint64_t write_commands;	/* other commands: commands - read - write */
	uint64_t bytes_read;	/* data-in of the completed commands */
	uint64_t bytes_written;	/* data-out of the completed commands */
	uint64_t errors;	/* status other than GOOD and CONDITION MET */
	uint64_t aborts;	/* ended by a TMF or the loss of their connection */
	uint64_t queue_depth;	/* commands in flight now (a gauge) */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_stats_io) == 64, "stats_io size");

/* Latency of the completed commands: arrival to status. */
struct spt_ctl_stats_latency {
	uint64_t count;		/* = commands */
	uint64_t sum_ns;
	uint64_t buckets[SPT_CTL_STATS_BUCKETS];	/* per bucket, not cumulative */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_stats_latency) == 16 + 8 * SPT_CTL_STATS_BUCKETS,
	       "stats_latency size");

/* SERVER: the daemon as a whole. */
struct spt_ctl_stats_server {
	uint32_t sessions;	/* logged in now, discovery included */
	uint32_t connections;	/* open now, logging in included */
	uint32_t targets;
	uint32_t luns;
	uint64_t header_digest_errors;	/* RFC 7143 7.8, every connection's since the start */
	uint64_t data_digest_errors;
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_stats_server, header_digest_errors) == 16,
	       "stats_server digest offset");
_Static_assert(sizeof(struct spt_ctl_stats_server) == 32, "stats_server size");

/* TARGETS: one target, the sums of its LUNs. */
struct spt_ctl_stats_target {
	char name[SPT_CTL_NAME_MAX];
	uint32_t lun_count;
	uint32_t session_count;	/* sessions logged in to it now */
	struct spt_ctl_stats_io io;
	struct spt_ctl_stats_latency latency;
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_stats_target, io) == 232, "stats_target io offset");
_Static_assert(offsetof(struct spt_ctl_stats_target, latency) == 296, "stats_target latency offset");
_Static_assert(sizeof(struct spt_ctl_stats_target) == 520, "stats_target size");

/* LUNS: one LUN. */
struct spt_ctl_stats_lun {
	char target_name[SPT_CTL_NAME_MAX];
	uint64_t lun;		/* flat LUN number */
	struct spt_ctl_stats_io io;
	struct spt_ctl_stats_latency latency;
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_stats_lun, lun) == 224, "stats_lun lun offset");
_Static_assert(offsetof(struct spt_ctl_stats_lun, io) == 232, "stats_lun io offset");
_Static_assert(offsetof(struct spt_ctl_stats_lun, latency) == 296, "stats_lun latency offset");
_Static_assert(sizeof(struct spt_ctl_stats_lun) == 520, "stats_lun size");

/* One connection of a session. */
struct spt_ctl_stats_connection {
	uint16_t cid;
	uint8_t reserved[6];
	char peer_address[SPT_PEER_ADDRESS_MAX];
	uint64_t pdus_in;	/* PDUs received whole (digests good) */
	uint64_t pdus_out;	/* PDUs written to the socket */
	uint64_t bytes_in;	/* TCP payload bytes, headers and digests included */
	uint64_t bytes_out;
	uint64_t header_digest_errors;
	uint64_t data_digest_errors;
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_stats_connection, pdus_in) == 72, "stats_connection pdus offset");
_Static_assert(sizeof(struct spt_ctl_stats_connection) == 120, "stats_connection size");

/* SESSIONS: one session. */
struct spt_ctl_stats_session {
	uint64_t itnexus_handle;
	uint8_t isid[6];	/* as on the wire (big-endian) */
	uint16_t tsih;
	uint8_t session_type;	/* enum spt_ctl_session_type */
	uint8_t reserved[3];
	uint32_t connection_count;	/* conns[] holds the first min(count, SPT_CTL_CONNS_MAX) */
	char initiator_name[SPT_CTL_NAME_MAX];
	char target_name[SPT_CTL_NAME_MAX];	/* empty for discovery */
	uint64_t commands;	/* completed with a status */
	uint64_t errors;
	uint64_t aborts;
	uint64_t queue_depth;	/* commands in flight now (a gauge) */
	uint64_t bytes_read;	/* data-in sent (SCSI payload) */
	uint64_t bytes_written;	/* data-out taken in */
	uint64_t header_digest_errors;
	uint64_t data_digest_errors;
	struct spt_ctl_stats_connection conns[SPT_CTL_CONNS_MAX];
} __attribute__((packed));
_Static_assert(offsetof(struct spt_ctl_stats_session, tsih) == 14, "stats_session tsih offset");
_Static_assert(offsetof(struct spt_ctl_stats_session, initiator_name) == 24,
	       "stats_session initiator offset");
_Static_assert(offsetof(struct spt_ctl_stats_session, commands) == 472, "stats_session commands offset");
_Static_assert(offsetof(struct spt_ctl_stats_session, conns) == 536, "stats_session conns offset");
_Static_assert(sizeof(struct spt_ctl_stats_session) == 536 + SPT_CTL_CONNS_MAX * 120,
	       "stats_session size");
_Static_assert(sizeof(struct spt_ctl_stats) +
	       SPT_CTL_STATS_SESSION_PAGE_MAX * sizeof(struct spt_ctl_stats_session) <= SPT_CTL_RESPONSE_MAX,
	       "a full SESSIONS page fits in a response");
_Static_assert(sizeof(struct spt_ctl_stats) +
	       SPT_CTL_STATS_LUN_PAGE_MAX * sizeof(struct spt_ctl_stats_lun) <= SPT_CTL_RESPONSE_MAX,
	       "a full LUNS page fits in a response");
_Static_assert(sizeof(struct spt_ctl_stats) +
	       SPT_CTL_STATS_TARGET_PAGE_MAX * sizeof(struct spt_ctl_stats_target) <= SPT_CTL_RESPONSE_MAX,
	       "a full TARGETS page fits in a response");

/* ------------------------------------------------------------------ */
/* Control plane: configuration                                         */
/* ------------------------------------------------------------------ */
/*
 * CONFIG_SAVE (0x210): writes the running configuration (the --config file
 * with the flags and every change since merged in) atomically to a file.
 * Request payload: the path (UTF-8, NUL-terminated or not, < SPT_CTL_PATH_MAX
 * bytes), or nothing for the daemon's --config file. Response: no payload on
 * success; an error message otherwise (BAD_REQUEST: not written, why).
 */
enum spt_ctl_config_code {
	SPT_CC_CONFIG_SAVE = 0x210,
	SPT_CC_CONFIG_CHANGE = 0x211,
};

#define SPT_CTL_PATH_MAX 4096

/*
 * CONFIG_CHANGE (0x211): one live change of the running configuration,
 * applied as a SIGHUP with the changed file would be (other sessions are
 * not disturbed). Payload struct spt_ctl_config_change; response: no payload
 * on success, else BAD_REQUEST with the reason (nothing changed).
 */
enum spt_ctl_config_op {
	SPT_CTL_TARGET_ADD = 1,		/* target */
	SPT_CTL_TARGET_REMOVE = 2,	/* target (refused while it has sessions) */
	SPT_CTL_LUN_ADD = 3,		/* target, lun, arg: a --lun spec */
	SPT_CTL_LUN_REMOVE = 4,		/* target, lun (in use: only with FORCE) */
	SPT_CTL_LUN_RESIZE = 5,		/* target, lun, size_bytes (grow only) */
	SPT_CTL_ACL_ADD = 6,		/* target, arg: initiator name */
	SPT_CTL_ACL_REMOVE = 7,		/* target, arg: initiator name (its sessions stop) */
	SPT_CTL_PORTAL_ADD = 8,		/* arg: ADDR:PORT */
	SPT_CTL_PORTAL_REMOVE = 9,	/* arg: ADDR:PORT (connections made there stay) */
	SPT_CTL_CHAP_SET = 10,		/* chap_kind, arg: "USER\nSECRET", or "" to clear */
};

enum spt_ctl_chap_kind {
	SPT_CTL_CHAP_NORMAL = 0,	/* --chap */
	SPT_CTL_CHAP_DISCOVERY = 1,	/* --discovery-chap */
	SPT_CTL_CHAP_MUTUAL = 2,	/* --mutual-chap */
};

#define SPT_CTL_CONFIG_FORCE 0x1

struct spt_ctl_config_change {
	uint32_t op;			/* enum spt_ctl_config_op */
	uint32_t flags;			/* SPT_CTL_CONFIG_FORCE */
	uint64_t lun;
	uint64_t size_bytes;
	uint32_t chap_kind;		/* enum spt_ctl_chap_kind */
	uint32_t reserved;		/* 0 */
	char target[SPT_CTL_NAME_MAX];	/* NUL-terminated */
	char arg[SPT_CTL_PATH_MAX];	/* NUL-terminated */
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_config_change) == 32 + 224 + 4096, "config_change size");
_Static_assert(offsetof(struct spt_ctl_config_change, target) == 32, "config_change target offset");

/* ------------------------------------------------------------------ */
/* Control plane: ALUA target port groups (issue 5, multipath)          */
/* ------------------------------------------------------------------ */
/*
 * Each target portal group (--listen ADDR:PORT,tpg=N) is one SCSI target
 * port of every target, with an asymmetric access state (SPC-4 5.16).
 *
 *   ALUA_LIST (0x220): no payload. Response: struct spt_ctl_alua_group per
 *   group with a portal, ascending by tag (Length / sizeof of them).
 *   ALUA_SET (0x221): payload one struct spt_ctl_alua_group (tpgt, state;
 *   the rest 0). Response: no payload; BAD_REQUEST with the reason. Every
 *   I_T nexus then gets ASYMMETRIC ACCESS STATE CHANGED (2A/06).
 *
 * Little-endian on the wire. state: enum spt_alua_state of <spt/scsi.h>
 * (0 active/optimized, 1 active/non-optimized, 2 standby, 3 unavailable).
 */
enum spt_ctl_alua_code {
	SPT_CC_ALUA_LIST = 0x220,
	SPT_CC_ALUA_SET = 0x221,
};

#define SPT_CTL_ALUA_PORTALS_MAX 248	/* "ADDR:PORT, ADDR:PORT ...", NUL-terminated, cut if longer */

struct spt_ctl_alua_group {
	uint16_t tpgt;
	uint8_t state;
	uint8_t reserved;		/* 0 */
	uint32_t portal_count;
	char portals[SPT_CTL_ALUA_PORTALS_MAX];
} __attribute__((packed));
_Static_assert(sizeof(struct spt_ctl_alua_group) == 256, "alua_group size");

#endif
