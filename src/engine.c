/*
 * engine: the sync of one table in the event loop (see engine.h).
 *
 * Batches flow through a short pipeline of slots, in the order they were
 * read: read a batch under the read cursor (pg), add its changes to a
 * request and send it (sink), up to max_in_flight requests at once while
 * the next batch is already read.  Neither side waits for the other: the
 * batch query is asynchronous, its socket is watched in the loop, and the
 * sink calls back when a request finished.  The read cursor moves as soon
 * as a batch is read; the acknowledged cursor, the only one ever persisted
 * (store), moves past a batch only once every change of it and of every
 * batch before it is acknowledged.  A batch that shares a key with an
 * earlier batch still in flight waits for it, so the writes of one key
 * reach the sink in version order.  A crash anywhere replays at most what
 * came after the last persisted cursor, which external versions make
 * harmless.
 *
 * Callbacks (the database socket, the sink's done calls) only record what
 * happened and ask for a step; step() does the work, in one order:
 * reconnect when due, acknowledge, send, fetch, wait for changes once
 * caught up, print stats, and arm the timer for the next thing due.
 */
#include "engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "crash.h"
#include "cursor.h"
#include "json.h"
#include "latency.h"
#include "log.h"
#include "pg.h"

#include "engine_impl.h"

static void on_timer(void *ctx);

/* Asks for a step in the next round of the loop. */
void engine_kick(Engine *e)
{
    if (e->state == ENGINE_RUNNING)
        loop_timer_after_ms(e->loop, &e->timer, 0);
}

/* Advances the splitmix64 state *s and returns the next 64 random bits. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The attempt-th exponential backoff with full jitter, in seconds. */
double engine_backoff_s(Engine *e, int attempt)
{
    long max = e->cfg.backoff_max_ms > 0 ? e->cfg.backoff_max_ms : BACKOFF_MAX_MS;
    long cap = BACKOFF_MIN_MS < max ? BACKOFF_MIN_MS : max;
    for (int i = 0; i < attempt && cap < max; i++)
        cap *= 2;
    if (cap > max)
        cap = max;
    long floor = (BACKOFF_MIN_MS < max ? BACKOFF_MIN_MS : max) / 2;
    return (double)(floor + (long)(rng_next(&e->rng) % (uint64_t)cap)) / 1000.0;
}

/* How often the moving cursor is saved at most, in seconds. */
static double save_every_s(const Engine *e)
{
    return e->cfg.save_every_ms > 0 ? (double)e->cfg.save_every_ms / 1000.0 : SAVE_EVERY_S;
}

/* The slot at position i of the ring, 0 being the oldest. */
static Slot *slot_at(Engine *e, size_t i)
{
    return &e->slots[(e->head + i) % e->n_slots];
}

/* Releases what a slot holds for its batch, keeping its memory for the next. */
static void slot_clear(Engine *e, Slot *sl)
{
    pg_batch_free(&sl->batch);
    cursor_free(&sl->after);
    if (sl->rq)
        sink_request_reset(e->sink, sl->rq);
    sl->n_pending = 0;
    sl->n_sent = 0;
    sl->split = 0;
    sl->n_keys = 0;
    sl->attempt = 0;
    sl->retry_at = 0;
}

/* Stops watching the database socket (before it is closed or reopened). */
void engine_unwatch_pg(Engine *e)
{
    if (e->pg_fd >= 0)
        loop_unwatch(e->loop, e->pg_fd);
    e->pg_fd = -1;
}

/* Ends the engine's run in state st: nothing more is read, sent or saved. */
static void halt(Engine *e, EngineState st)
{
    e->state = st;
    engine_unwatch_pg(e);
    engine_refresh_free(e);
    engine_prune_free(e);
    log_status(e, NULL); /* a backfill's progress line, if it has it */
    loop_timer_cancel(e->loop, &e->timer);
}

/* Stops the engine for good after an error it printed. */
void engine_fail(Engine *e)
{
    halt(e, ENGINE_FAILED);
    elog(e, LOG_ERROR, "the table stopped syncing");
}

static void on_pg_ready(void *ctx, int fd, int events);
static void end_idle(Engine *e, bool notified);

/* Watches the database socket (again, after a reconnect). */
int engine_watch_pg(Engine *e)
{
    int fd = pg_socket(e->pg);
    if (fd < 0 || loop_watch(e->loop, fd, LOOP_READ, on_pg_ready, e) < 0)
        return -1;
    e->pg_fd = fd;
    return 0;
}

/* Notes a lost connection: the reconnect happens in a later step. */
static void pg_lost(Engine *e, const char *err)
{
    elog(e, LOG_WARN, "lost the connection to postgres, reconnecting: %s", err);
    engine_unwatch_pg(e);
    e->pg_down = true;
    e->fetching = false;
    e->reconnect_attempt = 0;
    e->reconnect_at = clock_mono_s() + engine_backoff_s(e, 0);
}

/* Tries to reconnect when it is due.  Returns 0 (also while still down),
 * -1 when the engine failed (a server that came back as a standby). */
static int reconnect_if_due(Engine *e)
{
    char err[512];
    if (!e->pg_down || clock_mono_s() < e->reconnect_at)
        return 0;
    if (pg_reconnect(e->pg, err, sizeof(err)) != PG_OK) {
        elog(e, LOG_WARN, "postgres still unreachable (attempt %d): %s", ++e->reconnect_attempt,
             err);
        e->reconnect_at = clock_mono_s() + engine_backoff_s(e, e->reconnect_attempt);
        return 0;
    }
    e->stats.reconnects++;
    /* A syncer of a standby reads its batches by the standby's rule, so a
     * standby again is fine (a recovery conflict may end the session); a
     * syncer of a primary listens and keeps no done set: it stops. */
    bool standby = false;
    if (!e->standby && pg_in_recovery(e->pg, &standby, err, sizeof(err)) == PG_OK && standby) {
        elog(e, LOG_ERROR,
             "the server came back in recovery (a hot standby), and this syncer started on a "
             "primary: restart it to read the standby (it then polls and keeps a done set), "
             "or connect it to the primary");
        engine_fail(e);
        return -1;
    }
    /* The lock went with the old session: take it again, or stop when
     * another syncer took it meanwhile. */
    if (engine_lock(e) < 0) {
        engine_fail(e);
        return -1;
    }
    if (engine_watch_pg(e) < 0) {
        elog(e, LOG_ERROR, "cannot watch the database socket");
        engine_fail(e);
        return -1;
    }
    e->pg_down = false;
    e->idle = false; /* notifications may have been lost: look again */
    e->read_caught_up = false;
    elog(e, LOG_INFO, "reconnected to postgres");
    return 0;
}

