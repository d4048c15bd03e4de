/*
 * log: leveled one-line messages to stderr (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "json.h"

static LogLevel threshold = LOG_INFO;
static LogFormat format = LOG_FORMAT_TEXT;

/* The status line (log_status): its owner and text; tty: -1 unknown. */
static const void *status_owner;
static char status_text[512];
static int tty = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(LogLevel level)
{
    threshold = level;
}

int log_level_parse(const char *name, LogLevel *level)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (LogLevel)i;
            return 0;
        }
    }
    return -1;
}

void log_set_format(LogFormat f)
{
    format = f;
}

/* Appends the JSON object of one line to b: the lone place the JSON format
 * is written.  Returns 0, or -1 when out of memory. */
static int json_line(Buf *b, const char *stamp, LogLevel level, const char *table,
                     const char *fields, const char *msg)
{
    if (buf_printf(b, "{\"time\":\"%s\",\"level\":\"%s\"", stamp, level_names[level]) < 0)
        return -1;
    if (table &&
        (buf_puts(b, ",\"table\":") < 0 || json_append_string(b, table, strlen(table)) < 0))
        return -1;
    if (buf_puts(b, ",\"message\":") < 0 || json_append_string(b, msg, strlen(msg)) < 0)
        return -1;
    if (fields && (buf_puts(b, ",\"fields\":") < 0 || buf_puts(b, fields) < 0))
        return -1;
    return buf_puts(b, "}\n");
}

/* Writes one line: the status line cleared and drawn again around it. */
static void emit(const char *line, size_t len)
{
    if (status_owner)
        fputs("\r\033[K", stderr);
    fwrite(line, 1, len, stderr);
    if (status_owner)
        fputs(status_text, stderr);
    fflush(stderr);
}

/* Formats and writes one line of level (at or above the threshold). */
__attribute__((format(printf, 4, 0))) static void
vlog(LogLevel level, const char *table, const char *fields, const char *fmt, va_list ap)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[40], date[32];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof(stamp), "%s.%03dZ", date, (int)(tv.tv_usec / 1000));
    char msg[2048];
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (m < 0)
        msg[0] = '\0';
    /* One buffer and one write, so lines from concurrent processes (the
     * crash loop, the tools) do not interleave mid-line. */
    if (format == LOG_FORMAT_JSON) {
        Buf b;
        buf_init(&b, sizeof(msg) * 8);
        if (json_line(&b, stamp, level, table, fields, msg) == 0)
            emit(buf_str(&b), b.len);
        buf_free(&b);
        return;
    }
    char line[2400];
    int n = snprintf(line, sizeof(line), "%s %-5s %s%s%s", stamp, level_names[level],
                     table ? table : "", table ? ": " : "", msg);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    emit(line, len);
}

void log_msg(LogLevel level, const char *fmt, ...)
{
    if (level < threshold)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, NULL, fmt, ap);
    va_end(ap);
}

void log_table(LogLevel level, const char *table, const char *fields, const char *fmt, ...)
{
    if (level < threshold)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, table, fields, fmt, ap);
    va_end(ap);
}

bool log_status(const void *owner, const char *text)
{
    if (tty < 0)
        tty = isatty(STDERR_FILENO) == 1;
    if (format == LOG_FORMAT_JSON)
        return false;
    if (!tty || (status_owner && status_owner != owner))
        return false;
    if (!text) {
        if (status_owner)
            fputc('\n', stderr);
        status_owner = NULL;
        status_text[0] = '\0';
        fflush(stderr);
        return true;
    }
    status_owner = owner;
    snprintf(status_text, sizeof(status_text), "%s", text);
    fprintf(stderr, "\r%s\033[K", status_text);
    fflush(stderr);
    return true;
}

int err_printf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
