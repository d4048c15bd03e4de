/*
 * load-generator: hammers one table of the demo's shape (id bigint identity
 * primary key, name text, data jsonb) with N connections of concurrent,
 * colliding transactions, so that a syncer under test meets every case
 * docs/design.md names: commits out of transaction-id order, hot rows with lock
 * waits and deadlocks, transactions far bigger than a batch, long-running
 * transactions, inserts, deletes, delete and re-insert of one key,
 * savepoints rolled back and released, whole rollbacks and serialisation
 * failures.  With --p-related it also writes the related tables of
 * sql/demo_nested.sql (<table>_items, <table>_labels), whose rows the
 * table's documents nest: items inserted, moved to another parent,
 * changed and deleted, labels renamed.
 *
 * Each connection is a thread with its own libpq connection and random
 * stream; it loops over transactions until the run stops.  The main thread
 * only waits for SIGINT/SIGTERM or the end of --duration, prints a stats
 * line per interval, and at the end cancels whatever statements are still
 * running, so that every open transaction rolls back quickly.  The last
 * line on stdout is "totals: key=value ...", for tests and scripts.
 *
 * In fixed-rate mode (--rate) a shared pacer spreads the changed rows
 * evenly over time, transactions stay small (no big and no sleeping
 * ones), and every written row's data gets "ts", the server's
 * clock_timestamp() as epoch seconds, so a syncer can measure latency.
 *
 * The SQL here is the workload itself, not part of the syncer, so it lives
 * in this tool rather than in src/pg.c; the tool uses only the log and
 * settings modules of the library.  It talks to the given Postgres and to
 * nothing else, and never prints the connection string.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "settings.h"
#include "version.h"

#define PROG "load-generator"

enum { EXIT_OK = 0, EXIT_FAILURE_RUN = 1, EXIT_USAGE = 2 };

/* Everything the settings table fills. */
typedef struct Config {
    long long connections;
    long long duration_s;
    long long seed;
    const char *conninfo;
    const char *table;
    long long hot_rows;
    long long rate;
    long long big_rows;
    long long sleep_max_ms;
    long long lock_timeout_ms;
    long long deadlock_timeout_ms;
    long long stats_interval_s;
    double p_hot;
    double p_insert;
    double p_delete;
    double p_reinsert;
    double p_big;
    double p_savepoint;
    double p_sleep;
    double p_rollback;
    double p_repeatable_read;
    double p_related;
    int log_level;
} Config;

/* The counters of the run.  The first group describes outcomes, the second
 * counts committed transactions by what they did (one transaction may do
 * several kinds of work), except K_ROLLBACK, which counts transactions
 * rolled back on purpose. */
typedef enum Counter {
    C_COMMITTED,
    C_ROLLED_BACK,
    C_ROWS,
    C_DEADLOCKS,
    C_SERIALIZATION,
    C_LOCK_TIMEOUTS,
    C_ERRORS,
    C_RECONNECTS,
    K_UPDATE,
    K_INSERT,
    K_DELETE,
    K_REINSERT,
    K_BIG,
    K_SAVEPOINT_ROLLBACK,
    K_SAVEPOINT_RELEASE,
    K_SLEEP,
    K_RELATED,
    K_ROLLBACK,
    C_COUNT
} Counter;

/* Names in the totals line, in Counter order. */
static const char *const counter_names[C_COUNT] = {
    "committed",
    "rolled_back",
    "rows",
    "deadlocks",
    "serialization_failures",
    "lock_timeouts",
    "errors",
    "reconnects",
    "update",
    "insert",
    "delete",
    "reinsert",
    "big",
    "savepoint_rollback",
    "savepoint_release",
    "sleep",
    "related",
    "rollback",
};

/* How a statement failed. */
typedef enum Failure {
    FAIL_NONE,
    FAIL_DEADLOCK,      /* 40P01 */
    FAIL_SERIALIZATION, /* 40001 */
    FAIL_LOCK_TIMEOUT,  /* 55P03 */
    FAIL_CANCELED,      /* 57014, sent by the main thread at the end */
    FAIL_LOST,          /* the connection is gone */
    FAIL_OTHER,
} Failure;

/* A kind of work inside a transaction; a Plan lists them in the order they
 * run. */
typedef enum Step {
    STEP_UPDATES,
    STEP_INSERT,
    STEP_DELETE,
    STEP_REINSERT,
    STEP_BIG,
    STEP_SAVEPOINT,
    STEP_SLEEP,
    STEP_RELATED,
    STEP_MAX = 8
} Step;

/* What one transaction will do, decided before it starts. */
typedef struct Plan {
    Step steps[STEP_MAX];
    int n_steps;
    int n_updates; /* K, 1..10 */
    int n_inserts; /* 0, or 1..3 */
    bool savepoint_rollback;
    int sleep_ms;
    bool rollback;
    bool repeatable_read;
    long long planned_rows; /* for the pacer */
} Plan;

/* A connection's thread.  conn, rng and the tx_* fields belong to the
 * thread; cancel is shared with the main thread under cancel_lock. */
typedef struct Worker {
    int index;
    pthread_t thread;
    PGconn *conn;
    bool ever_connected;
    pthread_mutex_t cancel_lock;
    PGcancel *cancel;
    atomic_bool done;
    /* The key range of this worker's big update while its transaction is
     * open (lo 0: none); other workers leave it alone. */
    atomic_llong big_lo, big_hi;
    uint64_t rng;
    long long serial; /* the "n" written into data, distinct per change */
    char w_text[16];  /* the "w" written into data: this worker's index */
    /* The transaction in progress. */
    Failure failure;
    long long tx_rows;
    long long tx_max_id;
    bool did[C_COUNT];
} Worker;

/* State shared by all threads. */
typedef struct Shared {
    const Config *cfg;
    char table_sql[320]; /* the table as regclass prints it: quoted, qualified if needed */
    bool tracked;
    atomic_bool stop;
    atomic_llong max_id; /* the largest committed key known */
    long long *hot_keys; /* read-only after start */
    int n_hot;
    char *hot_keys_text; /* the hot keys as a Postgres array literal */
    char items_sql[320]; /* with --p-related: the related tables, as regclass prints them */
    char labels_sql[320];
    atomic_llong max_item; /* the largest item id known */
    long long n_labels;    /* labels 1..n_labels */
    Worker *workers;       /* every worker, for the big ranges */
    long long n_workers;
    atomic_int active_bigs; /* workers with a big range set */
    atomic_ullong counters[C_COUNT];
    pthread_mutex_t pacer_lock;
    long long pacer_next_ns; /* the start of the next free slot, monotonic clock */
    pthread_mutex_t seen_lock;
    char seen_states[64][8]; /* SQLSTATEs of "other" errors already printed */
    int n_seen;
    atomic_llong last_lost_log_ns;
    atomic_bool deadlock_timeout_warned;
} Shared;

static Shared shared;

/* The prepared statements, named by these strings on every connection. */
#define ST_UPDATE          "upd"
#define ST_INSERT          "ins"
#define ST_DELETE          "del"
#define ST_DELETE_RETURN   "del_ret"
#define ST_REINSERT        "reins"
#define ST_REINSERT_SINGLE "reins1"
#define ST_BIG             "big"
#define ST_ITEM_INSERT     "item_ins"
#define ST_ITEM_MOVE       "item_move"
#define ST_ITEM_UPDATE     "item_upd"
#define ST_ITEM_DELETE     "item_del"
#define ST_LABEL_RENAME    "label_ren"

/* Returns the monotonic clock in nanoseconds. */
static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Tells whether the run is stopping. */
static bool stopping(void)
{
    return atomic_load_explicit(&shared.stop, memory_order_relaxed);
}

/* Adds n to counter c. */
static void count(Counter c, unsigned long long n)
{
    atomic_fetch_add_explicit(&shared.counters[c], n, memory_order_relaxed);
}

/* Returns the current value of counter c. */
static unsigned long long counter(Counter c)
{
    return atomic_load_explicit(&shared.counters[c], memory_order_relaxed);
}

