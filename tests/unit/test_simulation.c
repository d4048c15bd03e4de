/*
 * Model-based simulation of the cursor (the approach of seed 004): an
 * in-memory MVCC model of a tracked table is driven through random
 * interleavings of transactions while a model syncer reads it batch by
 * batch with the REAL cursor code, and after every batch the invariant
 * of docs/design.md (§4) is checked against the model.
 *
 * The model: keys 0..n_keys-1 (in every other schedule a composite key of
 * two columns, whose canonical text the cursor carries and branch 1 splits
 * back into columns, as with a real composite primary key), each with a
 * committed row (txid, version,
 * deleted) once some transaction has written it.  Transactions take
 * increasing 64-bit ids (from a base above 2^32, sometimes just below 2^63
 * or near 2^64), write rows under row locks (a key written by an open
 * transaction waits until that one ends; a rolled-back savepoint releases
 * what it took), see the latest committed rows like READ COMMITTED does
 * (so an older transaction can update a row a newer one created; the
 * version still grows per key), delete by leaving a tombstone with a
 * bumped version, and commit or abort.  Some are big (more rows than a
 * batch), some are prepared and linger.  A snapshot is what Postgres
 * reports: xmax the next id to hand out, xip the open ids, xmin the
 * smallest of them.
 *
 * The syncer answers the three-branch query of docs/design.md from the model's
 * committed rows, applies them to its synced view only where the version
 * is higher (external versioning), calls cursor_advance, and persists the
 * cursor as JSON now and then.  It also restarts (JSON round trip of the
 * live cursor) and crashes (back to the last persisted cursor, possibly
 * with a batch half applied); persisting happens only after a batch is
 * applied, so a persisted cursor is late, never early.
 *
 * Checked after every batch: every key whose committed txid t is below
 * xid_next, not in xip, and (when t is xid_at) has a key <= xid_at_key,
 * is in the synced view with exactly its committed state; xid_next never
 * moves backwards and never passes xmax.  After quiescence (every
 * transaction ended, batches until a short one) the synced view must
 * equal the model, and one more batch must change nothing.
 *
 * TXIDSYNC_SIM_SCHEDULES (default 10000) schedules run, schedule i with
 * seed TXIDSYNC_SIM_SEED (default 1) + i.  A failure prints the seed, the
 * command line that replays it alone, and the last events of its trace.
 * The run also proves itself: the same simulation must catch each of a
 * few deliberately broken cursors (tampered with after cursor_advance).
 *
 * One schedule in three reads from a hot standby: its snapshot is what
 * pg_current_snapshot() reports in recovery, no xip, xmax one past the
 * newest ended id, xmin the oldest open id below that (or xmax); the
 * syncer applies cursor_advance_recovery.  One break applies the
 * primary's rule to that snapshot instead, which must be caught.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "buf.h"
#include "cursor.h"
#include "keys.h"

#define MAX_KEYS    16
#define MAX_OPEN    8
#define MAX_BATCH   5
#define TRACE_LINES 60
#define TRACE_WIDTH 160

/* ---- deterministic random numbers (splitmix64) ---- */

typedef struct Rng {
    uint64_t state;
} Rng;

