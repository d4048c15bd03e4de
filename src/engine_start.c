/*
 * engine_start: an engine before it runs (see engine.h): connecting and
 * checking the table, loading the cursor, looking at the target (who
 * feeds it, whether it still holds what the cursor says, whether it keeps
 * what it acknowledges) and preparing it, and starting a table over.
 * Everything here may block: nothing else runs yet.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_impl.h"

#define LOCK_WAIT_S 5.0 /* how long a lock held by another session is waited for */

/* Blocking sleep with backoff, for engine_start only (nothing else runs yet). */
static void start_backoff(Engine *e, int attempt)
{
    clock_sleep_s(engine_backoff_s(e, attempt));
}

/* Connects and checks the server and the table.  Returns 0 or -1 (printed). */
static int start_pg(Engine *e)
{
    char err[1024];
    e->pg = pg_connect(e->cfg.conninfo, err, sizeof(err));
    if (!e->pg) {
        elog(e, LOG_ERROR, "cannot connect to postgres: %s", err);
        return -1;
    }
    bool standby = false;
    if (pg_in_recovery(e->pg, &standby, err, sizeof(err)) != PG_OK) {
        elog(e, LOG_ERROR, "%s", err);
        return -1;
    }
    if (standby) {
        e->standby = true;
        elog(e, LOG_INFO,
             "reading a hot standby: its snapshots do not list running transactions, so the "
             "cursor keeps the ids committed since the oldest one still running (its done set) "
             "until that one ends; no LISTEN (polling); refresh steps and column notes are left "
             "to syncers of the primary");
    }
    if (pg_table_resolve(e->pg, e->cfg.table, &e->table, err, sizeof(err)) != PG_OK) {
        elog(e, LOG_ERROR, "%s", err);
        return -1;
    }
    if (pg_table_choose_columns(&e->table, e->cfg.columns, e->cfg.exclude_columns, err,
                                sizeof(err)) < 0) {
        elog(e, LOG_ERROR, "%s", err);
        return -1;
    }
    if (sink_check_columns(e->sink, (const char *const *)e->table.columns, e->table.n_columns, err,
                           sizeof(err)) < 0) {
        elog(e, LOG_ERROR, "%s: %s", e->table.name, err);
        return -1;
    }
    return engine_lock(e);
}

int engine_lock(Engine *e)
{
    char err[1024], name[2048];
    snprintf(name, sizeof(name), "txidsync %s -> %s", e->table.owner, e->where);
    bool got = false;
    int holder = 0;
    /* A syncer killed a moment ago may still hold it: its server process
     * lets go once it notices, usually within milliseconds. */
    double give_up = clock_mono_s() + LOCK_WAIT_S;
    for (;;) {
        if (pg_try_lock(e->pg, name, &got, &holder, err, sizeof(err)) != PG_OK) {
            elog(e, LOG_ERROR, "%s", err);
            return -1;
        }
        if (got || clock_mono_s() > give_up)
            break;
        clock_sleep_s(0.2);
    }
    if (!got) {
        char pid[64] = "";
        if (holder > 0)
            snprintf(pid, sizeof(pid), " (postgres backend pid %d)", holder);
        elog(e, LOG_ERROR,
             "another txidsync%s is syncing %s into %s: stop it first, or give this one a "
             "target of its own",
             pid, e->table.owner, e->where);
        return -1;
    }
    e->locked = true;
    return 0;
}

/* Loads the cursor, waiting up to START_BUSY_WAIT_S for a store that
 * answers but is busy; one that does not answer fails at once.  Returns
 * 0 with *found set, or -1 (printed). */
static int start_cursor(Engine *e, bool *found)
{
    char err[1024];
    double give_up = clock_mono_s() + START_BUSY_WAIT_S;
    StoreResult sr;
    for (int attempt = 0;; attempt++) {
        sr = store_load(e->store, &e->cursor, e->table.owner, found, err, sizeof(err));
        if (sr != STORE_RETRY || !store_answered(e->store) || clock_mono_s() > give_up)
            break;
        elog(e, LOG_WARN, "the sink is busy, waiting: %s", err);
        cursor_free(&e->cursor);
        start_backoff(e, attempt);
    }
    if (sr == STORE_RETRY) {
        elog(e, LOG_ERROR, "cannot reach the sink at %s (cursor in %s): %s", sink_describe(e->sink),
             store_describe(e->store), err);
        return -1;
    }
    if (sr != STORE_OK) {
        elog(e, LOG_ERROR, "cannot load the cursor: %s", err);
        return -1;
    }
    if (cursor_copy(&e->saved, &e->cursor) < 0) {
        elog(e, LOG_ERROR, "out of memory");
        return -1;
    }
    return 0;
}

