/*
 * The login phase (RFC 7143 6.3 and 11.12/11.13): stages, transitions,
 * the text of one request gathered over C bits, the checks of the first
 * request (initiator name, target, ACL), authentication (CHAP, chap.c),
 * and the session it ends in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iscsi/iscsi.h"
#include "util/log.h"

#define LOGIN_RSP_TEXT_MAX ISCSI_LOGIN_DSL_MAX

/* --max-login-text, within the buffer the login code keeps */
static size_t login_text_limit(const struct iscsi_conn *conn)
{
	uint32_t max = conn->srv->cfg.max_login_text;

	return max < ISCSI_LOGIN_TEXT_MAX ? max : ISCSI_LOGIN_TEXT_MAX;
}

/* --max-login-keys, within the pairs the parser is given room for */
static int login_keys_limit(const struct iscsi_conn *conn)
{
	uint32_t max = conn->srv->cfg.max_login_keys;

	return max < ISCSI_TEXT_MAX_KEYS ? (int)max : ISCSI_TEXT_MAX_KEYS;
}

static struct iscsi_tx *login_rsp_new(struct iscsi_conn *conn, uint8_t flags, uint16_t status,
				      uint16_t tsih)
{
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	if (!tx)
		return NULL;
	struct iscsi_login_rsp *r = (struct iscsi_login_rsp *)tx->hdr;

	r->opcode = ISCSI_OP_LOGIN_RSP;
	r->flags = flags;
	r->version_max = 0;
	r->version_active = 0;
	memcpy(r->isid, conn->login_isid, 6);
	r->tsih = pdu_put16(tsih);
	r->itt = pdu_put32(conn->login_itt);
	r->status_class = (uint8_t)(status >> 8);
	r->status_detail = (uint8_t)status;
	iscsi_fill_sn(conn, r, true);
	return tx;
}

/*
 * A failing login response; `text` (may be NULL or empty) carries the
 * answer that explains it, e.g. AuthMethod=Reject or CHAP_A=Reject.
 */
static void login_fail_text(struct iscsi_conn *conn, uint16_t status, const char *why,
			    const char *text, size_t text_len)
{
	struct iscsi_tx *tx = login_rsp_new(conn, 0, status, 0);

	log_warn("conn %u (%s): login of %s failed with status 0x%04x: %s", conn->id, conn->peer,
		 conn->login_sp.initiator_name[0] ? conn->login_sp.initiator_name : "(unnamed)",
		 status, why);
	if (tx && text && text_len) {
		tx->owned = bufpool_get(conn->srv->bp, text_len);
		if (tx->owned) {
			tx->owned_len = text_len;
			memcpy(tx->owned, text, text_len);
			tx->data = tx->owned;
			tx->data_len = (uint32_t)text_len;
		}
	}
	if (tx)
		iscsi_tx_queue(conn, tx);
	/* RFC 7143 11.13.5: after a failing status the target closes the connection */
	conn->state = CONN_LOGGED_OUT;
	if (!tx)
		iscsi_conn_close(conn, "login failed");
}

static void login_fail(struct iscsi_conn *conn, uint16_t status, const char *why)
{
	login_fail_text(conn, status, why, NULL, 0);
}

static void login_send_text(struct iscsi_conn *conn, uint8_t flags, uint16_t tsih,
			    const struct iscsi_text_out *out)
{
	struct iscsi_tx *tx = login_rsp_new(conn, flags, 0, tsih);

	if (!tx) {
		iscsi_conn_close(conn, "out of memory");
		return;
	}
	if (out && out->len) {
		tx->owned = bufpool_get(conn->srv->bp, out->len);
		if (!tx->owned) {
			iscsi_conn_close(conn, "out of memory");
			return;
		}
		tx->owned_len = out->len;
		memcpy(tx->owned, out->buf, out->len);
		tx->data = tx->owned;
		tx->data_len = (uint32_t)out->len;
	}
	iscsi_tx_queue(conn, tx);
}

/* The session of one I_T nexus: initiator port (name, ISID) and target
 * port (target name, portal group). */
static struct iscsi_session *login_find_session(struct iscsi_server *srv, const char *initiator,
						const uint8_t isid[6], const struct iscsi_target *t,
						uint16_t tpgt)
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &srv->sessions) {
		struct iscsi_session *s = list_entry(n, struct iscsi_session, srv_node);

		if (!s->ending && s->target == t && s->tpgt == tpgt && memcmp(s->isid, isid, 6) == 0 &&
		    strcmp(s->params.initiator_name, initiator) == 0)
			return s;
	}
	return NULL;
}

