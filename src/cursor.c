/*
 * cursor: the MVCC snapshot cursor — moving it past one batch
 * (cursor_advance) and storing it as JSON (cursor_to_json,
 * cursor_from_json).
 *
 * Pure logic: no I/O, no logging, no global state.  The rule implemented
 * by cursor_advance is the one of docs/design.md, §4 "The cursor"; the comment
 * above that function explains each step and the one place where it says
 * more than docs/design.md (a snapshot older than the cursor).  Every function
 * that can fail leaves the cursor it was given untouched and explains
 * itself in the caller's error buffer with a lowercase message starting
 * "cursor: ".
 *
 * JSON encoding (format 1):
 *
 *   {"format":1,"xid_next":"123","xip":["100","101"],
 *    "xid_at":"99","xid_at_key":"42","part_k":0,"part_n":1}
 *
 * A cursor that read a hot standby may also carry "done":"1b", the ids
 * above xid_next whose rows were delivered, as a hex bitmap of offsets
 * from xid_next (cursor_done.h); the field is left out when the set is
 * empty, so a primary's cursor reads the same as before it existed.
 *
 * Transaction ids are written as decimal strings, never as JSON numbers:
 * a txid is an unsigned 64-bit integer, yajl's integers are signed
 * (long long), and many JSON readers an operator may point at the cursor
 * (jq, JavaScript) hold numbers as doubles and would round any id above
 * 2^53 without a word.  A string keeps every id exact over the whole
 * unsigned range.  Only the canonical spelling is accepted (digits, no
 * sign, no leading zero, no blanks), so one cursor has one text.  The
 * small fields (format, part_k, part_n) are JSON integers.  xid_at and
 * xid_at_key are written as null when there is none; on reading, absent
 * and null mean the same.  Unknown fields are rejected rather than
 * ignored: a cursor written by a newer build is refused with a message
 * instead of being silently half understood, and a typo in a hand-edited
 * cursor is reported instead of being dropped.
 */
#include "cursor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "cursor_done.h"
#include "log.h"

/* Tells whether x is among the n ids of a, which need not be sorted. */
static bool ids_contain(const uint64_t *a, size_t n, uint64_t x)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] == x)
            return true;
    }
    return false;
}

/* Returns a malloc'd copy of the first len bytes of s with a NUL added,
 * or NULL when out of memory. */
static char *copy_text(const char *s, size_t len)
{
    char *t = malloc(len + 1);
    if (!t)
        return NULL;
    memcpy(t, s, len);
    t[len] = '\0';
    return t;
}

/* Checks the done set: sorted, without duplicates, within
 * [xid_next, xid_next + CURSOR_DONE_SPAN). */
static int done_check(const Cursor *c, char *err, size_t errlen)
{
    if (c->n_done > 0 && !c->done)
        return err_printf(err, errlen, "cursor: done has entries but no storage");
    for (size_t i = 0; i < c->n_done; i++) {
        if (i > 0 && c->done[i] <= c->done[i - 1])
            return err_printf(err, errlen, "cursor: done is not sorted or has duplicates");
        if (c->done[i] < c->xid_next || c->done[i] - c->xid_next >= CURSOR_DONE_SPAN)
            return err_printf(err, errlen,
                              "cursor: done entry %" PRIu64 " is outside [xid_next %" PRIu64
                              ", xid_next + %llu)",
                              c->done[i], c->xid_next, (unsigned long long)CURSOR_DONE_SPAN);
    }
    return 0;
}

/* Checks the invariants every cursor holds — a sorted xip without
 * duplicates, every id in it and xid_at below xid_next, xid_at and its
 * key together and xid_at outside xip, part_k below part_n — and returns
 * 0, or -1 with the first violation described in err. */
