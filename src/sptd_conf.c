/*
 * sptd's configuration: the file of --config (src/util/conf.c) with the
 * command-line flags merged over it, checked as a whole, applied at startup,
 * re-applied as differences on SIGHUP and written back on request.
 *
 * The model in force is kept in d->running (struct conf): it is what
 * `sptctl config save` writes and what the next SIGHUP is compared with.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sptd.h"
#include "iscsi/admin.h"
#include "providers/file.h"
#include "providers/ram.h"
#include "providers/rbd.h"
#include "spt/remote.h"

#define KNOB_ISCSI(f) offsetof(struct sptd_limits, iscsi.f)

const struct sptd_knob sptd_knobs[] = {
	{ "login-timeout", KNOB_ISCSI(login_timeout_s), 1, 3600, 15 },
	{ "nop-interval", KNOB_ISCSI(nop_interval_s), 0, 3600, 30 },
	{ "nop-timeout", KNOB_ISCSI(nop_timeout_s), 1, 3600, 30 },
	{ "logout-grace", KNOB_ISCSI(logout_grace_s), 0, 600, 3 },
	{ "max-sessions", KNOB_ISCSI(max_sessions), 1, 65535, 1024 },
	{ "max-sessions-per-target", KNOB_ISCSI(max_sessions_per_target), 1, 65535,
	  ISCSI_DEFAULT_MAX_SESSIONS_PER_TARGET },
	{ "max-connections-per-address", KNOB_ISCSI(max_conns_per_address), 1, 65535,
	  ISCSI_DEFAULT_MAX_CONNS_PER_ADDRESS },
	{ "max-half-open", KNOB_ISCSI(max_half_open), 1, 65535, ISCSI_DEFAULT_MAX_HALF_OPEN },
	{ "max-login-text", KNOB_ISCSI(max_login_text), ISCSI_LOGIN_TEXT_MIN, ISCSI_LOGIN_TEXT_MAX,
	  ISCSI_LOGIN_TEXT_MAX },
	{ "max-login-keys", KNOB_ISCSI(max_login_keys), ISCSI_LOGIN_KEYS_MIN, ISCSI_TEXT_MAX_KEYS,
	  ISCSI_TEXT_MAX_KEYS },
	{ "max-pending-commands", KNOB_ISCSI(max_pending_commands), 1, ISCSI_QUEUE_DEPTH,
	  ISCSI_DEFAULT_MAX_PENDING_COMMANDS },
	{ "pdu-timeout", KNOB_ISCSI(pdu_timeout_s), 1, 3600, ISCSI_DEFAULT_PDU_TIMEOUT_S },
	{ "max-recv-data-segment-length", KNOB_ISCSI(max_recv_dsl), ISCSI_RECV_DSL_MIN, ISCSI_DSL_MAX,
	  ISCSI_DEFAULT_MAX_RECV_DSL },
	{ "max-session-buffer-mib", KNOB_ISCSI(max_session_buffer_mib), ISCSI_SESSION_BUFFER_MIN_MIB,
	  ISCSI_SESSION_BUFFER_MAX_MIB, ISCSI_DEFAULT_SESSION_BUFFER_MIB },
	{ "provider-timeout", offsetof(struct sptd_limits, provider_timeout_s), 1,
	  SPT_REMOTE_TIMEOUT_MAX_S, SPT_REMOTE_DEFAULT_TIMEOUT_S },
	{ "provider-tmf-timeout", offsetof(struct sptd_limits, provider_tmf_timeout_s), 1,
	  SPT_REMOTE_TIMEOUT_MAX_S, SPT_REMOTE_DEFAULT_TMF_TIMEOUT_S },
	{ "provider-shm", offsetof(struct sptd_limits, provider_shm_mib), ISCSI_MAX_TASK_BUF >> 20,
	  (uint32_t)(SPT_REMOTE_SHM_MAX >> 20), (uint32_t)(SPT_REMOTE_DEFAULT_SHM >> 20) },
};
const size_t sptd_nknobs = sizeof(sptd_knobs) / sizeof(sptd_knobs[0]);
_Static_assert(sizeof(sptd_knobs) / sizeof(sptd_knobs[0]) <= 64, "knob_given holds them all");

static uint32_t *knob_ptr(struct sptd_limits *l, size_t k)
{
	return (uint32_t *)((char *)l + sptd_knobs[k].offset);
}

/* "max-sessions", "max_sessions": the file may use either. */
static int knob_find(const char *name)
{
	for (size_t k = 0; k < sptd_nknobs; k++) {
		const char *a = sptd_knobs[k].name, *b = name;

		while (*a && (*a == *b || (*a == '-' && *b == '_'))) {
			a++;
			b++;
		}
		if (!*a && !*b)
			return (int)k;
	}
	return -1;
}

static bool iscsi_name_ok(const char *n)
{
	/* RFC 7143 4.2.7: iqn., eui. or naa., at most 223 bytes */
	return n && *n && strlen(n) <= ISCSI_NAME_MAX &&
	       (!strncasecmp(n, "iqn.", 4) || !strncasecmp(n, "eui.", 4) || !strncasecmp(n, "naa.", 4));
}

/* ---- LUNs: flag spec <-> model ---- */

