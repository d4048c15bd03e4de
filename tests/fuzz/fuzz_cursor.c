/*
 * fuzz_cursor: the stored cursor, as the store reads it back (an owner
 * member, then the cursor's own JSON).  Whatever the bytes, loading
 * either fails with a message or gives a cursor that saves and loads back
 * to itself, owner included.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cursor.h"
#include "store.h"
#include "support/store_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    StoreMem m;
    store_mem_init(&m, (const char *)data, size);
    char err[512];
    bool found = false;
    Cursor c, back;
    if (store_load(&m.base, &c, "db/s.t", &found, err, sizeof(err)) == STORE_OK && found) {
        /* What loads must save and load back to the same cursor, and a
         * saved cursor belongs to the owner that saved it. */
        if (store_save(&m.base, &c, "db/s.t", err, sizeof(err)) != STORE_OK)
            abort();
        if (store_load(&m.base, &back, "db/s.t", &found, err, sizeof(err)) != STORE_OK || !found)
            abort();
        if (!cursor_same(&c, &back))
            abort();
        cursor_free(&back);
        if (store_load(&m.base, &back, "db/s.other", &found, err, sizeof(err)) != STORE_FAIL)
            abort();
        cursor_free(&back);
    }
    cursor_free(&c);
    store_mem_free(&m);
    return 0;
}
