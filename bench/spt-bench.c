/*
 * spt-bench: an iSCSI load generator on libiscsi's asynchronous API.
 *
 * Each session is its own iscsi_context (one TCP connection: libiscsi has
 * no MC/S); all of them are driven from one poll() loop, so the client costs
 * one core at most and the numbers measure the target, not thread scheduling
 * in the client. Every command's transport status, SCSI status and residual
 * is checked; with --verify every write carries a pattern derived from its
 * LBA and a generation number, and every read of data written in this run
 * is compared with it.
 *
 * Output: a human summary and one machine-readable line
 *   RESULT key=value key=value ...
 * Exit status: 0 when every command succeeded and every check matched,
 * 1 when a command failed or data mismatched, 2 on a usage or setup error
 * (bad option, login failure, LUN too small).
 */
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Named limits on what the command line may ask for. */
#define BENCH_MAX_SESSIONS 1024
#define BENCH_MAX_QD 1024			/* commands in flight per session */
#define BENCH_MAX_BS (16u << 20)		/* bytes per command */
#define BENCH_MAX_SERVER_PIDS 8
#define BENCH_MAX_VERIFY_CHUNKS (1ull << 26)	/* generation table: 256 MiB at most */
#define BENCH_MAX_DURATION_S 86400.0
#define BENCH_MAX_ERRORS_SHOWN 10
#define BENCH_LABEL_MAX 64
#define BENCH_POLL_MS 100			/* also the cadence of libiscsi's timeout scan */
#define BENCH_LOGOUT_WAIT_S 5

#define BENCH_DEFAULT_INITIATOR "iqn.2026-11.org.spt:bench"
#define BENCH_MAGIC 0x68636e6562747073ull	/* "sptbench", little-endian */

/* A generation of 0 means "never written in this run": its content is unknown. */
#define GEN_NONE 0u
/* A write that failed leaves its range in an unknown state. */
#define GEN_UNKNOWN UINT32_MAX

#define NS_PER_S 1000000000ull

/* ---- latency histogram -------------------------------------------------
 * Log-linear buckets (as in HdrHistogram): values below 128 ns are exact,
 * above that each power of two is split into 64 buckets, so a percentile is
 * within 1/64 (1.6 %) of the true sample whatever the run's length, in a
 * fixed 30 KiB table. */
#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_LINEAR (2u * HIST_SUB)
#define HIST_BUCKETS (HIST_LINEAR + (64u - HIST_SUB_BITS - 1u) * HIST_SUB)

struct bench_hist {
	uint64_t bucket[HIST_BUCKETS];
	uint64_t n;
	uint64_t min;
	uint64_t max;
	double sum;
};

static unsigned hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < HIST_LINEAR)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return HIST_LINEAR + (shift - 1u) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static void hist_bounds(unsigned idx, uint64_t *low, uint64_t *width)
{
	unsigned k, shift;

	if (idx < HIST_LINEAR) {
		*low = idx;
		*width = 1;
		return;
	}
	k = idx - HIST_LINEAR;
	shift = k / HIST_SUB + 1u;
	*low = (uint64_t)(k % HIST_SUB + HIST_SUB) << shift;
	*width = 1ull << shift;
}

static void hist_add(struct bench_hist *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	if (h->n == 0 || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->n++;
	h->sum += (double)v;
}

/* The value at fraction p (0..1) of the samples: the middle of its bucket,
 * kept within the exact minimum and maximum. */
static uint64_t hist_percentile(const struct bench_hist *h, double p)
{
	uint64_t rank, seen = 0, low, width, v;
	unsigned i;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)(p * (double)h->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > h->n)
		rank = h->n;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank)
			break;
	}
	if (i == HIST_BUCKETS)
		return h->max;
	hist_bounds(i, &low, &width);
	v = low + (width - 1) / 2;
	if (v < h->min)
		v = h->min;
	if (v > h->max)
		v = h->max;
	return v;
}

/* ---- options ------------------------------------------------------------ */

enum bench_digest { DIGEST_NONE, DIGEST_CRC32C };

struct bench_opts {
	const char *url;
	const char *initiator;
	const char *label;
	int read_pct;			/* 100 = read, 0 = write, between = mixed */
	bool random;
	uint32_t bs;
	int qd;
	int sessions;
	double duration_s;
	double warmup_s;
	uint64_t range_bytes;		/* 0 = the whole LUN */
	bool verify;
	bool prefill;
	bool prefilled;
	uint64_t seed;
	int timeout_s;
	uint64_t max_errors;
	enum bench_digest digest;
	double interval_s;
	int server_pids[BENCH_MAX_SERVER_PIDS];
	int n_server_pids;
};

/* ---- run state ---------------------------------------------------------- */

enum sess_state { SESS_CONNECTING, SESS_READY, SESS_LOGGING_OUT, SESS_DONE, SESS_FAILED };

enum bench_phase { PH_CONNECT, PH_CAPACITY, PH_PREFILL, PH_RUN, PH_DRAIN, PH_READBACK };

struct bench_run;
struct bench_session;

struct bench_slot {
	struct bench_session *sess;
	struct scsi_task *task;
	unsigned char *buf;
	struct scsi_iovec iov;
	uint64_t chunk;
	uint64_t t_submit;
	uint32_t gen;		/* write: generation written; read: expected (GEN_NONE: not checked) */
	bool is_read;
};

struct bench_session {
	struct bench_run *run;
	struct iscsi_context *iscsi;
	int index;
	enum sess_state state;
	int inflight;
	uint64_t seq_next;
	struct bench_slot *slots;
	int *free_slots;
	int n_free;
	bool cancel_pending;
};

struct bench_cpu {
	double server_s;
	double client_s;
	double host_busy_s;	/* every CPU's non-idle time, all processes */
	bool server_ok;
	bool host_ok;
};

struct bench_run {
	struct bench_opts o;
	char portal[MAX_STRING_SIZE + 1];
	char target[MAX_STRING_SIZE + 1];
	char user[MAX_STRING_SIZE + 1];
	char passwd[MAX_STRING_SIZE + 1];
	int lun;

	uint32_t block_size;
	uint64_t lun_blocks;
	uint32_t blocks_per_io;
	uint64_t nchunks;

	struct bench_session *sess;
	struct pollfd *pfd;
	int *pfd_sess;
	unsigned char *data_buffers;	/* one per slot, block-aligned */
	uint32_t *gens;			/* --verify: generation of each chunk */
	uint8_t *busy;			/* --verify: a command on the chunk is in flight */
	uint32_t next_gen;

	enum bench_phase phase;
	uint64_t cursor;		/* prefill and read-back position */
	uint64_t rng;
	bool closing;			/* contexts being destroyed: callbacks only free */
	bool capacity_done;

	/* the measurement window */
	bool measuring;
	uint64_t win_start, win_end;
	struct bench_hist hist;
	uint64_t ios, reads, writes, bytes;
	struct bench_cpu cpu0, cpu1;

	/* whole run */
	uint64_t ios_total;
	uint64_t errors;
	uint64_t errors_shown;
	uint64_t mismatches;
	uint64_t verified;
	uint64_t unverified;
	bool stopped_early;
};

static volatile sig_atomic_t bench_stop;

static void bench_on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* splitmix64: the generator for offsets and the mixer for data patterns. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t bench_rand(struct bench_run *r)
{
	r->rng += 0x9e3779b97f4a7c15ull;
	return mix64(r->rng);
}

