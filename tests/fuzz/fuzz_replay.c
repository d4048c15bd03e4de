/*
 * fuzz_replay: change events as the checker replays them (replay.h).
 * The input is cut into lines; whatever the bytes, each line is taken or
 * refused with a message, the highest version per key is kept, and the
 * sorted entries come in strictly ascending key order.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Replay r;
    replay_init(&r);
    char err[256];
    const char *p = (const char *)data, *end = p + size;
    uint64_t taken = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (memchr(p, '\0', len) == NULL) {
            if (replay_event(&r, p, len, err, sizeof(err)) == 0)
                taken++;
            else if (!memchr(err, '\0', sizeof(err)))
                abort();
        }
        p += len + 1;
    }
    if (r.events + r.schemas != taken || r.n > r.events)
        abort();
    const ReplayEntry **v = NULL;
    if (replay_sorted(&r, &v) == 0) {
        for (size_t i = 1; i < r.n; i++)
            if (strcmp(v[i - 1]->key, v[i]->key) >= 0)
                abort();
        free(v);
    }
    replay_free(&r);
    return 0;
}
