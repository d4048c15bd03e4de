/*
 * pg: the PostgreSQL client.  Owns every libpq call and every SQL string of
 * the project: connecting, resolving a tracked table, the three-branch
 * batch query of the snapshot cursor, LISTEN/notification waits, the
 * recovery check, a full scan of a table's tracked state (for checkers)
 * and the txid offset after a restore.
 *
 * It does not decide anything: what to read next is the cursor's
 * (cursor_query fills the CursorQuery passed here), what to do with rows
 * and when to reconnect is the caller's.  The database side
 * (schema txidsync, side tables, triggers) is installed by
 * sql/txidsync.sql.
 *
 * Errors are values.  Every fallible function returns PG_OK (0),
 * PG_ERROR (-1: the statement failed, the connection is fine) or PG_LOST
 * (-2: the connection is gone; call pg_reconnect, with backoff, and retry)
 * and fills the caller's err buffer with one lowercase line starting
 * "pg: ".  Messages name hosts and ports at most, never the connection
 * string or a password.
 *
 * The syncer's read path (pg_batch_fetch, pg_snapshot_xmax, pg_state_scan,
 * pg_table_resolve, pg_in_recovery) never assigns itself a transaction id.
 */
#ifndef TXIDSYNC_PG_H
#define TXIDSYNC_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cursor.h"

enum {
    PG_OK = 0,
    PG_ERROR = -1, /* the statement failed; the connection is usable */
    PG_LOST = -2,  /* the connection is lost; pg_reconnect, then retry */
    PG_BUSY = -3,  /* pg_refresh_step only: rows locked elsewhere; try again */
};

typedef struct PgConn PgConn;

/* "database D on H port P as U" of the connection, for messages: never
 * a password or the connection string. */
void pg_describe(const PgConn *c, char *out, size_t len);

/*
 * Connects to the server named by conninfo (a libpq keyword/value string,
 * a URI or a bare database name; NULL or "" means libpq's PG* environment
 * variables), with client encoding UTF8, fallback application name
 * "txidsync" and, unless conninfo sets them, a 10 s connect timeout and
 * TCP keepalives after 30 s idle; prepares the session for the batch
 * query.  Refuses servers older than PostgreSQL 13.  Returns the
 * connection, which the caller frees with pg_free, or NULL with err filled.
 */
