/*
 * pg: the PostgreSQL client (see pg.h).  Every libpq call and every SQL
 * string of the project lives in this file; libpq's error text is turned
 * into the caller's err buffer here and nowhere else.
 *
 * Results are read in text format; ids arrive as decimal bigint text and
 * are parsed strictly.  Parameters go as text (PQexecParams, or the
 * prepared batch statement), so keys and ids are never spliced into SQL;
 * the only generated parts of a statement are identifiers, quoted by the
 * server (quote_ident) when the table is resolved, and the name of the
 * function that builds documents.
 */
#include "pg.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "buf.h"
#include "keys.h"
#include "log.h"

/* PostgreSQL 13 brought xid8, pg_current_xact_id and pg_current_snapshot. */
#define PG_MIN_SERVER_VERSION 130000

/* Upper bound of one generated statement or parameter (a long xip list). */
#define PG_TEXT_MAX ((size_t)64 * 1024 * 1024)

struct PgConn {
    PGconn *conn;
    char **channels; /* owned; every channel given to pg_listen */
    size_t n_channels;
    bool batch_started;  /* a batch query of pg_batch_start is outstanding */
    PGresult *batch_got; /* its result, once read, until the last result is */
    size_t batch_limit;  /* its q->limit */
    bool call_started;   /* a statement of call_send is outstanding */
    PGresult *call_got;  /* its result, once read, until the last result is */
    char *prepared;      /* text of the batch statement prepared as BATCH_STMT */
    bool no_prepare;     /* prepared statements vanish here (a pooler): send the text */
};

/* The name of the prepared batch statement.  Preparing it once per session
 * saves parsing and rewriting the statement for every batch. */
#define BATCH_STMT "txidsync_batch"

/*
 * Session settings of every connection, applied again after a reconnect.
 * The batch query relies on Append returning its branches one after the
 * other, in order: a parallel append could interleave them, so parallel
 * plans are off.  JIT compilation would cost more than the short index
 * scans a batch makes.  The prepared batch statement is planned afresh
 * for every execution: a generic plan made while the table was small is
 * a sequential scan and a sort, which a table grown by a bulk load keeps
 * until it is analyzed again, each batch then reading the whole side
 * table.  Preparing still saves the parse and rewrite.
 */
static const char SQL_SESSION[] = "set max_parallel_workers_per_gather = 0; set jit = off; set "
                                  "plan_cache_mode = force_custom_plan";

static const char SQL_IN_RECOVERY[] = "select pg_catalog.pg_is_in_recovery()";

static const char SQL_INSTALLED[] =
    "select pg_catalog.to_regclass('txidsync.tracked') is not null,"
    " pg_catalog.to_regclass($1) is not null,"
    " pg_catalog.to_regprocedure('txidsync._nested_doc(pg_catalog.regclass)') is not null";

/* Every type a column of relation t.relid is made of: the columns' types
 * and, recursively, the base types of domains, the element types of
 * arrays and the attribute types of composites. */
#define SQL_TYPES_OF_COLUMNS                                                                       \
    "with recursive ty(oid) as ("                                                                  \
    " select a.atttypid from pg_catalog.pg_attribute as a"                                         \
    " where a.attrelid operator(pg_catalog.=) t.relid and a.attnum > 0 and not a.attisdropped"     \
    " union"                                                                                       \
    " select x.oid from ty join pg_catalog.pg_type as y on y.oid operator(pg_catalog.=) ty.oid"    \
    " cross join lateral (select y.typbasetype union all select y.typelem union all"               \
    " select a.atttypid from pg_catalog.pg_attribute as a"                                         \
    " where a.attrelid operator(pg_catalog.=) y.typrelid and a.attnum > 0"                         \
    " and not a.attisdropped) as x(oid)"                                                           \
    " where x.oid operator(pg_catalog.<>) 0)"

/* A fingerprint of the columns of relation REL (an expression giving its
 * oid): their names, types and nullability, and what its documents nest
 * (docs/design.md, "Nested documents").  A change of it is a change of
 * the shape of the table's documents. */
#define SQL_COLUMNS_HASH(REL)                                                                      \
    "(select pg_catalog.md5(pg_catalog.string_agg(a.attname operator(pg_catalog.||) ':'"           \
    " operator(pg_catalog.||) pg_catalog.format_type(a.atttypid, a.atttypmod)"                     \
    " operator(pg_catalog.||) ':' operator(pg_catalog.||) a.attnotnull::pg_catalog.text, ','"      \
    " order by a.attnum) operator(pg_catalog.||) coalesce(txidsync._nest_fingerprint(" REL         \
    "::pg_catalog.regclass), '')) from pg_catalog.pg_attribute as a"                               \
    " where a.attrelid operator(pg_catalog.=) " REL " and a.attnum > 0 and not a.attisdropped)"

/* One row for a tracked table; the quoted forms are built by the server.
 * The last column tells whether a column contains the type json, whose
 * text row_to_json would copy as it is, duplicate keys included (see
 * doc_function). */
static const char SQL_RESOLVE[] =
    "select t.relid::pg_catalog.text, t.side_table,"
    " pg_catalog.array_to_string(t.key_columns, ', '), t.channel, t.notify,"
    " case when c.relkind = 'p' then '' else 'only ' end"
    " || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),"
    " 'txidsync.' || pg_catalog.quote_ident(t.side_table),"
    " exists (" SQL_TYPES_OF_COLUMNS " select from ty"
    " where ty.oid operator(pg_catalog.=) 'pg_catalog.json'::pg_catalog.regtype),"
    " pg_catalog.current_database() operator(pg_catalog.||) '/'"
    " operator(pg_catalog.||) pg_catalog.quote_ident(n.nspname) operator(pg_catalog.||) '.'"
    " operator(pg_catalog.||) pg_catalog.quote_ident(c.relname),"
    " t.relid::pg_catalog.oid::pg_catalog.text, " SQL_COLUMNS_HASH(
        "t.relid") ","
                   " 'txidsync.' || pg_catalog.quote_ident(txidsync._log_table(t.side_table)),"
                   " 'txidsync.' || pg_catalog.quote_ident(txidsync._version_seq(t.side_table)),"
                   " t.mode = 'log', pg_catalog.to_regclass('txidsync.' || pg_catalog.quote_ident("
                   "txidsync._log_table(t.side_table))) is not null,"
                   " pg_catalog.quote_literal('txidsync.' || pg_catalog.quote_ident("
                   "txidsync._version_seq(t.side_table))), txidsync._nested_doc(t.relid)"
                   " from txidsync.tracked as t"
                   " join pg_catalog.pg_class as c on c.oid = t.relid"
                   " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
                   " where t.relid = pg_catalog.to_regclass($1)";

/* The primary key's columns of a tracked table, quoted, in index order. */
static const char SQL_KEY_COLUMNS[] =
    "select pg_catalog.quote_ident(u.k), u.k from txidsync.tracked as t,"
    " pg_catalog.unnest(t.key_columns) with ordinality as u(k, i)"
    " where t.relid = pg_catalog.to_regclass($1) order by u.i";

/* The columns of a table, in their order. */
static const char SQL_COLUMNS[] =
    "select a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), not a.attnotnull"
    " from pg_catalog.pg_attribute as a"
    " where a.attrelid = pg_catalog.to_regclass($1) and a.attnum > 0 and not a.attisdropped"
    " order by a.attnum";

/* A session-level advisory lock named by a text, and who holds it. */
static const char SQL_TRY_LOCK[] =
    "select pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended($1, 0))";
static const char SQL_LOCK_HOLDER[] =
    "select l.pid from pg_catalog.pg_locks as l where l.locktype = 'advisory' and l.granted"
    " and l.objsubid = 1 and ((l.classid::bigint operator(pg_catalog.<<) 32)"
    " operator(pg_catalog.|) l.objid::bigint) = pg_catalog.hashtextextended($1, 0) limit 1";

static const char SQL_SNAPSHOT_XMAX[] = "select xmax from txidsync.snapshot()";

static const char SQL_CONFIGURE_OFFSET[] = "select txidsync.configure_txid_offset($1::bigint)";

/* Columns of the batch statement. */
enum {
    COL_BRANCH = 0,
    COL_KEY,
    COL_TXID,
    COL_VERSION,
    COL_DELETED,
    COL_DOC,
    COL_XMIN,
    COL_XMAX,
    COL_XIP,
    COL_COLUMNS,
    COL_RECOVERY,
    N_BATCH_COLS
};

/* Rewrites s in place as one line: control characters become blanks, runs
 * of blanks one blank, and trailing blanks go. */
static void one_line(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        char ch = (*r == '\n' || *r == '\r' || *r == '\t') ? ' ' : *r;
        if (ch == ' ' && (w == s || w[-1] == ' '))
            continue;
        *w++ = ch;
    }
    while (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
}

/* Formats a message into the caller's error buffer, as one line, and
 * returns code, so that failure paths read "return fail(...)". */
__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
                                                      const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        one_line(err);
    }
    return code;
}

/* Tells whether a failed statement means the connection is gone: libpq
 * says so, or the server ended the session (class 08 connection
 * exceptions, 57P operator interventions, FATAL or PANIC severity). */
static bool is_lost(PGconn *conn, const PGresult *res)
{
    if (PQstatus(conn) != CONNECTION_OK || !res)
        return true;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0))
        return true;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    return sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0);
}

/* Fills err from a failed result (or from the connection when there is no
 * result), clears the result and returns PG_LOST or PG_ERROR. */
static int result_fail(PgConn *c, PGresult *res, const char *what, char *err, size_t errlen)
{
    int code = is_lost(c->conn, res) ? PG_LOST : PG_ERROR;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!msg || !*msg)
        msg = res ? PQresultErrorMessage(res) : "";
    if (!*msg)
        msg = PQerrorMessage(c->conn);
    if (!*msg)
        msg = res ? "unexpected result" : "no result";
    if (state && !strcmp(state, "42501"))
        fail(err, errlen, code,
             "pg: %s: %s (%s): a syncer's role needs what select txidsync.grant_reader('%s') "
             "gives, run by the tables' owner",
             what, msg, state, PQuser(c->conn));
    else if (state && !strcmp(state, "25006"))
        fail(err, errlen, code,
             "pg: %s: %s (%s): the server is read-only (a hot standby?): writes go to the primary",
             what, msg, state);
    else if (state)
        fail(err, errlen, code, "pg: %s: %s (%s)", what, msg, state);
    else
        fail(err, errlen, code, "pg: %s: %s", what, msg);
    PQclear(res);
    return code;
}

/* Runs one statement with text parameters (values[i] NULL for SQL NULL)
 * and expects status want.  Stores the result in *out (the caller clears
 * it) and returns PG_OK, or PG_ERROR/PG_LOST with err filled. */
