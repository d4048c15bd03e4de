/*
 * consistency-check: compares a tracked table in Postgres with its index,
 * key by key, on (key, txid, version).  Exit status 0 when they are equal,
 * 1 when they differ, 2 on an error (bad flags, a server that cannot be
 * reached, an untracked table, a missing index).
 *
 * Both sides are read in the same order and merged like a sorted merge
 * join, so memory stays flat however large the table is: Postgres streams
 * the live keys of the side table ordered by their text form under
 * COLLATE "C" (pg_live_scan), and the index is read through one scroll
 * sorted by the keyword txidsync.key (es_scroll_*), which sorts by the
 * bytes of its UTF-8 value, the same order.  Each side is checked to come
 * strictly ascending; a violation is an error, not a difference.
 *
 * A difference is one of:
 *   missing  a live row in Postgres with no document in the index
 *   extra    a document in the index that is not a live row (its key does
 *            not exist, or it is a tombstone: deleted rows must be absent)
 *   stale    both exist but txid or version differ (both are shown)
 *   content  (with --content) txid and version agree, but the document's
 *            body is not the one Postgres builds for the row now: both
 *            are compared in canonical JSON (json_canon.h), without the
 *            txidsync member, and the first differing field is named.
 *            Against a stream, the hash of the last event's document is
 *            kept per key (the field is not named).
 *
 * Documents whose _source has no string txidsync.key, or one whose id
 * (keys_id: the key itself, or its hash when the target could not take
 * it as an id) is not their _id, cannot take part in the merge (the index sorts them by that
 * field, not by _id).  They are set aside, at most ASIDE_MAX of them (more
 * is an error: the index is then not one txidsync writes), and resolved
 * after the merge with one lookup of their _ids in Postgres: a document
 * whose _id is a live key is reported stale (the merge had counted that
 * key missing; it is counted once, as stale, with a note saying what is
 * wrong with txidsync.key), any other is extra.  --index must name one
 * index, not an alias over several, since the merge relies on _id being
 * unique.
 *
 * Postgres is read in one statement (one snapshot) and the index through
 * one scroll (one point in time); the two are not taken at the same
 * instant, so the check is meant for a table whose writes have paused
 * and a syncer that has caught up.
 *
 * Output: the counts, then up to --max-report differences (in key order,
 * then the set-aside documents), one per line on stdout, then a result
 * line.  Errors are one line on stderr naming hosts and ports, never the
 * connection string or a password.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "check_repair.h"
#include "clock.h"
#include "doc.h"
#include "es.h"
#include "es_settings.h"
#include "json_canon.h"
#include "keys.h"
#include "log.h"
#include "pg.h"
#include "replay.h"
#include "replay_kafka.h"
#include "settings.h"
#include "target_name.h"
#include "version.h"

enum { CHECK_EQUAL = 0, CHECK_DIFFERENT = 1, CHECK_ERROR = 2 };

/* Most documents set aside (without a usable txidsync.key) before the
 * check gives up: each costs memory until the end of the merge. */
#define ASIDE_MAX 100000

/* Rows between two progress lines on stderr (log level info). */
#define PROGRESS_EVERY 1000000

/* The _source fields read from each document, and their positions. */
static const char *const DOC_FIELDS[] = {"txidsync.key", "txidsync.txid"};
enum { FIELD_KEY = 0, FIELD_TXID = 1, N_FIELDS = 2 };

typedef enum DiffKind { DIFF_MISSING, DIFF_EXTRA, DIFF_STALE, DIFF_CONTENT } DiffKind;

/* What one side knows of a key; present false when the side lacks it. */
typedef struct KeyState {
    bool present;
    bool has_txid; /* the index side may lack a readable txidsync.txid */
    uint64_t txid;
    bool has_version;
    uint64_t version;
} KeyState;

/* One reported difference; key and note are owned. */
typedef struct Diff {
    DiffKind kind;
    char *key;
    KeyState pg;
    KeyState es;
    char *note; /* NULL, or what is wrong with the document's txidsync field */
} Diff;

/* A document set aside from the merge; id and key are owned. */
typedef struct Aside {
    char *id;
    char *key; /* its txidsync.key when that is a string, else NULL */
    KeyState es;
    KeyState pg; /* filled by the lookup when id is a live key */
} Aside;

/* The whole check: settings, connections, the merge's position on the
 * index side, the counts and what is kept for the report. */
