#include "util/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

struct conf_ctx {
	const char *file;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int conf_fail(struct conf_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	char msg[CONF_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(x->err, x->errlen, "%s:%d: %s", x->file, s ? (int)config_setting_source_line(s) : 0,
		 msg);
	return -1;
}

int conf_set_str(struct conf_str *s, const char *value)
{
	char *v = strdup(value);

	if (!v)
		return -1;
	free(s->value);
	s->value = v;
	return 0;
}

/* Grows an array of `size`-byte items by one zeroed item; NULL without memory. */
static void *conf_grow(void **items, size_t *n, size_t size)
{
	char *p;

	if (*n >= CONF_MAX_ITEMS)
		return NULL;
	p = realloc(*items, (*n + 1) * size);
	if (!p)
		return NULL;
	*items = p;
	memset(p + *n * size, 0, size);
	return p + (*n)++ * size;
}

static int conf_get_string(struct conf_ctx *x, const config_setting_t *s, struct conf_str *out)
{
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_fail(x, s, "%s must be a string (in double quotes)", config_setting_name(s));
	v = config_setting_get_string(s);
	if (!v || strlen(v) >= CONF_STR_MAX)
		return conf_fail(x, s, "%s is longer than %d bytes", config_setting_name(s), CONF_STR_MAX - 1);
	if (conf_set_str(out, v) < 0)
		return conf_fail(x, s, "out of memory");
	out->line = (int)config_setting_source_line(s);
	return 0;
}

static int conf_get_int(struct conf_ctx *x, const config_setting_t *s, int64_t *out)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		*out = config_setting_get_int(s);
		return 0;
	case CONFIG_TYPE_INT64:
		*out = config_setting_get_int64(s);
		return 0;
	default:
		return conf_fail(x, s, "%s must be a whole number",
				 config_setting_name(s) ? config_setting_name(s) : "value");
	}
}

/* A list or array of strings. */
static int conf_get_strings(struct conf_ctx *x, const config_setting_t *s, struct conf_str **out,
			    size_t *n)
{
	int type = config_setting_type(s);

	if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
		return conf_fail(x, s, "%s must be a list of strings: [ \"a\", \"b\" ]", config_setting_name(s));
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct conf_str *item = conf_grow((void **)out, n, sizeof(**out));

		if (!item)
			return conf_fail(x, e, "more than %d entries, or out of memory", CONF_MAX_ITEMS);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return conf_fail(x, e, "%s must hold strings only", config_setting_name(s));
		if (conf_get_string(x, e, item) < 0)
			return -1;
	}
	return 0;
}

static int conf_get_chap(struct conf_ctx *x, const config_setting_t *s, struct conf_chap *out)
{
	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return conf_fail(x, s, "%s must be a group: { user = \"...\"; secret = \"...\"; }",
				 config_setting_name(s));
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *k = config_setting_name(e);

		if (!strcmp(k, "user")) {
			if (conf_get_string(x, e, &out->user) < 0)
				return -1;
		} else if (!strcmp(k, "secret")) {
			if (conf_get_string(x, e, &out->secret) < 0)
				return -1;
		} else {
			return conf_fail(x, e, "unknown setting '%s' in %s (user, secret)", k,
					 config_setting_name(s));
		}
	}
	if (!out->user.value || !out->secret.value)
		return conf_fail(x, s, "%s needs both user and secret", config_setting_name(s));
	return 0;
}

