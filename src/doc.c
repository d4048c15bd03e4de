/*
 * doc: a row's JSON plus the txidsync metadata member (see doc.h).  The
 * row is not parsed: an object's closing brace is replaced by the new
 * member, which is what makes this cheap enough for the hot path.
 */
#include "doc.h"

#include <stdbool.h>
#include <string.h>

#include "json.h"
#include "log.h"

/* JSON's whitespace: the only place a raw control character may be. */
static bool json_blank(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

int doc_build(Buf *out, const char *row, size_t row_len, const char *key, uint64_t txid,
              uint64_t version, const char *table, const char *op)
{
    buf_reset(out);
    size_t len = row_len;
    while (len > 0 && json_blank(row[len - 1]))
        len--;
    if (len < 2 || row[0] != '{' || row[len - 1] != '}')
        return -1;
    bool empty = true;
    for (size_t i = 1; i + 1 < len; i++) {
        if (!json_blank(row[i])) {
            empty = false;
            break;
        }
    }
    if (buf_append(out, row, len - 1) < 0)
        return -1;
    for (char *nl = memchr(out->data, '\n', out->len); nl;
         nl = memchr(nl, '\n', out->len - (size_t)(nl - out->data)))
        *nl = ' ';
    if (buf_puts(out, empty ? "\"" DOC_META_FIELD "\":{\"key\":"
                            : ",\"" DOC_META_FIELD "\":{\"key\":") < 0 ||
        json_append_string(out, key, strlen(key)) < 0 || buf_puts(out, ",\"txid\":") < 0 ||
        json_append_u64(out, txid) < 0 || buf_puts(out, ",\"version\":") < 0 ||
        json_append_u64(out, version) < 0)
        return -1;
    if (table &&
        (buf_puts(out, ",\"table\":") < 0 || json_append_string(out, table, strlen(table)) < 0))
        return -1;
    if (op && (buf_puts(out, ",\"op\":") < 0 || json_append_string(out, op, strlen(op)) < 0))
        return -1;
    if (buf_puts(out, "}}") < 0)
        return -1;
    return 0;
}

int doc_check_columns(const char *const *columns, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(columns[i], DOC_META_FIELD) == 0)
            return err_printf(err, errlen,
                              "the table has a column named %s, the name of the member txidsync "
                              "adds to every document for its own use: rename the column, or "
                              "leave it out of the documents (exclude-columns)",
                              DOC_META_FIELD);
    }
    return 0;
}

int doc_schema_event(Buf *out, const char *table, const char *const *columns,
                     const char *const *types, const bool *nullable, size_t n,
                     const char *const *key, size_t n_key)
{
    JsonGen jg;
    if (json_gen_open(&jg, out) != 0)
        return -1;
    yajl_gen g = jg.g;
    bool ok = yajl_gen_map_open(g) == yajl_gen_status_ok && json_gen_cstr(g, DOC_META_FIELD) &&
              yajl_gen_map_open(g) == yajl_gen_status_ok && json_gen_cstr(g, "op") &&
              json_gen_cstr(g, "schema") && json_gen_cstr(g, "table") && json_gen_cstr(g, table) &&
              json_gen_cstr(g, "columns") && yajl_gen_array_open(g) == yajl_gen_status_ok;
    for (size_t i = 0; ok && i < n; i++)
        ok = yajl_gen_map_open(g) == yajl_gen_status_ok && json_gen_cstr(g, "name") &&
             json_gen_cstr(g, columns[i]) && json_gen_cstr(g, "type") &&
             json_gen_cstr(g, types && types[i] ? types[i] : "") && json_gen_cstr(g, "nullable") &&
             yajl_gen_bool(g, nullable ? nullable[i] : 1) == yajl_gen_status_ok &&
             yajl_gen_map_close(g) == yajl_gen_status_ok;
    ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok && json_gen_cstr(g, "key") &&
         yajl_gen_array_open(g) == yajl_gen_status_ok;
    for (size_t i = 0; ok && i < n_key; i++)
        ok = json_gen_cstr(g, key[i]);
    ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
         yajl_gen_map_close(g) == yajl_gen_status_ok && yajl_gen_map_close(g) == yajl_gen_status_ok;
    return json_gen_close(&jg, ok);
}
