/*
 * cursor: the MVCC snapshot cursor, pure logic with no I/O.
 *
 * The cursor remembers how far the syncer has read the tracked table in
 * transaction-id order: everything committed below xid_next and not in
 * xip has been delivered, and so has the prefix (xid_at, key <= xid_at_key)
 * of one transaction too large for a single batch.  See docs/design.md,
 * §4 "The cursor", for the rule implemented by cursor_advance and the
 * invariant it keeps.  Reading the database, talking to the sink and
 * storing the serialised cursor are left to pg, es and sync.
 *
 * All transaction ids are 64-bit (xid8 with epoch, plus the txid offset
 * of the tracked database); a 32-bit xid never reaches this module.
 */
#ifndef TXIDSYNC_CURSOR_H
#define TXIDSYNC_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CURSOR_FORMAT_VERSION 1

/* How far past xid_next the done set of a standby cursor reaches: ids at
 * xid_next + CURSOR_DONE_SPAN or beyond are never recorded as done (their
 * rows are read again by every batch until the standby's xmin passes
 * them).  The set is stored as a bitmap, at most CURSOR_DONE_SPAN / 4
 * hex digits. */
#define CURSOR_DONE_SPAN ((uint64_t)65536)

/* A Postgres snapshot (xmin, xmax, xip) as seen by one batch. */
typedef struct CursorSnapshot {
    uint64_t xmin;
    uint64_t xmax;
    const uint64_t *xip; /* borrowed; need not be sorted */
    size_t n_xip;
} CursorSnapshot;

typedef struct Cursor {
    uint64_t xid_next; /* every committed txid < xid_next not in xip is done */
    uint64_t *xip;     /* owned, sorted ascending, no duplicates */
    size_t n_xip;
    bool has_xid_at; /* a transaction larger than one batch is half read */
    uint64_t xid_at;
    char *xid_at_key; /* owned; text form of the last key read of xid_at */
    /* Ids at or above xid_next whose rows were all delivered (a standby
     * cursor's knowledge of [xmin, xmax), see cursor_advance_recovery):
     * owned, sorted ascending, no duplicates, each in [xid_next,
     * xid_next + CURSOR_DONE_SPAN).  Always empty on a primary that
     * never read a standby. */
    uint64_t *done;
    size_t n_done;
    /* Reserved for partitioning (part k of n); 0 of 1 means "everything". */
    uint32_t part_k;
    uint32_t part_n;
} Cursor;

/* Parameters of the three-branch batch query, derived from a cursor.
 * Everything is borrowed from the cursor and valid until it changes. */
typedef struct CursorQuery {
    bool has_xid_at;
    uint64_t xid_at; /* branch 1: txid = xid_at and key > xid_at_key */
    const char *xid_at_key;
    const uint64_t *xip; /* branch 2: txid = any(xip) */
    size_t n_xip;
    uint64_t xid_next; /* branch 3: txid >= xid_next and not in done */
    const uint64_t *done;
    size_t n_done;
    size_t limit; /* per branch and overall */
} CursorQuery;

/* Initialises *c to the cursor of a syncer that has read nothing:
 * xid_next 0, no xip, no xid_at, partition 0 of 1. */
void cursor_init(Cursor *c);

/* Releases what *c owns and leaves it as cursor_init does. */
void cursor_free(Cursor *c);

/* Deep-copies src into *dst (dst need not be initialised; whatever it held
 * before is overwritten, not freed).  Returns 0, or -1 when out of memory
 * (dst is then initialised and empty). */
int cursor_copy(Cursor *dst, const Cursor *src) __attribute__((warn_unused_result));

/* Tells whether a and b hold the same state (every field, xip and
 * xid_at_key compared by value). */
bool cursor_same(const Cursor *a, const Cursor *b);
/* The lowest txid whose rows the cursor may still have to read: every
 * row of a lower txid is delivered (its xid_next, or the lowest of its
 * xip and its half-read transaction).  What a consumer registers for
 * pruning (docs/design.md, "Pruning"). */
uint64_t cursor_low(const Cursor *c);