static int conf_get_lun(struct conf_ctx *x, const config_setting_t *s, struct conf_lun *l)
{
	bool have_lun = false;
	int backends = 0;
	int64_t v;

	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return conf_fail(x, s, "each LUN must be a group: { lun = 0; path = \"...\"; }");
	l->line = (int)config_setting_source_line(s);
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *k = config_setting_name(e);

		if (!strcmp(k, "lun")) {
			if (conf_get_int(x, e, &v) < 0)
				return -1;
			if (v < 0)
				return conf_fail(x, e, "lun must not be negative");
			l->lun = (uint64_t)v;
			have_lun = true;
		} else if (!strcmp(k, "path")) {
			if (conf_get_string(x, e, &l->path) < 0)
				return -1;
			backends++;
		} else if (!strcmp(k, "ram")) {
			if (conf_get_string(x, e, &l->ram) < 0)
				return -1;
			backends++;
		} else if (!strcmp(k, "provider")) {
			if (conf_get_string(x, e, &l->provider) < 0)
				return -1;
			backends++;
		} else if (!strcmp(k, "rbd")) {
			if (conf_get_string(x, e, &l->rbd) < 0)
				return -1;
			backends++;
		} else if (!strcmp(k, "size")) {
			if (config_setting_type(e) == CONFIG_TYPE_STRING) {
				if (conf_get_string(x, e, &l->size) < 0)
					return -1;
			} else {
				char buf[32];

				if (conf_get_int(x, e, &v) < 0)
					return -1;
				if (v <= 0)
					return conf_fail(x, e, "size must be positive");
				snprintf(buf, sizeof(buf), "%lld", (long long)v);
				if (conf_set_str(&l->size, buf) < 0)
					return conf_fail(x, e, "out of memory");
				l->size.line = (int)config_setting_source_line(e);
			}
		} else if (!strcmp(k, "block_size")) {
			if (conf_get_int(x, e, &v) < 0)
				return -1;
			if (v != 512 && v != 4096)
				return conf_fail(x, e, "block_size must be 512 or 4096");
			l->block_size = (uint32_t)v;
		} else if (!strcmp(k, "read_only")) {
			if (config_setting_type(e) != CONFIG_TYPE_BOOL)
				return conf_fail(x, e, "read_only must be true or false");
			l->read_only = config_setting_get_bool(e);
		} else {
			return conf_fail(x, e, "unknown LUN setting '%s' (lun, path, ram, provider, rbd, "
					 "size, block_size, read_only)", k);
		}
	}
	if (!have_lun)
		return conf_fail(x, s, "a LUN needs its number: lun = N");
	if (backends != 1)
		return conf_fail(x, s, "a LUN needs exactly one of path, ram or provider (or rbd, a Ceph "
				 "image)");
	if (l->provider.value && (l->size.value || l->block_size || l->read_only))
		return conf_fail(x, s, "a provider LUN takes no size, block_size or read_only: its "
				 "provider decides");
	if (l->ram.value && l->size.value)
		return conf_fail(x, s, "a ram LUN gives its size as ram = \"SIZE\"");
	if (l->rbd.value && (l->size.value || l->block_size || l->read_only))
		return conf_fail(x, s, "an rbd LUN takes no size, block_size or read_only: the image "
				 "decides");
	return 0;
}

static int conf_get_target(struct conf_ctx *x, const config_setting_t *s, struct conf_target *t)
{
	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return conf_fail(x, s, "each target must be a group: { name = \"iqn...\"; luns = (...); }");
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *k = config_setting_name(e);

		if (!strcmp(k, "name")) {
			if (conf_get_string(x, e, &t->name) < 0)
				return -1;
		} else if (!strcmp(k, "allow")) {
			if (conf_get_strings(x, e, &t->allow, &t->nallow) < 0)
				return -1;
		} else if (!strcmp(k, "luns")) {
			int type = config_setting_type(e);

			if (type != CONFIG_TYPE_LIST && !(type == CONFIG_TYPE_ARRAY && !config_setting_length(e)))
				return conf_fail(x, e, "luns must be a list of groups: ( { lun = 0; ... } )");
			for (int j = 0; j < config_setting_length(e); j++) {
				const config_setting_t *le = config_setting_get_elem(e, (unsigned)j);
				struct conf_lun *l = conf_grow((void **)&t->luns, &t->nluns, sizeof(*l));

				if (!l)
					return conf_fail(x, le, "more than %d LUNs, or out of memory", CONF_MAX_ITEMS);
				if (conf_get_lun(x, le, l) < 0)
					return -1;
				for (size_t k2 = 0; k2 + 1 < t->nluns; k2++)
					if (t->luns[k2].lun == l->lun)
						return conf_fail(x, le, "LUN %llu appears twice in this target",
								 (unsigned long long)l->lun);
			}
		} else {
			return conf_fail(x, e, "unknown target setting '%s' (name, allow, luns)", k);
		}
	}
	if (!t->name.value)
		return conf_fail(x, s, "a target needs its name: name = \"iqn....\"");
	return 0;
}

