/*
 * sink_kafka: changes as messages of a Kafka topic (see sink_kafka.h).
 * Delivery reports are served from the loop (the main queue wakes a pipe
 * the loop watches); they only record outcomes, and a finished request's
 * done call comes from a timer of no delay, outside librdkafka's poll, so
 * that the engine may call back into the driver (dead letters).
 */
#include "sink_kafka.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "buf.h"
#include "doc.h"
#include "json.h"
#include "keys.h"
#include "log.h"
#include "loop.h"

#define EVENT_MAX_BYTES ((size_t)512 << 20)
/* The producer's message.max.bytes: room for a message's key and framing
 * above the event, within librdkafka's default bounds (its default, and
 * under its receive.message.max.bytes). */
#define KEY_ROOM           ((size_t)64 << 10)
#define PRODUCER_MIN_BYTES ((size_t)1000000)
#define PRODUCER_MAX_BYTES ((size_t)99000000)
#define ADMIN_TIMEOUT_MS   15000
#define FLUSH_TIMEOUT_MS   30000
#define SCHEMA_KEY         KEYS_HASH_PREFIX "schema"

/* What a message's opaque points at: a change of a request, or a wait. */
typedef enum RefKind { REF_CHANGE, REF_WAIT } RefKind;

typedef struct KRef {
    RefKind kind;
    SinkRequest *rq;
    size_t item;
} KRef;

/* A blocking send of a few messages (schema events, dead letters). */
typedef struct KWait {
    RefKind kind;
    int left;
    bool failed;
    char why[256];
} KWait;

typedef struct KDriver {
    rd_kafka_t *rk;
    char *brokers, *topic, *dead_letter_topic;
    int partitions, replicas;
    size_t max_in_flight, max_bytes, flying;
    int pipe_fds[2];
    Loop *loop;
    LoopTimer timer; /* done calls of finished requests */
    SinkDoneFn on_done;
    void *owner;
    char *feeder;
    Buf doc;
    SinkRequest **requests;
    size_t n_requests;
    char describe[1100];
} KDriver;

struct SinkRequest {
    Buf events, ids; /* the texts, NUL-separated */
    size_t *ev_off, *id_off;
    bool *deleted;
    KRef *refs; /* two per change: the event, the tombstone */
    size_t n, cap;
    SinkItem *out;
    void *tag;
    size_t waiting; /* delivery reports still to come */
    bool finished;  /* every report came: the done call is due */
};

/* Whether a broker error refuses the message for good. */
static bool refused_for_good(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
           e == RD_KAFKA_RESP_ERR_INVALID_MSG || e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
           e == RD_KAFKA_RESP_ERR_INVALID_RECORD;
}

/* Records the outcome e of one message of change i (the worst wins). */
static void note_outcome(SinkRequest *rq, size_t i, rd_kafka_resp_err_t e)
{
    SinkItem *it = &rq->out[i];
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || it->outcome == SINK_REJECTED)
        return;
    it->outcome = refused_for_good(e) ? SINK_REJECTED : SINK_RETRY_LATER;
    snprintf(it->reason, sizeof(it->reason), "kafka: %s", rd_kafka_err2str(e));
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    KDriver *d = opaque;
    RefKind *kind = m->_private;
    if (!kind)
        return;
    if (*kind == REF_WAIT) {
        KWait *w = (KWait *)kind;
        if (m->err) {
            w->failed = true;
            snprintf(w->why, sizeof(w->why), "%s", rd_kafka_err2str(m->err));
        }
        w->left--;
        return;
    }
    KRef *ref = (KRef *)kind;
    note_outcome(ref->rq, ref->item, m->err);
    if (--ref->rq->waiting == 0) {
        ref->rq->finished = true;
        loop_timer_after_ms(d->loop, &d->timer, 0);
    }
}

/* The loop's call for the wake-up pipe: serves the delivery reports. */
static void on_wakeup(void *ctx, int fd, int events)
{
    (void)events;
    KDriver *d = ctx;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    while (rd_kafka_poll(d->rk, 0) > 0) {
    }
}

/* Hands every finished request to the engine. */
static void on_timer(void *ctx)
{
    KDriver *d = ctx;
    for (size_t i = 0; i < d->n_requests; i++) {
        SinkRequest *rq = d->requests[i];
        if (!rq->finished)
            continue;
        rq->finished = false;
        d->flying--;
        d->on_done(d->owner, rq->tag, SINK_OK, "");
    }
}

