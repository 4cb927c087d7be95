/*
 * The iSCSI engine's objects: server (targets, portals, limits), session,
 * connection, task. Internal to src/iscsi/.
 */
#ifndef ISCSI_ISCSI_H
#define ISCSI_ISCSI_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <spt/spt.h>

#include "iscsi/chap.h"
#include "iscsi/param.h"
#include "iscsi/pdu.h"
#include "iscsi/stats.h"
#include "spt/dispatch.h"
#include "util/bufpool.h"
#include "util/evloop.h"
#include "util/list.h"

#define ISCSI_MAX_TARGETS 64
#define ISCSI_MAX_PORTALS 32
/* the MaxCmdSN window: commands a session may have queued at once; the
 * largest --max-pending-commands (ISCSI_SN_BITMAP is sized for it) */
#define ISCSI_QUEUE_DEPTH 128
/* immediate commands allowed beyond the window before Reject 0x06 */
#define ISCSI_IMMEDIATE_SLACK 16
/* CmdSNs received ahead of ExpCmdSN without a waiting task; > the window */
#define ISCSI_SN_BITMAP 256
_Static_assert(ISCSI_SN_BITMAP > ISCSI_QUEUE_DEPTH, "the bitmap covers the CmdSN window");
/* largest data buffer of one command (VPD B0 MAXIMUM TRANSFER LENGTH) */
#define ISCSI_MAX_TASK_BUF (8u << 20)
/* bytes of login text (all PDUs of one request) we take: the largest
 * --max-login-text; RFC 7143 6.1 asks every target to take 16384, and
 * 64 KiB with very long authentication items */
#define ISCSI_LOGIN_TEXT_MAX 65536
#define ISCSI_LOGIN_TEXT_MIN 16384
/* Login Request PDUs one login may take (C-bit continuations, security
 * and operational rounds): a login that needs more is not one we serve */
#define ISCSI_LOGIN_PDUS_MAX 64
/* login PDUs are bounded by the 8192 MaxRecvDataSegmentLength default
 * (RFC 7143 13.12); we allow our own declared value as a courtesy */
#define ISCSI_LOGIN_DSL_MAX 8192
#define ISCSI_MAX_OUTSTANDING_R2T 16
/* read-ahead buffer of a connection, taken from the pool only while it
 * holds bytes not yet parsed: an idle connection holds none */
#define ISCSI_RX_STAGE 65536
/*
 * Idle sessions stay small (issue 6: 1,000 idle sessions under 256 MiB).
 * A session that ran a deep queue keeps its recycled task structs
 * (~1.3 KiB each, up to the window) and PDU structs, so its commands need
 * no malloc; once it has had no command in flight for ISCSI_IDLE_TRIM_MS
 * the caches go back down to what QD 1 traffic reuses.
 */
#define ISCSI_IDLE_TRIM_MS 2000
#define ISCSI_IDLE_TASKS_KEEP 4
#define ISCSI_IDLE_TX_KEEP 4
/* freed bytes after which malloc_trim gives the heap's free pages back */
#define ISCSI_TRIM_RELEASE_MIN (4u << 20)
#define ISCSI_SENDTARGETS_MAX 65536
#define ISCSI_DEFAULT_TPGT 1
/* RFC 7143 13.9: a TargetPortalGroupTag is a 16-bit number */
#define ISCSI_TPGT_MAX 65535
/* initiator names one target's ACL may list (--allow) */
#define ISCSI_MAX_ALLOW 1024

/*
 * Named limits against hostile or broken peers (README "Limits"): the
 * defaults of the struct iscsi_config fields below, each with its sptd
 * flag in src/main.c's sptd_knobs table.
 */
