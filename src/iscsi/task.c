/*
 * SCSI tasks: a SCSI Command PDU becomes a task whose data-out arrives as
 * immediate data, unsolicited Data-Out and solicited bursts (R2T), and is
 * handed to the provider one contiguous sequence at a time; the completion
 * goes back as Data-In (status collapsed into the last one when there is no
 * sense) or a SCSI Response. Task management lives here too.
 */
#include <stdlib.h>
#include <string.h>

#include <spt/scsi.h>

#include "iscsi/iscsi.h"
#include "util/log.h"

static void task_provider_done(struct spt_cmd *cmd);
static void task_pump(struct iscsi_task *t);
static void task_send_response(struct iscsi_task *t);
static void task_fail_transport(struct iscsi_task *t);
static void task_send_status_only(struct iscsi_task *t, uint8_t status);

/* The task has its answer built, or none is due: it no longer holds a slot
 * of the CmdSN window (--max-pending-commands). */
static void task_set_done(struct iscsi_task *t)
{
	if (t->state != TASK_DONE)
		t->sess->nactive--;
	t->state = TASK_DONE;
}

static struct iscsi_task *task_of(struct spt_cmd *cmd)
{
	return (struct iscsi_task *)((char *)cmd - offsetof(struct iscsi_task, cmd));
}

struct iscsi_task *iscsi_task_find(struct iscsi_session *s, uint32_t itt)
{
	struct list_node *n, *tmp;

	list_for_each_safe(n, tmp, &s->tasks) {
		struct iscsi_task *t = list_entry(n, struct iscsi_task, sess_node);

		if (t->itt == itt && t->state != TASK_DONE)
			return t;
	}
	return NULL;
}

static void task_free(struct iscsi_task *t)
{
	struct iscsi_session *s = t->sess;
	struct iscsi_conn *conn = t->conn;

	/* the provider may hold state (an external one: a shared buffer)
	 * for a command whose final sequence it never got */
	if (t->accepted && !t->cmd.req.is_final)
		spt_dispatch_task_abandoned(&s->target->luns, &t->cmd);
	list_del(&t->sess_node);
	if (list_linked(&t->order_node))
		list_del(&t->order_node);
	s->ntasks--;
	iscsi_stats_task_end(t);
	if (t->cmd.buf) {
		bufpool_put(s->srv->bp, t->cmd.buf, t->buf_alloc);
		iscsi_session_buffer_release(s, t->buf_alloc);
	}
	t->cmd.buf = NULL;
	list_add_tail(&s->task_free, &t->sess_node);
	iscsi_conn_put(conn);
	iscsi_session_put(s);
}

static void task_maybe_free(struct iscsi_task *t)
{
	if (t->state == TASK_DONE && t->tx_refs == 0 && !list_linked(&t->order_node))
		task_free(t);
}

void iscsi_task_tx_done(struct iscsi_task *t)
{
	t->tx_refs--;
	task_maybe_free(t);
}

static void conn_pdu_reject(struct iscsi_conn *conn, uint8_t reason)
{
	conn->rx_reject = true;
	conn->rx_reject_reason = reason;
}

