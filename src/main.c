/*
 * sptd: the spt iSCSI target daemon.
 */
#include <errno.h>
#include <stddef.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "iscsi/server.h"
#include "providers/file.h"
#include "util/log.h"

#define SPTD_VERSION "0.1.0"
#define SPTD_DEFAULT_TARGET "iqn.2026-11.org.spt:target0"
#define SPTD_DEFAULT_PORTAL "0.0.0.0:3260"
#define SPTD_DEFAULT_LUN "spt-lun0.img,size=1G"
#define SPTD_MAX_LISTEN ISCSI_MAX_PORTALS

struct sptd_options {
	const char *listen[SPTD_MAX_LISTEN];
	int nlisten;
	const char *target;
	const char *luns[SPT_MAX_LUNS];
	int nluns;
	const char *control;
	struct iscsi_config cfg;
};

/* Named limits and timers, each with its flag (seconds unless noted). */
static const struct {
	const char *name;
	size_t offset;
	uint32_t min, max, dflt;
} sptd_knobs[] = {
	{ "login-timeout", offsetof(struct iscsi_config, login_timeout_s), 1, 3600, 15 },
	{ "nop-interval", offsetof(struct iscsi_config, nop_interval_s), 0, 3600, 30 },
	{ "nop-timeout", offsetof(struct iscsi_config, nop_timeout_s), 1, 3600, 30 },
	{ "logout-grace", offsetof(struct iscsi_config, logout_grace_s), 0, 600, 3 },
	{ "max-sessions", offsetof(struct iscsi_config, max_sessions), 1, 65535, 1024 },
};
#define SPTD_NKNOBS (sizeof(sptd_knobs) / sizeof(sptd_knobs[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sptd [options]\n"
		"  --listen ADDR:PORT      portal to listen on, repeatable; IPv6 as [ADDR]:PORT\n"
		"                          (default " SPTD_DEFAULT_PORTAL ")\n"
		"  --target IQN            name of the target (default " SPTD_DEFAULT_TARGET ")\n"
		"  --lun PATH[,size=SIZE][,block_size=512|4096][,ro]\n"
		"                          a LUN backed by a file or block device, repeatable:\n"
		"                          LUN 0, 1, ... in order; a missing file is created sparse\n"
		"                          (default: ./spt-lun0.img, 1 GiB)\n"
		"  --control PATH          management socket (mode 0600)\n"
		"  --log-level LEVEL       error, warn, info (default) or debug\n"
		"  --login-timeout SEC     a connection must finish login in this time (15)\n"
		"  --nop-interval SEC      ping an idle connection with NOP-In after SEC (30; 0 = never)\n"
		"  --nop-timeout SEC       drop a connection whose ping is not answered in SEC (30)\n"
		"  --logout-grace SEC      on SIGTERM, time given to initiators to log out (3)\n"
		"  --max-sessions N        sessions the target accepts at once (1024)\n"
		"  --help, --version\n");
}

struct sptd {
	struct ev_loop *loop;
	struct iscsi_server *srv;
	struct ev_handler sig;
	struct ev_handler ctl;
	const char *control_path;
};

static void sptd_shutdown_done(void *arg)
{
	struct sptd *d = arg;

	ev_loop_stop(d->loop);
}

static void sptd_on_signal(struct ev_handler *h, uint32_t events)
{
	struct sptd *d = h->arg;
	struct signalfd_siginfo si;

	while (read(h->fd, &si, sizeof(si)) == sizeof(si)) {
		if (d->srv->shutting_down) {
			log_warn("second signal: stopping now");
			ev_loop_stop(d->loop);
			return;
		}
		log_info("signal %u: shutting down", si.ssi_signo);
		iscsi_server_shutdown(d->srv, sptd_shutdown_done, d);
	}
}

/* The control socket: commands arrive with the pass-through issue; today a
 * client gets one line saying so. Only the owner may connect (0600). */
static void sptd_on_control(struct ev_handler *h, uint32_t events)
{
	int fd = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	static const char msg[] = "error: this sptd serves no control commands yet\n";

	if (fd < 0)
		return;
	if (write(fd, msg, sizeof(msg) - 1) < 0)
		log_debug("control: %s", strerror(errno));
	close(fd);
}

