/*
 * Leveled logging to stderr (the default; with the sd-daemon(3) priority
 * prefixes when stderr is the systemd journal) or to syslog.
 */
#ifndef UTIL_LOG_H
#define UTIL_LOG_H

/* Note: the names clash with <syslog.h>'s macros; log.c is the only file
 * that needs both and keeps them apart. */
enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

enum log_target {
	LOG_TARGET_STDERR = 0,	/* timestamped lines, or <N> prefixed under the journal */
	LOG_TARGET_SYSLOG = 1,	/* syslog(3): ident "sptd", LOG_PID, facility LOG_DAEMON */
};

extern enum log_level log_threshold;

int log_parse_level(const char *s, enum log_level *out);
/* "stderr" or "syslog". 0, or -1 for anything else. */
int log_parse_target(const char *s, enum log_target *out);

/*
 * Chooses where messages go from now on; call before other threads log.
 * For stderr it also finds out whether stderr is the journal's stream
 * (systemd.exec(5): $JOURNAL_STREAM names its device and inode), in which
 * case lines carry the priority as a "<N>" prefix and no timestamp.
 */
void log_open(enum log_target target);
/* Closes the syslog connection, if any; messages go to stderr afterwards. */
void log_close(void);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) do { if (log_threshold >= LOG_INFO) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_threshold >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
