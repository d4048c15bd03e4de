/*
 * sink_es: Elasticsearch/OpenSearch behind the sink interface (see
 * sink_es.h and sink.h).  The wire format and the HTTP calls are es.c's;
 * this file maps changes to bulk actions and bulk items to outcomes.
 */
#include "sink_es.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "doc.h"
#include "es.h"
#include "json.h"
#include "keys.h"
#include "log.h"

#define BODY_MAX ((size_t)512 << 20)
/* The most of a rejected document a dead letter keeps: the letter must
 * not be refused for the size that got the document rejected. */

typedef struct EsDriver {
    EsClient *es;
    EsPipe *pipe;
    char *index;
    char *dead_letter_index; /* NULL: none */
    char *feeder;            /* the table that feeds the index, once prepared */
    yajl_val body;           /* the user's index body (NULL: none) */
    int replicas;
    size_t max_bytes;
    SinkDoneFn on_done;
    void *owner;
    Buf doc;                /* scratch: the document being added */
    SinkRequest **requests; /* every request made, freed with the driver */
    size_t n_requests;
} EsDriver;

struct SinkRequest {
    Buf body;
    size_t n;
    EsBulkItem *items; /* what the pipe fills */
    size_t cap;
    SinkItem *out; /* the engine's, borrowed while in flight */
    void *tag;
};

static void drv_bind(void *drv, SinkDoneFn on_done, void *owner)
{
    EsDriver *d = drv;
    d->on_done = on_done;
    d->owner = owner;
}

static SinkResult from_es(EsResult r)
{
    return r == ES_OK ? SINK_OK : r == ES_RETRY ? SINK_RETRY : SINK_FAIL;
}

static SinkResult drv_inspect(void *drv, SinkTarget *t, char *err, size_t errlen)
{
    EsDriver *d = drv;
    EsIndexInfo info;
    EsResult r = es_index_info(d->es, d->index, &info, err, errlen);
    if (r == ES_RETRY && es_client_last_status(d->es) == 0)
        return SINK_FAIL; /* no answer at all at start: a wrong URL fails fast */
    if (r != ES_OK)
        return from_es(r);
    t->exists = info.exists;
    t->documents = info.documents;
    snprintf(t->owner, sizeof(t->owner), "%s", info.owner);
    t->durable = strcmp(info.durability, "async") != 0;
    if (!t->durable)
        snprintf(t->durability, sizeof(t->durability),
                 "index %s has index.translog.durability async", d->index);
    return SINK_OK;
}

static SinkResult drv_prepare(void *drv, const char *owner, char *err, size_t errlen)
{
    EsDriver *d = drv;
    free(d->feeder);
    d->feeder = strdup(owner);
    if (!d->feeder) {
        err_printf(err, errlen, "out of memory");
        return SINK_FAIL;
    }
    EsIndexInfo info;
    EsResult r = es_index_info(d->es, d->index, &info, err, errlen);
    if (r == ES_OK && info.exists && d->body)
        log_info("index %s exists already: --mapping applies when txidsync creates it (txidsync "
                 "reset deletes it)",
                 d->index);
    if (r == ES_OK && !info.exists)
        r = es_ensure_index(d->es, d->index, d->replicas, false, owner, d->body, err, errlen);
    else if (r == ES_OK && !info.owner[0])
        r = es_claim_index(d->es, d->index, owner, err, errlen);
    if (r == ES_OK && d->dead_letter_index)
        r = es_ensure_index(d->es, d->dead_letter_index, d->replicas, true, NULL, NULL, err,
                            errlen);
    if (r == ES_RETRY && es_client_last_status(d->es) == 0)
        return SINK_FAIL;
    return from_es(r);
}

static SinkResult drv_drop(void *drv, bool *existed, char *err, size_t errlen)
{
    EsDriver *d = drv;
    return from_es(es_delete_index(d->es, d->index, existed, err, errlen));
}

static SinkResult drv_flush(void *drv, char *err, size_t errlen)
{
    EsDriver *d = drv;
    return from_es(es_flush(d->es, d->index, err, errlen));
}

static SinkRequest *drv_request_new(void *drv)
{
    EsDriver *d = drv;
    SinkRequest *rq = sink_request_track(&d->requests, &d->n_requests, sizeof(*rq));
    if (!rq)
        return NULL;
    buf_init(&rq->body, d->max_bytes);
    return rq;
}

