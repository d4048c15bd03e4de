/*
 * engine_impl: the engine's state, shared by the files of the engine
 * (engine.c runs it, engine_start.c opens, starts and resets it) and by no
 * other file.
 */
#ifndef TXIDSYNC_ENGINE_IMPL_H
#define TXIDSYNC_ENGINE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cursor.h"
#include "engine.h"
#include "json.h"
#include "latency.h"
#include "metrics.h"
#include "log.h"
#include "pg.h"

#define SAVE_EVERY_S          1.0
#define BACKOFF_MIN_MS        100
#define BACKOFF_MAX_MS        30000
#define POLL_MIN_MS           20
#define START_BUSY_WAIT_S     60.0
#define ONCE_FETCH_ERRORS_MAX 10 /* failures in a row before --once gives up */
#define FIRST_BATCH_ROWS      16 /* with a byte budget: the first batch, before row sizes are known */
#define STANDBY_GROW_MAX      64 /* at most this many batches' rows when a standby's batch is stuck */

/* Every message of an engine names its table. */
#define elog(e, level, fmt, ...) log_table(level, (e)->cfg.name, NULL, fmt, ##__VA_ARGS__)

typedef struct Stats {
    uint64_t rows, deletes, conflicts, retries, rejected, batches, reconnects;
    uint64_t refreshes, refresh_rows; /* background refreshes finished, rows they refreshed */
    uint64_t requests, bytes, saves, dead_letters;
    uint64_t reread; /* rows of standby batches the next batch reads again */
    MetricsHist batch_seconds, request_seconds;
    bool sink_down; /* the sink's last answer was "unavailable" */
    uint64_t rows_at_last_line;
    double last_line;
    double complete_at; /* every change committed before this is acknowledged */
    uint64_t last_xmax;
} Stats;

/* Where a slot of the pipeline is. */
typedef enum SlotState {
    SLOT_READY,   /* read, its request not sent yet */
    SLOT_SENT,    /* its request is in flight */
    SLOT_WAITING, /* some of its rows must be sent again after retry_at */
    SLOT_DONE,    /* every row acknowledged; waits for the batches before it */
} SlotState;

/* One batch on its way through the pipeline. */
typedef struct Slot {
    SlotState state;
    PgBatch batch;   /* the rows; requests and retries read them */
    Cursor after;    /* the cursor once this batch and all before it are acknowledged */
    SinkRequest *rq; /* the request of the rows still pending */
    SinkItem *items; /* per change of the request in flight */
    size_t *pending; /* rows still to deliver, as indices into batch.rows; the
                      * first n_sent of them are in the request in flight */
    size_t n_pending;
    size_t n_sent;
    size_t split;   /* a refused request is being split: at most this many per
                     * request (0: as many as the sink takes) */
    size_t cap;     /* of items, pending and keys */
    uint64_t *keys; /* hashes of the batch's keys, sorted */
    size_t n_keys;
    int attempt;
    double retry_at;
    double read_at; /* when its query was sent: its snapshot is no older */
    double sent_at; /* when its request was sent */
    bool complete;  /* it came back short: it holds every change its snapshot sees */
} Slot;

/* The refresh the engine steps in the background (engine_refresh.c). */
typedef struct BgRefresh {
    PgRefresh r; /* r.id 0: none runs */
    PgConn *pg;  /* its own connection, while one runs */
    int fd;      /* its watched socket, -1 when none */
    bool in_flight;
    int failures;   /* steps failed in a row */
    bool read_only; /* the role may not step refreshes: none is taken up */
    double retry_at;
    double started, last_line;
    long long done, done_at_start; /* rows so far, and when the engine took it up */
    double next_poll;              /* when to look for a refresh started elsewhere */
} BgRefresh;

/* The engine as a consumer of its table, and its pruner (engine_prune.c). */
typedef struct Pruner {
    bool registered;   /* consumer_seen succeeded once */
    bool no_consumer;  /* this connection may not register: not tried again */
    bool no_prune;     /* ... may not prune */
    bool behind_said;  /* the warning that tombstones it had not read were pruned */
    bool standby_said; /* the note that a standby's syncer is no consumer */
    double next_seen, next_prune;
    uint64_t low;   /* the low registered last */
    double seen_at; /* ... when */
    PgConn *pg;     /* its own connection for the prune calls, once one was sent */
    int fd;         /* its watched socket, -1 when none */
    bool in_flight;
    double sent_at; /* ... since when */
    bool settled;   /* --once: its last prune call was sent */
    int failures;
    uint64_t tombstones, log_entries; /* removed so far */
} Pruner;

/* The progress of the first copy of the table (engine_backfill.c). */
typedef struct Backfill {
    bool active;
    bool live; /* on the terminal's status line */
    long long estimate;
    double started, last_line, last_live;
} Backfill;

