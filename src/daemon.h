/*
 * daemon: the process.  Runs one engine per configured table in one event
 * loop, creates each table's sink and cursor store from its settings (the
 * only place that names the drivers), owns the signals and tells the
 * engines to stop or report, and turns their ends into the exit code.
 */
#ifndef TXIDSYNC_DAEMON_H
#define TXIDSYNC_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "es.h"

typedef enum DaemonSink {
    DAEMON_SINK_OPENSEARCH = 0,
    DAEMON_SINK_NDJSON = 1,
    DAEMON_SINK_KAFKA = 2
} DaemonSink;

typedef enum DaemonOnReject {
    DAEMON_REJECT_STOP = 0,
    DAEMON_REJECT_DEAD_LETTER = 1
} DaemonOnReject;

/* The settings of one table (flags, environment, or a config section). */
typedef struct TableConfig {
    const char *name;     /* for messages: the section, or --table */
    const char *conninfo; /* NULL or "": libpq's PG* environment */
    int sink;             /* DaemonSink */
    const char *es_url;
    EsAuth es_auth;          /* the sink's credentials and TLS options */
    const char *ndjson_file; /* NULL or "": the table's name with .ndjson */
    long long ndjson_rotate_bytes;
    const char *kafka_brokers;
    const char *kafka_topic; /* NULL or "": the table's name, as for index */
    long long kafka_partitions;
    const char *table;
    const char *index; /* NULL or "": the table's name without schema */
    long long batch_size;
    long long batch_max_bytes;
    long long bulk_concurrency;
    long long bulk_max_bytes;
    int on_reject; /* DaemonOnReject */
    const char *dead_letter_index;
    const char *cursor_file; /* NULL or "": the sink's state index */
    const char *state_index;
    long long replicas;
    long long poll_interval_ms;
    const char *latency_field;
    const char *columns;         /* NULL or "": all */
    const char *exclude_columns; /* NULL or "": none */
    const char *mapping;         /* NULL or "": txidsync's own index body; else a file */
    char default_index[256];     /* what index points at when none was given */
    char default_ndjson[300];    /* what ndjson_file points at when none was given */
    char default_topic[256];     /* what kafka_topic points at when none was given */
} TableConfig;

typedef struct DaemonConfig {
    TableConfig *tables; /* borrowed */
    size_t n_tables;
    bool once;
    long long stats_interval_s;
    double crash_probability;
    long long crash_seed;         /* 0: from time and pid */
    bool reset;                   /* txidsync reset: start every table over, then exit */
    bool refresh;                 /* txidsync refresh: refresh every table in turn, then exit */
    const char *refresh_where;    /* its condition on the row t; "" or NULL: every key */
    bool refresh_background;      /* only start it: the running syncers step it */
    long long refresh_chunk;      /* its rows a step (and track's); 0: the job's default */
    bool track;                   /* txidsync track: track every table online in turn, then exit */
    bool track_notify;            /* its tables' writers NOTIFY */
    int track_log;                /* 1: track in the log mode, 0: the side mode */
    bool dry_run;                 /* events to standard output, no cursor loaded or saved, --once */
    const char *config_path;      /* the --config file, for messages; NULL: none */
    const char *metrics_listen;   /* HOST:PORT of /metrics, /healthz, /readyz; NULL or "": none */
    double ready_max_lag_s;       /* /readyz: the most lag of a ready table */
    long long prune_every_s;      /* txidsync.prune of each table this often; 0: never */
    long long prune_margin_s;     /* nothing younger than this is pruned */
    long long consumer_timeout_s; /* a prune drops consumers not seen for this long */
} DaemonConfig;

/* Exit codes of daemon_run, also the program's. */
enum {
    DAEMON_EXIT_OK = 0,     /* every table caught up (--once) or stopped by a signal */
    DAEMON_EXIT_FAILED = 1, /* a table failed (printed) */
    DAEMON_EXIT_USAGE = 2,  /* bad settings */
};

/*
 * Checks the table set (names, indices, cursor files that two tables
 * would share), starts every table (a table that cannot start fails the
 * whole start: exit 1 before anything is written elsewhere), then runs
 * until every table stopped: --once caught up, a signal, or a table's
 * failure, which leaves the others running.  With reset, starts every
 * table over instead (engine_reset) and returns; with refresh, refreshes
 * every table in turn (refresh.h) and returns.  Returns an exit code
 * above.
 */
int daemon_run(const DaemonConfig *cfg);

/* Fills in the index of each table that has none (its name, with the
 * schema unless public, quotes removed, in lower case: sales.orders,
 * orders for public.orders) and checks that no two tables share a table, an index on one
 * sink, a state document or a cursor file.  Returns 0, or -1 with err
 * filled. */
int daemon_check_tables(TableConfig *tables, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
