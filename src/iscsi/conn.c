/*
 * An iSCSI connection: the receive state machine (BHS, AHS + header digest,
 * data segment + padding + data digest) that resumes after any partial
 * read, the header step and payload step per opcode, and the send queue of
 * PDUs written as iovecs.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include "iscsi/iscsi.h"
#include "util/log.h"

#define CONN_RX_BUDGET (4u << 20)	/* bytes read per readiness event before yielding */
#define CONN_DIRECT_READ_MIN 16384	/* data segments this big skip the stage buffer */
#define CONN_IOV_MAX 256

static void conn_on_event(struct ev_handler *h, uint32_t events);
static void conn_flush(void *arg);
static void conn_resume(void *arg);
static void conn_close_after_send(struct iscsi_conn *conn, const char *why);

static void conn_format_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(out, len, "unknown");
	}
}

/*
 * RFC 7143 6.3, 13.1: digests negotiated during login are used from full
 * feature phase on; no Login PDU carries one (initiators turn theirs on
 * after the final Login Response).
 */
static bool conn_rx_header_digest(const struct iscsi_conn *conn)
{
	return conn->params.header_digest && conn->state != CONN_LOGIN;
}

static bool conn_rx_data_digest(const struct iscsi_conn *conn)
{
	return conn->params.data_digest && conn->state != CONN_LOGIN;
}

/* One initiator address, the port aside. AF_UNIX peers (in-process tests)
 * count as one address. An IPv6 host may use many addresses: for it
 * --max-half-open is the bound that holds. */
static bool conn_same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
	return true;
}

/*
 * The limits a new connection must pass before anything is allocated for
 * it: --max-connections-per-address (login phase and full feature phase
 * alike) and --max-half-open (connections not in a session: logging in,
 * or closing after a failed login). Returns the flag that refuses it, or
 * NULL to take it.
 */
static const char *conn_admission(struct iscsi_server *srv, const struct sockaddr_storage *peer)
{
	const struct iscsi_config *cfg = &srv->cfg;
	uint32_t same = 0, half_open = 0;
	struct list_node *n;

	list_for_each(n, &srv->conns) {
		const struct iscsi_conn *c = list_entry(n, struct iscsi_conn, srv_node);

		if (conn_same_address(&c->peer_addr, peer))
			same++;
		if (!c->sess)
			half_open++;
	}
	if (same >= cfg->max_conns_per_address) {
		srv->refused_per_address++;
		return "--max-connections-per-address";
	}
	if (half_open >= cfg->max_half_open) {
		srv->refused_half_open++;
		return "--max-half-open";
	}
	return NULL;
}

/*
 * RFC 7143 11.13.5 has "Out of resources" (0302) for a login the target
 * cannot serve, but that answer needs the Login Request, and waiting for
 * it holds the very resource the limit protects, for up to the login
 * timeout. The connection is closed at once instead, before a byte is
 * read: an initiator sees a failed connection attempt and retries later.
 * Logged at most once a second (server_tick counts the rest).
 */
static void conn_log_refusal(struct iscsi_server *srv, const char *peer, const char *limit)
{
	uint64_t now = ev_now_ms();

	if (now - srv->refused_logged_ms >= 1000) {
		log_warn("connection from %s refused at accept: %s reached", peer, limit);
		srv->refused_logged_ms = now;
	} else {
		srv->refused_unlogged++;
	}
}

void iscsi_conn_accept(struct iscsi_server *srv, int fd)
{
	struct iscsi_conn *conn = NULL;
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	char peer_text[SPT_PEER_ADDRESS_MAX];
	const char *refused;
	int one = 1;

	memset(&peer, 0, sizeof(peer));
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		peer.ss_family = AF_UNSPEC;
	conn_format_peer(&peer, peer_text, sizeof(peer_text));
	refused = conn_admission(srv, &peer);
	if (refused) {
		conn_log_refusal(srv, peer_text, refused);
		goto fail;
	}
	conn = calloc(1, sizeof(*conn));
	if (!conn)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	conn->peer_addr = peer;
	memcpy(conn->peer, peer_text, sizeof(conn->peer));
	conn->locallen = sizeof(conn->local);
	getsockname(fd, (struct sockaddr *)&conn->local, &conn->locallen);
	conn->srv = srv;
	conn->id = ++srv->next_conn_id;
	conn->refs = 1;
	conn->state = CONN_LOGIN;
	conn->created_ms = conn->last_rx_ms = conn->last_cmd_ms = ev_now_ms();
	conn->nop_ttt = ISCSI_RESERVED_TAG;
	conn->next_ttt = 1;
	conn->rx_state = RX_BHS;
	conn->rx_need = ISCSI_BHS_LEN;
	iscsi_conn_params_default(&conn->params);
	list_init(&conn->txq);
	list_init(&conn->tx_free);
	list_init(&conn->sess_node);
	list_add_tail(&srv->conns, &conn->srv_node);
	conn->h.fd = fd;
	conn->h.cb = conn_on_event;
	conn->h.arg = conn;
	if (ev_add(srv->loop, &conn->h, EPOLLIN) < 0) {
		iscsi_conn_close(conn, "epoll registration failed");
		return;
	}
	log_info("conn %u: connection from %s", conn->id, conn->peer);
	return;
fail:
	free(conn);
	close(fd);
}

