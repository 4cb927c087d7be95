/*
 * The file / block-device provider: spec parsing, opening (sparse creation,
 * sizes, identity) and real I/O through the io_uring driven by an ev_loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/fs.h>

#include <spt/scsi.h>

#include "providers/file.h"
#include "util/evloop.h"

/*
 * The provider hands SCSI work to scsi/ (spt_bdev_*); these tests drive the
 * backing-store side only. When the test is linked without scsi/ (a build of
 * this module alone), these weak definitions stand in; the real ones win
 * whenever they are linked.
 */
__attribute__((weak)) int spt_bdev_init(struct spt_bdev *bdev) { (void)bdev; return 0; }
__attribute__((weak)) void spt_bdev_fini(struct spt_bdev *bdev) { (void)bdev; }
__attribute__((weak)) void spt_bdev_execute(struct spt_bdev *bdev, struct spt_cmd *cmd) { (void)bdev; (void)cmd; }
__attribute__((weak)) void spt_bdev_session_start(struct spt_bdev *bdev, const struct spt_session_start *ss) { (void)bdev; (void)ss; }
__attribute__((weak)) void spt_bdev_session_end(struct spt_bdev *bdev, const struct spt_session_end *se) { (void)bdev; (void)se; }
__attribute__((weak)) void spt_bdev_tmf(struct spt_bdev *bdev, struct spt_tmf *tmf) { (void)bdev; (void)tmf; }

#define MIB (1024u * 1024u)

static char tmpdir[PATH_MAX];
static char shmdir[PATH_MAX];	/* on tmpfs: no ZERO_RANGE there */

