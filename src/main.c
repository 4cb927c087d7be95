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

#include "ctl/ctl.h"
#include "iscsi/server.h"
#include "iscsi/admin.h"
#include "providers/file.h"
#include "providers/ram.h"
#include "spt/remote.h"
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
	struct chap_config chap;	/* --chap, --discovery-chap, --mutual-chap */
	const char *allow[ISCSI_MAX_ALLOW];	/* --allow */
	int nallow;
	const char *provider_socket;		/* --provider-socket */
	uint32_t provider_timeout_s;		/* --provider-timeout */
	uint32_t provider_tmf_timeout_s;	/* --provider-tmf-timeout */
	uint32_t provider_shm_mib;		/* --provider-shm */
};

#define SPTD_LUN_PROVIDER_PREFIX "provider:"

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
		"  --control PATH          management socket for sptctl (mode 0600)\n"
		"  --log-level LEVEL       error, warn, info (default) or debug\n"
		"  --login-timeout SEC     a connection must finish login in this time (15)\n"
		"  --nop-interval SEC      ping an idle connection with NOP-In after SEC (30; 0 = never)\n"
		"  --nop-timeout SEC       drop a connection whose ping is not answered in SEC (30)\n"
		"  --logout-grace SEC      on SIGTERM, time given to initiators to log out (3)\n"
		"  --max-sessions N        sessions the target accepts at once (1024)\n"
		"  --chap USER:SECRET      normal sessions must authenticate with CHAP (secret >= 12 bytes)\n"
		"  --mutual-chap USER:SECRET  the target's own CHAP name and secret, sent when an\n"
		"                          initiator asks for mutual CHAP (must differ from the others)\n"
		"  --discovery-chap USER:SECRET  discovery sessions must authenticate with CHAP too\n"
		"                          (by default discovery needs no authentication)\n"
		"  --allow INITIATOR-IQN   only these initiators may log in to the target, repeatable\n"
		"  --lun ram:SIZE[,block_size=512|4096]  a LUN in memory (lost at exit)\n"
		"  --lun provider:NAME     a LUN served by the external provider that registers as NAME\n"
		"                          on --provider-socket (NOT READY until it does)\n"
		"  --provider-socket PATH  Unix socket (mode 0600) where external providers register\n"
		"  --provider-timeout SEC  an external provider must complete a command in SEC (30)\n"
		"  --provider-tmf-timeout SEC  ... and answer a TMF or an abort in SEC (5)\n"
		"  --provider-shm MIB      shared data memory per external provider, MiB (64)\n"
		"  --help, --version\n");
}

struct sptd {
	struct ev_loop *loop;
	struct iscsi_server *srv;
	struct ev_handler sig;
	struct ctl_server *ctl;		/* --control: sptctl's socket */
	struct spt_remote *remote;	/* --provider-socket: external providers */
	struct iscsi_admin *admin;	/* session stops asked for by providers */
};

/* SESSION_END from an external provider. */
static uint32_t sptd_provider_stop(void *arg, uint64_t handle, uint32_t grace_s)
{
	struct sptd *d = arg;

	if (grace_s == 0)
		grace_s = iscsi_admin_default_grace(d->admin);
	return iscsi_admin_session_stop(d->admin, handle, grace_s, grace_s + SPT_CTL_STOP_SLACK_S,
					NULL, NULL);
}

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
		spt_remote_shutdown(d->remote);
		iscsi_server_shutdown(d->srv, sptd_shutdown_done, d);
	}
}

/* "USER:SECRET" of a CHAP flag; the secret is then blanked in argv so ps does not show it. */
static int sptd_parse_chap(const char *flag, char *arg, struct chap_credentials *c)
{
	char err[256];
	char *colon = strchr(arg, ':');

	if (chap_credentials_parse(arg, c, err, sizeof(err)) < 0) {
		fprintf(stderr, "sptd: --%s: %s\n", flag, err);
		return -1;
	}
	memset(colon + 1, 'x', strlen(colon + 1));
	return 0;
}