/* Uniform in [0, n) without modulo bias worth speaking of (Lemire). */
static uint64_t bench_rand_below(struct bench_run *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)bench_rand(r) * n) >> 64);
}

static void bench_error(struct bench_run *r, const char *fmt, ...)
{
	va_list ap;

	r->errors++;
	if (r->errors_shown < BENCH_MAX_ERRORS_SHOWN) {
		r->errors_shown++;
		fputs("spt-bench: error: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
		if (r->errors_shown == BENCH_MAX_ERRORS_SHOWN)
			fprintf(stderr, "spt-bench: further errors are counted, not shown\n");
	}
}

static void bench_fatal(const char *fmt, ...)
{
	va_list ap;

	fputs("spt-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- data pattern ------------------------------------------------------
 * Each logical block holds: "sptbench", its LBA, the generation, then words
 * derived from both. A block read back with the wrong LBA or generation in
 * its header tells a misdirected or stale write from a corrupted one. */

static void pattern_fill(unsigned char *buf, uint64_t lba, uint32_t nblocks,
			 uint32_t block_size, uint32_t gen)
{
	uint32_t words = block_size / 8, b, i;

	for (b = 0; b < nblocks; b++) {
		uint64_t *w = (uint64_t *)(void *)(buf + (size_t)b * block_size);
		uint64_t l = lba + b;
		uint64_t base = mix64(l * 0x9e3779b97f4a7c15ull ^ ((uint64_t)gen << 32 | gen));

		w[0] = BENCH_MAGIC;
		w[1] = l;
		w[2] = gen;
		for (i = 3; i < words; i++)
			w[i] = mix64(base + i);
	}
}

/* Returns the index of the first block that differs, or -1. */
static long pattern_check(const unsigned char *buf, uint64_t lba, uint32_t nblocks,
			  uint32_t block_size, uint32_t gen, unsigned char *scratch)
{
	uint32_t b;

	for (b = 0; b < nblocks; b++) {
		const unsigned char *got = buf + (size_t)b * block_size;

		pattern_fill(scratch, lba + b, 1, block_size, gen);
		if (memcmp(got, scratch, block_size) != 0)
			return (long)b;
	}
	return -1;
}

static void describe_mismatch(struct bench_run *r, const struct bench_slot *slot,
			      uint64_t lba, long blk)
{
	const unsigned char *got = slot->buf + (size_t)blk * r->block_size;
	uint64_t w[3];

	memcpy(w, got, sizeof(w));
	if (w[0] == BENCH_MAGIC)
		bench_error(r, "data mismatch at LBA %" PRIu64 ": expected generation %u, "
			    "found a block written for LBA %" PRIu64 " generation %" PRIu64
			    "%s", lba + (uint64_t)blk, slot->gen, w[1], w[2],
			    (w[1] == lba + (uint64_t)blk && w[2] == slot->gen) ?
			    " with corrupted contents" : "");
	else
		bench_error(r, "data mismatch at LBA %" PRIu64 ": expected generation %u, "
			    "found no pattern header (first bytes %016" PRIx64 ")",
			    lba + (uint64_t)blk, slot->gen, w[0]);
}

/* ---- server and client CPU --------------------------------------------- */

/* utime + stime of a whole process (every thread), in seconds. */
static bool proc_cpu_seconds(int pid, double *out)
{
	char path[64], buf[4096], *p;
	unsigned long long utime, stime;
	FILE *f;
	size_t n;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* proc(5): the command name may hold spaces and parentheses; fields
	 * resume after the last ')'. utime and stime are fields 14 and 15. */
	p = strrchr(buf, ')');
	if (p == NULL)
		return false;
	p++;
	for (field = 3; field < 14; field++) {
		p = strchr(p + 1, ' ');
		if (p == NULL)
			return false;
	}
	if (sscanf(p, " %llu %llu", &utime, &stime) != 2)
		return false;
	*out = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
	return true;
}

/* Non-idle time of all CPUs together, in seconds (proc(5), /proc/stat "cpu"
 * line: user nice system idle iowait irq softirq steal ...). On a machine
 * shared with other work this tells how much of it ran beside the benchmark. */
static bool host_busy_seconds(double *out)
{
	unsigned long long v[8] = { 0 };
	char line[512];
	FILE *f = fopen("/proc/stat", "r");
	bool ok = false;

	if (f == NULL)
		return false;
	if (fgets(line, sizeof(line), f) != NULL &&
	    sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7]) >= 7) {
		*out = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
		       (double)sysconf(_SC_CLK_TCK);
		ok = true;
	}
	fclose(f);
	return ok;
}

static void cpu_sample(const struct bench_run *r, struct bench_cpu *c)
{
	struct rusage ru;
	double s;
	int i;

	c->server_s = 0;
	c->server_ok = r->o.n_server_pids > 0;
	for (i = 0; i < r->o.n_server_pids; i++) {
		if (!proc_cpu_seconds(r->o.server_pids[i], &s)) {
			c->server_ok = false;
			break;
		}
		c->server_s += s;
	}
	c->host_ok = host_busy_seconds(&c->host_busy_s);
	getrusage(RUSAGE_SELF, &ru);
	c->client_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- commands ----------------------------------------------------------- */

static const char *status_name(int status)
{
	switch (status) {
	case SCSI_STATUS_GOOD: return "GOOD";
	case SCSI_STATUS_CHECK_CONDITION: return "CHECK CONDITION";
	case SCSI_STATUS_CONDITION_MET: return "CONDITION MET";
	case SCSI_STATUS_BUSY: return "BUSY";
	case SCSI_STATUS_RESERVATION_CONFLICT: return "RESERVATION CONFLICT";
	case SCSI_STATUS_TASK_SET_FULL: return "TASK SET FULL";
	case SCSI_STATUS_ACA_ACTIVE: return "ACA ACTIVE";
	case SCSI_STATUS_TASK_ABORTED: return "TASK ABORTED";
	case SCSI_STATUS_CANCELLED: return "cancelled (connection lost or run aborted)";
	case SCSI_STATUS_ERROR: return "transport error";
	case SCSI_STATUS_TIMEOUT: return "timed out";
	default: return "unknown status";
	}
}

/* Names a data command for an error message (only then: not per command). */
static const char *slot_what(const struct bench_run *r, const struct bench_slot *slot,
			     char *buf, size_t size)
{
	snprintf(buf, size, "%s of %" PRIu32 " bytes at LBA %" PRIu64,
		 slot->is_read ? "READ(16)" : "WRITE(16)", r->o.bs, slot->chunk * r->blocks_per_io);
	return buf;
}

/* Reports a failed command; returns false if it failed. `what` names the
 * command, or is NULL for a data command of `slot`. */
static bool bench_task_ok(struct bench_run *r, struct bench_session *s, int status,
			  struct scsi_task *task, const char *what, const struct bench_slot *slot)
{
	char name[96];
	int st = status;

	if (st == SCSI_STATUS_GOOD && task != NULL && task->status != SCSI_STATUS_GOOD)
		st = task->status;
	if (st == SCSI_STATUS_GOOD)
		return true;
	if (what == NULL)
		what = slot_what(r, slot, name, sizeof(name));
	if (st == SCSI_STATUS_CHECK_CONDITION && task != NULL)
		bench_error(r, "session %d: %s: CHECK CONDITION, sense key %s (0x%x) "
			    "ASC/ASCQ 0x%02x/0x%02x", s->index, what,
			    scsi_sense_key_str(task->sense.key), task->sense.key,
			    (task->sense.ascq >> 8) & 0xff, task->sense.ascq & 0xff);
	else
		bench_error(r, "session %d: %s: %s (status 0x%x)%s%s", s->index, what,
			    status_name(st), st,
			    st >= SCSI_STATUS_CANCELLED ? ": " : "",
			    st >= SCSI_STATUS_CANCELLED ? iscsi_get_error(s->iscsi) : "");
	return false;
}

static void bench_io_cb(struct iscsi_context *iscsi, int status, void *command_data,
			void *private_data)
{
	struct bench_slot *slot = private_data;
	struct bench_session *s = slot->sess;
	struct bench_run *r = s->run;
	struct scsi_task *task = slot->task;
	uint64_t now = now_ns();
	uint64_t lba = slot->chunk * r->blocks_per_io;
	char what[96];
	bool ok;

	(void)iscsi;
	(void)command_data;
	if (r->closing)
		goto out;
	ok = bench_task_ok(r, s, status, task, NULL, slot);
	/* RFC 7143 11.4.5: a transfer of the whole expected length leaves no residual */
	if (ok && task->residual_status != SCSI_RESIDUAL_NO_RESIDUAL && task->residual != 0) {
		bench_error(r, "session %d: %s: %s of %zu bytes", s->index,
			    slot_what(r, slot, what, sizeof(what)),
			    task->residual_status == SCSI_RESIDUAL_UNDERFLOW ?
			    "residual underflow" : "residual overflow", task->residual);
		ok = false;
	}
	if (ok && slot->is_read && r->o.verify) {
		if (slot->gen == GEN_NONE || slot->gen == GEN_UNKNOWN) {
			r->unverified++;
		} else {
			long blk = pattern_check(slot->buf, lba, r->blocks_per_io, r->block_size,
						 slot->gen, slot->buf + r->o.bs);

			if (blk >= 0) {
				r->mismatches++;
				describe_mismatch(r, slot, lba, blk);
				ok = false;
			} else {
				r->verified++;
			}
		}
	}
	if (!slot->is_read && r->o.verify)
		r->gens[slot->chunk] = ok ? slot->gen : GEN_UNKNOWN;
	if (ok) {
		r->ios_total++;
		if (r->measuring && now >= r->win_start) {
			r->ios++;
			r->bytes += r->o.bs;
			if (slot->is_read)
				r->reads++;
			else
				r->writes++;
			hist_add(&r->hist, now - slot->t_submit);
		}
	}
	if (r->o.max_errors > 0 && r->errors >= r->o.max_errors && !r->stopped_early) {
		r->stopped_early = true;
		fprintf(stderr, "spt-bench: %" PRIu64 " errors, stopping the run\n", r->errors);
	}
out:
	if (r->o.verify)
		r->busy[slot->chunk] = 0;
	if (task != NULL)
		scsi_free_scsi_task(task);
	slot->task = NULL;
	s->inflight--;
	s->free_slots[s->n_free++] = (int)(slot - s->slots);
}

/* Chooses the next command of session s for the current phase. Returns
 * false if there is none to issue now. */
static bool bench_pick(struct bench_run *r, struct bench_session *s, uint64_t *chunk,
		       bool *is_read, uint32_t *gen)
{
	uint64_t c = 0, tries;
	bool found = false;

	switch (r->phase) {
	case PH_PREFILL:
		if (r->cursor >= r->nchunks)
			return false;
		*chunk = r->cursor++;
		*is_read = false;
		*gen = 1;
		return true;
	case PH_READBACK:
		while (r->cursor < r->nchunks &&
		       (r->gens[r->cursor] == GEN_NONE || r->gens[r->cursor] == GEN_UNKNOWN))
			r->cursor++;
		if (r->cursor >= r->nchunks)
			return false;
		*chunk = r->cursor++;
		*is_read = true;
		*gen = r->gens[*chunk];
		return true;
	case PH_RUN:
		break;
	default:
		return false;
	}

	if (r->o.read_pct >= 100)
		*is_read = true;
	else if (r->o.read_pct <= 0)
		*is_read = false;
	else
		*is_read = bench_rand_below(r, 100) < (uint64_t)r->o.read_pct;

	/* --verify: one command per chunk at a time, so what a read expects
	 * is known; other chunks are tried, a bounded number of them. */
	tries = r->nchunks < 64 ? r->nchunks : 64;
	while (tries-- > 0) {
		if (r->o.random) {
			c = bench_rand_below(r, r->nchunks);
		} else {
			c = s->seq_next;
			s->seq_next = c + 1 < r->nchunks ? c + 1 : 0;
		}
		if (!r->o.verify || !r->busy[c]) {
			found = true;
			break;
		}
	}
	if (!found)
		return false;
	*chunk = c;
	if (!r->o.verify)
		*gen = GEN_NONE;
	else if (*is_read)
		*gen = r->gens[c];
	else
		*gen = ++r->next_gen == GEN_UNKNOWN ? (r->next_gen = 2) : r->next_gen;
	return true;
}

static bool bench_issue(struct bench_run *r, struct bench_session *s)
{
	struct bench_slot *slot;
	uint64_t chunk, lba;
	uint32_t gen;
	bool is_read;
	int idx;

	if (s->n_free == 0 || !bench_pick(r, s, &chunk, &is_read, &gen))
		return false;
	idx = s->free_slots[--s->n_free];
	slot = &s->slots[idx];
	slot->chunk = chunk;
	slot->is_read = is_read;
	slot->gen = gen;
	lba = chunk * r->blocks_per_io;
	if (!is_read && r->o.verify)
		pattern_fill(slot->buf, lba, r->blocks_per_io, r->block_size, gen);
	slot->iov.iov_base = slot->buf;
	slot->iov.iov_len = r->o.bs;
	if (r->o.verify)
		r->busy[chunk] = 1;
	s->inflight++;
	slot->t_submit = now_ns();
	if (is_read)
		slot->task = iscsi_read16_iov_task(s->iscsi, r->lun, lba, r->o.bs, (int)r->block_size,
						   0, 0, 0, 0, 0, bench_io_cb, slot, &slot->iov, 1);
	else
		slot->task = iscsi_write16_iov_task(s->iscsi, r->lun, lba, NULL, r->o.bs,
						    (int)r->block_size, 0, 0, 0, 0, 0,
						    bench_io_cb, slot, &slot->iov, 1);
	if (slot->task == NULL) {
		bench_error(r, "session %d: cannot queue %s at LBA %" PRIu64 ": %s", s->index,
			    is_read ? "READ(16)" : "WRITE(16)", lba, iscsi_get_error(s->iscsi));
		if (r->o.verify) {
			r->busy[chunk] = 0;
			if (!is_read)
				r->gens[chunk] = GEN_UNKNOWN;
		}
		s->inflight--;
		s->free_slots[s->n_free++] = idx;
		s->state = SESS_FAILED;
		s->cancel_pending = true;
		return false;
	}
	return true;
}

static bool bench_issuing(const struct bench_run *r)
{
	if (r->phase == PH_RUN)
		return !r->stopped_early && !bench_stop;
	return r->phase == PH_PREFILL || r->phase == PH_READBACK;
}

static void bench_fill(struct bench_run *r)
{
	int i;

	if (!bench_issuing(r))
		return;
	for (i = 0; i < r->o.sessions; i++) {
		struct bench_session *s = &r->sess[i];

		if (s->state != SESS_READY)
			continue;
		while (s->inflight < r->o.qd && bench_issue(r, s))
			;
	}
}

/* ---- the poll loop ------------------------------------------------------- */

static bool sess_polled(const struct bench_session *s)
{
	return s->state == SESS_CONNECTING || s->state == SESS_READY ||
	       s->state == SESS_LOGGING_OUT;
}

static void bench_session_failed(struct bench_run *r, struct bench_session *s, const char *why)
{
	if (s->state == SESS_FAILED || s->state == SESS_DONE)
		return;
	if (s->state == SESS_LOGGING_OUT) {
		/* a target may close the connection right after the Logout Response */
		s->state = SESS_DONE;
		return;
	}
	bench_error(r, "session %d: %s: %s", s->index, why, iscsi_get_error(s->iscsi));
	s->state = SESS_FAILED;
	s->cancel_pending = true;
}

/* One round: poll every live session, service what is ready, refill queues.
 * Returns false on a poll() failure. */
static bool bench_poll_once(struct bench_run *r, int timeout_ms)
{
	static uint64_t last_tick;
	uint64_t now;
	int i, n = 0, rc;

	for (i = 0; i < r->o.sessions; i++) {
		struct bench_session *s = &r->sess[i];
		int ev;

		if (s->cancel_pending) {
			/* libiscsi completes what was in flight with CANCELLED */
			s->cancel_pending = false;
			iscsi_scsi_cancel_all_tasks(s->iscsi);
		}
		if (!sess_polled(s))
			continue;
		ev = iscsi_which_events(s->iscsi);
		if (ev == 0)
			continue;	/* libiscsi asks to wait; our timeout brings it back */
		r->pfd[n].fd = iscsi_get_fd(s->iscsi);
		r->pfd[n].events = (short)ev;
		r->pfd[n].revents = 0;
		r->pfd_sess[n] = i;
		n++;
	}
	rc = poll(r->pfd, (nfds_t)n, timeout_ms);
	if (rc < 0 && errno != EINTR) {
		bench_fatal("poll: %s", strerror(errno));
		return false;
	}
	for (i = 0; rc > 0 && i < n; i++) {
		struct bench_session *s = &r->sess[r->pfd_sess[i]];

		if (r->pfd[i].revents == 0 || !sess_polled(s))
			continue;
		if (iscsi_service(s->iscsi, r->pfd[i].revents) < 0)
			bench_session_failed(r, s, "connection failed");
	}
	/* libiscsi checks command timeouts only when serviced */
	now = now_ns();
	if (now - last_tick >= NS_PER_S) {
		last_tick = now;
		for (i = 0; i < r->o.sessions; i++) {
			struct bench_session *s = &r->sess[i];

			if (sess_polled(s) && iscsi_service(s->iscsi, 0) < 0)
				bench_session_failed(r, s, "connection failed");
		}
	}
	bench_fill(r);
	return true;
}

static int bench_inflight(const struct bench_run *r)
{
	int i, n = 0;

	for (i = 0; i < r->o.sessions; i++)
		n += r->sess[i].inflight;
	return n;
}

static int bench_ready(const struct bench_run *r)
{
	int i, n = 0;

	for (i = 0; i < r->o.sessions; i++)
		n += r->sess[i].state == SESS_READY;
	return n;
}

static int ms_until(uint64_t deadline)
{
	uint64_t now = now_ns();

	if (now >= deadline)
		return 0;
	if (deadline - now >= (uint64_t)BENCH_POLL_MS * 1000000ull)
		return BENCH_POLL_MS;
	return (int)((deadline - now + 999999) / 1000000);
}

/* ---- connect, capacity, logout ------------------------------------------- */

static void bench_connect_cb(struct iscsi_context *iscsi, int status, void *command_data,
			     void *private_data)
{
	struct bench_session *s = private_data;

	(void)iscsi;
	(void)command_data;
	if (s->run->closing)
		return;
	if (s->state == SESS_CONNECTING) {
		if (status == SCSI_STATUS_GOOD) {
			s->state = SESS_READY;
		} else {
			bench_error(s->run, "session %d: login to %s at %s failed: %s", s->index,
				    s->run->target, s->run->portal, iscsi_get_error(s->iscsi));
			s->state = SESS_FAILED;
		}
	} else if (status != SCSI_STATUS_GOOD) {
		/* libiscsi calls again when an established connection fails */
		bench_session_failed(s->run, s, "connection lost");
	}
}

static void bench_capacity_cb(struct iscsi_context *iscsi, int status, void *command_data,
			      void *private_data)
{
	struct bench_session *s = private_data;
	struct bench_run *r = s->run;
	struct scsi_task *task = command_data;
	struct scsi_readcapacity16 *rc16;

	(void)iscsi;
	if (r->closing)
		goto out;
	r->capacity_done = true;
	if (!bench_task_ok(r, s, status, task, "READ CAPACITY(16)", NULL))
		goto out;
	rc16 = scsi_datain_unmarshall(task);
	if (rc16 == NULL) {
		bench_error(r, "session %d: READ CAPACITY(16): cannot parse the reply", s->index);
		goto out;
	}
	r->block_size = rc16->block_length;
	r->lun_blocks = rc16->returned_lba + 1;
out:
	if (task != NULL)
		scsi_free_scsi_task(task);
}

static void bench_logout_cb(struct iscsi_context *iscsi, int status, void *command_data,
			    void *private_data)
{
	struct bench_session *s = private_data;

	(void)iscsi;
	(void)command_data;
	if (s->state == SESS_LOGGING_OUT)
		s->state = SESS_DONE;
	if (status != SCSI_STATUS_GOOD && !s->run->closing)
		fprintf(stderr, "spt-bench: session %d: logout: %s\n", s->index,
			iscsi_get_error(s->iscsi));
}

static bool bench_connect(struct bench_run *r)
{
	uint64_t deadline;
	uint32_t isid_rand;
	int i, connecting;

	/* Distinct ISIDs (RFC 7143 10.12.5) make distinct sessions of one
	 * initiator name; the random part keeps two bench processes apart. */
	isid_rand = (uint32_t)(mix64((uint64_t)getpid() ^ now_ns()) & 0xffffff);
	for (i = 0; i < r->o.sessions; i++) {
		struct bench_session *s = &r->sess[i];
		struct iscsi_context *ctx = iscsi_create_context(r->o.initiator);

		if (ctx == NULL) {
			bench_fatal("cannot create an iSCSI context");
			return false;
		}
		s->iscsi = ctx;
		s->state = SESS_CONNECTING;
		if (iscsi_set_targetname(ctx, r->target) != 0 ||
		    iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL) != 0 ||
		    iscsi_set_header_digest(ctx, r->o.digest == DIGEST_CRC32C ?
					    ISCSI_HEADER_DIGEST_CRC32C :
					    ISCSI_HEADER_DIGEST_NONE) != 0 ||
		    iscsi_set_isid_random(ctx, isid_rand, (uint32_t)i) != 0 ||
		    (r->user[0] != '\0' &&
		     iscsi_set_initiator_username_pwd(ctx, r->user, r->passwd) != 0)) {
			bench_fatal("session %d: cannot set up the context: %s", i,
				    iscsi_get_error(ctx));
			return false;
		}
		/* a lost connection is an error to report, not to paper over */
		iscsi_set_noautoreconnect(ctx, 1);
		iscsi_set_timeout(ctx, r->o.timeout_s);
		if (iscsi_full_connect_async(ctx, r->portal, r->lun, bench_connect_cb, s) != 0) {
			bench_fatal("session %d: cannot start connecting to %s: %s", i, r->portal,
				    iscsi_get_error(ctx));
			s->state = SESS_FAILED;
			return false;
		}
	}
	deadline = now_ns() + (uint64_t)r->o.timeout_s * NS_PER_S;
	for (;;) {
		connecting = 0;
		for (i = 0; i < r->o.sessions; i++)
			connecting += r->sess[i].state == SESS_CONNECTING;
		if (connecting == 0 || bench_stop)
			break;
		if (now_ns() >= deadline) {
			bench_fatal("%d of %d sessions not logged in after %d s", connecting,
				    r->o.sessions, r->o.timeout_s);
			return false;
		}
		if (!bench_poll_once(r, ms_until(deadline)))
			return false;
	}
	if (bench_ready(r) != r->o.sessions) {
		bench_fatal("%d of %d sessions logged in", bench_ready(r), r->o.sessions);
		return false;
	}
	return true;
}

static bool bench_read_capacity(struct bench_run *r)
{
	struct bench_session *s = &r->sess[0];
	uint64_t deadline = now_ns() + (uint64_t)r->o.timeout_s * NS_PER_S;

	r->phase = PH_CAPACITY;
	if (iscsi_readcapacity16_task(s->iscsi, r->lun, bench_capacity_cb, s) == NULL) {
		bench_fatal("cannot queue READ CAPACITY(16): %s", iscsi_get_error(s->iscsi));
		return false;
	}
	while (!r->capacity_done && s->state == SESS_READY && !bench_stop && now_ns() < deadline)
		if (!bench_poll_once(r, ms_until(deadline)))
			return false;
	if (r->block_size == 0 || r->lun_blocks == 0) {
		bench_fatal("no capacity for LUN %d (READ CAPACITY(16) failed)", r->lun);
		return false;
	}
	return true;
}

static void bench_logout(struct bench_run *r)
{
	uint64_t deadline = now_ns() + BENCH_LOGOUT_WAIT_S * NS_PER_S;
	int i, pending;

	for (i = 0; i < r->o.sessions; i++) {
		struct bench_session *s = &r->sess[i];

		if (s->state != SESS_READY)
			continue;
		if (iscsi_logout_async(s->iscsi, bench_logout_cb, s) == 0)
			s->state = SESS_LOGGING_OUT;
	}
	for (;;) {
		pending = 0;
		for (i = 0; i < r->o.sessions; i++)
			pending += r->sess[i].state == SESS_LOGGING_OUT;
		if (pending == 0 || now_ns() >= deadline)
			break;
		if (!bench_poll_once(r, ms_until(deadline)))
			break;
	}
	if (pending > 0)
		fprintf(stderr, "spt-bench: %d sessions did not finish logging out\n", pending);
}

/* ---- phases ------------------------------------------------------------ */

/* Runs until nothing is left to issue and nothing is in flight (prefill,
 * read-back, drain), bounded by --timeout since the last completion. */
static bool bench_run_to_completion(struct bench_run *r, enum bench_phase phase)
{
	uint64_t last_total, deadline;
	int inflight;

	r->phase = phase;
	r->cursor = 0;
	bench_fill(r);
	last_total = r->ios_total + r->errors;
	deadline = now_ns() + (uint64_t)r->o.timeout_s * NS_PER_S;
	for (;;) {
		inflight = bench_inflight(r);
		if (inflight == 0 && (!bench_issuing(r) || bench_ready(r) == 0 ||
				      r->cursor >= r->nchunks))
			return true;
		if (bench_stop && phase != PH_DRAIN)
			return false;
		if (r->ios_total + r->errors != last_total) {
			last_total = r->ios_total + r->errors;
			deadline = now_ns() + (uint64_t)r->o.timeout_s * NS_PER_S;
		}
		if (now_ns() >= deadline) {
			r->errors += (uint64_t)inflight;
			bench_fatal("%d commands had no response within %d s", inflight,
				    r->o.timeout_s);
			return false;
		}
		if (!bench_poll_once(r, ms_until(deadline)))
			return false;
	}
}

static void bench_measure(struct bench_run *r)
{
	uint64_t t0 = now_ns();
	uint64_t t_meas = t0 + (uint64_t)(r->o.warmup_s * 1e9);
	uint64_t t_end = t_meas + (uint64_t)(r->o.duration_s * 1e9);
	uint64_t interval = (uint64_t)(r->o.interval_s * 1e9);
	uint64_t next_report = t0 + interval, last_ios = 0, last_t = t0, now;
	int timeout;

	r->phase = PH_RUN;
	bench_fill(r);
	for (;;) {
		now = now_ns();
		if (!r->measuring && now >= t_meas) {
			cpu_sample(r, &r->cpu0);
			r->win_start = now_ns();
			r->measuring = true;
		}
		if (now >= t_end || bench_stop || r->stopped_early || bench_ready(r) == 0) {
			if (r->measuring) {
				r->win_end = now_ns();
				cpu_sample(r, &r->cpu1);
				r->measuring = false;
			}
			if (now < t_end)
				r->stopped_early = true;
			break;
		}
		if (interval > 0 && now >= next_report) {
			fprintf(stderr, "spt-bench: %6.1f s  %10.0f IOPS%s\n", (double)(now - t0) / 1e9,
				(double)(r->ios_total - last_ios) * 1e9 / (double)(now - last_t),
				now < t_meas ? "  (warm-up)" : "");
			last_ios = r->ios_total;
			last_t = now;
			next_report += interval;
		}
		timeout = ms_until(now < t_meas ? t_meas : t_end);
		if (!bench_poll_once(r, timeout))
			break;
	}
}

/* ---- setup and report ---------------------------------------------------- */

static bool parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || s[0] == '-')
		return false;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	default: return false;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end != '\0' || v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > BENCH_MAX_DURATION_S)
		return false;
	*out = v;
	return true;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: spt-bench [options] iscsi://[user[%%password]@]HOST[:PORT]/TARGET-IQN/LUN\n"
