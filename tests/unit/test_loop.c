/*
 * Unit tests of loop: descriptors and timers call back when they should,
 * a callback may change any registration, and a timer re-armed for "now"
 * cannot starve the others.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "loop.h"

typedef struct Counter {
    Loop *loop;
    int calls;
    int order; /* the order of the last call among all counters */
    int fd;
    LoopTimer t;
    bool rearm;
} Counter;

static int order;

static void count_timer(void *ctx)
{
    Counter *c = ctx;
    c->calls++;
    c->order = ++order;
    if (c->rearm)
        loop_timer_after_ms(c->loop, &c->t, 0);
}

static void count_fd(void *ctx, int fd, int events)
{
    Counter *c = ctx;
    char b[16];
    assert_true(events & LOOP_READ);
    assert_true(read(fd, b, sizeof(b)) > 0);
    c->calls++;
    c->order = ++order;
}

static void test_timers_fire_in_time(void **state)
{
    (void)state;
    Loop *l = loop_new();
    Counter a = {.loop = l}, b = {.loop = l}, c = {.loop = l};
    loop_timer_init(&a.t, count_timer, &a);
    loop_timer_init(&b.t, count_timer, &b);
    loop_timer_init(&c.t, count_timer, &c);
    double t0 = clock_mono_s();
    loop_timer_after_ms(l, &b.t, 60);
    loop_timer_after_ms(l, &a.t, 20);
    loop_timer_after_ms(l, &c.t, 40);
    loop_timer_cancel(l, &c.t);
    assert_false(loop_timer_armed(&c.t));
    while (a.calls + b.calls < 2)
        assert_true(loop_run_once(l, 1000) >= 0);
    assert_true(clock_mono_s() - t0 >= 0.058);
    assert_true(a.order < b.order);
    assert_int_equal(c.calls, 0);
    /* Nothing armed or watched: a round returns at once. */
    assert_int_equal(loop_run_once(l, -1), 0);
    loop_free(l);
}

static void test_rearming_for_now_does_not_starve(void **state)
{
    (void)state;
    Loop *l = loop_new();
    Counter busy = {.loop = l, .rearm = true}, other = {.loop = l};
    loop_timer_init(&busy.t, count_timer, &busy);
    loop_timer_init(&other.t, count_timer, &other);
    loop_timer_after_ms(l, &busy.t, 0);
    loop_timer_after_ms(l, &other.t, 5);
    double give_up = clock_mono_s() + 2;
    while (other.calls == 0 && clock_mono_s() < give_up)
        assert_true(loop_run_once(l, 100) >= 0);
    assert_int_equal(other.calls, 1);
    assert_true(busy.calls >= 2); /* once per round, not in a tight loop of one round */
    loop_timer_cancel(l, &busy.t);
    loop_free(l);
}

static void test_descriptors(void **state)
{
    (void)state;
    Loop *l = loop_new();
    int p[2];
    assert_int_equal(pipe(p), 0);
    Counter c = {.loop = l, .fd = p[0]};
    assert_int_equal(loop_watch(l, p[0], LOOP_READ, count_fd, &c), 0);
    assert_int_equal(loop_run_once(l, 10), 0); /* nothing to read */
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(loop_run_once(l, 1000), 1);
    assert_int_equal(c.calls, 1);
    loop_unwatch(l, p[0]);
    assert_int_equal(write(p[1], "y", 1), 1);
    assert_int_equal(loop_run_once(l, 10), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(loop_watch(l, -1, LOOP_READ, count_fd, &c), -1);
    close(p[0]);
    close(p[1]);
    loop_free(l);
}

/* Two descriptors ready in one round; the first callback unwatches the
 * second, which must then not be called. */
typedef struct Pair {
    Loop *loop;
    int fds[2];
    int calls[2];
} Pair;

static void pair_fd(void *ctx, int fd, int events)
{
    (void)events;
    Pair *p = ctx;
    char b[16];
    assert_true(read(fd, b, sizeof(b)) > 0);
    int me = fd == p->fds[0] ? 0 : 1;
    p->calls[me]++;
    loop_unwatch(p->loop, p->fds[1 - me]);
}

static void test_unwatch_during_a_round(void **state)
{
    (void)state;
    Loop *l = loop_new();
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    Pair p = {.loop = l, .fds = {a[0], b[0]}};
    assert_int_equal(loop_watch(l, a[0], LOOP_READ, pair_fd, &p), 0);
    assert_int_equal(loop_watch(l, b[0], LOOP_READ, pair_fd, &p), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    assert_int_equal(loop_run_once(l, 1000), 1);
    assert_int_equal(p.calls[0] + p.calls[1], 1);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_time),
        cmocka_unit_test(test_rearming_for_now_does_not_starve),
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_unwatch_during_a_round),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
