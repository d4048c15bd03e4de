/*
 * it_cursor_pg: the snapshot cursor and the pg module against the bed's
 * real PostgreSQL, one case per database-level hard case of docs/design.md.
 *
 * Each case tracks a table of its own, drives writers on several libpq
 * connections so that the interleavings really happen (a transaction that
 * starts first and commits last, one larger than the batch, prepared
 * transactions lingering in xip, ...) and syncs with pg_batch_fetch and
 * cursor_advance into an in-memory mirror that applies rows the way a
 * sink with external versions does.  After each catch-up the mirror must
 * equal the committed state of the database — (key, txid, version,
 * deleted) and the document of every live row — as read by
 * pg_state_scan.  Any mismatch prints the case, the key and both sides,
 * and exits 1.
 *
 * The restore case initdb's a second cluster (as the postgres user when
 * run as root) on a free port under $TXIDSYNC_TEST_TMP, restores a
 * pg_dump of this database into it and goes on syncing there; the
 * cluster is stopped and its directory removed at exit, also on failure
 * or SIGTERM/SIGINT.
 *
 * Environment: the bed's PG* variables and PGDATABASE (a database of this
 * test's own), TXIDSYNC_ROOT (for sql/txidsync.sql), TXIDSYNC_TEST_TMP.
 * TXIDSYNC_EXPLAIN_ROWS (default 100000) sizes the EXPLAIN case and
 * TXIDSYNC_EXPLAIN_OUT, when set, receives its plan text.
 * Arguments: case names to run (default: all).
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cursor.h"
#include "pg.h"

#define PROG "it_cursor_pg"

static const char *g_case = "setup";
/* The tracking mode every case tracks its tables in: "side" (the default)
 * or "log" (TXIDSYNC_TRACK_MODE; tests/integration/cursor_log_mode.sh). */
static const char *g_mode = "side";

/* ---- failure and cleanup ---- */

/* The second cluster of the restore case, for cleanup at exit. */
static struct {
    char dir[512]; /* mkdtemp'd directory holding data and socket */
    volatile pid_t postmaster;
} g_cluster;

/* Prepared transaction names start with this (plus our pid), so cleanup
 * rolls back only ours. */
static char g_gid_prefix[64];

/* Prints a failure of the current case and exits 1 (atexit cleanup runs). */
__attribute__((format(printf, 2, 3), noreturn)) static void die_at(int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": case %s: FAILED (line %d): ", g_case, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            die_at(__LINE__, __VA_ARGS__);                                                         \
    } while (0)

/* Runs argv (searched in PATH) and waits for it; as the postgres user when
 * as_postgres and we are root; with its standard output discarded when
 * quiet (initdb and pg_ctl are chatty; errors still reach stderr).
 * Returns the exit status, or -1 when it could not run or died of a
 * signal.  Usable from a signal handler with as_postgres false and an
 * absolute path. */
static int run(bool as_postgres, bool quiet, const char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (quiet) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0)
                dup2(fd, STDOUT_FILENO);
        }
        if (as_postgres && geteuid() == 0) {
            const char *prefix[64] = {"runuser", "-u", "postgres", "--"};
            size_t k = 4;
            for (size_t i = 0; argv[i] && k < 63; i++)
                prefix[k++] = argv[i];
            prefix[k] = NULL;
            execvp(prefix[0], (char *const *)prefix);
        } else {
            execvp(argv[0], (char *const *)argv);
        }
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Sleeps ms milliseconds (async-signal-safe). */
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Stops the second cluster (fast shutdown, then immediate) and removes its
 * directory.  Async-signal-safe, so the signal handler can call it too. */
static void cluster_cleanup(void)
{
    pid_t pm = g_cluster.postmaster;
    if (pm > 0) {
        kill(pm, SIGINT);
        for (int i = 0; i < 300 && kill(pm, 0) == 0; i++) {
            if (i == 100)
                kill(pm, SIGQUIT);
            sleep_ms(100);
        }
        g_cluster.postmaster = 0;
    }
    if (g_cluster.dir[0]) {
        const char *const argv[] = {"/bin/rm", "-rf", g_cluster.dir, NULL};
        run(false, false, argv);
        g_cluster.dir[0] = '\0';
    }
}

/* Rolls back every prepared transaction this process left behind, so a
 * failed run does not leave locks in the bed's cluster. */
static void prepared_cleanup(void)
{
    PGconn *w = PQconnectdb("");
    if (PQstatus(w) == CONNECTION_OK) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "select gid from pg_prepared_xacts where gid like '%s%%' and database = "
                 "current_database()",
                 g_gid_prefix);
        PGresult *res = PQexec(w, sql);
        for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
            snprintf(sql, sizeof sql, "rollback prepared '%s'", PQgetvalue(res, i, 0));
            PQclear(PQexec(w, sql));
        }
        PQclear(res);
    }
    PQfinish(w);
}

static void at_exit(void)
{
    cluster_cleanup();
    prepared_cleanup();
}

static void on_signal(int sig)
{
    cluster_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- writers: plain libpq connections ---- */

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Opens a writer connection (conninfo NULL: the PG* environment). */
static PGconn *writer(const char *conninfo)
{
    PGconn *w = PQconnectdb(conninfo ? conninfo : "");
    CHECK(PQstatus(w) == CONNECTION_OK, "writer connection: %s", PQerrorMessage(w));
    PQsetNoticeProcessor(w, quiet_notice, NULL);
    return w;
}

/* Runs one SQL command (printf format) on w; any error fails the case. */
__attribute__((format(printf, 2, 3))) static void sql(PGconn *w, const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    PGresult *res = PQexec(w, text);
    ExecStatusType st = PQresultStatus(res);
    CHECK(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "sql %s: %s", text,
          PQresultErrorMessage(res));
    PQclear(res);
}

/* Runs a query returning one bigint and returns it. */
__attribute__((format(printf, 2, 3))) static uint64_t sql_u64(PGconn *w, const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    PGresult *res = PQexec(w, text);
    CHECK(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0),
          "sql %s: %s", text, PQresultErrorMessage(res));
    uint64_t v = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* The txid of w's open transaction (it must have written already, so
 * this does not assign anything new). */
static uint64_t txid_of(PGconn *w)
{
    return sql_u64(w, "select txidsync.current_txid()");
}

/* ---- the mirror: what a sink with external versions would hold ---- */

typedef struct Entry {
    char *key; /* NULL: free slot */
    uint64_t txid;
    uint64_t version;
    bool deleted;
    char *doc;
    bool seen; /* marked during a comparison */
} Entry;

typedef struct Mirror {
    Entry *slots;
    size_t cap; /* power of two */
    size_t n;
} Mirror;

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* Returns the slot of key: the entry holding it or the free slot where it
 * would go. */
static Entry *mirror_slot(Mirror *m, const char *key)
{
    size_t i = hash_key(key) & (m->cap - 1);
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

static void mirror_grow(Mirror *m)
{
    Mirror bigger = {.cap = m->cap ? m->cap * 2 : 1024};
    bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
    CHECK(bigger.slots, "out of memory");
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key)
            *mirror_slot(&bigger, m->slots[i].key) = m->slots[i];
    }
    bigger.n = m->n;
    free(m->slots);
    *m = bigger;
}

static void mirror_free(Mirror *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        free(m->slots[i].doc);
    }
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Applies one delivered row as an external-version sink does: a higher
 * version replaces, the same version must be an identical replay, a lower
 * one means versions went backwards, which fails the case. */