/* Returns the next 64 random bits of r. */
static uint64_t rng_next(Rng *r)
{
    uint64_t z = (r->state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Returns a number in [0, n) for n > 0 (the modulo bias is negligible). */
static uint32_t rng_below(Rng *r, uint32_t n)
{
    return (uint32_t)(rng_next(r) % n);
}

/* Returns true with probability per_mille / 1000. */
static bool rng_chance(Rng *r, uint32_t per_mille)
{
    return rng_below(r, 1000) < per_mille;
}

/* ---- the model ---- */

/* A row of the tracked table, committed or pending, or the synced view's
 * copy of one (exists: the key has a row, live or tombstone). */
typedef struct Row {
    bool exists;
    bool deleted;
    uint64_t txid;
    uint64_t version;
} Row;

/* An open transaction: its own pending rows and an optional savepoint. */
typedef struct Tx {
    uint64_t id;
    bool big;
    bool prepared;
    int writes_left; /* writes it still means to do before it ends */
    int n_written;   /* keys it holds pending rows for */
    bool touched[MAX_KEYS];
    Row pending[MAX_KEYS];
    bool has_savepoint;
    bool sp_touched[MAX_KEYS];
    Row sp_pending[MAX_KEYS];
} Tx;

/* Ways to tamper with the cursor after cursor_advance, each one a bug the
 * simulation must catch. */
typedef enum {
    BREAK_NONE,
    BREAK_DROP_CARRY,         /* xid_at did not move, yet old xip not carried over */
    BREAK_FULL_TO_XMAX,       /* a full batch moves xid_next to xmax */
    BREAK_FORGET_RUNNING,     /* caught up, but in-progress ids forgotten */
    BREAK_PRIMARY_ON_STANDBY, /* the primary's rule on a standby snapshot (no xip) */
    BREAK_DONE_CUT,           /* a standby's full batch marks its cut last txid done */
    BREAK_COUNT
} Break;

static const char *const break_names[BREAK_COUNT] = {
    "none",
    "old xip not carried over while xid_at holds",
    "xid_next = xmax on a full batch",
    "xip emptied when caught up",
    "the primary's rule on a standby snapshot",
    "the last txid of a full standby batch marked done",
};

/* What happened over a run, to show that the hard cases were exercised. */
typedef struct Stats {
    unsigned long schedules, steps, batches, rows, full_by_branch[4], carry_mattered;
    unsigned long commits, aborts, big_commits, prepared_ends, older_over_newer, reinserts;
    unsigned long tombstones_synced, lock_waits, sp_rollbacks, crashes, crashes_mid_batch;
    unsigned long restarts, persists, max_xip;
    unsigned long composite_branch1; /* full batches ending in branch 1 with a composite key */
    unsigned long standby_batches, standby_held; /* batches on a standby; of them, with ids
                                                  * ended in [xmin, xmax) */
    unsigned long standby_done;                  /* standby batches whose query skipped done ids */
    unsigned long promotions; /* standby schedules switched to the primary's rule */
} Stats;

/* A ring of the last formatted events, kept only when replaying a
 * failed schedule. */
typedef struct Trace {
    bool on;
    uint64_t base; /* the schedule's first id: T<n> in the lines is base + n */
    unsigned long count;
    char lines[TRACE_LINES][TRACE_WIDTH];
} Trace;

typedef enum { FAIL_NONE, FAIL_INVARIANT, FAIL_MISMATCH, FAIL_OTHER } FailKind;

typedef struct Sim {
    Rng rng;
    uint64_t base;    /* the first id handed out */
    uint64_t next_id; /* xmax of a snapshot taken now */
    int n_keys, max_open;
    bool composite;     /* keys are (k / 4, COMPONENT[k % 4]), as canonical text */
    bool standby;       /* the syncer reads a hot standby (recovery snapshots) */
    uint64_t max_ended; /* the newest id that committed or aborted; 0: none yet */
    Row committed[MAX_KEYS];
    uint64_t lock[MAX_KEYS]; /* id of the open tx holding the key, or 0 */
    Tx open[MAX_OPEN];
    int n_open;
    /* per-schedule mix of actions and syncer habits */
    uint32_t w_begin, w_write, w_end, w_prepare, w_savepoint, w_batch, w_crash, w_restart;
    uint32_t p_persist, p_crash_mid_batch;
    /* the syncer */
    Cursor cursor;
    char *persisted; /* JSON of the last persisted cursor, or NULL */
    Row view[MAX_KEYS];
    Break brk;
    Stats *stats;
    Trace *trace;
    FailKind fail_kind;
    char why[512];
} Sim;

/* Appends one formatted event to the trace ring when tracing is on. */
__attribute__((format(printf, 2, 3))) static void trace(Sim *s, const char *fmt, ...)
{
    if (!s->trace || !s->trace->on)
        return;
    char *line = s->trace->lines[s->trace->count % TRACE_LINES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, TRACE_WIDTH, fmt, ap);
    va_end(ap);
    s->trace->count++;
}

/* Records the first failure of a schedule and returns -1. */
__attribute__((format(printf, 3, 4))) static int sim_fail(Sim *s, FailKind kind, const char *fmt,
                                                          ...)
{
    if (s->fail_kind == FAIL_NONE) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->why, sizeof s->why, fmt, ap);
        va_end(ap);
        s->fail_kind = kind;
        trace(s, "FAIL: %s", s->why);
    }
    return -1;
}

/* Writes id as "T<n>" relative to the schedule's base (readable traces),
 * or in full when it lies below the base (xid_next 0 at the start). */
static const char *id_text(const Sim *s, uint64_t id, char *buf, size_t len)
{
    if (id >= s->base)
        snprintf(buf, len, "T%llu", (unsigned long long)(id - s->base));
    else
        snprintf(buf, len, "%llu", (unsigned long long)id);
    return buf;
}

/* Writes a one-line summary of the cursor c for the trace. */
static const char *cursor_text(const Sim *s, const Cursor *c, char *buf, size_t len)
{
    char a[24];
    size_t n = (size_t)snprintf(buf, len, "next=%s xip=[", id_text(s, c->xid_next, a, sizeof a));
    for (size_t i = 0; i < c->n_xip && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "",
                              id_text(s, c->xip[i], a, sizeof a));
    if (n < len && c->has_xid_at)
        n += (size_t)snprintf(buf + n, len - n, "] at=%s/%s", id_text(s, c->xid_at, a, sizeof a),
                              c->xid_at_key);
    else if (n < len)
        n += (size_t)snprintf(buf + n, len - n, "]");
    for (size_t i = 0; i < c->n_done && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s",
                              i ? "," : " done=", id_text(s, c->done[i], a, sizeof a));
    return buf;
}

/* Returns the index in s->open of a random open transaction that is (or,
 * with prepared_ok, may be) not prepared, or -1 when there is none. */
static int pick_tx(Sim *s, bool prepared_ok)
{
    if (s->n_open == 0)
        return -1;
    int start = (int)rng_below(&s->rng, (uint32_t)s->n_open);
    for (int i = 0; i < s->n_open; i++) {
        int j = (start + i) % s->n_open;
        if (prepared_ok || !s->open[j].prepared)
            return j;
    }
    return -1;
}

/* Starts a transaction with the next id, big (more writes than a batch
 * holds) now and then. */
static void tx_begin(Sim *s)
{
    if (s->n_open >= s->max_open)
        return;
    Tx *tx = &s->open[s->n_open++];
    memset(tx, 0, sizeof *tx);
    tx->id = s->next_id++;
    tx->big = s->n_keys > MAX_BATCH && rng_chance(&s->rng, 150);
    tx->writes_left = tx->big ? MAX_BATCH + 1 + (int)rng_below(&s->rng, 2 * (uint32_t)s->n_keys)
                              : 1 + (int)rng_below(&s->rng, 4);
    char a[24];
    trace(s, "begin %s%s", id_text(s, tx->id, a, sizeof a), tx->big ? " (big)" : "");
}

