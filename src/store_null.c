/*
 * store_null: no cursor at all (see store_null.h).
 */
#include "store_null.h"

#include <stdlib.h>

static StoreResult null_prepare(Store *s, char *err, size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    return STORE_OK;
}

static StoreResult null_load(Store *s, Buf *text, bool *found, char *err, size_t errlen)
{
    (void)s, (void)text, (void)err, (void)errlen;
    *found = false;
    return STORE_OK;
}

static StoreResult null_save(Store *s, const char *text, char *err, size_t errlen)
{
    (void)s, (void)text, (void)err, (void)errlen;
    return STORE_OK;
}

static StoreResult null_clear(Store *s, bool *existed, char *err, size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    *existed = false;
    return STORE_OK;
}

static const char *null_describe(const Store *s)
{
    (void)s;
    return "nowhere (--dry-run)";
}

static bool null_answered(const Store *s)
{
    (void)s;
    return true;
}

static void null_free(Store *s)
{
    free(s);
}

static const StoreInterface null_interface = {
    .prepare = null_prepare,
    .load = null_load,
    .save = null_save,
    .clear = null_clear,
    .describe = null_describe,
    .answered = null_answered,
    .free = null_free,
};

Store *store_null_new(void)
{
    Store *s = calloc(1, sizeof(*s));
    if (s)
        s->iface = &null_interface;
    return s;
}