static void mirror_apply(Mirror *m, const PgRow *r)
{
    if (m->cap == 0 || (m->n + 1) * 2 > m->cap)
        mirror_grow(m);
    Entry *e = mirror_slot(m, r->key);
    if (e->key) {
        CHECK(r->version >= e->version,
              "key %s: version went backwards: delivered %" PRIu64 " after %" PRIu64, r->key,
              r->version, e->version);
        if (r->version == e->version) {
            CHECK(r->txid == e->txid && r->deleted == e->deleted,
                  "key %s: version %" PRIu64 " delivered twice with different content", r->key,
                  r->version);
            return;
        }
        free(e->doc);
    } else {
        e->key = strdup(r->key);
        CHECK(e->key, "out of memory");
        m->n++;
    }
    e->txid = r->txid;
    e->version = r->version;
    e->deleted = r->deleted;
    e->doc = r->doc ? strndup(r->doc, r->doc_len) : NULL;
}

/* ---- the syncer under test ---- */

typedef struct Syncer {
    PgConn *pg;
    PgTable table;
    Cursor cursor;
    size_t batch_size;
    Mirror mirror;
    size_t batches;
    size_t rows_by_branch[5];
} Syncer;

static void syncer_open(Syncer *s, const char *conninfo, const char *table, size_t batch_size)
{
    char err[512];
    memset(s, 0, sizeof *s);
    s->pg = pg_connect(conninfo, err, sizeof err);
    CHECK(s->pg, "%s", err);
    bool standby = true;
    CHECK(pg_in_recovery(s->pg, &standby, err, sizeof err) == PG_OK, "%s", err);
    CHECK(!standby, "the bed's server says it is in recovery");
    CHECK(pg_table_resolve(s->pg, table, &s->table, err, sizeof err) == PG_OK, "%s", err);
    cursor_init(&s->cursor);
    s->batch_size = batch_size;
}

static void syncer_close(Syncer *s)
{
    pg_table_free(&s->table);
    pg_free(s->pg);
    cursor_free(&s->cursor);
    mirror_free(&s->mirror);
}

/* Checks that a delivered row is one the batch query was asked for, in
 * the branch that returned it. */
static void check_branch(const CursorQuery *q, const PgRow *r)
{
    bool ok = false;
    if (r->branch == 1)
        ok = q->has_xid_at && r->txid == q->xid_at;
    else if (r->branch == 2)
        for (size_t i = 0; i < q->n_xip && !ok; i++)
            ok = q->xip[i] == r->txid;
    else {
        ok = r->txid >= q->xid_next;
        for (size_t i = 0; i < q->n_done && ok; i++)
            ok = q->done[i] != r->txid;
    }
    CHECK(ok, "row %s txid %" PRIu64 " does not belong to branch %d", r->key, r->txid, r->branch);
}

/* Runs one batch: fetch, apply to the mirror, advance the cursor.
 * Returns the number of rows. */
static size_t sync_batch(Syncer *s)
{
    char err[512];
    CursorQuery q;
    cursor_query(&s->cursor, s->batch_size, &q);
    PgBatch b;
    int rc = pg_batch_fetch(s->pg, &s->table, &q, &b, err, sizeof err);
    CHECK(rc == PG_OK, "batch: %s", err);
    for (size_t i = 0; i < b.n_rows; i++) {
        check_branch(&q, &b.rows[i]);
        mirror_apply(&s->mirror, &b.rows[i]);
        s->rows_by_branch[b.rows[i].branch]++;
    }
    const PgRow *last = b.n_rows ? &b.rows[b.n_rows - 1] : NULL;
    rc = cursor_advance(&s->cursor, &b.snapshot, b.n_rows, s->batch_size, last ? last->txid : 0,
                        last ? last->key : NULL, err, sizeof err);
    CHECK(rc == 0, "advance: %s", err);
    size_t n = b.n_rows;
    pg_batch_free(&b);
    s->batches++;
    return n;
}

/* Syncs in batches until one comes back short (caught up); then one more
 * batch with nothing new must deliver nothing.  Returns the number of
 * batches the catch-up took. */
static size_t sync_all(Syncer *s)
{
    size_t batches = 0;
    for (;;) {
        size_t n = sync_batch(s);
        batches++;
        CHECK(batches < 100000, "the cursor does not converge");
        if (n < s->batch_size)
            break;
    }
    size_t again = sync_batch(s);
    CHECK(again == 0, "%zu rows delivered again right after catching up", again);
    return batches;
}

/* Compares one database row with the mirror (callback of pg_state_scan). */
static int compare_row(void *ctx, const PgRow *r)
{
    Mirror *m = ctx;
    Entry *e = m->cap ? mirror_slot(m, r->key) : NULL;
    CHECK(e && e->key, "key %s (txid %" PRIu64 ", version %" PRIu64 ") was never delivered", r->key,
          r->txid, r->version);
    CHECK(e->txid == r->txid && e->version == r->version && e->deleted == r->deleted,
          "key %s: database has txid %" PRIu64 " version %" PRIu64 " deleted %d, mirror has txid "
          "%" PRIu64 " version %" PRIu64 " deleted %d",
          r->key, r->txid, r->version, r->deleted, e->txid, e->version, e->deleted);
    bool same_doc = (!e->doc && !r->doc) || (e->doc && r->doc && strlen(e->doc) == r->doc_len &&
                                             memcmp(e->doc, r->doc, r->doc_len) == 0);
    CHECK(same_doc, "key %s: document differs: database %.*s, mirror %s", r->key, (int)r->doc_len,
          r->doc ? r->doc : "(null)", e->doc ? e->doc : "(null)");
    e->seen = true;
    return 0;
}

/* The mirror must equal the committed state of the tracked table. */
static void check_mirror(Syncer *s)
{
    char err[512];
    for (size_t i = 0; i < s->mirror.cap; i++)
        s->mirror.slots[i].seen = false;
    int rc = pg_state_scan(s->pg, &s->table, compare_row, &s->mirror, err, sizeof err);
    CHECK(rc == PG_OK, "state scan: %s", err);
    for (size_t i = 0; i < s->mirror.cap; i++) {
        const Entry *e = &s->mirror.slots[i];
        CHECK(!e->key || e->seen, "key %s is in the mirror but not in the database", e->key);
    }
}

/* Catches up and compares: the invariant of docs/design.md (§4) at a quiet point. */
static size_t sync_and_check(Syncer *s)
{
    size_t batches = sync_all(s);
    check_mirror(s);
    return batches;
}

/* State of a live-key walk: the previous key, for the order check. */
typedef struct LiveWalk {
    Mirror *mirror;
    char prev[256];
    size_t n;
} LiveWalk;

/* pg_live_scan / pg_live_lookup callback: the row must be a live key of
 * the mirror with the same txid and version, and (for the scan) come
 * after the previous one in byte order. */
static int on_live_row(void *ctx, const PgRow *r)
{
    LiveWalk *w = ctx;
    const Entry *e = mirror_slot(w->mirror, r->key);
    CHECK(e->key && !e->deleted && e->txid == r->txid && e->version == r->version && !r->doc,
          "live row %s does not match the mirror", r->key);
    CHECK(w->n == 0 || strcmp(w->prev, r->key) < 0, "live scan: %s after %s", r->key, w->prev);
    snprintf(w->prev, sizeof w->prev, "%s", r->key);
    w->n++;
    return 0;
}