#define ISCSI_DEFAULT_MAX_SESSIONS 1024			/* --max-sessions */
#define ISCSI_DEFAULT_MAX_SESSIONS_PER_TARGET 1024	/* --max-sessions-per-target */
/* one address may never hold every half-open slot: half the half-open limit */
#define ISCSI_DEFAULT_MAX_CONNS_PER_ADDRESS 128		/* --max-connections-per-address */
#define ISCSI_DEFAULT_MAX_HALF_OPEN 256			/* --max-half-open */
#define ISCSI_DEFAULT_MAX_PENDING_COMMANDS ISCSI_QUEUE_DEPTH	/* --max-pending-commands */
#define ISCSI_DEFAULT_PDU_TIMEOUT_S 30			/* --pdu-timeout */
#define ISCSI_DEFAULT_MAX_RECV_DSL 262144		/* --max-recv-data-segment-length */
/* QD 128 of 1 MiB commands needs 128 MiB; twice that leaves room for 2 MiB I/O */
#define ISCSI_DEFAULT_SESSION_BUFFER_MIB 256		/* --max-session-buffer-mib */
/* at least one command of the largest size always fits */
#define ISCSI_SESSION_BUFFER_MIN_MIB (ISCSI_MAX_TASK_BUF >> 20)
#define ISCSI_SESSION_BUFFER_MAX_MIB 65536
/* a login request of a real initiator has some 25 keys */
#define ISCSI_LOGIN_KEYS_MIN 32
/* RFC 7143 13.12: MaxRecvDataSegmentLength is 512 to 2**24 - 1 */
#define ISCSI_RECV_DSL_MIN 512
/* Bytes of PDUs a connection queues in buffers of their own (NOP-In echoes,
 * Text responses, Rejects, sense) for a peer that does not read them; Data-In
 * points into task buffers, which --max-session-buffer-mib bounds. */
#define ISCSI_CONN_TX_OWNED_MAX (16u << 20)

struct iscsi_server;
struct iscsi_session;
struct iscsi_conn;

struct iscsi_target {
	char name[ISCSI_NAME_MAX + 1];
	uint16_t tpgt;
	struct spt_lun_map luns;
	/* ACL: initiator names allowed to log in (any when empty) */
	char **allow;
	size_t nallow;
	/* bumped when LUNs come or go: sessions that saw an older map get
	 * REPORTED LUNS DATA HAS CHANGED (SPC-4 3F/0E) */
	uint32_t luns_gen;
};

struct iscsi_portal {
	struct ev_handler h;
	struct iscsi_server *srv;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[80];		/* "127.0.0.1:3260", "[::1]:3260,tpg=2": as given to listen */
	/* RFC 7143 4.4.1: the target portal group the portal belongs to; each
	 * group is one SCSI target port of every target (SPC-4 5.16) */
	uint16_t tpgt;
	bool paused;		/* out of file descriptors: not watched until the next tick */
};

/* SPC-4 5.16.2.4 asymmetric access states of a target port group, as
 * REPORT TARGET PORT GROUPS codes them. */
enum iscsi_alua_state {
	ISCSI_ALUA_ACTIVE_OPTIMIZED = 0x0,
	ISCSI_ALUA_ACTIVE_NON_OPTIMIZED = 0x1,
	ISCSI_ALUA_STANDBY = 0x2,
	ISCSI_ALUA_UNAVAILABLE = 0x3,
};

/* One target portal group: its tag and its asymmetric access state. */
struct iscsi_portal_group {
	uint16_t tpgt;
	uint8_t state;		/* enum iscsi_alua_state */
};
/* a state set for a group with no portal yet is kept for when one comes */
#define ISCSI_MAX_PORTAL_GROUPS ISCSI_MAX_PORTALS

struct iscsi_config {
	uint32_t login_timeout_s;	/* a connection must reach full feature phase in this time */
	uint32_t nop_interval_s;	/* idle time before we ping with NOP-In; 0 = never */
	uint32_t nop_timeout_s;		/* ping answered within this or the connection drops */
	uint32_t logout_grace_s;	/* shutdown: time for initiators to log out */
	uint32_t max_sessions;		/* sessions at once in all, discovery included */
	uint32_t max_sessions_per_target;	/* normal sessions at once to one target */
	uint32_t max_conns_per_address;	/* connections at once from one initiator address */
	uint32_t max_half_open;		/* connections at once not (yet) in a session */
	uint32_t max_login_text;	/* bytes of text in one login request (all its PDUs) */
	uint32_t max_login_keys;	/* key=value pairs in one login request */
	uint32_t max_pending_commands;	/* the CmdSN window of a session (<= ISCSI_QUEUE_DEPTH) */
	uint32_t pdu_timeout_s;		/* a PDU begun must be received, or sent, within this */
	uint32_t max_recv_dsl;		/* our MaxRecvDataSegmentLength, declared in login */
	uint32_t max_session_buffer_mib;	/* data buffers one session's commands may hold */
};