struct iscsi_task *iscsi_task_from_cmd(struct iscsi_conn *conn, const struct iscsi_scsi_cmd *h,
				       uint32_t dsl, uint8_t **dest)
{
	struct iscsi_session *s = conn->sess;
	const struct iscsi_session_params *sp = &s->params;
	uint32_t itt = pdu_get32(h->itt);
	uint32_t edtl = pdu_get32(h->edtl);
	bool immediate = pdu_immediate((const struct iscsi_bhs *)h);
	bool write = h->flags & ISCSI_CMD_WRITE;
	bool read = h->flags & ISCSI_CMD_READ;
	struct iscsi_task *t;

	*dest = NULL;
	if (itt == ISCSI_RESERVED_TAG) {
		conn_pdu_reject(conn, ISCSI_REJECT_INVALID_PDU_FIELD);
		return NULL;
	}
	/* RFC 7143 11.17.1: a tag in use is "task in progress" */
	if (iscsi_task_find(s, itt)) {
		conn_pdu_reject(conn, ISCSI_REJECT_TASK_IN_PROGRESS);
		return NULL;
	}
	if (s->nactive >= (int)s->queue_depth + ISCSI_IMMEDIATE_SLACK) {
		conn_pdu_reject(conn, immediate ? ISCSI_REJECT_IMMEDIATE_REJECT :
				ISCSI_REJECT_OUT_OF_RESOURCES);
		return NULL;
	}
	/* RFC 7143 11.3.4 / 13.11, 13.14: immediate data only for a write,
	 * only if negotiated, within FirstBurstLength and the transfer */
	if (dsl && (!write || !sp->immediate_data || dsl > sp->first_burst_length || dsl > edtl)) {
		conn_pdu_reject(conn, ISCSI_REJECT_PROTOCOL_ERROR);
		return NULL;
	}
	if (h->total_ahs_len) {
		/* extended CDBs and bidirectional read lengths (AHS) are not served */
		conn_pdu_reject(conn, ISCSI_REJECT_CMD_NOT_SUPPORTED);
		return NULL;
	}
	if (!list_empty(&s->task_free)) {
		t = list_first(&s->task_free, struct iscsi_task, sess_node);
		list_del(&t->sess_node);
	} else {
		t = malloc(sizeof(*t));
		if (!t) {
			conn_pdu_reject(conn, ISCSI_REJECT_OUT_OF_RESOURCES);
			return NULL;
		}
	}
	memset(t, 0, offsetof(struct iscsi_task, cmd));
	memset(&t->cmd, 0, sizeof(t->cmd));
	list_init(&t->order_node);
	t->sess = s;
	t->conn = conn;
	t->itt = itt;
	t->cmdsn = pdu_get32(h->cmdsn);
	t->edtl = edtl;
	memcpy(t->lun, h->lun, 8);
	t->immediate = immediate;
	t->write = write;
	t->read = read;
	t->state = TASK_RECEIVING;

	uint32_t cap = edtl < ISCSI_MAX_TASK_BUF ? edtl : ISCSI_MAX_TASK_BUF;

	if (write && edtl > ISCSI_MAX_TASK_BUF)
		t->oversize = true;	/* the provider refuses it from the CDB alone */
	if (cap && !iscsi_session_buffer_take(s, cap)) {
		/* --max-session-buffer-mib: answered TASK SET FULL in its turn;
		 * a write's data is dropped as an oversize write's is */
		t->no_room = true;
		t->oversize = write;
	} else if (cap) {
		t->cmd.buf = bufpool_get(s->srv->bp, cap);
		if (!t->cmd.buf) {
			iscsi_session_buffer_release(s, cap);
			list_add_tail(&s->task_free, &t->sess_node);
			conn_pdu_reject(conn, ISCSI_REJECT_OUT_OF_RESOURCES);
			return NULL;
		}
		t->buf_alloc = cap;
		t->cmd.buf_len = cap;
	}
	if (write && !t->oversize) {
		t->want = cap;
		/* RFC 7143 13.10 and 13.14: with InitialR2T=No unsolicited
		 * Data-Out follows unless the F bit says otherwise */
		if (!sp->initial_r2t && !(h->flags & ISCSI_FLAG_FINAL))
			t->unsol_len = sp->first_burst_length < cap ? sp->first_burst_length : cap;
		else
			t->unsol_len = dsl;
		if (dsl)
			*dest = t->cmd.buf;
	}
	t->cmd.req.session_cookie = s->handle;
	t->cmd.req.task_cookie = s->next_task_cookie++;
	t->cmd.req.lun = pdu_lun_to_flat(h->lun);
	t->cmd.req.expected_length = edtl;
	t->cmd.req.direction = (uint8_t)((write ? SPT_DIR_OUT : 0) | (read ? SPT_DIR_IN : 0));
	t->cmd.req.cdb_length = 16;
	t->cmd.req.task_attribute = h->flags & ISCSI_CMD_ATTR_MASK;
	memcpy(t->cmd.req.cdb, h->cdb, 16);
	t->cmd.done = task_provider_done;
	t->cmd.engine_priv = t;

	list_add_tail(&s->tasks, &t->sess_node);
	s->ntasks++;
	s->nactive++;
	s->refs++;
	conn->refs++;
	iscsi_stats_task_start(t);
	return t;
}