/* pg_live_scan must list exactly the live keys of the mirror, in byte
 * order; pg_live_lookup must find the live ones among keys. */
static void check_live(Syncer *s, const char *const *keys, size_t n_keys, size_t want_found)
{
    char err[512];
    size_t live = 0;
    for (size_t i = 0; i < s->mirror.cap; i++)
        live += s->mirror.slots[i].key && !s->mirror.slots[i].deleted;
    LiveWalk w = {.mirror = &s->mirror};
    CHECK(pg_live_scan(s->pg, &s->table, false, on_live_row, &w, err, sizeof err) == PG_OK, "%s",
          err);
    CHECK(w.n == live, "live scan listed %zu keys, the mirror has %zu live", w.n, live);
    LiveWalk l = {.mirror = &s->mirror};
    CHECK(pg_live_lookup(s->pg, &s->table, keys, n_keys, on_live_row, &l, err, sizeof err) == PG_OK,
          "%s", err);
    CHECK(l.n == want_found, "live lookup found %zu keys, expected %zu", l.n, want_found);
}

static const Entry *mirror_get(Syncer *s, const char *key)
{
    const Entry *e = s->mirror.cap ? mirror_slot(&s->mirror, key) : NULL;
    return e && e->key ? e : NULL;
}

static bool cursor_waits_for(const Syncer *s, uint64_t txid)
{
    for (size_t i = 0; i < s->cursor.n_xip; i++) {
        if (s->cursor.xip[i] == txid)
            return true;
    }
    return false;
}

/* Creates public.<name> (id bigint primary key, v text, n int) with rows
 * 1..rows and tracks it without NOTIFY. */
/* Every txid recorded for table T, in the side table and the log. */
#define TXIDS_OF(T)                                                                                \
    "(select txid from txidsync.rows_" T " union all select txid from txidsync.log_" T ") as x"

static void make_table(PGconn *w, const char *name, int rows)
{
    sql(w, "create table public.%s (id bigint primary key, v text, n int)", name);
    sql(w, "insert into public.%s select g, 'row ' || g, 0 from generate_series(1, %d) g", name,
        rows);
    sql(w, "select txidsync.track('public.%s', false, '%s')", name, g_mode);
}

static void report(const Syncer *s, const char *what)
{
    printf(PROG ": case %s: ok — %s (%zu batches of %zu; rows by branch 1/2/3-4: %zu/%zu/%zu)\n",
           g_case, what, s->batches, s->batch_size, s->rows_by_branch[1], s->rows_by_branch[2],
           s->rows_by_branch[3] + s->rows_by_branch[4]);
}

/* ---- the cases ---- */

/* A transaction that starts first, writes, and commits after a later one
 * was synced: the cursor must keep asking for it (xip) until it ends. */
static void case_late_commit(void)
{
    PGconn *w = writer(NULL), *a = writer(NULL), *b = writer(NULL);
    make_table(w, "c_late", 5);
    Syncer s;
    syncer_open(&s, NULL, "public.c_late", 3);
    sync_and_check(&s);

    sql(a, "begin");
    sql(a, "update public.c_late set v = 'a1', n = n + 1 where id = 1");
    uint64_t ta = txid_of(a);
    sql(b, "begin");
    sql(b, "update public.c_late set v = 'b', n = n + 1 where id = 2");
    uint64_t tb = txid_of(b);
    sql(b, "commit");
    CHECK(ta < tb, "the first transaction got the higher txid (%" PRIu64 " >= %" PRIu64 ")", ta,
          tb);

    sync_and_check(&s);
    CHECK(mirror_get(&s, "2")->txid == tb, "the later transaction was not delivered");
    CHECK(mirror_get(&s, "1")->version == 1, "the open transaction leaked");
    CHECK(cursor_waits_for(&s, ta), "the cursor forgot the open transaction %" PRIu64, ta);
    CHECK(s.cursor.xid_next > tb, "xid_next %" PRIu64 " did not pass %" PRIu64, s.cursor.xid_next,
          tb);

    /* More traffic passes the open transaction by. */
    for (int i = 0; i < 7; i++)
        sql(w, "insert into public.c_late values (%d, 'w', 0)", 100 + i);
    sync_and_check(&s);
    CHECK(cursor_waits_for(&s, ta), "the cursor forgot the open transaction after more batches");

    sql(a, "update public.c_late set v = 'a3' where id = 3");
    sql(a, "insert into public.c_late values (50, 'a50', 0)");
    sql(a, "commit");
    sync_and_check(&s);
    CHECK(mirror_get(&s, "1")->txid == ta && mirror_get(&s, "3")->txid == ta &&
              mirror_get(&s, "50")->txid == ta,
          "the late transaction's rows were not all delivered");
    CHECK(!cursor_waits_for(&s, ta), "the cursor still waits for a finished transaction");
    report(&s, "late commit seen after a later transaction");
    syncer_close(&s);
    PQfinish(w);
    PQfinish(a);
    PQfinish(b);
}

/* One transaction changing far more rows than batch_size: committed
 * between two syncs (branch 3, then branch 1) and committed while the
 * cursor held it in xip (branch 2, then branch 1). */
static void case_big_transaction(void)
{
    PGconn *w = writer(NULL), *big = writer(NULL);
    make_table(w, "c_big", 10);
    Syncer s;
    syncer_open(&s, NULL, "public.c_big", 3);
    sync_and_check(&s);

    sql(big, "begin");
    sql(big, "update public.c_big set n = n + 1");
    sql(big, "insert into public.c_big select g, 'big', 1 from generate_series(11, 40) g");
    sql(big, "commit");
    size_t before = s.rows_by_branch[1];
    size_t batches = sync_and_check(&s);
    CHECK(batches >= 40 / 3, "40 rows came in only %zu batches of 3", batches);
    CHECK(s.rows_by_branch[1] > before, "branch 1 (xid_at) was never used");

    /* Now while the cursor waits for it. */
    sql(big, "begin");
    sql(big, "update public.c_big set n = n + 10 where id <= 25");
    sql(big, "delete from public.c_big where id > 30");
    uint64_t tbig = txid_of(big);
    sql(w, "insert into public.c_big values (1000, 'small', 0)");
    sync_and_check(&s);
    CHECK(cursor_waits_for(&s, tbig), "the open big transaction is not in xip");
    sql(big, "commit");
    size_t before2 = s.rows_by_branch[2];
    sql(w, "insert into public.c_big values (1001, 'small', 0)");
    sync_and_check(&s);
    CHECK(s.rows_by_branch[2] > before2, "branch 2 (xip) was never used");
    CHECK(mirror_get(&s, "40")->deleted && mirror_get(&s, "25")->txid == tbig,
          "the big transaction was not delivered whole");
    report(&s, "transactions of 40 and 35 rows through batches of 3");
    syncer_close(&s);
    PQfinish(w);
    PQfinish(big);
}

/* Delete then re-insert continues the version; so does a delete and
 * re-insert inside one transaction, a primary-key change, and TRUNCATE. */
