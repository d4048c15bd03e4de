/*
 * sink: what the engine needs of any target (a search index, a topic, a
 * file), and nothing of how a target does it.  One driver per target
 * implements SinkInterface in a file of its own (sink_es.c for
 * Elasticsearch/OpenSearch); the engine holds a Sink and calls the
 * functions below, never a driver's.
 *
 * The contract, which the engine's correctness rests on (docs/design.md,
 * "The sink contract"):
 *
 *  - A change is (key, txid, version, deleted, the row's JSON).  The
 *    driver writes it so that the target keeps, per key, the change with
 *    the highest version: an older or equal version arriving later must
 *    not win.  Replays are then harmless.
 *  - Requests are asynchronous.  sink_send starts one and returns; the
 *    driver moves it along inside the event loop it was given and, once
 *    the target answered, calls the engine's SinkDoneFn with the outcome
 *    of the request and, when the request got an answer, one SinkItem per
 *    change in the order they were added.
 *  - Every change ends in exactly one of four outcomes: applied, already
 *    applied (the target holds this or a newer version: as good as
 *    applied), retry later (busy, unreachable, a transient error), or
 *    rejected for good (with the target's reason).  A request refused as a
 *    whole is SINK_RETRY, SINK_SPLIT or SINK_FAIL for all its changes.
 *  - Requests are capped in bytes by the driver (sink_add says when one is
 *    full).  A request refused for its content (SINK_SPLIT) is split by
 *    the engine until the change at fault is alone; a change refused
 *    alone, or one that fits in no request, is rejected for good.
 *  - Nothing is acknowledged before the target made it durable as far as
 *    the target promises (an index's translog, a broker's acks), since the
 *    engine persists its cursor on that word; a target that does not
 *    (SinkTarget.durable false: an index with an async translog, a file
 *    before its fsync) is flushed before each cursor save.
 */
#ifndef TXIDSYNC_SINK_H
#define TXIDSYNC_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct Loop Loop;

/* What a request (or a preparation step) came to as a whole. */
typedef enum SinkResult {
    SINK_OK = 0,    /* answered; look at each item */
    SINK_RETRY = 1, /* busy, unreachable or timed out: send it all again later */
    SINK_SPLIT = 2, /* refused for what it holds (too large, malformed): some change
                     * of it is at fault; send it in smaller parts */
    SINK_FAIL = -1, /* refused for good, or the answer is not understood */
} SinkResult;

/* What sink_add did with a change. */
enum {
    SINK_ADD_OK = 0,    /* added */
    SINK_ADD_FULL = 1,  /* not added: the request is full (by bytes); send it and
                         * add the change to the next one */
    SINK_ADD_FAIL = -1, /* not added: the change cannot be written at all (not a
                         * JSON object, larger than any request); err says why */
};

/* The outcome of one change of an answered request. */
typedef enum SinkOutcome {
    SINK_APPLIED = 0,     /* written (a delete of an absent key included) */
    SINK_ALREADY_APPLIED, /* the target holds this or a newer version */
    SINK_RETRY_LATER,     /* transient for this change: send it again */
    SINK_REJECTED,        /* refused for good; reason says why */
} SinkOutcome;

typedef struct SinkItem {
    SinkOutcome outcome;
    char reason[512]; /* "type: reason" unless applied */
} SinkItem;

/* One change to write.  Everything is borrowed for the call. */
typedef struct SinkChange {
    const char *key; /* the key's canonical text (see keys.h) */
    uint64_t txid;
    uint64_t version; /* strictly increasing per key */
    bool deleted;     /* write a delete (a tombstone) */
    const char *row;  /* the row as one JSON object; NULL when deleted */
    size_t row_len;
} SinkChange;

/* A target as inspect found it. */
typedef struct SinkTarget {
    bool exists;
    long long documents;  /* how many it holds; -1 when it cannot tell */
    char owner[512];      /* the table that feeds it, as recorded; "" for none */
    bool durable;         /* what it acknowledges survives its own crash */
    char durability[128]; /* when not durable by the user's setting: why, for a
                           * warning; "" when the driver defers by design */
} SinkTarget;