struct iscsi_server {
	struct ev_loop *loop;
	struct bufpool *bp;
	struct iscsi_config cfg;
	struct iscsi_target_limits limits;
	struct chap_config chap;	/* limits.chap_* say which sessions must use it */
	struct iscsi_target *targets[ISCSI_MAX_TARGETS];
	size_t ntargets;
	struct iscsi_portal portals[ISCSI_MAX_PORTALS];
	size_t nportals;
	struct list_node sessions;
	struct list_node conns;
	size_t nsessions;
	uint16_t next_tsih;
	uint32_t next_conn_id;
	bool shutting_down;
	uint64_t shutdown_deadline_ms;
	/* limits at work, for the log and the control plane */
	uint64_t refused_per_address;	/* connections closed at accept: --max-connections-per-address */
	uint64_t refused_half_open;	/* ... and --max-half-open */
	uint64_t refused_logged_ms;	/* refusals are logged at most once a second */
	uint32_t refused_unlogged;
	uint64_t header_digest_errors;	/* every connection's, since start */
	uint64_t data_digest_errors;
	/* idle trims (ISCSI_IDLE_TRIM_MS): bytes freed since the heap was last
	 * trimmed, and when that was */
	size_t trimmed_bytes;
	uint64_t heap_trimmed_ms;
	/* ALUA: states set for target portal groups (absent: active/optimized) */
	struct iscsi_portal_group groups[ISCSI_MAX_PORTAL_GROUPS];
	size_t ngroups;
	/* told the group table (every group with a portal, with its state)
	 * whenever portals or states change: the daemon hands it to the SCSI
	 * helpers (spt_scsi_set_port_groups) */
	void (*groups_changed)(void *arg, const struct iscsi_portal_group *groups, size_t n);
	void *groups_changed_arg;
};

/* One outstanding R2T. */
struct iscsi_r2t_slot {
	uint32_t ttt;
	uint32_t offset;
	uint32_t length;
};

enum iscsi_task_state {
	TASK_RECEIVING,		/* waiting for CmdSN order and/or data-out */
	TASK_AT_PROVIDER,	/* a request is with the provider */
	TASK_DONE,		/* final completion received; response queued */
};

struct iscsi_tmf_wait;

struct iscsi_task {
	struct list_node sess_node;	/* session's tasks */
	struct list_node order_node;	/* session's CmdSN-ordered queue while waiting */
	struct iscsi_session *sess;
	struct iscsi_conn *conn;
	uint32_t itt;
	uint32_t cmdsn;
	uint32_t edtl;
	uint8_t lun[8];
	bool immediate;
	bool ordered;		/* reached its turn in CmdSN order */
	bool write;
	bool read;
	bool aborted;
	bool oversize;		/* data-out larger than our buffer: no data taken */
	bool tas;		/* aborted by another I_T nexus: report TASK ABORTED */
	bool no_room;		/* over the session's buffer budget: TASK SET FULL, no data taken */
	bool accepted;		/* the provider took a first data-out sequence */
	bool draining;		/* failed early: waiting for the data of outstanding R2Ts */
	bool xport_err;		/* a data sequence error ends it once the provider returns it */
	enum iscsi_task_state state;
	/* data-out */
	uint32_t want;		/* data-out bytes we will take: min(edtl, buf_len) */
	uint32_t unsol_len;	/* unsolicited bytes expected (immediate + Data-Out) */
	bool unsol_done;
	uint32_t received;	/* bytes received, contiguous from 0 (DataPDUInOrder=Yes) */
	uint32_t delivered;	/* bytes handed to the provider */
	uint32_t burst_end;	/* end of the last complete burst (sequence) */
	uint32_t r2t_next;	/* next offset to ask for */
	uint32_t r2tsn;
	uint32_t out_datasn;	/* DataSN expected next in the current data-out sequence */
	struct iscsi_r2t_slot r2t[ISCSI_MAX_OUTSTANDING_R2T];
	uint32_t nr2t;
	/* data-in */
	uint32_t datasn;
	size_t buf_alloc;	/* size passed to bufpool */
	int tx_refs;		/* queued PDUs pointing into cmd.buf */
	struct iscsi_tmf_wait *tmf_wait;	/* a TMF waiting for this task to finish */
	/* statistics (iscsi/stats.h); before cmd: zeroed with the task */
	struct spt_lun *stats_lun;	/* the LUN whose counters it moves, or NULL */
	uint64_t stats_start_ns;	/* the command's arrival */
	bool stats_counted;		/* its status was counted */
	struct spt_cmd cmd;
};

