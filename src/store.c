/*
 * store: the calls of the store interface (see store.h); the cursor's
 * text is made and checked here, once for every driver.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"

#define STORE_TEXT_MAX ((size_t)64 << 20)

void store_free(Store *s)
{
    if (s)
        s->iface->free(s);
}

const char *store_describe(const Store *s)
{
    return s->iface->describe(s);
}

bool store_answered(const Store *s)
{
    return s->iface->answered(s);
}

StoreResult store_prepare(Store *s, char *err, size_t errlen)
{
    return s->iface->prepare(s, err, errlen);
}

StoreResult store_clear(Store *s, bool *existed, char *err, size_t errlen)
{
    return s->iface->clear(s, existed, err, errlen);
}

/* Splits a stored text into the owner it names (copied into owner, ""
 * for none) and the cursor's own text without it (into cursor).  Returns
 * 0, or -1 when the text is not a JSON object or the owner not a string. */
static int split_owner(const char *text, char *owner, size_t ownerlen, Buf *cursor)
{
    static const char *owner_path[] = {"owner", NULL};
    owner[0] = '\0';
    yajl_val v = yajl_tree_parse(text, NULL, 0);
    if (!v || !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        return -1;
    }
    yajl_val o = yajl_tree_get(v, owner_path, yajl_t_any);
    if (o && !YAJL_IS_STRING(o)) {
        yajl_tree_free(v);
        return -1;
    }
    if (o)
        snprintf(owner, ownerlen, "%s", YAJL_GET_STRING(o));
    JsonGen jg;
    bool ok = json_gen_open(&jg, cursor) == 0;
    if (ok) {
        ok = yajl_gen_map_open(jg.g) == yajl_gen_status_ok;
        for (size_t i = 0; ok && i < YAJL_GET_OBJECT(v)->len; i++) {
            if (YAJL_GET_OBJECT(v)->values[i] == o)
                continue;
            ok = json_gen_cstr(jg.g, YAJL_GET_OBJECT(v)->keys[i]) &&
                 json_gen_tree(jg.g, YAJL_GET_OBJECT(v)->values[i], 1);
        }
        ok = json_gen_close(&jg, ok && yajl_gen_map_close(jg.g) == yajl_gen_status_ok) == 0;
    }
    yajl_tree_free(v);
    return ok ? 0 : -1;
}

StoreResult store_load(Store *s, Cursor *c, const char *owner, bool *found, char *err,
                       size_t errlen)
{
    cursor_init(c);
    *found = false;
    Buf text, bare;
    buf_init(&text, STORE_TEXT_MAX);
    buf_init(&bare, STORE_TEXT_MAX);
    StoreResult r = s->iface->load(s, &text, found, err, errlen);
    char why[256], stored_owner[512];
    if (r == STORE_OK && *found) {
        if (split_owner(buf_str(&text), stored_owner, sizeof(stored_owner), &bare) < 0)
            snprintf(why, sizeof(why), "not a JSON object with a string owner");
        else if (cursor_from_json(c, buf_str(&bare), bare.len, why, sizeof(why)) == 0)
            why[0] = '\0';
        if (why[0]) {
            err_printf(err, errlen, "the stored cursor in %s is corrupt: %s", store_describe(s),
                       why);
            r = STORE_FAIL;
        } else if (stored_owner[0] && owner && strcmp(stored_owner, owner) != 0) {
            err_printf(err, errlen,
                       "the cursor in %s was written for table %s, not %s: give this table a "
                       "cursor of its own (state index or cursor file)",
                       store_describe(s), stored_owner, owner);
            cursor_free(c);
            r = STORE_FAIL;
        }
        if (r != STORE_OK)
            *found = false;
    }
    buf_free(&text);
    buf_free(&bare);
    return r;
}

StoreResult store_save(Store *s, const Cursor *c, const char *owner, char *err, size_t errlen)
{
    char *text = NULL;
    char why[256];
    if (cursor_to_json(c, &text, why, sizeof(why)) < 0) {
        err_printf(err, errlen, "cannot serialise the cursor: %s", why);
        return STORE_FAIL;
    }
    Buf owned;
    buf_init(&owned, STORE_TEXT_MAX);
    /* {"owner":"...", then the cursor's members. */
    if (owner &&
        (buf_puts(&owned, "{\"owner\":") < 0 ||
         json_append_string(&owned, owner, strlen(owner)) < 0 ||
         buf_puts(&owned, text[1] == '}' ? "" : ",") < 0 || buf_puts(&owned, text + 1) < 0)) {
        free(text);
        buf_free(&owned);
        err_printf(err, errlen, "cannot serialise the cursor: out of memory");
        return STORE_FAIL;
    }
    StoreResult r = s->iface->save(s, owner ? buf_str(&owned) : text, err, errlen);
    free(text);
    buf_free(&owned);
    return r;
}
