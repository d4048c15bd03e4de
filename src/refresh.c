/*
 * refresh: one table's refresh, step by step (see refresh.h).  Blocking:
 * txidsync refresh runs it alone, one table after the other.
 */
#include "refresh.h"

#include <stdio.h>
#include <unistd.h>

#include "clock.h"
#include "crash.h"
#include "log.h"
#include "pg.h"
#include "progress.h"

#define BACKOFF_MIN_S 0.05
#define BACKOFF_MAX_S 5.0
#define LIVE_EVERY_S  0.25

typedef struct Run {
    const RefreshConfig *cfg;
    PgConn *pg;
    PgRefresh r;
    long long done, done_at_start;
    double started, last_line, last_live;
    bool live; /* a live progress line on a terminal */
    int failures;
    char label[64];       /* in messages: "refresh 4" or "tracking" */
    bool tracked_already; /* tracking found the table tracked: nothing to do */
} Run;

/* The job's word in messages. */
static const char *job(const Run *run)
{
    return run->cfg->track ? "track" : "refresh";
}

static double backoff_s(int failures)
{
    double s = BACKOFF_MIN_S;
    for (int i = 1; i < failures && s < BACKOFF_MAX_S; i++)
        s *= 2;
    return s < BACKOFF_MAX_S ? s : BACKOFF_MAX_S;
}

/* The progress so far, into out. */
static void progress(const Run *run, char *out, size_t len)
{
    double elapsed = clock_mono_s() - run->started;
    double rate = elapsed > 0 ? (double)(run->done - run->done_at_start) / elapsed : 0;
    progress_text(out, len, run->done, run->r.estimate, rate);
}

/* Reports progress: a live line on a terminal, a log line every
 * stats_interval_s otherwise. */
static void report(Run *run, bool force)
{
    double now = clock_mono_s();
    char text[256];
    if (run->live && (force || now - run->last_live >= LIVE_EVERY_S)) {
        char line[400];
        progress(run, text, sizeof(text));
        snprintf(line, sizeof(line), "%s: %s: %s", run->cfg->name, run->label, text);
        run->live = log_status(run, line);
        run->last_live = now;
    } else if (!run->live && run->cfg->stats_interval_s > 0 &&
               now - run->last_line >= (double)run->cfg->stats_interval_s) {
        progress(run, text, sizeof(text));
        log_table(LOG_INFO, run->cfg->name, NULL, "%s: %s", run->label, text);
        run->last_line = now;
    }
}

/* Ends the live line, so that what follows starts a line of its own. */
static void end_live(Run *run)
{
    if (run->live && run->last_live > 0)
        log_status(run, NULL);
    run->last_live = 0;
}

/* Handles a failed step or start (rc); returns 0 to try again, -1 to
 * give up. */
static int failed(Run *run, int rc, const char *err)
{
    run->failures++;
    if (rc == PG_ERROR) {
        end_live(run);
        log_table(LOG_ERROR, run->cfg->name, NULL, "%s: %s", job(run), err);
        return -1;
    }
    if (rc == PG_BUSY) {
        if (run->failures == 1 || run->failures % 20 == 0) {
            end_live(run);
            log_table(LOG_WARN, run->cfg->name, NULL,
                      "%s: rows are held by other transactions; trying again (%d)", job(run),
                      run->failures);
        }
        clock_sleep_s(backoff_s(run->failures));
        return 0;
    }
    end_live(run);
    log_table(LOG_WARN, run->cfg->name, NULL, "%s: %s; reconnecting in %.1f s", job(run), err,
              backoff_s(run->failures));
    clock_sleep_s(backoff_s(run->failures));
    char why[512];
    if (pg_reconnect(run->pg, why, sizeof(why)) != PG_OK)
        log_table(LOG_WARN, run->cfg->name, NULL, "%s: %s", job(run), why);
    return 0;
}

/* The job's first call, tried until it works (txidsync.track_begin or
 * txidsync.refresh_start): returns 0, 1 when stopped, or -1.  Sets
 * *tracked when tracking finds the table tracked already. */
static int begin(Run *run, bool *tracked)
{
    char err[1024];
    const RefreshConfig *cfg = run->cfg;
    *tracked = false;
    for (;;) {
        if (cfg->stop && cfg->stop(cfg->stop_ctx))
            return 1;
        int rc = cfg->track ? pg_track_begin(run->pg, cfg->table, cfg->notify, cfg->log_mode,
                                             &run->r, tracked, err, sizeof(err))
                            : pg_refresh_start(run->pg, cfg->table, cfg->where, "requested",
                                               &run->r, err, sizeof(err));
        if (rc == PG_OK)
            break;
        if (failed(run, rc, err) < 0)
            return -1;
    }
    run->failures = 0;
    run->done = run->done_at_start = run->r.rows_done;
    return 0;
}