static void case_delete_reinsert(void)
{
    PGconn *w = writer(NULL);
    make_table(w, "c_delins", 4);
    Syncer s;
    syncer_open(&s, NULL, "public.c_delins", 3);
    sync_and_check(&s);

    /* Versions come from the table's sequence in both modes: only their
     * order per key is checked. */
    uint64_t v1 = mirror_get(&s, "1")->version, v2 = mirror_get(&s, "2")->version;
    sql(w, "delete from public.c_delins where id = 1");
    sync_and_check(&s);
    CHECK(mirror_get(&s, "1")->deleted && mirror_get(&s, "1")->version > v1,
          "the tombstone of key 1 is wrong");
    v1 = mirror_get(&s, "1")->version;
    sql(w, "insert into public.c_delins values (1, 'back', 0)");
    sync_and_check(&s);
    CHECK(!mirror_get(&s, "1")->deleted && mirror_get(&s, "1")->version > v1,
          "the re-insert of key 1 did not continue its version");

    sql(w, "begin");
    sql(w, "delete from public.c_delins where id = 2");
    sql(w, "insert into public.c_delins values (2, 'again', 0)");
    sql(w, "commit");
    sync_and_check(&s);
    CHECK(!mirror_get(&s, "2")->deleted && mirror_get(&s, "2")->version > v2,
          "delete and re-insert in one transaction: version %" PRIu64,
          mirror_get(&s, "2")->version);

    sql(w, "update public.c_delins set id = 30 where id = 3");
    sync_and_check(&s);
    CHECK(mirror_get(&s, "3")->deleted && !mirror_get(&s, "30")->deleted,
          "a primary-key change did not leave a tombstone and a new key");

    /* A swap of keys in one statement (deferred PK) must end with both live. */
    sql(w, "create table public.c_swap (id int primary key deferrable initially deferred, v text)");
    sql(w, "insert into public.c_swap values (1, 'one'), (2, 'two')");
    if (strcmp(g_mode, "log") == 0) {
        /* The log mode's versions need the unique check to wait. */
        PGresult *res = PQexec(w, "select txidsync.track('public.c_swap', false, 'log')");
        CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR &&
                  strstr(PQresultErrorMessage(res), "deferrable"),
              "the log mode took a deferrable primary key: %s", PQresultErrorMessage(res));
        PQclear(res);
    } else {
        sql(w, "select txidsync.track('public.c_swap', false)");
        sql(w, "update public.c_swap set id = 3 - id");
        uint64_t live = sql_u64(w, "select count(*) from txidsync.rows_c_swap where not deleted");
        CHECK(live == 2, "after swapping two keys %" PRIu64 " keys are live in the side table",
              live);
    }

    sql(w, "truncate public.c_delins");
    sql(w, "insert into public.c_delins values (4, 'after truncate', 0)");
    sync_and_check(&s);
    CHECK(mirror_get(&s, "30")->deleted && !mirror_get(&s, "4")->deleted,
          "TRUNCATE was not tracked");
    /* 4 is live, 30 a tombstone, 999 absent, the rest not even a bigint. */
    const char *const lookup[] = {"4", "30", "999", "x\"y\\z", "4"};
    check_live(&s, lookup, 5, 1);
    report(&s, "versions continue across delete, re-insert, key change and truncate");
    syncer_close(&s);
    PQfinish(w);
}

/* Savepoints rolled back and released: what a rolled-back savepoint wrote
 * disappears, the rest carries the top-level txid. */
static void case_savepoints(void)
{
    PGconn *w = writer(NULL), *t = writer(NULL);
    make_table(w, "c_savepoint", 2);
    Syncer s;
    syncer_open(&s, NULL, "public.c_savepoint", 3);
    sync_and_check(&s);

    sql(t, "begin");
    sql(t, "savepoint first"); /* the first write happens in a subtransaction */
    sql(t, "insert into public.c_savepoint values (10, 'kept', 0)");
    sql(t, "release savepoint first");
    sql(t, "savepoint a");
    sql(t, "insert into public.c_savepoint values (11, 'rolled back', 0)");
    sql(t, "update public.c_savepoint set v = 'rolled back' where id = 1");
    sql(t, "rollback to savepoint a");
    sql(t, "savepoint b");
    sql(t, "insert into public.c_savepoint values (12, 'released', 0)");
    sql(t, "update public.c_savepoint set v = 'released' where id = 2");
    sql(t, "release savepoint b");
    sql(t, "savepoint c");
    sql(t, "delete from public.c_savepoint where id = 12");
    sql(t, "rollback to savepoint c");
    uint64_t top = sql_u64(t, "select pg_current_xact_id()::text::bigint + txidsync.txid_offset()");
    sync_and_check(&s); /* while it is open */
    sql(t, "commit");
    sync_and_check(&s);
    CHECK(mirror_get(&s, "10") && mirror_get(&s, "10")->txid == top,
          "a row written in a released savepoint does not carry the top-level txid");
    CHECK(mirror_get(&s, "12") && mirror_get(&s, "12")->txid == top &&
              mirror_get(&s, "2")->txid == top,
          "released savepoint rows missing or not top-level");
    CHECK(!mirror_get(&s, "11"), "a row inserted in a rolled-back savepoint was delivered");
    CHECK(mirror_get(&s, "1")->version == 1, "an update rolled back to a savepoint counted");
    report(&s, "rolled-back savepoints vanish, released ones carry the top-level txid");
    syncer_close(&s);
    PQfinish(w);
    PQfinish(t);
}

/* A prepared transaction lingers in xip across several batches, then
 * commits; another one is rolled back. */
static void case_prepared(void)
{
    PGconn *w = writer(NULL), *p1 = writer(NULL), *p2 = writer(NULL);
    make_table(w, "c_prepared", 6);
    Syncer s;
    syncer_open(&s, NULL, "public.c_prepared", 3);
    sync_and_check(&s);

    sql(p1, "begin");
    sql(p1, "update public.c_prepared set v = 'p1' where id in (1, 2)");
    sql(p1, "insert into public.c_prepared values (100, 'p1', 0)");
    uint64_t t1 = txid_of(p1);
    sql(p1, "prepare transaction '%sp1'", g_gid_prefix);
    sql(p2, "begin");
    sql(p2, "update public.c_prepared set v = 'p2' where id = 3");
    sql(p2, "delete from public.c_prepared where id = 4");
    uint64_t t2 = txid_of(p2);
    sql(p2, "prepare transaction '%sp2'", g_gid_prefix);

    size_t batches = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 5; i++)
            sql(w, "insert into public.c_prepared values (%d, 'w', 0)", 200 + round * 10 + i);
        batches += sync_and_check(&s);
        CHECK(cursor_waits_for(&s, t1) && cursor_waits_for(&s, t2),
              "a prepared transaction dropped out of xip");
    }
    CHECK(batches >= 8, "only %zu batches while the prepared transactions lingered", batches);

    sql(w, "commit prepared '%sp1'", g_gid_prefix);
    sync_and_check(&s);
    CHECK(mirror_get(&s, "100") && mirror_get(&s, "1")->txid == t1,
          "the committed prepared transaction was not delivered");
    sql(w, "rollback prepared '%sp2'", g_gid_prefix);
    sync_and_check(&s);
    CHECK(!mirror_get(&s, "4")->deleted && mirror_get(&s, "3")->version == 1,
          "the rolled-back prepared transaction left changes");
    CHECK(!cursor_waits_for(&s, t1) && !cursor_waits_for(&s, t2),
          "the cursor still waits for finished prepared transactions");
    report(&s, "prepared transactions lingered over several batches");
    syncer_close(&s);
    PQfinish(w);
    PQfinish(p1);
    PQfinish(p2);
}

/* A row created by a newer transaction and then updated by an older one:
 * its txid goes down, its version still goes up, and it is delivered. */
