/*
 * replay: what a consumer of a change stream ends with.  Reads change
 * events (one JSON object a line, each with the metadata member of doc.h:
 * key, txid, version, op) and keeps, per key, the event of the highest
 * version: the rule that makes any replay, duplicate or reordering of a
 * stream harmless.  Used by the checker on NDJSON files.
 */
#ifndef TXIDSYNC_REPLAY_H
#define TXIDSYNC_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The last word on one key. */
typedef struct ReplayEntry {
    char *key; /* the key's canonical text (keys.h) */
    uint64_t txid;
    uint64_t version;
    bool deleted;     /* the highest version is a delete: the key is absent */
    uint64_t content; /* with Replay.content: json_canon_hash of its document without
                       * the metadata member */
} ReplayEntry;

typedef struct Replay {
    ReplayEntry *slots; /* open addressing, key NULL for a free slot */
    size_t cap, n;
    uint64_t events;  /* change events taken */
    uint64_t schemas; /* schema events passed over */
    uint64_t ignored; /* events of a version lower than or equal to one seen */
    bool content;     /* set before taking events: hash each one's document */
    Buf canon;        /* the canonical document being hashed */
} Replay;

void replay_init(Replay *r);
void replay_free(Replay *r);

/* Takes one event of len bytes (no newline); a schema event (op
 * "schema") is counted and passed over.  Returns 0, or -1 with err filled
 * when it is not an event (not JSON, no txidsync member with a string
 * key, numeric txid and version, op "upsert" or "delete"). */
int replay_event(Replay *r, const char *line, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Takes every event of the stream written at path by the NDJSON sink:
 * path.1, path.2, ... then path, in that order.  A last line without its
 * newline (a write cut short by a crash, never acknowledged) is skipped;
 * any other line that is not an event is an error naming file and line.
 * Returns 0, or -1 with err filled (also when no file exists).
 */
int replay_ndjson(Replay *r, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The entries (every key seen, deleted ones included) sorted by the bytes
 * of their keys into *out (malloc'd array of pointers into r, freed by the
 * caller; r must outlive it).  Returns 0, or -1 out of memory. */
int replay_sorted(const Replay *r, const ReplayEntry ***out) __attribute__((warn_unused_result));

#endif
