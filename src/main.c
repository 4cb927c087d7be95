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
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "ctl/metrics.h"
#include "iscsi/server.h"
#include "iscsi/admin.h"
#include "providers/file.h"
#include "providers/ram.h"
#include "spt/remote.h"
#include "sptd.h"
#include "util/log.h"
#include "util/notify.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sptd [--config FILE] [options]\n"
		"  --config FILE           read targets, LUNs, portals, limits ... from FILE (see\n"
		"                          spt.conf(5)); flags override it; SIGHUP re-reads it\n"
		"  --listen ADDR:PORT[,tpg=N]\n"
		"                          portal to listen on, repeatable; IPv6 as [ADDR]:PORT\n"
		"                          (default " SPTD_DEFAULT_PORTAL "); in target portal\n"
		"                          group N (1-65535, default 1): one SCSI target port\n"
		"                          (ALUA group) per portal group\n"
		"  --target IQN            name of the target (default " SPTD_DEFAULT_TARGET ")\n"
		"  --lun PATH[,size=SIZE][,block_size=512|4096][,ro]\n"
		"                          a LUN backed by a file or block device, repeatable:\n"
		"                          LUN 0, 1, ... in order; a missing file is created sparse\n"
		"                          (default: ./spt-lun0.img, 1 GiB)\n"
		"  --control PATH          management socket for sptctl (mode 0600)\n"
		"  --metrics ADDR:PORT     Prometheus metrics on http://ADDR:PORT/metrics; IPv6 as\n"
		"                          [ADDR]:PORT\n"
		"  --log-level LEVEL       error, warn, info (default) or debug\n"
		"  --log-target TARGET     stderr (default; with priority prefixes under the\n"
		"                          systemd journal) or syslog (facility daemon)\n"
		"  --login-timeout SEC     a connection must finish login in this time (15)\n"
		"  --nop-interval SEC      ping an idle connection with NOP-In after SEC (30; 0 = never)\n"
		"  --nop-timeout SEC       drop a connection whose ping is not answered in SEC (30)\n"
		"  --logout-grace SEC      on SIGTERM, time given to initiators to log out (3)\n"
		"  --max-sessions N        sessions at once in all, discovery included (1024)\n"
		"  --max-sessions-per-target N  normal sessions at once to one target (1024)\n"
		"  --max-connections-per-address N  connections at once from one initiator\n"
		"                          address; more are closed at accept (128)\n"
		"  --max-half-open N       connections at once not in a session (logging in);\n"
		"                          more are closed at accept (256)\n"
		"  --max-login-text BYTES  text of one login request, 16384 to 65536 (65536)\n"
		"  --max-login-keys N      key=value pairs in one login request, 32 to 256 (256)\n"
		"  --max-pending-commands N  the CmdSN window: commands a session may queue,\n"
		"                          1 to 128 (128)\n"
		"  --pdu-timeout SEC       drop a connection that leaves a PDU half-received, or\n"
		"                          reads nothing we send, for SEC (30)\n"
		"  --max-recv-data-segment-length BYTES  the MaxRecvDataSegmentLength we declare\n"
		"                          (262144)\n"
		"  --max-session-buffer-mib MIB  data buffers one session's commands may hold;\n"
		"                          beyond it commands get TASK SET FULL (256)\n"
		"  --chap USER:SECRET      normal sessions must authenticate with CHAP (secret >= 12 bytes)\n"
		"  --mutual-chap USER:SECRET  the target's own CHAP name and secret, sent when an\n"
		"                          initiator asks for mutual CHAP (must differ from the others)\n"
		"  --discovery-chap USER:SECRET  discovery sessions must authenticate with CHAP too\n"
		"                          (by default discovery needs no authentication)\n"
		"  --allow INITIATOR-IQN   only these initiators may log in to the target, repeatable\n"
		"  --lun ram:SIZE[,block_size=512|4096]  a LUN in memory (lost at exit)\n"
		"  --lun rbd:POOL/IMAGE[,conf=FILE][,id=CLIENT]  a LUN on a Ceph RBD image (librbd)\n"
		"  --lun provider:NAME     a LUN served by the external provider that registers as NAME\n"
		"                          on --provider-socket (NOT READY until it does)\n"
		"  --provider-socket PATH  Unix socket (mode 0600) where external providers register\n"
		"  --provider-timeout SEC  an external provider must complete a command in SEC (30)\n"
		"  --provider-tmf-timeout SEC  ... and answer a TMF or an abort in SEC (5)\n"
		"  --provider-shm MIB      shared data memory per external provider, MiB (64)\n"
		"  --help, --version\n");
}

