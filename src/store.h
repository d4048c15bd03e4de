/*
 * store: where the cursor is persisted between runs.
 *
 * Two places: a document in a state index of the sink (the default: the
 * cursor lives next to the data it describes), or a local file written
 * atomically (temporary file, fsync, rename, fsync of the directory).
 * A stored cursor that cannot be read back is an error the caller must
 * stop on, never a silent start from zero; "nothing stored yet" is not an
 * error.  When to save (only after the batch it follows is acknowledged)
 * is the caller's business.
 */
#ifndef TXIDSYNC_STORE_H
#define TXIDSYNC_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "cursor.h"
#include "es.h"

typedef struct Store Store;

/* What a load or save came to. */
typedef enum StoreResult {
    STORE_OK = 0,
    STORE_RETRY = 1, /* the sink is unreachable or busy: try again later */
    STORE_FAIL = -1, /* corrupt or unreadable: stop */
} StoreResult;

/* A store in document id of state_index, through es (borrowed: it must
 * outlive the store).  Returns NULL when out of memory. */
Store *store_new_es(EsClient *es, const char *state_index, const char *id);

/* A store in the file at path.  Returns NULL when out of memory. */
Store *store_new_file(const char *path);

void store_free(Store *s);

/* Says where the cursor is kept, for messages ("file /x", "index i/id"); borrowed. */
const char *store_describe(const Store *s);

/* Reads the stored cursor into *c (initialised by the call).  *found is
 * false when nothing was stored yet (then *c is the initial cursor). */
StoreResult store_load(Store *s, Cursor *c, bool *found, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Persists c durably, replacing what was stored. */
StoreResult store_save(Store *s, const Cursor *c, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
