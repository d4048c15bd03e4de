/*
 * fuzz_bulk: what the sink answers, as the client reads it: a _bulk
 * response of n items with an HTTP status, and the error body of any
 * other request.  The first two bytes choose the status class and the
 * number of items sent; the rest is the body.  Whatever the bytes, the
 * parse ends in a result, fills every item on ES_OK, and writes messages
 * within their buffers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "es.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 201, 400, 404, 409, 413, 429, 500, 503, 0};
    if (size < 2)
        return 0;
    long status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    size_t n = data[1] % 64;
    Buf body;
    buf_init(&body, 1 << 20);
    if (buf_append(&body, data + 2, size - 2) < 0) {
        buf_free(&body);
        return 0;
    }
    EsBulkItem items[64];
    memset(items, 0xA5, sizeof(items)); /* garbage the parse must overwrite */
    char err[256];
    EsResult r = es_bulk_parse("http://fuzz", status, &body, n, items, err, sizeof(err));
    if (r != ES_OK && r != ES_RETRY && r != ES_FAIL)
        abort();
    if (r == ES_OK) {
        for (size_t i = 0; i < n; i++) {
            if (items[i].result > ES_ITEM_REJECTED || !memchr(items[i].error, '\0', 512))
                abort();
        }
    } else if (!memchr(err, '\0', sizeof(err))) {
        abort();
    }
    char what[128];
    es_describe_error_body(buf_str(&body), what, sizeof(what));
    if (!memchr(what, '\0', sizeof(what)))
        abort();
    buf_free(&body);
    return 0;
}
