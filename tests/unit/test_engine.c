/*
 * Unit tests of the engine against the sink contract (sink.h), with a
 * fake sink driver and a fake pg module (this file defines the pg_*
 * functions the engine calls, so pg.o is not linked).
 *
 * The fake database holds a fixed history of committed transactions,
 * some larger than a batch.  The fake sink keeps its requests in flight
 * and answers them in random order, after random delays, item by item:
 * applied, already applied (only when the target really holds that
 * version or a newer one), retry later, or rejected; now and then a whole
 * request is busy.  The fake store checks, at every save, the invariant
 * the design rests on: every row whose txid the saved cursor covers has
 * been acknowledged in its current version.  At the end the target must
 * equal the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "engine.h"
#include "log.h"
#include "pg.h"
#include "support/store_mem.h"

#define N_KEYS 300
#define N_TX   120

/* ---- the fake database ------------------------------------------------ */

typedef struct Row {
    uint64_t txid, version;
    bool deleted;
} Row;

static Row side[N_KEYS]; /* the side table: the current state of each key */
static int pipe_fds[2] = {-1, -1};
static bool started;
static CursorQuery asked;
static size_t asked_min, asked_max; /* the smallest and largest batch limit asked for */
static uint64_t asked_xip[64];

static void key_text(int k, char *out, size_t len)
{
    snprintf(out, len, "k%04d", k);
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Commits N_TX transactions (ids 100..), each changing 1 to 40 keys;
 * every 9th deletes them. */
static void make_history(void)
{
    memset(side, 0, sizeof(side));
    for (int t = 0; t < N_TX; t++) {
        int n = 1 + (int)(rnd() % (t % 10 == 0 ? 40 : 4));
        for (int i = 0; i < n; i++) {
            Row *r = &side[rnd() % N_KEYS];
            r->txid = 100 + (uint64_t)t;
            r->version++;
            r->deleted = t % 9 == 0;
        }
    }
}

PgConn *pg_connect(const char *conninfo, char *err, size_t errlen)
{
    (void)conninfo;
    (void)err;
    (void)errlen;
    assert_int_equal(pipe(pipe_fds), 0);
    started = false;
    return (PgConn *)&pipe_fds;
}

void pg_free(PgConn *c)
{
    if (!c)
        return;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    pipe_fds[0] = pipe_fds[1] = -1;
    if (started) { /* a batch query still out, as the real connection drops it */
        free((char *)asked.xid_at_key);
        asked.xid_at_key = NULL;
        started = false;
    }
}

int pg_in_recovery(PgConn *c, bool *in_recovery, char *err, size_t errlen)
{
    (void)c, (void)err, (void)errlen;
    *in_recovery = false;
    return PG_OK;
}

int pg_table_resolve(PgConn *c, const char *table, PgTable *t, char *err, size_t errlen)
{
    (void)c, (void)err, (void)errlen;
    memset(t, 0, sizeof(*t));
    t->name = strdup(table);
    t->key_columns = strdup("id");
    t->channel = strdup("txidsync_t");
    t->owner = strdup("db/public.t");
    return PG_OK;
}

void pg_table_free(PgTable *t)
{
    free(t->name);
    free(t->key_columns);
    free(t->channel);
    free(t->owner);
    memset(t, 0, sizeof(*t));
}

int pg_try_lock(PgConn *c, const char *name, bool *got, int *holder, char *err, size_t errlen)
{
    (void)c, (void)name, (void)err, (void)errlen;
    *got = true;
    *holder = 0;
    return PG_OK;
}

int pg_synced_live_rows(PgConn *c, const PgTable *t, const Cursor *cur, bool *any, char *err,
                        size_t errlen)
{
    (void)c, (void)t, (void)cur, (void)err, (void)errlen;
    *any = false;
    return PG_OK;
}

/* The engine notes the table's columns when it starts; here they never
 * changed, so no refresh runs (the integration test sync_schema covers
 * the background refresh). */
static int n_noted;
int pg_columns_noted(PgConn *c, const PgTable *t, PgRefresh *r, char *err, size_t errlen)
{
    (void)c, (void)t, (void)err, (void)errlen;
    memset(r, 0, sizeof(*r));
    n_noted++;
    return PG_OK;
}

int pg_row_estimate(PgConn *c, const PgTable *t, long long *rows, char *err, size_t errlen)
{
    (void)c, (void)t, (void)err, (void)errlen;
    *rows = N_KEYS;
    return PG_OK;
}

int pg_refresh_pending(PgConn *c, const PgTable *t, PgRefresh *r, char *err, size_t errlen)
{
    (void)c, (void)t, (void)err, (void)errlen;
    memset(r, 0, sizeof(*r));
    return PG_OK;
}

int pg_table_tracked_as(PgConn *c, const PgTable *t, char *name, size_t len, char *err,
                        size_t errlen)
{
    (void)c, (void)err, (void)errlen;
    snprintf(name, len, "%s", t->name);
    return PG_OK;
}

/* Registrations as a consumer: never above the stored cursor. */
static int n_seen;
static uint64_t saved_next;
int pg_consumer_seen(PgConn *c, const PgTable *t, const char *consumer, uint64_t low,
                     uint64_t *pruned_below, char *err, size_t errlen)
{
    (void)c, (void)t, (void)err, (void)errlen;
    assert_true(consumer[0] != '\0');
    if (low > saved_next)
        fail_msg("registered low %" PRIu64 " above the stored cursor's %" PRIu64, low, saved_next);
    *pruned_below = 0;
    n_seen++;
    return PG_OK;
}

int pg_prune_send(PgConn *c, const PgTable *t, long margin_s, long drop_after_s, long chunk,
                  char *err, size_t errlen)
{
    (void)c, (void)t, (void)margin_s, (void)drop_after_s, (void)chunk, (void)err, (void)errlen;
    fail_msg("no pruning in these tests");
    return PG_ERROR;
}

int pg_prune_poll(PgConn *c, bool *done, PgPrune *out, char *err, size_t errlen)
{
    (void)c, (void)done, (void)out, (void)err, (void)errlen;
    fail_msg("no pruning in these tests");
    return PG_ERROR;
}

int pg_refresh_step_send(PgConn *c, long long id, long chunk, int lock_wait_ms, char *err,
                         size_t errlen)
{
    (void)c, (void)id, (void)chunk, (void)lock_wait_ms, (void)err, (void)errlen;
    fail_msg("no refresh runs in these tests");
    return PG_ERROR;
}

int pg_refresh_step_poll(PgConn *c, bool *done, PgRefreshStep *st, char *err, size_t errlen)
{
    (void)c, (void)done, (void)st, (void)err, (void)errlen;
    fail_msg("no refresh runs in these tests");
    return PG_ERROR;
}

int pg_snapshot_xmax(PgConn *c, uint64_t *xmax, char *err, size_t errlen)
{
    (void)c, (void)err, (void)errlen;
    *xmax = 100 + N_TX;
    return PG_OK;
}

int pg_batch_start(PgConn *c, const PgTable *t, const CursorQuery *q, char *err, size_t errlen)
{
    (void)c, (void)t, (void)err, (void)errlen;
    assert_false(started);
    asked = *q;
    if (asked_min == 0 || q->limit < asked_min)
        asked_min = q->limit;
    if (q->limit > asked_max)
        asked_max = q->limit;
    assert_true(q->n_xip <= 64);
    if (q->n_xip > 0)
        memcpy(asked_xip, q->xip, q->n_xip * sizeof(*q->xip));
    asked.xip = asked_xip;
    asked.xid_at_key = q->xid_at_key ? strdup(q->xid_at_key) : NULL;
    started = true;
    assert_int_equal(write(pipe_fds[1], "r", 1), 1);
    return PG_OK;
}

/* Whether row k is in branch b of the query asked. */
static bool in_branch(int b, int k)
{
    const Row *r = &side[k];
    char key[16];
    key_text(k, key, sizeof(key));
    if (r->version == 0)
        return false;
    if (b == 1)
        return asked.has_xid_at && r->txid == asked.xid_at && strcmp(key, asked.xid_at_key) > 0;
    return r->txid >= asked.xid_next;
}

/* Appends the rows of branch b in (txid, key) order, up to the limit. */
static void add_branch(PgBatch *b, int branch)
{
    for (uint64_t tx = 100; tx < 100 + N_TX && b->n_rows < asked.limit; tx++) {
        for (int k = 0; k < N_KEYS && b->n_rows < asked.limit; k++) {
            if (side[k].txid != tx || !in_branch(branch, k))
                continue;
            PgRow *row = &b->rows[b->n_rows++];
            char key[16], doc[64];
            key_text(k, key, sizeof(key));
            snprintf(doc, sizeof(doc), "{\"id\":%d}", k);
            row->key = strdup(key);
            row->txid = tx;
            row->version = side[k].version;
            row->deleted = side[k].deleted;
            row->doc = side[k].deleted ? NULL : strdup(doc);
            row->doc_len = row->doc ? strlen(row->doc) : 0;
            row->branch = branch;
        }
    }
}

int pg_batch_poll(PgConn *c, PgBatch *b, bool *done, char *err, size_t errlen)
{
    (void)c, (void)err, (void)errlen;
    char byte;
    assert_int_equal(read(pipe_fds[0], &byte, 1), 1);
    memset(b, 0, sizeof(*b));
    b->rows = calloc(asked.limit, sizeof(*b->rows));
    add_branch(b, 1);
    add_branch(b, 3);
    b->snapshot.xmin = b->snapshot.xmax = 100 + N_TX;
    free((char *)asked.xid_at_key);
    started = false;
    *done = true;
    return PG_OK;
}

void pg_batch_free(PgBatch *b)
{
    for (size_t i = 0; b->rows && i < b->n_rows; i++) {
        free((char *)b->rows[i].key);
        free((char *)b->rows[i].doc);
    }
    free(b->rows);
    memset(b, 0, sizeof(*b));
}

int pg_socket(const PgConn *c)
{
    (void)c;
    return pipe_fds[0];
}

int pg_reconnect(PgConn *c, char *err, size_t errlen)
{
    (void)c, (void)err, (void)errlen;
    return PG_OK;
}

void pg_describe(const PgConn *c, char *out, size_t len)
{
    (void)c;
    snprintf(out, len, "database fake");
}

int pg_listen(PgConn *c, const char *channel, char *err, size_t errlen)
{
    (void)c, (void)channel, (void)err, (void)errlen;
    return PG_OK;
}

int pg_wait(PgConn *c, int timeout_ms, bool *notified, char *err, size_t errlen)
{
    (void)c, (void)timeout_ms, (void)err, (void)errlen;
    *notified = false;
    return PG_OK;
}

/* ---- the fake sink ----------------------------------------------------- */

typedef struct Change {
    int key;
    uint64_t version;
    bool deleted;
} Change;

struct SinkRequest {
    Change changes[1000];
    size_t n;
    SinkItem *items;
    void *tag;
    bool in_flight;
};

typedef struct FakeSink {
    Loop *loop;
    SinkDoneFn on_done;
    void *owner;
    SinkRequest *requests[16];
    size_t n_requests;
    size_t in_flight;
    size_t max_in_flight;
    LoopTimer timer;
    uint64_t target[N_KEYS];  /* the version the target holds; 0 none */
    bool target_live[N_KEYS]; /* whether it holds a document */
    uint64_t acked[N_KEYS];   /* highest version acknowledged to the engine */
    int reject_permille;      /* rejected for good, per item */
    int refuse;               /* refuse this many requests as a whole */
    size_t cap;               /* the most changes a request takes (its "bytes"); 0: any */
    int poison_mod;           /* keys k % poison_mod == 1 get their request refused for
                               * what it holds (SINK_SPLIT); 0: none */
    int huge_mod;             /* keys k % huge_mod == 2 fit in no request; 0: none */
    int requests_sent, out_of_order, dead_letters, splits;
} FakeSink;

static FakeSink fake;

static void fake_bind(void *drv, SinkDoneFn on_done, void *owner)
{
    FakeSink *f = drv;
    f->on_done = on_done;
    f->owner = owner;
}

static SinkResult fake_inspect(void *drv, SinkTarget *t, char *err, size_t errlen)
{
    (void)drv, (void)err, (void)errlen;
    t->exists = false;
    return SINK_OK;
}

static SinkResult fake_prepare(void *drv, const char *owner, char *err, size_t errlen)
{
    (void)drv, (void)owner, (void)err, (void)errlen;
    return SINK_OK;
}

static SinkRequest *fake_request_new(void *drv)
{
    FakeSink *f = drv;
    assert_true(f->n_requests < 16);
    SinkRequest *rq = calloc(1, sizeof(*rq));
    f->requests[f->n_requests++] = rq;
    return rq;
}

static void fake_request_reset(void *drv, SinkRequest *rq)
{
    (void)drv;
    assert_false(rq->in_flight);
    rq->n = 0;
}

static int fake_add(void *drv, SinkRequest *rq, const SinkChange *ch, char *err, size_t errlen)
{
    FakeSink *f = drv;
    assert_true(rq->n < 1000);
    assert_false(rq->in_flight);
    assert_int_equal(ch->deleted, ch->row == NULL);
    int k = atoi(ch->key + 1);
    if (f->huge_mod && k % f->huge_mod == 2)
        return err_printf(err, errlen, "fake: too large for any request");
    if (f->cap && rq->n >= f->cap)
        return SINK_ADD_FULL;
    rq->changes[rq->n++] = (Change){k, ch->version, ch->deleted};
    return SINK_ADD_OK;
}

static bool fake_has_room(void *drv)
{
    FakeSink *f = drv;
    return f->in_flight < f->max_in_flight;
}

static size_t fake_in_flight(void *drv)
{
    return ((FakeSink *)drv)->in_flight;
}

/* Writes one change into the target, highest version wins. */
static SinkOutcome apply(FakeSink *f, const Change *c)
{
    if (f->target[c->key] >= c->version)
        return SINK_ALREADY_APPLIED;
    f->target[c->key] = c->version;
    f->target_live[c->key] = !c->deleted;
    return SINK_APPLIED;
}

/* Answers one request in flight, chosen at random. */
static void fake_answer(void *ctx)
{
    FakeSink *f = ctx;
    SinkRequest *pick[16];
    size_t n = 0;
    for (size_t i = 0; i < f->n_requests; i++)
        if (f->requests[i]->in_flight)
            pick[n++] = f->requests[i];
    if (n == 0)
        return;
    size_t which = rnd() % n;
    f->out_of_order += which > 0;
    SinkRequest *rq = pick[which];
    rq->in_flight = false;
    f->in_flight--;
    bool poisoned = false;
    for (size_t i = 0; f->poison_mod && i < rq->n; i++)
        poisoned |= rq->changes[i].key % f->poison_mod == 1;
    if (poisoned) {
        f->splits++;
        f->on_done(f->owner, rq->tag, SINK_SPLIT, "fake: http 413");
    } else if (f->refuse > 0 || rnd() % 20 == 0) {
        bool refused = f->refuse > 0;
        f->refuse -= refused;
        f->on_done(f->owner, rq->tag, refused ? SINK_FAIL : SINK_RETRY,
                   refused ? "fake: refused" : "fake: busy");
    } else {
        for (size_t i = 0; i < rq->n; i++) {
            SinkItem *it = &rq->items[i];
            uint64_t r = rnd() % 1000;
            it->reason[0] = '\0';
            if ((int)r < f->reject_permille) {
                it->outcome = SINK_REJECTED;
                snprintf(it->reason, sizeof(it->reason), "fake: mapping error");
            } else if (r < 150) {
                it->outcome = SINK_RETRY_LATER;
            } else {
                it->outcome = apply(f, &rq->changes[i]);
            }
            if (it->outcome == SINK_APPLIED || it->outcome == SINK_ALREADY_APPLIED) {
                if (rq->changes[i].version > f->acked[rq->changes[i].key])
                    f->acked[rq->changes[i].key] = rq->changes[i].version;
            }
        }
        f->on_done(f->owner, rq->tag, SINK_OK, "");
    }
    if (f->in_flight > 0)
        loop_timer_after_ms(f->loop, &f->timer, (long)(rnd() % 3));
}

static int fake_send(void *drv, SinkRequest *rq, SinkItem *items, void *tag, char *err,
                     size_t errlen)
{
    (void)err, (void)errlen;
    FakeSink *f = drv;
    assert_true(f->in_flight < f->max_in_flight);
    assert_false(rq->in_flight);
    assert_true(rq->n > 0);
    assert_true(f->cap == 0 || rq->n <= f->cap);
    rq->items = items;
    rq->tag = tag;
    rq->in_flight = true;
    f->in_flight++;
    f->requests_sent++;
    if (!loop_timer_armed(&f->timer))
        loop_timer_after_ms(f->loop, &f->timer, (long)(rnd() % 3));
    return 0;
}

static SinkResult fake_dead_letter(void *drv, const SinkChange *ch, const char *reason, char *err,
                                   size_t errlen)
{
    (void)reason, (void)err, (void)errlen;
    FakeSink *f = drv;
    if (rnd() % 4 == 0)
        return SINK_RETRY;
    int k = atoi(ch->key + 1);
    /* Only a change at fault may end here, never a neighbour of one. */
    if (f->reject_permille == 0)
        assert_true((f->poison_mod && k % f->poison_mod == 1) ||
                    (f->huge_mod && k % f->huge_mod == 2));
    f->dead_letters++;
    if (ch->version > f->acked[k])
        f->acked[k] = ch->version;
    return SINK_OK;
}

static const char *fake_describe(void *drv)
{
    (void)drv;
    return "fake";
}

static void fake_free(void *drv)
{
    FakeSink *f = drv;
    for (size_t i = 0; i < f->n_requests; i++)
        free(f->requests[i]);
    f->n_requests = 0;
    loop_timer_cancel(f->loop, &f->timer);
}

static const SinkInterface fake_interface = {
    .name = "fake",
    .bind = fake_bind,
    .inspect = fake_inspect,
    .prepare = fake_prepare,
    .request_new = fake_request_new,
    .request_reset = fake_request_reset,
    .add = fake_add,
    .has_room = fake_has_room,
    .in_flight = fake_in_flight,
    .send = fake_send,
    .dead_letter = fake_dead_letter,
    .describe = fake_describe,
    .free = fake_free,
};

/* ---- the fake store ------------------------------------------------- */

static int saves;

/* Whether the cursor c covers row k of the side table. */
static bool covers(const Cursor *c, int k)
{
    const Row *r = &side[k];
    char key[16];
    key_text(k, key, sizeof(key));
    if (c->has_xid_at && r->txid == c->xid_at)
        return strcmp(key, c->xid_at_key) <= 0;
    if (r->txid >= c->xid_next)
        return false;
    for (size_t i = 0; i < c->n_xip; i++)
        if (c->xip[i] == r->txid)
            return false;
    return true;
}

/* Checks every cursor the engine saves: it covers only acknowledged rows. */
static void check_save(const char *text)
{
    Cursor c;
    char why[256], bare[4096];
    /* The cursor names the table it belongs to, then its own members. */
    static const char owned[] = "{\"owner\":\"db/public.t\",";
    assert_memory_equal(text, owned, strlen(owned));
    snprintf(bare, sizeof(bare), "{%s", text + strlen(owned));
    assert_int_equal(cursor_from_json(&c, bare, strlen(bare), why, sizeof(why)), 0);
    for (int k = 0; k < N_KEYS; k++) {
        if (side[k].version == 0 || !covers(&c, k))
            continue;
        if (fake.acked[k] < side[k].version)
            fail_msg("save %d covers key k%04d (txid %" PRIu64 ") at version %" PRIu64
                     " but only version %" PRIu64 " was acknowledged",
                     saves + 1, k, side[k].txid, side[k].version, fake.acked[k]);
    }
    assert_true(c.xid_next >= saved_next);
    saved_next = c.xid_next;
    cursor_free(&c);
    saves++;
}

static StoreMem mem_store;

/* ---- the runs ------------------------------------------------------- */

/* The shape of the requests the fake sink takes, for the next runs. */
static struct {
    size_t cap;
    int poison_mod, huge_mod;
    size_t batch_max_bytes;
} shape;

/* Runs one engine with --once until it ends; returns its end state. */
static EngineState run_engine(uint64_t seed, size_t batch, size_t in_flight, bool dead_letter,
                              int reject_permille, int refuse)
{
    rng_state = seed;
    make_history();
    Loop *loop = loop_new();
    memset(&fake, 0, sizeof(fake));
    fake.loop = loop;
    fake.max_in_flight = in_flight;
    fake.reject_permille = reject_permille;
    fake.refuse = refuse;
    fake.cap = shape.cap;
    fake.poison_mod = shape.poison_mod;
    fake.huge_mod = shape.huge_mod;
    loop_timer_init(&fake.timer, fake_answer, &fake);
    saves = 0;
    saved_next = 0;
    n_seen = 0;
    EngineConfig cfg = {.name = "t",
                        .table = "t",
                        .target = "t",
                        .batch_size = batch,
                        .max_in_flight = in_flight,
                        .once = true,
                        .dead_letter = dead_letter,
                        .poll_interval_ms = 1000,
                        .backoff_max_ms = 20,
                        .save_every_ms = 1,
                        .consumer = true,
                        .consumer_every_ms = 1,
                        .batch_max_bytes = shape.batch_max_bytes};
    asked_min = asked_max = 0;
    char err[256];
    store_mem_init(&mem_store, NULL, 0);
    mem_store.on_save = check_save;
    Engine *e =
        engine_new(&cfg, loop, sink_new(&fake_interface, &fake), &mem_store.base, err, sizeof(err));
    assert_non_null(e);
    assert_int_equal(engine_open(e), 0);
    n_noted = 0;
    assert_int_equal(engine_start(e), 0);
    assert_int_equal(n_noted, 1); /* a change while no syncer ran would be found */
    double give_up = clock_mono_s() + 60;
    while (engine_state(e) == ENGINE_RUNNING && clock_mono_s() < give_up)
        assert_true(loop_run_once(loop, 100) >= 0);
    EngineState st = engine_state(e);
    engine_free(e);
    loop_free(loop);
    return st;
}

static void test_out_of_order_acknowledgements(void **state)
{
    (void)state;
    int dead_letters = 0, out_of_order = 0, all_saves = 0, requests = 0, registrations = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        size_t batch = 3 + seed % 17, in_flight = 1 + seed % 4;
        assert_int_equal(run_engine(seed, batch, in_flight, true, 20, 0), ENGINE_STOPPED);
        assert_true(saves >= 1);
        assert_int_equal(saved_next, 100 + N_TX);
        for (int k = 0; k < N_KEYS; k++) {
            if (side[k].version == 0)
                continue;
            assert_true(fake.acked[k] >= side[k].version);
            /* Not rejected: the target holds exactly the table's state. */
            if (fake.target[k] == side[k].version)
                assert_int_equal(fake.target_live[k], !side[k].deleted);
        }
        dead_letters += fake.dead_letters;
        out_of_order += fake.out_of_order;
        registrations += n_seen;
        all_saves += saves;
        requests += fake.requests_sent;
    }
    printf("engine: 40 runs, %d requests, %d answered out of order, %d dead letters, %d cursor "
           "saves checked, %d consumer registrations\n",
           requests, out_of_order, dead_letters, all_saves, registrations);
    assert_true(registrations > 40);
    assert_true(out_of_order > 100);
    assert_true(dead_letters > 10);
}