static int exec_params(PgConn *c, const char *sql, int nparams, const char *const *values,
                       ExecStatusType want, const char *what, PGresult **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail(err, errlen, PG_LOST, "pg: %s: the connection is lost", what);
    PGresult *res = PQexecParams(c->conn, sql, nparams, NULL, values, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != want)
        return result_fail(c, res, what, err, errlen);
    *out = res;
    return PG_OK;
}

/* Parses a canonical non-negative decimal (bigint text) into *out.
 * Returns 0, or -1 when s is NULL, empty, signed or not all digits. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Orders two ids ascending for qsort. */
static int compare_ids(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Parses a bigint[] in text form ("{}", "{1,2}") into a malloc'd array
 * sorted ascending (NULL when empty).  Returns 0, or -1 when malformed or
 * out of memory. */
static int parse_id_array(const char *s, uint64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t len = s ? strlen(s) : 0;
    if (len < 2 || s[0] != '{' || s[len - 1] != '}')
        return -1;
    if (len == 2)
        return 0;
    size_t cap = 1;
    for (size_t i = 1; i < len - 1; i++)
        cap += s[i] == ',';
    uint64_t *ids = malloc(cap * sizeof *ids);
    char *copy = strndup(s + 1, len - 2);
    if (!ids || !copy)
        goto bad;
    size_t k = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (k == cap || parse_u64(tok, &ids[k]) != 0)
            goto bad;
        k++;
    }
    if (k != cap)
        goto bad;
    free(copy);
    qsort(ids, k, sizeof *ids, compare_ids);
    *out = ids;
    *n = k;
    return 0;
bad:
    free(ids);
    free(copy);
    return -1;
}

/* Routes server notices (NOTICE, WARNING) to the debug log instead of
 * libpq's default of printing them on stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char line[512];
    snprintf(line, sizeof line, "%s", message);
    one_line(line);
    log_debug("pg: server says: %s", line);
}

/* Prepares a fresh session (see SQL_SESSION).  Returns PG_OK, or
 * PG_ERROR/PG_LOST with err filled. */
static int session_setup(PgConn *c, char *err, size_t errlen)
{
    PQsetNoticeProcessor(c->conn, on_notice, NULL);
    int version = PQserverVersion(c->conn);
    if (version < PG_MIN_SERVER_VERSION)
        return fail(err, errlen, PG_ERROR,
                    "pg: connect: server version %d.%d is too old, txidsync needs "
                    "PostgreSQL 13 or later",
                    version / 10000, version % 10000);
    PGresult *res = PQexec(c->conn, SQL_SESSION);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return result_fail(c, res, "session setup", err, errlen);
    PQclear(res);
    return PG_OK;
}

/* Tells whether conninfo is a keyword/value string or a URI rather than a
 * bare database name (which libpq's parser would refuse). */
static bool looks_like_conninfo(const char *conninfo)
{
    return strchr(conninfo, '=') || strncmp(conninfo, "postgresql://", 13) == 0 ||
           strncmp(conninfo, "postgres://", 11) == 0;
}

void pg_describe(const PgConn *c, char *out, size_t len)
{
    const char *host = PQhost(c->conn);
    snprintf(out, len, "database %s on %s%s port %s as %s", PQdb(c->conn),
             host && host[0] == '/' ? "socket " : "", host && *host ? host : "localhost",
             PQport(c->conn), PQuser(c->conn));
}

PgConn *pg_connect(const char *conninfo, char *err, size_t errlen)
{
    const char *dbname = conninfo && *conninfo ? conninfo : NULL;
    if (dbname && looks_like_conninfo(dbname)) {
        /* libpq's parse errors quote pieces of the string, which may hold
         * a password: check it first and report without them. */
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(dbname, &perr);
        PQfreemem(perr);
        if (!opts) {
            fail(err, errlen, PG_ERROR,
                 "pg: connect: the connection string is malformed (libpq cannot parse it)");
            return NULL;
        }
        PQconninfoFree(opts);
    }
    PgConn *c = calloc(1, sizeof *c);
    if (!c) {
        fail(err, errlen, PG_ERROR, "pg: connect: out of memory");
        return NULL;
    }
    /* Entries after dbname win over what the expanded connection string
     * sets, entries before it are defaults it can override.  The documents
     * must arrive as UTF-8 whatever the string says.  The defaults bound
     * how long a dead server or a silent network can hold the daemon: a
     * connection attempt (unless PGCONNECT_TIMEOUT says otherwise) and an
     * idle LISTEN connection, which TCP keepalives probe. */
    const char *timeout = getenv("PGCONNECT_TIMEOUT");
    const char *const keys[] = {
        "keepalives_idle", "keepalives_interval",       "keepalives_count", "connect_timeout",
        "dbname",          "fallback_application_name", "client_encoding",  NULL};
    const char *const values[] = {"30",   "10",       "3",    timeout && *timeout ? timeout : "10",
                                  dbname, "txidsync", "UTF8", NULL};
    c->conn = PQconnectdbParams(keys, values, 1);
    if (!c->conn) {
        fail(err, errlen, PG_ERROR, "pg: connect: out of memory");
        free(c);
        return NULL;
    }
    if (PQstatus(c->conn) != CONNECTION_OK) {
        fail(err, errlen, PG_ERROR, "pg: connect: %s", PQerrorMessage(c->conn));
        pg_free(c);
        return NULL;
    }
    if (session_setup(c, err, errlen) != PG_OK) {
        pg_free(c);
        return NULL;
    }
    return c;
}

void pg_free(PgConn *c)
{
    if (!c)
        return;
    PQclear(c->batch_got);
    PQclear(c->call_got);
    free(c->prepared);
    if (c->conn)
        PQfinish(c->conn);
    for (size_t i = 0; i < c->n_channels; i++)
        free(c->channels[i]);
    free(c->channels);
    free(c);
}

bool pg_is_broken(const PgConn *c)
{
    return !c || !c->conn || PQstatus(c->conn) != CONNECTION_OK;
}

/* Issues LISTEN on channel without remembering it.  Returns PG_OK, or
 * PG_ERROR/PG_LOST with err filled. */
static int listen_once(PgConn *c, const char *channel, char *err, size_t errlen)
{
    char *quoted = PQescapeIdentifier(c->conn, channel, strlen(channel));
    if (!quoted)
        return fail(err, errlen, PQstatus(c->conn) == CONNECTION_OK ? PG_ERROR : PG_LOST,
                    "pg: listen: cannot quote the channel name: %s", PQerrorMessage(c->conn));
    Buf sql;
    buf_init(&sql, 1024);
    int rc = buf_printf(&sql, "listen %s", quoted);
    PQfreemem(quoted);
    if (rc != 0) {
        buf_free(&sql);
        return fail(err, errlen, PG_ERROR, "pg: listen: channel name too long");
    }
    PGresult *res = PQexec(c->conn, buf_str(&sql));
    buf_free(&sql);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return result_fail(c, res, "listen", err, errlen);
    PQclear(res);
    return PG_OK;
}

/* Forgets the outstanding statement (a batch query or a call) and
 * whatever of it was read. */
static void batch_forget(PgConn *c)
{
    c->batch_started = false;
    PQclear(c->batch_got);
    c->batch_got = NULL;
    c->call_started = false;
    PQclear(c->call_got);
    c->call_got = NULL;
}

/* Waits until the socket of an outstanding statement is readable.
 * Returns PG_OK, or PG_LOST when it cannot wait: the session is then
 * dropped as if lost, the statement forgotten. */
static int wait_outstanding(PgConn *c, const char *what, char *err, size_t errlen)
{
    struct pollfd pfd = {.fd = PQsocket(c->conn), .events = POLLIN};
    if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
        int e = errno;
        batch_forget(c);
        return fail(err, errlen, PG_LOST, "pg: %s: poll: %s", what, strerror(e));
    }
    return PG_OK;
}

int pg_reconnect(PgConn *c, char *err, size_t errlen)
{
    batch_forget(c);
    free(c->prepared); /* a new session has no prepared statements */
    c->prepared = NULL;
    PQreset(c->conn);
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail(err, errlen, PG_LOST, "pg: reconnect: %s", PQerrorMessage(c->conn));
    int rc = session_setup(c, err, errlen);
    if (rc != PG_OK)
        return rc;
    for (size_t i = 0; i < c->n_channels; i++) {
        rc = listen_once(c, c->channels[i], err, errlen);
        if (rc != PG_OK)
            return rc;
    }
    return PG_OK;
}

int pg_in_recovery(PgConn *c, bool *in_recovery, char *err, size_t errlen)
{
    PGresult *res;
    int rc = exec_params(c, SQL_IN_RECOVERY, 0, NULL, PGRES_TUPLES_OK, "recovery check", &res, err,
                         errlen);
    if (rc != PG_OK)
        return rc;
    if (PQntuples(res) != 1 || PQnfields(res) != 1) {
        PQclear(res);
        return fail(err, errlen, PG_ERROR, "pg: recovery check: unexpected result shape");
    }
    *in_recovery = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return PG_OK;
}

int pg_try_lock(PgConn *c, const char *name, bool *got, int *holder, char *err, size_t errlen)
{
    const char *params[] = {name};
    PGresult *res;
    *got = false;
    *holder = 0;
    int rc = exec_params(c, SQL_TRY_LOCK, 1, params, PGRES_TUPLES_OK, "advisory lock", &res, err,
                         errlen);
    if (rc != PG_OK)
        return rc;
    *got = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (*got)
        return PG_OK;
    rc = exec_params(c, SQL_LOCK_HOLDER, 1, params, PGRES_TUPLES_OK, "advisory lock", &res, err,
                     errlen);
    if (rc != PG_OK)
        return rc;
    if (PQntuples(res) == 1)
        *holder = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return PG_OK;
}

#define SQL_REFRESH_START                                                                          \
    "select txidsync.refresh_start($1::pg_catalog.regclass, nullif($2::pg_catalog.text, ''), $3)"
#define SQL_REFRESH_ROW                                                                            \
    "select rows_done, coalesce(rows_estimate, -1), reason"                                        \
    " from txidsync.refreshes where id = $1::bigint"
#define SQL_REFRESH_STEP                                                                           \
    "select rows, rows_done, finished"                                                             \
    " from txidsync.refresh_step($1::bigint, $2::integer, $3::integer)"

static int refresh_row(PgConn *c, const char *id, PgRefresh *r, char *err, size_t errlen);