static void tpath(char *out, const char *dir, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		fail_msg("path too long");
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static int group_setup(void **state)
{
	struct statfs sf;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/spt_test_file.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(shmdir, sizeof(shmdir), "/dev/shm/spt_test_file.XXXXXX");
	if (statfs("/dev/shm", &sf) < 0 || sf.f_type != 0x01021994 || !mkdtemp(shmdir))
		shmdir[0] = '\0';
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (shmdir[0])
		nftw(shmdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Driving I/O                                                          */
/* ------------------------------------------------------------------ */

struct waiter {
	struct ev_loop *loop;
	int outstanding;
	int errors;
	int last;
};

static void io_done(struct spt_bdev_io *io, int result)
{
	struct waiter *w = io->priv;

	w->outstanding--;
	w->last = result;
	if (result)
		w->errors++;
	if (w->outstanding == 0)
		ev_loop_stop(w->loop);
}

static void io_init(struct spt_bdev_io *io, struct spt_bdev *b, uint8_t op, uint32_t flags,
		    uint64_t off, uint64_t len, uint8_t *buf, struct waiter *w)
{
	memset(io, 0, sizeof(*io));
	io->bdev = b;
	io->op = op;
	io->flags = flags;
	io->offset = off;
	io->length = len;
	io->buf = buf;
	io->done = io_done;
	io->priv = w;
}

static void run_until_done(struct waiter *w)
{
	if (w->outstanding > 0)
		ev_loop_run(w->loop);
	assert_int_equal(w->outstanding, 0);
}

/* One operation, run to completion; its result. */
static int do_io(struct ev_loop *loop, struct spt_bdev *b, uint8_t op, uint32_t flags,
		 uint64_t off, uint64_t len, uint8_t *buf)
{
	struct waiter w = { .loop = loop, .outstanding = 1 };
	struct spt_bdev_io io;

	io_init(&io, b, op, flags, off, len, buf, &w);
	b->ops->submit(b, &io);
	run_until_done(&w);
	return w.last;
}

static void stop_cb(void *arg)
{
	ev_loop_stop(arg);
}

/* Runs the deferred calls queued so far (a closed ring frees itself in one). */
static void loop_settle(struct ev_loop *loop)
{
	assert_int_equal(ev_defer(loop, stop_cb, loop), 0);
	ev_loop_run(loop);
}

static void loop_finish(struct ev_loop *loop)
{
	loop_settle(loop);
	ev_loop_free(loop);
}

static struct ev_loop *loop_new(void)
{
	struct ev_loop *loop = ev_loop_new();

	assert_non_null(loop);
	return loop;
}

static int open_spec(struct ev_loop *loop, const char *spec, struct spt_lun *lun, char *err)
{
	struct file_lun_config cfg;

	if (file_lun_parse(spec, &cfg, err, 256) < 0)
		return -1;
	return file_lun_open(loop, &cfg, 0, "iqn.2024-01.org.example:t1", lun, err, 256);
}

static void open_ok(struct ev_loop *loop, const char *spec, struct spt_lun *lun)
{
	char err[256] = "";
	int ret = open_spec(loop, spec, lun, err);

	if (ret < 0)
		fail_msg("open '%s': %s", spec, err);
	assert_non_null(file_lun_bdev(lun));
}

static void close_lun(struct spt_lun *lun)
{
	lun->ops->close(lun->ctx);
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static bool all_zero(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ */
/* Spec parsing                                                         */
/* ------------------------------------------------------------------ */

static void test_parse_good(void **state)
{
	struct file_lun_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(file_lun_parse("/srv/disk.img", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.path, "/srv/disk.img");
	assert_int_equal(cfg.size, 0);
	assert_int_equal(cfg.block_size, 0);
	assert_false(cfg.read_only);

	assert_int_equal(file_lun_parse("/a/b,size=10G,block_size=4096,ro", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.path, "/a/b");
	assert_int_equal(cfg.size, 10ULL << 30);
	assert_int_equal(cfg.block_size, 4096);
	assert_true(cfg.read_only);

	assert_int_equal(file_lun_parse("rel.img,ro,size=1048576", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.path, "rel.img");
	assert_int_equal(cfg.size, 1048576);
	assert_true(cfg.read_only);

	assert_int_equal(file_lun_parse("x,size=64k", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.size, 65536);
	assert_int_equal(file_lun_parse("x,size=3M", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.size, 3ULL << 20);
	assert_int_equal(file_lun_parse("x,size=2t,block_size=512", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.size, 2ULL << 40);
	assert_int_equal(cfg.block_size, 512);
	/* the largest size that fits 64 bits with a suffix */
	assert_int_equal(file_lun_parse("x,size=16777215T", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.size, 16777215ULL << 40);
}

static void expect_parse_error(const char *spec, const char *words)
{
	struct file_lun_config cfg;
	char err[256] = "";

	if (file_lun_parse(spec, &cfg, err, sizeof(err)) == 0)
		fail_msg("spec '%s' was accepted", spec);
	if (!strstr(err, words))
		fail_msg("spec '%s': error '%s' does not say '%s'", spec, err, words);
}

static void test_parse_bad(void **state)
{
	char longspec[PATH_MAX + 16];
	struct file_lun_config cfg;

	(void)state;
	expect_parse_error("", "empty LUN spec");
	expect_parse_error(",size=1G", "no path");
	expect_parse_error("x,", "empty option");
	expect_parse_error("x,,ro", "empty option");
	expect_parse_error("x,size=", "not a number");
	expect_parse_error("x,size=abc", "not a number");
	expect_parse_error("x,size=-5", "not a number");
	expect_parse_error("x,size= 5", "not a number");
	expect_parse_error("x,size=10X", "unknown suffix");
	expect_parse_error("x,size=10KB", "trailing characters");
	expect_parse_error("x,size=0", "greater than zero");
	expect_parse_error("x,size=0G", "greater than zero");
	expect_parse_error("x,size=99999999999999999999", "too large");
	expect_parse_error("x,size=16777216T", "too large");
	expect_parse_error("x,block_size=1024", "use 512 or 4096");
	expect_parse_error("x,block_size=", "use 512 or 4096");
	expect_parse_error("x,foo=1", "unknown option 'foo=1'");
	expect_parse_error("x,RO", "unknown option");
	expect_parse_error("x,ro,ro", "given twice");
	expect_parse_error("x,size=1G,size=2G", "given twice");
	expect_parse_error("x,block_size=512,block_size=4096", "given twice");
	expect_parse_error("x,size=111111111111111111111111111111111111111111111111111111111111111111111",
			   "longer than");

	memset(longspec, 'a', sizeof(longspec) - 1);
	longspec[sizeof(longspec) - 1] = '\0';
	expect_parse_error(longspec, "longer than the limit");
	assert_int_equal(file_lun_parse(NULL, &cfg, NULL, 0), -1);	/* no buffer for the reason */
}

/* ------------------------------------------------------------------ */
/* Opening                                                              */
/* ------------------------------------------------------------------ */

static void test_open_creates_sparse(void **state)
{
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	struct spt_lun lun;
	struct spt_bdev *b;
	struct stat st;

	(void)state;
	tpath(p, tmpdir, "sparse.img");
	snprintf(spec, sizeof(spec), "%s,size=1G", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 1LL << 30);
	/* sparse: next to nothing allocated for a 1 GiB file */
	assert_true((uint64_t)st.st_blocks * 512 < MIB);
	assert_int_equal(b->block_size, 512);
	assert_int_equal(b->num_blocks, (1ULL << 30) / 512);
	assert_false(b->read_only);
	assert_true(b->thin);	/* ext4 punches holes */
	assert_true(b->write_cache);
	assert_int_equal(b->max_transfer_bytes, FILE_MAX_TRANSFER);
	assert_int_equal(lun.lun, 0);
	assert_non_null(strstr(lun.desc, "file:"));
	assert_non_null(strstr(lun.desc, "(2097152 x 512)"));
	assert_string_equal(lun.ops->name, "file");
	close_lun(&lun);
	/* closing keeps the file and its size */
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 1LL << 30);
	loop_finish(loop);
}

static void test_open_size_handling(void **state)
{
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64], err[256];
	struct spt_lun lun;
	struct stat st;
	int fd;

	(void)state;
	tpath(p, tmpdir, "sizes.img");
	fd = open(p, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, MIB), 0);
	close(fd);

	/* no size: the existing one */
	snprintf(spec, sizeof(spec), "%s", p);
	open_ok(loop, spec, &lun);
	assert_int_equal(file_lun_bdev(&lun)->num_blocks, MIB / 512);
	close_lun(&lun);

	/* a larger size grows it, sparse */
	snprintf(spec, sizeof(spec), "%s,size=2M,block_size=4096", p);
	open_ok(loop, spec, &lun);
	assert_int_equal(file_lun_bdev(&lun)->num_blocks, 2 * MIB / 4096);
	assert_int_equal(file_lun_bdev(&lun)->block_size, 4096);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 2 * MIB);
	close_lun(&lun);

	/* the same size: fine */
	snprintf(spec, sizeof(spec), "%s,size=2M", p);
	open_ok(loop, spec, &lun);
	close_lun(&lun);

	/* a smaller size: refused, the file untouched */
	snprintf(spec, sizeof(spec), "%s,size=1M", p);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "refusing to shrink"));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 2 * MIB);

	/* read-only cannot grow it */
	snprintf(spec, sizeof(spec), "%s,size=4M,ro", p);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "cannot grow"));

	/* read-only with the existing size */
	snprintf(spec, sizeof(spec), "%s,ro", p);
	open_ok(loop, spec, &lun);
	assert_true(file_lun_bdev(&lun)->read_only);
	assert_false(file_lun_bdev(&lun)->thin);
	assert_non_null(strstr(lun.desc, " ro"));
	close_lun(&lun);

	/* not a whole number of blocks */
	tpath(p, tmpdir, "odd.img");
	fd = open(p, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 6144), 0);
	close(fd);
	snprintf(spec, sizeof(spec), "%s,block_size=4096", p);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "not a multiple of the block size 4096"));
	snprintf(spec, sizeof(spec), "%s", p);	/* 12 x 512 is fine */
	open_ok(loop, spec, &lun);
	assert_int_equal(file_lun_bdev(&lun)->num_blocks, 12);
	close_lun(&lun);
	snprintf(spec, sizeof(spec), "%s,size=1000", p);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "not a multiple of the block size 512"));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 6144);
	tpath(p, tmpdir, "odd2.img");
	snprintf(spec, sizeof(spec), "%s,size=1000", p);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "not a multiple of the block size 512"));
	assert_int_equal(access(p, F_OK), -1);	/* what we created for it is gone again */
	loop_finish(loop);
}

