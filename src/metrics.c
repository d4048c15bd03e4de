/*
 * metrics: the registry and its Prometheus text exposition (see
 * metrics.h).
 */
#include "metrics.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const double bounds[METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                               1,     2.5,  5,     10,   30,  60};

struct Metrics {
    pthread_mutex_t lock;
    char **names;
    TableMetrics *tables;
    size_t n;
    char *version;
    double start_unix;
    double last_beat; /* monotonic; 0: never */
};

void metrics_hist_record(MetricsHist *h, double seconds)
{
    if (seconds < 0)
        seconds = 0;
    size_t i = 0;
    while (i < METRICS_BUCKETS && seconds > bounds[i])
        i++;
    h->counts[i]++;
    h->n++;
    h->sum += seconds;
}

Metrics *metrics_new(const char *const *names, size_t n, const char *version, double start_unix)
{
    Metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->names = calloc(n ? n : 1, sizeof(*m->names));
    m->tables = calloc(n ? n : 1, sizeof(*m->tables));
    m->version = strdup(version);
    m->n = n;
    m->start_unix = start_unix;
    bool ok = m->names && m->tables && m->version;
    for (size_t i = 0; ok && i < n; i++)
        ok = (m->names[i] = strdup(names[i])) != NULL;
    if (!ok) {
        metrics_free(m);
        return NULL;
    }
    return m;
}

void metrics_free(Metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; m->names && i < m->n; i++)
        free(m->names[i]);
    free(m->names);
    free(m->tables);
    free(m->version);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

bool metrics_publish(Metrics *m, size_t i, const TableMetrics *t, double now)
{
    if (i >= m->n || pthread_mutex_trylock(&m->lock) != 0)
        return false;
    m->tables[i] = *t;
    m->last_beat = now;
    pthread_mutex_unlock(&m->lock);
    return true;
}

/* One figure of every table: its name, type, help and value. */
typedef struct Figure {
    const char *name, *type, *help;
    double (*value)(const TableMetrics *t);
} Figure;

#define FIELD(f)                                                                                   \
    static double f##_of(const TableMetrics *t)                                                    \
    {                                                                                              \
        return (double)t->f;                                                                       \
    }
FIELD(rows)
FIELD(deletes)
FIELD(conflicts)
FIELD(retries)
FIELD(rejected)
FIELD(dead_letters)
FIELD(batches)
FIELD(requests)
FIELD(bytes)
FIELD(reconnects)
FIELD(saves)
FIELD(refreshes)
FIELD(refresh_rows)
FIELD(reread)
FIELD(standby_done)
FIELD(lag_transactions)
FIELD(lag_seconds)
FIELD(running)
FIELD(pg_up)
FIELD(sink_up)
FIELD(refreshing)
FIELD(refresh_done)
FIELD(refresh_estimate)

static const Figure figures[] = {
    {"txidsync_changes_applied_total", "counter",
     "Changes of rows the sink acknowledged (deletes included).", rows_of},
    {"txidsync_deletes_applied_total", "counter", "Deletes among the changes applied.", deletes_of},
    {"txidsync_version_conflicts_total", "counter",
     "Changes the sink held a newer version of already (replays).", conflicts_of},
    {"txidsync_retries_total", "counter",
     "Requests or changes sent again after the sink was unavailable or refused them.", retries_of},
    {"txidsync_rejected_total", "counter", "Changes the sink rejected for good.", rejected_of},
    {"txidsync_dead_letters_total", "counter", "Rejected changes recorded as dead letters.",
     dead_letters_of},
    {"txidsync_batches_total", "counter", "Batches read from Postgres.", batches_of},
    {"txidsync_sink_requests_total", "counter", "Requests sent to the sink.", requests_of},
    {"txidsync_sent_bytes_total", "counter",
     "Bytes of the documents and keys handed to the sink (before its framing).", bytes_of},
    {"txidsync_pg_reconnects_total", "counter", "Connections to Postgres opened again.",
     reconnects_of},
    {"txidsync_cursor_saves_total", "counter", "Cursors persisted in the store.", saves_of},
    {"txidsync_refreshes_total", "counter", "Background refreshes finished.", refreshes_of},
    {"txidsync_refreshed_rows_total", "counter", "Rows background refreshes re-sent.",
     refresh_rows_of},
    {"txidsync_standby_reread_rows_total", "counter",
     "Rows read from a hot standby that the next batch reads again: their transaction could not "
     "be recorded as delivered (cut by the batch limit, or past the done set's span).",
     reread_of},
    {"txidsync_standby_done_transactions", "gauge",
     "Transactions at or above a hot standby's xmin known delivered (the cursor's done set).",
     standby_done_of},
    {"txidsync_lag_transactions", "gauge",
     "Transactions between the acknowledged cursor and the newest snapshot read.",
     lag_transactions_of},
    {"txidsync_lag_seconds", "gauge",
     "Age of the oldest commit the sink may not have acknowledged (0: caught up).", lag_seconds_of},
    {"txidsync_table_running", "gauge", "1 while the table syncs, 0 once stopped or failed.",
     running_of},
    {"txidsync_pg_up", "gauge", "1 while the table's Postgres connection works.", pg_up_of},
    {"txidsync_sink_up", "gauge", "1 unless the sink's last answer was 'unavailable'.", sink_up_of},
    {"txidsync_refresh_running", "gauge", "1 while a background refresh of the table runs.",
     refreshing_of},
    {"txidsync_refresh_rows_done", "gauge", "Rows the running refresh has done.", refresh_done_of},
    {"txidsync_refresh_rows_estimate", "gauge",
     "Rows the running refresh is expected to do (-1: unknown).", refresh_estimate_of},
};

