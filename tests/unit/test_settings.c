/*
 * Unit tests of settings: defaults, environment, flags, their precedence,
 * the one-line errors for bad input, and settings_parse_main's exit
 * statuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "settings.h"

static const char *s_url;
static long long s_batch;
static double s_prob;
static bool s_once;
static int s_reject;

static const Setting table[] = {
    {"es-url", SETTING_STRING, "http://127.0.0.1:9200", "TEST_ES_URL", "URL", "url", NULL, 0, 0,
     &s_url, 0},
    {"batch-size", SETTING_INT, "500", "TEST_BATCH", "N", "rows per batch", NULL, 1, 100000,
     &s_batch, 0},
    {"crash-probability", SETTING_DOUBLE, "0", NULL, "P", "p", NULL, 0, 1, &s_prob, 0},
    {"once", SETTING_BOOL, "false", NULL, NULL, "catch up and exit", NULL, 0, 0, &s_once, 0},
    {"on-reject", SETTING_ENUM, "stop", NULL, NULL, "policy", "stop|dead-letter", 0, 0, &s_reject,
     0},
};
#define N_TABLE (sizeof(table) / sizeof(table[0]))

static SettingsResult parse(int argc, char **argv, char *err, size_t errlen)
{
    return settings_parse(table, N_TABLE, "t", "0", "summary", argc, argv, err, errlen);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("TEST_ES_URL");
    unsetenv("TEST_BATCH");
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    char err[256] = "";
    char *argv[] = {"t", NULL};
    assert_int_equal(parse(1, argv, err, sizeof(err)), SETTINGS_OK);
    assert_string_equal(s_url, "http://127.0.0.1:9200");
    assert_int_equal(s_batch, 500);
    assert_true(s_prob == 0.0);
    assert_false(s_once);
    assert_int_equal(s_reject, 0);
}

static void test_env_then_flags(void **state)
{
    (void)state;
    char err[256] = "";
    setenv("TEST_ES_URL", "http://env:1", 1);
    setenv("TEST_BATCH", "42", 1);
    char *argv1[] = {"t", NULL};
    assert_int_equal(parse(1, argv1, err, sizeof(err)), SETTINGS_OK);
    assert_string_equal(s_url, "http://env:1");
    assert_int_equal(s_batch, 42);

    char *argv2[] = {"t",      "--batch-size", "7",           "--es-url=http://flag:2",
                     "--once", "--on-reject",  "dead-letter", "--crash-probability=0.25",
                     NULL};
    assert_int_equal(parse(8, argv2, err, sizeof(err)), SETTINGS_OK);
    assert_string_equal(s_url, "http://flag:2");
    assert_int_equal(s_batch, 7);
    assert_true(s_once);
    assert_int_equal(s_reject, 1);
    assert_true(s_prob == 0.25);
}

/* Each bad command line and the piece of the error message it must give. */
static const struct {
    const char *args[4];
    const char *expect;
} bad[] = {
    {{"--batch-size", "abc"}, "--batch-size: expected an integer from 1 to 100000, got 'abc'"},
    {{"--batch-size", "0"}, "--batch-size: expected an integer"},
    {{"--batch-size", "100001"}, "--batch-size: expected an integer"},
    {{"--batch-size", "12x"}, "got '12x'"},
    {{"--batch-size"}, "--batch-size: missing value"},
    {{"--crash-probability", "1.5"}, "--crash-probability: expected a number from 0 to 1"},
    {{"--crash-probability", "nan"}, "--crash-probability: expected a number"},
    {{"--on-reject", "drop"}, "--on-reject: expected one of stop|dead-letter, got 'drop'"},
    {{"--once=maybe"}, "--once: expected true or false"},
    {{"--no-such-flag"}, "unknown option '--no-such-flag'"},
    {{"--es"}, "unknown option '--es'"},
    {{"positional"}, "unexpected argument 'positional'"},
    {{"-x"}, "unexpected argument '-x'"},
};

static void test_bad_flags(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[6] = {"t"};
        int argc = 1;
        for (int j = 0; j < 4 && bad[i].args[j]; j++)
            argv[argc++] = (char *)bad[i].args[j];
        char err[256] = "";
        assert_int_equal(parse(argc, argv, err, sizeof(err)), SETTINGS_ERROR);
        if (!strstr(err, bad[i].expect))
            fail_msg("case %zu: error '%s' lacks '%s'", i, err, bad[i].expect);
        assert_null(strchr(err, '\n'));
    }
}

static void test_bad_env(void **state)
{
    (void)state;
    char err[256] = "";
    setenv("TEST_BATCH", "-3", 1);
    char *argv[] = {"t", NULL};
    assert_int_equal(parse(1, argv, err, sizeof(err)), SETTINGS_ERROR);
    assert_non_null(strstr(err, "TEST_BATCH: expected an integer"));
}

static void test_help_and_version_exit(void **state)
{
    (void)state;
    char err[256] = "";
    char *argv1[] = {"t", "--version", NULL};
    assert_int_equal(parse(2, argv1, err, sizeof(err)), SETTINGS_EXIT);
    char *argv2[] = {"t", "--batch-size", "3", "-h", NULL};
    assert_int_equal(parse(4, argv2, err, sizeof(err)), SETTINGS_EXIT);
}

static void test_parse_main_statuses(void **state)
{
    (void)state;
    char *run[] = {"t", "--batch-size", "7", NULL};
    assert_int_equal(settings_parse_main(table, N_TABLE, "t", "0", "summary", 3, run), -1);
    assert_int_equal(s_batch, 7);
    char *version[] = {"t", "--version", NULL};
    assert_int_equal(settings_parse_main(table, N_TABLE, "t", "0", "summary", 2, version), 0);
    char *invalid[] = {"t", "--batch-size", "0", NULL};
    assert_int_equal(settings_parse_main(table, N_TABLE, "t", "0", "summary", 3, invalid),
                     SETTINGS_EXIT_USAGE);
    assert_int_equal(SETTINGS_EXIT_USAGE, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_env_then_flags, setup),
        cmocka_unit_test_setup(test_bad_flags, setup),
        cmocka_unit_test_setup(test_bad_env, setup),
        cmocka_unit_test_setup(test_help_and_version_exit, setup),
        cmocka_unit_test_setup(test_parse_main_statuses, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