static void conn_free(void *arg)
{
	struct iscsi_conn *conn = arg;
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &conn->tx_free) {
		list_del(n);
		free(list_entry(n, struct iscsi_tx, node));
	}
	bufpool_put(conn->srv->bp, conn->rx_pdu_data, conn->rx_pdu_data_len);
	free(conn->login_text);
	free(conn->text_rsp);
	bufpool_put(conn->srv->bp, conn->stage, ISCSI_RX_STAGE);
	free(conn);
}

void iscsi_conn_put(struct iscsi_conn *conn)
{
	if (--conn->refs == 0)
		ev_defer(conn->srv->loop, conn_free, conn);
}

static void tx_release(struct iscsi_conn *conn, struct iscsi_tx *tx)
{
	if (tx->owned)
		bufpool_put(conn->srv->bp, tx->owned, tx->owned_len);
	if (tx->task)
		iscsi_task_tx_done(tx->task);
	tx->owned = NULL;
	tx->task = NULL;
	list_add_tail(&conn->tx_free, &tx->node);
}

void iscsi_conn_close(struct iscsi_conn *conn, const char *why)
{
	struct list_node *n, *tmp;

	if (conn->state == CONN_CLOSED)
		return;
	log_info("conn %u (%s): closed: %s", conn->id, conn->peer, why);
	conn->state = CONN_CLOSED;
	ev_del(conn->srv->loop, &conn->h);
	close(conn->h.fd);
	conn->h.fd = -1;
	list_del(&conn->srv_node);
	list_for_each_safe(n, tmp, &conn->txq) {
		struct iscsi_tx *tx = list_entry(n, struct iscsi_tx, node);

		list_del(n);
		conn->tx_owned_bytes -= tx->owned_len;
		tx_release(conn, tx);
	}
	if (conn->rx_task) {
		conn->rx_task = NULL;
	}
	iscsi_task_abort_conn(conn);
	if (conn->sess)
		iscsi_session_detach(conn);
	iscsi_conn_put(conn);
}

struct iscsi_tx *iscsi_tx_new(struct iscsi_conn *conn)
{
	struct iscsi_tx *tx;

	if (!list_empty(&conn->tx_free)) {
		tx = list_first(&conn->tx_free, struct iscsi_tx, node);
		list_del(&tx->node);
	} else {
		tx = malloc(sizeof(*tx));
		if (!tx)
			return NULL;
	}
	memset(tx->hdr, 0, ISCSI_BHS_LEN);
	tx->hdr_len = ISCSI_BHS_LEN;
	tx->data = NULL;
	tx->data_len = 0;
	tx->trailer_len = 0;
	tx->task = NULL;
	tx->owned = NULL;
	tx->owned_len = 0;
	tx->sent = 0;
	return tx;
}

void iscsi_tx_queue(struct iscsi_conn *conn, struct iscsi_tx *tx)
{
	if (conn->state == CONN_CLOSED) {
		tx_release(conn, tx);
		return;
	}
	pdu_set_dsl(tx->hdr, tx->data_len);
	/* RFC 7143 6.3, 13.1: a Login Response never carries digests */
	bool login = (tx->hdr[0] & ISCSI_OPCODE_MASK) == ISCSI_OP_LOGIN_RSP;

	if (conn->params.header_digest && !login) {
		uint32_t crc = ~pdu_crc32c(tx->hdr, ISCSI_BHS_LEN, PDU_CRC32C_INIT);

		/* RFC 7143 B.4: the digest goes on the wire least significant byte first */
		memcpy(tx->hdr + ISCSI_BHS_LEN, &(uint32_t){ htole32(crc) }, 4);
		tx->hdr_len = ISCSI_BHS_LEN + ISCSI_DIGEST_LEN;
	}
	if (tx->data_len) {
		uint32_t pad = pdu_pad(tx->data_len);

		memset(tx->trailer, 0, sizeof(tx->trailer));
		tx->trailer_len = pad;
		if (conn->params.data_digest && !login) {
			uint32_t crc = pdu_crc32c(tx->data, tx->data_len, PDU_CRC32C_INIT);

			crc = ~pdu_crc32c(tx->trailer, pad, crc);
			memcpy(tx->trailer + pad, &(uint32_t){ htole32(crc) }, 4);
			tx->trailer_len += ISCSI_DIGEST_LEN;
		}
	}
	/* --pdu-timeout: the queue is given that long to move from now */
	if (list_empty(&conn->txq))
		conn->tx_progress_ms = ev_now_ms();
	list_add_tail(&conn->txq, &tx->node);
	conn->tx_owned_bytes += tx->owned_len;
	if (!conn->flush_pending && !conn->want_write) {
		conn->flush_pending = true;
		conn->refs++;
		ev_defer(conn->srv->loop, conn_flush, conn);
	}
	/* a peer that asks for answers (NOP-Out echoes, Text) but does not
	 * read them gets no more of our memory: nothing more is read from it */
	if (conn->tx_owned_bytes > ISCSI_CONN_TX_OWNED_MAX && conn->state == CONN_FULL_FEATURE)
		conn_close_after_send(conn, "the peer does not read what it asks for");
}