static int conf_get_knobs(struct conf_ctx *x, const config_setting_t *s, struct conf *c)
{
	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return conf_fail(x, s, "limits must be a group: { max_sessions = 1024; ... }");
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct conf_knob *k = conf_grow((void **)&c->knobs, &c->nknobs, sizeof(*k));
		int64_t v;

		if (!k)
			return conf_fail(x, e, "more than %d limits, or out of memory", CONF_MAX_ITEMS);
		if (conf_get_int(x, e, &v) < 0)
			return -1;
		k->name = strdup(config_setting_name(e));
		if (!k->name)
			return conf_fail(x, e, "out of memory");
		k->value = v;
		k->line = (int)config_setting_source_line(e);
	}
	return 0;
}

static int conf_get_root(struct conf_ctx *x, const config_setting_t *root, struct conf *c)
{
	for (int i = 0; i < config_setting_length(root); i++) {
		const config_setting_t *e = config_setting_get_elem(root, (unsigned)i);
		const char *k = config_setting_name(e);
		int rc;

		if (!strcmp(k, "log_level"))
			rc = conf_get_string(x, e, &c->log_level);
		else if (!strcmp(k, "control"))
			rc = conf_get_string(x, e, &c->control);
		else if (!strcmp(k, "provider_socket"))
			rc = conf_get_string(x, e, &c->provider_socket);
		else if (!strcmp(k, "metrics"))
			rc = conf_get_string(x, e, &c->metrics);
		else if (!strcmp(k, "portals"))
			rc = conf_get_strings(x, e, &c->portals, &c->nportals);
		else if (!strcmp(k, "limits"))
			rc = conf_get_knobs(x, e, c);
		else if (!strcmp(k, "chap"))
			rc = conf_get_chap(x, e, &c->chap);
		else if (!strcmp(k, "mutual_chap"))
			rc = conf_get_chap(x, e, &c->mutual_chap);
		else if (!strcmp(k, "discovery_chap"))
			rc = conf_get_chap(x, e, &c->discovery_chap);
		else if (!strcmp(k, "targets")) {
			int type = config_setting_type(e);

			rc = 0;
			if (type != CONFIG_TYPE_LIST && !(type == CONFIG_TYPE_ARRAY && !config_setting_length(e)))
				return conf_fail(x, e, "targets must be a list of groups: ( { name = ...; } )");
			for (int j = 0; j < config_setting_length(e) && rc == 0; j++) {
				const config_setting_t *te = config_setting_get_elem(e, (unsigned)j);
				struct conf_target *t = conf_grow((void **)&c->targets, &c->ntargets, sizeof(*t));

				if (!t)
					return conf_fail(x, te, "more than %d targets, or out of memory",
							 CONF_MAX_ITEMS);
				rc = conf_get_target(x, te, t);
				for (size_t k2 = 0; rc == 0 && k2 + 1 < c->ntargets; k2++)
					if (!strcasecmp(c->targets[k2].name.value, t->name.value))
						rc = conf_fail(x, te, "target %s appears twice", t->name.value);
			}
		} else {
			return conf_fail(x, e, "unknown setting '%s' (log_level, control, provider_socket, "
					 "metrics, portals, limits, chap, mutual_chap, discovery_chap, targets)", k);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

int conf_load(const char *path, struct conf *c, char *err, size_t errlen)
{
	struct conf_ctx x = { .file = path, .err = err, .errlen = errlen };
	config_t cfg;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	c->file = strdup(path);
	if (!c->file) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	config_init(&cfg);
	if (config_read_file(&cfg, path) != CONFIG_TRUE) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s: cannot read it: %s", path, strerror(errno ? errno : EIO));
		else
			snprintf(err, errlen, "%s:%d: %s", config_error_file(&cfg) ? config_error_file(&cfg) : path,
				 config_error_line(&cfg), config_error_text(&cfg));
		goto out;
	}
	rc = conf_get_root(&x, config_root_setting(&cfg), c);
out:
	config_destroy(&cfg);
	if (rc < 0)
		conf_free(c);
	return rc;
}

/* ---- writing ---- */

static int conf_put_str(config_setting_t *parent, const char *name, const struct conf_str *s)
{
	config_setting_t *e;

	if (!s->value)
		return 0;
	e = config_setting_add(parent, name, CONFIG_TYPE_STRING);
	return e && config_setting_set_string(e, s->value) == CONFIG_TRUE ? 0 : -1;
}

static int conf_put_strings(config_setting_t *parent, const char *name, const struct conf_str *v,
			    size_t n)
{
	config_setting_t *a;

	if (!n)
		return 0;
	a = config_setting_add(parent, name, CONFIG_TYPE_ARRAY);
	if (!a)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!config_setting_set_string_elem(a, -1, v[i].value))
			return -1;
	return 0;
}

static int conf_put_chap(config_setting_t *root, const char *name, const struct conf_chap *ch)
{
	config_setting_t *g;

	if (!ch->user.value)
		return 0;
	g = config_setting_add(root, name, CONFIG_TYPE_GROUP);
	if (!g || conf_put_str(g, "user", &ch->user) < 0 || conf_put_str(g, "secret", &ch->secret) < 0)
		return -1;
	return 0;
}

static int conf_put_int(config_setting_t *parent, const char *name, int64_t v)
{
	config_setting_t *e;

	if (v >= INT32_MIN && v <= INT32_MAX) {
		e = config_setting_add(parent, name, CONFIG_TYPE_INT);
		return e && config_setting_set_int(e, (int)v) == CONFIG_TRUE ? 0 : -1;
	}
	e = config_setting_add(parent, name, CONFIG_TYPE_INT64);
	return e && config_setting_set_int64(e, v) == CONFIG_TRUE ? 0 : -1;
}

static int conf_build(const struct conf *c, config_t *cfg)
{
	config_setting_t *root = config_root_setting(cfg), *g, *list;

	if (conf_put_str(root, "log_level", &c->log_level) < 0 ||
	    conf_put_str(root, "control", &c->control) < 0 ||
	    conf_put_str(root, "provider_socket", &c->provider_socket) < 0 ||
	    conf_put_str(root, "metrics", &c->metrics) < 0 ||
	    conf_put_strings(root, "portals", c->portals, c->nportals) < 0)
		return -1;
	if (c->nknobs) {
		g = config_setting_add(root, "limits", CONFIG_TYPE_GROUP);
		if (!g)
			return -1;
		for (size_t i = 0; i < c->nknobs; i++)
			if (conf_put_int(g, c->knobs[i].name, c->knobs[i].value) < 0)
				return -1;
	}
	if (conf_put_chap(root, "chap", &c->chap) < 0 ||
	    conf_put_chap(root, "mutual_chap", &c->mutual_chap) < 0 ||
	    conf_put_chap(root, "discovery_chap", &c->discovery_chap) < 0)
		return -1;
	list = config_setting_add(root, "targets", CONFIG_TYPE_LIST);
	if (!list)
		return -1;
	for (size_t i = 0; i < c->ntargets; i++) {
		const struct conf_target *t = &c->targets[i];
		config_setting_t *tg = config_setting_add(list, NULL, CONFIG_TYPE_GROUP), *luns;

		if (!tg || conf_put_str(tg, "name", &t->name) < 0 ||
		    conf_put_strings(tg, "allow", t->allow, t->nallow) < 0)
			return -1;
		luns = config_setting_add(tg, "luns", CONFIG_TYPE_LIST);
		if (!luns)
			return -1;
		for (size_t j = 0; j < t->nluns; j++) {
			const struct conf_lun *l = &t->luns[j];
			config_setting_t *lg = config_setting_add(luns, NULL, CONFIG_TYPE_GROUP), *b;

			if (!lg || conf_put_int(lg, "lun", (int64_t)l->lun) < 0 ||
			    conf_put_str(lg, "path", &l->path) < 0 || conf_put_str(lg, "ram", &l->ram) < 0 ||
			    conf_put_str(lg, "provider", &l->provider) < 0 || conf_put_str(lg, "rbd", &l->rbd) < 0 ||
			    conf_put_str(lg, "size", &l->size) < 0)
				return -1;
			if (l->block_size && conf_put_int(lg, "block_size", l->block_size) < 0)
				return -1;
			if (l->read_only) {
				b = config_setting_add(lg, "read_only", CONFIG_TYPE_BOOL);
				if (!b || config_setting_set_bool(b, 1) != CONFIG_TRUE)
					return -1;
			}
		}
	}
	return 0;
}

int conf_save(const struct conf *c, const char *path, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	config_t cfg;
	FILE *f = NULL;
	int fd = -1, dfd, rc = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp) ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	config_init(&cfg);
	if (conf_build(c, &cfg) < 0) {
		snprintf(err, errlen, "%s: cannot build the configuration (out of memory?)", path);
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	fprintf(f, "# sptd configuration, written by sptd (sptctl config save); see spt.conf(5)\n");
	config_write(&cfg, f);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	f = NULL;
	/* the rename is the commit: the file is the old one or the new one */
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot replace %s: %s", path, strerror(errno));
		goto out;
	}
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(tmp);
	config_destroy(&cfg);
	return rc;
}

