/*
 * Unit tests for reservations (src/scsi/pr.c): PERSISTENT RESERVE IN/OUT,
 * the conflict table, unit attentions, RESERVE/RELEASE(6)/(10), APTPL
 * save/load. Everything goes through spt_bdev_execute() on a RAM bdev with
 * four sessions:
 *
 *   A  initiator port a (ISID ...01) on target port 1
 *   B  initiator port b on target port 1
 *   C  initiator port c on target port 1 (left unregistered by most tests)
 *   A2 initiator a with another ISID: another initiator port
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spt/scsi.h>

#define T_BS 512u
#define T_BLOCKS 256u
#define T_BUF 65536u

#define NX_A 0xa1
#define NX_B 0xb1
#define NX_C 0xc1
#define NX_A2 0xa2
#define NX_OBS 0x0f1		/* never registered: reads the state for the tests */

#define TGT "iqn.2026-11.org.spt:target0"
#define INI_A "iqn.2026-11.org.spt:a"
#define INI_B "iqn.2026-11.org.spt:b"
#define INI_C "iqn.2026-11.org.spt:c"
#define NEXUS_A INI_A ",i,0x400000000001," TGT ",t,0x0001"
#define NEXUS_B INI_B ",i,0x400000000002," TGT ",t,0x0001"
#define NEXUS_C INI_C ",i,0x400000000003," TGT ",t,0x0001"
#define NEXUS_A2 INI_A ",i,0x400000000009," TGT ",t,0x0001"
#define NEXUS_OBS "iqn.2026-11.org.spt:observer,i,0x400000000000," TGT ",t,0x0001"

/* SPC-4 persistent reservation types and service actions. */
enum { WE = 1, EA = 3, WE_RO = 5, EA_RO = 6, WE_AR = 7, EA_AR = 8 };
enum { SA_REGISTER, SA_RESERVE, SA_RELEASE, SA_CLEAR, SA_PREEMPT, SA_PREEMPT_ABORT,
       SA_REGISTER_IGNORE, SA_REGISTER_MOVE };
enum { IN_READ_KEYS, IN_READ_RESERVATION, IN_REPORT_CAPABILITIES, IN_READ_FULL_STATUS };

#define F_APTPL 0x01
#define F_ALL_TG_PT 0x04
#define F_SPEC_I_PT 0x08

#define ST_GOOD 0x00
#define ST_CHECK 0x02
#define ST_CONFLICT 0x18

static struct spt_bdev bdev;
static uint8_t *mem;
static uint8_t buf[T_BUF];
static struct spt_cmd cmd;
static unsigned completions;
static char tmpdir[256];

/* ------------------------------------------------------------------ */
/* RAM backend and the fixture                                          */
/* ------------------------------------------------------------------ */

static void ram_submit(struct spt_bdev *b, struct spt_bdev_io *io)
{
	(void)b;
	if (io->op == SPT_BDEV_READ)
		memcpy(io->buf, mem + io->offset, io->length);
	else if (io->op == SPT_BDEV_WRITE)
		memcpy(mem + io->offset, io->buf, io->length);
	else if (io->op != SPT_BDEV_FLUSH)
		memset(mem + io->offset, 0, io->length);
	io->done(io, 0);
}

static const struct spt_bdev_ops ram_ops = { .submit = ram_submit };

static void cmd_done(struct spt_cmd *c)
{
	(void)c;
	completions++;
}

static void session_start(uint64_t handle, const char *itnexus)
{
	struct spt_session_start ss;

	memset(&ss, 0, sizeof(ss));
	ss.itnexus_handle = handle;
	snprintf(ss.itnexus, sizeof(ss.itnexus), "%s", itnexus);
	spt_bdev_session_start(&bdev, &ss);
}

static void session_end(uint64_t handle)
{
	struct spt_session_end se = { .itnexus_handle = handle };

	spt_bdev_session_end(&bdev, &se);
}

static void bdev_fill(const char *state_path)
{
	memset(&bdev, 0, sizeof(bdev));
	bdev.ops = &ram_ops;
	bdev.block_size = T_BS;
	bdev.num_blocks = T_BLOCKS;
	bdev.write_cache = false;
	bdev.thin = true;
	bdev.max_transfer_bytes = T_BUF;
	strcpy(bdev.vendor, "SPT");
	strcpy(bdev.product, "pr test");
	strcpy(bdev.revision, "0001");
	strcpy(bdev.serial, "PR1");
	bdev.naa = 0x3000000000000123ull;
	bdev.relative_port = 1;
	strcpy(bdev.target_name, TGT);
	if (state_path)
		snprintf(bdev.pr_state_path, sizeof(bdev.pr_state_path), "%s", state_path);
}

static void sessions_start(void)
{
	session_start(NX_A, NEXUS_A);
	session_start(NX_B, NEXUS_B);
	session_start(NX_C, NEXUS_C);
	session_start(NX_A2, NEXUS_A2);
	session_start(NX_OBS, NEXUS_OBS);
}

static int setup(void **state)
{
	(void)state;
	mem = calloc(T_BLOCKS, T_BS);
	assert_non_null(mem);
	bdev_fill(NULL);
	assert_int_equal(spt_bdev_init(&bdev), 0);
	sessions_start();
	return 0;
}

static void state_path(char *out, size_t len)
{
	snprintf(out, len, "%s/lun.img.pr", tmpdir);
}

static int setup_aptpl(void **state)
{
	char path[512];

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/spt-test-pr.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	mem = calloc(T_BLOCKS, T_BS);
	assert_non_null(mem);
	state_path(path, sizeof(path));
	bdev_fill(path);
	assert_int_equal(spt_bdev_init(&bdev), 0);
	sessions_start();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	spt_bdev_fini(&bdev);
	free(mem);
	return 0;
}