/* Runs one preparation step of the sink (inspect when owner is NULL,
 * else prepare) and then, after it, the store's, waiting up to
 * START_BUSY_WAIT_S for a busy sink as start_cursor does.  Returns 0 or
 * -1 (printed). */
static int sink_step(Engine *e, const char *owner)
{
    char err[1024];
    double give_up = clock_mono_s() + START_BUSY_WAIT_S;
    for (int attempt = 0;; attempt++) {
        SinkResult r = owner ? sink_prepare(e->sink, owner, err, sizeof(err))
                             : sink_inspect(e->sink, &e->target, err, sizeof(err));
        StoreResult sr =
            r == SINK_OK && owner ? store_prepare(e->store, err, sizeof(err)) : STORE_OK;
        if (r == SINK_OK && sr == STORE_OK)
            return 0;
        bool busy =
            r == SINK_RETRY || (r == SINK_OK && sr == STORE_RETRY && store_answered(e->store));
        if (!busy || clock_mono_s() > give_up) {
            elog(e, LOG_ERROR, "cannot %s the sink at %s: %s", owner ? "prepare" : "reach",
                 sink_describe(e->sink), err);
            return -1;
        }
        elog(e, LOG_WARN, "the sink is busy, waiting: %s", err);
        start_backoff(e, attempt);
    }
}

/* Refuses a target another table feeds.  Returns 0 or -1 (printed). */
static int check_owner(Engine *e)
{
    if (!e->target.owner[0] || strcmp(e->target.owner, e->table.owner) == 0)
        return 0;
    elog(e, LOG_ERROR,
         "%s is fed by table %s, not %s: two tables in one target would overwrite each "
         "other's documents; give this table a target of its own",
         e->where, e->target.owner, e->table.owner);
    return -1;
}

/* With a stored cursor, the target must still hold what the cursor says
 * was written: a target deleted or emptied by hand would otherwise stay
 * without those rows for good.  Returns 0 or -1 (printed). */
static int check_target_kept(Engine *e)
{
    char err[1024];
    if (!e->resuming)
        return 0;
    const char *what = NULL;
    bool synced = false;
    if (!e->target.exists) {
        what = "does not exist";
    } else if (e->target.documents == 0) {
        if (pg_synced_live_rows(e->pg, &e->table, &e->cursor, &synced, err, sizeof(err)) != PG_OK) {
            elog(e, LOG_ERROR, "%s", err);
            return -1;
        }
        what = synced ? "is empty" : NULL;
    }
    if (!what)
        return 0;
    elog(e, LOG_ERROR,
         "%s %s, but the cursor in %s says rows up to xid %" PRIu64
         " were written there: the target was deleted or emptied by hand. To copy the table "
         "again from the start, run: %s",
         e->where, what, store_describe(e->store), e->cursor.xid_next,
         e->cfg.reset_hint ? e->cfg.reset_hint : "txidsync reset");
    return -1;
}

/* Looks at the target, checks it, then prepares it and the store.
 * Returns 0 or -1 (printed). */
static int start_sink(Engine *e)
{
    if (sink_step(e, NULL) < 0 || check_owner(e) < 0 || check_target_kept(e) < 0)
        return -1;
    if (!e->target.durable && e->target.durability[0])
        elog(e, LOG_WARN,
             "%s: what the sink acknowledges is not durable until it is flushed, so txidsync "
             "flushes it before each cursor save (slower; the default durability needs no flush)",
             e->target.durability);
    bool durable = e->target.durable;
    /* Prepared, then looked at again: another table may have claimed it
     * in between. */
    if (sink_step(e, e->table.owner) < 0 || sink_step(e, NULL) < 0 || check_owner(e) < 0)
        return -1;
    e->target.durable = durable && e->target.durable;
    e->schema_pending = true; /* told before the first change */
    return 0;
}