static int sptd_parse_u32(const char *flag, const char *arg, uint32_t min, uint32_t max,
			  uint32_t *out)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);

	if (!*arg || *end || arg[0] == '-' || v < min || v > max) {
		fprintf(stderr, "sptd: --%s: expected a number from %u to %u, got '%s'\n", flag, min,
			max, arg);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
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
		{ "chap", required_argument, NULL, 0x200 },
		{ "mutual-chap", required_argument, NULL, 0x201 },
		{ "discovery-chap", required_argument, NULL, 0x202 },
		{ "allow", required_argument, NULL, 0x203 },
		{ "provider-socket", required_argument, NULL, 0x300 },
		{ "provider-timeout", required_argument, NULL, 0x301 },
		{ "provider-tmf-timeout", required_argument, NULL, 0x302 },
		{ "provider-shm", required_argument, NULL, 0x303 },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->target = SPTD_DEFAULT_TARGET;
	o->provider_timeout_s = SPT_REMOTE_DEFAULT_TIMEOUT_S;
	o->provider_tmf_timeout_s = SPT_REMOTE_DEFAULT_TMF_TIMEOUT_S;
	o->provider_shm_mib = (uint32_t)(SPT_REMOTE_DEFAULT_SHM >> 20);
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
		case 0x200:
			if (sptd_parse_chap("chap", optarg, &o->chap.initiator) < 0)
				return -1;
			break;
		case 0x201:
			if (sptd_parse_chap("mutual-chap", optarg, &o->chap.target) < 0)
				return -1;
			break;
		case 0x202:
			if (sptd_parse_chap("discovery-chap", optarg, &o->chap.discovery) < 0)
				return -1;
			break;
		case 0x300:
			o->provider_socket = optarg;
			break;
		case 0x301:
			if (sptd_parse_u32("provider-timeout", optarg, 1, SPT_REMOTE_TIMEOUT_MAX_S,
					   &o->provider_timeout_s) < 0)
				return -1;
			break;
		case 0x302:
			if (sptd_parse_u32("provider-tmf-timeout", optarg, 1, SPT_REMOTE_TIMEOUT_MAX_S,
					   &o->provider_tmf_timeout_s) < 0)
				return -1;
			break;
		case 0x303:
			if (sptd_parse_u32("provider-shm", optarg, ISCSI_MAX_TASK_BUF >> 20,
					   (uint32_t)(SPT_REMOTE_SHM_MAX >> 20), &o->provider_shm_mib) < 0)
				return -1;
			break;
		case 0x203:
			if (o->nallow == ISCSI_MAX_ALLOW) {
				fprintf(stderr, "sptd: at most %d --allow\n", ISCSI_MAX_ALLOW);
				return -1;
			}
			o->allow[o->nallow++] = optarg;
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
	char err[256];

	if (chap_config_check(&o->chap, err, sizeof(err)) < 0) {
		fprintf(stderr, "sptd: %s\n", err);
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
	d.sig.fd = -1;
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
	/* first: a --control path another sptd serves means that daemon may
	 * hold these LUN files too; stop before opening them */
	if (o.control) {
		d.ctl = ctl_server_open(d.loop, d.srv, o.control, err, sizeof(err));
		if (!d.ctl) {
			fprintf(stderr, "sptd: --control: %s\n", err);
			goto out;
		}
	}
	struct iscsi_target *t = iscsi_server_add_target(d.srv, o.target);

	if (!t)
		goto out;
	if (iscsi_server_set_chap(d.srv, &o.chap, err, sizeof(err)) < 0) {
		fprintf(stderr, "sptd: %s\n", err);
		goto out;
	}
	chap_config_wipe(&o.chap);
	for (int i = 0; i < o.nallow; i++) {
		if (iscsi_target_allow(t, o.allow[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "sptd: --allow: %s\n", err);
			goto out;
		}
	}
	if (o.nluns == 0) {
		o.luns[o.nluns++] = SPTD_DEFAULT_LUN;
		log_info("no --lun given: serving LUN 0 from ./spt-lun0.img (1 GiB sparse file, created if missing)");
	}
	if (o.provider_socket) {
		struct spt_remote_config rcfg = {
			.path = o.provider_socket,
			.command_timeout_s = o.provider_timeout_s,
			.tmf_timeout_s = o.provider_tmf_timeout_s,
			.shm_size = (uint64_t)o.provider_shm_mib << 20,
			.max_transfer_bytes = ISCSI_MAX_TASK_BUF,
		};

		d.admin = iscsi_admin_new(d.srv);
		d.remote = d.admin ? spt_remote_open(d.loop, &rcfg, err, sizeof(err)) : NULL;
		if (!d.remote) {
			fprintf(stderr, "sptd: --provider-socket: %s\n", d.admin ? err : "out of memory");
			goto out;
		}
		spt_remote_set_stop(d.remote, sptd_provider_stop, &d);
	}
	for (int i = 0; i < o.nluns; i++) {
		struct file_lun_config cfg;
		struct spt_lun *l = &t->luns.luns[t->luns.count];

		if (!strncmp(o.luns[i], SPTD_LUN_PROVIDER_PREFIX, strlen(SPTD_LUN_PROVIDER_PREFIX))) {
			const char *name = o.luns[i] + strlen(SPTD_LUN_PROVIDER_PREFIX);

			if (!d.remote) {
				fprintf(stderr, "sptd: --lun %s: needs --provider-socket\n", o.luns[i]);
				goto out;
			}
			if (spt_remote_lun_open(d.remote, name, (uint64_t)i, t->name, t->tpgt, 1, l, err,
						sizeof(err)) < 0) {
				fprintf(stderr, "sptd: --lun %s: %s\n", o.luns[i], err);
				goto out;
			}
			t->luns.count++;
			log_info("target %s LUN %d: %s (external provider)", t->name, i, l->desc);
			continue;
		}
		if (!strncmp(o.luns[i], "ram:", 4)) {
			uint64_t size;
			uint32_t bs;

			if (ram_lun_parse(o.luns[i] + 4, &size, &bs, err, sizeof(err)) < 0 ||
			    ram_lun_open(size, bs, (uint64_t)i, t->name, l, err, sizeof(err)) < 0) {
				fprintf(stderr, "sptd: --lun %s: %s\n", o.luns[i], err);
				goto out;
			}
			t->luns.count++;
			log_info("target %s LUN %d: %s (contents kept in memory only)", t->name, i, l->desc);
			continue;
		}
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
	ctl_server_close(d.ctl);
	/* a stopped loop lets the providers release their rings at once,
	 * also when startup failed before the loop ever ran */
	if (d.loop)
		ev_loop_stop(d.loop);
	iscsi_admin_free(d.admin);
	iscsi_server_free(d.srv);
	spt_remote_close(d.remote);
	ev_loop_free(d.loop);
	if (rc == 0)
		log_info("stopped; backing stores synced");
	return rc;
}