static int cursor_check(const Cursor *c, char *err, size_t errlen)
{
    if (c->part_n == 0)
        return err_printf(err, errlen, "cursor: part_n is 0");
    if (c->part_k >= c->part_n)
        return err_printf(err, errlen, "cursor: part_k %" PRIu32 " is not below part_n %" PRIu32,
                          c->part_k, c->part_n);
    if (c->n_xip > 0 && !c->xip)
        return err_printf(err, errlen, "cursor: xip has entries but no storage");
    for (size_t i = 0; i < c->n_xip; i++) {
        if (i > 0 && c->xip[i] < c->xip[i - 1])
            return err_printf(err, errlen, "cursor: xip is not sorted");
        if (i > 0 && c->xip[i] == c->xip[i - 1])
            return err_printf(err, errlen, "cursor: xip has duplicate entry %" PRIu64, c->xip[i]);
        if (c->xip[i] >= c->xid_next)
            return err_printf(err, errlen,
                              "cursor: xip entry %" PRIu64 " is not below xid_next %" PRIu64,
                              c->xip[i], c->xid_next);
    }
    if (c->has_xid_at && !c->xid_at_key)
        return err_printf(err, errlen, "cursor: xid_at without xid_at_key");
    if (!c->has_xid_at && c->xid_at_key)
        return err_printf(err, errlen, "cursor: xid_at_key without xid_at");
    if (c->has_xid_at) {
        if (c->xid_at >= c->xid_next)
            return err_printf(err, errlen,
                              "cursor: xid_at %" PRIu64 " is not below xid_next %" PRIu64,
                              c->xid_at, c->xid_next);
        if (cursor_ids_contain(c->xip, c->n_xip, c->xid_at))
            return err_printf(err, errlen, "cursor: xid_at %" PRIu64 " is also in xip", c->xid_at);
    }
    return done_check(c, err, errlen);
}

/* Checks that s is shaped like a Postgres snapshot (xmin <= every xip
 * entry < xmax) and returns 0, or -1 with the violation described in err. */
static int snapshot_check(const CursorSnapshot *s, char *err, size_t errlen)
{
    if (s->xmin > s->xmax)
        return err_printf(err, errlen, "cursor: snapshot xmin %" PRIu64 " is above xmax %" PRIu64,
                          s->xmin, s->xmax);
    if (s->n_xip > 0 && !s->xip)
        return err_printf(err, errlen, "cursor: snapshot xip has entries but no storage");
    for (size_t i = 0; i < s->n_xip; i++) {
        if (s->xip[i] < s->xmin || s->xip[i] >= s->xmax)
            return err_printf(err, errlen,
                              "cursor: snapshot xip entry %" PRIu64 " is outside [xmin %" PRIu64
                              ", xmax %" PRIu64 ")",
                              s->xip[i], s->xmin, s->xmax);
    }
    return 0;
}

void cursor_init(Cursor *c)
{
    memset(c, 0, sizeof *c);
    c->xip = NULL;
    c->xid_at_key = NULL;
    c->done = NULL;
    c->part_k = 0;
    c->part_n = 1;
}

void cursor_free(Cursor *c)
{
    if (!c)
        return;
    free(c->xip);
    free(c->xid_at_key);
    free(c->done);
    cursor_init(c);
}

int cursor_copy(Cursor *dst, const Cursor *src)
{
    Cursor tmp = *src;
    tmp.xip = NULL;
    tmp.xid_at_key = NULL;
    tmp.done = NULL;
    if (src->n_done > 0) {
        tmp.done = malloc(src->n_done * sizeof *tmp.done);
        if (!tmp.done)
            goto fail;
        memcpy(tmp.done, src->done, src->n_done * sizeof *tmp.done);
    }
    if (src->n_xip > 0) {
        tmp.xip = malloc(src->n_xip * sizeof *tmp.xip);
        if (!tmp.xip)
            goto fail;
        memcpy(tmp.xip, src->xip, src->n_xip * sizeof *tmp.xip);
    }
    if (src->xid_at_key) {
        tmp.xid_at_key = copy_text(src->xid_at_key, strlen(src->xid_at_key));
        if (!tmp.xid_at_key)
            goto fail;
    }
    *dst = tmp;
    return 0;

fail:
    free(tmp.xip);
    free(tmp.done);
    cursor_init(dst);
    return -1;
}

