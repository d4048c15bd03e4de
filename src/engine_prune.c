/*
 * engine_prune: the engine as a consumer of its table, and its pruner
 * (docs/design.md, "Pruning").
 *
 * The engine registers how far its stored cursor has come
 * (txidsync.consumer_seen: its target's name and the cursor's low), in a
 * short statement of its own between two batch queries, never inside a
 * batch's snapshot: at start, at most every CONSUMER_MIN_S while the
 * stored cursor moves, at least every CONSUMER_EVERY_S
 * (cfg.consumer_every_ms) so that it is seen, and once more when it stops
 * cleanly.  The stored cursor, not the acknowledged
 * one: a restart resumes from it.  A standby cannot be written, so a
 * syncer reading one is no consumer (it says so once).
 *
 * With cfg.prune_every_s, it also calls txidsync.prune on its table that
 * often, on a connection of its own without blocking the loop, as the
 * background refresh does: the call removes what every registered
 * consumer has passed, in bounded chunks, and a full chunk has the next
 * call follow PRUNE_AGAIN_S later.  Consumers the call dropped, and a target
 * whose cursor is below what was pruned, are warned about.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pg.h"

#include "engine_impl.h"

#define CONSUMER_EVERY_S 10.0
#define CONSUMER_MIN_S   1.0 /* between two registrations of a moving cursor */
#define PRUNE_CHUNK      10000
#define PRUNE_AGAIN_S    0.1 /* after a call that removed a full chunk */

static void on_prune_ready(void *ctx, int fd, int events);

/* Whether a failed statement's message says the connection may not do
 * it: no privilege (42501), a read-only transaction (25006: a hot
 * standby), or no such function (42883: an older sql/txidsync.sql). */
static bool refused(const char *err)
{
    return strstr(err, "(42501)") || strstr(err, "(25006)") || strstr(err, "(42883)");
}

static void close_conn(Engine *e)
{
    Pruner *p = &e->prune;
    if (p->fd >= 0)
        loop_unwatch(e->loop, p->fd);
    p->fd = -1;
    pg_free(p->pg);
    p->pg = NULL;
    p->in_flight = false;
}

void engine_prune_free(Engine *e)
{
    close_conn(e);
}

/* Registers the consumer when it is due (see the file's comment). */
static void register_consumer(Engine *e, double now)
{
    Pruner *p = &e->prune;
    char err[1024];
    uint64_t low = cursor_low(&e->saved), pruned_below = 0;
    p->next_seen = now + (e->cfg.consumer_every_ms > 0 ? (double)e->cfg.consumer_every_ms / 1000.0
                                                       : CONSUMER_EVERY_S);
    int rc = pg_consumer_seen(e->pg, &e->table, e->where, low, &pruned_below, err, sizeof(err));
    if (rc == PG_LOST)
        return; /* the engine's next statement finds out and reconnects */
    if (rc != PG_OK) {
        bool no = refused(err);
        elog(e, LOG_WARN,
             "cannot register as a consumer of the table%s: %s; pruning (txidsync.prune) does not "
             "wait for this target",
             no ? " (grant it with txidsync.grant_reader, or install this release's "
                  "sql/txidsync.sql)"
                : ", trying again",
             err);
        p->no_consumer = no;
        return;
    }
    p->registered = true;
    p->low = low;
    p->seen_at = now;
    if (e->resuming && low < pruned_below && !p->behind_said) {
        p->behind_said = true;
        elog(e, LOG_WARN,
             "tombstones up to txid %" PRIu64 " were pruned before this target read them (its "
             "cursor is at %" PRIu64 ": it was not registered as a consumer, or was dropped "
             "after --consumer-timeout): documents of keys deleted then may remain in %s; "
             "consistency-check --repair removes them",
             pruned_below - 1, low, e->where);
    }
}

/* A prune call failed with rc: retried after a backoff, unless it may
 * never work here. */
static void prune_failed(Engine *e, int rc, const char *err)
{
    Pruner *p = &e->prune;
    p->failures++;
    p->next_prune = clock_mono_s() + engine_backoff_s(e, p->failures);
    if (refused(err)) {
        elog(e, LOG_WARN,
             "this role may not prune the table (%s): run select * from txidsync.prune('%s') as "
             "its owner, or --prune-interval 0 to stop trying",
             err, e->cfg.table);
        p->no_prune = true;
        close_conn(e);
        return;
    }
    elog(e, LOG_WARN, "pruning failed (%d in a row), trying again: %s", p->failures, err);
    if (rc == PG_LOST)
        close_conn(e);
}

