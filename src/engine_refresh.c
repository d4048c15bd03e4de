/*
 * engine_refresh: the refresh an engine runs in the background when the
 * columns of its table changed (docs/design.md, "Schema changes").
 *
 * When the engine starts, and whenever a batch shows columns other than
 * those it knows, it has txidsync.columns_noted compare them with the
 * columns noted last; a change starts a refresh of the whole table in
 * Postgres, recorded there, so that it is done once for every target of
 * the table and resumes after a crash.  Every few seconds it also looks
 * for an unfinished refresh started elsewhere (txidsync refresh
 * --background, or one stopped halfway).  The engine steps it on a
 * connection of its own, one short transaction a chunk, without blocking
 * the loop: a step is sent, its socket watched, its answer read when it
 * comes.  The next step is sent only while the engine's reading is caught
 * up, so that refreshed rows never pile up ahead of the live changes (a
 * refresh goes as fast as the sink takes its rows, and a live change
 * waits behind one chunk at most).  Several engines of one table step the
 * same refresh, one step at a time (its row in txidsync.refreshes is
 * locked by each step).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "crash.h"
#include "log.h"
#include "pg.h"
#include "progress.h"

#include "engine_impl.h"

#define REFRESH_CHUNK        1000
#define REFRESH_LOCK_WAIT_MS 200
#define REFRESH_LINE_S       10.0 /* progress lines at least this often, without --stats-interval */
#define REFRESH_POLL_S       5.0  /* how often a refresh started elsewhere is looked for */

static void on_refresh_ready(void *ctx, int fd, int events);

/* Closes the refresh's connection (a step in flight is abandoned: its
 * transaction rolls back, and the refresh resumes after its last chunk). */
static void close_conn(Engine *e)
{
    BgRefresh *b = &e->refresh;
    if (b->fd >= 0)
        loop_unwatch(e->loop, b->fd);
    b->fd = -1;
    pg_free(b->pg);
    b->pg = NULL;
    b->in_flight = false;
}

void engine_refresh_free(Engine *e)
{
    close_conn(e);
    memset(&e->refresh.r, 0, sizeof(e->refresh.r));
}

/* Whether a failed statement's message says the connection may not
 * write: no privilege (42501), or a read-only transaction (25006: a hot
 * standby). */
static bool read_only(const char *err)
{
    return strstr(err, "(42501)") || strstr(err, "(25006)");
}

/* Takes up refresh r (a refresh the engine does not run yet). */
static void adopt(Engine *e, const PgRefresh *r)
{
    BgRefresh *b = &e->refresh;
    if (r->id == 0 || r->id == b->r.id || b->read_only)
        return;
    b->r = *r;
    b->done = r->rows_done;
    b->done_at_start = r->rows_done;
    b->started = b->last_line = clock_mono_s();
    b->failures = 0;
    b->retry_at = 0;
    if (r->rows_done > 0)
        elog(e, LOG_INFO,
             "refresh %lld of the table (%s) goes on in the background after %lld rows", r->id,
             r->reason, r->rows_done);
    else
        elog(e, LOG_INFO,
             "refresh %lld of the table (%s) started in the background, about %lld rows", r->id,
             r->reason, r->estimate < 0 ? 0 : r->estimate);
    engine_kick(e);
}

void engine_refresh_note(Engine *e, bool changed)
{
    char err[1024];
    PgRefresh r;
    /* It answers what a poll would: the next poll is due later. */
    e->refresh.next_poll = clock_mono_s() + REFRESH_POLL_S;
    int rc = pg_columns_noted(e->pg, &e->table, &r, err, sizeof(err));
    if (rc == PG_OK) {
        adopt(e, &r);
        return;
    }
    if (rc == PG_LOST)
        return; /* the engine's next statement finds out and reconnects */
    if (read_only(err))
        elog(e, LOG_WARN,
             "the table's columns changed, and this connection may only read (a reader role, "
             "or a standby): the documents keep their old shape until the tables' owner runs "
             "txidsync refresh --table %s against the primary",
             e->cfg.table);
    else if (changed)
        elog(e, LOG_WARN,
             "the documents keep their old shape until the table is refreshed: no refresh "
             "could be started (run txidsync refresh --table %s as a role that may write "
             "txidsync's tables): %s",
             e->cfg.table, err);
    else
        elog(e, LOG_WARN,
             "cannot tell whether the table's columns changed while it was not "
             "synced (is this release's sql/txidsync.sql installed?): %s",
             err);
}

/* Whether a step may be sent now: a refresh runs, none is in flight, no
 * retry is pending, and the engine's reading is caught up. */
static bool may_step(const Engine *e)
{
    const BgRefresh *b = &e->refresh;
    return b->r.id != 0 && !b->in_flight && !e->stopping && !e->pg_down &&
           (e->read_caught_up || e->idle) && clock_mono_s() >= b->retry_at;
}

/* A step failed with rc: retried after a backoff (a lost connection is
 * opened again).  Lock waits given up are expected and said only at debug. */
