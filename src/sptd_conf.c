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
	struct file_lun_config cfg;

	if (file_lun_parse(spec, &cfg, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s:%d: LUN %" PRIu64 ": %s", file, l->line, l->lun, why);
		return -1;
	}
	return 0;
}

/* Opens a LUN of target t (not yet in its map). 0, or -1 with err. */
static int lun_open(struct sptd *d, struct iscsi_target *t, const struct conf_lun *l,
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
		if (spt_remote_lun_open(d->remote, l->provider.value, l->lun, t->name, t->tpgt, 1, out,
					why, sizeof(why)) < 0)
			goto fail;
		return 0;
	}
	if (l->ram.value) {
		uint64_t size;
		uint32_t bs;

		if (ram_lun_parse(spec + strlen(SPTD_LUN_RAM_PREFIX), &size, &bs, why, sizeof(why)) < 0 ||
		    ram_lun_open(size, bs, l->lun, t->name, out, why, sizeof(why)) < 0)
			goto fail;
		return 0;
	}
	struct file_lun_config cfg;

	if (file_lun_parse(spec, &cfg, why, sizeof(why)) < 0 ||
	    file_lun_open(d->loop, &cfg, l->lun, t->name, out, why, sizeof(why)) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "target %s LUN %" PRIu64 " (%s): %s", t->name, l->lun, spec, why);
	return -1;
}

/* ---- CHAP ---- */