"workload:\n"
"  --rw read|write|mixed    what to issue (default read)\n"
"  --mix PCT                percentage of reads for --rw mixed (default 70; implies mixed)\n"
"  --pattern random|seq     offsets: uniformly random or sequential (default random)\n"
"  --random, --seq          the same as --pattern random / seq\n"
"  --bs SIZE                bytes per command, a multiple of the LUN's block size\n"
"                           (default 4k; suffixes k, m)\n"
"  --qd N                   commands in flight per session (default 32, at most %d)\n"
"  --sessions N             sessions, each its own connection (default 1, at most %d)\n"
"  --duration SEC           measured time (default 10)\n"
"  --warmup SEC             time run before measuring (default 2)\n"
"  --range SIZE             use only the first SIZE bytes of the LUN (default: all)\n"
"checking:\n"
"  --verify                 writes carry a pattern from LBA and generation; reads of data\n"
"                           written in this run are checked, and all of it is read back\n"
"                           and checked at the end\n"
"  --prefill                write the whole range (generation 1) before the run\n"
"  --prefilled              trust that an earlier --prefill run with the same --bs and\n"
"                           --range left generation 1 there, and check reads against it\n"
"  --max-errors N           stop the run after N errors (default 100, 0 = never)\n"
"  --timeout SEC            a command without response after SEC fails (default 30)\n"
"connection and reporting:\n"
"  --initiator IQN          initiator name (default %s)\n"
"  --digest none|crc32c     header digest to ask for (default none)\n"
"  --server-pid PID         report this process's CPU time per I/O (from /proc; repeatable,\n"
"                           the times add up)\n"
"  --label TEXT             tag for the RESULT line\n"
"  --interval SEC           print the IOPS every SEC seconds on stderr (default 0 = off)\n"
"  --seed N                 offsets generator seed (default 1)\n"
"The last line of the output is RESULT key=value ...; exit status 0 if every command\n"
"succeeded and every check matched, 1 if not, 2 on a usage or setup error.\n",
		BENCH_MAX_QD, BENCH_MAX_SESSIONS, BENCH_DEFAULT_INITIATOR);
}