static void case_older_updates_newer(void)
{
    PGconn *w = writer(NULL), *older = writer(NULL), *newer = writer(NULL);
    make_table(w, "c_older", 1);
    Syncer s;
    syncer_open(&s, NULL, "public.c_older", 3);
    sync_and_check(&s);

    sql(older, "begin");
    sql(older, "update public.c_older set n = 1 where id = 1");
    uint64_t to = txid_of(older);
    sql(newer, "begin");
    sql(newer, "insert into public.c_older values (50, 'newer', 0)");
    uint64_t tn = txid_of(newer);
    sql(newer, "commit");
    CHECK(to < tn, "setup: txids %" PRIu64 " and %" PRIu64 " not ordered", to, tn);
    sync_and_check(&s);
    CHECK(mirror_get(&s, "50")->txid == tn, "the newer insert was not delivered");
    uint64_t v50 = mirror_get(&s, "50")->version;

    sql(older, "update public.c_older set v = 'older was here' where id = 50");
    sql(older, "commit");
    sync_and_check(&s);
    const Entry *e = mirror_get(&s, "50");
    CHECK(e->txid == to && e->version > v50,
          "key 50: txid %" PRIu64 " version %" PRIu64 ", expected txid %" PRIu64
          " and a version above %" PRIu64,
          e->txid, e->version, to, v50);
    report(&s, "an older transaction's update of a newer row has a higher version");
    syncer_close(&s);
    PQfinish(w);
    PQfinish(older);
    PQfinish(newer);
}

/* The pg module's edges: clear refusals for an untracked or missing table
 * and a database without txidsync, LISTEN/notification waits, and a
 * connection killed under the syncer: PG_LOST, then pg_reconnect, which
 * listens again. */
static void case_connection(void)
{
    PGconn *w = writer(NULL);
    char err[512], bare[128], conninfo[256];
    sql(w, "create table public.c_conn (id bigint primary key, v text)");
    sql(w, "create table public.c_untracked (id bigint primary key)");
    sql(w, "select txidsync.track('public.c_conn', true, '%s')", g_mode);
    Syncer s;
    syncer_open(&s, NULL, "c_conn", 10);
    CHECK(strcmp(s.table.channel, "txidsync_c_conn") == 0 && s.table.notify, "channel %s notify %d",
          s.table.channel, s.table.notify);

    PgTable t;
    CHECK(pg_table_resolve(s.pg, "public.c_untracked", &t, err, sizeof err) == PG_ERROR &&
              strstr(err, "is not tracked"),
          "untracked table: %s", err);
    CHECK(pg_table_resolve(s.pg, "public.no_such_table", &t, err, sizeof err) == PG_ERROR &&
              strstr(err, "does not exist"),
          "missing table: %s", err);
    PGresult *res = PQexec(w, "select current_database()");
    snprintf(bare, sizeof bare, "%s_bare", PQgetvalue(res, 0, 0));
    PQclear(res);
    sql(w, "drop database if exists \"%s\"", bare);
    sql(w, "create database \"%s\"", bare);
    snprintf(conninfo, sizeof conninfo, "dbname='%s'", bare);
    PgConn *b = pg_connect(conninfo, err, sizeof err);
    CHECK(b, "%s", err);
    CHECK(pg_table_resolve(b, "public.c_conn", &t, err, sizeof err) == PG_ERROR &&
              strstr(err, "txidsync is not installed"),
          "database without txidsync: %s", err);
    pg_free(b);
    sql(w, "drop database \"%s\"", bare);
    CHECK(
        !pg_connect("host=127.0.0.1 port=1 connect_timeout=2 password=hunter2", err, sizeof err) &&
            !strstr(err, "hunter2"),
        "a failed connection leaked the password: %s", err);
    CHECK(!pg_connect("host=127.0.0.1 password=hunter2 junk", err, sizeof err) &&
              !strstr(err, "hunter2") && strstr(err, "malformed"),
          "a malformed connection string leaked: %s", err);

    bool notified = true;
    CHECK(pg_listen(s.pg, s.table.channel, err, sizeof err) == PG_OK, "%s", err);
    CHECK(pg_wait(s.pg, 100, &notified, err, sizeof err) == PG_OK && !notified,
          "woke without a change: %s", err);
    sql(w, "insert into public.c_conn values (1, 'one')");
    for (int i = 0; i < 50 && !notified; i++)
        CHECK(pg_wait(s.pg, 100, &notified, err, sizeof err) == PG_OK, "%s", err);
    CHECK(notified, "no notification for a committed insert");
    sync_and_check(&s);

    /* Kill the syncer's backend. */
    sql(w, "select pg_terminate_backend(pid) from pg_stat_activity"
           " where application_name = 'txidsync' and datname = current_database()");
    int rc = PG_OK;
    for (int i = 0; i < 50 && rc == PG_OK; i++)
        rc = pg_wait(s.pg, 100, &notified, err, sizeof err);
    CHECK(rc == PG_LOST && pg_is_broken(s.pg), "a killed connection was not reported lost: %d", rc);
    CursorQuery q;
    cursor_query(&s.cursor, s.batch_size, &q);
    PgBatch batch;
    CHECK(pg_batch_fetch(s.pg, &s.table, &q, &batch, err, sizeof err) == PG_LOST,
          "a batch on a lost connection is not PG_LOST");
    CHECK(pg_reconnect(s.pg, err, sizeof err) == PG_OK && !pg_is_broken(s.pg), "%s", err);
    sql(w, "insert into public.c_conn values (2, 'two')");
    notified = false;
    for (int i = 0; i < 50 && !notified; i++)
        CHECK(pg_wait(s.pg, 100, &notified, err, sizeof err) == PG_OK, "%s", err);
    CHECK(notified, "no notification after reconnecting: LISTEN was not issued again");
    sync_and_check(&s);
    report(&s, "refusals, notifications, and a reconnect after the backend was killed");
    syncer_close(&s);
    PQfinish(w);
}

/* ---- restore into a second cluster ---- */

/* The directory of the PostgreSQL server programs (PG_BINDIR or the
 * newest /usr/lib/postgresql/N/bin). */
static void pg_bindir(char *out, size_t len)
{
    const char *env = getenv("PG_BINDIR");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return;
    }
    glob_t g;
    CHECK(glob("/usr/lib/postgresql/*/bin", 0, NULL, &g) == 0 && g.gl_pathc > 0,
          "no PostgreSQL server programs found (set PG_BINDIR)");
    const char *best = g.gl_pathv[0];
    for (size_t i = 1; i < g.gl_pathc; i++) {
        if (strverscmp(g.gl_pathv[i], best) > 0)
            best = g.gl_pathv[i];
    }
    snprintf(out, len, "%s", best);
    globfree(&g);
}

/* A TCP port on 127.0.0.1 that is free right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &alen) == 0,
          "bind: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* initdb's and starts the second cluster in a fresh directory; fills
 * g_cluster and returns the port. */
