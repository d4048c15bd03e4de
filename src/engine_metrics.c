/*
 * engine_metrics: an engine's figures for the metrics registry (see
 * engine.h and metrics.h).
 */
#include <string.h>

#include "clock.h"
#include "engine_impl.h"

void engine_metrics(const Engine *e, TableMetrics *out)
{
    const Stats *s = &e->stats;
    memset(out, 0, sizeof(*out));
    out->rows = s->rows;
    out->deletes = s->deletes;
    out->conflicts = s->conflicts;
    out->retries = s->retries;
    out->rejected = s->rejected;
    out->dead_letters = s->dead_letters;
    out->batches = s->batches;
    out->requests = s->requests;
    out->bytes = s->bytes;
    out->reconnects = s->reconnects;
    out->saves = s->saves;
    out->refreshes = s->refreshes;
    out->refresh_rows = s->refresh_rows;
    out->reread = s->reread;
    out->standby_done = e->cursor.n_done;
    out->batch_seconds = s->batch_seconds;
    out->request_seconds = s->request_seconds;
    out->lag_transactions = engine_lag_transactions(e);
    out->lag_seconds = e->state == ENGINE_RUNNING ? engine_lag_s(e, clock_mono_s()) : 0.0;
    out->running = e->state == ENGINE_RUNNING || e->state == ENGINE_NEW;
    out->pg_up = e->state == ENGINE_RUNNING && e->pg && !e->pg_down;
    out->sink_up = e->state == ENGINE_RUNNING && !s->sink_down;
    out->refreshing = e->refresh.r.id != 0;
    out->refresh_done = out->refreshing ? e->refresh.done : 0;
    out->refresh_estimate = out->refreshing ? e->refresh.r.estimate : 0;
}