enum {
	OPT_RW = 256, OPT_MIX, OPT_PATTERN, OPT_RANDOM, OPT_SEQ, OPT_BS, OPT_QD, OPT_SESSIONS,
	OPT_DURATION, OPT_WARMUP, OPT_RANGE, OPT_VERIFY, OPT_PREFILL, OPT_PREFILLED,
	OPT_MAX_ERRORS, OPT_TIMEOUT, OPT_INITIATOR, OPT_DIGEST, OPT_SERVER_PID, OPT_LABEL,
	OPT_INTERVAL, OPT_SEED, OPT_HELP
};

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "rw", required_argument, NULL, OPT_RW },
		{ "mix", required_argument, NULL, OPT_MIX },
		{ "pattern", required_argument, NULL, OPT_PATTERN },
		{ "random", no_argument, NULL, OPT_RANDOM },
		{ "seq", no_argument, NULL, OPT_SEQ },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "qd", required_argument, NULL, OPT_QD },
		{ "sessions", required_argument, NULL, OPT_SESSIONS },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "range", required_argument, NULL, OPT_RANGE },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "prefill", no_argument, NULL, OPT_PREFILL },
		{ "prefilled", no_argument, NULL, OPT_PREFILLED },
		{ "max-errors", required_argument, NULL, OPT_MAX_ERRORS },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "initiator", required_argument, NULL, OPT_INITIATOR },
		{ "digest", required_argument, NULL, OPT_DIGEST },
		{ "server-pid", required_argument, NULL, OPT_SERVER_PID },
		{ "label", required_argument, NULL, OPT_LABEL },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 }
	};
	bool rw_mixed = false, mix_given = false;
	uint64_t size;
	long v;
	int c;
	const char *p;

	memset(o, 0, sizeof(*o));
	o->initiator = BENCH_DEFAULT_INITIATOR;
	o->label = "-";
	o->read_pct = 100;
	o->random = true;
	o->bs = 4096;
	o->qd = 32;
	o->sessions = 1;
	o->duration_s = 10;
	o->warmup_s = 2;
	o->seed = 1;
	o->timeout_s = 30;
	o->max_errors = 100;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_RW:
			if (strcmp(optarg, "read") == 0) {
				o->read_pct = 100;
				rw_mixed = false;
			} else if (strcmp(optarg, "write") == 0) {
				o->read_pct = 0;
				rw_mixed = false;
			} else if (strcmp(optarg, "mixed") == 0) {
				rw_mixed = true;
			} else {
				bench_fatal("--rw: '%s' is not read, write or mixed", optarg);
				return 2;
			}
			break;
		case OPT_MIX:
			if (!parse_long(optarg, 0, 100, &v)) {
				bench_fatal("--mix: '%s' is not a percentage 0..100", optarg);
				return 2;
			}
			o->read_pct = (int)v;
			mix_given = true;
			rw_mixed = true;
			break;
		case OPT_PATTERN:
			if (strcmp(optarg, "random") == 0 || strcmp(optarg, "rand") == 0)
				o->random = true;
			else if (strcmp(optarg, "seq") == 0 || strcmp(optarg, "sequential") == 0)
				o->random = false;
			else {
				bench_fatal("--pattern: '%s' is not random or seq", optarg);
				return 2;
			}
			break;
		case OPT_RANDOM: o->random = true; break;
		case OPT_SEQ: o->random = false; break;
		case OPT_BS:
			if (!parse_size(optarg, &size) || size == 0 || size > BENCH_MAX_BS) {
				bench_fatal("--bs: '%s' is not a size from 1 to %u bytes", optarg,
					    BENCH_MAX_BS);
				return 2;
			}
			o->bs = (uint32_t)size;
			break;
		case OPT_QD:
			if (!parse_long(optarg, 1, BENCH_MAX_QD, &v)) {
				bench_fatal("--qd: '%s' is not a number from 1 to %d", optarg,
					    BENCH_MAX_QD);
				return 2;
			}
			o->qd = (int)v;
			break;
		case OPT_SESSIONS:
			if (!parse_long(optarg, 1, BENCH_MAX_SESSIONS, &v)) {
				bench_fatal("--sessions: '%s' is not a number from 1 to %d", optarg,
					    BENCH_MAX_SESSIONS);
				return 2;
			}
			o->sessions = (int)v;
			break;
		case OPT_DURATION:
			if (!parse_seconds(optarg, &o->duration_s) || o->duration_s <= 0) {
				bench_fatal("--duration: '%s' is not a time in seconds above 0", optarg);
				return 2;
			}
			break;
		case OPT_WARMUP:
			if (!parse_seconds(optarg, &o->warmup_s)) {
				bench_fatal("--warmup: '%s' is not a time in seconds", optarg);
				return 2;
			}
			break;
		case OPT_RANGE:
			if (!parse_size(optarg, &o->range_bytes) || o->range_bytes == 0) {
				bench_fatal("--range: '%s' is not a size above 0", optarg);
				return 2;
			}
			break;
		case OPT_VERIFY: o->verify = true; break;
		case OPT_PREFILL: o->prefill = true; break;
		case OPT_PREFILLED: o->prefilled = true; break;
		case OPT_MAX_ERRORS:
			if (!parse_long(optarg, 0, LONG_MAX, &v)) {
				bench_fatal("--max-errors: '%s' is not a count", optarg);
				return 2;
			}
			o->max_errors = (uint64_t)v;
			break;
		case OPT_TIMEOUT:
			if (!parse_long(optarg, 1, 3600, &v)) {
				bench_fatal("--timeout: '%s' is not a number of seconds 1..3600", optarg);
				return 2;
			}
			o->timeout_s = (int)v;
			break;
		case OPT_INITIATOR:
			if (optarg[0] == '\0' || strlen(optarg) > MAX_STRING_SIZE) {
				bench_fatal("--initiator: the name must have 1 to %d characters",
					    MAX_STRING_SIZE);
				return 2;
			}
			o->initiator = optarg;
			break;
		case OPT_DIGEST:
			if (strcmp(optarg, "none") == 0)
				o->digest = DIGEST_NONE;
			else if (strcmp(optarg, "crc32c") == 0)
				o->digest = DIGEST_CRC32C;
			else {
				bench_fatal("--digest: '%s' is not none or crc32c", optarg);
				return 2;
			}
			break;
		case OPT_SERVER_PID:
			if (o->n_server_pids >= BENCH_MAX_SERVER_PIDS ||
			    !parse_long(optarg, 1, INT_MAX, &v)) {
				bench_fatal("--server-pid: '%s' is not a process id (at most %d of them)",
					    optarg, BENCH_MAX_SERVER_PIDS);
				return 2;
			}
			o->server_pids[o->n_server_pids++] = (int)v;
			break;
		case OPT_LABEL:
			if (optarg[0] == '\0' || strlen(optarg) > BENCH_LABEL_MAX) {
				bench_fatal("--label: 1 to %d characters", BENCH_LABEL_MAX);
				return 2;
			}
			for (p = optarg; *p != '\0'; p++)
				if (*p <= ' ' || *p == '=' || *p > '~') {
					bench_fatal("--label: no spaces, '=' or control characters");
					return 2;
				}
			o->label = optarg;
			break;
		case OPT_INTERVAL:
			if (!parse_seconds(optarg, &o->interval_s)) {
				bench_fatal("--interval: '%s' is not a time in seconds", optarg);
				return 2;
			}
			break;
		case OPT_SEED:
			if (!parse_size(optarg, &o->seed)) {
				bench_fatal("--seed: '%s' is not a number", optarg);
				return 2;
			}
			break;
		case OPT_HELP:
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (rw_mixed && !mix_given)
		o->read_pct = 70;
	if (optind != argc - 1) {
		bench_fatal(optind >= argc ? "no LUN URL given" : "more than one LUN URL given");
		usage(stderr);
		return 2;
	}
	o->url = argv[optind];
	if (o->prefill && o->prefilled) {
		bench_fatal("--prefill and --prefilled exclude each other");
		return 2;
	}
	return 0;
}

