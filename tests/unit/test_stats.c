/*
 * Unit tests for statistics (issue 7): the latency histogram's buckets and
 * the task hooks of src/iscsi/stats.c, the snapshots of src/iscsi/admin.c
 * (targets as the sums of their LUNs, paging), the STATS codec of
 * src/ctl/frame.c, and the Prometheus text of src/ctl/metrics.c (families,
 * cumulative buckets, label escaping, the body's ceiling, addresses).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <netinet/in.h>

#include "ctl/frame.h"
#include "ctl/metrics.h"
#include "iscsi/admin.h"
#include "iscsi/iscsi.h"
#include "iscsi/server.h"
#include "iscsi/stats.h"

/* ------------------------------------------------------------------ */
/* histogram and command classes                                      */
/* ------------------------------------------------------------------ */

static void test_bucket_edges(void **state)
{
	(void)state;
	/* bucket i holds (2^(i-1), 2^i] microseconds; bucket 0 up to 1 us */
	assert_int_equal(iscsi_stats_bucket(0), 0);
	assert_int_equal(iscsi_stats_bucket(1), 0);
	assert_int_equal(iscsi_stats_bucket(1000), 0);
	assert_int_equal(iscsi_stats_bucket(1001), 1);
	assert_int_equal(iscsi_stats_bucket(2000), 1);
	assert_int_equal(iscsi_stats_bucket(2001), 2);
	assert_int_equal(iscsi_stats_bucket(4000), 2);
	assert_int_equal(iscsi_stats_bucket(4001), 3);
	assert_int_equal(iscsi_stats_bucket(512000), 9);
	assert_int_equal(iscsi_stats_bucket(512001), 10);
	/* the last bounded bucket: 2^24 us, about 16.8 s */
	assert_int_equal(iscsi_stats_bucket((1ull << 24) * 1000), 24);
	assert_int_equal(iscsi_stats_bucket((1ull << 24) * 1000 + 1), SPT_CTL_STATS_BUCKETS - 1);
	assert_int_equal(iscsi_stats_bucket(UINT64_MAX), SPT_CTL_STATS_BUCKETS - 1);
}

static void test_bucket_of_every_bound(void **state)
{
	(void)state;
	for (size_t i = 0; i + 1 < SPT_CTL_STATS_BUCKETS; i++) {
		uint64_t ns = iscsi_stats_bucket_bound_us(i) * 1000;

		assert_int_equal(iscsi_stats_bucket(ns), i);
		assert_int_equal(iscsi_stats_bucket(ns + 1), i + 1);
	}
	assert_int_equal(iscsi_stats_bucket_bound_us(0), 1);
	assert_int_equal(iscsi_stats_bucket_bound_us(24), 16777216);
}

static void test_command_classes(void **state)
{
	static const struct {
		uint8_t op;
		enum iscsi_stats_op want;
	} cases[] = {
		{ 0x08, ISCSI_STATS_OP_READ },  { 0x28, ISCSI_STATS_OP_READ },
		{ 0xa8, ISCSI_STATS_OP_READ },  { 0x88, ISCSI_STATS_OP_READ },
		{ 0x0a, ISCSI_STATS_OP_WRITE }, { 0x2a, ISCSI_STATS_OP_WRITE },
		{ 0xaa, ISCSI_STATS_OP_WRITE }, { 0x8a, ISCSI_STATS_OP_WRITE },
		{ 0x2e, ISCSI_STATS_OP_WRITE }, { 0xae, ISCSI_STATS_OP_WRITE },
		{ 0x8e, ISCSI_STATS_OP_WRITE }, { 0x12, ISCSI_STATS_OP_OTHER },	/* INQUIRY */
		{ 0x00, ISCSI_STATS_OP_OTHER },	/* TEST UNIT READY */
		{ 0x35, ISCSI_STATS_OP_OTHER },	/* SYNCHRONIZE CACHE */
		{ 0x2f, ISCSI_STATS_OP_OTHER },	/* VERIFY: reads nothing to the initiator */
		{ 0x93, ISCSI_STATS_OP_OTHER },	/* WRITE SAME (16) */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t cdb[16] = { cases[i].op };

		assert_int_equal(iscsi_stats_op(cdb), cases[i].want);
	}
}

