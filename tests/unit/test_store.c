/*
 * test_store: the cursor's text as every store keeps it (store.c): the
 * owner first, then the cursor's own members; a cursor of an older
 * release (no owner) is the table's; another table's cursor, or a text
 * that does not parse, is refused naming the place.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "store.h"
#include "support/store_mem.h"

static const char old_text[] = "{\"format\":1,\"xid_next\":\"123\",\"xip\":[\"100\",\"101\"],"
                               "\"xid_at\":\"99\",\"xid_at_key\":\"42\",\"part_k\":0,\"part_n\":1}";

static void test_owner_round_trip(void **state)
{
    (void)state;
    StoreMem m;
    store_mem_init(&m, old_text, strlen(old_text));
    Cursor c, back;
    bool found = false;
    char err[512];
    /* A cursor of an older release, without an owner, is the table's. */
    assert_int_equal(store_load(&m.base, &c, "app/\"Odd\".t", &found, err, sizeof(err)), STORE_OK);
    assert_true(found);
    assert_int_equal(c.xid_next, 123);
    assert_int_equal(store_save(&m.base, &c, "app/\"Odd\".t", err, sizeof(err)), STORE_OK);
    assert_memory_equal(m.text.data, "{\"owner\":\"app/\\\"Odd\\\".t\",\"format\":1,", 35);
    assert_int_equal(store_load(&m.base, &back, "app/\"Odd\".t", &found, err, sizeof(err)),
                     STORE_OK);
    assert_true(found);
    assert_true(cursor_same(&c, &back));
    cursor_free(&back);
    /* Another table's: refused, naming both. */
    assert_int_equal(store_load(&m.base, &back, "app/public.u", &found, err, sizeof(err)),
                     STORE_FAIL);
    assert_false(found);
    assert_non_null(strstr(err, "the cursor in memory was written for table app/\"Odd\".t, not "
                                "app/public.u"));
    cursor_free(&back);
    cursor_free(&c);
    store_mem_free(&m);
}

static void test_nothing_and_corrupt(void **state)
{
    (void)state;
    StoreMem m;
    store_mem_init(&m, NULL, 0);
    Cursor c;
    bool found = true, existed = false;
    char err[512];
    assert_int_equal(store_load(&m.base, &c, "a/b.c", &found, err, sizeof(err)), STORE_OK);
    assert_false(found);
    cursor_free(&c);
    static const char *bad[] = {"[1,2]", "{\"owner\":\"a/b.c\"}", "{\"owner\":\"a/b.c\",",
                                "{\"owner\":7,\"format\":1,\"xid_next\":\"1\",\"xip\":[],"
                                "\"part_k\":0,\"part_n\":1}",
                                "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        store_mem_free(&m);
        store_mem_init(&m, bad[i], strlen(bad[i]));
        assert_int_equal(store_load(&m.base, &c, "a/b.c", &found, err, sizeof(err)), STORE_FAIL);
        assert_false(found);
        if (!strstr(err, "the stored cursor in memory is corrupt"))
            fail_msg("%s: %s", bad[i], err);
        cursor_free(&c);
    }
    assert_int_equal(store_clear(&m.base, &existed, err, sizeof(err)), STORE_OK);
    assert_true(existed);
    store_mem_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_round_trip),
        cmocka_unit_test(test_nothing_and_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
