/*
 * spt-memprovider: a RAM disk served to sptd through its provider socket.
 *
 *   spt-memprovider --socket PATH --name NAME --size SIZE[K|M|G|T]
 *                   [--block-size 512|4096] [--once]
 *
 * The SCSI side is libspt's block emulation (spt_bdev_execute) on the RAM
 * disk of src/providers/ram.c, the one sptd's in-process `--lun ram:SIZE`
 * uses: an anonymous mapping with MAP_NORESERVE, so a large disk costs only
 * the pages written, and UNMAP gives whole pages back to the kernel.
 *
 * The RAM outlives connections: when sptd goes away the provider connects
 * again every second (sptd restarts, the data is still there); --once ends
 * with the first connection instead. SIGTERM / SIGINT end it with status 0.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <spt/provider.h>
#include <spt/scsi.h>

#include "providers/ram.h"

#define MEM_EXIT_OK 0
#define MEM_EXIT_ERROR 1
#define MEM_EXIT_USAGE 2
#define MEM_RETRY_S 1		/* between connection attempts */
#define MEM_ERR_MAX 512

struct mem_options {
	const char *socket_path;
	const char *name;
	uint64_t size;
	uint32_t block_size;
	bool once;
};

static volatile sig_atomic_t mem_stop;
/* the provider socket while connected, for the signal handler */
static volatile sig_atomic_t mem_fd = -1;

static void mem_on_signal(int sig)
{
	int fd = mem_fd;

	(void)sig;
	mem_stop = 1;
	/* wakes a poll that was about to sleep when the signal came: the
	 * socket reads as ended and the loop sees mem_stop (shutdown() is
	 * async-signal-safe) */
	if (fd >= 0)
		shutdown(fd, SHUT_RD);
}

/* ------------------------------------------------------------------ */
/* Provider ops                                                         */
/* ------------------------------------------------------------------ */

static void mem_session_start(void *ctx, const struct spt_session_start *ss)
{
	struct ram_disk *m = ctx;

	spt_bdev_session_start(&m->bdev, ss);
}

static void mem_session_end(void *ctx, const struct spt_session_end *se)
{
	struct ram_disk *m = ctx;

	spt_bdev_session_end(&m->bdev, se);
}

static void mem_tmf(void *ctx, struct spt_tmf *tmf)
{
	struct ram_disk *m = ctx;

	spt_bdev_tmf(&m->bdev, tmf);
}

static void mem_scsi(void *ctx, struct spt_cmd *cmd)
{
	struct ram_disk *m = ctx;

	spt_bdev_execute(&m->bdev, cmd);
}

static const struct spt_provider_ops mem_provider_ops = {
	.name = "ram",
	.session_start = mem_session_start,
	.session_end = mem_session_end,
	.tmf = mem_tmf,
	.scsi = mem_scsi,
};

/* ------------------------------------------------------------------ */
/* Command line                                                         */
/* ------------------------------------------------------------------ */

static void mem_usage(FILE *f)
{
	fprintf(f,
		"usage: spt-memprovider --socket PATH --name NAME --size SIZE[K|M|G|T]\n"
		"                       [--block-size 512|4096] [--once]\n"
		"Serves a RAM disk of SIZE bytes to sptd as the LUN declared with\n"
		"`--lun provider:NAME`, through sptd's --provider-socket PATH.\n"
		"  --socket PATH        sptd's provider socket\n"
		"  --name NAME          provider name: 1-%d characters of [A-Za-z0-9._-]\n"
		"  --size SIZE          disk size; K, M, G, T are binary multiples\n"
		"  --block-size N       logical block size, 512 (default) or 4096\n"
		"  --once               exit when the connection ends (0 if sptd closed it)\n"
		"                       instead of connecting again every second\n",
		SPT_PROVIDER_NAME_MAX - 1);
}