typedef struct Check {
    EsClient *es;
    const char *index;
    size_t page_size;
    EsScroll *scroll;
    bool es_started;
    const EsHit *head; /* the index's next document in merge order; NULL at the end */
    Buf prev_es;       /* the last key merged from each side, for the order checks */
    Buf prev_pg;
    bool have_prev_es, have_prev_pg;

    uint64_t pg_rows, es_docs, equal, missing, extra, stale, content;

    /* With --content: each document's body is compared too, canonical
     * (json_canon.h); pg_canon holds Postgres's document of the key. */
    bool check_content;
    Buf pg_canon;
    uint64_t head_content; /* with a stream: the hash of the current entry's document */

    Repair *repair; /* with --repair: every difference, for repair_apply */
    bool quiet;     /* no report (a check again after a repair) */

    Diff *diffs;
    size_t n_diffs, max_diffs;
    Aside *aside;
    size_t n_aside, cap_aside;

    /* With --ndjson-file: the stream's last word per key, in key order,
     * read through one EsHit as if it came from an index. */
    const ReplayEntry **entries;
    size_t n_entries, next_entry;
    EsHit hit;
    EsField hit_fields[N_FIELDS];
    char hit_id[KEYS_ID_SIZE], hit_txid[24];

    char err[1024];
} Check;

/* Parses a canonical unsigned decimal into *out.  Returns whether s was
 * one (digits only, no sign, no overflow). */
static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Reads what a document says of its key into a KeyState: _version and the
 * number txidsync.txid. */
static KeyState hit_state(const EsHit *h)
{
    KeyState s = {.present = true, .has_version = h->has_version, .version = h->version};
    const EsField *txid = &h->fields[FIELD_TXID];
    s.has_txid = txid->text && !txid->is_string && parse_u64(txid->text, &s.txid);
    return s;
}

/* Tells whether the index's state of a key is exactly Postgres's. */
static bool same_state(const KeyState *pg, const KeyState *es)
{
    return es->has_txid && es->has_version && es->txid == pg->txid && es->version == pg->version;
}

/* Duplicates s, or returns NULL for NULL; exits on out of memory, which
 * the check has no way to recover from. */
static char *dup_or_die(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "consistency-check: out of memory\n");
        exit(CHECK_ERROR);
    }
    return d;
}

/* Records a difference for the report when there is room left (the
 * counts are kept by the callers).  Copies key and note. */
static void add_diff(Check *k, DiffKind kind, const char *key, const KeyState *pg,
                     const KeyState *es, const char *note)
{
    if (k->n_diffs >= k->max_diffs)
        return;
    Diff *d = &k->diffs[k->n_diffs++];
    d->kind = kind;
    d->key = dup_or_die(key);
    d->pg = *pg;
    d->es = *es;
    d->note = dup_or_die(note);
}

/* With --repair, records a key to send again, or (remove) a document to
 * take away, whose _id is id.  Out of memory ends the check. */
static void to_repair(Check *k, const char *key, const char *id, const KeyState *es, bool remove)
{
    if (!k->repair)
        return;
    if (repair_add(k->repair, key, id, es->has_version ? es->version : 0, remove) != 0) {
        fprintf(stderr, "consistency-check: out of memory\n");
        exit(CHECK_ERROR);
    }
}

/* Describes into out what is wrong with the txidsync.key of a document set
 * aside (its key is NULL when missing or not a string). */
static void aside_note(const Aside *a, char *out, size_t outlen)
{
    if (!a->key)
        snprintf(out, outlen, "its txidsync.key is missing or not a string");
    else
        snprintf(out, outlen, "its txidsync.key is \"%.200s\", which is not the key of its _id",
                 a->key);
}

/* Keeps a document that cannot be merged for the end of the check.
 * Returns 0, or -1 with k->err filled when ASIDE_MAX is reached. */
static int set_aside(Check *k, const EsHit *h)
{
    if (k->n_aside == ASIDE_MAX) {
        snprintf(k->err, sizeof(k->err),
                 "more than %d documents of index %s have no txidsync.key equal to their _id; "
                 "is the index written by txidsync?",
                 ASIDE_MAX, k->index);
        return -1;
    }
    if (k->n_aside == k->cap_aside) {
        size_t cap = k->cap_aside ? k->cap_aside * 2 : 64;
        Aside *grown = realloc(k->aside, cap * sizeof(*grown));
        if (!grown) {
            snprintf(k->err, sizeof(k->err), "out of memory setting documents aside");
            return -1;
        }
        k->aside = grown;
        k->cap_aside = cap;
    }
    Aside *a = &k->aside[k->n_aside++];
    const EsField *key = &h->fields[FIELD_KEY];
    a->id = dup_or_die(h->id);
    a->key = dup_or_die(key->text && key->is_string ? key->text : NULL);
    a->es = hit_state(h);
    a->pg = (KeyState){0};
    return 0;
}

