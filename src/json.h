/*
 * json: the small pieces of JSON the hot path needs, without building a
 * generator or a tree per document.
 *
 * Writing appends a string or a number to a Buf exactly as yajl's
 * generator would write it (the rest of the project uses yajl, and both
 * must agree byte for byte).  Reading looks up one number at a dotted path
 * in a document with yajl's streaming parser, in constant memory.  For
 * the rest (request bodies, cursor-like documents) JsonGen holds a yajl
 * generator that writes into a Buf.  The module knows nothing of the
 * application.
 */
#ifndef TXIDSYNC_JSON_H
#define TXIDSYNC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "buf.h"

/*
 * Appends s (len bytes) to b as a JSON string: quoted, with '"', '\\' and
 * control characters escaped the way yajl_gen_string does (\b \f \n \r
 * \t, others as \u00XX in upper-case hex); other bytes, UTF-8 included,
 * are copied as they are.  Returns 0, or -1 (b unchanged) when b's
 * maximum would be exceeded or memory runs out.
 */
int json_append_string(Buf *b, const char *s, size_t len) __attribute__((warn_unused_result));

/* Appends v in decimal; as json_append_string. */
int json_append_u64(Buf *b, uint64_t v) __attribute__((warn_unused_result));

/*
 * A yajl generator writing into a Buf.  Open it with json_gen_open, write
 * with yajl_gen_* on jg->g (or the helpers below), and end with
 * json_gen_close, which tells whether everything reached the buffer.  The
 * struct is the generator's callback context: it must not move while open.
 */
typedef struct JsonGen {
    yajl_gen g;
    Buf *buf;
    bool failed; /* an append to buf failed */
} JsonGen;

/* Opens a generator appending to b.  Returns 0, or -1 out of memory. */
int json_gen_open(JsonGen *jg, Buf *b) __attribute__((warn_unused_result));

/* Frees the generator.  Returns 0 when ok is true and every append
 * succeeded, else -1. */
int json_gen_close(JsonGen *jg, bool ok);

/* Writes a NUL-terminated string; true on success. */
bool json_gen_cstr(yajl_gen g, const char *s);

/* Writes v as a number; true on success. */
bool json_gen_u64(yajl_gen g, uint64_t v);

/* How deep json_gen_tree follows a tree. */
#define JSON_TREE_DEPTH_MAX 64

/* Writes the parsed value v (yajl_tree) again, depth being how deep v is
 * already; false on failure or below JSON_TREE_DEPTH_MAX levels. */
bool json_gen_tree(yajl_gen g, yajl_val v, int depth);

/*
 * A compiled dotted path ("data.ts"): object member names from the root,
 * at most JSON_PATH_MAX of them.  Holds a copy of the text.
 */
#define JSON_PATH_MAX 8
typedef struct JsonPath {
    char text[256];
    const char *parts[JSON_PATH_MAX];
    size_t lens[JSON_PATH_MAX];
    size_t n;
} JsonPath;

/* Compiles path into *p.  Returns 0, or -1 when it is empty, has an
 * empty member name, more than JSON_PATH_MAX members or 255 bytes. */
int json_path_compile(JsonPath *p, const char *path) __attribute__((warn_unused_result));

/*
 * Looks up the number at path p in the JSON object doc (len bytes) with a
 * streaming parse that stops at the first match.  Returns true with *out
 * set when the value there is a number; false when it is absent, not a
 * number, or doc is not valid JSON up to that point.  Member names are
 * compared byte for byte after yajl decoded their escapes.
 */
bool json_find_number(const char *doc, size_t len, const JsonPath *p, double *out);

#endif