/* A TMF waiting for its provider and the tasks it aborted. */
struct iscsi_tmf_wait {
	struct iscsi_conn *conn;
	uint32_t itt;
	uint8_t response;
	int waits;
	bool cold_reset;
	struct spt_tmf tmfs[SPT_MAX_LUNS];
	int ntmfs;
};

enum iscsi_conn_state {
	CONN_LOGIN,
	CONN_FULL_FEATURE,
	CONN_LOGGED_OUT,	/* logout response queued: close once sent */
	CONN_CLOSED,
};

enum iscsi_rx_state {
	RX_BHS,
	RX_AHS,
	RX_DATA,
};

/* One queued outgoing PDU. */
struct iscsi_tx {
	struct list_node node;
	uint8_t hdr[ISCSI_BHS_LEN + ISCSI_DIGEST_LEN];
	uint32_t hdr_len;
	uint8_t *data;
	uint32_t data_len;
	uint8_t trailer[3 + ISCSI_DIGEST_LEN];	/* padding, data digest */
	uint32_t trailer_len;
	struct iscsi_task *task;	/* holds the data buffer, or NULL */
	void *owned;			/* data buffer from the pool, freed when sent */
	size_t owned_len;
	size_t sent;			/* bytes of this PDU already written */
};

struct iscsi_conn {
	struct list_node srv_node;
	struct list_node sess_node;
	struct ev_handler h;
	struct iscsi_server *srv;
	struct iscsi_session *sess;
	enum iscsi_conn_state state;
	int refs;			/* socket + tasks + TMF waits */
	uint32_t id;			/* for logs */
	uint16_t cid;
	char peer[SPT_PEER_ADDRESS_MAX];
	struct sockaddr_storage peer_addr;	/* for --max-connections-per-address */
	struct sockaddr_storage local;
	socklen_t locallen;
	struct iscsi_conn_params params;
	uint32_t statsn;
	uint64_t created_ms;
	uint64_t last_rx_ms;
	uint64_t last_cmd_ms;		/* last SCSI command PDU (ISCSI_IDLE_TRIM_MS) */
	bool trimmed;			/* caches trimmed since that command */
	uint32_t nop_ttt;		/* outstanding NOP-In ping, or 0xffffffff */
	uint64_t nop_sent_ms;
	uint32_t next_ttt;
	bool want_write;
	bool flush_pending;
	bool resume_pending;
	bool input_off;			/* EPOLLIN no longer watched (logging out) */
	uint64_t rx_pdu_start_ms;	/* first byte of the PDU being received (--pdu-timeout) */
	uint64_t tx_progress_ms;	/* last byte written, or the queue's start (--pdu-timeout) */
	size_t tx_owned_bytes;		/* queued in PDU-owned buffers (ISCSI_CONN_TX_OWNED_MAX) */
	/* RFC 7143 7.8 digest errors seen on this connection */
	uint32_t header_digest_errors;
	uint32_t data_digest_errors;
	struct iscsi_conn_stats stats;	/* PDUs and bytes (iscsi/stats.h) */

	/* receive state machine */
	enum iscsi_rx_state rx_state;
	struct iscsi_bhs rx_bhs;
	uint8_t rx_ahs[ISCSI_AHS_MAX + ISCSI_DIGEST_LEN];
	uint32_t rx_need;		/* bytes wanted in this state */
	uint32_t rx_have;
	uint8_t *rx_dest;		/* where the data segment goes (NULL: discard) */
	uint32_t rx_dsl;
	uint32_t rx_tail;		/* padding + data digest after the data */
	uint8_t rx_tail_buf[3 + ISCSI_DIGEST_LEN];
	uint8_t *rx_pdu_data;		/* pooled buffer for non-SCSI data segments */
	size_t rx_pdu_data_len;
	struct iscsi_task *rx_task;	/* task receiving this PDU's data */
	bool rx_reject;			/* PDU-level error: consume data, then Reject */
	uint8_t rx_reject_reason;
	uint8_t *stage;			/* ISCSI_RX_STAGE bytes read ahead */
	uint32_t stage_pos, stage_len;