/* Advances the splitmix64 state *s and returns the next 64 random bits. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Returns a uniform number in [0, 1). */
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Returns true with probability p. */
static bool rng_chance(uint64_t *s, double p)
{
    return rng_unit(s) < p;
}

/* Returns a uniform integer in [lo, hi]; hi < lo returns lo. */
static long long rng_range(uint64_t *s, long long lo, long long hi)
{
    if (hi <= lo)
        return lo;
    return lo + (long long)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* Sleeps until the monotonic clock reaches deadline_ns, waking every 50 ms
 * to look at the stop flag.  Returns false when the run is stopping. */
static bool sleep_until(long long deadline_ns)
{
    for (;;) {
        if (stopping())
            return false;
        long long now = now_ns();
        if (now >= deadline_ns)
            return true;
        long long wake = deadline_ns - now > 50000000LL ? now + 50000000LL : deadline_ns;
        struct timespec ts = {.tv_sec = wake / 1000000000LL, .tv_nsec = wake % 1000000000LL};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
}

/* Receives the server's notices and libpq's asynchronous messages (such as
 * "terminating connection" before a lost connection is noticed), which
 * would otherwise go to stderr raw, and logs them at debug level. */
static void notice_processor(void *arg, const char *message)
{
    (void)arg;
    char line[512];
    snprintf(line, sizeof(line), "%s", message);
    line[strcspn(line, "\n")] = '\0';
    log_debug("server: %s", line);
}

/*
 * Opens a connection from the --pg setting (empty: libpq's PG* environment)
 * with a connect timeout and the application name "txidsync-load-generator",
 * both of which the setting may override.  Returns the connection, which may
 * be in CONNECTION_BAD state; the caller finishes it with PQfinish.
 */
static PGconn *open_connection(const char *conninfo)
{
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *const vals[] = {"10", "txidsync-load-generator", conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn)
        PQsetNoticeProcessor(conn, notice_processor, NULL);
    return conn;
}

/* Returns libpq's last error message of conn as one line in buf.
 * Connection errors name the host and port, never a password. */
static const char *conn_error(PGconn *conn, char *buf, size_t len)
{
    snprintf(buf, len, "%s", conn ? PQerrorMessage(conn) : "out of memory");
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    /* One line: newlines and tabs become single spaces. */
    char *out = buf;
    for (const char *p = buf; *p; p++) {
        char ch = (*p == '\n' || *p == '\t') ? ' ' : *p;
        if (ch == ' ' && out > buf && out[-1] == ' ')
            continue;
        *out++ = ch;
    }
    *out = '\0';
    return buf;
}

/* ---- the table ---- */

/*
 * Checks on conn that the --table setting names a table of the demo's shape
 * (id bigint identity primary key, name text, data jsonb), stores its
 * SQL spelling in shared.table_sql, notes whether txidsync tracks it, reads
 * its largest key and picks the hot keys among the existing ones.  Returns
 * 0, or -1 after logging why not.
 */
static int table_prepare(PGconn *conn, const Config *cfg)
{
    const char *params[2] = {cfg->table, NULL};
    PGresult *r = PQexecParams(
        conn,
        "select c.oid::regclass::text,"
        "       (select count(*) from pg_catalog.pg_attribute a"
        "         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
        "           and ((a.attname = 'id' and a.atttypid = 'pg_catalog.int8'::regtype"
        "                 and a.attidentity in ('a', 'd'))"
        "             or (a.attname = 'name' and a.atttypid = 'pg_catalog.text'::regtype)"
        "             or (a.attname = 'data' and a.atttypid = 'pg_catalog.jsonb'::regtype))),"
        "       exists (select from pg_catalog.pg_index i"
        "                join pg_catalog.pg_attribute a on a.attrelid = i.indrelid"
        "                                              and a.attnum = i.indkey[0]"
        "                where i.indrelid = c.oid and i.indisprimary and i.indnatts = 1"
        "                  and a.attname = 'id'),"
        "       to_regclass('txidsync.tracked') is not null"
        "  from pg_catalog.pg_class c where c.oid = $1::regclass and c.relkind in ('r', 'p')",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        log_error("--table %s: %s", cfg->table,
                  PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                      ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                      : "query failed");
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) != 1) {
        log_error("--table %s: not a table", cfg->table);
        PQclear(r);
        return -1;
    }
    if (strcmp(PQgetvalue(r, 0, 1), "3") != 0 || strcmp(PQgetvalue(r, 0, 2), "t") != 0) {
        log_error("--table %s: expected the demo's shape: id bigint generated as identity "
                  "primary key, name text, data jsonb",
                  cfg->table);
        PQclear(r);
        return -1;
    }
    snprintf(shared.table_sql, sizeof(shared.table_sql), "%s", PQgetvalue(r, 0, 0));
    bool schema_present = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
    PQclear(r);

    if (schema_present) {
        r = PQexecParams(conn,
                         "select exists (select from txidsync.tracked where relid = $1::regclass)",
                         1, NULL, params, NULL, NULL, 0);
        shared.tracked =
            PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
    }

    char sql[2048];
    snprintf(sql, sizeof(sql), "select coalesce(max(id), 0) from %s", shared.table_sql);
    r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        log_error("reading the largest key of %s: %s", shared.table_sql,
                  PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
        PQclear(r);
        return -1;
    }
    long long max_id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    atomic_store(&shared.max_id, max_id);

    /* Hot keys: random existing keys, a few candidate rounds at most, so
     * that the choice costs a handful of index probes on any table size. */
    shared.hot_keys = calloc((size_t)cfg->hot_rows + 1, sizeof(long long));
    if (!shared.hot_keys) {
        log_error("out of memory");
        return -1;
    }
    uint64_t rng = (uint64_t)cfg->seed ^ 0x5eedULL;
    snprintf(sql, sizeof(sql),
             "select id from %s where id = any($1::bigint[]) order by array_position($1, id)",
             shared.table_sql);
    for (int round = 0; round < 8 && shared.n_hot < cfg->hot_rows && max_id > 0; round++) {
        size_t cap = (size_t)(cfg->hot_rows - shared.n_hot) * 2 * 21 + 4;
        char *arr = malloc(cap);
        if (!arr) {
            log_error("out of memory");
            return -1;
        }
        size_t len = 0;
        arr[len++] = '{';
        for (long long i = 0; i < (cfg->hot_rows - shared.n_hot) * 2; i++)
            len += (size_t)snprintf(arr + len, cap - len, "%s%lld", i ? "," : "",
                                    rng_range(&rng, 1, max_id));
        snprintf(arr + len, cap - len, "}");
        const char *p[1] = {arr};
        r = PQexecParams(conn, sql, 1, NULL, p, NULL, NULL, 0);
        free(arr);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            log_error("choosing hot keys: %s", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
            PQclear(r);
            return -1;
        }
        for (int i = 0; i < PQntuples(r) && shared.n_hot < cfg->hot_rows; i++) {
            long long id = atoll(PQgetvalue(r, i, 0));
            bool dup = false;
            for (int j = 0; j < shared.n_hot; j++)
                dup = dup || shared.hot_keys[j] == id;
            if (!dup)
                shared.hot_keys[shared.n_hot++] = id;
        }
        PQclear(r);
    }

    size_t cap = (size_t)shared.n_hot * 21 + 3;
    shared.hot_keys_text = malloc(cap);
    if (!shared.hot_keys_text) {
        log_error("out of memory");
        return -1;
    }
    size_t len = 0;
    shared.hot_keys_text[len++] = '{';
    for (int i = 0; i < shared.n_hot; i++)
        len += (size_t)snprintf(shared.hot_keys_text + len, cap - len, "%s%lld", i ? "," : "",
                                shared.hot_keys[i]);
    snprintf(shared.hot_keys_text + len, cap - len, "}");
    return 0;
}

/*
 * With --p-related: finds the related tables <table>_items and
 * <table>_labels of sql/demo_nested.sql beside the table, the largest
 * item id and the number of labels.  Returns 0, or -1 after logging why
 * not.
 */
static int related_prepare(PGconn *conn, const Config *cfg)
{
    const char *params[1] = {cfg->table};
    PGresult *r = PQexecParams(
        conn,
        "select to_regclass(format('%I.%I', n.nspname, c.relname || '_items'))::text,"
        "       to_regclass(format('%I.%I', n.nspname, c.relname || '_labels'))::text"
        "  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
        " where c.oid = $1::regclass",
        1, NULL, params, NULL, NULL, 0);
    bool found = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                 !PQgetisnull(r, 0, 0) && !PQgetisnull(r, 0, 1);
    if (found) {
        snprintf(shared.items_sql, sizeof(shared.items_sql), "%s", PQgetvalue(r, 0, 0));
        snprintf(shared.labels_sql, sizeof(shared.labels_sql), "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    if (!found) {
        log_error("--p-related: no tables %s_items and %s_labels (sql/demo_nested.sql creates "
                  "them)",
                  cfg->table, cfg->table);
        return -1;
    }
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "select (select coalesce(max(id), 0) from %s), (select count(*) from %s)",
             shared.items_sql, shared.labels_sql);
    r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        log_error("--p-related: %s", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
        PQclear(r);
        return -1;
    }
    atomic_store(&shared.max_item, atoll(PQgetvalue(r, 0, 0)));
    shared.n_labels = atoll(PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

/* The statements of the related workload into sql[0..4] (len bytes each),
 * in the order of ST_ITEM_INSERT ... ST_LABEL_RENAME. */
static void related_statements(char (*sql)[2048], size_t len)
{
    const char *items = shared.items_sql, *labels = shared.labels_sql;
    snprintf(sql[0], len,
             "insert into %s (parent_id, label_id, qty) values ($1::bigint, $2::int, $3::int) "
             "returning id",
             items);
    snprintf(sql[1], len, "update %s set parent_id = $2::bigint where id = $1::bigint", items);
    snprintf(sql[2], len, "update %s set qty = qty + 1, label_id = $2::int where id = $1::bigint",
             items);
    snprintf(sql[3], len, "delete from %s where id = $1::bigint", items);
    snprintf(sql[4], len,
             "update %s set name = 'label ' || id || ' n' || $2::bigint where id = $1::int",
             labels);
}

/* ---- one connection ---- */

/* Tells whether a connection problem may be logged now: at most one such
 * line a second across all workers, so that 32 connections losing their
 * server at once, and retrying, do not flood the output. */
static bool log_slot(void)
{
    long long now = now_ns();
    long long last = atomic_load(&shared.last_lost_log_ns);
    return now - last > 1000000000LL &&
           atomic_compare_exchange_strong(&shared.last_lost_log_ns, &last, now);
}

/* Replaces the worker's cancel handle by one for its current connection
 * (or none), under the lock the main thread takes to use it. */
static void worker_set_cancel(Worker *w)
{
    PGcancel *fresh = w->conn ? PQgetCancel(w->conn) : NULL;
    pthread_mutex_lock(&w->cancel_lock);
    PGcancel *old = w->cancel;
    w->cancel = fresh;
    pthread_mutex_unlock(&w->cancel_lock);
    if (old)
        PQfreeCancel(old);
}

/* Closes the worker's connection, if any (the server rolls back whatever
 * transaction was open on it). */
static void worker_disconnect(Worker *w)
{
    if (!w->conn)
        return;
    PGconn *c = w->conn;
    w->conn = NULL;
    worker_set_cancel(w);
    PQfinish(c);
}

/*
 * Connects the worker, sets its lock timeout and prepares the workload's
 * statements on the connection.  Returns 0, or -1 with no connection left
 * open and the reason logged at most once a second across all workers.
 */
static int worker_connect(Worker *w)
{
    const Config *cfg = shared.cfg;
    char msg[512];
    w->conn = open_connection(cfg->conninfo);
    if (!w->conn || PQstatus(w->conn) != CONNECTION_OK) {
        if (log_slot())
            log_warn("connection %d: cannot connect, retrying: %s", w->index,
                     conn_error(w->conn, msg, sizeof(msg)));
        PQfinish(w->conn);
        w->conn = NULL;
        return -1;
    }

    /* The extra fields every write merges into data: "n" (distinct per
     * change), "w" (the worker) and, in fixed-rate mode, "ts". */
    const char *extra = cfg->rate > 0 ? "jsonb_build_object('n', $1::bigint, 'w', $2::int, 'ts', "
                                        "round(extract(epoch from clock_timestamp())::numeric, 6))"
                                      : "jsonb_build_object('n', $1::bigint, 'w', $2::int)";
    const char *t = shared.table_sql;
    char sql[12][2048];
    const char *names[12] = {ST_UPDATE,    ST_INSERT,          ST_DELETE,      ST_DELETE_RETURN,
                             ST_REINSERT,  ST_REINSERT_SINGLE, ST_BIG,         ST_ITEM_INSERT,
                             ST_ITEM_MOVE, ST_ITEM_UPDATE,     ST_ITEM_DELETE, ST_LABEL_RENAME};
    int n_statements = cfg->p_related > 0 ? 12 : 7;
    related_statements(sql + 7, sizeof(sql[0]));
    snprintf(sql[0], sizeof(sql[0]),
             "update %s set data = coalesce(data, '{}'::jsonb) || %s where id = $3::bigint", t,
             extra);
    snprintf(sql[1], sizeof(sql[1]),
             "insert into %s (name, data) values ($3::text, "
             "jsonb_build_object('note', 'inserted by the load generator') || %s) returning id",
             t, extra);
    snprintf(sql[2], sizeof(sql[2]), "delete from %s where id = $1::bigint", t);
    snprintf(sql[3], sizeof(sql[3]),
             "delete from %s where id = $1::bigint returning name, data::text", t);
    snprintf(sql[4], sizeof(sql[4]),
             "insert into %s (id, name, data) overriding system value "
             "values ($3::bigint, $4::text, coalesce($5::jsonb, '{}'::jsonb) || %s)",
             t, extra);
    snprintf(sql[5], sizeof(sql[5]),
             "with d as (delete from %s where id = $3::bigint returning id, name, data) "
             "insert into %s (id, name, data) overriding system value "
             "select id, name, coalesce(data, '{}'::jsonb) || %s from d",
             t, t, extra);
    /* A big update skips the rows others hold and the hot keys: it never
     * waits, so it is never the victim of a deadlock, and it holds no hot
     * row for the second or so it takes, during which everyone would
     * queue behind it. */
    snprintf(sql[6], sizeof(sql[6]),
             "update %s as t set data = coalesce(t.data, '{}'::jsonb) || %s || "
             "'{\"big\": true}'::jsonb "
             "from (select id from %s where id between $3::bigint and $4::bigint "
             "and id <> all($5::bigint[]) order by id for update skip locked) as s "
             "where t.id = s.id",
             t, extra, t);

    char set[64];
    snprintf(set, sizeof(set), "set lock_timeout = %lld", cfg->lock_timeout_ms);
    PGresult *r = PQexec(w->conn, set);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok && cfg->deadlock_timeout_ms > 0) {
        /* Only a superuser (or a role granted SET on it) may lower it;
         * otherwise the server's setting stays, which is fine. */
        snprintf(set, sizeof(set), "set deadlock_timeout = %lld", cfg->deadlock_timeout_ms);
        r = PQexec(w->conn, set);
        if (PQresultStatus(r) != PGRES_COMMAND_OK &&
            !atomic_exchange(&shared.deadlock_timeout_warned, true))
            log_info("cannot set deadlock_timeout (%s): keeping the server's",
                     PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
        PQclear(r);
    }
    for (int i = 0; ok && i < n_statements; i++) {
        r = PQprepare(w->conn, names[i], sql[i], 0, NULL);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok && log_slot())
            log_error("connection %d: preparing the workload failed, retrying: %s", w->index,
                      conn_error(w->conn, msg, sizeof(msg)));
        PQclear(r);
    }
    if (!ok) {
        PQfinish(w->conn);
        w->conn = NULL;
        return -1;
    }
    worker_set_cancel(w);
    if (w->ever_connected)
        count(C_RECONNECTS, 1);
    w->ever_connected = true;
    return 0;
}

/*
 * Classifies the failed result r (NULL: no result at all) of the worker's
 * last statement into w->failure, counts it, and prints an unexpected error
 * the first time its SQLSTATE is seen.  Always returns -1, for the caller
 * to return.
 */
static int worker_fail(Worker *w, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!w->conn || PQstatus(w->conn) != CONNECTION_OK) {
        w->failure = FAIL_LOST;
        return -1;
    }
    if (state && strcmp(state, "40P01") == 0) {
        w->failure = FAIL_DEADLOCK;
        count(C_DEADLOCKS, 1);
    } else if (state && strcmp(state, "40001") == 0) {
        w->failure = FAIL_SERIALIZATION;
        count(C_SERIALIZATION, 1);
    } else if (state && strcmp(state, "55P03") == 0) {
        w->failure = FAIL_LOCK_TIMEOUT;
        count(C_LOCK_TIMEOUTS, 1);
    } else if (state && strcmp(state, "57014") == 0 && stopping()) {
        w->failure = FAIL_CANCELED;
    } else {
        w->failure = FAIL_OTHER;
        count(C_ERRORS, 1);
        const char *key = state ? state : "local";
        bool first = true;
        pthread_mutex_lock(&shared.seen_lock);
        for (int i = 0; i < shared.n_seen && first; i++)
            first = strcmp(shared.seen_states[i], key) != 0;
        if (first && shared.n_seen < 64)
            snprintf(shared.seen_states[shared.n_seen++], sizeof(shared.seen_states[0]), "%s", key);
        pthread_mutex_unlock(&shared.seen_lock);
        if (first) {
            char msg[512];
            const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
            log_warn("connection %d: unexpected error %s: %s (further errors of this kind are "
                     "only counted)",
                     w->index, key, primary ? primary : conn_error(w->conn, msg, sizeof(msg)));
        }
    }
    return -1;
}

/*
 * Runs one statement of the worker's transaction: a plain SQL string when
 * n_params is negative, else the prepared statement named stmt.  On success
 * returns 0 and, when out is not NULL, hands the result to the caller, who
 * PQclears it.  On failure returns -1 with w->failure set.
 */
static int run(Worker *w, const char *stmt, int n_params, const char *const *params, PGresult **out)
{
    if (out)
        *out = NULL;
    PGresult *r = n_params < 0 ? PQexec(w->conn, stmt)
                               : PQexecPrepared(w->conn, stmt, n_params, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        worker_fail(w, r);
        PQclear(r);
        return -1;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

/* Runs a prepared write whose first two parameters are the worker's next
 * serial and its index, followed by the n extra text parameters given.
 * Returns the rows it changed (>= 0) or -1 on failure. */
static long long run_write(Worker *w, const char *stmt, int n, const char *const *more,
                           PGresult **out)
{
    char serial[24];
    snprintf(serial, sizeof(serial), "%lld", ++w->serial);
    const char *params[6] = {serial, w->w_text, NULL, NULL, NULL, NULL};
    for (int i = 0; i < n && i < 4; i++)
        params[2 + i] = more[i];
    PGresult *r = NULL;
    if (run(w, stmt, 2 + n, params, &r) < 0)
        return -1;
    long long rows = atoll(PQcmdTuples(r));
    if (out)
        *out = r;
    else
        PQclear(r);
    return rows;
}

/* Tells whether key lies in the range of a big update in progress. */
static bool in_big_range(long long key)
{
    if (atomic_load_explicit(&shared.active_bigs, memory_order_relaxed) == 0)
        return false;
    for (long long i = 0; i < shared.n_workers; i++) {
        const Worker *o = &shared.workers[i];
        long long lo = atomic_load_explicit(&o->big_lo, memory_order_relaxed);
        if (lo > 0 && key >= lo && key <= atomic_load_explicit(&o->big_hi, memory_order_relaxed))
            return true;
    }
    return false;
}

/*
 * Returns a key to update: unless cold, with probability --p-hot one of
 * the hot keys; else a uniform key up to the largest known one, preferably
 * outside the ranges of big updates in progress (a big update holds its
 * rows for a second or more, and whoever waits for one of them holds up
 * everyone behind its own rows).
 */
static long long pick_key(Worker *w, bool cold)
{
    if (!cold && shared.n_hot > 0 && rng_chance(&w->rng, shared.cfg->p_hot))
        return shared.hot_keys[rng_range(&w->rng, 0, shared.n_hot - 1)];
    long long max_id = atomic_load_explicit(&shared.max_id, memory_order_relaxed);
    long long key = rng_range(&w->rng, 1, max_id);
    for (int attempt = 0; attempt < 8 && in_big_range(key); attempt++)
        key = rng_range(&w->rng, 1, max_id);
    return key;
}

/* Returns a uniform key up to the largest known one that is not hot, so
 * that deletes leave the hot rows in place (re-inserts may take them). */
static long long pick_cold_key(Worker *w)
{
    for (;;) {
        long long id = pick_key(w, true);
        bool hot = false;
        for (int i = 0; i < shared.n_hot && !hot; i++)
            hot = shared.hot_keys[i] == id;
        if (!hot || shared.n_hot >= atomic_load(&shared.max_id))
            return id;
    }
}

/* Updates n keys, one statement each, in random order (that order is what
 * makes concurrent transactions deadlock on the hot rows).  Returns the
 * rows changed or -1. */
static long long step_updates(Worker *w, int n)
{
    long long rows = 0;
    for (int i = 0; i < n; i++) {
        if (stopping())
            return -1;
        char id[24];
        snprintf(id, sizeof(id), "%lld", pick_key(w, false));
        const char *p[1] = {id};
        long long k = run_write(w, ST_UPDATE, 1, p, NULL);
        if (k < 0)
            return -1;
        rows += k;
    }
    return rows;
}

/* Inserts n new rows with generated keys and remembers the largest key in
 * w->tx_max_id.  Returns the rows inserted or -1. */
static long long step_insert(Worker *w, int n, long long *max_id)
{
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof(name), "load w%d n%lld", w->index, w->serial + 1);
        const char *p[1] = {name};
        PGresult *r = NULL;
        if (run_write(w, ST_INSERT, 1, p, &r) < 0)
            return -1;
        long long id = PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : 0;
        PQclear(r);
        if (id > *max_id)
            *max_id = id;
    }
    return n;
}

/* Deletes one random key that is not hot.  Returns the rows deleted (0
 * when the key was gone already) or -1. */
static long long step_delete(Worker *w)
{
    char id[24];
    snprintf(id, sizeof(id), "%lld", pick_cold_key(w));
    const char *p[1] = {id};
    PGresult *r = NULL;
    if (run(w, ST_DELETE, 1, p, &r) < 0)
        return -1;
    long long rows = atoll(PQcmdTuples(r));
    PQclear(r);
    return rows;
}

/*
 * Deletes one key (hot half the time) and inserts it again with the same
 * key, either in two statements or in one (a data-modifying WITH), so that
 * tracking sees both shapes.  Returns the rows changed (2, or 0 when the
 * key was gone) or -1.
 */
static long long step_reinsert(Worker *w)
{
    bool hot = shared.n_hot > 0 && rng_chance(&w->rng, 0.5);
    long long key =
        hot ? shared.hot_keys[rng_range(&w->rng, 0, shared.n_hot - 1)] : pick_cold_key(w);
    char id[24];
    snprintf(id, sizeof(id), "%lld", key);
    if (rng_chance(&w->rng, 0.5)) {
        const char *p[1] = {id};
        long long k = run_write(w, ST_REINSERT_SINGLE, 1, p, NULL);
        return k < 0 ? -1 : 2 * k;
    }
    const char *p[1] = {id};
    PGresult *r = NULL;
    if (run(w, ST_DELETE_RETURN, 1, p, &r) < 0)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    const char *more[3] = {id, PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0),
                           PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1)};
    long long k = run_write(w, ST_REINSERT, 3, more, NULL);
    PQclear(r);
    return k < 0 ? -1 : 1 + k;
}