static void test_lun_record_and_snapshot(void **state)
{
	struct spt_lun_stats ls;
	struct spt_ctl_stats_io io;
	struct spt_ctl_stats_latency lat;

	(void)state;
	memset(&ls, 0, sizeof(ls));
	iscsi_stats_lun_record(&ls, ISCSI_STATS_OP_READ, SPT_STATUS_GOOD, 4096, 0, 1500);
	iscsi_stats_lun_record(&ls, ISCSI_STATS_OP_WRITE, SPT_STATUS_GOOD, 0, 8192, 3000);
	iscsi_stats_lun_record(&ls, ISCSI_STATS_OP_OTHER, SPT_STATUS_CHECK_CONDITION, 0, 0, 900);
	iscsi_stats_lun_record(&ls, ISCSI_STATS_OP_OTHER, SPT_STATUS_CONDITION_MET, 0, 0, 900);
	iscsi_stats_lun_record(&ls, ISCSI_STATS_OP_READ, SPT_STATUS_TASK_SET_FULL, 0, 0, 20000000000ull);
	ls.queue_depth = 3;
	ls.aborts = 2;
	iscsi_stats_lun_snapshot(&ls, &io, &lat);
	assert_int_equal(io.commands, 5);
	assert_int_equal(io.read_commands, 2);
	assert_int_equal(io.write_commands, 1);
	assert_int_equal(io.bytes_read, 4096);
	assert_int_equal(io.bytes_written, 8192);
	/* CHECK CONDITION and TASK SET FULL; CONDITION MET is a success */
	assert_int_equal(io.errors, 2);
	assert_int_equal(io.aborts, 2);
	assert_int_equal(io.queue_depth, 3);
	assert_int_equal(lat.count, 5);
	assert_int_equal(lat.sum_ns, 1500 + 3000 + 900 + 900 + 20000000000ull);
	assert_int_equal(lat.buckets[0], 2);
	assert_int_equal(lat.buckets[1], 1);
	assert_int_equal(lat.buckets[2], 1);
	assert_int_equal(lat.buckets[SPT_CTL_STATS_BUCKETS - 1], 1);

	struct spt_ctl_stats_io sum;
	struct spt_ctl_stats_latency lsum;

	memset(&sum, 0, sizeof(sum));
	memset(&lsum, 0, sizeof(lsum));
	iscsi_stats_io_add(&sum, &io);
	iscsi_stats_io_add(&sum, &io);
	iscsi_stats_latency_add(&lsum, &lat);
	iscsi_stats_latency_add(&lsum, &lat);
	assert_int_equal(sum.commands, 10);
	assert_int_equal(sum.bytes_written, 16384);
	assert_int_equal(sum.queue_depth, 6);
	assert_int_equal(lsum.count, 10);
	assert_int_equal(lsum.buckets[0], 4);
}

/* ------------------------------------------------------------------ */
/* task hooks, on hand-made engine objects                            */
/* ------------------------------------------------------------------ */

struct hook_fixture {
	struct iscsi_target target;
	struct iscsi_session sess;
	struct iscsi_task task;
};

static struct hook_fixture *hook_fixture_new(void)
{
	struct hook_fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->target.luns.count = 2;
	f->target.luns.luns[0].lun = 0;
	f->target.luns.luns[1].lun = 5;
	f->sess.target = &f->target;
	f->task.sess = &f->sess;
	return f;
}

static void hook_task(struct hook_fixture *f, uint64_t lun, uint8_t op, bool write, uint32_t received)
{
	memset(&f->task, 0, offsetof(struct iscsi_task, cmd));
	memset(&f->task.cmd, 0, sizeof(f->task.cmd));
	f->task.sess = &f->sess;
	f->task.cmd.req.lun = lun;
	f->task.cmd.req.cdb[0] = op;
	f->task.write = write;
	f->task.received = received;
}

static void test_hooks_count_a_completed_command(void **state)
{
	struct hook_fixture *f = hook_fixture_new();
	struct spt_lun_stats *ls = &f->target.luns.luns[1].stats;

	(void)state;
	hook_task(f, 5, 0x2a, true, 65536);
	iscsi_stats_task_start(&f->task);
	assert_ptr_equal(f->task.stats_lun, &f->target.luns.luns[1]);
	assert_int_equal(ls->queue_depth, 1);
	iscsi_stats_task_status(&f->task, SPT_STATUS_GOOD, 0);
	/* a status built twice counts once */
	iscsi_stats_task_status(&f->task, SPT_STATUS_GOOD, 0);
	assert_int_equal(ls->commands, 1);
	assert_int_equal(ls->write_commands, 1);
	assert_int_equal(ls->bytes_written, 65536);
	assert_int_equal(ls->queue_depth, 1);
	iscsi_stats_task_end(&f->task);
	assert_int_equal(ls->queue_depth, 0);
	assert_int_equal(ls->aborts, 0);
	assert_int_equal(f->sess.stats.commands, 1);
	assert_int_equal(f->sess.stats.errors, 0);

	uint64_t in_buckets = 0;

	for (size_t i = 0; i < SPT_LUN_LATENCY_BUCKETS; i++)
		in_buckets += ls->latency_buckets[i];
	assert_int_equal(in_buckets, 1);
	/* LUN 0 saw nothing */
	assert_int_equal(f->target.luns.luns[0].stats.commands, 0);
	free(f);
}

static void test_hooks_count_errors_reads_and_aborts(void **state)
{
	struct hook_fixture *f = hook_fixture_new();
	struct spt_lun_stats *ls = &f->target.luns.luns[0].stats;

	(void)state;
	hook_task(f, 0, 0x28, false, 0);
	iscsi_stats_task_start(&f->task);
	iscsi_stats_task_status(&f->task, SPT_STATUS_GOOD, 4096);
	iscsi_stats_task_end(&f->task);

	hook_task(f, 0, 0xff, false, 0);	/* no such opcode: CHECK CONDITION */
	iscsi_stats_task_start(&f->task);
	iscsi_stats_task_status(&f->task, SPT_STATUS_CHECK_CONDITION, 0);
	iscsi_stats_task_end(&f->task);

	/* aborted by a TMF: its TASK ABORTED status is no command */
	hook_task(f, 0, 0x28, false, 0);
	iscsi_stats_task_start(&f->task);
	assert_int_equal(ls->queue_depth, 1);
	f->task.aborted = true;
	iscsi_stats_task_status(&f->task, SPT_STATUS_TASK_ABORTED, 0);
	iscsi_stats_task_end(&f->task);

	/* a connection loss: freed without a status */
	hook_task(f, 0, 0x2a, true, 512);
	iscsi_stats_task_start(&f->task);
	f->task.aborted = true;
	iscsi_stats_task_end(&f->task);

	assert_int_equal(ls->commands, 2);
	assert_int_equal(ls->read_commands, 1);
	assert_int_equal(ls->write_commands, 0);
	assert_int_equal(ls->bytes_read, 4096);
	assert_int_equal(ls->bytes_written, 0);
	assert_int_equal(ls->errors, 1);
	assert_int_equal(ls->aborts, 2);
	assert_int_equal(ls->queue_depth, 0);
	assert_int_equal(f->sess.stats.commands, 2);
	assert_int_equal(f->sess.stats.errors, 1);
	assert_int_equal(f->sess.stats.aborts, 2);
	free(f);
}

