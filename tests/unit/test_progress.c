/*
 * Unit tests of progress: the text of a progress report, with and without
 * an estimate and a rate, past the estimate, and in a buffer too small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "progress.h"

static void test_full_line(void **state)
{
    (void)state;
    char out[128];
    progress_text(out, sizeof(out), 250000, 1000000, 50000);
    assert_string_equal(out, "250000 rows of ~1000000 (25%), 50000 rows/s, ETA 15s");
    progress_text(out, sizeof(out), 0, 7200000, 1000);
    assert_string_equal(out, "0 rows of ~7200000 (0%), 1000 rows/s, ETA 2h00m");
}

static void test_unknowns_are_left_out(void **state)
{
    (void)state;
    char out[128];
    progress_text(out, sizeof(out), 1234, -1, 0);
    assert_string_equal(out, "1234 rows");
    progress_text(out, sizeof(out), 1234, -1, 99.6);
    assert_string_equal(out, "1234 rows, 100 rows/s");
    progress_text(out, sizeof(out), 10, 100, 0);
    assert_string_equal(out, "10 rows of ~100 (10%)");
}

/* The estimate is a guess: past it, no percentage over 100 and no ETA. */
static void test_past_the_estimate(void **state)
{
    (void)state;
    char out[128];
    progress_text(out, sizeof(out), 1200, 1000, 300);
    assert_string_equal(out, "1200 rows, 300 rows/s");
}

static void test_durations(void **state)
{
    (void)state;
    char out[32];
    progress_duration(out, sizeof(out), 0.4);
    assert_string_equal(out, "0s");
    progress_duration(out, sizeof(out), 59.4);
    assert_string_equal(out, "59s");
    progress_duration(out, sizeof(out), 185);
    assert_string_equal(out, "3m05s");
    progress_duration(out, sizeof(out), 7620);
    assert_string_equal(out, "2h07m");
    progress_duration(out, sizeof(out), -5);
    assert_string_equal(out, "0s");
}

/* A buffer too small gets the start of the line, terminated. */
static void test_small_buffer(void **state)
{
    (void)state;
    char out[12];
    memset(out, 'x', sizeof(out));
    progress_text(out, sizeof(out), 250000, 1000000, 50000);
    assert_string_equal(out, "250000 rows");
    char one[1] = {'x'};
    progress_text(one, sizeof(one), 5, 10, 1);
    assert_int_equal(one[0], '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_line),         cmocka_unit_test(test_unknowns_are_left_out),
        cmocka_unit_test(test_past_the_estimate), cmocka_unit_test(test_durations),
        cmocka_unit_test(test_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