/* Lets tx write key: insert if the key has no live row in its view, else
 * update or delete; waits (returns false) when another transaction holds
 * the key's row lock. */
static bool tx_write(Sim *s, Tx *tx, int key)
{
    char a[24], b[24];
    if (s->lock[key] != 0 && s->lock[key] != tx->id) {
        s->stats->lock_waits++;
        trace(s, "%s waits for key %d held by %s", id_text(s, tx->id, a, sizeof a), key,
              id_text(s, s->lock[key], b, sizeof b));
        return false;
    }
    Row cur = tx->touched[key] ? tx->pending[key] : s->committed[key];
    if (!tx->touched[key] && cur.exists && cur.txid > tx->id)
        s->stats->older_over_newer++;
    Row next = cur;
    const char *op;
    if (!cur.exists || cur.deleted) {
        op = cur.exists ? "re-inserts" : "inserts";
        if (cur.exists)
            s->stats->reinserts++;
        next.deleted = false;
    } else if (rng_chance(&s->rng, 250)) {
        op = "deletes";
        next.deleted = true;
    } else {
        op = "updates";
    }
    next.exists = true;
    next.txid = tx->id;
    next.version = cur.version + 1;
    if (!tx->touched[key])
        tx->n_written++;
    tx->touched[key] = true;
    tx->pending[key] = next;
    s->lock[key] = tx->id;
    if (tx->writes_left > 0)
        tx->writes_left--;
    trace(s, "%s %s key %d -> v%llu", id_text(s, tx->id, a, sizeof a), op, key,
          (unsigned long long)next.version);
    return true;
}

/* Ends the transaction at index i of s->open: a commit makes its pending
 * rows the committed ones; either way its locks go. */
static void tx_end(Sim *s, int i, bool commit)
{
    Tx *tx = &s->open[i];
    for (int k = 0; k < s->n_keys; k++) {
        if (!tx->touched[k])
            continue;
        if (commit)
            s->committed[k] = tx->pending[k];
        s->lock[k] = 0;
    }
    if (tx->id > s->max_ended)
        s->max_ended = tx->id;
    if (commit) {
        s->stats->commits++;
        if (tx->n_written > MAX_BATCH)
            s->stats->big_commits++;
    } else {
        s->stats->aborts++;
    }
    if (tx->prepared)
        s->stats->prepared_ends++;
    char a[24];
    trace(s, "%s %s (%d keys%s)", id_text(s, tx->id, a, sizeof a), commit ? "commits" : "aborts",
          tx->n_written, tx->prepared ? ", was prepared" : "");
    s->open[i] = s->open[--s->n_open];
}

/* Takes a savepoint in tx, or rolls back to the one it has: rows and
 * locks taken since the savepoint are released. */
static void tx_savepoint(Sim *s, Tx *tx)
{
    char a[24];
    if (!tx->has_savepoint || rng_chance(&s->rng, 400)) {
        tx->has_savepoint = true;
        memcpy(tx->sp_touched, tx->touched, sizeof tx->touched);
        memcpy(tx->sp_pending, tx->pending, sizeof tx->pending);
        trace(s, "%s savepoint", id_text(s, tx->id, a, sizeof a));
        return;
    }
    for (int k = 0; k < s->n_keys; k++) {
        if (tx->touched[k] && !tx->sp_touched[k]) {
            s->lock[k] = 0;
            tx->n_written--;
        }
    }
    memcpy(tx->touched, tx->sp_touched, sizeof tx->touched);
    memcpy(tx->pending, tx->sp_pending, sizeof tx->pending);
    s->stats->sp_rollbacks++;
    trace(s, "%s rolls back to savepoint", id_text(s, tx->id, a, sizeof a));
}

/* ---- the syncer ---- */

/* One row of a batch, with the branch of the query that found it. */
typedef struct Out {
    int key;
    int branch;
    Row row;
} Out;

/* Sorts rows by (txid, key), the order of branches 2 and 3. */
static void sort_by_txid_key(Out *rows, int n)
{
    for (int i = 1; i < n; i++) {
        Out x = rows[i];
        int j = i;
        while (j > 0 && (rows[j - 1].row.txid > x.row.txid ||
                         (rows[j - 1].row.txid == x.row.txid && rows[j - 1].key > x.key))) {
            rows[j] = rows[j - 1];
            j--;
        }
        rows[j] = x;
    }
}

