/*
 * Sessions: TSIH and ITNexusHandle allocation, the CmdSN window (RFC 7143
 * 4.2.2.1) with in-order delivery, SESSION_START/END to providers, NOP,
 * Text (SendTargets) and Logout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "iscsi/iscsi.h"
#include "util/log.h"

static uint64_t session_random64(void)
{
	uint64_t v = 0;

	while (getrandom(&v, sizeof(v), 0) != sizeof(v))
		;
	return v;
}

static bool session_handle_in_use(struct iscsi_server *srv, uint64_t h)
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &srv->sessions)
		if (list_entry(n, struct iscsi_session, srv_node)->handle == h)
			return true;
	return false;
}

static bool session_tsih_in_use(struct iscsi_server *srv, uint16_t tsih)
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &srv->sessions)
		if (list_entry(n, struct iscsi_session, srv_node)->tsih == tsih)
			return true;
	return false;
}

struct iscsi_session *iscsi_session_new(struct iscsi_server *srv, struct iscsi_target *t,
					const struct iscsi_session_params *sp, const uint8_t isid[6])
{
	struct iscsi_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->srv = srv;
	s->target = t;
	/* login.c sets the group of the portal the login came through */
	s->tpgt = t ? t->tpgt : 0;
	s->params = *sp;
	s->queue_depth = iscsi_cfg_queue_depth(&srv->cfg);
	s->buf_budget = (uint64_t)srv->cfg.max_session_buffer_mib << 20;
	/* one command of the largest size always fits, whatever the setting */
	if (s->buf_budget < ISCSI_MAX_TASK_BUF)
		s->buf_budget = ISCSI_MAX_TASK_BUF;
	memcpy(s->isid, isid, 6);
	/* RFC 7143 11.12.6: TSIH is non-zero and unique among live sessions */
	do {
		s->tsih = ++srv->next_tsih;
	} while (s->tsih == 0 || session_tsih_in_use(srv, s->tsih));
	/* opaque, unguessable, never reused while referenced */
	do {
		s->handle = session_random64();
	} while (s->handle == 0 || session_handle_in_use(srv, s->handle));
	s->next_task_cookie = session_random64();
	list_init(&s->tasks);
	list_init(&s->order);
	list_init(&s->conns);
	list_init(&s->task_free);
	list_add_tail(&srv->sessions, &s->srv_node);
	srv->nsessions++;
	return s;
}

static void session_itnexus(const struct iscsi_session *s, char *out, size_t len)
{
	snprintf(out, len, "%s,i,0x%02x%02x%02x%02x%02x%02x,%s,t,0x%04x", s->params.initiator_name,
		 s->isid[0], s->isid[1], s->isid[2], s->isid[3], s->isid[4], s->isid[5],
		 s->target ? s->target->name : "", s->target ? s->tpgt : 0);
}

void iscsi_session_attach(struct iscsi_session *s, struct iscsi_conn *conn)
{
	list_add_tail(&s->conns, &conn->sess_node);
	s->nconns++;
	s->refs++;
	conn->sess = s;
	conn->state = CONN_FULL_FEATURE;
	conn->last_rx_ms = ev_now_ms();
	if (s->started || !s->target)
		return;
	struct spt_session_start *ss = &s->start;

	memset(ss, 0, sizeof(*ss));
	ss->is_reinstated = s->reinstated;
	ss->itnexus_handle = s->handle;
	snprintf(ss->peer_address, sizeof(ss->peer_address), "%s", conn->peer);
	session_itnexus(s, ss->itnexus, sizeof(ss->itnexus));
	snprintf(ss->chap_user_name, sizeof(ss->chap_user_name), "%s", s->chap_user);
	s->started = true;
	s->luns_gen_seen = s->target->luns_gen;
	spt_dispatch_session_start(&s->target->luns, ss);
}