uint64_t cursor_low(const Cursor *c)
{
    uint64_t low = c->xid_next;
    if (c->n_xip > 0 && c->xip[0] < low)
        low = c->xip[0];
    if (c->has_xid_at && c->xid_at < low)
        low = c->xid_at;
    return low;
}

bool cursor_same(const Cursor *a, const Cursor *b)
{
    if (a->xid_next != b->xid_next || a->n_xip != b->n_xip || a->has_xid_at != b->has_xid_at ||
        a->part_k != b->part_k || a->part_n != b->part_n)
        return false;
    if (a->n_xip > 0 && memcmp(a->xip, b->xip, a->n_xip * sizeof *a->xip) != 0)
        return false;
    if (a->n_done != b->n_done ||
        (a->n_done > 0 && memcmp(a->done, b->done, a->n_done * sizeof *a->done) != 0))
        return false;
    if (a->has_xid_at && a->xid_at != b->xid_at)
        return false;
    if (!a->xid_at_key || !b->xid_at_key)
        return a->xid_at_key == b->xid_at_key;
    return strcmp(a->xid_at_key, b->xid_at_key) == 0;
}

void cursor_query(const Cursor *c, size_t batch_size, CursorQuery *q)
{
    q->has_xid_at = c->has_xid_at;
    q->xid_at = c->has_xid_at ? c->xid_at : 0;
    q->xid_at_key = c->has_xid_at ? c->xid_at_key : NULL;
    q->xip = c->xip;
    q->n_xip = c->n_xip;
    q->xid_next = c->xid_next;
    q->done = c->done;
    q->n_done = c->n_done;
    q->limit = batch_size;
}

/* The xip of the rule below: the candidates (S.xip, the old entries
 * kept or unknown, a moved xid_at unknown to S) below next and other than
 * a full batch's t, sorted and without duplicates, into *out (NULL when
 * none) and *n.  Returns 0, or -1 when out of memory. */
static int next_xip(const Cursor *c, const CursorSnapshot *s, bool full, bool at_moved, uint64_t t,
                    uint64_t next, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t cap = s->n_xip + c->n_xip + 1;
    uint64_t *xip = malloc(cap * sizeof *xip);
    if (!xip)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < s->n_xip; i++)
        xip[k++] = s->xip[i];
    for (size_t i = 0; i < c->n_xip; i++) {
        uint64_t x = c->xip[i];
        bool keep = full && (!at_moved || x > t);
        if (keep || x >= s->xmax)
            xip[k++] = x;
    }
    if (c->has_xid_at && at_moved && c->xid_at >= s->xmax)
        xip[k++] = c->xid_at;

    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (xip[i] < next && !(full && xip[i] == t))
            xip[m++] = xip[i];
    }
    k = cursor_ids_sort_unique(xip, m);
    if (k == 0) {
        free(xip);
        return 0;
    }
    *out = xip;
    *n = k;
    return 0;
}

