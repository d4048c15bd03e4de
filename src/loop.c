/*
 * loop: poll(2) over every watched descriptor, and an unsorted list of
 * timers (see loop.h).  A process here has tens of tables, each with a
 * database socket and a few sink connections, so a linear scan of the
 * watches and timers per round costs nothing next to the work a round does.
 */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

typedef struct Watch {
    int events; /* 0: not watched */
    LoopFdFn fn;
    void *ctx;
    uint64_t gen; /* changes whenever the watch is replaced or removed */
} Watch;

struct Loop {
    Watch *watches; /* indexed by descriptor */
    size_t n_watches;
    uint64_t gen;
    LoopTimer *timers; /* armed timers, a doubly linked list */
    uint64_t seq;      /* the current round */
    struct pollfd *pfds;
    uint64_t *pfd_gens;
    size_t pfd_cap;
};

Loop *loop_new(void)
{
    return calloc(1, sizeof(Loop));
}

void loop_free(Loop *l)
{
    if (!l)
        return;
    for (LoopTimer *t = l->timers; t; t = t->next)
        t->armed = false;
    free(l->watches);
    free(l->pfds);
    free(l->pfd_gens);
    free(l);
}

int loop_watch(Loop *l, int fd, int events, LoopFdFn fn, void *ctx)
{
    if (fd < 0)
        return -1;
    if (events == 0) {
        loop_unwatch(l, fd);
        return 0;
    }
    if ((size_t)fd >= l->n_watches) {
        size_t n = l->n_watches ? l->n_watches : 64;
        while (n <= (size_t)fd)
            n *= 2;
        Watch *grown = realloc(l->watches, n * sizeof(*grown));
        if (!grown)
            return -1;
        memset(grown + l->n_watches, 0, (n - l->n_watches) * sizeof(*grown));
        l->watches = grown;
        l->n_watches = n;
    }
    Watch *w = &l->watches[fd];
    if (w->events != events || w->fn != fn || w->ctx != ctx)
        w->gen = ++l->gen;
    w->events = events;
    w->fn = fn;
    w->ctx = ctx;
    return 0;
}

void loop_unwatch(Loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->n_watches)
        return;
    Watch *w = &l->watches[fd];
    w->events = 0;
    w->fn = NULL;
    w->ctx = NULL;
    w->gen = ++l->gen;
}

void loop_timer_init(LoopTimer *t, LoopTimerFn fn, void *ctx)
{
    memset(t, 0, sizeof(*t));
    t->fn = fn;
    t->ctx = ctx;
}

void loop_timer_cancel(Loop *l, LoopTimer *t)
{
    if (!t->armed)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        l->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
    t->armed = false;
}

void loop_timer_at(Loop *l, LoopTimer *t, double at)
{
    loop_timer_cancel(l, t);
    t->at = at;
    t->seq = l->seq;
    t->armed = true;
    t->prev = NULL;
    t->next = l->timers;
    if (l->timers)
        l->timers->prev = t;
    l->timers = t;
}

void loop_timer_after_ms(Loop *l, LoopTimer *t, long ms)
{
    loop_timer_at(l, t, clock_mono_s() + (double)(ms > 0 ? ms : 0) / 1000.0);
}

bool loop_timer_armed(const LoopTimer *t)
{
    return t->armed;
}

/* Fills l->pfds with every watched descriptor.  Returns how many, or -1
 * when out of memory. */
static long build_pollset(Loop *l)
{
    size_t n = 0;
    for (size_t fd = 0; fd < l->n_watches; fd++)
        n += l->watches[fd].events != 0;
    if (n > l->pfd_cap) {
        struct pollfd *p = realloc(l->pfds, n * sizeof(*p));
        if (!p)
            return -1;
        l->pfds = p;
        uint64_t *g = realloc(l->pfd_gens, n * sizeof(*g));
        if (!g)
            return -1;
        l->pfd_gens = g;
        l->pfd_cap = n;
    }
    size_t k = 0;
    for (size_t fd = 0; fd < l->n_watches; fd++) {
        const Watch *w = &l->watches[fd];
        if (!w->events)
            continue;
        l->pfds[k].fd = (int)fd;
        l->pfds[k].events = (short)(((w->events & LOOP_READ) ? POLLIN : 0) |
                                    ((w->events & LOOP_WRITE) ? POLLOUT : 0));
        l->pfds[k].revents = 0;
        l->pfd_gens[k] = w->gen;
        k++;
    }
    return (long)k;
}

/* Milliseconds until the earliest timer armed before this round, capped by
 * max_wait_ms (negative: no cap); -1 for "no limit". */
static int wait_ms(const Loop *l, int max_wait_ms)
{
    double now = clock_mono_s();
    double best = -1;
    for (const LoopTimer *t = l->timers; t; t = t->next) {
        double left = t->at - now;
        if (left < 0)
            left = 0;
        if (best < 0 || left < best)
            best = left;
    }
    int ms = best < 0 ? -1 : (int)(best * 1000.0) + (best > 0 ? 1 : 0);
    if (max_wait_ms >= 0 && (ms < 0 || ms > max_wait_ms))
        ms = max_wait_ms;
    return ms;
}

/* Calls every timer that is due and was armed before this round. */
static int fire_timers(Loop *l, uint64_t round)
{
    int called = 0;
    for (;;) {
        double now = clock_mono_s();
        LoopTimer *due = NULL;
        for (LoopTimer *t = l->timers; t; t = t->next) {
            if (t->seq < round && t->at <= now) {
                due = t;
                break;
            }
        }
        if (!due)
            return called;
        loop_timer_cancel(l, due);
        due->fn(due->ctx);
        called++;
    }
}

int loop_run_once(Loop *l, int max_wait_ms)
{
    uint64_t round = ++l->seq;
    long n = build_pollset(l);
    if (n < 0) {
        errno = ENOMEM;
        return -1;
    }
    int ms = wait_ms(l, max_wait_ms);
    if (n == 0 && ms < 0)
        return 0;
    int ready = poll(l->pfds, (nfds_t)n, ms);
    if (ready < 0 && errno != EINTR)
        return -1;
    int called = 0;
    for (long i = 0; ready > 0 && i < n; i++) {
        const struct pollfd *p = &l->pfds[i];
        if (!p->revents)
            continue;
        Watch *w = &l->watches[p->fd];
        if (!w->events || w->gen != l->pfd_gens[i])
            continue; /* replaced or removed by an earlier callback of this round */
        /* An error or hang-up is news for whatever the owner waits for. */
        int ev = w->events;
        if (!(p->revents & (POLLERR | POLLHUP | POLLNVAL)))
            ev =
                ((p->revents & POLLIN) ? LOOP_READ : 0) | ((p->revents & POLLOUT) ? LOOP_WRITE : 0);
        w->fn(w->ctx, p->fd, ev);
        called++;
    }
    return called + fire_timers(l, round);
}