static void test_open_errors(void **state)
{
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64], err[256];
	struct file_lun_config cfg;
	struct spt_lun lun, lun2;
	int fd;

	(void)state;
	tpath(p, tmpdir, "missing.img");
	snprintf(spec, sizeof(spec), "%s", p);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "does not exist; give size="));
	snprintf(spec, sizeof(spec), "%s,size=1M,ro", p);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "read-only LUN needs an existing file"));
	assert_int_equal(access(p, F_OK), -1);	/* nothing created */

	snprintf(spec, sizeof(spec), "%s", tmpdir);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "neither a regular file nor a block device"));

	/* a FIFO: refused, not waited on */
	tpath(p, tmpdir, "fifo");
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(spec, sizeof(spec), "%s,ro", p);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "neither a regular file nor a block device"));

	tpath(p, tmpdir, "empty.img");
	fd = open(p, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(spec, sizeof(spec), "%s", p);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "is empty; give size="));

	/* one writer per backing file */
	snprintf(spec, sizeof(spec), "%s,size=64K", p);
	open_ok(loop, spec, &lun);
	assert_int_equal(open_spec(loop, spec, &lun2, err), -1);
	assert_non_null(strstr(err, "in use"));
	close_lun(&lun);
	open_ok(loop, spec, &lun);
	close_lun(&lun);

	/* a config built by hand with a bad block size */
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.path, sizeof(cfg.path), "%s", p);
	cfg.block_size = 1000;
	assert_int_equal(file_lun_open(loop, &cfg, 1, NULL, &lun, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "512 or 4096"));
	loop_finish(loop);
}

