/*
 * sync: the daemon's loop (see sync.h).
 *
 * One iteration: read a batch under the cursor (pg), send it as one _bulk
 * request with external versions (es), and only once every action of it
 * is acknowledged, advance the cursor and, from time to time, persist it
 * (store).  A crash anywhere replays at most what came after the last
 * persisted cursor, which external versions make harmless.
 */
#include "sync.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "buf.h"
#include "crash.h"
#include "cursor.h"
#include "es.h"
#include "log.h"
#include "pg.h"
#include "store.h"

#define BODY_MAX          ((size_t)512 << 20)
#define SAVE_EVERY_S      1.0
#define BACKOFF_MIN_MS    100
#define BACKOFF_MAX_MS    30000
#define POLL_MIN_MS       20
#define FETCH_ERRORS_MAX  10
#define START_BUSY_WAIT_S 60.0

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

typedef struct Stats {
    uint64_t rows, deletes, conflicts, retries, rejected, batches, reconnects;
    uint64_t rows_at_last_line;
    double last_line;
    double behind_since; /* when the syncer was last caught up; 0 = it is */
    uint64_t last_xmax;
} Stats;

typedef struct Sync {
    const SyncConfig *cfg;
    PgConn *pg;
    PgTable table;
    EsClient *es;
    Store *store;
    char store_id[512];
    Cursor cursor;
    Cursor saved; /* what the store holds */
    double last_save;
    bool unsaved_rows; /* rows were delivered since the last save */
    bool listening;
    long poll_ms; /* current adaptive poll interval */
    Buf body;
    Buf doc;
    EsBulkItem *items;
    size_t *item_row; /* for each action of the body, its row */
    size_t cap;
    uint64_t rng;
    Stats stats;
} Sync;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps ms milliseconds in short steps; returns early (-1) on a stop
 * request. */