/* Sends the next prune call when it is due. */
static void prune_send(Engine *e, double now)
{
    Pruner *p = &e->prune;
    char err[1024];
    if (!p->pg) {
        p->pg = pg_connect(e->cfg.conninfo, err, sizeof(err));
        int fd = p->pg ? pg_socket(p->pg) : -1;
        if (fd < 0 || loop_watch(e->loop, fd, LOOP_READ, on_prune_ready, e) < 0) {
            prune_failed(e, PG_LOST, p->pg ? "cannot watch its socket" : err);
            return;
        }
        p->fd = fd;
    }
    int rc = pg_prune_send(p->pg, &e->table, e->cfg.prune_margin_s, e->cfg.consumer_timeout_s,
                           PRUNE_CHUNK, err, sizeof(err));
    if (rc != PG_OK) {
        prune_failed(e, rc, err);
        return;
    }
    p->in_flight = true;
    p->sent_at = clock_mono_s();
    p->next_prune = now + (double)e->cfg.prune_every_s;
}

/* When a registration of the moved stored cursor is due; 0 when it has
 * not moved since the last one. */
static double moved_due(const Engine *e)
{
    const Pruner *p = &e->prune;
    if (!p->registered || cursor_low(&e->saved) == p->low)
        return 0;
    return p->seen_at + CONSUMER_MIN_S;
}

void engine_prune_tick(Engine *e)
{
    Pruner *p = &e->prune;
    double now = clock_mono_s();
    if (!e->cfg.consumer)
        return;
    if (e->standby) {
        if (!p->standby_said)
            elog(e, LOG_INFO,
                 "reading a standby: this target is not registered as a consumer, so pruning on "
                 "the primary does not wait for it (docs/design.md, \"Pruning\")");
        p->standby_said = true;
        return;
    }
    if (e->pg_down || e->fetching || e->stopping)
        return;
    double moved = moved_due(e);
    if (!p->no_consumer && (now >= p->next_seen || (moved > 0 && moved <= now)))
        register_consumer(e, now);
    if (e->cfg.prune_every_s > 0 && p->registered && !p->no_prune && !p->in_flight &&
        now >= p->next_prune)
        prune_send(e, now);
}

void engine_prune_final(Engine *e)
{
    const Pruner *p = &e->prune;
    if (e->cfg.consumer && !e->standby && !p->no_consumer && !e->pg_down && !e->fetching &&
        (!p->registered || cursor_low(&e->saved) != p->low))
        register_consumer(e, clock_mono_s());
}

bool engine_prune_settle(Engine *e)
{
    Pruner *p = &e->prune;
    if (!e->cfg.consumer || e->standby || p->no_consumer || p->no_prune ||
        e->cfg.prune_every_s <= 0 || e->pg_down)
        return false;
    if (!p->settled && !p->in_flight) {
        p->settled = true;
        engine_prune_final(e);
        if (p->registered)
            prune_send(e, clock_mono_s());
    }
    return p->in_flight;
}

double engine_prune_due(const Engine *e)
{
    const Pruner *p = &e->prune;
    if (!e->cfg.consumer || e->standby)
        return 0;
    double at = p->no_consumer ? 0 : p->next_seen;
    if (!p->no_consumer && moved_due(e) > 0 && moved_due(e) < at)
        at = moved_due(e);
    if (e->cfg.prune_every_s > 0 && p->registered && !p->no_prune && !p->in_flight &&
        (at == 0 || p->next_prune < at))
        at = p->next_prune;
    return at;
}

/* Says what a prune call did. */
static void report(Engine *e, const PgPrune *r, double took_s)
{
    if (r->dropped[0])
        elog(e, LOG_WARN,
             "dropped as consumers of the table, not seen for %ld s (--consumer-timeout): %s; "
             "pruning no longer waits for them",
             e->cfg.consumer_timeout_s, r->dropped);
    if (r->tombstones > 0 || r->log_entries > 0)
        elog(e, LOG_INFO,
             "pruned %lld tombstones and %lld change-log entries below txid %" PRIu64 " in %.0f ms",
             r->tombstones, r->log_entries, r->horizon, took_s * 1000);
    else
        log_table(LOG_DEBUG, e->cfg.name, NULL, "nothing to prune (%s)",
                  r->has_horizon ? "every consumer's tombstones are kept"
                                 : "no consumer, or none past the margin yet");
}

/* The loop's call for the pruner's socket: the answer of a call. */
static void on_prune_ready(void *ctx, int fd, int events)
{
    (void)fd;
    (void)events;
    Engine *e = ctx;
    Pruner *p = &e->prune;
    char err[1024];
    if (!p->in_flight)
        return;
    bool done = false;
    PgPrune r;
    int rc = pg_prune_poll(p->pg, &done, &r, err, sizeof(err));
    if (rc == PG_OK && !done)
        return;
    p->in_flight = false;
    if (rc != PG_OK) {
        prune_failed(e, rc, err);
        engine_kick(e);
        return;
    }
    p->failures = 0;
    p->tombstones += (uint64_t)r.tombstones;
    p->log_entries += (uint64_t)r.log_entries;
    report(e, &r, clock_mono_s() - p->sent_at);
    if (r.tombstones >= PRUNE_CHUNK || r.log_entries >= PRUNE_CHUNK)
        p->next_prune = clock_mono_s() + PRUNE_AGAIN_S;
    engine_kick(e);
}
