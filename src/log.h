/*
 * log: leveled one-line messages to stderr, and the error buffers through
 * which modules hand a message to the caller who decides to print it.
 *
 * Messages are lowercase, without a trailing period, and never carry a
 * password or a full connection string (callers pass names, hosts and
 * ports, not conninfo).  Each line: "2026-11-22T00:32:33.123Z info  text",
 * or "... info  TABLE: text" for a table's message; in the JSON format
 * one object a line: {"time", "level", "table" (when there is one),
 * "message", "fields" (when the caller gives some)}.
 * The module holds only the level threshold; it knows nothing of the
 * application.
 */
#ifndef TXIDSYNC_LOG_H
#define TXIDSYNC_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum LogLevel { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } LogLevel;

/* Sets the lowest level printed (LOG_INFO by default). */
void log_set_level(LogLevel level);

/* Parses "debug", "info", "warn" or "error" into *level.
 * Returns 0, or -1 when the name is none of those. */
int log_level_parse(const char *name, LogLevel *level);

typedef enum LogFormat { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 } LogFormat;

/* Sets the format of the lines (text by default).  JSON lines never draw
 * the status line (log_status then returns false). */
void log_set_format(LogFormat format);

/* Prints one line at the given level when it is at or above the threshold. */
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same for a message of table (NULL: none); fields, when not NULL, is
 * a JSON object of figures for the JSON format (the text format prints
 * only the message). */
void log_table(LogLevel level, const char *table, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/*
 * The status line: on a terminal, one line of progress below the log
 * lines, rewritten in place ("\r...\033[K"); every log line first clears
 * it and then draws it again under itself.  One owner at a time (an
 * engine, a refresh).  log_status draws text for owner and returns true,
 * or returns false when stderr is not a terminal or another owner holds
 * the line (the caller then logs lines instead); text NULL gives the line
 * up (the last text stays on screen as a line of its own).
 */
bool log_status(const void *owner, const char *text);

/* Formats a message into the caller's error buffer err (errlen bytes;
 * NULL or 0 writes nothing) and returns -1, so that failure paths can
 * read "return err_printf(err, errlen, ...)". */
int err_printf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