/* The columns of a table's documents, for a schema event.  Borrowed. */
typedef struct SinkSchema {
    const char *const *columns; /* names, in document order */
    const char *const *types;   /* Postgres types, as format_type spells them */
    const bool *nullable;
    size_t n;
    const char *const *key; /* the primary key's columns, in key order */
    size_t n_key;
} SinkSchema;

/* A request being built, then in flight; owned by the driver. */
typedef struct SinkRequest SinkRequest;

/* Called from inside the loop once a request sent with tag finished.
 * result: SINK_OK (items[0..n-1] filled), SINK_RETRY or SINK_FAIL (err
 * says why; items untouched).  err is borrowed for the call.  The function
 * may send further requests but must not free the sink. */
typedef void (*SinkDoneFn)(void *owner, void *tag, SinkResult result, const char *err);

/* What a driver implements.  drv is the driver's own state. */
typedef struct SinkInterface {
    const char *name; /* "opensearch", ... */
    /* Sets the function the driver calls when a request finished. */
    void (*bind)(void *drv, SinkDoneFn on_done, void *owner);
    /* Looks at the target at start, before anything is written: whether
     * it exists, what it holds, who feeds it, whether it keeps what it
     * acknowledges.  May block.  SINK_RETRY when busy or unreachable. */
    SinkResult (*inspect)(void *drv, SinkTarget *t, char *err, size_t errlen);
    /* Makes the target ready (creates the index, topic or file) and
     * records owner (the table, "database/schema.table") as the one that
     * feeds it, in the target and in each document.  Called at start, may
     * block.  SINK_RETRY when busy or unreachable. */
    SinkResult (*prepare)(void *drv, const char *owner, char *err, size_t errlen);
    /* Deletes the target and what it holds (txidsync reset); *existed
     * tells whether there was one.  May block. */
    SinkResult (*drop)(void *drv, bool *existed, char *err, size_t errlen);
    /* Records the table's columns in the stream, ahead of every change
     * added after this call (a schema event), for sinks whose consumers
     * build typed targets; NULL for sinks that have no use for it.  Called
     * at start and whenever the columns change; may block.  SINK_RETRY
     * when it cannot be written now. */
    SinkResult (*schema)(void *drv, const SinkSchema *s, char *err, size_t errlen);
    /* Makes every write acknowledged so far durable, for a target that
     * does not by itself (SinkTarget.durable false): called before each
     * cursor save.  May block. */
    SinkResult (*flush)(void *drv, char *err, size_t errlen);
    /* Checks, at start, that rows of these columns can be written (none of
     * them takes the place of the driver's own metadata).  Returns 0, or
     * -1 with err filled.  NULL: doc_check_columns, for drivers that
     * write doc.h's documents. */
    int (*check_columns)(void *drv, const char *const *columns, size_t n, char *err, size_t errlen);
    /* A new, empty request, owned by the driver (freed with it); NULL when
     * out of memory. */
    SinkRequest *(*request_new)(void *drv);
    /* Empties rq for reuse (it must not be in flight). */
    void (*request_reset)(void *drv, SinkRequest *rq);
    /* Appends one change.  Returns SINK_ADD_OK, SINK_ADD_FULL (only when rq
     * holds a change already: a change too large for an empty request is
     * SINK_ADD_FAIL), or SINK_ADD_FAIL with err filled. */
    int (*add)(void *drv, SinkRequest *rq, const SinkChange *ch, char *err, size_t errlen);
    /* Whether another request may go now. */
    bool (*has_room)(void *drv);
    /* How many requests are in flight. */
    size_t (*in_flight)(void *drv);
    /* Starts rq (borrowed with items until the done call).  Returns 0, or
     * -1 with err filled when it cannot even start. */
    int (*send)(void *drv, SinkRequest *rq, SinkItem *items, void *tag, char *err, size_t errlen);
    /* Records a change rejected for good, with the reason, where an
     * operator finds it (a dead-letter index, a file); may block briefly.
     * SINK_RETRY when the place is unreachable now. */
    SinkResult (*dead_letter)(void *drv, const SinkChange *ch, const char *reason, char *err,
                              size_t errlen);
    /* Where the sink writes, for messages, without credentials. */
    const char *(*describe)(void *drv);
    /* Abandons requests in flight (no done call), then frees every request
     * it made and drv. */
    void (*free)(void *drv);
} SinkInterface;