static struct iscsi_session *login_find_tsih(struct iscsi_server *srv, uint16_t tsih)
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &srv->sessions) {
		struct iscsi_session *s = list_entry(n, struct iscsi_session, srv_node);

		if (!s->ending && s->tsih == tsih)
			return s;
	}
	return NULL;
}

/* The CHAP name this connection proved, or "" without CHAP. */
static const char *login_chap_user(const struct iscsi_conn *conn)
{
	return conn->chap.state == CHAP_STATE_DONE ? conn->chap.user : "";
}

/* The last login response: bind the connection to a session. 0 or a login status. */
static uint16_t login_join_session(struct iscsi_conn *conn)
{
	struct iscsi_server *srv = conn->srv;
	struct iscsi_session *s;

	if (conn->login_tsih == 0) {
		bool reinstated = false;

		if (conn->login_target) {
			/* RFC 7143 6.3.5: a new session with the I_T nexus of an
			 * existing one (same initiator name and ISID, same target
			 * portal group) replaces it; through another group it is
			 * another I_T nexus (a second path) and both stay */
			s = login_find_session(srv, conn->login_sp.initiator_name, conn->login_isid,
					       conn->login_target, conn->login_tpgt);
			if (s) {
				log_info("session 0x%04x of %s reinstated", s->tsih,
					 s->params.initiator_name);
				iscsi_session_stop(s, "reinstated by a new login");
				reinstated = true;
			}
		}
		/* RFC 7143 11.13.5: 0302, the target lacks session resources:
		 * --max-sessions counts every live session (discovery too),
		 * --max-sessions-per-target those of this target */
		if (iscsi_session_count(srv, NULL) >= srv->cfg.max_sessions ||
		    (conn->login_target &&
		     iscsi_session_count(srv, conn->login_target) >= srv->cfg.max_sessions_per_target)) {
			log_warn("conn %u (%s): no session for %s: --max-sessions %u or "
				 "--max-sessions-per-target %u reached", conn->id, conn->peer,
				 conn->login_sp.initiator_name, srv->cfg.max_sessions,
				 srv->cfg.max_sessions_per_target);
			return ISCSI_LOGIN_OUT_OF_RESOURCES;
		}
		s = iscsi_session_new(srv, conn->login_target, &conn->login_sp, conn->login_isid);
		if (!s)
			return ISCSI_LOGIN_OUT_OF_RESOURCES;
		/* SESSION_START carries the CHAP name the initiator proved (empty without CHAP) */
		snprintf(s->chap_user, sizeof(s->chap_user), "%s", login_chap_user(conn));
		s->exp_cmdsn = conn->login_cmdsn;
		s->max_cmdsn = conn->login_cmdsn + s->queue_depth - 1;
		s->reinstated = reinstated;
		s->tpgt = conn->login_tpgt;
	} else {
		s = login_find_tsih(srv, conn->login_tsih);
		/* RFC 7143 4.4.1, 11.12.6: a TSIH names the session of one I_T
		 * nexus: this initiator name and ISID, to this target */
		if (!s || s->target != conn->login_target || memcmp(s->isid, conn->login_isid, 6) != 0 ||
		    strcmp(s->params.initiator_name, conn->login_sp.initiator_name) != 0)
			return ISCSI_LOGIN_SESSION_DOES_NOT_EXIST;
		/* RFC 7143 4.4.1: the connections of a session are all in one
		 * target portal group; in another group the session does not exist */
		if (s->target && s->tpgt != conn->login_tpgt)
			return ISCSI_LOGIN_SESSION_DOES_NOT_EXIST;
		/* a connection joins a session only as the CHAP user the session was opened as */
		if (strcmp(s->chap_user, login_chap_user(conn)) != 0)
			return ISCSI_LOGIN_AUTH_FAILED;
		struct list_node *n, *tmp;
		struct iscsi_conn *old = NULL;

		list_for_each_safe(n, tmp, &s->conns) {
			struct iscsi_conn *c = list_entry(n, struct iscsi_conn, sess_node);

			if (c->cid == conn->cid)
				old = c;
		}
		if (old) {
			/* RFC 7143 6.3.4: connection reinstatement replaces the old
			 * connection; below ErrorRecoveryLevel 2 its tasks are
			 * terminated and the session goes on. The new connection
			 * joins first so the session never drops to none. */
			iscsi_session_attach(s, conn);
			iscsi_conn_close(old, "reinstated by a new login");
			return ISCSI_LOGIN_OK;
		} else if ((uint32_t)s->nconns >= s->params.max_connections) {
			return ISCSI_LOGIN_TOO_MANY_CONNECTIONS;
		}
	}
	iscsi_session_attach(s, conn);
	return ISCSI_LOGIN_OK;
}