/* ---- building and freeing ---- */

struct conf_target *conf_add_target(struct conf *c, const char *name)
{
	struct conf_target *t = conf_grow((void **)&c->targets, &c->ntargets, sizeof(*t));

	if (!t)
		return NULL;
	if (conf_set_str(&t->name, name) < 0) {
		c->ntargets--;
		return NULL;
	}
	return t;
}

struct conf_lun *conf_add_lun(struct conf_target *t, uint64_t lun)
{
	struct conf_lun *l = conf_grow((void **)&t->luns, &t->nluns, sizeof(*l));

	if (l)
		l->lun = lun;
	return l;
}

int conf_add_allow(struct conf_target *t, const char *initiator)
{
	struct conf_str *s = conf_grow((void **)&t->allow, &t->nallow, sizeof(*s));

	if (!s || conf_set_str(s, initiator) < 0)
		return -1;
	return 0;
}

int conf_add_portal(struct conf *c, const char *portal)
{
	struct conf_str *s = conf_grow((void **)&c->portals, &c->nportals, sizeof(*s));

	if (!s || conf_set_str(s, portal) < 0)
		return -1;
	return 0;
}

int conf_add_knob(struct conf *c, const char *name, int64_t value)
{
	struct conf_knob *k = conf_grow((void **)&c->knobs, &c->nknobs, sizeof(*k));

	if (!k)
		return -1;
	k->name = strdup(name);
	if (!k->name) {
		c->nknobs--;
		return -1;
	}
	k->value = value;
	return 0;
}

