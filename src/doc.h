/*
 * doc: the document of a row, as every sink driver writes it: the row's
 * JSON object (row_to_json or to_jsonb, from pg) with the metadata the
 * checker compares added as one more member,
 *
 *     "txidsync": {"key": <the key's canonical text>, "txid": N, "version": N,
 *                  "table": <the table that feeds the target: "database/schema.table">,
 *                  "op": "upsert" or "delete", in change streams}
 *
 * on one line.  The module knows nothing of Postgres or of any target.
 */
#ifndef TXIDSYNC_DOC_H
#define TXIDSYNC_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The name of the metadata member. */
#define DOC_META_FIELD "txidsync"

/*
 * Puts into out (reset first) the document of a live row: row (row_len
 * bytes, one JSON object, possibly followed by blanks) with the metadata
 * member appended (without "table" when table is NULL, without "op" when
 * op is NULL).  A line break can only be whitespace
 * between tokens of valid JSON (inside a string it is escaped), so the ones a json value or a cast
 * may bring become blanks and the document fits on one line. Returns 0, or -1 when row is not a
 * JSON object or out's maximum is reached.
 */
int doc_build(Buf *out, const char *row, size_t row_len, const char *key, uint64_t txid,
              uint64_t version, const char *table, const char *op)
    __attribute__((warn_unused_result));

/*
 * Puts into out (appended) the schema event of a table's documents, one
 * line: {"txidsync": {"op": "schema", "table": table, "columns": [{"name",
 * "type", "nullable"}, ...], "key": [...]}}.  Returns 0, or -1 (out of
 * memory).
 */
int doc_schema_event(Buf *out, const char *table, const char *const *columns,
                     const char *const *types, const bool *nullable, size_t n,
                     const char *const *key, size_t n_key) __attribute__((warn_unused_result));

/* Checks that none of the n columns takes the name of the metadata
 * member.  Returns 0, or -1 with err filled (what to do about it). */
int doc_check_columns(const char *const *columns, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