/* Checks of the first complete request: who logs in, to what. */
static uint16_t login_first_request(struct iscsi_conn *conn, struct iscsi_text_out *out)
{
	struct iscsi_session_params *sp = &conn->login_sp;

	/* RFC 7143 13.5.1: InitiatorName MUST be sent in the first request */
	if (!sp->initiator_name[0])
		return ISCSI_LOGIN_MISSING_PARAMETER;
	/* the portal group is that of the portal the connection came in on */
	conn->login_tpgt = iscsi_portal_tpgt(conn->srv, &conn->local);
	if (sp->session_type == ISCSI_SESSION_DISCOVERY)
		return ISCSI_LOGIN_OK;
	/* RFC 7143 13.4: TargetName is required for a normal session */
	if (!sp->target_name[0])
		return ISCSI_LOGIN_MISSING_PARAMETER;
	conn->login_target = iscsi_target_find(conn->srv, sp->target_name);
	if (!conn->login_target)
		return ISCSI_LOGIN_NOT_FOUND;
	/* RFC 7143 11.13.5: 0202, the initiator is not allowed access to the target */
	if (!iscsi_target_allows(conn->login_target, sp->initiator_name))
		return ISCSI_LOGIN_FORBIDDEN;
	if (conn->srv->shutting_down)
		return ISCSI_LOGIN_SERVICE_UNAVAILABLE;
	/* RFC 7143 13.9: the target returns its TargetPortalGroupTag in the
	 * first login response of a normal session */
	char tag[8];

	snprintf(tag, sizeof(tag), "%u", conn->login_tpgt);
	iscsi_text_append(out, "TargetPortalGroupTag", tag);
	return ISCSI_LOGIN_OK;
}

static const char *login_first_failure(uint16_t status)
{
	switch (status) {
	case ISCSI_LOGIN_NOT_FOUND:
		return "unknown target";
	case ISCSI_LOGIN_FORBIDDEN:
		return "initiator not in the target's ACL (--allow)";
	case ISCSI_LOGIN_SERVICE_UNAVAILABLE:
		return "target shutting down";
	default:
		return "missing InitiatorName or TargetName";
	}
}

static bool login_has_chap_keys(const struct iscsi_kv *kv, int n)
{
	for (int i = 0; i < n; i++)
		if (chap_is_key(kv[i].key))
			return true;
	return false;
}

/*
 * Authentication of one request (RFC 7143 12.1.3): runs the CHAP exchange
 * once AuthMethod=CHAP is agreed, and keeps the login in the security
 * stage until it succeeds. Clears *transit while the exchange goes on.
 * Returns 0 or a login status with *why for the log.
 */