/*
 * The rule, with t the txid of the last row of a full batch:
 *
 *   caught up (n < batch_size):
 *     xid_next' = max(xid_next, S.xmax)
 *     xip'      = { x in S.xip ∪ unknown : x < xid_next' }
 *     no xid_at
 *   full (n == batch_size):
 *     xid_at' = t, xid_at_key' = last_key
 *     xid_next' = max(xid_next, t + 1)
 *     xip'      = { x in S.xip ∪ kept ∪ unknown : x < xid_next', x != t }
 *     kept = the old xip if xid_at did not move (old xid_at == t: the batch
 *            was all branch 1, branches 2 and 3 were not read), else the
 *            old entries > t (those < t were read to the end by branch 2;
 *            the ones still running are in S.xip again)
 *   unknown = the old xip entries and old xid_at that are >= S.xmax
 *
 * Why max, and what "unknown" is for.  On a primary the xid counter only
 * grows, so S.xmax >= xid_next, "unknown" is empty, and the rule is word
 * for word the one of docs/design.md.  S.xmax < xid_next means the snapshot
 * did not come from the history that earned the cursor.  Either it is
 * older (a lagging replica or connection): then the promise "everything
 * committed below xid_next outside xip is delivered" still holds, moving
 * back would only replay rows, and a syncer that alternated between an
 * old and a new snapshot would see its cursor flip at every batch and
 * never settle — so xid_next keeps its value, and the ids this snapshot
 * cannot vouch for (at or above its xmax) are kept waiting in xip, a
 * half-read xid_at among them (it is then re-read from its start through
 * branch 2; replays are harmless).  Or the counter itself went back (a
 * restore without txid offset, a cursor pointed at another database):
 * then new transactions with ids in [S.xmax, xid_next) would be skipped by
 * max and replayed against a sink holding newer versions by going back;
 * no rule inside the cursor makes that right, so the caller must notice
 * S.xmax < xid_next and stop with a message (the txid offset of docs/design.md §2 is
 * the cure).  Keeping max is right for the first case and no worse for
 * the second.  With no rows and an unchanged snapshot every step maps the
 * cursor onto itself, which is how an idle syncer converges.
 */
int cursor_advance(Cursor *c, const CursorSnapshot *s, size_t n, size_t batch_size,
                   uint64_t last_txid, const char *last_key, char *err, size_t errlen)
{
    if (!c || !s)
        return err_printf(err, errlen, "cursor: advance needs a cursor and a snapshot");
    if (cursor_check(c, err, errlen) != 0 || snapshot_check(s, err, errlen) != 0)
        return -1;
    if (batch_size == 0)
        return err_printf(err, errlen, "cursor: batch size is 0");
    if (n > batch_size)
        return err_printf(err, errlen, "cursor: batch has %zu rows, more than the %zu asked for", n,
                          batch_size);

    bool full = n == batch_size;
    uint64_t t = last_txid;
    uint64_t next;
    bool at_moved = true;
    if (full) {
        if (!last_key)
            return err_printf(err, errlen, "cursor: full batch without the key of its last row");
        bool asked = (c->has_xid_at && t == c->xid_at) ||
                     (t >= c->xid_next && !cursor_ids_contain(c->done, c->n_done, t)) ||
                     cursor_ids_contain(c->xip, c->n_xip, t);
        if (!asked)
            return err_printf(
                err, errlen,
                "cursor: last row txid %" PRIu64 " is not one the batch query asks for", t);
        if (t >= s->xmax || ids_contain(s->xip, s->n_xip, t))
            return err_printf(err, errlen,
                              "cursor: last row txid %" PRIu64 " is not committed in the snapshot",
                              t);
        next = c->xid_next > t + 1 ? c->xid_next : t + 1;
        at_moved = !(c->has_xid_at && c->xid_at == t);
    } else {
        next = c->xid_next > s->xmax ? c->xid_next : s->xmax;
    }

    char *key = NULL;
    size_t k;
    uint64_t *xip;
    if (next_xip(c, s, full, at_moved, t, next, &xip, &k) != 0)
        goto oom;

    if (full) {
        key = copy_text(last_key, strlen(last_key));
        if (!key)
            goto oom;
    }
    /* The done set keeps what lies at or above the new xid_next. */
    uint64_t *done;
    size_t n_done;
    if (cursor_done_merge(c->done, c->n_done, NULL, 0, next, &done, &n_done) != 0)
        goto oom;

    /* Nothing can fail from here on: replace the cursor's state. */
    free(c->xip);
    free(c->xid_at_key);
    free(c->done);
    c->done = done;
    c->n_done = n_done;
    c->xid_next = next;
    c->xip = xip;
    c->n_xip = k;
    c->has_xid_at = full;
    c->xid_at = full ? t : 0;
    c->xid_at_key = key;
    return 0;

oom:
    free(xip);
    free(key);
    return err_printf(err, errlen, "cursor: out of memory");
}

/* ---- JSON writing ---- */

