/*
 * pg_columns: choosing the columns of a table's documents (see
 * pg_table_choose_columns in pg.h).  The document becomes the JSON of a
 * subquery over the chosen columns of row r, so that the batch query
 * keeps its one index lookup per row and the names stay the columns'.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "pg.h"

#define COLUMNS_SQL_MAX ((size_t)1 << 20)

/* The index in t->columns of the name of len bytes at name, or -1. */
static long column_index(const PgTable *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->n_columns; i++)
        if (strlen(t->columns[i]) == len && memcmp(t->columns[i], name, len) == 0)
            return (long)i;
    return -1;
}

/* Marks in chosen[] the columns a comma-separated list names.  Returns
 * 0, or -1 with err filled. */
static int mark_listed(const PgTable *t, const char *list, const char *what, bool *chosen,
                       size_t *order, size_t *n_order, char *err, size_t errlen)
{
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, ",");
        size_t trim = len;
        while (trim > 0 && (p[trim - 1] == ' ' || p[trim - 1] == '\t'))
            trim--;
        long i = column_index(t, p, trim);
        if (trim == 0)
            return err_printf(err, errlen, "%s: an empty column name", what);
        if (i < 0)
            return err_printf(err, errlen, "%s: %.*s is not a column of %s", what, (int)trim, p,
                              t->name);
        if (chosen[i])
            return err_printf(err, errlen, "%s: column %.*s is given twice", what, (int)trim, p);
        chosen[i] = true;
        order[(*n_order)++] = (size_t)i;
        p += len + (p[len] == ',');
    }
    return 0;
}

/* Appends name as a quoted SQL identifier. */
static int append_ident(Buf *b, const char *name)
{
    int bad = buf_puts(b, "\"");
    for (const char *c = name; *c && !bad; c++)
        bad = *c == '"' ? buf_puts(b, "\"\"") : buf_append(b, c, 1);
    return bad | buf_puts(b, "\"");
}

/* Builds t->sql_doc over the columns order[0..n-1] and makes them
 * t->columns.  Returns 0 or -1 (out of memory). */
static int use_columns(PgTable *t, const size_t *order, size_t n)
{
    Buf sql;
    buf_init(&sql, COLUMNS_SQL_MAX + (t->sql_nested ? strlen(t->sql_nested) : 0));
    bool jsonb = t->doc_jsonb;
    int bad = buf_printf(&sql, "%s(select %s(x.*) from (select ", t->sql_nested ? "(" : "",
                         jsonb ? "pg_catalog.to_jsonb" : "pg_catalog.row_to_json");
    for (size_t i = 0; i < n && !bad; i++)
        bad = buf_puts(&sql, i ? ", r." : "r.") | append_ident(&sql, t->columns[order[i]]);
    bad |= buf_puts(&sql, ") as x)");
    if (t->sql_nested && !bad)
        bad = buf_printf(&sql, " operator(pg_catalog.||) %s)", t->sql_nested);
    char *doc = bad ? NULL : strdup(buf_str(&sql));
    char **columns = calloc(n, sizeof(*columns));
    char **types = calloc(n, sizeof(*types));
    bool *nullable = calloc(n, sizeof(*nullable));
    buf_free(&sql);
    if (!doc || !columns || !types || !nullable) {
        free(doc);
        free(columns);
        free(types);
        free(nullable);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        columns[i] = t->columns[order[i]];
        types[i] = t->column_types ? t->column_types[order[i]] : NULL;
        nullable[i] = t->column_nullable ? t->column_nullable[order[i]] : true;
    }
    for (size_t i = 0; i < t->n_columns; i++) {
        bool kept = false;
        for (size_t k = 0; k < n && !kept; k++)
            kept = order[k] == i;
        if (!kept) {
            free(t->columns[i]);
            if (t->column_types)
                free(t->column_types[i]);
        }
    }
    free(t->columns);
    free(t->column_types);
    free(t->column_nullable);
    t->columns = columns;
    t->column_types = types;
    t->column_nullable = nullable;
    t->n_columns = n;
    free(t->sql_doc);
    t->sql_doc = doc;
    return 0;
}

int pg_table_choose_columns(PgTable *t, const char *include, const char *exclude, char *err,
                            size_t errlen)
{
    bool inc = include && *include, exc = exclude && *exclude;
    if (!inc && !exc)
        return 0;
    if (inc && exc)
        return err_printf(err, errlen, "columns and exclude-columns cannot both be given");
    bool *chosen = calloc(t->n_columns + 1, sizeof(*chosen));
    size_t *order = calloc(t->n_columns + 1, sizeof(*order));
    size_t n = 0;
    int rc = -1;
    if (!chosen || !order) {
        err_printf(err, errlen, "out of memory");
        goto done;
    }
    if (mark_listed(t, inc ? include : exclude, inc ? "columns" : "exclude-columns", chosen, order,
                    &n, err, errlen) < 0)
        goto done;
    if (exc) {
        n = 0;
        for (size_t i = 0; i < t->n_columns; i++)
            if (!chosen[i])
                order[n++] = i;
    }
    if (n == 0) {
        err_printf(err, errlen, "exclude-columns leaves no column of %s", t->name);
        goto done;
    }
    rc = use_columns(t, order, n);
    if (rc < 0)
        err_printf(err, errlen, "out of memory");
done:
    free(chosen);
    free(order);
    return rc;
}