/* Updates --big-rows consecutive keys (but the hot ones) from a random
 * start in one statement, far more than one batch of the syncer, and
 * announces the range until the transaction ends (see big_range_clear).
 * Returns the rows changed or -1. */
static long long step_big(Worker *w)
{
    long long n = shared.cfg->big_rows;
    long long max_id = atomic_load(&shared.max_id);
    long long lo = rng_range(&w->rng, 1, max_id - n + 1 > 1 ? max_id - n + 1 : 1);
    if (atomic_load(&w->big_lo) == 0)
        atomic_fetch_add(&shared.active_bigs, 1);
    atomic_store(&w->big_hi, lo + n - 1);
    atomic_store(&w->big_lo, lo);
    char slo[24], shi[24];
    snprintf(slo, sizeof(slo), "%lld", lo);
    snprintf(shi, sizeof(shi), "%lld", lo + n - 1);
    const char *p[3] = {slo, shi, shared.hot_keys_text};
    return run_write(w, ST_BIG, 3, p, NULL);
}

/* Withdraws the worker's big range, once its transaction has ended. */
static void big_range_clear(Worker *w)
{
    if (atomic_load(&w->big_lo) == 0)
        return;
    atomic_store(&w->big_lo, 0);
    atomic_fetch_sub(&shared.active_bigs, 1);
}