/* Fills *q with the parameters of the next batch query; q borrows from c. */
void cursor_query(const Cursor *c, size_t batch_size, CursorQuery *q);

/*
 * Moves the cursor past one processed batch, exactly as docs/design.md (§4) states:
 * n rows were returned for batch_size asked, under snapshot s; when
 * n == batch_size, (last_txid, last_key) is the last row returned (both
 * are ignored otherwise).  last_key is copied.  xid_next never moves
 * backwards, even under a snapshot whose xmax is below it; on a primary
 * such a snapshot means the xid counter went back (restore without txid
 * offset), which the caller must detect and refuse (see cursor.c).
 * Returns 0, or -1 with err filled when the input is inconsistent
 * (batch_size 0, n > batch_size, a full batch without a last key, a last
 * txid the query does not ask for or that is not committed in s, a
 * snapshot with xip outside [xmin, xmax), a cursor breaking its own
 * invariants) or memory runs out; the cursor is then unchanged.
 */
int cursor_advance(Cursor *c, const CursorSnapshot *s, size_t n, size_t batch_size,
                   uint64_t last_txid, const char *last_key, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * cursor_advance for a snapshot taken on a hot standby (docs/design.md
 * §4, "On a hot standby").  There pg_current_snapshot() reports no xip:
 * the ids still running in recovery are not exposed, so nothing is known
 * of [S.xmin, S.xmax) from the snapshot but that everything below S.xmin
 * has ended.  The rule is the primary's applied to (S.xmin, S.xmin, no
 * xip): xid_next never passes S.xmin.  What the batch itself proves is
 * kept in the done set: an id at or above S.xmin with a row in the batch
 * committed before the snapshot, and every row of it was in the batch
 * unless it is the last row's id of a full batch; the next batches skip
 * those ids (branch 3 excludes the done set), so a committed transaction
 * is sent once even while an old one keeps S.xmin back.  A full batch
 * whose last txid is at or above S.xmin counts as caught up at S.xmin:
 * the batch reached branch 3 and holds every row below S.xmin.
 *
 * txids holds the n rows' txids in the batch's order; last_key is the
 * last row's key (used when the batch is full).  *reread (may be NULL)
 * gets the number of rows at or above S.xmin whose id could not be
 * recorded as done (the last id of a full batch, ids past the span):
 * the next batch reads them again.  Returns as cursor_advance does, and
 * -1 when the cursor is ahead of S.xmin (it was earned on a server this
 * standby has not caught up with) or a row's id is one the query does not
 * return (in the done set, or not committed in the snapshot).
 */
int cursor_advance_recovery(Cursor *c, const CursorSnapshot *s, const uint64_t *txids, size_t n,
                            size_t batch_size, const char *last_key, size_t *reread, char *err,
                            size_t errlen) __attribute__((warn_unused_result));

/*
 * Serialises c as one JSON object (yajl generator) into a malloc'd,
 * NUL-terminated string stored in *out; the caller frees it.  Ids are
 * written as decimal strings (see cursor.c for why).  Returns 0, or -1
 * with err filled and *out NULL — also for a cursor that cursor_from_json
 * would refuse (broken invariants, an xid_at_key that is not UTF-8), so
 * that nothing unreadable is ever stored.
 */
int cursor_to_json(const Cursor *c, char **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Parses a cursor serialised by cursor_to_json from the len bytes at json
 * into *c (which need not be initialised; on success the caller frees it
 * with cursor_free).  Rejects anything malformed or inconsistent — empty,
 * not JSON, truncated, trailing garbage, wrong types, ids that are not
 * canonical unsigned decimals, unknown format version, missing, unknown or
 * repeated fields, an unsorted or duplicated xip, xip entries >= xid_next,
 * xid_at >= xid_next or in xip, xid_at without its key or the key without
 * it, part_n 0, part_k >= part_n, a done bitmap that is not canonical
 * lowercase hex or reaches past the span — with -1 and a clear message in err;
 * *c is then initialised and empty.
 */
int cursor_from_json(Cursor *c, const char *json, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