/*
 * Persists the acknowledged cursor.  Returns 0 when saved (or nothing to
 * save), 1 when the store cannot take it yet (retried after a backoff;
 * once only when stopping), -1 when the engine failed.
 */
static int save_cursor(Engine *e)
{
    char err[512];
    if (cursor_same(&e->cursor, &e->saved) && !e->unsaved_rows)
        return 0;
    if (!e->stopping && clock_mono_s() < e->save_retry_at)
        return 1;
    crash_point("before saving the cursor");
    /* A target that does not keep what it acknowledged by itself keeps it
     * once flushed; only then may the cursor cover it. */
    SinkResult fr = e->target.durable ? SINK_OK : sink_flush(e->sink, err, sizeof(err));
    StoreResult r = fr == SINK_OK
                        ? store_save(e->store, &e->cursor, e->table.owner, err, sizeof(err))
                    : fr == SINK_RETRY ? STORE_RETRY
                                       : STORE_FAIL;
    if (r == STORE_FAIL) {
        elog(e, LOG_ERROR, "cannot save the cursor: %s", err);
        engine_fail(e);
        return -1;
    }
    if (r == STORE_RETRY) {
        e->stats.retries++;
        elog(e, LOG_WARN, "cannot save the cursor yet, retrying: %s", err);
        e->save_retry_at = clock_mono_s() + engine_backoff_s(e, e->save_attempt++);
        return 1;
    }
    crash_point("after saving the cursor");
    e->stats.saves++;
    e->save_attempt = 0;
    e->save_retry_at = 0;
    cursor_free(&e->saved);
    if (cursor_copy(&e->saved, &e->cursor) < 0) {
        elog(e, LOG_ERROR, "out of memory");
        engine_fail(e);
        return -1;
    }
    e->last_save = clock_mono_s();
    e->unsaved_rows = false;
    return 0;
}

