/*
 * txidsync: the sync daemon's entry point.  Reads the settings (one table
 * drives flags, environment, the config file and --help) and hands the
 * table set to daemon_run.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "es_settings.h"
#include "log.h"
#include "settings.h"
#include "version.h"

static const char summary[] =
    "Copies tracked PostgreSQL tables into Elasticsearch/OpenSearch, or into files\n"
    "of change events, and keeps the copies exact: rows are read in transaction-id\n"
    "order through an MVCC snapshot cursor and written with per-key versions, so\n"
    "restarts and replays are harmless.\n"
    "Track a table first: psql -f sql/txidsync.sql; select txidsync.track('TABLE').\n"
    "\n"
    "One table: --table NAME and the options below.  Many tables in one process:\n"
    "--config FILE, an INI file with a [txidsync] section (process options, and\n"
    "defaults for every table) and one section per table, named after it.  Its keys\n"
    "are the option names below; a table's section may set those marked 'per table'.\n"
    "With --config, only process options may be given on the command line, and they\n"
    "win over the file.\n"
    "\n"
    "txidsync reset [OPTIONS]: start the tables the options name over: delete each one's\n"
    "target and stored cursor (no syncer may run on it meanwhile), so that the next\n"
    "start copies the table afresh.\n"
    "\n"
    "txidsync refresh [OPTIONS] [--where SQL] [--chunk N] [--background]: send the current\n"
    "state of the tables' rows again, through every running syncer, while they run: each\n"
    "chunk of rows, in key order, gets a new version in one short transaction (it needs a\n"
    "role that may update txidsync's tables).  Stopped anywhere, the same command resumes\n"
    "it, and the running syncers finish it meanwhile.\n"
    "\n"
    "txidsync track [OPTIONS] [--chunk N] [--notify] [--mode side|log]: start tracking\n"
    "the tables online: install their triggers under a short lock, then fill the state\n"
    "of their existing rows in chunks, one short transaction each, while the application\n"
    "writes (it needs the tables' owner).  Syncers may run meanwhile.  Stopped anywhere,\n"
    "the same command resumes it.  --mode applies to a table not tracked yet.\n"
    "\n"
    "SIGTERM or SIGINT: finish the requests in flight, save the cursors, exit 0.\n"
    "SIGUSR1: print each table's stats line and latency so far (--latency-field),\n"
    "then count latency afresh.  Exit status: 0 done, 1 a table failed, 2 bad usage.";

#define T SETTING_PER_TABLE

/* What the settings fill: one table's settings (the defaults of every
 * table with a config file), the process's, and the two outside both. */
static TableConfig tc;
static DaemonConfig dc;
static const char *config_path;
static const char *only;
static int log_level = 1;
static int log_format = LOG_FORMAT_TEXT;

