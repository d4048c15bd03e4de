/*
 * metrics: what the process exposes for scraping and probes.  Each
 * table's figures are published into a registry by the event loop's
 * thread (metrics_publish); the HTTP thread (http_status.c) renders them
 * in the Prometheus text exposition format (metrics_render) and answers
 * the health and readiness probes (metrics_health, metrics_ready).
 *
 * The loop never waits for a scrape: publishing takes the registry's lock
 * only when it is free, and skips a turn otherwise (the next one
 * publishes again).  Pure logic and a mutex, no I/O.
 */
#ifndef TXIDSYNC_METRICS_H
#define TXIDSYNC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Upper bounds (seconds) of the duration histograms' buckets, +Inf last. */
#define METRICS_BUCKETS 13

typedef struct MetricsHist {
    uint64_t counts[METRICS_BUCKETS + 1]; /* per bucket, not cumulative; [METRICS_BUCKETS]: +Inf */
    uint64_t n;
    double sum;
} MetricsHist;

/* Records one duration in seconds. */
void metrics_hist_record(MetricsHist *h, double seconds);

/* One table's figures.  Counters only grow over the process's life. */
typedef struct TableMetrics {
    uint64_t rows, deletes; /* changes the sink acknowledged; deletes among them */
    uint64_t conflicts, retries, rejected, dead_letters;
    uint64_t batches, requests, bytes; /* batches read, requests sent, bytes of their changes */
    uint64_t reconnects, saves, refreshes, refresh_rows;
    uint64_t reread;             /* rows a standby's batches read again (not known done) */
    uint64_t standby_done;       /* ids above the standby's xmin known delivered */
    MetricsHist batch_seconds;   /* reading a batch */
    MetricsHist request_seconds; /* a sink request, sent to answered */
    uint64_t lag_transactions;
    double lag_seconds; /* age of the oldest commit the sink may not have (engine_lag_s) */
    bool running;       /* not stopped or failed */
    bool pg_up;         /* its connection works */
    bool sink_up;       /* its sink's last answer was not "unavailable" */
    bool refreshing;
    long long refresh_done, refresh_estimate; /* of the refresh running; estimate < 0: unknown */
} TableMetrics;

typedef struct Metrics Metrics;

/* A registry of n tables named names (copied).  NULL when out of memory. */
Metrics *metrics_new(const char *const *names, size_t n, const char *version, double start_unix);
void metrics_free(Metrics *m);

/* Replaces table i's figures and notes that the loop turned at now
 * (monotonic seconds).  Returns false when a scrape held the lock and
 * nothing was published. */
bool metrics_publish(Metrics *m, size_t i, const TableMetrics *t, double now);

/* The Prometheus text exposition of every figure into out (reset first).
 * Returns 0, or -1 when out of memory. */
int metrics_render(Metrics *m, Buf *out) __attribute__((warn_unused_result));

/* /healthz: 200 while the loop published within stall_s seconds of now,
 * else 503; out gets a JSON object saying so. */
int metrics_health(Metrics *m, double now, double stall_s, Buf *out);

/* /readyz: 200 when every table runs, reaches Postgres and its sink, and
 * lags at most max_lag_s; else 503.  out gets a JSON object with each
 * table's state and why it is not ready. */
int metrics_ready(Metrics *m, double max_lag_s, Buf *out);

#endif