struct Engine {
    EngineConfig cfg;
    Loop *loop;
    Sink *sink;
    Store *store;
    PgConn *pg;
    PgTable table;
    EngineState state;
    bool resuming;       /* a stored cursor was found */
    SinkTarget target;   /* what the sink's target was at start */
    char where[1400];    /* the sink and its target, for messages: "URL/index", "FILE" */
    bool locked;         /* the advisory lock of table and target is held */
    bool standby;        /* the source was a hot standby at start: no LISTEN */
    bool schema_pending; /* the sink has not been told the table's columns yet */
    bool stopping;
    LoopTimer timer; /* the next step */
    int pg_fd;       /* the watched database socket, -1 when none */
    bool pg_down;    /* the connection is lost: reconnect at reconnect_at */
    int reconnect_attempt;
    double reconnect_at;
    Cursor cursor;       /* acknowledged: everything before it is in the sink */
    Cursor saved;        /* what the store holds */
    Cursor ahead;        /* read: where the next batch starts */
    bool read_caught_up; /* the last batch read was short: wait before reading on */
    bool fetching;       /* the next batch's query is outstanding */
    size_t fetch_limit;  /* the row limit of the batch being read */
    double fetch_at;     /* when its query was sent */
    double row_bytes;    /* the mean size of the rows of the last batch; 0 unknown */
    size_t grow;         /* batch limit factor on a standby that made no progress; 1 */
    bool standby_stuck;  /* ... and it is at STANDBY_GROW_MAX: wait a poll between batches */
    bool standby_behind; /* the standby's xmin is below the cursor: waiting for its replay */
    int fetch_errors;    /* failed batch queries in a row */
    double fetch_retry_at;
    uint64_t rows_read; /* rows read since the last wait for changes */
    Slot *slots;        /* a ring of n_slots in reading order */
    size_t n_slots, head, used;
    double last_save;
    bool unsaved_rows; /* rows were delivered since the last save */
    int save_attempt;
    double save_retry_at;
    bool listening;
    long poll_ms; /* current adaptive poll interval */
    bool idle;    /* caught up, waiting for changes until idle_until */
    double idle_until;
    bool idle_doubles; /* the poll interval doubles when this wait ends quietly */
    bool latency_on;
    JsonPath latency_path;
    LatencyHist latency_interval; /* since the last stats line */
    LatencyHist latency_total;
    uint64_t rng;
    Stats stats;
    BgRefresh refresh;
    Backfill backfill;
    Pruner prune;
};

/* For the files of the engine (engine.c). */
double engine_backoff_s(Engine *e, int attempt);
/* Seconds since the oldest commit the sink may not have acknowledged (an
 * upper bound, within one poll); 0 when everything read is acknowledged
 * and the last read found nothing more. */
double engine_lag_s(const Engine *e, double now);
/* Transactions between the acknowledged cursor and the newest snapshot
 * read. */
uint64_t engine_lag_transactions(const Engine *e);
void engine_fail(Engine *e);
int engine_watch_pg(Engine *e);
void engine_unwatch_pg(Engine *e);
void engine_kick(Engine *e);

/* New changes are there to read (a notification, rows a refresh step
 * changed): the engine reads again, ending a wait for changes. */
void engine_notice_changes(Engine *e);

/* The background refresh (engine_refresh.c).  engine_refresh_note has
 * the table's columns compared with those noted last and takes up the
 * refresh a change started (changed: the engine saw them change, so a
 * failure to start one is worth a warning); engine_refresh_step sends the
 * next step when one is due; engine_refresh_due is when a retry is due
 * (0: none); engine_refresh_text is ", refreshing: ..." for the stats line
 * ("" when none runs); engine_refresh_free closes its connection. */
void engine_refresh_note(Engine *e, bool changed);
void engine_refresh_step(Engine *e);
void engine_refresh_poll(Engine *e); /* looks for one started elsewhere, now and then */
bool engine_refresh_running(const Engine *e);
double engine_refresh_due(const Engine *e);
void engine_refresh_text(const Engine *e, char *out, size_t len);
void engine_refresh_free(Engine *e);

/* The consumer and the pruner (engine_prune.c): tick registers and sends
 * a prune call when due (between batch queries); due is when the next is
 * (0: none); free closes the pruner's connection. */
void engine_prune_tick(Engine *e);
void engine_prune_final(Engine *e); /* registers the final stored cursor, when it moved */
/* For --once, once caught up and saved: registers the stored cursor and
 * sends one prune call (when pruning is on); true while that call is in
 * flight. */
bool engine_prune_settle(Engine *e);
double engine_prune_due(const Engine *e);
void engine_prune_free(Engine *e);

/* The progress of the first copy (engine_backfill.c): begin at a start
 * without a stored cursor; report when due, and once (done) when all it
 * read until it caught up is acknowledged; due is when the next report
 * is (0: none); text is ", copying: ..." for the stats line ("" when
 * none). */
void engine_backfill_begin(Engine *e);
void engine_backfill_report(Engine *e, bool done);
double engine_backfill_due(const Engine *e);
void engine_backfill_text(const Engine *e, char *out, size_t len);

/* Tells the sink the table's columns when it has not been told yet
 * (schema_pending).  Returns 0 (told, or nothing to tell), 1 when the sink
 * cannot take it now (sends wait; retried), -1 when the engine failed. */
int engine_schema(Engine *e);

/* Prints why the engine cannot go on with a server whose transaction ids
 * (next xmax) are behind its cursor: lost in a failover, or a restore
 * without txid offset (engine_start.c). */
void engine_refuse_xids_behind(Engine *e, uint64_t xmax);

/* For the files of the engine (engine_start.c): takes the advisory lock
 * of table and target on the engine's connection (again, after a
 * reconnect).  Returns 0, or -1 after printing why. */
int engine_lock(Engine *e);

#endif
