/*
 * sync: the daemon's loop.  Drives pg (read batches under the snapshot
 * cursor), es (bulk writes with external versions), store (persist the
 * cursor after the sink acknowledged the batch it follows) and crash
 * (injection points), and owns retries, reconnects, signals and stats.
 */
#ifndef TXIDSYNC_SYNC_H
#define TXIDSYNC_SYNC_H

#include <stdbool.h>

typedef enum SyncOnReject { SYNC_REJECT_STOP = 0, SYNC_REJECT_DEAD_LETTER = 1 } SyncOnReject;

typedef struct SyncConfig {
    const char *conninfo; /* NULL or "": libpq's PG* environment */
    const char *es_url;
    const char *table;
    const char *index; /* NULL: the table's name */
    long long batch_size;
    long long bulk_concurrency; /* _bulk requests in flight at once */
    bool once;                  /* catch up, then exit 0 */
    double crash_probability;
    long long crash_seed; /* 0: from time and pid */
    int on_reject;        /* SyncOnReject */
    const char *dead_letter_index;
    const char *cursor_file; /* NULL or "": the state index of the sink */
    const char *state_index;
    long long replicas;
    long long poll_interval_ms; /* longest wait between two polls when idle */
    long long stats_interval_s; /* 0: no stats lines */
    const char *latency_field;  /* NULL or "": no latency measurement */
} SyncConfig;

/* Exit codes of sync_run, also the daemon's. */
enum {
    SYNC_EXIT_OK = 0,     /* caught up (--once) or stopped by a signal */
    SYNC_EXIT_FAILED = 1, /* a fatal error, printed before returning */
    SYNC_EXIT_USAGE = 2,  /* bad settings */
};

/* Runs the daemon until --once is satisfied, a signal arrives, or a fatal
 * error (printed).  Returns one of the exit codes above. */
int sync_run(const SyncConfig *cfg);

#endif
