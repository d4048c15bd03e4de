/*
 * cursor_done: the done set of a standby cursor (see Cursor.done in
 * cursor.h) — merging ids into it and its text form in the stored cursor.
 * Private to the cursor layer (cursor.c, cursor_recovery.c).
 *
 * Text form: a bitmap of offsets from xid_next in lowercase hex, digit j
 * holding the ids xid_next + 4j .. xid_next + 4j + 3 as its bits 1, 2, 4
 * and 8; no trailing "0" digit, so one set has one text (empty: the field
 * is left out).  A set of a few thousand ids in a window of the span
 * costs at most CURSOR_DONE_SPAN / 4 bytes, however the ids are spread.
 */
#ifndef TXIDSYNC_CURSOR_DONE_H
#define TXIDSYNC_CURSOR_DONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tells whether x is among the n ids of the ascending array a (which may
 * be NULL when n is 0). */
bool cursor_ids_contain(const uint64_t *a, size_t n, uint64_t x);

/* Sorts the n ids ascending and drops duplicates in place; returns how
 * many are left. */
size_t cursor_ids_sort_unique(uint64_t *ids, size_t n);

/* Stores in *out (malloc'd, NULL when empty) and *n_out the ids of
 * old ∪ add that lie in [base, base + CURSOR_DONE_SPAN), sorted and
 * without duplicates; old and add need not be sorted.  Returns 0, or -1
 * when out of memory (*out NULL). */
int cursor_done_merge(const uint64_t *old, size_t n_old, const uint64_t *add, size_t n_add,
                      uint64_t base, uint64_t **out, size_t *n_out)
    __attribute__((warn_unused_result));

/* Writes the text form of the n sorted ids of done, relative to base, as
 * a malloc'd string in *out.  Returns 0, or -1 when out of memory. */
int cursor_done_text(const uint64_t *done, size_t n, uint64_t base, char **out)
    __attribute__((warn_unused_result));

/* Parses the len bytes of text at s, relative to base, into *out
 * (malloc'd, NULL when empty) and *n_out.  Returns 0, or -1 with err
 * filled ("cursor: done ...") when s is not canonical lowercase hex,
 * reaches past the span or past the last id, or memory runs out. */
int cursor_done_parse(const char *s, size_t len, uint64_t base, uint64_t **out, size_t *n_out,
                      char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
