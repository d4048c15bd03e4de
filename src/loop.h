/*
 * loop: the process's one event loop.  Whatever waits on a descriptor (a
 * Postgres socket, a sink's connections, a signal pipe) registers it here
 * with a callback, and whatever waits for a moment in time arms a timer;
 * loop_run_once waits for the first of them with poll(2) and calls the
 * callbacks.  No module owns the wait for the others.
 *
 * Callbacks run one at a time, on the caller's thread, from inside
 * loop_run_once.  A callback may watch, unwatch, arm and cancel anything,
 * its own registration included; a descriptor unwatched (or watched anew
 * under the same number) during a round is not called for what poll saw
 * of its predecessor, and a timer armed during a round fires in a later
 * one, so a callback that re-arms itself for "now" cannot starve the rest.
 *
 * The module knows nothing of the application; it reads the monotonic
 * clock (clock_mono_s) for timers.
 */
#ifndef TXIDSYNC_LOOP_H
#define TXIDSYNC_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Loop Loop;

/* What a descriptor is watched for, and what it became ready for. */
enum {
    LOOP_READ = 1,  /* readable, or an error or hang-up to read about */
    LOOP_WRITE = 2, /* writable */
};

/* Called when fd is ready for events (LOOP_READ and/or LOOP_WRITE). */
typedef void (*LoopFdFn)(void *ctx, int fd, int events);

/* Called when the timer is due; the timer is disarmed first. */
typedef void (*LoopTimerFn)(void *ctx);

/* A timer, embedded in its owner's struct (the loop links it while armed;
 * it must not move or be freed while armed: cancel it first). */
typedef struct LoopTimer {
    LoopTimerFn fn;
    void *ctx;
    double at;    /* monotonic seconds */
    uint64_t seq; /* arming round, so that a timer armed in a round waits for the next */
    bool armed;
    struct LoopTimer *next, *prev;
} LoopTimer;

/* Creates a loop; NULL when out of memory.  Freed with loop_free. */
Loop *loop_new(void);

/* Frees the loop; watches and timers still registered are forgotten (their
 * owners must not touch the loop afterwards).  NULL is ignored. */
void loop_free(Loop *l);

/*
 * Watches fd (>= 0) for events (LOOP_READ | LOOP_WRITE), replacing any
 * earlier watch of fd; events 0 is loop_unwatch.  fn(ctx, fd, ready) is
 * called from loop_run_once while fd is ready.  Returns 0, or -1 when out
 * of memory or fd is negative.
 */
int loop_watch(Loop *l, int fd, int events, LoopFdFn fn, void *ctx)
    __attribute__((warn_unused_result));

/* Stops watching fd (nothing when it is not watched).  Call it before the
 * descriptor is closed: its number may be reused at once. */
void loop_unwatch(Loop *l, int fd);

/* Sets up a disarmed timer calling fn(ctx). */
void loop_timer_init(LoopTimer *t, LoopTimerFn fn, void *ctx);

/* Arms (or re-arms) t to fire at monotonic time at (seconds; a time in
 * the past fires in the next round). */
void loop_timer_at(Loop *l, LoopTimer *t, double at);

/* Arms t to fire ms milliseconds from now (0: the next round). */
void loop_timer_after_ms(Loop *l, LoopTimer *t, long ms);

/* Disarms t; nothing when it is not armed. */
void loop_timer_cancel(Loop *l, LoopTimer *t);

/* Tells whether t is armed. */
bool loop_timer_armed(const LoopTimer *t);

/*
 * One round: waits until a watched descriptor is ready, the earliest timer
 * is due, or max_wait_ms passed (negative: no limit but the timers; with
 * nothing watched and no timer that would be forever, so it returns at
 * once), then calls the callbacks of every ready descriptor and every due
 * timer.  A signal interrupting the wait ends the round early.  Returns
 * the number of callbacks called, or -1 when poll(2) fails for another
 * reason than a signal (errno set).
 */
int loop_run_once(Loop *l, int max_wait_ms);

#endif