static int teardown_aptpl(void **state)
{
	char path[512];

	teardown(state);
	state_path(path, sizeof(path));
	unlink(path);
	snprintf(path, sizeof(path), "%s/lun.img.pr.tmp", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Commands                                                             */
/* ------------------------------------------------------------------ */

/* One command in one request; data-out (out_len bytes) already in buf. */
static uint8_t exec(uint64_t nexus, const uint8_t *cdb, size_t cdb_len, uint32_t edtl,
		    uint8_t dir)
{
	memset(&cmd, 0, sizeof(cmd));
	memcpy(cmd.req.cdb, cdb, cdb_len);
	cmd.req.cdb_length = 16;
	cmd.req.session_cookie = nexus;
	cmd.req.task_cookie = 1;
	cmd.req.direction = dir;
	cmd.req.expected_length = edtl;
	cmd.req.data_length = dir == SPT_DIR_OUT ? edtl : 0;
	cmd.req.is_final = 1;
	cmd.buf = buf;
	cmd.buf_len = edtl;
	cmd.done = cmd_done;
	completions = 0;
	spt_bdev_execute(&bdev, &cmd);
	assert_int_equal(completions, 1);
	return cmd.cpl.scsi_status;
}

static void sense_is(uint8_t key, uint8_t asc, uint8_t ascq)
{
	assert_int_equal(cmd.cpl.scsi_status, ST_CHECK);
	assert_true(cmd.cpl.sense_length >= 18);
	assert_int_equal(cmd.cpl.sense[0] & 0x7f, 0x70);
	assert_int_equal(cmd.cpl.sense[2] & 0x0f, key);
	assert_int_equal(cmd.cpl.sense[12], asc);
	assert_int_equal(cmd.cpl.sense[13], ascq);
}

/* The sense-key specific field pointer: in the CDB (cd) or the data. */
static void field_is(bool cd, uint16_t byte, int bit)
{
	const uint8_t *s = cmd.cpl.sense;

	assert_true(s[15] & 0x80);
	assert_int_equal(!!(s[15] & 0x40), cd);
	assert_int_equal(spt_get_be16(&s[16]), byte);
	if (bit >= 0) {
		assert_true(s[15] & 0x08);
		assert_int_equal(s[15] & 0x07, bit);
	}
}

static uint8_t prout_list(uint64_t nexus, uint8_t sa, uint8_t type, uint32_t plen)
{
	uint8_t cdb[10] = { 0x5f, sa, type };

	spt_put_be32(&cdb[5], plen);
	return exec(nexus, cdb, sizeof(cdb), plen, SPT_DIR_OUT);
}

static uint8_t prout(uint64_t nexus, uint8_t sa, uint8_t type, uint64_t rk, uint64_t sark,
		     uint8_t flags)
{
	memset(buf, 0, 24);
	spt_put_be64(&buf[0], rk);
	spt_put_be64(&buf[8], sark);
	buf[20] = flags;
	return prout_list(nexus, sa, type, 24);
}

static uint8_t prin(uint64_t nexus, uint8_t sa, uint16_t alloc)
{
	uint8_t cdb[10] = { 0x5e, sa };

	spt_put_be16(&cdb[7], alloc);
	memset(buf, 0xee, sizeof(buf));
	return exec(nexus, cdb, sizeof(cdb), alloc, SPT_DIR_IN);
}

static uint32_t generation(void)
{
	assert_int_equal(prin(NX_OBS, IN_READ_KEYS, 8), ST_GOOD);
	return spt_get_be32(&buf[0]);
}

/* Number of registered keys; keys[] gets them. */
static unsigned read_keys(uint64_t *keys, unsigned max)
{
	unsigned n;

	assert_int_equal(prin(NX_OBS, IN_READ_KEYS, 4096), ST_GOOD);
	n = spt_get_be32(&buf[4]) / 8;
	assert_int_equal(cmd.cpl.data_in_length, 8 + 8 * n);
	for (unsigned i = 0; i < n && i < max; i++)
		keys[i] = spt_get_be64(&buf[8 + 8 * i]);
	return n;
}

static bool key_registered(uint64_t key)
{
	uint64_t keys[16];
	unsigned n = read_keys(keys, 16);

	for (unsigned i = 0; i < n && i < 16; i++)
		if (keys[i] == key)
			return true;
	return false;
}

/* Reservation type, 0 if none; *key gets its RESERVATION KEY. */
static uint8_t reservation(uint64_t *key)
{
	assert_int_equal(prin(NX_OBS, IN_READ_RESERVATION, 4096), ST_GOOD);
	if (spt_get_be32(&buf[4]) == 0) {
		assert_int_equal(cmd.cpl.data_in_length, 8);
		return 0;
	}
	assert_int_equal(spt_get_be32(&buf[4]), 16);
	assert_int_equal(cmd.cpl.data_in_length, 24);
	if (key)
		*key = spt_get_be64(&buf[8]);
	assert_int_equal(buf[21] >> 4, 0);	/* LU_SCOPE */
	return buf[21] & 0x0f;
}

static uint8_t read10(uint64_t nexus)
{
	uint8_t cdb[10] = { 0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0 };

	return exec(nexus, cdb, sizeof(cdb), T_BS, SPT_DIR_IN);
}

static uint8_t write10(uint64_t nexus)
{
	uint8_t cdb[10] = { 0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0 };

	memset(buf, 0x5a, T_BS);
	return exec(nexus, cdb, sizeof(cdb), T_BS, SPT_DIR_OUT);
}

static uint8_t simple(uint64_t nexus, uint8_t op, uint8_t b4, uint32_t alloc)
{
	uint8_t cdb[6] = { op, 0, 0, 0, b4, 0 };

	return exec(nexus, cdb, sizeof(cdb), alloc, alloc ? SPT_DIR_IN : SPT_DIR_NONE);
}

static uint8_t tur(uint64_t nexus)
{
	return simple(nexus, 0x00, 0, 0);
}

/* TEST UNIT READY until GOOD; the 2Ah unit attention ASCQs seen, as a bit
 * set (1 << ascq). */
static unsigned take_uas(uint64_t nexus)
{
	unsigned seen = 0;

	for (int i = 0; i < 10; i++) {
		if (tur(nexus) == ST_GOOD)
			return seen;
		assert_int_equal(cmd.cpl.scsi_status, ST_CHECK);
		assert_int_equal(cmd.cpl.sense[2] & 0x0f, SPT_KEY_UNIT_ATTENTION);
		if (cmd.cpl.sense[12] == 0x2a)
			seen |= 1u << cmd.cpl.sense[13];
	}
	fail_msg("unit attentions never end");
	return seen;
}

#define UA_PREEMPTED (1u << 0x03)
#define UA_RELEASED (1u << 0x04)
#define UA_REG_PREEMPTED (1u << 0x05)

static void register_key(uint64_t nexus, uint64_t key)
{
	assert_int_equal(prout(nexus, SA_REGISTER_IGNORE, 0, 0, key, 0), ST_GOOD);
}

static void drain_all_uas(void)
{
	take_uas(NX_A);
	take_uas(NX_B);
	take_uas(NX_C);
	take_uas(NX_A2);
	take_uas(NX_OBS);
}

/* ------------------------------------------------------------------ */
/* PERSISTENT RESERVE IN                                                */
/* ------------------------------------------------------------------ */

static void test_prin_on_a_fresh_lu(void **state)
{
	(void)state;
	assert_int_equal(prin(NX_A, IN_READ_KEYS, 4096), ST_GOOD);
	assert_int_equal(spt_get_be32(&buf[0]), 0);
	assert_int_equal(spt_get_be32(&buf[4]), 0);
	assert_int_equal(cmd.cpl.data_in_length, 8);
	assert_int_equal(reservation(NULL), 0);
	assert_int_equal(prin(NX_A, IN_READ_FULL_STATUS, 4096), ST_GOOD);
	assert_int_equal(spt_get_be32(&buf[4]), 0);
	assert_int_equal(cmd.cpl.data_in_length, 8);
}

static void test_prin_report_capabilities(void **state)
{
	(void)state;
	assert_int_equal(prin(NX_A, IN_REPORT_CAPABILITIES, 4096), ST_GOOD);
	assert_int_equal(cmd.cpl.data_in_length, 8);
	assert_int_equal(spt_get_be16(&buf[0]), 8);
	assert_int_equal(buf[2] & 0x10, 0x10);	/* CRH */
	assert_int_equal(buf[2] & 0x08, 0);	/* SIP_C: SPEC_I_PT not supported */
	assert_int_equal(buf[2] & 0x04, 0x04);	/* ATP_C */
	assert_int_equal(buf[2] & 0x01, 0);	/* PTPL_C: no state path */
	assert_int_equal(buf[3] & 0x80, 0x80);	/* TMV */
	assert_int_equal((buf[3] >> 4) & 0x7, 3);	/* ALLOW COMMANDS */
	assert_int_equal(buf[3] & 0x01, 0);	/* PTPL_A */
	assert_int_equal(buf[4], 0x80 | 0x40 | 0x20 | 0x08 | 0x02);
	assert_int_equal(buf[5], 0x01);
}

static void test_prin_reserved_service_actions(void **state)
{
	(void)state;
	for (uint8_t sa = 4; sa < 0x20; sa++) {
		assert_int_equal(prin(NX_A, sa, 4096), ST_CHECK);
		sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
		field_is(true, 1, 4);
	}
}

static void test_prin_allocation_length_truncates(void **state)
{
	(void)state;
	register_key(NX_A, 0x1111);
	register_key(NX_B, 0x2222);
	/* SPC-4 6.15.2: ADDITIONAL LENGTH keeps its value when cut */
	assert_int_equal(prin(NX_A, IN_READ_KEYS, 8), ST_GOOD);
	assert_int_equal(cmd.cpl.data_in_length, 8);
	assert_int_equal(cmd.cpl.transfer_length, 8);
	assert_int_equal(spt_get_be32(&buf[4]), 16);
	assert_int_equal(buf[8], 0xee);
	assert_int_equal(prin(NX_A, IN_READ_KEYS, 12), ST_GOOD);
	assert_int_equal(cmd.cpl.data_in_length, 12);
	assert_int_equal(prin(NX_A, IN_READ_KEYS, 0), ST_GOOD);
	assert_int_equal(cmd.cpl.data_in_length, 0);
	assert_int_equal(prin(NX_A, IN_READ_FULL_STATUS, 30), ST_GOOD);
	assert_int_equal(cmd.cpl.data_in_length, 30);
	assert_true(spt_get_be32(&buf[4]) >= 2 * (24 + 24));
}

static void test_prin_read_full_status(void **state)
{
	const char *want = INI_A ",i,0x400000000001";
	uint32_t len, off, tid_len;
	bool seen_a = false, seen_b = false;

	(void)state;
	register_key(NX_A, 0xaaaa);
	assert_int_equal(prout(NX_B, SA_REGISTER, 0, 0, 0xbbbb, F_ALL_TG_PT), ST_GOOD);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA_RO, 0xaaaa, 0, 0), ST_GOOD);
	assert_int_equal(prin(NX_C, IN_READ_FULL_STATUS, 4096), ST_GOOD);
	assert_int_equal(spt_get_be32(&buf[0]), 2);	/* two registrations made */
	len = spt_get_be32(&buf[4]);
	assert_int_equal(cmd.cpl.data_in_length, 8 + len);
	for (off = 8; off < 8 + len; off += 24 + tid_len) {
		const uint8_t *d = &buf[off];
		const uint8_t *tid = d + 24;
		uint64_t key = spt_get_be64(d);

		tid_len = spt_get_be32(&d[20]);
		assert_int_equal(tid_len % 4, 0);
		assert_true(tid_len >= 24);
		assert_int_equal(tid[0], 0x45);		/* format 01b, iSCSI */
		assert_int_equal(spt_get_be16(&tid[2]), tid_len - 4);
		assert_int_equal(spt_get_be16(&d[18]), 1);	/* RELATIVE TARGET PORT */
		if (key == 0xaaaa) {
			seen_a = true;
			assert_int_equal(d[12], 0x01);		/* R_HOLDER */
			assert_int_equal(d[13], EA_RO);
			assert_string_equal((const char *)&tid[4], want);
		} else {
			assert_int_equal(key, 0xbbbb);
			seen_b = true;
			assert_int_equal(d[12], 0x02);		/* ALL_TG_PT, not a holder */
			assert_int_equal(d[13], 0);
			assert_string_equal((const char *)&tid[4], INI_B ",i,0x400000000002");
		}
	}
	assert_int_equal(off, 8 + len);
	assert_true(seen_a && seen_b);
}

