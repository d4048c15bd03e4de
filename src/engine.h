/*
 * engine: the sync of one table, driven by the event loop.
 *
 * An engine reads batches of the table's changes under the snapshot
 * cursor (pg, cursor), hands them to its sink as asynchronous requests,
 * and persists the acknowledged cursor in its store once every batch it
 * covers is acknowledged (docs/design.md, "The engine").  It owns its
 * Postgres connection, its sink and its store; the process may run many
 * engines in one loop, and none waits for another: every wait is a watch
 * or a timer of the loop, and every failure (a lost connection, a busy or
 * refusing sink, a failing query) is retried with a backoff of the
 * engine's own.
 *
 * It reads no process-wide state: the daemon tells it to stop or to
 * report.  It names no sink driver; the sink contract (sink.h) is all it
 * relies on.
 */
#ifndef TXIDSYNC_ENGINE_H
#define TXIDSYNC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "loop.h"
#include "metrics.h"
#include "sink.h"
#include "store.h"

typedef struct EngineConfig {
    const char *name;     /* for messages: the table as configured */
    const char *conninfo; /* NULL or "": libpq's PG* environment */
    const char *table;    /* the tracked table, any spelling regclass takes */
    const char *target;   /* what of the sink it writes to, for messages and the lock (an
                           * index name; "" when the sink names it itself, a file) */
    size_t batch_size;
    size_t batch_max_bytes; /* fewer rows per batch when batch_size of them would be larger; 0: no
                               limit */
    size_t max_in_flight;   /* requests the sink may have in flight (slots = this + 1) */
    bool once;              /* catch up, save the cursor, then stop */
    bool dead_letter;       /* a rejected change goes to sink_dead_letter; else the table stops */
    long poll_interval_ms;
    long stats_interval_s;       /* 0: no periodic stats lines */
    const char *latency_field;   /* NULL or "": no latency measurement */
    long backoff_max_ms;         /* longest wait between two retries; 0: 30 s */
    long save_every_ms;          /* save the moving cursor at most this often; 0: 1 s */
    const char *reset_hint;      /* the command that starts this table over, for messages */
    const char *columns;         /* NULL or "": every column in the documents; else only these */
    const char *exclude_columns; /* NULL or "": none; else every column but these */
    bool consumer;               /* register the stored cursor as a consumer of the table */
    long consumer_every_ms;      /* register it this often; 0: 10 s */
    long prune_every_s;          /* call txidsync.prune this often; 0: never (still a consumer) */
    long prune_margin_s;         /* prune nothing younger than this */
    long consumer_timeout_s;     /* a prune drops consumers not seen for this long */
} EngineConfig;

typedef struct Engine Engine;

/* Where an engine is. */
typedef enum EngineState {
    ENGINE_NEW,     /* created, not started */
    ENGINE_RUNNING, /* syncing (or waiting out a backoff) */
    ENGINE_STOPPED, /* stopped (engine_stop or --once): the cursor is saved */
    ENGINE_FAILED,  /* stopped for good on an error it printed */
} EngineState;

/*
 * Creates the engine of one table in loop (borrowed), taking over sink and
 * store (freed with the engine, also on failure).  Strings of cfg are
 * borrowed and must outlive the engine.  Returns NULL with err filled.
 */
Engine *engine_new(const EngineConfig *cfg, Loop *loop, Sink *sink, Store *store, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

/* Frees the engine, abandoning whatever is in flight; NULL is ignored. */
void engine_free(Engine *e);

/*
 * Connects and checks everything that can be checked before anything is
 * written anywhere: the server is a primary, the table is tracked and its
 * columns can be written, no other syncer runs on this table and target
 * (a Postgres advisory lock, held while the engine lives), the stored
 * cursor reads back and belongs to this table, the transaction ids are
 * not behind it.  Loads the cursor.  May block briefly (a busy store is waited for up to a
 * minute).  Returns 0, or -1 after printing why (the engine is then
 * ENGINE_FAILED).
 */
int engine_open(Engine *e) __attribute__((warn_unused_result));

/*
 * After engine_open: looks at the sink's target (refused when another
 * table feeds it, or when a stored cursor says rows were written there
 * and it is gone or empty), prepares it and the store (creates the index,
 * waiting up to a minute for a busy sink), then the engine runs in the
 * loop.  Returns 0, or -1 after printing why (ENGINE_FAILED).
 */
int engine_start(Engine *e) __attribute__((warn_unused_result));

/*
 * Instead of engine_open: connects, checks the table, takes its lock
 * (no syncer may run on it meanwhile), then deletes the sink's target
 * and the stored cursor, so that the next start copies the table afresh.
 * Says what it did.  Returns 0 (the engine is then ENGINE_STOPPED), or -1
 * after printing why (ENGINE_FAILED).
 */
int engine_reset(Engine *e) __attribute__((warn_unused_result));

/* Asks the engine to stop: requests in flight finish, the cursor they
 * allow is saved, then the engine is ENGINE_STOPPED. */
void engine_stop(Engine *e);

/* Prints the stats line and the latency so far, then counts latency afresh. */
void engine_report(Engine *e);

EngineState engine_state(const Engine *e);

/* The engine's figures so far, for the metrics registry. */
void engine_metrics(const Engine *e, TableMetrics *out);

#endif