void iscsi_task_cmd_received(struct iscsi_task *t)
{
	struct iscsi_session *s = t->sess;

	if (t->write && !t->oversize) {
		t->received = t->conn->rx_dsl;
		s->bytes_written += t->conn->rx_dsl;	/* immediate data */
		if (t->received >= t->unsol_len) {
			t->unsol_done = true;
			t->burst_end = t->received;
			t->r2t_next = t->received;
		}
	}
	int r = iscsi_cmdsn_check(s, t->cmdsn, t->immediate);

	log_debug("session 0x%04x: task 0x%x CmdSN %u (ExpCmdSN %u%s) edtl %u unsolicited %u/%u cdb %02x: %s",
		  s->tsih, t->itt, t->cmdsn, s->exp_cmdsn, t->immediate ? ", immediate" : "", t->edtl,
		  t->received, t->unsol_len, t->cmd.req.cdb[0],
		  r > 0 ? "runs" : r == 0 ? "waits for its turn" : "outside the window");

	if (r < 0) {
		log_debug("session 0x%04x: CmdSN %u outside the window, dropped", s->tsih, t->cmdsn);
		task_set_done(t);
		task_maybe_free(t);
		return;
	}
	if (r == 0) {
		list_add_tail(&s->order, &t->order_node);
		return;
	}
	/* t may be finished and recycled by the time run_ordered returns */
	bool immediate = t->immediate;

	s->refs++;
	iscsi_task_run_ordered(t);
	if (!immediate)
		iscsi_session_advance(s);
	iscsi_session_put(s);
}

void iscsi_task_run_ordered(struct iscsi_task *t)
{
	t->ordered = true;
	if (t->aborted || t->state == TASK_DONE) {
		/* SAM-5 7.4 / 5.6 (TAS=1): a task of another I_T nexus that a
		 * TMF aborted while it waited for its CmdSN still ends with
		 * TASK ABORTED, as task_abort() does for the others */
		bool tell = t->aborted && t->tas && t->state != TASK_DONE;

		task_set_done(t);
		if (tell)
			task_send_status_only(t, SPT_STATUS_TASK_ABORTED);
		task_maybe_free(t);
		return;
	}
	task_pump(t);
}

/*
 * SPC-4 / SAM-5: once LUNs were added to or removed from the target, each
 * I_T nexus gets REPORTED LUNS DATA HAS CHANGED (3F/0E) on its next command
 * other than INQUIRY, REQUEST SENSE and REPORT LUNS; REPORT LUNS clears it.
 */
static bool task_luns_changed(struct iscsi_task *t)
{
	struct iscsi_session *s = t->sess;
	uint8_t op = t->cmd.req.cdb[0];

	if (s->luns_gen_seen == s->target->luns_gen)
		return false;
	if (op == 0x12 || op == 0x03)	/* INQUIRY, REQUEST SENSE */
		return false;
	s->luns_gen_seen = s->target->luns_gen;
	return op != 0xa0;		/* REPORT LUNS */
}

static void task_dispatch(struct iscsi_task *t, uint32_t off, uint32_t len, bool final)
{
	memset(&t->cmd.cpl, 0, sizeof(t->cmd.cpl));
	t->cmd.cpl.task_cookie = t->cmd.req.task_cookie;
	t->cmd.req.sequence_byte_offset = off;
	t->cmd.req.data_length = len;
	t->cmd.req.is_final = final;
	t->delivered = off + len;
	t->state = TASK_AT_PROVIDER;
	if (off == 0 && task_luns_changed(t)) {
		/* answered here, as a provider would: no provider saw it */
		spt_cmd_check_condition(&t->cmd, false, SPT_KEY_UNIT_ATTENTION, 0x3f, 0x0e, NULL);
		t->cmd.done(&t->cmd);
		return;
	}
	spt_dispatch_scsi(&t->sess->target->luns, &t->cmd);
}

static void task_send_r2t(struct iscsi_task *t)
{
	struct iscsi_conn *conn = t->conn;
	uint32_t burst = t->sess->params.max_burst_length;
	uint32_t len = t->want - t->r2t_next < burst ? t->want - t->r2t_next : burst;
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	if (!tx)
		return;
	struct iscsi_r2t_slot *slot = &t->r2t[t->nr2t++];

	slot->ttt = conn->next_ttt++;
	if (conn->next_ttt == ISCSI_RESERVED_TAG)
		conn->next_ttt = 1;
	slot->offset = t->r2t_next;
	slot->length = len;
	t->r2t_next += len;

	struct iscsi_r2t *r = (struct iscsi_r2t *)tx->hdr;

	r->opcode = ISCSI_OP_R2T;
	r->flags = ISCSI_FLAG_FINAL;
	memcpy(r->lun, t->lun, 8);
	r->itt = pdu_put32(t->itt);
	r->ttt = pdu_put32(slot->ttt);
	iscsi_fill_sn(conn, r, false);
	r->r2tsn = pdu_put32(t->r2tsn++);
	r->buffer_offset = pdu_put32(slot->offset);
	r->desired_length = pdu_put32(len);
	iscsi_tx_queue(conn, tx);
}