static void conf_free_secret(struct conf_str *s)
{
	if (s->value) {
		/* secrets are not left behind in freed memory */
		explicit_bzero(s->value, strlen(s->value));
		free(s->value);
		s->value = NULL;
	}
}

void conf_free_chap(struct conf_chap *ch)
{
	free(ch->user.value);
	ch->user.value = NULL;
	conf_free_secret(&ch->secret);
}

void conf_free(struct conf *c)
{
	free(c->file);
	free(c->log_level.value);
	free(c->control.value);
	free(c->provider_socket.value);
	free(c->metrics.value);
	for (size_t i = 0; i < c->nportals; i++)
		free(c->portals[i].value);
	free(c->portals);
	for (size_t i = 0; i < c->nknobs; i++)
		free(c->knobs[i].name);
	free(c->knobs);
	conf_free_chap(&c->chap);
	conf_free_chap(&c->mutual_chap);
	conf_free_chap(&c->discovery_chap);
	for (size_t i = 0; i < c->ntargets; i++) {
		struct conf_target *t = &c->targets[i];

		free(t->name.value);
		for (size_t j = 0; j < t->nallow; j++)
			free(t->allow[j].value);
		free(t->allow);
		for (size_t j = 0; j < t->nluns; j++) {
			free(t->luns[j].path.value);
			free(t->luns[j].ram.value);
			free(t->luns[j].provider.value);
			free(t->luns[j].rbd.value);
			free(t->luns[j].size.value);
		}
		free(t->luns);
	}
	free(c->targets);
	memset(c, 0, sizeof(*c));
}

