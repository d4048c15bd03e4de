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

static LogLevel threshold = LOG_INFO;

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

void log_msg(LogLevel level, const char *fmt, ...)
{
    if (level < threshold)
        return;

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    /* One buffer and one write, so lines from concurrent processes (the
     * crash loop, the tools) do not interleave mid-line. */
    char line[2048];
    int n = snprintf(line, sizeof(line), "%s.%03dZ %-5s ", stamp, (int)(tv.tv_usec / 1000),
                     level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    if (status_owner)
        fputs("\r\033[K", stderr);
    fwrite(line, 1, len, stderr);
    if (status_owner)
        fputs(status_text, stderr);
    fflush(stderr);
}

bool log_status(const void *owner, const char *text)
{
    if (tty < 0)
        tty = isatty(STDERR_FILENO) == 1;
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