static void task_pump(struct iscsi_task *t)
{
	if (t->state != TASK_RECEIVING || t->aborted || !t->ordered)
		return;
	/*
	 * SAM-5 5.3.1: TASK SET FULL when a lack of resources keeps a command
	 * out while this I_T nexus has others in the task set (the budget
	 * always holds one command, so it does); initiators retry it (Linux
	 * as QUEUE FULL, QEMU with a backoff), as they do with LIO's
	 * out-of-resources answer.
	 */
	if (t->no_room) {
		t->sess->task_set_full++;
		task_set_done(t);
		task_send_status_only(t, SPT_STATUS_TASK_SET_FULL);
		task_maybe_free(t);
		return;
	}
	if (!t->write || t->oversize || t->want == 0) {
		task_dispatch(t, 0, 0, true);
		return;
	}
	if (!t->unsol_done)
		return;
	uint32_t max_r2t = t->sess->params.max_outstanding_r2t;

	if (max_r2t > ISCSI_MAX_OUTSTANDING_R2T)
		max_r2t = ISCSI_MAX_OUTSTANDING_R2T;
	/* no R2T before the provider has seen the command's first sequence
	 * (if there is one): a command it refuses asks for no more data */
	bool may_solicit = t->accepted || t->burst_end == 0;

	while (may_solicit && t->nr2t < max_r2t && t->r2t_next < t->want &&
	       t->conn->state != CONN_CLOSED)
		task_send_r2t(t);
	if (t->burst_end > t->delivered)
		task_dispatch(t, t->delivered, t->burst_end - t->delivered, t->burst_end == t->want);
}

uint8_t *iscsi_task_data_out_dest(struct iscsi_conn *conn, const struct iscsi_data_out *h,
				  uint32_t dsl, struct iscsi_task **taskp, unsigned *reject)
{
	struct iscsi_task *t = iscsi_task_find(conn->sess, pdu_get32(h->itt));
	uint32_t ttt = pdu_get32(h->ttt);
	uint32_t off = pdu_get32(h->buffer_offset);

	*taskp = NULL;
	*reject = 0;
	/* data for a task that already ended (early status, abort): dropped */
	if (!t || t->aborted || !t->write || t->oversize || t->state == TASK_DONE)
		return NULL;
	if (t->conn != conn) {
		*reject = ISCSI_REJECT_PROTOCOL_ERROR;	/* connection allegiance */
		return NULL;
	}
	if (ttt == ISCSI_RESERVED_TAG) {
		/* RFC 7143 13.14: unsolicited data stays within FirstBurstLength */
		if (t->unsol_done || (uint64_t)off + dsl > t->unsol_len) {
			*reject = ISCSI_REJECT_PROTOCOL_ERROR;
			return NULL;
		}
	} else {
		if (!t->nr2t || t->r2t[0].ttt != ttt ||
		    off < t->r2t[0].offset ||
		    (uint64_t)off + dsl > (uint64_t)t->r2t[0].offset + t->r2t[0].length) {
			*reject = ISCSI_REJECT_PROTOCOL_ERROR;
			return NULL;
		}
	}
	/* DataPDUInOrder=Yes and DataSequenceInOrder=Yes (RFC 7143 13.18,
	 * 13.19): data arrives at increasing offsets without gaps */
	if (off != t->received) {
		*reject = ISCSI_REJECT_PROTOCOL_ERROR;
		return NULL;
	}
	/* RFC 7143 11.7.5: DataSN counts the PDUs of one sequence from 0; a
	 * gap or repeat cannot be recovered at ErrorRecoveryLevel 0 */
	if (pdu_get32(h->datasn) != t->out_datasn) {
		/* no Reject: initiators drop the connection on one, and the
		 * SCSI status alone tells this command failed */
		log_warn("conn %u (%s): Data-Out DataSN %u, expected %u: task 0x%x failed",
			 conn->id, conn->peer, pdu_get32(h->datasn), t->out_datasn, t->itt);
		task_fail_transport(t);
		return NULL;
	}
	*taskp = t;
	return t->cmd.buf + off;
}

