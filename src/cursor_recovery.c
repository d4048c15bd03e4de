/*
 * cursor_recovery: the cursor rule for a snapshot taken on a hot standby
 * (docs/design.md §4, "On a hot standby"); see cursor_advance_recovery in
 * cursor.h.  Pure logic, like cursor.c, on whose rule it builds.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "cursor.h"
#include "cursor_done.h"
#include "log.h"

/* Checks that the batch's ids are ones the standby's query can return:
 * committed in s (below its xmax) and not already done. */
static int check_rows(const Cursor *c, const CursorSnapshot *s, const uint64_t *txids, size_t n,
                      char *err, size_t errlen)
{
    if (n > 0 && !txids)
        return err_printf(err, errlen, "cursor: a batch of %zu rows without their txids", n);
    for (size_t i = 0; i < n; i++) {
        if (txids[i] >= s->xmax)
            return err_printf(err, errlen,
                              "cursor: row txid %" PRIu64 " is not committed in the snapshot",
                              txids[i]);
        if (cursor_ids_contain(c->done, c->n_done, txids[i]))
            return err_printf(err, errlen,
                              "cursor: row txid %" PRIu64 " is done; the query does not ask for it",
                              txids[i]);
    }
    return 0;
}

int cursor_advance_recovery(Cursor *c, const CursorSnapshot *s, const uint64_t *txids, size_t n,
                            size_t batch_size, const char *last_key, size_t *reread, char *err,
                            size_t errlen)
{
    if (reread)
        *reread = 0;
    if (!c || !s)
        return err_printf(err, errlen, "cursor: advance needs a cursor and a snapshot");
    if (s->xmin > s->xmax)
        return err_printf(err, errlen, "cursor: snapshot xmin %" PRIu64 " is above xmax %" PRIu64,
                          s->xmin, s->xmax);
    if (c->xid_next > s->xmin)
        return err_printf(err, errlen,
                          "cursor: xid_next %" PRIu64 " is ahead of the standby's xmin %" PRIu64
                          ": the cursor was earned on a server this one has not caught up with",
                          c->xid_next, s->xmin);
    if (n > batch_size)
        return err_printf(err, errlen, "cursor: batch has %zu rows, more than the %zu asked for", n,
                          batch_size);
    if (check_rows(c, s, txids, n, err, errlen) != 0)
        return -1;

    /* What a recovery snapshot vouches for: every id below xmin ended. */
    CursorSnapshot known = {.xmin = s->xmin, .xmax = s->xmin, .xip = NULL, .n_xip = 0};
    bool full = n == batch_size && n > 0;
    uint64_t t = full ? txids[n - 1] : 0;
    bool past = full && t >= s->xmin;
    Cursor w;
    if (cursor_copy(&w, c) != 0)
        return err_printf(err, errlen, "cursor: out of memory");
    int rc = past ? cursor_advance(&w, &known, 0, batch_size, 0, NULL, err, errlen)
                  : cursor_advance(&w, &known, n, batch_size, t, last_key, err, errlen);
    if (rc != 0) {
        cursor_free(&w);
        return -1;
    }

    /* The ids at or above xmin the batch read in full: all of its ids
     * there but the last one of a full batch, which may go on. */
    uint64_t *add = n > 0 ? malloc(n * sizeof *add) : NULL;
    uint64_t *done = NULL;
    size_t n_add = 0, n_done = 0;
    if (n > 0 && !add)
        goto oom;
    for (size_t i = 0; i < n; i++)
        if (txids[i] >= s->xmin && !(past && txids[i] == t))
            add[n_add++] = txids[i];
    if (cursor_done_merge(w.done, w.n_done, add, n_add, w.xid_next, &done, &n_done) != 0)
        goto oom;
    free(add);
    free(w.done);
    w.done = done;
    w.n_done = n_done;
    for (size_t i = 0; reread && i < n; i++)
        if (txids[i] >= s->xmin && !cursor_ids_contain(done, n_done, txids[i]))
            (*reread)++;
    cursor_free(c);
    *c = w;
    return 0;

oom:
    free(add);
    cursor_free(&w);
    return err_printf(err, errlen, "cursor: out of memory");
}