static uint16_t login_authenticate(struct iscsi_conn *conn, int csg, bool *transit,
				   const struct iscsi_kv *kv, int n, struct iscsi_text_out *out,
				   const char **why)
{
	const struct chap_config *cfg = &conn->srv->chap;
	bool discovery = conn->login_sp.session_type == ISCSI_SESSION_DISCOVERY;
	bool required = discovery ? conn->srv->limits.chap_discovery : conn->srv->limits.chap_normal;
	uint16_t status;

	*why = NULL;
	if (csg == ISCSI_STAGE_SECURITY && conn->neg.auth_chap) {
		status = (uint16_t)chap_target_step(&conn->chap, discovery ? &cfg->discovery : &cfg->initiator,
						    &cfg->target, kv, n, out, why);
		if (status)
			return status;
	} else if (login_has_chap_keys(kv, n)) {
		/* RFC 7143 12.1.3: CHAP keys belong to a security stage that agreed on AuthMethod=CHAP */
		*why = "CHAP keys without AuthMethod=CHAP in the security stage";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	if (!required || conn->chap.state == CHAP_STATE_DONE)
		return ISCSI_LOGIN_OK;
	/* RFC 7143 6.3: skipping the security stage means no authentication, which we require */
	if (csg != ISCSI_STAGE_SECURITY) {
		*why = "the initiator skipped authentication, which this target requires (CHAP)";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	if (*transit && !conn->neg.auth_chap) {
		*why = "the initiator leaves the security stage without negotiating AuthMethod";
		return ISCSI_LOGIN_AUTH_FAILED;
	}
	/* RFC 7143 6.2: the exchange needs more steps: the target answers with T=0 */
	*transit = false;
	return ISCSI_LOGIN_OK;
}

void iscsi_login_pdu(struct iscsi_conn *conn, uint8_t *data, uint32_t len)
{
	const struct iscsi_login_req *req = (const struct iscsi_login_req *)&conn->rx_bhs;
	bool transit = req->flags & ISCSI_LOGIN_TRANSIT;
	bool cont = req->flags & ISCSI_FLAG_CONTINUE;
	int csg = ISCSI_LOGIN_CSG(req->flags);
	int nsg = ISCSI_LOGIN_NSG(req->flags);
	struct iscsi_kv *kv = NULL;
	char outbuf[LOGIN_RSP_TEXT_MAX];
	struct iscsi_text_out out = { .buf = outbuf, .cap = sizeof(outbuf) };
	uint16_t status;

	/* a login that needs more requests than any real one is not served;
	 * it would only keep this connection busy until --login-timeout */
	if (++conn->login_pdus > ISCSI_LOGIN_PDUS_MAX) {
		login_fail(conn, ISCSI_LOGIN_INITIATOR_ERROR, "more Login Requests than one login takes");
		return;
	}
	if (!conn->login_started) {
		conn->login_started = true;
		/* --max-recv-data-segment-length is what we declare (RFC 7143 13.12) */
		conn->srv->limits.max_recv_dsl = conn->srv->cfg.max_recv_dsl;
		memcpy(conn->login_isid, req->isid, 6);
		conn->login_tsih = pdu_get16(req->tsih);
		conn->login_itt = pdu_get32(req->itt);
		conn->login_cmdsn = pdu_get32(req->cmdsn);
		conn->cid = pdu_get16(req->cid);
		conn->statsn = pdu_get32(req->exp_statsn);
		iscsi_session_params_default(&conn->login_sp);
		iscsi_negotiation_init(&conn->neg, &conn->srv->limits, &conn->login_sp, &conn->params,
				       conn->login_tsih == 0);
		/* RFC 7143 11.12.4: we speak version 0x00 only */
		if (req->version_min > 0) {
			login_fail(conn, ISCSI_LOGIN_UNSUPPORTED_VERSION, "unsupported version");
			return;
		}
	} else if (memcmp(conn->login_isid, req->isid, 6) != 0 ||
		   conn->login_tsih != pdu_get16(req->tsih) ||
		   conn->login_itt != pdu_get32(req->itt)) {
		/* RFC 7143 11.12: ISID, TSIH and ITT stay the same through login */
		login_fail(conn, ISCSI_LOGIN_INITIATOR_ERROR, "login identity changed mid-login");
		return;
	}
	conn->login_cmdsn = pdu_get32(req->cmdsn);
	/* RFC 7143 11.12.2: T and C together are a protocol error; stage 2 is
	 * reserved; a transit goes forward only */
	if ((transit && cont) || csg == 2 || csg == 3 ||
	    (transit && (nsg == 2 || nsg <= csg))) {
		login_fail(conn, ISCSI_LOGIN_INITIATOR_ERROR, "invalid stage transition");
		return;
	}
	/* --max-login-text: RFC 7143 6.1 sets no upper bound, so a longer text is
	 * no initiator error but more than we take: 0302, out of resources
	 * (11.13.5) */
	if ((size_t)len > login_text_limit(conn) - conn->login_text_len) {
		login_fail(conn, ISCSI_LOGIN_OUT_OF_RESOURCES, "login text longer than --max-login-text");
		return;
	}
	if (len) {
		char *grown = realloc(conn->login_text, conn->login_text_len + len + 1);

		if (!grown) {
			login_fail(conn, ISCSI_LOGIN_OUT_OF_RESOURCES, "out of memory");
			return;
		}
		conn->login_text = grown;
		memcpy(conn->login_text + conn->login_text_len, data, len);
		conn->login_text_len += len;
	}
	if (cont) {
		/* RFC 7143 11.12.2: more text follows; answer with an empty
		 * response to ask for it */
		login_send_text(conn, (uint8_t)(csg << 2), 0, NULL);
		return;
	}
	kv = calloc(ISCSI_TEXT_MAX_KEYS, sizeof(*kv));
	if (!kv) {
		login_fail(conn, ISCSI_LOGIN_OUT_OF_RESOURCES, "out of memory");
		return;
	}
	int n = 0;

	if (conn->login_text_len) {
		int max_keys = login_keys_limit(conn);

		/* --max-login-keys: counted before anything is parsed; like the
		 * text length, a limit of ours rather than an initiator error */
		if (iscsi_text_count(conn->login_text, conn->login_text_len) > (size_t)max_keys) {
			login_fail(conn, ISCSI_LOGIN_OUT_OF_RESOURCES,
				   "more key=value pairs than --max-login-keys");
			goto out;
		}
		n = iscsi_text_parse(conn->login_text, conn->login_text_len, kv, max_keys);
		if (n < 0) {
			login_fail(conn, ISCSI_LOGIN_INITIATOR_ERROR, "malformed login text");
			goto out;
		}
	}
	conn->neg.stage = (enum iscsi_login_stage)csg;
	status = (uint16_t)iscsi_negotiate_login(&conn->neg, kv, n, &out);
	/*
	 * Who logs in to what is checked first, even when AuthMethod failed:
	 * an unknown target or an initiator outside the ACL is told so
	 * (0203, 0202) rather than asked to authenticate.
	 */
	if (!conn->login_first_done && (status == ISCSI_LOGIN_OK || status == ISCSI_LOGIN_AUTH_FAILED)) {
		char scratch[64];
		struct iscsi_text_out none = { .buf = scratch, .cap = sizeof(scratch) };
		uint16_t first;

		conn->login_first_done = true;
		first = login_first_request(conn, status ? &none : &out);
		if (first) {
			login_fail(conn, first, login_first_failure(first));
			goto out;
		}
	}
	if (status) {
		/* the text holds the answer of the failing key (AuthMethod=Reject ...) */
		if (status == ISCSI_LOGIN_AUTH_FAILED)
			login_fail_text(conn, status, "no acceptable AuthMethod", out.buf,
					out.overflow ? 0 : out.len);
		else
			login_fail(conn, status, "negotiation failed");
		goto out;
	}
	size_t chap_mark = out.len;
	const char *why;

	status = login_authenticate(conn, csg, &transit, kv, n, &out, &why);
	if (status) {
		/* only what the CHAP step answered (CHAP_A=Reject) goes with the failure */
		login_fail_text(conn, status, why ? why : "authentication failed",
				out.buf + chap_mark, out.overflow ? 0 : out.len - chap_mark);
		goto out;
	}
	conn->login_text_len = 0;
	uint8_t flags = (uint8_t)(csg << 2);
	uint16_t tsih = 0;

	if (transit) {
		flags |= ISCSI_LOGIN_TRANSIT | (uint8_t)nsg;
		if (nsg == ISCSI_STAGE_FULL_FEATURE) {
			iscsi_negotiate_finish(&conn->neg, &out);
			status = login_join_session(conn);
			if (status) {
				login_fail(conn, status, "cannot join or create the session");
				goto out;
			}
			tsih = conn->sess->tsih;
		}
	}
	if (out.overflow) {
		login_fail(conn, ISCSI_LOGIN_TARGET_ERROR, "login response too long");
		goto out;
	}
	login_send_text(conn, flags, tsih, &out);
	if (conn->state == CONN_FULL_FEATURE) {
		log_info("conn %u (%s): %s session 0x%04x of %s%s%s in full feature phase", conn->id,
			 conn->peer,
			 conn->sess->params.session_type == ISCSI_SESSION_DISCOVERY ? "discovery" : "normal",
			 conn->sess->tsih, conn->sess->params.initiator_name,
			 conn->sess->target ? " to " : "",
			 conn->sess->target ? conn->sess->target->name : "");
		free(conn->login_text);
		conn->login_text = NULL;
	}
out:
	free(kv);
}