/* ------------------------------------------------------------------ */
/* REGISTER, REGISTER AND IGNORE EXISTING KEY                           */
/* ------------------------------------------------------------------ */

static void test_register_and_unregister(void **state)
{
	uint64_t keys[4];

	(void)state;
	/* SPC-4 5.13.7: an unregistered I_T nexus registers with key 0 */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0x99, 0x1234, 0), ST_CONFLICT);
	assert_int_equal(generation(), 0);
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0x1234, 0), ST_GOOD);
	assert_int_equal(generation(), 1);
	assert_int_equal(read_keys(keys, 4), 1);
	assert_int_equal(keys[0], 0x1234);
	/* a registered one names its key (libiscsi reregister_key_fails) */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0x5678, 0), ST_CONFLICT);
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0x1111, 0x5678, 0), ST_CONFLICT);
	assert_int_equal(generation(), 1);
	/* change the key */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0x1234, 0x5678, 0), ST_GOOD);
	assert_int_equal(read_keys(keys, 4), 1);
	assert_int_equal(keys[0], 0x5678);
	/* REGISTER AND IGNORE EXISTING KEY ignores RESERVATION KEY */
	assert_int_equal(prout(NX_A, SA_REGISTER_IGNORE, 0, 0xdead, 0x9abc, 0), ST_GOOD);
	assert_int_equal(read_keys(keys, 4), 1);
	assert_int_equal(keys[0], 0x9abc);
	assert_int_equal(generation(), 3);
	/* the same key from another initiator port is another registration */
	register_key(NX_A2, 0x9abc);
	assert_int_equal(read_keys(keys, 4), 2);
	/* SARK zero unregisters */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0x9abc, 0, 0), ST_GOOD);
	assert_int_equal(read_keys(keys, 4), 1);
	assert_int_equal(prout(NX_A2, SA_REGISTER_IGNORE, 0, 0, 0, 0), ST_GOOD);
	assert_int_equal(read_keys(keys, 4), 0);
	assert_int_equal(generation(), 6);
	/* unregistered with SARK zero: nothing to do, GOOD */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0, 0), ST_GOOD);
	assert_int_equal(read_keys(keys, 4), 0);
}

static void test_unregistered_nexus_may_only_register(void **state)
{
	(void)state;
	register_key(NX_A, 0x10);
	assert_int_equal(prout(NX_C, SA_RESERVE, WE, 0x10, 0, 0), ST_CONFLICT);
	assert_int_equal(prout(NX_C, SA_RELEASE, WE, 0x10, 0, 0), ST_CONFLICT);
	assert_int_equal(prout(NX_C, SA_CLEAR, 0, 0x10, 0, 0), ST_CONFLICT);
	assert_int_equal(prout(NX_C, SA_PREEMPT, WE, 0x10, 0x10, 0), ST_CONFLICT);
	assert_int_equal(prout(NX_C, SA_PREEMPT_ABORT, WE, 0x10, 0x10, 0), ST_CONFLICT);
	assert_true(key_registered(0x10));
	/* a registered nexus naming another's key */
	register_key(NX_B, 0x20);
	assert_int_equal(prout(NX_B, SA_RESERVE, WE, 0x10, 0, 0), ST_CONFLICT);
	assert_int_equal(reservation(NULL), 0);
}

static void test_registration_limit(void **state)
{
	char itn[SPT_ITNEXUS_MAX];
	unsigned i;

	(void)state;
	for (i = 0; i < 257; i++) {
		snprintf(itn, sizeof(itn), "iqn.2026-11.org.spt:many,i,0x4000000%05x," TGT ",t,0x0001",
			 i);
		session_start(0x10000 + i, itn);
		if (i < 256) {
			register_key(0x10000 + i, 0x100 + i);
			continue;
		}
		/* SPC-4 5.13.7: INSUFFICIENT REGISTRATION RESOURCES */
		assert_int_equal(prout(0x10000 + i, SA_REGISTER, 0, 0, 0x999, 0), ST_CHECK);
		sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x55, 0x04);
	}
	assert_int_equal(generation(), 256);
}

/* ------------------------------------------------------------------ */
/* RESERVE, RELEASE                                                     */
/* ------------------------------------------------------------------ */

