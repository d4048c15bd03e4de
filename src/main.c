/*
 * txidsync: the sync daemon's entry point.  Reads the settings (one table
 * drives flags, environment and --help) and hands them to sync_run.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "settings.h"
#include "sync.h"
#include "version.h"

static const char summary[] =
    "Copies a tracked PostgreSQL table into Elasticsearch/OpenSearch and keeps the copy\n"
    "exact: rows are read in transaction-id order through an MVCC snapshot cursor and\n"
    "written with external versions, so restarts and replays are harmless.\n"
    "Track a table first: psql -f sql/txidsync.sql; select txidsync.track('TABLE').\n"
    "SIGTERM or SIGINT: finish the requests in flight, save the cursor, exit 0.  SIGUSR1:\n"
    "print the stats line and the latency so far (--latency-field), then count it afresh.";

int main(int argc, char **argv)
{
    SyncConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    int log_level = 1;
    const Setting table[] = {
        {"pg", SETTING_STRING, "", "TXIDSYNC_PG", "CONNINFO",
         "libpq connection string or URI; empty uses libpq's PG* environment", NULL, 0, 0,
         &cfg.conninfo},
        {"es-url", SETTING_STRING, "http://127.0.0.1:9200", "TXIDSYNC_ES_URL", "URL",
         "Elasticsearch/OpenSearch base URL, credentials allowed (user:pass@host)", NULL, 0, 0,
         &cfg.es_url},
        {"table", SETTING_STRING, "some_table", "TXIDSYNC_TABLE", "NAME",
         "tracked table to copy (schema-qualified if needed)", NULL, 0, 0, &cfg.table},
        {"index", SETTING_STRING, NULL, "TXIDSYNC_INDEX", "NAME",
         "index to write to (default: the table's name)", NULL, 0, 0, &cfg.index},
        {"batch-size", SETTING_INT, "1000", "TXIDSYNC_BATCH_SIZE", "N",
         "rows read per batch and sent per bulk request", NULL, 1, 100000, &cfg.batch_size},
        {"bulk-concurrency", SETTING_INT, "2", "TXIDSYNC_BULK_CONCURRENCY", "N",
         "bulk requests in flight at once; the next batch is read while they are", NULL, 1, 64,
         &cfg.bulk_concurrency},
        {"once", SETTING_BOOL, "false", NULL, NULL, "catch up, persist the cursor, then exit 0",
         NULL, 0, 0, &cfg.once},
        {"on-reject", SETTING_ENUM, "stop", "TXIDSYNC_ON_REJECT", NULL,
         "a document the index rejects for good: stop with its key, or record it in the "
         "dead-letter index and go on",
         "stop|dead-letter", 0, 0, &cfg.on_reject},
        {"dead-letter-index", SETTING_STRING, "txidsync-dead-letter", NULL, "NAME",
         "index for rejected documents", NULL, 0, 0, &cfg.dead_letter_index},
        {"cursor-file", SETTING_STRING, "", "TXIDSYNC_CURSOR_FILE", "PATH",
         "keep the cursor in this file (written atomically) instead of the sink's state index",
         NULL, 0, 0, &cfg.cursor_file},
        {"state-index", SETTING_STRING, "txidsync-state", NULL, "NAME",
         "index holding the cursor document when no --cursor-file is given", NULL, 0, 0,
         &cfg.state_index},
        {"replicas", SETTING_INT, "1", "TXIDSYNC_REPLICAS", "N",
         "number_of_replicas of the indices txidsync creates", NULL, 0, 10, &cfg.replicas},
        {"poll-interval", SETTING_INT, "1000", "TXIDSYNC_POLL_INTERVAL", "MS",
         "longest wait between two polls when no notification comes", NULL, 10, 3600000,
         &cfg.poll_interval_ms},
        {"stats-interval", SETTING_INT, "10", NULL, "SECONDS",
         "seconds between two stats lines; 0 for none", NULL, 0, 86400, &cfg.stats_interval_s},
        {"latency-field", SETTING_STRING, "", NULL, "PATH",
         "measure commit-to-acknowledgement latency: the dotted path of a number in each row's "
         "document holding its write time in epoch seconds (e.g. data.ts); quantiles go to the "
         "stats lines and the exit line; empty for off",
         NULL, 0, 0, &cfg.latency_field},
        {"crash-probability", SETTING_DOUBLE, "0", "TXIDSYNC_CRASH_PROBABILITY", "P",
         "crash injection: SIGKILL itself with probability P at each crash point (testing only)",
         NULL, 0, 1, &cfg.crash_probability},
        {"crash-seed", SETTING_INT, "0", NULL, "N",
         "seed of the crash injection; 0 picks one from time and pid", NULL, 0, 9e18,
         &cfg.crash_seed},
        {"log-level", SETTING_ENUM, "info", "TXIDSYNC_LOG_LEVEL", NULL, "lowest level logged",
         "debug|info|warn|error", 0, 0, &log_level},
    };
    int rc = settings_parse_main(table, sizeof(table) / sizeof(table[0]), "txidsync",
                                 TXIDSYNC_VERSION, summary, argc, argv);
    if (rc >= 0)
        return rc;
    if (!*cfg.table) {
        fprintf(stderr, "txidsync: --table: must not be empty\n");
        return SYNC_EXIT_USAGE;
    }
    if (!cfg.index || !*cfg.index) {
        /* The index is named after the table without its schema. */
        const char *dot = strrchr(cfg.table, '.');
        cfg.index = dot ? dot + 1 : cfg.table;
    }
    log_set_level((LogLevel)log_level);
    return sync_run(&cfg);
}