	/* login */
	struct iscsi_negotiation neg;
	struct iscsi_session_params login_sp;
	bool login_started;
	uint8_t login_isid[6];
	uint16_t login_tsih;
	uint32_t login_itt;
	uint32_t login_cmdsn;
	char *login_text;		/* request text accumulated over C bits */
	size_t login_text_len;
	struct iscsi_target *login_target;
	bool login_first_done;
	bool login_sent_tpgt;
	uint16_t login_tpgt;		/* group of the portal the connection came in on */
	uint32_t login_pdus;		/* Login Requests taken (ISCSI_LOGIN_PDUS_MAX) */
	struct chap_exchange chap;	/* security stage, AuthMethod=CHAP */

	/* text request continuation */
	char *text_rsp;
	size_t text_rsp_len, text_rsp_off;
	uint32_t text_ttt;

	struct list_node txq;
	struct list_node tx_free;
};

struct iscsi_session {
	struct list_node srv_node;
	struct iscsi_server *srv;
	struct iscsi_target *target;	/* NULL for discovery */
	struct iscsi_session_params params;
	uint8_t isid[6];
	uint16_t tsih;
	/* RFC 7143 4.4.1: the portal group of its connections: with the
	 * target name, the SCSI target port of its I_T nexus */
	uint16_t tpgt;
	uint64_t handle;		/* ITNexusHandle */
	uint64_t next_task_cookie;
	uint32_t exp_cmdsn;
	uint32_t max_cmdsn;
	uint32_t queue_depth;		/* the CmdSN window (--max-pending-commands at login) */
	int ntasks;
	int nactive;			/* tasks not yet TASK_DONE: what the window holds */
	uint64_t buf_bytes;		/* task data buffers held (--max-session-buffer-mib) */
	uint64_t buf_budget;
	uint64_t task_set_full;		/* commands answered TASK SET FULL for lack of buffer */
	/* RFC 7143 7.8 digest errors of the session's connections */
	uint64_t header_digest_errors;
	uint64_t data_digest_errors;
	int refs;			/* connections + tasks */
	bool started;			/* SESSION_START sent */
	struct spt_session_start start;	/* what it was: for LUNs added later */
	uint32_t luns_gen_seen;		/* the target's LUN map generation it was told of */
	bool reinstated;
	bool ending;
	struct list_node tasks;
	struct list_node order;		/* commands waiting for their CmdSN */
	uint64_t sn_received[ISCSI_SN_BITMAP / 64];	/* CmdSNs ahead, already received */
	struct list_node conns;
	int nconns;
	struct list_node task_free;	/* recycled task structs */
	char chap_user[SPT_CHAP_USER_MAX];
	/* SCSI payload moved, for the control plane (sptctl session list) */
	uint64_t bytes_read;		/* data-in queued to the initiator */
	uint64_t bytes_written;		/* data-out (immediate, unsolicited, solicited) taken in */
	struct iscsi_session_stats stats;	/* commands, errors, aborts (iscsi/stats.h) */
};

/* --max-pending-commands, within what the CmdSN bookkeeping covers */
static inline uint32_t iscsi_cfg_queue_depth(const struct iscsi_config *cfg)
{
	if (cfg->max_pending_commands < 1)
		return 1;
	return cfg->max_pending_commands < ISCSI_QUEUE_DEPTH ? cfg->max_pending_commands : ISCSI_QUEUE_DEPTH;
}

/* conn.c */
void iscsi_conn_accept(struct iscsi_server *srv, int fd);
void iscsi_conn_close(struct iscsi_conn *conn, const char *why);
void iscsi_conn_put(struct iscsi_conn *conn);
struct iscsi_tx *iscsi_tx_new(struct iscsi_conn *conn);
void iscsi_tx_queue(struct iscsi_conn *conn, struct iscsi_tx *tx);
void iscsi_send_reject(struct iscsi_conn *conn, const struct iscsi_bhs *bad, uint8_t reason);
void iscsi_conn_tick(struct iscsi_conn *conn, uint64_t now);
void iscsi_send_async_logout(struct iscsi_conn *conn, uint16_t wait_s);
/* fills StatSN (advancing it if advance), ExpCmdSN, MaxCmdSN at offsets 24/28/32 */
void iscsi_fill_sn(struct iscsi_conn *conn, void *bhs, bool advance);

