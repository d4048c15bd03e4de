/*
 * Unit tests of json: strings and numbers written byte for byte as yajl's
 * generator writes them, the generator into a Buf (and its failure when
 * the Buf is full), dotted paths, and the streaming number lookup
 * (nesting, arrays, escapes in names, other types, broken input).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_gen.h>

#include "json.h"

/* What yajl_gen_string writes for s (len bytes), into a malloc'd string. */
static char *yajl_quoted(const char *s, size_t len)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    assert_non_null(g);
    assert_int_equal(yajl_gen_string(g, (const unsigned char *)s, len), yajl_gen_status_ok);
    const unsigned char *out;
    size_t out_len;
    assert_int_equal(yajl_gen_get_buf(g, &out, &out_len), yajl_gen_status_ok);
    char *copy = strndup((const char *)out, out_len);
    yajl_gen_free(g);
    return copy;
}

static void expect_like_yajl(const char *s, size_t len)
{
    Buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(buf_puts(&b, "x"), 0);
    assert_int_equal(json_append_string(&b, s, len), 0);
    char *want = yajl_quoted(s, len);
    assert_string_equal(buf_str(&b) + 1, want);
    free(want);
    buf_free(&b);
}

static void test_strings_match_yajl(void **state)
{
    (void)state;
    const char *cases[] = {
        "",
        "plain key 42",
        "quote \" and backslash \\",
        "tabs\tnew\nlines\rback\bfeed\f",
        "/a/b",
        "caf\xc3\xa9 \xe2\x82\xac",
        "\x01\x02\x1f\x7f",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_like_yajl(cases[i], strlen(cases[i]));
    expect_like_yajl("nul\0inside", 10);
}

static void test_every_byte_matches_yajl(void **state)
{
    (void)state;
    char all[255];
    for (int i = 0; i < 255; i++)
        all[i] = (char)(i + 1);
    for (size_t i = 0; i < sizeof(all); i++)
        expect_like_yajl(all + i, 1);
}

static void test_limit_leaves_buffer_unchanged(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_puts(&b, "ab"), 0);
    assert_int_equal(json_append_string(&b, "\n\n\n\n", 4), -1);
    assert_string_equal(buf_str(&b), "ab");
    assert_int_equal(b.len, 2);
    assert_int_equal(json_append_u64(&b, 12345), 0);
    assert_string_equal(buf_str(&b), "ab12345");
    assert_int_equal(json_append_u64(&b, 99), -1);
    buf_free(&b);
}

static void test_u64(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 1 << 10);
    assert_int_equal(json_append_u64(&b, 0), 0);
    assert_int_equal(buf_puts(&b, ","), 0);
    assert_int_equal(json_append_u64(&b, UINT64_MAX), 0);
    assert_string_equal(buf_str(&b), "0,18446744073709551615");
    buf_free(&b);
}

/* Writes {"a":[1,"x"],"n":18446744073709551615} through a JsonGen. */
static int gen_sample(Buf *b)
{
    JsonGen jg;
    assert_int_equal(json_gen_open(&jg, b), 0);
    bool ok = yajl_gen_map_open(jg.g) == yajl_gen_status_ok && json_gen_cstr(jg.g, "a") &&
              yajl_gen_array_open(jg.g) == yajl_gen_status_ok && json_gen_u64(jg.g, 1) &&
              json_gen_cstr(jg.g, "x") && yajl_gen_array_close(jg.g) == yajl_gen_status_ok &&
              json_gen_cstr(jg.g, "n") && json_gen_u64(jg.g, UINT64_MAX) &&
              yajl_gen_map_close(jg.g) == yajl_gen_status_ok;
    return json_gen_close(&jg, ok);
}

static void test_gen_into_buf(void **state)
{
    (void)state;
    Buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(buf_puts(&b, "prefix "), 0);
    assert_int_equal(gen_sample(&b), 0);
    assert_string_equal(buf_str(&b), "prefix {\"a\":[1,\"x\"],\"n\":18446744073709551615}");
    buf_free(&b);

    /* A full buffer makes close report the loss, whatever the caller says. */
    buf_init(&b, 12);
    assert_int_equal(gen_sample(&b), -1);
    assert_true(b.len <= 12);
    buf_free(&b);

    /* A caller's failure is reported too. */
    JsonGen jg;
    buf_init(&b, 1 << 20);
    assert_int_equal(json_gen_open(&jg, &b), 0);
    assert_int_equal(json_gen_close(&jg, false), -1);
    buf_free(&b);
}