/* SESSION_END from an external provider. */
static uint32_t sptd_provider_stop(void *arg, uint64_t handle, uint32_t grace_s)
{
	struct sptd *d = arg;

	if (grace_s == 0)
		grace_s = iscsi_admin_default_grace(d->admin);
	return iscsi_admin_session_stop(d->admin, handle, grace_s, grace_s + SPT_CTL_STOP_SLACK_S,
					NULL, NULL);
}

/* Portals or ALUA states changed (issue 5): the target port groups every
 * in-process LU reports (REPORT TARGET PORT GROUPS, standby checks). */
static void sptd_port_groups_changed(void *arg, const struct iscsi_portal_group *g, size_t n)
{
	struct spt_port_group pg[SPT_PORT_GROUPS_MAX];
	size_t k;

	for (k = 0; k < n && k < SPT_PORT_GROUPS_MAX; k++) {
		pg[k].id = g[k].tpgt;
		pg[k].state = g[k].state;	/* enum iscsi_alua_state = enum spt_alua_state */
	}
	spt_scsi_set_port_groups(pg, k);
}
_Static_assert((int)ISCSI_ALUA_STANDBY == (int)SPT_ALUA_STANDBY &&
	       (int)ISCSI_ALUA_UNAVAILABLE == (int)SPT_ALUA_UNAVAILABLE &&
	       (int)ISCSI_ALUA_ACTIVE_NON_OPTIMIZED == (int)SPT_ALUA_ACTIVE_NON_OPTIMIZED, "ALUA state codes");

/* CONFIG_CHANGE from sptctl. */
static int sptd_config_change(void *arg, const struct spt_ctl_config_change *ch, char *err,
			      size_t errlen)
{
	return sptd_conf_change(arg, ch, err, errlen);
}

/* CONFIG_SAVE from sptctl. */
static int sptd_config_save(void *arg, const char *path, char *err, size_t errlen)
{
	return sptd_conf_save(arg, path, err, errlen);
}

/* descriptors sptd needs besides one per connection: LUN files, io_uring,
 * epoll, timers, the control, metrics and provider sockets */
#define SPTD_NOFILE_SPARE 256

/*
 * Every connection is a descriptor, and the usual soft limit (1024) is
 * below the default --max-sessions plus half-open logins: the soft limit
 * is raised to the hard one, which an unprivileged process may do.
 */
static void sptd_raise_nofile(uint32_t max_sessions, uint32_t max_half_open)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_sessions + max_half_open + SPTD_NOFILE_SPARE;
	rlim_t before;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	before = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			log_warn("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)rl.rlim_max,
				 strerror(errno));
			rl.rlim_cur = before;
		}
	}
	if (rl.rlim_cur != before)
		log_info("open files: soft limit raised from %llu to %llu", (unsigned long long)before,
			 (unsigned long long)rl.rlim_cur);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
		log_warn("open files limited to %llu: below the %llu that --max-sessions %u and "
			 "--max-half-open %u need; connections past it cannot be accepted",
			 (unsigned long long)rl.rlim_cur, (unsigned long long)want, max_sessions,
			 max_half_open);
}

static void sptd_shutdown_done(void *arg)
{
	struct sptd *d = arg;

	ev_loop_stop(d->loop);
}

/* A service manager that cannot be told is worth a warning, not a stop:
 * sptd serves initiators either way. */
static void sptd_notify(int rc)
{
	if (rc < 0)
		log_warn("NOTIFY_SOCKET: %s", strerror(-rc));
}

