/*
 * store_mem: a cursor store in memory (see store_mem.h).
 */
#include "store_mem.h"

#include <stdlib.h>
#include <string.h>

static StoreResult mem_prepare(Store *s, char *err, size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    return STORE_OK;
}

static StoreResult mem_load(Store *s, Buf *text, bool *found, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    StoreMem *m = (StoreMem *)s;
    *found = m->has;
    if (m->has && buf_append(text, m->text.data ? m->text.data : "", m->text.len) < 0)
        return STORE_FAIL;
    return STORE_OK;
}

static StoreResult mem_save(Store *s, const char *text, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    StoreMem *m = (StoreMem *)s;
    if (m->on_save)
        m->on_save(text);
    buf_reset(&m->text);
    if (buf_puts(&m->text, text) < 0)
        return STORE_FAIL;
    m->has = true;
    return STORE_OK;
}

static StoreResult mem_clear(Store *s, bool *existed, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    StoreMem *m = (StoreMem *)s;
    *existed = m->has;
    m->has = false;
    buf_reset(&m->text);
    return STORE_OK;
}

static const char *mem_describe(const Store *s)
{
    (void)s;
    return "memory";
}

static bool mem_answered(const Store *s)
{
    (void)s;
    return true;
}

static void mem_free(Store *s)
{
    buf_free(&((StoreMem *)s)->text);
}

static const StoreInterface mem_interface = {
    .prepare = mem_prepare,
    .load = mem_load,
    .save = mem_save,
    .clear = mem_clear,
    .describe = mem_describe,
    .answered = mem_answered,
    .free = mem_free,
};

void store_mem_init(StoreMem *m, const char *text, size_t len)
{
    memset(m, 0, sizeof(*m));
    m->base.iface = &mem_interface;
    buf_init(&m->text, (size_t)16 << 20);
    m->has = text != NULL && buf_append(&m->text, text, len) == 0;
}

void store_mem_free(StoreMem *m)
{
    buf_free(&m->text);
}