/* Tells whether id is in the sorted array a of n ids. */
static bool sorted_contains(const uint64_t *a, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] == id)
            return true;
        if (a[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* The second components of composite model keys, ascending bytewise, with
 * the separator and the escape character of the canonical text in them. */
static const char *const COMPONENT[4] = {"a,", "b%", "c%2C,", "d"};

/* Writes the text the cursor stores for model key k: its decimal form, or
 * for a composite schedule the canonical text (keys_join) of
 * (k / 4, COMPONENT[k % 4]), whose column-by-column order is k's. */
static void key_text(const Sim *s, int k, char *out, size_t outlen)
{
    if (!s->composite) {
        snprintf(out, outlen, "%d", k);
        return;
    }
    char first[16];
    snprintf(first, sizeof first, "%d", k / 4);
    const char *parts[2] = {first, COMPONENT[k % 4]};
    Buf b;
    buf_init(&b, outlen - 1);
    if (keys_join(&b, parts, 2) != 0)
        fail_msg("keys_join failed for key %d", k);
    snprintf(out, outlen, "%s", buf_str(&b));
    buf_free(&b);
}

/* The model key of the text the cursor stores: a composite text is split
 * into its columns (keys_split), as pg does for branch 1's parameters, and
 * compared column by column; an unknown second column fails the test. */
static long key_of(const Sim *s, const char *text)
{
    if (!s->composite)
        return strtol(text, NULL, 10);
    Buf b;
    buf_init(&b, 1024);
    size_t starts[2];
    if (keys_split(text, 2, &b, starts) != 0)
        fail_msg("keys_split cannot split the cursor's key '%s'", text);
    long k = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(b.data + starts[1], COMPONENT[i]) == 0)
            k = strtol(b.data + starts[0], NULL, 10) * 4 + i;
    if (k < 0)
        fail_msg("the cursor's key '%s' does not decode to a model key", text);
    buf_free(&b);
    return k;
}

/* Answers the batch query for cursor c exactly as the SQL would: the three
 * branches over the committed rows (all visible in a snapshot taken now),
 * each ordered and limited to limit, concatenated and limited again.
 * Fills rows and returns how many. */
static int answer_query(const Sim *s, const Cursor *c, size_t limit, Out *rows)
{
    CursorQuery q;
    cursor_query(c, limit, &q);
    int n = 0;
    Out branch[MAX_KEYS];
    for (int b = 1; b <= 3; b++) {
        int m = 0;
        for (int k = 0; k < s->n_keys; k++) {
            const Row *r = &s->committed[k];
            if (!r->exists)
                continue;
            bool hit = b == 1 ? q.has_xid_at && r->txid == q.xid_at && k > key_of(s, q.xid_at_key)
                       : b == 2
                           ? sorted_contains(q.xip, q.n_xip, r->txid)
                           : r->txid >= q.xid_next && !sorted_contains(q.done, q.n_done, r->txid);
            if (hit)
                branch[m++] = (Out){k, b, *r};
        }
        sort_by_txid_key(branch, m); /* branch 1 has one txid: by key */
        for (int i = 0; i < m && (size_t)i < q.limit && (size_t)n < q.limit; i++)
            rows[n++] = branch[i];
    }
    return n;
}

/* Gives the synced view a row unless it already holds this or a newer
 * version (version_type=external). */
static void deliver(Sim *s, const Out *o)
{
    Row *v = &s->view[o->key];
    if (v->exists && v->version >= o->row.version)
        return;
    *v = o->row;
    if (o->row.deleted)
        s->stats->tombstones_synced++;
}

/* Checks the invariant of docs/design.md for the live cursor against the
 * committed rows and the synced view; returns 0 or -1 (failure recorded). */
static int check_invariant(Sim *s)
{
    const Cursor *c = &s->cursor;
    long at_key = c->has_xid_at ? key_of(s, c->xid_at_key) : 0;
    for (int k = 0; k < s->n_keys; k++) {
        const Row *r = &s->committed[k];
        bool done = sorted_contains(c->done, c->n_done, r->txid);
        if (!r->exists ||
            (!done && (r->txid >= c->xid_next || sorted_contains(c->xip, c->n_xip, r->txid))))
            continue;
        if (c->has_xid_at && r->txid == c->xid_at && k > at_key)
            continue;
        const Row *v = &s->view[k];
        if (!v->exists || v->txid != r->txid || v->version != r->version ||
            v->deleted != r->deleted) {
            char a[24], b[24], cur[256];
            return sim_fail(s, FAIL_INVARIANT,
                            "invariant broken: key %d committed by %s v%llu%s is covered by "
                            "cursor {%s} but the synced view has %s v%llu%s",
                            k, id_text(s, r->txid, a, sizeof a), (unsigned long long)r->version,
                            r->deleted ? " (tombstone)" : "", cursor_text(s, c, cur, sizeof cur),
                            v->exists ? id_text(s, v->txid, b, sizeof b) : "nothing",
                            (unsigned long long)v->version, v->deleted ? " (tombstone)" : "");
        }
    }
    return 0;
}

/* Tampers with the cursor just advanced (old is the cursor before the
 * batch) the way s->brk says, keeping it well-formed. */
static void apply_break(Sim *s, const Cursor *old, const CursorSnapshot *snap, bool full,
                        uint64_t t)
{
    Cursor *c = &s->cursor;
    if (s->brk == BREAK_DROP_CARRY && full && old->has_xid_at && old->xid_at == t) {
        size_t m = 0;
        for (size_t i = 0; i < c->n_xip; i++) {
            bool running = false;
            for (size_t j = 0; j < snap->n_xip; j++)
                running = running || snap->xip[j] == c->xip[i];
            if (running)
                c->xip[m++] = c->xip[i];
        }
        c->n_xip = m;
    } else if (s->brk == BREAK_FULL_TO_XMAX && full && snap->xmax > c->xid_next) {
        c->xid_next = snap->xmax;
    } else if (s->brk == BREAK_FORGET_RUNNING && !full) {
        c->n_xip = 0;
    }
}

/* Adds id to the live cursor's done set (a break: the cut last txid of a
 * full standby batch).  Returns 0, or -1 with err filled. */
static int mark_done(Sim *s, uint64_t id, char *err, size_t errlen)
{
    Cursor *c = &s->cursor;
    if (sorted_contains(c->done, c->n_done, id))
        return 0;
    uint64_t *grown = realloc(c->done, (c->n_done + 1) * sizeof *grown);
    if (!grown) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t i = c->n_done;
    while (i > 0 && grown[i - 1] > id) {
        grown[i] = grown[i - 1];
        i--;
    }
    grown[i] = id;
    c->done = grown;
    c->n_done++;
    return 0;
}

/* Persists the live cursor as JSON (it replaces the previous one). */
static int persist(Sim *s)
{
    char err[256];
    char *json;
    if (cursor_to_json(&s->cursor, &json, err, sizeof err) != 0)
        return sim_fail(s, FAIL_OTHER, "cursor_to_json: %s", err);
    free(s->persisted);
    s->persisted = json;
    s->stats->persists++;
    trace(s, "persist %s", json);
    return 0;
}

/* Crashes the syncer: the live cursor is replaced by the persisted one
 * (or the initial one when nothing was persisted); the view stays. */
static int crash(Sim *s)
{
    char err[256];
    cursor_free(&s->cursor);
    if (s->persisted &&
        cursor_from_json(&s->cursor, s->persisted, strlen(s->persisted), err, sizeof err) != 0)
        return sim_fail(s, FAIL_OTHER, "persisted cursor unreadable: %s: %s", err, s->persisted);
    s->stats->crashes++;
    char cur[256];
    trace(s, "crash, back to {%s}", cursor_text(s, &s->cursor, cur, sizeof cur));
    return check_invariant(s);
}

/* Restarts the syncer cleanly: the live cursor goes through JSON and must
 * come back equal. */
static int restart(Sim *s)
{
    char err[256];
    char *json;
    Cursor back;
    if (cursor_to_json(&s->cursor, &json, err, sizeof err) != 0)
        return sim_fail(s, FAIL_OTHER, "cursor_to_json: %s", err);
    int rc = cursor_from_json(&back, json, strlen(json), err, sizeof err);
    if (rc != 0) {
        sim_fail(s, FAIL_OTHER, "cursor_from_json(%s): %s", json, err);
        free(json);
        return -1;
    }
    free(json);
    bool same = cursor_same(&back, &s->cursor);
    cursor_free(&s->cursor);
    s->cursor = back;
    s->stats->restarts++;
    trace(s, "restart through json");
    if (!same)
        return sim_fail(s, FAIL_OTHER, "json round trip changed the cursor");
    return 0;
}

/* Turns *snap (the primary's view now) into what a hot standby that has
 * replayed everything reports: no xip; xmax one past the newest ended id;
 * xmin the oldest open id below that, else xmax. */
static void standby_snapshot(Sim *s, CursorSnapshot *snap)
{
    snap->xmax = s->max_ended ? s->max_ended + 1 : s->base;
    snap->xmin = snap->xmax;
    for (int i = 0; i < s->n_open; i++)
        if (s->open[i].id < snap->xmin)
            snap->xmin = s->open[i].id;
    snap->n_xip = 0;
    s->stats->standby_batches++;
    if (snap->xmin < snap->xmax && s->max_ended >= snap->xmin)
        s->stats->standby_held++;
}

/* Runs one batch of batch_size rows: snapshot, query, deliver, advance,
 * check, perhaps persist, and now and then crash halfway instead.  Stores
 * the number of rows in *n_rows.  Returns 0 or -1 (failure recorded). */
static int sync_batch(Sim *s, size_t batch_size, bool may_crash, int *n_rows)
{
    uint64_t xip[MAX_OPEN];
    CursorSnapshot snap = {s->next_id, s->next_id, xip, (size_t)s->n_open};
    for (int i = 0; i < s->n_open; i++) {
        xip[i] = s->open[i].id; /* unsorted on purpose */
        if (xip[i] < snap.xmin)
            snap.xmin = xip[i];
    }
    if (s->standby)
        standby_snapshot(s, &snap);
    Out rows[MAX_BATCH];
    int n = answer_query(s, &s->cursor, batch_size, rows);
    *n_rows = n;
    s->stats->batches++;
    s->stats->rows += (unsigned long)n;

    char a[24], cur[256];
    trace(s, "batch of %zu from {%s}: %d rows", batch_size,
          cursor_text(s, &s->cursor, cur, sizeof cur), n);
    for (int i = 0; i < n; i++)
        trace(s, "  row key %d %s v%llu%s (branch %d)", rows[i].key,
              id_text(s, rows[i].row.txid, a, sizeof a), (unsigned long long)rows[i].row.version,
              rows[i].row.deleted ? " tombstone" : "", rows[i].branch);

    if (may_crash && rng_chance(&s->rng, s->p_crash_mid_batch)) {
        int part = (int)rng_below(&s->rng, (uint32_t)n + 1);
        for (int i = 0; i < part; i++)
            deliver(s, &rows[i]);
        s->stats->crashes_mid_batch++;
        trace(s, "crash after delivering %d of %d rows", part, n);
        return crash(s);
    }
    for (int i = 0; i < n; i++)
        deliver(s, &rows[i]);

    bool full = (size_t)n == batch_size;
    uint64_t t = full ? rows[n - 1].row.txid : 0;
    char key[64];
    key_text(s, full ? rows[n - 1].key : 0, key, sizeof key);
    Cursor old;
    if (cursor_copy(&old, &s->cursor) != 0)
        return sim_fail(s, FAIL_OTHER, "out of memory");
    char err[256];
    int rc;
    uint64_t txids[MAX_BATCH];
    for (int i = 0; i < n; i++)
        txids[i] = rows[i].row.txid;
    if (s->standby && s->cursor.n_done > 0)
        s->stats->standby_done++;
    if (s->standby && s->brk != BREAK_PRIMARY_ON_STANDBY)
        rc = cursor_advance_recovery(&s->cursor, &snap, txids, (size_t)n, batch_size,
                                     full ? key : NULL, NULL, err, sizeof err);
    else
        rc = cursor_advance(&s->cursor, &snap, (size_t)n, batch_size, t, full ? key : NULL, err,
                            sizeof err);
    if (rc == 0 && !s->standby)
        apply_break(s, &old, &snap, full, t);
    if (rc == 0 && s->standby && s->brk == BREAK_DONE_CUT && full && t >= snap.xmin)
        rc = mark_done(s, t, err, sizeof err);
    if (full) {
        s->stats->full_by_branch[rows[n - 1].branch]++;
        if (s->composite && rows[n - 1].branch == 1)
            s->stats->composite_branch1++;
        if (rows[n - 1].branch == 1) {
            for (size_t i = 0; i < old.n_xip; i++) {
                bool running = false;
                for (int j = 0; j < s->n_open; j++)
                    running = running || xip[j] == old.xip[i];
                if (!running) {
                    s->stats->carry_mattered++;
                    break;
                }
            }
        }
    }
    uint64_t old_next = old.xid_next;
    cursor_free(&old);
    if (rc != 0)
        return sim_fail(s, FAIL_OTHER, "cursor_advance refused the batch: %s", err);
    trace(s, "advance to {%s}", cursor_text(s, &s->cursor, cur, sizeof cur));
    if (s->cursor.n_xip > s->stats->max_xip)
        s->stats->max_xip = s->cursor.n_xip;
    if (s->cursor.xid_next < old_next)
        return sim_fail(s, FAIL_OTHER, "xid_next moved backwards");
    if (s->cursor.xid_next > snap.xmax)
        return sim_fail(s, FAIL_OTHER, "xid_next passed the snapshot's xmax");
    if (check_invariant(s) != 0)
        return -1;
    if (rng_chance(&s->rng, s->p_persist))
        return persist(s);
    return 0;
}

/* Runs batches of random sizes until one comes back short (caught up);
 * returns 0 or -1 (failure recorded). */
static int catch_up(Sim *s)
{
    for (int i = 0; i < 10000; i++) {
        size_t bs = 1 + rng_below(&s->rng, MAX_BATCH);
        int n;
        if (sync_batch(s, bs, false, &n) != 0)
            return -1;
        if ((size_t)n < bs)
            return 0;
    }
    return sim_fail(s, FAIL_OTHER, "the syncer did not catch up in 10000 batches");
}

/* Checks that the synced view equals the model, key for key. */
static int check_converged(Sim *s)
{
    for (int k = 0; k < s->n_keys; k++) {
        const Row *r = &s->committed[k];
        const Row *v = &s->view[k];
        if (r->exists != v->exists ||
            (r->exists &&
             (r->txid != v->txid || r->version != v->version || r->deleted != v->deleted))) {
            char a[24], b[24];
            return sim_fail(s, FAIL_MISMATCH,
                            "after quiescence key %d is %s v%llu%s in the model but %s v%llu%s "
                            "in the synced view",
                            k, r->exists ? id_text(s, r->txid, a, sizeof a) : "absent",
                            (unsigned long long)r->version, r->deleted ? " (tombstone)" : "",
                            v->exists ? id_text(s, v->txid, b, sizeof b) : "absent",
                            (unsigned long long)v->version, v->deleted ? " (tombstone)" : "");
        }
    }
    return 0;
}

/* Ends every transaction, lets the syncer catch up, and checks that the
 * view equals the model and that an idle batch changes nothing; sometimes
 * crashes once more and checks the same again. */
static int quiesce(Sim *s)
{
    trace(s, "quiescence");
    while (s->n_open > 0)
        tx_end(s, s->n_open - 1, rng_chance(&s->rng, 800));
    if (catch_up(s) != 0 || check_converged(s) != 0)
        return -1;

    Cursor before;
    if (cursor_copy(&before, &s->cursor) != 0)
        return sim_fail(s, FAIL_OTHER, "out of memory");
    size_t bs = 1 + rng_below(&s->rng, MAX_BATCH);
    int n;
    int rc = sync_batch(s, bs, false, &n);
    bool same = cursor_same(&before, &s->cursor);
    cursor_free(&before);
    if (rc != 0)
        return -1;
    if (n != 0 || !same)
        return sim_fail(s, FAIL_OTHER, "idle batch returned %d rows or moved the cursor", n);

    if (rng_chance(&s->rng, 300)) {
        if (crash(s) != 0 || catch_up(s) != 0 || check_converged(s) != 0)
            return -1;
    }
    return 0;
}

/* Draws the shape of one schedule: key space, concurrency, id base, and
 * how often each action and syncer habit happens. */
static void sim_setup(Sim *s, uint64_t seed)
{
    s->rng.state = seed;
    uint32_t where = rng_below(&s->rng, 100);
    s->base = where < 70   ? (UINT64_C(1) << 32) + 7
              : where < 85 ? (UINT64_C(1) << 63) - 50 /* crosses into the sign bit */
                           : UINT64_MAX - 100000;
    s->next_id = s->base;
    s->n_keys = 3 + (int)rng_below(&s->rng, MAX_KEYS - 2);
    s->composite = seed % 2 == 0;
    s->max_open = 1 + (int)rng_below(&s->rng, MAX_OPEN);
    s->w_begin = 10 + rng_below(&s->rng, 30);
    s->w_write = 20 + rng_below(&s->rng, 60);
    s->w_end = 10 + rng_below(&s->rng, 30);
    s->w_prepare = rng_below(&s->rng, 4);
    s->w_savepoint = rng_below(&s->rng, 6);
    s->w_batch = 5 + rng_below(&s->rng, 40);
    s->w_crash = rng_below(&s->rng, 4);
    s->w_restart = rng_below(&s->rng, 4);
    s->p_persist = rng_below(&s->rng, 1001);
    s->p_crash_mid_batch = rng_below(&s->rng, 40);
    s->standby = rng_below(&s->rng, 3) == 0;
    cursor_init(&s->cursor);
}

/* Performs one random step of the schedule. */
static int sim_step(Sim *s)
{
    uint32_t total = s->w_begin + s->w_write + s->w_end + s->w_prepare + s->w_savepoint +
                     s->w_batch + s->w_crash + s->w_restart;
    uint32_t r = rng_below(&s->rng, total);
    int i;
    if (r < s->w_begin) {
        tx_begin(s);
        return 0;
    }
    r -= s->w_begin;
    if (r < s->w_write + s->w_end) {
        /* Write, or end a transaction that has done its writes (or, now
         * and then, one that has not); a prepared one ends rarely. */
        bool want_end = r >= s->w_write;
        i = pick_tx(s, want_end);
        if (i < 0)
            return 0;
        Tx *tx = &s->open[i];
        if (tx->prepared) {
            if (rng_chance(&s->rng, 100))
                tx_end(s, i, rng_chance(&s->rng, 700));
            return 0;
        }
        if (want_end && (tx->writes_left == 0 || rng_chance(&s->rng, 150))) {
            tx_end(s, i, rng_chance(&s->rng, 800));
            return 0;
        }
        int writes = tx->big ? 1 + (int)rng_below(&s->rng, 3) : 1;
        for (int w = 0; w < writes; w++)
            tx_write(s, tx, (int)rng_below(&s->rng, (uint32_t)s->n_keys));
        return 0;
    }
    r -= s->w_write + s->w_end;
    if (r < s->w_prepare) {
        i = pick_tx(s, false);
        if (i >= 0) {
            char a[24];
            s->open[i].prepared = true;
            trace(s, "%s prepares", id_text(s, s->open[i].id, a, sizeof a));
        }
        return 0;
    }
    r -= s->w_prepare;
    if (r < s->w_savepoint) {
        i = pick_tx(s, false);
        if (i >= 0)
            tx_savepoint(s, &s->open[i]);
        return 0;
    }
    r -= s->w_savepoint;
    if (r < s->w_batch) {
        int n;
        return sync_batch(s, 1 + rng_below(&s->rng, MAX_BATCH), true, &n);
    }
    r -= s->w_batch;
    if (r < s->w_crash)
        return crash(s);
    /* Now and then a standby is promoted: the next batches read primary
     * snapshots, with whatever cursor the standby's rule left. */
    if (s->standby && rng_chance(&s->rng, 100)) {
        s->standby = false;
        s->stats->promotions++;
        trace(s, "promoted");
        return 0;
    }
    return restart(s);
}

/* Runs the schedule of one seed with the given break, into stats, keeping
 * a trace when trace is not NULL.  Returns FAIL_NONE or the kind of the
 * failure, whose description is copied to why. */
static FailKind run_schedule(uint64_t seed, Break brk, Stats *stats, Trace *tr, char *why,
                             size_t whylen)
{
    Sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->brk = brk;
    s->stats = stats;
    s->trace = tr;
    sim_setup(s, seed);
    if (tr)
        tr->base = s->base;
    int steps = 40 + (int)rng_below(&s->rng, 300);
    trace(s, "seed %llu: %d keys, up to %d open, ids from %llu, %d steps", (unsigned long long)seed,
          s->n_keys, s->max_open, (unsigned long long)s->base, steps);
    int rc = 0;
    for (int i = 0; i < steps && rc == 0; i++) {
        rc = sim_step(s);
        stats->steps++;
    }
    if (rc == 0)
        rc = quiesce(s);
    stats->schedules++;
    FailKind kind = s->fail_kind;
    snprintf(why, whylen, "%s", s->why);
    cursor_free(&s->cursor);
    free(s->persisted);
    free(s);
    return kind;
}

/* Reads a non-negative integer from the environment, or returns dflt; a
 * malformed value fails the test rather than being ignored. */
static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end != '\0' || v[0] == '-')
        fail_msg("%s=%s is not a non-negative integer", name, v);
    return x;
}