/* Remembers key as the last one merged from a side, for the order check.
 * Returns 0, or -1 with k->err filled when out of memory. */
static int remember(Check *k, Buf *prev, bool *have, const char *key)
{
    buf_reset(prev);
    if (buf_puts(prev, key) != 0) {
        snprintf(k->err, sizeof(k->err), "out of memory (a key of %zu bytes)", strlen(key));
        return -1;
    }
    *have = true;
    return 0;
}

/* es_advance over the replayed stream: the next key whose last event is
 * not a delete. */
static int stream_advance(Check *k)
{
    k->es_started = true;
    k->head = NULL;
    while (k->next_entry < k->n_entries && k->entries[k->next_entry]->deleted)
        k->next_entry++;
    if (k->next_entry == k->n_entries)
        return 0;
    const ReplayEntry *e = k->entries[k->next_entry++];
    k->head_content = e->content;
    snprintf(k->hit_txid, sizeof(k->hit_txid), "%" PRIu64, e->txid);
    k->hit_fields[FIELD_KEY] = (EsField){.text = e->key, .is_string = true};
    k->hit_fields[FIELD_TXID] = (EsField){.text = k->hit_txid, .is_string = false};
    k->hit = (EsHit){.id = keys_id(e->key, k->hit_id),
                     .version = e->version,
                     .has_version = true,
                     .fields = k->hit_fields};
    k->head = &k->hit;
    k->es_docs++;
    return 0; /* sorted by replay_sorted, keys unique */
}

/* Moves k->head to the next document of the index that takes part in the
 * merge (opening the scroll on first use), setting aside those that
 * cannot, and checks the index's order.  k->head is NULL at the end.
 * Returns 0, or -1 with k->err filled. */
static int es_advance(Check *k)
{
    char err[900];
    if (k->entries)
        return stream_advance(k);
    if (!k->es_started) {
        k->es_started = true;
        k->scroll = es_scroll_open(k->es, k->index, DOC_FIELDS[FIELD_KEY], DOC_FIELDS, N_FIELDS,
                                   k->page_size, err, sizeof(err));
        if (!k->scroll) {
            snprintf(k->err, sizeof(k->err), "es: %s", err);
            return -1;
        }
        if (k->check_content)
            es_scroll_canon_source(k->scroll, DOC_META_FIELD);
    }
    for (;;) {
        const EsHit *h = NULL;
        if (es_scroll_next(k->scroll, &h, err, sizeof(err)) != ES_OK) {
            snprintf(k->err, sizeof(k->err), "es: %s", err);
            return -1;
        }
        k->head = h;
        if (!h)
            return 0;
        k->es_docs++;
        const EsField *key = &h->fields[FIELD_KEY];
        char id[KEYS_ID_SIZE];
        if (!key->text || !key->is_string || strcmp(keys_id(key->text, id), h->id) != 0) {
            if (set_aside(k, h) != 0)
                return -1;
            continue;
        }
        if (k->have_prev_es && strcmp(key->text, buf_str(&k->prev_es)) <= 0) {
            snprintf(k->err, sizeof(k->err),
                     "index %s returned key %.200s after %.200s, not in ascending byte order "
                     "(is --index an alias of several indices?)",
                     k->index, key->text, buf_str(&k->prev_es));
            return -1;
        }
        return remember(k, &k->prev_es, &k->have_prev_es, key->text);
    }
}

/* The key of the index's current document (its txidsync.key, of which
 * its _id is the id). */
static const char *head_key(const Check *k)
{
    return k->head->fields[FIELD_KEY].text;
}

/* Counts and records the index's current document as extra, then moves
 * on.  Returns 0, or -1 with k->err filled. */
static int head_is_extra(Check *k)
{
    KeyState none = {0};
    KeyState es = hit_state(k->head);
    k->extra++;
    add_diff(k, DIFF_EXTRA, head_key(k), &none, &es, NULL);
    to_repair(k, head_key(k), k->head->id, &es, true);
    return es_advance(k);
}

/* With --content: whether the document of the index (or the stream) for
 * row's key has Postgres's content, canonical.  Returns 1 (or without
 * --content), 0 with note saying where they differ, -1 with k->err filled
 * when Postgres's document is not JSON. */
