/*
 * check_repair: the repair of the consistency checker (--repair).
 *
 * The check records every difference it finds here, as a key to send
 * again (missing, stale, content) or a document to remove (extra).  The
 * repair goes through the syncer, the way a refresh does: each key with a
 * row in the side table, live or a tombstone, gets a new version above
 * both its own and the version the target holds (pg_bump_keys), so the
 * running syncer sends the row again, or its delete, and the target's
 * external versions take it.  A document whose key Postgres has never
 * had a row for is deleted from the index directly; a stream cannot take
 * one back, so it is only counted.
 */
#ifndef TXIDSYNC_CHECK_REPAIR_H
#define TXIDSYNC_CHECK_REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "es.h"
#include "pg.h"

typedef struct RepairKey {
    char *key;         /* the key's canonical text */
    char *id;          /* the document's _id, for a removal; NULL otherwise */
    uint64_t at_least; /* the version the target holds, which the new one must exceed */
    bool remove;       /* the document should not exist */
} RepairKey;

typedef struct Repair {
    RepairKey *keys;
    size_t n, cap;
} Repair;

/* What a repair did. */
typedef struct RepairSummary {
    uint64_t resent;   /* keys given a new version: their rows go again */
    uint64_t deletes;  /* of them, tombstones: their deletes go again */
    uint64_t deleted;  /* documents deleted from the index (no row ever) */
    uint64_t unknown;  /* keys of a stream with no row ever: left as they are */
    uint64_t vanished; /* keys to send again that no longer have a row */
} RepairSummary;

void repair_init(Repair *r);
void repair_free(Repair *r);

/* Records a key to send again (remove false) or a document to remove
 * (id: its _id).  Returns 0, or -1 out of memory. */
int repair_add(Repair *r, const char *key, const char *id, uint64_t at_least, bool remove)
    __attribute__((warn_unused_result));

/*
 * Applies what was recorded: new versions in chunks of 1000 keys, one
 * transaction each, then the deletions from index (es NULL: a stream, no
 * deletion).  Fills *sum.  Returns 0, or -1 with err filled (what was
 * done stays done; running it again is harmless).
 */
int repair_apply(Repair *r, PgConn *pg, const PgTable *t, EsClient *es, const char *index,
                 RepairSummary *sum, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