static void session_free(struct iscsi_session *s)
{
	struct list_node *n, *tmp;

	if (s->started)
		spt_dispatch_session_end(&s->target->luns, s->handle);
	log_info("session 0x%04x of %s ended", s->tsih, s->params.initiator_name);
	list_for_each_safe(n, tmp, &s->task_free) {
		list_del(n);
		free(list_entry(n, struct iscsi_task, sess_node));
	}
	list_del(&s->srv_node);
	s->srv->nsessions--;
	free(s);
}

void iscsi_session_put(struct iscsi_session *s)
{
	if (--s->refs == 0)
		session_free(s);
}

void iscsi_session_detach(struct iscsi_conn *conn)
{
	struct iscsi_session *s = conn->sess;

	list_del(&conn->sess_node);
	s->nconns--;
	conn->sess = NULL;
	/* ErrorRecoveryLevel 0: the session ends with its last connection */
	if (s->nconns == 0)
		s->ending = true;
	iscsi_session_put(s);
}

void iscsi_session_stop(struct iscsi_session *s, const char *why)
{
	struct list_node *n, *tmp;

	s->ending = true;
	s->refs++;
	list_for_each_safe(n, tmp, &s->conns)
		iscsi_conn_close(list_entry(n, struct iscsi_conn, sess_node), why);
	iscsi_session_put(s);
}

/*
 * --max-pending-commands: the window is queue_depth commands less those
 * still held (not yet answered), so an initiator that keeps to it never
 * has more than queue_depth commands here. A task is no longer held once
 * its answer is built, so the answer itself carries the freed slot: no
 * window update is left waiting for a PDU that never comes.
 */
void iscsi_session_update_window(struct iscsi_session *s)
{
	uint32_t held = s->nactive > 0 ? (uint32_t)s->nactive : 0;

	if (held > s->queue_depth)
		held = s->queue_depth;
	/* RFC 7143 4.2.2.1: MaxCmdSN = ExpCmdSN - 1 closes the window; MaxCmdSN
	 * never goes back */
	uint32_t max = s->exp_cmdsn + s->queue_depth - 1 - held;

	if (sn_lt(s->max_cmdsn, max))
		s->max_cmdsn = max;
}

bool iscsi_session_buffer_take(struct iscsi_session *s, size_t len)
{
	/* --max-session-buffer-mib */
	if (len > s->buf_budget || s->buf_bytes > s->buf_budget - len)
		return false;
	s->buf_bytes += len;
	return true;
}

void iscsi_session_buffer_release(struct iscsi_session *s, size_t len)
{
	s->buf_bytes -= len < s->buf_bytes ? len : s->buf_bytes;
}

size_t iscsi_session_trim(struct iscsi_session *s, unsigned keep)
{
	struct list_node *n, *tmp;
	unsigned seen = 0;
	size_t freed = 0;

	/* a session that ran a deep queue keeps a task struct per slot it
	 * used; idle, it needs only what QD 1 traffic reuses */
	list_for_each_safe(n, tmp, &s->task_free) {
		if (++seen <= keep)
			continue;
		list_del(n);
		free(list_entry(n, struct iscsi_task, sess_node));
		freed += sizeof(struct iscsi_task);
	}
	return freed;
}

size_t iscsi_session_count(struct iscsi_server *srv, const struct iscsi_target *t)
{
	struct list_node *n;
	size_t count = 0;

	list_for_each(n, &srv->sessions) {
		const struct iscsi_session *s = list_entry(n, struct iscsi_session, srv_node);

		if (!s->ending && (!t || s->target == t))
			count++;
	}
	return count;
}

/*
 * RFC 7143 4.2.2.1: a non-immediate command outside [ExpCmdSN, MaxCmdSN]
 * is silently ignored (with the window closed, ExpCmdSN itself is
 * outside); one ahead of ExpCmdSN waits for the gap to fill.
 * Returns 1 to run now (ExpCmdSN advanced), 0 to wait, -1 to drop.
 */
