/*
 * keys: the canonical text of a primary key, and the document id a target
 * gets for it (docs/design.md, "Keys").
 *
 * The canonical text of a one-column key is the column's text form as
 * Postgres prints it (so installations from before composite keys keep
 * their ids).  A key of n > 1 columns is the n text forms joined by ','
 * with every '%' in a component written %25 and every ',' written %2C,
 * so that the text splits back into exactly its components.  pg builds
 * the same text in SQL (the batch query orders by it); keys_split is its
 * inverse.
 *
 * The id is the canonical text itself, unless a target could not take it
 * as an id: the empty string, a text longer than KEYS_ID_MAX bytes, or one
 * that starts with KEYS_HASH_PREFIX (so that no real key can pose as a
 * hashed one).  Those get KEYS_HASH_PREFIX followed by the lowercase hex
 * SHA-256 of the text; the text itself stays in the document's metadata.
 * The module knows nothing of Postgres or of any target.
 */
#ifndef TXIDSYNC_KEYS_H
#define TXIDSYNC_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define KEYS_ID_MAX      512
#define KEYS_HASH_PREFIX "~sha256:"
/* Room for any id: the prefix, 64 hex digits, or KEYS_ID_MAX bytes, a NUL. */
#define KEYS_ID_SIZE (KEYS_ID_MAX + 1)

/* Appends to out the canonical text of the key of n components (their
 * text forms, NUL-terminated).  Returns 0, or -1 when out's maximum is
 * reached. */
int keys_join(Buf *out, const char *const *parts, size_t n) __attribute__((warn_unused_result));

/*
 * Splits canonical text into its n components, decoded, each appended to
 * out followed by a NUL; starts[i] is the offset of component i in out.
 * Returns 0, or -1 when the text does not have n components, holds a '%'
 * not followed by 25 or 2C (case-insensitive), or out's maximum is
 * reached.
 */
int keys_split(const char *text, size_t n, Buf *out, size_t *starts)
    __attribute__((warn_unused_result));

/* Tells whether text needs a hashed id (see above). */
bool keys_id_hashed(const char *text);

/* Writes the id of the key with canonical text into id (KEYS_ID_SIZE
 * bytes) and returns id. */
const char *keys_id(const char *text, char id[KEYS_ID_SIZE]);

#endif