/* login.c */
void iscsi_login_pdu(struct iscsi_conn *conn, uint8_t *data, uint32_t len);

/* session.c */
struct iscsi_session *iscsi_session_new(struct iscsi_server *srv, struct iscsi_target *t,
					const struct iscsi_session_params *sp, const uint8_t isid[6]);
void iscsi_session_attach(struct iscsi_session *s, struct iscsi_conn *conn);
void iscsi_session_detach(struct iscsi_conn *conn);
void iscsi_session_put(struct iscsi_session *s);
void iscsi_session_stop(struct iscsi_session *s, const char *why);
void iscsi_session_update_window(struct iscsi_session *s);
/* A task's data buffer of len bytes: false if it would pass the session's
 * buffer budget (and nothing is taken), else counted until released. */
bool iscsi_session_buffer_take(struct iscsi_session *s, size_t len);
void iscsi_session_buffer_release(struct iscsi_session *s, size_t len);
/* Frees recycled task structs beyond keep (ISCSI_IDLE_TRIM_MS); returns
 * the bytes freed. */
size_t iscsi_session_trim(struct iscsi_session *s, unsigned keep);
/* Live (not ending) sessions to target t; with t NULL, every live session. */
size_t iscsi_session_count(struct iscsi_server *srv, const struct iscsi_target *t);
/* a non-immediate PDU arrived with this CmdSN: true if it may run now */
int iscsi_cmdsn_check(struct iscsi_session *s, uint32_t cmdsn, bool immediate);
void iscsi_session_advance(struct iscsi_session *s);
void iscsi_cmdsn_received(struct iscsi_session *s, uint32_t cmdsn);
void iscsi_nop_out(struct iscsi_conn *conn, uint8_t *data, uint32_t len);
void iscsi_text_req(struct iscsi_conn *conn, uint8_t *data, uint32_t len);
void iscsi_logout_req(struct iscsi_conn *conn);

/* task.c */
struct iscsi_task *iscsi_task_from_cmd(struct iscsi_conn *conn, const struct iscsi_scsi_cmd *h,
				       uint32_t dsl, uint8_t **dest);
uint8_t *iscsi_task_data_out_dest(struct iscsi_conn *conn, const struct iscsi_data_out *h,
				  uint32_t dsl, struct iscsi_task **taskp, unsigned *reject);
void iscsi_task_cmd_received(struct iscsi_task *t);
void iscsi_task_data_received(struct iscsi_task *t, const struct iscsi_data_out *h, uint32_t dsl);
void iscsi_task_run_ordered(struct iscsi_task *t);
void iscsi_task_abort_conn(struct iscsi_conn *conn);
void iscsi_task_tx_done(struct iscsi_task *t);
void iscsi_tmf_req(struct iscsi_conn *conn);
struct iscsi_task *iscsi_task_find(struct iscsi_session *s, uint32_t itt);

/* target.c */
struct iscsi_target *iscsi_target_find(struct iscsi_server *srv, const char *name);
/* ACL: may this initiator log in to t? (RFC 7143 4.2.7.1: names compare case-insensitively) */
bool iscsi_target_allows(const struct iscsi_target *t, const char *initiator);
int iscsi_sendtargets(struct iscsi_conn *conn, const char *what, struct iscsi_text_out *out);
void iscsi_server_stop(struct iscsi_server *srv);
/* The target portal group of the portal a connection's local address
 * belongs to (ISCSI_DEFAULT_TPGT if none matches any more). */
uint16_t iscsi_portal_tpgt(const struct iscsi_server *srv, const struct sockaddr_storage *local);
/* Every group with at least one portal, ascending by tag, with its state;
 * returns how many (at most max). */
size_t iscsi_portal_groups(const struct iscsi_server *srv, struct iscsi_portal_group *out, size_t max);
/* Sets a group's asymmetric access state (kept even while the group has
 * no portal); tells groups_changed. 0 or -1 with err. */
int iscsi_portal_group_set_state(struct iscsi_server *srv, uint16_t tpgt, uint8_t state, char *err,
				 size_t errlen);

#endif