static const Setting table[] = {
    {"config", SETTING_STRING, "", "TXIDSYNC_CONFIG", "FILE",
     "INI file listing the tables to sync (see above); empty: the one --table", NULL, 0, 0,
     &config_path, 0},
    {"only", SETTING_STRING, "", NULL, "NAMES",
     "with --config: only these tables of the file (section names, comma-separated)", NULL, 0, 0,
     &only, 0},
    {"pg", SETTING_STRING, "", "TXIDSYNC_PG", "CONNINFO",
     "per table: libpq connection string or URI; empty uses libpq's PG* environment", NULL, 0, 0,
     &tc.conninfo, T},
    {"sink", SETTING_ENUM, "opensearch", "TXIDSYNC_SINK", NULL,
     "per table: where the changes go: an Elasticsearch/OpenSearch index (--es-url, --index), "
     "a file of change events, one JSON object a line (--ndjson-file), or a Kafka topic of the "
     "same events (--kafka-brokers, --kafka-topic)",
     "opensearch|ndjson|kafka", 0, 0, &tc.sink, T},
    {"kafka-brokers", SETTING_STRING, "127.0.0.1:9092", "TXIDSYNC_KAFKA_BROKERS", "HOSTS",
     "per table, --sink kafka: the bootstrap servers, host:port,...", NULL, 0, 0, &tc.kafka_brokers,
     T},
    {"kafka-topic", SETTING_STRING, "", NULL, "NAME",
     "per table, --sink kafka: the topic (created compacted when missing; default: the table's "
     "name, as for --index); the cursor goes to NAME.kafka-cursor unless --cursor-file is given",
     NULL, 0, 0, &tc.kafka_topic, T},
    {"kafka-partitions", SETTING_INT, "1", NULL, "N",
     "per table, --sink kafka: partitions of the topic txidsync creates (one key always goes to "
     "one partition)",
     NULL, 1, 1000, &tc.kafka_partitions, T},
    {"ndjson-file", SETTING_STRING, "", NULL, "PATH",
     "per table, --sink ndjson: the file events are appended to, fsynced before the cursor "
     "covers them; the cursor goes to PATH.cursor unless --cursor-file is given (default: the "
     "table's name, as for --index, with .ndjson)",
     NULL, 0, 0, &tc.ndjson_file, T},
    {"ndjson-rotate-bytes", SETTING_INT, "0", NULL, "BYTES",
     "per table, --sink ndjson: once the file has this many bytes, rename it PATH.1, PATH.2, "
     "... and begin a new one; 0 for never",
     NULL, 0, 9e18, &tc.ndjson_rotate_bytes, T},
    {"es-url", SETTING_STRING, "http://127.0.0.1:9200", "TXIDSYNC_ES_URL", "URL",
     "per table: Elasticsearch/OpenSearch base URL, http:// or https:// (credentials in it must be "
     "percent-encoded, and ps shows them: prefer --es-user)",
     NULL, 0, 0, &tc.es_url, T},
    ES_AUTH_SETTINGS(tc.es_auth, T, "per table: "),
    {"table", SETTING_STRING, "", "TXIDSYNC_TABLE", "NAME",
     "per table: tracked table to copy (schema-qualified if needed); in a config file, the "
     "section's name unless set",
     NULL, 0, 0, &tc.table, T},
    {"index", SETTING_STRING, NULL, "TXIDSYNC_INDEX", "NAME",
     "per table: index to write to (default: the table's name, with its schema unless public, "
     "in lower case: orders, sales.orders)",
     NULL, 0, 0, &tc.index, T},
    {"columns", SETTING_STRING, "", NULL, "NAMES",
     "per table: only these columns in the documents (comma-separated, in this order); empty "
     "for all",
     NULL, 0, 0, &tc.columns, T},
    {"exclude-columns", SETTING_STRING, "", NULL, "NAMES",
     "per table: every column but these in the documents (comma-separated)", NULL, 0, 0,
     &tc.exclude_columns, T},
    {"mapping", SETTING_STRING, "", NULL, "FILE",
     "per table: JSON body that creates the index, as for PUT /INDEX ({\"settings\": ..., "
     "\"mappings\": ...}); txidsync adds its metadata field and owner; used when txidsync "
     "creates the index",
     NULL, 0, 0, &tc.mapping, T},
    {"batch-size", SETTING_INT, "1000", "TXIDSYNC_BATCH_SIZE", "N",
     "per table: rows read per batch, sent in bulk requests of at most --bulk-max-bytes", NULL, 1,
     100000, &tc.batch_size, T},
    {"batch-max-bytes", SETTING_INT, "67108864", "TXIDSYNC_BATCH_MAX_BYTES", "BYTES",
     "per table: read fewer rows per batch when --batch-size of them would be larger than this "
     "(by the size of the rows read last), so that huge rows do not fill the memory; 0 for no "
     "limit",
     NULL, 0, 4294967296.0, &tc.batch_max_bytes, T},
    {"bulk-concurrency", SETTING_INT, "2", "TXIDSYNC_BULK_CONCURRENCY", "N",
     "per table: bulk requests in flight at once; the next batch is read while they are", NULL, 1,
     64, &tc.bulk_concurrency, T},
    {"bulk-max-bytes", SETTING_INT, "10485760", "TXIDSYNC_BULK_MAX_BYTES", "BYTES",
     "per table: the most bytes of one bulk request (keep it under the sink's "
     "http.max_content_length, 100 MB by default); a batch larger goes in several requests, a "
     "document larger than this alone goes by --on-reject",
     NULL, 4096, 536870912, &tc.bulk_max_bytes, T},
    {"dry-run", SETTING_BOOL, "false", NULL, NULL,
     "write every table's change events to standard output instead of its sink, from the "
     "start, without loading or saving a cursor, then exit (implies --once)",
     NULL, 0, 0, &dc.dry_run, 0},
    {"once", SETTING_BOOL, "false", NULL, NULL,
     "catch up every table, persist the cursors, prune each once (unless --prune-interval 0), then "
     "exit 0",
     NULL, 0, 0, &dc.once, 0},
    {"on-reject", SETTING_ENUM, "stop", "TXIDSYNC_ON_REJECT", NULL,
     "per table: a change the sink rejects for good (too large, refused by the index or "
     "the broker): stop the table naming its key, or record it as a dead letter and go on",
     "stop|dead-letter", 0, 0, &tc.on_reject, T},
    {"dead-letter-index", SETTING_STRING, "txidsync-dead-letter", NULL, "NAME",
     "per table: where dead letters go: an index (opensearch), a topic (kafka); ndjson "
     "writes them to PATH.rejected",
     NULL, 0, 0, &tc.dead_letter_index, T},
    {"cursor-file", SETTING_STRING, "", "TXIDSYNC_CURSOR_FILE", "PATH",
     "per table: keep the cursor in this file (written atomically) instead of the sink's "
     "state index",
     NULL, 0, 0, &tc.cursor_file, T},
    {"state-index", SETTING_STRING, "txidsync-state", NULL, "NAME",
     "per table: index holding the cursor document when no --cursor-file is given", NULL, 0, 0,
     &tc.state_index, T},
    {"replicas", SETTING_INT, "1", "TXIDSYNC_REPLICAS", "N",
     "per table: number_of_replicas of the indices txidsync creates", NULL, 0, 10, &tc.replicas, T},
    {"poll-interval", SETTING_INT, "1000", "TXIDSYNC_POLL_INTERVAL", "MS",
     "per table: longest wait between two polls when no notification comes", NULL, 10, 3600000,
     &tc.poll_interval_ms, T},
    {"where", SETTING_STRING, "", NULL, "SQL",
     "with txidsync refresh: only the rows matching this condition on the table's row t "
     "(e.g. \"t.id < 1000\"); empty: every key, deleted ones too",
     NULL, 0, 0, &dc.refresh_where, 0},
    {"chunk", SETTING_INT, "0", NULL, "N",
     "with txidsync refresh or track: rows a step; 0: 1000 for refresh, 10000 for track", NULL, 0,
     1000000, &dc.refresh_chunk, 0},
    {"background", SETTING_BOOL, "false", NULL, NULL,
     "with txidsync refresh: only start the refresh, and leave its steps to the running syncers, "
     "which take one chunk at a time while they are caught up, so that live changes wait behind "
     "one chunk at most (without it the command steps as fast as it can, and the syncers then "
     "send the refreshed rows ahead of the changes that follow)",
     NULL, 0, 0, &dc.refresh_background, 0},
    {"notify", SETTING_BOOL, "false", NULL, NULL,
     "with txidsync track: the tables' writers NOTIFY, so that syncers wake at once", NULL, 0, 0,
     &dc.track_notify, 0},
    {"mode", SETTING_ENUM, "side", NULL, NULL,
     "with txidsync track: how writers record their changes: side (a row per key in the side "
     "table) or log (an entry per write in the change log, by a C trigger; cheaper for writers, "
     "see the README)",
     "side|log", 0, 0, &dc.track_log, 0},
    {"prune-interval", SETTING_INT, "60", "TXIDSYNC_PRUNE_INTERVAL", "SECONDS",
     "prune each table this often: remove the tombstones and change-log entries every "
     "registered syncer of the table has passed (txidsync.prune); 0 for never (the syncer "
     "still registers, so that other pruners wait for it)",
     NULL, 0, 86400, &dc.prune_every_s, 0},
    {"prune-margin", SETTING_INT, "600", NULL, "SECONDS",
     "prune nothing that a transaction ending less than this ago wrote", NULL, 0, 31536000,
     &dc.prune_margin_s, 0},
    {"consumer-timeout", SETTING_INT, "86400", NULL, "SECONDS",
     "a prune drops, with a warning, the registered syncers not seen for this long, so that "
     "a target nobody syncs any more does not keep every tombstone; one that comes back has "
     "missed the deletes pruned meanwhile, and says so",
     NULL, 60, 315360000, &dc.consumer_timeout_s, 0},
    {"stats-interval", SETTING_INT, "10", NULL, "SECONDS",
     "seconds between two stats lines of each table; 0 for none", NULL, 0, 86400,
     &dc.stats_interval_s, 0},
    {"latency-field", SETTING_STRING, "", NULL, "PATH",
     "per table: measure commit-to-acknowledgement latency: the dotted path of a number in "
     "each row's document holding its write time in epoch seconds (e.g. data.ts); quantiles "
     "go to the stats lines and the exit line; empty for off",
     NULL, 0, 0, &tc.latency_field, T},
    {"crash-probability", SETTING_DOUBLE, "0", "TXIDSYNC_CRASH_PROBABILITY", "P",
     "crash injection: SIGKILL itself with probability P at each crash point (testing only)", NULL,
     0, 1, &dc.crash_probability, 0},
    {"crash-seed", SETTING_INT, "0", NULL, "N",
     "seed of the crash injection; 0 picks one from time and pid", NULL, 0, 9e18, &dc.crash_seed,
     0},
    {"metrics-listen", SETTING_STRING, "", "TXIDSYNC_METRICS_LISTEN", "HOST:PORT",
     "serve Prometheus /metrics, /healthz (the sync loop turns) and /readyz (every table "
     "reaches Postgres and its sink, lag under --ready-max-lag) over HTTP on this address, "
     "e.g. 127.0.0.1:9187 (:9187 for every address); empty for none",
     NULL, 0, 0, &dc.metrics_listen, 0},
    {"ready-max-lag", SETTING_DOUBLE, "60", NULL, "SECONDS",
     "/readyz: a table lagging more than this (the age of the oldest commit the sink has not "
     "acknowledged) is not ready",
     NULL, 0, 1e9, &dc.ready_max_lag_s, 0},
    {"log-level", SETTING_ENUM, "info", "TXIDSYNC_LOG_LEVEL", NULL, "lowest level logged",
     "debug|info|warn|error", 0, 0, &log_level, 0},
    {"log-format", SETTING_ENUM, "text", "TXIDSYNC_LOG_FORMAT", NULL,
     "log lines as text, or as one JSON object a line (time, level, table, message, and the "
     "stats line's figures as fields)",
     "text|json", 0, 0, &log_format, 0},
};
#define N_SETTINGS (sizeof(table) / sizeof(table[0]))

