/*
 * json: escaping for the hot path, a yajl generator into a Buf and a
 * streaming number lookup (see json.h).
 */
#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

static void gen_print(void *ctx, const char *s, size_t len)
{
    JsonGen *jg = ctx;
    if (!jg->failed && buf_append(jg->buf, s, len) < 0)
        jg->failed = true;
}

int json_gen_open(JsonGen *jg, Buf *b)
{
    jg->buf = b;
    jg->failed = false;
    jg->g = yajl_gen_alloc(NULL);
    if (!jg->g)
        return -1;
    yajl_gen_config(jg->g, yajl_gen_print_callback, gen_print, jg);
    return 0;
}

int json_gen_close(JsonGen *jg, bool ok)
{
    if (jg->g)
        yajl_gen_free(jg->g);
    jg->g = NULL;
    return ok && !jg->failed ? 0 : -1;
}

bool json_gen_cstr(yajl_gen g, const char *s)
{
    return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok;
}

bool json_gen_u64(yajl_gen g, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRIu64, v);
    return yajl_gen_number(g, num, (size_t)n) == yajl_gen_status_ok;
}

bool json_gen_tree(yajl_gen g, yajl_val v, int depth)
{
    if (!v || depth > JSON_TREE_DEPTH_MAX)
        return false;
    if (YAJL_IS_STRING(v))
        return json_gen_cstr(g, YAJL_GET_STRING(v));
    if (YAJL_IS_NUMBER(v)) {
        const char *n = YAJL_GET_NUMBER(v);
        return yajl_gen_number(g, n, strlen(n)) == yajl_gen_status_ok;
    }
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
        return yajl_gen_bool(g, YAJL_IS_TRUE(v)) == yajl_gen_status_ok;
    if (YAJL_IS_NULL(v))
        return yajl_gen_null(g) == yajl_gen_status_ok;
    bool ok;
    if (YAJL_IS_ARRAY(v)) {
        ok = yajl_gen_array_open(g) == yajl_gen_status_ok;
        for (size_t i = 0; ok && i < YAJL_GET_ARRAY(v)->len; i++)
            ok = json_gen_tree(g, YAJL_GET_ARRAY(v)->values[i], depth + 1);
        return ok && yajl_gen_array_close(g) == yajl_gen_status_ok;
    }
    ok = yajl_gen_map_open(g) == yajl_gen_status_ok;
    for (size_t i = 0; ok && i < YAJL_GET_OBJECT(v)->len; i++)
        ok = json_gen_cstr(g, YAJL_GET_OBJECT(v)->keys[i]) &&
             json_gen_tree(g, YAJL_GET_OBJECT(v)->values[i], depth + 1);
    return ok && yajl_gen_map_close(g) == yajl_gen_status_ok;
}

int json_append_string(Buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t mark = b->len;
    if (buf_append(b, "\"", 1) < 0)
        return -1;
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        char esc[6];
        size_t n = 2;
        esc[0] = '\\';
        switch (ch) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        }
        if (buf_append(b, s + run, i - run) < 0 || buf_append(b, esc, n) < 0)
            goto fail;
        run = i + 1;
    }
    if (buf_append(b, s + run, len - run) < 0 || buf_append(b, "\"", 1) < 0)
        goto fail;
    return 0;
fail:
    b->len = mark;
    if (b->data)
        b->data[mark] = '\0';
    return -1;
}

int json_append_u64(Buf *b, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, v);
    return buf_append(b, num, (size_t)n);
}

int json_path_compile(JsonPath *p, const char *path)
{
    memset(p, 0, sizeof(*p));
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(p->text))
        return -1;
    memcpy(p->text, path, len + 1);
    const char *start = p->text;
    for (const char *c = p->text;; c++) {
        if (*c != '.' && *c != '\0')
            continue;
        if (c == start || p->n == JSON_PATH_MAX)
            return -1;
        p->parts[p->n] = start;
        p->lens[p->n] = (size_t)(c - start);
        p->n++;
        if (*c == '\0')
            break;
        start = c + 1;
    }
    return 0;
}

/* Containers deeper than this are parsed but never match. */
#define FIND_DEPTH_MAX 64

/* The state of one lookup: the open containers, whether each level's
 * current member name continues the path, and the result. */
typedef struct Find {
    const JsonPath *path;
    size_t depth; /* open containers; the root object is depth 1 */
    bool is_object[FIND_DEPTH_MAX + 1];
    bool on_path[FIND_DEPTH_MAX + 1];
    bool found;
    double value;
} Find;

static int find_open(Find *f, bool object)
{
    f->depth++;
    if (f->depth <= FIND_DEPTH_MAX) {
        f->is_object[f->depth] = object;
        f->on_path[f->depth] = false;
    }
    return 1;
}

static int find_start_map(void *ctx)
{
    return find_open(ctx, true);
}

static int find_start_array(void *ctx)
{
    return find_open(ctx, false);
}

static int find_close(void *ctx)
{
    Find *f = ctx;
    f->depth--;
    return 1;
}

static int find_key(void *ctx, const unsigned char *key, size_t len)
{
    Find *f = ctx;
    size_t d = f->depth;
    if (d == 0 || d > FIND_DEPTH_MAX)
        return 1;
    f->on_path[d] = d <= f->path->n && (d == 1 || f->on_path[d - 1]) &&
                    len == f->path->lens[d - 1] && memcmp(key, f->path->parts[d - 1], len) == 0;
    return 1;
}

/* Tells whether a scalar arriving now sits exactly at the path. */
static bool find_here(const Find *f)
{
    size_t d = f->depth;
    return d == f->path->n && d <= FIND_DEPTH_MAX && f->is_object[d] && f->on_path[d];
}

static int find_number(void *ctx, const char *num, size_t len)
{
    Find *f = ctx;
    if (!find_here(f))
        return 1;
    char text[64];
    if (len >= sizeof(text))
        return 0; /* a number that long is no timestamp: stop, not found */
    memcpy(text, num, len);
    text[len] = '\0';
    f->value = strtod(text, NULL);
    f->found = true;
    return 0; /* found: stop the parse */
}

static int find_other(void *ctx)
{
    /* A non-number at the path ends the search without a result. */
    return find_here(ctx) ? 0 : 1;
}

static int find_null(void *ctx)
{
    return find_other(ctx);
}

static int find_bool(void *ctx, int v)
{
    (void)v;
    return find_other(ctx);
}

static int find_string(void *ctx, const unsigned char *s, size_t len)
{
    (void)s;
    (void)len;
    return find_other(ctx);
}

bool json_find_number(const char *doc, size_t len, const JsonPath *p, double *out)
{
    static const yajl_callbacks callbacks = {
        find_null,   find_bool,        NULL,           NULL,
        find_number, find_string,      find_start_map, find_key,
        find_close,  find_start_array, find_close,
    };
    Find f;
    memset(&f, 0, sizeof(f));
    f.path = p;
    if (p->n == 0)
        return false;
    yajl_handle h = yajl_alloc(&callbacks, NULL, &f);
    if (!h)
        return false;
    yajl_parse(h, (const unsigned char *)doc, len);
    yajl_free(h);
    if (f.found)
        *out = f.value;
    return f.found;
}