static void conn_write(struct iscsi_conn *conn)
{
	struct iovec iov[CONN_IOV_MAX];

	while (!list_empty(&conn->txq) && conn->state != CONN_CLOSED) {
		int cnt = 0;
		struct list_node *n;

		for (n = conn->txq.next; n != &conn->txq && cnt + 3 <= CONN_IOV_MAX; n = n->next) {
			struct iscsi_tx *tx = list_entry(n, struct iscsi_tx, node);
			size_t skip = tx->sent;
			struct { uint8_t *p; size_t len; } parts[3] = {
				{ tx->hdr, tx->hdr_len }, { tx->data, tx->data_len },
				{ tx->trailer, tx->trailer_len },
			};

			for (int i = 0; i < 3; i++) {
				if (skip >= parts[i].len) {
					skip -= parts[i].len;
					continue;
				}
				iov[cnt].iov_base = parts[i].p + skip;
				iov[cnt].iov_len = parts[i].len - skip;
				skip = 0;
				cnt++;
			}
		}
		ssize_t w = writev(conn->h.fd, iov, cnt);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!conn->want_write) {
					conn->want_write = true;
					ev_mod(conn->srv->loop, &conn->h,
					       conn->input_off ? EPOLLOUT : EPOLLIN | EPOLLOUT);
				}
				return;
			}
			iscsi_conn_close(conn, strerror(errno));
			return;
		}
		size_t left = (size_t)w;

		conn->stats.bytes_out += (uint64_t)w;
		if (w > 0)
			conn->tx_progress_ms = ev_now_ms();

		while (left && !list_empty(&conn->txq)) {
			struct iscsi_tx *tx = list_first(&conn->txq, struct iscsi_tx, node);
			size_t total = tx->hdr_len + tx->data_len + tx->trailer_len;
			size_t rest = total - tx->sent;

			if (left < rest) {
				tx->sent += left;
				left = 0;
				break;
			}
			left -= rest;
			conn->stats.pdus_out++;
			list_del(&tx->node);
			conn->tx_owned_bytes -= tx->owned_len;
			tx_release(conn, tx);
		}
	}
	if (conn->want_write && conn->state != CONN_CLOSED) {
		conn->want_write = false;
		ev_mod(conn->srv->loop, &conn->h, conn->input_off ? 0 : EPOLLIN);
	}
	if (conn->state == CONN_LOGGED_OUT && list_empty(&conn->txq))
		iscsi_conn_close(conn, "logged out");
}

static void conn_flush(void *arg)
{
	struct iscsi_conn *conn = arg;

	conn->flush_pending = false;
	if (conn->state != CONN_CLOSED && !conn->want_write)
		conn_write(conn);
	iscsi_conn_put(conn);
}

void iscsi_fill_sn(struct iscsi_conn *conn, void *bhs, bool advance)
{
	uint8_t *b = bhs;
	uint32_t exp = 0, max = 0;

	if (conn->sess) {
		iscsi_session_update_window(conn->sess);
		exp = conn->sess->exp_cmdsn;
		max = conn->sess->max_cmdsn;
	} else {
		/* login: the Login Request is immediate, its CmdSN is the next one */
		exp = conn->login_cmdsn;
		max = conn->login_cmdsn + iscsi_cfg_queue_depth(&conn->srv->cfg) - 1;
	}
	uint32_t v[3] = { pdu_put32(conn->statsn), pdu_put32(exp), pdu_put32(max) };

	memcpy(b + 24, v, sizeof(v));
	if (advance)
		conn->statsn++;
}

void iscsi_send_reject(struct iscsi_conn *conn, const struct iscsi_bhs *bad, uint8_t reason)
{
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	if (!tx)
		return;
	struct iscsi_reject *r = (struct iscsi_reject *)tx->hdr;

	log_warn("conn %u (%s): Reject %s, reason 0x%02x", conn->id, conn->peer,
		 pdu_opcode_name(bad->opcode), reason);
	r->opcode = ISCSI_OP_REJECT;
	r->flags = ISCSI_FLAG_FINAL;
	r->reason = reason;
	r->itt = ISCSI_RESERVED_TAG;
	iscsi_fill_sn(conn, r, true);
	/* RFC 7143 11.17.1: the data segment carries the rejected header */
	tx->owned = bufpool_get(conn->srv->bp, ISCSI_BHS_LEN);
	if (!tx->owned) {
		tx_release(conn, tx);
		return;
	}
	tx->owned_len = ISCSI_BHS_LEN;
	memcpy(tx->owned, bad, ISCSI_BHS_LEN);
	tx->data = tx->owned;
	tx->data_len = ISCSI_BHS_LEN;
	iscsi_tx_queue(conn, tx);
}