static bool bench_parse_url(struct bench_run *r)
{
	struct iscsi_context *ctx = iscsi_create_context(r->o.initiator);
	struct iscsi_url *u;
	bool ok = false;

	if (ctx == NULL) {
		bench_fatal("cannot create an iSCSI context");
		return false;
	}
	u = iscsi_parse_full_url(ctx, r->o.url);
	if (u == NULL) {
		bench_fatal("bad LUN URL '%s': %s", r->o.url, iscsi_get_error(ctx));
		goto out;
	}
	snprintf(r->portal, sizeof(r->portal), "%s", u->portal);
	snprintf(r->target, sizeof(r->target), "%s", u->target);
	snprintf(r->user, sizeof(r->user), "%s", u->user);
	snprintf(r->passwd, sizeof(r->passwd), "%s", u->passwd);
	r->lun = u->lun;
	iscsi_destroy_url(u);
	ok = true;
out:
	iscsi_destroy_context(ctx);
	return ok;
}

static bool bench_alloc(struct bench_run *r)
{
	int j;

	r->sess = calloc((size_t)r->o.sessions, sizeof(*r->sess));
	r->pfd = calloc((size_t)r->o.sessions, sizeof(*r->pfd));
	r->pfd_sess = calloc((size_t)r->o.sessions, sizeof(*r->pfd_sess));
	if (r->sess == NULL || r->pfd == NULL || r->pfd_sess == NULL)
		return false;
	for (j = 0; j < r->o.sessions; j++) {
		struct bench_session *s = &r->sess[j];

		s->run = r;
		s->index = j;
		s->state = SESS_DONE;
		s->slots = calloc((size_t)r->o.qd, sizeof(*s->slots));
		s->free_slots = calloc((size_t)r->o.qd, sizeof(*s->free_slots));
		if (s->slots == NULL || s->free_slots == NULL)
			return false;
	}
	return true;
}

