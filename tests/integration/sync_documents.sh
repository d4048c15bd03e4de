#!/usr/bin/env bash
# Every document says what to_jsonb(row) says, for columns of many types:
# text with quotes, line breaks and non-ASCII, numeric and float specials,
# arrays, composites, jsonb, a json column holding duplicate keys and line
# breaks, a composite holding json, and a user type whose cast to json
# writes a line break.  Tables without json in them get row_to_json (the
# columns in table order); the others to_jsonb, which merges duplicate
# keys that OpenSearch would refuse.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
create type mood as enum ('calm', 'cross');
create function mood_json(mood) returns json language sql immutable
    as $$ select format(E'{\n  "mood": %s\n}', to_json($1::text))::json $$;
create cast (mood as json) with function mood_json(mood);
create type pair as (x int, label text);
create type jpair as (x int, j json);

create table docs_plain (
    id int primary key,
    t text,
    n numeric,
    f float8,
    b boolean,
    ts timestamptz,
    d date,
    ints int[],
    texts text[],
    p pair,
    jb jsonb,
    m mood
);
insert into docs_plain values
    (1, E'quote " backslash \\ tab \t newline \n end', 12.50, 0.1, true,
     '2026-11-22 10:00:00.123456+00', '2026-11-22', '{1,2,3}', '{"a b","c\"d"}',
     '(7,"seven")', '{"nested": {"list": [1, "two", null]}, "flag": false}', 'calm'),
    (2, 'ünïcödé ✓ 日本', 'NaN', 'Infinity', false, null, null, '{}', null,
     '(,)', '[]', 'cross'),
    (3, null, -0.000001, 1e20, null, '1999-12-31 23:59:59+00', '0001-01-01', null, '{}',
     null, 'null', null),
    (4, '', 123456789012345678901234567890, '-Infinity', true, null, null, '{NULL,4}', '{""}',
     '(-1,"")', '"just a string"', 'calm');

create table docs_json (id int primary key, name text, j json);
insert into docs_json values
    (1, 'duplicates', '{"a": 1, "a": 2, "b": {"c": 1, "c": 3}}'),
    (2, 'pretty', E'{\n  "k": [\n    1,\n    2\n  ]\n}'),
    (3, 'scalar', '42'),
    (4, 'none', null);

create table docs_nested (id int primary key, jp jpair, jarr json[]);
insert into docs_nested values
    (1, '(1,"{\"d\": 1, \"d\": 2}")', array['{"e": 5, "e": 6}'::json]),
    (2, null, null);

select txidsync.track('docs_plain'), txidsync.track('docs_json'), txidsync.track('docs_nested');
SQL

# compare TABLE: every row's document, without the txidsync field, equals
# to_jsonb of the row (one line: jsonb escapes line breaks in strings;
# both sides normalised by jq: sorted keys, same number form).
compare() {
    local table=$1 index
    index=$(test_index "$table")
    # Fields of one name change type from row to row here (a number, then
    # "NaN"; an object, then an array): the index maps only the metadata,
    # as a user would for such a table, so that nothing is refused.
    es PUT "/$index" '{"settings": {"number_of_replicas": 0}, "mappings": {"dynamic": false,
        "properties": {"txidsync": {"properties": {"key": {"type": "keyword"},
        "txid": {"type": "long"}, "version": {"type": "long"}}}}}}' >/dev/null
    "$TXIDSYNC_BIN" --table "$table" --index "$index" --state-index "$index-state" --replicas 0 \
        --once --stats-interval 0 >"$TXIDSYNC_TEST_TMP/$table.log" 2>&1 ||
        { cat "$TXIDSYNC_TEST_TMP/$table.log" >&2; fail "$table: the syncer failed"; }
    local n=0 id want got
    while IFS=$'\t' read -r id want; do
        got=$(es GET "/$index/_doc/$id" | jq -S -c '._source | del(.txidsync)')
        want=$(jq -S -c . <<<"$want")
        [ "$got" = "$want" ] || fail "$table key $id: document $got, expected $want"
        n=$((n + 1))
    done < <(psql -X -q -v ON_ERROR_STOP=1 -At -F $'\t' \
        -c "select id, to_jsonb(r)::text from $table as r order by id")
    [ "$n" -gt 0 ] || fail "$table: no rows compared"
    echo "$table: $n documents equal to to_jsonb"
    check_consistent "$index" "$table" >/dev/null
}

compare docs_plain
compare docs_json
compare docs_nested

# docs_plain's documents list the columns in table order (row_to_json).
order=$(es GET "/$(test_index docs_plain)/_doc/1" | jq -r '._source | keys_unsorted | join(",")')
[ "$order" = "id,t,n,f,b,ts,d,ints,texts,p,jb,m,txidsync" ] ||
    fail "docs_plain: fields in the order $order, expected the table's column order"
# docs_json's first document kept the last of each duplicate key.
got=$(es GET "/$(test_index docs_json)/_doc/1" | jq -c '._source.j')
[ "$got" = '{"a":2,"b":{"c":3}}' ] || fail "docs_json key 1: j is $got"
echo "documents: column order kept, duplicate keys merged"
