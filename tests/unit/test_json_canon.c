/*
 * Unit tests of json_canon: documents that mean the same have one
 * canonical form (member order, number notation, string escapes,
 * whitespace), documents that differ keep different forms, and the first
 * differing field is named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "json_canon.h"

/* The canonical form of doc without member drop, in a static buffer. */
static const char *canon(const char *doc, const char *drop)
{
    static char out[4096];
    Buf b;
    char err[256];
    buf_init(&b, 1 << 20);
    assert_int_equal(json_canon_text(doc, drop, &b, err, sizeof(err)), 0);
    snprintf(out, sizeof(out), "%s", buf_str(&b));
    buf_free(&b);
    return out;
}

/* Whether documents a and b have one canonical form. */
static bool same(const char *a, const char *b)
{
    char first[4096];
    snprintf(first, sizeof(first), "%s", canon(a, NULL));
    return strcmp(first, canon(b, NULL)) == 0;
}

static void test_member_order_and_whitespace(void **state)
{
    (void)state;
    assert_string_equal(canon("{ \"b\": 1,\n \"a\": {\"z\": [1, 2], \"y\": null} }", NULL),
                        "{\"a\":{\"y\":null,\"z\":[1,2]},\"b\":1}");
    /* Arrays keep their order: it means something. */
    assert_string_equal(canon("[3, 1, 2]", NULL), "[3,1,2]");
    /* Members of one name keep their order. */
    assert_string_equal(canon("{\"k\": 2, \"a\": 0, \"k\": 1}", NULL), "{\"a\":0,\"k\":2,\"k\":1}");
}

static void test_numbers(void **state)
{
    (void)state;
    const char *pairs[][2] = {
        {"1.50", "15e-1"}, {"1.5", "0.15e1"},
        {"100", "1E2"},    {"-0", "0"},
        {"0.000", "0e5"},  {"-2.50", "-25e-1"},
        {"1e+2", "100.0"}, {"12345678901234567890123", "12345678901234567890123.000"}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
        assert_true(same(pairs[i][0], pairs[i][1]));
    assert_string_equal(canon("1.50", NULL), "15e-1");
    assert_string_equal(canon("100", NULL), "1e2");
    assert_string_equal(canon("42", NULL), "42");
    /* Exact: numbers a double could not tell apart stay apart. */
    assert_false(same("9007199254740993", "9007199254740992"));
    assert_false(same("1.5", "-1.5"));
}

static void test_strings(void **state)
{
    (void)state;
    assert_true(same("\"caf\\u00e9 \\/ \\t\"", "\"café / \\u0009\""));
    /* A string is not the number it spells. */
    assert_false(same("{\"n\": \"1\"}", "{\"n\": 1}"));
}

static void test_drop_member(void **state)
{
    (void)state;
    assert_string_equal(
        canon("{\"id\": 1, \"txidsync\": {\"version\": 3}, \"a\": true}", "txidsync"),
        "{\"a\":true,\"id\":1}");
    /* Only at the top. */
    assert_string_equal(canon("{\"x\": {\"txidsync\": 1}}", "txidsync"),
                        "{\"x\":{\"txidsync\":1}}");
}

static void test_not_json(void **state)
{
    (void)state;
    Buf b;
    char err[256] = "";
    buf_init(&b, 1 << 20);
    assert_int_equal(json_canon_text("{\"a\": ", NULL, &b, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not JSON"));
    buf_free(&b);
    buf_init(&b, 4); /* too small for the document */
    assert_int_equal(json_canon_text("{\"abc\": 1}", NULL, &b, err, sizeof(err)), -1);
    buf_free(&b);
}

/* first_diff takes canonical documents. */
static void first_diff(const char *a, const char *b, const char *want)
{
    char ca[1024], cb[1024], path[64];
    snprintf(ca, sizeof(ca), "%s", canon(a, NULL));
    snprintf(cb, sizeof(cb), "%s", canon(b, NULL));
    json_canon_first_diff(ca, cb, path, sizeof(path));
    assert_string_equal(path, want);
}

static void test_first_diff(void **state)
{
    (void)state;
    first_diff("{\"a\": 1, \"b\": 2, \"c\": 3}", "{\"c\": 3, \"b\": 5, \"a\": 1}", "b");
    first_diff("{\"a\": 1, \"color\": \"blue\"}", "{\"a\": 1}", "color");
    first_diff("{\"a\": 1}", "{\"a\": 1, \"b\": null}", "b");
    first_diff("{\"addr\": {\"city\": \"x\", \"zip\": 1}}",
               "{\"addr\": {\"city\": \"y\", \"zip\": 1}}", "addr.city");
    first_diff("{\"tags\": [1, 2, 3]}", "{\"tags\": [1, 2, 4]}", "tags[2]");
    first_diff("{\"tags\": [1, 2]}", "{\"tags\": [1, 2, 4]}", "tags[2]");
    first_diff("{\"a\": 1.50}", "{\"a\": 1.5}", "");
    first_diff("[1]", "[2]", "");
}

static void test_hash(void **state)
{
    (void)state;
    assert_true(json_canon_hash("{}", 2) != json_canon_hash("[]", 2));
    assert_true(json_canon_hash("", 0) == 0xcbf29ce484222325ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_member_order_and_whitespace),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_drop_member),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_first_diff),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
