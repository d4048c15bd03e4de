/*
 * sync: the daemon's loop (see sync.h).
 *
 * Batches flow through a short pipeline of slots, in the order they were
 * read: read a batch under the read cursor (pg), build its _bulk body with
 * external versions and send it (es), up to --bulk-concurrency requests in
 * flight at once while the next batch is already read and built.  Neither
 * side waits for the other: the batch query is asynchronous, and one wait
 * covers the database socket and the sink's connections.  The
 * read cursor moves as soon as a batch is read; the acknowledged cursor,
 * the only one ever persisted (store), moves past a batch only once every
 * action of it and of every batch before it is acknowledged.  A batch
 * that shares a key with an earlier batch still in flight waits for it,
 * so the writes of one key reach the sink in version order, as they would
 * one request at a time.  A crash anywhere replays at most what came after
 * the last persisted cursor, which external versions make harmless.
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
#include "clock.h"
#include "crash.h"
#include "cursor.h"
#include "es.h"
#include "json.h"
#include "latency.h"
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
#define WAIT_STEP_MS      100 /* longest wait for the sink without looking at signals */

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t report_requested;

/* SIGTERM, SIGINT: asks the loop to stop after the requests in flight. */
static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* SIGUSR1: asks the loop for a report (see report_if_asked). */
static void on_report_signal(int sig)
{
    (void)sig;
    report_requested = 1;
}

typedef struct Stats {
    uint64_t rows, deletes, conflicts, retries, rejected, batches, reconnects;
    uint64_t rows_at_last_line;
    double last_line;
    double behind_since; /* when the syncer was last caught up; 0 = it is */
    uint64_t last_xmax;
} Stats;

/* Where a slot of the pipeline is. */
typedef enum SlotState {
    SLOT_READY,   /* read, its body not sent yet */
    SLOT_SENT,    /* its request is in flight */
    SLOT_WAITING, /* some of its rows must be sent again after retry_at */
    SLOT_DONE,    /* every row acknowledged; waits for the batches before it */
} SlotState;

/* One batch on its way through the pipeline. */
typedef struct Slot {
    SlotState state;
    PgBatch batch;     /* the rows; the body and retries read them */
    Cursor after;      /* the cursor once this batch and all before it are acknowledged */
    Buf body;          /* the request of the rows still pending */
    EsBulkItem *items; /* per action of the request in flight */
    size_t *pending;   /* rows still to deliver, as indices into batch.rows */
    size_t n_pending;
    size_t cap;     /* of items and pending */
    uint64_t *keys; /* hashes of the batch's keys, sorted */
    size_t n_keys;
    int attempt;
    double retry_at;
} Slot;

typedef struct Sync {
    const SyncConfig *cfg;
    PgConn *pg;
    PgTable table;
    EsClient *es;
    EsPipe *pipe;
    Store *store;
    char store_id[512];
    Cursor cursor;       /* acknowledged: everything before it is in the sink */
    Cursor saved;        /* what the store holds */
    Cursor ahead;        /* read: where the next batch starts */
    bool read_caught_up; /* the last batch read was short: wait before reading on */
    bool fetching;       /* the next batch's query is outstanding */
    uint64_t rows_read;  /* rows read since the last wait for changes */
    Slot *slots;         /* a ring of n_slots in reading order */
    size_t n_slots, head, used;
    double last_save;
    bool unsaved_rows; /* rows were delivered since the last save */
    bool listening;
    long poll_ms; /* current adaptive poll interval */
    Buf doc;
    bool latency_on;
    JsonPath latency_path;
    LatencyHist latency_interval; /* since the last stats line */
    LatencyHist latency_total;
    uint64_t rng;
    Stats stats;
} Sync;

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

/* Advances the splitmix64 state *s and returns the next 64 random bits. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The attempt-th exponential backoff with full jitter, in milliseconds. */
static long backoff_ms(Sync *s, int attempt)
{
    long cap = BACKOFF_MIN_MS;
    for (int i = 0; i < attempt && cap < BACKOFF_MAX_MS; i++)
        cap *= 2;
    if (cap > BACKOFF_MAX_MS)
        cap = BACKOFF_MAX_MS;
    return BACKOFF_MIN_MS / 2 + (long)(rng_next(&s->rng) % (uint64_t)cap);
}

/* Waits the attempt-th backoff.  Returns -1 when a stop was requested
 * meanwhile. */