void iscsi_task_data_received(struct iscsi_task *t, const struct iscsi_data_out *h, uint32_t dsl)
{
	uint32_t ttt = pdu_get32(h->ttt);

	t->received += dsl;
	t->sess->bytes_written += dsl;
	t->out_datasn++;
	if (ttt == ISCSI_RESERVED_TAG) {
		if (t->received >= t->unsol_len || (h->flags & ISCSI_FLAG_FINAL)) {
			t->out_datasn = 0;
			t->unsol_done = true;
			t->burst_end = t->received;
			t->r2t_next = t->received;
		}
	} else if (t->received >= t->r2t[0].offset + t->r2t[0].length) {
		t->out_datasn = 0;
		t->burst_end = t->received;
		memmove(&t->r2t[0], &t->r2t[1], (t->nr2t - 1) * sizeof(t->r2t[0]));
		t->nr2t--;
	}
	if (t->draining) {
		/* the command already failed: its status goes once the data we
		 * asked for is in, so no R2T is left dangling at the initiator */
		if (t->nr2t == 0) {
			task_set_done(t);
			task_send_response(t);
			task_maybe_free(t);
		}
		return;
	}
	task_pump(t);
}

static void task_send_status_only(struct iscsi_task *t, uint8_t status)
{
	struct iscsi_conn *conn = t->conn;
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	iscsi_stats_task_status(t, status, 0);
	if (!tx)
		return;
	struct iscsi_scsi_rsp *r = (struct iscsi_scsi_rsp *)tx->hdr;

	r->opcode = ISCSI_OP_SCSI_RSP;
	r->flags = ISCSI_FLAG_FINAL;
	r->status = status;
	r->itt = pdu_put32(t->itt);
	iscsi_fill_sn(conn, r, true);
	iscsi_tx_queue(conn, tx);
}

static void task_send_response(struct iscsi_task *t)
{
	struct iscsi_conn *conn = t->conn;
	const struct spt_scsi_completion *cpl = &t->cmd.cpl;
	uint32_t edtl = t->edtl;
	uint32_t xfer = cpl->transfer_length;
	uint8_t rflags = 0;
	uint32_t residual = 0;

	if (conn->state == CONN_CLOSED)
		return;
	/* RFC 7143 11.4.5: overflow / underflow against the initiator's
	 * ExpectedDataTransferLength */
	if (xfer > edtl) {
		rflags = ISCSI_RSP_OVERFLOW;
		residual = xfer - edtl;
	} else if (xfer < edtl) {
		rflags = ISCSI_RSP_UNDERFLOW;
		residual = edtl - xfer;
	}
	uint32_t data_in = 0;

	if (t->read) {
		data_in = cpl->data_in_length;
		if (data_in > t->cmd.buf_len)
			data_in = t->cmd.buf_len;
		if (data_in > edtl)
			data_in = edtl;
	}
	iscsi_stats_task_status(t, cpl->scsi_status, data_in);
	uint32_t sense_len = cpl->sense_length > SPT_SENSE_MAX ? SPT_SENSE_MAX : cpl->sense_length;
	/* RFC 7143 11.7.4: status may ride on the last Data-In only without sense */
	bool collapse = data_in && !sense_len && cpl->scsi_status != SPT_STATUS_CHECK_CONDITION;
	uint32_t max_pdu = conn->params.max_send_dsl;
	uint32_t burst = t->sess->params.max_burst_length;

	for (uint32_t off = 0; off < data_in;) {
		uint32_t len = data_in - off;
		uint32_t burst_left = burst - (off % burst);

		if (len > max_pdu)
			len = max_pdu;
		if (len > burst_left)
			len = burst_left;
		bool last = off + len == data_in;
		struct iscsi_tx *tx = iscsi_tx_new(conn);

		if (!tx)
			return;
		struct iscsi_data_in *d = (struct iscsi_data_in *)tx->hdr;

		d->opcode = ISCSI_OP_DATA_IN;
		/* F ends each Data-In sequence of at most MaxBurstLength */
		d->flags = (last || len == burst_left) ? ISCSI_FLAG_FINAL : 0;
		d->itt = pdu_put32(t->itt);
		d->ttt = ISCSI_RESERVED_TAG;
		if (last && collapse) {
			d->flags |= ISCSI_FLAG_FINAL | ISCSI_DATAIN_STATUS | rflags;
			d->status = cpl->scsi_status;
			d->residual = pdu_put32(residual);
			iscsi_fill_sn(conn, d, true);
		} else {
			iscsi_fill_sn(conn, d, false);
			d->statsn = 0;
		}
		d->datasn = pdu_put32(t->datasn++);
		d->buffer_offset = pdu_put32(off);
		tx->data = t->cmd.buf + off;
		tx->data_len = len;
		tx->task = t;
		t->tx_refs++;
		iscsi_tx_queue(conn, tx);
		t->sess->bytes_read += len;
		off += len;
	}
	if (collapse)
		return;
	struct iscsi_tx *tx = iscsi_tx_new(conn);

	if (!tx)
		return;
	struct iscsi_scsi_rsp *r = (struct iscsi_scsi_rsp *)tx->hdr;

	r->opcode = ISCSI_OP_SCSI_RSP;
	r->flags = ISCSI_FLAG_FINAL | rflags;
	r->response = 0;	/* command completed at target */
	r->status = cpl->scsi_status;
	r->itt = pdu_put32(t->itt);
	r->exp_datasn = pdu_put32(t->datasn + t->r2tsn);
	r->residual = pdu_put32(residual);
	iscsi_fill_sn(conn, r, true);
	if (sense_len) {
		/* RFC 7143 11.4.7: SenseLength, then the sense data */
		tx->owned = bufpool_get(conn->srv->bp, sense_len + 2);
		if (tx->owned) {
			uint8_t *p = tx->owned;

			tx->owned_len = sense_len + 2;
			p[0] = (uint8_t)(sense_len >> 8);
			p[1] = (uint8_t)sense_len;
			memcpy(p + 2, cpl->sense, sense_len);
			tx->data = p;
			tx->data_len = sense_len + 2;
		}
	}
	iscsi_tx_queue(conn, tx);
}

