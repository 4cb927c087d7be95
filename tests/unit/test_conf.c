/* The configuration file model: reading, errors with their line, writing back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/conf.h"

static char dir[] = "/tmp/spt-test-conf.XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char *full =
	"# comment\n"
	"log_level = \"debug\";\n"
	"control = \"/run/sptd/control.sock\";\n"
	"provider_socket = \"/run/sptd/providers.sock\";\n"
	"metrics = \"127.0.0.1:9172\";\n"
	"portals = [ \"127.0.0.1:3260\", \"[::1]:3260\" ];\n"
	"limits = { max_sessions = 16; login_timeout = 5; };\n"
	"chap = { user = \"alice\"; secret = \"alice-secret-123\"; };\n"
	"mutual_chap = { user = \"target\"; secret = \"target-secret-12\"; };\n"
	"targets = (\n"
	"  { name = \"iqn.2026-11.org.spt:a\";\n"
	"    allow = [ \"iqn.2026-11.org.spt:init1\" ];\n"
	"    luns = (\n"
	"      { lun = 0; path = \"/var/lib/spt/a.img\"; size = \"1G\"; block_size = 4096; read_only = true; },\n"
	"      { lun = 1; ram = \"256M\"; },\n"
	"      { lun = 2; provider = \"mem0\"; }\n"
	"    ); },\n"
	"  { name = \"iqn.2026-11.org.spt:b\"; luns = ( { lun = 7; path = \"/b.img\"; size = 1048576; } ); }\n"
	");\n";

static void check_full(const struct conf *c)
{
	assert_string_equal(c->log_level.value, "debug");
	assert_int_equal(c->nportals, 2);
	assert_string_equal(c->portals[1].value, "[::1]:3260");
	assert_int_equal(c->nknobs, 2);
	assert_string_equal(c->knobs[0].name, "max_sessions");
	assert_int_equal(c->knobs[0].value, 16);
	assert_string_equal(c->chap.user.value, "alice");
	assert_string_equal(c->mutual_chap.secret.value, "target-secret-12");
	assert_null(c->discovery_chap.user.value);
	assert_int_equal(c->ntargets, 2);
	assert_string_equal(c->targets[0].name.value, "iqn.2026-11.org.spt:a");
	assert_int_equal(c->targets[0].nallow, 1);
	assert_int_equal(c->targets[0].nluns, 3);
	assert_string_equal(c->targets[0].luns[0].path.value, "/var/lib/spt/a.img");
	assert_string_equal(c->targets[0].luns[0].size.value, "1G");
	assert_int_equal(c->targets[0].luns[0].block_size, 4096);
	assert_true(c->targets[0].luns[0].read_only);
	assert_string_equal(c->targets[0].luns[1].ram.value, "256M");
	assert_string_equal(c->targets[0].luns[2].provider.value, "mem0");
	assert_int_equal(c->targets[1].luns[0].lun, 7);
	assert_string_equal(c->targets[1].luns[0].size.value, "1048576");
}

static void test_load_full(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	assert_int_equal(conf_load(write_file("full.conf", full), &c, err, sizeof(err)), 0);
	check_full(&c);
	assert_int_equal(c.targets[0].luns[1].line, 15);
	conf_free(&c);
}

static void test_save_round_trip(void **state)
{
	struct conf c, d;
	char err[CONF_ERR_MAX], path[512];
	struct stat st;

	assert_int_equal(conf_load(write_file("rt.conf", full), &c, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/saved.conf", dir);
	assert_int_equal(conf_save(&c, path, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(conf_load(path, &d, err, sizeof(err)), 0);
	check_full(&d);
	/* saving over an existing file replaces it */
	assert_int_equal(conf_save(&d, path, err, sizeof(err)), 0);
	conf_free(&c);
	conf_free(&d);
}

static void test_build_and_save(void **state)
{
	struct conf c, d;
	char err[CONF_ERR_MAX], path[512];
	struct conf_target *t;
	struct conf_lun *l;

	memset(&c, 0, sizeof(c));
	assert_int_equal(conf_add_portal(&c, "0.0.0.0:3260"), 0);
	assert_int_equal(conf_add_knob(&c, "max_sessions", 5000000000LL), 0);
	t = conf_add_target(&c, "iqn.2026-11.org.spt:x");
	assert_non_null(t);
	assert_int_equal(conf_add_allow(t, "iqn.2026-11.org.spt:i"), 0);
	l = conf_add_lun(t, 3);
	assert_non_null(l);
	assert_int_equal(conf_set_str(&l->ram, "64M"), 0);
	snprintf(path, sizeof(path), "%s/built.conf", dir);
	assert_int_equal(conf_save(&c, path, err, sizeof(err)), 0);
	assert_int_equal(conf_load(path, &d, err, sizeof(err)), 0);
	assert_int_equal(d.knobs[0].value, 5000000000LL);
	assert_int_equal(d.targets[0].luns[0].lun, 3);
	assert_string_equal(d.targets[0].luns[0].ram.value, "64M");
	assert_string_equal(d.targets[0].allow[0].value, "iqn.2026-11.org.spt:i");
	conf_free(&c);
	conf_free(&d);
}

/* Each broken file is refused with the line of the fault. */
static void expect_error(const char *text, const char *where, const char *what)
{
	struct conf c;
	char err[CONF_ERR_MAX];
	const char *path = write_file("bad.conf", text);

	assert_int_equal(conf_load(path, &c, err, sizeof(err)), -1);
	if (!strstr(err, where) || !strstr(err, what))
		fail_msg("error '%s' lacks '%s' or '%s'", err, where, what);
}

static void test_errors(void **state)
{
	expect_error("log_level = \"info\";\nbogus = 1;\n", "bad.conf:2:", "unknown setting 'bogus'");
	expect_error("log_level = \"info\";\nportals = ;\n", "bad.conf:2:", "syntax error");
	expect_error("portals = 3;\n", "bad.conf:1:", "list of strings");
	expect_error("targets = ( { luns = (); } );\n", "bad.conf:1:", "needs its name");
	expect_error("targets = ( { name = \"iqn.x:a\";\n luns = ( { lun = 0; path = \"/a\"; block_size = 1000; } ); } );\n",
		     "bad.conf:2:", "512 or 4096");
	expect_error("targets = ( { name = \"iqn.x:a\";\n luns = ( { lun = 0; } ); } );\n",
		     "bad.conf:2:", "exactly one of path, ram or provider");
	expect_error("targets = ( { name = \"iqn.x:a\";\n luns = ( { lun = 0; ram = \"1M\"; },\n { lun = 0; ram = \"2M\"; } ); } );\n",
		     "bad.conf:3:", "appears twice");
	expect_error("targets = ( { name = \"iqn.x:a\"; }, { name = \"IQN.X:A\"; } );\n", "bad.conf:1:",
		     "appears twice");
	expect_error("chap = { user = \"a\"; };\n", "bad.conf:1:", "needs both user and secret");
	expect_error("limits = { max_sessions = \"many\"; };\n", "bad.conf:1:", "whole number");
	expect_error("targets = ( { name = \"iqn.x:a\";\n luns = ( { lun = 0; provider = \"p\"; size = \"1G\"; } ); } );\n",
		     "bad.conf:2:", "provider decides");
}

static void test_missing_file(void **state)
{
	struct conf c;
	char err[CONF_ERR_MAX];

	assert_int_equal(conf_load("/nonexistent/spt.conf", &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/spt.conf"));
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_full),
		cmocka_unit_test(test_save_round_trip),
		cmocka_unit_test(test_build_and_save),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_missing_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