/* Appends a label value, escaped as the exposition format wants. */
static int label(Buf *out, const char *v)
{
    for (; *v; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (esc ? buf_puts(out, esc) : buf_append(out, v, 1))
            return -1;
    }
    return 0;
}

/* The lines of one histogram of every table; field picks it. */
static int render_hist(const Metrics *m, Buf *out, const char *name, const char *help, size_t field)
{
    if (buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name))
        return -1;
    for (size_t i = 0; i < m->n; i++) {
        const MetricsHist *h = (const MetricsHist *)((const char *)&m->tables[i] + field);
        uint64_t sum = 0;
        for (size_t b = 0; b <= METRICS_BUCKETS; b++) {
            sum += h->counts[b];
            char le[32];
            if (b < METRICS_BUCKETS)
                snprintf(le, sizeof(le), "%g", bounds[b]);
            else
                snprintf(le, sizeof(le), "+Inf");
            if (buf_printf(out, "%s_bucket{table=\"", name) || label(out, m->names[i]) ||
                buf_printf(out, "\",le=\"%s\"} %llu\n", le, (unsigned long long)sum))
                return -1;
        }
        if (buf_printf(out, "%s_sum{table=\"", name) || label(out, m->names[i]) ||
            buf_printf(out, "\"} %.6f\n%s_count{table=\"", h->sum, name) ||
            label(out, m->names[i]) || buf_printf(out, "\"} %llu\n", (unsigned long long)h->n))
            return -1;
    }
    return 0;
}

int metrics_render(Metrics *m, Buf *out)
{
    buf_reset(out);
    pthread_mutex_lock(&m->lock);
    int rc = buf_printf(out,
                        "# HELP txidsync_build_info The running release.\n"
                        "# TYPE txidsync_build_info gauge\n"
                        "txidsync_build_info{version=\"%s\"} 1\n"
                        "# HELP txidsync_process_start_time_seconds Start time of the process "
                        "since the epoch.\n"
                        "# TYPE txidsync_process_start_time_seconds gauge\n"
                        "txidsync_process_start_time_seconds %.3f\n",
                        m->version, m->start_unix);
    for (size_t f = 0; rc == 0 && f < sizeof(figures) / sizeof(figures[0]); f++) {
        const Figure *g = &figures[f];
        rc = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", g->name, g->help, g->name, g->type);
        for (size_t i = 0; rc == 0 && i < m->n; i++)
            rc = buf_printf(out, "%s{table=\"", g->name) || label(out, m->names[i]) ||
                         buf_printf(out, "\"} %.17g\n", g->value(&m->tables[i]))
                     ? -1
                     : 0;
    }
    if (rc == 0)
        rc = render_hist(m, out, "txidsync_batch_duration_seconds",
                         "Time to read one batch from Postgres.",
                         offsetof(TableMetrics, batch_seconds));
    if (rc == 0)
        rc = render_hist(m, out, "txidsync_sink_request_duration_seconds",
                         "Time from sending a sink request to its answer.",
                         offsetof(TableMetrics, request_seconds));
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int metrics_health(Metrics *m, double now, double stall_s, Buf *out)
{
    pthread_mutex_lock(&m->lock);
    double beat = m->last_beat;
    pthread_mutex_unlock(&m->lock);
    buf_reset(out);
    bool ok = beat > 0 && now - beat <= stall_s;
    int rc;
    if (ok)
        rc = buf_printf(out, "{\"status\":\"ok\",\"loop_seconds_ago\":%.3f}\n", now - beat);
    else
        rc = buf_printf(out,
                        "{\"status\":\"stalled\",\"why\":\"the sync loop has not turned for "
                        "%.1f s (limit %.0f s)\"}\n",
                        beat > 0 ? now - beat : -1.0, stall_s);
    return ok && rc == 0 ? 200 : 503;
}

/* Puts why table t is not ready into why (comma-separated), "" if it is. */
static void not_ready(const TableMetrics *t, double max_lag_s, char *why, size_t len)
{
    size_t n = 0;
    why[0] = '\0';
#define WHY(...)                                                                                   \
    do {                                                                                           \
        if (n < len)                                                                               \
            n += (size_t)snprintf(why + n, len - n, "%s", n ? "; " : "");                          \
        if (n < len)                                                                               \
            n += (size_t)snprintf(why + n, len - n, __VA_ARGS__);                                  \
    } while (0)
    if (!t->running)
        WHY("the table stopped (its log says why)");
    if (t->running && !t->pg_up)
        WHY("postgres is unreachable");
    if (t->running && !t->sink_up)
        WHY("the sink is unavailable");
    if (t->lag_seconds > max_lag_s)
        WHY("lag %.1f s over %.0f s", t->lag_seconds, max_lag_s);
#undef WHY
}

int metrics_ready(Metrics *m, double max_lag_s, Buf *out)
{
    bool all = true;
    buf_reset(out);
    pthread_mutex_lock(&m->lock);
    int rc = buf_puts(out, "{\"tables\":[");
    for (size_t i = 0; rc == 0 && i < m->n; i++) {
        const TableMetrics *t = &m->tables[i];
        char why[600];
        not_ready(t, max_lag_s, why, sizeof(why));
        all = all && !why[0];
        rc = buf_puts(out, i ? ",{\"table\":" : "{\"table\":") ||
             json_append_string(out, m->names[i], strlen(m->names[i])) ||
             buf_printf(out,
                        ",\"ready\":%s,\"lag_seconds\":%.3f,\"why\":", why[0] ? "false" : "true",
                        t->lag_seconds) ||
             json_append_string(out, why, strlen(why)) || buf_puts(out, "}");
    }
    pthread_mutex_unlock(&m->lock);
    if (rc == 0)
        rc = buf_printf(out, "],\"ready\":%s}\n", all ? "true" : "false");
    return rc == 0 && all ? 200 : 503;
}
