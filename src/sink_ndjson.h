/*
 * sink_ndjson: a change stream in files, behind the sink interface.
 *
 * Each change is one line of JSON appended to the file: the row's
 * document (doc.h) with "op": "upsert", or for a delete only the
 * metadata member with "op": "delete".  A request is written with one
 * write(); the file is fsynced when the engine flushes the sink, before
 * each cursor save, so the cursor never covers a line a crash could lose
 * (one fsync per save, not per request); a line cut short by a crash is
 * cut off at the next start.  With
 * max_file_bytes, a file that reached that size is renamed PATH.1, PATH.2,
 * ... (oldest first) and a new PATH begun: replaying PATH.1, PATH.2, ...,
 * PATH in that order gives every event in the order written.  A consumer
 * that keeps the highest version per key ends with the table.
 *
 * The path "-" writes to standard output instead (no fsync, no rotation:
 * a dry run shows what would be sent).
 */
#ifndef TXIDSYNC_SINK_NDJSON_H
#define TXIDSYNC_SINK_NDJSON_H

#include <stddef.h>

#include "sink.h"

typedef struct SinkNdjsonConfig {
    const char *path;      /* the file written, or "-" for standard output */
    size_t max_bytes;      /* the most bytes of one request */
    size_t max_file_bytes; /* rotate once a file has this many bytes; 0: never */
} SinkNdjsonConfig;

/* Creates the driver in loop (borrowed; it must outlive the sink), which
 * it uses to call back from.  Strings of cfg are copied.  Returns the
 * sink, or NULL with err filled. */
Sink *sink_ndjson_new(const SinkNdjsonConfig *cfg, Loop *loop, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