static int cluster_start(void)
{
    char bindir[512], tool[600], data[600], log[600], opts[1600], portstr[16];
    pg_bindir(bindir, sizeof bindir);
    const char *tmp = getenv("TXIDSYNC_TEST_TMP");
    snprintf(g_cluster.dir, sizeof g_cluster.dir, "%s/restore.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(g_cluster.dir), "mkdtemp %s: %s", g_cluster.dir, strerror(errno));
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        CHECK(pw, "running as root and there is no postgres user");
        CHECK(chown(g_cluster.dir, pw->pw_uid, pw->pw_gid) == 0, "chown: %s", strerror(errno));
    }
    chmod(g_cluster.dir, 0755);
    snprintf(data, sizeof data, "%s/pg", g_cluster.dir);
    snprintf(log, sizeof log, "%s/pg.log", g_cluster.dir);
    snprintf(tool, sizeof tool, "%s/initdb", bindir);
    const char *const initdb[] = {tool,
                                  "-D",
                                  data,
                                  "-U",
                                  "postgres",
                                  "--auth=trust",
                                  "-E",
                                  "UTF8",
                                  "--locale=C.UTF-8",
                                  "--no-sync",
                                  "--no-instructions",
                                  NULL};
    int rc = run(true, true, initdb);
    CHECK(rc == 0, "initdb of the second cluster failed (exit %d)", rc);

    int port = free_port();
    snprintf(portstr, sizeof portstr, "%d", port);
    /* The log mode's C trigger from the build tree, as in the bed. */
    const char *root = getenv("TXIDSYNC_ROOT");
    snprintf(opts, sizeof opts,
             "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_prepared_transactions=8"
             " -c dynamic_library_path='%s/build/ext:$libdir'",
             port, g_cluster.dir, root && *root ? root : ".");
    snprintf(tool, sizeof tool, "%s/pg_ctl", bindir);
    const char *const start[] = {tool, "-D", data, "-l", log,     "-w",
                                 "-t", "60", "-o", opts, "start", NULL};
    rc = run(true, true, start);
    CHECK(rc == 0, "the second cluster did not start (log: %s)", log);
    char pidfile[700];
    snprintf(pidfile, sizeof pidfile, "%s/postmaster.pid", data);
    FILE *f = fopen(pidfile, "r");
    CHECK(f, "no %s", pidfile);
    long pid = 0;
    CHECK(fscanf(f, "%ld", &pid) == 1 && pid > 0, "unreadable %s", pidfile);
    fclose(f);
    g_cluster.postmaster = (pid_t)pid;
    return port;
}

/* A database restored from pg_dump into a cluster whose xid counter is
 * lower: after configure_txid_offset(xid_next) new ids stay above every
 * recorded id and the cursor, carried over unchanged, sees every change. */
static void case_restore(void)
{
    PGconn *w = writer(NULL);
    make_table(w, "c_restore", 20);
    /* Run the source's xid counter well ahead of a fresh cluster's. */
    sql(w,
        "do $$ begin for i in 1..3000 loop perform pg_current_xact_id(); commit; end loop; end $$");
    sql(w, "update public.c_restore set n = n + 1 where id <= 5");
    sql(w, "delete from public.c_restore where id = 20");
    Syncer s;
    syncer_open(&s, NULL, "public.c_restore", 4);
    sync_and_check(&s);
    uint64_t v20 = mirror_get(&s, "20")->version;
    uint64_t xid_next = s.cursor.xid_next;
    uint64_t max_before = sql_u64(w, "select max(txid) from " TXIDS_OF("c_restore"));

    char dump[600], conninfo[700], port_s[16];
    int port = cluster_start();
    snprintf(dump, sizeof dump, "%s/source.dump", g_cluster.dir);
    const char *const pgdump[] = {"pg_dump", "-Fc", "-f", dump, NULL};
    CHECK(run(false, false, pgdump) == 0, "pg_dump of the source database failed");
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *const createdb[] = {"createdb", "-h",       g_cluster.dir, "-p", port_s,
                                    "-U",       "postgres", "restored",    NULL};
    CHECK(run(false, false, createdb) == 0, "createdb in the second cluster failed");
    snprintf(conninfo, sizeof conninfo, "host=%s port=%d dbname=restored user=postgres",
             g_cluster.dir, port);
    const char *const restore[] = {"pg_restore", "--exit-on-error", "-d", conninfo, dump, NULL};
    CHECK(run(false, false, restore) == 0, "pg_restore into the second cluster failed");

    /* The same syncer state, now reading the restored database. */
    char err[512];
    pg_table_free(&s.table);
    pg_free(s.pg);
    s.pg = pg_connect(conninfo, err, sizeof err);
    CHECK(s.pg, "%s", err);
    CHECK(pg_table_resolve(s.pg, "public.c_restore", &s.table, err, sizeof err) == PG_OK, "%s",
          err);
    uint64_t xmax = 0;
    CHECK(pg_snapshot_xmax(s.pg, &xmax, err, sizeof err) == PG_OK, "%s", err);
    CHECK(xmax < xid_next,
          "setup: the second cluster's counter (%" PRIu64 ") is not below the cursor (%" PRIu64 ")",
          xmax, xid_next);

    /* Unconfigured, a write would get an id the cursor has already passed:
     * the hazard the offset exists for (rolled back, so nothing is lost).
     * The writer's session keeps its cached trigger plan across the
     * configuration, which must not keep the old offset. */
    PGconn *r = writer(conninfo);
    sql(r, "begin");
    sql(r, "update public.c_restore set v = 'unconfigured' where id = 1");
    uint64_t low = txid_of(r);
    sql(r, "rollback");
    CHECK(low < xid_next, "setup: unconfigured txid %" PRIu64 " is not below %" PRIu64, low,
          xid_next);

    uint64_t offset = 0;
    CHECK(pg_configure_txid_offset(s.pg, xid_next, &offset, err, sizeof err) == PG_OK, "%s", err);
    uint64_t offset_again = 0;
    CHECK(pg_configure_txid_offset(s.pg, xid_next, &offset_again, err, sizeof err) == PG_OK, "%s",
          err);
    CHECK(offset_again == offset, "configure_txid_offset is not stable: %" PRIu64 " then %" PRIu64,
          offset, offset_again);

    sql(r, "update public.c_restore set v = 'restored 1' where id = 1");
    PGconn *r2 = writer(conninfo);
    sql(r2, "insert into public.c_restore values (21, 'new after restore', 0)");
    sql(r2, "delete from public.c_restore where id = 2");
    sql(r2, "insert into public.c_restore values (20, 'back after restore', 0)");
    sql(r2, "begin");
    sql(r2, "update public.c_restore set n = 99 where id between 6 and 15");
    sql(r2, "commit");
    sync_and_check(&s);

    uint64_t min_new = sql_u64(
        r2, "select min(txid) from " TXIDS_OF("c_restore") " where txid > %" PRIu64, max_before);
    CHECK(min_new >= xid_next,
          "a change after the restore got txid %" PRIu64 ", below the cursor's %" PRIu64, min_new,
          xid_next);
    CHECK(mirror_get(&s, "1")->txid >= xid_next && mirror_get(&s, "21") &&
              mirror_get(&s, "2")->deleted && !mirror_get(&s, "20")->deleted &&
              mirror_get(&s, "20")->version > v20,
          "changes made after the restore were not all delivered");
    CHECK(s.cursor.xid_next > xid_next, "the cursor did not move past its old position");
    printf(PROG ": case %s: source xid_next %" PRIu64 ", restored cluster xmax %" PRIu64
                ", offset %" PRIu64 "\n",
           g_case, xid_next, xmax, offset);
    report(&s, "ids stay monotonic after a restore into a lower cluster");
    PQfinish(r);
    PQfinish(r2);
    syncer_close(&s);
    PQfinish(w);
    cluster_cleanup();
}

/* ---- EXPLAIN ANALYZE of the batch query ---- */