/* Buffers need the block size, known only after READ CAPACITY. */
static bool bench_alloc_buffers(struct bench_run *r)
{
	size_t per = (size_t)r->o.bs + (r->o.verify ? r->block_size : 0);
	size_t nslots = (size_t)r->o.sessions * (size_t)r->o.qd;
	void *mem;
	size_t n;
	int j, k;

	per = (per + 4095) & ~(size_t)4095;
	if (nslots > SIZE_MAX / per || posix_memalign(&mem, 4096, nslots * per) != 0)
		return false;
	r->data_buffers = mem;
	/* data for unchecked writes: not zeros, not compressible */
	for (n = 0; n + 8 <= nslots * per; n += 8) {
		uint64_t w = mix64(n ^ 0x5bd1e995ull);

		memcpy(r->data_buffers + n, &w, 8);
	}
	for (j = 0; j < r->o.sessions; j++) {
		struct bench_session *s = &r->sess[j];

		for (k = 0; k < r->o.qd; k++) {
			s->slots[k].sess = s;
			s->slots[k].buf = r->data_buffers + ((size_t)j * (size_t)r->o.qd + (size_t)k) * per;
			s->free_slots[k] = r->o.qd - 1 - k;
		}
		s->n_free = r->o.qd;
		s->seq_next = r->nchunks * (uint64_t)j / (uint64_t)r->o.sessions;
	}
	if (r->o.verify || r->o.prefill || r->o.prefilled) {
		r->gens = calloc(r->nchunks, sizeof(*r->gens));
		r->busy = calloc(r->nchunks, sizeof(*r->busy));
		if (r->gens == NULL || r->busy == NULL)
			return false;
	}
	return true;
}

