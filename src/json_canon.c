/*
 * json_canon: canonical JSON (see json_canon.h).  Documents are parsed
 * into yajl trees (a document is small next to the memory of a check),
 * written back member by member in sorted order.
 */
#include "json_canon.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Appends the canonical notation of the JSON number text r. */
static int canon_number(const char *r, Buf *out)
{
    bool negative = *r == '-';
    const char *p = r + (negative ? 1 : 0);
    Buf digits;
    buf_init(&digits, strlen(r) + 1);
    long exp = 0;
    int bad = 0;
    for (; isdigit((unsigned char)*p); p++)
        bad |= buf_append(&digits, p, 1);
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++, exp--)
            bad |= buf_append(&digits, p, 1);
    if (*p == 'e' || *p == 'E') {
        long e = strtol(p + 1, NULL, 10); /* clamped at LONG_MIN/MAX */
        if (e > LONG_MAX / 2)
            e = LONG_MAX / 2;
        if (e < LONG_MIN / 2)
            e = LONG_MIN / 2;
        exp += e;
    }
    const char *d = digits.data ? digits.data : "";
    size_t n = digits.len, first = 0;
    while (first < n && d[first] == '0')
        first++;
    while (n > first && d[n - 1] == '0') {
        n--;
        exp++;
    }
    if (bad) {
        buf_free(&digits);
        return -1;
    }
    int rc;
    if (n == first)
        rc = buf_puts(out, "0");
    else if (exp == 0)
        rc = buf_printf(out, "%s%.*s", negative ? "-" : "", (int)(n - first), d + first);
    else
        rc = buf_printf(out, "%s%.*se%ld", negative ? "-" : "", (int)(n - first), d + first, exp);
    buf_free(&digits);
    return rc;
}

/* A member of an object, for sorting: its name and where it was. */
typedef struct Member {
    const char *name;
    size_t at;
} Member;

static int member_cmp(const void *a, const void *b)
{
    const Member *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}

/* The members of object v sorted by name (malloc'd, *n of them), or NULL
 * (with *n 0 when the object is empty). */
static Member *sorted_members(yajl_val v, size_t *n)
{
    *n = YAJL_GET_OBJECT(v)->len;
    if (*n == 0)
        return NULL;
    Member *m = malloc(*n * sizeof(*m));
    if (!m)
        return NULL;
    for (size_t i = 0; i < *n; i++)
        m[i] = (Member){.name = YAJL_GET_OBJECT(v)->keys[i], .at = i};
    qsort(m, *n, sizeof(*m), member_cmp);
    return m;
}

static int canon_object(yajl_val v, const char *drop, Buf *out)
{
    size_t n;
    Member *m = sorted_members(v, &n);
    if (n > 0 && !m)
        return -1;
    int bad = buf_puts(out, "{");
    bool first = true;
    for (size_t i = 0; i < n && !bad; i++) {
        if (drop && strcmp(m[i].name, drop) == 0)
            continue;
        if (!first)
            bad |= buf_puts(out, ",");
        first = false;
        bad |= json_append_string(out, m[i].name, strlen(m[i].name));
        bad |= buf_puts(out, ":");
        bad = bad || json_canon_tree(YAJL_GET_OBJECT(v)->values[m[i].at], NULL, out);
    }
    free(m);
    return bad || buf_puts(out, "}") ? -1 : 0;
}

int json_canon_tree(yajl_val v, const char *drop, Buf *out)
{
    if (!v)
        return buf_puts(out, "null");
    switch (v->type) {
    case yajl_t_string:
        return json_append_string(out, v->u.string, strlen(v->u.string));
    case yajl_t_number:
        return canon_number(v->u.number.r, out);
    case yajl_t_object:
        return canon_object(v, drop, out);
    case yajl_t_array: {
        int bad = buf_puts(out, "[");
        for (size_t i = 0; i < v->u.array.len && !bad; i++) {
            if (i > 0)
                bad |= buf_puts(out, ",");
            bad = bad || json_canon_tree(v->u.array.values[i], NULL, out);
        }
        return bad || buf_puts(out, "]") ? -1 : 0;
    }
    case yajl_t_true:
        return buf_puts(out, "true");
    case yajl_t_false:
        return buf_puts(out, "false");
    default:
        return buf_puts(out, "null");
    }
}