/* ---- task management ---- */

static void tmf_respond(struct iscsi_tmf_wait *w);

static void tmf_release(struct iscsi_tmf_wait *w)
{
	if (--w->waits == 0)
		tmf_respond(w);
}

static void task_provider_done(struct spt_cmd *cmd)
{
	struct iscsi_task *t = task_of(cmd);

	log_debug("task 0x%x: provider completed [%u, +%u)%s with status 0x%02x", t->itt,
		  cmd->req.sequence_byte_offset, cmd->req.data_length,
		  cmd->req.is_final ? " (final)" : "", cmd->cpl.scsi_status);
	t->state = TASK_RECEIVING;
	if (t->aborted) {
		struct iscsi_tmf_wait *w = t->tmf_wait;

		task_set_done(t);
		if (t->tas)
			task_send_status_only(t, SPT_STATUS_TASK_ABORTED);
		t->tmf_wait = NULL;
		task_maybe_free(t);
		if (w)
			tmf_release(w);
		return;
	}
	if (t->xport_err) {
		task_fail_transport(t);
		return;
	}
	if (!cmd->req.is_final && cmd->cpl.scsi_status == SPT_STATUS_GOOD) {
		t->accepted = true;
		task_pump(t);
		return;
	}
	if (!cmd->req.is_final && t->nr2t) {
		t->draining = true;
		return;
	}
	task_set_done(t);
	task_send_response(t);
	task_maybe_free(t);
}

/*
 * A transport error the task cannot recover from at ErrorRecoveryLevel 0
 * (a data sequence error): the command ends with CHECK CONDITION, ABORTED
 * COMMAND, DATA PHASE ERROR (SPC-4 4B/00) and the session lives on.
 */
static void task_fail_transport(struct iscsi_task *t)
{
	if (t->state == TASK_DONE)
		return;
	if (t->state == TASK_AT_PROVIDER) {
		t->xport_err = true;	/* finished when the provider hands it back */
		return;
	}
	memset(&t->cmd.cpl, 0, sizeof(t->cmd.cpl));
	spt_cmd_check_condition(&t->cmd, false, SPT_KEY_ABORTED_COMMAND, 0x4b, 0x00, NULL);
	task_set_done(t);
	task_send_response(t);
	task_maybe_free(t);
}