/*
 * Opens a savepoint, updates one to three keys (possibly hot) and maybe
 * inserts a row inside it, then rolls back to the savepoint (the work and
 * its row locks vanish) or releases it (the work stays, under the top-level
 * transaction id).  Returns the rows that stay changed or -1.
 */
static long long step_savepoint(Worker *w, bool roll_back, long long *max_id)
{
    long long inner_max = 0;
    if (run(w, "savepoint load_generator", -1, NULL, NULL) < 0)
        return -1;
    long long rows = step_updates(w, (int)rng_range(&w->rng, 1, 3));
    if (rows < 0)
        return -1;
    if (rng_chance(&w->rng, 0.5)) {
        long long k = step_insert(w, 1, &inner_max);
        if (k < 0)
            return -1;
        rows += k;
    }
    if (roll_back) {
        if (run(w, "rollback to savepoint load_generator", -1, NULL, NULL) < 0)
            return -1;
        return 0;
    }
    if (run(w, "release savepoint load_generator", -1, NULL, NULL) < 0)
        return -1;
    if (inner_max > *max_id)
        *max_id = inner_max;
    return rows;
}

/*
 * Keeps the transaction open, idle, for ms milliseconds (so that it commits
 * after transactions with higher ids), then updates the newest committed
 * row, which a transaction newer than this one most likely created.
 * Returns the rows changed or -1 (also when the run stops meanwhile).
 */
