/*
 * Unit tests of keys: the canonical text of one- and many-column keys
 * splits back into exactly its components, whatever they hold, and every
 * text gets an id a target can take (hashed when needed, never colliding
 * with a real key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"

/* Joins parts, splits the text again and checks each component. */
static void round_trip(const char *const *parts, size_t n, const char *want_text)
{
    Buf text, out;
    buf_init(&text, 1 << 20);
    buf_init(&out, 1 << 20);
    assert_int_equal(keys_join(&text, parts, n), 0);
    if (want_text)
        assert_string_equal(buf_str(&text), want_text);
    size_t starts[8];
    assert_int_equal(keys_split(buf_str(&text), n, &out, starts), 0);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(out.data + starts[i], parts[i]);
    buf_free(&text);
    buf_free(&out);
}

static void test_one_column_is_the_text_itself(void **state)
{
    (void)state;
    const char *plain[] = {"42"};
    round_trip(plain, 1, "42");
    const char *odd[] = {"a,b%2C/?#%\\\"'` \xc3\xa9\xe2\x82\xac"};
    round_trip(odd, 1, odd[0]);
    const char *empty[] = {""};
    round_trip(empty, 1, "");
}

static void test_composite_escapes_separators(void **state)
{
    (void)state;
    const char *two[] = {"7", "2024-01-01"};
    round_trip(two, 2, "7,2024-01-01");
    const char *commas[] = {"a,b", "%", "%2C"};
    round_trip(commas, 3, "a%2Cb,%25,%252C");
    const char *empties[] = {"", "", ""};
    round_trip(empties, 3, ",,");
    const char *unicode[] = {"\xe6\x97\xa5\xe6\x9c\xac", "q\"uote's", "/?#\\"};
    round_trip(unicode, 3, NULL);
}

static void test_split_refuses_malformed_text(void **state)
{
    (void)state;
    Buf out;
    buf_init(&out, 1024);
    size_t starts[4];
    assert_int_equal(keys_split("a,b,c", 2, &out, starts), -1);  /* too many */
    assert_int_equal(keys_split("a", 2, &out, starts), -1);      /* too few */
    assert_int_equal(keys_split("a%2,b", 2, &out, starts), -1);  /* bad escape */
    assert_int_equal(keys_split("a%41,b", 2, &out, starts), -1); /* not one of ours */
    assert_int_equal(keys_split("a", 0, &out, starts), -1);
    buf_reset(&out);
    assert_int_equal(keys_split("a%2c,b", 2, &out, starts), 0); /* lower case is fine */
    assert_string_equal(out.data + starts[0], "a,");
    buf_free(&out);
}

static void test_ids(void **state)
{
    (void)state;
    char id[KEYS_ID_SIZE], other[KEYS_ID_SIZE];
    assert_string_equal(keys_id("42", id), "42");
    assert_false(keys_id_hashed("42"));

    /* The empty key, one of 600 bytes, and one posing as a hashed id. */
    char big[601];
    memset(big, 'k', 600);
    big[600] = '\0';
    const char *hashed[] = {"", big, KEYS_HASH_PREFIX "abc"};
    for (size_t i = 0; i < 3; i++) {
        assert_true(keys_id_hashed(hashed[i]));
        keys_id(hashed[i], id);
        assert_int_equal(strncmp(id, KEYS_HASH_PREFIX, strlen(KEYS_HASH_PREFIX)), 0);
        assert_int_equal(strlen(id), strlen(KEYS_HASH_PREFIX) + 64);
        assert_true(strlen(id) <= KEYS_ID_MAX);
    }
    /* SHA-256 of the empty string, a known value. */
    keys_id("", id);
    assert_string_equal(id + strlen(KEYS_HASH_PREFIX),
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* Exactly KEYS_ID_MAX bytes is still the key itself; one more is hashed. */
    big[KEYS_ID_MAX] = '\0';
    assert_string_equal(keys_id(big, id), big);
    big[KEYS_ID_MAX] = 'k';
    big[KEYS_ID_MAX + 1] = '\0';
    keys_id(big, id);
    big[KEYS_ID_MAX + 1] = 'x';
    keys_id(big, other);
    assert_string_not_equal(id, other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_column_is_the_text_itself),
        cmocka_unit_test(test_composite_escapes_separators),
        cmocka_unit_test(test_split_refuses_malformed_text),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
