/*
 * Unit tests of metrics: the exposition of counters, gauges and
 * cumulative histogram buckets, label escaping, /healthz by the loop's
 * beat and /readyz with the reasons a table is not ready.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "metrics.h"

static const char *const names[] = {"orders", "we\"ird\\name"};

static void assert_line(const Buf *b, const char *line)
{
    if (!strstr(buf_str(b), line))
        fail_msg("no line '%s' in:\n%s", line, buf_str(b));
}

static void test_render(void **state)
{
    (void)state;
    Metrics *m = metrics_new(names, 2, "9.9.9", 1700000000.5);
    assert_non_null(m);
    TableMetrics t = {.rows = 42, .deletes = 2, .lag_seconds = 1.5, .running = true, .pg_up = true};
    metrics_hist_record(&t.batch_seconds, 0.003); /* first bucket */
    metrics_hist_record(&t.batch_seconds, 0.2);   /* le 0.25 */
    metrics_hist_record(&t.batch_seconds, 100);   /* +Inf only */
    assert_true(metrics_publish(m, 0, &t, 10.0));
    assert_false(metrics_publish(m, 2, &t, 10.0)); /* no such table */
    Buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(m, &b), 0);
    assert_line(&b, "txidsync_build_info{version=\"9.9.9\"} 1\n");
    assert_line(&b, "txidsync_process_start_time_seconds 1700000000.500\n");
    assert_line(&b, "# TYPE txidsync_changes_applied_total counter\n");
    assert_line(&b, "txidsync_changes_applied_total{table=\"orders\"} 42\n");
    assert_line(&b, "txidsync_deletes_applied_total{table=\"orders\"} 2\n");
    assert_line(&b, "txidsync_lag_seconds{table=\"orders\"} 1.5\n");
    assert_line(&b, "txidsync_changes_applied_total{table=\"we\\\"ird\\\\name\"} 0\n");
    assert_line(&b, "# TYPE txidsync_batch_duration_seconds histogram\n");
    assert_line(&b, "txidsync_batch_duration_seconds_bucket{table=\"orders\",le=\"0.005\"} 1\n");
    assert_line(&b, "txidsync_batch_duration_seconds_bucket{table=\"orders\",le=\"0.1\"} 1\n");
    assert_line(&b, "txidsync_batch_duration_seconds_bucket{table=\"orders\",le=\"0.25\"} 2\n");
    assert_line(&b, "txidsync_batch_duration_seconds_bucket{table=\"orders\",le=\"60\"} 2\n");
    assert_line(&b, "txidsync_batch_duration_seconds_bucket{table=\"orders\",le=\"+Inf\"} 3\n");
    assert_line(&b, "txidsync_batch_duration_seconds_count{table=\"orders\"} 3\n");
    assert_line(&b, "txidsync_batch_duration_seconds_sum{table=\"orders\"} 100.203000\n");
    buf_free(&b);
    metrics_free(m);
}

static void test_health(void **state)
{
    (void)state;
    Metrics *m = metrics_new(names, 1, "1", 0);
    Buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(metrics_health(m, 5.0, 60, &b), 503); /* never published */
    TableMetrics t = {.running = true};
    assert_true(metrics_publish(m, 0, &t, 100.0));
    assert_int_equal(metrics_health(m, 150.0, 60, &b), 200);
    assert_non_null(strstr(buf_str(&b), "\"status\":\"ok\""));
    assert_int_equal(metrics_health(m, 161.0, 60, &b), 503);
    assert_non_null(strstr(buf_str(&b), "has not turned for 61.0 s"));
    buf_free(&b);
    metrics_free(m);
}

static void test_ready(void **state)
{
    (void)state;
    Metrics *m = metrics_new(names, 2, "1", 0);
    Buf b;
    buf_init(&b, 1 << 16);
    TableMetrics ok = {.running = true, .pg_up = true, .sink_up = true, .lag_seconds = 3};
    TableMetrics bad = {.running = true, .pg_up = true, .sink_up = false, .lag_seconds = 90};
    assert_true(metrics_publish(m, 0, &ok, 1));
    assert_true(metrics_publish(m, 1, &ok, 1));
    assert_int_equal(metrics_ready(m, 60, &b), 200);
    assert_non_null(strstr(buf_str(&b), "\"ready\":true}"));
    assert_true(metrics_publish(m, 1, &bad, 2));
    assert_int_equal(metrics_ready(m, 60, &b), 503);
    assert_non_null(strstr(buf_str(&b), "\"table\":\"orders\",\"ready\":true"));
    assert_non_null(
        strstr(buf_str(&b), "\"why\":\"the sink is unavailable; lag 90.0 s over 60 s\""));
    assert_non_null(strstr(buf_str(&b), "],\"ready\":false}"));
    TableMetrics stopped = {.running = false};
    assert_true(metrics_publish(m, 1, &stopped, 3));
    assert_int_equal(metrics_ready(m, 60, &b), 503);
    assert_non_null(strstr(buf_str(&b), "the table stopped"));
    buf_free(&b);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