static void test_paths(void **state)
{
    (void)state;
    JsonPath p;
    assert_int_equal(json_path_compile(&p, "data.ts"), 0);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.lens[0], 4);
    assert_memory_equal(p.parts[0], "data", 4);
    assert_int_equal(p.lens[1], 2);
    assert_memory_equal(p.parts[1], "ts", 2);
    assert_int_equal(json_path_compile(&p, "ts"), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(json_path_compile(&p, "a.b.c.d.e.f.g.h"), 0);
    assert_int_equal(p.n, 8);

    const char *bad[] = {"", ".", "a.", ".a", "a..b", "a.b.c.d.e.f.g.h.i"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(json_path_compile(&p, bad[i]), -1);
    char longer[300];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_equal(json_path_compile(&p, longer), -1);
}

/* Looks up path in doc; returns whether found, value in *v. */
static bool find(const char *doc, const char *path, double *v)
{
    JsonPath p;
    assert_int_equal(json_path_compile(&p, path), 0);
    *v = -1;
    return json_find_number(doc, strlen(doc), &p, v);
}

static void test_find_number(void **state)
{
    (void)state;
    const char *row = "{\"id\": 7, \"data\": {\"n\": 1, \"ts\": 1732233445.125, \"w\": 2}, "
                      "\"name\": \"x\"}";
    double v;
    assert_true(find(row, "data.ts", &v));
    assert_true(v == 1732233445.125);
    assert_true(find(row, "id", &v));
    assert_true(v == 7);
    assert_true(find(row, "data.w", &v));
    assert_true(v == 2);
    assert_false(find(row, "data.missing", &v));
    assert_false(find(row, "name", &v));
    assert_false(find(row, "data", &v));
    assert_false(find(row, "ts", &v));
    assert_false(find(row, "data.ts.deeper", &v));
}

static void test_find_only_at_the_path(void **state)
{
    (void)state;
    double v;
    /* The same name inside an array, deeper or in a sibling does not count. */
    assert_true(find("{\"a\": [{\"ts\": 1}], \"x\": {\"ts\": 2}, \"ts\": 3}", "ts", &v));
    assert_true(v == 3);
    assert_true(find("{\"data\": [1, 2], \"other\": {\"data\": {\"ts\": 4}}, "
                     "\"data\": {\"ts\": 5}}",
                     "data.ts", &v));
    assert_true(v == 5);
    assert_false(find("{\"data\": [{\"ts\": 1}]}", "data.ts", &v));
    assert_false(find("[{\"ts\": 1}]", "ts", &v));
    /* Names are compared after their escapes are decoded. */
    assert_true(find("{\"t\\u0073\": -2.5e1}", "ts", &v));
    assert_true(v == -25);
}

static void test_find_other_types_and_garbage(void **state)
{
    (void)state;
    double v;
    assert_false(find("{\"ts\": \"12\"}", "ts", &v));
    assert_false(find("{\"ts\": null}", "ts", &v));
    assert_false(find("{\"ts\": true}", "ts", &v));
    assert_false(find("{\"ts\": {\"a\": 1}}", "ts", &v));
    assert_false(find("{\"ts\" 12}", "ts", &v));
    assert_false(find("", "ts", &v));
    assert_false(find("not json", "ts", &v));
    assert_true(v == -1);
    /* A match before the text breaks is still found. */
    assert_true(find("{\"ts\": 12, \"broken", "ts", &v));
    assert_true(v == 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_match_yajl),
        cmocka_unit_test(test_every_byte_matches_yajl),
        cmocka_unit_test(test_limit_leaves_buffer_unchanged),
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_gen_into_buf),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_find_number),
        cmocka_unit_test(test_find_only_at_the_path),
        cmocka_unit_test(test_find_other_types_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