static void test_identity(void **state)
{
	struct ev_loop *loop = loop_new();
	char a[PATH_MAX], b[PATH_MAX], spec[PATH_MAX + 64], cwd[PATH_MAX];
	char serial[SPT_SERIAL_MAX + 1];
	struct spt_bdev *bd;
	struct spt_lun lun;
	uint64_t naa;

	(void)state;
	tpath(a, tmpdir, "id_a.img");
	tpath(b, tmpdir, "id_b.img");
	snprintf(spec, sizeof(spec), "%s,size=1M", a);
	open_ok(loop, spec, &lun);
	bd = file_lun_bdev(&lun);
	naa = bd->naa;
	snprintf(serial, sizeof(serial), "%s", bd->serial);
	/* NAA 3 (locally assigned) in the top nibble */
	assert_int_equal(naa >> 60, 3);
	assert_int_equal(strlen(serial), 16);
	assert_int_equal(strspn(serial, "0123456789abcdef"), 16);
	assert_int_equal(strtoull(serial, NULL, 16) & ((1ULL << 60) - 1), naa & ((1ULL << 60) - 1));
	assert_string_equal(bd->vendor, "SPT");
	assert_string_equal(bd->product, "spt file");
	assert_string_equal(bd->revision, "0001");
	assert_int_equal(bd->relative_port, 1);
	assert_string_equal(bd->target_name, "iqn.2024-01.org.example:t1");
	close_lun(&lun);

	/* the same file again, through a relative path: the same identity */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	open_ok(loop, "./id_a.img", &lun);
	assert_int_equal(chdir(cwd), 0);
	bd = file_lun_bdev(&lun);
	assert_true(bd->naa == naa);
	assert_string_equal(bd->serial, serial);
	close_lun(&lun);

	/* another file: another identity */
	snprintf(spec, sizeof(spec), "%s,size=1M", b);
	open_ok(loop, spec, &lun);
	bd = file_lun_bdev(&lun);
	assert_true(bd->naa != naa);
	assert_string_not_equal(bd->serial, serial);
	close_lun(&lun);
	loop_finish(loop);
}

/* ------------------------------------------------------------------ */
/* I/O through the ring                                                 */
/* ------------------------------------------------------------------ */

static void test_io_write_read(void **state)
{
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	size_t len = 256 * 1024;
	uint8_t *wbuf = malloc(len), *rbuf = malloc(len);
	struct spt_lun lun;
	struct spt_bdev *b;
	int fd;

	(void)state;
	assert_non_null(wbuf);
	assert_non_null(rbuf);
	tpath(p, tmpdir, "rw.img");
	snprintf(spec, sizeof(spec), "%s,size=16M", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);

	fill(wbuf, len, 1);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, 0, 4096, len, wbuf), 0);
	memset(rbuf, 0xee, len);
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 4096, len, rbuf), 0);
	assert_memory_equal(rbuf, wbuf, len);

	/* FUA write, then a flush */
	fill(wbuf, len, 2);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, SPT_BDEV_FUA, 8 * MIB, len, wbuf), 0);
	assert_int_equal(do_io(loop, b, SPT_BDEV_FLUSH, 0, 0, 0, NULL), 0);
	memset(rbuf, 0, len);
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 8 * MIB, len, rbuf), 0);
	assert_memory_equal(rbuf, wbuf, len);

	/* the whole largest transfer, at the very end of the LUN */
	{
		uint8_t *big = malloc(FILE_MAX_TRANSFER), *big2 = malloc(FILE_MAX_TRANSFER);

		assert_non_null(big);
		assert_non_null(big2);
		fill(big, FILE_MAX_TRANSFER, 3);
		assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, 0, 16 * MIB - FILE_MAX_TRANSFER,
				       FILE_MAX_TRANSFER, big), 0);
		assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 16 * MIB - FILE_MAX_TRANSFER,
				       FILE_MAX_TRANSFER, big2), 0);
		assert_memory_equal(big, big2, FILE_MAX_TRANSFER);
		free(big);
		free(big2);
	}

	/* a zero-length op completes at once */
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 0, 0, NULL), 0);

	/* the data is really in the file */
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, rbuf, len, 4096), (ssize_t)len);
	fill(wbuf, len, 1);
	assert_memory_equal(rbuf, wbuf, len);
	close(fd);

	close_lun(&lun);
	free(wbuf);
	free(rbuf);
	loop_finish(loop);
}