/* Reads the config file into *file and makes the table set from it,
 * after the command line's process options are applied again (they win
 * over the file).  Returns the set (malloc'd, *n tables), or NULL after
 * printing why. */
static TableConfig *tables_from_config(int argc, char **argv, Config *file, size_t *n)
{
    char err[1024];
    const Setting *given = settings_first_given(table, N_SETTINGS, SETTING_PER_TABLE, argc, argv);
    if (given) {
        fprintf(stderr, "txidsync: --%s cannot be used with --config: set it in the file\n",
                given->name);
        return NULL;
    }
    if (config_load(config_path, table, N_SETTINGS, &tc, sizeof(tc), file, err, sizeof(err)) < 0 ||
        settings_apply_args(table, N_SETTINGS, "txidsync", TXIDSYNC_VERSION, summary, argc, argv,
                            err, sizeof(err)) != SETTINGS_OK) {
        fprintf(stderr, "txidsync: %s\n", err);
        return NULL;
    }
    TableConfig *tables = calloc(file->n_tables, sizeof(*tables));
    if (!tables) {
        fprintf(stderr, "txidsync: out of memory\n");
        return NULL;
    }
    for (size_t i = 0; i < file->n_tables; i++) {
        tables[i] = *(TableConfig *)file->tables[i].values;
        tables[i].name = file->tables[i].name;
        if (!config_table_sets(file, i, "table"))
            tables[i].table = file->tables[i].name;
    }
    *n = file->n_tables;
    return tables;
}

