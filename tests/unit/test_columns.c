/*
 * test_columns: choosing the columns of a table's documents
 * (pg_table_choose_columns): the document expression over exactly the
 * chosen columns, in the right order, quoted; and every bad choice
 * refused with a message naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg.h"

/* A table of the columns id, name, email, "Odd""col", as resolve makes it. */
static void make_table(PgTable *t, bool jsonb)
{
    static const char *cols[] = {"id", "name", "email", "Odd\"col"};
    memset(t, 0, sizeof(*t));
    t->name = strdup("customers");
    t->doc_jsonb = jsonb;
    t->sql_doc = strdup(jsonb ? "pg_catalog.to_jsonb(r.*)" : "pg_catalog.row_to_json(r.*)");
    t->n_columns = 4;
    t->columns = calloc(4, sizeof(*t->columns));
    for (size_t i = 0; i < 4; i++)
        t->columns[i] = strdup(cols[i]);
}

static void free_table(PgTable *t)
{
    free(t->name);
    free(t->sql_doc);
    free(t->sql_nested);
    for (size_t i = 0; i < t->n_columns; i++) {
        free(t->columns[i]);
        if (t->column_types)
            free(t->column_types[i]);
    }
    free(t->columns);
    free(t->column_types);
    free(t->column_nullable);
}

static void test_none_keeps_the_row(void **state)
{
    (void)state;
    PgTable t;
    char err[256];
    make_table(&t, false);
    assert_int_equal(pg_table_choose_columns(&t, NULL, "", err, sizeof(err)), 0);
    assert_string_equal(t.sql_doc, "pg_catalog.row_to_json(r.*)");
    assert_int_equal(t.n_columns, 4);
    free_table(&t);
}

/* Expects the choice to give the document want_doc over the n columns
 * of want (the list t->columns then holds). */
static void chosen(const char *include, const char *exclude, bool jsonb, const char *want_doc,
                   const char *const *want, size_t n)
{
    PgTable t;
    char err[256];
    make_table(&t, jsonb);
    assert_int_equal(pg_table_choose_columns(&t, include, exclude, err, sizeof(err)), 0);
    assert_string_equal(t.sql_doc, want_doc);
    assert_int_equal(t.n_columns, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(t.columns[i], want[i]);
    free_table(&t);
}

static void test_chosen_columns(void **state)
{
    (void)state;
    /* Excluded: the rest in table order, quoted as SQL quotes them. */
    static const char *rest[] = {"name", "Odd\"col"};
    chosen("", " email ,id", true,
           "(select pg_catalog.to_jsonb(x.*) from (select r.\"name\", r.\"Odd\"\"col\") as x)",
           rest, 2);
    /* Included: in the order given. */
    static const char *two[] = {"email", "id"};
    chosen("email,id", NULL, false,
           "(select pg_catalog.row_to_json(x.*) from (select r.\"email\", r.\"id\") as x)", two, 2);
}

/* A table with nested members keeps them over the chosen columns. */
static void test_chosen_columns_nested(void **state)
{
    (void)state;
    PgTable t;
    char err[256];
    make_table(&t, true);
    t.sql_nested = strdup("pg_catalog.jsonb_build_object('tags', r.id)");
    assert_int_equal(pg_table_choose_columns(&t, "id", NULL, err, sizeof(err)), 0);
    assert_string_equal(t.sql_doc, "((select pg_catalog.to_jsonb(x.*) from (select r.\"id\") as x)"
                                   " operator(pg_catalog.||) pg_catalog.jsonb_build_object('tags',"
                                   " r.id))");
    assert_int_equal(t.n_columns, 1);
    free_table(&t);
}

/* Expects the choice refused with a message containing want, t unchanged. */
static void refused(const char *include, const char *exclude, const char *want)
{
    PgTable t;
    char err[256] = "";
    make_table(&t, false);
    assert_int_equal(pg_table_choose_columns(&t, include, exclude, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
    assert_string_equal(t.sql_doc, "pg_catalog.row_to_json(r.*)");
    assert_int_equal(t.n_columns, 4);
    free_table(&t);
}

static void test_bad_choices(void **state)
{
    (void)state;
    refused("id,mail", NULL, "columns: mail is not a column of customers");
    refused("Id", NULL, "Id is not a column"); /* names are the catalog's, exactly */
    refused("id,id", NULL, "columns: column id is given twice");
    refused("id,,name", NULL, "an empty column name");
    refused("id", "email", "cannot both be given");
    refused(NULL, "id,name,email,Odd\"col", "leaves no column of customers");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_keeps_the_row),
        cmocka_unit_test(test_chosen_columns),
        cmocka_unit_test(test_chosen_columns_nested),
        cmocka_unit_test(test_bad_choices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