/* "123", "64K", "10G": binary suffixes, the result must fit in 64 bits. */
static int mem_parse_size(const char *s, uint64_t *out)
{
	unsigned shift = 0;
	unsigned long long v;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -1;
	switch (*end) {
	case '\0': shift = 0; break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	case 't': case 'T': shift = 40; break;
	default: return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v == 0 || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static bool mem_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= SPT_PROVIDER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* 0, 1 for --help, -1 after printing what is wrong. */
static int mem_parse_args(int argc, char **argv, struct mem_options *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 'S' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *size = NULL;
	int c;

	memset(o, 0, sizeof(*o));
	o->block_size = 512;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket_path = optarg;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'S':
			size = optarg;
			break;
		case 'b':
			if (strcmp(optarg, "512") == 0) {
				o->block_size = 512;
			} else if (strcmp(optarg, "4096") == 0) {
				o->block_size = 4096;
			} else {
				fprintf(stderr, "spt-memprovider: --block-size %s: use 512 or 4096\n", optarg);
				return -1;
			}
			break;
		case 'o':
			o->once = true;
			break;
		case 'h':
			return 1;
		case ':':
			fprintf(stderr, "spt-memprovider: %s needs a value\n", argv[optind - 1]);
			return -1;
		default:
			fprintf(stderr, "spt-memprovider: unknown option %s\n", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "spt-memprovider: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!o->socket_path || !o->name || !size) {
		fprintf(stderr, "spt-memprovider: --socket, --name and --size are required\n");
		return -1;
	}
	if (o->socket_path[0] == '\0' ||
	    strlen(o->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "spt-memprovider: --socket '%s': a path of 1 to %zu bytes\n",
			o->socket_path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return -1;
	}
	if (!mem_name_ok(o->name)) {
		fprintf(stderr, "spt-memprovider: --name '%s': 1 to %d characters of [A-Za-z0-9._-]\n",
			o->name, SPT_PROVIDER_NAME_MAX - 1);
		return -1;
	}
	if (mem_parse_size(size, &o->size) < 0) {
		fprintf(stderr, "spt-memprovider: --size '%s': a positive number of bytes with an optional K, M, G or T\n",
			size);
		return -1;
	}
	if (o->size % o->block_size != 0) {
		fprintf(stderr, "spt-memprovider: --size %" PRIu64 " is not a multiple of the %u-byte block size\n",
			o->size, o->block_size);
		return -1;
	}
	if (o->size > SIZE_MAX) {
		fprintf(stderr, "spt-memprovider: --size %" PRIu64 " does not fit in memory\n", o->size);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Main loop                                                            */
/* ------------------------------------------------------------------ */

static void mem_sleep_retry(void)
{
	struct timespec ts = { .tv_sec = MEM_RETRY_S };

	/* a signal cuts it short; the caller looks at mem_stop */
	nanosleep(&ts, NULL);
}

/* Errors that another attempt cannot fix. */
static bool mem_fatal(int ret)
{
	return ret == -EPROTONOSUPPORT || ret == -EINVAL || ret == -ENAMETOOLONG || ret == -ENOMEM;
}

/* Errors of a daemon that is not (yet) there. */
static bool mem_absent(int ret)
{
	return ret == -ENOENT || ret == -ECONNREFUSED || ret == -ETIMEDOUT || ret == -EPIPE;
}

/* One connection from registration to its end; MEM_EXIT_* when the program
 * should end, -1 to connect again. */
static int mem_serve(struct ram_disk *m, const struct mem_options *o, int *last_err)
{
	const struct spt_provider_info *info;
	struct spt_provider *p = NULL;
	char err[MEM_ERR_MAX] = "";
	int ret;

	ret = spt_provider_connect(o->socket_path, o->name, &mem_provider_ops, m, &p, err,
				   sizeof(err));
	if (ret == -EINTR)
		return mem_stop ? MEM_EXIT_OK : -1;
	if (ret < 0) {
		if (mem_fatal(ret) || (o->once && !mem_absent(ret))) {
			fprintf(stderr, "spt-memprovider: %s\n", err);
			return MEM_EXIT_ERROR;
		}
		/* once per distinct error, not every second */
		if (ret != *last_err)
			fprintf(stderr, "spt-memprovider: %s; retrying every %d s\n", err, MEM_RETRY_S);
		*last_err = ret;
		mem_sleep_retry();
		return mem_stop ? MEM_EXIT_OK : -1;
	}
	*last_err = 0;
	info = spt_provider_get_info(p);
	/* the port and limits are what this sptd said at registration */
	if (ram_disk_rebind(m, info->target_name, info->relative_port, info->max_transfer_bytes, err,
			    sizeof(err)) < 0) {
		fprintf(stderr, "spt-memprovider: %s\n", err);
		spt_provider_close(p);
		return MEM_EXIT_ERROR;
	}
	fprintf(stderr, "spt-memprovider: serving LUN %" PRIu64 " of %s as %s, %" PRIu64 " bytes\n",
		info->lun, info->target_name[0] ? info->target_name : "(unnamed target)", o->name,
		m->size);
	mem_fd = spt_provider_fd(p);
	if (mem_stop) {
		ret = -EINTR;
	} else {
		do
			ret = spt_provider_run(p);
		while (ret == -EINTR && !mem_stop);
	}
	mem_fd = -1;
	spt_provider_close(p);
	spt_bdev_fini(&m->bdev);
	if (mem_stop)
		return MEM_EXIT_OK;
	if (ret == -EPIPE) {
		fprintf(stderr, "spt-memprovider: sptd closed the connection%s\n",
			o->once ? "" : "; connecting again");
		if (o->once)
			return MEM_EXIT_OK;
	} else {
		fprintf(stderr, "spt-memprovider: connection ended: %s%s\n", strerror(-ret),
			o->once ? "" : "; connecting again");
		if (o->once)
			return MEM_EXIT_ERROR;
	}
	mem_sleep_retry();
	return mem_stop ? MEM_EXIT_OK : -1;
}

int main(int argc, char **argv)
{
	struct mem_options o;
	struct ram_disk m;
	struct ram_disk_config rcfg = { 0 };
	char ident[SPT_PROVIDER_NAME_MAX + 16], err[MEM_ERR_MAX];
	struct sigaction sa;
	int last_err = 0, ret;

	ret = mem_parse_args(argc, argv, &o);
	if (ret != 0) {
		mem_usage(ret > 0 ? stdout : stderr);
		return ret > 0 ? MEM_EXIT_OK : MEM_EXIT_USAGE;
	}

	/* VPD 0x80 / 0x83 from the provider name, so that a restarted provider
	 * of the same name is the same logical unit to initiators; prefixed so
	 * it differs from other kinds of LUN that go by the same name */
	snprintf(ident, sizeof(ident), "spt-memprovider:%s", o.name);
	rcfg.name = ident;
	rcfg.size = o.size;
	rcfg.block_size = o.block_size;
	rcfg.relative_port = 1;
	if (ram_disk_init(&m, &rcfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "spt-memprovider: %s\n", err);
		return MEM_EXIT_ERROR;
	}
	snprintf(m.bdev.product, sizeof(m.bdev.product), "spt memprovider");

	/* no SA_RESTART: a blocking call returns EINTR and the loop checks mem_stop */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mem_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	ret = -1;
	while (ret < 0 && !mem_stop)
		ret = mem_serve(&m, &o, &last_err);
	if (ret < 0)
		ret = MEM_EXIT_OK;	/* stopped by a signal between attempts */
	ram_disk_fini(&m);
	return ret;
}