int pg_refresh_start(PgConn *c, const char *table, const char *where, const char *reason,
                     PgRefresh *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    const char *params[] = {table, where ? where : "", reason};
    PGresult *res;
    int rc =
        exec_params(c, SQL_REFRESH_START, 3, params, PGRES_TUPLES_OK, "refresh", &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    char id[24];
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return refresh_row(c, id, r, err, errlen);
}

/* Fills r with refresh id (decimal text). */
static int refresh_row(PgConn *c, const char *id, PgRefresh *r, char *err, size_t errlen)
{
    PGresult *res;
    const char *row[] = {id};
    int rc = exec_params(c, SQL_REFRESH_ROW, 1, row, PGRES_TUPLES_OK, "refresh", &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return fail(err, errlen, PG_ERROR, "pg: refresh %s vanished", id);
    }
    r->id = atoll(id);
    r->rows_done = atoll(PQgetvalue(res, 0, 0));
    r->estimate = atoll(PQgetvalue(res, 0, 1));
    snprintf(r->reason, sizeof(r->reason), "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    return PG_OK;
}

/* Sends sql with text parameters without waiting for its result, which
 * call_poll reads.  Returns PG_OK, PG_ERROR or PG_LOST. */
static int call_send(PgConn *c, const char *sql, int nparams, const char *const *values,
                     const char *what, char *err, size_t errlen)
{
    if (c->call_started || c->batch_started)
        return fail(err, errlen, PG_ERROR, "pg: %s: another statement is outstanding", what);
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail(err, errlen, PG_LOST, "pg: %s: the connection is lost", what);
    if (!PQsendQueryParams(c->conn, sql, nparams, NULL, values, NULL, NULL, 0))
        return fail(err, errlen, PQstatus(c->conn) == CONNECTION_OK ? PG_ERROR : PG_LOST,
                    "pg: %s: %s", what, PQerrorMessage(c->conn));
    c->call_started = true;
    c->call_got = NULL;
    return PG_OK;
}

/* Reads what arrived of the statement of call_send; once all of it is
 * read, sets *done and *out to its result (the caller checks and clears
 * it; NULL when none came).  Returns PG_OK, or PG_LOST. */
static int call_poll(PgConn *c, bool *done, PGresult **out, const char *what, char *err,
                     size_t errlen)
{
    *done = false;
    *out = NULL;
    if (!c->call_started)
        return fail(err, errlen, PG_ERROR, "pg: %s: none is outstanding", what);
    if (!PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK) {
        batch_forget(c);
        return fail(err, errlen, PG_LOST, "pg: %s: %s", what, PQerrorMessage(c->conn));
    }
    while (!PQisBusy(c->conn)) {
        PGresult *res = PQgetResult(c->conn);
        if (res) {
            if (c->call_got)
                PQclear(res); /* one statement has one result: ignore more */
            else
                c->call_got = res;
            continue;
        }
        *out = c->call_got;
        c->call_got = NULL;
        c->call_started = false;
        *done = true;
        break;
    }
    return PG_OK;
}

int pg_refresh_step_send(PgConn *c, long long id, long chunk, int lock_wait_ms, char *err,
                         size_t errlen)
{
    char id_s[24], chunk_s[24], wait_s[24];
    snprintf(id_s, sizeof(id_s), "%lld", id);
    snprintf(chunk_s, sizeof(chunk_s), "%ld", chunk);
    snprintf(wait_s, sizeof(wait_s), "%d", lock_wait_ms);
    const char *params[] = {id_s, chunk_s, wait_s};
    return call_send(c, SQL_REFRESH_STEP, 3, params, "refresh step", err, errlen);
}

int pg_refresh_step_poll(PgConn *c, bool *done, PgRefreshStep *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    PGresult *res;
    int rc = call_poll(c, done, &res, "refresh step", err, errlen);
    if (rc != PG_OK || !*done)
        return rc;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        /* lock_not_available, deadlock_detected, serialization_failure */
        bool busy = state && (strcmp(state, "55P03") == 0 || strcmp(state, "40P01") == 0 ||
                              strcmp(state, "40001") == 0);
        rc = result_fail(c, res, "refresh step", err, errlen);
        return busy && rc == PG_ERROR ? PG_BUSY : rc;
    }
    st->rows = atoll(PQgetvalue(res, 0, 0));
    st->rows_done = atoll(PQgetvalue(res, 0, 1));
    st->finished = PQgetvalue(res, 0, 2)[0] == 't';
    PQclear(res);
    return PG_OK;
}

int pg_refresh_step(PgConn *c, long long id, long chunk, int lock_wait_ms, PgRefreshStep *st,
                    char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    int rc = pg_refresh_step_send(c, id, chunk, lock_wait_ms, err, errlen);
    for (bool done = false; rc == PG_OK && !done;) {
        rc = wait_outstanding(c, "refresh step", err, errlen);
        if (rc == PG_OK)
            rc = pg_refresh_step_poll(c, &done, st, err, errlen);
    }
    return rc;
}

#define SQL_TRACK_BEGIN                                                                            \
    "select txidsync.track_begin($1::pg_catalog.regclass, $2::boolean, $3::pg_catalog.text)"
#define SQL_TRACK_STATE                                                                            \
    "select t.filling, t.fill_done, txidsync._rel_estimate(t.relid)"                               \
    " from txidsync.tracked as t where t.relid operator(pg_catalog.=) pg_catalog.to_regclass($1)"
#define SQL_TRACK_STEP                                                                             \
    "select rows, rows_done, finished from txidsync.track_step($1::pg_catalog.regclass, "          \
    "$2::integer)"

/* Reads the tracking state of table into r; *found: it is tracked. */
static int track_state(PgConn *c, const char *table, bool *found, bool *filling, PgRefresh *r,
                       char *err, size_t errlen)
{
    const char *params[] = {table};
    PGresult *res;
    int rc =
        exec_params(c, SQL_TRACK_STATE, 1, params, PGRES_TUPLES_OK, "tracking", &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    *found = PQntuples(res) == 1;
    if (*found) {
        *filling = PQgetvalue(res, 0, 0)[0] == 't';
        r->rows_done = atoll(PQgetvalue(res, 0, 1));
        r->estimate = atoll(PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    return PG_OK;
}

int pg_track_begin(PgConn *c, const char *table, bool notify, bool log_mode, PgRefresh *r,
                   bool *tracked, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->reason, sizeof(r->reason), "tracking");
    bool found = false, filling = false;
    *tracked = false;
    int rc = track_state(c, table, &found, &filling, r, err, errlen);
    if (rc != PG_OK)
        return rc;
    if (found) {
        *tracked = !filling;
        return PG_OK;
    }
    const char *params[] = {table, notify ? "true" : "false", log_mode ? "log" : "side"};
    PGresult *res;
    rc = exec_params(c, SQL_TRACK_BEGIN, 3, params, PGRES_TUPLES_OK, "tracking", &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    PQclear(res);
    return track_state(c, table, &found, &filling, r, err, errlen);
}

int pg_track_step(PgConn *c, const char *table, long chunk, PgRefreshStep *st, char *err,
                  size_t errlen)
{
    char chunk_s[24];
    snprintf(chunk_s, sizeof(chunk_s), "%ld", chunk);
    const char *params[] = {table, chunk_s};
    PGresult *res;
    memset(st, 0, sizeof(*st));
    int rc = exec_params(c, SQL_TRACK_STEP, 2, params, PGRES_TUPLES_OK, "tracking step", &res, err,
                         errlen);
    if (rc != PG_OK)
        return rc;
    st->rows = atoll(PQgetvalue(res, 0, 0));
    st->rows_done = atoll(PQgetvalue(res, 0, 1));
    st->finished = PQgetvalue(res, 0, 2)[0] == 't';
    PQclear(res);
    return PG_OK;
}

#define SQL_COLUMNS_NOTED "select txidsync.columns_noted($1::pg_catalog.oid::pg_catalog.regclass)"
#define SQL_REFRESH_PENDING                                                                        \
    "select txidsync.refresh_pending($1::pg_catalog.oid::pg_catalog.regclass)"

/* Runs sql, a call on t's oid answering a refresh id or null, and fills r
 * with that refresh (r->id 0: none). */
static int refresh_of_call(PgConn *c, const PgTable *t, const char *sql, const char *what,
                           PgRefresh *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    const char *params[] = {t->oid};
    PGresult *res;
    int rc = exec_params(c, sql, 1, params, PGRES_TUPLES_OK, what, &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    bool none = PQgetisnull(res, 0, 0);
    char id[24];
    snprintf(id, sizeof(id), "%s", none ? "" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return none ? PG_OK : refresh_row(c, id, r, err, errlen);
}

int pg_columns_noted(PgConn *c, const PgTable *t, PgRefresh *r, char *err, size_t errlen)
{
    return refresh_of_call(c, t, SQL_COLUMNS_NOTED, "noting the columns", r, err, errlen);
}

int pg_refresh_pending(PgConn *c, const PgTable *t, PgRefresh *r, char *err, size_t errlen)
{
    return refresh_of_call(c, t, SQL_REFRESH_PENDING, "pending refresh", r, err, errlen);
}

#define SQL_CONSUMER_SEEN                                                                          \
    "select txidsync.consumer_seen($1::pg_catalog.oid::pg_catalog.regclass, $2, $3::bigint)"

int pg_consumer_seen(PgConn *c, const PgTable *t, const char *consumer, uint64_t low,
                     uint64_t *pruned_below, char *err, size_t errlen)
{
    char low_s[24];
    snprintf(low_s, sizeof(low_s), "%" PRIu64, low);
    const char *params[] = {t->oid, consumer, low_s};
    PGresult *res;
    *pruned_below = 0;
    int rc = exec_params(c, SQL_CONSUMER_SEEN, 3, params, PGRES_TUPLES_OK,
                         "registering the consumer", &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        *pruned_below = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return PG_OK;
}

#define SQL_PRUNE                                                                                  \
    "select p.tombstones, p.log_entries, p.horizon,"                                               \
    " pg_catalog.array_to_string(p.dropped, ', ')"                                                 \
    " from txidsync.prune($1::pg_catalog.oid::pg_catalog.regclass,"                                \
    " pg_catalog.make_interval(secs => $2::double precision),"                                     \
    " pg_catalog.make_interval(secs => $3::double precision), $4::integer) as p"

int pg_prune_send(PgConn *c, const PgTable *t, long margin_s, long drop_after_s, long chunk,
                  char *err, size_t errlen)
{
    char margin[24], drop[24], chunk_s[24];
    snprintf(margin, sizeof(margin), "%ld", margin_s);
    snprintf(drop, sizeof(drop), "%ld", drop_after_s);
    snprintf(chunk_s, sizeof(chunk_s), "%ld", chunk);
    const char *params[] = {t->oid, margin, drop, chunk_s};
    return call_send(c, SQL_PRUNE, 4, params, "pruning", err, errlen);
}

int pg_prune_poll(PgConn *c, bool *done, PgPrune *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    PGresult *res;
    int rc = call_poll(c, done, &res, "pruning", err, errlen);
    if (rc != PG_OK || !*done)
        return rc;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return result_fail(c, res, "pruning", err, errlen);
    out->tombstones = atoll(PQgetvalue(res, 0, 0));
    out->log_entries = atoll(PQgetvalue(res, 0, 1));
    out->has_horizon = !PQgetisnull(res, 0, 2);
    if (out->has_horizon)
        out->horizon = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
    snprintf(out->dropped, sizeof(out->dropped), "%s", PQgetvalue(res, 0, 3));
    PQclear(res);
    return PG_OK;
}

#define SQL_ROW_ESTIMATE "select txidsync.row_estimate($1::pg_catalog.oid::pg_catalog.regclass)"

int pg_row_estimate(PgConn *c, const PgTable *t, long long *rows, char *err, size_t errlen)
{
    const char *params[] = {t->oid};
    PGresult *res;
    *rows = -1;
    int rc = exec_params(c, SQL_ROW_ESTIMATE, 1, params, PGRES_TUPLES_OK, "row estimate", &res, err,
                         errlen);
    if (rc != PG_OK)
        return rc;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        *rows = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return PG_OK;
}

#define SQL_TRACKED_AS                                                                             \
    "select relid::pg_catalog.text from txidsync.tracked"                                          \
    " where relid operator(pg_catalog.=) $1::pg_catalog.oid"

int pg_table_tracked_as(PgConn *c, const PgTable *t, char *name, size_t len, char *err,
                        size_t errlen)
{
    const char *params[] = {t->oid};
    PGresult *res;
    int rc = exec_params(c, SQL_TRACKED_AS, 1, params, PGRES_TUPLES_OK, "looking the table up",
                         &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    snprintf(name, len, "%s", PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return PG_OK;
}

void pg_table_free(PgTable *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->side_table);
    free(t->key_columns);
    free(t->channel);
    free(t->sql_table);
    free(t->sql_side);
    free(t->sql_log);
    free(t->sql_seq);
    free(t->sql_seq_lit);
    free(t->sql_plain_keys);
    free(t->sql_state);
    free(t->sql_key_text);
    free(t->sql_side_keys);
    free(t->sql_join);
    free(t->owner);
    free(t->oid);
    free(t->sql_doc);
    free(t->sql_nested);
    for (size_t i = 0; i < t->n_columns; i++)
        free(t->column_types[i]);
    free(t->column_types);
    free(t->column_nullable);
    for (size_t i = 0; i < t->n_keys && t->key_names; i++)
        free(t->key_names[i]);
    free(t->key_names);
    for (size_t i = 0; i < t->n_columns; i++)
        free(t->columns[i]);
    free(t->columns);
    memset(t, 0, sizeof *t);
}

/* The name of key column i (0-based) of a side table of n key columns,
 * as track() names them: "key" for one, key1, key2, ... for more. */
static void side_key(char *out, size_t outlen, size_t i, size_t n)
{
    if (n == 1)
        snprintf(out, outlen, "key");
    else
        snprintf(out, outlen, "key%zu", i + 1);
}

/* The state of t's keys as one relation (see PgTable.sql_state) over the
 * side table's key columns keys ("key", "key1, key2") and the condition
 * ljoin joining table row r to log entry l: per key the newest of its side
 * row and its log entries, a log entry deleted when its row is gone.  A
 * Merge Append of the two key orders under a Unique; in the side mode
 * the log is empty.  Returns a new string, or NULL without memory. */
static char *state_relation(const PgTable *t, const char *keys, const char *ljoin)
{
    Buf b;
    buf_init(&b, 64 * 1024);
    char *out = NULL;
    if (buf_printf(&b,
                   "(select distinct on (%1$s) %1$s, u.version, u.txid, u.deleted from ("
                   "select %1$s, s.version, s.txid, s.deleted from %2$s as s union all "
                   "select %1$s, l.version, l.txid, not exists (select from %3$s as r where %4$s)"
                   " from %5$s as l) as u order by %1$s, u.version desc)",
                   keys, t->sql_side, t->sql_table, ljoin, t->sql_log) == 0)
        out = strdup(buf_str(&b));
    buf_free(&b);
    return out;
}

/* Builds t's SQL fragments over its key columns from res (one row per
 * column: its quoted name).  Returns PG_OK, or PG_ERROR with err filled. */
static int key_expressions(PgTable *t, const PGresult *res, char *err, size_t errlen)
{
    size_t n = (size_t)PQntuples(res);
    if (n < 1 || n > PG_KEYS_MAX)
        return fail(err, errlen, PG_ERROR, "pg: resolve table: %s has %zu key columns recorded",
                    t->name, n);
    t->n_keys = n;
    t->key_names = calloc(n, sizeof(*t->key_names));
    if (!t->key_names)
        return fail(err, errlen, PG_ERROR, "pg: resolve table: out of memory");
    for (size_t i = 0; i < n; i++)
        if (!(t->key_names[i] = strdup(PQgetvalue(res, (int)i, 1))))
            return fail(err, errlen, PG_ERROR, "pg: resolve table: out of memory");
    Buf text, keys, join, plain, ljoin;
    buf_init(&text, 64 * 1024);
    buf_init(&keys, 64 * 1024);
    buf_init(&join, 64 * 1024);
    buf_init(&plain, 64 * 1024);
    buf_init(&ljoin, 64 * 1024);
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        char sk[32];
        side_key(sk, sizeof(sk), i, n);
        const char *col = PQgetvalue(res, (int)i, 0);
        /* keys.h: one column as it is; more joined by ',' with % and , escaped. */
        if (n == 1)
            bad |= buf_printf(&text, "s.%s::pg_catalog.text", sk);
        else
            bad |= buf_printf(&text,
                              "%spg_catalog.replace(pg_catalog.replace(s.%s::pg_catalog.text,"
                              " '%%', '%%25'), ',', '%%2C')",
                              i ? " operator(pg_catalog.||) ',' operator(pg_catalog.||) " : "", sk);
        bad |= buf_printf(&keys, "%ss.%s", i ? ", " : "", sk);
        bad |= buf_printf(&join, "%sr.%s = s.%s", i ? " and " : "", col, sk);
        bad |= buf_printf(&plain, "%s%s", i ? ", " : "", sk);
        bad |= buf_printf(&ljoin, "%sr.%s = l.%s", i ? " and " : "", col, sk);
    }
    if (!bad) {
        t->sql_key_text = strdup(buf_str(&text));
        t->sql_side_keys = strdup(buf_str(&keys));
        t->sql_join = strdup(buf_str(&join));
        t->sql_state = state_relation(t, buf_str(&plain), buf_str(&ljoin));
        t->sql_plain_keys = strdup(buf_str(&plain));
    }
    buf_free(&text);
    buf_free(&keys);
    buf_free(&join);
    buf_free(&plain);
    buf_free(&ljoin);
    if (bad || !t->sql_key_text || !t->sql_side_keys || !t->sql_join || !t->sql_state ||
        !t->sql_plain_keys)
        return fail(err, errlen, PG_ERROR, "pg: resolve table: out of memory");
    return PG_OK;
}

/*
 * The function that turns a row into its document.  row_to_json writes the
 * columns in their order and costs Postgres about a third less CPU than
 * to_jsonb, which builds a binary jsonb value first and then prints it
 * (1M rows of the benchmark table: 1.1 s against 1.8 s).  But row_to_json
 * copies a json value's text as it is, and OpenSearch refuses an object
 * with a duplicate key, which to_jsonb would have merged: a table with a
 * json column anywhere in it gets to_jsonb.
 */
static const char *doc_function(const PgTable *t)
{
    return t->doc_jsonb ? "pg_catalog.to_jsonb" : "pg_catalog.row_to_json";
}

/* Copies the column names of res (one per row) into t.  Returns PG_OK,
 * or PG_ERROR with err filled. */
static int column_names(PgTable *t, const PGresult *res, char *err, size_t errlen)
{
    size_t n = (size_t)PQntuples(res);
    t->columns = calloc(n ? n : 1, sizeof(*t->columns));
    t->column_types = calloc(n ? n : 1, sizeof(*t->column_types));
    t->column_nullable = calloc(n ? n : 1, sizeof(*t->column_nullable));
    if (!t->columns || !t->column_types || !t->column_nullable)
        return fail(err, errlen, PG_ERROR, "pg: resolve table: out of memory");
    for (size_t i = 0; i < n; i++) {
        t->columns[i] = strdup(PQgetvalue(res, (int)i, 0));
        t->column_types[i] = strdup(PQgetvalue(res, (int)i, 1));
        t->column_nullable[i] = PQgetvalue(res, (int)i, 2)[0] == 't';
        t->n_columns++;
        if (!t->columns[i] || !t->column_types[i])
            return fail(err, errlen, PG_ERROR, "pg: resolve table: out of memory");
    }
    return PG_OK;
}

/* Fills *t from the one row of SQL_RESOLVE for table.  Returns PG_OK, or
 * PG_ERROR with err filled (the caller frees *t). */
static int resolve_row(PgConn *c, const char *table, const PGresult *res, PgTable *t, char *err,
                       size_t errlen)
{
    t->name = strdup(PQgetvalue(res, 0, 0));
    t->side_table = strdup(PQgetvalue(res, 0, 1));
    t->key_columns = strdup(PQgetvalue(res, 0, 2));
    t->channel = strdup(PQgetvalue(res, 0, 3));
    t->notify = PQgetvalue(res, 0, 4)[0] == 't';
    t->sql_table = strdup(PQgetvalue(res, 0, 5));
    t->sql_side = strdup(PQgetvalue(res, 0, 6));
    t->doc_jsonb = PQgetvalue(res, 0, 7)[0] == 't';
    t->owner = strdup(PQgetvalue(res, 0, 8));
    t->oid = strdup(PQgetvalue(res, 0, 9));
    snprintf(t->columns_hash, sizeof(t->columns_hash), "%s", PQgetvalue(res, 0, 10));
    t->sql_log = strdup(PQgetvalue(res, 0, 11));
    t->sql_seq = strdup(PQgetvalue(res, 0, 12));
    t->log_mode = PQgetvalue(res, 0, 13)[0] == 't';
    t->sql_seq_lit = strdup(PQgetvalue(res, 0, 15));
    if (PQgetvalue(res, 0, 14)[0] != 't')
        return fail(err, errlen, PG_ERROR,
                    "pg: table %s has no change log: run psql -d %s -f sql/txidsync.sql again "
                    "(it upgrades in place), or select txidsync.track('%s')",
                    table, PQdb(c->conn), table);
    if (!PQgetisnull(res, 0, 16)) {
        t->sql_nested = strdup(PQgetvalue(res, 0, 16));
        t->doc_jsonb = true;
    }
    Buf doc;
    buf_init(&doc, PG_NESTED_SQL_MAX);
    if ((t->sql_nested ? buf_printf(&doc, "(%s(r.*) operator(pg_catalog.||) %s)", doc_function(t),
                                    t->sql_nested)
                       : buf_printf(&doc, "%s(r.*)", doc_function(t))) == 0)
        t->sql_doc = strdup(buf_str(&doc));
    buf_free(&doc);
    if (t->sql_nested == NULL && !PQgetisnull(res, 0, 16))
        return fail(err, errlen, PG_ERROR, "pg: resolve table: out of memory");
    if (!t->name || !t->side_table || !t->key_columns || !t->channel || !t->sql_table ||
        !t->sql_side || !t->owner || !t->sql_doc || !t->oid || !t->sql_log || !t->sql_seq ||
        !t->sql_seq_lit)
        return fail(err, errlen, PG_ERROR, "pg: resolve table: out of memory");
    return PG_OK;
}

int pg_table_resolve(PgConn *c, const char *table, PgTable *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (!table || !*table)
        return fail(err, errlen, PG_ERROR, "pg: no table given");
    const char *params[] = {table};
    PGresult *res;
    int rc = exec_params(c, SQL_INSTALLED, 1, params, PGRES_TUPLES_OK, "resolve table", &res, err,
                         errlen);
    if (rc != PG_OK)
        return rc;
    bool installed = PQgetvalue(res, 0, 0)[0] == 't';
    bool exists = PQgetvalue(res, 0, 1)[0] == 't';
    bool current = PQgetvalue(res, 0, 2)[0] == 't';
    PQclear(res);
    if (!installed)
        return fail(err, errlen, PG_ERROR,
                    "pg: txidsync is not installed in database %s (run psql -d %s -f "
                    "sql/txidsync.sql, then select txidsync.track('%s'))",
                    PQdb(c->conn), PQdb(c->conn), table);
    if (!exists)
        return fail(err, errlen, PG_ERROR, "pg: table %s does not exist", table);
    if (!current)
        return fail(err, errlen, PG_ERROR,
                    "pg: the txidsync SQL in database %s is older than this txidsync (run psql -d "
                    "%s -f sql/txidsync.sql again: it upgrades in place)",
                    PQdb(c->conn), PQdb(c->conn));

    rc =
        exec_params(c, SQL_RESOLVE, 1, params, PGRES_TUPLES_OK, "resolve table", &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return fail(err, errlen, PG_ERROR,
                    "pg: table %s is not tracked (run select txidsync.track('%s'))", table, table);
    }
    rc = resolve_row(c, table, res, t, err, errlen);
    PQclear(res);
    if (rc != PG_OK) {
        pg_table_free(t);
        return rc;
    }
    rc = exec_params(c, SQL_KEY_COLUMNS, 1, params, PGRES_TUPLES_OK, "resolve table", &res, err,
                     errlen);
    if (rc == PG_OK)
        rc = key_expressions(t, res, err, errlen);
    PQclear(res);
    if (rc == PG_OK)
        rc = exec_params(c, SQL_COLUMNS, 1, params, PGRES_TUPLES_OK, "resolve table", &res, err,
                         errlen);
    if (rc == PG_OK) {
        rc = column_names(t, res, err, errlen);
        PQclear(res);
    }
    if (rc != PG_OK)
        pg_table_free(t);
    return rc;
}

/* Appends one branch of the batch query: the side table rows and the log
 * entries matching cond, in (txid, key columns...) order, one per txid and
 * key, at most $4 of them.  A transaction that wrote a key more than once
 * logged it more than once: each source gives a transaction's newest
 * entry of a key (the log's index ends in version descending, so DISTINCT
 * ON reads it off the index), and at most $4 of those, in order; the
 * merge of the two keeps the newer where both have a (txid, key).  The
 * first $4 of the merge are among the first $4 of each, and what is
 * merged is at most twice the limit, whatever the planner thinks of the
 * log's size.  Whether a key is deleted is whether its row is gone in the
 * snapshot: what the side table says in the side mode, and what a log
 * entry cannot say.  The document is a scalar subquery, once per row
 * returned (OFFSET 0 keeps it from being copied into both columns), as an
 * index lookup on the primary key. */
static int append_branch(Buf *sql, const PgTable *t, int branch, const char *cond)
{
    const char *k = t->sql_side_keys;
    return buf_printf(
        sql,
        "(select %d as branch, x.key, x.txid, x.version, x.doc is null as deleted, x.doc"
        " from (select %s as key, s.txid, s.version,"
        " (select (%s)::pg_catalog.text from %s as r where %s) as doc"
        " from (select s.txid, %s, pg_catalog.max(s.version) as version from ("
        "(select s.txid, s.version, %s from %s as s where %s order by s.txid, %s limit $4::bigint)"
        " union all (select distinct on (s.txid, %s) s.txid, s.version, %s from %s as s where %s"
        " order by s.txid, %s, s.version desc limit $4::bigint)"
        ") as s group by s.txid, %s order by s.txid, %s limit $4::bigint) as s offset 0) as x)",
        branch, t->sql_key_text, t->sql_doc, t->sql_table, t->sql_join, k, k, t->sql_side, cond, k,
        k, k, t->sql_log, cond, k, k, k);
}

/*
 * Builds the batch statement for table t into sql.  Parameters: $1 xid_at
 * (NULL: none), $2 xip as bigint[], $3 xid_next, $4 the limit, $5 the
 * done set as bigint[] (empty but on a standby), $6 its largest id (or
 * xid_next - 1 when it is empty), $7 the ids of [xid_next, $6] not in it
 * (the gaps), $8 whether to read the gaps by $7 (few) rather than skip
 * the done ids by $5 (many), then one per key column, the components of
 * xid_at_key (each typed by the comparison with its column).  The snapshot comes back as the one
 * row with branch 0; the data rows follow from the LIMITed UNION ALL, whose Append runs its
 * branches in order and is not asked for more rows once the limit is reached — later branches are
 * then never executed.  One statement means one snapshot for both.
 *
 * Branch 1 says "txid = $1 and key > xid_at_key" as a row comparison
 * (s.txid, s.key1, ...) > ($1, $5, ...) bounded by txid <= $1: an equality
 * on txid would let the planner pick the primary key index and filter on
 * txid, which reads the whole key range when the statistics are stale;
 * this form is only cheap on the (txid, key...) index, where it is one
 * short range scan, and it orders keys column by column exactly as the
 * branch's ORDER BY does.
 */
static int build_batch_sql(const PgTable *t, Buf *sql)
{
    /* Branch 3 is "txid >= xid_next, not done" split at the largest done
     * id: up to it (the window behind an old open transaction on a
     * standby) either the few gaps by index lookups or the range with the
     * done ids skipped, then (branch 4) everything above it as one index
     * range.  $8 is a constant of the plan, so the planner keeps one side
     * of the "or". */
#define BRANCH_3_DONE                                                                              \
    "s.txid >= $3::bigint and s.txid <= $6::bigint and (($8::boolean and"                          \
    " s.txid = any($7::bigint[])) or (not $8::boolean and s.txid <> all($5::bigint[])))"
    Buf cond;
    buf_init(&cond, 64 * 1024);
    int bad = buf_printf(&cond, "(s.txid, %s) > ($1::bigint", t->sql_side_keys);
    for (size_t i = 0; i < t->n_keys; i++)
        bad |= buf_printf(&cond, ", $%zu", 9 + i);
    bad |= buf_puts(&cond, ") and s.txid <= $1::bigint");
    /* The snapshot row carries the column fingerprint too: a change of
     * the table's columns is seen with the first batch that may use it. */
    if (bad ||
        buf_puts(sql, "select 0 as branch, null::pg_catalog.text as key, null::bigint as txid,"
                      " null::bigint as version, null::boolean as deleted,"
                      " null::pg_catalog.text as doc,"
                      " sn.xmin, sn.xmax, sn.xip::pg_catalog.text as xip, ") != 0 ||
        buf_printf(sql, SQL_COLUMNS_HASH("%1$s::pg_catalog.oid"), t->oid) != 0 ||
        buf_puts(sql, " as columns, pg_catalog.pg_is_in_recovery() as recovery"
                      " from txidsync.snapshot() as sn"
                      " union all"
                      " select b.branch, b.key, b.txid, b.version, b.deleted, b.doc,"
                      " null, null, null, null, null from (") != 0 ||
        append_branch(sql, t, 1, buf_str(&cond)) != 0 || buf_puts(sql, " union all ") != 0 ||
        append_branch(sql, t, 2, "s.txid = any($2::bigint[])") != 0 ||
        buf_puts(sql, " union all ") != 0 || append_branch(sql, t, 3, BRANCH_3_DONE) != 0 ||
        buf_puts(sql, " union all ") != 0 || append_branch(sql, t, 4, "s.txid > $6::bigint") != 0 ||
        buf_puts(sql, " limit $4::bigint) as b") != 0) {
        buf_free(&cond);
        return -1;
    }
    buf_free(&cond);
    return 0;
}

/* Appends the n ids as a Postgres array literal ("{1,2}") to b; returns
 * 0, or -1 when it grows too long. */
static int id_array(Buf *b, const uint64_t *ids, size_t n)
{
    int rc = buf_puts(b, "{");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = buf_printf(b, i ? ",%" PRIu64 : "%" PRIu64, ids[i]);
    return rc != 0 ? -1 : buf_puts(b, "}");
}

/* The text parameters of the batch statement; numbers live in the struct,
 * the xip list and the key's components in Bufs. */
typedef struct BatchParams {
    char xid_at[24];
    char xid_next[24];
    char limit[24];
    Buf xip;
    Buf done;
    char done_max[24];
    Buf gaps;
    const char *values[8 + PG_KEYS_MAX];
    Buf key; /* xid_at_key split into its components */
    int n_values;
} BatchParams;

/* The gaps of branch 3 when there are few: below this many, branch 3
 * reads them one index lookup each; above, it scans up to the largest
 * done id and skips the done ones. */
#define GAPS_MAX 8192

/* Fills p->done_max and, when the ids of [xid_next, largest done id] that
 * are not done are at most GAPS_MAX, p->gaps with them (*by_gaps true).
 * Returns 0, or -1 when the list does not fit. */
static int done_gaps(const CursorQuery *q, BatchParams *p, bool *by_gaps)
{
    *by_gaps = false;
    if (q->n_done == 0) {
        snprintf(p->done_max, sizeof p->done_max, "%" PRId64, (int64_t)q->xid_next - 1);
        return buf_puts(&p->gaps, "{}");
    }
    uint64_t max = q->done[q->n_done - 1];
    snprintf(p->done_max, sizeof p->done_max, "%" PRIu64, max);
    uint64_t gaps = max - q->xid_next + 1 - q->n_done;
    if (gaps > GAPS_MAX)
        return buf_puts(&p->gaps, "{}");
    *by_gaps = true;
    int rc = buf_puts(&p->gaps, "{");
    size_t j = 0;
    bool first = true;
    for (uint64_t x = q->xid_next; rc == 0 && x < max; x++) {
        if (j < q->n_done && q->done[j] == x) {
            j++;
            continue;
        }
        rc = buf_printf(&p->gaps, first ? "%" PRIu64 : ",%" PRIu64, x);
        first = false;
    }
    return rc != 0 ? -1 : buf_puts(&p->gaps, "}");
}

/* Fills p from q for table t.  Returns 0, or -1 with err filled (p is to
 * be freed with batch_params_free either way). */
static int batch_params(const PgTable *t, const CursorQuery *q, BatchParams *p, char *err,
                        size_t errlen)
{
    buf_init(&p->xip, PG_TEXT_MAX);
    buf_init(&p->done, PG_TEXT_MAX);
    buf_init(&p->gaps, PG_TEXT_MAX);
    buf_init(&p->key, PG_TEXT_MAX);
    p->n_values = 8 + (int)t->n_keys;
    if (q->limit == 0)
        return fail(err, errlen, PG_ERROR, "pg: batch query: the limit is 0");
    if (q->has_xid_at && !q->xid_at_key)
        return fail(err, errlen, PG_ERROR, "pg: batch query: xid_at without its key");
    snprintf(p->xid_at, sizeof p->xid_at, "%" PRIu64, q->xid_at);
    snprintf(p->xid_next, sizeof p->xid_next, "%" PRIu64, q->xid_next);
    snprintf(p->limit, sizeof p->limit, "%zu", q->limit);
    if (id_array(&p->xip, q->xip, q->n_xip) != 0 || id_array(&p->done, q->done, q->n_done) != 0)
        return fail(err, errlen, PG_ERROR, "pg: batch query: xip or done list too long");
    p->values[0] = q->has_xid_at ? p->xid_at : NULL;
    p->values[1] = buf_str(&p->xip);
    p->values[2] = p->xid_next;
    p->values[3] = p->limit;
    p->values[4] = buf_str(&p->done);
    bool by_gaps;
    if (done_gaps(q, p, &by_gaps) != 0)
        return fail(err, errlen, PG_ERROR, "pg: batch query: gap list too long");
    p->values[5] = p->done_max;
    p->values[6] = buf_str(&p->gaps);
    p->values[7] = by_gaps ? "true" : "false";
    size_t starts[PG_KEYS_MAX];
    if (q->has_xid_at && keys_split(q->xid_at_key, t->n_keys, &p->key, starts) != 0)
        return fail(err, errlen, PG_ERROR,
                    "pg: batch query: the cursor's key %.200s is not a key of %zu column(s) of %s",
                    q->xid_at_key, t->n_keys, t->name);
    for (size_t i = 0; i < t->n_keys; i++)
        p->values[8 + i] = q->has_xid_at ? p->key.data + starts[i] : NULL;
    return 0;
}

static void batch_params_free(BatchParams *p)
{
    buf_free(&p->xip);
    buf_free(&p->done);
    buf_free(&p->gaps);
    buf_free(&p->key);
}

/* Reads the snapshot row i of a batch result into b.  Returns 0, or -1
 * with err filled. */
static int read_snapshot(const PGresult *res, int i, PgBatch *b, char *err, size_t errlen)
{
    uint64_t xmin, xmax;
    if (parse_u64(PQgetvalue(res, i, COL_XMIN), &xmin) != 0 ||
        parse_u64(PQgetvalue(res, i, COL_XMAX), &xmax) != 0 ||
        parse_id_array(PQgetvalue(res, i, COL_XIP), &b->xip, &b->snapshot.n_xip) != 0)
        return fail(err, errlen, PG_ERROR, "pg: batch query: malformed snapshot (%s, %s, %s)",
                    PQgetvalue(res, i, COL_XMIN), PQgetvalue(res, i, COL_XMAX),
                    PQgetvalue(res, i, COL_XIP));
    if (xmin > xmax)
        return fail(err, errlen, PG_ERROR,
                    "pg: batch query: snapshot xmin %" PRIu64 " above xmax %" PRIu64, xmin, xmax);
    b->snapshot.xmin = xmin;
    b->snapshot.xmax = xmax;
    b->snapshot.xip = b->xip;
    snprintf(b->columns_hash, sizeof(b->columns_hash), "%s", PQgetvalue(res, i, COL_COLUMNS));
    b->recovery = PQgetvalue(res, i, COL_RECOVERY)[0] == 't';
    return 0;
}

/* Reads data row i of a batch result into *row (borrowing its strings from
 * res) and checks it comes after prev in the cursor's order: branches
 * ascending, txids ascending within a branch.  Returns 0, or -1 with err
 * filled. */
static int read_row(const PGresult *res, int i, const PgRow *prev, PgRow *row, char *err,
                    size_t errlen)
{
    const char *branch = PQgetvalue(res, i, COL_BRANCH);
    row->branch = branch[0] - '0';
    if (branch[1] != '\0' || row->branch < 1 || row->branch > 4)
        return fail(err, errlen, PG_ERROR, "pg: batch query: unexpected branch %s", branch);
    if (PQgetisnull(res, i, COL_KEY) || parse_u64(PQgetvalue(res, i, COL_TXID), &row->txid) != 0 ||
        parse_u64(PQgetvalue(res, i, COL_VERSION), &row->version) != 0)
        return fail(err, errlen, PG_ERROR, "pg: batch query: malformed row %d", i);
    row->key = PQgetvalue(res, i, COL_KEY);
    row->deleted = PQgetvalue(res, i, COL_DELETED)[0] == 't';
    if (PQgetisnull(res, i, COL_DOC)) {
        row->doc = NULL;
        row->doc_len = 0;
    } else {
        row->doc = PQgetvalue(res, i, COL_DOC);
        row->doc_len = (size_t)PQgetlength(res, i, COL_DOC);
    }
    if (prev &&
        (row->branch < prev->branch || (row->branch == prev->branch && row->txid < prev->txid)))
        return fail(err, errlen, PG_ERROR,
                    "pg: batch query: rows out of order (branch %d txid %" PRIu64
                    " after branch %d txid %" PRIu64 ")",
                    row->branch, row->txid, prev->branch, prev->txid);
    return 0;
}

void pg_batch_free(PgBatch *b)
{
    if (!b)
        return;
    PQclear(b->result);
    free(b->rows);
    free(b->xip);
    memset(b, 0, sizeof *b);
}

/* Fills *b (emptied first) from the batch query's result res, which it
 * takes over, and checks it for q's limit.  Returns PG_OK, or PG_ERROR
 * with err filled and *b empty. */
static int read_batch(PGresult *res, size_t limit, PgBatch *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    b->result = res;
    int rc = PG_ERROR;
    int n = PQntuples(res);
    if (PQnfields(res) != N_BATCH_COLS) {
        fail(err, errlen, PG_ERROR, "pg: batch query: unexpected result shape");
        goto done;
    }
    b->rows = calloc(n > 0 ? (size_t)n : 1, sizeof *b->rows);
    if (!b->rows) {
        fail(err, errlen, PG_ERROR, "pg: batch query: out of memory");
        goto done;
    }
    bool have_snapshot = false;
    for (int i = 0; i < n; i++) {
        if (strcmp(PQgetvalue(res, i, COL_BRANCH), "0") == 0) {
            if (have_snapshot) {
                fail(err, errlen, PG_ERROR, "pg: batch query: two snapshots in one result");
                goto done;
            }
            if (read_snapshot(res, i, b, err, errlen) != 0)
                goto done;
            have_snapshot = true;
            continue;
        }
        const PgRow *prev = b->n_rows ? &b->rows[b->n_rows - 1] : NULL;
        if (read_row(res, i, prev, &b->rows[b->n_rows], err, errlen) != 0)
            goto done;
        b->n_rows++;
    }
    if (!have_snapshot) {
        fail(err, errlen, PG_ERROR, "pg: batch query: no snapshot in the result");
        goto done;
    }
    if (b->n_rows > limit) {
        fail(err, errlen, PG_ERROR, "pg: batch query: %zu rows for a limit of %zu", b->n_rows,
             limit);
        goto done;
    }
    rc = PG_OK;
done:
    if (rc != PG_OK)
        pg_batch_free(b);
    return rc;
}

/* Makes sure sql is the statement prepared as BATCH_STMT in this session,
 * unless prepared statements do not last here.  Returns PG_OK, or
 * PG_ERROR/PG_LOST with err filled. */
static int prepare_batch(PgConn *c, const char *sql, int n_params, char *err, size_t errlen)
{
    if (c->no_prepare || (c->prepared && strcmp(c->prepared, sql) == 0))
        return PG_OK;
    PGresult *res;
    if (c->prepared) {
        free(c->prepared);
        c->prepared = NULL;
        res = PQexec(c->conn, "deallocate " BATCH_STMT);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
            return result_fail(c, res, "batch query: deallocate", err, errlen);
        PQclear(res);
    }
    res = PQprepare(c->conn, BATCH_STMT, sql, n_params, NULL);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return result_fail(c, res, "batch query: prepare", err, errlen);
    PQclear(res);
    c->prepared = strdup(sql);
    if (!c->prepared)
        return fail(err, errlen, PG_ERROR, "pg: batch query: out of memory");
    return PG_OK;
}

/* After a failed batch query: when the prepared statement is gone without
 * the session ending (a connection pooler handing out another server
 * connection), the next batches send the statement's text instead. */
static void check_prepared_gone(PgConn *c, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!c->prepared || !state || strcmp(state, "26000") != 0)
        return;
    log_warn("pg: the prepared batch statement disappeared (a connection pooler?);"
             " sending the statement with every batch from now on");
    free(c->prepared);
    c->prepared = NULL;
    c->no_prepare = true;
}

int pg_batch_start(PgConn *c, const PgTable *t, const CursorQuery *q, char *err, size_t errlen)
{
    if (c->batch_started)
        return fail(err, errlen, PG_ERROR, "pg: batch query: another one is outstanding");
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail(err, errlen, PG_LOST, "pg: batch query: the connection is lost");
    BatchParams p;
    Buf sql;
    buf_init(&sql, PG_TEXT_MAX);
    int rc = PG_ERROR;
    if (batch_params(t, q, &p, err, errlen) != 0)
        goto done;
    if (build_batch_sql(t, &sql) != 0) {
        fail(err, errlen, PG_ERROR, "pg: batch query: out of memory");
        goto done;
    }
    rc = prepare_batch(c, buf_str(&sql), p.n_values, err, errlen);
    if (rc != PG_OK)
        goto done;
    rc = PG_ERROR;
    /* libpq copies the parameters (and the statement) into its buffer. */
    int sent =
        c->prepared
            ? PQsendQueryPrepared(c->conn, BATCH_STMT, p.n_values, p.values, NULL, NULL, 0)
            : PQsendQueryParams(c->conn, buf_str(&sql), p.n_values, NULL, p.values, NULL, NULL, 0);
    if (!sent) {
        rc = fail(err, errlen, PQstatus(c->conn) == CONNECTION_OK ? PG_ERROR : PG_LOST,
                  "pg: batch query: %s", PQerrorMessage(c->conn));
        goto done;
    }
    c->batch_started = true;
    c->batch_got = NULL;
    c->batch_limit = q->limit;
    rc = PG_OK;
done:
    batch_params_free(&p);
    buf_free(&sql);
    return rc;
}

int pg_batch_poll(PgConn *c, PgBatch *b, bool *done, char *err, size_t errlen)
{
    *done = false;
    memset(b, 0, sizeof *b);
    if (!c->batch_started)
        return fail(err, errlen, PG_ERROR, "pg: batch query: none is outstanding");
    if (!PQconsumeInput(c->conn)) {
        batch_forget(c);
        return fail(err, errlen, PG_LOST, "pg: batch query: %s", PQerrorMessage(c->conn));
    }
    /* Every result must be read, up to the NULL that ends them, before
     * the connection takes another statement. */
    while (!PQisBusy(c->conn)) {
        PGresult *res = PQgetResult(c->conn);
        if (res) {
            if (c->batch_got)
                PQclear(res); /* one statement has one result: ignore more */
            else
                c->batch_got = res;
            continue;
        }
        res = c->batch_got;
        c->batch_got = NULL;
        c->batch_started = false;
        *done = true;
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
            check_prepared_gone(c, res);
            return result_fail(c, res, "batch query", err, errlen);
        }
        return read_batch(res, c->batch_limit, b, err, errlen);
    }
    if (PQstatus(c->conn) != CONNECTION_OK) {
        batch_forget(c);
        return fail(err, errlen, PG_LOST, "pg: batch query: the connection is lost");
    }
    return PG_OK;
}

int pg_batch_fetch(PgConn *c, const PgTable *t, const CursorQuery *q, PgBatch *b, char *err,
                   size_t errlen)
{
    memset(b, 0, sizeof *b);
    int rc = pg_batch_start(c, t, q, err, errlen);
    for (bool done = false; rc == PG_OK && !done;) {
        rc = wait_outstanding(c, "batch query", err, errlen);
        if (rc == PG_OK)
            rc = pg_batch_poll(c, b, &done, err, errlen);
    }
    return rc;
}

int pg_socket(const PgConn *c)
{
    return c && c->conn ? PQsocket(c->conn) : -1;
}

int pg_batch_explain(PgConn *c, const PgTable *t, const CursorQuery *q, char **plan, char *err,
                     size_t errlen)
{
    *plan = NULL;
    BatchParams p;
    Buf sql, out;
    buf_init(&sql, PG_TEXT_MAX);
    buf_init(&out, PG_TEXT_MAX);
    PGresult *res = NULL;
    int rc = PG_ERROR;
    if (batch_params(t, q, &p, err, errlen) != 0)
        goto done;
    if (buf_puts(&sql, "explain (analyze, buffers) ") != 0 || build_batch_sql(t, &sql) != 0) {
        fail(err, errlen, PG_ERROR, "pg: explain: out of memory");
        goto done;
    }
    rc = exec_params(c, buf_str(&sql), p.n_values, p.values, PGRES_TUPLES_OK, "explain", &res, err,
                     errlen);
    if (rc != PG_OK)
        goto done;
    rc = PG_ERROR;
    for (int i = 0; i < PQntuples(res); i++) {
        if (buf_puts(&out, PQgetvalue(res, i, 0)) != 0 || buf_puts(&out, "\n") != 0) {
            fail(err, errlen, PG_ERROR, "pg: explain: out of memory");
            goto done;
        }
    }
    *plan = strdup(buf_str(&out));
    if (!*plan) {
        fail(err, errlen, PG_ERROR, "pg: explain: out of memory");
        goto done;
    }
    rc = PG_OK;
done:
    PQclear(res);
    batch_params_free(&p);
    buf_free(&sql);
    buf_free(&out);
    return rc;
}

int pg_snapshot_xmax(PgConn *c, uint64_t *xmax, char *err, size_t errlen)
{
    PGresult *res;
    int rc =
        exec_params(c, SQL_SNAPSHOT_XMAX, 0, NULL, PGRES_TUPLES_OK, "snapshot", &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    if (PQntuples(res) != 1 || parse_u64(PQgetvalue(res, 0, 0), xmax) != 0) {
        PQclear(res);
        return fail(err, errlen, PG_ERROR, "pg: snapshot: unexpected result");
    }
    PQclear(res);
    return PG_OK;
}

int pg_synced_live_rows(PgConn *c, const PgTable *t, const Cursor *cur, bool *any, char *err,
                        size_t errlen)
{
    *any = false;
    Buf sql, xip, dn;
    buf_init(&sql, PG_TEXT_MAX);
    buf_init(&xip, PG_TEXT_MAX);
    buf_init(&dn, PG_TEXT_MAX);
    char next[24];
    snprintf(next, sizeof(next), "%" PRIu64, cur->xid_next);
    int bad = id_array(&xip, cur->xip, cur->n_xip) | id_array(&dn, cur->done, cur->n_done);
    bad |= buf_printf(&sql,
                      "select exists (select from %s as s where not s.deleted"
                      " and ((s.txid < $1::bigint and s.txid <> all($2::bigint[]))"
                      " or s.txid = any($3::bigint[])))",
                      t->sql_state);
    int rc = PG_ERROR;
    if (bad) {
        fail(err, errlen, PG_ERROR, "pg: synced rows: the cursor's xip or done list is too long");
        goto done;
    }
    const char *params[] = {next, buf_str(&xip), buf_str(&dn)};
    PGresult *res;
    rc =
        exec_params(c, buf_str(&sql), 3, params, PGRES_TUPLES_OK, "synced rows", &res, err, errlen);
    if (rc == PG_OK) {
        *any = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
    }
done:
    buf_free(&sql);
    buf_free(&xip);
    buf_free(&dn);
    return rc;
}

int pg_listen(PgConn *c, const char *channel, char *err, size_t errlen)
{
    if (!channel || !*channel)
        return fail(err, errlen, PG_ERROR, "pg: listen: no channel given");
    int rc = listen_once(c, channel, err, errlen);
    if (rc != PG_OK)
        return rc;
    for (size_t i = 0; i < c->n_channels; i++) {
        if (strcmp(c->channels[i], channel) == 0)
            return PG_OK;
    }
    char **grown = realloc(c->channels, (c->n_channels + 1) * sizeof *grown);
    if (!grown)
        return fail(err, errlen, PG_ERROR, "pg: listen: out of memory");
    c->channels = grown;
    c->channels[c->n_channels] = strdup(channel);
    if (!c->channels[c->n_channels])
        return fail(err, errlen, PG_ERROR, "pg: listen: out of memory");
    c->n_channels++;
    return PG_OK;
}

/* Consumes every notification libpq has parsed so far.  Returns whether
 * there was at least one. */
static bool drain_notifies(PgConn *c)
{
    bool any = false;
    PGnotify *n;
    while ((n = PQnotifies(c->conn)) != NULL) {
        PQfreemem(n);
        any = true;
    }
    return any;
}

int pg_wait(PgConn *c, int timeout_ms, bool *notified, char *err, size_t errlen)
{
    *notified = false;
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail(err, errlen, PG_LOST, "pg: wait: the connection is lost");
    if (!PQconsumeInput(c->conn))
        return fail(err, errlen, PG_LOST, "pg: wait: %s", PQerrorMessage(c->conn));
    if (drain_notifies(c)) {
        *notified = true;
        return PG_OK;
    }
    if (timeout_ms == 0)
        return PG_OK;
    int fd = PQsocket(c->conn);
    if (fd < 0)
        return fail(err, errlen, PG_LOST, "pg: wait: the connection has no socket");
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms < 0 ? -1 : timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return PG_OK;
        return fail(err, errlen, PG_ERROR, "pg: wait: poll: %s", strerror(errno));
    }
    if (n == 0)
        return PG_OK;
    if (!PQconsumeInput(c->conn))
        return fail(err, errlen, PG_LOST, "pg: wait: %s", PQerrorMessage(c->conn));
    *notified = drain_notifies(c);
    return PG_OK;
}

/* Asks the server to stop the statement in progress on c (best effort: the
 * caller still drains the results). */
static void cancel_statement(PgConn *c)
{
    PGcancel *cancel = PQgetCancel(c->conn);
    if (cancel) {
        char ignored[256];
        PQcancel(cancel, ignored, sizeof ignored);
        PQfreeCancel(cancel);
    }
}

/*
 * Runs sql (columns: key text, txid, version, deleted, doc text or NULL)
 * in single-row mode and hands each row to fn, so memory stays flat
 * however many rows come.  One statement, so one snapshot.  A callback
 * that returns non-zero stops the scan: the statement is cancelled and the
 * rest of the results drained.  Returns PG_OK/PG_ERROR/PG_LOST with err
 * filled (by the callback, or here).
 */
static int stream_rows(PgConn *c, const char *sql, int nparams, const char *const *values,
                       const char *what, PgRowFn fn, void *ctx, char *err, size_t errlen)
{
    if (PQstatus(c->conn) != CONNECTION_OK)
        return fail(err, errlen, PG_LOST, "pg: %s: the connection is lost", what);
    if (!PQsendQueryParams(c->conn, sql, nparams, NULL, values, NULL, NULL, 0))
        return fail(err, errlen, PQstatus(c->conn) == CONNECTION_OK ? PG_ERROR : PG_LOST,
                    "pg: %s: %s", what, PQerrorMessage(c->conn));
    PQsetSingleRowMode(c->conn);

    /* Every result must be read, also after a failure, before the
     * connection takes another statement. */
    int rc = PG_OK;
    PGresult *res;
    while ((res = PQgetResult(c->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (rc == PG_OK && st == PGRES_SINGLE_TUPLE) {
            PgRow row = {.key = PQgetvalue(res, 0, 0), .deleted = PQgetvalue(res, 0, 3)[0] == 't'};
            if (PQnfields(res) != 5 || parse_u64(PQgetvalue(res, 0, 1), &row.txid) != 0 ||
                parse_u64(PQgetvalue(res, 0, 2), &row.version) != 0) {
                rc = fail(err, errlen, PG_ERROR, "pg: %s: malformed row", what);
                cancel_statement(c);
            } else {
                if (!PQgetisnull(res, 0, 4)) {
                    row.doc = PQgetvalue(res, 0, 4);
                    row.doc_len = (size_t)PQgetlength(res, 0, 4);
                }
                if (err && errlen)
                    err[0] = '\0';
                if (fn(ctx, &row) != 0) {
                    rc = PG_ERROR;
                    if (err && errlen && !err[0])
                        fail(err, errlen, PG_ERROR, "pg: %s stopped by the caller", what);
                    cancel_statement(c);
                }
            }
        } else if (rc == PG_OK && st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK) {
            rc = result_fail(c, res, what, err, errlen);
            continue; /* result_fail cleared it */
        }
        PQclear(res);
    }
    if (rc == PG_OK && PQstatus(c->conn) != CONNECTION_OK)
        rc = fail(err, errlen, PG_LOST, "pg: %s: %s", what, PQerrorMessage(c->conn));
    return rc;
}

int pg_state_scan(PgConn *c, const PgTable *t, PgRowFn fn, void *ctx, char *err, size_t errlen)
{
    Buf sql;
    buf_init(&sql, 64 * 1024);
    if (buf_printf(&sql,
                   "select %s, s.txid, s.version, s.deleted,"
                   " case when s.deleted then null"
                   " else (%s)::pg_catalog.text end"
                   " from %s as s left join %s as r on %s",
                   t->sql_key_text, t->sql_doc, t->sql_state, t->sql_table, t->sql_join) != 0) {
        buf_free(&sql);
        return fail(err, errlen, PG_ERROR, "pg: state scan: out of memory");
    }
    int rc = stream_rows(c, buf_str(&sql), 0, NULL, "state scan", fn, ctx, err, errlen);
    buf_free(&sql);
    return rc;
}

int pg_configure_txid_offset(PgConn *c, uint64_t at_least, uint64_t *offset, char *err,
                             size_t errlen)
{
    char floor_text[24];
    snprintf(floor_text, sizeof floor_text, "%" PRIu64, at_least);
    const char *params[] = {floor_text};
    PGresult *res;
    int rc = exec_params(c, SQL_CONFIGURE_OFFSET, 1, params, PGRES_TUPLES_OK,
                         "configure txid offset", &res, err, errlen);
    if (rc != PG_OK)
        return rc;
    if (PQntuples(res) != 1 || parse_u64(PQgetvalue(res, 0, 0), offset) != 0) {
        PQclear(res);
        return fail(err, errlen, PG_ERROR, "pg: configure txid offset: unexpected result");
    }
    PQclear(res);
    return PG_OK;
}

int pg_live_scan(PgConn *c, const PgTable *t, bool docs, PgRowFn fn, void *ctx, char *err,
                 size_t errlen)
{
    Buf sql;
    buf_init(&sql, 64 * 1024);
    int bad = docs ? buf_printf(&sql,
                                "select %s, s.txid, s.version, false, (%s)::pg_catalog.text"
                                " from %s as s left join %s as r on %s where not s.deleted"
                                " order by (%s) collate pg_catalog.\"C\"",
                                t->sql_key_text, t->sql_doc, t->sql_state, t->sql_table,
                                t->sql_join, t->sql_key_text)
                   : buf_printf(&sql,
                                "select %s, s.txid, s.version, false, null"
                                " from %s as s where not s.deleted"
                                " order by (%s) collate pg_catalog.\"C\"",
                                t->sql_key_text, t->sql_state, t->sql_key_text);
    if (bad != 0) {
        buf_free(&sql);
        return fail(err, errlen, PG_ERROR, "pg: live scan: out of memory");
    }
    int rc = stream_rows(c, buf_str(&sql), 0, NULL, "live scan", fn, ctx, err, errlen);
    buf_free(&sql);
    return rc;
}

/* Appends key to a text[] literal being built in b, as one double-quoted
 * element with backslashes and quotes escaped.  Returns 0, or -1 when the
 * buffer's maximum is reached. */
static int append_array_element(Buf *b, const char *key)
{
    if (buf_puts(b, b->len > 1 ? ",\"" : "\"") != 0)
        return -1;
    for (const char *p = key; *p; p++) {
        if ((*p == '"' || *p == '\\') && buf_append(b, "\\", 1) != 0)
            return -1;
        if (buf_append(b, p, 1) != 0)
            return -1;
    }
    return buf_puts(b, "\"");
}

/* Runs command sql (no parameters, no rows).  Returns PG_OK, or
 * PG_ERROR/PG_LOST with err filled. */
static int exec_command(PgConn *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *res;
    int rc = exec_params(c, sql, 0, NULL, PGRES_COMMAND_OK, what, &res, err, errlen);
    PQclear(res);
    return rc;
}

/* The statement of pg_bump_keys that gives each key of $1 (a text[]) a
 * new version from t's sequence and returns its rows: in the side mode
 * an update of its side row, in the log mode a log entry appended. */
static int bump_statement(Buf *sql, const PgTable *t)
{
    if (!t->log_mode)
        return buf_printf(
            sql,
            "with u as (select distinct u.k from pg_catalog.unnest($1::pg_catalog.text[])"
            " as u(k))"
            " update %1$s as s set version = pg_catalog.nextval(%2$s),"
            " txid = txidsync.current_txid()"
            " from u where %3$s operator(pg_catalog.=) u.k"
            " returning %3$s, s.txid, s.version, s.deleted, null",
            t->sql_side, t->sql_seq_lit, t->sql_key_text);
    return buf_printf(sql,
                      "with u as (select distinct u.k from pg_catalog.unnest($1::pg_catalog.text[])"
                      " as u(k)),"
                      " i as (insert into %1$s (txid, version, %2$s)"
                      " select txidsync.current_txid(), pg_catalog.nextval(%3$s), %4$s"
                      " from %5$s as s join u on %6$s operator(pg_catalog.=) u.k returning *)"
                      " select %6$s, s.txid, s.version,"
                      " not exists (select from %7$s as r where %8$s), null from i as s",
                      t->sql_log, t->sql_plain_keys, t->sql_seq_lit, t->sql_side_keys, t->sql_state,
                      t->sql_key_text, t->sql_table, t->sql_join);
}

/*
 * pg_bump_keys in one transaction: the sequence is first set above every
 * floor, so each new version is above its key's target version too, then
 * bump_statement.  In the side mode the side row's lock orders the new
 * version after any writer of the key, as a writer's own.  In the log
 * mode a log entry's version is only above the last committed write's
 * when no writer of the key is still running, and no row lock can say so
 * (the key may be deleted): a SHARE lock on the table, taken first, waits
 * for every running writer and holds new ones off until the commit, a few
 * milliseconds.  keys and floors are the text[] and bigint[] literals of
 * pg_bump_keys.
 */
static int bump_versions(PgConn *c, const PgTable *t, const char *keys, const char *floors,
                         PgRowFn fn, void *ctx, char *err, size_t errlen)
{
    Buf sql;
    buf_init(&sql, 64 * 1024);
    int bad = t->log_mode && buf_printf(&sql, "lock table %s in share mode", t->sql_table);
    int rc = bad ? fail(err, errlen, PG_ERROR, "pg: new versions: out of memory")
                 : exec_command(c, "begin", "new versions", err, errlen);
    if (rc != PG_OK)
        goto done;
    if (t->log_mode)
        rc = exec_command(c, buf_str(&sql), "new versions", err, errlen);
    const char *p_floors[] = {floors};
    PGresult *res = NULL;
    buf_reset(&sql);
    if (rc == PG_OK && buf_printf(&sql,
                                  "select pg_catalog.setval(%1$s, greatest("
                                  "(select q.last_value from %2$s as q),"
                                  " (select pg_catalog.max(f) from pg_catalog.unnest($1::bigint[])"
                                  " as f) operator(pg_catalog.+) 1))",
                                  t->sql_seq_lit, t->sql_seq) != 0)
        rc = fail(err, errlen, PG_ERROR, "pg: new versions: out of memory");
    if (rc == PG_OK)
        rc = exec_params(c, buf_str(&sql), 1, p_floors, PGRES_TUPLES_OK, "new versions", &res, err,
                         errlen);
    PQclear(res);
    buf_reset(&sql);
    if (rc == PG_OK && bump_statement(&sql, t) != 0)
        rc = fail(err, errlen, PG_ERROR, "pg: new versions: out of memory");
    const char *p_keys[] = {keys};
    if (rc == PG_OK)
        rc = stream_rows(c, buf_str(&sql), 1, p_keys, "new versions", fn, ctx, err, errlen);
    if (rc == PG_OK)
        rc = exec_command(c, "commit", "new versions", err, errlen);
    else if (PQstatus(c->conn) == CONNECTION_OK)
        PQclear(PQexec(c->conn, "rollback"));
done:
    buf_free(&sql);
    return rc;
}

int pg_bump_keys(PgConn *c, const PgTable *t, const char *const *keys, const uint64_t *at_least,
                 size_t n_keys, PgRowFn fn, void *ctx, char *err, size_t errlen)
{
    if (n_keys == 0)
        return PG_OK;
    Buf list, floors;
    buf_init(&list, PG_TEXT_MAX);
    buf_init(&floors, PG_TEXT_MAX);
    int rc = PG_ERROR;
    int bad = buf_puts(&list, "{") | buf_puts(&floors, "{");
    for (size_t i = 0; bad == 0 && i < n_keys; i++)
        bad = append_array_element(&list, keys[i]) |
              buf_printf(&floors, "%s%" PRIu64, i ? "," : "", at_least[i]);
    if (bad != 0 || buf_puts(&list, "}") != 0 || buf_puts(&floors, "}") != 0)
        fail(err, errlen, PG_ERROR, "pg: new versions: the key list is too long");
    else
        rc = bump_versions(c, t, buf_str(&list), buf_str(&floors), fn, ctx, err, errlen);
    buf_free(&list);
    buf_free(&floors);
    return rc;
}

int pg_live_lookup(PgConn *c, const PgTable *t, const char *const *keys, size_t n_keys, PgRowFn fn,
                   void *ctx, char *err, size_t errlen)
{
    if (n_keys == 0)
        return PG_OK;
    Buf sql, list;
    buf_init(&sql, 64 * 1024);
    buf_init(&list, PG_TEXT_MAX);
    int rc = PG_ERROR;
    /* A hash join of the (small) key list with one pass over the side
     * table: the keys are text, so the side table's key index cannot be
     * used without casting them to a type some of them may not parse as. */
    if (buf_printf(&sql,
                   "select %s, s.txid, s.version, false, null"
                   " from (select distinct u.k from pg_catalog.unnest($1::pg_catalog.text[])"
                   " as u(k)) as u"
                   " join %s as s on %s operator(pg_catalog.=) u.k"
                   " where not s.deleted",
                   t->sql_key_text, t->sql_state, t->sql_key_text) != 0) {
        fail(err, errlen, PG_ERROR, "pg: live lookup: out of memory");
        goto done;
    }
    int bad = buf_puts(&list, "{");
    for (size_t i = 0; bad == 0 && i < n_keys; i++)
        bad = append_array_element(&list, keys[i]);
    if (bad != 0 || buf_puts(&list, "}") != 0) {
        fail(err, errlen, PG_ERROR, "pg: live lookup: the key list is too long");
        goto done;
    }
    const char *params[] = {buf_str(&list)};
    rc = stream_rows(c, buf_str(&sql), 1, params, "live lookup", fn, ctx, err, errlen);
done:
    buf_free(&sql);
    buf_free(&list);
    return rc;
}