static int chap_from_conf(const struct conf_chap *cc, struct chap_credentials *out, const char *what,
			  const char *file, char *err, size_t errlen)
{
	char spec[CONF_STR_MAX * 2], why[256];
	int rc;

	memset(out, 0, sizeof(*out));
	if (!cc->user.value)
		return 0;
	snprintf(spec, sizeof(spec), "%s:%s", cc->user.value, cc->secret.value);
	rc = chap_credentials_parse(spec, out, why, sizeof(why));
	explicit_bzero(spec, sizeof(spec));
	if (rc < 0) {
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

		if (lun_open(d, t, &ct->luns[j], &l, err, errlen) < 0)
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

#define RELOAD_MAX_NEW_LUNS (ISCSI_MAX_TARGETS * 8)

int sptd_conf_reload(struct sptd *d, char *err, size_t errlen)
{
	struct conf want;
	struct sptd_limits limits;
	struct conf *run = &d->running;
	struct chap_config chap;
	size_t changes = 0;
	int rc = -1;

	if (!d->opts->config) {
		snprintf(err, errlen, "sptd runs without --config: nothing to re-read");
		return -1;
	}
	if (sptd_conf_build(d->opts, &want, &limits, err, errlen) < 0)
		return -1;
	/* phase 1: refuse what cannot be done, before changing anything */
	for (size_t i = 0; i < run->ntargets; i++) {
		const struct conf_target *old = &run->targets[i];
		const struct conf_target *nw = conf_find_target(&want, old->name.value);
		struct iscsi_target *t = iscsi_server_find_target(d->srv, old->name.value);
		bool luns_change = false;

		if (!t)
			continue;
		for (size_t j = 0; j < old->nluns; j++) {
			const struct conf_lun *nl = conf_find_lun(nw, old->luns[j].lun);

			if (!nl || !lun_same(nl, &old->luns[j]))
				luns_change = true;
		}
		if ((!nw || luns_change) && iscsi_target_session_count(d->srv, t)) {
			snprintf(err, errlen, "%s: target %s has %zu session(s): it cannot be removed, nor "
				 "its LUNs removed or changed, while in use (stop the sessions first)",
				 want.file, old->name.value, iscsi_target_session_count(d->srv, t));
			goto out;
		}
	}
	if ((!conf_str_eq(&run->control, &want.control) || !conf_str_eq(&run->metrics, &want.metrics) ||
	     !conf_str_eq(&run->provider_socket, &want.provider_socket)))
		log_warn("%s: control, metrics and provider_socket changes take effect at the next start",
			 want.file);
	if (chap_build(&want, &chap, err, errlen) < 0)
		goto out;
	/* phase 2: apply */
	apply_limits(d, &want, &limits);
	rc = iscsi_server_set_chap(d->srv, &chap, err, errlen);
	chap_config_wipe(&chap);
	if (rc < 0)
		goto out;
	rc = -1;
	/* targets and LUNs that went away */
	for (size_t i = 0; i < run->ntargets; i++) {
		const struct conf_target *old = &run->targets[i];
		const struct conf_target *nw = conf_find_target(&want, old->name.value);
		struct iscsi_target *t = iscsi_server_find_target(d->srv, old->name.value);

		if (!t)
			continue;
		if (!nw) {
			if (iscsi_server_remove_target(d->srv, t, err, errlen) < 0)
				log_err("SIGHUP: %s", err);
			changes++;
			continue;
		}
		for (size_t j = 0; j < old->nluns; j++) {
			const struct conf_lun *nl = conf_find_lun(nw, old->luns[j].lun);

			if (nl && lun_same(nl, &old->luns[j]))
				continue;
			if (iscsi_target_remove_lun(d->srv, t, old->luns[j].lun, err, errlen) < 0)
				log_err("SIGHUP: %s", err);
			changes++;
		}
	}
	/* targets and LUNs that came, ACLs */
	for (size_t i = 0; i < want.ntargets; i++) {
		const struct conf_target *nw = &want.targets[i];
		const struct conf_target *old = conf_find_target(run, nw->name.value);
		struct iscsi_target *t = iscsi_server_find_target(d->srv, nw->name.value);
		const char *names[ISCSI_MAX_ALLOW];
		bool acl_same = old && old->nallow == nw->nallow;

		if (!t) {
			if (target_open(d, nw, err, errlen) < 0)
				log_err("SIGHUP: %s", err);
			changes++;
			continue;
		}
		for (size_t j = 0; acl_same && j < nw->nallow; j++)
			acl_same = conf_has_str(old->allow, old->nallow, nw->allow[j].value, true);
		if (!acl_same) {
			for (size_t j = 0; j < nw->nallow; j++)
				names[j] = nw->allow[j].value;
			if (iscsi_target_set_allow(d->srv, t, names, nw->nallow, err, errlen) < 0)
				log_err("SIGHUP: %s", err);
			changes++;
		}
		for (size_t j = 0; j < nw->nluns; j++) {
			const struct conf_lun *ol = old ? conf_find_lun(old, nw->luns[j].lun) : NULL;
			struct spt_lun l;

			if (ol && lun_same(ol, &nw->luns[j]))
				continue;
			if (lun_open(d, t, &nw->luns[j], &l, err, errlen) < 0) {
				log_err("SIGHUP: %s", err);
				continue;
			}
			if (iscsi_target_add_lun(d->srv, t, &l, err, errlen) < 0) {
				log_err("SIGHUP: %s", err);
				if (l.ops->close)
					l.ops->close(l.ctx);
			}
			changes++;
		}
	}
	/* portals */
	for (size_t i = 0; i < run->nportals; i++) {
		if (!conf_has_str(want.portals, want.nportals, run->portals[i].value, false)) {
			iscsi_server_unlisten(d->srv, run->portals[i].value);
			changes++;
		}
	}
	for (size_t i = 0; i < want.nportals; i++) {
		if (!conf_has_str(run->portals, run->nportals, want.portals[i].value, false)) {
			if (iscsi_server_listen(d->srv, want.portals[i].value, err, errlen) < 0)
				log_err("SIGHUP: %s", err);
			changes++;
		}
	}
	log_info("%s re-read: %zu target/LUN/ACL/portal change(s) applied; limits, CHAP and log "
		 "level as in the file", want.file, changes);
	conf_free(run);
	*run = want;
	memset(&want, 0, sizeof(want));
	rc = 0;
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
