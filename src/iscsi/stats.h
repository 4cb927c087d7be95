/*
 * Statistics of the iSCSI engine (issue 7): per LUN (struct spt_lun_stats
 * in src/spt/lun.h), per session and per connection. Counted on the reactor
 * thread with plain increments from one-line hooks in task.c and conn.c: no
 * lock, no allocation per command. Per target figures are the sums of its
 * LUNs, made when a snapshot is taken (src/iscsi/admin.c).
 *
 * A task's life as the counters see it: iscsi_stats_task_start when its
 * SCSI Command PDU becomes a task (queue depth up, clock started),
 * iscsi_stats_task_status when its status goes out (command, class, bytes,
 * error, latency), iscsi_stats_task_end when it is freed (queue depth
 * down; an abort if it ended without a status because a TMF or the loss of
 * its connection aborted it).
 */
#ifndef ISCSI_STATS_H
#define ISCSI_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <spt/spt.h>

#include "spt/lun.h"

struct iscsi_task;

_Static_assert(SPT_LUN_LATENCY_BUCKETS == SPT_CTL_STATS_BUCKETS,
	       "the engine keeps the buckets the control plane reports");

/* The last bucket's lower bound: 2^24 us, about 16.8 s. */
#define ISCSI_STATS_TOP_BUCKET_LOG2 (SPT_LUN_LATENCY_BUCKETS - 2)

/* Per session, since login (bytes: struct iscsi_session's bytes_read and
 * bytes_written; in flight: ntasks). */
struct iscsi_session_stats {
	uint64_t commands;	/* completed with a status */
	uint64_t errors;	/* status other than GOOD and CONDITION MET */
	uint64_t aborts;	/* ended by a TMF or a connection loss */
};

/* Per connection, since it was accepted (digest errors: struct iscsi_conn's
 * header_digest_errors and data_digest_errors). */
struct iscsi_conn_stats {
	uint64_t pdus_in;	/* PDUs received whole */
	uint64_t pdus_out;	/* PDUs written whole */
	uint64_t bytes_in;	/* bytes read from the socket */
	uint64_t bytes_out;	/* bytes written to it */
};

enum iscsi_stats_op {
	ISCSI_STATS_OP_READ,
	ISCSI_STATS_OP_WRITE,
	ISCSI_STATS_OP_OTHER,
};

/* The command class of a CDB (include/spt/spt.h, "statistics"). */
enum iscsi_stats_op iscsi_stats_op(const uint8_t *cdb);

/* The latency bucket of a command that took ns nanoseconds: the smallest i
 * with ns <= 2^i us, or the last bucket past 2^ISCSI_STATS_TOP_BUCKET_LOG2 us. */
size_t iscsi_stats_bucket(uint64_t ns);

/* Upper bound of bucket i (< SPT_LUN_LATENCY_BUCKETS - 1) in microseconds. */
uint64_t iscsi_stats_bucket_bound_us(size_t i);

/* Monotonic nanoseconds. */
uint64_t iscsi_stats_now_ns(void);

/* Hooks of the task's life (see above). */
void iscsi_stats_task_start(struct iscsi_task *t);
void iscsi_stats_task_status(struct iscsi_task *t, uint8_t status, uint32_t data_in);
void iscsi_stats_task_end(struct iscsi_task *t);

/* Records one completed command in a LUN's counters (the status hook's
 * work, apart so that tests can drive it). */
void iscsi_stats_lun_record(struct spt_lun_stats *ls, enum iscsi_stats_op op, uint8_t status,
			    uint64_t bytes_read, uint64_t bytes_written, uint64_t latency_ns);

/* A LUN's counters in the control plane's form (host order). */
void iscsi_stats_lun_snapshot(const struct spt_lun_stats *ls, struct spt_ctl_stats_io *io,
			      struct spt_ctl_stats_latency *lat);
/* sum += x, for a target's totals. */
void iscsi_stats_io_add(struct spt_ctl_stats_io *sum, const struct spt_ctl_stats_io *x);
void iscsi_stats_latency_add(struct spt_ctl_stats_latency *sum, const struct spt_ctl_stats_latency *x);

#endif