static void test_reserve_and_release(void **state)
{
	uint64_t key = 0;

	(void)state;
	register_key(NX_A, 0xa);
	register_key(NX_B, 0xb);
	assert_int_equal(prout(NX_A, SA_RESERVE, WE, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(reservation(&key), WE);
	assert_int_equal(key, 0xa);
	/* SPC-4 5.13.9: RESERVE does not change PRGENERATION */
	assert_int_equal(generation(), 2);
	/* the holder again, same type: GOOD; another type: conflict */
	assert_int_equal(prout(NX_A, SA_RESERVE, WE, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA, 0xa, 0, 0), ST_CONFLICT);
	/* another registrant cannot reserve */
	assert_int_equal(prout(NX_B, SA_RESERVE, WE, 0xb, 0, 0), ST_CONFLICT);
	/* a registrant that is not the holder releases nothing, GOOD */
	assert_int_equal(prout(NX_B, SA_RELEASE, WE, 0xb, 0, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), WE);
	/* the holder with the wrong type: INVALID RELEASE OF PERSISTENT RESERVATION */
	assert_int_equal(prout(NX_A, SA_RELEASE, EA, 0xa, 0, 0), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x04);
	assert_int_equal(reservation(NULL), WE);
	assert_int_equal(prout(NX_A, SA_RELEASE, WE, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), 0);
	/* releasing when nothing is reserved is no error */
	assert_int_equal(prout(NX_A, SA_RELEASE, WE, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(generation(), 2);
	/* Write Exclusive: nobody else was told */
	assert_int_equal(take_uas(NX_B), 0);
}

static void test_reserve_cdb_checks(void **state)
{
	(void)state;
	register_key(NX_A, 0xa);
	/* SPC-4 6.16.2: LU_SCOPE only, types 1, 3, 5-8 */
	assert_int_equal(prout(NX_A, SA_RESERVE, 0x10 | WE, 0xa, 0, 0), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
	field_is(true, 2, 7);
	for (uint8_t t = 0; t < 16; t++) {
		if (t == WE || t == EA || (t >= WE_RO && t <= EA_AR))
			continue;
		assert_int_equal(prout(NX_A, SA_RESERVE, t, 0xa, 0, 0), ST_CHECK);
		sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
		field_is(true, 2, 3);
	}
	/* service actions 08h and up are reserved */
	assert_int_equal(prout(NX_A, 0x08, WE, 0xa, 0, 0), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
	field_is(true, 1, 4);
	/* REGISTER ignores SCOPE and TYPE */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0xff, 0xa, 0xb, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), 0);
}

static void test_parameter_list_checks(void **state)
{
	(void)state;
	/* SPC-4 6.16.3: the basic list is exactly 24 bytes */
	memset(buf, 0, 32);
	assert_int_equal(prout_list(NX_A, SA_REGISTER, 0, 0), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	memset(buf, 0, 32);
	spt_put_be64(&buf[8], 0x77);
	assert_int_equal(prout_list(NX_A, SA_REGISTER, 0, 23), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	memset(buf, 0, 32);
	spt_put_be64(&buf[8], 0x77);
	assert_int_equal(prout_list(NX_A, SA_REGISTER, 0, 28), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	assert_false(key_registered(0x77));
	/* SPEC_I_PT is not supported (SIP_C=0) */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0x77, F_SPEC_I_PT), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	field_is(false, 20, 3);
	/* APTPL without a place to keep the state (PTPL_C=0) */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0x77, F_APTPL), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	field_is(false, 20, 0);
	/* ... but APTPL means nothing to RESERVE, so it is ignored there */
	register_key(NX_A, 0x77);
	assert_int_equal(prout(NX_A, SA_RESERVE, WE, 0x77, 0, F_APTPL), ST_GOOD);
	/* fewer bytes arrived than PARAMETER LIST LENGTH says */
	memset(buf, 0, 24);
	{
		uint8_t cdb[10] = { 0x5f, SA_REGISTER_IGNORE };

		spt_put_be32(&cdb[5], 24);
		spt_put_be64(&buf[8], 0x88);
		memset(&cmd, 0, sizeof(cmd));
		memcpy(cmd.req.cdb, cdb, sizeof(cdb));
		cmd.req.session_cookie = NX_B;
		cmd.req.direction = SPT_DIR_OUT;
		cmd.req.expected_length = 24;
		cmd.req.data_length = 16;
		cmd.req.is_final = 1;
		cmd.buf = buf;
		cmd.buf_len = 24;
		cmd.done = cmd_done;
		spt_bdev_execute(&bdev, &cmd);
		sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	}
	assert_false(key_registered(0x88));
}

static void test_parameter_list_in_two_sequences(void **state)
{
	uint8_t cdb[10] = { 0x5f, SA_REGISTER_IGNORE };

	(void)state;
	spt_put_be32(&cdb[5], 24);
	memset(buf, 0, 24);
	spt_put_be64(&buf[8], 0x4242);
	memset(&cmd, 0, sizeof(cmd));
	memcpy(cmd.req.cdb, cdb, sizeof(cdb));
	cmd.req.session_cookie = NX_B;
	cmd.req.direction = SPT_DIR_OUT;
	cmd.req.expected_length = 24;
	cmd.req.data_length = 12;
	cmd.buf = buf;
	cmd.buf_len = 24;
	cmd.done = cmd_done;
	spt_bdev_execute(&bdev, &cmd);
	assert_int_equal(cmd.cpl.scsi_status, ST_GOOD);	/* asks for the rest */
	assert_false(key_registered(0x4242));
	memset(&cmd.cpl, 0, sizeof(cmd.cpl));
	cmd.req.session_cookie = NX_B;
	cmd.req.sequence_byte_offset = 12;
	cmd.req.data_length = 12;
	cmd.req.is_final = 1;
	memcpy(cmd.req.cdb, cdb, sizeof(cdb));
	memset(buf, 0, 24);
	spt_put_be64(&buf[8], 0x4242);
	cmd.buf = buf;
	spt_bdev_execute(&bdev, &cmd);
	assert_int_equal(cmd.cpl.scsi_status, ST_GOOD);
	assert_true(key_registered(0x4242));
}

/* ------------------------------------------------------------------ */
/* The conflict table                                                   */
/* ------------------------------------------------------------------ */

struct access {
	uint8_t type;
	bool reg_read, reg_write, unreg_read, unreg_write;
};

/* SPC-4 5.13.10 / SBC-3 4.17, as libiscsi's ProutReserve.Access* check it. */
static const struct access access_table[] = {
	{ WE, true, false, true, false },
	{ EA, false, false, false, false },
	{ WE_RO, true, true, true, false },
	{ EA_RO, true, true, false, false },
	{ WE_AR, true, true, true, false },
	{ EA_AR, true, true, false, false },
};

static bool pr_type_is_write_exclusive(uint8_t type)
{
	return type == WE || type == WE_RO || type == WE_AR;
}

static uint8_t want(bool allowed)
{
	return allowed ? ST_GOOD : ST_CONFLICT;
}

static void test_conflict_matrix_read_write(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(access_table) / sizeof(access_table[0]); i++) {
		const struct access *a = &access_table[i];
		uint8_t mode_sense[6] = { 0x1a, 0x08, 0x3f, 0, 255, 0 };
		uint8_t sync[10] = { 0x35 };
		uint8_t rc10[10] = { 0x25 };

		register_key(NX_A, 0xa);
		register_key(NX_B, 0xb);
		assert_int_equal(prout(NX_A, SA_RESERVE, a->type, 0xa, 0, 0), ST_GOOD);
		/* the holder does anything */
		assert_int_equal(read10(NX_A), ST_GOOD);
		assert_int_equal(write10(NX_A), ST_GOOD);
		assert_int_equal(read10(NX_B), want(a->reg_read));
		assert_int_equal(write10(NX_B), want(a->reg_write));
		assert_int_equal(read10(NX_C), want(a->unreg_read));
		assert_int_equal(write10(NX_C), want(a->unreg_write));
		assert_int_equal(cmd.cpl.sense_length, 0);	/* RESERVATION CONFLICT has none */
		/* always allowed: TUR, INQUIRY, READ CAPACITY, REQUEST SENSE */
		assert_int_equal(tur(NX_C), ST_GOOD);
		assert_int_equal(simple(NX_C, 0x12, 96, 96), ST_GOOD);
		assert_int_equal(simple(NX_C, 0x03, 18, 18), ST_GOOD);
		assert_int_equal(exec(NX_C, rc10, sizeof(rc10), 8, SPT_DIR_IN), ST_GOOD);
		assert_int_equal(prin(NX_C, IN_READ_KEYS, 64), ST_GOOD);
		/* MODE SENSE passes Write Exclusive (ALLOW COMMANDS 011b) */
		assert_int_equal(exec(NX_C, mode_sense, 6, 255, SPT_DIR_IN),
				 want(a->unreg_read));
		/* SYNCHRONIZE CACHE and PREVENT=1 act like writes */
		assert_int_equal(exec(NX_C, sync, sizeof(sync), 0, SPT_DIR_NONE), ST_CONFLICT);
		assert_int_equal(exec(NX_B, sync, sizeof(sync), 0, SPT_DIR_NONE),
				 want(a->reg_write));
		assert_int_equal(simple(NX_C, 0x1e, 1, 0), ST_CONFLICT);
		assert_int_equal(simple(NX_C, 0x1e, 0, 0), ST_GOOD);
		/* START STOP UNIT: START=1 passes, a stop does not */
		assert_int_equal(simple(NX_C, 0x1b, 0x01, 0), ST_GOOD);
		assert_int_equal(simple(NX_C, 0x1b, 0x00, 0), ST_CONFLICT);
		/* an unknown opcode is still an unknown opcode */
		assert_int_equal(simple(NX_C, 0xc0, 0, 0), ST_CHECK);
		sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x20, 0x00);
		/* clean up for the next type: CLEAR, then the UAs it caused */
		assert_int_equal(prout(NX_A, SA_CLEAR, 0, 0xa, 0, 0), ST_GOOD);
		drain_all_uas();
		assert_int_equal(write10(NX_C), ST_GOOD);
	}
}

/* The rest of the SBC-3 and SPC-4 rows, from an unregistered I_T nexus:
 * read-like commands pass Write Exclusive, writers pass nothing. */
static void test_conflict_rows_of_other_commands(void **state)
{
	static const struct {
		uint8_t cdb[16];
		size_t len;
		bool reads;		/* passes Write Exclusive */
	} rows[] = {
		{ { 0x2f, 0, 0, 0, 0, 1, 0, 0, 1 }, 10, true },		/* VERIFY(10) */
		{ { 0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1 }, 16, true },	/* VERIFY(16) */
		{ { 0x34, 0, 0, 0, 0, 1, 0, 0, 1 }, 10, true },		/* PRE-FETCH(10) */
		{ { 0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64 }, 16, true },	/* GET LBA STATUS */
		{ { 0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 2, 0 }, 12, true },	/* REPORT SUPPORTED OPCODES */
		{ { 0x5a, 0x08, 0x3f, 0, 0, 0, 0, 0, 255 }, 10, true },	/* MODE SENSE(10) */
		{ { 0x08, 0, 0, 1, 1 }, 6, true },				/* READ(6) */
		{ { 0x0a, 0, 0, 1, 1 }, 6, false },				/* WRITE(6) */
		{ { 0x41, 0, 0, 0, 0, 1, 0, 0, 1 }, 10, false },		/* WRITE SAME(10) */
		{ { 0x93, 0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1 }, 16, false },	/* WRITE SAME(16) NDOB */
		{ { 0x42, 0, 0, 0, 0, 0, 0, 0, 24 }, 10, false },		/* UNMAP */
		{ { 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1 }, 16, false },	/* COMPARE AND WRITE */
		{ { 0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1 }, 16, false },	/* ORWRITE(16) */
		{ { 0x2e, 0, 0, 0, 0, 1, 0, 0, 1 }, 10, false },		/* WRITE AND VERIFY(10) */
		{ { 0x91, 0 }, 16, false },					/* SYNCHRONIZE CACHE(16) */
		{ { 0x55, 0x10, 0, 0, 0, 0, 0, 0, 0 }, 10, false },		/* MODE SELECT(10) */
		{ { 0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 16, false },	/* EXTENDED COPY */
	};
	static const uint8_t types[] = { WE, EA, WE_RO, EA_AR };

	(void)state;
	for (size_t t = 0; t < sizeof(types); t++) {
		register_key(NX_A, 0xa);
		assert_int_equal(prout(NX_A, SA_RESERVE, types[t], 0xa, 0, 0), ST_GOOD);
		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
			bool allowed = rows[i].reads && pr_type_is_write_exclusive(types[t]);
			uint8_t st = exec(NX_C, rows[i].cdb, rows[i].len, 0, SPT_DIR_NONE);

			if (allowed)
				assert_int_not_equal(st, ST_CONFLICT);
			else
				assert_int_equal(st, ST_CONFLICT);
			/* the holder is never refused */
			assert_int_not_equal(exec(NX_A, rows[i].cdb, rows[i].len, 0, SPT_DIR_NONE),
					     ST_CONFLICT);
		}
		assert_int_equal(prout(NX_A, SA_CLEAR, 0, 0xa, 0, 0), ST_GOOD);
	}
}

static void test_conflict_is_status_without_sense(void **state)
{
	(void)state;
	register_key(NX_A, 0xa);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(read10(NX_C), ST_CONFLICT);
	assert_int_equal(cmd.cpl.sense_length, 0);
	assert_int_equal(cmd.cpl.data_in_length, 0);
}

static unsigned tmf_completions;

static void tmf_done(struct spt_tmf *t)
{
	(void)t;
	tmf_completions++;
}

static void lu_reset(uint64_t nexus)
{
	struct spt_tmf tmf;

	memset(&tmf, 0, sizeof(tmf));
	tmf.w.itnexus_handle = nexus;
	tmf.w.function = SPT_TMF_LOGICAL_UNIT_RESET;
	tmf.done = tmf_done;
	tmf_completions = 0;
	spt_bdev_tmf(&bdev, &tmf);
	assert_int_equal(tmf_completions, 1);
	assert_int_equal(tmf.w.response, SPT_TMF_RSP_COMPLETE);
}

static void test_unit_attention_comes_before_conflict(void **state)
{
	(void)state;
	register_key(NX_A, 0xa);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA, 0xa, 0, 0), ST_GOOD);
	lu_reset(NX_A);
	/* SAM-5: the pending unit attention is reported first */
	assert_int_equal(read10(NX_C), ST_CHECK);
	sense_is(SPT_KEY_UNIT_ATTENTION, 0x29, 0x03);
	assert_int_equal(read10(NX_C), ST_CONFLICT);
	/* SPC-4 5.13.1: a logical unit reset leaves the reservation */
	drain_all_uas();
	assert_int_equal(reservation(NULL), EA);
	assert_true(key_registered(0xa));
}

/* ------------------------------------------------------------------ */
/* Losing the reservation: unregistering, releasing, clearing            */
/* ------------------------------------------------------------------ */

static void test_holder_unregistering_releases(void **state)
{
	(void)state;
	/* Write Exclusive: released, nobody told (SPC-4 5.13.11.2) */
	register_key(NX_A, 0xa);
	register_key(NX_B, 0xb);
	assert_int_equal(prout(NX_A, SA_RESERVE, WE, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), 0);
	assert_int_equal(take_uas(NX_B), 0);
	/* registrants only: the other registrants learn RESERVATIONS RELEASED */
	register_key(NX_A, 0xa);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA_RO, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), 0);
	assert_int_equal(take_uas(NX_B), UA_RELEASED);
	assert_int_equal(take_uas(NX_C), 0);
	assert_int_equal(take_uas(NX_A), 0);
	/* a registrant that is not the holder leaves the reservation alone */
	register_key(NX_A, 0xa);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA_RO, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(prout(NX_B, SA_REGISTER, 0, 0xb, 0, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), EA_RO);
}

