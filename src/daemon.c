/*
 * daemon: the table set in one loop (see daemon.h).
 *
 * Signals are turned into bytes on a pipe that the loop watches (the
 * handlers do nothing else), so the engines hear of them between two
 * callbacks, never inside one.
 */
#include "daemon.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "crash.h"
#include "engine.h"
#include "http_status.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "refresh.h"
#include "sink_es.h"
#include "sink_kafka.h"
#include "sink_ndjson.h"
#include "store_es.h"
#include "store_file.h"
#include "store_null.h"
#include "target_name.h"
#include "version.h"

static int signal_pipe[2] = {-1, -1};

#define MAPPING_MAX ((size_t)16 << 20)

/* Rows a step of txidsync refresh and of txidsync track, by default. */
#define REFRESH_CHUNK 1000
#define TRACK_CHUNK   10000

/* How long a refresh step waits for a row another transaction holds. */
#define REFRESH_LOCK_WAIT_MS 200

/* What start_all returns when there is nothing left to run (reset). */
#define START_DONE (-1)

/* SIGTERM, SIGINT: 's'; SIGUSR1: 'r'. */
static void on_signal(int sig)
{
    char c = sig == SIGUSR1 ? 'r' : 's';
    int saved = errno;
    if (write(signal_pipe[1], &c, 1) < 0) {
        /* the pipe is full: the loop has plenty to read already */
    }
    errno = saved;
}

typedef struct Daemon {
    const DaemonConfig *cfg;
    Loop *loop;
    Engine **engines;
    size_t n_engines;
    char (*hints)[1024]; /* per table: the command that resets it */
    Metrics *metrics;    /* with --metrics-listen: what the endpoint serves */
    HttpStatus *http;
    LoopTimer publish; /* the next publication of the engines' figures */
} Daemon;

#define PUBLISH_EVERY_MS 500

/* The loop's call to publish every engine's figures (and that the loop
 * turns), then again after PUBLISH_EVERY_MS. */
static void on_publish(void *ctx)
{
    Daemon *d = ctx;
    double now = clock_mono_s();
    for (size_t i = 0; i < d->n_engines; i++) {
        TableMetrics tm;
        engine_metrics(d->engines[i], &tm);
        metrics_publish(d->metrics, i, &tm, now);
    }
    loop_timer_after_ms(d->loop, &d->publish, PUBLISH_EVERY_MS);
}

/* With --metrics-listen: the registry of the engines and the endpoint
 * serving it.  Returns 0, or -1 after printing why. */
static int status_up(Daemon *d)
{
    const DaemonConfig *cfg = d->cfg;
    if (!cfg->metrics_listen || !*cfg->metrics_listen)
        return 0;
    char err[512];
    const char **names = calloc(d->n_engines ? d->n_engines : 1, sizeof(*names));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (size_t i = 0; names && i < d->n_engines; i++)
        names[i] = cfg->tables[i].name;
    d->metrics = names ? metrics_new(names, d->n_engines, TXIDSYNC_VERSION,
                                     (double)ts.tv_sec + (double)ts.tv_nsec / 1e9)
                       : NULL;
    free(names);
    if (!d->metrics) {
        log_error("out of memory");
        return -1;
    }
    d->http =
        http_status_start(cfg->metrics_listen, d->metrics, cfg->ready_max_lag_s, err, sizeof(err));
    if (!d->http) {
        log_error("%s", err);
        return -1;
    }
    log_info("serving /metrics, /healthz and /readyz on %s", cfg->metrics_listen);
    loop_timer_init(&d->publish, on_publish, d);
    on_publish(d);
    return 0;
}

/* The loop's call for the signal pipe. */
static void on_signal_byte(void *ctx, int fd, int events)
{
    (void)events;
    Daemon *d = ctx;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    for (ssize_t i = 0; i < n; i++) {
        for (size_t k = 0; k < d->n_engines; k++) {
            if (buf[i] == 's')
                engine_stop(d->engines[k]);
            else
                engine_report(d->engines[k]);
        }
    }
}

