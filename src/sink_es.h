/*
 * sink_es: the Elasticsearch/OpenSearch driver of the sink interface.
 *
 * Each change becomes one action of a _bulk request with version_type
 * external and the row's version: an index action whose _id is the key's
 * id (keys.h) and whose source is the document (doc.h), or a delete.  A
 * version conflict means the index holds this or a newer version: already
 * applied.  429, 5xx and network errors are retried; other item errors
 * (mapping, parse) are rejected for good.  A bulk body holds at most
 * max_bytes; a request refused as a whole with 400 or 413 was refused for
 * what it holds (SINK_SPLIT), any other 4xx for the target's own reasons
 * (an index closed, a role without the right): SINK_FAIL.  Requests go through a pipe of
 * --bulk-concurrency connections in the event loop.  Dead letters are
 * documents of their own index.
 */
#ifndef TXIDSYNC_SINK_ES_H
#define TXIDSYNC_SINK_ES_H

#include <stdbool.h>
#include <stddef.h>

#include "es.h"
#include "sink.h"

typedef struct SinkEsConfig {
    const char *url;    /* base URL, credentials allowed */
    const EsAuth *auth; /* credentials and TLS options; NULL: none */
    const char *index;  /* the table's index */
    int replicas;       /* number_of_replicas of the indices it creates */
    size_t max_in_flight;
    size_t max_bytes;              /* the most bytes of a bulk body (--bulk-max-bytes) */
    const char *dead_letter_index; /* NULL: no dead letters (--on-reject stop) */
    const char *index_body;        /* NULL: txidsync's own; else the JSON that creates the
                                    * index ({"settings", "mappings", "aliases"}) */
} SinkEsConfig;

/* Creates the driver, its client and its pipe in loop (borrowed; it must
 * outlive the sink).  Strings of cfg are copied.  Returns the sink, or
 * NULL with err filled, naming the option (a malformed URL or index body,
 * out of memory). */
Sink *sink_es_new(const SinkEsConfig *cfg, Loop *loop, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