static void drv_bind(void *drv, SinkDoneFn on_done, void *owner)
{
    KDriver *d = drv;
    d->on_done = on_done;
    d->owner = owner;
}

/* The partitions of topic per the cluster's metadata: 0 when the topic
 * does not exist, -1 when the cluster does not answer (err filled). */
static int topic_partitions(KDriver *d, const char *topic, char *err, size_t errlen)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(d->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = t ? rd_kafka_metadata(d->rk, 0, t, &md, 5000) : RD_KAFKA_RESP_ERR__FAIL;
    int n = -1;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err_printf(err, errlen, "kafka at %s: %s", d->brokers, rd_kafka_err2str(e));
    } else if (md->topic_cnt < 1 || md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        n = 0;
    } else if (md->topics[0].err) {
        err_printf(err, errlen, "kafka topic %s: %s", topic, rd_kafka_err2str(md->topics[0].err));
    } else {
        n = md->topics[0].partition_cnt;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    return n;
}

static SinkResult drv_inspect(void *drv, SinkTarget *t, char *err, size_t errlen)
{
    KDriver *d = drv;
    int n = topic_partitions(d, d->topic, err, errlen);
    if (n < 0)
        return SINK_FAIL;
    t->exists = n > 0;
    /* How many messages it holds, so that a topic deleted and created
     * again empty is seen (-1 when a partition cannot tell). */
    t->documents = t->exists ? 0 : -1;
    for (int p = 0; p < n; p++) {
        int64_t low = 0, high = 0;
        if (rd_kafka_query_watermark_offsets(d->rk, d->topic, p, &low, &high, 5000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            t->documents = -1;
            break;
        }
        t->documents += high - low;
    }
    return SINK_OK;
}

/* Waits for the result of an admin request on q; creating an existing
 * topic or deleting a missing one is no failure (*absent tells which).
 * Returns SINK_OK, SINK_RETRY or SINK_FAIL with err filled. */
static SinkResult admin_wait(rd_kafka_queue_t *q, bool create, bool *absent, char *err,
                             size_t errlen)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS + 1000);
    if (!ev) {
        err_printf(err, errlen, "kafka: no answer to the topic request");
        return SINK_RETRY;
    }
    const rd_kafka_topic_result_t **res;
    size_t n = 0;
    if (create)
        res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    else
        res = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    SinkResult r = SINK_OK;
    rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
    if (!e && n > 0)
        e = rd_kafka_topic_result_error(res[0]);
    if (absent)
        *absent = e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (e && !(create && e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) &&
        !(!create && e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)) {
        err_printf(err, errlen, "kafka: %s", rd_kafka_err2str(e));
        r = SINK_FAIL;
    }
    rd_kafka_event_destroy(ev);
    return r;
}

/* Creates topic (compacted or not) unless it exists. */
static SinkResult ensure_topic(KDriver *d, const char *topic, bool compact, char *err,
                               size_t errlen)
{
    char why[512];
    int n = topic_partitions(d, topic, err, errlen);
    if (n != 0)
        return n > 0 ? SINK_OK : SINK_RETRY;
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, d->partitions, d->replicas, why, sizeof(why));
    if (!nt) {
        err_printf(err, errlen, "kafka topic %s: %s", topic, why);
        return SINK_FAIL;
    }
    if (compact)
        rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    rd_kafka_queue_t *q = rd_kafka_queue_new(d->rk);
    rd_kafka_CreateTopics(d->rk, &nt, 1, NULL, q);
    SinkResult r = admin_wait(q, true, NULL, err, errlen);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return r;
}

static SinkResult drv_prepare(void *drv, const char *owner, char *err, size_t errlen)
{
    KDriver *d = drv;
    free(d->feeder);
    d->feeder = strdup(owner);
    if (!d->feeder) {
        err_printf(err, errlen, "out of memory");
        return SINK_FAIL;
    }
    SinkResult r = ensure_topic(d, d->topic, true, err, errlen);
    if (r == SINK_OK && d->dead_letter_topic)
        r = ensure_topic(d, d->dead_letter_topic, false, err, errlen);
    if (r == SINK_OK && topic_partitions(d, d->topic, err, errlen) <= 0)
        r = SINK_RETRY; /* created, not in the metadata yet */
    return r;
}