static void step_failed(Engine *e, int rc, const char *err)
{
    BgRefresh *b = &e->refresh;
    b->failures++;
    b->retry_at = clock_mono_s() + engine_backoff_s(e, b->failures);
    if (rc == PG_BUSY) {
        log_table(LOG_DEBUG, e->cfg.name, NULL,
                  "refresh %lld: rows are held by other transactions; trying again", b->r.id);
        return;
    }
    if (read_only(err)) {
        elog(e, LOG_WARN,
             "refresh %lld: this connection may only read (a reader role, or a standby), so "
             "it leaves the refresh to txidsync refresh --table %s run against the primary by "
             "a role that may write txidsync's tables",
             b->r.id, e->cfg.table);
        b->read_only = true;
        engine_refresh_free(e);
        return;
    }
    elog(e, LOG_WARN, "refresh %lld: a step failed (%d in a row), trying again: %s", b->r.id,
         b->failures, err);
    if (rc == PG_LOST)
        close_conn(e);
}

void engine_refresh_step(Engine *e)
{
    char err[1024];
    BgRefresh *b = &e->refresh;
    if (!may_step(e))
        return;
    if (!b->pg) {
        b->pg = pg_connect(e->cfg.conninfo, err, sizeof(err));
        int fd = b->pg ? pg_socket(b->pg) : -1;
        if (fd < 0 || loop_watch(e->loop, fd, LOOP_READ, on_refresh_ready, e) < 0) {
            step_failed(e, PG_LOST, b->pg ? "cannot watch its socket" : err);
            return;
        }
        b->fd = fd;
    }
    int rc =
        pg_refresh_step_send(b->pg, b->r.id, REFRESH_CHUNK, REFRESH_LOCK_WAIT_MS, err, sizeof(err));
    if (rc != PG_OK) {
        step_failed(e, rc, err);
        return;
    }
    b->in_flight = true;
}

/* The figures of the refresh so far: "12000 rows of ~100000 (12%), ...". */
static void refresh_figures(const Engine *e, char *out, size_t len)
{
    const BgRefresh *b = &e->refresh;
    double s = clock_mono_s() - b->started;
    double rate = s > 0 ? (double)(b->done - b->done_at_start) / s : 0.0;
    progress_text(out, len, b->done, b->r.estimate, rate);
}

void engine_refresh_text(const Engine *e, char *out, size_t len)
{
    char fig[160];
    if (e->refresh.r.id == 0) {
        snprintf(out, len, "%s", "");
        return;
    }
    refresh_figures(e, fig, sizeof(fig));
    snprintf(out, len, ", refreshing: %s", fig);
}

/* Logs the refresh's progress when a line is due, and its end. */
static void report(Engine *e, bool finished)
{
    BgRefresh *b = &e->refresh;
    double t = clock_mono_s();
    double every = e->cfg.stats_interval_s > 0 ? (double)e->cfg.stats_interval_s : REFRESH_LINE_S;
    char fig[160], took[32];
    if (finished) {
        progress_duration(took, sizeof(took), t - b->started);
        elog(e, LOG_INFO, "refresh %lld of the table (%s) finished: %lld rows, in %s", b->r.id,
             b->r.reason, b->done, took);
    } else if (t - b->last_line >= every) {
        refresh_figures(e, fig, sizeof(fig));
        elog(e, LOG_INFO, "refresh %lld: %s", b->r.id, fig);
        b->last_line = t;
    }
}

/* The loop's call for the refresh's socket: the answer of a step. */
static void on_refresh_ready(void *ctx, int fd, int events)
{
    (void)fd;
    (void)events;
    Engine *e = ctx;
    BgRefresh *b = &e->refresh;
    char err[1024];
    if (!b->in_flight)
        return;
    bool done = false;
    PgRefreshStep st;
    int rc = pg_refresh_step_poll(b->pg, &done, &st, err, sizeof(err));
    if (rc == PG_OK && !done)
        return;
    b->in_flight = false;
    if (rc != PG_OK) {
        step_failed(e, rc, err);
        engine_kick(e);
        return;
    }
    crash_point("after a refresh step");
    b->failures = 0;
    b->done = st.rows_done;
    e->stats.refresh_rows += (uint64_t)st.rows;
    report(e, st.finished);
    if (st.finished) {
        e->stats.refreshes++;
        engine_refresh_free(e);
    }
    if (st.rows > 0)
        engine_notice_changes(e); /* the rows it refreshed are changes to read */
    engine_kick(e);
}

void engine_refresh_poll(Engine *e)
{
    char err[1024];
    BgRefresh *b = &e->refresh;
    double t = clock_mono_s();
    if (b->r.id != 0 || e->fetching || e->pg_down || t < b->next_poll)
        return;
    b->next_poll = t + REFRESH_POLL_S;
    PgRefresh r;
    int rc = pg_refresh_pending(e->pg, &e->table, &r, err, sizeof(err));
    if (rc == PG_OK)
        adopt(e, &r);
    else if (rc == PG_ERROR)
        log_table(LOG_DEBUG, e->cfg.name, NULL, "cannot look for a refresh: %s", err);
}

bool engine_refresh_running(const Engine *e)
{
    return e->refresh.r.id != 0;
}

double engine_refresh_due(const Engine *e)
{
    const BgRefresh *b = &e->refresh;
    return b->r.id != 0 && !b->in_flight && b->retry_at > 0 ? b->retry_at : 0;
}
