/*
 * store_es: the cursor as document id of a state index of an
 * Elasticsearch/OpenSearch cluster, written without versioning (the
 * engine only ever saves a cursor that is at least as far as the stored
 * one).  The index stores its documents without indexing them.
 */
#ifndef TXIDSYNC_STORE_ES_H
#define TXIDSYNC_STORE_ES_H

#include <stddef.h>

#include "es.h"
#include "store.h"

/* A store in document id of state_index at url (credentials allowed) with
 * auth (NULL: none), with a client of its own; the index is created with replicas replicas.
 * Strings are copied.  Returns NULL with err filled (a malformed URL, out
 * of memory). */
Store *store_es_new(const char *url, const EsAuth *auth, const char *state_index, const char *id,
                    int replicas, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