/* Counts the occurrences of needle in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* With a large side table, a batch that branch 1 fills must not execute
 * branches 2 and 3 at all, although both have rows to give. */
static void case_explain(void)
{
    const char *env = getenv("TXIDSYNC_EXPLAIN_ROWS");
    long rows = env && *env ? strtol(env, NULL, 10) : 100000;
    PGconn *w = writer(NULL), *open_tx = writer(NULL);
    sql(w, "create table public.c_explain (id bigint primary key, v text, n int)");
    sql(w, "insert into public.c_explain select g, md5(g::text), 0 from generate_series(1, %ld) g",
        rows);
    sql(w, "select txidsync.track('public.c_explain', false, '%s')", g_mode);
    sql(w, "vacuum analyze txidsync.rows_c_explain");
    sql(w, "vacuum analyze public.c_explain");
    uint64_t backfill = sql_u64(w, "select min(txid) from txidsync.rows_c_explain");
    /* An open transaction (branch 2 has a candidate) and newer committed
     * ones (branch 3 has rows). */
    sql(open_tx, "begin");
    sql(open_tx, "update public.c_explain set n = 1 where id = 7");
    uint64_t open_id = txid_of(open_tx);
    for (int i = 1; i <= 5; i++)
        sql(w, "update public.c_explain set n = n + 1 where id = %d", i * 1000);

    Syncer s;
    syncer_open(&s, NULL, "public.c_explain", 100);
    /* Half-way through the backfill transaction. */
    char mid[32], first[32];
    snprintf(mid, sizeof mid, "%ld", rows / 2);
    snprintf(first, sizeof first, "%ld", rows / 2 + 1);
    uint64_t xip[] = {open_id};
    CursorQuery q = {.has_xid_at = true,
                     .xid_at = backfill,
                     .xid_at_key = mid,
                     .xip = xip,
                     .n_xip = 1,
                     .xid_next = backfill + 1,
                     .limit = 100};
    char err[512], *plan = NULL;
    CHECK(pg_batch_explain(s.pg, &s.table, &q, &plan, err, sizeof err) == PG_OK, "%s", err);
    printf("%s", plan);
    const char *out = getenv("TXIDSYNC_EXPLAIN_OUT");
    if (out && *out) {
        FILE *f = fopen(out, "w");
        CHECK(f, "cannot write %s: %s", out, strerror(errno));
        fprintf(f,
                "-- EXPLAIN (ANALYZE, BUFFERS) of the batch query (pg_batch_explain), side\n"
                "-- table of %ld rows, batch size 100, cursor half-way through the backfill\n"
                "-- transaction (xid_at_key %s), one open transaction in xip, newer\n"
                "-- committed changes waiting for branch 3\n",
                rows, mid);
        fputs(plan, f);
        fclose(f);
    }
    CHECK(count_of(plan, "never executed") >= 2,
          "branches 2 and 3 ran although branch 1 filled the batch");
    free(plan);

    PgBatch b;
    CHECK(pg_batch_fetch(s.pg, &s.table, &q, &b, err, sizeof err) == PG_OK, "%s", err);
    CHECK(b.n_rows == 100 && b.rows[0].branch == 1 && b.rows[99].branch == 1 &&
              strcmp(b.rows[0].key, first) == 0,
          "branch 1 did not return keys %s.. (got %zu rows)", first, b.n_rows);
    pg_batch_free(&b);
    sql(open_tx, "rollback");
    printf(PROG ": case %s: ok — branches 2 and 3 never executed on %ld rows\n", g_case, rows);
    syncer_close(&s);
    PQfinish(w);
    PQfinish(open_tx);
}

/* Rows read by sequential scans and index scans made, of public.<table>
 * and its side table, as the statistics views show them. */
static void scan_counts(PGconn *w, const char *table, uint64_t *seq_rows, uint64_t *idx_scans)
{
#define SCANS_OF(col)                                                                              \
    "select coalesce(sum(" col "), 0) from pg_stat_user_tables"                                    \
    " where relid in ('public.%s'::regclass, 'txidsync.rows_%s'::regclass)"
    *seq_rows = sql_u64(w, SCANS_OF("seq_tup_read"), table, table);
    *idx_scans = sql_u64(w, SCANS_OF("idx_scan"), table, table);
#undef SCANS_OF
}

/* Makes the syncer's session report its pending statistics: a backend
 * reports them at the end of a statement at most once a second. */
static void flush_syncer_stats(Syncer *s)
{
    char err[512];
    uint64_t xmax;
    sleep_ms(1100);
    CHECK(pg_snapshot_xmax(s->pg, &xmax, err, sizeof err) == PG_OK, "%s", err);
}

/* A table that was small while the batch statement ran many times (the
 * plan cache would then settle on a generic plan: a sequential scan and a
 * sort) grows by a bulk load that no ANALYZE follows.  The next batch must
 * still read the side table through its (txid, key) index and find each
 * document by primary key: it adds index scans to the statistics, and no
 * sequential scan that reads the grown table. */
static void case_grown_table(void)
{
    PGconn *w = writer(NULL);
    make_table(w, "c_grown", 10);
    sql(w, "vacuum analyze public.c_grown");
    sql(w, "vacuum analyze txidsync.rows_c_grown");
    Syncer s;
    syncer_open(&s, NULL, "public.c_grown", 3);
    for (int i = 0; i < 3; i++) {
        sql(w, "update public.c_grown set n = n + 1 where id <= 4");
        sync_and_check(&s);
    }
    CHECK(s.batches >= 8, "only %zu batches while the table was small", s.batches);
    flush_syncer_stats(&s);
    sql(w, "insert into public.c_grown select g, 'bulk', 0 from generate_series(11, 200000) g");
    uint64_t seq0, idx0, seq1, idx1;
    scan_counts(w, "c_grown", &seq0, &idx0);
    CHECK(sync_batch(&s) == 3, "the batch after the bulk load is not full");
    flush_syncer_stats(&s);
    scan_counts(w, "c_grown", &seq1, &idx1);
    CHECK(idx1 > idx0, "the batch after the bulk load made no index scan");
    CHECK(seq1 - seq0 < 1000,
          "the batch after the bulk load read %" PRIu64 " rows by sequential scans: a plan made"
          " for the small table",
          seq1 - seq0);
    printf(PROG ": case %s: ok — after growing from 10 to 200000 rows unanalyzed, a batch made"
                " %" PRIu64 " index scans and read %" PRIu64 " rows sequentially\n",
           g_case, idx1 - idx0, seq1 - seq0);
    syncer_close(&s);
    PQfinish(w);
}

/* ---- main ---- */

typedef struct Case {
    const char *name;
    void (*run)(void);
} Case;

/* An insert of a key that a concurrent, uncommitted transaction deleted
 * waits for it at the unique check.  The version the tracking gives the
 * insert must come after the tombstone's: a trigger that took it before
 * that wait (a BEFORE INSERT trigger numbering from a sequence, say)
 * would put the row under its own tombstone, and the sink would keep the
 * delete.  Today's AFTER ROW trigger numbers it after the wait. */