/* Starts (or resumes) the job and says so; returns 0 (with
 * run->tracked_already when there is nothing to do), 1 when stopped, or
 * -1. */
static int start(Run *run)
{
    const RefreshConfig *cfg = run->cfg;
    int rc = begin(run, &run->tracked_already);
    if (rc != 0)
        return rc;
    if (cfg->track) {
        snprintf(run->label, sizeof(run->label), "tracking");
        if (run->tracked_already)
            log_table(LOG_INFO, cfg->name, NULL, "%s is tracked already", cfg->table);
        else if (run->r.rows_done > 0)
            log_table(LOG_INFO, cfg->name, NULL, "tracking %s resumes after %lld rows", cfg->table,
                      run->r.rows_done);
        else
            log_table(LOG_INFO, cfg->name, NULL,
                      "tracking %s: its triggers are installed; filling the state of its "
                      "rows (about %lld)",
                      cfg->table, run->r.estimate < 0 ? 0 : run->r.estimate);
        return 0;
    }
    snprintf(run->label, sizeof(run->label), "refresh %lld", run->r.id);
    const char *what = cfg->where && *cfg->where ? cfg->where : "every key";
    if (run->r.rows_done > 0)
        log_table(LOG_INFO, cfg->name, NULL, "refresh %lld of %s (%s) resumes after %lld rows",
                  run->r.id, cfg->table, what, run->r.rows_done);
    else
        log_table(LOG_INFO, cfg->name, NULL, "refresh %lld of %s (%s) started, about %lld rows",
                  run->r.id, cfg->table, what, run->r.estimate < 0 ? 0 : run->r.estimate);
    return 0;
}

/* Steps to the end; returns 0, 1 when stopped, or -1. */
static int steps(Run *run)
{
    char err[1024];
    const RefreshConfig *cfg = run->cfg;
    for (bool finished = false; !finished;) {
        if (cfg->stop && cfg->stop(cfg->stop_ctx)) {
            end_live(run);
            log_table(LOG_INFO, cfg->name, NULL,
                      "%s stopped after %lld rows; the same command resumes it", run->label,
                      run->done);
            return 1;
        }
        PgRefreshStep st;
        int rc = cfg->track ? pg_track_step(run->pg, cfg->table, cfg->chunk, &st, err, sizeof(err))
                            : pg_refresh_step(run->pg, run->r.id, cfg->chunk, cfg->lock_wait_ms,
                                              &st, err, sizeof(err));
        if (rc != PG_OK) {
            if (failed(run, rc, err) < 0)
                return -1;
            continue;
        }
        run->done = st.rows_done;
        finished = st.finished;
        run->failures = 0;
        crash_point("after a refresh step");
        report(run, false);
    }
    report(run, true);
    end_live(run);
    double s = clock_mono_s() - run->started;
    long long now = run->done - run->done_at_start;
    char took[32];
    progress_duration(took, sizeof(took), s);
    if (cfg->track)
        log_table(LOG_INFO, cfg->name, NULL,
                  "tracking %s: the state of %lld rows is filled (%lld of them in %s, %.0f "
                  "rows/s); every row is tracked",
                  cfg->table, run->done, now, took, s > 0 ? (double)now / s : 0.0);
    else if (run->done_at_start > 0)
        log_table(LOG_INFO, cfg->name, NULL,
                  "refresh %lld of %s finished: %lld rows, %lld of them in %s now", run->r.id,
                  cfg->table, run->done, now, took);
    else
        log_table(LOG_INFO, cfg->name, NULL,
                  "refresh %lld of %s finished: %lld rows in %s (%.0f rows/s)", run->r.id,
                  cfg->table, run->done, took, s > 0 ? (double)now / s : 0.0);
    return 0;
}

int refresh_run(const RefreshConfig *cfg)
{
    char err[1024];
    Run run = {.cfg = cfg, .live = true}; /* until log_status says no terminal */
    run.started = run.last_line = clock_mono_s();
    run.pg = pg_connect(cfg->conninfo, err, sizeof(err));
    if (!run.pg) {
        log_table(LOG_ERROR, cfg->name, NULL, "%s: %s", job(&run), err);
        return -1;
    }
    int rc = start(&run);
    if (rc == 0 && cfg->background && !cfg->track)
        log_table(LOG_INFO, cfg->name, NULL,
                  "refresh %lld of %s left to the running syncers: each steps it one chunk at a "
                  "time while it is caught up (its progress: their logs, txidsync.refreshes)",
                  run.r.id, cfg->table);
    else if (rc == 0 && !run.tracked_already)
        rc = steps(&run);
    pg_free(run.pg);
    return rc;
}