/* Prints the failure of seed, replays it with tracing on and prints the
 * last events of the trace. */
static void report_failure(uint64_t seed, unsigned long index, const char *why)
{
    fprintf(stderr, "simulation: schedule %lu failed, seed %llu: %s\n", index,
            (unsigned long long)seed, why);
    fprintf(stderr, "simulation: replay with TXIDSYNC_SIM_SEED=%llu TXIDSYNC_SIM_SCHEDULES=1\n",
            (unsigned long long)seed);
    Trace *tr = calloc(1, sizeof *tr);
    assert_non_null(tr);
    tr->on = true;
    Stats scratch = {0};
    char again[512];
    run_schedule(seed, BREAK_NONE, &scratch, tr, again, sizeof again);
    unsigned long first = tr->count > TRACE_LINES ? tr->count - TRACE_LINES : 0;
    fprintf(stderr, "simulation: last %lu of %lu events of seed %llu (T<n> is txid %llu + n):\n",
            tr->count - first, tr->count, (unsigned long long)seed, (unsigned long long)tr->base);
    for (unsigned long i = first; i < tr->count; i++)
        fprintf(stderr, "  %s\n", tr->lines[i % TRACE_LINES]);
    free(tr);
}

/* Runs TXIDSYNC_SIM_SCHEDULES schedules from seed TXIDSYNC_SIM_SEED against
 * the real cursor; stops at the first failure and reports it.  On a full
 * run of at least 1000 schedules also requires that every hard case was
 * met at least once, so the simulation cannot quietly stop testing them. */