void iscsi_send_async_logout(struct iscsi_conn *conn, uint16_t wait_s)
{
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	if (!tx)
		return;
	struct iscsi_async *a = (struct iscsi_async *)tx->hdr;

	a->opcode = ISCSI_OP_ASYNC;
	a->flags = ISCSI_FLAG_FINAL;
	a->itt = ISCSI_RESERVED_TAG;
	iscsi_fill_sn(conn, a, true);
	/* RFC 7143 11.9.1: AsyncEvent 1, the target requests a logout within
	 * Parameter3 seconds */
	a->event = 1;
	a->param3 = pdu_put16(wait_s);
	iscsi_tx_queue(conn, tx);
}

/* A pooled buffer for the data segment of a non-SCSI PDU. */
static uint8_t *conn_pdu_buffer(struct iscsi_conn *conn, uint32_t len)
{
	size_t want = len ? len : 1;

	if (conn->rx_pdu_data && conn->rx_pdu_data_len >= want)
		return conn->rx_pdu_data;
	bufpool_put(conn->srv->bp, conn->rx_pdu_data, conn->rx_pdu_data_len);
	conn->rx_pdu_data = bufpool_get(conn->srv->bp, want);
	conn->rx_pdu_data_len = conn->rx_pdu_data ? want : 0;
	return conn->rx_pdu_data;
}

static void conn_release_pdu_buffer(struct iscsi_conn *conn)
{
	/* idle connections keep no data buffer (many idle sessions stay small) */
	bufpool_put(conn->srv->bp, conn->rx_pdu_data, conn->rx_pdu_data_len);
	conn->rx_pdu_data = NULL;
	conn->rx_pdu_data_len = 0;
}

/*
 * Ends the connection once what is queued (a Reject) is on the wire;
 * nothing more is read meanwhile. Closes at once if nothing is queued.
 */
static void conn_close_after_send(struct iscsi_conn *conn, const char *why)
{
	if (list_empty(&conn->txq)) {
		iscsi_conn_close(conn, why);
		return;
	}
	log_info("conn %u (%s): closing after the last PDU: %s", conn->id, conn->peer, why);
	conn->state = CONN_LOGGED_OUT;
}

static void conn_reject_pdu(struct iscsi_conn *conn, uint8_t reason)
{
	conn->rx_reject = true;
	conn->rx_reject_reason = reason;
	conn->rx_dest = NULL;
}

/*
 * Checks of the BHS alone, made before an announced AHS is waited for, so
 * a header that cannot be framed ends the connection at once. Returns
 * false if the connection was closed.
 */
static bool conn_bhs_check(struct iscsi_conn *conn)
{
	const struct iscsi_bhs *h = &conn->rx_bhs;
	uint8_t op = pdu_opcode(h);
	uint32_t dsl = pdu_dsl(h);

	if (conn->state == CONN_LOGIN) {
		/* RFC 7143 6.3: only Login Requests until full feature phase */
		if (op != ISCSI_OP_LOGIN_REQ) {
			iscsi_conn_close(conn, "non-login PDU during login");
			return false;
		}
		if (dsl > ISCSI_LOGIN_DSL_MAX) {
			iscsi_conn_close(conn, "login PDU data segment too long");
			return false;
		}
		return true;
	}
	/* RFC 7143 13.12: a PDU longer than our MaxRecvDataSegmentLength
	 * cannot be framed safely: connection-fatal */
	if (dsl > conn->params.max_recv_dsl) {
		log_warn("conn %u (%s): %s data segment %u exceeds MaxRecvDataSegmentLength %u",
			 conn->id, conn->peer, pdu_opcode_name(h->opcode), dsl, conn->params.max_recv_dsl);
		iscsi_conn_close(conn, "data segment too long");
		return false;
	}
	return true;
}

/*
 * Header step: decides where the data segment goes. Returns false if the
 * connection was closed (a connection-fatal error).
 */