/* Keeps only the tables named in the comma-separated list names, in
 * their order in the file.  Returns how many are left, or -1 after
 * printing a name that is not in the file. */
static long keep_only(TableConfig *tables, size_t n, const char *names)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(tables[i].name);
        for (const char *p = names; *p;) {
            size_t word = strcspn(p, ",");
            if (word == len && strncmp(p, tables[i].name, len) == 0) {
                tables[kept++] = tables[i];
                break;
            }
            p += word + (p[word] == ',');
        }
    }
    for (const char *p = names; *p;) {
        size_t word = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < kept && !found; i++)
            found = strlen(tables[i].name) == word && strncmp(p, tables[i].name, word) == 0;
        if (!found) {
            fprintf(stderr, "txidsync: --only: %.*s is not a table of %s\n", (int)word, p,
                    config_path);
            return -1;
        }
        p += word + (p[word] == ',');
    }
    return (long)kept;
}

/* Runs the table set (or resets it).  Returns the exit code. */
static int run(TableConfig *tables, size_t n_tables)
{
    char err[1024];
    if (daemon_check_tables(tables, n_tables, err, sizeof(err)) < 0) {
        fprintf(stderr, "txidsync: %s\n", err);
        return DAEMON_EXIT_USAGE;
    }
    dc.tables = tables;
    dc.n_tables = n_tables;
    dc.config_path = config_path && *config_path ? config_path : NULL;
    log_set_level((LogLevel)log_level);
    log_set_format((LogFormat)log_format);
    return daemon_run(&dc);
}

