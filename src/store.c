/*
 * store: the calls of the store interface (see store.h); the cursor's
 * text is made and checked here, once for every driver.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

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

StoreResult store_load(Store *s, Cursor *c, bool *found, char *err, size_t errlen)
{
    cursor_init(c);
    *found = false;
    Buf text;
    buf_init(&text, STORE_TEXT_MAX);
    StoreResult r = s->iface->load(s, &text, found, err, errlen);
    char why[256];
    if (r == STORE_OK && *found &&
        cursor_from_json(c, buf_str(&text), text.len, why, sizeof(why)) < 0) {
        err_printf(err, errlen, "the stored cursor in %s is corrupt: %s", store_describe(s), why);
        *found = false;
        r = STORE_FAIL;
    }
    buf_free(&text);
    return r;
}

StoreResult store_save(Store *s, const Cursor *c, char *err, size_t errlen)
{
    char *text = NULL;
    char why[256];
    if (cursor_to_json(c, &text, why, sizeof(why)) < 0) {
        err_printf(err, errlen, "cannot serialise the cursor: %s", why);
        return STORE_FAIL;
    }
    StoreResult r = s->iface->save(s, text, err, errlen);
    free(text);
    return r;
}
