/*
 * Unit tests of cursor: cursor_advance on every hard case of docs/design.md
 * that is pure logic (each test names its case and walks it batch by
 * batch with the snapshots Postgres would report), its refusals, and the
 * JSON form — round trips, the exact text written, and a table of bad
 * inputs with the piece of the error message each must give.  The
 * randomised model check lives in test_simulation.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cursor.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* An id above 2^63, so that signed 64-bit handling anywhere would show. */
#define BIG ((UINT64_C(1) << 63) + UINT64_C(1000))

/* Sets *c to the given state; xip is copied and must be sorted; key NULL
 * means no xid_at.  *c must have been initialised. */
static void set_cursor(Cursor *c, uint64_t xid_next, const uint64_t *xip, size_t n_xip,
                       uint64_t xid_at, const char *key)
{
    cursor_free(c);
    c->xid_next = xid_next;
    if (n_xip > 0) {
        c->xip = malloc(n_xip * sizeof *c->xip);
        assert_non_null(c->xip);
        memcpy(c->xip, xip, n_xip * sizeof *xip);
    }
    c->n_xip = n_xip;
    if (key) {
        c->has_xid_at = true;
        c->xid_at = xid_at;
        c->xid_at_key = strdup(key);
        assert_non_null(c->xid_at_key);
    }
}

/* Asserts that c holds exactly the given state (key NULL: no xid_at). */
static void expect_cursor(const Cursor *c, uint64_t xid_next, const uint64_t *xip, size_t n_xip,
                          uint64_t xid_at, const char *key)
{
    assert_int_equal(c->xid_next, xid_next);
    assert_int_equal(c->n_xip, n_xip);
    for (size_t i = 0; i < n_xip; i++)
        assert_int_equal(c->xip[i], xip[i]);
    if (key) {
        assert_true(c->has_xid_at);
        assert_int_equal(c->xid_at, xid_at);
        assert_non_null(c->xid_at_key);
        assert_string_equal(c->xid_at_key, key);
    } else {
        assert_false(c->has_xid_at);
        assert_null(c->xid_at_key);
    }
}

/* Builds a snapshot borrowing xip; xmin is the smallest xip entry, or xmax. */
static CursorSnapshot snap(uint64_t xmax, const uint64_t *xip, size_t n_xip)
{
    CursorSnapshot s = {xmax, xmax, xip, n_xip};
    for (size_t i = 0; i < n_xip; i++) {
        if (xip[i] < s.xmin)
            s.xmin = xip[i];
    }
    return s;
}

/* Advances c and asserts that it succeeded. */
static void advance_ok(Cursor *c, const CursorSnapshot *s, size_t n, size_t batch_size,
                       uint64_t last_txid, const char *last_key)
{
    char err[256] = "";
    int rc = cursor_advance(c, s, n, batch_size, last_txid, last_key, err, sizeof err);
    if (rc != 0)
        fail_msg("cursor_advance failed: %s", err);
}

/* A fresh cursor has read nothing: branch 3 from txid 0, partition 0 of 1. */
static void test_init_and_query(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    expect_cursor(&c, 0, NULL, 0, 0, NULL);
    assert_int_equal(c.part_k, 0);
    assert_int_equal(c.part_n, 1);

    CursorQuery q;
    cursor_query(&c, 7, &q);
    assert_false(q.has_xid_at);
    assert_null(q.xid_at_key);
    assert_int_equal(q.n_xip, 0);
    assert_int_equal(q.xid_next, 0);
    assert_int_equal(q.limit, 7);

    const uint64_t xip[] = {5, 8};
    set_cursor(&c, 10, xip, 2, 9, "k9");
    cursor_query(&c, 3, &q);
    assert_true(q.has_xid_at);
    assert_int_equal(q.xid_at, 9);
    assert_string_equal(q.xid_at_key, "k9");
    assert_ptr_equal(q.xip, c.xip);
    assert_int_equal(q.n_xip, 2);
    assert_int_equal(q.xid_next, 10);
    cursor_free(&c);
    expect_cursor(&c, 0, NULL, 0, 0, NULL);
}

/* cursor_copy is deep and cursor_same compares by value. */
static void test_copy_and_equal(void **state)
{
    (void)state;
    Cursor a, b;
    cursor_init(&a);
    const uint64_t xip[] = {3, 4};
    set_cursor(&a, 10, xip, 2, 7, "key");
    assert_int_equal(cursor_copy(&b, &a), 0);
    assert_true(cursor_same(&a, &b));
    assert_ptr_not_equal(a.xip, b.xip);
    assert_ptr_not_equal(a.xid_at_key, b.xid_at_key);
    b.xid_at_key[0] = 'K';
    assert_false(cursor_same(&a, &b));
    b.xid_at_key[0] = 'k';
    b.xip[1] = 5;
    assert_false(cursor_same(&a, &b));
    b.xip[1] = 4;
    b.part_n = 2;
    assert_false(cursor_same(&a, &b));
    cursor_free(&b);
    assert_false(cursor_same(&a, &b));
    cursor_free(&a);
    assert_true(cursor_same(&a, &b));
}