static int conf_dup_str(struct conf_str *dst, const struct conf_str *src)
{
	dst->line = src->line;
	return src->value ? conf_set_str(dst, src->value) : 0;
}

int conf_dup(const struct conf *src, struct conf *dst)
{
	memset(dst, 0, sizeof(*dst));
	if ((src->file && !(dst->file = strdup(src->file))) ||
	    conf_dup_str(&dst->log_level, &src->log_level) < 0 ||
	    conf_dup_str(&dst->control, &src->control) < 0 ||
	    conf_dup_str(&dst->provider_socket, &src->provider_socket) < 0 ||
	    conf_dup_str(&dst->metrics, &src->metrics) < 0 ||
	    conf_dup_str(&dst->chap.user, &src->chap.user) < 0 ||
	    conf_dup_str(&dst->chap.secret, &src->chap.secret) < 0 ||
	    conf_dup_str(&dst->mutual_chap.user, &src->mutual_chap.user) < 0 ||
	    conf_dup_str(&dst->mutual_chap.secret, &src->mutual_chap.secret) < 0 ||
	    conf_dup_str(&dst->discovery_chap.user, &src->discovery_chap.user) < 0 ||
	    conf_dup_str(&dst->discovery_chap.secret, &src->discovery_chap.secret) < 0)
		goto fail;
	for (size_t i = 0; i < src->nportals; i++)
		if (conf_add_portal(dst, src->portals[i].value) < 0)
			goto fail;
	for (size_t i = 0; i < src->nknobs; i++)
		if (conf_add_knob(dst, src->knobs[i].name, src->knobs[i].value) < 0)
			goto fail;
	for (size_t i = 0; i < src->ntargets; i++) {
		const struct conf_target *st = &src->targets[i];
		struct conf_target *t = conf_add_target(dst, st->name.value);

		if (!t)
			goto fail;
		for (size_t j = 0; j < st->nallow; j++)
			if (conf_add_allow(t, st->allow[j].value) < 0)
				goto fail;
		for (size_t j = 0; j < st->nluns; j++) {
			const struct conf_lun *sl = &st->luns[j];
			struct conf_lun *l = conf_add_lun(t, sl->lun);

			if (!l || conf_dup_str(&l->path, &sl->path) < 0 || conf_dup_str(&l->ram, &sl->ram) < 0 ||
			    conf_dup_str(&l->provider, &sl->provider) < 0 || conf_dup_str(&l->rbd, &sl->rbd) < 0 ||
			    conf_dup_str(&l->size, &sl->size) < 0)
				goto fail;
			l->line = sl->line;
			l->block_size = sl->block_size;
			l->read_only = sl->read_only;
		}
	}
	return 0;
fail:
	conf_free(dst);
	return -1;
}