static void drv_request_reset(void *drv, SinkRequest *rq)
{
    (void)drv;
    buf_reset(&rq->body);
    rq->n = 0;
}

static int drv_add(void *drv, SinkRequest *rq, const SinkChange *ch, char *err, size_t errlen)
{
    EsDriver *d = drv;
    if (rq->n == rq->cap) {
        size_t cap = rq->cap ? rq->cap * 2 : 1024;
        EsBulkItem *items = realloc(rq->items, cap * sizeof(*items));
        if (!items)
            return err_printf(err, errlen, "out of memory");
        rq->items = items;
        rq->cap = cap;
    }
    char id[KEYS_ID_SIZE];
    keys_id(ch->key, id);
    int rc;
    if (ch->deleted) {
        rc = es_bulk_add_delete(&rq->body, d->index, id, ch->version);
    } else {
        if (doc_build(&d->doc, ch->row, ch->row_len, ch->key, ch->txid, ch->version, d->feeder,
                      NULL) < 0)
            return err_printf(err, errlen, "the row is not a JSON object, or larger than %zu bytes",
                              BODY_MAX);
        rc = es_bulk_add_index(&rq->body, d->index, id, ch->version, d->doc.data, d->doc.len);
    }
    /* The body's maximum is the cap: a failed append left it unchanged. */
    if (rc < 0 && rq->n > 0)
        return SINK_ADD_FULL;
    if (rc < 0)
        return err_printf(err, errlen,
                          "the document (%zu bytes) does not fit in a bulk request of at most "
                          "%zu bytes (--bulk-max-bytes)",
                          ch->deleted ? (size_t)0 : d->doc.len, d->max_bytes);
    rq->n++;
    return SINK_ADD_OK;
}

static bool drv_has_room(void *drv)
{
    return es_pipe_has_room(((EsDriver *)drv)->pipe);
}

static size_t drv_in_flight(void *drv)
{
    return es_pipe_in_flight(((EsDriver *)drv)->pipe);
}

static int drv_send(void *drv, SinkRequest *rq, SinkItem *items, void *tag, char *err,
                    size_t errlen)
{
    EsDriver *d = drv;
    rq->out = items;
    rq->tag = tag;
    return es_pipe_send(d->pipe, &rq->body, rq->n, rq->items, rq, err, errlen) == ES_OK ? 0 : -1;
}

/* Maps the pipe's item outcomes to the interface's. */
static void copy_items(const SinkRequest *rq)
{
    for (size_t i = 0; i < rq->n; i++) {
        const EsBulkItem *it = &rq->items[i];
        SinkItem *o = &rq->out[i];
        switch (it->result) {
        case ES_ITEM_OK:
            o->outcome = SINK_APPLIED;
            break;
        case ES_ITEM_CONFLICT:
            o->outcome = SINK_ALREADY_APPLIED;
            break;
        case ES_ITEM_RETRY:
            o->outcome = SINK_RETRY_LATER;
            break;
        case ES_ITEM_REJECTED:
            o->outcome = SINK_REJECTED;
            break;
        }
        snprintf(o->reason, sizeof(o->reason), "%s", it->error);
    }
}

/* The pipe's call for a finished request: hands it to the engine. */
static void on_pipe_done(void *owner, const EsPipeDone *done)
{
    EsDriver *d = owner;
    SinkRequest *rq = done->tag;
    SinkResult r = from_es(done->result);
    if (r == SINK_FAIL && (done->status == 400 || done->status == 413))
        r = SINK_SPLIT; /* the body is at fault, not the index */
    if (r == SINK_OK)
        copy_items(rq);
    d->on_done(d->owner, rq->tag, r, done->err);
}

static SinkResult drv_dead_letter(void *drv, const SinkChange *ch, const char *reason, char *err,
                                  size_t errlen)
{
    EsDriver *d = drv;
    if (!d->dead_letter_index) {
        err_printf(err, errlen, "no dead-letter index");
        return SINK_FAIL;
    }
    Buf body;
    buf_init(&body, BODY_MAX);
    SinkResult r = SINK_FAIL;
    if (sink_dead_letter_record(&body, &d->doc, "index", d->index, d->feeder ? d->feeder : "", ch,
                                reason) < 0) {
        err_printf(err, errlen, "cannot build the dead letter of key %s: out of memory", ch->key);
    } else {
        /* One record per index, key and version: recording it again after
         * a replay overwrites the same document. */
        char key_id[KEYS_ID_SIZE], id[KEYS_ID_SIZE + 1024];
        snprintf(id, sizeof(id), "%s:%s:%" PRIu64, d->index, keys_id(ch->key, key_id), ch->version);
        r = from_es(es_put_doc(d->es, d->dead_letter_index, id, buf_str(&body), err, errlen));
    }
    buf_free(&body);
    return r;
}