static void test_io_unmap_map_status(void **state)
{
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	uint8_t *buf = malloc(MIB);
	struct spt_lun lun;
	struct spt_bdev *b;
	uint64_t length;
	struct stat st1, st2;
	bool mapped;

	(void)state;
	assert_non_null(buf);
	tpath(p, tmpdir, "unmap.img");
	snprintf(spec, sizeof(spec), "%s,size=4M", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);
	assert_true(b->thin);

	/* fresh: one hole over the whole LUN */
	assert_int_equal(b->ops->map_status(b, 0, &mapped, &length), 0);
	assert_false(mapped);
	assert_int_equal(length, 4 * MIB);

	fill(buf, MIB, 4);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, 0, 0, MIB, buf), 0);
	assert_int_equal(do_io(loop, b, SPT_BDEV_FLUSH, 0, 0, 0, NULL), 0);
	assert_int_equal(stat(p, &st1), 0);

	assert_int_equal(do_io(loop, b, SPT_BDEV_UNMAP, 0, 256 * 1024, 256 * 1024, NULL), 0);
	assert_int_equal(stat(p, &st2), 0);
	assert_true(st2.st_blocks < st1.st_blocks);	/* really deallocated */

	memset(buf, 0xaa, MIB);
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 0, MIB, buf), 0);
	assert_true(all_zero(buf + 256 * 1024, 256 * 1024));
	{
		uint8_t *ref = malloc(MIB);

		assert_non_null(ref);
		fill(ref, MIB, 4);
		assert_memory_equal(buf, ref, 256 * 1024);
		assert_memory_equal(buf + 512 * 1024, ref + 512 * 1024, 512 * 1024);
		free(ref);
	}

	assert_int_equal(b->ops->map_status(b, 0, &mapped, &length), 0);
	assert_true(mapped);
	assert_int_equal(length, 256 * 1024);
	assert_int_equal(b->ops->map_status(b, 256 * 1024, &mapped, &length), 0);
	assert_false(mapped);
	assert_int_equal(length, 256 * 1024);
	assert_int_equal(b->ops->map_status(b, 300 * 1024, &mapped, &length), 0);
	assert_false(mapped);
	assert_int_equal(length, 212 * 1024);
	assert_int_equal(b->ops->map_status(b, 512 * 1024, &mapped, &length), 0);
	assert_true(mapped);
	assert_int_equal(length, 512 * 1024);
	assert_int_equal(b->ops->map_status(b, MIB, &mapped, &length), 0);
	assert_false(mapped);
	assert_int_equal(length, 3 * MIB);
	assert_int_equal(b->ops->map_status(b, 4 * MIB, &mapped, &length), -EINVAL);

	/* UNMAP with FUA also syncs; WRITE ZEROES zeroes */
	assert_int_equal(do_io(loop, b, SPT_BDEV_UNMAP, SPT_BDEV_FUA, 0, 4096, NULL), 0);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE_ZEROES, 0, 600 * 1024, 8192, NULL), 0);
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 0, MIB, buf), 0);
	assert_true(all_zero(buf, 4096));
	assert_true(all_zero(buf + 600 * 1024, 8192));
	assert_false(all_zero(buf + 4096, 4096));
	assert_false(all_zero(buf + 608 * 1024, 4096));

	/* the whole LUN */
	assert_int_equal(do_io(loop, b, SPT_BDEV_UNMAP, 0, 0, 4 * MIB, NULL), 0);
	assert_int_equal(b->ops->map_status(b, 0, &mapped, &length), 0);
	assert_false(mapped);
	assert_int_equal(length, 4 * MIB);

	close_lun(&lun);
	free(buf);
	loop_finish(loop);
}

/* tmpfs has no FALLOC_FL_ZERO_RANGE: WRITE ZEROES falls back to writing
 * zeros, 1 MiB per step, so several steps carry the progress along. */
static void test_io_zero_fallback(void **state)
{
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	size_t len = 4 * MIB;
	uint8_t *buf = malloc(len);
	struct spt_lun lun;
	struct spt_bdev *b;
	bool mapped;
	uint64_t length;

	(void)state;
	assert_non_null(buf);
	if (!shmdir[0]) {
		free(buf);
		ev_loop_free(loop);
		skip();
	}
	tpath(p, shmdir, "zero.img");
	snprintf(spec, sizeof(spec), "%s,size=4M", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);
	assert_true(b->thin);	/* tmpfs punches holes */

	fill(buf, len, 5);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, 0, 0, len, buf), 0);
	/* 3 MiB + 4 KiB of zeros: four write steps */
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE_ZEROES, 0, 4096, 3 * MIB + 4096, NULL), 0);
	/* second time: the LUN remembers, straight to writing */
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE_ZEROES, SPT_BDEV_FUA, 3 * MIB + 8192, 4096, NULL), 0);
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 0, len, buf), 0);
	{
		uint8_t *ref = malloc(len);

		assert_non_null(ref);
		fill(ref, len, 5);
		assert_memory_equal(buf, ref, 4096);
		assert_true(all_zero(buf + 4096, 3 * MIB + 4096));
		assert_true(all_zero(buf + 3 * MIB + 8192, 4096));
		assert_memory_equal(buf + 3 * MIB + 12288, ref + 3 * MIB + 12288, MIB - 12288);
		free(ref);
	}
	/* written zeros stay allocated; an unmap deallocates */
	assert_int_equal(b->ops->map_status(b, 4096, &mapped, &length), 0);
	assert_true(mapped);
	assert_int_equal(do_io(loop, b, SPT_BDEV_UNMAP, 0, MIB, MIB, NULL), 0);
	assert_int_equal(b->ops->map_status(b, MIB, &mapped, &length), 0);
	assert_false(mapped);
	assert_int_equal(length, MIB);

	close_lun(&lun);
	free(buf);
	loop_finish(loop);
}