/* FNV-1a of a key's text. */
static uint64_t key_hash(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

/* Orders two hashes ascending, for qsort. */
static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Tells whether two sorted hash lists share a value (a shared hash may be
 * a collision, which only costs a wait). */
static bool keys_overlap(const Slot *a, const Slot *b)
{
    size_t i = 0, j = 0;
    while (i < a->n_keys && j < b->n_keys) {
        if (a->keys[i] == b->keys[j])
            return true;
        if (a->keys[i] < b->keys[j])
            i++;
        else
            j++;
    }
    return false;
}

/* Makes room in sl for the per-row arrays of n rows.  Returns 0 or -1. */
static int slot_reserve(Slot *sl, size_t n)
{
    if (n <= sl->cap)
        return 0;
    SinkItem *items = realloc(sl->items, n * sizeof(*items));
    if (!items)
        return -1;
    sl->items = items;
    size_t *pending = realloc(sl->pending, n * sizeof(*pending));
    if (!pending)
        return -1;
    sl->pending = pending;
    uint64_t *keys = realloc(sl->keys, n * sizeof(*keys));
    if (!keys)
        return -1;
    sl->keys = keys;
    sl->cap = n;
    return 0;
}

/* Handles a failed batch query: a lost connection is reconnected, any
 * other failure is retried after a backoff that grows with every failure
 * in a row (a dropped table, a revoked privilege: the table backs off on
 * its own, the others go on).  With --once, which must end, the table
 * gives up after ONCE_FETCH_ERRORS_MAX failures in a row. */
static bool table_gone(Engine *e);

static void fetch_failed(Engine *e, int rc, const char *err)
{
    if (rc == PG_LOST) {
        pg_lost(e, err);
        return;
    }
    if (table_gone(e))
        return;
    e->fetch_errors++;
    if (e->cfg.once && e->fetch_errors > ONCE_FETCH_ERRORS_MAX) {
        elog(e, LOG_ERROR, "the batch query keeps failing, giving up (--once): %s", err);
        engine_fail(e);
        return;
    }
    if (strstr(err, "conflict with recovery"))
        elog(e, LOG_WARN,
             "the standby cancelled the batch query to replay the primary's changes (%d in a row), "
             "retrying: %s (hot_standby_feedback = on, or a larger max_standby_streaming_delay, "
             "on the standby avoids it)",
             e->fetch_errors, err);
    else
        elog(e, LOG_WARN, "the batch query failed (%d in a row), retrying: %s", e->fetch_errors,
             err);
    e->fetch_retry_at = clock_mono_s() + engine_backoff_s(e, e->fetch_errors);
}

/* After a failed batch query: when the table was dropped, untracked or
 * renamed, says so and stops the engine (the other tables go on), and
 * returns true. */
static bool table_gone(Engine *e)
{
    char err[1024], now[512];
    if (pg_table_tracked_as(e->pg, &e->table, now, sizeof(now), err, sizeof(err)) != PG_OK)
        return false; /* the usual retry finds out more */
    if (!now[0])
        elog(e, LOG_ERROR, "%s is no longer tracked (dropped, or untracked)", e->table.name);
    else if (strcmp(now, e->table.name) != 0)
        elog(e, LOG_ERROR, "%s was renamed to %s: configure the table under its new name",
             e->table.name, now);
    else
        return false;
    engine_fail(e);
    return true;
}

/* How many rows the next batch may have: batch_size, or fewer when the
 * rows are so large that batch_size of them would take more memory than
 * batch_max_bytes (by the size of the rows read last).  Until a row was
 * read, a small first batch finds out. */
static size_t batch_limit_bytes(const Engine *e)
{
    size_t max = e->cfg.batch_size;
    if (e->cfg.batch_max_bytes == 0)
        return max;
    if (e->row_bytes <= 0)
        return max < FIRST_BATCH_ROWS ? max : FIRST_BATCH_ROWS;
    double fit = (double)e->cfg.batch_max_bytes / e->row_bytes;
    if (fit < 1)
        return 1;
    return fit < (double)max ? (size_t)fit : max;
}

/* The row limit of the next batch: batch_limit_bytes, times the growth
 * factor of a standby whose last full batch made no progress. */
static size_t batch_limit(const Engine *e)
{
    return batch_limit_bytes(e) * (e->grow > 1 ? e->grow : 1);
}

/* Remembers the mean size of the rows of batch b (when it has any). */
static void note_row_bytes(Engine *e, const PgBatch *b)
{
    if (b->n_rows == 0)
        return;
    size_t bytes = 0;
    for (size_t i = 0; i < b->n_rows; i++)
        bytes += b->rows[i].doc_len + strlen(b->rows[i].key) + 64;
    e->row_bytes = (double)bytes / (double)b->n_rows;
}

/* Sends the query of the next batch under the read cursor, without
 * waiting for it (there must be a free slot). */
static void fetch_start(Engine *e)
{
    char err[1024];
    CursorQuery q;
    e->fetch_limit = batch_limit(e);
    e->fetch_at = clock_mono_s();
    cursor_query(&e->ahead, e->fetch_limit, &q);
    int rc = pg_batch_start(e->pg, &e->table, &q, err, sizeof(err));
    if (rc != PG_OK) {
        fetch_failed(e, rc, err);
        return;
    }
    e->fetching = true;
}

/* Moves sl->after past the batch of sl read on a hot standby, by the
 * standby's rule (docs/design.md §4, "On a hot standby"), counts the rows
 * the next batch reads again, and grows the batch limit while a full
 * batch leaves the cursor where it was (one transaction at or above the
 * standby's xmin with more rows than a batch).  Returns 0 or -1 (err). */
static int advance_recovery(Engine *e, Slot *sl, char *err, size_t errlen)
{
    const PgBatch *b = &sl->batch;
    size_t n = b->n_rows;
    uint64_t *txids = n > 0 ? malloc(n * sizeof(*txids)) : NULL;
    if (n > 0 && !txids)
        return err_printf(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++)
        txids[i] = b->rows[i].txid;
    size_t reread;
    int rc = cursor_advance_recovery(&sl->after, &b->snapshot, txids, n, e->fetch_limit,
                                     n > 0 ? b->rows[n - 1].key : NULL, &reread, err, errlen);
    free(txids);
    if (rc < 0)
        return -1;
    e->stats.reread += reread;
    bool stuck = n == e->fetch_limit && cursor_same(&sl->after, &e->ahead);
    bool was_stuck = e->standby_stuck;
    e->standby_stuck = stuck && e->grow >= STANDBY_GROW_MAX;
    if (stuck && e->grow < STANDBY_GROW_MAX) {
        e->grow = e->grow > 1 ? 2 * e->grow : 2;
        elog(e, LOG_WARN,
             "a transaction at or above the standby's xmin %" PRIu64
             " has more rows than a batch of %zu: reading %zu rows a batch until it is passed",
             b->snapshot.xmin, n, batch_limit(e));
    } else if (e->standby_stuck && !was_stuck) {
        elog(e, LOG_WARN,
             "the rows at or above the standby's xmin %" PRIu64
             " do not fit in a batch of %zu: they are read again every poll until the oldest "
             "transaction running on the primary ends",
             b->snapshot.xmin, n);
    } else if (!stuck) {
        e->grow = 1;
    }
    return 0;
}

/* Tells whether batch b was read on a server behind the read cursor, and
 * then drops it: a primary whose ids are behind lost transactions the
 * sink has (or is another database), which stops the engine; a standby
 * that has not replayed up to the cursor yet (the syncer read a server
 * ahead of it before) is waited for. */
static bool batch_behind(Engine *e, const PgBatch *b)
{
    uint64_t next = e->ahead.xid_next;
    if (!b->recovery) {
        if (b->snapshot.xmax >= next)
            return false;
        engine_refuse_xids_behind(e, b->snapshot.xmax);
        engine_fail(e);
        return true;
    }
    if (b->snapshot.xmin >= next) {
        if (e->standby_behind)
            elog(e, LOG_INFO, "the standby caught up with the cursor");
        e->standby_behind = false;
        return false;
    }
    if (!e->standby_behind)
        elog(e, LOG_WARN,
             "the standby has not replayed up to the cursor yet (its oldest running id %" PRIu64
             " is below the cursor's %" PRIu64 "): waiting for it",
             b->snapshot.xmin, next);
    e->standby_behind = true;
    e->fetch_retry_at = clock_mono_s() + engine_backoff_s(e, 1);
    return true;
}

/* Puts the batch just read into slot sl: the cursor after it, its pending
 * rows and key hashes.  Returns 0, or -1 when the engine failed. */
static int slot_fill(Engine *e, Slot *sl)
{
    char err[512];
    const PgBatch *b = &sl->batch;
    size_t n = b->n_rows;
    const PgRow *last = n > 0 ? &b->rows[n - 1] : NULL;
    if (cursor_copy(&sl->after, &e->ahead) < 0 || slot_reserve(sl, n) < 0) {
        elog(e, LOG_ERROR, "out of memory");
        goto fail;
    }
    if (e->standby && !b->recovery) {
        e->standby = false;
        elog(e, LOG_INFO, "the standby was promoted: reading it as a primary from here on");
    }
    /* A batch cut short by its byte budget is a batch of a smaller limit
     * that came back full: any limit keeps the cursor's rule. */
    int rc = b->recovery
                 ? advance_recovery(e, sl, err, sizeof(err))
                 : cursor_advance(&sl->after, &b->snapshot, n, e->fetch_limit,
                                  last ? last->txid : 0, last ? last->key : NULL, err, sizeof(err));
    if (rc < 0) {
        elog(e, LOG_ERROR, "cannot advance the cursor: %s", err);
        goto fail;
    }
    cursor_free(&e->ahead);
    if (cursor_copy(&e->ahead, &sl->after) < 0) {
        elog(e, LOG_ERROR, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        sl->pending[i] = i;
        sl->keys[i] = key_hash(b->rows[i].key);
    }
    sl->n_pending = n;
    sl->n_keys = n;
    qsort(sl->keys, n, sizeof(*sl->keys), compare_u64);
    sl->attempt = 0;
    sl->state = n > 0 ? SLOT_READY : SLOT_DONE;
    return 0;
fail:
    slot_clear(e, sl);
    engine_fail(e);
    return -1;
}

int engine_schema(Engine *e)
{
    char err[1024];
    if (!e->schema_pending)
        return 0;
    SinkSchema sc = {.columns = (const char *const *)e->table.columns,
                     .types = (const char *const *)e->table.column_types,
                     .nullable = e->table.column_nullable,
                     .n = e->table.n_columns,
                     .key = (const char *const *)e->table.key_names,
                     .n_key = e->table.n_keys};
    SinkResult r = sink_schema(e->sink, &sc, err, sizeof(err));
    if (r == SINK_OK) {
        e->schema_pending = false;
        return 0;
    }
    if (r == SINK_RETRY) {
        elog(e, LOG_WARN, "cannot record the table's columns in the sink yet, retrying: %s", err);
        e->fetch_retry_at = clock_mono_s() + engine_backoff_s(e, 1);
        return 1;
    }
    elog(e, LOG_ERROR, "cannot record the table's columns in the sink: %s", err);
    engine_fail(e);
    return -1;
}

/* The batch just read saw other columns than the engine knows: looks the
 * table up again, and has the sink told before the batch is sent.  A
 * table that cannot be looked up now keeps its old columns (its next
 * batch tries again). */
static void columns_changed(Engine *e, const char *hash)
{
    char err[1024];
    PgTable t;
    if (pg_table_resolve(e->pg, e->cfg.table, &t, err, sizeof(err)) != PG_OK ||
        pg_table_choose_columns(&t, e->cfg.columns, e->cfg.exclude_columns, err, sizeof(err)) < 0 ||
        sink_check_columns(e->sink, (const char *const *)t.columns, t.n_columns, err, sizeof(err)) <
            0) {
        elog(e, LOG_WARN, "the table's columns changed, and it cannot be looked up again: %s", err);
        pg_table_free(&t);
        return;
    }
    elog(e, LOG_INFO, "the table's columns changed (%zu now)", t.n_columns);
    pg_table_free(&e->table);
    e->table = t;
    snprintf(e->table.columns_hash, sizeof(e->table.columns_hash), "%s", hash);
    e->schema_pending = true;
    engine_refresh_note(e, true);
}

/* Reads what arrived of the outstanding batch query; once it is complete,
 * puts the batch into a new slot at the end of the ring and moves the read
 * cursor past it. */
static void fetch_poll(Engine *e)
{
    char err[1024];
    Slot *sl = slot_at(e, e->used);
    bool done = false;
    int rc = pg_batch_poll(e->pg, &sl->batch, &done, err, sizeof(err));
    if (rc != PG_OK || done)
        e->fetching = false;
    if (rc != PG_OK) {
        fetch_failed(e, rc, err);
        return;
    }
    if (!done || e->stopping) {
        if (done)
            pg_batch_free(&sl->batch); /* read while stopping: not sent */
        return;
    }
    e->fetch_errors = 0;
    e->stats.batches++;
    crash_point("after fetching a batch");
    if (batch_behind(e, &sl->batch)) {
        pg_batch_free(&sl->batch);
        return;
    }
    e->stats.last_xmax = sl->batch.snapshot.xmax;
    if (slot_fill(e, sl) < 0)
        return;
    if (sl->batch.columns_hash[0] && strcmp(sl->batch.columns_hash, e->table.columns_hash) != 0)
        columns_changed(e, sl->batch.columns_hash);
    size_t n = sl->batch.n_rows;
    e->used++;
    e->rows_read += n;
    sl->read_at = e->fetch_at;
    sl->complete = n < e->fetch_limit;
    /* A standby batch stuck at the largest limit waits like a short one
     * rather than reading the same rows again at once. */
    e->read_caught_up = sl->complete || e->standby_stuck;
    metrics_hist_record(&e->stats.batch_seconds, clock_mono_s() - e->fetch_at);
    note_row_bytes(e, &sl->batch);
}

/* The change of row, as the sink takes it. */
static SinkChange change_of(const PgRow *row)
{
    SinkChange ch = {.key = row->key,
                     .txid = row->txid,
                     .version = row->version,
                     .deleted = row->deleted,
                     .row = row->doc,
                     .row_len = row->doc_len};
    return ch;
}

static int rejected(Engine *e, const PgRow *row, const char *reason);
static void slot_retry_later(Engine *e, Slot *sl);

/*
 * Fills the slot's request with its pending rows, in order, until the
 * sink says the request is full (by bytes) or the split limit is reached;
 * those rows move to the front of pending (n_sent of them).  A row the
 * sink cannot take at all goes by the reject policy and out of pending.
 * Returns 0, 1 when the dead-letter place is busy and nothing could be
 * added (the slot waits), -1 when the engine failed.
 */
static int fill_request(Engine *e, Slot *sl)
{
    char err[1024];
    size_t w = 0, i = 0;
    sink_request_reset(e->sink, sl->rq);
    for (; i < sl->n_pending && (sl->split == 0 || w < sl->split); i++) {
        const PgRow *row = &sl->batch.rows[sl->pending[i]];
        SinkChange ch = change_of(row);
        int rc = sink_add(e->sink, sl->rq, &ch, err, sizeof(err));
        if (rc == SINK_ADD_FULL)
            break;
        if (rc == SINK_ADD_OK) {
            sl->pending[w++] = sl->pending[i];
            e->stats.bytes += row->doc_len + strlen(row->key);
            continue;
        }
        rc = rejected(e, row, err);
        if (rc < 0)
            return -1;
        if (rc == 1)
            break; /* sent again later, with the rows after it */
    }
    sl->n_sent = w;
    memmove(sl->pending + w, sl->pending + i, (sl->n_pending - i) * sizeof(*sl->pending));
    sl->n_pending = w + (sl->n_pending - i);
    return w == 0 && sl->n_pending > 0 ? 1 : 0;
}

/* Builds the request of a slot's pending rows and starts it.  Returns 0,
 * or -1 when the engine failed. */
static int send_slot(Engine *e, Slot *sl)
{
    char err[1024];
    if (!sl->rq)
        sl->rq = sink_request_new(e->sink);
    if (!sl->rq) {
        elog(e, LOG_ERROR, "out of memory");
        engine_fail(e);
        return -1;
    }
    int rc = fill_request(e, sl);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        slot_retry_later(e, sl);
        return 0;
    }
    if (sl->n_sent == 0) {
        sl->state = SLOT_DONE; /* every row went by the reject policy */
        e->unsaved_rows = true;
        return 0;
    }
    if (sink_send(e->sink, sl->rq, sl->items, sl, err, sizeof(err)) < 0) {
        elog(e, LOG_ERROR, "cannot send a request: %s", err);
        engine_fail(e);
        return -1;
    }
    sl->state = SLOT_SENT;
    sl->sent_at = clock_mono_s();
    e->stats.requests++;
    return 0;
}

/*
 * Starts every request that may start now, oldest first: a ready slot, or
 * a waiting one whose backoff is over, while the sink has room.  A ready
 * slot that shares a key with an earlier slot not yet done waits, and so
 * does everything after it.  Returns 0, or -1 when the engine failed.
 */
static int send_due(Engine *e)
{
    int sc = engine_schema(e);
    if (sc != 0)
        return sc < 0 ? -1 : 0; /* nothing is sent before the sink knows the columns */
    double t = clock_mono_s();
    for (size_t i = 0; i < e->used && sink_has_room(e->sink); i++) {
        Slot *sl = slot_at(e, i);
        if (sl->state == SLOT_WAITING && t >= sl->retry_at) {
            if (send_slot(e, sl) < 0)
                return -1;
            continue;
        }
        if (sl->state != SLOT_READY)
            continue;
        for (size_t j = 0; j < i; j++) {
            const Slot *earlier = slot_at(e, j);
            if (earlier->state != SLOT_DONE && keys_overlap(earlier, sl))
                return 0;
        }
        if (send_slot(e, sl) < 0)
            return -1;
    }
    return 0;
}

/* Puts a slot whose pending rows must go again into the waiting state. */
static void slot_retry_later(Engine *e, Slot *sl)
{
    sl->retry_at = clock_mono_s() + engine_backoff_s(e, sl->attempt);
    sl->attempt++;
    sl->state = SLOT_WAITING;
}

/* Seconds since the epoch, for latencies against the writers' clock. */
static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Records the commit-to-acknowledgement latency of a row acknowledged at
 * wall time now, when a latency field is set and the row carries it. */
static void note_latency(Engine *e, const PgRow *row, double now)
{
    double ts;
    if (!e->latency_on || !row->doc ||
        !json_find_number(row->doc, row->doc_len, &e->latency_path, &ts))
        return;
    latency_record(&e->latency_interval, now - ts);
    latency_record(&e->latency_total, now - ts);
}

/* Handles a change the sink rejected for good, by the reject policy.
 * Returns 0 (recorded), 1 (the dead-letter place is busy: send the row
 * again later), -1 when the engine failed. */
static int rejected(Engine *e, const PgRow *row, const char *reason)
{
    char err[512];
    e->stats.rejected++;
    if (!e->cfg.dead_letter) {
        elog(e, LOG_ERROR,
             "the sink rejected key %s (version %" PRIu64 ", txid %" PRIu64
             "): %s; stopping (--on-reject stop), the cursor stays before this batch",
             row->key, row->version, row->txid, reason);
        engine_fail(e);
        return -1;
    }
    SinkChange ch = change_of(row);
    SinkResult r = sink_dead_letter(e->sink, &ch, reason, err, sizeof(err));
    if (r == SINK_OK) {
        e->stats.dead_letters++;
        elog(e, LOG_WARN,
             "the sink rejected key %s (version %" PRIu64 "): %s; recorded as a dead letter",
             row->key, row->version, reason);
        return 0;
    }
    if (r == SINK_RETRY) {
        elog(e, LOG_WARN, "cannot record the rejected key %s yet, retrying: %s", row->key, err);
        return 1;
    }
    elog(e, LOG_ERROR, "cannot record the rejected key %s: %s", row->key, err);
    engine_fail(e);
    return -1;
}

/* Counts one acknowledged row. */
static void acked(Engine *e, const PgRow *row, bool conflict, double now)
{
    if (conflict) {
        e->stats.conflicts++;
    } else {
        e->stats.rows++;
        if (row->deleted)
            e->stats.deletes++;
    }
    note_latency(e, row, now);
}

/* After the request of a slot ended with keep of its n_sent rows still
 * to go again (moved to the front of pending): puts the rows never sent
 * after them and says what the slot does next. */
static void slot_next(Engine *e, Slot *sl, size_t keep, const char *why)
{
    size_t unsent = sl->n_pending - sl->n_sent;
    memmove(sl->pending + keep, sl->pending + sl->n_sent, unsent * sizeof(*sl->pending));
    sl->n_pending = keep + unsent;
    sl->n_sent = 0;
    e->unsaved_rows = true;
    if (keep > 0) {
        e->stats.retries++;
        elog(e, LOG_WARN, "%zu changes must be retried (%s)", keep, why);
        slot_retry_later(e, sl);
    } else {
        sl->state = sl->n_pending > 0 ? SLOT_READY : SLOT_DONE;
    }
}

/* Takes the per-change outcomes of an answered request: rows applied or
 * already applied are done, rejected ones go by the policy, the rest go
 * again after a backoff; rows that did not fit in it go next. */
static void take_items(Engine *e, Slot *sl)
{
    double now = wall_s();
    size_t still = 0;
    const char *why = "busy";
    for (size_t i = 0; i < sl->n_sent && e->state == ENGINE_RUNNING; i++) {
        const PgRow *row = &sl->batch.rows[sl->pending[i]];
        const SinkItem *it = &sl->items[i];
        int rc = 0;
        switch (it->outcome) {
        case SINK_APPLIED:
        case SINK_ALREADY_APPLIED:
            acked(e, row, it->outcome == SINK_ALREADY_APPLIED, now);
            break;
        case SINK_RETRY_LATER:
            rc = 1;
            if (it->reason[0])
                why = it->reason;
            break;
        case SINK_REJECTED:
            rc = rejected(e, row, it->reason);
            break;
        }
        if (rc == 1)
            sl->pending[still++] = sl->pending[i];
    }
    if (e->state != ENGINE_RUNNING)
        return;
    if (sl->split > 0)
        sl->split = sl->split * 2 >= e->cfg.batch_size ? 0 : sl->split * 2;
    slot_next(e, sl, still, why);
}

/* Handles a request the sink refused for what it holds: a request of
 * several changes goes again in halves, a change refused alone is
 * rejected for good. */
static void take_split(Engine *e, Slot *sl, const char *err)
{
    if (sl->n_sent > 1) {
        sl->split = sl->n_sent / 2;
        elog(e, LOG_WARN,
             "the sink refused a request of %zu changes for what it holds, sending them in "
             "parts of %zu to find the change at fault: %s",
             sl->n_sent, sl->split, err);
        sl->n_sent = 0;
        sl->state = SLOT_READY; /* at once: the sink is not busy */
        return;
    }
    int rc = rejected(e, &sl->batch.rows[sl->pending[0]], err);
    if (rc >= 0)
        slot_next(e, sl, rc == 1 ? 1 : 0, "the dead-letter place is busy");
}

/* After a request went through whole, the requests waiting out a backoff
 * go at once: the sink is back.  Without this the oldest batch, failed
 * first in an outage and so with the longest backoff, could wait up to
 * --backoff-max after the sink returned while younger batches went
 * through, its rows late and the cursor held behind it. */
static void wake_waiting(Engine *e)
{
    double now = clock_mono_s();
    for (size_t i = 0; i < e->used; i++) {
        Slot *sl = slot_at(e, i);
        if (sl->state == SLOT_WAITING && sl->retry_at > now)
            sl->retry_at = now;
    }
}

/* The sink's call for a finished request. */
static void on_sink_done(void *owner, void *tag, SinkResult result, const char *err)
{
    Engine *e = owner;
    Slot *sl = tag;
    if (e->state != ENGINE_RUNNING)
        return;
    metrics_hist_record(&e->stats.request_seconds, clock_mono_s() - sl->sent_at);
    e->stats.sink_down = result == SINK_RETRY;
    if (result == SINK_FAIL) {
        /* Refused as a whole (a 4xx): nothing of it is applied.  The table
         * backs off on its own and tries again, so that an operator can
         * fix the target meanwhile; --once, which must end, gives up. */
        if (e->cfg.once && sl->attempt >= ONCE_FETCH_ERRORS_MAX) {
            elog(e, LOG_ERROR, "the sink keeps refusing a request, giving up (--once): %s", err);
            engine_fail(e);
            return;
        }
        e->stats.retries++;
        elog(e, LOG_ERROR, "the sink refused a request (attempt %d), trying again later: %s",
             sl->attempt + 1, err);
        sl->n_sent = 0;
        slot_retry_later(e, sl);
    } else if (result == SINK_SPLIT) {
        take_split(e, sl, err);
    } else if (result == SINK_RETRY) {
        e->stats.retries++;
        elog(e, LOG_WARN, "sink unavailable, retrying (attempt %d): %s", sl->attempt + 1, err);
        sl->n_sent = 0;
        slot_retry_later(e, sl);
    } else {
        take_items(e, sl);
        if (e->state == ENGINE_RUNNING && sl->state != SLOT_WAITING)
            wake_waiting(e); /* not when the sink asked for some of it again */
    }
    engine_kick(e);
}

/*
 * Moves the acknowledged cursor past every done slot at the head of the
 * ring, and persists it when the engine caught up with rows unsaved, or
 * when save_every_s passed: the stored cursor may lag, never lead.
 * Returns 0, or -1 when the engine failed.
 */
static int acknowledge(Engine *e)
{
    while (e->used > 0 && slot_at(e, 0)->state == SLOT_DONE) {
        Slot *sl = slot_at(e, 0);
        if (sl->batch.n_rows > 0 && !e->stopping)
            crash_point("after the bulk, before the cursor is saved");
        cursor_free(&e->cursor);
        if (cursor_copy(&e->cursor, &sl->after) < 0) {
            elog(e, LOG_ERROR, "out of memory");
            engine_fail(e);
            return -1;
        }
        if (sl->complete)
            e->stats.complete_at = sl->read_at;
        slot_clear(e, sl);
        e->head = (e->head + 1) % e->n_slots;
        e->used--;
    }
    if (e->stopping)
        return 0;
    bool drained = e->used == 0 && e->read_caught_up;
    bool due = clock_mono_s() - e->last_save >= save_every_s(e);
    if ((drained && e->unsaved_rows) || (due && !cursor_same(&e->cursor, &e->saved)))
        return save_cursor(e) < 0 ? -1 : 0;
    return 0;
}

uint64_t engine_lag_transactions(const Engine *e)
{
    uint64_t next = e->cursor.xid_next;
    return e->stats.last_xmax > next ? e->stats.last_xmax - next : 0;
}

double engine_lag_s(const Engine *e, double now)
{
    bool pending = !e->read_caught_up;
    for (size_t i = 0; i < e->used && !pending; i++) {
        const Slot *sl = &e->slots[(e->head + i) % e->n_slots];
        pending = sl->batch.n_rows > 0 || !sl->complete;
    }
    if (!pending || e->stats.complete_at <= 0)
        return 0.0;
    return now > e->stats.complete_at ? now - e->stats.complete_at : 0.0;
}

/* Prints the periodic stats line when it is due (or when force is set).
 * With a latency field, it ends with the latency quantiles of the rows
 * acknowledged since the previous line. */
static void stats_line(Engine *e, bool force)
{
    double t = clock_mono_s();
    double every = (double)e->cfg.stats_interval_s;
    if (!force && (every <= 0 || t - e->stats.last_line < every))
        return;
    double dt = t - e->stats.last_line;
    uint64_t lag_tx = engine_lag_transactions(e);
    char latency[160] = "", refresh[200], backfill[200];
    engine_refresh_text(e, refresh, sizeof(refresh));
    engine_backfill_text(e, backfill, sizeof(backfill));
    if (e->latency_on) {
        const LatencyHist *h = &e->latency_interval;
        snprintf(latency, sizeof(latency),
                 ", latency p50 %.1f ms p95 %.1f ms p99 %.1f ms of %" PRIu64 " rows",
                 latency_quantile(h, 0.50) * 1e3, latency_quantile(h, 0.95) * 1e3,
                 latency_quantile(h, 0.99) * 1e3, h->n);
        latency_reset(&e->latency_interval);
    }
    const Stats *s = &e->stats;
    double rate = dt > 0 ? (double)(s->rows - s->rows_at_last_line) / dt : 0.0;
    double lag_s = engine_lag_s(e, t);
    char fields[600], standby[120] = "";
    if (e->standby || s->reread > 0)
        snprintf(standby, sizeof(standby),
                 ", standby: %zu done above xmin, %" PRIu64 " rows re-read", e->cursor.n_done,
                 s->reread);
    snprintf(fields, sizeof(fields),
             "{\"rows\":%" PRIu64 ",\"rows_per_s\":%.1f,\"deletes\":%" PRIu64
             ",\"conflicts\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"rejected\":%" PRIu64
             ",\"batches\":%" PRIu64 ",\"reconnects\":%" PRIu64 ",\"lag_transactions\":%" PRIu64
             ",\"lag_seconds\":%.3f,\"in_progress\":%zu,\"refreshes\":%" PRIu64
             ",\"refresh_rows\":%" PRIu64 ",\"standby_done\":%zu,\"standby_reread\":%" PRIu64 "}",
             s->rows, rate, s->deletes, s->conflicts, s->retries, s->rejected, s->batches,
             s->reconnects, lag_tx, lag_s, e->cursor.n_xip, s->refreshes, s->refresh_rows,
             e->cursor.n_done, s->reread);
    log_table(LOG_INFO, e->cfg.name, fields,
              "stats: %" PRIu64 " rows (%.0f/s), %" PRIu64 " deletes, %" PRIu64
              " conflicts, %" PRIu64 " retries, %" PRIu64 " rejected, %" PRIu64 " batches, %" PRIu64
              " reconnects, lag %" PRIu64 " transactions %.1f s, %zu in progress, %" PRIu64
              " refreshes (%" PRIu64 " rows)%s%s%s%s",
              s->rows, rate, s->deletes, s->conflicts, s->retries, s->rejected, s->batches,
              s->reconnects, lag_tx, lag_s, e->cursor.n_xip, s->refreshes, s->refresh_rows, standby,
              backfill, refresh, latency);
    e->stats.last_line = t;
    e->stats.rows_at_last_line = e->stats.rows;
}

/* Prints the latency quantiles of every row acknowledged since the start
 * or the last report (with a latency field). */
static void latency_summary(Engine *e)
{
    if (!e->latency_on)
        return;
    const LatencyHist *h = &e->latency_total;
    elog(e, LOG_INFO,
         "latency: %" PRIu64 " rows, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms", h->n,
         latency_quantile(h, 0.50) * 1e3, latency_quantile(h, 0.95) * 1e3,
         latency_quantile(h, 0.99) * 1e3, h->max_s * 1e3);
}

/* Ends the engine's run once nothing is in flight: saves what was
 * acknowledged and says where it stopped. */
static void finish(Engine *e, const char *why)
{
    if (save_cursor(e) < 0)
        return;
    engine_prune_final(e);
    stats_line(e, true);
    latency_summary(e);
    elog(e, LOG_INFO, "%s at xid %" PRIu64, why, e->cursor.xid_next);
    halt(e, ENGINE_STOPPED);
}

/*
 * Starts waiting for changes, once every batch read is acknowledged and
 * the last one came back short: on the first time, LISTEN (when the table
 * notifies) and look once more; then until a notification or the poll
 * interval.  Listening, a notification ends the wait at once and
 * poll_interval_ms is only the safety net.  Without notifications the poll
 * adapts: short while changes flow, doubling up to poll_interval_ms while
 * idle.
 */
static void begin_idle(Engine *e)
{
    char err[1024];
    if (!e->listening && e->table.notify && !e->standby) {
        int rc = pg_listen(e->pg, e->table.channel, err, sizeof(err));
        if (rc == PG_OK) {
            e->listening = true;
            elog(e, LOG_INFO, "caught up at xid %" PRIu64 "; listening on %s", e->cursor.xid_next,
                 e->table.channel);
            e->read_caught_up = false; /* a change may have come before LISTEN */
            return;
        }
        if (rc == PG_LOST) {
            pg_lost(e, err);
            return;
        }
        elog(e, LOG_WARN, "cannot listen on %s, polling instead: %s", e->table.channel, err);
    }
    bool flowing = e->rows_read > 0;
    e->rows_read = 0;
    if (flowing)
        e->poll_ms = POLL_MIN_MS;
    long wait_ms = e->listening ? e->cfg.poll_interval_ms : e->poll_ms;
    e->idle = true;
    e->idle_doubles = !e->listening && !flowing;
    e->idle_until = clock_mono_s() + (double)wait_ms / 1000.0;
    /* A notification libpq read along with the last batch's result is
     * queued already; the socket will not tell of it again. */
    bool notified = false;
    int rc = e->listening ? pg_wait(e->pg, 0, &notified, err, sizeof(err)) : PG_OK;
    if (rc == PG_LOST)
        pg_lost(e, err);
    else if (notified)
        end_idle(e, true);
}

/* Ends the wait for changes (notified: a notification came). */
static void end_idle(Engine *e, bool notified)
{
    if (!e->idle)
        return;
    e->idle = false;
    e->read_caught_up = false;
    if (!notified && e->idle_doubles) {
        e->poll_ms *= 2;
        if (e->poll_ms > e->cfg.poll_interval_ms)
            e->poll_ms = e->cfg.poll_interval_ms;
    }
}

/* The loop's call for the database socket: the batch query's result, a
 * notification, or news of a lost connection. */
static void on_pg_ready(void *ctx, int fd, int events)
{
    (void)fd;
    (void)events;
    Engine *e = ctx;
    char err[1024];
    if (e->state != ENGINE_RUNNING || e->pg_down)
        return;
    if (e->fetching) {
        fetch_poll(e);
    } else {
        bool notified = false;
        int rc = pg_wait(e->pg, 0, &notified, err, sizeof(err));
        if (rc == PG_LOST)
            pg_lost(e, err);
        else if (notified)
            engine_notice_changes(e);
    }
    engine_kick(e);
}

void engine_notice_changes(Engine *e)
{
    if (e->idle)
        end_idle(e, true);
    else
        e->read_caught_up = false; /* read again once a slot is free */
}

/* The earliest moment something of the engine is due, given that it is
 * running: a retry, a reconnect, a save, the end of a wait, a stats line. */
static double next_due(Engine *e)
{
    double at = clock_mono_s() + 3600;
#define EARLIER(t)                                                                                 \
    do {                                                                                           \
        double t_ = (t);                                                                           \
        if (t_ < at)                                                                               \
            at = t_;                                                                               \
    } while (0)
    if (e->pg_down)
        EARLIER(e->reconnect_at);
    if (e->fetch_retry_at > 0 && !e->fetching)
        EARLIER(e->fetch_retry_at);
    if (e->idle)
        EARLIER(e->idle_until);
    if (e->save_retry_at > 0)
        EARLIER(e->save_retry_at);
    if (!cursor_same(&e->cursor, &e->saved) || e->unsaved_rows)
        EARLIER(e->last_save + save_every_s(e));
    if (e->cfg.stats_interval_s > 0)
        EARLIER(e->stats.last_line + (double)e->cfg.stats_interval_s);
    if (engine_refresh_due(e) > 0)
        EARLIER(engine_refresh_due(e));
    if (engine_backfill_due(e) > 0)
        EARLIER(engine_backfill_due(e));
    if (!engine_refresh_running(e))
        EARLIER(e->refresh.next_poll);
    if (engine_prune_due(e) > 0)
        EARLIER(engine_prune_due(e));
    for (size_t i = 0; i < e->used; i++) {
        const Slot *sl = slot_at(e, i);
        if (sl->state == SLOT_WAITING)
            EARLIER(sl->retry_at);
    }
#undef EARLIER
    return at;
}

/* One step of the engine while stopping: once nothing is in flight, keep
 * what was acknowledged and stop. */
static void step_stopping(Engine *e)
{
    if (sink_in_flight(e->sink) > 0)
        return; /* the done calls kick */
    if (acknowledge(e) < 0)
        return;
    finish(e, "stopped by a signal");
}

/* Whether the engine may read the next batch now. */
static bool may_fetch(const Engine *e)
{
    return !e->fetching && !e->read_caught_up && !e->idle && !e->pg_down && e->used < e->n_slots &&
           clock_mono_s() >= e->fetch_retry_at;
}

/* Does what is due, in order (see the file's comment), then arms the timer. */
static void step(Engine *e)
{
    if (e->state != ENGINE_RUNNING)
        return;
    if (e->stopping) {
        step_stopping(e);
        return;
    }
    if (reconnect_if_due(e) < 0 || acknowledge(e) < 0)
        return;
    if (e->idle && clock_mono_s() >= e->idle_until)
        end_idle(e, false);
    engine_prune_tick(e); /* a registration goes between two batch queries */
    /* The next batch's query first: Postgres works on it while the
     * batches read are sent. */
    if (may_fetch(e))
        fetch_start(e);
    if (send_due(e) < 0)
        return;
    engine_refresh_poll(e);
    engine_refresh_step(e);
    bool settled = e->read_caught_up && e->used == 0 && !e->fetching && !e->idle && !e->pg_down;
    engine_backfill_report(e, settled);
    if (settled) {
        if (e->cfg.once && engine_refresh_running(e)) {
            /* --once also waits for the refresh: its steps kick */
        } else if (e->cfg.once) {
            int sv = save_cursor(e);
            if (sv == 0 && engine_prune_settle(e))
                return; /* --once prunes once before it exits: the answer kicks */
            if (sv == 0)
                finish(e, "caught up (--once), exiting");
            if (sv != 1)
                return;
        } else {
            begin_idle(e);
            if (!e->idle) {
                engine_kick(e);
                return;
            }
        }
    }
    if (e->state != ENGINE_RUNNING)
        return;
    stats_line(e, false);
    loop_timer_at(e->loop, &e->timer, next_due(e));
}

static void on_timer(void *ctx)
{
    step(ctx);
}

Engine *engine_new(const EngineConfig *cfg, Loop *loop, Sink *sink, Store *store, char *err,
                   size_t errlen)
{
    Engine *e = calloc(1, sizeof(*e));
    if (!e)
        goto oom;
    e->cfg = *cfg;
    e->loop = loop;
    e->sink = sink;
    e->store = store;
    e->pg_fd = -1;
    e->refresh.fd = -1;
    e->prune.fd = -1;
    e->state = ENGINE_NEW;
    e->poll_ms = POLL_MIN_MS;
    e->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)e;
    cursor_init(&e->cursor);
    cursor_init(&e->saved);
    cursor_init(&e->ahead);
    loop_timer_init(&e->timer, on_timer, e);
    e->n_slots = (cfg->max_in_flight > 0 ? cfg->max_in_flight : 1) + 1;
    e->slots = calloc(e->n_slots, sizeof(*e->slots));
    if (!e->slots)
        goto oom;
    for (size_t i = 0; i < e->n_slots; i++)
        cursor_init(&e->slots[i].after);
    if (cfg->latency_field && *cfg->latency_field) {
        if (json_path_compile(&e->latency_path, cfg->latency_field) < 0) {
            err_printf(err, errlen,
                       "%s: --latency-field: %s is not a dotted path of at most %d "
                       "member names",
                       cfg->name, cfg->latency_field, JSON_PATH_MAX);
            engine_free(e);
            return NULL;
        }
        e->latency_on = true;
    }
    snprintf(e->where, sizeof(e->where), "%s%s%s", sink_describe(sink),
             cfg->target && *cfg->target ? "/" : "", cfg->target ? cfg->target : "");
    sink_bind(sink, on_sink_done, e);
    return e;
oom:
    err_printf(err, errlen, "out of memory");
    if (e)
        engine_free(e);
    else {
        sink_free(sink);
        store_free(store);
    }
    return NULL;
}

void engine_free(Engine *e)
{
    if (!e)
        return;
    engine_unwatch_pg(e);
    engine_refresh_free(e);
    engine_prune_free(e);
    loop_timer_cancel(e->loop, &e->timer);
    sink_free(e->sink); /* abandons requests in flight, which borrow the slots */
    for (size_t i = 0; e->slots && i < e->n_slots; i++) {
        Slot *sl = &e->slots[i];
        pg_batch_free(&sl->batch);
        cursor_free(&sl->after);
        free(sl->items);
        free(sl->pending);
        free(sl->keys);
    }
    free(e->slots);
    store_free(e->store);
    pg_table_free(&e->table);
    pg_free(e->pg);
    cursor_free(&e->cursor);
    cursor_free(&e->saved);
    cursor_free(&e->ahead);
    free(e);
}

void engine_stop(Engine *e)
{
    if (e->state != ENGINE_RUNNING || e->stopping)
        return;
    e->stopping = true;
    engine_kick(e);
}

void engine_report(Engine *e)
{
    if (e->state != ENGINE_RUNNING)
        return;
    stats_line(e, true);
    latency_summary(e);
    latency_reset(&e->latency_total);
}

EngineState engine_state(const Engine *e)
{
    return e->state;
}
