/*
 * check_repair: new versions for the keys a check found wrong, deletions
 * of the documents Postgres never had (see check_repair.h).
 */
#include "check_repair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPAIR_CHUNK    1000
#define REPAIR_ATTEMPTS 3 /* a chunk that fails (a deadlock, a lock wait) is tried again */

void repair_init(Repair *r)
{
    memset(r, 0, sizeof(*r));
}

void repair_free(Repair *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->keys[i].key);
        free(r->keys[i].id);
    }
    free(r->keys);
    repair_init(r);
}

int repair_add(Repair *r, const char *key, const char *id, uint64_t at_least, bool remove)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        RepairKey *grown = realloc(r->keys, cap * sizeof(*grown));
        if (!grown)
            return -1;
        r->keys = grown;
        r->cap = cap;
    }
    RepairKey *k = &r->keys[r->n];
    k->key = strdup(key);
    k->id = id ? strdup(id) : NULL;
    k->at_least = at_least;
    k->remove = remove;
    if (!k->key || (id && !k->id)) {
        free(k->key);
        free(k->id);
        return -1;
    }
    r->n++;
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(((const RepairKey *)a)->key, ((const RepairKey *)b)->key);
}

/* Sorts the keys and merges those recorded twice (a document set aside
 * was first counted missing): the highest version to exceed, and a
 * removal only when every record says so. */
static void merge_twice(Repair *r)
{
    if (r->n == 0)
        return;
    qsort(r->keys, r->n, sizeof(*r->keys), key_cmp);
    size_t w = 0;
    for (size_t i = 1; i < r->n; i++) {
        RepairKey *last = &r->keys[w], *k = &r->keys[i];
        if (strcmp(last->key, k->key) != 0) {
            r->keys[++w] = *k;
            continue;
        }
        if (k->at_least > last->at_least)
            last->at_least = k->at_least;
        last->remove = last->remove && k->remove;
        if (!last->id) {
            last->id = k->id;
            k->id = NULL;
        }
        free(k->key);
        free(k->id);
    }
    r->n = w + 1;
}

/* One chunk on its way: its keys, and which of them got a new version. */
typedef struct Chunk {
    RepairKey *keys;
    size_t n;
    bool *bumped;
    RepairSummary *sum;
} Chunk;

/* pg_bump_keys's callback: marks the key bumped. */
static int on_bumped(void *ctx, const PgRow *row)
{
    Chunk *c = ctx;
    RepairKey probe = {.key = (char *)row->key};
    RepairKey *k = bsearch(&probe, c->keys, c->n, sizeof(*c->keys), key_cmp);
    if (k) {
        c->bumped[k - c->keys] = true;
        c->sum->resent++;
        c->sum->deletes += row->deleted;
    }
    return 0;
}

/* Gives the chunk's keys new versions, trying again a few times. */
static int bump_chunk(Chunk *c, PgConn *pg, const PgTable *t, char *err, size_t errlen)
{
    const char **keys = malloc(c->n * sizeof(*keys));
    uint64_t *floors = malloc(c->n * sizeof(*floors));
    int rc = PG_ERROR;
    if (!keys || !floors) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < c->n; i++) {
        keys[i] = c->keys[i].key;
        floors[i] = c->keys[i].at_least;
    }
    RepairSummary before = *c->sum;
    for (int attempt = 1; attempt <= REPAIR_ATTEMPTS; attempt++) {
        memset(c->bumped, 0, c->n * sizeof(*c->bumped));
        *c->sum = before;
        rc = pg_bump_keys(pg, t, keys, floors, c->n, on_bumped, c, err, errlen);
        if (rc == PG_OK || rc == PG_LOST)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
    }
done:
    free(keys);
    free(floors);
    return rc == PG_OK ? 0 : -1;
}

/* What happens to a key that has no row in the side table. */
static int without_row(const RepairKey *k, EsClient *es, const char *index, RepairSummary *sum,
                       char *err, size_t errlen)
{
    if (!k->remove) {
        sum->vanished++; /* deleted since the check: the syncer sends that */
        return 0;
    }
    if (!es) {
        sum->unknown++;
        return 0;
    }
    bool existed = false;
    char why[512];
    if (es_delete_doc(es, index, k->id ? k->id : k->key, &existed, why, sizeof(why)) != ES_OK) {
        snprintf(err, errlen, "es: %s", why);
        return -1;
    }
    sum->deleted += existed;
    return 0;
}

int repair_apply(Repair *r, PgConn *pg, const PgTable *t, EsClient *es, const char *index,
                 RepairSummary *sum, char *err, size_t errlen)
{
    memset(sum, 0, sizeof(*sum));
    merge_twice(r);
    bool *bumped = calloc(REPAIR_CHUNK, sizeof(*bumped));
    if (!bumped) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < r->n; at += REPAIR_CHUNK) {
        Chunk c = {.keys = r->keys + at,
                   .n = r->n - at < REPAIR_CHUNK ? r->n - at : REPAIR_CHUNK,
                   .bumped = bumped,
                   .sum = sum};
        rc = bump_chunk(&c, pg, t, err, errlen);
        for (size_t i = 0; rc == 0 && i < c.n; i++)
            if (!bumped[i])
                rc = without_row(&c.keys[i], es, index, sum, err, errlen);
    }
    free(bumped);
    return rc;
}
