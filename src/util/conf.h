/*
 * sptd's configuration file (`sptd --config FILE`), read and written with
 * libconfig. This module knows the file's shape, not what the values mean:
 * it returns a model of plain strings and numbers, each with the line it
 * came from, and the daemon checks them against its own limits and reports
 * "FILE:LINE: reason". Unknown settings are errors, so a typo never goes
 * unnoticed.
 *
 *   log_level = "info";                      # error | warn | info | debug
 *   control = "/run/sptd/control.sock";
 *   provider_socket = "/run/sptd/providers.sock";
 *   metrics = "127.0.0.1:9172";
 *   portals = [ "0.0.0.0:3260", "[::]:3260" ];
 *   limits = { max_sessions = 1024; login_timeout = 15; ... };   # the knob names of sptd --help
 *   chap = { user = "u"; secret = "..." };            # normal sessions must authenticate
 *   mutual_chap = { user = "t"; secret = "..." };     # the target's own credentials
 *   discovery_chap = { user = "d"; secret = "..." };
 *   targets = (
 *     { name = "iqn.2026-11.org.spt:target0";
 *       allow = [ "iqn.1993-08.org.debian:01:abc" ];   # empty or absent: any initiator
 *       luns = (
 *         { lun = 0; path = "/var/lib/spt/lun0.img"; size = "1G"; block_size = 512; read_only = false; },
 *         { lun = 1; ram = "256M"; },
 *         { lun = 2; provider = "mem0"; },
 *         { lun = 3; rbd = "rbd/disk1,conf=/etc/ceph/ceph.conf,id=admin"; }
 *       ); }
 *   );
 */
#ifndef UTIL_CONF_H
#define UTIL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_STR_MAX 4096	/* any string value, NUL included */
#define CONF_MAX_ITEMS 1024	/* entries of any list (portals, targets, LUNs, ACL, limits) */
#define CONF_ERR_MAX 512

struct conf_str {
	char *value;	/* NULL: not set */
	int line;
};

struct conf_lun {
	uint64_t lun;
	int line;
	/* exactly one backend */
	struct conf_str path, ram, provider;
	struct conf_str rbd;		/* "POOL/IMAGE[,conf=FILE][,id=CLIENT]" as after --lun rbd: */
	struct conf_str size;		/* path and ram: "1G", "1048576" */
	uint32_t block_size;		/* 0: not set */
	bool read_only;
};

struct conf_target {
	struct conf_str name;
	struct conf_str *allow;
	size_t nallow;
	struct conf_lun *luns;
	size_t nluns;
};

struct conf_knob {
	char *name;
	int64_t value;
	int line;
};

struct conf_chap {
	struct conf_str user, secret;
};

struct conf {
	char *file;			/* as given to conf_load */
	struct conf_str log_level, control, provider_socket, metrics;
	struct conf_str *portals;
	size_t nportals;
	struct conf_knob *knobs;	/* the `limits` group, in file order */
	size_t nknobs;
	struct conf_chap chap, mutual_chap, discovery_chap;
	struct conf_target *targets;
	size_t ntargets;
};

/* Reads FILE into *c (zeroed first). 0, or -1 with "FILE:LINE: reason" in err. */
int conf_load(const char *path, struct conf *c, char *err, size_t errlen);

/*
 * Writes c to path atomically (a temporary file in the same directory,
 * fsync, rename, fsync of the directory), mode 0600 since it may hold CHAP
 * secrets. 0, or -1 with err.
 */
int conf_save(const struct conf *c, const char *path, char *err, size_t errlen);

void conf_free(struct conf *c);
/* A deep copy; 0, or -1 (memory) with *dst empty. */
int conf_dup(const struct conf *src, struct conf *dst);
/* Frees one set of CHAP credentials (secret wiped). */
void conf_free_chap(struct conf_chap *ch);

/* Setters for building a model to save (strings are copied). 0 or -1 (memory). */
int conf_set_str(struct conf_str *s, const char *value);
struct conf_target *conf_add_target(struct conf *c, const char *name);
struct conf_lun *conf_add_lun(struct conf_target *t, uint64_t lun);
int conf_add_allow(struct conf_target *t, const char *initiator);
int conf_add_portal(struct conf *c, const char *portal);
int conf_add_knob(struct conf *c, const char *name, int64_t value);

#endif