int iscsi_cmdsn_check(struct iscsi_session *s, uint32_t cmdsn, bool immediate)
{
	if (immediate)
		return 1;
	if (sn_lt(cmdsn, s->exp_cmdsn) || sn_lt(s->max_cmdsn, cmdsn))
		return -1;
	if (cmdsn == s->exp_cmdsn) {
		s->exp_cmdsn++;
		return 1;
	}
	return 0;
}

#define SN_BIT(cmdsn) ((cmdsn) % ISCSI_SN_BITMAP)

/* After ExpCmdSN moved: run the commands that were waiting for it, and
 * step over CmdSNs already received without a task (NOP, Text, an aborted
 * command that never came). */
void iscsi_session_advance(struct iscsi_session *s)
{
	bool progress = true;

	while (progress) {
		struct list_node *n, *tmp;
		uint32_t bit = SN_BIT(s->exp_cmdsn);

		progress = false;
		if (s->sn_received[bit / 64] & (1ull << (bit % 64))) {
			s->sn_received[bit / 64] &= ~(1ull << (bit % 64));
			s->exp_cmdsn++;
			progress = true;
			continue;
		}
		list_for_each_safe(n, tmp, &s->order) {
			struct iscsi_task *t = list_entry(n, struct iscsi_task, order_node);

			if (t->cmdsn == s->exp_cmdsn) {
				list_del(&t->order_node);
				s->exp_cmdsn++;
				progress = true;
				iscsi_task_run_ordered(t);
				break;
			}
		}
	}
}

/*
 * A non-immediate PDU without a task of its own used this CmdSN (RFC 7143
 * 4.2.2.1: NOP-Out, Text, Logout, TMF carry one), or RFC 7143 11.5.1 says
 * to consider it received. Answered at once; the window steps over it.
 */
void iscsi_cmdsn_received(struct iscsi_session *s, uint32_t cmdsn)
{
	if (cmdsn == s->exp_cmdsn) {
		s->exp_cmdsn++;
		iscsi_session_advance(s);
	} else if (sn_lt(s->exp_cmdsn, cmdsn) && sn_le(cmdsn, s->max_cmdsn)) {
		uint32_t bit = SN_BIT(cmdsn);

		s->sn_received[bit / 64] |= 1ull << (bit % 64);
	}
}

static void session_consume_cmdsn(struct iscsi_conn *conn, uint32_t cmdsn, bool immediate)
{
	if (conn->sess && !immediate)
		iscsi_cmdsn_received(conn->sess, cmdsn);
}

void iscsi_nop_out(struct iscsi_conn *conn, uint8_t *data, uint32_t len)
{
	const struct iscsi_nop *req = (const struct iscsi_nop *)&conn->rx_bhs;
	uint32_t itt = pdu_get32(req->itt);
	uint32_t ttt = pdu_get32(req->ttt);

	if (ttt != ISCSI_RESERVED_TAG) {
		/* RFC 7143 11.18: the answer to our ping; no response */
		if (ttt == conn->nop_ttt)
			conn->nop_ttt = ISCSI_RESERVED_TAG;
		return;
	}
	session_consume_cmdsn(conn, pdu_get32(req->sn1), pdu_immediate(&conn->rx_bhs));
	if (itt == ISCSI_RESERVED_TAG)
		return;		/* RFC 7143 11.18.3: no response wanted */
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	if (!tx)
		return;
	struct iscsi_nop *rsp = (struct iscsi_nop *)tx->hdr;

	rsp->opcode = ISCSI_OP_NOP_IN;
	rsp->flags = ISCSI_FLAG_FINAL;
	memcpy(rsp->lun, req->lun, 8);
	rsp->itt = req->itt;
	rsp->ttt = ISCSI_RESERVED_TAG;
	iscsi_fill_sn(conn, rsp, true);
	/* RFC 7143 11.19.4: the ping data is echoed */
	if (len) {
		tx->owned = bufpool_get(conn->srv->bp, len);
		if (tx->owned) {
			tx->owned_len = len;
			memcpy(tx->owned, data, len);
			tx->data = tx->owned;
			tx->data_len = len;
		}
	}
	iscsi_tx_queue(conn, tx);
}