static void sptd_on_signal(struct ev_handler *h, uint32_t events)
{
	struct sptd *d = h->arg;
	struct signalfd_siginfo si;

	while (read(h->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			char err[1024];

			if (d->srv->shutting_down)
				continue;
			log_info("SIGHUP: re-reading the configuration");
			if (sptd_conf_reload(d, err, sizeof(err)) < 0)
				log_err("SIGHUP: configuration not changed: %s", err);
			continue;
		}
		if (d->srv->shutting_down) {
			log_warn("second signal: stopping now");
			ev_loop_stop(d->loop);
			return;
		}
		log_info("signal %u: shutting down", si.ssi_signo);
		sptd_notify(notify_sendf("STOPPING=1\nSTATUS=asking sessions to log out (%u s grace)",
					 d->srv->cfg.logout_grace_s));
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

static int parse_args(int argc, char **argv, struct sptd_options *o)
{
	static const struct option longopts[] = {
		/* the sptd_knobs rows, in their order: 0x100 + index */
		{ "login-timeout", required_argument, NULL, 0x100 },
		{ "nop-interval", required_argument, NULL, 0x101 },
		{ "nop-timeout", required_argument, NULL, 0x102 },
		{ "logout-grace", required_argument, NULL, 0x103 },
		{ "max-sessions", required_argument, NULL, 0x104 },
		{ "max-sessions-per-target", required_argument, NULL, 0x105 },
		{ "max-connections-per-address", required_argument, NULL, 0x106 },
		{ "max-half-open", required_argument, NULL, 0x107 },
		{ "max-login-text", required_argument, NULL, 0x108 },
		{ "max-login-keys", required_argument, NULL, 0x109 },
		{ "max-pending-commands", required_argument, NULL, 0x10a },
		{ "pdu-timeout", required_argument, NULL, 0x10b },
		{ "max-recv-data-segment-length", required_argument, NULL, 0x10c },
		{ "max-session-buffer-mib", required_argument, NULL, 0x10d },
		{ "provider-timeout", required_argument, NULL, 0x10e },
		{ "provider-tmf-timeout", required_argument, NULL, 0x10f },
		{ "provider-shm", required_argument, NULL, 0x110 },
		{ "config", required_argument, NULL, 'f' },
		{ "listen", required_argument, NULL, 'l' },
		{ "target", required_argument, NULL, 't' },
		{ "lun", required_argument, NULL, 'u' },
		{ "control", required_argument, NULL, 'c' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "log-target", required_argument, NULL, 'T' },
		{ "chap", required_argument, NULL, 0x200 },
		{ "mutual-chap", required_argument, NULL, 0x201 },
		{ "discovery-chap", required_argument, NULL, 0x202 },
		{ "allow", required_argument, NULL, 0x203 },
		{ "provider-socket", required_argument, NULL, 0x300 },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c >= 0x100 && c < 0x100 + (int)sptd_nknobs) {
			size_t k = (size_t)(c - 0x100);
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (!*optarg || *end || optarg[0] == '-' || v < sptd_knobs[k].min ||
			    v > sptd_knobs[k].max) {
				fprintf(stderr, "sptd: --%s: expected a number from %u to %u, got '%s'\n",
					sptd_knobs[k].name, sptd_knobs[k].min, sptd_knobs[k].max, optarg);
				return -1;
			}
			*(uint32_t *)((char *)&o->limits + sptd_knobs[k].offset) = (uint32_t)v;
			o->knob_given[k] = true;
			continue;
		}
		switch (c) {
		case 'f':
			o->config = optarg;
			break;
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
		case 'm':
			o->metrics = optarg;
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
		case 0x203:
			if (o->nallow == ISCSI_MAX_ALLOW) {
				fprintf(stderr, "sptd: at most %d --allow\n", ISCSI_MAX_ALLOW);
				return -1;
			}
			o->allow[o->nallow++] = optarg;
			break;
		case 0x300:
			o->provider_socket = optarg;
			break;
		case 'L': {
			enum log_level lvl;

			if (log_parse_level(optarg, &lvl) < 0) {
				fprintf(stderr, "sptd: --log-level: expected error, warn, info or debug, got '%s'\n",
					optarg);
				return -1;
			}
			log_threshold = lvl;
			o->log_level = optarg;
			break;
		}
		case 'T':
			if (log_parse_target(optarg, &o->log_target) < 0) {
				fprintf(stderr, "sptd: --log-target: expected stderr or syslog, got '%s'\n",
					optarg);
				return -1;
			}
			break;
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
	if (o->target && (strlen(o->target) > ISCSI_NAME_MAX ||
			  (strncmp(o->target, "iqn.", 4) && strncmp(o->target, "eui.", 4) &&
			   strncmp(o->target, "naa.", 4)))) {
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
	struct conf want;
	struct sptd_limits limits;
	char err[1024];
	sigset_t mask;
	int rc = 1;
	size_t nluns = 0;

	memset(&d, 0, sizeof(d));
	memset(&want, 0, sizeof(want));
	d.sig.fd = -1;
	d.opts = &o;
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	/* the file and the flags, checked as a whole before anything opens */
	if (sptd_conf_build(&o, &want, &limits, err, sizeof(err)) < 0) {
		fprintf(stderr, "sptd: %s\n", err);
		return 2;
	}
	chap_config_wipe(&o.chap);
	log_open(o.log_target);
	sptd_raise_nofile(limits.iscsi.max_sessions, limits.iscsi.max_half_open);
	signal(SIGPIPE, SIG_IGN);
	d.loop = ev_loop_new();
	d.srv = d.loop ? iscsi_server_new(d.loop) : NULL;
	if (!d.srv) {
		fprintf(stderr, "sptd: out of memory\n");
		goto out;
	}
	d.srv->cfg = limits.iscsi;
	/* ALUA (issue 5): the SCSI helpers answer for the portal groups */
	d.srv->groups_changed = sptd_port_groups_changed;
	/* first: a control path another sptd serves means that daemon may
	 * hold these LUN files too; stop before opening them */
	if (want.control.value) {
		d.ctl = ctl_server_open(d.loop, d.srv, want.control.value, err, sizeof(err));
		if (!d.ctl) {
			fprintf(stderr, "sptd: control socket (--control): %s\n", err);
			goto out;
		}
		ctl_server_set_config_save(d.ctl, sptd_config_save, &d);
		ctl_server_set_config_change(d.ctl, sptd_config_change, &d);
	}
	if (want.metrics.value) {
		d.metrics = metrics_server_open(d.loop, d.srv, want.metrics.value, SPTD_VERSION, err,
						sizeof(err));
		if (!d.metrics) {
			fprintf(stderr, "sptd: metrics endpoint (--metrics): %s\n", err);
			goto out;
		}
	}
	if (want.provider_socket.value) {
		struct spt_remote_config rcfg = {
			.path = want.provider_socket.value,
			.command_timeout_s = limits.provider_timeout_s,
			.tmf_timeout_s = limits.provider_tmf_timeout_s,
			.shm_size = (uint64_t)limits.provider_shm_mib << 20,
			.max_transfer_bytes = ISCSI_MAX_TASK_BUF,
		};

		d.admin = iscsi_admin_new(d.srv);
		d.remote = d.admin ? spt_remote_open(d.loop, &rcfg, err, sizeof(err)) : NULL;
		if (!d.remote) {
			fprintf(stderr, "sptd: provider socket (--provider-socket): %s\n", d.admin ? err : "out of memory");
			goto out;
		}
		spt_remote_set_stop(d.remote, sptd_provider_stop, &d);
	}
	if (!o.config && o.nluns == 0)
		log_info("no --lun given: serving LUN 0 from ./spt-lun0.img (1 GiB sparse file, created if missing)");
	/* blocked before any LUN opens: threads a backend starts (librados)
	 * inherit the mask, so the signals reach our signalfd, not them */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (sptd_conf_apply_initial(&d, &want, &limits, err, sizeof(err)) < 0) {
		fprintf(stderr, "sptd: %s\n", err);
		goto out;
	}
	d.sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	d.sig.cb = sptd_on_signal;
	d.sig.arg = &d;
	if (d.sig.fd < 0 || ev_add(d.loop, &d.sig, EPOLLIN) < 0) {
		fprintf(stderr, "sptd: signalfd: %s\n", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < d.srv->ntargets; i++)
		nluns += d.srv->targets[i]->luns.count;
	if (d.srv->ntargets)
		log_info("sptd %s ready: target %s%s, %zu LUN(s), %zu portal(s)%s%s", SPTD_VERSION,
			 d.srv->targets[0]->name, d.srv->ntargets > 1 ? " and more" : "", nluns,
			 d.srv->nportals, o.config ? ", configuration " : "", o.config ? o.config : "");
	else
		log_info("sptd %s ready: no target yet, %zu portal(s)%s%s", SPTD_VERSION, d.srv->nportals,
			 o.config ? ", configuration " : "", o.config ? o.config : "");
	/* Type=notify: every portal listens and every LUN is open by now */
	sptd_notify(notify_sendf("READY=1\nSTATUS=serving %zu target(s), %zu LUN(s) on %zu portal(s)",
				 d.srv->ntargets, nluns, d.srv->nportals));
	ev_loop_run(d.loop);
	rc = 0;
out:
	if (d.sig.fd >= 0)
		close(d.sig.fd);
	ctl_server_close(d.ctl);
	metrics_server_close(d.metrics);
	/* a stopped loop lets the providers release their rings at once,
	 * also when startup failed before the loop ever ran */
	if (d.loop)
		ev_loop_stop(d.loop);
	iscsi_admin_free(d.admin);
	iscsi_server_free(d.srv);
	spt_remote_close(d.remote);
	ev_loop_free(d.loop);
	conf_free(&want);
	conf_free(&d.running);
	if (rc == 0)
		log_info("stopped; backing stores synced");
	log_close();
	return rc;
}