static long long step_sleep(Worker *w, int ms)
{
    if (!sleep_until(now_ns() + (long long)ms * 1000000LL))
        return -1;
    char id[24];
    snprintf(id, sizeof(id), "%lld", atomic_load(&shared.max_id));
    const char *p[1] = {id};
    return run_write(w, ST_UPDATE, 1, p, NULL);
}

/*
 * Writes the related tables once: inserts an item under a random key
 * (possibly hot), moves an item to another key, changes an item's
 * quantity and label, deletes an item, or renames a label (whose items'
 * documents all change).  An item id that is gone changes nothing.  A
 * transaction at REPEATABLE READ renames no label: its walk to the
 * documents reads its own snapshot and can miss an item that references
 * the label and committed meanwhile (docs/design.md, "Nested documents",
 * a known limit); it changes an item instead.  Returns the rows changed
 * or -1.
 */
static long long step_related(Worker *w, bool repeatable_read)
{
    static const char *const stmts[] = {ST_ITEM_INSERT, ST_ITEM_MOVE, ST_ITEM_UPDATE,
                                        ST_ITEM_DELETE, ST_LABEL_RENAME};
    static const int n_params[] = {3, 2, 2, 1, 2};
    enum { INSERT, MOVE, UPDATE, DELETE, RENAME } op;
    int dice = (int)rng_range(&w->rng, 0, 99);
    op = dice < 30 ? INSERT : dice < 50 ? MOVE : dice < 70 ? UPDATE : dice < 85 ? DELETE : RENAME;
    if (op == RENAME && repeatable_read)
        op = UPDATE;
    long long label = rng_range(&w->rng, 1, shared.n_labels);
    long long item = rng_range(&w->rng, 1, atomic_load(&shared.max_item));
    long long first = op == INSERT ? pick_key(w, false) : op == RENAME ? label : item;
    long long second = op == MOVE ? pick_key(w, false) : op == RENAME ? ++w->serial : label;
    char a[24], b[24], c[24];
    snprintf(a, sizeof(a), "%lld", first);
    snprintf(b, sizeof(b), "%lld", second);
    snprintf(c, sizeof(c), "%lld", rng_range(&w->rng, 1, 9));
    const char *p[3] = {a, b, c};
    PGresult *r = NULL;
    if (run(w, stmts[op], n_params[op], p, &r) < 0)
        return -1;
    long long rows = atoll(PQcmdTuples(r));
    if (op == INSERT && PQntuples(r) == 1) {
        long long id = atoll(PQgetvalue(r, 0, 0));
        long long known = atomic_load(&shared.max_item);
        while (id > known && !atomic_compare_exchange_weak(&shared.max_item, &known, id)) {
        }
    }
    PQclear(r);
    return rows;
}

/* Decides what the next transaction does, from the --p-* probabilities.
 * In fixed-rate mode there are no big and no sleeping transactions. */
static Plan plan_transaction(Worker *w)
{
    const Config *cfg = shared.cfg;
    Plan p;
    memset(&p, 0, sizeof(p));
    uint64_t *rng = &w->rng;
    bool paced = cfg->rate > 0;

    p.n_updates = (int)rng_range(rng, 1, 10);
    p.steps[p.n_steps++] = STEP_UPDATES;
    p.planned_rows = p.n_updates;
    if (rng_chance(rng, cfg->p_insert)) {
        p.n_inserts = (int)rng_range(rng, 1, 3);
        p.steps[p.n_steps++] = STEP_INSERT;
        p.planned_rows += p.n_inserts;
    }
    if (rng_chance(rng, cfg->p_delete)) {
        p.steps[p.n_steps++] = STEP_DELETE;
        p.planned_rows += 1;
    }
    if (rng_chance(rng, cfg->p_reinsert)) {
        p.steps[p.n_steps++] = STEP_REINSERT;
        p.planned_rows += 2;
    }
    if (!paced && rng_chance(rng, cfg->p_big))
        p.steps[p.n_steps++] = STEP_BIG;
    if (rng_chance(rng, cfg->p_related)) {
        p.steps[p.n_steps++] = STEP_RELATED;
        p.planned_rows += 1;
    }
    if (rng_chance(rng, cfg->p_savepoint)) {
        p.steps[p.n_steps++] = STEP_SAVEPOINT;
        p.savepoint_rollback = rng_chance(rng, 0.5);
        p.planned_rows += p.savepoint_rollback ? 0 : 2;
    }
    /* Shuffled, so that the first write (which assigns the transaction id)
     * is any kind of work. */
    for (int i = p.n_steps - 1; i > 0; i--) {
        int j = (int)rng_range(rng, 0, i);
        Step s = p.steps[i];
        p.steps[i] = p.steps[j];
        p.steps[j] = s;
    }
    /* A big update comes first: rows the transaction locked before it
     * would stay locked for as long as the big update runs. */
    for (int i = 1; i < p.n_steps; i++) {
        if (p.steps[i] == STEP_BIG) {
            p.steps[i] = p.steps[0];
            p.steps[0] = STEP_BIG;
        }
    }
    /*
     * A sleeping transaction starts by inserting (which assigns its id),
     * sleeps, and only then does the rest.  Before the sleep it holds no
     * row that others can want: a pending update of an ordinary row, met by
     * a transaction that holds hot rows, would queue everyone behind the
     * sleep.
     */
    if (!paced && cfg->sleep_max_ms > 0 && rng_chance(rng, cfg->p_sleep)) {
        int at = 0;
        for (int i = 0; i < p.n_steps; i++) {
            if (p.steps[i] == STEP_INSERT)
                at = i;
        }
        if (p.n_inserts == 0) {
            p.n_inserts = (int)rng_range(rng, 1, 3);
            p.planned_rows += p.n_inserts;
            at = p.n_steps++;
        }
        p.steps[at] = p.steps[0];
        p.steps[0] = STEP_INSERT;
        memmove(&p.steps[2], &p.steps[1], (size_t)(p.n_steps - 1) * sizeof(Step));
        p.steps[1] = STEP_SLEEP;
        p.n_steps++;
        p.sleep_ms = (int)rng_range(rng, 1, cfg->sleep_max_ms);
        p.planned_rows += 1;
    }
    p.rollback = rng_chance(rng, cfg->p_rollback);
    /* Big and sleeping transactions stay at READ COMMITTED: at REPEATABLE
     * READ they would nearly always fail to serialise, and they are rare
     * enough already. */
    bool long_running = p.sleep_ms > 0;
    for (int i = 0; i < p.n_steps; i++)
        long_running = long_running || p.steps[i] == STEP_BIG;
    p.repeatable_read = !long_running && rng_chance(rng, cfg->p_repeatable_read);
    return p;
}