static void case_insert_waits_for_delete(void)
{
    PGconn *w = writer(NULL), *ins = writer(NULL), *probe = writer(NULL);
    make_table(w, "c_race", 4);
    Syncer s;
    syncer_open(&s, NULL, "public.c_race", 3);
    sync_and_check(&s);
    sql(w, "begin");
    sql(w, "delete from public.c_race where id = 1");
    /* The tombstone's version, as the deleting transaction sees it. */
    uint64_t tomb = sql_u64(w, "select max(version) from (select version from"
                               " txidsync.rows_c_race where key = 1 union all select version"
                               " from txidsync.log_c_race where key = 1) as x");
    CHECK(PQsendQuery(ins, "insert into public.c_race values (1, 'racer', 0)"), "send: %s",
          PQerrorMessage(ins));
    bool waiting = false;
    for (int i = 0; i < 1000 && !waiting; i++) {
        waiting = sql_u64(probe, "select count(*) from pg_stat_activity where wait_event_type ="
                                 " 'Lock' and query like 'insert into public.c_race%%'") > 0;
        if (!waiting)
            usleep(10000);
    }
    CHECK(waiting, "the insert did not wait for the uncommitted delete");
    sql(w, "commit");
    PGresult *r;
    while ((r = PQgetResult(ins))) {
        CHECK(PQresultStatus(r) == PGRES_COMMAND_OK, "the waiting insert failed: %s",
              PQresultErrorMessage(r));
        PQclear(r);
    }
    sync_and_check(&s);
    const Entry *e = mirror_get(&s, "1");
    CHECK(e && !e->deleted && e->version > tomb,
          "the insert that waited for the delete ended %s at version %" PRIu64
          " (want live, above the tombstone's %" PRIu64 ")",
          e && e->deleted ? "a tombstone" : "live", e ? e->version : 0, tomb);
    report(&s,
           "an insert that waited for a concurrent delete of its key comes after its tombstone");
    syncer_close(&s);
    PQfinish(w);
    PQfinish(ins);
    PQfinish(probe);
}

/* The done set of a standby cursor: branch 3 skips the done ids, both
 * ways — reading the few gaps by index lookups, and scanning up to the
 * largest done id with the many skipped — and branch 4 reads above it. */
static void case_done(void)
{
    PGconn *w = writer(NULL);
    sql(w, "create table public.c_done (id bigint primary key, n int)");
    sql(w, "select txidsync.track('public.c_done', false, '%s')", g_mode);
    uint64_t ids[6];
    for (int i = 0; i < 6; i++) {
        sql(w, "begin");
        sql(w, "insert into public.c_done values (%d, 0), (%d, 0)", 2 * i, 2 * i + 1);
        ids[i] = txid_of(w);
        sql(w, "commit");
    }
    Syncer s;
    syncer_open(&s, NULL, "public.c_done", 100);
    for (int variant = 0; variant < 2; variant++) {
        /* Done: ids 1 and 3, and for the second variant an id far above
         * (no rows) that makes the gaps too many to list. */
        uint64_t done[] = {ids[1], ids[3], ids[0] + 5000};
        CursorQuery q = {.xid_next = ids[0], .done = done, .n_done = variant ? 3 : 2, .limit = 100};
        char err[512];
        PgBatch b;
        CHECK(pg_batch_fetch(s.pg, &s.table, &q, &b, err, sizeof err) == PG_OK, "%s", err);
        const int want[] = {0, 2, 4, 5};
        size_t k = 0;
        for (size_t i = 0; i < b.n_rows; i++) {
            check_branch(&q, &b.rows[i]);
            uint64_t t = b.rows[i].txid;
            CHECK(k / 2 < 4 && t == ids[want[k / 2]],
                  "variant %d: row %zu has txid %" PRIu64 ", not one of ids 0, 2, 4, 5", variant, i,
                  t);
            CHECK(b.rows[i].branch == (variant == 0 && t > ids[3] ? 4 : 3) ||
                      (variant == 1 && b.rows[i].branch == 3),
                  "variant %d: txid %" PRIu64 " came from branch %d", variant, t, b.rows[i].branch);
            k++;
        }
        CHECK(k == 8, "variant %d: %zu rows, want 8", variant, k);
        pg_batch_free(&b);
    }
    printf(PROG ": case %s: ok — done ids skipped by gaps and by filter, the rest in order\n",
           g_case);
    syncer_close(&s);
    PQfinish(w);
}

/* Transactions that write the same keys many times, more often than a
 * batch holds rows, with other keys between: the log mode logs every
 * write, so a batch must count keys, not log entries, or it comes back
 * short (the cursor would take that for caught up and skip the rest). */
static void case_rewrites(void)
{
    PGconn *w = writer(NULL);
    make_table(w, "c_rewrite", 12);
    Syncer s;
    syncer_open(&s, NULL, "public.c_rewrite", 3);
    sync_and_check(&s);
    sql(w, "begin");
    for (int round = 0; round < 10; round++)
        sql(w, "update public.c_rewrite set n = n + 1 where id in (2, 5, 7)");
    sql(w, "update public.c_rewrite set n = 100 where id between 8 and 12");
    sql(w, "delete from public.c_rewrite where id = 5");
    sql(w, "insert into public.c_rewrite values (5, 'back', 0)");
    sql(w, "commit");
    for (int t = 0; t < 3; t++) {
        sql(w, "begin");
        for (int round = 0; round < 6; round++)
            sql(w, "update public.c_rewrite set n = n + 1 where id in (1, 3, 4, 6)");
        sql(w, "commit");
    }
    size_t batches = sync_and_check(&s);
    CHECK(mirror_get(&s, "12") && mirror_get(&s, "5") && !mirror_get(&s, "5")->deleted &&
              mirror_get(&s, "6")->version > 1,
          "rewritten keys not all delivered");
    report(&s, "keys written many times in one transaction count once in a batch");
    (void)batches;
    syncer_close(&s);
    PQfinish(w);
}

static const Case CASES[] = {
    {"late_commit", case_late_commit},
    {"big_transaction", case_big_transaction},
    {"delete_reinsert", case_delete_reinsert},
    {"savepoints", case_savepoints},
    {"prepared", case_prepared},
    {"older_updates_newer", case_older_updates_newer},
    {"connection", case_connection},
    {"restore", case_restore},
    {"explain", case_explain},
    {"grown_table", case_grown_table},
    {"done", case_done},
    {"insert_waits_for_delete", case_insert_waits_for_delete},
    {"rewrites", case_rewrites},
};

/* Installs sql/txidsync.sql into the test database with psql. */
static void install_sql(void)
{
    const char *root = getenv("TXIDSYNC_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/sql/txidsync.sql", root && *root ? root : ".");
    const char *const psql[] = {"psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-f", path, NULL};
    CHECK(run(false, false, psql) == 0, "installing %s failed", path);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(g_gid_prefix, sizeof g_gid_prefix, "it_cursor_pg_%ld_", (long)getpid());
    atexit(at_exit);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    setenv("PGOPTIONS", "-c client_min_messages=warning", 0);

    const char *mode = getenv("TXIDSYNC_TRACK_MODE");
    if (mode && *mode)
        g_mode = mode;
    CHECK(strcmp(g_mode, "side") == 0 || strcmp(g_mode, "log") == 0,
          "TXIDSYNC_TRACK_MODE is %s: side or log", g_mode);
    printf(PROG ": tracking mode %s\n", g_mode);
    install_sql();
    int ran = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted = wanted || strcmp(argv[a], CASES[i].name) == 0;
        if (!wanted)
            continue;
        g_case = CASES[i].name;
        CASES[i].run();
        ran++;
    }
    g_case = "summary";
    CHECK(ran > 0, "no case matched the arguments");
    printf(PROG ": %d cases passed\n", ran);
    return 0;
}