/* Writes the NUL-terminated string s as a JSON string. */
static yajl_gen_status gen_text(yajl_gen g, const char *s)
{
    return yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

/* Writes a 64-bit id as a JSON string of its decimal digits. */
static yajl_gen_status gen_id(yajl_gen g, uint64_t id)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, id);
    return gen_text(g, buf);
}

/* Writes the field "done" with the done set's bitmap (cursor_done.h). */
static yajl_gen_status gen_done(yajl_gen g, const Cursor *c)
{
    char *text;
    if (cursor_done_text(c->done, c->n_done, c->xid_next, &text) != 0)
        return yajl_gen_in_error_state;
    yajl_gen_status st = gen_text(g, "done");
    if (st == yajl_gen_status_ok)
        st = gen_text(g, text);
    free(text);
    return st;
}

int cursor_to_json(const Cursor *c, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cursor_check(c, err, errlen) != 0)
        return -1;
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g)
        return err_printf(err, errlen, "cursor: out of memory");
    /* A key that is not UTF-8 would be written fine and refused when read
     * back; refuse it now, while the cursor in memory is still good. */
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);

    yajl_gen_status st = yajl_gen_map_open(g);
    if (st == yajl_gen_status_ok)
        st = gen_text(g, "format");
    if (st == yajl_gen_status_ok)
        st = yajl_gen_integer(g, CURSOR_FORMAT_VERSION);
    if (st == yajl_gen_status_ok)
        st = gen_text(g, "xid_next");
    if (st == yajl_gen_status_ok)
        st = gen_id(g, c->xid_next);
    if (st == yajl_gen_status_ok)
        st = gen_text(g, "xip");
    if (st == yajl_gen_status_ok)
        st = yajl_gen_array_open(g);
    for (size_t i = 0; i < c->n_xip && st == yajl_gen_status_ok; i++)
        st = gen_id(g, c->xip[i]);
    if (st == yajl_gen_status_ok)
        st = yajl_gen_array_close(g);
    if (st == yajl_gen_status_ok && c->n_done > 0)
        st = gen_done(g, c);
    if (st == yajl_gen_status_ok)
        st = gen_text(g, "xid_at");
    if (st == yajl_gen_status_ok)
        st = c->has_xid_at ? gen_id(g, c->xid_at) : yajl_gen_null(g);
    if (st == yajl_gen_status_ok)
        st = gen_text(g, "xid_at_key");
    if (st == yajl_gen_status_ok)
        st = c->has_xid_at ? gen_text(g, c->xid_at_key) : yajl_gen_null(g);
    if (st == yajl_gen_status_ok)
        st = gen_text(g, "part_k");
    if (st == yajl_gen_status_ok)
        st = yajl_gen_integer(g, c->part_k);
    if (st == yajl_gen_status_ok)
        st = gen_text(g, "part_n");
    if (st == yajl_gen_status_ok)
        st = yajl_gen_integer(g, c->part_n);
    if (st == yajl_gen_status_ok)
        st = yajl_gen_map_close(g);

    if (st != yajl_gen_status_ok) {
        yajl_gen_free(g);
        if (st == yajl_gen_invalid_string)
            return err_printf(err, errlen, "cursor: xid_at_key is not valid utf-8");
        return err_printf(err, errlen, "cursor: json generator failed (status %d)", (int)st);
    }
    const unsigned char *buf;
    size_t len;
    yajl_gen_get_buf(g, &buf, &len);
    *out = copy_text((const char *)buf, len);
    yajl_gen_free(g);
    if (!*out)
        return err_printf(err, errlen, "cursor: out of memory");
    return 0;
}

/* ---- JSON reading ---- */

enum {
    FIELD_FORMAT,
    FIELD_XID_NEXT,
    FIELD_XIP,
    FIELD_XID_AT,
    FIELD_XID_AT_KEY,
    FIELD_PART_K,
    FIELD_PART_N,
    FIELD_DONE,
    FIELD_COUNT,
    FIELD_NONE = -1
};

/* Each field's name, what its value must be, and whether it may be left
 * out; indexed by the enum above. */