static SinkResult drv_drop(void *drv, bool *existed, char *err, size_t errlen)
{
    KDriver *d = drv;
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(d->topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(d->rk);
    rd_kafka_DeleteTopics(d->rk, &dt, 1, NULL, q);
    bool absent = false;
    SinkResult r = admin_wait(q, false, &absent, err, errlen);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(dt);
    *existed = r == SINK_OK && !absent;
    return r;
}

static SinkResult drv_flush(void *drv, char *err, size_t errlen)
{
    KDriver *d = drv;
    rd_kafka_resp_err_t e = rd_kafka_flush(d->rk, FLUSH_TIMEOUT_MS);
    if (e) {
        err_printf(err, errlen, "kafka: %s", rd_kafka_err2str(e));
        return SINK_RETRY;
    }
    return SINK_OK;
}

/* Produces value (NULL: none) with key (NULL: none) to topic, partition
 * (RD_KAFKA_PARTITION_UA: by key), reported to opaque. */
static rd_kafka_resp_err_t produce(KDriver *d, const char *topic, int32_t partition,
                                   const char *key, const char *value, size_t len, void *opaque)
{
    return rd_kafka_producev(d->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                             RD_KAFKA_V_VALUE((void *)value, value ? len : 0),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

/* Sends messages (all to topic; partitions -1 means one message by key,
 * else one per partition) and waits for their delivery.  Returns SINK_OK,
 * or SINK_RETRY with err filled. */
static SinkResult send_and_wait(KDriver *d, const char *topic, const char *key, const char *value,
                                size_t len, int partitions, char *err, size_t errlen)
{
    KWait w = {.kind = REF_WAIT};
    int n = partitions < 0 ? 1 : partitions;
    for (int p = 0; p < n; p++) {
        rd_kafka_resp_err_t e =
            produce(d, topic, partitions < 0 ? RD_KAFKA_PARTITION_UA : p, key, value, len, &w);
        if (e) {
            rd_kafka_flush(d->rk, FLUSH_TIMEOUT_MS);
            err_printf(err, errlen, "kafka: %s", rd_kafka_err2str(e));
            return SINK_RETRY;
        }
        w.left++;
    }
    rd_kafka_flush(d->rk, FLUSH_TIMEOUT_MS);
    if (w.left > 0 || w.failed) {
        err_printf(err, errlen, "kafka: %s", w.left > 0 ? "not delivered in time" : w.why);
        return SINK_RETRY;
    }
    return SINK_OK;
}

static SinkResult drv_schema(void *drv, const SinkSchema *s, char *err, size_t errlen)
{
    KDriver *d = drv;
    Buf line;
    buf_init(&line, EVENT_MAX_BYTES);
    SinkResult r = SINK_FAIL;
    int parts = topic_partitions(d, d->topic, err, errlen);
    if (parts <= 0) {
        r = SINK_RETRY;
    } else if (doc_schema_event(&line, d->feeder ? d->feeder : "", s->columns, s->types,
                                s->nullable, s->n, s->key, s->n_key) < 0) {
        err_printf(err, errlen, "cannot build the schema event: out of memory");
    } else {
        /* One copy per partition: each consumer of a partition sees the
         * columns before the changes that use them. */
        /* A compacted topic needs a key: one no row can have (an id of
         * that prefix is always a hash, keys.h). */
        r = send_and_wait(d, d->topic, SCHEMA_KEY, line.data, line.len, parts, err, errlen);
    }
    buf_free(&line);
    return r;
}

static SinkRequest *drv_request_new(void *drv)
{
    KDriver *d = drv;
    SinkRequest *rq = sink_request_track(&d->requests, &d->n_requests, sizeof(*rq));
    if (!rq)
        return NULL;
    buf_init(&rq->events, d->max_bytes);
    buf_init(&rq->ids, (size_t)64 << 20);
    return rq;
}

static void drv_request_reset(void *drv, SinkRequest *rq)
{
    (void)drv;
    buf_reset(&rq->events);
    buf_reset(&rq->ids);
    rq->n = 0;
}

/* Makes room in rq for one more change.  Returns 0 or -1. */
static int request_reserve(SinkRequest *rq)
{
    if (rq->n < rq->cap)
        return 0;
    size_t cap = rq->cap ? rq->cap * 2 : 256;
    size_t *ev = realloc(rq->ev_off, cap * sizeof(*ev));
    if (ev)
        rq->ev_off = ev;
    size_t *id = realloc(rq->id_off, cap * sizeof(*id));
    if (id)
        rq->id_off = id;
    bool *del = realloc(rq->deleted, cap * sizeof(*del));
    if (del)
        rq->deleted = del;
    KRef *refs = realloc(rq->refs, 2 * cap * sizeof(*refs));
    if (refs)
        rq->refs = refs;
    if (!ev || !id || !del || !refs)
        return -1;
    rq->cap = cap;
    return 0;
}

static int drv_add(void *drv, SinkRequest *rq, const SinkChange *ch, char *err, size_t errlen)
{
    KDriver *d = drv;
    if (request_reserve(rq) < 0)
        return err_printf(err, errlen, "out of memory");
    if (sink_event(&d->doc, ch, d->feeder) < 0)
        return err_printf(err, errlen, "the row is not a JSON object, or larger than %zu bytes",
                          EVENT_MAX_BYTES);
    size_t ev = rq->events.len, id = rq->ids.len;
    char kid[KEYS_ID_SIZE];
    keys_id(ch->key, kid);
    if (buf_append(&rq->events, d->doc.data, d->doc.len + 1) < 0 ||
        buf_append(&rq->ids, kid, strlen(kid) + 1) < 0) {
        rq->events.len = ev;
        rq->ids.len = id;
        if (rq->n > 0)
            return SINK_ADD_FULL;
        return err_printf(err, errlen,
                          "the event (%zu bytes) does not fit in a request of at most %zu bytes "
                          "(--bulk-max-bytes)",
                          d->doc.len, d->max_bytes);
    }
    rq->ev_off[rq->n] = ev;
    rq->id_off[rq->n] = id;
    rq->deleted[rq->n] = ch->deleted;
    rq->n++;
    return SINK_ADD_OK;
}

static bool drv_has_room(void *drv)
{
    KDriver *d = drv;
    return d->flying < d->max_in_flight;
}

static size_t drv_in_flight(void *drv)
{
    return ((KDriver *)drv)->flying;
}

static int drv_send(void *drv, SinkRequest *rq, SinkItem *items, void *tag, char *err,
                    size_t errlen)
{
    (void)err, (void)errlen;
    KDriver *d = drv;
    rq->out = items;
    rq->tag = tag;
    rq->waiting = 1; /* held until every message is handed over */
    rq->finished = false;
    d->flying++;
    for (size_t i = 0; i < rq->n; i++) {
        items[i].outcome = SINK_APPLIED;
        items[i].reason[0] = '\0';
        const char *key = rq->ids.data + rq->id_off[i];
        const char *ev = rq->events.data + rq->ev_off[i];
        for (int k = 0; k < (rq->deleted[i] ? 2 : 1); k++) {
            KRef *ref = &rq->refs[2 * i + (size_t)k];
            *ref = (KRef){.kind = REF_CHANGE, .rq = rq, .item = i};
            rd_kafka_resp_err_t e = produce(d, d->topic, RD_KAFKA_PARTITION_UA, key,
                                            k == 0 ? ev : NULL, k == 0 ? strlen(ev) : 0, ref);
            if (e)
                note_outcome(rq, i, e);
            else
                rq->waiting++;
        }
    }
    if (--rq->waiting == 0) {
        rq->finished = true;
        loop_timer_after_ms(d->loop, &d->timer, 0);
    }
    return 0;
}

static SinkResult drv_dead_letter(void *drv, const SinkChange *ch, const char *reason, char *err,
                                  size_t errlen)
{
    KDriver *d = drv;
    if (!d->dead_letter_topic) {
        err_printf(err, errlen, "no dead-letter topic");
        return SINK_FAIL;
    }
    Buf line;
    buf_init(&line, 1 << 20);
    SinkResult r = SINK_FAIL;
    char kid[KEYS_ID_SIZE];
    if (sink_dead_letter_record(&line, &d->doc, "topic", d->topic, d->feeder ? d->feeder : "", ch,
                                reason) < 0)
        err_printf(err, errlen, "out of memory");
    else
        r = send_and_wait(d, d->dead_letter_topic, keys_id(ch->key, kid), line.data, line.len, -1,
                          err, errlen);
    buf_free(&line);
    return r;
}

static const char *drv_describe(void *drv)
{
    return ((KDriver *)drv)->describe;
}

static void drv_free(void *drv)
{
    KDriver *d = drv;
    if (!d)
        return;
    if (d->loop) {
        loop_timer_cancel(d->loop, &d->timer);
        if (d->pipe_fds[0] >= 0)
            loop_unwatch(d->loop, d->pipe_fds[0]);
    }
    if (d->rk) {
        rd_kafka_flush(d->rk, 0); /* abandoned: reports of what is in flight are dropped */
        rd_kafka_destroy(d->rk);
    }
    for (int i = 0; i < 2; i++)
        if (d->pipe_fds[i] >= 0)
            close(d->pipe_fds[i]);
    for (size_t i = 0; i < d->n_requests; i++) {
        SinkRequest *rq = d->requests[i];
        buf_free(&rq->events);
        buf_free(&rq->ids);
        free(rq->ev_off);
        free(rq->id_off);
        free(rq->deleted);
        free(rq->refs);
        free(rq);
    }
    free(d->requests);
    free(d->brokers);
    free(d->topic);
    free(d->dead_letter_topic);
    free(d->feeder);
    buf_free(&d->doc);
    free(d);
}

static const SinkInterface kafka_interface = {
    .name = "kafka",
    .bind = drv_bind,
    .inspect = drv_inspect,
    .prepare = drv_prepare,
    .drop = drv_drop,
    .flush = drv_flush,
    .schema = drv_schema,
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

/* The producer's configuration.  Returns it, or NULL with err filled. */
static rd_kafka_conf_t *producer_conf(KDriver *d, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The broker's limit (its message.max.bytes, a topic's
     * max.message.bytes) decides what is too large, not librdkafka's lower
     * default: only --bulk-max-bytes, and librdkafka's own bound, are
     * checked here. */
    size_t max = d->max_bytes + KEY_ROOM;
    char max_message[24];
    snprintf(max_message, sizeof(max_message), "%zu",
             max < PRODUCER_MIN_BYTES   ? PRODUCER_MIN_BYTES
             : max > PRODUCER_MAX_BYTES ? PRODUCER_MAX_BYTES
                                        : max);
    const char *settings[][2] = {
        {"bootstrap.servers", d->brokers},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
        {"message.max.bytes", max_message},
        {"message.timeout.ms", "30000"},
        {"allow.auto.create.topics", "false"},
        {"client.id", "txidsync"},
    };
    char why[512];
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], why, sizeof(why)) !=
            RD_KAFKA_CONF_OK) {
            err_printf(err, errlen, "kafka: %s", why);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, d);
    return conf;
}

