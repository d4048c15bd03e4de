/*
 * cursor_done: the done set of a standby cursor, see cursor_done.h.
 */
#include "cursor_done.h"

#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "log.h"

bool cursor_ids_contain(const uint64_t *a, size_t n, uint64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] == x)
            return true;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Orders two 64-bit ids ascending for qsort. */
static int compare_ids(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

size_t cursor_ids_sort_unique(uint64_t *ids, size_t n)
{
    qsort(ids, n, sizeof *ids, compare_ids);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || ids[i] != ids[m - 1])
            ids[m++] = ids[i];
    return m;
}

/* Tells whether x lies in [base, base + CURSOR_DONE_SPAN), without
 * overflow near the top of the id range. */
static bool in_span(uint64_t x, uint64_t base)
{
    return x >= base && x - base < CURSOR_DONE_SPAN;
}

int cursor_done_merge(const uint64_t *old, size_t n_old, const uint64_t *add, size_t n_add,
                      uint64_t base, uint64_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (n_old + n_add == 0)
        return 0;
    uint64_t *ids = malloc((n_old + n_add) * sizeof *ids);
    if (!ids)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n_old; i++)
        if (in_span(old[i], base))
            ids[k++] = old[i];
    for (size_t i = 0; i < n_add; i++)
        if (in_span(add[i], base))
            ids[k++] = add[i];
    size_t m = cursor_ids_sort_unique(ids, k);
    if (m == 0) {
        free(ids);
        return 0;
    }
    *out = ids;
    *n_out = m;
    return 0;
}

int cursor_done_text(const uint64_t *done, size_t n, uint64_t base, char **out)
{
    static const char digits[] = "0123456789abcdef";
    size_t len = n > 0 ? (size_t)((done[n - 1] - base) / 4) + 1 : 0;
    unsigned char *bits = calloc(len + 1, 1);
    if (!bits)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t o = done[i] - base;
        bits[o / 4] |= (unsigned char)(1u << (o % 4));
    }
    for (size_t j = 0; j < len; j++)
        bits[j] = (unsigned char)digits[bits[j]];
    *out = (char *)bits;
    return 0;
}

/* Returns the value of the lowercase hex digit ch, or -1. */
static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

int cursor_done_parse(const char *s, size_t len, uint64_t base, uint64_t **out, size_t *n_out,
                      char *err, size_t errlen)
{
    *out = NULL;
    *n_out = 0;
    if (len == 0)
        return 0;
    if (len > CURSOR_DONE_SPAN / 4)
        return err_printf(err, errlen, "cursor: done reaches more than %llu ids past xid_next",
                          (unsigned long long)CURSOR_DONE_SPAN);
    if ((uint64_t)len * 4 - 1 > UINT64_MAX - base)
        return err_printf(err, errlen, "cursor: done reaches past the last transaction id");
    if (s[len - 1] == '0')
        return err_printf(err, errlen, "cursor: done ends in a 0 digit (not canonical)");
    uint64_t *ids = malloc(len * 4 * sizeof *ids);
    if (!ids)
        return err_printf(err, errlen, "cursor: out of memory");
    size_t k = 0;
    for (size_t j = 0; j < len; j++) {
        int v = hex_value(s[j]);
        if (v < 0) {
            free(ids);
            return err_printf(err, errlen, "cursor: done is not lowercase hex (digit %zu)", j);
        }
        for (unsigned b = 0; b < 4; b++)
            if (v & (1 << b))
                ids[k++] = base + 4 * (uint64_t)j + b;
    }
    *out = ids;
    *n_out = k;
    return 0;
}