static void text_send_chunk(struct iscsi_conn *conn, const struct iscsi_text *req)
{
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	if (!tx)
		return;
	struct iscsi_text *rsp = (struct iscsi_text *)tx->hdr;
	size_t left = conn->text_rsp_len - conn->text_rsp_off;
	size_t chunk = left < conn->params.max_send_dsl ? left : conn->params.max_send_dsl;

	rsp->opcode = ISCSI_OP_TEXT_RSP;
	memcpy(rsp->lun, req->lun, 8);
	rsp->itt = req->itt;
	if (chunk < left) {
		/* RFC 7143 11.11.2: C bit and a TTT: the initiator asks for the rest */
		rsp->flags = ISCSI_FLAG_CONTINUE;
		conn->text_ttt = conn->next_ttt++;
		if (conn->next_ttt == ISCSI_RESERVED_TAG)
			conn->next_ttt = 1;
		rsp->ttt = pdu_put32(conn->text_ttt);
	} else {
		rsp->flags = ISCSI_FLAG_FINAL;
		rsp->ttt = ISCSI_RESERVED_TAG;
	}
	iscsi_fill_sn(conn, rsp, true);
	if (chunk) {
		tx->owned = bufpool_get(conn->srv->bp, chunk);
		if (!tx->owned) {
			iscsi_conn_close(conn, "out of memory");
			return;
		}
		tx->owned_len = chunk;
		memcpy(tx->owned, conn->text_rsp + conn->text_rsp_off, chunk);
		tx->data = tx->owned;
		tx->data_len = (uint32_t)chunk;
	}
	conn->text_rsp_off += chunk;
	if (conn->text_rsp_off == conn->text_rsp_len) {
		free(conn->text_rsp);
		conn->text_rsp = NULL;
		conn->text_rsp_len = conn->text_rsp_off = 0;
		conn->text_ttt = ISCSI_RESERVED_TAG;
	}
	iscsi_tx_queue(conn, tx);
}

void iscsi_text_req(struct iscsi_conn *conn, uint8_t *data, uint32_t len)
{
	const struct iscsi_text *req = (const struct iscsi_text *)&conn->rx_bhs;
	uint32_t ttt = pdu_get32(req->ttt);
	struct iscsi_kv *kv = NULL;
	char *outbuf = NULL;
	struct iscsi_text_out out;

	session_consume_cmdsn(conn, pdu_get32(req->sn1), pdu_immediate(&conn->rx_bhs));
	if (ttt != ISCSI_RESERVED_TAG) {
		/* continuation of a long response */
		if (!conn->text_rsp || ttt != conn->text_ttt) {
			iscsi_send_reject(conn, &conn->rx_bhs, ISCSI_REJECT_INVALID_PDU_FIELD);
			return;
		}
		text_send_chunk(conn, req);
		return;
	}
	/* a new request drops any unfinished one (RFC 7143 11.10.4) */
	free(conn->text_rsp);
	conn->text_rsp = NULL;
	conn->text_rsp_len = conn->text_rsp_off = 0;
	if (req->flags & ISCSI_FLAG_CONTINUE) {
		/* multi-PDU text requests are not needed by any key we serve */
		iscsi_send_reject(conn, &conn->rx_bhs, ISCSI_REJECT_CMD_NOT_SUPPORTED);
		return;
	}
	kv = calloc(ISCSI_TEXT_MAX_KEYS, sizeof(*kv));
	outbuf = malloc(ISCSI_SENDTARGETS_MAX);
	if (!kv || !outbuf)
		goto out;
	out = (struct iscsi_text_out){ .buf = outbuf, .cap = ISCSI_SENDTARGETS_MAX };
	int n = len ? iscsi_text_parse((char *)data, len, kv, ISCSI_TEXT_MAX_KEYS) : 0;

	if (n < 0) {
		iscsi_send_reject(conn, &conn->rx_bhs, ISCSI_REJECT_PROTOCOL_ERROR);
		goto out;
	}
	struct iscsi_kv other[ISCSI_TEXT_MAX_KEYS];
	int nother = 0;

	for (int i = 0; i < n; i++) {
		if (strcmp(kv[i].key, "SendTargets") == 0)
			iscsi_sendtargets(conn, kv[i].value, &out);
		else
			other[nother++] = kv[i];
	}
	if (nother) {
		struct iscsi_negotiation neg;
		struct iscsi_session_params sp = conn->sess->params;

		iscsi_negotiation_init(&neg, &conn->srv->limits, &sp, &conn->params, true);
		neg.stage = ISCSI_STAGE_FULL_FEATURE;
		iscsi_negotiate_text(&neg, other, nother, &out);
	}
	if (out.overflow)
		log_warn("conn %u: text response truncated", conn->id);
	conn->text_rsp = malloc(out.len ? out.len : 1);
	if (!conn->text_rsp)
		goto out;
	memcpy(conn->text_rsp, out.buf, out.len);
	conn->text_rsp_len = out.len;
	conn->text_rsp_off = 0;
	text_send_chunk(conn, req);
out:
	free(kv);
	free(outbuf);
}