static const struct {
    const char *name;
    const char *expected;
    bool required;
} fields[FIELD_COUNT] = {
    {"format", "a non-negative integer", true},   {"xid_next", "a decimal string", true},
    {"xip", "an array of decimal strings", true}, {"xid_at", "a decimal string or null", false},
    {"xid_at_key", "a string or null", false},    {"part_k", "a non-negative integer", true},
    {"part_n", "a non-negative integer", true},   {"done", "a string of hex digits", false},
};

typedef enum { VALUE_NULL, VALUE_BOOL, VALUE_NUMBER, VALUE_STRING, VALUE_CONTAINER } ValueKind;

/* State of one cursor_from_json call, shared by the yajl callbacks.  The
 * callbacks cancel the parse (return 0) at the first thing they refuse,
 * after writing the reason to err; nesting is refused as soon as it
 * starts, so hostile input cannot make the parser go deep. */
typedef struct Parser {
    int depth;   /* 0 outside the object, 1 inside it, 2 inside xip */
    bool closed; /* the object has ended */
    int field;   /* the field whose value comes next, or FIELD_NONE */
    bool seen[FIELD_COUNT];
    Cursor c; /* being built; owns what it points to */
    size_t xip_cap;
    char *done_text; /* owned; decoded once xid_next is known */
    size_t done_len;
    char *err;
    size_t errlen;
} Parser;

/* Parses the canonical decimal text of an unsigned 64-bit integer (digits
 * only, no sign, no leading zero unless the number is 0, no overflow) into
 * *out and returns true, or returns false. */