PgConn *pg_connect(const char *conninfo, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Closes the connection and frees c; NULL is ignored. */
void pg_free(PgConn *c);

/* Tells, without a round trip, whether the connection is known to be lost
 * (libpq status CONNECTION_BAD): then only pg_reconnect helps. */
bool pg_is_broken(const PgConn *c);

/*
 * Closes and reopens the connection with the same parameters, prepares the
 * session again and re-issues every LISTEN made through pg_listen.
 * Notifications sent while the connection was down are lost, so the
 * caller polls once after a successful reconnect.  Returns PG_OK, or
 * PG_LOST with err filled when the server still cannot be reached
 * (PG_ERROR when it answers but the session cannot be prepared).
 */
int pg_reconnect(PgConn *c, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Sets *in_recovery to pg_is_in_recovery() of the server (true on a hot
 * standby, where the snapshot's xip is empty and the cursor would skip
 * rows, so the daemon must refuse to run).  Returns PG_OK/PG_ERROR/PG_LOST. */
int pg_in_recovery(PgConn *c, bool *in_recovery, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* A tracked table, as recorded in txidsync.tracked.  Every string is owned
 * by the struct and freed by pg_table_free. */
typedef struct PgTable {
    char *name;           /* the table as regclass text, e.g. some_table or s.t */
    char *side_table;     /* its side table in schema txidsync, unquoted */
    char *key_columns;    /* the primary key's columns, for messages: "id", "a, b" */
    size_t n_keys;        /* how many (1 to PG_KEYS_MAX) */
    char *channel;        /* NOTIFY channel, "txidsync_<table>", unquoted */
    bool notify;          /* whether writers NOTIFY the channel */
    char *sql_table;      /* the table, schema-qualified and quoted for SQL */
    char *sql_side;       /* the side table, qualified and quoted */
    char *sql_log;        /* the change log, qualified and quoted (docs/design.md,
                           * "Tracking modes") */
    char *sql_seq;        /* the version sequence, qualified and quoted */
    char *sql_seq_lit;    /* the same as a string literal, for nextval and setval */
    char *sql_plain_keys; /* the side table's key columns, no alias: "key", "key1, key2" */
    bool log_mode;        /* whether writers append to the log (mode 'log') or
                           * keep the side table (mode 'side') */
    char *sql_state;      /* the state of every key as a relation (key columns,
                           * version, txid, deleted): the newest of the side table's
                           * row and the log's entries, to be aliased s */
    char *sql_key_text;   /* the key's canonical text (keys.h) over side table alias s */
    char *sql_side_keys;  /* the side table's key columns over alias s: "s.key", "s.key1, s.key2" */
    char *sql_join;       /* the table (alias r) row of side row s: "r.a = s.key1 and ..." */
    bool doc_jsonb;       /* documents come from to_jsonb, not row_to_json: a
                           * column contains the type json */
    char *owner;          /* who feeds a target: "database/schema.table", quoted as SQL */
    char *sql_doc;        /* the document of table row r: "pg_catalog.row_to_json(r.*)", or
                           * over the chosen columns (pg_table_choose_columns), with
                           * sql_nested added */
    char *sql_nested;     /* the nested members of r's document as one jsonb expression
                           * (docs/design.md, "Nested documents"), or NULL */
    char **columns;       /* the document's column names, unquoted, in their order */
    char **column_types;  /* their types, as format_type spells them ("numeric(12,2)") */
    bool *column_nullable;
    size_t n_columns;
    char **key_names;      /* the primary key's columns, unquoted, in key order (n_keys) */
    char *oid;             /* the table's oid, as text */
    char columns_hash[33]; /* a fingerprint of the table's columns (names, types, null) */
} PgTable;

/* The longest document expression of nested members read from the server. */
#define PG_NESTED_SQL_MAX ((size_t)16 << 20)

/* The most key columns a table may have (Postgres's INDEX_MAX_KEYS). */
#define PG_KEYS_MAX 32

/*
 * Looks up table (any spelling regclass accepts: "some_table",
 * "public.some_table", "\"Mixed\"") in txidsync.tracked and fills *t,
 * which the caller frees with pg_table_free.  Fails with PG_ERROR and a
 * clear message when txidsync is not installed in the database, the table
 * does not exist or it is not tracked.  On failure *t is zeroed.
 */
int pg_table_resolve(PgConn *c, const char *table, PgTable *t, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Frees what *t owns and zeroes it. */
void pg_table_free(PgTable *t);

/*
 * Makes the documents of t hold only some columns: those of include, in
 * its order, or every column but those of exclude, in the table's order
 * (comma-separated names as the catalog spells them, blanks around a name
 * ignored; NULL or "" for none; not both).  t->columns becomes the chosen
 * list.  Returns 0, or -1 with err filled: a name that is not a column of
 * t, a name given twice, both lists, or no column left.  Pure: no
 * round trip (pg_columns.c).
 */
int pg_table_choose_columns(PgTable *t, const char *include, const char *exclude, char *err,
                            size_t errlen) __attribute__((warn_unused_result));

/* Sets *any to whether t has a live row that the cursor cur covers (one
 * its target must hold if it is in step with the cursor).  Returns
 * PG_OK/PG_ERROR/PG_LOST. */
int pg_synced_live_rows(PgConn *c, const PgTable *t, const Cursor *cur, bool *any, char *err,
                        size_t errlen) __attribute__((warn_unused_result));

/* A refresh of a table (sql/txidsync.sql: txidsync.refreshes). */
typedef struct PgRefresh {
    long long id;
    long long rows_done; /* so far: more than 0 when an unfinished one resumes */
    long long estimate;  /* the rows it will touch, as the planner guesses; -1: unknown */
    char reason[128];
} PgRefresh;

/*
 * Starts a refresh of table (txidsync.refresh_start), or finds the
 * unfinished one with the same condition where (an SQL condition on the
 * table's row t; NULL or "": every key, tombstones too), and fills r.
 * Writes: run it as a role that may update txidsync's tables.  Returns
 * PG_OK/PG_ERROR/PG_LOST.
 */
int pg_refresh_start(PgConn *c, const char *table, const char *where, const char *reason,
                     PgRefresh *r, char *err, size_t errlen) __attribute__((warn_unused_result));

/* What one step of a refresh did. */
typedef struct PgRefreshStep {
    long long rows;      /* this step's */
    long long rows_done; /* the refresh's so far */
    bool finished;
} PgRefreshStep;

/*
 * One step of refresh id, in a transaction of its own: the next chunk rows
 * at most, in key order, get a new version and txid.  Fills *st.  Returns
 * PG_OK, PG_BUSY when a row another transaction holds made it give up (it
 * waits at most lock_wait_ms, so that the application never waits long
 * for it; a deadlock too), PG_ERROR or PG_LOST.
 */
int pg_refresh_step(PgConn *c, long long id, long chunk, int lock_wait_ms, PgRefreshStep *st,
                    char *err, size_t errlen) __attribute__((warn_unused_result));

/* The same without waiting: sends the step (PG_OK, PG_ERROR, PG_LOST);
 * then, each time the socket is readable, pg_refresh_step_poll reads what
 * arrived and sets *done once the step's answer is complete, returning
 * what pg_refresh_step would. */
int pg_refresh_step_send(PgConn *c, long long id, long chunk, int lock_wait_ms, char *err,
                         size_t errlen) __attribute__((warn_unused_result));
int pg_refresh_step_poll(PgConn *c, bool *done, PgRefreshStep *st, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Tracking table online (txidsync.track_begin): installs its triggers
 * with an empty side table, unless it is tracked already, and fills r
 * with the fill's state (rows_done so far, estimate: the table's rows as
 * the statistics say, -1 unknown).  Sets *tracked when the table was
 * tracked and filled already (nothing to do).  log_mode picks the log
 * tracking mode for a table not tracked yet (a tracked one keeps its
 * mode).  Writes; needs the table's owner.  Returns PG_OK/PG_ERROR/PG_LOST.
 */
int pg_track_begin(PgConn *c, const char *table, bool notify, bool log_mode, PgRefresh *r,
                   bool *tracked, char *err, size_t errlen) __attribute__((warn_unused_result));

/* One step of the fill (txidsync.track_step), in a transaction of its
 * own: the state of the next chunk of existing rows.  Fills *st. */
int pg_track_step(PgConn *c, const char *table, long chunk, PgRefreshStep *st, char *err,
                  size_t errlen) __attribute__((warn_unused_result));

/*
 * Has txidsync.columns_noted compare the table's columns with those noted
 * last: when they changed, a refresh of the whole table starts.  Fills r
 * with the table's oldest unfinished refresh (r->id 0: none).  Writes
 * only when the columns changed.  Returns PG_OK/PG_ERROR/PG_LOST.
 */
int pg_columns_noted(PgConn *c, const PgTable *t, PgRefresh *r, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Sets *rows to about how many keys the table's side table holds
 * (txidsync.row_estimate: the statistics, or the planner's guess; -1
 * unknown), for progress reports.  Returns PG_OK/PG_ERROR/PG_LOST. */
int pg_row_estimate(PgConn *c, const PgTable *t, long long *rows, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Fills r with the table's oldest unfinished refresh (r->id 0: none);
 * reads only.  Returns PG_OK/PG_ERROR/PG_LOST. */
int pg_refresh_pending(PgConn *c, const PgTable *t, PgRefresh *r, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Registers consumer (a target's name, without credentials) of table t
 * at low, in a transaction of its own (txidsync.consumer_seen): every
 * change of t below txid low is in that target.  Sets *pruned_below to
 * one past the highest txid of a pruned tombstone of t: when low is below
 * it, deletes the target had not read were pruned.  Writes.  Returns
 * PG_OK/PG_ERROR/PG_LOST. */
int pg_consumer_seen(PgConn *c, const PgTable *t, const char *consumer, uint64_t low,
                     uint64_t *pruned_below, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* What one call of txidsync.prune removed. */
typedef struct PgPrune {
    long long tombstones, log_entries;
    bool has_horizon; /* false: nothing may be pruned (no consumer, no mark old enough) */
    uint64_t horizon;
    char dropped[1024]; /* the consumers it dropped, ", "-separated; "" none */
} PgPrune;

/* Sends one call of txidsync.prune on table t (a transaction of its
 * own), which removes at most about chunk log entries and tombstones
 * every consumer has passed, older than margin_s seconds, after dropping
 * the consumers not seen for drop_after_s; pg_prune_poll reads its answer
 * once the socket is readable (*done false: not complete yet).  Writes.
 * Return PG_OK/PG_ERROR/PG_LOST. */
int pg_prune_send(PgConn *c, const PgTable *t, long margin_s, long drop_after_s, long chunk,
                  char *err, size_t errlen) __attribute__((warn_unused_result));
int pg_prune_poll(PgConn *c, bool *done, PgPrune *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Looks the table up by its oid: fills name with what it is tracked as now
 * (its regclass text; "" when it is no longer tracked or was dropped).
 * Returns PG_OK/PG_ERROR/PG_LOST. */
int pg_table_tracked_as(PgConn *c, const PgTable *t, char *name, size_t len, char *err,
                        size_t errlen) __attribute__((warn_unused_result));

/*
 * Tries to take the session-level advisory lock named by the text name
 * (hashed to a bigint by the server), held until the connection closes.
 * Sets *got, and when another session holds it, *holder to its pid (0
 * when not visible).  Assigns no transaction id.  Returns
 * PG_OK/PG_ERROR/PG_LOST.
 */
int pg_try_lock(PgConn *c, const char *name, bool *got, int *holder, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* One changed key returned by the batch query or the state scan.  Strings
 * are borrowed from the batch (or the scan callback) that holds the row. */
typedef struct PgRow {
    const char *key;  /* the key's canonical text (keys.h), NUL-terminated */
    uint64_t txid;    /* top-level transaction of the last change, offset added */
    uint64_t version; /* strictly increasing per key across every change */
    bool deleted;     /* a tombstone: delete the key with this version */
    const char *doc;  /* the row as one line of JSON (row_to_json or to_jsonb);
                       * NULL for a tombstone,
                       * from pg_live_lookup, and from pg_live_scan without docs */
    size_t doc_len;
    int branch; /* batch query branch (1 xid_at, 2 xip, 3 newer); 0 in a scan */
} PgRow;

/* The result of one batch query.  snapshot.xip points into xip, which the
 * batch owns; rows and their strings live until pg_batch_free. */
typedef struct PgBatch {
    CursorSnapshot snapshot; /* the statement's snapshot, offset added */
    uint64_t *xip;           /* owned, sorted ascending */
    PgRow *rows;             /* owned, in the order the cursor needs */
    size_t n_rows;
    char columns_hash[33]; /* the table's column fingerprint when it was read (PgTable) */
    bool recovery;         /* read on a hot standby: the snapshot lists no xip */
    void *result;          /* private: the libpq result the rows borrow from */
} PgBatch;

/*
 * Runs the batch query for table t with the parameters q (from
 * cursor_query): ONE statement that reads the snapshot and at most
 * q->limit rows of the side table under it, from three branches in
 * priority order — (1) txid = xid_at and key > xid_at_key, (2) txid in
 * xip, (3) txid >= xid_next and not done, as two branches (3 up to the
 * largest done id, 4 above it; row->branch says which) — each ordered by (txid, key columns...),
 * the key compared column by column in its own order, with each row's document joined from the
 * tracked table.  Postgres stops reading a later branch once the earlier ones filled the limit. The
 * caller hands b->snapshot, b->n_rows and the last row to cursor_advance and frees *b with
 * pg_batch_free.  Returns PG_OK/PG_ERROR/PG_LOST; on failure *b is empty.  Also fails (PG_ERROR)
 * when the rows do not come back in branch order, rather than letting the cursor skip any.
 */
int pg_batch_fetch(PgConn *c, const PgTable *t, const CursorQuery *q, PgBatch *b, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

/*
 * The batch query of pg_batch_fetch without waiting for it: pg_batch_start
 * sends it and returns; the caller waits for input on pg_socket() (with
 * whatever else it waits for) and calls pg_batch_poll, which reads what
 * arrived and, once the whole result is in, fills *b exactly as
 * pg_batch_fetch would and sets *done.  Until then nothing else may use
 * the connection, and t stays borrowed.  pg_reconnect forgets an outstanding query.  Both return
 * PG_OK/PG_ERROR/PG_LOST; after a failure of pg_batch_poll (*done is then
 * set unless the connection was lost) no query is outstanding.
 */
int pg_batch_start(PgConn *c, const PgTable *t, const CursorQuery *q, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int pg_batch_poll(PgConn *c, PgBatch *b, bool *done, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The connection's socket, to wait on for pg_batch_poll; -1 when none. */
int pg_socket(const PgConn *c);

/* Frees what *b owns and empties it; an empty batch is fine. */
void pg_batch_free(PgBatch *b);

/*
 * Runs EXPLAIN (ANALYZE, BUFFERS) of exactly the statement pg_batch_fetch
 * would run with q and stores the plan text, one line per plan line, in a
 * malloc'd string *plan that the caller frees.  For operators and tests.
 * Returns PG_OK/PG_ERROR/PG_LOST.
 */
int pg_batch_explain(PgConn *c, const PgTable *t, const CursorQuery *q, char **plan, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/* Sets *xmax to the xmax of a fresh snapshot (offset added): it moves
 * whenever a transaction ends, so polling it is a wake-up that costs
 * writers nothing.  Returns PG_OK/PG_ERROR/PG_LOST. */
int pg_snapshot_xmax(PgConn *c, uint64_t *xmax, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Issues LISTEN on channel (quoted here) and remembers it, so that
 * pg_reconnect listens again.  Listening twice on one channel is fine.
 * Returns PG_OK/PG_ERROR/PG_LOST. */
int pg_listen(PgConn *c, const char *channel, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Waits up to timeout_ms milliseconds (0: just look; negative: forever)
 * for a notification on any channel listened to, and consumes every
 * notification already arrived.  Sets *notified to whether at least one
 * came.  May return early with *notified false (other server traffic, a
 * signal), so callers loop on their own clock.  Returns PG_OK, PG_LOST
 * when the connection dropped while waiting, or PG_ERROR.
 */
int pg_wait(PgConn *c, int timeout_ms, bool *notified, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Called by pg_state_scan for each row; the row and its strings are
 * borrowed for the duration of the call.  Returns 0 to go on, non-zero
 * to stop the scan (which then returns PG_ERROR with err "pg: scan
 * stopped by the caller" unless the callback filled err itself). */
typedef int (*PgRowFn)(void *ctx, const PgRow *row);

/*
 * Streams the whole tracked state of table t — every key of its side
 * table with txid, version, deleted and the document of a live row — to
 * fn, in no particular order, under one snapshot and in constant memory.
 * For consistency checkers and tests.  Returns PG_OK/PG_ERROR/PG_LOST.
 */
int pg_state_scan(PgConn *c, const PgTable *t, PgRowFn fn, void *ctx, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Calls txidsync.configure_txid_offset(at_least): after a restore into a
 * cluster with a lower xid counter, raises the txid offset so that every
 * later transaction id is above every recorded txid and above at_least
 * (pass the cursor's xid_next; 0 for none).  Sets *offset to the offset
 * now in force.  This one writes (and assigns itself a transaction id).
 * Returns PG_OK/PG_ERROR/PG_LOST.
 */
int pg_configure_txid_offset(PgConn *c, uint64_t at_least, uint64_t *offset, char *err,
                             size_t errlen) __attribute__((warn_unused_result));

/*
 * Streams every LIVE key of table t's side table (deleted = false) as a
 * PgRow with key, txid and version (deleted false, branch 0; with docs,
 * the row's document as the syncer builds it, else doc NULL) to
 * fn, ordered by the key's text form byte by byte (COLLATE "C", the order
 * of a keyword field in Elasticsearch/OpenSearch), strictly ascending.
 * One statement, so one snapshot; rows arrive one at a time (single-row
 * mode), so the client's memory does not grow with the table (the server
 * sorts, spilling to disk as work_mem says).  For consistency checkers.
 * Returns PG_OK/PG_ERROR/PG_LOST; fn stopping the scan is PG_ERROR.
 */
int pg_live_scan(PgConn *c, const PgTable *t, bool docs, PgRowFn fn, void *ctx, char *err,
                 size_t errlen) __attribute__((warn_unused_result));

/*
 * Streams, as pg_live_scan does but in no particular order, the live keys
 * of table t whose text form is one of keys[0..n_keys-1] (borrowed; keys
 * that are not live or do not exist are left out, duplicates count once).
 * One statement that reads the side table once, meant for a few keys
 * (the whole list travels as one parameter of at most 64 MiB).
 * Returns PG_OK/PG_ERROR/PG_LOST.
 */
int pg_live_lookup(PgConn *c, const PgTable *t, const char *const *keys, size_t n_keys, PgRowFn fn,
                   void *ctx, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Gives each of the n_keys keys (canonical text) of table t that has a
 * row in its side table, live or a tombstone, a new version above both
 * its own and at_least[i], and the txid of this transaction, in one
 * transaction: the syncers then send it again (a tombstone as a delete).
 * What a refresh does, for a list of keys; the consistency checker's
 * repair.  Calls fn for each key it bumped, with its new state.  Writes.
 * Returns PG_OK/PG_ERROR/PG_LOST.
 */
int pg_bump_keys(PgConn *c, const PgTable *t, const char *const *keys, const uint64_t *at_least,
                 size_t n_keys, PgRowFn fn, void *ctx, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
