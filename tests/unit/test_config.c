/*
 * Unit tests of config: an INI file applies through the settings table,
 * [txidsync] gives defaults to every table section, and every mistake is
 * an error naming file, line and key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

typedef struct Tbl {
    const char *table;
    const char *index;
    long long batch;
} Tbl;

static Tbl tmpl;
static long long stats;
static bool once;
static const char *config_path;

static const Setting table[] = {
    {"config", SETTING_STRING, "", NULL, "FILE", "file", NULL, 0, 0, &config_path, 0},
    {"table", SETTING_STRING, "default_table", NULL, "NAME", "t", NULL, 0, 0, &tmpl.table,
     SETTING_PER_TABLE},
    {"index", SETTING_STRING, NULL, NULL, "NAME", "i", NULL, 0, 0, &tmpl.index, SETTING_PER_TABLE},
    {"batch-size", SETTING_INT, "1000", NULL, "N", "b", NULL, 1, 100000, &tmpl.batch,
     SETTING_PER_TABLE},
    {"stats-interval", SETTING_INT, "10", NULL, "S", "s", NULL, 0, 86400, &stats, 0},
    {"once", SETTING_BOOL, "false", NULL, NULL, "o", NULL, 0, 0, &once, 0},
};
#define N_TABLE (sizeof(table) / sizeof(table[0]))

static char path[64];

/* Writes text to a fresh temporary file (its name in path). */
static void write_file(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/test_config.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Loads text; returns config_load's result with the message in err. */
static int load(const char *text, Config *cfg, char *err, size_t errlen)
{
    char e[512] = "";
    assert_int_equal(settings_apply_defaults(table, N_TABLE, e, sizeof(e)), SETTINGS_OK);
    write_file(text);
    int rc = config_load(path, table, N_TABLE, &tmpl, sizeof(tmpl), cfg, err, errlen);
    unlink(path);
    return rc;
}

static void test_sections_and_defaults(void **state)
{
    (void)state;
    Config cfg;
    char err[512] = "";
    int rc = load("; a comment\n"
                  "[public.orders]\n"
                  "index = orders_v2\n"
                  "\n"
                  "[txidsync]\n"
                  "batch_size = 250   ; inline comment, '_' for '-'\n"
                  "stats-interval = 3\n"
                  "once = true\n"
                  "[shop.items]\n"
                  "batch-size = 5000\n"
                  "[empty_section]\n",
                  &cfg, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(cfg.n_tables, 3);
    assert_int_equal(stats, 3);
    assert_true(once);
    const Tbl *a = cfg.tables[0].values, *b = cfg.tables[1].values, *c = cfg.tables[2].values;
    assert_string_equal(cfg.tables[0].name, "public.orders");
    assert_int_equal(cfg.tables[0].line, 2);
    assert_string_equal(a->index, "orders_v2");
    assert_int_equal(a->batch, 250); /* [txidsync] applies though it comes later */
    assert_string_equal(cfg.tables[1].name, "shop.items");
    assert_int_equal(b->batch, 5000);
    assert_null(b->index);
    assert_string_equal(cfg.tables[2].name, "empty_section");
    assert_int_equal(c->batch, 250);
    assert_true(config_table_sets(&cfg, 0, "index"));
    assert_false(config_table_sets(&cfg, 1, "index"));
    config_free(&cfg);
}

/* Expects text to fail with a message containing want. */
static void expect_error(const char *text, const char *want)
{
    Config cfg;
    char err[512] = "";
    assert_int_equal(load(text, &cfg, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
    assert_non_null(strstr(err, "/tmp/test_config."));
    config_free(&cfg);
}

static void test_errors_name_file_line_and_key(void **state)
{
    (void)state;
    expect_error("[t1]\nindex = a\nfrobnicate = 1\n", ":3: unknown key 'frobnicate' in [t1]");
    expect_error("[t1]\nbatch-size = lots\n",
                 ":2: batch-size: expected an integer from 1 to 100000, got 'lots'");
    expect_error("[t1]\nindex = a\n[t2]\n[t1]\n", ":4: section [t1] appears twice (also line 1)");
    expect_error("[t1]\nindex = a\nindex = b\n", ":3: 'index' is set twice in [t1] (also line 2)");
    expect_error("[t1]\nstats-interval = 5\n", ":2: 'stats-interval' is a process setting");
    expect_error("[txidsync]\ntable = x\n[t1]\n", ":2: 'table' belongs in a table's section");
    expect_error("[txidsync]\nonce = true\n", "no table section");
    expect_error("[t1]\nthis line has no equals sign\n", ":2: syntax error");
    expect_error("index = a\n[t1]\n", ":1: 'index' comes before any [section]");
    expect_error("[txidsync]\nconfig = other.ini\n[t1]\n", ":2: unknown key 'config'");
    char long_line[9000];
    memset(long_line, 'x', sizeof(long_line));
    memcpy(long_line, "[t1]\nindex = ", 13);
    strcpy(long_line + sizeof(long_line) - 2, "\n");
    expect_error(long_line, ":2: line too long");
}

static void test_missing_file(void **state)
{
    (void)state;
    Config cfg;
    char err[512] = "";
    assert_int_equal(config_load("/nonexistent/x.ini", table, N_TABLE, &tmpl, sizeof(tmpl), &cfg,
                                 err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "/nonexistent/x.ini: cannot open"));
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sections_and_defaults),
        cmocka_unit_test(test_errors_name_file_line_and_key),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