int json_canon_text(const char *doc, const char *drop, Buf *out, char *err, size_t errlen)
{
    char why[256] = "";
    yajl_val v = yajl_tree_parse(doc, why, sizeof(why));
    if (!v) {
        snprintf(err, errlen, "not JSON: %s", why[0] ? strtok(why, "\n") : "parse error");
        return -1;
    }
    int rc = json_canon_tree(v, drop, out);
    yajl_tree_free(v);
    if (rc != 0)
        snprintf(err, errlen, "out of memory (a document of %zu bytes)", strlen(doc));
    return rc;
}

/* Whether two canonical trees are equal (numbers and strings compare by
 * their canonical text, objects member by member in their sorted order). */
static bool tree_equal(yajl_val a, yajl_val b)
{
    if (!a || !b)
        return a == b;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;
    case yajl_t_number:
        return strcmp(a->u.number.r, b->u.number.r) == 0;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len)
            return false;
        for (size_t i = 0; i < a->u.object.len; i++)
            if (strcmp(a->u.object.keys[i], b->u.object.keys[i]) != 0 ||
                !tree_equal(a->u.object.values[i], b->u.object.values[i]))
                return false;
        return true;
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len)
            return false;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!tree_equal(a->u.array.values[i], b->u.array.values[i]))
                return false;
        return true;
    default:
        return true;
    }
}

/* Appends to path (at *at of len) where canonical trees a and b differ. */
static void diff_path(yajl_val a, yajl_val b, char *path, size_t len, size_t *at)
{
    if (a && b && a->type == yajl_t_object && b->type == yajl_t_object) {
        size_t i = 0, j = 0;
        const yajl_val none = NULL;
        while (i < a->u.object.len || j < b->u.object.len) {
            const char *ka = i < a->u.object.len ? a->u.object.keys[i] : NULL;
            const char *kb = j < b->u.object.len ? b->u.object.keys[j] : NULL;
            int c = !ka ? 1 : !kb ? -1 : strcmp(ka, kb);
            yajl_val va = c <= 0 ? a->u.object.values[i] : none;
            yajl_val vb = c >= 0 ? b->u.object.values[j] : none;
            if (c != 0 || !tree_equal(va, vb)) {
                const char *name = c <= 0 ? ka : kb;
                int w = snprintf(path + *at, len - *at, "%s%s", *at ? "." : "", name);
                *at = w < 0 || (size_t)w >= len - *at ? len - 1 : *at + (size_t)w;
                if (c == 0)
                    diff_path(va, vb, path, len, at);
                return;
            }
            i++;
            j++;
        }
        return;
    }
    if (a && b && a->type == yajl_t_array && b->type == yajl_t_array) {
        for (size_t i = 0; i < a->u.array.len && i < b->u.array.len; i++) {
            if (tree_equal(a->u.array.values[i], b->u.array.values[i]))
                continue;
            int w = snprintf(path + *at, len - *at, "[%zu]", i);
            *at = w < 0 || (size_t)w >= len - *at ? len - 1 : *at + (size_t)w;
            diff_path(a->u.array.values[i], b->u.array.values[i], path, len, at);
            return;
        }
        if (a->u.array.len != b->u.array.len) {
            size_t i = a->u.array.len < b->u.array.len ? a->u.array.len : b->u.array.len;
            int w = snprintf(path + *at, len - *at, "[%zu]", i);
            *at = w < 0 || (size_t)w >= len - *at ? len - 1 : *at + (size_t)w;
        }
    }
}

void json_canon_first_diff(const char *a, const char *b, char *path, size_t len)
{
    if (len == 0)
        return;
    path[0] = '\0';
    char why[64];
    yajl_val ta = yajl_tree_parse(a, why, sizeof(why)), tb = yajl_tree_parse(b, why, sizeof(why));
    size_t at = 0;
    if (ta && tb && ta->type == yajl_t_object && tb->type == yajl_t_object)
        diff_path(ta, tb, path, len, &at);
    yajl_tree_free(ta);
    yajl_tree_free(tb);
}

uint64_t json_canon_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