static int lun_from_spec(const char *spec, struct conf_lun *l, char *err, size_t errlen)
{
	if (!strncmp(spec, SPTD_LUN_PROVIDER_PREFIX, strlen(SPTD_LUN_PROVIDER_PREFIX)))
		return conf_set_str(&l->provider, spec + strlen(SPTD_LUN_PROVIDER_PREFIX));
	if (!strncmp(spec, SPTD_LUN_RAM_PREFIX, strlen(SPTD_LUN_RAM_PREFIX))) {
		const char *body = spec + strlen(SPTD_LUN_RAM_PREFIX), *comma = strchr(body, ',');
		uint64_t size;
		uint32_t bs;
		char sz[64];

		if (ram_lun_parse(body, &size, &bs, err, errlen) < 0)
			return -1;
		snprintf(sz, sizeof(sz), "%.*s", comma ? (int)(comma - body) : (int)strlen(body), body);
		l->block_size = bs == 512 ? 0 : bs;
		return conf_set_str(&l->ram, sz);
	}
	if (!strncmp(spec, RBD_LUN_PREFIX, strlen(RBD_LUN_PREFIX))) {
		struct rbd_lun_config rcfg;

		if (rbd_lun_parse(spec + strlen(RBD_LUN_PREFIX), &rcfg, err, errlen) < 0)
			return -1;
		return conf_set_str(&l->rbd, spec + strlen(RBD_LUN_PREFIX));
	}
	struct file_lun_config cfg;

	if (file_lun_parse(spec, &cfg, err, errlen) < 0)
		return -1;
	if (conf_set_str(&l->path, cfg.path) < 0)
		return -1;
	if (cfg.size) {
		char sz[32];

		snprintf(sz, sizeof(sz), "%" PRIu64, cfg.size);
		if (conf_set_str(&l->size, sz) < 0)
			return -1;
	}
	l->block_size = cfg.block_size;
	l->read_only = cfg.read_only;
	return 0;
}