static int backoff(Sync *s, int attempt)
{
    return sleep_ms(backoff_ms(s, attempt));
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
    s->last_save = clock_mono_s();
    s->unsaved_rows = false;
    return 0;
}

/* JSON's whitespace: the only place a raw control character may be. */
static bool json_blank(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/*
 * Puts into s->doc the document of a live row: the row's JSON object with
 * the metadata the checker compares added as one more field,
 * "txidsync":{"key":..,"txid":..,"version":..}.  A line break can only be
 * whitespace between tokens of valid JSON (inside a string it is escaped),
 * so the ones a json value or a cast may bring become blanks and the
 * document fits on the one line _bulk allows it.  Returns -1 when the row's
 * JSON is not an object or memory runs out.
 */
static int build_doc(Sync *s, const PgRow *row)
{
    buf_reset(&s->doc);
    size_t len = row->doc_len;
    while (len > 0 && json_blank(row->doc[len - 1]))
        len--;
    if (len < 2 || row->doc[0] != '{' || row->doc[len - 1] != '}')
        return -1;
    bool empty = true;
    for (size_t i = 1; i + 1 < len; i++) {
        if (!json_blank(row->doc[i])) {
            empty = false;
            break;
        }
    }
    if (buf_append(&s->doc, row->doc, len - 1) < 0)
        return -1;
    for (char *nl = memchr(s->doc.data, '\n', s->doc.len); nl;
         nl = memchr(nl, '\n', s->doc.len - (size_t)(nl - s->doc.data)))
        *nl = ' ';
    if (buf_puts(&s->doc, empty ? "\"txidsync\":{\"key\":" : ",\"txidsync\":{\"key\":") < 0 ||
        json_append_string(&s->doc, row->key, strlen(row->key)) < 0 ||
        buf_puts(&s->doc, ",\"txid\":") < 0 || json_append_u64(&s->doc, row->txid) < 0 ||
        buf_puts(&s->doc, ",\"version\":") < 0 || json_append_u64(&s->doc, row->version) < 0 ||
        buf_puts(&s->doc, "}}") < 0)
        return -1;
    return 0;
}

/* Appends the action for row (index or delete) to body. */
static int add_row(Sync *s, Buf *body, const PgRow *row)
{
    if (row->deleted)
        return es_bulk_add_delete(body, s->cfg->index, row->key, row->version);
    if (build_doc(s, row) < 0)
        return -1;
    return es_bulk_add_index(body, s->cfg->index, row->key, row->version, s->doc.data, s->doc.len);
}

/* Records a rejected row in the dead-letter index, retrying while the sink
 * is unreachable.  Returns 0, -1 on a stop request, -2 on failure. */
static int dead_letter(Sync *s, const PgRow *row, const char *why)
{
    Buf d;
    buf_init(&d, BODY_MAX);
    JsonGen jg;
    int rc = -2;
    if (json_gen_open(&jg, &d) != 0)
        goto done;
    yajl_gen g = jg.g;
    bool ok =
        yajl_gen_map_open(g) == yajl_gen_status_ok && json_gen_cstr(g, "index") &&
        json_gen_cstr(g, s->cfg->index) && json_gen_cstr(g, "table") &&
        json_gen_cstr(g, s->table.name) && json_gen_cstr(g, "key") && json_gen_cstr(g, row->key) &&
        json_gen_cstr(g, "txid") && json_gen_u64(g, row->txid) && json_gen_cstr(g, "version") &&
        json_gen_u64(g, row->version) && json_gen_cstr(g, "error") && json_gen_cstr(g, why) &&
        json_gen_cstr(g, "document") &&
        yajl_gen_string(g, (const unsigned char *)s->doc.data, s->doc.len) == yajl_gen_status_ok &&
        yajl_gen_map_close(g) == yajl_gen_status_ok;
    if (json_gen_close(&jg, ok) != 0)
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

/* The slot at position i of the ring, 0 being the oldest. */
static Slot *slot_at(Sync *s, size_t i)
{
    return &s->slots[(s->head + i) % s->n_slots];
}

/* Releases what a slot holds for its batch, keeping its buffers' memory
 * for the next one. */
static void slot_clear(Slot *sl)
{
    pg_batch_free(&sl->batch);
    cursor_free(&sl->after);
    buf_reset(&sl->body);
    sl->n_pending = 0;
    sl->n_keys = 0;
    sl->attempt = 0;
    sl->retry_at = 0;
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
    EsBulkItem *items = realloc(sl->items, n * sizeof(*items));
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

/* Handles a failed batch query: reconnects after a lost connection, backs
 * off after an error, gives up after FETCH_ERRORS_MAX errors in a row.
 * Returns 0 (try again), -1 on a stop request, -2 when giving up. */
static int fetch_failed(Sync *s, int rc, const char *err, int *fetch_errors)
{
    if (rc == PG_LOST) {
        log_warn("lost the connection to postgres, reconnecting: %s", err);
        return reconnect(s);
    }
    if (++*fetch_errors > FETCH_ERRORS_MAX) {
        log_error("the batch query keeps failing, giving up: %s", err);
        return -2;
    }
    log_warn("the batch query failed (%d of %d): %s", *fetch_errors, FETCH_ERRORS_MAX, err);
    return backoff(s, *fetch_errors);
}

/*
 * Sends the query of the next batch under the read cursor, without waiting
 * for it (there must be a free slot).  Returns 0 (sent, or a failure was
 * handled and the query is to be sent again), -1 on a stop request, -2 on
 * a fatal error (printed).
 */
static int fetch_start(Sync *s, int *fetch_errors)
{
    char err[1024];
    CursorQuery q;
    cursor_query(&s->ahead, (size_t)s->cfg->batch_size, &q);
    int rc = pg_batch_start(s->pg, &s->table, &q, err, sizeof(err));
    if (rc != PG_OK)
        return fetch_failed(s, rc, err, fetch_errors);
    s->fetching = true;
    return 0;
}

/*
 * Reads what arrived of the outstanding batch query; once it is complete,
 * puts the batch into a new slot at the end of the ring, moves the read
 * cursor past it and notes whether it came back short.  Returns 0 (also
 * while the result is still coming, or after a handled failure), -1 on a
 * stop request, -2 on a fatal error (printed).
 */
static int fetch_poll(Sync *s, int *fetch_errors)
{
    const SyncConfig *cfg = s->cfg;
    char err[1024];
    Slot *sl = slot_at(s, s->used);
    bool done = false;
    int rc = pg_batch_poll(s->pg, &sl->batch, &done, err, sizeof(err));
    if (rc != PG_OK || done)
        s->fetching = false;
    if (rc != PG_OK)
        return fetch_failed(s, rc, err, fetch_errors);
    if (!done)
        return 0;
    *fetch_errors = 0;
    s->stats.batches++;
    s->stats.last_xmax = sl->batch.snapshot.xmax;
    crash_point("after fetching a batch");

    const PgBatch *b = &sl->batch;
    size_t n = b->n_rows;
    const PgRow *last = n > 0 ? &b->rows[n - 1] : NULL;
    if (cursor_copy(&sl->after, &s->ahead) < 0 || slot_reserve(sl, n) < 0) {
        log_error("out of memory");
        slot_clear(sl);
        return -2;
    }
    if (cursor_advance(&sl->after, &b->snapshot, n, (size_t)cfg->batch_size, last ? last->txid : 0,
                       last ? last->key : NULL, err, sizeof(err)) < 0) {
        log_error("cannot advance the cursor: %s", err);
        slot_clear(sl);
        return -2;
    }
    cursor_free(&s->ahead);
    if (cursor_copy(&s->ahead, &sl->after) < 0) {
        log_error("out of memory");
        slot_clear(sl);
        return -2;
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
    s->used++;
    s->rows_read += n;

    s->read_caught_up = n < (size_t)cfg->batch_size;
    if (s->read_caught_up)
        s->stats.behind_since = 0;
    else if (s->stats.behind_since == 0)
        s->stats.behind_since = clock_mono_s();
    return 0;
}

/* Builds the request of a slot's pending rows and starts it.  Returns 0
 * or -2 (printed). */
static int send_slot(Sync *s, Slot *sl)
{
    char err[1024];
    buf_reset(&sl->body);
    for (size_t i = 0; i < sl->n_pending; i++) {
        const PgRow *row = &sl->batch.rows[sl->pending[i]];
        if (add_row(s, &sl->body, row) < 0) {
            log_error("cannot build the document of key %s (version %" PRIu64
                      "): not a JSON object, or larger than %zu bytes",
                      row->key, row->version, (size_t)BODY_MAX);
            return -2;
        }
    }
    if (es_pipe_send(s->pipe, &sl->body, sl->n_pending, sl->items, sl, err, sizeof(err)) != ES_OK) {
        log_error("cannot send a bulk request: %s", err);
        return -2;
    }
    sl->state = SLOT_SENT;
    return 0;
}

/*
 * Starts every request that may start now, oldest first: a ready slot, or
 * a waiting one whose backoff is over, while the pipe has room.  A ready
 * slot that shares a key with an earlier slot not yet done waits, and so
 * does everything after it.  Returns 0 or -2.
 */
static int send_due(Sync *s)
{
    double t = clock_mono_s();
    for (size_t i = 0; i < s->used && es_pipe_has_room(s->pipe); i++) {
        Slot *sl = slot_at(s, i);
        if (sl->state == SLOT_WAITING && t >= sl->retry_at) {
            if (send_slot(s, sl) < 0)
                return -2;
            continue;
        }
        if (sl->state != SLOT_READY)
            continue;
        for (size_t j = 0; j < i; j++) {
            const Slot *earlier = slot_at(s, j);
            if (earlier->state != SLOT_DONE && keys_overlap(earlier, sl))
                return 0;
        }
        if (send_slot(s, sl) < 0)
            return -2;
    }
    return 0;
}

/* Puts a slot whose pending rows must go again into the waiting state. */
static void slot_retry_later(Sync *s, Slot *sl)
{
    sl->retry_at = clock_mono_s() + (double)backoff_ms(s, sl->attempt) / 1000.0;
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
 * wall time now, when --latency-field is set and the row carries it. */
static void note_latency(Sync *s, const PgRow *row, double now)
{
    double ts;
    if (!s->latency_on || !row->doc ||
        !json_find_number(row->doc, row->doc_len, &s->latency_path, &ts))
        return;
    latency_record(&s->latency_interval, now - ts);
    latency_record(&s->latency_total, now - ts);
}

/*
 * Takes the outcome of a slot's request: rows written or found already
 * applied are done, rows rejected for good go by the --on-reject policy,
 * the rest (and the whole request on a retryable failure) go again after a
 * backoff.  Returns 0, -1 on a stop request, -2 on a fatal error (printed).
 */
static int take_outcome(Sync *s, Slot *sl, const EsPipeDone *done)
{
    if (done->result == ES_FAIL) {
        log_error("the sink refused a bulk request: %s", done->err);
        return -2;
    }
    if (done->result == ES_RETRY) {
        s->stats.retries++;
        log_warn("sink unavailable, retrying (attempt %d): %s", sl->attempt + 1, done->err);
        slot_retry_later(s, sl);
        return 0;
    }
    double now = wall_s();
    size_t still = 0;
    for (size_t i = 0; i < sl->n_pending; i++) {
        const PgRow *row = &sl->batch.rows[sl->pending[i]];
        const EsBulkItem *it = &sl->items[i];
        switch (it->result) {
        case ES_ITEM_OK:
            s->stats.rows++;
            if (row->deleted)
                s->stats.deletes++;
            note_latency(s, row, now);
            break;
        case ES_ITEM_CONFLICT:
            s->stats.conflicts++;
            note_latency(s, row, now);
            break;
        case ES_ITEM_RETRY:
            sl->pending[still++] = sl->pending[i];
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
            if (row->deleted || build_doc(s, row) < 0)
                buf_reset(&s->doc);
            int dl = dead_letter(s, row, it->error);
            if (dl < 0)
                return dl;
            break;
        }
    }
    s->unsaved_rows = true;
    if (still > 0) {
        s->stats.retries++;
        log_warn("%zu of %zu actions must be retried (%s)", still, sl->n_pending,
                 sl->items[0].error[0] ? sl->items[0].error : "busy");
        sl->n_pending = still;
        slot_retry_later(s, sl);
        return 0;
    }
    sl->n_pending = 0;
    sl->state = SLOT_DONE;
    return 0;
}

/*
 * Waits at most timeout_ms for a request to finish, or for input of the
 * outstanding batch query, and takes the request's outcome.  Returns 0
 * (also when none finished), -1 on a stop request, -2 on a fatal error.
 */
static int collect(Sync *s, int timeout_ms)
{
    int pg_fd = s->fetching ? pg_socket(s->pg) : -1;
    if (es_pipe_in_flight(s->pipe) == 0 && pg_fd < 0) {
        /* Only backoffs to wait for. */
        if (timeout_ms > 0)
            sleep_ms(timeout_ms);
        return 0;
    }
    EsPipeDone done;
    if (es_pipe_wait(s->pipe, timeout_ms, pg_fd, &done) == 0)
        return 0;
    return take_outcome(s, done.tag, &done);
}

/*
 * Moves the acknowledged cursor past every done slot at the head of the
 * ring, and persists it when the syncer caught up with rows unsaved, or
 * when SAVE_EVERY_S passed: the stored cursor may lag, never lead.
 * Returns 0, -1 on a stop request during the save, -2 on a fatal error.
 */
static int acknowledge(Sync *s)
{
    while (s->used > 0 && slot_at(s, 0)->state == SLOT_DONE) {
        Slot *sl = slot_at(s, 0);
        if (sl->batch.n_rows > 0)
            crash_point("after the bulk, before the cursor is saved");
        cursor_free(&s->cursor);
        if (cursor_copy(&s->cursor, &sl->after) < 0) {
            log_error("out of memory");
            return -2;
        }
        slot_clear(sl);
        s->head = (s->head + 1) % s->n_slots;
        s->used--;
    }
    bool drained = s->used == 0 && s->read_caught_up;
    bool due = clock_mono_s() - s->last_save >= SAVE_EVERY_S;
    if ((drained && s->unsaved_rows) || (due && !cursor_same(&s->cursor, &s->saved)))
        return save_cursor(s);
    return 0;
}

/*
 * How long the loop may wait now, in milliseconds: 0 when it has something
 * else to do (start reading the next batch, or acknowledge the oldest
 * slot) or nothing to wait for; otherwise until a request finishes, input
 * of the batch query arrives or the earliest backoff ends, at most
 * WAIT_STEP_MS.
 */
static int wait_budget_ms(Sync *s)
{
    if ((!s->fetching && !s->read_caught_up && s->used < s->n_slots) ||
        (s->used > 0 && slot_at(s, 0)->state == SLOT_DONE))
        return 0;
    double t = clock_mono_s();
    double wait = (double)WAIT_STEP_MS / 1000.0;
    bool backing_off = false;
    /* A backoff that ends matters only when its request can go then;
     * with every lane busy, the next thing to happen is a completion. */
    bool room = es_pipe_has_room(s->pipe);
    for (size_t i = 0; i < s->used; i++) {
        const Slot *sl = slot_at(s, i);
        if (sl->state != SLOT_WAITING)
            continue;
        backing_off = true;
        if (room && sl->retry_at - t < wait)
            wait = sl->retry_at - t;
    }
    if (!backing_off && !s->fetching && es_pipe_in_flight(s->pipe) == 0)
        return 0;
    return wait > 0 ? (int)(wait * 1000) + 1 : 0;
}

/*
 * After a stop request: lets the requests in flight finish (bounded by the
 * client's timeout), takes their outcomes without sending anything again,
 * and moves the acknowledged cursor as far as they allow.
 */
static void drain(Sync *s)
{
    while (es_pipe_in_flight(s->pipe) > 0) {
        EsPipeDone done;
        if (es_pipe_wait(s->pipe, WAIT_STEP_MS, -1, &done) == 1 &&
            take_outcome(s, done.tag, &done) < 0)
            break;
    }
    size_t ready = 0;
    while (ready < s->used && slot_at(s, ready)->state == SLOT_DONE)
        ready++;
    for (size_t i = 0; i < ready; i++) {
        Slot *sl = slot_at(s, 0);
        cursor_free(&s->cursor);
        if (cursor_copy(&s->cursor, &sl->after) < 0)
            break;
        slot_clear(sl);
        s->head = (s->head + 1) % s->n_slots;
        s->used--;
    }
}

/* Prints the periodic stats line when it is due (or when force is set).
 * With --latency-field, it ends with the latency quantiles of the rows
 * acknowledged since the previous line. */
static void stats_line(Sync *s, bool force)
{
    double t = clock_mono_s();
    double every = (double)s->cfg->stats_interval_s;
    if (!force && (every <= 0 || t - s->stats.last_line < every))
        return;
    double dt = t - s->stats.last_line;
    uint64_t lag_tx =
        s->stats.last_xmax > s->cursor.xid_next ? s->stats.last_xmax - s->cursor.xid_next : 0;
    char latency[160] = "";
    if (s->latency_on) {
        const LatencyHist *h = &s->latency_interval;
        snprintf(latency, sizeof(latency),
                 ", latency p50 %.1f ms p95 %.1f ms p99 %.1f ms of %" PRIu64 " rows",
                 latency_quantile(h, 0.50) * 1e3, latency_quantile(h, 0.95) * 1e3,
                 latency_quantile(h, 0.99) * 1e3, h->n);
        latency_reset(&s->latency_interval);
    }
    log_info("stats: %" PRIu64 " rows (%.0f/s), %" PRIu64 " deletes, %" PRIu64
             " conflicts, %" PRIu64 " retries, %" PRIu64 " rejected, %" PRIu64 " batches, %" PRIu64
             " reconnects, lag %" PRIu64 " transactions %.1f s, %zu in progress%s",
             s->stats.rows,
             dt > 0 ? (double)(s->stats.rows - s->stats.rows_at_last_line) / dt : 0.0,
             s->stats.deletes, s->stats.conflicts, s->stats.retries, s->stats.rejected,
             s->stats.batches, s->stats.reconnects, lag_tx,
             s->stats.behind_since > 0 ? t - s->stats.behind_since : 0.0, s->cursor.n_xip, latency);
    s->stats.last_line = t;
    s->stats.rows_at_last_line = s->stats.rows;
}

/* Prints the latency quantiles of every row acknowledged since the start
 * or the last SIGUSR1 (with --latency-field). */
static void latency_summary(Sync *s)
{
    if (!s->latency_on)
        return;
    const LatencyHist *h = &s->latency_total;
    log_info("latency: %" PRIu64 " rows, p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms", h->n,
             latency_quantile(h, 0.50) * 1e3, latency_quantile(h, 0.95) * 1e3,
             latency_quantile(h, 0.99) * 1e3, h->max_s * 1e3);
}

/* On SIGUSR1: prints the stats line and the latency so far, then counts
 * latency afresh (so that a measurement can leave out a warm-up). */
static void report_if_asked(Sync *s)
{
    if (!report_requested)
        return;
    report_requested = 0;
    stats_line(s, true);
    latency_summary(s);
    latency_reset(&s->latency_total);
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
    if (cfg->latency_field && *cfg->latency_field) {
        if (json_path_compile(&s->latency_path, cfg->latency_field) < 0) {
            log_error("--latency-field: %s is not a dotted path of at most %d member names",
                      cfg->latency_field, JSON_PATH_MAX);
            return SYNC_EXIT_USAGE;
        }
        s->latency_on = true;
    }
    size_t lanes = cfg->bulk_concurrency > 0 ? (size_t)cfg->bulk_concurrency : 1;
    s->pipe = es_pipe_new(s->es, lanes, err, sizeof(err));
    /* One slot more than requests in flight: the next batch is read and
     * built while they are. */
    s->n_slots = lanes + 1;
    s->slots = calloc(s->n_slots, sizeof(*s->slots));
    if (!s->pipe || !s->slots) {
        log_error("cannot set up the pipeline: %s", s->pipe ? "out of memory" : err);
        return SYNC_EXIT_FAILED;
    }
    for (size_t i = 0; i < s->n_slots; i++) {
        buf_init(&s->slots[i].body, BODY_MAX);
        cursor_init(&s->slots[i].after);
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
    double give_up = clock_mono_s() + START_BUSY_WAIT_S;
    for (int attempt = 0;; attempt++) {
        sr = store_load(s->store, &s->cursor, &found, err, sizeof(err));
        if (sr != STORE_RETRY || es_client_last_status(s->es) == 0 || clock_mono_s() > give_up)
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
        if (r != ES_RETRY || es_client_last_status(s->es) == 0 || clock_mono_s() > give_up)
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

/*
 * Waits, once every batch read is acknowledged and the last one came back
 * short, for changes: on the first time, LISTEN (when the table notifies)
 * and look once more; then a notification or the poll interval.  Listening,
 * a notification ends the wait at once and --poll-interval is only the
 * safety net.  Without notifications the poll adapts: short while changes
 * flow, doubling up to --poll-interval while idle.
 */
static void wait_for_changes(Sync *s)
{
    const SyncConfig *cfg = s->cfg;
    char err[1024];
    if (!s->listening && s->table.notify) {
        int rc = pg_listen(s->pg, s->table.channel, err, sizeof(err));
        if (rc == PG_OK) {
            s->listening = true;
            log_info("caught up at xid %" PRIu64 "; listening on %s", s->cursor.xid_next,
                     s->table.channel);
            return; /* look once more: a change may have come before LISTEN */
        }
        log_warn("cannot listen on %s, polling instead: %s", s->table.channel, err);
    }
    bool flowing = s->rows_read > 0;
    s->rows_read = 0;
    if (flowing)
        s->poll_ms = POLL_MIN_MS;
    long wait_ms = s->listening ? (long)cfg->poll_interval_ms : s->poll_ms;
    double until = clock_mono_s() + (double)wait_ms / 1000.0;
    bool notified = false;
    while (!stop_requested && !notified) {
        double left = until - clock_mono_s();
        if (left <= 0)
            break;
        int rc = pg_wait(s->pg, (int)(left * 1000) + 1, &notified, err, sizeof(err));
        if (rc != PG_OK)
            break; /* the next fetch notices a lost connection */
    }
    if (!s->listening && !notified && !flowing) {
        s->poll_ms *= 2;
        if (s->poll_ms > cfg->poll_interval_ms)
            s->poll_ms = (long)cfg->poll_interval_ms;
    }
}

/* The loop proper.  Returns an exit code. */
static int loop(Sync *s)
{
    const SyncConfig *cfg = s->cfg;
    int fetch_errors = 0;
    s->poll_ms = POLL_MIN_MS;
    s->stats.last_line = clock_mono_s();
    if (cursor_copy(&s->ahead, &s->cursor) < 0) {
        log_error("out of memory");
        return SYNC_EXIT_FAILED;
    }

    while (!stop_requested) {
        /* Send what may go, and ask for the next batch while a slot is
         * free: Postgres reads it while the sink works on the requests in
         * flight, and neither waits for the other. */
        if (send_due(s) < 0)
            return SYNC_EXIT_FAILED;
        if (!s->fetching && !s->read_caught_up && s->used < s->n_slots) {
            int rc = fetch_start(s, &fetch_errors);
            if (rc == -2)
                return SYNC_EXIT_FAILED;
            if (rc == -1)
                break;
        }
        /* Wait for a request to finish, the batch to arrive or a retry to
         * be due, then take whatever came. */
        int rc = collect(s, wait_budget_ms(s));
        if (rc == -2)
            return SYNC_EXIT_FAILED;
        if (rc == -1)
            break;
        if (s->fetching) {
            rc = fetch_poll(s, &fetch_errors);
            if (rc == -2)
                return SYNC_EXIT_FAILED;
            if (rc == -1)
                break;
        }
        rc = acknowledge(s);
        if (rc == -2)
            return SYNC_EXIT_FAILED;
        if (rc == -1)
            break;
        stats_line(s, false);
        report_if_asked(s);

        if (!(s->read_caught_up && s->used == 0))
            continue;
        if (cfg->once) {
            int sv = save_cursor(s);
            stats_line(s, true);
            latency_summary(s);
            log_info("caught up at xid %" PRIu64 " (--once), exiting", s->cursor.xid_next);
            return sv == -2 ? SYNC_EXIT_FAILED : SYNC_EXIT_OK;
        }
        wait_for_changes(s);
        s->read_caught_up = false;
    }
    /* Stopped by a signal: keep what was acknowledged. */
    drain(s);
    int sv = save_cursor(s);
    stats_line(s, true);
    latency_summary(s);
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
    cursor_init(&s.ahead);
    buf_init(&s.doc, BODY_MAX);
    s.rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_report_signal;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg->crash_probability > 0) {
        uint64_t seed = cfg->crash_seed ? (uint64_t)cfg->crash_seed : s.rng;
        crash_configure(cfg->crash_probability, seed);
        log_info("crash injection on: probability %g per crash point", cfg->crash_probability);
    }

    int code = start(&s);
    if (code == 0)
        code = loop(&s);

    for (size_t i = 0; s.slots && i < s.n_slots; i++) {
        Slot *sl = &s.slots[i];
        slot_clear(sl);
        buf_free(&sl->body);
        free(sl->items);
        free(sl->pending);
        free(sl->keys);
    }
    free(s.slots);
    es_pipe_free(s.pipe);
    store_free(s.store);
    pg_table_free(&s.table);
    pg_free(s.pg);
    es_client_free(s.es);
    cursor_free(&s.cursor);
    cursor_free(&s.saved);
    cursor_free(&s.ahead);
    buf_free(&s.doc);
    return code;
}