static int same_content(Check *k, const PgRow *row, char *note, size_t len)
{
    char err[256];
    if (!k->check_content)
        return 1;
    buf_reset(&k->pg_canon);
    if (json_canon_text(row->doc ? row->doc : "null", NULL, &k->pg_canon, err, sizeof(err)) != 0) {
        snprintf(k->err, sizeof(k->err), "the document of key %.200s in postgres: %s", row->key,
                 err);
        return -1;
    }
    const char *mine = buf_str(&k->pg_canon);
    if (k->entries) {
        if (json_canon_hash(mine, k->pg_canon.len) == k->head_content)
            return 1;
        snprintf(note, len, "the last event's document differs");
        return 0;
    }
    const char *theirs = k->head->source ? k->head->source : "null";
    if (strcmp(mine, theirs) == 0)
        return 1;
    char field[200];
    json_canon_first_diff(mine, theirs, field, sizeof(field));
    if (field[0])
        snprintf(note, len, "first differing field: %s", field);
    else
        snprintf(note, len, "the documents differ");
    return 0;
}

/* pg_live_scan's callback, one step of the merge: the documents ordered
 * before row's key are extra, an equal key is compared, no such document
 * means missing.  Returns 0, or -1 with k->err filled to stop the scan. */
static int on_pg_row(void *ctx, const PgRow *row)
{
    Check *k = ctx;
    k->pg_rows++;
    if (k->pg_rows % PROGRESS_EVERY == 0)
        log_info("%" PRIu64 " rows and %" PRIu64 " documents compared", k->pg_rows, k->es_docs);
    if (k->have_prev_pg && strcmp(row->key, buf_str(&k->prev_pg)) <= 0) {
        snprintf(k->err, sizeof(k->err),
                 "postgres returned key %.200s after %.200s, not in ascending byte order", row->key,
                 buf_str(&k->prev_pg));
        return -1;
    }
    if (remember(k, &k->prev_pg, &k->have_prev_pg, row->key) != 0)
        return -1;
    if (!k->es_started && es_advance(k) != 0)
        return -1;
    while (k->head && strcmp(head_key(k), row->key) < 0) {
        if (head_is_extra(k) != 0)
            return -1;
    }
    KeyState pg = {.present = true,
                   .has_txid = true,
                   .txid = row->txid,
                   .has_version = true,
                   .version = row->version};
    if (k->head && strcmp(head_key(k), row->key) == 0) {
        KeyState es = hit_state(k->head);
        char note[300];
        /* With --content, a stale key's note tells whether the body
         * differs too (a document edited by hand has a version of the
         * index's). */
        int same = same_content(k, row, note, sizeof(note));
        if (same < 0)
            return -1;
        bool versions_agree = same_state(&pg, &es);
        if (versions_agree && same == 1) {
            k->equal++;
        } else if (versions_agree) {
            k->content++;
            add_diff(k, DIFF_CONTENT, row->key, &pg, &es, note);
            to_repair(k, row->key, NULL, &es, false);
        } else {
            k->stale++;
            add_diff(k, DIFF_STALE, row->key, &pg, &es, same == 0 ? note : NULL);
            to_repair(k, row->key, NULL, &es, false);
        }
        return es_advance(k);
    }
    KeyState none = {0};
    k->missing++;
    add_diff(k, DIFF_MISSING, row->key, &pg, &none, NULL);
    /* A document deleted by hand leaves the index a deleted version one
     * above the document's for a while (index.gc_deletes): the new
     * version must be above that too. */
    KeyState deleted = {.has_version = true, .version = row->version + 1};
    to_repair(k, row->key, NULL, &deleted, false);
    return 0;
}

/* Orders set-aside documents by _id, bytewise. */
static int aside_cmp(const void *a, const void *b)
{
    return strcmp(((const Aside *)a)->id, ((const Aside *)b)->id);
}

/* pg_live_lookup's callback: marks the set-aside document whose _id is
 * row's key as live, with Postgres's state. */
static int on_lookup_row(void *ctx, const PgRow *row)
{
    Check *k = ctx;
    Aside probe = {.id = (char *)row->key};
    Aside *a = bsearch(&probe, k->aside, k->n_aside, sizeof(*k->aside), aside_cmp);
    if (a) {
        a->pg = (KeyState){.present = true,
                           .has_txid = true,
                           .txid = row->txid,
                           .has_version = true,
                           .version = row->version};
    }
    return 0;
}

/* Resolves the documents set aside: looks their _ids up in Postgres, then
 * counts each as stale (a live key, which the merge counted missing) or
 * extra.  Returns 0, or -1 with k->err filled. */