void iscsi_task_abort_conn(struct iscsi_conn *conn)
{
	struct iscsi_session *s = conn->sess;
	struct list_node *n, *tmp;

	if (!s)
		return;
	list_for_each_safe(n, tmp, &s->tasks) {
		struct iscsi_task *t = list_entry(n, struct iscsi_task, sess_node);

		if (t->conn != conn)
			continue;
		if (t->state == TASK_DONE) {
			/* ended early (a data sequence error) while its CmdSN still
			 * waited for its turn: with the connection gone the turn
			 * never comes, so nothing else would free it */
			if (list_linked(&t->order_node)) {
				list_del(&t->order_node);
				task_maybe_free(t);
			}
			continue;
		}
		t->aborted = true;
		t->cmd.aborted = true;
		if (t->state == TASK_AT_PROVIDER)
			continue;	/* freed when the provider completes it */
		if (list_linked(&t->order_node))
			list_del(&t->order_node);
		task_set_done(t);
		task_maybe_free(t);
	}
}

/* Aborts one task on behalf of a TMF; the TMF waits for it if it is with
 * the provider. Tasks of other I_T nexuses get TASK ABORTED (TAS=1). */
static void task_abort(struct iscsi_task *t, struct iscsi_tmf_wait *w)
{
	if (t->state == TASK_DONE || t->aborted)
		return;
	t->aborted = true;
	t->cmd.aborted = true;
	t->tas = t->sess != w->conn->sess;
	if (t->state == TASK_AT_PROVIDER) {
		if (!t->tmf_wait) {
			t->tmf_wait = w;
			w->waits++;
		}
		return;
	}
	if (list_linked(&t->order_node))
		return;	/* its CmdSN still counts: it ends when its turn comes */
	task_set_done(t);
	if (t->tas)
		task_send_status_only(t, SPT_STATUS_TASK_ABORTED);
	task_maybe_free(t);
}

static void tmf_provider_done(struct spt_tmf *tmf)
{
	struct iscsi_tmf_wait *w = tmf->engine_priv;

	tmf_release(w);
}

static void tmf_to_provider(struct iscsi_tmf_wait *w, struct iscsi_session *s, uint64_t lun,
			    uint32_t function, uint64_t ref_cookie)
{
	struct spt_tmf *tmf;

	if (w->ntmfs == SPT_MAX_LUNS)
		return;
	tmf = &w->tmfs[w->ntmfs++];
	memset(tmf, 0, sizeof(*tmf));
	tmf->w.itnexus_handle = s->handle;
	tmf->w.lun = lun;
	tmf->w.function = function;
	tmf->w.response = SPT_TMF_RSP_COMPLETE;
	tmf->w.reference_task_cookie = ref_cookie;
	tmf->done = tmf_provider_done;
	tmf->engine_priv = w;
	w->waits++;
	if (!spt_dispatch_tmf(&s->target->luns, tmf))
		w->waits--;
}

/* Aborts the tasks of the target matching lun (UINT64_MAX: all), in session
 * `only` or in every session of the target. */
static void tmf_abort_matching(struct iscsi_tmf_wait *w, struct iscsi_session *only,
			       struct iscsi_target *target, uint64_t lun, uint32_t skip_itt)
{
	struct list_node *sn, *stmp;

	list_for_each_safe(sn, stmp, &w->conn->srv->sessions) {
		struct iscsi_session *s = list_entry(sn, struct iscsi_session, srv_node);
		struct list_node *n, *tmp;

		if (s->target != target || (only && s != only))
			continue;
		list_for_each_safe(n, tmp, &s->tasks) {
			struct iscsi_task *t = list_entry(n, struct iscsi_task, sess_node);

			if (s == w->conn->sess && t->itt == skip_itt)
				continue;
			if (lun == UINT64_MAX || t->cmd.req.lun == lun)
				task_abort(t, w);
		}
	}
}

static void tmf_respond(struct iscsi_tmf_wait *w)
{
	struct iscsi_conn *conn = w->conn;
	struct iscsi_tx *tx = conn->state == CONN_CLOSED ? NULL : iscsi_tx_new(conn);

	if (tx) {
		struct iscsi_tmf_rsp *r = (struct iscsi_tmf_rsp *)tx->hdr;

		r->opcode = ISCSI_OP_TMF_RSP;
		r->flags = ISCSI_FLAG_FINAL;
		r->response = w->response;
		r->itt = pdu_put32(w->itt);
		iscsi_fill_sn(conn, r, true);
		iscsi_tx_queue(conn, tx);
	}
	if (w->cold_reset && conn->sess) {
		/* RFC 7143 11.5.1: after a TARGET COLD RESET the target closes
		 * every connection of the target */
		struct iscsi_target *target = conn->sess->target;
		struct list_node *n, *tmp;

		list_for_each_safe(n, tmp, &conn->srv->sessions) {
			struct iscsi_session *s = list_entry(n, struct iscsi_session, srv_node);

			if (s->target == target && s != conn->sess)
				iscsi_session_stop(s, "target cold reset");
		}
		if (conn->state == CONN_FULL_FEATURE)
			conn->state = CONN_LOGGED_OUT;
	}
	iscsi_conn_put(conn);
	free(w);
}

