/*
 * refresh: txidsync refresh, the refresh of one table driven to its end
 * (docs/design.md, "Refresh").  Each step is one short transaction that
 * gives the next chunk of rows, in key order, a new version and txid
 * (sql/txidsync.sql: txidsync.refresh_step), so that every syncer of the
 * table sends their current state again through its normal stream.  The
 * progress is recorded with each step: a refresh stopped anywhere (a
 * signal, a crash) resumes after its last step when started again with
 * the same condition.
 *
 * txidsync track runs the same loop for tracking a big table online: the
 * triggers first, under a short lock, then the state of the existing
 * rows in chunks (txidsync.track_step; docs/design.md, "Tracking a big
 * table online").
 */
#ifndef TXIDSYNC_REFRESH_H
#define TXIDSYNC_REFRESH_H

#include <stdbool.h>

typedef struct RefreshConfig {
    const char *name;     /* the table's name in messages */
    const char *conninfo; /* NULL or "": libpq's PG* environment */
    const char *table;
    const char *where;          /* an SQL condition on the row t; NULL or "": every key */
    long chunk;                 /* rows a step */
    int lock_wait_ms;           /* how long a step waits for a row another transaction holds */
    long long stats_interval_s; /* progress lines in logs; on a terminal, a live line */
    bool background;            /* only start the refresh: the running syncers step it */
    bool track;    /* instead: track the table online (txidsync.track_begin, track_step) */
    bool notify;   /* with track: writers NOTIFY */
    bool log_mode; /* with track: the log tracking mode (docs/design.md, "Tracking modes") */
    bool (*stop)(void *stop_ctx); /* asked between steps: stop now (resumable) */
    void *stop_ctx;
} RefreshConfig;

/* Runs the refresh to its end (with background, only starts it).
 * Returns 0 when it finished (was started), 1 when stop
 * said to stop (it resumes when started again), -1 when it failed
 * (printed). */
int refresh_run(const RefreshConfig *cfg);

#endif