/* Back to the flag form, which the providers parse. */
static int lun_to_spec(const struct conf_lun *l, char *out, size_t len)
{
	int n;

	if (l->provider.value)
		n = snprintf(out, len, "%s%s", SPTD_LUN_PROVIDER_PREFIX, l->provider.value);
	else if (l->ram.value)
		n = snprintf(out, len, "%s%s%s", SPTD_LUN_RAM_PREFIX, l->ram.value,
			     l->block_size == 4096 ? ",block_size=4096" : "");
	else if (l->rbd.value)
		n = snprintf(out, len, "%s%s", RBD_LUN_PREFIX, l->rbd.value);
	else
		n = snprintf(out, len, "%s%s%s%s%s%s", l->path.value, l->size.value ? ",size=" : "",
			     l->size.value ? l->size.value : "",
			     l->block_size == 4096 ? ",block_size=4096" :
			     l->block_size == 512 ? ",block_size=512" : "",
			     l->read_only ? ",ro" : "", "");
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static bool lun_same(const struct conf_lun *a, const struct conf_lun *b)
{
	char sa[PATH_MAX + 128], sb[PATH_MAX + 128];

	return a->lun == b->lun && lun_to_spec(a, sa, sizeof(sa)) == 0 &&
	       lun_to_spec(b, sb, sizeof(sb)) == 0 && !strcmp(sa, sb);
}

/* Checks a LUN without opening it: what can be known from its words. */
static int lun_check(const struct conf *c, const struct conf_lun *l, const char *file, char *err,
		     size_t errlen)
{
	char spec[PATH_MAX + 128], why[256];

	if (lun_to_spec(l, spec, sizeof(spec)) < 0) {
		snprintf(err, errlen, "%s:%d: LUN %" PRIu64 ": too long", file, l->line, l->lun);
		return -1;
	}
	if (l->lun >= 16384) {
		/* SAM-5 4.7: a flat-space LUN number has 14 bits */
		snprintf(err, errlen, "%s:%d: LUN %" PRIu64 ": numbers go up to 16383", file, l->line,
			 l->lun);
		return -1;
	}
	if (l->provider.value) {
		if (!c->provider_socket.value) {
			snprintf(err, errlen, "%s:%d: LUN %" PRIu64 " is served by provider %s, which needs "
				 "provider_socket (--provider-socket)", file, l->line, l->lun,
				 l->provider.value);
			return -1;
		}
		return 0;
	}
	if (l->ram.value) {
		uint64_t size;
		uint32_t bs;

		if (ram_lun_parse(spec + strlen(SPTD_LUN_RAM_PREFIX), &size, &bs, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: LUN %" PRIu64 ": %s", file, l->line, l->lun, why);
			return -1;
		}
		return 0;
	}
	if (l->rbd.value) {
		struct rbd_lun_config rcfg;

		if (rbd_lun_parse(l->rbd.value, &rcfg, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: LUN %" PRIu64 ": %s", file, l->line, l->lun, why);
			return -1;
		}
		return 0;
	}
	struct file_lun_config cfg;

	if (file_lun_parse(spec, &cfg, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s:%d: LUN %" PRIu64 ": %s", file, l->line, l->lun, why);
		return -1;
	}
	return 0;
}

/* Opens a LUN of target t (not yet in its map). 0, or -1 with err. */
static int lun_open(struct sptd *d, const char *tname, uint16_t tpgt, const struct conf_lun *l,
		    struct spt_lun *out, char *err, size_t errlen)
{
	char spec[PATH_MAX + 128], why[512];

	if (lun_to_spec(l, spec, sizeof(spec)) < 0) {
		snprintf(err, errlen, "LUN %" PRIu64 ": spec too long", l->lun);
		return -1;
	}
	if (l->provider.value) {
		if (!d->remote) {
			snprintf(err, errlen, "LUN %" PRIu64 " (%s): needs --provider-socket", l->lun, spec);
			return -1;
		}
		if (spt_remote_lun_open(d->remote, l->provider.value, l->lun, tname, tpgt, 1, out,
					why, sizeof(why)) < 0)
			goto fail;
		return 0;
	}
	if (l->ram.value) {
		uint64_t size;
		uint32_t bs;

		if (ram_lun_parse(spec + strlen(SPTD_LUN_RAM_PREFIX), &size, &bs, why, sizeof(why)) < 0 ||
		    ram_lun_open(size, bs, l->lun, tname, out, why, sizeof(why)) < 0)
			goto fail;
		return 0;
	}
	if (l->rbd.value) {
		struct rbd_lun_config rcfg;

		if (rbd_lun_parse(l->rbd.value, &rcfg, why, sizeof(why)) < 0 ||
		    rbd_lun_open(d->loop, &rcfg, l->lun, tname, out, why, sizeof(why)) < 0)
			goto fail;
		return 0;
	}
	struct file_lun_config cfg;

	if (file_lun_parse(spec, &cfg, why, sizeof(why)) < 0 ||
	    file_lun_open(d->loop, &cfg, l->lun, tname, out, why, sizeof(why)) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "target %s LUN %" PRIu64 " (%s): %s", tname, l->lun, spec, why);
	return -1;
}

/* ---- CHAP ---- */

static int chap_from_conf(const struct conf_chap *cc, struct chap_credentials *out, const char *what,
			  const char *file, char *err, size_t errlen)
{
	char why[256];

	memset(out, 0, sizeof(*out));
	if (!cc->user.value)
		return 0;
	/* user and secret are separate settings: an IQN may be the user name */
	if (chap_credentials_set(out, cc->user.value, strlen(cc->user.value), cc->secret.value, why,
				 sizeof(why)) < 0) {
		snprintf(err, errlen, "%s:%d: %s: %s", file, cc->user.line, what, why);
		return -1;
	}
	return 0;
}

static int chap_to_conf(const struct chap_credentials *c, struct conf_chap *out)
{
	char secret[CHAP_SECRET_MAX + 1];
	int rc;

	if (!c->set)
		return 0;
	memcpy(secret, c->secret, c->secret_len);
	secret[c->secret_len] = '\0';
	rc = conf_set_str(&out->user, c->user) < 0 || conf_set_str(&out->secret, secret) < 0 ? -1 : 0;
	explicit_bzero(secret, sizeof(secret));
	return rc;
}

static int chap_build(const struct conf *c, struct chap_config *out, char *err, size_t errlen)
{
	const char *file = c->file ? c->file : "(flags)";

	memset(out, 0, sizeof(*out));
	if (chap_from_conf(&c->chap, &out->initiator, "chap", file, err, errlen) < 0 ||
	    chap_from_conf(&c->discovery_chap, &out->discovery, "discovery_chap", file, err, errlen) < 0 ||
	    chap_from_conf(&c->mutual_chap, &out->target, "mutual_chap", file, err, errlen) < 0)
		return -1;
	if (chap_config_check(out, err, errlen) < 0)
		return -1;
	return 0;
}

/* ---- building the configuration to run ---- */

static int conf_oom(char *err, size_t errlen)
{
	snprintf(err, errlen, "out of memory");
	return -1;
}

static int conf_set_opt(struct conf_str *s, const char *flag_value)
{
	return flag_value ? conf_set_str(s, flag_value) : 0;
}

static void conf_clear_strs(struct conf_str **v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*v)[i].value);
	free(*v);
	*v = NULL;
	*n = 0;
}

static void conf_clear_luns(struct conf_target *t)
{
	for (size_t j = 0; j < t->nluns; j++) {
		free(t->luns[j].path.value);
		free(t->luns[j].ram.value);
		free(t->luns[j].provider.value);
		free(t->luns[j].rbd.value);
		free(t->luns[j].size.value);
	}
	free(t->luns);
	t->luns = NULL;
	t->nluns = 0;
}

int sptd_conf_build(const struct sptd_options *o, struct conf *want, struct sptd_limits *limits,
		    char *err, size_t errlen)
{
	bool knob_in_file[64] = { false };
	const char *file;
	struct conf_target *t0;
	struct chap_config chap;

	memset(want, 0, sizeof(*want));
	if (o->config && conf_load(o->config, want, err, errlen) < 0)
		return -1;
	file = want->file ? want->file : "(flags)";
	/* limits: defaults, the file, then the flags */
	for (size_t k = 0; k < sptd_nknobs; k++)
		*knob_ptr(limits, k) = sptd_knobs[k].dflt;
	for (size_t i = 0; i < want->nknobs; i++) {
		const struct conf_knob *ck = &want->knobs[i];
		int k = knob_find(ck->name);

		if (k < 0) {
			snprintf(err, errlen, "%s:%d: unknown limit '%s' (see sptd --help for the names)",
				 file, ck->line, ck->name);
			goto fail;
		}
		if (ck->value < sptd_knobs[k].min || ck->value > sptd_knobs[k].max) {
			snprintf(err, errlen, "%s:%d: %s must be from %u to %u, not %lld", file, ck->line,
				 ck->name, sptd_knobs[k].min, sptd_knobs[k].max, (long long)ck->value);
			goto fail;
		}
		*knob_ptr(limits, (size_t)k) = (uint32_t)ck->value;
		knob_in_file[k] = true;
	}
	for (size_t k = 0; k < sptd_nknobs; k++)
		if (o->knob_given[k])
			*knob_ptr(limits, k) = *knob_ptr((struct sptd_limits *)&o->limits, k);
	/* the model keeps what the file or the flags set, with the values in force */
	for (size_t i = 0; i < want->nknobs; i++)
		free(want->knobs[i].name);
	free(want->knobs);
	want->knobs = NULL;
	want->nknobs = 0;
	for (size_t k = 0; k < sptd_nknobs; k++) {
		char name[64];

		if (!knob_in_file[k] && !o->knob_given[k])
			continue;
		snprintf(name, sizeof(name), "%s", sptd_knobs[k].name);
		for (char *p = name; *p; p++)
			if (*p == '-')
				*p = '_';
		if (conf_add_knob(want, name, *knob_ptr(limits, k)) < 0)
			return conf_oom(err, errlen);
	}
	if (conf_set_opt(&want->log_level, o->log_level) < 0 ||
	    conf_set_opt(&want->control, o->control) < 0 ||
	    conf_set_opt(&want->metrics, o->metrics) < 0 ||
	    conf_set_opt(&want->provider_socket, o->provider_socket) < 0)
		return conf_oom(err, errlen);
	if (want->log_level.value) {
		enum log_level lvl;

		if (log_parse_level(want->log_level.value, &lvl) < 0) {
			snprintf(err, errlen, "%s:%d: log_level must be error, warn, info or debug", file,
				 want->log_level.line);
			goto fail;
		}
	}
	if (o->nlisten) {
		conf_clear_strs(&want->portals, &want->nportals);
		for (int i = 0; i < o->nlisten; i++)
			if (conf_add_portal(want, o->listen[i]) < 0)
				return conf_oom(err, errlen);
	}
	if (want->nportals == 0 && conf_add_portal(want, SPTD_DEFAULT_PORTAL) < 0)
		return conf_oom(err, errlen);
	/* CHAP flags replace the file's */
	if ((o->chap.initiator.set && (conf_free_chap(&want->chap), chap_to_conf(&o->chap.initiator, &want->chap) < 0)) ||
	    (o->chap.discovery.set && (conf_free_chap(&want->discovery_chap),
				       chap_to_conf(&o->chap.discovery, &want->discovery_chap) < 0)) ||
	    (o->chap.target.set && (conf_free_chap(&want->mutual_chap),
				    chap_to_conf(&o->chap.target, &want->mutual_chap) < 0)))
		return conf_oom(err, errlen);
	/* --target, --lun and --allow speak of the first target */
	if (want->ntargets == 0 && (!o->config || o->target || o->nluns || o->nallow)) {
		if (!conf_add_target(want, o->target ? o->target : SPTD_DEFAULT_TARGET))
			return conf_oom(err, errlen);
		if (!o->config && o->nluns == 0) {
			struct conf_lun *l = conf_add_lun(&want->targets[0], 0);

			if (!l || lun_from_spec(SPTD_DEFAULT_LUN, l, err, errlen) < 0)
				goto fail;
		}
	}
	t0 = want->ntargets ? &want->targets[0] : NULL;
	if (t0 && o->target && conf_set_str(&t0->name, o->target) < 0)
		return conf_oom(err, errlen);
	if (t0 && o->nluns) {
		conf_clear_luns(t0);
		for (int i = 0; i < o->nluns; i++) {
			struct conf_lun *l = conf_add_lun(t0, (uint64_t)i);
			char why[256];

			if (!l)
				return conf_oom(err, errlen);
			if (lun_from_spec(o->luns[i], l, why, sizeof(why)) < 0) {
				snprintf(err, errlen, "--lun %s: %s", o->luns[i], why);
				goto fail;
			}
		}
	}
	if (t0 && o->nallow) {
		conf_clear_strs(&t0->allow, &t0->nallow);
		for (int i = 0; i < o->nallow; i++)
			if (conf_add_allow(t0, o->allow[i]) < 0)
				return conf_oom(err, errlen);
	}
	/* the whole, checked before anything is opened */
	for (size_t i = 0; i < want->ntargets; i++) {
		const struct conf_target *t = &want->targets[i];

		if (!iscsi_name_ok(t->name.value)) {
			snprintf(err, errlen, "%s:%d: target '%s' is not an iSCSI name (iqn., eui. or naa., "
				 "<= 223 bytes)", file, t->name.line, t->name.value);
			goto fail;
		}
		for (size_t j = 0; j < t->nallow; j++) {
			if (!iscsi_name_ok(t->allow[j].value)) {
				snprintf(err, errlen, "%s:%d: allowed initiator '%s' is not an iSCSI name", file,
					 t->allow[j].line, t->allow[j].value);
				goto fail;
			}
		}
		if (t->nallow > ISCSI_MAX_ALLOW || t->nluns > SPT_MAX_LUNS) {
			snprintf(err, errlen, "%s:%d: target %s: at most %d LUNs and %d allowed initiators",
				 file, t->name.line, t->name.value, SPT_MAX_LUNS, ISCSI_MAX_ALLOW);
			goto fail;
		}
		for (size_t j = 0; j < t->nluns; j++)
			if (lun_check(want, &t->luns[j], file, err, errlen) < 0)
				goto fail;
		for (size_t j = 0; j < t->nluns; j++)
			for (size_t k = j + 1; k < t->nluns; k++)
				if (t->luns[j].lun == t->luns[k].lun) {
					snprintf(err, errlen, "target %s has LUN %" PRIu64 " twice", t->name.value,
						 t->luns[j].lun);
					goto fail;
				}
	}
	if (want->ntargets > ISCSI_MAX_TARGETS || want->nportals > ISCSI_MAX_PORTALS) {
		snprintf(err, errlen, "%s: at most %d targets and %d portals", file, ISCSI_MAX_TARGETS,
			 ISCSI_MAX_PORTALS);
		goto fail;
	}
	if (chap_build(want, &chap, err, errlen) < 0)
		goto fail;
	chap_config_wipe(&chap);
	return 0;
fail:
	conf_free(want);
	return -1;
}

/* ---- applying ---- */

static void apply_limits(struct sptd *d, const struct conf *c, const struct sptd_limits *l)
{
	enum log_level lvl;

	d->srv->cfg = l->iscsi;
	d->limits = *l;
	if (!d->opts->log_level && c->log_level.value && log_parse_level(c->log_level.value, &lvl) == 0)
		log_threshold = lvl;
}

static int target_open(struct sptd *d, const struct conf_target *ct, char *err, size_t errlen)
{
	struct iscsi_target *t = iscsi_server_add_target(d->srv, ct->name.value);
	const char *names[ISCSI_MAX_ALLOW];

	if (!t) {
		snprintf(err, errlen, "target %s: cannot add it (too many targets?)", ct->name.value);
		return -1;
	}
	for (size_t j = 0; j < ct->nallow; j++)
		names[j] = ct->allow[j].value;
	if (iscsi_target_set_allow(d->srv, t, names, ct->nallow, err, errlen) < 0)
		return -1;
	for (size_t j = 0; j < ct->nluns; j++) {
		struct spt_lun l;

		if (lun_open(d, t->name, t->tpgt, &ct->luns[j], &l, err, errlen) < 0)
			return -1;
		if (iscsi_target_add_lun(d->srv, t, &l, err, errlen) < 0) {
			if (l.ops->close)
				l.ops->close(l.ctx);
			return -1;
		}
	}
	t->luns_gen = 0;	/* nobody saw an earlier map */
	return 0;
}

int sptd_conf_apply_initial(struct sptd *d, struct conf *want, const struct sptd_limits *limits,
			    char *err, size_t errlen)
{
	struct chap_config chap;
	int rc;

	apply_limits(d, want, limits);
	if (chap_build(want, &chap, err, errlen) < 0)
		return -1;
	rc = iscsi_server_set_chap(d->srv, &chap, err, errlen);
	chap_config_wipe(&chap);
	if (rc < 0)
		return -1;
	for (size_t i = 0; i < want->ntargets; i++)
		if (target_open(d, &want->targets[i], err, errlen) < 0)
			return -1;
	for (size_t i = 0; i < want->nportals; i++)
		if (iscsi_server_listen(d->srv, want->portals[i].value, err, errlen) < 0)
			return -1;
	d->running = *want;
	memset(want, 0, sizeof(*want));
	return 0;
}

static const struct conf_target *conf_find_target(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->ntargets; i++)
		if (!strcasecmp(c->targets[i].name.value, name))
			return &c->targets[i];
	return NULL;
}

static const struct conf_lun *conf_find_lun(const struct conf_target *t, uint64_t lun)
{
	for (size_t j = 0; t && j < t->nluns; j++)
		if (t->luns[j].lun == lun)
			return &t->luns[j];
	return NULL;
}

static bool conf_has_str(const struct conf_str *v, size_t n, const char *s, bool nocase)
{
	for (size_t i = 0; i < n; i++)
		if (nocase ? !strcasecmp(v[i].value, s) : !strcmp(v[i].value, s))
			return true;
	return false;
}

static bool conf_str_eq(const struct conf_str *a, const struct conf_str *b)
{
	return (!a->value && !b->value) || (a->value && b->value && !strcmp(a->value, b->value));
}

/* The same backend with only its size changed: a resize, not a new LUN. */
static bool lun_resized(const struct conf_lun *a, const struct conf_lun *b, uint64_t *bytes)
{
	uint32_t bs;
	const char *size;

	if (a->lun != b->lun || a->block_size != b->block_size || a->read_only != b->read_only)
		return false;
	if (a->path.value && b->path.value && !strcmp(a->path.value, b->path.value))
		size = b->size.value;
	else if (a->ram.value && b->ram.value)
		size = b->ram.value;
	else
		return false;
	return size && ram_lun_parse(size, bytes, &bs, (char[8]){ 0 }, 8) == 0;
}

/* A LUN opened before anything changes, added once the change is sure. */
struct pending_lun {
	const char *target;
	struct spt_lun lun;
};

static void pending_close(struct pending_lun *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].lun.ops && p[i].lun.ops->close)
			p[i].lun.ops->close(p[i].lun.ctx);
	free(p);
}