static void test_hooks_without_a_lun(void **state)
{
	struct hook_fixture *f = hook_fixture_new();

	(void)state;
	/* a LUN the target does not have: the session counts, no LUN does */
	hook_task(f, 9, 0x12, false, 0);
	iscsi_stats_task_start(&f->task);
	assert_null(f->task.stats_lun);
	iscsi_stats_task_status(&f->task, SPT_STATUS_CHECK_CONDITION, 0);
	iscsi_stats_task_end(&f->task);
	assert_int_equal(f->sess.stats.commands, 1);
	assert_int_equal(f->sess.stats.errors, 1);
	assert_int_equal(f->target.luns.luns[0].stats.commands, 0);
	assert_int_equal(f->target.luns.luns[1].stats.commands, 0);
	free(f);
}

/* ------------------------------------------------------------------ */
/* snapshots                                                          */
/* ------------------------------------------------------------------ */

struct admin_fixture {
	struct ev_loop *loop;
	struct iscsi_server *srv;
	struct iscsi_admin *admin;
	struct iscsi_session *sess;
};

/* LUNs that only count: nothing to close */
static const struct spt_provider_ops counting_ops = { .name = "counting" };

static int setup_admin(void **state)
{
	struct admin_fixture *f = calloc(1, sizeof(*f));
	static const char *const names[] = { "iqn.2026-11.org.spt:b", "iqn.2026-11.org.spt:a" };

	assert_non_null(f);
	f->loop = ev_loop_new();
	assert_non_null(f->loop);
	f->srv = iscsi_server_new(f->loop);
	assert_non_null(f->srv);
	for (size_t i = 0; i < 2; i++) {
		struct iscsi_target *t = iscsi_server_add_target(f->srv, names[i]);

		assert_non_null(t);
		/* LUNs out of order in the map: the snapshot sorts them */
		t->luns.count = 3;
		for (size_t k = 0; k < 3; k++) {
			struct spt_lun *l = &t->luns.luns[k];

			l->lun = 2 - k;
			l->ops = &counting_ops;
			iscsi_stats_lun_record(&l->stats, ISCSI_STATS_OP_READ, SPT_STATUS_GOOD,
					       1000 * (i + 1), 0, 1500);
			l->stats.queue_depth = (uint32_t)k;
		}
	}
	f->admin = iscsi_admin_new(f->srv);
	assert_non_null(f->admin);

	struct iscsi_session_params sp;
	static const uint8_t isid[6] = { 0x80, 1, 2, 3, 4, 5 };

	iscsi_session_params_default(&sp);
	snprintf(sp.initiator_name, sizeof(sp.initiator_name), "iqn.2026-11.org.spt:i1");
	f->sess = iscsi_session_new(f->srv, f->srv->targets[1], &sp, isid);
	assert_non_null(f->sess);
	f->sess->stats.commands = 11;
	f->sess->stats.errors = 2;
	f->sess->stats.aborts = 1;
	f->sess->bytes_read = 4096;
	f->sess->bytes_written = 8192;
	f->sess->data_digest_errors = 3;
	*state = f;
	return 0;
}

static int teardown_admin(void **state)
{
	struct admin_fixture *f = *state;

	/* a session without connections goes with its last reference */
	iscsi_session_stop(f->sess, "test over");
	iscsi_admin_free(f->admin);
	iscsi_server_free(f->srv);
	ev_loop_free(f->loop);
	free(f);
	return 0;
}

static void test_snapshot_targets_sum_their_luns(void **state)
{
	struct admin_fixture *f = *state;
	struct spt_ctl_stats_target v[4];
	struct spt_ctl_stats_server sv;
	uint32_t total;
	bool more;
	size_t n;

	iscsi_admin_stats_server(f->admin, &sv);
	assert_int_equal(sv.targets, 2);
	assert_int_equal(sv.luns, 6);
	assert_int_equal(sv.sessions, 1);

	n = iscsi_admin_stats_targets(f->admin, "", v, 4, &total, &more);
	assert_int_equal(n, 2);
	assert_int_equal(total, 2);
	assert_false(more);
	assert_string_equal(v[0].name, "iqn.2026-11.org.spt:a");
	assert_string_equal(v[1].name, "iqn.2026-11.org.spt:b");
	assert_int_equal(v[0].lun_count, 3);
	assert_int_equal(v[0].io.commands, 3);
	assert_int_equal(v[0].io.read_commands, 3);
	assert_int_equal(v[0].io.bytes_read, 3 * 2000);
	assert_int_equal(v[1].io.bytes_read, 3 * 1000);
	assert_int_equal(v[0].io.queue_depth, 0 + 1 + 2);
	assert_int_equal(v[0].latency.count, 3);
	assert_int_equal(v[0].latency.buckets[1], 3);
	assert_int_equal(v[0].latency.sum_ns, 4500);

	/* paging by name */
	n = iscsi_admin_stats_targets(f->admin, "", v, 1, &total, &more);
	assert_int_equal(n, 1);
	assert_true(more);
	n = iscsi_admin_stats_targets(f->admin, v[0].name, v, 1, &total, &more);
	assert_int_equal(n, 1);
	assert_false(more);
	assert_string_equal(v[0].name, "iqn.2026-11.org.spt:b");
}