/* cursor_low: the lowest of xid_next, the xip and a half-read xid_at. */
static void test_low(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    assert_int_equal(cursor_low(&c), 0);
    set_cursor(&c, 10, NULL, 0, 0, NULL);
    assert_int_equal(cursor_low(&c), 10);
    const uint64_t xip[] = {6, 8};
    set_cursor(&c, 10, xip, 2, 0, NULL);
    assert_int_equal(cursor_low(&c), 6);
    set_cursor(&c, 10, xip, 2, 4, "k");
    assert_int_equal(cursor_low(&c), 4);
    set_cursor(&c, 10, NULL, 0, 12, "k");
    assert_int_equal(cursor_low(&c), 10);
    cursor_free(&c);
}

/* Caught up: xid_next takes xmax, xip takes the snapshot's (sorted and
 * deduplicated), and a half-read xid_at is finished and forgotten. */
static void test_caught_up_takes_snapshot(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    const uint64_t old_xip[] = {90};
    set_cursor(&c, 100, old_xip, 1, 95, "7");
    const uint64_t sxip[] = {130, 104, 120, 104};
    CursorSnapshot s = snap(140, sxip, N_OF(sxip));
    advance_ok(&c, &s, 2, 5, 0, NULL);
    const uint64_t want[] = {104, 120, 130};
    expect_cursor(&c, 140, want, 3, 0, NULL);
    cursor_free(&c);
}

/* Idle convergence: with nothing in progress and nothing new, the same
 * snapshot twice leaves the cursor unchanged, with or without xip. */
static void test_idle_converges(void **state)
{
    (void)state;
    Cursor c, before;
    cursor_init(&c);
    CursorSnapshot s = snap(500, NULL, 0);
    advance_ok(&c, &s, 0, 10, 0, NULL);
    expect_cursor(&c, 500, NULL, 0, 0, NULL);
    assert_int_equal(cursor_copy(&before, &c), 0);
    for (int i = 0; i < 3; i++) {
        advance_ok(&c, &s, 0, 10, 0, NULL);
        assert_true(cursor_same(&c, &before));
    }
    cursor_free(&before);

    /* A prepared transaction lingering in xip: no rows, same snapshot. */
    const uint64_t sxip[] = {480};
    CursorSnapshot s2 = snap(500, sxip, 1);
    advance_ok(&c, &s2, 0, 10, 0, NULL);
    assert_int_equal(cursor_copy(&before, &c), 0);
    advance_ok(&c, &s2, 0, 10, 0, NULL);
    assert_true(cursor_same(&c, &before));
    cursor_free(&before);
    cursor_free(&c);
}

/* xid_next never moves backwards: under a snapshot older than the cursor
 * it keeps its value, and the ids the snapshot cannot vouch for (at or
 * above its xmax) stay in xip, a half-read xid_at among them. */
static void test_never_moves_backwards(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    const uint64_t old_xip[] = {150, 210};
    set_cursor(&c, 300, old_xip, 2, 250, "4");
    const uint64_t sxip[] = {150};
    CursorSnapshot s = snap(200, sxip, 1);
    advance_ok(&c, &s, 0, 5, 0, NULL);
    const uint64_t want[] = {150, 210, 250};
    expect_cursor(&c, 300, want, 3, 0, NULL);

    /* A full batch can leave xid_next where it is, never lower it. */
    const uint64_t xip2[] = {150};
    set_cursor(&c, 300, xip2, 1, 0, NULL);
    CursorSnapshot s2 = snap(310, NULL, 0);
    advance_ok(&c, &s2, 2, 2, 150, "9");
    expect_cursor(&c, 300, NULL, 0, 150, "9");
    cursor_free(&c);
}

/* Out-of-order commit (the first hard case): T100 starts first,
 * T101 commits first; T100 stays in xip and is asked for again in every
 * batch until it commits, then its rows come through branch 2. */
static void test_out_of_order_commit(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    const uint64_t running[] = {100};
    CursorSnapshot s1 = snap(102, running, 1);
    advance_ok(&c, &s1, 1, 10, 101, "r2"); /* T101's row only */
    expect_cursor(&c, 102, running, 1, 0, NULL);

    CursorQuery q;
    cursor_query(&c, 10, &q);
    assert_int_equal(q.n_xip, 1);
    assert_int_equal(q.xip[0], 100);
    assert_int_equal(q.xid_next, 102);

    advance_ok(&c, &s1, 0, 10, 0, NULL); /* still running: nothing changes */
    expect_cursor(&c, 102, running, 1, 0, NULL);

    CursorSnapshot s2 = snap(102, NULL, 0); /* T100 committed */
    advance_ok(&c, &s2, 1, 10, 100, "r2");  /* branch 2: T100's update of r2 */
    expect_cursor(&c, 102, NULL, 0, 0, NULL);
    cursor_free(&c);
}

/* One transaction far larger than a batch: 7 rows of T200 with batch size
 * 3 are read over three batches through xid_at, and what was in progress
 * below T200 is remembered throughout. */
static void test_big_transaction_spans_batches(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    const uint64_t old_xip[] = {150};
    set_cursor(&c, 160, old_xip, 1, 0, NULL);
    const uint64_t sxip[] = {150, 170, 230};
    CursorSnapshot s = snap(240, sxip, 3);

    advance_ok(&c, &s, 3, 3, 200, "3"); /* branch 3: T200 keys 1..3 */
    const uint64_t want1[] = {150, 170};
    expect_cursor(&c, 201, want1, 2, 200, "3");

    CursorQuery q;
    cursor_query(&c, 3, &q);
    assert_true(q.has_xid_at);
    assert_int_equal(q.xid_at, 200);
    assert_string_equal(q.xid_at_key, "3");

    advance_ok(&c, &s, 3, 3, 200, "6"); /* branch 1: keys 4..6 */
    expect_cursor(&c, 201, want1, 2, 200, "6");

    advance_ok(&c, &s, 1, 3, 200, "7"); /* branch 1: key 7, short batch */
    const uint64_t want3[] = {150, 170, 230};
    expect_cursor(&c, 240, want3, 3, 0, NULL);
    cursor_free(&c);
}