static bool parse_u64(const unsigned char *s, size_t len, uint64_t *out)
{
    if (len == 0 || (len > 1 && s[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Refuses a value of the wrong type for the current field: writes the
 * field's expectation to err and returns 0 to cancel the parse. */
static int refuse_type(Parser *p, int field)
{
    err_printf(p->err, p->errlen, "cursor: %s must be %s", fields[field].name,
               fields[field].expected);
    return 0;
}

/* Appends one xip entry given as JSON value text; returns 1 to go on or 0
 * (with err written) to cancel the parse. */
static int parse_xip_entry(Parser *p, ValueKind kind, const unsigned char *s, size_t len)
{
    uint64_t x;
    if (kind != VALUE_STRING)
        return refuse_type(p, FIELD_XIP);
    if (!parse_u64(s, len, &x)) {
        err_printf(p->err, p->errlen, "cursor: xip entry %zu is not a decimal 64-bit id",
                   p->c.n_xip);
        return 0;
    }
    if (p->c.n_xip == p->xip_cap) {
        size_t cap = p->xip_cap ? 2 * p->xip_cap : 16;
        uint64_t *grown =
            cap > SIZE_MAX / sizeof *grown ? NULL : realloc(p->c.xip, cap * sizeof *grown);
        if (!grown) {
            err_printf(p->err, p->errlen, "cursor: out of memory");
            return 0;
        }
        p->c.xip = grown;
        p->xip_cap = cap;
    }
    p->c.xip[p->c.n_xip++] = x;
    return 1;
}

/* Keeps the text of the done field until xid_next is known (fields come
 * in any order); returns 1 to go on or 0 (with err written) to cancel. */
static int keep_done_text(Parser *p, const unsigned char *s, size_t len)
{
    p->done_text = copy_text((const char *)s, len);
    p->done_len = len;
    if (!p->done_text) {
        err_printf(p->err, p->errlen, "cursor: out of memory");
        return 0;
    }
    return 1;
}

/* Takes one scalar value (or the start of a container where only a scalar
 * belongs) for the field named by the preceding key, or for xip when
 * inside it; returns 1 to go on or 0 (with err written) to cancel. */
static int parse_value(Parser *p, ValueKind kind, const unsigned char *s, size_t len)
{
    if (p->depth == 0) {
        err_printf(p->err, p->errlen, "cursor: not a json object");
        return 0;
    }
    if (p->depth == 2)
        return parse_xip_entry(p, kind, s, len);

    int f = p->field;
    p->field = FIELD_NONE;
    uint64_t v;
    switch (f) {
    case FIELD_FORMAT:
        if (kind != VALUE_NUMBER || !parse_u64(s, len, &v))
            return refuse_type(p, f);
        if (v != CURSOR_FORMAT_VERSION) {
            err_printf(p->err, p->errlen,
                       "cursor: unsupported format version %" PRIu64 " (this build reads %d)", v,
                       CURSOR_FORMAT_VERSION);
            return 0;
        }
        return 1;
    case FIELD_XID_NEXT:
        if (kind != VALUE_STRING)
            return refuse_type(p, f);
        if (!parse_u64(s, len, &p->c.xid_next)) {
            err_printf(p->err, p->errlen, "cursor: xid_next is not a decimal 64-bit id");
            return 0;
        }
        return 1;
    case FIELD_XIP:
        return refuse_type(p, f); /* the array itself starts in on_start_array */
    case FIELD_XID_AT:
        if (kind == VALUE_NULL)
            return 1;
        if (kind != VALUE_STRING)
            return refuse_type(p, f);
        if (!parse_u64(s, len, &p->c.xid_at)) {
            err_printf(p->err, p->errlen, "cursor: xid_at is not a decimal 64-bit id");
            return 0;
        }
        p->c.has_xid_at = true;
        return 1;
    case FIELD_XID_AT_KEY:
        if (kind == VALUE_NULL)
            return 1;
        if (kind != VALUE_STRING)
            return refuse_type(p, f);
        if (memchr(s, '\0', len)) {
            err_printf(p->err, p->errlen, "cursor: xid_at_key contains a nul character");
            return 0;
        }
        p->c.xid_at_key = copy_text((const char *)s, len);
        if (!p->c.xid_at_key) {
            err_printf(p->err, p->errlen, "cursor: out of memory");
            return 0;
        }
        return 1;
    case FIELD_PART_K:
    case FIELD_PART_N:
        if (kind != VALUE_NUMBER || !parse_u64(s, len, &v))
            return refuse_type(p, f);
        if (v > UINT32_MAX) {
            err_printf(p->err, p->errlen, "cursor: %s is out of range", fields[f].name);
            return 0;
        }
        if (f == FIELD_PART_K)
            p->c.part_k = (uint32_t)v;
        else
            p->c.part_n = (uint32_t)v;
        return 1;
    case FIELD_DONE:
        return kind == VALUE_STRING ? keep_done_text(p, s, len) : refuse_type(p, f);
    default:
        err_printf(p->err, p->errlen, "cursor: value without a field");
        return 0;
    }
}

/* yajl callback: a JSON null. */
static int on_null(void *ctx)
{
    return parse_value(ctx, VALUE_NULL, NULL, 0);
}

/* yajl callback: a JSON true or false. */
static int on_boolean(void *ctx, int value)
{
    (void)value;
    return parse_value(ctx, VALUE_BOOL, NULL, 0);
}

/* yajl callback: any JSON number, as its source text. */
static int on_number(void *ctx, const char *s, size_t len)
{
    return parse_value(ctx, VALUE_NUMBER, (const unsigned char *)s, len);
}

/* yajl callback: a JSON string (not NUL-terminated). */
static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    return parse_value(ctx, VALUE_STRING, s, len);
}

/* yajl callback: '{' — only the outermost object is accepted. */
static int on_start_map(void *ctx)
{
    Parser *p = ctx;
    if (p->depth == 0 && !p->closed) {
        p->depth = 1;
        return 1;
    }
    return parse_value(p, VALUE_CONTAINER, NULL, 0);
}

/* yajl callback: a key of the outermost object (nested objects never get
 * this far); refuses unknown and repeated fields. */
static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    Parser *p = ctx;
    for (int f = 0; f < FIELD_COUNT; f++) {
        if (strlen(fields[f].name) == len && memcmp(fields[f].name, key, len) == 0) {
            if (p->seen[f]) {
                err_printf(p->err, p->errlen, "cursor: duplicate field %s", fields[f].name);
                return 0;
            }
            p->seen[f] = true;
            p->field = f;
            return 1;
        }
    }
    /* Quote at most 40 bytes of the unknown name, with anything unusual
     * replaced, so that the message stays one short printable line. */
    char shown[41];
    size_t n = len < 40 ? len : 40;
    for (size_t i = 0; i < n; i++)
        shown[i] = key[i] >= 0x20 && key[i] < 0x7f && key[i] != '"' ? (char)key[i] : '?';
    shown[n] = '\0';
    err_printf(p->err, p->errlen, "cursor: unknown field \"%s\"%s", shown, len > n ? "..." : "");
    return 0;
}

/* yajl callback: '}' — the outermost object ends (nested ones were refused). */
static int on_end_map(void *ctx)
{
    Parser *p = ctx;
    p->depth = 0;
    p->closed = true;
    return 1;
}

/* yajl callback: '[' — accepted only as the value of xip. */
static int on_start_array(void *ctx)
{
    Parser *p = ctx;
    if (p->depth == 1 && p->field == FIELD_XIP) {
        p->depth = 2;
        return 1;
    }
    return parse_value(p, VALUE_CONTAINER, NULL, 0);
}

/* yajl callback: ']' — the xip array ends (nested arrays were refused). */
static int on_end_array(void *ctx)
{
    Parser *p = ctx;
    p->depth = 1;
    p->field = FIELD_NONE;
    return 1;
}

static const yajl_callbacks parser_callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

/* Writes a description of a syntax error to err: "truncated json" when
 * the input stops early, else yajl's own words without the trailing
 * newline and period it adds. */
static void describe_yajl_error(yajl_handle h, const char *json, size_t len, char *err,
                                size_t errlen)
{
    unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)json, len);
    const char *text = msg ? (const char *)msg : "syntax error";
    if (strstr(text, "premature EOF")) {
        err_printf(err, errlen, "cursor: truncated json");
        if (msg)
            yajl_free_error(h, msg);
        return;
    }
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '.' || text[n - 1] == ' '))
        n--;
    err_printf(err, errlen, "cursor: invalid json: %.*s", (int)n, text);
    if (msg)
        yajl_free_error(h, msg);
}