static int resolve_aside(Check *k, PgConn *pg, const PgTable *table)
{
    if (k->n_aside == 0)
        return 0;
    qsort(k->aside, k->n_aside, sizeof(*k->aside), aside_cmp);
    const char **ids = malloc(k->n_aside * sizeof(*ids));
    if (!ids) {
        snprintf(k->err, sizeof(k->err), "out of memory");
        return -1;
    }
    for (size_t i = 0; i < k->n_aside; i++)
        ids[i] = k->aside[i].id;
    int rc = pg_live_lookup(pg, table, ids, k->n_aside, on_lookup_row, k, k->err, sizeof(k->err));
    free(ids);
    if (rc != PG_OK)
        return -1;
    for (size_t i = 0; i < k->n_aside; i++) {
        Aside *a = &k->aside[i];
        char note[300];
        aside_note(a, note, sizeof(note));
        if (!a->pg.present) {
            k->extra++;
            add_diff(k, DIFF_EXTRA, a->id, &a->pg, &a->es, note);
            to_repair(k, a->id, a->id, &a->es, true);
            continue;
        }
        to_repair(k, a->id, NULL, &a->es, false); /* above the version of the document */
        /* The merge found no document for this live key and counted it
         * missing; its report line, if it made the list, becomes this. */
        if (k->missing > 0)
            k->missing--;
        k->stale++;
        for (size_t j = 0; j < k->n_diffs; j++) {
            Diff *d = &k->diffs[j];
            if (d->kind == DIFF_MISSING && strcmp(d->key, a->id) == 0) {
                d->kind = DIFF_STALE;
                d->es = a->es;
                d->note = dup_or_die(note);
                break;
            }
        }
    }
    return 0;
}

/* Prints s with control characters, DEL and backslash escaped, so that
 * one difference stays one line whatever the key holds. */
static void print_text(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else if (*p == '\\')
            fputs("\\\\", out);
        else
            fputc(*p, out);
    }
}

/* Prints one side's state as "txid T version V" ("?" for what the
 * document lacks). */
static void print_state(FILE *out, const char *side, const KeyState *s)
{
    fprintf(out, "%s txid ", side);
    if (s->has_txid)
        fprintf(out, "%" PRIu64, s->txid);
    else
        fputs("?", out);
    fputs(" version ", out);
    if (s->has_version)
        fprintf(out, "%" PRIu64, s->version);
    else
        fputs("?", out);
}

/* Prints one difference as one line: kind, key, both sides. */
static void print_diff(FILE *out, const Diff *d)
{
    static const char *const names[] = {"missing", "extra", "stale", "content"};
    fprintf(out, "%-7s key ", names[d->kind]);
    print_text(out, d->key);
    fputs(": ", out);
    switch (d->kind) {
    case DIFF_MISSING:
        print_state(out, "postgres", &d->pg);
        fputs("; not in the index", out);
        break;
    case DIFF_EXTRA:
        print_state(out, "index", &d->es);
        fputs("; not a live row in postgres", out);
        break;
    case DIFF_STALE:
        print_state(out, "postgres", &d->pg);
        fputs(", ", out);
        print_state(out, "index", &d->es);
        break;
    case DIFF_CONTENT:
        print_state(out, "both", &d->pg);
        fputs("; the document's content differs", out);
        break;
    }
    if (d->note) {
        fputs(" (", out);
        print_text(out, d->note);
        fputs(")", out);
    }
    fputc('\n', out);
}

/* Prints the counts, the differences kept and the result line. */
static void print_report(const Check *k, double seconds)
{
    uint64_t differences = k->missing + k->extra + k->stale + k->content;
    printf("rows in postgres:    %" PRIu64 "\n", k->pg_rows);
    printf("documents in index:  %" PRIu64 "\n", k->es_docs);
    printf("equal:               %" PRIu64 "\n", k->equal);
    printf("missing:             %" PRIu64 "\n", k->missing);
    printf("extra:               %" PRIu64 "\n", k->extra);
    printf("stale:               %" PRIu64 "\n", k->stale);
    if (k->check_content)
        printf("content:             %" PRIu64 "\n", k->content);
    for (size_t i = 0; i < k->n_diffs; i++)
        print_diff(stdout, &k->diffs[i]);
    if (differences > k->n_diffs)
        printf("(%" PRIu64 " more differences not shown; see --max-report)\n",
               differences - k->n_diffs);
    if (differences == 0)
        printf("consistency-check: equal (%.1f s)\n", seconds);
    else
        printf("consistency-check: %" PRIu64 " differences (%.1f s)\n", differences, seconds);
}