/* xip carry-over: while branch 1 fills the batch, branches 2 and 3 are not
 * read, so an old xip entry that has meanwhile committed (T150 is gone
 * from the snapshot) must stay in xip. */
static void test_xip_carried_while_xid_at_holds(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    const uint64_t old_xip[] = {150, 180};
    set_cursor(&c, 201, old_xip, 2, 200, "3");
    const uint64_t sxip[] = {180, 220};
    CursorSnapshot s = snap(230, sxip, 2);
    advance_ok(&c, &s, 3, 3, 200, "6");
    expect_cursor(&c, 201, old_xip, 2, 200, "6");
    cursor_free(&c);
}

/* A full batch ending in branch 2: xid_at moves to the last row's T105;
 * T100 (below, read to the end, committed) is dropped, T110 (above, not
 * reached) is kept, T105 itself is xid_at now, the old xid_at T90 is done,
 * and xid_next does not move. */
static void test_full_batch_ending_in_branch_2(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    const uint64_t old_xip[] = {100, 105, 110};
    set_cursor(&c, 120, old_xip, 3, 90, "z");
    const uint64_t sxip[] = {130};
    CursorSnapshot s = snap(131, sxip, 1);
    advance_ok(&c, &s, 4, 4, 105, "2");
    const uint64_t want[] = {110};
    expect_cursor(&c, 120, want, 1, 105, "2");
    cursor_free(&c);
}

/* A full batch ending in branch 3 at T110 with T103 and T107 still in
 * progress below it: they join xip, T115 (above) is left to branch 3, and
 * xid_next becomes 111. */
static void test_full_batch_ending_in_branch_3(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    const uint64_t old_xip[] = {95};
    set_cursor(&c, 100, old_xip, 1, 0, NULL);
    const uint64_t sxip[] = {115, 107, 103};
    CursorSnapshot s = snap(120, sxip, 3);
    advance_ok(&c, &s, 5, 5, 110, "k");
    const uint64_t want[] = {103, 107};
    expect_cursor(&c, 111, want, 2, 110, "k");

    /* Next batch, T110 finished in branch 1 and the rest caught up. */
    advance_ok(&c, &s, 2, 5, 0, NULL);
    const uint64_t want2[] = {103, 107, 115};
    expect_cursor(&c, 120, want2, 3, 0, NULL);
    cursor_free(&c);
}

/* Ids above 2^63 go through advance unharmed. */
static void test_ids_above_2_63(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    const uint64_t sxip[] = {BIG + 3};
    CursorSnapshot s = snap(BIG + 10, sxip, 1);
    advance_ok(&c, &s, 2, 2, BIG + 5, "x");
    expect_cursor(&c, BIG + 6, sxip, 1, BIG + 5, "x");
    advance_ok(&c, &s, 0, 2, 0, NULL);
    expect_cursor(&c, BIG + 10, sxip, 1, 0, NULL);
    cursor_free(&c);
}

