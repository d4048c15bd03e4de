/*
 * json_canon: the canonical form of a JSON document, so that two
 * documents that mean the same are the same bytes: object members sorted
 * by the bytes of their names (members of one name keep their order), no
 * whitespace, strings decoded and written again with yajl's escapes
 * ("\u00e9" and "é" become one), and numbers in one notation: the
 * significant digits and a decimal exponent (1.50, 1.5 and 15e-1 are all
 * 15e-1; 100 is 1e2; -0 is 0), exact whatever their size.  The content
 * check of the consistency checker compares documents this way.
 */
#ifndef TXIDSYNC_JSON_CANON_H
#define TXIDSYNC_JSON_CANON_H

#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "buf.h"

/* Appends the canonical form of v to out, leaving out the top-level
 * member named drop when v is an object (NULL: none).  Returns 0, or -1
 * when out's maximum is reached or memory runs out. */
int json_canon_tree(yajl_val v, const char *drop, Buf *out) __attribute__((warn_unused_result));

/* The same for the document doc (NUL-terminated JSON text).  Returns 0,
 * or -1 with err filled when it is not JSON or out cannot take it. */
int json_canon_text(const char *doc, const char *drop, Buf *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Writes into path (len bytes) where two canonical documents a and b
 * first differ, in member order: a dotted path of member names with [i]
 * for array elements ("color", "address.city", "tags[2]"); "" when they
 * differ at the top (not both objects) or are equal.
 */
void json_canon_first_diff(const char *a, const char *b, char *path, size_t len);

/* A 64-bit hash (FNV-1a) of len bytes at s: a canonical document's. */
uint64_t json_canon_hash(const char *s, size_t len);

#endif