void engine_refuse_xids_behind(Engine *e, uint64_t xmax)
{
    elog(e, LOG_ERROR,
         "the database's transaction ids (next %" PRIu64 ") are behind the cursor (%" PRIu64
         "): the server has not seen transactions the sink has.  Either it was promoted from a "
         "standby that had not replayed everything the syncer read (a failover with "
         "asynchronous replication lost them: the index holds changes the database no longer "
         "has, so rebuild it into a new index), or the database was restored into another "
         "cluster (nothing lost).  Either way raise the ids with "
         "select txidsync.configure_txid_offset(%" PRIu64 "); then start again",
         xmax, e->cursor.xid_next, e->cursor.xid_next);
}

/* A database restored into a cluster with a lower xid counter, without a
 * raised txid offset, would hand out ids the cursor believes done.
 * Returns 0 or -1 (printed). */
static int start_check_xids(Engine *e)
{
    char err[1024];
    uint64_t xmax = 0;
    if (pg_snapshot_xmax(e->pg, &xmax, err, sizeof(err)) != PG_OK) {
        elog(e, LOG_ERROR, "%s", err);
        return -1;
    }
    /* A standby behind the cursor is waited for by the first batches. */
    if (xmax < e->cursor.xid_next && !e->standby) {
        engine_refuse_xids_behind(e, xmax);
        return -1;
    }
    e->stats.last_xmax = xmax;
    return 0;
}

int engine_open(Engine *e)
{
    /* The cursor before anything is prepared: when it is corrupt, nothing
     * at all is written. */
    if (start_pg(e) < 0 || start_cursor(e, &e->resuming) < 0 || start_check_xids(e) < 0 ||
        cursor_copy(&e->ahead, &e->cursor) < 0) {
        e->state = ENGINE_FAILED;
        return -1;
    }
    return 0;
}

int engine_reset(Engine *e)
{
    char err[1024];
    bool dropped = false, cleared = false;
    if (e->state != ENGINE_NEW || start_pg(e) < 0) {
        e->state = ENGINE_FAILED;
        return -1;
    }
    if (sink_drop(e->sink, &dropped, err, sizeof(err)) != SINK_OK) {
        elog(e, LOG_ERROR, "cannot delete %s: %s", e->where, err);
        e->state = ENGINE_FAILED;
        return -1;
    }
    if (store_clear(e->store, &cleared, err, sizeof(err)) != STORE_OK) {
        elog(e, LOG_ERROR, "deleted %s, but cannot remove the cursor in %s: %s", e->where,
             store_describe(e->store), err);
        e->state = ENGINE_FAILED;
        return -1;
    }
    elog(e, LOG_INFO, "reset: %s %s; %s %s; the next start copies %s afresh",
         dropped ? "deleted" : "nothing to delete at", e->where,
         cleared ? "removed the cursor in" : "no cursor stored in", store_describe(e->store),
         e->table.name);
    e->state = ENGINE_STOPPED;
    return 0;
}

int engine_start(Engine *e)
{
    if (e->state != ENGINE_NEW || !e->pg || start_sink(e) < 0 || engine_watch_pg(e) < 0) {
        e->state = ENGINE_FAILED;
        return -1;
    }
    char source[512];
    pg_describe(e->pg, source, sizeof(source));
    elog(e, LOG_INFO,
         "syncing %s (key %s) of %s into %s; cursor in %s, %s at xid %" PRIu64
         " with %zu in progress",
         e->table.name, e->table.key_columns, source, e->where, store_describe(e->store),
         e->resuming ? "resuming" : "starting", e->cursor.xid_next, e->cursor.n_xip);
    e->state = ENGINE_RUNNING;
    e->stats.last_line = clock_mono_s();
    e->stats.complete_at = e->stats.last_line; /* not known before: from the start at most */
    e->last_save = clock_mono_s();
    engine_refresh_note(e, false); /* columns changed while it did not run */
    if (!e->resuming)
        engine_backfill_begin(e);
    engine_kick(e);
    return 0;
}