static void test_snapshot_luns_page_in_order(void **state)
{
	struct admin_fixture *f = *state;
	struct spt_ctl_stats_lun v[8];
	uint32_t total;
	bool more;
	size_t n;

	n = iscsi_admin_stats_luns(f->admin, "", 0, v, 8, &total, &more);
	assert_int_equal(n, 6);
	assert_int_equal(total, 6);
	assert_false(more);
	for (size_t i = 0; i < 6; i++) {
		assert_string_equal(v[i].target_name, i < 3 ? "iqn.2026-11.org.spt:a" : "iqn.2026-11.org.spt:b");
		assert_int_equal(v[i].lun, i % 3);
		assert_int_equal(v[i].io.commands, 1);
		/* LUN n sits at map index 2 - n, whose queue depth is that index */
		assert_int_equal(v[i].io.queue_depth, 2 - i % 3);
	}
	n = iscsi_admin_stats_luns(f->admin, "iqn.2026-11.org.spt:a", 1, v, 2, &total, &more);
	assert_int_equal(n, 2);
	assert_true(more);
	assert_int_equal(v[0].lun, 2);
	assert_string_equal(v[1].target_name, "iqn.2026-11.org.spt:b");
	assert_int_equal(v[1].lun, 0);
}

static void test_snapshot_sessions(void **state)
{
	struct admin_fixture *f = *state;
	struct spt_ctl_stats_session v[2];
	struct spt_ctl_stats_target t[2];
	uint32_t total = 99;
	bool more = true;

	assert_int_equal(iscsi_admin_stats_sessions(f->admin, 0, v, 2, &total, &more), 1);
	assert_int_equal(total, 1);
	assert_false(more);
	assert_int_equal(v[0].itnexus_handle, f->sess->handle);
	assert_string_equal(v[0].initiator_name, "iqn.2026-11.org.spt:i1");
	assert_string_equal(v[0].target_name, "iqn.2026-11.org.spt:a");
	assert_memory_equal(v[0].isid, "\x80\x01\x02\x03\x04\x05", 6);
	assert_int_equal(v[0].commands, 11);
	assert_int_equal(v[0].errors, 2);
	assert_int_equal(v[0].aborts, 1);
	assert_int_equal(v[0].queue_depth, 0);
	assert_int_equal(v[0].bytes_read, 4096);
	assert_int_equal(v[0].bytes_written, 8192);
	assert_int_equal(v[0].data_digest_errors, 3);
	/* past the last handle: nothing */
	assert_int_equal(iscsi_admin_stats_sessions(f->admin, f->sess->handle, v, 2, &total, &more), 0);
	assert_int_equal(total, 1);
	/* the target counts its session */
	assert_int_equal(iscsi_admin_stats_targets(f->admin, "", t, 2, &total, &more), 2);
	assert_int_equal(t[0].session_count, 1);
	assert_int_equal(t[1].session_count, 0);
}

/* ------------------------------------------------------------------ */
/* STATS codec                                                        */
/* ------------------------------------------------------------------ */

static void test_stats_request_round_trip(void **state)
{
	struct spt_ctl_stats_request r, d;
	uint8_t b[sizeof(r)];
	char why[CTL_WHY_MAX];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.kind = SPT_CTL_STATS_LUNS;
	r.max_entries = 7;
	snprintf(r.after_name, sizeof(r.after_name), "iqn.x");
	r.after_number = 0x0102030405060708ull;
	ctl_stats_request_encode(b, &r);
	/* little-endian on the wire */
	assert_int_equal(b[0], SPT_CTL_STATS_LUNS);
	assert_int_equal(b[4], 7);
	assert_int_equal(b[232], 0x08);
	assert_int_equal(b[239], 0x01);
	assert_int_equal(ctl_stats_request_decode(b, sizeof(b), &d, why, sizeof(why)), SPT_CTL_RC_SUCCESS);
	assert_int_equal(d.kind, SPT_CTL_STATS_LUNS);
	assert_int_equal(d.max_entries, 7);
	assert_string_equal(d.after_name, "iqn.x");
	assert_int_equal(d.after_number, 0x0102030405060708ull);
	/* no payload: the server */
	assert_int_equal(ctl_stats_request_decode(NULL, 0, &d, why, sizeof(why)), SPT_CTL_RC_SUCCESS);
	assert_int_equal(d.kind, SPT_CTL_STATS_SERVER);
}

