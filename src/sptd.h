/*
 * sptd's composition root, shared by main.c (command line, startup, signals)
 * and sptd_conf.c (the configuration: file + flags, applied at startup and
 * on SIGHUP, written back by `sptctl config save`).
 */
#ifndef SPTD_H
#define SPTD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iscsi/server.h"
#include "util/conf.h"
#include "util/log.h"

#define SPTD_VERSION "0.1.0"
#define SPTD_DEFAULT_TARGET "iqn.2026-11.org.spt:target0"
#define SPTD_DEFAULT_PORTAL "0.0.0.0:3260"
#define SPTD_DEFAULT_LUN "spt-lun0.img,size=1G"
#define SPTD_MAX_LISTEN ISCSI_MAX_PORTALS
#define SPTD_LUN_PROVIDER_PREFIX "provider:"
#define SPTD_LUN_RAM_PREFIX "ram:"

/* A named limit: a flag and a `limits` key of the configuration file. */
struct sptd_knob {
	const char *name;	/* flag name; in the file with '_' or '-' */
	size_t offset;		/* in struct sptd_limits */
	uint32_t min, max, dflt;
};

/* Every numeric setting: the engine's, then the provider socket's. */
struct sptd_limits {
	struct iscsi_config iscsi;
	uint32_t provider_timeout_s;
	uint32_t provider_tmf_timeout_s;
	uint32_t provider_shm_mib;
};

extern const struct sptd_knob sptd_knobs[];
extern const size_t sptd_nknobs;

/* What the command line said; anything it names overrides the file. */
struct sptd_options {
	const char *config;			/* --config FILE */
	const char *listen[SPTD_MAX_LISTEN];
	int nlisten;
	const char *target;			/* NULL: not given */
	const char *luns[SPT_MAX_LUNS];
	int nluns;
	const char *control;
	const char *metrics;
	const char *provider_socket;
	const char *log_level;			/* NULL: not given */
	enum log_target log_target;
	struct sptd_limits limits;
	bool knob_given[64];
	struct chap_config chap;
	const char *allow[ISCSI_MAX_ALLOW];
	int nallow;
};

struct sptd {
	struct ev_loop *loop;
	struct iscsi_server *srv;
	struct ev_handler sig;
	struct ctl_server *ctl;
	struct metrics_server *metrics;
	struct spt_remote *remote;
	struct iscsi_admin *admin;
	const struct sptd_options *opts;
	struct conf running;		/* the configuration in force (flags merged in) */
	struct sptd_limits limits;	/* ... its numbers */
};

/*
 * The configuration to run: the file of --config (if any) with the flags
 * merged over it, or the flags alone with sptd's defaults (one target, the
 * default LUN). Checked as a whole. 0, or -1 with "FILE:LINE: reason".
 */
int sptd_conf_build(const struct sptd_options *o, struct conf *want, struct sptd_limits *limits,
		    char *err, size_t errlen);

/* Startup: opens the sockets, targets, LUNs and portals of `want` (taken
 * over into d->running). 0, or -1 with err. */
int sptd_conf_apply_initial(struct sptd *d, struct conf *want, const struct sptd_limits *limits,
			    char *err, size_t errlen);

/*
 * SIGHUP: reads the file again and applies only the differences (targets,
 * LUNs, ACLs, CHAP, limits, portals, log level). A file with an error, or a
 * change that cannot be made now (a LUN or target in use removed), changes
 * nothing. 0, or -1 with err.
 */
int sptd_conf_reload(struct sptd *d, char *err, size_t errlen);

/* `sptctl target|lun|acl|portal|chap ...`: one change of the running
 * configuration, applied like a SIGHUP would. 0, or -1 with err. */
struct spt_ctl_config_change;
int sptd_conf_change(struct sptd *d, const struct spt_ctl_config_change *ch, char *err, size_t errlen);

/* `sptctl config save [FILE]`: the running configuration, written
 * atomically to path (NULL or "": the --config file). 0, or -1 with err. */
int sptd_conf_save(struct sptd *d, const char *path, char *err, size_t errlen);

#endif