void iscsi_tmf_req(struct iscsi_conn *conn)
{
	const struct iscsi_tmf_req *req = (const struct iscsi_tmf_req *)&conn->rx_bhs;
	struct iscsi_session *s = conn->sess;
	uint32_t function = req->function & 0x7f;
	uint64_t lun = pdu_lun_to_flat(req->lun);
	uint32_t cmdsn = pdu_get32(req->cmdsn);
	struct iscsi_tmf_wait *w = calloc(1, sizeof(*w));

	if (!w) {
		iscsi_send_reject(conn, &conn->rx_bhs, ISCSI_REJECT_OUT_OF_RESOURCES);
		return;
	}
	if (!pdu_immediate(&conn->rx_bhs))
		iscsi_cmdsn_received(s, cmdsn);
	w->conn = conn;
	conn->refs++;
	w->itt = pdu_get32(req->itt);
	w->response = SPT_TMF_RSP_COMPLETE;
	w->waits = 1;	/* held until every abort is set up */
	bool lun_scoped = function == SPT_TMF_ABORT_TASK || function == SPT_TMF_ABORT_TASK_SET ||
			  function == SPT_TMF_CLEAR_TASK_SET || function == SPT_TMF_LOGICAL_UNIT_RESET;

	log_info("conn %u (%s): task management function %u lun %llu", conn->id, conn->peer,
		 function, (unsigned long long)lun);
	if (lun_scoped && !spt_lun_find(&s->target->luns, lun)) {
		w->response = SPT_TMF_RSP_NO_LUN;
		goto out;
	}
	switch (function) {
	case SPT_TMF_ABORT_TASK: {
		uint32_t ref_itt = pdu_get32(req->ref_itt);
		uint32_t ref_cmdsn = pdu_get32(req->ref_cmdsn);
		struct iscsi_task *t = iscsi_task_find(s, ref_itt);

		if (!t || t->cmd.req.lun != lun) {
			/* RFC 7143 11.5.1: a task not received yet whose
			 * RefCmdSN lies in the window counts as aborted, and
			 * the target considers that CmdSN received: when it is
			 * the gap the window waits on, the commands behind run */
			if (!t && !sn_lt(ref_cmdsn, s->exp_cmdsn) && sn_le(ref_cmdsn, s->max_cmdsn) &&
			    sn_lt(ref_cmdsn, cmdsn)) {
				w->response = SPT_TMF_RSP_COMPLETE;
				iscsi_cmdsn_received(s, ref_cmdsn);
			} else {
				w->response = SPT_TMF_RSP_NO_TASK;
			}
			break;
		}
		task_abort(t, w);
		tmf_to_provider(w, s, lun, function, t->cmd.req.task_cookie);
		break;
	}
	case SPT_TMF_ABORT_TASK_SET:
		tmf_abort_matching(w, s, s->target, lun, w->itt);
		tmf_to_provider(w, s, lun, function, 0);
		break;
	case SPT_TMF_CLEAR_TASK_SET:
	case SPT_TMF_LOGICAL_UNIT_RESET:
		tmf_abort_matching(w, NULL, s->target, lun, w->itt);
		tmf_to_provider(w, s, lun, function, 0);
		break;
	case SPT_TMF_TARGET_WARM_RESET:
	case SPT_TMF_TARGET_COLD_RESET:
		tmf_abort_matching(w, NULL, s->target, UINT64_MAX, w->itt);
		for (size_t i = 0; i < s->target->luns.count; i++)
			tmf_to_provider(w, s, s->target->luns.luns[i].lun, function, 0);
		w->cold_reset = function == SPT_TMF_TARGET_COLD_RESET;
		break;
	case SPT_TMF_TASK_REASSIGN:
		/* RFC 7143 11.5.1: reassignment needs ErrorRecoveryLevel 2 */
		w->response = SPT_TMF_RSP_NO_REASSIGN;
		break;
	default:
		w->response = SPT_TMF_RSP_NOT_SUPPORTED;
		break;
	}
out:
	tmf_release(w);
}
