/*
 * engine_backfill: the progress of an engine's first copy of its table
 * (a start without a stored cursor), from the start until everything read
 * up to the first time the reading caught up is acknowledged.  On a
 * terminal it is the status line (log.h), redrawn every second; otherwise
 * the stats line says it every --stats-interval, or a line of its own
 * every 10 s without one.  The total is the side table's estimated row
 * count (txidsync.row_estimate).
 */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pg.h"
#include "progress.h"

#include "engine_impl.h"

#define BACKFILL_LIVE_S 1.0  /* the status line is redrawn this often */
#define BACKFILL_LINE_S 10.0 /* log lines this often, without --stats-interval */

void engine_backfill_begin(Engine *e)
{
    char err[1024];
    Backfill *b = &e->backfill;
    long long estimate = -1;
    if (pg_row_estimate(e->pg, &e->table, &estimate, err, sizeof(err)) != PG_OK)
        log_table(LOG_DEBUG, e->cfg.name, NULL, "no row estimate for the progress: %s", err);
    b->active = true;
    b->estimate = estimate;
    b->started = b->last_line = clock_mono_s();
    b->last_live = 0; /* the status line at once */
    b->live = true;   /* until log_status says there is no terminal */
    if (estimate >= 0)
        elog(e, LOG_INFO, "copying the table: about %lld rows", estimate);
    else
        elog(e, LOG_INFO, "copying the table");
}

/* The rows of the backfill acknowledged so far. */
static long long rows_done(const Engine *e)
{
    return (long long)(e->stats.rows + e->stats.conflicts);
}

/* The figures so far: "250000 rows of ~1000000 (25%), 50000 rows/s, ETA 15s". */
static void figures(const Engine *e, char *out, size_t len)
{
    const Backfill *b = &e->backfill;
    double s = clock_mono_s() - b->started;
    progress_text(out, len, rows_done(e), b->estimate, s > 0 ? (double)rows_done(e) / s : 0.0);
}

void engine_backfill_text(const Engine *e, char *out, size_t len)
{
    char fig[160];
    if (!e->backfill.active) {
        snprintf(out, len, "%s", "");
        return;
    }
    figures(e, fig, sizeof(fig));
    snprintf(out, len, ", copying: %s", fig);
}

void engine_backfill_report(Engine *e, bool done)
{
    Backfill *b = &e->backfill;
    if (!b->active)
        return;
    double t = clock_mono_s();
    char fig[160], line[300], took[32];
    if (done) {
        if (b->live)
            log_status(e, NULL);
        progress_duration(took, sizeof(took), t - b->started);
        elog(e, LOG_INFO, "copied the table: %lld rows in %s (%.0f rows/s)", rows_done(e), took,
             t > b->started ? (double)rows_done(e) / (t - b->started) : 0.0);
        b->active = false;
        return;
    }
    if (b->live && t - b->last_live >= BACKFILL_LIVE_S) {
        figures(e, fig, sizeof(fig));
        snprintf(line, sizeof(line), "%s: copying: %s", e->cfg.name, fig);
        b->live = log_status(e, line);
        b->last_live = t;
    }
    /* With --stats-interval, the stats line says it. */
    if (!b->live && e->cfg.stats_interval_s <= 0 && t - b->last_line >= BACKFILL_LINE_S) {
        figures(e, fig, sizeof(fig));
        elog(e, LOG_INFO, "copying: %s", fig);
        b->last_line = t;
    }
}

double engine_backfill_due(const Engine *e)
{
    const Backfill *b = &e->backfill;
    if (!b->active)
        return 0;
    if (b->live)
        return b->last_live + BACKFILL_LIVE_S;
    return e->cfg.stats_interval_s > 0 ? 0 : b->last_line + BACKFILL_LINE_S;
}