static void test_io_range_and_ro(void **state)
{
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	uint8_t buf[8192];
	struct spt_lun lun;
	struct spt_bdev *b;

	(void)state;
	tpath(p, tmpdir, "range.img");
	snprintf(spec, sizeof(spec), "%s,size=1M", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);
	memset(buf, 0x5a, sizeof(buf));
	/* past the end, straddling it, offset + length wrapping around */
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, MIB, 512, buf), -EINVAL);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, 0, MIB - 4096, 8192, buf), -EINVAL);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, 0, 4096, UINT64_MAX - 100, buf), -EINVAL);
	assert_int_equal(do_io(loop, b, SPT_BDEV_UNMAP, 0, UINT64_MAX - 511, 1024, NULL), -EINVAL);
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 0, 512, NULL), -EINVAL);
	assert_int_equal(do_io(loop, b, 77, 0, 0, 512, buf), -EINVAL);
	/* the last block is fine */
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, 0, MIB - 8192, 8192, buf), 0);
	close_lun(&lun);

	snprintf(spec, sizeof(spec), "%s,ro", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, MIB - 8192, 8192, buf), 0);
	assert_int_equal(buf[0], 0x5a);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, 0, 0, 512, buf), -EROFS);
	assert_int_equal(do_io(loop, b, SPT_BDEV_UNMAP, 0, 0, 512, NULL), -EROFS);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE_ZEROES, 0, 0, 512, NULL), -EROFS);
	assert_int_equal(do_io(loop, b, SPT_BDEV_FLUSH, 0, 0, 0, NULL), 0);
	close_lun(&lun);
	loop_finish(loop);
}

/* More operations at once than the SQ (256) and the in-flight limit (512)
 * hold: the overflow waits its turn, nothing is lost. */
static void test_io_many(void **state)
{
	enum { N = 1200, BS = 4096 };
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	struct spt_bdev_io *ios = calloc(N, sizeof(*ios));
	uint8_t *data = malloc((size_t)N * BS), *back = malloc((size_t)N * BS);
	struct waiter w = { .loop = loop };
	struct spt_lun lun;
	struct spt_bdev *b;

	(void)state;
	assert_non_null(ios);
	assert_non_null(data);
	assert_non_null(back);
	tpath(p, tmpdir, "many.img");
	snprintf(spec, sizeof(spec), "%s,size=8M", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);
	fill(data, (size_t)N * BS, 6);

	w.outstanding = N;
	for (int i = 0; i < N; i++) {
		io_init(&ios[i], b, SPT_BDEV_WRITE, 0, (uint64_t)i * BS, BS, data + (size_t)i * BS, &w);
		b->ops->submit(b, &ios[i]);
	}
	run_until_done(&w);
	assert_int_equal(w.errors, 0);

	w.outstanding = N;
	for (int i = 0; i < N; i++) {
		io_init(&ios[i], b, SPT_BDEV_READ, 0, (uint64_t)i * BS, BS, back + (size_t)i * BS, &w);
		b->ops->submit(b, &ios[i]);
	}
	run_until_done(&w);
	assert_int_equal(w.errors, 0);
	assert_memory_equal(data, back, (size_t)N * BS);

	close_lun(&lun);
	free(ios);
	free(data);
	free(back);
	loop_finish(loop);
}

/* A read the kernel cuts short (the file shrank under the LUN): the rest is
 * resubmitted, meets end of file, and the read fails rather than returning
 * stale bytes. */
static void test_io_short_read(void **state)
{
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	uint8_t wbuf[8192], rbuf[8192];
	struct spt_lun lun;
	struct spt_bdev *b;

	(void)state;
	tpath(p, tmpdir, "short.img");
	snprintf(spec, sizeof(spec), "%s,size=64K", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);
	fill(wbuf, sizeof(wbuf), 7);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, 0, 56 * 1024, 8192, wbuf), 0);

	/* someone else truncates the backing file mid-block */
	assert_int_equal(truncate(p, 60 * 1024 - 512), 0);
	memset(rbuf, 0, sizeof(rbuf));
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 56 * 1024, 8192, rbuf), -EIO);
	/* the part before the new end arrived by the first, short, read */
	assert_memory_equal(rbuf, wbuf, 4096 - 512);

	assert_int_equal(truncate(p, 64 * 1024), 0);
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, 56 * 1024, 8192, rbuf), 0);
	assert_memory_equal(rbuf, wbuf, 4096 - 512);
	assert_true(all_zero(rbuf + 4096 - 512, 4096 + 512));
	close_lun(&lun);
	loop_finish(loop);
}

