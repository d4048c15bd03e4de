/*
 * replay: the highest version per key of a change stream (see replay.h).
 */
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "doc.h"
#include "json_canon.h"
#include "log.h"

#define LINE_MAX_BYTES ((size_t)512 << 20)

void replay_init(Replay *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->canon, LINE_MAX_BYTES);
}

void replay_free(Replay *r)
{
    for (size_t i = 0; i < r->cap; i++)
        free(r->slots[i].key);
    free(r->slots);
    buf_free(&r->canon);
    replay_init(r);
}

/* FNV-1a of a key. */
static uint64_t hash(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

/* The slot of key: its entry, or the free slot it would take. */
static ReplayEntry *slot_of(ReplayEntry *slots, size_t cap, const char *key)
{
    size_t i = (size_t)(hash(key) & (cap - 1));
    while (slots[i].key && strcmp(slots[i].key, key) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* Doubles the table when it is half full.  Returns 0 or -1. */
static int grow(Replay *r)
{
    if (r->cap > 0 && r->n * 2 < r->cap)
        return 0;
    size_t cap = r->cap ? r->cap * 2 : 1024;
    ReplayEntry *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i].key)
            *slot_of(slots, cap, r->slots[i].key) = r->slots[i];
    free(r->slots);
    r->slots = slots;
    r->cap = cap;
    return 0;
}

/* Parses the canonical unsigned decimal of a JSON integer. */
static bool number_u64(yajl_val v, uint64_t *out)
{
    if (!v || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
        return false;
    *out = (uint64_t)YAJL_GET_INTEGER(v);
    return true;
}

/* The hash of the canonical document of event v, without its metadata. */
static int canon_hash(Replay *r, yajl_val v, uint64_t *out)
{
    buf_reset(&r->canon);
    if (json_canon_tree(v, DOC_META_FIELD, &r->canon) != 0)
        return -1;
    *out = json_canon_hash(buf_str(&r->canon), r->canon.len);
    return 0;
}

int replay_event(Replay *r, const char *line, size_t len, char *err, size_t errlen)
{
    static const char *key_path[] = {DOC_META_FIELD, "key", NULL};
    static const char *txid_path[] = {DOC_META_FIELD, "txid", NULL};
    static const char *version_path[] = {DOC_META_FIELD, "version", NULL};
    static const char *op_path[] = {DOC_META_FIELD, "op", NULL};
    char *text = strndup(line, len);
    if (!text)
        return err_printf(err, errlen, "out of memory");
    char why[128];
    yajl_val v = yajl_tree_parse(text, why, sizeof(why));
    free(text);
    if (!v)
        return err_printf(err, errlen, "not JSON: %s", why);
    yajl_val schema = yajl_tree_get(v, op_path, yajl_t_string);
    const char *what = schema ? YAJL_GET_STRING(schema) : NULL;
    if (what && !strcmp(what, "schema")) {
        r->schemas++; /* the columns, not a change */
        yajl_tree_free(v);
        return 0;
    }
    yajl_val kv = yajl_tree_get(v, key_path, yajl_t_string);
    yajl_val ov = yajl_tree_get(v, op_path, yajl_t_string);
    const char *key = kv ? YAJL_GET_STRING(kv) : NULL;
    const char *op = ov ? YAJL_GET_STRING(ov) : NULL;
    ReplayEntry e = {0};
    if (r->content && canon_hash(r, v, &e.content) != 0) {
        yajl_tree_free(v);
        return err_printf(err, errlen, "out of memory (an event of %zu bytes)", len);
    }
    bool ok = key && op && number_u64(yajl_tree_get(v, txid_path, yajl_t_number), &e.txid) &&
              number_u64(yajl_tree_get(v, version_path, yajl_t_number), &e.version) &&
              (!strcmp(op, "upsert") || !strcmp(op, "delete"));
    int rc = 0;
    if (!ok) {
        rc = err_printf(err, errlen,
                        "not a change event (a %s member with key, txid, version and op upsert "
                        "or delete)",
                        DOC_META_FIELD);
    } else if (grow(r) < 0) {
        rc = err_printf(err, errlen, "out of memory");
    } else {
        e.deleted = !strcmp(op, "delete");
        ReplayEntry *s = slot_of(r->slots, r->cap, key);
        r->events++;
        if (!s->key) {
            e.key = strdup(key);
            if (!e.key)
                rc = err_printf(err, errlen, "out of memory");
            else {
                *s = e;
                r->n++;
            }
        } else if (e.version > s->version) {
            s->txid = e.txid;
            s->version = e.version;
            s->deleted = e.deleted;
            s->content = e.content;
        } else {
            r->ignored++;
        }
    }
    yajl_tree_free(v);
    return rc;
}

/* Takes every line of one file.  Returns 0, or -1 with err filled. */
static int replay_file(Replay *r, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return err_printf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    char why[512];
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[len - 1] != '\n') {
            log_warn("%s:%ld: a last line without its newline (cut short, never acknowledged): "
                     "skipped",
                     path, lineno);
            break;
        }
        if ((size_t)len > LINE_MAX_BYTES ||
            replay_event(r, line, (size_t)len - 1, why, sizeof(why)) < 0)
            rc = err_printf(err, errlen, "%s:%ld: %s", path, lineno,
                            (size_t)len > LINE_MAX_BYTES ? "line too long" : why);
    }
    if (rc == 0 && ferror(f))
        rc = err_printf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

int replay_ndjson(Replay *r, const char *path, char *err, size_t errlen)
{
    char part[4096];
    bool any = false;
    for (unsigned k = 1;; k++) {
        snprintf(part, sizeof(part), "%s.%u", path, k);
        FILE *f = fopen(part, "r");
        if (!f)
            break;
        fclose(f);
        any = true;
        if (replay_file(r, part, err, errlen) < 0)
            return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f && !any)
        return err_printf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    if (!f)
        return 0;
    fclose(f);
    return replay_file(r, path, err, errlen);
}

/* Orders entry pointers by the bytes of their keys. */
static int by_key(const void *a, const void *b)
{
    return strcmp((*(const ReplayEntry *const *)a)->key, (*(const ReplayEntry *const *)b)->key);
}

int replay_sorted(const Replay *r, const ReplayEntry ***out)
{
    const ReplayEntry **v = malloc((r->n ? r->n : 1) * sizeof(*v));
    if (!v)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i].key)
            v[k++] = &r->slots[i];
    qsort(v, k, sizeof(*v), by_key);
    *out = v;
    return 0;
}