/*
 * Makes the daemon run `want` (a complete model) from what d->running
 * describes. Phase 1 refuses what cannot be done and opens every new LUN,
 * so that a bad change changes nothing; phase 2 applies. On success want
 * becomes d->running.
 */
static int conf_apply_diff(struct sptd *d, struct conf *want, const struct sptd_limits *limits,
			   bool force, char *err, size_t errlen)
{
	struct conf *run = &d->running;
	struct chap_config chap;
	struct pending_lun *pend = NULL;
	size_t npend = 0, changes = 0;
	const char *what = want->file ? want->file : "change";
	int rc;

	/* phase 1: refuse what cannot be done, before changing anything */
	for (size_t i = 0; i < run->ntargets; i++) {
		const struct conf_target *old = &run->targets[i];
		const struct conf_target *nw = conf_find_target(want, old->name.value);
		struct iscsi_target *t = iscsi_server_find_target(d->srv, old->name.value);
		bool luns_change = false;

		if (!t)
			continue;
		for (size_t j = 0; j < old->nluns; j++) {
			const struct conf_lun *nl = conf_find_lun(nw, old->luns[j].lun);
			const struct spt_lun *l = spt_lun_find(&t->luns, old->luns[j].lun);
			struct spt_lun_status st = { .state = NULL };
			uint64_t bytes;

			if (nl && lun_same(nl, &old->luns[j]))
				continue;
			if (nl && l && lun_resized(&old->luns[j], nl, &bytes)) {
				if (l->status)
					l->status(l->ctx, &st);
				if (!l->resize || bytes < st.size_bytes) {
					snprintf(err, errlen, "%s: LUN %" PRIu64 " of %s: %s", what, l->lun, t->name,
						 !l->resize ? "its provider cannot resize it" :
						 "a LUN only grows (shrinking would drop data)");
					return -1;
				}
				continue;
			}
			luns_change = true;
		}
		if (iscsi_target_session_count(d->srv, t) && (!nw || (luns_change && !force))) {
			snprintf(err, errlen, "%s: target %s has %zu session(s): it cannot be removed, nor "
				 "its LUNs removed or changed, while in use (stop the sessions first%s)", what,
				 old->name.value, iscsi_target_session_count(d->srv, t),
				 nw ? ", or force" : "");
			return -1;
		}
	}
	if (chap_build(want, &chap, err, errlen) < 0)
		return -1;
	chap_config_wipe(&chap);
	for (size_t i = 0; i < want->ntargets; i++) {
		const struct conf_target *nw = &want->targets[i];
		const struct conf_target *old = conf_find_target(run, nw->name.value);
		struct iscsi_target *t = iscsi_server_find_target(d->srv, nw->name.value);

		for (size_t j = 0; j < nw->nluns; j++) {
			const struct conf_lun *ol = old && t ? conf_find_lun(old, nw->luns[j].lun) : NULL;
			uint64_t bytes;
			void *grown;

			if (ol && (lun_same(ol, &nw->luns[j]) || lun_resized(ol, &nw->luns[j], &bytes)))
				continue;
			grown = realloc(pend, (npend + 1) * sizeof(*pend));
			if (!grown) {
				pending_close(pend, npend);
				return conf_oom(err, errlen);
			}
			pend = grown;
			pend[npend].target = nw->name.value;
			if (lun_open(d, nw->name.value, t ? t->tpgt : ISCSI_DEFAULT_TPGT, &nw->luns[j],
				     &pend[npend].lun, err, errlen) < 0) {
				pending_close(pend, npend);
				return -1;
			}
			npend++;
		}
	}
	/* new portals listen now: a port in use refuses the change */
	for (size_t i = 0; i < want->nportals; i++) {
		if (conf_has_str(run->portals, run->nportals, want->portals[i].value, false))
			continue;
		if (iscsi_server_listen(d->srv, want->portals[i].value, err, errlen) < 0) {
			for (size_t k = 0; k < i; k++)
				if (!conf_has_str(run->portals, run->nportals, want->portals[k].value, false))
					iscsi_server_unlisten(d->srv, want->portals[k].value);
			pending_close(pend, npend);
			return -1;
		}
		changes++;
	}
	if (!conf_str_eq(&run->control, &want->control) || !conf_str_eq(&run->metrics, &want->metrics) ||
	    !conf_str_eq(&run->provider_socket, &want->provider_socket))
		log_warn("%s: control, metrics and provider_socket changes take effect at the next start",
			 what);
	/* phase 2: apply */
	if (chap_build(want, &chap, err, errlen) < 0) {
		pending_close(pend, npend);
		return -1;
	}
	apply_limits(d, want, limits);
	rc = iscsi_server_set_chap(d->srv, &chap, err, errlen);
	chap_config_wipe(&chap);
	if (rc < 0) {
		pending_close(pend, npend);
		return -1;
	}
	/* targets and LUNs that went away or changed */
	for (size_t i = 0; i < run->ntargets; i++) {
		const struct conf_target *old = &run->targets[i];
		const struct conf_target *nw = conf_find_target(want, old->name.value);
		struct iscsi_target *t = iscsi_server_find_target(d->srv, old->name.value);

		if (!t)
			continue;
		if (!nw) {
			if (iscsi_server_remove_target(d->srv, t, err, errlen) < 0)
				log_err("%s: %s", what, err);
			changes++;
			continue;
		}
		for (size_t j = 0; j < old->nluns; j++) {
			const struct conf_lun *nl = conf_find_lun(nw, old->luns[j].lun);
			struct spt_lun *l = (struct spt_lun *)spt_lun_find(&t->luns, old->luns[j].lun);
			uint64_t bytes;

			if (nl && lun_same(nl, &old->luns[j]))
				continue;
			changes++;
			if (nl && l && lun_resized(&old->luns[j], nl, &bytes)) {
				if (l->resize(l->ctx, bytes, err, errlen) < 0)
					log_err("%s: LUN %" PRIu64 " of %s: %s", what, l->lun, t->name, err);
				continue;
			}
			if (iscsi_target_remove_lun(d->srv, t, old->luns[j].lun, force, err, errlen) < 0)
				log_err("%s: %s", what, err);
		}
	}
	/* targets that came, ACLs, LUNs that came */
	for (size_t i = 0; i < want->ntargets; i++) {
		const struct conf_target *nw = &want->targets[i];
		const struct conf_target *old = conf_find_target(run, nw->name.value);
		struct iscsi_target *t = iscsi_server_find_target(d->srv, nw->name.value);
		const char *names[ISCSI_MAX_ALLOW];
		bool acl_same = old && old->nallow == nw->nallow && t;

		if (!t) {
			t = iscsi_server_add_target(d->srv, nw->name.value);
			if (!t) {
				log_err("%s: cannot add target %s", what, nw->name.value);
				continue;
			}
			changes++;
		}
		for (size_t j = 0; acl_same && j < nw->nallow; j++)
			acl_same = conf_has_str(old->allow, old->nallow, nw->allow[j].value, true);
		if (!acl_same) {
			for (size_t j = 0; j < nw->nallow; j++)
				names[j] = nw->allow[j].value;
			if (iscsi_target_set_allow(d->srv, t, names, nw->nallow, err, errlen) < 0)
				log_err("%s: %s", what, err);
			changes++;
		}
		for (size_t k = 0; k < npend; k++) {
			if (!pend[k].lun.ops || strcasecmp(pend[k].target, nw->name.value))
				continue;
			if (iscsi_target_add_lun(d->srv, t, &pend[k].lun, err, errlen) < 0) {
				log_err("%s: %s", what, err);
				continue;	/* closed below */
			}
			pend[k].lun.ops = NULL;	/* the map has it now */
			changes++;
		}
	}
	pending_close(pend, npend);
	/* portals */
	for (size_t i = 0; i < run->nportals; i++) {
		if (!conf_has_str(want->portals, want->nportals, run->portals[i].value, false)) {
			iscsi_server_unlisten(d->srv, run->portals[i].value);
			changes++;
		}
	}
	log_info("%s: %zu target/LUN/ACL/portal change(s) applied; limits, CHAP and log level as given",
		 what, changes);
	conf_free(run);
	*run = *want;
	memset(want, 0, sizeof(*want));
	return 0;
}