static bool conn_header_step(struct iscsi_conn *conn)
{
	struct iscsi_bhs *h = &conn->rx_bhs;
	uint8_t op = pdu_opcode(h);
	uint32_t dsl = pdu_dsl(h);

	conn->rx_dsl = dsl;
	conn->rx_dest = NULL;
	conn->rx_task = NULL;
	conn->rx_reject = false;

	if (conn->state == CONN_LOGIN) {
		/* conn_bhs_check let only a Login Request within ISCSI_LOGIN_DSL_MAX by */
		conn->rx_dest = conn_pdu_buffer(conn, dsl);
		if (!conn->rx_dest) {
			iscsi_conn_close(conn, "out of memory");
			return false;
		}
		return true;
	}
	bool discovery = conn->sess && conn->sess->params.session_type == ISCSI_SESSION_DISCOVERY;

	switch (op) {
	case ISCSI_OP_SCSI_CMD:
		if (discovery) {
			conn_reject_pdu(conn, ISCSI_REJECT_PROTOCOL_ERROR);
			break;
		}
		conn->rx_task = iscsi_task_from_cmd(conn, (struct iscsi_scsi_cmd *)h, dsl, &conn->rx_dest);
		if (!conn->rx_task && conn->state == CONN_CLOSED)
			return false;
		if (!conn->rx_task && !conn->rx_reject) {
			/* the task code already answered (e.g. Reject queued) */
			conn->rx_dest = NULL;
		}
		break;
	case ISCSI_OP_DATA_OUT: {
		unsigned reject = 0;

		conn->rx_dest = iscsi_task_data_out_dest(conn, (struct iscsi_data_out *)h, dsl,
							 &conn->rx_task, &reject);
		if (reject == ISCSI_REJECT_FATAL) {
			iscsi_send_reject(conn, h, ISCSI_REJECT_PROTOCOL_ERROR);
			conn_close_after_send(conn, "fatal Data-Out error");
			conn->rx_dest = NULL;
		} else if (reject) {
			conn_reject_pdu(conn, (uint8_t)reject);
		}
		break;
	}
	case ISCSI_OP_NOP_OUT:
	case ISCSI_OP_TEXT_REQ:
		conn->rx_dest = conn_pdu_buffer(conn, dsl);
		if (!conn->rx_dest) {
			iscsi_conn_close(conn, "out of memory");
			return false;
		}
		break;
	case ISCSI_OP_TMF_REQ:
	case ISCSI_OP_LOGOUT_REQ:
		if (discovery && op == ISCSI_OP_TMF_REQ)
			conn_reject_pdu(conn, ISCSI_REJECT_PROTOCOL_ERROR);
		break;
	case ISCSI_OP_LOGIN_REQ:
		/* RFC 7143 11.12: a Login Request in full feature phase is a
		 * protocol error */
		conn_reject_pdu(conn, ISCSI_REJECT_PROTOCOL_ERROR);
		break;
	case ISCSI_OP_SNACK:
		/* ErrorRecoveryLevel 0: no SNACK support (RFC 7143 11.16) */
		conn_reject_pdu(conn, ISCSI_REJECT_CMD_NOT_SUPPORTED);
		break;
	default:
		if (op & 0x20)	/* a target opcode sent to us */
			conn_reject_pdu(conn, ISCSI_REJECT_PROTOCOL_ERROR);
		else
			conn_reject_pdu(conn, ISCSI_REJECT_CMD_NOT_SUPPORTED);
		break;
	}
	return conn->state != CONN_CLOSED;
}

/* Payload step: the whole PDU is in. */
static void conn_pdu_complete(struct iscsi_conn *conn)
{
	struct iscsi_bhs *h = &conn->rx_bhs;
	uint8_t op = pdu_opcode(h);

	conn->stats.pdus_in++;
	conn->last_rx_ms = ev_now_ms();
	if (conn->rx_reject) {
		iscsi_send_reject(conn, h, conn->rx_reject_reason);
		return;
	}
	log_debug("conn %u: rx %s itt 0x%x dsl %u", conn->id, pdu_opcode_name(op),
		  pdu_get32(h->itt), conn->rx_dsl);
	switch (op) {
	case ISCSI_OP_LOGIN_REQ:
		iscsi_login_pdu(conn, conn->rx_dest, conn->rx_dsl);
		if (conn->state != CONN_LOGIN)
			conn_release_pdu_buffer(conn);
		break;
	case ISCSI_OP_SCSI_CMD:
		conn->last_cmd_ms = conn->last_rx_ms;
		conn->trimmed = false;
		if (conn->rx_task)
			iscsi_task_cmd_received(conn->rx_task);
		break;
	case ISCSI_OP_DATA_OUT:
		if (conn->rx_task)
			iscsi_task_data_received(conn->rx_task, (struct iscsi_data_out *)h, conn->rx_dsl);
		break;
	case ISCSI_OP_NOP_OUT:
		iscsi_nop_out(conn, conn->rx_dest, conn->rx_dsl);
		conn_release_pdu_buffer(conn);
		break;
	case ISCSI_OP_TEXT_REQ:
		iscsi_text_req(conn, conn->rx_dest, conn->rx_dsl);
		conn_release_pdu_buffer(conn);
		break;
	case ISCSI_OP_TMF_REQ:
		iscsi_tmf_req(conn);
		break;
	case ISCSI_OP_LOGOUT_REQ:
		iscsi_logout_req(conn);
		break;
	default:
		break;
	}
	conn->rx_task = NULL;
}