/*
 * In fixed-rate mode, books time for rows changed rows on the shared
 * schedule and waits for the start of that time (returns at once
 * otherwise).  Time not used when due is not made up for later, so the
 * rate is an upper bound.  Returns false when the run stops.
 */
static bool pace(long long rows)
{
    long long rate = shared.cfg->rate;
    if (rate <= 0)
        return !stopping();
    long long now = now_ns();
    pthread_mutex_lock(&shared.pacer_lock);
    if (shared.pacer_next_ns < now)
        shared.pacer_next_ns = now;
    long long slot = shared.pacer_next_ns;
    shared.pacer_next_ns += rows * 1000000000LL / rate;
    pthread_mutex_unlock(&shared.pacer_lock);
    return sleep_until(slot);
}

/* In fixed-rate mode, gives back the time booked for rows that did not
 * change after all (rolled back, or keys gone), so that the committed
 * rows, not the planned ones, meet the rate. */
static void pace_refund(long long rows)
{
    long long rate = shared.cfg->rate;
    if (rate <= 0 || rows <= 0)
        return;
    pthread_mutex_lock(&shared.pacer_lock);
    shared.pacer_next_ns -= rows * 1000000000LL / rate;
    pthread_mutex_unlock(&shared.pacer_lock);
}

/*
 * Runs the planned transaction p to its end: committed, rolled back on
 * purpose, rolled back after an error (deadlock, serialisation failure,
 * lock timeout, anything else) or after the run began to stop.  When the
 * connection is lost it is closed, for the worker loop to reconnect.  The
 * counters see a transaction's rows and kinds only once it committed.
 * Returns the rows it committed.
 */
static long long execute_plan(Worker *w, const Plan *plan)
{
    const Plan p = *plan;
    w->failure = FAIL_NONE;
    w->tx_rows = 0;
    w->tx_max_id = 0;
    memset(w->did, 0, sizeof(w->did));
    const char *begin = p.repeatable_read ? "begin isolation level repeatable read" : "begin";
    if (run(w, begin, -1, NULL, NULL) < 0)
        goto failed;

    for (int i = 0; i < p.n_steps; i++) {
        if (stopping())
            goto failed;
        long long rows = -1;
        Counter kind = C_COUNT;
        switch (p.steps[i]) {
        case STEP_UPDATES:
            rows = step_updates(w, p.n_updates);
            kind = K_UPDATE;
            break;
        case STEP_INSERT:
            rows = step_insert(w, p.n_inserts, &w->tx_max_id);
            kind = K_INSERT;
            break;
        case STEP_DELETE:
            rows = step_delete(w);
            kind = K_DELETE;
            break;
        case STEP_REINSERT:
            rows = step_reinsert(w);
            kind = K_REINSERT;
            break;
        case STEP_BIG:
            rows = step_big(w);
            kind = K_BIG;
            break;
        case STEP_SAVEPOINT:
            rows = step_savepoint(w, p.savepoint_rollback, &w->tx_max_id);
            kind = p.savepoint_rollback ? K_SAVEPOINT_ROLLBACK : K_SAVEPOINT_RELEASE;
            if (rows >= 0)
                w->did[kind] = true; /* it counts even when nothing stays changed */
            break;
        case STEP_SLEEP:
            rows = step_sleep(w, p.sleep_ms);
            kind = K_SLEEP;
            if (rows >= 0)
                w->did[kind] = true;
            break;
        case STEP_RELATED:
            rows = step_related(w, p.repeatable_read);
            kind = K_RELATED;
            break;
        case STEP_MAX:
            break;
        }
        if (rows < 0)
            goto failed;
        if (rows > 0 && kind != C_COUNT)
            w->did[kind] = true;
        w->tx_rows += rows;
    }

    if (p.rollback) {
        if (run(w, "rollback", -1, NULL, NULL) < 0)
            goto failed;
        count(C_ROLLED_BACK, 1);
        count(K_ROLLBACK, 1);
        return 0;
    }
    PGresult *r = NULL;
    if (run(w, "commit", -1, NULL, &r) < 0)
        goto failed;
    /* COMMIT of an aborted transaction answers ROLLBACK, not an error. */
    bool committed = strcmp(PQcmdStatus(r), "COMMIT") == 0;
    PQclear(r);
    if (!committed) {
        count(C_ROLLED_BACK, 1);
        return 0;
    }
    count(C_COMMITTED, 1);
    count(C_ROWS, (unsigned long long)w->tx_rows);
    for (int c = K_UPDATE; c < K_ROLLBACK; c++) {
        if (w->did[c])
            count((Counter)c, 1);
    }
    long long known = atomic_load(&shared.max_id);
    while (w->tx_max_id > known &&
           !atomic_compare_exchange_weak(&shared.max_id, &known, w->tx_max_id)) {
    }
    return w->tx_rows;

failed:
    count(C_ROLLED_BACK, 1);
    if (w->failure == FAIL_LOST) {
        if (!stopping() && log_slot()) {
            char msg[512];
            log_warn("connection %d: lost, reconnecting: %s", w->index,
                     conn_error(w->conn, msg, sizeof(msg)));
        }
        worker_disconnect(w);
        return 0;
    }
    PGresult *rb = PQexec(w->conn, "rollback");
    if (PQresultStatus(rb) != PGRES_COMMAND_OK)
        worker_disconnect(w); /* closing the connection rolls back too */
    PQclear(rb);
    return 0;
}

/* Plans the worker's next transaction, waits for its turn in fixed-rate
 * mode and runs it. */
static void run_transaction(Worker *w)
{
    Plan p = plan_transaction(w);
    if (!pace(p.planned_rows))
        return;
    long long rows = execute_plan(w, &p);
    big_range_clear(w);
    pace_refund(p.planned_rows - rows);
}

/*
 * The thread of one connection: connects (retrying with backoff while the
 * server is unreachable) and runs transactions until the run stops, then
 * closes its connection and marks itself done.
 */
static void *worker_main(void *arg)
{
    Worker *w = arg;
    long long backoff_ms = 100;
    while (!stopping()) {
        if (!w->conn) {
            if (worker_connect(w) < 0) {
                sleep_until(now_ns() + backoff_ms * 1000000LL);
                backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
                continue;
            }
            backoff_ms = 100;
        }
        run_transaction(w);
    }
    worker_disconnect(w);
    atomic_store(&w->done, true);
    return NULL;
}

/* ---- the main thread ---- */

/* Cancels the running statement of every worker that has not finished yet;
 * used once the run is stopping, so sleeps, lock waits and big updates end
 * now instead of at their own pace. */
static void cancel_workers(Worker *workers, long long n)
{
    char errbuf[256];
    for (long long i = 0; i < n; i++) {
        Worker *w = &workers[i];
        if (atomic_load(&w->done))
            continue;
        pthread_mutex_lock(&w->cancel_lock);
        if (w->cancel)
            (void)PQcancel(w->cancel, errbuf, sizeof(errbuf));
        pthread_mutex_unlock(&w->cancel_lock);
    }
}