static int sleep_ms(long ms)
{
    while (ms > 0 && !stop_requested) {
        long step = ms < 100 ? ms : 100;
        struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return stop_requested ? -1 : 0;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Waits the attempt-th exponential backoff with full jitter.  Returns -1
 * when a stop was requested meanwhile. */
static int backoff(Sync *s, int attempt)
{
    long cap = BACKOFF_MIN_MS;
    for (int i = 0; i < attempt && cap < BACKOFF_MAX_MS; i++)
        cap *= 2;
    if (cap > BACKOFF_MAX_MS)
        cap = BACKOFF_MAX_MS;
    long ms = BACKOFF_MIN_MS / 2 + (long)(rng_next(&s->rng) % (uint64_t)cap);
    return sleep_ms(ms);
}

/* Reconnects to Postgres with backoff until it works or a stop is
 * requested (-1).  Refuses (-2) a server that came back as a standby. */
static int reconnect(Sync *s)
{
    char err[512];
    for (int attempt = 0;; attempt++) {
        if (backoff(s, attempt) < 0)
            return -1;
        if (pg_reconnect(s->pg, err, sizeof(err)) == PG_OK)
            break;
        log_warn("postgres still unreachable (attempt %d): %s", attempt + 1, err);
    }
    s->stats.reconnects++;
    bool standby = false;
    if (pg_in_recovery(s->pg, &standby, err, sizeof(err)) == PG_OK && standby) {
        log_error("the server is in recovery (a hot standby): its snapshots do not list running "
                  "transactions, so txidsync would skip rows; connect it to the primary");
        return -2;
    }
    log_info("reconnected to postgres");
    return 0;
}

/* Persists the cursor, retrying while the sink is unreachable.  Returns 0,
 * -1 on a stop request before it could be saved, -2 when the store
 * refuses for good. */
static int save_cursor(Sync *s)
{
    char err[512];
    if (cursor_same(&s->cursor, &s->saved) && !s->unsaved_rows)
        return 0;
    crash_point("before saving the cursor");
    for (int attempt = 0;; attempt++) {
        StoreResult r = store_save(s->store, &s->cursor, err, sizeof(err));
        if (r == STORE_OK)
            break;
        if (r == STORE_FAIL) {
            log_error("cannot save the cursor: %s", err);
            return -2;
        }
        s->stats.retries++;
        log_warn("cannot save the cursor yet, retrying: %s", err);
        if (backoff(s, attempt) < 0)
            return -1;
    }
    crash_point("after saving the cursor");
    cursor_free(&s->saved);
    if (cursor_copy(&s->saved, &s->cursor) < 0) {
        log_error("out of memory");
        return -2;
    }
    s->last_save = now_s();
    s->unsaved_rows = false;
    return 0;
}

/* yajl print callback into a Buf; a failed append is remembered. */
typedef struct GenSink {
    Buf *buf;
    int failed;
} GenSink;

static void gen_print(void *ctx, const char *str, size_t len)
{
    GenSink *g = ctx;
    if (!g->failed && buf_append(g->buf, str, len) < 0)
        g->failed = 1;
}

static int gen_str(yajl_gen g, const char *str)
{
    return yajl_gen_string(g, (const unsigned char *)str, strlen(str)) == yajl_gen_status_ok ? 0
                                                                                             : -1;
}

static int gen_u64(yajl_gen g, uint64_t v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%" PRIu64, v);
    return yajl_gen_number(g, num, (size_t)n) == yajl_gen_status_ok ? 0 : -1;
}

/*
 * Puts into s->doc the document of a live row: the row's JSON object with
 * the metadata the checker compares added as one more field,
 * "txidsync":{"key":..,"txid":..,"version":..}.  Returns -1 when the row's
 * JSON is not an object or memory runs out.
 */
static int build_doc(Sync *s, const PgRow *row)
{
    buf_reset(&s->doc);
    size_t len = row->doc_len;
    while (len > 0 && (row->doc[len - 1] == ' ' || row->doc[len - 1] == '\n'))
        len--;
    if (len < 2 || row->doc[0] != '{' || row->doc[len - 1] != '}')
        return -1;
    bool empty = true;
    for (size_t i = 1; i + 1 < len; i++) {
        if (row->doc[i] != ' ') {
            empty = false;
            break;
        }
    }
    if (buf_append(&s->doc, row->doc, len - 1) < 0 || buf_puts(&s->doc, empty ? "" : ",") < 0)
        return -1;
    GenSink sink = {&s->doc, 0};
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return -1;
    yajl_gen_config(g, yajl_gen_print_callback, gen_print, &sink);
    int bad = yajl_gen_map_open(g) != yajl_gen_status_ok || gen_str(g, "txidsync") ||
              yajl_gen_map_open(g) != yajl_gen_status_ok || gen_str(g, "key") ||
              gen_str(g, row->key) || gen_str(g, "txid") || gen_u64(g, row->txid) ||
              gen_str(g, "version") || gen_u64(g, row->version) ||
              yajl_gen_map_close(g) != yajl_gen_status_ok ||
              yajl_gen_map_close(g) != yajl_gen_status_ok;
    yajl_gen_free(g);
    if (bad || sink.failed)
        return -1;
    /* The generated text is {"txidsync":{...}}: drop its outer braces so
     * it becomes one more field of the row's object. */
    size_t start = len - 1 + (empty ? 0 : 1);
    memmove(s->doc.data + start, s->doc.data + start + 1, s->doc.len - start - 1);
    s->doc.len -= 1;
    s->doc.data[s->doc.len - 1] = '}';
    s->doc.data[s->doc.len] = '\0';
    return 0;
}

/* Appends the action for row (index or delete) to the bulk body. */
static int add_row(Sync *s, const PgRow *row)
{
    if (row->deleted)
        return es_bulk_add_delete(&s->body, s->cfg->index, row->key, row->version);
    if (build_doc(s, row) < 0)
        return -1;
    return es_bulk_add_index(&s->body, s->cfg->index, row->key, row->version, s->doc.data,
                             s->doc.len);
}

/* Records a rejected row in the dead-letter index, retrying while the sink
 * is unreachable.  Returns 0, -1 on a stop request, -2 on failure. */
static int dead_letter(Sync *s, const PgRow *row, const char *why)
{
    Buf d;
    buf_init(&d, BODY_MAX);
    GenSink sink = {&d, 0};
    yajl_gen g = yajl_gen_alloc(NULL);
    int rc = -2;
    if (!g)
        goto done;
    yajl_gen_config(g, yajl_gen_print_callback, gen_print, &sink);
    int bad =
        yajl_gen_map_open(g) != yajl_gen_status_ok || gen_str(g, "index") ||
        gen_str(g, s->cfg->index) || gen_str(g, "table") || gen_str(g, s->table.name) ||
        gen_str(g, "key") || gen_str(g, row->key) || gen_str(g, "txid") || gen_u64(g, row->txid) ||
        gen_str(g, "version") || gen_u64(g, row->version) || gen_str(g, "error") ||
        gen_str(g, why) || gen_str(g, "document") ||
        yajl_gen_string(g, (const unsigned char *)s->doc.data, s->doc.len) != yajl_gen_status_ok ||
        yajl_gen_map_close(g) != yajl_gen_status_ok;
    yajl_gen_free(g);
    if (bad || sink.failed)
        goto done;
    char id[1024];
    snprintf(id, sizeof(id), "%s:%s:%" PRIu64, s->cfg->index, row->key, row->version);
    char err[512];
    for (int attempt = 0;; attempt++) {
        EsResult r =
            es_put_doc(s->es, s->cfg->dead_letter_index, id, buf_str(&d), err, sizeof(err));
        if (r == ES_OK)
            break;
        if (r == ES_FAIL) {
            log_error("cannot write to the dead-letter index %s: %s", s->cfg->dead_letter_index,
                      err);
            goto done;
        }
        s->stats.retries++;
        if (backoff(s, attempt) < 0) {
            rc = -1;
            goto done;
        }
    }
    rc = 0;
done:
    buf_free(&d);
    return rc;
}

/* Makes room for n actions in the per-action arrays. */
static int reserve_items(Sync *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    EsBulkItem *items = realloc(s->items, n * sizeof(*items));
    if (!items)
        return -1;
    s->items = items;
    size_t *map = realloc(s->item_row, n * sizeof(*map));
    if (!map)
        return -1;
    s->item_row = map;
    s->cap = n;
    return 0;
}

/*
 * Delivers every row of the batch to the sink: one _bulk request, then
 * again for the actions that came back retryable, with backoff, until
 * each is written, found already applied (a version conflict), or
 * rejected for good and handled by the --on-reject policy.
 * Returns 0 when all are acknowledged, -1 on a stop request, -2 on a
 * fatal error (printed).
 */
static int deliver(Sync *s, const PgBatch *b)
{
    char err[1024];
    if (reserve_items(s, b->n_rows) < 0) {
        log_error("out of memory");
        return -2;
    }
    /* pending[0..n_pending) are the rows still to send. */
    size_t n_pending = b->n_rows;
    size_t *pending = s->item_row;
    for (size_t i = 0; i < n_pending; i++)
        pending[i] = i;

    for (int attempt = 0; n_pending > 0; attempt++) {
        buf_reset(&s->body);
        for (size_t i = 0; i < n_pending; i++) {
            const PgRow *row = &b->rows[pending[i]];
            if (add_row(s, row) < 0) {
                log_error("cannot build the document of key %s (version %" PRIu64
                          "): not a JSON object, or larger than %zu bytes",
                          row->key, row->version, (size_t)BODY_MAX);
                return -2;
            }
        }
        EsResult r = es_bulk(s->es, &s->body, n_pending, s->items, err, sizeof(err));
        if (r == ES_FAIL) {
            log_error("the sink refused a bulk request: %s", err);
            return -2;
        }
        if (r == ES_RETRY) {
            s->stats.retries++;
            log_warn("sink unavailable, retrying (attempt %d): %s", attempt + 1, err);
            if (backoff(s, attempt) < 0)
                return -1;
            continue;
        }
        size_t still = 0;
        for (size_t i = 0; i < n_pending; i++) {
            const PgRow *row = &b->rows[pending[i]];
            const EsBulkItem *it = &s->items[i];
            switch (it->result) {
            case ES_ITEM_OK:
                s->stats.rows++;
                if (row->deleted)
                    s->stats.deletes++;
                break;
            case ES_ITEM_CONFLICT:
                s->stats.conflicts++;
                break;
            case ES_ITEM_RETRY:
                pending[still++] = pending[i];
                break;
            case ES_ITEM_REJECTED:
                s->stats.rejected++;
                if (s->cfg->on_reject == SYNC_REJECT_STOP) {
                    log_error("the index rejected key %s (version %" PRIu64 ", txid %" PRIu64
                              "): %s; stopping (--on-reject stop), the "
                              "cursor stays before this batch",
                              row->key, row->version, row->txid, it->error);
                    return -2;
                }
                log_warn("the index rejected key %s (version %" PRIu64 "): %s; recorded in %s",
                         row->key, row->version, it->error, s->cfg->dead_letter_index);
                if (!row->deleted && build_doc(s, row) < 0)
                    buf_reset(&s->doc);
                else if (row->deleted)
                    buf_reset(&s->doc);
                int dl = dead_letter(s, row, it->error);
                if (dl < 0)
                    return dl;
                break;
            }
        }
        if (still > 0) {
            s->stats.retries++;
            log_warn("%zu of %zu actions must be retried (%s)", still, n_pending,
                     s->items[0].error[0] ? s->items[0].error : "busy");
            n_pending = still;
            if (backoff(s, attempt) < 0)
                return -1;
            continue;
        }
        n_pending = 0;
    }
    s->unsaved_rows = true;
    return 0;
}

/* Prints the periodic stats line when it is due (or when force is set). */
static void stats_line(Sync *s, bool force)
{
    double t = now_s();
    double every = (double)s->cfg->stats_interval_s;
    if (!force && (every <= 0 || t - s->stats.last_line < every))
        return;
    double dt = t - s->stats.last_line;
    uint64_t lag_tx =
        s->stats.last_xmax > s->cursor.xid_next ? s->stats.last_xmax - s->cursor.xid_next : 0;
    log_info("stats: %" PRIu64 " rows (%.0f/s), %" PRIu64 " deletes, %" PRIu64
             " conflicts, %" PRIu64 " retries, %" PRIu64 " rejected, %" PRIu64 " batches, %" PRIu64
             " reconnects, lag %" PRIu64 " transactions %.1f s, %zu in progress",
             s->stats.rows,
             dt > 0 ? (double)(s->stats.rows - s->stats.rows_at_last_line) / dt : 0.0,
             s->stats.deletes, s->stats.conflicts, s->stats.retries, s->stats.rejected,
             s->stats.batches, s->stats.reconnects, lag_tx,
             s->stats.behind_since > 0 ? t - s->stats.behind_since : 0.0, s->cursor.n_xip);
    s->stats.last_line = t;
    s->stats.rows_at_last_line = s->stats.rows;
}

/* Connects to both ends, checks everything that can be checked before
 * writing anything, and loads the cursor.  Returns 0 or an exit code. */
static int start(Sync *s)
{
    const SyncConfig *cfg = s->cfg;
    char err[1024];

    s->es = es_client_new(cfg->es_url, err, sizeof(err));
    if (!s->es) {
        log_error("--es-url: %s", err);
        return SYNC_EXIT_USAGE;
    }
    s->pg = pg_connect(cfg->conninfo, err, sizeof(err));
    if (!s->pg) {
        log_error("cannot connect to postgres: %s", err);
        return SYNC_EXIT_FAILED;
    }
    bool standby = false;
    if (pg_in_recovery(s->pg, &standby, err, sizeof(err)) != PG_OK) {
        log_error("%s", err);
        return SYNC_EXIT_FAILED;
    }
    if (standby) {
        log_error("the server is in recovery (a hot standby): its snapshots do not list running "
                  "transactions, so txidsync would skip rows; connect it to the primary");
        return SYNC_EXIT_FAILED;
    }
    if (pg_table_resolve(s->pg, cfg->table, &s->table, err, sizeof(err)) != PG_OK) {
        log_error("%s", err);
        return SYNC_EXIT_FAILED;
    }

    /* The cursor first: when it is corrupt, nothing at all is written.
     * The sink must answer at start (a wrong URL fails fast rather than
     * retrying forever); later outages are retried. */
    snprintf(s->store_id, sizeof(s->store_id), "%s:%s", s->table.name, cfg->index);
    s->store = cfg->cursor_file && *cfg->cursor_file
                   ? store_new_file(cfg->cursor_file)
                   : store_new_es(s->es, cfg->state_index, s->store_id);
    if (!s->store) {
        log_error("out of memory");
        return SYNC_EXIT_FAILED;
    }
    bool found = false;
    StoreResult sr;
    /* A sink that answers but is busy (429, 5xx) is waited for a while; one
     * that does not answer at all fails the start at once. */
    double give_up = now_s() + START_BUSY_WAIT_S;
    for (int attempt = 0;; attempt++) {
        sr = store_load(s->store, &s->cursor, &found, err, sizeof(err));
        if (sr != STORE_RETRY || es_client_last_status(s->es) == 0 || now_s() > give_up)
            break;
        log_warn("the sink is busy, waiting: %s", err);
        cursor_free(&s->cursor);
        if (backoff(s, attempt) < 0)
            return SYNC_EXIT_OK;
    }
    if (sr == STORE_RETRY) {
        log_error("cannot reach the sink at %s: %s", es_client_url(s->es), err);
        return SYNC_EXIT_FAILED;
    }
    if (sr != STORE_OK) {
        log_error("cannot load the cursor: %s", err);
        return SYNC_EXIT_FAILED;
    }
    if (cursor_copy(&s->saved, &s->cursor) < 0) {
        log_error("out of memory");
        return SYNC_EXIT_FAILED;
    }

    EsResult r;
    for (int attempt = 0;; attempt++) {
        r = es_ensure_index(s->es, cfg->index, (int)cfg->replicas, false, err, sizeof(err));
        if (r == ES_OK && cfg->on_reject == SYNC_REJECT_DEAD_LETTER)
            r = es_ensure_index(s->es, cfg->dead_letter_index, (int)cfg->replicas, true, err,
                                sizeof(err));
        if (r == ES_OK && !(cfg->cursor_file && *cfg->cursor_file))
            r = es_ensure_index(s->es, cfg->state_index, (int)cfg->replicas, true, err,
                                sizeof(err));
        if (r != ES_RETRY || es_client_last_status(s->es) == 0 || now_s() > give_up)
            break;
        log_warn("the sink is busy, waiting: %s", err);
        if (backoff(s, attempt) < 0)
            return SYNC_EXIT_OK;
    }
    if (r != ES_OK) {
        log_error("cannot %s the sink at %s: %s", r == ES_RETRY ? "reach" : "prepare",
                  es_client_url(s->es), err);
        return SYNC_EXIT_FAILED;
    }

    /* A database restored into a cluster with a lower xid counter, without
     * a raised txid offset, would hand out ids the cursor believes done. */
    uint64_t xmax = 0;
    if (pg_snapshot_xmax(s->pg, &xmax, err, sizeof(err)) != PG_OK) {
        log_error("%s", err);
        return SYNC_EXIT_FAILED;
    }
    if (xmax < s->cursor.xid_next) {
        log_error("the database's transaction ids (next %" PRIu64
                  ") are behind the cursor (%" PRIu64
                  "): was it restored into another cluster? raise them with "
                  "select txidsync.configure_txid_offset(%" PRIu64 "); then start again",
                  xmax, s->cursor.xid_next, s->cursor.xid_next);
        return SYNC_EXIT_FAILED;
    }
    s->stats.last_xmax = xmax;
    log_info("syncing %s (key %s) into %s/%s; cursor in %s, %s at xid %" PRIu64
             " with %zu in progress",
             s->table.name, s->table.key_column, es_client_url(s->es), cfg->index,
             store_describe(s->store), found ? "resuming" : "starting", s->cursor.xid_next,
             s->cursor.n_xip);
    return 0;
}

/* The loop proper.  Returns an exit code. */
static int loop(Sync *s)
{
    const SyncConfig *cfg = s->cfg;
    char err[1024];
    int fetch_errors = 0;
    s->poll_ms = POLL_MIN_MS;
    s->stats.last_line = now_s();

    while (!stop_requested) {
        CursorQuery q;
        cursor_query(&s->cursor, (size_t)cfg->batch_size, &q);
        PgBatch b;
        int rc = pg_batch_fetch(s->pg, &s->table, &q, &b, err, sizeof(err));
        if (rc == PG_LOST) {
            log_warn("lost the connection to postgres, reconnecting: %s", err);
            int rr = reconnect(s);
            if (rr == -2)
                return SYNC_EXIT_FAILED;
            continue;
        }
        if (rc == PG_ERROR) {
            if (++fetch_errors > FETCH_ERRORS_MAX) {
                log_error("the batch query keeps failing, giving up: %s", err);
                return SYNC_EXIT_FAILED;
            }
            log_warn("the batch query failed (%d of %d): %s", fetch_errors, FETCH_ERRORS_MAX, err);
            backoff(s, fetch_errors);
            continue;
        }
        fetch_errors = 0;
        s->stats.batches++;
        s->stats.last_xmax = b.snapshot.xmax;
        crash_point("after fetching a batch");

        size_t n = b.n_rows;
        if (n > 0) {
            int d = deliver(s, &b);
            if (d < 0) {
                pg_batch_free(&b);
                return d == -1 ? SYNC_EXIT_OK : SYNC_EXIT_FAILED;
            }
            crash_point("after the bulk, before the cursor is saved");
        }
        const PgRow *last = n > 0 ? &b.rows[n - 1] : NULL;
        if (cursor_advance(&s->cursor, &b.snapshot, n, (size_t)cfg->batch_size,
                           last ? last->txid : 0, last ? last->key : NULL, err, sizeof(err)) < 0) {
            log_error("cannot advance the cursor: %s", err);
            pg_batch_free(&b);
            return SYNC_EXIT_FAILED;
        }
        pg_batch_free(&b);

        bool caught_up = n < (size_t)cfg->batch_size;
        if (caught_up)
            s->stats.behind_since = 0;
        else if (s->stats.behind_since == 0)
            s->stats.behind_since = now_s();

        /* Persist when rows went out and the syncer caught up, and at most
         * every SAVE_EVERY_S otherwise: the stored cursor may lag, never lead. */
        bool due = now_s() - s->last_save >= SAVE_EVERY_S;
        if ((caught_up && s->unsaved_rows) || (due && !cursor_same(&s->cursor, &s->saved))) {
            int sv = save_cursor(s);
            if (sv == -2)
                return SYNC_EXIT_FAILED;
            if (sv == -1)
                break;
        }
        stats_line(s, false);

        if (!caught_up)
            continue;
        if (cfg->once) {
            int sv = save_cursor(s);
            stats_line(s, true);
            log_info("caught up at xid %" PRIu64 " (--once), exiting", s->cursor.xid_next);
            return sv == -2 ? SYNC_EXIT_FAILED : SYNC_EXIT_OK;
        }
        if (!s->listening && s->table.notify) {
            rc = pg_listen(s->pg, s->table.channel, err, sizeof(err));
            if (rc == PG_OK) {
                s->listening = true;
                log_info("caught up at xid %" PRIu64 "; listening on %s", s->cursor.xid_next,
                         s->table.channel);
                continue; /* poll once more: a change may have come before LISTEN */
            }
            log_warn("cannot listen on %s, polling instead: %s", s->table.channel, err);
        }
        /* Listening, a notification ends the wait at once and
         * --poll-interval is only the safety net.  Without notifications
         * the poll adapts: short while changes flow, doubling up to
         * --poll-interval while idle. */
        if (n > 0)
            s->poll_ms = POLL_MIN_MS;
        long wait_ms = s->listening ? (long)cfg->poll_interval_ms : s->poll_ms;
        double until = now_s() + (double)wait_ms / 1000.0;
        bool notified = false;
        while (!stop_requested && !notified) {
            double left = until - now_s();
            if (left <= 0)
                break;
            rc = pg_wait(s->pg, (int)(left * 1000) + 1, &notified, err, sizeof(err));
            if (rc != PG_OK)
                break; /* the next fetch notices a lost connection */
        }
        if (!s->listening && !notified && n == 0) {
            s->poll_ms *= 2;
            if (s->poll_ms > cfg->poll_interval_ms)
                s->poll_ms = (long)cfg->poll_interval_ms;
        }
    }
    /* Stopped by a signal between two batches: keep what was acknowledged. */
    int sv = save_cursor(s);
    stats_line(s, true);
    log_info("stopped by a signal at xid %" PRIu64, s->cursor.xid_next);
    return sv == -2 ? SYNC_EXIT_FAILED : SYNC_EXIT_OK;
}

int sync_run(const SyncConfig *cfg)
{
    Sync s;
    memset(&s, 0, sizeof(s));
    s.cfg = cfg;
    cursor_init(&s.cursor);
    cursor_init(&s.saved);
    buf_init(&s.body, BODY_MAX);
    buf_init(&s.doc, BODY_MAX);
    s.rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg->crash_probability > 0) {
        uint64_t seed = cfg->crash_seed ? (uint64_t)cfg->crash_seed : s.rng;
        crash_configure(cfg->crash_probability, seed);
        log_info("crash injection on: probability %g per crash point", cfg->crash_probability);
    }

    int code = start(&s);
    if (code == 0)
        code = loop(&s);

    store_free(s.store);
    pg_table_free(&s.table);
    pg_free(s.pg);
    es_client_free(s.es);
    cursor_free(&s.cursor);
    cursor_free(&s.saved);
    buf_free(&s.body);
    buf_free(&s.doc);
    free(s.items);
    free(s.item_row);
    return code;
}