int cursor_from_json(Cursor *c, const char *json, size_t len, char *err, size_t errlen)
{
    cursor_init(c);
    size_t blank = 0;
    while (json && blank < len && json[blank] != '\0' && strchr(" \t\r\n", json[blank]))
        blank++;
    if (!json || blank == len)
        return err_printf(err, errlen, "cursor: empty input");

    Parser p;
    memset(&p, 0, sizeof p);
    p.field = FIELD_NONE;
    cursor_init(&p.c);
    p.err = err;
    p.errlen = errlen;

    yajl_handle h = yajl_alloc(&parser_callbacks, NULL, &p);
    if (!h)
        return err_printf(err, errlen, "cursor: out of memory");
    yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st == yajl_status_error)
        describe_yajl_error(h, json, len, err, errlen);
    yajl_free(h);
    if (st != yajl_status_ok)
        goto fail;
    if (!p.closed) {
        err_printf(err, errlen, "cursor: truncated json");
        goto fail;
    }
    for (int f = 0; f < FIELD_COUNT; f++) {
        if (fields[f].required && !p.seen[f]) {
            err_printf(err, errlen, "cursor: missing field %s", fields[f].name);
            goto fail;
        }
    }
    if (p.c.n_xip == 0) {
        free(p.c.xip);
        p.c.xip = NULL;
    }
    if (p.done_text && cursor_done_parse(p.done_text, p.done_len, p.c.xid_next, &p.c.done,
                                         &p.c.n_done, err, errlen) != 0)
        goto fail;
    if (cursor_check(&p.c, err, errlen) != 0)
        goto fail;
    free(p.done_text);
    *c = p.c;
    return 0;

fail:
    free(p.done_text);
    cursor_free(&p.c);
    return -1;
}