/* Every refusal of cursor_advance leaves the cursor exactly as it was. */
static void test_advance_refusals(void **state)
{
    (void)state;
    Cursor c, before;
    cursor_init(&c);
    const uint64_t xip[] = {100};
    set_cursor(&c, 110, xip, 1, 105, "5");
    assert_int_equal(cursor_copy(&before, &c), 0);
    const uint64_t sxip[] = {100, 112};
    CursorSnapshot s = snap(120, sxip, 2);
    const uint64_t bad_sxip[] = {125};
    CursorSnapshot bad_s = snap(120, bad_sxip, 1);
    bad_s.xmin = 100;
    CursorSnapshot inverted = snap(120, NULL, 0);
    inverted.xmin = 121;

    struct {
        const CursorSnapshot *s;
        size_t n, batch_size;
        uint64_t t;
        const char *key;
        const char *want;
    } cases[] = {
        {&s, 4, 3, 110, "k", "more than the 3 asked for"},
        {&s, 0, 0, 0, NULL, "batch size is 0"},
        {&s, 3, 3, 110, NULL, "without the key of its last row"},
        {&s, 3, 3, 102, "k", "txid 102 is not one the batch query asks for"},
        {&s, 3, 3, 112, "k", "txid 112 is not committed in the snapshot"},
        {&s, 3, 3, 100, "k", "txid 100 is not committed in the snapshot"},
        {&s, 3, 3, 120, "k", "txid 120 is not committed in the snapshot"},
        {&bad_s, 1, 3, 0, NULL, "snapshot xip entry 125 is outside"},
        {&inverted, 1, 3, 0, NULL, "snapshot xmin 121 is above xmax 120"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        char err[256] = "";
        int rc = cursor_advance(&c, cases[i].s, cases[i].n, cases[i].batch_size, cases[i].t,
                                cases[i].key, err, sizeof err);
        if (rc != -1 || !strstr(err, cases[i].want) || strncmp(err, "cursor: ", 8) != 0)
            fail_msg("case %zu: rc %d, err \"%s\", want \"%s\"", i, rc, err, cases[i].want);
        assert_true(cursor_same(&c, &before));
    }

    /* A cursor that breaks its own invariants is refused, not advanced. */
    char err[256] = "";
    c.xip[0] = 111;
    assert_int_equal(cursor_advance(&c, &s, 0, 3, 0, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "xip entry 111 is not below xid_next 110"));
    assert_int_equal(c.xip[0], 111);

    /* No error buffer at all is allowed. */
    assert_int_equal(cursor_advance(&c, &s, 0, 0, 0, NULL, NULL, 0), -1);
    cursor_free(&before);
    cursor_free(&c);
}

/* ---- JSON ---- */

/* Serialises c, parses the text back, and asserts the result is equal;
 * returns the text (caller frees). */
static char *round_trip(const Cursor *c)
{
    char err[256] = "";
    char *json = NULL;
    if (cursor_to_json(c, &json, err, sizeof err) != 0)
        fail_msg("cursor_to_json: %s", err);
    Cursor back;
    if (cursor_from_json(&back, json, strlen(json), err, sizeof err) != 0)
        fail_msg("cursor_from_json(%s): %s", json, err);
    assert_true(cursor_same(c, &back));
    cursor_free(&back);
    return json;
}

/* The exact text written, ids as decimal strings, nulls for no xid_at. */
/* On a standby (no xip in the snapshot): xid_next stops at xmin, however
 * far xmax is; a full batch below xmin moves xid_at as on a primary; a
 * full batch reaching xmin counts as caught up at xmin; a cursor ahead
 * of xmin is refused. */
static void test_recovery_rule(void **state)
{
    (void)state;
    char err[256] = "";
    Cursor c;
    cursor_init(&c);
    CursorSnapshot s = {.xmin = 120, .xmax = 150, .xip = NULL, .n_xip = 0};
    size_t reread = 99;
    /* Short batch: below xmin all read; ids at or above it are done. */
    const uint64_t short_ids[] = {100, 121, 125};
    assert_int_equal(
        cursor_advance_recovery(&c, &s, short_ids, 3, 10, NULL, &reread, err, sizeof err), 0);
    expect_cursor(&c, 120, NULL, 0, 0, NULL);
    assert_int_equal(c.n_done, 2);
    assert_true(c.done[0] == 121 && c.done[1] == 125);
    assert_int_equal(reread, 0);
    CursorQuery q;
    cursor_query(&c, 10, &q);
    assert_true(q.n_done == 2 && q.done == c.done);
    /* A done id coming back is not what the query asks for. */
    const uint64_t again[] = {121};
    assert_int_equal(cursor_advance_recovery(&c, &s, again, 1, 10, NULL, NULL, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "121 is done"));
    /* Full batch past xmin: its ids but the cut last one become done. */
    uint64_t full[10] = {122, 122, 126, 126, 126, 127, 127, 127, 127, 127};
    assert_int_equal(cursor_advance_recovery(&c, &s, full, 10, 10, "9", &reread, err, sizeof err),
                     0);
    expect_cursor(&c, 120, NULL, 0, 0, NULL);
    assert_int_equal(c.n_done, 4);
    assert_true(c.done[0] == 121 && c.done[1] == 122 && c.done[2] == 125 && c.done[3] == 126);
    assert_int_equal(reread, 5);
    /* xmin moves on: the done ids below it are dropped, xid_next follows. */
    CursorSnapshot later = {.xmin = 126, .xmax = 160, .xip = NULL, .n_xip = 0};
    assert_int_equal(cursor_advance_recovery(&c, &later, NULL, 0, 10, NULL, NULL, err, sizeof err),
                     0);
    expect_cursor(&c, 126, NULL, 0, 0, NULL);
    assert_int_equal(c.n_done, 1);
    assert_true(c.done[0] == 126);
    /* A primary's snapshot empties it. */
    CursorSnapshot primary = {.xmin = 150, .xmax = 170, .xip = NULL, .n_xip = 0};
    assert_int_equal(cursor_advance(&c, &primary, 0, 10, 0, NULL, err, sizeof err), 0);
    expect_cursor(&c, 170, NULL, 0, 0, NULL);
    assert_int_equal(c.n_done, 0);
    cursor_free(&c);
    /* Full batch below xmin: the primary's rule on it. */
    set_cursor(&c, 100, NULL, 0, 0, NULL);
    uint64_t low[10] = {100, 101, 102, 103, 104, 105, 106, 107, 108, 110};
    assert_int_equal(cursor_advance_recovery(&c, &s, low, 10, 10, "4", NULL, err, sizeof err), 0);
    expect_cursor(&c, 111, NULL, 0, 110, "4");
    cursor_free(&c);
    set_cursor(&c, 130, NULL, 0, 0, NULL);
    assert_int_equal(cursor_advance_recovery(&c, &s, NULL, 0, 10, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "ahead of the standby's xmin 120"));
    expect_cursor(&c, 130, NULL, 0, 0, NULL);
    cursor_free(&c);
}

/* Ids past the span are not recorded: the next batch reads them again. */
static void test_recovery_span(void **state)
{
    (void)state;
    char err[256] = "";
    Cursor c;
    cursor_init(&c);
    set_cursor(&c, 1000, NULL, 0, 0, NULL);
    uint64_t far = 1000 + CURSOR_DONE_SPAN;
    CursorSnapshot s = {.xmin = 1000, .xmax = far + 10, .xip = NULL, .n_xip = 0};
    const uint64_t ids[] = {1000, far - 1, far, far + 1};
    size_t reread = 0;
    assert_int_equal(cursor_advance_recovery(&c, &s, ids, 4, 10, NULL, &reread, err, sizeof err),
                     0);
    assert_int_equal(c.n_done, 2);
    assert_true(c.done[0] == 1000 && c.done[1] == far - 1);
    assert_int_equal(reread, 2);
    char *json = NULL;
    assert_int_equal(cursor_to_json(&c, &json, err, sizeof err), 0);
    assert_true(strlen(json) < CURSOR_DONE_SPAN / 4 + 200);
    Cursor back;
    assert_int_equal(cursor_from_json(&back, json, strlen(json), err, sizeof err), 0);
    assert_true(cursor_same(&back, &c));
    free(json);
    cursor_free(&back);
    cursor_free(&c);
}

/* The done set's text: a canonical hex bitmap from xid_next. */
static void test_done_json(void **state)
{
    (void)state;
    char err[256] = "";
    Cursor c;
    const char *json = "{\"format\":1,\"xid_next\":\"100\",\"xip\":[\"99\"],\"done\":\"91\","
                       "\"part_k\":0,\"part_n\":1}";
    assert_int_equal(cursor_from_json(&c, json, strlen(json), err, sizeof err), 0);
    assert_int_equal(c.n_done, 3);
    assert_true(c.done[0] == 100 && c.done[1] == 103 && c.done[2] == 104);
    char *out = NULL;
    assert_int_equal(cursor_to_json(&c, &out, err, sizeof err), 0);
    assert_non_null(strstr(out, "\"done\":\"91\""));
    free(out);
    cursor_free(&c);
    static const struct {
        const char *done, *why;
    } bad[] = {
        {"910", "ends in a 0"},
        {"9A", "not lowercase hex"},
        {"9 ", "not lowercase hex"},
        {"\"x\":1", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"format\":1,\"xid_next\":\"100\",\"xip\":[],\"done\":\"%s\","
                 "\"part_k\":0,\"part_n\":1}",
                 bad[i].done);
        assert_int_equal(cursor_from_json(&c, text, strlen(text), err, sizeof err), -1);
        if (bad[i].why)
            assert_non_null(strstr(err, bad[i].why));
    }
    const char *number = "{\"format\":1,\"xid_next\":\"100\",\"xip\":[],\"done\":7,"
                         "\"part_k\":0,\"part_n\":1}";
    assert_int_equal(cursor_from_json(&c, number, strlen(number), err, sizeof err), -1);
    assert_non_null(strstr(err, "done must be a string of hex digits"));
    /* Past the top of the id range. */
    const char *top = "{\"format\":1,\"xid_next\":\"18446744073709551614\",\"xip\":[],"
                      "\"done\":\"1f\",\"part_k\":0,\"part_n\":1}";
    assert_int_equal(cursor_from_json(&c, top, strlen(top), err, sizeof err), -1);
    assert_non_null(strstr(err, "past the last transaction id"));
    /* Longer than the span. */
    size_t len = CURSOR_DONE_SPAN / 4 + 1;
    char *huge = malloc(len + 200);
    assert_non_null(huge);
    int k = snprintf(huge, 200, "{\"format\":1,\"xid_next\":\"100\",\"xip\":[],\"done\":\"");
    memset(huge + k, '1', len);
    snprintf(huge + k + len, 100, "\",\"part_k\":0,\"part_n\":1}");
    assert_int_equal(cursor_from_json(&c, huge, strlen(huge), err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 65536 ids"));
    free(huge);
}

static void test_json_exact_text(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    char *json = round_trip(&c);
    assert_string_equal(json, "{\"format\":1,\"xid_next\":\"0\",\"xip\":[],\"xid_at\":null,"
                              "\"xid_at_key\":null,\"part_k\":0,\"part_n\":1}");
    free(json);

    const uint64_t xip[] = {100, 101};
    set_cursor(&c, 123, xip, 2, 99, "42");
    c.part_k = 2;
    c.part_n = 3;
    json = round_trip(&c);
    assert_string_equal(json, "{\"format\":1,\"xid_next\":\"123\",\"xip\":[\"100\",\"101\"],"
                              "\"xid_at\":\"99\",\"xid_at_key\":\"42\",\"part_k\":2,\"part_n\":3}");
    free(json);
    cursor_free(&c);
}

/* Round trips keep every id exact over the whole unsigned range and any
 * UTF-8 key text, quotes and control characters included. */
static void test_json_round_trip(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    const uint64_t xip[] = {0, 1, (UINT64_C(1) << 32) + 7, INT64_MAX, BIG, UINT64_MAX - 2};
    const char *keys[] = {
        "", "0", "a\"b\\c", "line\nbreak\ttab", "h\xc3\xa9llo \xe2\x82\xac", "{\"not\":\"json\"}"};
    for (size_t i = 0; i < N_OF(keys); i++) {
        set_cursor(&c, UINT64_MAX, xip, N_OF(xip), UINT64_MAX - 1, keys[i]);
        c.part_k = (uint32_t)i;
        c.part_n = UINT32_MAX;
        free(round_trip(&c));
    }
    set_cursor(&c, UINT64_MAX, NULL, 0, 0, NULL);
    free(round_trip(&c));
    cursor_free(&c);
}

/* The reader takes any field order and whitespace, and absent xid_at and
 * xid_at_key mean the same as null. */
static void test_json_lenient_where_harmless(void **state)
{
    (void)state;
    const char *texts[] = {
        " \n{ \"part_n\" : 1 , \"part_k\":0,\"xip\":[ \"5\" ],\"xid_next\":\"9\",\"format\":1}\n",
        "{\"format\":1,\"xid_next\":\"9\",\"xip\":[\"5\"],\"part_k\":0,\"part_n\":1}",
        "{\"format\":1,\"xid_next\":\"9\",\"xip\":[\"5\"],\"xid_at\":null,\"xid_at_key\":null,"
        "\"part_k\":0,\"part_n\":1}",
    };
    for (size_t i = 0; i < N_OF(texts); i++) {
        Cursor c;
        char err[256] = "";
        if (cursor_from_json(&c, texts[i], strlen(texts[i]), err, sizeof err) != 0)
            fail_msg("text %zu: %s", i, err);
        const uint64_t want[] = {5};
        expect_cursor(&c, 9, want, 1, 0, NULL);
        cursor_free(&c);
    }
}

/* The writer refuses what the reader would refuse. */
static void test_json_writer_refusals(void **state)
{
    (void)state;
    Cursor c;
    cursor_init(&c);
    char err[256] = "";
    char sentinel[] = "sentinel";
    char *json = sentinel;
    const uint64_t unsorted[] = {5, 3};
    set_cursor(&c, 9, unsorted, 2, 0, NULL);
    assert_int_equal(cursor_to_json(&c, &json, err, sizeof err), -1);
    assert_null(json);
    assert_string_equal(err, "cursor: xip is not sorted");

    set_cursor(&c, 9, NULL, 0, 4, "bad \xff utf-8");
    assert_int_equal(cursor_to_json(&c, &json, err, sizeof err), -1);
    assert_string_equal(err, "cursor: xid_at_key is not valid utf-8");

    set_cursor(&c, 9, NULL, 0, 0, NULL);
    c.part_n = 0;
    assert_int_equal(cursor_to_json(&c, &json, err, sizeof err), -1);
    assert_string_equal(err, "cursor: part_n is 0");
    cursor_free(&c);
}

/* The valid fields around each bad one in the table below. */
#define HEAD "{\"format\":1,\"xid_next\":\"12\","
#define TAIL "\"part_k\":0,\"part_n\":1}"
#define GOOD HEAD "\"xip\":[\"3\"]," TAIL

/* Each bad input and the piece of the error message it must give. */
static const struct {
    const char *json;
    const char *want;
} bad_inputs[] = {
    /* not JSON, not an object, truncated, trailing garbage */
    {"", "cursor: empty input"},
    {" \n\t ", "cursor: empty input"},
    {"nope", "cursor: invalid json"},
    {"{format:1}", "cursor: invalid json"},
    {"{'format':1}", "cursor: invalid json"},
    {"/* c */" GOOD, "cursor: invalid json"},
    {"[]", "cursor: not a json object"},
    {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "cursor: not a json object"},
    {"12", "cursor: not a json object"},
    {"\"12\"", "cursor: not a json object"},
    {"null", "cursor: not a json object"},
    {"true", "cursor: not a json object"},
    {"{", "cursor: truncated json"},
    {"{\"format\":1,\"xid_next\":\"12", "cursor: truncated json"},
    {HEAD "\"xip\":[\"3\",", "cursor: truncated json"},
    {GOOD " x", "cursor: invalid json: parse error: trailing garbage"},
    {GOOD GOOD, "cursor: invalid json: parse error: trailing garbage"},
    {GOOD ",", "cursor: invalid json"},
    {"{\"format\":1,}", "cursor: invalid json"},
    /* format */
    {"{\"xid_next\":\"12\",\"xip\":[]," TAIL, "cursor: missing field format"},
    {"{\"format\":2,\"xid_next\":\"12\",\"xip\":[]," TAIL,
     "cursor: unsupported format version 2 (this build reads 1)"},
    {"{\"format\":0}", "cursor: unsupported format version 0"},
    {"{\"format\":\"1\"}", "cursor: format must be a non-negative integer"},
    {"{\"format\":1.0}", "cursor: format must be a non-negative integer"},
    {"{\"format\":1e0}", "cursor: format must be a non-negative integer"},
    {"{\"format\":-1}", "cursor: format must be a non-negative integer"},
    {"{\"format\":null}", "cursor: format must be a non-negative integer"},
    {"{\"format\":99999999999999999999999}", "cursor: format must be a non-negative integer"},
    /* xid_next */
    {"{\"format\":1,\"xip\":[]," TAIL, "cursor: missing field xid_next"},
    {"{\"format\":1,\"xid_next\":12,\"xip\":[]," TAIL, "cursor: xid_next must be a decimal string"},
    {"{\"format\":1,\"xid_next\":null}", "cursor: xid_next must be a decimal string"},
    {"{\"format\":1,\"xid_next\":true}", "cursor: xid_next must be a decimal string"},
    {"{\"format\":1,\"xid_next\":{}}", "cursor: xid_next must be a decimal string"},
    {"{\"format\":1,\"xid_next\":[\"1\"]}", "cursor: xid_next must be a decimal string"},
    {"{\"format\":1,\"xid_next\":\"-1\"}", "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"\"}", "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"abc\"}", "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"12a\"}", "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"+12\"}", "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\" 12\"}", "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"012\"}", "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"1.5\"}", "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"0x10\"}", "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"18446744073709551616\"}",
     "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"99999999999999999999999\"}",
     "cursor: xid_next is not a decimal 64-bit id"},
    {"{\"format\":1,\"xid_next\":\"1\\u0000\"}", "cursor: xid_next is not a decimal 64-bit id"},
    /* xip */
    {HEAD TAIL, "cursor: missing field xip"},
    {HEAD "\"xip\":\"3\"," TAIL, "cursor: xip must be an array of decimal strings"},
    {HEAD "\"xip\":null," TAIL, "cursor: xip must be an array of decimal strings"},
    {HEAD "\"xip\":{}," TAIL, "cursor: xip must be an array of decimal strings"},
    {HEAD "\"xip\":[3]," TAIL, "cursor: xip must be an array of decimal strings"},
    {HEAD "\"xip\":[null]," TAIL, "cursor: xip must be an array of decimal strings"},
    {HEAD "\"xip\":[[\"3\"]]," TAIL, "cursor: xip must be an array of decimal strings"},
    {HEAD "\"xip\":[{}]," TAIL, "cursor: xip must be an array of decimal strings"},
    {HEAD "\"xip\":[\"3\",\"-5\"]," TAIL, "cursor: xip entry 1 is not a decimal 64-bit id"},
    {HEAD "\"xip\":[\"5\",\"3\"]," TAIL, "cursor: xip is not sorted"},
    {HEAD "\"xip\":[\"3\",\"3\"]," TAIL, "cursor: xip has duplicate entry 3"},
    {HEAD "\"xip\":[\"3\",\"12\"]," TAIL, "cursor: xip entry 12 is not below xid_next 12"},
    {HEAD "\"xip\":[\"13\"]," TAIL, "cursor: xip entry 13 is not below xid_next 12"},
    /* xid_at and its key */
    {HEAD "\"xip\":[],\"xid_at\":\"12\",\"xid_at_key\":\"k\"," TAIL,
     "cursor: xid_at 12 is not below xid_next 12"},
    {HEAD "\"xip\":[],\"xid_at\":\"5\"," TAIL, "cursor: xid_at without xid_at_key"},
    {HEAD "\"xip\":[],\"xid_at\":\"5\",\"xid_at_key\":null," TAIL,
     "cursor: xid_at without xid_at_key"},
    {HEAD "\"xip\":[],\"xid_at_key\":\"k\"," TAIL, "cursor: xid_at_key without xid_at"},
    {HEAD "\"xip\":[],\"xid_at\":null,\"xid_at_key\":\"k\"," TAIL,
     "cursor: xid_at_key without xid_at"},
    {HEAD "\"xip\":[\"3\"],\"xid_at\":\"3\",\"xid_at_key\":\"k\"," TAIL,
     "cursor: xid_at 3 is also in xip"},
    {HEAD "\"xip\":[],\"xid_at\":5,\"xid_at_key\":\"k\"," TAIL,
     "cursor: xid_at must be a decimal string or null"},
    {HEAD "\"xip\":[],\"xid_at\":\"-5\",\"xid_at_key\":\"k\"," TAIL,
     "cursor: xid_at is not a decimal 64-bit id"},
    {HEAD "\"xip\":[],\"xid_at\":\"5\",\"xid_at_key\":5," TAIL,
     "cursor: xid_at_key must be a string or null"},
    {HEAD "\"xip\":[],\"xid_at\":\"5\",\"xid_at_key\":[\"k\"]," TAIL,
     "cursor: xid_at_key must be a string or null"},
    {HEAD "\"xip\":[],\"xid_at\":\"5\",\"xid_at_key\":\"a\\u0000b\"," TAIL,
     "cursor: xid_at_key contains a nul character"},
    {HEAD "\"xip\":[],\"xid_at\":\"5\",\"xid_at_key\":\"\xff\"," TAIL, "cursor: invalid json"},
    /* partition */
    {HEAD "\"xip\":[],\"part_n\":1}", "cursor: missing field part_k"},
    {HEAD "\"xip\":[],\"part_k\":0}", "cursor: missing field part_n"},
    {HEAD "\"xip\":[],\"part_k\":1,\"part_n\":1}", "cursor: part_k 1 is not below part_n 1"},
    {HEAD "\"xip\":[],\"part_k\":7,\"part_n\":3}", "cursor: part_k 7 is not below part_n 3"},
    {HEAD "\"xip\":[],\"part_k\":0,\"part_n\":0}", "cursor: part_n is 0"},
    {HEAD "\"xip\":[],\"part_k\":\"0\",\"part_n\":1}", "cursor: part_k must be a non-negative"},
    {HEAD "\"xip\":[],\"part_k\":-1,\"part_n\":1}", "cursor: part_k must be a non-negative"},
    {HEAD "\"xip\":[],\"part_k\":0.5,\"part_n\":1}", "cursor: part_k must be a non-negative"},
    {HEAD "\"xip\":[],\"part_k\":0,\"part_n\":4294967296}", "cursor: part_n is out of range"},
    /* unknown and repeated fields */
    {HEAD "\"xip\":[],\"extra\":1," TAIL, "cursor: unknown field \"extra\""},
    {HEAD "\"xip\":[],\"XIP\":[]," TAIL, "cursor: unknown field \"XIP\""},
    {HEAD "\"xip\":[],\"\":1," TAIL, "cursor: unknown field \"\""},
    {HEAD "\"xip\":[],\"bad\\nname\\\"\":1," TAIL, "cursor: unknown field \"bad?name?\""},
    {HEAD "\"xip\":[],\"xid_next\":\"12\"," TAIL, "cursor: duplicate field xid_next"},
    {HEAD "\"xip\":[],\"xip\":[]," TAIL, "cursor: duplicate field xip"},
};

/* Every bad input is refused with its message, and the cursor given to
 * the parser comes back initialised and empty. */
static void test_json_rejections(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_OF(bad_inputs); i++) {
        Cursor c;
        memset(&c, 0xab, sizeof c);
        char err[256] = "";
        int rc =
            cursor_from_json(&c, bad_inputs[i].json, strlen(bad_inputs[i].json), err, sizeof err);
        if (rc != -1 || !strstr(err, bad_inputs[i].want))
            fail_msg("input %zu %s: rc %d, err \"%s\", want \"%s\"", i, bad_inputs[i].json, rc, err,
                     bad_inputs[i].want);
        size_t n = strlen(err);
        if (n == 0 || err[n - 1] == '.' || err[n - 1] == '\n')
            fail_msg("input %zu: message \"%s\" should be one line without a period", i, err);
        Cursor empty;
        cursor_init(&empty);
        assert_true(cursor_same(&c, &empty));
        assert_null(c.xip);
        cursor_free(&c);
    }
}

/* The byte count given is the input: a NUL inside it, or a count that cuts
 * a valid text short, is refused; a NULL text with length 0 is empty. */
static void test_json_length_is_the_input(void **state)
{
    (void)state;
    static const char good[] = GOOD;
    char err[256] = "";
    Cursor c;
    assert_int_equal(cursor_from_json(&c, good, strlen(good), err, sizeof err), 0);
    cursor_free(&c);
    assert_int_equal(cursor_from_json(&c, good, sizeof good, err, sizeof err), -1);
    assert_non_null(strstr(err, "cursor: invalid json"));
    assert_int_equal(cursor_from_json(&c, good, strlen(good) - 1, err, sizeof err), -1);
    assert_string_equal(err, "cursor: truncated json");
    assert_int_equal(cursor_from_json(&c, NULL, 0, err, sizeof err), -1);
    assert_string_equal(err, "cursor: empty input");
    assert_int_equal(cursor_from_json(&c, good, 0, NULL, 0), -1);
}

/* Every proper prefix of a valid text is refused and every one-byte
 * change is either refused or gives a cursor that survives a round trip:
 * the parser never crashes and never accepts half a cursor. */
static void test_json_prefixes_and_mutations(void **state)
{
    (void)state;
    static const char good[] = "{\"format\":1,\"xid_next\":\"4294967399\",\"xip\":[\"4294967303\","
                               "\"4294967310\"],\"xid_at\":\"4294967350\",\"xid_at_key\":\"17\","
                               "\"part_k\":0,\"part_n\":1}";
    size_t len = strlen(good);
    char err[256];
    Cursor c;
    for (size_t n = 0; n < len; n++) {
        if (cursor_from_json(&c, good, n, err, sizeof err) != -1)
            fail_msg("prefix of %zu bytes accepted", n);
    }
    char text[sizeof good];
    const char replacements[] = "0123456789\"{}[],:-.e \\nx";
    size_t accepted = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t r = 0; r < sizeof replacements - 1; r++) {
            memcpy(text, good, sizeof good);
            if (text[i] == replacements[r])
                continue;
            text[i] = replacements[r];
            if (cursor_from_json(&c, text, len, err, sizeof err) == 0) {
                accepted++;
                free(round_trip(&c));
                cursor_free(&c);
            } else {
                assert_true(strncmp(err, "cursor: ", 8) == 0);
            }
        }
    }
    assert_true(accepted > 0); /* digit changes that keep the cursor consistent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_and_query),
        cmocka_unit_test(test_copy_and_equal),
        cmocka_unit_test(test_low),
        cmocka_unit_test(test_caught_up_takes_snapshot),
        cmocka_unit_test(test_idle_converges),
        cmocka_unit_test(test_never_moves_backwards),
        cmocka_unit_test(test_out_of_order_commit),
        cmocka_unit_test(test_big_transaction_spans_batches),
        cmocka_unit_test(test_xip_carried_while_xid_at_holds),
        cmocka_unit_test(test_full_batch_ending_in_branch_2),
        cmocka_unit_test(test_full_batch_ending_in_branch_3),
        cmocka_unit_test(test_ids_above_2_63),
        cmocka_unit_test(test_advance_refusals),
        cmocka_unit_test(test_recovery_rule),
        cmocka_unit_test(test_recovery_span),
        cmocka_unit_test(test_done_json),
        cmocka_unit_test(test_json_exact_text),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_lenient_where_harmless),
        cmocka_unit_test(test_json_writer_refusals),
        cmocka_unit_test(test_json_rejections),
        cmocka_unit_test(test_json_length_is_the_input),
        cmocka_unit_test(test_json_prefixes_and_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