static const char *drv_describe(void *drv)
{
    return es_client_url(((EsDriver *)drv)->es);
}

static void drv_free(void *drv)
{
    EsDriver *d = drv;
    if (!d)
        return;
    es_pipe_free(d->pipe);
    for (size_t i = 0; i < d->n_requests; i++) {
        buf_free(&d->requests[i]->body);
        free(d->requests[i]->items);
        free(d->requests[i]);
    }
    free(d->requests);
    es_client_free(d->es);
    free(d->index);
    free(d->dead_letter_index);
    free(d->feeder);
    yajl_tree_free(d->body);
    buf_free(&d->doc);
    free(d);
}

/* Parses and checks the user's index body into d->body.  Returns 0, or
 * -1 with err filled. */
static int parse_body(EsDriver *d, const char *text, char *err, size_t errlen)
{
    static const char *meta_path[] = {"mappings", "properties", DOC_META_FIELD, NULL};
    char why[256];
    d->body = yajl_tree_parse(text, why, sizeof(why));
    if (!d->body)
        return err_printf(err, errlen, "--mapping: not JSON: %s", why);
    if (!YAJL_IS_OBJECT(d->body))
        return err_printf(err, errlen, "--mapping: expected a JSON object");
    for (size_t i = 0; i < YAJL_GET_OBJECT(d->body)->len; i++) {
        const char *k = YAJL_GET_OBJECT(d->body)->keys[i];
        yajl_val v = YAJL_GET_OBJECT(d->body)->values[i];
        if (strcmp(k, "settings") && strcmp(k, "mappings") && strcmp(k, "aliases"))
            return err_printf(err, errlen,
                              "--mapping: unexpected member %s: the file holds the body that "
                              "creates the index, {\"settings\": ..., \"mappings\": ...}",
                              k);
        if (!YAJL_IS_OBJECT(v))
            return err_printf(err, errlen, "--mapping: %s must be an object", k);
    }
    if (yajl_tree_get(d->body, meta_path, yajl_t_any))
        return err_printf(err, errlen,
                          "--mapping: it maps %s, the field txidsync maps itself: leave it out",
                          DOC_META_FIELD);
    return 0;
}

static const SinkInterface es_interface = {
    .name = "opensearch",
    .bind = drv_bind,
    .inspect = drv_inspect,
    .prepare = drv_prepare,
    .drop = drv_drop,
    .flush = drv_flush,
    .request_new = drv_request_new,
    .request_reset = drv_request_reset,
    .add = drv_add,
    .has_room = drv_has_room,
    .in_flight = drv_in_flight,
    .send = drv_send,
    .dead_letter = drv_dead_letter,
    .describe = drv_describe,
    .free = drv_free,
};

Sink *sink_es_new(const SinkEsConfig *cfg, Loop *loop, char *err, size_t errlen)
{
    EsDriver *d = calloc(1, sizeof(*d));
    if (!d) {
        err_printf(err, errlen, "out of memory");
        return NULL;
    }
    buf_init(&d->doc, BODY_MAX);
    d->replicas = cfg->replicas;
    d->max_bytes = cfg->max_bytes > 0 && cfg->max_bytes < BODY_MAX ? cfg->max_bytes : BODY_MAX;
    char why[512];
    d->es = es_client_new(cfg->url, cfg->auth, why, sizeof(why));
    if (!d->es) {
        err_printf(err, errlen, "--es-url: %s", why);
        goto fail;
    }
    if (cfg->index_body && parse_body(d, cfg->index_body, err, errlen) < 0)
        goto fail;
    d->index = strdup(cfg->index);
    d->dead_letter_index = cfg->dead_letter_index ? strdup(cfg->dead_letter_index) : NULL;
    if (!d->index || (cfg->dead_letter_index && !d->dead_letter_index)) {
        err_printf(err, errlen, "out of memory");
        goto fail;
    }
    d->pipe = es_pipe_new(d->es, cfg->max_in_flight, loop, on_pipe_done, d, err, errlen);
    if (!d->pipe)
        goto fail;
    return sink_new(&es_interface, d);
fail:
    drv_free(d);
    return NULL;
}