/* Frees what the check owns (not the connections). */
static void check_free(Check *k)
{
    es_scroll_free(k->scroll);
    free(k->entries);
    buf_free(&k->prev_es);
    buf_free(&k->prev_pg);
    buf_free(&k->pg_canon);
    for (size_t i = 0; i < k->n_diffs; i++) {
        free(k->diffs[i].key);
        free(k->diffs[i].note);
    }
    free(k->diffs);
    for (size_t i = 0; i < k->n_aside; i++) {
        free(k->aside[i].id);
        free(k->aside[i].key);
    }
    free(k->aside);
}

/* Runs the check with connections made and the index known to exist.
 * Returns CHECK_EQUAL, CHECK_DIFFERENT, or CHECK_ERROR after printing why. */
static int run(Check *k, PgConn *pg, const PgTable *table)
{
    double start = clock_mono_s();
    if (pg_live_scan(pg, table, k->check_content, on_pg_row, k, k->err, sizeof(k->err)) != PG_OK)
        goto fail;
    if (!k->es_started && es_advance(k) != 0)
        goto fail;
    while (k->head) {
        if (head_is_extra(k) != 0)
            goto fail;
    }
    if (resolve_aside(k, pg, table) != 0)
        goto fail;
    if (!k->quiet)
        print_report(k, clock_mono_s() - start);
    return k->missing + k->extra + k->stale + k->content == 0 ? CHECK_EQUAL : CHECK_DIFFERENT;
fail:
    fprintf(stderr, "consistency-check: %s\n", k->err);
    return CHECK_ERROR;
}

/* Runs the check against the change events of an NDJSON stream.
 * Returns as run does. */
static int check_stream(Check *k, PgConn *pg, const PgTable *table, const char *path,
                        const char *brokers)
{
    Replay r;
    replay_init(&r);
    r.content = k->check_content;
    int rc = CHECK_ERROR;
    uint64_t tombstones = 0;
    int got = brokers ? replay_kafka(&r, brokers, path, &tombstones, k->err, sizeof(k->err))
                      : replay_ndjson(&r, path, k->err, sizeof(k->err));
    if (got < 0 || replay_sorted(&r, &k->entries) < 0) {
        fprintf(stderr, "consistency-check: %s\n", k->err[0] ? k->err : "out of memory");
        goto done;
    }
    k->n_entries = r.n;
    k->index = path;
    if (!k->quiet)
        log_info("comparing table %s with the events of %s%s: %" PRIu64
                 " events, %zu keys, %" PRIu64
                 " of them replays of a version already seen, %" PRIu64 " tombstones",
                 table->name, brokers ? "topic " : "", path, r.events, r.n, r.ignored, tombstones);
    rc = run(k, pg, table);
done:
    free(k->entries);
    k->entries = NULL;
    replay_free(&r);
    return rc;
}

/* What the table is compared with: an index, or a stream. */
typedef struct Where {
    const char *index, *ndjson, *topic, *brokers;
} Where;

/* Runs one check of table against w.  Returns as run does. */
static int check_where(Check *k, PgConn *pg, const PgTable *table, const Where *w)
{
    char err[1024];
    if (*w->ndjson || *w->topic)
        return *w->ndjson ? check_stream(k, pg, table, w->ndjson, NULL)
                          : check_stream(k, pg, table, w->topic, w->brokers);
    k->index = w->index;
    bool exists = false;
    if (es_index_exists(k->es, w->index, &exists, err, sizeof(err)) != ES_OK) {
        fprintf(stderr, "consistency-check: es: %s\n", err);
        return CHECK_ERROR;
    }
    if (!exists) {
        fprintf(stderr, "consistency-check: es: index %s does not exist at %s\n", w->index,
                es_client_url(k->es));
        return CHECK_ERROR;
    }
    if (es_refresh(k->es, w->index, err, sizeof(err)) != ES_OK) {
        fprintf(stderr, "consistency-check: es: %s\n", err);
        return CHECK_ERROR;
    }
    if (!k->quiet)
        log_info("comparing table %s with index %s at %s", table->name, w->index,
                 es_client_url(k->es));
    return run(k, pg, table);
}

/* Forgets the results of a check, to run it again. */
static void check_reset(Check *k)
{
    es_scroll_free(k->scroll);
    k->scroll = NULL;
    k->es_started = false;
    k->head = NULL;
    k->have_prev_es = k->have_prev_pg = false;
    k->next_entry = k->n_entries = 0;
    k->pg_rows = k->es_docs = k->equal = k->missing = k->extra = k->stale = k->content = 0;
    for (size_t i = 0; i < k->n_diffs; i++) {
        free(k->diffs[i].key);
        free(k->diffs[i].note);
    }
    k->n_diffs = 0;
    for (size_t i = 0; i < k->n_aside; i++) {
        free(k->aside[i].id);
        free(k->aside[i].key);
    }
    k->n_aside = 0;
    k->err[0] = '\0';
}