void iscsi_logout_req(struct iscsi_conn *conn)
{
	const struct iscsi_logout_req *req = (const struct iscsi_logout_req *)&conn->rx_bhs;
	uint8_t reason = req->reason & 0x7f;
	uint8_t response = 0;
	struct iscsi_session *s = conn->sess;

	session_consume_cmdsn(conn, pdu_get32(req->cmdsn), pdu_immediate(&conn->rx_bhs));
	switch (reason) {
	case 0:	/* close the session */
	case 1:	/* close the connection */
		if (reason == 1 && pdu_get16(req->cid) != conn->cid) {
			struct list_node *n, *tmp;
			bool found = false;

			list_for_each_safe(n, tmp, &s->conns) {
				struct iscsi_conn *c = list_entry(n, struct iscsi_conn, sess_node);

				if (c->cid == pdu_get16(req->cid)) {
					found = true;
					iscsi_conn_close(c, "logged out by another connection");
				}
			}
			response = found ? 0 : 1;	/* 1: CID not found */
		}
		break;
	case 2:	/* remove the connection for recovery: ERL 2 only */
		response = 2;	/* connection recovery is not supported */
		break;
	default:
		iscsi_send_reject(conn, &conn->rx_bhs, ISCSI_REJECT_INVALID_PDU_FIELD);
		return;
	}
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	if (!tx)
		return;
	struct iscsi_logout_rsp *rsp = (struct iscsi_logout_rsp *)tx->hdr;

	rsp->opcode = ISCSI_OP_LOGOUT_RSP;
	rsp->flags = ISCSI_FLAG_FINAL;
	rsp->response = response;
	rsp->itt = req->itt;
	iscsi_fill_sn(conn, rsp, true);
	rsp->time2wait = 0;
	rsp->time2retain = 0;
	log_info("conn %u (%s): logout (reason %u) from %s", conn->id, conn->peer, reason,
		 s->params.initiator_name);
	if (response == 0 && (reason == 0 || pdu_get16(req->cid) == conn->cid)) {
		if (reason == 0) {
			/* the other connections of the session go too */
			struct list_node *n, *tmp;

			list_for_each_safe(n, tmp, &s->conns) {
				struct iscsi_conn *c = list_entry(n, struct iscsi_conn, sess_node);

				if (c != conn)
					iscsi_conn_close(c, "session logged out");
			}
		}
		conn->state = CONN_LOGGED_OUT;
	}
	iscsi_tx_queue(conn, tx);
}
