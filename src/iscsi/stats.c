/*
 * Statistics of the iSCSI engine: the task hooks that move the per LUN and
 * per session counters, the latency histogram's buckets, and the LUN
 * counters in the control plane's form. Everything runs on the reactor
 * thread that owns the session, so plain increments suffice.
 */
#include <string.h>
#include <time.h>

#include "iscsi/iscsi.h"
#include "iscsi/stats.h"

/* SBC-3 5 / SBC-4 5: the commands that read or write the medium. */
enum {
	STATS_OP_READ6 = 0x08,
	STATS_OP_WRITE6 = 0x0a,
	STATS_OP_READ10 = 0x28,
	STATS_OP_WRITE10 = 0x2a,
	STATS_OP_WRITE_VERIFY10 = 0x2e,
	STATS_OP_READ16 = 0x88,
	STATS_OP_WRITE16 = 0x8a,
	STATS_OP_WRITE_VERIFY16 = 0x8e,
	STATS_OP_READ12 = 0xa8,
	STATS_OP_WRITE12 = 0xaa,
	STATS_OP_WRITE_VERIFY12 = 0xae,
};

enum iscsi_stats_op iscsi_stats_op(const uint8_t *cdb)
{
	switch (cdb[0]) {
	case STATS_OP_READ6:
	case STATS_OP_READ10:
	case STATS_OP_READ12:
	case STATS_OP_READ16:
		return ISCSI_STATS_OP_READ;
	case STATS_OP_WRITE6:
	case STATS_OP_WRITE10:
	case STATS_OP_WRITE12:
	case STATS_OP_WRITE16:
	case STATS_OP_WRITE_VERIFY10:
	case STATS_OP_WRITE_VERIFY12:
	case STATS_OP_WRITE_VERIFY16:
		return ISCSI_STATS_OP_WRITE;
	default:
		return ISCSI_STATS_OP_OTHER;
	}
}

size_t iscsi_stats_bucket(uint64_t ns)
{
	/* ns <= 1000 * 2^i  <=>  ceil(ns / 1000) <= 2^i, 2^i being whole */
	uint64_t us = ns / 1000 + (ns % 1000 != 0);
	size_t i;

	if (us <= 1)
		return 0;
	i = (size_t)(64 - __builtin_clzll(us - 1));	/* ceil(log2(us)) for us >= 2 */
	return i <= ISCSI_STATS_TOP_BUCKET_LOG2 ? i : SPT_LUN_LATENCY_BUCKETS - 1;
}

uint64_t iscsi_stats_bucket_bound_us(size_t i)
{
	return 1ull << i;
}

uint64_t iscsi_stats_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The LUN whose counters a task moves: the map is the target's own (not
 * the const view dispatch routes through), and a command for a LUN the
 * target does not have (REPORT LUNS aside) moves none. */
static struct spt_lun *stats_lun_of(struct iscsi_task *t)
{
	struct iscsi_target *target = t->sess->target;

	if (!target)
		return NULL;
	for (size_t i = 0; i < target->luns.count; i++)
		if (target->luns.luns[i].lun == t->cmd.req.lun)
			return &target->luns.luns[i];
	return NULL;
}

void iscsi_stats_task_start(struct iscsi_task *t)
{
	t->stats_lun = stats_lun_of(t);
	t->stats_start_ns = iscsi_stats_now_ns();
	t->stats_counted = false;
	if (t->stats_lun)
		t->stats_lun->stats.queue_depth++;
}

void iscsi_stats_lun_record(struct spt_lun_stats *ls, enum iscsi_stats_op op, uint8_t status,
			    uint64_t bytes_read, uint64_t bytes_written, uint64_t latency_ns)
{
	ls->commands++;
	if (op == ISCSI_STATS_OP_READ)
		ls->read_commands++;
	else if (op == ISCSI_STATS_OP_WRITE)
		ls->write_commands++;
	if (status != SPT_STATUS_GOOD && status != SPT_STATUS_CONDITION_MET)
		ls->errors++;
	ls->bytes_read += bytes_read;
	ls->bytes_written += bytes_written;
	ls->latency_sum_ns += latency_ns;
	ls->latency_buckets[iscsi_stats_bucket(latency_ns)]++;
}

void iscsi_stats_task_status(struct iscsi_task *t, uint8_t status, uint32_t data_in)
{
	struct iscsi_session *s = t->sess;
	uint64_t now;

	/* TASK ABORTED of an aborted task is counted as an abort at the end;
	 * a status built twice (never the case today) counts once */
	if (t->aborted || t->stats_counted)
		return;
	t->stats_counted = true;
	s->stats.commands++;
	if (status != SPT_STATUS_GOOD && status != SPT_STATUS_CONDITION_MET)
		s->stats.errors++;
	if (!t->stats_lun)
		return;
	now = iscsi_stats_now_ns();
	/* data-out taken in, whatever the provider made of it */
	iscsi_stats_lun_record(&t->stats_lun->stats, iscsi_stats_op(t->cmd.req.cdb), status, data_in,
			       t->write ? t->received : 0,
			       now > t->stats_start_ns ? now - t->stats_start_ns : 0);
}

void iscsi_stats_task_end(struct iscsi_task *t)
{
	bool abort = t->aborted && !t->stats_counted;

	if (abort)
		t->sess->stats.aborts++;
	if (!t->stats_lun)
		return;
	t->stats_lun->stats.queue_depth--;
	if (abort)
		t->stats_lun->stats.aborts++;
	t->stats_lun = NULL;
}

void iscsi_stats_lun_snapshot(const struct spt_lun_stats *ls, struct spt_ctl_stats_io *io,
			      struct spt_ctl_stats_latency *lat)
{
	memset(io, 0, sizeof(*io));
	memset(lat, 0, sizeof(*lat));
	io->commands = ls->commands;
	io->read_commands = ls->read_commands;
	io->write_commands = ls->write_commands;
	io->bytes_read = ls->bytes_read;
	io->bytes_written = ls->bytes_written;
	io->errors = ls->errors;
	io->aborts = ls->aborts;
	io->queue_depth = ls->queue_depth;
	/* every completed command has its latency recorded */
	lat->count = ls->commands;
	lat->sum_ns = ls->latency_sum_ns;
	for (size_t i = 0; i < SPT_LUN_LATENCY_BUCKETS; i++)
		lat->buckets[i] = ls->latency_buckets[i];
}

void iscsi_stats_io_add(struct spt_ctl_stats_io *sum, const struct spt_ctl_stats_io *x)
{
	sum->commands += x->commands;
	sum->read_commands += x->read_commands;
	sum->write_commands += x->write_commands;
	sum->bytes_read += x->bytes_read;
	sum->bytes_written += x->bytes_written;
	sum->errors += x->errors;
	sum->aborts += x->aborts;
	sum->queue_depth += x->queue_depth;
}

void iscsi_stats_latency_add(struct spt_ctl_stats_latency *sum, const struct spt_ctl_stats_latency *x)
{
	sum->count += x->count;
	sum->sum_ns += x->sum_ns;
	for (size_t i = 0; i < SPT_CTL_STATS_BUCKETS; i++)
		sum->buckets[i] += x->buckets[i];
}
