/*
 * sink: the calls of the sink interface (see sink.h), each handed to the
 * driver behind it.
 */
#include "sink.h"

#include "doc.h"
#include "json.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct Sink {
    const SinkInterface *iface;
    void *drv;
};

Sink *sink_new(const SinkInterface *iface, void *drv)
{
    Sink *s = calloc(1, sizeof(*s));
    if (!s) {
        iface->free(drv);
        return NULL;
    }
    s->iface = iface;
    s->drv = drv;
    return s;
}

void sink_free(Sink *s)
{
    if (!s)
        return;
    s->iface->free(s->drv);
    free(s);
}

void sink_bind(Sink *s, SinkDoneFn on_done, void *owner)
{
    s->iface->bind(s->drv, on_done, owner);
}

SinkResult sink_inspect(Sink *s, SinkTarget *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    t->documents = -1;
    t->durable = true;
    return s->iface->inspect(s->drv, t, err, errlen);
}

SinkResult sink_prepare(Sink *s, const char *owner, char *err, size_t errlen)
{
    return s->iface->prepare(s->drv, owner, err, errlen);
}

SinkResult sink_drop(Sink *s, bool *existed, char *err, size_t errlen)
{
    return s->iface->drop(s->drv, existed, err, errlen);
}

SinkResult sink_schema(Sink *s, const SinkSchema *schema, char *err, size_t errlen)
{
    return s->iface->schema ? s->iface->schema(s->drv, schema, err, errlen) : SINK_OK;
}

SinkResult sink_flush(Sink *s, char *err, size_t errlen)
{
    return s->iface->flush(s->drv, err, errlen);
}

int sink_check_columns(Sink *s, const char *const *columns, size_t n, char *err, size_t errlen)
{
    if (!s->iface->check_columns)
        return doc_check_columns(columns, n, err, errlen);
    return s->iface->check_columns(s->drv, columns, n, err, errlen);
}

int sink_event(Buf *out, const SinkChange *ch, const char *owner)
{
    if (ch->deleted)
        return doc_build(out, "{}", 2, ch->key, ch->txid, ch->version, owner, "delete");
    return doc_build(out, ch->row, ch->row_len, ch->key, ch->txid, ch->version, owner, "upsert");
}

int sink_dead_letter_record(Buf *out, Buf *doc, const char *where_name, const char *where,
                            const char *owner, const SinkChange *ch, const char *reason)
{
    if (ch->deleted ||
        doc_build(doc, ch->row, ch->row_len, ch->key, ch->txid, ch->version, owner, NULL) < 0)
        buf_reset(doc);
    size_t kept = doc->len;
    if (kept > SINK_DEAD_LETTER_DOC_MAX) {
        kept = SINK_DEAD_LETTER_DOC_MAX;
        while (kept > 0 && ((unsigned char)doc->data[kept] & 0xC0) == 0x80)
            kept--; /* cut between two UTF-8 characters */
    }
    buf_reset(out);
    int bad = buf_puts(out, "{") | json_append_string(out, where_name, strlen(where_name)) |
              buf_puts(out, ":") | json_append_string(out, where, strlen(where)) |
              buf_puts(out, ",\"table\":") | json_append_string(out, owner, strlen(owner)) |
              buf_puts(out, ",\"key\":") | json_append_string(out, ch->key, strlen(ch->key)) |
              buf_printf(out, ",\"txid\":%" PRIu64 ",\"version\":%" PRIu64 ",\"error\":", ch->txid,
                         ch->version) |
              json_append_string(out, reason, strlen(reason)) | buf_puts(out, ",\"document\":") |
              json_append_string(out, kept ? doc->data : "", kept) |
              buf_printf(out, ",\"document_bytes\":%zu,\"document_truncated\":%s}", doc->len,
                         kept < doc->len ? "true" : "false");
    return bad ? -1 : 0;
}

void *sink_request_track(SinkRequest ***list, size_t *n, size_t size)
{
    SinkRequest **grown = realloc(*list, (*n + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    *list = grown;
    SinkRequest *rq = calloc(1, size);
    if (rq)
        grown[(*n)++] = rq;
    return rq;
}

SinkRequest *sink_request_new(Sink *s)
{
    return s->iface->request_new(s->drv);
}

void sink_request_reset(Sink *s, SinkRequest *rq)
{
    s->iface->request_reset(s->drv, rq);
}

int sink_add(Sink *s, SinkRequest *rq, const SinkChange *ch, char *err, size_t errlen)
{
    return s->iface->add(s->drv, rq, ch, err, errlen);
}

bool sink_has_room(Sink *s)
{
    return s->iface->has_room(s->drv);
}

size_t sink_in_flight(Sink *s)
{
    return s->iface->in_flight(s->drv);
}

int sink_send(Sink *s, SinkRequest *rq, SinkItem *items, void *tag, char *err, size_t errlen)
{
    return s->iface->send(s->drv, rq, items, tag, err, errlen);
}

SinkResult sink_dead_letter(Sink *s, const SinkChange *ch, const char *reason, char *err,
                            size_t errlen)
{
    return s->iface->dead_letter(s->drv, ch, reason, err, errlen);
}

const char *sink_describe(Sink *s)
{
    return s->iface->describe(s->drv);
}