static void test_all_registrants_lasts_until_the_last_registrant(void **state)
{
	uint64_t key = 1;

	(void)state;
	register_key(NX_A, 0xa);
	register_key(NX_B, 0xb);
	assert_int_equal(prout(NX_A, SA_RESERVE, WE_AR, 0xa, 0, 0), ST_GOOD);
	/* SPC-4 6.15.3: the key of an all-registrants reservation reads 0 */
	assert_int_equal(reservation(&key), WE_AR);
	assert_int_equal(key, 0);
	/* every registrant holds it: B may reserve again with the same type */
	assert_int_equal(prout(NX_B, SA_RESERVE, WE_AR, 0xb, 0, 0), ST_GOOD);
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), WE_AR);
	assert_int_equal(write10(NX_B), ST_GOOD);
	assert_int_equal(write10(NX_A), ST_CONFLICT);
	assert_int_equal(prout(NX_B, SA_REGISTER, 0, 0xb, 0, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), 0);
	assert_int_equal(write10(NX_A), ST_GOOD);
}

static void test_release_tells_registrants_of_shared_types(void **state)
{
	(void)state;
	register_key(NX_A, 0xa);
	register_key(NX_B, 0xb);
	assert_int_equal(prout(NX_A, SA_RESERVE, WE_RO, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(prout(NX_A, SA_RELEASE, WE_RO, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(take_uas(NX_B), UA_RELEASED);
	assert_int_equal(take_uas(NX_A), 0);
	assert_int_equal(take_uas(NX_C), 0);
	/* all registrants: B releases what A reserved */
	assert_int_equal(prout(NX_A, SA_RESERVE, EA_AR, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(prout(NX_B, SA_RELEASE, EA_AR, 0xb, 0, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), 0);
	assert_int_equal(take_uas(NX_A), UA_RELEASED);
	assert_int_equal(take_uas(NX_B), 0);
}

static void test_clear(void **state)
{
	uint64_t keys[4];
	uint32_t gen;

	(void)state;
	register_key(NX_A, 0xa);
	register_key(NX_B, 0xb);
	gen = generation();
	assert_int_equal(prout(NX_A, SA_RESERVE, EA, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(prout(NX_B, SA_CLEAR, 0, 0xa, 0, 0), ST_CONFLICT);	/* B's key is 0xb */
	assert_int_equal(prout(NX_A, SA_CLEAR, 0, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(read_keys(keys, 4), 0);
	assert_int_equal(reservation(NULL), 0);
	/* libiscsi ProutClear: PRGENERATION moved by one for CLEAR, none for RESERVE */
	assert_int_equal(generation(), gen + 1);
	assert_int_equal(take_uas(NX_B), UA_PREEMPTED);
	assert_int_equal(take_uas(NX_A), 0);
	assert_int_equal(take_uas(NX_C), 0);
}

/* ------------------------------------------------------------------ */
/* PREEMPT, PREEMPT AND ABORT                                           */
/* ------------------------------------------------------------------ */

static void test_preempt_without_reservation_removes_registrations(void **state)
{
	uint64_t keys[4];
	uint32_t gen;

	(void)state;
	register_key(NX_A, 0xa);
	register_key(NX_A2, 0xa);
	register_key(NX_B, 0xb);
	gen = generation();
	/* SARK zero without a reservation to preempt */
	assert_int_equal(prout(NX_B, SA_PREEMPT, EA, 0xb, 0, 0), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	/* a key nobody has */
	assert_int_equal(prout(NX_B, SA_PREEMPT, EA, 0xb, 0x77, 0), ST_CONFLICT);
	assert_int_equal(generation(), gen);
	/* libiscsi ProutPreempt.RemoveRegistration */
	assert_int_equal(prout(NX_B, SA_PREEMPT, EA, 0xb, 0xa, 0), ST_GOOD);
	assert_int_equal(read_keys(keys, 4), 1);
	assert_int_equal(keys[0], 0xb);
	assert_int_equal(generation(), gen + 1);
	assert_int_equal(reservation(NULL), 0);
	assert_int_equal(take_uas(NX_A), UA_REG_PREEMPTED);
	assert_int_equal(take_uas(NX_A2), UA_REG_PREEMPTED);
	assert_int_equal(take_uas(NX_B), 0);
	/* preempted: A's commands need registering again */
	assert_int_equal(prout(NX_A, SA_RESERVE, WE, 0xa, 0, 0), ST_CONFLICT);
}

static void test_preempt_takes_the_reservation(void **state)
{
	uint64_t key = 0;

	(void)state;
	register_key(NX_A, 0xa);
	register_key(NX_B, 0xb);
	register_key(NX_C, 0xc);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(read10(NX_B), ST_CONFLICT);
	/* B preempts the holder's key and asks for Write Exclusive */
	assert_int_equal(prout(NX_B, SA_PREEMPT, WE, 0xb, 0xa, 0), ST_GOOD);
	assert_int_equal(reservation(&key), WE);
	assert_int_equal(key, 0xb);
	assert_false(key_registered(0xa));
	assert_int_equal(take_uas(NX_A), UA_REG_PREEMPTED);
	/* the type changed: the remaining registrant is told */
	assert_int_equal(take_uas(NX_C), UA_RELEASED);
	assert_int_equal(take_uas(NX_B), 0);
	assert_int_equal(write10(NX_B), ST_GOOD);
	assert_int_equal(write10(NX_A), ST_CONFLICT);
	assert_int_equal(read10(NX_A), ST_GOOD);
	/* same type: no RESERVATIONS RELEASED */
	assert_int_equal(prout(NX_C, SA_PREEMPT_ABORT, WE, 0xc, 0xb, 0), ST_GOOD);
	assert_int_equal(reservation(&key), WE);
	assert_int_equal(key, 0xc);
	assert_int_equal(take_uas(NX_B), UA_REG_PREEMPTED);
	/* preempting a key that is not the holder's leaves the reservation */
	register_key(NX_A, 0xa);
	assert_int_equal(prout(NX_A, SA_PREEMPT, EA, 0xa, 0x77, 0), ST_CONFLICT);
	register_key(NX_B, 0xb);
	assert_int_equal(prout(NX_B, SA_PREEMPT, EA, 0xb, 0xa, 0), ST_GOOD);
	assert_int_equal(reservation(&key), WE);
	assert_int_equal(key, 0xc);
	assert_false(key_registered(0xa));
	/* SARK zero with a reservation that is not all-registrants */
	assert_int_equal(prout(NX_B, SA_PREEMPT, EA, 0xb, 0, 0), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
}

static void test_preempt_all_registrants(void **state)
{
	uint64_t keys[4], key = 1;

	(void)state;
	register_key(NX_A, 0xa);
	register_key(NX_B, 0xb);
	register_key(NX_C, 0xc);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA_AR, 0xa, 0, 0), ST_GOOD);
	/* a non-zero key: only those registrations go, the reservation stays */
	assert_int_equal(prout(NX_A, SA_PREEMPT, EA_AR, 0xa, 0xc, 0), ST_GOOD);
	assert_int_equal(reservation(&key), EA_AR);
	assert_int_equal(read_keys(keys, 4), 2);
	/* SARK zero: everybody else goes, a new reservation for B */
	assert_int_equal(prout(NX_B, SA_PREEMPT, WE_RO, 0xb, 0, 0), ST_GOOD);
	assert_int_equal(reservation(&key), WE_RO);
	assert_int_equal(key, 0xb);
	assert_int_equal(read_keys(keys, 4), 1);
	assert_int_equal(keys[0], 0xb);
	assert_int_equal(take_uas(NX_A), UA_REG_PREEMPTED);
	assert_int_equal(take_uas(NX_C), UA_REG_PREEMPTED);
}

/* ------------------------------------------------------------------ */
/* REGISTER AND MOVE                                                    */
/* ------------------------------------------------------------------ */

/* Builds a REGISTER AND MOVE list with an iSCSI TransportID for `iport`
 * in buf; returns its length. */
static uint32_t move_list(uint64_t rk, uint64_t sark, uint8_t flags, uint16_t rtpi, uint8_t tid0,
			  const char *iport)
{
	size_t n = strlen(iport) + 1;
	uint32_t tlen = (uint32_t)((4 + n + 3) & ~(size_t)3);

	if (tlen < 24)
		tlen = 24;
	memset(buf, 0, 24 + tlen);
	spt_put_be64(&buf[0], rk);
	spt_put_be64(&buf[8], sark);
	buf[17] = flags;
	spt_put_be16(&buf[18], rtpi);
	spt_put_be32(&buf[20], tlen);
	buf[24] = tid0;
	spt_put_be16(&buf[26], (uint16_t)(tlen - 4));
	memcpy(&buf[28], iport, n);
	return 24 + tlen;
}

static uint8_t register_move(uint64_t nexus, uint64_t rk, uint64_t sark, uint8_t flags,
			     uint16_t rtpi, uint8_t tid0, const char *iport)
{
	return prout_list(nexus, SA_REGISTER_MOVE, 0, move_list(rk, sark, flags, rtpi, tid0, iport));
}

static void test_register_and_move(void **state)
{
	uint64_t key = 0;
	uint32_t gen, plen;

	(void)state;
	register_key(NX_A, 0xa);
	register_key(NX_C, 0xc);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA, 0xa, 0, 0), ST_GOOD);
	gen = generation();
	/* not the holder */
	assert_int_equal(register_move(NX_C, 0xc, 0xb, 0, 1, 0x45, INI_B ",i,0x400000000002"),
			 ST_CONFLICT);
	/* to itself, to another target port, zero key, other protocols or formats */
	assert_int_equal(register_move(NX_A, 0xa, 0xb, 0, 1, 0x45, INI_A ",i,0x400000000001"),
			 ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	assert_int_equal(register_move(NX_A, 0xa, 0xb, 0, 7, 0x45, INI_B ",i,0x400000000002"),
			 ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	field_is(false, 18, -1);
	assert_int_equal(register_move(NX_A, 0xa, 0, 0, 1, 0x45, INI_B ",i,0x400000000002"),
			 ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	assert_int_equal(register_move(NX_A, 0xa, 0xb, 0, 1, 0x41, INI_B ",i,0x400000000002"),
			 ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	field_is(false, 24, 3);
	assert_int_equal(register_move(NX_A, 0xa, 0xb, 0, 1, 0x05, INI_B), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	field_is(false, 24, 7);
	assert_int_equal(register_move(NX_A, 0xa, 0xb, 0, 1, 0x45, INI_B ",i,0x4000"), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x26, 0x00);
	/* a TransportID longer than the list */
	plen = move_list(0xa, 0xb, 0, 1, 0x45, INI_B ",i,0x400000000002");
	spt_put_be32(&buf[20], plen - 24 + 4);
	assert_int_equal(prout_list(NX_A, SA_REGISTER_MOVE, 0, plen), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x1a, 0x00);
	assert_int_equal(generation(), gen);
	/* the move: B registered with SARK, holds the reservation, A stays
	 * registered without UNREG */
	assert_int_equal(register_move(NX_A, 0xa, 0xb, 0, 1, 0x45, INI_B ",I,0X400000000002"),
			 ST_CHECK);	/* ",I," is not the separator */
	assert_int_equal(register_move(NX_A, 0xa, 0xb, 0, 1, 0x45, INI_B ",i,0x400000000002"),
			 ST_GOOD);
	assert_int_equal(generation(), gen + 1);
	assert_int_equal(reservation(&key), EA);
	assert_int_equal(key, 0xb);
	assert_true(key_registered(0xa));
	assert_int_equal(read10(NX_B), ST_GOOD);
	assert_int_equal(read10(NX_A), ST_CONFLICT);
	/* and back to A with UNREG: B is gone; A keeps its key (already
	 * registered), upper-case ISID digits name the same port */
	assert_int_equal(register_move(NX_B, 0xb, 0xa1, 0x02, 1, 0x45, INI_A ",i,0x40000000000A"),
			 ST_GOOD);	/* another ISID: a new registration */
	assert_int_equal(reservation(&key), EA);
	assert_int_equal(key, 0xa1);
	assert_false(key_registered(0xb));
	/* all-registrants reservations cannot move */
	assert_int_equal(prout(NX_A, SA_CLEAR, 0, 0xa, 0, 0), ST_GOOD);
	register_key(NX_A, 0xa);
	assert_int_equal(prout(NX_A, SA_RESERVE, WE_AR, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(register_move(NX_A, 0xa, 0xb, 0, 1, 0x45, INI_B ",i,0x400000000002"),
			 ST_CONFLICT);
}

/* ------------------------------------------------------------------ */
/* Identities: keys follow the initiator port                           */
/* ------------------------------------------------------------------ */

static void test_registration_survives_a_new_session(void **state)
{
	(void)state;
	register_key(NX_A, 0xa);
	assert_int_equal(prout(NX_A, SA_RESERVE, EA, 0xa, 0, 0), ST_GOOD);
	/* SPC-4 5.13.1: I_T nexus loss keeps registrations and reservations */
	session_end(NX_A);
	assert_true(key_registered(0xa));
	assert_int_equal(reservation(NULL), EA);
	/* the same initiator port logs in again: same I_T nexus, new handle */
	session_start(0xa3, NEXUS_A);
	assert_int_equal(write10(0xa3), ST_GOOD);
	assert_int_equal(read10(NX_A2), ST_CONFLICT);	/* another ISID: another port */
	assert_int_equal(prout(NX_A2, SA_RELEASE, EA, 0xa, 0, 0), ST_CONFLICT);
	assert_int_equal(prout(0xa3, SA_RELEASE, EA, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(reservation(NULL), 0);
	/* a command from a handle never announced is an unregistered nexus */
	assert_int_equal(prout(0xa3, SA_RESERVE, EA, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(read10(0x777), ST_CONFLICT);
}

static void test_all_tg_pt_covers_other_target_ports(void **state)
{
	(void)state;
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0xa, F_ALL_TG_PT), ST_GOOD);
	/* the same initiator port through target port 2 */
	session_start(0xa5, INI_A ",i,0x400000000001," TGT ",t,0x0002");
	assert_int_equal(prout(0xa5, SA_RESERVE, EA, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(write10(NX_A), ST_GOOD);
	/* without ALL_TG_PT a registration is for its own target port */
	register_key(NX_B, 0xb);
	session_start(0xb5, INI_B ",i,0x400000000002," TGT ",t,0x0002");
	assert_int_equal(prout(0xb5, SA_REGISTER, 0, 0xb, 0xbb, 0), ST_CONFLICT);
	assert_int_equal(prout(0xb5, SA_REGISTER, 0, 0, 0xbb, 0), ST_GOOD);
}

static void test_unnamed_nexus_cannot_register(void **state)
{
	(void)state;
	session_start(0xdd, "");
	session_start(0xde, "iqn.x,i,0x12,iqn.t,t,0x0001");	/* short ISID */
	session_start(0xdf, "iqn x,i,0x400000000001,iqn.t,t,0x0001");	/* a space */
	for (uint64_t h = 0xdd; h <= 0xdf; h++) {
		assert_int_equal(prout(h, SA_REGISTER, 0, 0, 0x1, 0), ST_CHECK);
		sense_is(SPT_KEY_HARDWARE_ERROR, 0x44, 0x00);
		assert_int_equal(prin(h, IN_READ_KEYS, 64), ST_GOOD);
	}
	assert_false(key_registered(0x1));
}

/* ------------------------------------------------------------------ */
/* RESERVE/RELEASE(6)/(10)                                              */
/* ------------------------------------------------------------------ */

static uint8_t reserve6(uint64_t nexus)
{
	return simple(nexus, 0x16, 0, 0);
}

static uint8_t release6(uint64_t nexus)
{
	return simple(nexus, 0x17, 0, 0);
}

static void test_reserve6_excludes_others(void **state)
{
	uint8_t mode_sense[6] = { 0x1a, 0x08, 0x3f, 0, 255, 0 };
	uint8_t reserve10[10] = { 0x56 };
	uint8_t release10[10] = { 0x57 };
	uint8_t rc10[10] = { 0x25 };

	(void)state;
	assert_int_equal(reserve6(NX_A), ST_GOOD);
	assert_int_equal(reserve6(NX_A), ST_GOOD);	/* the holder again */
	assert_int_equal(reserve6(NX_B), ST_CONFLICT);
	assert_int_equal(exec(NX_B, reserve10, 10, 0, SPT_DIR_NONE), ST_CONFLICT);
	/* libiscsi Reserve6.2Initiators: RELEASE by another is a no-op */
	assert_int_equal(release6(NX_B), ST_GOOD);
	assert_int_equal(exec(NX_B, mode_sense, 6, 255, SPT_DIR_IN), ST_CONFLICT);
	assert_int_equal(exec(NX_A, mode_sense, 6, 255, SPT_DIR_IN), ST_GOOD);
	assert_int_equal(read10(NX_B), ST_CONFLICT);
	assert_int_equal(write10(NX_B), ST_CONFLICT);
	assert_int_equal(tur(NX_B), ST_CONFLICT);
	assert_int_equal(write10(NX_A), ST_GOOD);
	/* SPC-2: INQUIRY, REQUEST SENSE, READ CAPACITY still work */
	assert_int_equal(simple(NX_B, 0x12, 96, 96), ST_GOOD);
	assert_int_equal(simple(NX_B, 0x03, 18, 18), ST_GOOD);
	assert_int_equal(exec(NX_B, rc10, sizeof(rc10), 8, SPT_DIR_IN), ST_GOOD);
	/* SPC-2 5.5.1: PERSISTENT RESERVE IN/OUT conflict, the holder's too */
	assert_int_equal(prin(NX_A, IN_READ_KEYS, 64), ST_CONFLICT);
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0xa, 0), ST_CONFLICT);
	assert_int_equal(prout(NX_B, SA_REGISTER, 0, 0, 0xb, 0), ST_CONFLICT);
	assert_int_equal(exec(NX_A, release10, 10, 0, SPT_DIR_NONE), ST_GOOD);
	assert_int_equal(read10(NX_B), ST_GOOD);
	assert_int_equal(reserve6(NX_B), ST_GOOD);
	assert_int_equal(release6(NX_B), ST_GOOD);
}

static void test_reserve6_ends_with_session_and_reset(void **state)
{
	(void)state;
	/* SPC-2 5.5.1: I_T nexus loss releases the holder's reservation */
	assert_int_equal(reserve6(NX_A), ST_GOOD);
	session_end(NX_A);
	assert_int_equal(reserve6(NX_B), ST_GOOD);
	assert_int_equal(read10(NX_C), ST_CONFLICT);
	/* ... and so does a logical unit reset, from anyone */
	lu_reset(NX_C);
	drain_all_uas();
	assert_int_equal(read10(NX_C), ST_GOOD);
	assert_int_equal(reserve6(NX_C), ST_GOOD);
	/* a new session of the same initiator port does not hold it */
	session_end(NX_C);
	session_start(0xc2, NEXUS_C);
	assert_int_equal(reserve6(NX_B), ST_GOOD);
	assert_int_equal(reserve6(0xc2), ST_CONFLICT);
}

static void test_reserve6_and_registrations_exclude_each_other(void **state)
{
	uint8_t reserve10_3rdpty[10] = { 0x56, 0x10 };
	uint8_t reserve10_longid[10] = { 0x56, 0x02 };

	(void)state;
	/* SPC-4 5.13.3: with a registration every RESERVE/RELEASE conflicts */
	register_key(NX_A, 0xa);
	assert_int_equal(reserve6(NX_A), ST_CONFLICT);
	assert_int_equal(reserve6(NX_C), ST_CONFLICT);
	assert_int_equal(release6(NX_A), ST_CONFLICT);
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(reserve6(NX_C), ST_GOOD);
	assert_int_equal(release6(NX_C), ST_GOOD);
	/* third-party and element reservations are not supported */
	assert_int_equal(exec(NX_A, reserve10_3rdpty, 10, 0, SPT_DIR_NONE), ST_CHECK);
	sense_is(SPT_KEY_ILLEGAL_REQUEST, 0x24, 0x00);
	field_is(true, 1, 4);
	assert_int_equal(exec(NX_A, reserve10_longid, 10, 0, SPT_DIR_NONE), ST_CHECK);
	field_is(true, 1, 1);
	assert_int_equal(simple(NX_A, 0x16, 0, 0), ST_GOOD);
	assert_int_equal(release6(NX_A), ST_GOOD);
	{
		uint8_t extent[6] = { 0x16, 0x01 };

		assert_int_equal(exec(NX_A, extent, 6, 0, SPT_DIR_NONE), ST_CHECK);
		field_is(true, 1, 0);
	}
}

/* ------------------------------------------------------------------ */
/* REPORT SUPPORTED OPERATION CODES                                     */
/* ------------------------------------------------------------------ */

static uint8_t rsoc_one(uint8_t options, uint8_t opcode, uint16_t sa)
{
	uint8_t cdb[12] = { 0xa3, 0x0c, options, opcode };

	spt_put_be16(&cdb[4], sa);
	spt_put_be32(&cdb[6], 512);
	memset(buf, 0, 512);
	return exec(NX_A, cdb, sizeof(cdb), 512, SPT_DIR_IN);
}

static void test_rsoc_lists_the_reservation_commands(void **state)
{
	(void)state;
	for (uint16_t sa = 0; sa <= 3; sa++) {
		assert_int_equal(rsoc_one(0x02, 0x5e, sa), ST_GOOD);
		assert_int_equal(buf[1] & 0x07, 0x03);
		assert_int_equal(spt_get_be16(&buf[2]), 10);
		assert_int_equal(buf[4], 0x5e);
	}
	assert_int_equal(rsoc_one(0x02, 0x5e, 4), ST_GOOD);
	assert_int_equal(buf[1] & 0x07, 0x01);		/* not supported */
	for (uint16_t sa = 0; sa <= 7; sa++) {
		assert_int_equal(rsoc_one(0x02, 0x5f, sa), ST_GOOD);
		assert_int_equal(buf[1] & 0x07, 0x03);
		assert_int_equal(buf[4], 0x5f);
		assert_int_equal(buf[5], 0x1f);
	}
	assert_int_equal(rsoc_one(0x01, 0x16, 0), ST_GOOD);
	assert_int_equal(buf[1] & 0x07, 0x03);
	assert_int_equal(rsoc_one(0x01, 0x57, 0), ST_GOOD);
	assert_int_equal(spt_get_be16(&buf[2]), 10);
}

/* ------------------------------------------------------------------ */
/* APTPL                                                                */
/* ------------------------------------------------------------------ */

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static void reopen(void)
{
	char path[512];

	spt_bdev_fini(&bdev);
	state_path(path, sizeof(path));
	bdev_fill(path);
	assert_int_equal(spt_bdev_init(&bdev), 0);
	sessions_start();
}

static void test_aptpl_state_survives_restart(void **state)
{
	char path[512];
	uint64_t keys[4], key = 0;
	uint32_t gen;

	(void)state;
	state_path(path, sizeof(path));
	assert_int_equal(prin(NX_A, IN_REPORT_CAPABILITIES, 8), ST_GOOD);
	assert_int_equal(buf[2] & 0x01, 0x01);		/* PTPL_C */
	assert_int_equal(buf[3] & 0x01, 0x00);		/* PTPL_A */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0xa, F_APTPL), ST_GOOD);
	assert_true(file_exists(path));
	assert_int_equal(prout(NX_B, SA_REGISTER, 0, 0, 0xb, F_APTPL | F_ALL_TG_PT), ST_GOOD);
	assert_int_equal(prout(NX_A, SA_RESERVE, WE_RO, 0xa, 0, 0), ST_GOOD);
	assert_int_equal(prin(NX_A, IN_REPORT_CAPABILITIES, 8), ST_GOOD);
	assert_int_equal(buf[3] & 0x01, 0x01);		/* PTPL_A */
	gen = generation();

	reopen();
	assert_int_equal(generation(), gen);
	assert_int_equal(read_keys(keys, 4), 2);
	assert_int_equal(reservation(&key), WE_RO);
	assert_int_equal(key, 0xa);
	assert_int_equal(prin(NX_A, IN_REPORT_CAPABILITIES, 8), ST_GOOD);
	assert_int_equal(buf[3] & 0x01, 0x01);
	/* the holder and the registrant find their registrations */
	assert_int_equal(write10(NX_A), ST_GOOD);
	assert_int_equal(write10(NX_B), ST_GOOD);
	assert_int_equal(write10(NX_C), ST_CONFLICT);
	assert_int_equal(prin(NX_C, IN_READ_FULL_STATUS, 4096), ST_GOOD);
	assert_true(spt_get_be32(&buf[4]) > 0);
	/* RELEASE is saved too */
	assert_int_equal(prout(NX_A, SA_RELEASE, WE_RO, 0xa, 0, 0), ST_GOOD);
	reopen();
	assert_int_equal(reservation(NULL), 0);
	assert_int_equal(read_keys(keys, 4), 2);
	/* a REGISTER with APTPL=0 ends persistence: the file goes */
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0xa, 0xaa, 0), ST_GOOD);
	assert_false(file_exists(path));
	reopen();
	assert_int_equal(read_keys(keys, 4), 0);
	assert_int_equal(generation(), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_aptpl_file_loads_and_rejects_corruption(void **state)
{
	char path[512];
	uint64_t key = 0;
	static const char *const bad[] = {
		"garbage\n",
		"spt-pr-state 2\ngeneration 1\nreservation none\nend\n",
		"spt-pr-state 1\ngeneration 1\nreservation none\n",	/* truncated */
		"spt-pr-state 1\ngeneration x\nreservation none\nend\n",
		"spt-pr-state 1\ngeneration 1\nreservation 2\nend\n",	/* type 2 */
		"spt-pr-state 1\ngeneration 1\nreservation 1\nend\n",	/* no holder */
		"spt-pr-state 1\ngeneration 1\nreservation none\n"
		"registration 00000000000000aa 0 0 " INI_A ",i,0x400000000001 " TGT ",t,0x0001\n"
		"registration 00000000000000bb 0 0 " INI_A ",i,0x400000000001 " TGT ",t,0x0001\n"
		"end\n",						/* twice */
		"spt-pr-state 1\ngeneration 1\nreservation 3\n"
		"registration 00000000000000aa 0 1 " INI_A ",i,0x400000000001 " TGT ",t,0x0001\n"
		"registration 00000000000000bb 0 1 " INI_B ",i,0x400000000002 " TGT ",t,0x0001\n"
		"end\n",						/* two holders */
		"spt-pr-state 1\ngeneration 1\nreservation none\n"
		"registration 0000000000000000 0 0 " INI_A ",i,0x400000000001 " TGT ",t,0x0001\n"
		"end\n",						/* key 0 */
		"spt-pr-state 1\ngeneration 1\nreservation none\n"
		"registration 00000000000000aa 0 0 " INI_A ",i,0x4001 " TGT ",t,0x0001\n"
		"end\n",						/* bad ISID */
		"spt-pr-state 1\ngeneration 1\nreservation none\nend\nmore\n",
	};

	(void)state;
	state_path(path, sizeof(path));
	spt_bdev_fini(&bdev);
	bdev_fill(path);
	write_file(path, "spt-pr-state 1\ngeneration 7\nreservation 3\n"
			 "registration 00000000000000aa 0 1 " INI_A ",i,0x400000000001 " TGT
			 ",t,0x0001\nend\n");
	assert_int_equal(spt_bdev_init(&bdev), 0);
	sessions_start();
	assert_int_equal(generation(), 7);
	assert_int_equal(reservation(&key), EA);
	assert_int_equal(key, 0xaa);
	assert_int_equal(read10(NX_B), ST_CONFLICT);
	assert_int_equal(read10(NX_A), ST_GOOD);
	spt_bdev_fini(&bdev);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bdev_fill(path);
		write_file(path, bad[i]);
		assert_int_equal(spt_bdev_init(&bdev), -EBADMSG);
		assert_null(bdev.state);
		/* the file is kept for the administrator to look at */
		assert_true(file_exists(path));
	}
	bdev_fill(path);
	unlink(path);
	assert_int_equal(spt_bdev_init(&bdev), 0);
	sessions_start();
}

static void test_aptpl_save_failure_changes_nothing(void **state)
{
	(void)state;
	spt_bdev_fini(&bdev);
	bdev_fill("/nonexistent-spt-dir/lun.pr");
	assert_int_equal(spt_bdev_init(&bdev), 0);
	sessions_start();
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0xa, F_APTPL), ST_CHECK);
	sense_is(SPT_KEY_HARDWARE_ERROR, 0x44, 0x00);
	assert_false(key_registered(0xa));
	assert_int_equal(generation(), 0);
	assert_int_equal(prout(NX_A, SA_REGISTER, 0, 0, 0xa, 0), ST_GOOD);
	assert_true(key_registered(0xa));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prin_on_a_fresh_lu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prin_report_capabilities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prin_reserved_service_actions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prin_allocation_length_truncates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prin_read_full_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_and_unregister, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregistered_nexus_may_only_register, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_registration_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_and_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_cdb_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parameter_list_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parameter_list_in_two_sequences, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflict_matrix_read_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflict_rows_of_other_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conflict_is_status_without_sense, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_attention_comes_before_conflict, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_holder_unregistering_releases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_registrants_lasts_until_the_last_registrant,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_tells_registrants_of_shared_types, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preempt_without_reservation_removes_registrations,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_preempt_takes_the_reservation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_preempt_all_registrants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_and_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registration_survives_a_new_session, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_all_tg_pt_covers_other_target_ports, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unnamed_nexus_cannot_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve6_excludes_others, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserve6_ends_with_session_and_reset, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reserve6_and_registrations_exclude_each_other,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rsoc_lists_the_reservation_commands, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_aptpl_state_survives_restart, setup_aptpl,
						teardown_aptpl),
		cmocka_unit_test_setup_teardown(test_aptpl_file_loads_and_rejects_corruption,
						setup_aptpl, teardown_aptpl),
		cmocka_unit_test_setup_teardown(test_aptpl_save_failure_changes_nothing, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