int main(int argc, char **argv)
{
    /* txidsync reset|refresh|track [OPTIONS]: the same options, another job. */
    if (argc > 1 && (strcmp(argv[1], "reset") == 0 || strcmp(argv[1], "refresh") == 0 ||
                     strcmp(argv[1], "track") == 0)) {
        dc.reset = strcmp(argv[1], "reset") == 0;
        dc.track = strcmp(argv[1], "track") == 0;
        dc.refresh = strcmp(argv[1], "refresh") == 0;
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    int rc =
        settings_parse_main(table, N_SETTINGS, "txidsync", TXIDSYNC_VERSION, summary, argc, argv);
    if (rc >= 0)
        return rc;
    Config file = {0};
    TableConfig *tables = &tc;
    size_t n_tables = 1;
    tc.name = tc.table;
    if (config_path && *config_path) {
        tables = tables_from_config(argc, argv, &file, &n_tables);
        long kept = tables && *only ? keep_only(tables, n_tables, only) : (long)n_tables;
        if (!tables || kept < 0) {
            free(tables);
            config_free(&file);
            return DAEMON_EXIT_USAGE;
        }
        n_tables = (size_t)kept;
    } else if (*only) {
        fprintf(stderr, "txidsync: --only needs --config\n");
        return DAEMON_EXIT_USAGE;
    } else if (!*tc.table) {
        fprintf(stderr, "txidsync: name the table to sync: --table NAME (or TXIDSYNC_TABLE), or "
                        "--config FILE with a section per table (see --help)\n");
        return DAEMON_EXIT_USAGE;
    }
    rc = run(tables, n_tables);
    if (tables != &tc)
        free(tables);
    config_free(&file);
    return rc;
}