/* Prints one stats line: the rates since the previous line and the totals. */
static void print_stats(double elapsed_s, double interval_s, unsigned long long prev_committed,
                        unsigned long long prev_rows)
{
    unsigned long long committed = counter(C_COMMITTED), rows = counter(C_ROWS);
    log_info("%.0fs: %.0f tx/s, %.0f rows/s; committed=%llu rows=%llu rolled_back=%llu "
             "deadlocks=%llu serialization_failures=%llu lock_timeouts=%llu errors=%llu",
             elapsed_s, (double)(committed - prev_committed) / interval_s,
             (double)(rows - prev_rows) / interval_s, committed, rows, counter(C_ROLLED_BACK),
             counter(C_DEADLOCKS), counter(C_SERIALIZATION), counter(C_LOCK_TIMEOUTS),
             counter(C_ERRORS));
}

/* Prints the totals: a readable summary on stderr and, on stdout, the line
 * "totals: seconds=... connections=... name=value ..." with every counter. */
static void print_totals(double elapsed_s)
{
    double secs = elapsed_s > 0 ? elapsed_s : 1;
    log_info("done after %.1f s: %llu committed (%.0f/s), %llu rolled back, %llu rows changed "
             "(%.0f/s)",
             elapsed_s, counter(C_COMMITTED), (double)counter(C_COMMITTED) / secs,
             counter(C_ROLLED_BACK), counter(C_ROWS), (double)counter(C_ROWS) / secs);
    log_info("aborted by the server: %llu deadlocks, %llu serialization failures, %llu lock "
             "timeouts; %llu other errors; %llu reconnects",
             counter(C_DEADLOCKS), counter(C_SERIALIZATION), counter(C_LOCK_TIMEOUTS),
             counter(C_ERRORS), counter(C_RECONNECTS));
    log_info("committed by kind: update %llu, insert %llu, delete %llu, reinsert %llu, big %llu, "
             "savepoint-rollback %llu, savepoint-release %llu, sleep %llu, related %llu; rolled "
             "back on purpose: %llu",
             counter(K_UPDATE), counter(K_INSERT), counter(K_DELETE), counter(K_REINSERT),
             counter(K_BIG), counter(K_SAVEPOINT_ROLLBACK), counter(K_SAVEPOINT_RELEASE),
             counter(K_SLEEP), counter(K_RELATED), counter(K_ROLLBACK));
    printf("totals: seconds=%.2f connections=%lld", elapsed_s, shared.cfg->connections);
    for (int c = 0; c < C_COUNT; c++)
        printf(" %s=%llu", counter_names[c], counter((Counter)c));
    printf("\n");
    fflush(stdout);
}

/* Waits up to timeout_ns nanoseconds (negative: not at all) for one of
 * the signals in set.  Returns the signal number, or 0 when the time ran
 * out. */
static int wait_signal(const sigset_t *set, long long timeout_ns)
{
    if (timeout_ns < 0)
        timeout_ns = 0;
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL,
                          .tv_nsec = timeout_ns % 1000000000LL};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return sig;
        if (errno == EAGAIN)
            return 0;
        /* EINTR: another signal; wait on with a shorter slice. */
        ts.tv_sec = 0;
        ts.tv_nsec = 10000000;
    }
}

static const char summary[] =
    "Hammers a table of the demo's shape (id bigint identity primary key, name text, data jsonb)\n"
    "with N connections of concurrent, colliding transactions: updates of 1..10 random keys in\n"
    "random order with a pool of hot keys (lock waits, deadlocks), inserts, deletes, delete and\n"
    "re-insert of one key, updates of --big-rows keys at once, savepoints rolled back or\n"
    "released, transactions that sleep with writes pending (commits out of id order), whole\n"
    "rollbacks and repeatable-read transactions (serialisation failures).  Each --p-* is the\n"
    "probability that a transaction includes that kind of work.  Deadlocks, serialisation\n"
    "failures and lock timeouts roll back and are counted; other errors are printed once per\n"
    "kind; a lost connection is reopened.  Prints a stats line every second and, at the end\n"
    "(--duration, SIGINT or SIGTERM: open transactions are rolled back), the totals, the last\n"
    "line on stdout being \"totals: committed=N rolled_back=N rows=N ... update=N insert=N ...\".\n"
    "With --rate, changed rows are paced to that many per second across connections, only small\n"
    "transactions run, and every written row's data gets \"ts\" (clock_timestamp() in epoch\n"
    "seconds) for latency measurements.  With --p-related, transactions also write the related\n"
    "tables of sql/demo_nested.sql, whose rows the table's documents nest.  Exit status: 0 done,\n"
    "1 cannot start, 2 bad usage.";

