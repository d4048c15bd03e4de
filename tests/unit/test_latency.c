/*
 * Unit tests of latency: quantiles within the histogram's resolution,
 * the edges (empty, negative, huge values) and merging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "latency.h"

/* The histogram is too large for cmocka's stack-light tests: keep it static. */
static LatencyHist h, h2;

static void assert_near(double got, double want, double rel)
{
    if (got < want * (1 - rel) || got > want * (1 + rel) + 1e-6)
        fail_msg("got %.9f, want %.9f within %.1f%%", got, want, rel * 100);
}

static void test_empty(void **state)
{
    (void)state;
    latency_reset(&h);
    assert_true(latency_quantile(&h, 0.5) == 0);
    assert_true(latency_quantile(&h, 1.0) == 0);
}

static void test_uniform_quantiles(void **state)
{
    (void)state;
    latency_reset(&h);
    for (int ms = 1; ms <= 1000; ms++)
        latency_record(&h, ms / 1000.0);
    assert_int_equal(h.n, 1000);
    assert_near(latency_quantile(&h, 0.50), 0.500, 0.04);
    assert_near(latency_quantile(&h, 0.95), 0.950, 0.04);
    assert_near(latency_quantile(&h, 0.99), 0.990, 0.04);
    assert_true(latency_quantile(&h, 1.0) == 1.0);
    assert_true(h.max_s == 1.0);
}

static void test_single_values_within_resolution(void **state)
{
    (void)state;
    uint64_t seed = 42;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        double v = (double)(seed >> 20) / (double)(1ull << 44) * 100.0; /* 0 .. 100 s */
        latency_reset(&h);
        latency_record(&h, v);
        latency_record(&h, v * 4 + 1); /* a larger one, so max does not cap */
        double q = latency_quantile(&h, 0.5);
        assert_true(q >= v - 1e-6);
        assert_true(q <= v * (1 + 1.0 / 32) + 2e-6);
    }
}

static void test_edges(void **state)
{
    (void)state;
    latency_reset(&h);
    latency_record(&h, -3.0);
    latency_record(&h, 0.0);
    assert_true(latency_quantile(&h, 1.0) == 0);
    latency_record(&h, 1e12);
    assert_int_equal(h.n, 3);
    assert_true(latency_quantile(&h, 1.0) <= 1e12);
    assert_true(latency_quantile(&h, 1.0) > 1e6);
    assert_true(latency_quantile(&h, 0.5) <= 1e-6); /* the first bucket: under 1 us */
    assert_true(latency_quantile(&h, 0.0) <= 1e-6);
}

static void test_merge(void **state)
{
    (void)state;
    latency_reset(&h);
    latency_reset(&h2);
    for (int i = 0; i < 90; i++)
        latency_record(&h, 0.010);
    for (int i = 0; i < 10; i++)
        latency_record(&h2, 0.200);
    latency_merge(&h, &h2);
    assert_int_equal(h.n, 100);
    assert_near(latency_quantile(&h, 0.90), 0.010, 0.04);
    assert_near(latency_quantile(&h, 0.91), 0.200, 0.04);
    assert_true(h.max_s == 0.200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_uniform_quantiles),
        cmocka_unit_test(test_single_values_within_resolution),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
