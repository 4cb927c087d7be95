/*
 * <syslog.h> comes first and its LOG_ERR, LOG_INFO and LOG_DEBUG macros
 * are captured as syslog priorities, then dropped, so that log.h's enum of
 * the same names compiles. The priorities are also the sd-daemon(3) "<N>"
 * prefixes: both use the syslog numbering.
 */
#include <syslog.h>

static const int log_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

#undef LOG_ERR
#undef LOG_INFO
#undef LOG_DEBUG

#include "util/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One message, formatted before it is written so that it leaves in a
 * single write: lines of several threads (and of the journal's stream
 * reader) never interleave. Longer messages are cut, marked with "...". */
#define LOG_LINE_MAX 2048

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const char *const target_names[] = { "stderr", "syslog" };

_Static_assert(sizeof(log_priorities) / sizeof(log_priorities[0]) == LOG_DEBUG + 1,
	       "a syslog priority per level");

static enum log_target log_current = LOG_TARGET_STDERR;
static bool log_journal;	/* stderr is the journal: "<N>" prefixes */

int log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOG_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_parse_target(const char *s, enum log_target *out)
{
	for (int i = 0; i <= LOG_TARGET_SYSLOG; i++) {
		if (strcmp(s, target_names[i]) == 0) {
			*out = (enum log_target)i;
			return 0;
		}
	}
	return -1;
}

/* systemd.exec(5): JOURNAL_STREAM is "DEVICE:INODE" of the stream the
 * journal gave stdout/stderr; it is inherited by children whose stderr may
 * point elsewhere, so it counts only if stderr is still that stream. */
static bool log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char tail;

	if (!env || sscanf(env, "%ju:%ju%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void log_open(enum log_target target)
{
	log_close();
	log_current = target;
	if (target == LOG_TARGET_SYSLOG)
		openlog("sptd", LOG_PID, LOG_DAEMON);
	else
		log_journal = log_stderr_is_journal();
}

void log_close(void)
{
	if (log_current == LOG_TARGET_SYSLOG)
		closelog();
	log_current = LOG_TARGET_STDERR;
	log_journal = false;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	size_t len = 0;
	va_list ap;
	int n;

	if (lvl > log_threshold)
		return;
	if (lvl < LOG_ERR || lvl > LOG_DEBUG)
		lvl = LOG_ERR;
	/* syslog and the journal stamp and label each message themselves */
	if (log_current == LOG_TARGET_STDERR && log_journal) {
		n = snprintf(line, sizeof(line), "<%d>", log_priorities[lvl]);
		len = (size_t)n;
	} else if (log_current == LOG_TARGET_STDERR) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s.%03ldZ sptd %s: ", stamp, ts.tv_nsec / 1000000,
			     level_names[lvl]);
		len = (size_t)n;
	}
	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	len += (size_t)n;
	if (len >= sizeof(line)) {
		/* cut: "..." and room for the final '\n' (or NUL for syslog) */
		len = sizeof(line) - 4;
		memcpy(line + len, "...", 3);
		len += 3;
	}
	if (log_current == LOG_TARGET_SYSLOG) {
		line[len] = '\0';
		syslog(log_priorities[lvl], "%s", line);
		return;
	}
	line[len++] = '\n';
	flockfile(stderr);
	fwrite(line, 1, len, stderr);
	funlockfile(stderr);
}