/* close completes what is in flight before it flushes and lets go. */
static void test_close_drains(void **state)
{
	enum { N = 600, BS = 512 };
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	struct spt_bdev_io *ios = calloc(N, sizeof(*ios));
	uint8_t *data = malloc((size_t)N * BS), *back = malloc((size_t)N * BS);
	struct waiter w = { .loop = loop, .outstanding = N };
	struct spt_lun lun;
	struct spt_bdev *b;
	int fd;

	(void)state;
	assert_non_null(ios);
	assert_non_null(data);
	assert_non_null(back);
	tpath(p, tmpdir, "drain.img");
	snprintf(spec, sizeof(spec), "%s,size=1M", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);
	fill(data, (size_t)N * BS, 8);
	for (int i = 0; i < N; i++) {
		io_init(&ios[i], b, SPT_BDEV_WRITE, 0, (uint64_t)i * BS, BS, data + (size_t)i * BS, &w);
		b->ops->submit(b, &ios[i]);
	}
	/* the loop never ran: nothing has even been submitted to the kernel */
	assert_int_equal(w.outstanding, N);
	close_lun(&lun);
	assert_int_equal(w.outstanding, 0);
	assert_int_equal(w.errors, 0);

	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, back, (size_t)N * BS, 0), (ssize_t)N * BS);
	assert_memory_equal(data, back, (size_t)N * BS);
	close(fd);
	free(ios);
	free(data);
	free(back);
	loop_finish(loop);	/* the deferred flush of the closed ring frees it */
}

struct close_ctx {
	struct spt_lun *lun;
	struct ev_loop *loop;
};

static void close_cb(void *arg)
{
	struct close_ctx *c = arg;

	close_lun(c->lun);
	ev_loop_stop(c->loop);
}

/* A LUN removed while its loop runs (the control plane, from an event
 * callback): in-flight I/O completes, the ring goes after the batch. */
static void test_close_while_running(void **state)
{
	enum { N = 64, BS = 4096 };
	struct ev_loop *loop = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	struct spt_bdev_io ios[N];
	static uint8_t data[N * BS];
	struct waiter w = { .loop = loop, .outstanding = N };
	struct spt_lun lun;
	struct close_ctx c = { .lun = &lun, .loop = loop };
	struct spt_bdev *b;
	int n0 = count_fds();

	(void)state;
	tpath(p, tmpdir, "running.img");
	snprintf(spec, sizeof(spec), "%s,size=1M", p);
	open_ok(loop, spec, &lun);
	b = file_lun_bdev(&lun);
	fill(data, sizeof(data), 10);
	for (int i = 0; i < N; i++) {
		io_init(&ios[i], b, SPT_BDEV_WRITE, 0, (uint64_t)i * BS, BS, data + (size_t)i * BS, &w);
		b->ops->submit(b, &ios[i]);
	}
	assert_int_equal(ev_defer(loop, close_cb, &c), 0);
	ev_loop_run(loop);
	assert_int_equal(w.outstanding, 0);
	assert_int_equal(w.errors, 0);
	assert_int_equal(count_fds(), n0);	/* the ring went at the end of that pass */
	ev_loop_free(loop);
}

/* All file LUNs of one loop share one ring; another loop gets its own. */
static void test_shared_ring(void **state)
{
	struct ev_loop *loop = loop_new(), *loop2 = loop_new();
	char p[PATH_MAX], spec[PATH_MAX + 64];
	struct spt_lun l1, l2, l3;
	uint8_t buf[4096];
	int n0, n1, n2, n3;

	(void)state;
	n0 = count_fds();
	tpath(p, tmpdir, "shared1.img");
	snprintf(spec, sizeof(spec), "%s,size=1M", p);
	open_ok(loop, spec, &l1);
	n1 = count_fds();
	assert_int_equal(n1 - n0, 3);	/* the file, the ring, its eventfd */
	tpath(p, tmpdir, "shared2.img");
	snprintf(spec, sizeof(spec), "%s,size=1M", p);
	open_ok(loop, spec, &l2);
	n2 = count_fds();
	assert_int_equal(n2 - n1, 1);	/* the file only */
	tpath(p, tmpdir, "shared3.img");
	snprintf(spec, sizeof(spec), "%s,size=1M", p);
	open_ok(loop2, spec, &l3);
	n3 = count_fds();
	assert_int_equal(n3 - n2, 3);

	memset(buf, 1, sizeof(buf));
	assert_int_equal(do_io(loop, file_lun_bdev(&l1), SPT_BDEV_WRITE, 0, 0, 4096, buf), 0);
	memset(buf, 2, sizeof(buf));
	assert_int_equal(do_io(loop, file_lun_bdev(&l2), SPT_BDEV_WRITE, 0, 0, 4096, buf), 0);
	memset(buf, 3, sizeof(buf));
	assert_int_equal(do_io(loop2, file_lun_bdev(&l3), SPT_BDEV_WRITE, 0, 0, 4096, buf), 0);
	assert_int_equal(do_io(loop, file_lun_bdev(&l1), SPT_BDEV_READ, 0, 0, 4096, buf), 0);
	assert_int_equal(buf[100], 1);
	close_lun(&l1);
	/* the ring stays for the second LUN */
	assert_int_equal(do_io(loop, file_lun_bdev(&l2), SPT_BDEV_READ, 0, 0, 4096, buf), 0);
	assert_int_equal(buf[100], 2);
	close_lun(&l2);
	close_lun(&l3);
	loop_settle(loop);
	loop_settle(loop2);
	assert_int_equal(count_fds(), n0);
	ev_loop_free(loop);
	ev_loop_free(loop2);
}