static void test_simulation(void **state)
{
    (void)state;
    uint64_t n = env_u64("TXIDSYNC_SIM_SCHEDULES", 10000);
    uint64_t seed0 = env_u64("TXIDSYNC_SIM_SEED", 1);
    Stats st = {0};
    char why[512];
    clock_t t0 = clock();
    for (uint64_t i = 0; i < n; i++) {
        if (run_schedule(seed0 + i, BREAK_NONE, &st, NULL, why, sizeof why) != FAIL_NONE) {
            report_failure(seed0 + i, (unsigned long)i + 1, why);
            fail_msg("simulation failed at seed %llu after %llu schedules: %s",
                     (unsigned long long)(seed0 + i), (unsigned long long)i + 1, why);
        }
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf(
        "simulation: %lu schedules (seeds %llu..%llu) in %.2fs: %lu steps, %lu batches, "
        "%lu rows; full batches ending in branch 1/2/3: %lu/%lu/%lu (branch 1 with a composite "
        "key: %lu); xip carried while "
        "xid_at held: %lu; %lu commits (%lu big), %lu aborts, %lu prepared ended; older tx "
        "over newer row: %lu; re-inserts %lu, tombstones synced %lu; lock waits %lu, "
        "savepoint rollbacks %lu; crashes %lu (%lu mid-batch), restarts %lu, persists %lu; "
        "max xip %lu; standby batches %lu (%lu with ended ids in [xmin, xmax), %lu skipping done "
        "ids), %lu promotions\n",
        st.schedules, (unsigned long long)seed0, (unsigned long long)(seed0 + n - 1), secs,
        st.steps, st.batches, st.rows, st.full_by_branch[1], st.full_by_branch[2],
        st.full_by_branch[3], st.composite_branch1, st.carry_mattered, st.commits, st.big_commits,
        st.aborts, st.prepared_ends, st.older_over_newer, st.reinserts, st.tombstones_synced,
        st.lock_waits, st.sp_rollbacks, st.crashes, st.crashes_mid_batch, st.restarts, st.persists,
        st.max_xip, st.standby_batches, st.standby_held, st.standby_done, st.promotions);
    if (n >= 1000) {
        const unsigned long covered[] = {
            st.full_by_branch[1], st.full_by_branch[2], st.full_by_branch[3], st.carry_mattered,
            st.big_commits,       st.prepared_ends,     st.older_over_newer,  st.reinserts,
            st.tombstones_synced, st.lock_waits,        st.sp_rollbacks,      st.crashes_mid_batch,
            st.crashes,           st.restarts,          st.composite_branch1, st.standby_batches,
            st.standby_held,      st.standby_done,      st.promotions,
        };
        for (size_t i = 0; i < sizeof covered / sizeof covered[0]; i++) {
            if (covered[i] == 0)
                fail_msg("simulation: hard case %zu of the coverage list never happened", i);
        }
    }
}

/* The same seed gives the same schedule: replaying a reported seed shows
 * the failure that was reported. */
static void test_simulation_is_deterministic(void **state)
{
    (void)state;
    for (uint64_t seed = 7; seed < 12; seed++) {
        Stats a = {0}, b = {0};
        char why[512];
        assert_int_equal(run_schedule(seed, BREAK_NONE, &a, NULL, why, sizeof why), FAIL_NONE);
        assert_int_equal(run_schedule(seed, BREAK_NONE, &b, NULL, why, sizeof why), FAIL_NONE);
        assert_memory_equal(&a, &b, sizeof a);
    }
}

/* Each deliberately broken cursor is caught — by the invariant or by the
 * final comparison, not by some refusal — within 5000 schedules: the
 * simulation can fail. */
static void test_simulation_catches_broken_cursors(void **state)
{
    (void)state;
    for (int brk = BREAK_NONE + 1; brk < BREAK_COUNT; brk++) {
        Stats st = {0};
        char why[512] = "";
        FailKind kind = FAIL_NONE;
        uint64_t seed = 1;
        for (; seed <= 5000 && kind == FAIL_NONE; seed++)
            kind = run_schedule(seed, (Break)brk, &st, NULL, why, sizeof why);
        if (kind != FAIL_INVARIANT && kind != FAIL_MISMATCH)
            fail_msg("break \"%s\" not caught (kind %d: %s)", break_names[brk], (int)kind, why);
        printf("simulation: break \"%s\" caught by seed %llu: %s\n", break_names[brk],
               (unsigned long long)(seed - 1), why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simulation_is_deterministic),
        cmocka_unit_test(test_simulation_catches_broken_cursors),
        cmocka_unit_test(test_simulation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
