/*
 * fuzz_keys: the key encoding (keys.h).  The first byte chooses a number
 * of components (1 to 8); the rest is used two ways:
 *  - as canonical text: splitting it either fails or gives components
 *    that join to a text splitting to the same components again;
 *  - cut at its NUL bytes, as the components of a key: joining and
 *    splitting them gives them back;
 * and its id is never longer than the sink takes, and is the text itself
 * unless it must be hashed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "keys.h"

#define PARTS_MAX 8

/* Splits text into n parts into b; returns 0 and fills parts, or -1. */
static int split(const char *text, size_t n, Buf *b, const char **parts)
{
    size_t starts[PARTS_MAX];
    buf_reset(b);
    if (keys_split(text, n, b, starts) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        parts[i] = b->data + starts[i];
    return 0;
}

/* Whether two lists of n parts are equal. */
static int same(const char **a, const char **b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

static void check_id(const char *text)
{
    char id[KEYS_ID_SIZE];
    keys_id(text, id);
    if (strlen(id) > KEYS_ID_MAX || (!keys_id_hashed(text) && strcmp(id, text) != 0))
        abort();
}

/* Joins parts, splits the text again and compares. */
static void round_trip(const char **parts, size_t n)
{
    Buf text, again;
    const char *back[PARTS_MAX];
    buf_init(&text, 1 << 20);
    buf_init(&again, 1 << 20);
    if (keys_join(&text, parts, n) == 0) {
        if (split(buf_str(&text), n, &again, back) < 0 || !same(parts, back, n))
            abort();
        check_id(buf_str(&text));
    }
    buf_free(&text);
    buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = 1 + data[0] % PARTS_MAX;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    check_id(text);
    Buf b;
    buf_init(&b, 1 << 20);
    const char *parts[PARTS_MAX];
    if (split(text, n, &b, parts) == 0)
        round_trip(parts, n);
    /* The bytes cut at their NULs, as components. */
    size_t k = 0;
    const char *p = text;
    const char *end = (const char *)text + (size - 1);
    parts[k++] = p;
    for (const char *q = p; q < end && k < PARTS_MAX; q++)
        if (*q == '\0')
            parts[k++] = q + 1;
    round_trip(parts, k);
    buf_free(&b);
    free(text);
    return 0;
}