static void test_reject_stops_the_table(void **state)
{
    (void)state;
    for (uint64_t seed = 100; seed < 110; seed++) {
        /* Every save is checked against what was acknowledged (mem_save). */
        assert_int_equal(run_engine(seed, 7, 3, false, 50, 0), ENGINE_FAILED);
        assert_true(saved_next < 100 + N_TX);
    }
}

/* Checks that the target holds every change of the table. */
static void assert_all_synced(void)
{
    for (int k = 0; k < N_KEYS; k++)
        if (side[k].version > 0)
            assert_true(fake.acked[k] >= side[k].version);
}

static void test_refused_requests_back_off(void **state)
{
    (void)state;
    /* Three requests refused as a whole: the table backs off, tries again
     * and ends caught up, with every save checked. */
    assert_int_equal(run_engine(7, 5, 2, true, 0, 3), ENGINE_STOPPED);
    assert_int_equal(saved_next, 100 + N_TX);
    assert_all_synced();
    /* Refused for ever: --once gives up, and no save covered a refused row. */
    assert_int_equal(run_engine(8, 5, 2, true, 0, 1000000), ENGINE_FAILED);
    assert_true(saved_next < 100 + N_TX);
}

static void test_requests_are_capped_and_split(void **state)
{
    (void)state;
    int splits = 0, dead_letters = 0, requests = 0;
    for (uint64_t seed = 200; seed < 220; seed++) {
        shape.cap = 1 + seed % 5;
        shape.poison_mod = seed % 2 ? 7 : 0;
        shape.huge_mod = seed % 3 ? 11 : 0;
        /* Full requests go on in the next one, a refused request is split
         * until the change at fault is alone and goes to the dead letters,
         * as does a change no request can take; the rest arrives. */
        assert_int_equal(run_engine(seed, 4 + seed % 9, 1 + seed % 3, true, 0, 0), ENGINE_STOPPED);
        assert_int_equal(saved_next, 100 + N_TX);
        assert_all_synced();
        splits += fake.splits;
        dead_letters += fake.dead_letters;
        requests += fake.requests_sent;
    }
    printf("engine: 20 capped runs, %d requests, %d refused for what they held, %d dead letters\n",
           requests, splits, dead_letters);
    assert_true(splits > 20);
    assert_true(dead_letters > 20);
    /* Under --on-reject stop, the first change at fault stops the table,
     * and no save covers it (mem_save checks). */
    shape.cap = 3;
    shape.poison_mod = 7;
    shape.huge_mod = 0;
    assert_int_equal(run_engine(300, 6, 2, false, 0, 0), ENGINE_FAILED);
    shape.poison_mod = 0;
    shape.huge_mod = 11;
    assert_int_equal(run_engine(301, 6, 2, false, 0, 0), ENGINE_FAILED);
    memset(&shape, 0, sizeof(shape));
}

static void test_byte_budget_shrinks_batches(void **state)
{
    (void)state;
    /* Rows count about 80 bytes each here: a budget of 250 bytes allows 3
     * rows per batch of 10.  Every limit keeps the cursor's rule (every
     * save is checked), and the table ends synced. */
    shape.batch_max_bytes = 250;
    for (uint64_t seed = 400; seed < 405; seed++) {
        assert_int_equal(run_engine(seed, 10, 2, true, 0, 0), ENGINE_STOPPED);
        assert_int_equal(saved_next, 100 + N_TX);
        assert_all_synced();
        assert_int_equal(asked_max, 10);
        assert_int_equal(asked_min, 3);
    }
    memset(&shape, 0, sizeof(shape));
}

int main(void)
{
    log_set_level(LOG_ERROR + 1); /* the engine's messages are expected noise here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order_acknowledgements),
        cmocka_unit_test(test_reject_stops_the_table),
        cmocka_unit_test(test_refused_requests_back_off),
        cmocka_unit_test(test_requests_are_capped_and_split),
        cmocka_unit_test(test_byte_budget_shrinks_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