/* RFC 7143 7.8: digest errors, counted per connection, session and server. */
static void conn_digest_error(struct iscsi_conn *conn, bool header)
{
	struct iscsi_session *s = conn->sess;

	if (header) {
		conn->header_digest_errors++;
		conn->srv->header_digest_errors++;
		if (s)
			s->header_digest_errors++;
	} else {
		conn->data_digest_errors++;
		conn->srv->data_digest_errors++;
		if (s)
			s->data_digest_errors++;
	}
	log_warn("conn %u (%s): %s digest error on %s (session 0x%04x: %llu header, %llu data digest errors)",
		 conn->id, conn->peer, header ? "header" : "data", pdu_opcode_name(conn->rx_bhs.opcode),
		 s ? s->tsih : 0, s ? (unsigned long long)s->header_digest_errors : 0ull,
		 s ? (unsigned long long)s->data_digest_errors : 0ull);
}

static bool conn_rx_advance(struct iscsi_conn *conn)
{
	switch (conn->rx_state) {
	case RX_BHS: {
		uint32_t ahs = conn->rx_bhs.total_ahs_len * 4u;
		uint32_t dig = conn_rx_header_digest(conn) ? ISCSI_DIGEST_LEN : 0;

		if (!conn_bhs_check(conn))
			return false;

		if (ahs + dig) {
			conn->rx_state = RX_AHS;
			conn->rx_need = ahs + dig;
			conn->rx_have = 0;
			return true;
		}
		break;
	}
	case RX_AHS:
		if (conn_rx_header_digest(conn)) {
			uint32_t ahs = conn->rx_bhs.total_ahs_len * 4u;
			uint32_t crc = pdu_crc32c(&conn->rx_bhs, ISCSI_BHS_LEN, PDU_CRC32C_INIT);
			uint32_t got;

			crc = ~pdu_crc32c(conn->rx_ahs, ahs, crc);
			memcpy(&got, conn->rx_ahs + ahs, 4);
			/* RFC 7143 7.8: after a header digest error the length
			 * fields cannot be trusted; without a sync and steering
			 * layer the only choice left is to close the connection */
			if (le32toh(got) != crc) {
				conn_digest_error(conn, true);
				iscsi_conn_close(conn, "header digest error");
				return false;
			}
		}
		break;
	case RX_DATA:
		if (conn_rx_data_digest(conn) && conn->rx_dest) {
			uint32_t pad = pdu_pad(conn->rx_dsl);
			uint32_t crc = pdu_crc32c(conn->rx_dest, conn->rx_dsl, PDU_CRC32C_INIT);
			uint32_t got;

			crc = ~pdu_crc32c(conn->rx_tail_buf, pad, crc);
			memcpy(&got, conn->rx_tail_buf + pad, 4);
			/* RFC 7143 7.8: a payload digest error is answered with a
			 * Reject "Data (payload) digest error" and the PDU is
			 * discarded. Recovering the data (recovery R2T, 7.1.4.1)
			 * needs ErrorRecoveryLevel 1; at level 0 session recovery
			 * is the only class (7.1.5), and 7.8 lets the target
			 * escalate to it: the connection closes once the Reject
			 * is out (as Linux LIO does at ERL 0) */
			if (le32toh(got) != crc) {
				conn_digest_error(conn, false);
				iscsi_send_reject(conn, &conn->rx_bhs, ISCSI_REJECT_DATA_DIGEST);
				conn_close_after_send(conn, "data digest error");
				return false;
			}
		}
		conn_pdu_complete(conn);
		goto next_pdu;
	}
	/* header (and AHS) complete */
	if (!conn_header_step(conn))
		return false;
	if (conn->rx_dsl) {
		conn->rx_state = RX_DATA;
		conn->rx_tail = pdu_pad(conn->rx_dsl) +
				(conn_rx_data_digest(conn) ? ISCSI_DIGEST_LEN : 0);
		conn->rx_need = conn->rx_dsl + conn->rx_tail;
		conn->rx_have = 0;
		return true;
	}
	conn_pdu_complete(conn);
next_pdu:
	if (conn->state == CONN_CLOSED)
		return false;
	conn->rx_state = RX_BHS;
	conn->rx_need = ISCSI_BHS_LEN;
	conn->rx_have = 0;
	return true;
}

/* Where the next received byte goes, and how many may go there at once. */
static uint8_t *conn_rx_target(struct iscsi_conn *conn, uint32_t *room, bool *data)
{
	*data = false;
	switch (conn->rx_state) {
	case RX_BHS:
		*room = conn->rx_need - conn->rx_have;
		return (uint8_t *)&conn->rx_bhs + conn->rx_have;
	case RX_AHS:
		*room = conn->rx_need - conn->rx_have;
		return conn->rx_ahs + conn->rx_have;
	case RX_DATA:
		if (conn->rx_have < conn->rx_dsl) {
			*room = conn->rx_dsl - conn->rx_have;
			*data = true;
			return conn->rx_dest ? conn->rx_dest + conn->rx_have : NULL;
		}
		*room = conn->rx_need - conn->rx_have;
		return conn->rx_tail_buf + (conn->rx_have - conn->rx_dsl);
	}
	*room = 0;
	return NULL;
}