int sptd_conf_reload(struct sptd *d, char *err, size_t errlen)
{
	struct conf want;
	struct sptd_limits limits;
	int rc;

	if (!d->opts->config) {
		snprintf(err, errlen, "sptd runs without --config: nothing to re-read");
		return -1;
	}
	if (sptd_conf_build(d->opts, &want, &limits, err, errlen) < 0)
		return -1;
	rc = conf_apply_diff(d, &want, &limits, false, err, errlen);
	conf_free(&want);
	return rc;
}

/* ---- live changes (sptctl) ---- */

static int conf_remove_target(struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->ntargets; i++) {
		struct conf_target *t = &c->targets[i];

		if (strcasecmp(t->name.value, name))
			continue;
		free(t->name.value);
		conf_clear_strs(&t->allow, &t->nallow);
		conf_clear_luns(t);
		memmove(t, t + 1, (c->ntargets - i - 1) * sizeof(*t));
		c->ntargets--;
		return 0;
	}
	return -1;
}

static int conf_remove_str(struct conf_str *v, size_t *n, const char *s, bool nocase)
{
	for (size_t i = 0; i < *n; i++) {
		if (nocase ? strcasecmp(v[i].value, s) : strcmp(v[i].value, s))
			continue;
		free(v[i].value);
		memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
		(*n)--;
		return 0;
	}
	return -1;
}