typedef struct Sink Sink;

/* Wraps a driver's state; the sink owns drv from now on (iface->free frees
 * it with the sink).  Returns NULL when out of memory (drv is freed). */
Sink *sink_new(const SinkInterface *iface, void *drv);

/* Frees the sink and its driver; NULL is ignored. */
void sink_free(Sink *s);

/* Sets where the outcomes of requests go: on_done(owner, ...), called
 * from inside the loop.  The engine binds itself before its first send. */
void sink_bind(Sink *s, SinkDoneFn on_done, void *owner);

SinkResult sink_inspect(Sink *s, SinkTarget *t, char *err, size_t errlen)
    __attribute__((warn_unused_result));
SinkResult sink_prepare(Sink *s, const char *owner, char *err, size_t errlen)
    __attribute__((warn_unused_result));
SinkResult sink_drop(Sink *s, bool *existed, char *err, size_t errlen)
    __attribute__((warn_unused_result));
SinkResult sink_flush(Sink *s, char *err, size_t errlen) __attribute__((warn_unused_result));
SinkResult sink_schema(Sink *s, const SinkSchema *schema, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int sink_check_columns(Sink *s, const char *const *columns, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* A new request, freed with the sink; NULL when out of memory. */
SinkRequest *sink_request_new(Sink *s);
void sink_request_reset(Sink *s, SinkRequest *rq);
int sink_add(Sink *s, SinkRequest *rq, const SinkChange *ch, char *err, size_t errlen)
    __attribute__((warn_unused_result));
bool sink_has_room(Sink *s);
size_t sink_in_flight(Sink *s);
int sink_send(Sink *s, SinkRequest *rq, SinkItem *items, void *tag, char *err, size_t errlen)
    __attribute__((warn_unused_result));
SinkResult sink_dead_letter(Sink *s, const SinkChange *ch, const char *reason, char *err,
                            size_t errlen) __attribute__((warn_unused_result));
const char *sink_describe(Sink *s);

/* For drivers of change streams: puts into out (reset first) the event of
 * ch, the document with "op": "upsert", or only the metadata member with
 * "op": "delete" (doc.h).  Returns 0, or -1 as doc_build. */
int sink_event(Buf *out, const SinkChange *ch, const char *owner)
    __attribute__((warn_unused_result));

/* The most bytes of a rejected change's document a dead letter keeps. */
#define SINK_DEAD_LETTER_DOC_MAX ((size_t)64 << 10)

/* For drivers: puts into out (reset first) the dead letter of change ch,
 * rejected for reason, as one JSON object: {where_name: where, "table":
 * owner, "key", "txid", "version", "error", "document" (the document as
 * text, cut to SINK_DEAD_LETTER_DOC_MAX bytes between two characters; ""
 * for a delete), "document_bytes", "document_truncated"}.  doc is scratch
 * space for the document.  Returns 0, or -1 when out of memory. */
int sink_dead_letter_record(Buf *out, Buf *doc, const char *where_name, const char *where,
                            const char *owner, const SinkChange *ch, const char *reason)
    __attribute__((warn_unused_result));

/* For drivers: a zeroed request of size bytes (the driver's struct
 * SinkRequest), appended to the driver's list of *n; NULL when out of
 * memory. */
void *sink_request_track(SinkRequest ***list, size_t *n, size_t size);

#endif