static bool conn_reading(const struct iscsi_conn *conn)
{
	/* after a Logout Response or a fatal Reject is queued nothing more is
	 * taken from the stream (RFC 7143 11.14), even PDUs already read */
	return conn->state == CONN_LOGIN || conn->state == CONN_FULL_FEATURE;
}

/* One read(2): the byte count, 0 to try again (EINTR), or -1 when nothing
 * more is there now or the connection was closed. */
static ssize_t conn_recv(struct iscsi_conn *conn, uint8_t *buf, size_t len)
{
	ssize_t r = read(conn->h.fd, buf, len);

	conn->stats.bytes_in += r > 0 ? (uint64_t)r : 0;
	if (r > 0)
		return r;
	if (r == 0) {
		iscsi_conn_close(conn, "peer closed the connection");
		return -1;
	}
	if (errno == EINTR)
		return 0;
	if (errno != EAGAIN && errno != EWOULDBLOCK)
		iscsi_conn_close(conn, strerror(errno));
	return -1;
}

/* The stage goes back to the pool once every byte in it is parsed: an
 * idle connection holds no read-ahead buffer. */
static void conn_stage_release(struct iscsi_conn *conn)
{
	if (!conn->stage || conn->stage_pos < conn->stage_len)
		return;
	bufpool_put(conn->srv->bp, conn->stage, ISCSI_RX_STAGE);
	conn->stage = NULL;
	conn->stage_pos = conn->stage_len = 0;
}

static void conn_read(struct iscsi_conn *conn)
{
	uint32_t budget = CONN_RX_BUDGET;

	while (conn_reading(conn) && budget) {
		uint32_t room;
		bool data;
		uint8_t *dst = conn_rx_target(conn, &room, &data);
		uint32_t avail = conn->stage_len - conn->stage_pos;

		if (avail) {
			uint32_t n = avail < room ? avail : room;

			/* --pdu-timeout runs from the first byte of a PDU */
			if (conn->rx_state == RX_BHS && conn->rx_have == 0)
				conn->rx_pdu_start_ms = ev_now_ms();
			if (dst)
				memcpy(dst, conn->stage + conn->stage_pos, n);
			conn->stage_pos += n;
			conn->rx_have += n;
		} else {
			/* a big data segment skips the stage: no copy */
			bool direct = data && dst && room >= CONN_DIRECT_READ_MIN;

			if (!direct && !conn->stage) {
				conn->stage = bufpool_get(conn->srv->bp, ISCSI_RX_STAGE);
				if (!conn->stage) {
					iscsi_conn_close(conn, "out of memory");
					return;
				}
			}
			ssize_t r = conn_recv(conn, direct ? dst : conn->stage,
					      direct ? room : ISCSI_RX_STAGE);

			if (r < 0)
				break;
			if (r == 0)
				continue;
			budget = (uint32_t)r >= budget ? 0 : budget - (uint32_t)r;
			if (!direct) {
				conn->stage_pos = 0;
				conn->stage_len = (uint32_t)r;
				continue;
			}
			conn->rx_have += (uint32_t)r;
		}
		if (conn->rx_have == conn->rx_need && !conn_rx_advance(conn))
			break;
	}
	conn_stage_release(conn);
	/* bytes left in the stage are consumed on the next event; make sure
	 * one comes even if the socket has nothing more */
	if (conn_reading(conn) && conn->stage_pos < conn->stage_len && !conn->resume_pending) {
		conn->resume_pending = true;
		conn->refs++;
		ev_defer(conn->srv->loop, conn_resume, conn);
	}
}

static void conn_resume(void *arg)
{
	struct iscsi_conn *conn = arg;

	conn->resume_pending = false;
	if (conn_reading(conn))
		conn_read(conn);
	iscsi_conn_put(conn);
}

static void conn_on_event(struct ev_handler *h, uint32_t events)
{
	struct iscsi_conn *conn = h->arg;

	if (events & (EPOLLERR | EPOLLHUP)) {
		if (!(events & EPOLLIN)) {
			iscsi_conn_close(conn, "socket error");
			return;
		}
	}
	if ((events & EPOLLOUT) && conn->state != CONN_CLOSED)
		conn_write(conn);
	/* after a logout response nothing more is read (RFC 7143 11.14);
	 * stop watching for input so unread bytes do not wake us forever */
	if ((events & EPOLLIN) && conn->state != CONN_CLOSED) {
		if (conn_reading(conn))
			conn_read(conn);
		else if (!conn->input_off) {
			conn->input_off = true;
			ev_mod(conn->srv->loop, &conn->h, conn->want_write ? EPOLLOUT : 0);
		}
	}
}