int sptd_conf_change(struct sptd *d, const struct spt_ctl_config_change *ch, char *err, size_t errlen)
{
	struct conf want;
	struct conf_target *t = NULL;
	struct conf_lun *l = NULL;
	bool force = ch->flags & SPT_CTL_CONFIG_FORCE;
	int rc = -1;

	if (conf_dup(&d->running, &want) < 0)
		return conf_oom(err, errlen);
	free(want.file);
	want.file = NULL;
	for (size_t i = 0; ch->target[0] && i < want.ntargets; i++)
		if (!strcasecmp(want.targets[i].name.value, ch->target))
			t = &want.targets[i];
	for (size_t j = 0; t && j < t->nluns; j++)
		if (t->luns[j].lun == ch->lun)
			l = &t->luns[j];
	if (!t && ch->op != SPT_CTL_TARGET_ADD && ch->op != SPT_CTL_PORTAL_ADD &&
	    ch->op != SPT_CTL_PORTAL_REMOVE && ch->op != SPT_CTL_CHAP_SET) {
		snprintf(err, errlen, "no target '%s'", ch->target);
		goto out;
	}
	switch (ch->op) {
	case SPT_CTL_TARGET_ADD:
		if (!iscsi_name_ok(ch->target)) {
			snprintf(err, errlen, "'%s' is not an iSCSI name (iqn., eui. or naa., <= 223 bytes)",
				 ch->target);
			goto out;
		}
		if (t) {
			snprintf(err, errlen, "target %s exists already", ch->target);
			goto out;
		}
		if (want.ntargets >= ISCSI_MAX_TARGETS || !conf_add_target(&want, ch->target)) {
			snprintf(err, errlen, "at most %d targets", ISCSI_MAX_TARGETS);
			goto out;
		}
		break;
	case SPT_CTL_TARGET_REMOVE:
		conf_remove_target(&want, ch->target);
		break;
	case SPT_CTL_LUN_ADD:
		if (l) {
			snprintf(err, errlen, "target %s has a LUN %" PRIu64 " already", ch->target, ch->lun);
			goto out;
		}
		l = conf_add_lun(t, ch->lun);
		if (!l || lun_from_spec(ch->arg, l, err, errlen) < 0 ||
		    lun_check(&want, l, "lun add", err, errlen) < 0)
			goto out;
		break;
	case SPT_CTL_LUN_REMOVE:
	case SPT_CTL_LUN_RESIZE: {
		char sz[32];

		if (!l) {
			snprintf(err, errlen, "target %s has no LUN %" PRIu64, ch->target, ch->lun);
			goto out;
		}
		if (ch->op == SPT_CTL_LUN_REMOVE) {
			free(l->path.value);
			free(l->ram.value);
			free(l->provider.value);
			free(l->rbd.value);
			free(l->size.value);
			memmove(l, l + 1, (size_t)(t->luns + t->nluns - l - 1) * sizeof(*l));
			t->nluns--;
			break;
		}
		if (l->provider.value) {
			snprintf(err, errlen, "LUN %" PRIu64 " is served by provider %s, which decides its size",
				 ch->lun, l->provider.value);
			goto out;
		}
		if (l->rbd.value) {
			/* the image is the one truth for all gateways; its watcher tells us */
			snprintf(err, errlen, "LUN %" PRIu64 " is RBD image %s: resize it with `rbd resize`, "
				 "initiators see the new capacity", ch->lun, l->rbd.value);
			goto out;
		}
		snprintf(sz, sizeof(sz), "%" PRIu64, ch->size_bytes);
		if (conf_set_str(l->ram.value ? &l->ram : &l->size, sz) < 0)
			goto out;
		break;
	}
	case SPT_CTL_ACL_ADD:
		if (!iscsi_name_ok(ch->arg)) {
			snprintf(err, errlen, "'%s' is not an iSCSI name", ch->arg);
			goto out;
		}
		if (!conf_has_str(t->allow, t->nallow, ch->arg, true) && conf_add_allow(t, ch->arg) < 0)
			goto out;
		break;
	case SPT_CTL_ACL_REMOVE:
		if (conf_remove_str(t->allow, &t->nallow, ch->arg, true) < 0) {
			snprintf(err, errlen, "%s is not in the ACL of %s", ch->arg, ch->target);
			goto out;
		}
		break;
	case SPT_CTL_PORTAL_ADD:
		if (!conf_has_str(want.portals, want.nportals, ch->arg, false) &&
		    conf_add_portal(&want, ch->arg) < 0)
			goto out;
		break;
	case SPT_CTL_PORTAL_REMOVE:
		if (conf_remove_str(want.portals, &want.nportals, ch->arg, false) < 0) {
			snprintf(err, errlen, "no portal %s", ch->arg);
			goto out;
		}
		break;
	case SPT_CTL_CHAP_SET: {
		struct conf_chap *cc = ch->chap_kind == SPT_CTL_CHAP_DISCOVERY ? &want.discovery_chap :
				       ch->chap_kind == SPT_CTL_CHAP_MUTUAL ? &want.mutual_chap : &want.chap;
		/* "USER\nSECRET": a user name may hold ':' (an IQN) */
		const char *colon = strchr(ch->arg, '\n');

		conf_free_chap(cc);
		if (ch->arg[0]) {
			char user[CONF_STR_MAX];

			if (!colon) {
				snprintf(err, errlen, "CHAP credentials are USER and SECRET");
				goto out;
			}
			snprintf(user, sizeof(user), "%.*s", (int)(colon - ch->arg), ch->arg);
			if (conf_set_str(&cc->user, user) < 0 || conf_set_str(&cc->secret, colon + 1) < 0)
				goto out;
		}
		break;
	}
	default:
		snprintf(err, errlen, "unknown change %u", ch->op);
		goto out;
	}
	{
		struct sptd_limits limits = d->limits;
		char *file = d->running.file ? strdup(d->running.file) : NULL;

		want.file = file;
		rc = conf_apply_diff(d, &want, &limits, force, err, errlen);
	}
out:
	conf_free(&want);
	return rc;
}

int sptd_conf_save(struct sptd *d, const char *path, char *err, size_t errlen)
{
	if (!path || !*path)
		path = d->opts->config;
	if (!path) {
		snprintf(err, errlen, "no file given and sptd runs without --config");
		return -1;
	}
	if (conf_save(&d->running, path, err, errlen) < 0)
		return -1;
	log_info("configuration saved to %s", path);
	return 0;
}