Sink *sink_kafka_new(const SinkKafkaConfig *cfg, Loop *loop, char *err, size_t errlen)
{
    KDriver *d = calloc(1, sizeof(*d));
    if (!d) {
        err_printf(err, errlen, "out of memory");
        return NULL;
    }
    d->pipe_fds[0] = d->pipe_fds[1] = -1;
    d->loop = loop;
    d->partitions = cfg->partitions > 0 ? cfg->partitions : 1;
    d->replicas = cfg->replicas > 0 ? cfg->replicas : 1;
    d->max_in_flight = cfg->max_in_flight > 0 ? cfg->max_in_flight : 1;
    d->max_bytes = cfg->max_bytes > 0 ? cfg->max_bytes : EVENT_MAX_BYTES;
    buf_init(&d->doc, EVENT_MAX_BYTES);
    loop_timer_init(&d->timer, on_timer, d);
    d->brokers = strdup(cfg->brokers ? cfg->brokers : "");
    d->topic = strdup(cfg->topic ? cfg->topic : "");
    d->dead_letter_topic = cfg->dead_letter_topic ? strdup(cfg->dead_letter_topic) : NULL;
    char why[512];
    rd_kafka_conf_t *conf = NULL;
    if (!d->brokers || !d->topic || (cfg->dead_letter_topic && !d->dead_letter_topic)) {
        err_printf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(d->describe, sizeof(d->describe), "kafka %s, topic %s", d->brokers, d->topic);
    if (!(conf = producer_conf(d, err, errlen)))
        goto fail;
    d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!d->rk) {
        rd_kafka_conf_destroy(conf);
        err_printf(err, errlen, "kafka: %s", why);
        goto fail;
    }
    if (pipe2(d->pipe_fds, O_NONBLOCK | O_CLOEXEC) < 0 ||
        loop_watch(loop, d->pipe_fds[0], LOOP_READ, on_wakeup, d) < 0) {
        err_printf(err, errlen, "cannot watch kafka's events");
        goto fail;
    }
    rd_kafka_queue_t *main_q = rd_kafka_queue_get_main(d->rk);
    rd_kafka_queue_io_event_enable(main_q, d->pipe_fds[1], "1", 1);
    rd_kafka_queue_destroy(main_q);
    return sink_new(&kafka_interface, d);
fail:
    drv_free(d);
    return NULL;
}
