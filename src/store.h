/*
 * store: where a table's cursor is persisted between runs, behind a small
 * interface with one driver per place: a document in a state index of the
 * sink (store_es.h: the cursor lives next to the data it describes) or a
 * local file written atomically (store_file.h).
 *
 * A stored cursor that cannot be read back is an error the caller must
 * stop on, never a silent start from zero; "nothing stored yet" is not an
 * error.  When to save (only after the sink acknowledged every batch the
 * cursor covers) is the engine's business.
 */
#ifndef TXIDSYNC_STORE_H
#define TXIDSYNC_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "cursor.h"

/* What a load or save came to. */
typedef enum StoreResult {
    STORE_OK = 0,
    STORE_RETRY = 1, /* the place is unreachable or busy: try again later */
    STORE_FAIL = -1, /* corrupt, unreadable or refused: stop */
} StoreResult;

typedef struct Store Store;

/* What a driver implements.  A driver's state struct starts with a Store
 * (whose iface points at its StoreInterface), and the driver's functions
 * get that Store back.  load and save work on the cursor's serialised text
 * (cursor_to_json), which the calls below produce and check. */
typedef struct StoreInterface {
    /* Makes the place ready to take saves (creates the state index). */
    StoreResult (*prepare)(Store *s, char *err, size_t errlen);
    /* Appends the stored text to text; *found false when nothing is
     * stored yet. */
    StoreResult (*load)(Store *s, Buf *text, bool *found, char *err, size_t errlen);
    /* Persists text durably, replacing what was stored. */
    StoreResult (*save)(Store *s, const char *text, char *err, size_t errlen);
    /* Removes what is stored (txidsync reset); *existed tells whether
     * there was anything. */
    StoreResult (*clear)(Store *s, bool *existed, char *err, size_t errlen);
    /* Where the cursor is kept, for messages ("file /x", "index i, document d"). */
    const char *(*describe)(const Store *s);
    /* Whether the last failure got an answer from the place (a busy sink)
     * rather than none at all (a wrong address): only the first is worth
     * waiting for at start. */
    bool (*answered)(const Store *s);
    void (*free)(Store *s);
} StoreInterface;

/* The first member of every driver's state. */
struct Store {
    const StoreInterface *iface;
};

/* Frees the store (its driver's state); NULL is ignored. */
void store_free(Store *s);

/* Says where the cursor is kept, for messages; borrowed. */
const char *store_describe(const Store *s);

/* See StoreInterface.answered. */
bool store_answered(const Store *s);

StoreResult store_prepare(Store *s, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Removes the stored cursor; *existed tells whether there was one. */
StoreResult store_clear(Store *s, bool *existed, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Reads the stored cursor into *c (initialised by the call).  *found is
 * false when nothing was stored yet (then *c is the initial cursor).  A
 * stored text that does not parse is STORE_FAIL naming the place, and so
 * is a cursor saved for another owner than owner (the table, "database/
 * schema.table"; NULL: not checked).  A cursor saved without an owner
 * (by an older release) is taken as this owner's. */
StoreResult store_load(Store *s, Cursor *c, const char *owner, bool *found, char *err,
                       size_t errlen) __attribute__((warn_unused_result));

/* Persists c durably, with its owner (NULL: none), replacing what was
 * stored. */
StoreResult store_save(Store *s, const Cursor *c, const char *owner, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