int main(int argc, char **argv)
{
    Config cfg;
    memset(&cfg, 0, sizeof(cfg));
    const Setting table[] = {
        {"connections", SETTING_INT, "32", "TXIDSYNC_LOAD_CONNECTIONS", "N",
         "number of concurrent connections, one thread each", NULL, 1, 1000, &cfg.connections, 0},
        {"duration", SETTING_INT, "0", "TXIDSYNC_LOAD_DURATION", "SECONDS",
         "stop after this many seconds; 0 runs until SIGINT or SIGTERM", NULL, 0, 1e9,
         &cfg.duration_s, 0},
        {"seed", SETTING_INT, "0", NULL, "N",
         "seed of the random choices; 0 picks one from time and pid (printed at start)", NULL, 0,
         9e18, &cfg.seed, 0},
        {"pg", SETTING_STRING, "", "TXIDSYNC_PG", "CONNINFO",
         "libpq connection string or URI; empty uses libpq's PG* environment", NULL, 0, 0,
         &cfg.conninfo, 0},
        {"table", SETTING_STRING, "some_table", "TXIDSYNC_TABLE", "NAME",
         "table to write (id bigint identity primary key, name text, data jsonb)", NULL, 0, 0,
         &cfg.table, 0},
        {"rate", SETTING_INT, "0", "TXIDSYNC_LOAD_RATE", "ROWS_PER_SECOND",
         "fixed-rate mode: at most this many changed rows per second across connections, small "
         "transactions only, data.ts set on every written row; 0 runs as fast as possible",
         NULL, 0, 1e9, &cfg.rate, 0},
        {"hot-rows", SETTING_INT, "20", NULL, "N",
         "size of the pool of hot keys that concurrent transactions collide on", NULL, 0, 100000,
         &cfg.hot_rows, 0},
        {"p-hot", SETTING_DOUBLE, "0.1", NULL, "P", "probability that an updated key is a hot one",
         NULL, 0, 1, &cfg.p_hot, 0},
        {"p-insert", SETTING_DOUBLE, "0.1", NULL, "P",
         "probability that a transaction inserts 1..3 rows", NULL, 0, 1, &cfg.p_insert, 0},
        {"p-delete", SETTING_DOUBLE, "0.05", NULL, "P",
         "probability that a transaction deletes a (non-hot) row", NULL, 0, 1, &cfg.p_delete, 0},
        {"p-reinsert", SETTING_DOUBLE, "0.05", NULL, "P",
         "probability that a transaction deletes a row and inserts it again with the same key",
         NULL, 0, 1, &cfg.p_reinsert, 0},
        {"p-big", SETTING_DOUBLE, "0.002", NULL, "P",
         "probability that a transaction updates --big-rows consecutive keys in one statement, "
         "skipping hot keys and rows others hold (not with --rate)",
         NULL, 0, 1, &cfg.p_big, 0},
        {"big-rows", SETTING_INT, "12000", NULL, "N", "keys updated by a big transaction", NULL, 1,
         1e9, &cfg.big_rows, 0},
        {"p-savepoint", SETTING_DOUBLE, "0.1", NULL, "P",
         "probability that a transaction works inside a savepoint, then rolls back to it or "
         "releases it (even odds)",
         NULL, 0, 1, &cfg.p_savepoint, 0},
        {"p-sleep", SETTING_DOUBLE, "0.003", NULL, "P",
         "probability that a transaction inserts, sleeps with the insert pending (so it commits "
         "after younger transactions), then does the rest (not with --rate)",
         NULL, 0, 1, &cfg.p_sleep, 0},
        {"sleep-max", SETTING_INT, "3000", NULL, "MS",
         "longest sleep inside a transaction (uniform from 1 ms)", NULL, 0, 3600000,
         &cfg.sleep_max_ms, 0},
        {"p-rollback", SETTING_DOUBLE, "0.05", NULL, "P",
         "probability that a transaction rolls back instead of committing", NULL, 0, 1,
         &cfg.p_rollback, 0},
        {"p-repeatable-read", SETTING_DOUBLE, "0.1", NULL, "P",
         "probability that a transaction runs at REPEATABLE READ (and may fail to serialise)", NULL,
         0, 1, &cfg.p_repeatable_read, 0},
        {"p-related", SETTING_DOUBLE, "0", NULL, "P",
         "probability that a transaction also writes the related tables of sql/demo_nested.sql "
         "(TABLE_items, TABLE_labels): an item inserted, moved to another key, changed or "
         "deleted, or a label renamed",
         NULL, 0, 1, &cfg.p_related, 0},
        {"lock-timeout", SETTING_INT, "5000", NULL, "MS",
         "lock_timeout of every connection; 0 waits forever (deadlocks are still detected)", NULL,
         0, 3600000, &cfg.lock_timeout_ms, 0},
        {"deadlock-timeout", SETTING_INT, "200", NULL, "MS",
         "deadlock_timeout of every connection if the role may set it (a superuser may), so a "
         "deadlock on the hot rows stalls them briefly; 0 keeps the server's",
         NULL, 0, 3600000, &cfg.deadlock_timeout_ms, 0},
        {"stats-interval", SETTING_INT, "1", NULL, "SECONDS",
         "seconds between two stats lines; 0 for none", NULL, 0, 86400, &cfg.stats_interval_s, 0},
        {"log-level", SETTING_ENUM, "info", "TXIDSYNC_LOG_LEVEL", NULL, "lowest level logged",
         "debug|info|warn|error", 0, 0, &cfg.log_level, 0},
    };
    int rc = settings_parse_main(table, sizeof(table) / sizeof(table[0]), PROG, TXIDSYNC_VERSION,
                                 summary, argc, argv);
    if (rc >= 0)
        return rc;
    if (!*cfg.table) {
        fprintf(stderr, PROG ": --table: must not be empty\n");
        return EXIT_USAGE;
    }
    if (*cfg.conninfo) {
        /* libpq's own parse errors may quote parts of the string. */
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(cfg.conninfo, &perr);
        PQfreemem(perr);
        if (!opts) {
            fprintf(stderr, PROG ": --pg: not a valid connection string or URI\n");
            return EXIT_USAGE;
        }
        PQconninfoFree(opts);
    }
    log_set_level((LogLevel)cfg.log_level);
    if (cfg.seed == 0) {
        uint64_t mix = (uint64_t)time(NULL) * 1000003ULL ^ (uint64_t)getpid();
        cfg.seed = (long long)(mix >> 1) | 1;
    }

    shared.cfg = &cfg;
    pthread_mutex_init(&shared.pacer_lock, NULL);
    pthread_mutex_init(&shared.seen_lock, NULL);

    /* Signals are taken by the main thread only, with sigtimedwait: block
     * them before any thread starts, so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char msg[512];
    PGconn *conn = open_connection(cfg.conninfo);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        log_error("cannot connect to postgres: %s", conn_error(conn, msg, sizeof(msg)));
        PQfinish(conn);
        return EXIT_FAILURE_RUN;
    }
    if (table_prepare(conn, &cfg) < 0 || (cfg.p_related > 0 && related_prepare(conn, &cfg) < 0)) {
        PQfinish(conn);
        free(shared.hot_keys);
        free(shared.hot_keys_text);
        return EXIT_FAILURE_RUN;
    }
    PQfinish(conn);
    if (cfg.rate > 0 && (cfg.p_big > 0 || cfg.p_sleep > 0))
        log_info("fixed-rate mode: big and sleeping transactions are left out");
    char how_long[48], how_fast[48];
    if (cfg.duration_s)
        snprintf(how_long, sizeof(how_long), "for %lld s", cfg.duration_s);
    else
        snprintf(how_long, sizeof(how_long), "until SIGINT or SIGTERM");
    if (cfg.rate)
        snprintf(how_fast, sizeof(how_fast), "at most %lld rows/s", cfg.rate);
    else
        snprintf(how_fast, sizeof(how_fast), "as fast as possible");
    log_info("%lld connections on table %s (%s, largest key %lld, %d hot keys), %s, %s, "
             "seed %lld",
             cfg.connections, shared.table_sql, shared.tracked ? "tracked" : "not tracked",
             (long long)atomic_load(&shared.max_id), shared.n_hot, how_long, how_fast, cfg.seed);

    Worker *workers = calloc((size_t)cfg.connections, sizeof(Worker));
    if (!workers) {
        log_error("out of memory");
        free(shared.hot_keys);
        free(shared.hot_keys_text);
        return EXIT_FAILURE_RUN;
    }
    shared.workers = workers;
    shared.n_workers = cfg.connections;
    long long started = 0;
    long long t0 = now_ns();
    for (long long i = 0; i < cfg.connections; i++) {
        Worker *w = &workers[i];
        w->index = (int)i;
        snprintf(w->w_text, sizeof(w->w_text), "%d", w->index);
        w->rng = (uint64_t)cfg.seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i * 0xd1b54a32d192ed03ULL;
        pthread_mutex_init(&w->cancel_lock, NULL);
        atomic_init(&w->done, false);
        atomic_init(&w->big_lo, 0);
        atomic_init(&w->big_hi, 0);
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e != 0) {
            log_error("cannot start thread %lld: %s", i, strerror(e));
            atomic_store(&shared.stop, true);
            break;
        }
        started++;
    }

    long long interval_ns = cfg.stats_interval_s * 1000000000LL;
    long long next_tick = interval_ns > 0 ? t0 + interval_ns : INT64_MAX;
    long long end = cfg.duration_s > 0 ? t0 + cfg.duration_s * 1000000000LL : INT64_MAX;
    unsigned long long prev_committed = 0, prev_rows = 0;
    long long prev_tick = t0;
    while (!stopping()) {
        long long now = now_ns();
        long long deadline = next_tick < end ? next_tick : end;
        int sig = wait_signal(&sigs, deadline - now);
        now = now_ns();
        if (sig) {
            log_info("%s received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        if (now >= end)
            break;
        if (now >= next_tick) {
            print_stats((double)(now - t0) / 1e9, (double)(now - prev_tick) / 1e9, prev_committed,
                        prev_rows);
            prev_committed = counter(C_COMMITTED);
            prev_rows = counter(C_ROWS);
            prev_tick = now;
            next_tick += interval_ns;
            if (next_tick <= now)
                next_tick = now + interval_ns;
        }
    }
    atomic_store(&shared.stop, true);
    long long t_stop = now_ns();

    /* Cancel running statements until every worker has rolled back and
     * closed its connection.  A second signal ends the wait at once. */
    int status = EXIT_OK;
    for (;;) {
        bool all_done = true;
        for (long long i = 0; i < started; i++)
            all_done = all_done && atomic_load(&workers[i].done);
        if (all_done)
            break;
        cancel_workers(workers, started);
        if (wait_signal(&sigs, 100000000LL)) {
            log_warn("second signal: exiting without waiting for the connections");
            print_totals((double)(t_stop - t0) / 1e9);
            _exit(EXIT_FAILURE_RUN);
        }
    }
    for (long long i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        pthread_mutex_destroy(&workers[i].cancel_lock);
    }
    log_debug("stopped in %.2f s", (double)(now_ns() - t_stop) / 1e9);
    if (started < cfg.connections)
        status = EXIT_FAILURE_RUN;
    print_totals((double)(t_stop - t0) / 1e9);
    free(workers);
    free(shared.hot_keys);
    free(shared.hot_keys_text);
    return status;
}