/* Sets up the signal pipe and handlers.  Returns 0 or -1. */
static int signals_on(void)
{
    if (pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void signals_off(void)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    for (int i = 0; i < 2; i++) {
        if (signal_pipe[i] >= 0)
            close(signal_pipe[i]);
        signal_pipe[i] = -1;
    }
}

/* The id of a table's cursor document in the state index. */
static void state_id(const TableConfig *t, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s:%s", t->table, t->index);
}

/* The command that starts table t over, for messages (no connection
 * string: it may hold a password). */
static void reset_hint(const Daemon *d, const TableConfig *t, char *out, size_t outlen)
{
    if (d->cfg->config_path)
        snprintf(out, outlen, "txidsync reset --config %s --only %s", d->cfg->config_path, t->name);
    else
        snprintf(out, outlen, "txidsync reset --table %s --index %s (and this run's other options)",
                 t->table, t->index);
}

/* The search-engine sink of table t.  Returns it, or NULL after printing
 * why. */
static Sink *es_sink(Daemon *d, const TableConfig *t)
{
    char err[1024];
    SinkEsConfig sc = {
        .url = t->es_url,
        .auth = &t->es_auth,
        .index = t->index,
        .replicas = (int)t->replicas,
        .max_in_flight = (size_t)t->bulk_concurrency,
        .max_bytes = (size_t)t->bulk_max_bytes,
        .dead_letter_index =
            t->on_reject == DAEMON_REJECT_DEAD_LETTER ? t->dead_letter_index : NULL,
    };
    Buf body;
    buf_init(&body, MAPPING_MAX);
    if (t->mapping && *t->mapping) {
        if (buf_read_file(&body, t->mapping) < 0) {
            log_table(LOG_ERROR, t->name, NULL, "--mapping: cannot read %s: %s", t->mapping,
                      strerror(errno));
            buf_free(&body);
            return NULL;
        }
        sc.index_body = buf_str(&body);
    }
    if (t->es_auth.insecure)
        log_table(LOG_WARN, t->name, NULL,
                  "--es-insecure: the sink's certificate and host name are NOT verified: "
                  "whoever is on the path can read and change what is sent");
    Sink *sink = sink_es_new(&sc, d->loop, err, sizeof(err));
    buf_free(&body);
    if (!sink)
        log_table(LOG_ERROR, t->name, NULL, "%s", err);
    return sink;
}

/* The sink of table t (its --sink).  Returns it, or NULL after printing
 * why. */
static Sink *table_sink(Daemon *d, const TableConfig *t)
{
    char err[1024];
    if (t->sink == DAEMON_SINK_OPENSEARCH && !d->cfg->dry_run)
        return es_sink(d, t);
    if (t->sink == DAEMON_SINK_KAFKA && !d->cfg->dry_run) {
        SinkKafkaConfig kc = {
            .brokers = t->kafka_brokers,
            .topic = t->kafka_topic,
            .partitions = (int)t->kafka_partitions,
            .replicas = (int)(t->replicas > 0 ? t->replicas : 1),
            .max_in_flight = (size_t)t->bulk_concurrency,
            .max_bytes = (size_t)t->bulk_max_bytes,
            .dead_letter_topic =
                t->on_reject == DAEMON_REJECT_DEAD_LETTER ? t->dead_letter_index : NULL,
        };
        Sink *sink = sink_kafka_new(&kc, d->loop, err, sizeof(err));
        if (!sink)
            log_table(LOG_ERROR, t->name, NULL, "%s", err);
        return sink;
    }
    SinkNdjsonConfig nc = {
        .path = d->cfg->dry_run ? "-" : t->ndjson_file,
        .max_bytes = (size_t)t->bulk_max_bytes,
        .max_file_bytes = (size_t)t->ndjson_rotate_bytes,
    };
    Sink *sink = sink_ndjson_new(&nc, d->loop, err, sizeof(err));
    if (!sink)
        log_table(LOG_ERROR, t->name, NULL, "%s", err);
    return sink;
}

/* The cursor store of table t.  Returns it, or NULL after printing why. */
static Store *table_store(Daemon *d, const TableConfig *t)
{
    char err[1024] = "out of memory", id[1024], path[1100];
    Store *store;
    if (d->cfg->dry_run) {
        store = store_null_new();
    } else if (t->cursor_file && *t->cursor_file) {
        store = store_file_new(t->cursor_file);
    } else if (t->sink == DAEMON_SINK_NDJSON) {
        snprintf(path, sizeof(path), "%s.cursor", t->ndjson_file);
        store = store_file_new(path);
    } else if (t->sink == DAEMON_SINK_KAFKA) {
        snprintf(path, sizeof(path), "%s.kafka-cursor", t->kafka_topic);
        store = store_file_new(path);
    } else {
        state_id(t, id, sizeof(id));
        store = store_es_new(t->es_url, &t->es_auth, t->state_index, id, (int)t->replicas, err,
                             sizeof(err));
    }
    if (!store)
        log_table(LOG_ERROR, t->name, NULL, "cannot set up the cursor store: %s", err);
    return store;
}

/* Creates the engine of table t with its sink and store.  Returns it, or
 * NULL after printing why. */
static Engine *table_engine(Daemon *d, const TableConfig *t, char *hint, size_t hintlen)
{
    char err[1024];
    Sink *sink = table_sink(d, t);
    Store *store = sink ? table_store(d, t) : NULL;
    if (!store) {
        sink_free(sink);
        return NULL;
    }
    EngineConfig ec = {
        .name = t->name,
        .conninfo = t->conninfo,
        .table = t->table,
        .target = t->sink != DAEMON_SINK_OPENSEARCH || d->cfg->dry_run ? "" : t->index,
        .batch_size = (size_t)t->batch_size,
        .batch_max_bytes = (size_t)t->batch_max_bytes,
        .max_in_flight = (size_t)t->bulk_concurrency,
        .once = d->cfg->once || d->cfg->dry_run,
        .dead_letter = t->on_reject == DAEMON_REJECT_DEAD_LETTER,
        .poll_interval_ms = (long)t->poll_interval_ms,
        .stats_interval_s = (long)d->cfg->stats_interval_s,
        .latency_field = t->latency_field,
        .reset_hint = hint,
        .columns = t->columns,
        .exclude_columns = t->exclude_columns,
        .consumer = !d->cfg->dry_run,
        .prune_every_s = d->cfg->dry_run ? 0 : (long)d->cfg->prune_every_s,
        .prune_margin_s = (long)d->cfg->prune_margin_s,
        .consumer_timeout_s = (long)d->cfg->consumer_timeout_s,
    };
    reset_hint(d, t, hint, hintlen);
    Engine *e = engine_new(&ec, d->loop, sink, store, err, sizeof(err));
    if (!e)
        log_table(LOG_ERROR, t->name, NULL, "%s", err);
    return e;
}

/* Whether every engine has ended; *failed tells whether one failed. */
static bool all_ended(const Daemon *d, bool *failed)
{
    bool ended = true;
    *failed = false;
    for (size_t i = 0; i < d->n_engines; i++) {
        EngineState st = engine_state(d->engines[i]);
        if (st == ENGINE_FAILED)
            *failed = true;
        else if (st != ENGINE_STOPPED)
            ended = false;
    }
    return ended;
}

/* Creates, opens and starts every engine (or resets each, with reset).
 * Returns 0 or an exit code. */
static int start_all(Daemon *d)
{
    d->engines = calloc(d->cfg->n_tables, sizeof(*d->engines));
    d->hints = calloc(d->cfg->n_tables, sizeof(*d->hints));
    if (!d->engines || !d->hints) {
        log_error("out of memory");
        return DAEMON_EXIT_FAILED;
    }
    for (size_t i = 0; i < d->cfg->n_tables; i++) {
        Engine *e = table_engine(d, &d->cfg->tables[i], d->hints[i], sizeof(d->hints[i]));
        if (!e)
            return DAEMON_EXIT_USAGE;
        d->engines[d->n_engines++] = e;
    }
    if (!d->cfg->reset && status_up(d) < 0)
        return DAEMON_EXIT_USAGE;
    if (d->cfg->reset) {
        int code = START_DONE;
        for (size_t i = 0; i < d->n_engines; i++)
            if (engine_reset(d->engines[i]) < 0)
                code = DAEMON_EXIT_FAILED;
        return code;
    }
    /* Every table is checked before any target is prepared: a table that
     * cannot start leaves nothing behind in the others' sinks. */
    for (size_t i = 0; i < d->n_engines; i++) {
        if (engine_open(d->engines[i]) < 0)
            return DAEMON_EXIT_FAILED;
    }
    for (size_t i = 0; i < d->n_engines; i++) {
        if (engine_start(d->engines[i]) < 0)
            return DAEMON_EXIT_FAILED;
    }
    return 0;
}

/* txidsync refresh: asked between two steps whether a signal said stop. */
static bool stop_requested(void *ctx)
{
    bool *stopped = ctx;
    char buf[64];
    ssize_t n;
    while ((n = read(signal_pipe[0], buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++)
            *stopped = *stopped || buf[i] == 's';
    return *stopped;
}

/* txidsync refresh: each table's refresh in turn; one that fails leaves
 * the others to run.  Returns an exit code. */
static int refresh_all(const DaemonConfig *cfg)
{
    bool stopped = false, failed = false;
    long chunk = cfg->refresh_chunk > 0 ? (long)cfg->refresh_chunk
                 : cfg->track           ? TRACK_CHUNK
                                        : REFRESH_CHUNK;
    for (size_t i = 0; i < cfg->n_tables && !stopped; i++) {
        const TableConfig *t = &cfg->tables[i];
        RefreshConfig rc = {.name = t->name,
                            .conninfo = t->conninfo,
                            .table = t->table,
                            .where = cfg->refresh_where,
                            .chunk = chunk,
                            .lock_wait_ms = REFRESH_LOCK_WAIT_MS,
                            .stats_interval_s = cfg->stats_interval_s,
                            .background = cfg->refresh_background,
                            .track = cfg->track,
                            .notify = cfg->track_notify,
                            .log_mode = cfg->track_log == 1,
                            .stop = stop_requested,
                            .stop_ctx = &stopped};
        if (refresh_run(&rc) < 0)
            failed = true;
    }
    if (failed && cfg->n_tables > 1)
        log_error("one or more %s failed (see above)", cfg->track ? "tables" : "refreshes");
    return failed ? DAEMON_EXIT_FAILED : DAEMON_EXIT_OK;
}

/* Runs the loop until every engine ended.  Returns an exit code. */
static int run_all(Daemon *d)
{
    bool failed = false;
    while (!all_ended(d, &failed)) {
        if (loop_run_once(d->loop, 1000) < 0) {
            log_error("the event loop failed: %s", strerror(errno));
            return DAEMON_EXIT_FAILED;
        }
    }
    if (failed && d->n_engines > 1)
        log_error("one or more tables failed (see above)");
    return failed ? DAEMON_EXIT_FAILED : DAEMON_EXIT_OK;
}

int daemon_run(const DaemonConfig *cfg)
{
    Daemon d = {.cfg = cfg};
    int code = DAEMON_EXIT_FAILED;
    d.loop = loop_new();
    if (!d.loop || signals_on() < 0) {
        log_error("cannot set up the event loop: %s", strerror(errno));
        goto done;
    }
    if (loop_watch(d.loop, signal_pipe[0], LOOP_READ, on_signal_byte, &d) < 0) {
        log_error("out of memory");
        goto done;
    }
    if (cfg->crash_probability > 0) {
        uint64_t seed = cfg->crash_seed ? (uint64_t)cfg->crash_seed
                                        : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        crash_configure(cfg->crash_probability, seed);
        log_info("crash injection on: probability %g per crash point", cfg->crash_probability);
    }
    if (cfg->refresh || cfg->track) {
        code = refresh_all(cfg);
        goto done;
    }
    code = start_all(&d);
    if (code == START_DONE)
        code = DAEMON_EXIT_OK;
    else if (code == 0)
        code = run_all(&d);
done:
    http_status_stop(d.http);
    if (d.metrics)
        loop_timer_cancel(d.loop, &d.publish);
    metrics_free(d.metrics);
    for (size_t i = 0; i < d.n_engines; i++)
        engine_free(d.engines[i]);
    free(d.engines);
    free(d.hints);
    if (d.loop && signal_pipe[0] >= 0)
        loop_unwatch(d.loop, signal_pipe[0]);
    signals_off();
    loop_free(d.loop);
    return code;
}

/* Whether two optional strings are equal, "" and NULL alike. */
static bool same_text(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

int daemon_check_tables(TableConfig *tables, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        TableConfig *t = &tables[i];
        if (!t->table || !*t->table)
            return err_printf(err, errlen, "%s: the table name must not be empty", t->name);
        if (!t->index || !*t->index) {
            target_default_name(t->table, t->default_index, sizeof(t->default_index));
            t->index = t->default_index;
        }
        if (!t->kafka_topic || !*t->kafka_topic) {
            target_default_name(t->table, t->default_topic, sizeof(t->default_topic));
            t->kafka_topic = t->default_topic;
        }
        if (!t->ndjson_file || !*t->ndjson_file) {
            char name[256];
            target_default_name(t->table, name, sizeof(name));
            snprintf(t->default_ndjson, sizeof(t->default_ndjson), "%s.ndjson", name);
            t->ndjson_file = t->default_ndjson;
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++) {
            const TableConfig *a = &tables[j], *b = &tables[i];
            bool same_db = same_text(a->conninfo, b->conninfo);
            bool same_sink = same_text(a->es_url, b->es_url);
            if (same_db && same_text(a->table, b->table))
                return err_printf(err, errlen, "%s: table %s is configured twice (also in %s)",
                                  b->name, b->table, a->name);
            if (a->sink == DAEMON_SINK_NDJSON && b->sink == DAEMON_SINK_NDJSON &&
                same_text(a->ndjson_file, b->ndjson_file))
                return err_printf(err, errlen,
                                  "%s: file %s is the target of %s too: give each table a file "
                                  "of its own",
                                  b->name, b->ndjson_file, a->name);
            if (a->sink == DAEMON_SINK_OPENSEARCH && b->sink == DAEMON_SINK_OPENSEARCH &&
                same_sink && same_text(a->index, b->index))
                return err_printf(err, errlen,
                                  "%s: index %s is the target of %s too: give each table an "
                                  "index of its own",
                                  b->name, b->index, a->name);
            if (a->cursor_file && *a->cursor_file && same_text(a->cursor_file, b->cursor_file))
                return err_printf(err, errlen, "%s: cursor file %s is used by %s too", b->name,
                                  b->cursor_file, a->name);
        }
    }
    return 0;
}
