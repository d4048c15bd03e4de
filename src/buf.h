/*
 * buf: one growing byte buffer with a hard maximum, always NUL-terminated.
 *
 * Used for HTTP bodies and JSON text.  The maximum turns a runaway response
 * or document into an error instead of unbounded memory.
 */
#ifndef TXIDSYNC_BUF_H
#define TXIDSYNC_BUF_H

#include <stddef.h>

typedef struct Buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* appends beyond this many bytes fail */
} Buf;

/* Initialises an empty buffer that may grow to max bytes. */
void buf_init(Buf *b, size_t max);

/* Releases the memory and leaves the buffer empty (still usable). */
void buf_free(Buf *b);

/* Empties the buffer and keeps its memory for reuse. */
void buf_reset(Buf *b);

/* Appends len bytes.  Returns 0, or -1 (buffer unchanged) when the
 * maximum would be exceeded or memory runs out. */
int buf_append(Buf *b, const void *data, size_t len) __attribute__((warn_unused_result));

/* Appends a NUL-terminated string; as buf_append. */
int buf_puts(Buf *b, const char *s) __attribute__((warn_unused_result));

/* Appends printf-formatted text; as buf_append. */
int buf_printf(Buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), warn_unused_result));

/* Appends the whole file at path.  Returns 0, or -1 with errno set (the
 * file cannot be read, or is larger than the maximum: EFBIG). */
int buf_read_file(Buf *b, const char *path) __attribute__((warn_unused_result));

/* The contents as a string ("" when empty); borrowed. */
const char *buf_str(const Buf *b);

#endif