static void bench_free(struct bench_run *r)
{
	int j;

	r->closing = true;
	if (r->sess != NULL) {
		for (j = 0; j < r->o.sessions; j++) {
			/* completes what is still in flight with CANCELLED */
			if (r->sess[j].iscsi != NULL)
				iscsi_destroy_context(r->sess[j].iscsi);
		}
		for (j = 0; j < r->o.sessions; j++) {
			free(r->sess[j].slots);
			free(r->sess[j].free_slots);
		}
	}
	free(r->sess);
	free(r->pfd);
	free(r->pfd_sess);
	free(r->data_buffers);
	free(r->gens);
	free(r->busy);
}

static void bench_report(struct bench_run *r)
{
	double win = r->win_end > r->win_start ? (double)(r->win_end - r->win_start) / 1e9 : 0;
	double iops = win > 0 ? (double)r->ios / win : 0;
	double bps = win > 0 ? (double)r->bytes / win : 0;
	double mean = r->hist.n ? r->hist.sum / (double)r->hist.n / 1e3 : 0;
	double p50 = (double)hist_percentile(&r->hist, 0.50) / 1e3;
	double p99 = (double)hist_percentile(&r->hist, 0.99) / 1e3;
	double p999 = (double)hist_percentile(&r->hist, 0.999) / 1e3;
	double lmin = (double)r->hist.min / 1e3, lmax = (double)r->hist.max / 1e3;
	double cli = r->cpu1.client_s - r->cpu0.client_s;
	bool srv = r->cpu0.server_ok && r->cpu1.server_ok && win > 0;
	double srv_s = srv ? r->cpu1.server_s - r->cpu0.server_s : 0;
	const char *rw = r->o.read_pct >= 100 ? "read" : r->o.read_pct <= 0 ? "write" : "mixed";
	char srv_per_io[32], srv_util[32], srv_cpu[32], host_busy[32];
	bool ok = r->errors == 0 && r->mismatches == 0;

	printf("spt-bench: %s (LUN %d at %s)\n", r->target, r->lun, r->portal);
	printf("  workload   %s %s, %u-byte commands, QD %d x %d session%s, range %" PRIu64
	       " bytes of %" PRIu64 " (%" PRIu32 "-byte blocks)\n",
	       rw, r->o.random ? "random" : "sequential", r->o.bs, r->o.qd, r->o.sessions,
	       r->o.sessions == 1 ? "" : "s", r->nchunks * r->o.bs,
	       r->lun_blocks * r->block_size, r->block_size);
	if (r->o.read_pct > 0 && r->o.read_pct < 100)
		printf("  mix        %d%% reads\n", r->o.read_pct);
	printf("  measured   %.2f s after %.2f s of warm-up%s\n", win, r->o.warmup_s,
	       r->stopped_early ? " (stopped early)" : "");
	printf("  rate       %.0f IOPS, %.1f MB/s (%.1f MiB/s, %.2f Gbit/s)\n", iops, bps / 1e6,
	       bps / 1048576.0, bps * 8 / 1e9);
	printf("  latency    mean %.1f us, min %.1f, p50 %.1f, p99 %.1f, p99.9 %.1f, max %.1f\n",
	       mean, lmin, p50, p99, p999, lmax);
	printf("  commands   %" PRIu64 " in the window (%" PRIu64 " reads, %" PRIu64 " writes), %"
	       PRIu64 " in all, %" PRIu64 " errors\n", r->ios, r->reads, r->writes,
	       r->ios_total, r->errors);
	if (r->o.verify)
		printf("  verify     %" PRIu64 " reads checked, %" PRIu64 " mismatches, %" PRIu64
		       " reads of data not written in this run\n", r->verified, r->mismatches,
		       r->unverified);
	if (srv) {
		snprintf(srv_cpu, sizeof(srv_cpu), "%.3f", srv_s);
		snprintf(srv_per_io, sizeof(srv_per_io), "%.2f",
			 r->ios ? srv_s * 1e6 / (double)r->ios : 0);
		snprintf(srv_util, sizeof(srv_util), "%.3f", srv_s / win);
		printf("  server     %.2f s CPU (%.0f%% of a core), %s us per command\n", srv_s,
		       100 * srv_s / win, srv_per_io);
	} else {
		snprintf(srv_cpu, sizeof(srv_cpu), "na");
		snprintf(srv_per_io, sizeof(srv_per_io), "na");
		snprintf(srv_util, sizeof(srv_util), "na");
		if (r->o.n_server_pids > 0)
			printf("  server     CPU time not readable from /proc\n");
	}
	printf("  client     %.2f s CPU (%.0f%% of a core), %.2f us per command\n", cli,
	       win > 0 ? 100 * cli / win : 0, r->ios ? cli * 1e6 / (double)r->ios : 0);
	if (r->cpu0.host_ok && r->cpu1.host_ok && win > 0) {
		snprintf(host_busy, sizeof(host_busy), "%.3f",
			 (r->cpu1.host_busy_s - r->cpu0.host_busy_s) / win);
		printf("  host       %s cores busy in all (every process, this one included)\n",
		       host_busy);
	} else {
		snprintf(host_busy, sizeof(host_busy), "na");
	}
	printf("RESULT label=%s rw=%s read_pct=%d pattern=%s bs=%u qd=%d sessions=%d "
	       "block_size=%u window_s=%.3f ios=%" PRIu64 " reads=%" PRIu64 " writes=%" PRIu64
	       " iops=%.1f mb_s=%.2f mib_s=%.2f gbit_s=%.3f lat_mean_us=%.1f lat_min_us=%.1f "
	       "lat_p50_us=%.1f lat_p99_us=%.1f lat_p999_us=%.1f lat_max_us=%.1f "
	       "srv_cpu_s=%s srv_cpu_us_per_io=%s srv_cpu_util=%s cli_cpu_us_per_io=%.2f "
	       "cli_cpu_util=%.3f host_busy_cores=%s "
	       "errors=%" PRIu64 " mismatches=%" PRIu64 " verified=%" PRIu64 " unverified=%" PRIu64
	       " stopped_early=%d status=%s\n",
	       r->o.label, rw, r->o.read_pct, r->o.random ? "random" : "seq", r->o.bs, r->o.qd,
	       r->o.sessions, r->block_size, win, r->ios, r->reads, r->writes, iops, bps / 1e6,
	       bps / 1048576.0, bps * 8 / 1e9, mean, lmin, p50, p99, p999, lmax, srv_cpu,
	       srv_per_io, srv_util, r->ios ? cli * 1e6 / (double)r->ios : 0,
	       win > 0 ? cli / win : 0, host_busy, r->errors,
	       r->mismatches, r->verified, r->unverified, r->stopped_early ? 1 : 0,
	       ok ? "ok" : "errors");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static struct bench_run run;	/* the histogram is large: not on the stack */
	struct bench_run *r = &run;
	struct sigaction sa;
	uint64_t range, c;
	int rc;

	rc = parse_opts(argc, argv, &r->o);
	if (rc != 0)
		return rc == 1 ? 0 : 2;
	rc = 2;
	r->rng = r->o.seed;
	r->next_gen = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bench_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!bench_parse_url(r))
		goto out;
	if (!bench_alloc(r)) {
		bench_fatal("out of memory");
		goto out;
	}
	r->phase = PH_CONNECT;
	if (!bench_connect(r) || !bench_read_capacity(r))
		goto out;

	if (r->o.bs % r->block_size != 0) {
		bench_fatal("--bs %u is not a multiple of the LUN's %u-byte blocks", r->o.bs,
			    r->block_size);
		goto out;
	}
	if (r->block_size % 8 != 0) {
		bench_fatal("the LUN's %u-byte blocks are not a multiple of 8 bytes", r->block_size);
		goto out;
	}
	range = r->lun_blocks * r->block_size;
	if (r->o.range_bytes > 0) {
		if (r->o.range_bytes > range) {
			bench_fatal("--range %" PRIu64 " is larger than the LUN (%" PRIu64 " bytes)",
				    r->o.range_bytes, range);
			goto out;
		}
		range = r->o.range_bytes;
	}
	r->blocks_per_io = r->o.bs / r->block_size;
	r->nchunks = range / r->o.bs;
	if (r->nchunks == 0) {
		bench_fatal("the range (%" PRIu64 " bytes) holds no %u-byte command", range, r->o.bs);
		goto out;
	}
	if ((r->o.verify || r->o.prefill || r->o.prefilled) &&
	    r->nchunks > BENCH_MAX_VERIFY_CHUNKS) {
		bench_fatal("--verify and --prefill track at most %llu commands' worth of range; "
			    "use --range or a larger --bs", BENCH_MAX_VERIFY_CHUNKS);
		goto out;
	}
	if (!bench_alloc_buffers(r)) {
		bench_fatal("out of memory for the data buffers");
		goto out;
	}
	if (r->o.verify && r->nchunks < (uint64_t)r->o.sessions * (uint64_t)r->o.qd)
		fprintf(stderr, "spt-bench: note: with --verify only one command per %u-byte "
			"range is in flight; the range holds %" PRIu64 " of them, fewer than "
			"%d sessions x QD %d\n", r->o.bs, r->nchunks, r->o.sessions, r->o.qd);

	if (r->o.prefill) {
		if (!bench_run_to_completion(r, PH_PREFILL) || r->errors > 0) {
			bench_fatal("prefill failed");
			rc = 1;
			goto report;
		}
	} else if (r->o.prefilled) {
		for (c = 0; c < r->nchunks; c++)
			r->gens[c] = 1;
	}

	bench_measure(r);
	bench_run_to_completion(r, PH_DRAIN);
	/* the final read-back checks every range written, unless the run was cut short */
	if (r->o.verify && !bench_stop && !r->stopped_early && bench_ready(r) > 0)
		bench_run_to_completion(r, PH_READBACK);
report:
	bench_logout(r);
	bench_report(r);
	rc = r->errors == 0 && r->mismatches == 0 ? 0 : 1;
out:
	bench_free(r);
	return rc;
}