/* After a check that found differences (recorded in k->repair): repairs
 * them, then checks again every second until equal or wait_s passed, and
 * reports the last check.  Returns as run does. */
static int repair_and_check(Check *k, PgConn *pg, const PgTable *table, const Where *w,
                            double wait_s)
{
    char err[1024];
    RepairSummary sum;
    bool stream = *w->ndjson || *w->topic;
    if (repair_apply(k->repair, pg, table, stream ? NULL : k->es, w->index, &sum, err,
                     sizeof(err)) != 0) {
        fprintf(stderr, "consistency-check: repair: %s\n", err);
        return CHECK_ERROR;
    }
    printf("repair: %" PRIu64 " keys sent again with new versions (%" PRIu64
           " of them deletes), %" PRIu64 " documents deleted from the index\n",
           sum.resent, sum.deletes, sum.deleted);
    if (sum.unknown > 0)
        printf("repair: %" PRIu64 " keys of the stream never had a row in postgres; a stream "
               "cannot take them back\n",
               sum.unknown);
    printf("repair: checking again until equal (at most %.0f s; the syncer sends the new "
           "versions)\n",
           wait_s);
    fflush(stdout);
    double start = clock_mono_s();
    int rc;
    k->repair = NULL;
    k->quiet = true;
    do {
        nanosleep(&(struct timespec){.tv_sec = 1}, NULL);
        check_reset(k);
        rc = check_where(k, pg, table, w);
    } while (rc == CHECK_DIFFERENT && clock_mono_s() - start < wait_s);
    if (rc == CHECK_ERROR)
        return rc;
    print_report(k, clock_mono_s() - start);
    if (rc == CHECK_DIFFERENT)
        printf("consistency-check: still different %.0f s after the repair: is a syncer running "
               "on table %s?\n",
               wait_s, table->name);
    return rc;
}

static const char summary[] =
    "Compares a tracked table in PostgreSQL with its Elasticsearch/OpenSearch index key by\n"
    "key, on (key, txid, version), in constant memory (both sides are read in key order and\n"
    "merged), or with the change events of an NDJSON stream (--ndjson-file; the highest\n"
    "version per key, held in memory).  Reports rows missing from the index, extra documents (also "
    "those of deleted\n"
    "rows) and stale ones; with --content, also documents whose content is not the row's.\n"
    "Exit status: 0 equal, 1 different, 2 error.";

/* The options (set by settings_parse_main). */
static const char *conninfo, *es_url, *table_name, *index_name, *ndjson, *topic, *brokers, *columns,
    *exclude;
static long long max_report = 20, page_size = 5000, repair_wait = 60;
static bool content, repair_on;
static EsAuth es_auth;
static int log_level = 1;