static void test_stats_request_refusals(void **state)
{
	struct spt_ctl_stats_request r, d;
	uint8_t b[sizeof(r)];
	char why[CTL_WHY_MAX];

	(void)state;
	memset(&r, 0, sizeof(r));
	ctl_stats_request_encode(b, &r);
	assert_int_equal(ctl_stats_request_decode(b, sizeof(b) - 1, &d, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	r.kind = 4;
	ctl_stats_request_encode(b, &r);
	assert_int_equal(ctl_stats_request_decode(b, sizeof(b), &d, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	assert_non_null(strstr(why, "kind 4"));
	r.kind = SPT_CTL_STATS_TARGETS;
	memset(r.after_name, 'a', sizeof(r.after_name));
	ctl_stats_request_encode(b, &r);
	assert_int_equal(ctl_stats_request_decode(b, sizeof(b), &d, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
	memset(r.after_name, 0, sizeof(r.after_name));
	r.reserved = 1;
	ctl_stats_request_encode(b, &r);
	assert_int_equal(ctl_stats_request_decode(b, sizeof(b), &d, why, sizeof(why)),
			 SPT_CTL_RC_BAD_REQUEST);
}

static void test_stats_response_header_checks(void **state)
{
	struct spt_ctl_stats h, d;
	uint8_t b[sizeof(h) + 2 * sizeof(struct spt_ctl_stats_lun)];
	char why[CTL_WHY_MAX];

	(void)state;
	memset(&h, 0, sizeof(h));
	h.kind = SPT_CTL_STATS_LUNS;
	h.count = 2;
	h.entry_length = sizeof(struct spt_ctl_stats_lun);
	h.total = 5;
	h.more = 1;
	h.latency_buckets = SPT_CTL_STATS_BUCKETS;
	memset(b, 0, sizeof(b));
	ctl_stats_encode(b, &h);
	assert_int_equal(ctl_stats_decode(b, sizeof(b), &d, why, sizeof(why)), 0);
	assert_int_equal(d.count, 2);
	assert_int_equal(d.total, 5);
	assert_int_equal(d.more, 1);
	/* a count the payload does not hold */
	assert_int_equal(ctl_stats_decode(b, sizeof(b) - 1, &d, why, sizeof(why)), -1);
	/* shorter than its header */
	assert_int_equal(ctl_stats_decode(b, sizeof(h) - 1, &d, why, sizeof(why)), -1);
	/* entries shorter than the kind's first version */
	h.entry_length = sizeof(struct spt_ctl_stats_lun) - 8;
	h.count = 0;
	ctl_stats_encode(b, &h);
	assert_int_equal(ctl_stats_decode(b, sizeof(h), &d, why, sizeof(why)), -1);
	/* another histogram layout */
	h.entry_length = sizeof(struct spt_ctl_stats_lun);
	h.latency_buckets = SPT_CTL_STATS_BUCKETS + 1;
	ctl_stats_encode(b, &h);
	assert_int_equal(ctl_stats_decode(b, sizeof(h), &d, why, sizeof(why)), -1);
	/* an unknown kind */
	h.latency_buckets = SPT_CTL_STATS_BUCKETS;
	h.kind = 9;
	ctl_stats_encode(b, &h);
	assert_int_equal(ctl_stats_decode(b, sizeof(h), &d, why, sizeof(why)), -1);
	/* a longer entry of a later version is fine */
	h.kind = SPT_CTL_STATS_SERVER;
	h.count = 1;
	h.entry_length = sizeof(struct spt_ctl_stats_server) + 8;
	ctl_stats_encode(b, &h);
	assert_int_equal(ctl_stats_decode(b, sizeof(h) + h.entry_length, &d, why, sizeof(why)), 0);
}

static void test_stats_entries_round_trip(void **state)
{
	struct spt_ctl_stats_session s, sd;
	struct spt_ctl_stats_lun l, ld;
	struct spt_ctl_stats_target t, td;
	struct spt_ctl_stats_server v, vd;
	uint8_t b[sizeof(s)];

	(void)state;
	memset(&s, 0, sizeof(s));
	s.itnexus_handle = 0x1122334455667788ull;
	memcpy(s.isid, "\x80\x01\x02\x03\x04\x05", 6);
	s.tsih = 0x0102;
	s.connection_count = 1;
	snprintf(s.initiator_name, sizeof(s.initiator_name), "iqn.i");
	snprintf(s.target_name, sizeof(s.target_name), "iqn.t");
	s.commands = 10;
	s.errors = 1;
	s.aborts = 2;
	s.queue_depth = 3;
	s.bytes_read = 1ull << 40;
	s.bytes_written = 5;
	s.data_digest_errors = 6;
	s.conns[0].cid = 0x0304;
	snprintf(s.conns[0].peer_address, sizeof(s.conns[0].peer_address), "127.0.0.1:5");
	s.conns[0].pdus_in = 11;
	s.conns[0].bytes_out = 12;
	ctl_stats_session_encode(b, &s);
	assert_int_equal(b[0], 0x88);
	assert_int_equal(b[14], 0x02);	/* tsih, little-endian */
	assert_int_equal(b[472], 10);	/* commands */
	assert_int_equal(b[536], 0x04);	/* conns[0].cid */
	ctl_stats_session_decode(b, sizeof(s), &sd);
	assert_memory_equal(&s, &sd, sizeof(s));
	/* an entry of a shorter (imagined earlier) layout: the rest reads 0 */
	ctl_stats_session_decode(b, offsetof(struct spt_ctl_stats_session, conns), &sd);
	assert_int_equal(sd.commands, 10);
	assert_int_equal(sd.conns[0].pdus_in, 0);

	memset(&l, 0, sizeof(l));
	snprintf(l.target_name, sizeof(l.target_name), "iqn.t");
	l.lun = 3;
	l.io.commands = 9;
	l.io.queue_depth = 2;
	l.latency.count = 9;
	l.latency.sum_ns = 123456789;
	l.latency.buckets[SPT_CTL_STATS_BUCKETS - 1] = 4;
	ctl_stats_lun_encode(b, &l);
	assert_int_equal(b[224], 3);
	assert_int_equal(b[232], 9);
	ctl_stats_lun_decode(b, sizeof(l), &ld);
	assert_memory_equal(&l, &ld, sizeof(l));

	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "iqn.t");
	t.lun_count = 2;
	t.session_count = 1;
	t.io.errors = 4;
	t.latency.buckets[0] = 1;
	ctl_stats_target_encode(b, &t);
	ctl_stats_target_decode(b, sizeof(t), &td);
	assert_memory_equal(&t, &td, sizeof(t));

	memset(&v, 0, sizeof(v));
	v.sessions = 1;
	v.connections = 2;
	v.targets = 1;
	v.luns = 3;
	v.header_digest_errors = 7;
	ctl_stats_server_encode(b, &v);
	assert_int_equal(b[16], 7);
	ctl_stats_server_decode(b, sizeof(v), &vd);
	assert_memory_equal(&v, &vd, sizeof(v));
}

static void test_stats_strings_end_within_their_fields(void **state)
{
	struct spt_ctl_stats_session sd;
	uint8_t b[sizeof(struct spt_ctl_stats_session)];

	(void)state;
	memset(b, 'x', sizeof(b));
	ctl_stats_session_decode(b, sizeof(b), &sd);
	assert_int_equal(strlen(sd.initiator_name), SPT_CTL_NAME_MAX - 1);
	assert_int_equal(strlen(sd.target_name), SPT_CTL_NAME_MAX - 1);
	assert_int_equal(strlen(sd.conns[7].peer_address), SPT_PEER_ADDRESS_MAX - 1);
}

/* ------------------------------------------------------------------ */
/* Prometheus text                                                    */
/* ------------------------------------------------------------------ */

static char *escaped(const char *value)
{
	struct metrics_text t;

	metrics_text_init(&t, 4096);
	metrics_label_value(&t, value);
	assert_false(t.failed);
	return t.buf ? t.buf : strdup("");
}

static void test_label_escaping(void **state)
{
	char *s;

	(void)state;
	s = escaped("iqn.2026-11.org.spt:plain");
	assert_string_equal(s, "iqn.2026-11.org.spt:plain");
	free(s);
	s = escaped("a\"b\\c\nd");
	assert_string_equal(s, "a\\\"b\\\\c\\nd");
	free(s);
	/* UTF-8 stays; a stray byte becomes U+FFFD */
	s = escaped("caf\xc3\xa9 \xff!");
	assert_string_equal(s, "caf\xc3\xa9 \xef\xbf\xbd!");
	free(s);
	/* overlong and truncated sequences are not UTF-8 */
	s = escaped("\xc0\xaf|\xe2\x82");
	assert_string_equal(s, "\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd");
	free(s);
	/* tabs and other controls are legal in a label value */
	s = escaped("a\tb");
	assert_string_equal(s, "a\tb");
	free(s);
}

static void test_text_ceiling(void **state)
{
	struct metrics_text t;

	(void)state;
	metrics_text_init(&t, 10);
	metrics_text_printf(&t, "%s", "0123456789");
	assert_false(t.failed);
	assert_int_equal(t.len, 10);
	metrics_text_printf(&t, "x");
	assert_true(t.failed);
	assert_int_equal(t.len, 10);
	metrics_text_free(&t);
}

/* A snapshot with one of everything, names that need escaping. */
struct render_fixture {
	struct spt_ctl_stats_target target;
	struct spt_ctl_stats_lun lun;
	struct spt_ctl_stats_session sess;
	struct metrics_snapshot snap;
	struct metrics_text text;
};

static struct render_fixture *render_fixture_new(void)
{
	struct render_fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->target.name, sizeof(f->target.name), "iqn.2026-11.org.spt:t\"1");
	f->target.lun_count = 1;
	f->target.session_count = 1;
	f->target.io.commands = 7;
	f->target.io.read_commands = 3;
	f->target.io.write_commands = 2;
	f->target.io.bytes_read = 12288;
	f->target.io.bytes_written = 8192;
	f->target.io.errors = 1;
	f->target.io.aborts = 4;
	f->target.io.queue_depth = 2;
	memcpy(f->lun.target_name, f->target.name, sizeof(f->lun.target_name));
	f->lun.lun = 3;
	f->lun.io = f->target.io;
	f->lun.latency.count = 7;
	f->lun.latency.sum_ns = 1234567890;
	f->lun.latency.buckets[0] = 1;
	f->lun.latency.buckets[3] = 2;
	f->lun.latency.buckets[10] = 3;
	f->lun.latency.buckets[SPT_CTL_STATS_BUCKETS - 1] = 1;
	f->target.latency = f->lun.latency;
	f->sess.itnexus_handle = 0xabcdef0123456789ull;
	memcpy(f->sess.isid, "\x80\x12\x34\x56\x78\x9a", 6);
	f->sess.connection_count = 1;
	snprintf(f->sess.initiator_name, sizeof(f->sess.initiator_name), "iqn.init\\x\nnew");
	memcpy(f->sess.target_name, f->target.name, sizeof(f->sess.target_name));
	f->sess.commands = 7;
	f->sess.errors = 1;
	f->sess.aborts = 4;
	f->sess.queue_depth = 2;
	f->sess.bytes_read = 12288;
	f->sess.bytes_written = 8192;
	f->sess.conns[0].cid = 1;
	snprintf(f->sess.conns[0].peer_address, sizeof(f->sess.conns[0].peer_address), "[::1]:5000");
	f->sess.conns[0].pdus_in = 20;
	f->sess.conns[0].pdus_out = 21;
	f->sess.conns[0].bytes_in = 30000;
	f->sess.conns[0].bytes_out = 40000;
	f->sess.conns[0].data_digest_errors = 1;
	f->snap.version = "9.8.7";
	f->snap.server.sessions = 1;
	f->snap.server.connections = 1;
	f->snap.server.targets = 1;
	f->snap.server.luns = 1;
	f->snap.server.header_digest_errors = 5;
	f->snap.targets = &f->target;
	f->snap.ntargets = 1;
	f->snap.luns = &f->lun;
	f->snap.nluns = 1;
	f->snap.sessions = &f->sess;
	f->snap.nsessions = 1;
	f->snap.sessions_omitted = 2;
	metrics_text_init(&f->text, METRICS_BODY_MAX);
	assert_int_equal(metrics_render(&f->snap, &f->text), 0);
	assert_non_null(f->text.buf);
	assert_int_equal(strlen(f->text.buf), f->text.len);
	return f;
}

static void render_fixture_free(struct render_fixture *f)
{
	metrics_text_free(&f->text);
	free(f);
}

/* The text holds this line exactly. */
static void assert_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p += n;
	}
	fail_msg("line not found: %s", line);
}

#define T_LABEL "target=\"iqn.2026-11.org.spt:t\\\"1\""
#define L_LABELS T_LABEL ",lun=\"3\""
#define S_LABELS T_LABEL ",initiator=\"iqn.init\\\\x\\nnew\",isid=\"0x80123456789a\"," \
		 "handle=\"0xabcdef0123456789\""

static void test_render_families(void **state)
{
	struct render_fixture *f = render_fixture_new();
	const char *t = f->text.buf;

	(void)state;
	assert_line(t, "# TYPE spt_up gauge");
	assert_line(t, "spt_up 1");
	assert_line(t, "spt_build_info{version=\"9.8.7\"} 1");
	assert_line(t, "spt_sessions 1");
	assert_line(t, "spt_digest_errors_total{kind=\"header\"} 5");
	assert_line(t, "spt_metrics_omitted{kind=\"session\"} 2");
	assert_line(t, "# TYPE spt_lun_commands_total counter");
	assert_line(t, "spt_lun_commands_total{" L_LABELS ",op=\"read\"} 3");
	assert_line(t, "spt_lun_commands_total{" L_LABELS ",op=\"write\"} 2");
	assert_line(t, "spt_lun_commands_total{" L_LABELS ",op=\"other\"} 2");
	assert_line(t, "spt_lun_bytes_total{" L_LABELS ",direction=\"read\"} 12288");
	assert_line(t, "spt_lun_bytes_total{" L_LABELS ",direction=\"write\"} 8192");
	assert_line(t, "spt_lun_errors_total{" L_LABELS "} 1");
	assert_line(t, "spt_lun_aborts_total{" L_LABELS "} 4");
	assert_line(t, "# TYPE spt_lun_queue_depth gauge");
	assert_line(t, "spt_lun_queue_depth{" L_LABELS "} 2");
	assert_line(t, "spt_target_commands_total{" T_LABEL ",op=\"read\"} 3");
	assert_line(t, "spt_target_sessions{" T_LABEL "} 1");
	assert_line(t, "spt_session_commands_total{" S_LABELS "} 7");
	assert_line(t, "spt_session_queue_depth{" S_LABELS "} 2");
	assert_line(t, "spt_session_bytes_total{" S_LABELS ",direction=\"write\"} 8192");
	assert_line(t, "spt_connection_pdus_total{" S_LABELS ",cid=\"1\",peer=\"[::1]:5000\",direction=\"out\"} 21");
	assert_line(t, "spt_connection_bytes_total{" S_LABELS ",cid=\"1\",peer=\"[::1]:5000\",direction=\"in\"} 30000");
	assert_line(t, "spt_connection_digest_errors_total{" S_LABELS ",cid=\"1\",peer=\"[::1]:5000\",kind=\"data\"} 1");
	render_fixture_free(f);
}

static void test_render_histogram(void **state)
{
	struct render_fixture *f = render_fixture_new();
	const char *t = f->text.buf;

	(void)state;
	assert_line(t, "# TYPE spt_lun_command_duration_seconds histogram");
	/* cumulative, bounds in seconds, +Inf the count */
	assert_line(t, "spt_lun_command_duration_seconds_bucket{" L_LABELS ",le=\"0.000001\"} 1");
	assert_line(t, "spt_lun_command_duration_seconds_bucket{" L_LABELS ",le=\"0.000004\"} 1");
	assert_line(t, "spt_lun_command_duration_seconds_bucket{" L_LABELS ",le=\"0.000008\"} 3");
	assert_line(t, "spt_lun_command_duration_seconds_bucket{" L_LABELS ",le=\"0.001024\"} 6");
	assert_line(t, "spt_lun_command_duration_seconds_bucket{" L_LABELS ",le=\"1.048576\"} 6");
	assert_line(t, "spt_lun_command_duration_seconds_bucket{" L_LABELS ",le=\"16.777216\"} 6");
	assert_line(t, "spt_lun_command_duration_seconds_bucket{" L_LABELS ",le=\"+Inf\"} 7");
	assert_line(t, "spt_lun_command_duration_seconds_sum{" L_LABELS "} 1.234567890");
	assert_line(t, "spt_lun_command_duration_seconds_count{" L_LABELS "} 7");
	render_fixture_free(f);
}

/*
 * Every line is a comment (# HELP / # TYPE) or a sample "name{labels} value"
 * with a metric name of [a-zA-Z_:][a-zA-Z0-9_:]*, and every family has one
 * HELP and one TYPE, before its samples, which come together.
 */
static void test_render_is_well_formed(void **state)
{
	struct render_fixture *f = render_fixture_new();
	char *text = strdup(f->text.buf), *save = NULL;
	char typed[128][80];
	size_t ntyped = 0;
	char current[80] = "";

	(void)state;
	assert_non_null(text);
	assert_int_equal(text[strlen(text) - 1], '\n');
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[80];
		size_t n = 0;

		if (!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7)) {
			char kind[16] = "";

			assert_int_equal(sscanf(line + 7, "%79s %15s", name, kind), 2);
			if (!strncmp(line, "# TYPE ", 7)) {
				assert_true(!strcmp(kind, "counter") || !strcmp(kind, "gauge") ||
					    !strcmp(kind, "histogram"));
				for (size_t i = 0; i < ntyped; i++)
					assert_string_not_equal(typed[i], name);
				assert_true(ntyped < 128);
				snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
				snprintf(current, sizeof(current), "%s", name);
			}
			continue;
		}
		assert_true((line[0] >= 'a' && line[0] <= 'z') || line[0] == '_');
		while (line[n] && line[n] != '{' && line[n] != ' ') {
			char ch = line[n];

			assert_true((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
				    (ch >= '0' && ch <= '9') || ch == '_' || ch == ':');
			n++;
		}
		assert_true(n < sizeof(name));
		memcpy(name, line, n);
		name[n] = '\0';
		/* a sample belongs to the family typed last (histograms: its
		 * _bucket, _sum and _count) */
		assert_true(!strncmp(name, current, strlen(current)));
		assert_true(!strcmp(name, current) || !strcmp(name + strlen(current), "_bucket") ||
			    !strcmp(name + strlen(current), "_sum") ||
			    !strcmp(name + strlen(current), "_count"));
		/* a value follows the last space, and it parses whole */
		char *sp = strrchr(line, ' '), *end;

		assert_non_null(sp);
		strtod(sp + 1, &end);
		assert_int_equal(*end, '\0');
		assert_true(end > sp + 1);
	}
	/* 9 daemon-wide, 5 per target, 5 + 1 histogram per LUN, 6 per session, 3 per connection */
	assert_int_equal(ntyped, 29);
	free(text);
	render_fixture_free(f);
}

static void test_render_empty_daemon(void **state)
{
	struct metrics_snapshot s;
	struct metrics_text t;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.version = "1";
	metrics_text_init(&t, METRICS_BODY_MAX);
	assert_int_equal(metrics_render(&s, &t), 0);
	assert_line(t.buf, "spt_sessions 0");
	assert_line(t.buf, "# TYPE spt_lun_command_duration_seconds histogram");
	assert_null(strstr(t.buf, "spt_lun_commands_total{"));
	metrics_text_free(&t);
}

static void test_render_over_the_ceiling_fails(void **state)
{
	struct render_fixture *f = render_fixture_new();
	struct metrics_text t;

	(void)state;
	metrics_text_init(&t, f->text.len - 1);
	assert_int_equal(metrics_render(&f->snap, &t), -1);
	assert_true(t.failed);
	assert_true(t.len < f->text.len);
	metrics_text_free(&t);
	render_fixture_free(f);
}

static void test_metrics_addresses(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char err[256];

	(void)state;
	assert_int_equal(metrics_parse_address("127.0.0.1:9100", &ss, &len, err, sizeof(err)), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9100);
	assert_int_equal(metrics_parse_address("[::1]:9100", &ss, &len, err, sizeof(err)), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(metrics_parse_address("0.0.0.0:1", &ss, &len, err, sizeof(err)), 0);
	assert_int_equal(metrics_parse_address("127.0.0.1", &ss, &len, err, sizeof(err)), -1);
	assert_int_equal(metrics_parse_address("127.0.0.1:0", &ss, &len, err, sizeof(err)), -1);
	assert_int_equal(metrics_parse_address("127.0.0.1:65536", &ss, &len, err, sizeof(err)), -1);
	assert_int_equal(metrics_parse_address("127.0.0.1:9x", &ss, &len, err, sizeof(err)), -1);
	assert_int_equal(metrics_parse_address("::1:9100", &ss, &len, err, sizeof(err)), -1);
	assert_int_equal(metrics_parse_address("[::1]9100", &ss, &len, err, sizeof(err)), -1);
	/* numeric only: no name lookups at startup */
	assert_int_equal(metrics_parse_address("localhost:9100", &ss, &len, err, sizeof(err)), -1);
	assert_int_equal(metrics_parse_address("", &ss, &len, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_edges),
		cmocka_unit_test(test_bucket_of_every_bound),
		cmocka_unit_test(test_command_classes),
		cmocka_unit_test(test_lun_record_and_snapshot),
		cmocka_unit_test(test_hooks_count_a_completed_command),
		cmocka_unit_test(test_hooks_count_errors_reads_and_aborts),
		cmocka_unit_test(test_hooks_without_a_lun),
		cmocka_unit_test_setup_teardown(test_snapshot_targets_sum_their_luns, setup_admin,
						teardown_admin),
		cmocka_unit_test_setup_teardown(test_snapshot_luns_page_in_order, setup_admin,
						teardown_admin),
		cmocka_unit_test_setup_teardown(test_snapshot_sessions, setup_admin, teardown_admin),
		cmocka_unit_test(test_stats_request_round_trip),
		cmocka_unit_test(test_stats_request_refusals),
		cmocka_unit_test(test_stats_response_header_checks),
		cmocka_unit_test(test_stats_entries_round_trip),
		cmocka_unit_test(test_stats_strings_end_within_their_fields),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_text_ceiling),
		cmocka_unit_test(test_render_families),
		cmocka_unit_test(test_render_histogram),
		cmocka_unit_test(test_render_is_well_formed),
		cmocka_unit_test(test_render_empty_daemon),
		cmocka_unit_test(test_render_over_the_ceiling_fails),
		cmocka_unit_test(test_metrics_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