/* A PDU is partly received: its BHS begun, or its AHS or data not complete. */
static bool conn_rx_mid_pdu(const struct iscsi_conn *conn)
{
	return conn->rx_state != RX_BHS || conn->rx_have > 0;
}

/*
 * glibc keeps freed small chunks in its heap, so what idle trims free
 * would still count as resident: once enough is freed, and at most once
 * a second, malloc_trim hands the free pages back.
 */
static void conn_heap_trim(struct iscsi_server *srv, uint64_t now)
{
	if (srv->trimmed_bytes < ISCSI_TRIM_RELEASE_MIN || now - srv->heap_trimmed_ms < 1000)
		return;
	malloc_trim(0);
	srv->trimmed_bytes = 0;
	srv->heap_trimmed_ms = now;
}

/* ISCSI_IDLE_TRIM_MS: a session with no command in flight for that long
 * gives back the task and PDU structs a deep queue left cached. */
static void conn_idle_trim(struct iscsi_conn *conn, uint64_t now)
{
	struct iscsi_session *s = conn->sess;
	struct list_node *n, *tmp;
	unsigned seen = 0;

	conn_heap_trim(conn->srv, now);
	if (conn->trimmed || !s || s->ntasks || !list_empty(&conn->txq) ||
	    now - conn->last_cmd_ms < ISCSI_IDLE_TRIM_MS)
		return;
	conn->trimmed = true;
	conn->srv->trimmed_bytes += iscsi_session_trim(s, ISCSI_IDLE_TASKS_KEEP);
	list_for_each_safe(n, tmp, &conn->tx_free) {
		if (++seen <= ISCSI_IDLE_TX_KEEP)
			continue;
		list_del(n);
		free(list_entry(n, struct iscsi_tx, node));
		conn->srv->trimmed_bytes += sizeof(struct iscsi_tx);
	}
}

void iscsi_conn_tick(struct iscsi_conn *conn, uint64_t now)
{
	const struct iscsi_config *cfg = &conn->srv->cfg;
	uint64_t pdu_ms = cfg->pdu_timeout_s * 1000ull;

	/* --pdu-timeout: PDUs wait to be sent and not a byte went out: the
	 * peer reads nothing (its TCP window stays shut) */
	if (pdu_ms && !list_empty(&conn->txq) && now > conn->tx_progress_ms + pdu_ms) {
		iscsi_conn_close(conn, "the peer read nothing we sent within --pdu-timeout");
		return;
	}
	if (conn->state == CONN_LOGIN) {
		if (now - conn->created_ms > cfg->login_timeout_s * 1000ull)
			iscsi_conn_close(conn, "login timed out");
		return;
	}
	/* --pdu-timeout: a PDU begun and not finished (a slow or stalled
	 * sender); the login phase has --login-timeout as a whole instead */
	if (pdu_ms && conn->state == CONN_FULL_FEATURE && conn_rx_mid_pdu(conn) &&
	    now > conn->rx_pdu_start_ms + pdu_ms) {
		log_warn("conn %u (%s): %s begun %llu s ago, %u of %u bytes in this part",
			 conn->id, conn->peer, conn->rx_state == RX_BHS ? "a BHS" :
			 pdu_opcode_name(conn->rx_bhs.opcode),
			 (unsigned long long)((now - conn->rx_pdu_start_ms) / 1000), conn->rx_have,
			 conn->rx_need);
		iscsi_conn_close(conn, "a PDU was not completed within --pdu-timeout");
		return;
	}
	if (conn->state == CONN_FULL_FEATURE)
		conn_idle_trim(conn, now);
	if (conn->state != CONN_FULL_FEATURE || !cfg->nop_interval_s)
		return;
	if (conn->nop_ttt != ISCSI_RESERVED_TAG) {
		if (now - conn->nop_sent_ms > cfg->nop_timeout_s * 1000ull)
			iscsi_conn_close(conn, "NOP-In ping not answered");
		return;
	}
	if (now - conn->last_rx_ms < cfg->nop_interval_s * 1000ull)
		return;
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	if (!tx)
		return;
	struct iscsi_nop *n = (struct iscsi_nop *)tx->hdr;

	/* RFC 7143 11.19: a target ping carries a TTT and ITT 0xffffffff;
	 * StatSN is not advanced */
	n->opcode = ISCSI_OP_NOP_IN;
	n->flags = ISCSI_FLAG_FINAL;
	n->itt = ISCSI_RESERVED_TAG;
	conn->nop_ttt = conn->next_ttt++;
	if (conn->next_ttt == ISCSI_RESERVED_TAG)
		conn->next_ttt = 1;
	n->ttt = pdu_put32(conn->nop_ttt);
	iscsi_fill_sn(conn, n, false);
	conn->nop_sent_ms = now;
	iscsi_tx_queue(conn, tx);
}