static int sptd_control_open(struct sptd *d, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "sptd: --control path too long: %s\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));

	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		fprintf(stderr, "sptd: cannot open control socket %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	d->ctl.fd = fd;
	d->ctl.cb = sptd_on_control;
	d->ctl.arg = d;
	d->control_path = path;
	return ev_add(d->loop, &d->ctl, EPOLLIN);
}

static int parse_args(int argc, char **argv, struct sptd_options *o)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "target", required_argument, NULL, 't' },
		{ "lun", required_argument, NULL, 'u' },
		{ "control", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "login-timeout", required_argument, NULL, 0x100 },
		{ "nop-interval", required_argument, NULL, 0x101 },
		{ "nop-timeout", required_argument, NULL, 0x102 },
		{ "logout-grace", required_argument, NULL, 0x103 },
		{ "max-sessions", required_argument, NULL, 0x104 },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->target = SPTD_DEFAULT_TARGET;
	for (size_t k = 0; k < SPTD_NKNOBS; k++)
		*(uint32_t *)((char *)&o->cfg + sptd_knobs[k].offset) = sptd_knobs[k].dflt;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c >= 0x100 && c < 0x100 + (int)SPTD_NKNOBS) {
			size_t k = (size_t)(c - 0x100);
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (!*optarg || *end || optarg[0] == '-' || v < sptd_knobs[k].min ||
			    v > sptd_knobs[k].max) {
				fprintf(stderr, "sptd: --%s: expected a number from %u to %u, got '%s'\n",
					sptd_knobs[k].name, sptd_knobs[k].min, sptd_knobs[k].max, optarg);
				return -1;
			}
			*(uint32_t *)((char *)&o->cfg + sptd_knobs[k].offset) = (uint32_t)v;
			continue;
		}
		switch (c) {
		case 'l':
			if (o->nlisten == SPTD_MAX_LISTEN) {
				fprintf(stderr, "sptd: at most %d --listen\n", SPTD_MAX_LISTEN);
				return -1;
			}
			o->listen[o->nlisten++] = optarg;
			break;
		case 't':
			o->target = optarg;
			break;
		case 'u':
			if (o->nluns == SPT_MAX_LUNS) {
				fprintf(stderr, "sptd: at most %d --lun\n", SPT_MAX_LUNS);
				return -1;
			}
			o->luns[o->nluns++] = optarg;
			break;
		case 'c':
			o->control = optarg;
			break;
		case 'L': {
			enum log_level lvl;

			if (log_parse_level(optarg, &lvl) < 0) {
				fprintf(stderr, "sptd: --log-level: expected error, warn, info or debug, got '%s'\n",
					optarg);
				return -1;
			}
			log_threshold = lvl;
			break;
		}
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("sptd %s\n", SPTD_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sptd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	/* RFC 7143 4.2.7: iqn., eui. or naa. names of at most 223 bytes */
	if (strlen(o->target) > ISCSI_NAME_MAX ||
	    (strncmp(o->target, "iqn.", 4) && strncmp(o->target, "eui.", 4) &&
	     strncmp(o->target, "naa.", 4))) {
		fprintf(stderr, "sptd: --target '%s' is not an iSCSI name (iqn., eui. or naa., <= 223 bytes)\n",
			o->target);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sptd_options o;
	struct sptd d;
	char err[512];
	sigset_t mask;
	int rc = 1;

	memset(&d, 0, sizeof(d));
	d.sig.fd = d.ctl.fd = -1;
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	d.loop = ev_loop_new();
	d.srv = d.loop ? iscsi_server_new(d.loop) : NULL;
	if (!d.srv) {
		fprintf(stderr, "sptd: out of memory\n");
		goto out;
	}
	d.srv->cfg = o.cfg;
	struct iscsi_target *t = iscsi_server_add_target(d.srv, o.target);

	if (!t)
		goto out;
	if (o.nluns == 0) {
		o.luns[o.nluns++] = SPTD_DEFAULT_LUN;
		log_info("no --lun given: serving LUN 0 from ./spt-lun0.img (1 GiB sparse file, created if missing)");
	}
	for (int i = 0; i < o.nluns; i++) {
		struct file_lun_config cfg;
		struct spt_lun *l = &t->luns.luns[t->luns.count];

		if (file_lun_parse(o.luns[i], &cfg, err, sizeof(err)) < 0 ||
		    file_lun_open(d.loop, &cfg, (uint64_t)i, t->name, l, err, sizeof(err)) < 0) {
			fprintf(stderr, "sptd: --lun %s: %s\n", o.luns[i], err);
			goto out;
		}
		t->luns.count++;
		log_info("target %s LUN %d: %s", t->name, i, l->desc);
	}
	if (o.nlisten == 0)
		o.listen[o.nlisten++] = SPTD_DEFAULT_PORTAL;
	for (int i = 0; i < o.nlisten; i++) {
		if (iscsi_server_listen(d.srv, o.listen[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "sptd: --listen: %s\n", err);
			goto out;
		}
	}
	if (o.control && sptd_control_open(&d, o.control) < 0)
		goto out;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	d.sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	d.sig.cb = sptd_on_signal;
	d.sig.arg = &d;
	if (d.sig.fd < 0 || ev_add(d.loop, &d.sig, EPOLLIN) < 0) {
		fprintf(stderr, "sptd: signalfd: %s\n", strerror(errno));
		goto out;
	}
	log_info("sptd %s ready: target %s, %zu LUN(s)", SPTD_VERSION, t->name, t->luns.count);
	ev_loop_run(d.loop);
	rc = 0;
out:
	if (d.sig.fd >= 0)
		close(d.sig.fd);
	if (d.ctl.fd >= 0) {
		close(d.ctl.fd);
		unlink(d.control_path);
	}
	iscsi_server_free(d.srv);
	ev_loop_free(d.loop);
	if (rc == 0)
		log_info("stopped; backing stores synced");
	return rc;
}