static const Setting settings[] = {
    {"pg", SETTING_STRING, "", "TXIDSYNC_PG", "CONNINFO",
     "libpq connection string or URI; empty uses libpq's PG* environment", NULL, 0, 0, &conninfo,
     0},
    {"es-url", SETTING_STRING, "http://127.0.0.1:9200", "TXIDSYNC_ES_URL", "URL",
     "Elasticsearch/OpenSearch base URL, http:// or https:// (credentials in it must be "
     "percent-encoded, and ps shows them: prefer --es-user)",
     NULL, 0, 0, &es_url, 0},
    ES_AUTH_SETTINGS(es_auth, 0, ""),
    {"table", SETTING_STRING, "", "TXIDSYNC_TABLE", "NAME",
     "tracked table to compare (schema-qualified if needed)", NULL, 0, 0, &table_name, 0},
    {"index", SETTING_STRING, NULL, "TXIDSYNC_INDEX", "NAME",
     "index to compare with (default: the table's name, with its schema unless public, in "
     "lower case, as the syncer's)",
     NULL, 0, 0, &index_name, 0},
    {"ndjson-file", SETTING_STRING, "", NULL, "PATH",
     "compare with the change events the syncer wrote to this file (PATH.1, PATH.2, ... then "
     "PATH; the highest version per key wins) instead of an index",
     NULL, 0, 0, &ndjson, 0},
    {"kafka-topic", SETTING_STRING, "", NULL, "NAME",
     "compare with the change events of this Kafka topic, read from the beginning of every "
     "partition (the highest version per key wins) instead of an index",
     NULL, 0, 0, &topic, 0},
    {"kafka-brokers", SETTING_STRING, "127.0.0.1:9092", "TXIDSYNC_KAFKA_BROKERS", "HOSTS",
     "with --kafka-topic: the bootstrap servers", NULL, 0, 0, &brokers, 0},
    {"content", SETTING_BOOL, "false", NULL, NULL,
     "compare each document's content too, with the document Postgres builds now (canonical "
     "JSON: member order, number notation and escapes do not matter); a difference names the "
     "first differing field",
     NULL, 0, 0, &content, 0},
    {"columns", SETTING_STRING, "", NULL, "NAMES",
     "with --content: the columns the syncer puts in the documents (its --columns)", NULL, 0, 0,
     &columns, 0},
    {"exclude-columns", SETTING_STRING, "", NULL, "NAMES",
     "with --content: the columns the syncer leaves out (its --exclude-columns)", NULL, 0, 0,
     &exclude, 0},
    {"repair", SETTING_BOOL, "false", NULL, NULL,
     "then repair what differs, through the running syncer: every key missing, stale or "
     "different gets a new version in postgres (above the target's), so that the syncer sends "
     "it again (a deleted row's delete too); a document postgres never had a row for is "
     "deleted from the index; then check again until equal (needs a role that may update "
     "txidsync's side tables)",
     NULL, 0, 0, &repair_on, 0},
    {"repair-wait", SETTING_INT, "60", NULL, "SECONDS",
     "with --repair: how long to check again for the syncer to send the repair", NULL, 1, 86400,
     &repair_wait, 0},
    {"max-report", SETTING_INT, "20", NULL, "N", "differences listed at most (all are counted)",
     NULL, 0, 1000000, &max_report, 0},
    {"page-size", SETTING_INT, "5000", NULL, "N", "documents read from the index per request", NULL,
     1, 10000, &page_size, 0},
    {"log-level", SETTING_ENUM, "info", "TXIDSYNC_LOG_LEVEL", NULL, "lowest level logged",
     "debug|info|warn|error", 0, 0, &log_level, 0},
};

int main(int argc, char **argv)
{
    int usage = settings_parse_main(settings, sizeof(settings) / sizeof(settings[0]),
                                    "consistency-check", TXIDSYNC_VERSION, summary, argc, argv);
    if (usage >= 0)
        return usage; /* CHECK_EQUAL after --help, CHECK_ERROR after bad usage */
    char err[1024];
    if (!*table_name) {
        fprintf(stderr,
                "consistency-check: name the table to compare: --table NAME (or TXIDSYNC_TABLE)\n");
        return CHECK_ERROR;
    }
    char default_index[256];
    const char *index = index_name;
    if (!index || !*index) {
        target_default_name(table_name, default_index, sizeof(default_index));
        index = default_index;
    }
    log_set_level((LogLevel)log_level);

    int rc = CHECK_ERROR;
    Check k;
    memset(&k, 0, sizeof(k));
    k.index = index;
    k.page_size = (size_t)page_size;
    k.max_diffs = (size_t)max_report;
    buf_init(&k.prev_es, 1 << 20);
    buf_init(&k.prev_pg, 1 << 20);
    buf_init(&k.pg_canon, (size_t)1 << 30);
    k.check_content = content;
    Repair repair;
    repair_init(&repair);
    if (repair_on)
        k.repair = &repair;
    PgConn *pg = NULL;
    PgTable table;
    memset(&table, 0, sizeof(table));

    k.diffs = calloc(k.max_diffs ? k.max_diffs : 1, sizeof(*k.diffs));
    if (!k.diffs) {
        fprintf(stderr, "consistency-check: out of memory\n");
        goto done;
    }
    k.es = es_client_new(es_url, &es_auth, err, sizeof(err));
    if (!k.es) {
        fprintf(stderr, "consistency-check: es: %s\n", err);
        goto done;
    }
    pg = pg_connect(conninfo, err, sizeof(err));
    if (!pg) {
        fprintf(stderr, "consistency-check: %s\n", err);
        goto done;
    }
    if (pg_table_resolve(pg, table_name, &table, err, sizeof(err)) != PG_OK ||
        pg_table_choose_columns(&table, columns, exclude, err, sizeof(err)) < 0) {
        fprintf(stderr, "consistency-check: %s\n", err);
        goto done;
    }
    Where w = {.index = index, .ndjson = ndjson, .topic = topic, .brokers = brokers};
    rc = check_where(&k, pg, &table, &w);
    if (rc == CHECK_DIFFERENT && repair_on)
        rc = repair_and_check(&k, pg, &table, &w, (double)repair_wait);
done:
    repair_free(&repair);
    check_free(&k);
    pg_table_free(&table);
    pg_free(pg);
    es_client_free(k.es);
    return rc;
}
