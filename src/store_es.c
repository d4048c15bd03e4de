/*
 * store_es: the cursor in a state index (see store_es.h).
 */
#include "store_es.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es.h"
#include "log.h"

typedef struct EsStore {
    Store base; /* first: the store handed out */
    EsClient *es;
    char *index;
    char *id;
    int replicas;
    char describe[1024];
} EsStore;

static StoreResult from_es(EsResult r)
{
    return r == ES_OK ? STORE_OK : r == ES_RETRY ? STORE_RETRY : STORE_FAIL;
}

static StoreResult st_prepare(Store *st, char *err, size_t errlen)
{
    EsStore *s = (EsStore *)st;
    return from_es(es_ensure_index(s->es, s->index, s->replicas, true, NULL, NULL, err, errlen));
}

static StoreResult st_load(Store *st, Buf *text, bool *found, char *err, size_t errlen)
{
    EsStore *s = (EsStore *)st;
    return from_es(es_get_source(s->es, s->index, s->id, found, text, err, errlen));
}

static StoreResult st_save(Store *st, const char *text, char *err, size_t errlen)
{
    EsStore *s = (EsStore *)st;
    return from_es(es_put_doc(s->es, s->index, s->id, text, err, errlen));
}

static StoreResult st_clear(Store *st, bool *existed, char *err, size_t errlen)
{
    EsStore *s = (EsStore *)st;
    return from_es(es_delete_doc(s->es, s->index, s->id, existed, err, errlen));
}

static const char *st_describe(const Store *st)
{
    return ((const EsStore *)st)->describe;
}

static bool st_answered(const Store *st)
{
    return es_client_last_status(((const EsStore *)st)->es) != 0;
}

static void st_free(Store *st)
{
    EsStore *s = (EsStore *)st;
    if (!s)
        return;
    es_client_free(s->es);
    free(s->index);
    free(s->id);
    free(s);
}

static const StoreInterface st_interface = {
    .prepare = st_prepare,
    .load = st_load,
    .save = st_save,
    .clear = st_clear,
    .describe = st_describe,
    .answered = st_answered,
    .free = st_free,
};

Store *store_es_new(const char *url, const EsAuth *auth, const char *state_index, const char *id,
                    int replicas, char *err, size_t errlen)
{
    EsStore *s = calloc(1, sizeof(*s));
    if (!s) {
        err_printf(err, errlen, "out of memory");
        return NULL;
    }
    s->replicas = replicas;
    s->es = es_client_new(url, auth, err, errlen);
    s->index = strdup(state_index);
    s->id = strdup(id);
    if (!s->es || !s->index || !s->id) {
        if (s->es)
            err_printf(err, errlen, "out of memory");
        st_free(&s->base);
        return NULL;
    }
    snprintf(s->describe, sizeof(s->describe), "index %s, document %s", state_index, id);
    s->base.iface = &st_interface;
    return &s->base;
}