/* A block device: a loop device over a file, when the system lets us. */
static void test_blockdev(void **state)
{
	struct ev_loop *loop;
	char img[PATH_MAX], cmd[PATH_MAX + 64], dev[64] = "", spec[128], err[256];
	uint8_t *buf = malloc(MIB);
	struct spt_lun lun, lun2;
	struct spt_bdev *b;
	bool mapped;
	uint64_t length;
	FILE *f;
	int fd;

	(void)state;
	assert_non_null(buf);
	tpath(img, tmpdir, "loopback.img");
	fd = open(img, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8 * MIB), 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", img);
	f = popen(cmd, "r");
	if (f) {
		if (!fgets(dev, sizeof(dev), f))
			dev[0] = '\0';
		pclose(f);
	}
	dev[strcspn(dev, "\n")] = '\0';
	if (dev[0] != '/') {
		free(buf);
		skip();
	}
	loop = loop_new();

	snprintf(spec, sizeof(spec), "%s,size=4M", dev);
	assert_int_equal(open_spec(loop, spec, &lun, err), -1);
	assert_non_null(strstr(err, "block device"));

	snprintf(spec, sizeof(spec), "%s", dev);
	open_ok(loop, spec, &lun);
	/* claimed exclusively: a second writer is refused */
	assert_int_equal(open_spec(loop, spec, &lun2, err), -1);
	assert_non_null(strstr(err, "in use"));
	b = file_lun_bdev(&lun);
	assert_int_equal(b->block_size, 512);
	assert_int_equal(b->num_blocks, 8 * MIB / 512);
	assert_string_equal(b->product, "spt blockdev");
	assert_non_null(strstr(lun.desc, "blockdev:"));

	fill(buf, MIB, 9);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE, SPT_BDEV_FUA, MIB, MIB, buf), 0);
	memset(buf, 0, MIB);
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, MIB, MIB, buf), 0);
	{
		uint8_t *ref = malloc(MIB);

		assert_non_null(ref);
		fill(ref, MIB, 9);
		assert_memory_equal(buf, ref, MIB);
		free(ref);
	}
	assert_int_equal(do_io(loop, b, SPT_BDEV_UNMAP, 0, MIB, 64 * 1024, NULL), 0);
	assert_int_equal(do_io(loop, b, SPT_BDEV_WRITE_ZEROES, 0, MIB + 128 * 1024, 64 * 1024, NULL), 0);
	assert_int_equal(do_io(loop, b, SPT_BDEV_FLUSH, 0, 0, 0, NULL), 0);
	assert_int_equal(do_io(loop, b, SPT_BDEV_READ, 0, MIB, MIB, buf), 0);
	assert_true(all_zero(buf, 64 * 1024));
	assert_false(all_zero(buf + 64 * 1024, 64 * 1024));
	assert_true(all_zero(buf + 128 * 1024, 64 * 1024));
	assert_false(all_zero(buf + 192 * 1024, 64 * 1024));

	/* a block device reports everything mapped */
	assert_int_equal(b->ops->map_status(b, 4096, &mapped, &length), 0);
	assert_true(mapped);
	assert_int_equal(length, 8 * MIB - 4096);
	close_lun(&lun);

	snprintf(spec, sizeof(spec), "%s,block_size=4096,ro", dev);
	open_ok(loop, spec, &lun);
	assert_int_equal(file_lun_bdev(&lun)->block_size, 4096);
	assert_int_equal(file_lun_bdev(&lun)->num_blocks, 8 * MIB / 4096);
	close_lun(&lun);
	loop_finish(loop);

	snprintf(cmd, sizeof(cmd), "losetup -d %s", dev);
	assert_int_equal(system(cmd), 0);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_open_creates_sparse),
		cmocka_unit_test(test_open_size_handling),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_io_write_read),
		cmocka_unit_test(test_io_unmap_map_status),
		cmocka_unit_test(test_io_zero_fallback),
		cmocka_unit_test(test_io_range_and_ro),
		cmocka_unit_test(test_io_many),
		cmocka_unit_test(test_io_short_read),
		cmocka_unit_test(test_close_drains),
		cmocka_unit_test(test_close_while_running),
		cmocka_unit_test(test_shared_ring),
		cmocka_unit_test(test_blockdev),
	};

	/* a hung ring must fail the run, not stall it */
	alarm(120);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
