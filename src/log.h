/*
 * log.h -- leveled logging to stderr, one line per event.
 *
 * The level is set once at start-up (log_set_level) and only read afterwards,
 * so logging needs no lock: each line is written with a single fprintf, which
 * stdio makes atomic with respect to other threads.
 */
#ifndef LKV_LOG_H
#define LKV_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the process-wide threshold and the program name printed on each line. */
void log_init(const char *progname, enum log_level level);

/* Parses "error", "warn", "info" or "debug". Returns 0, or -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
