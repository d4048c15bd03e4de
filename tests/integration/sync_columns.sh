#!/usr/bin/env bash
# Choosing columns and mappings:
#  1. exclude-columns keeps customers.email out: documents hold exactly
#     the other columns, the checker is equal;
#  2. columns (an include list) puts exactly those in, in that order;
#  3. a mapping file of the user's own with dynamic: strict and the
#     numeric column as scaled_float: the index has that mapping plus
#     txidsync's metadata field, the documents are accepted, and a column
#     the strict mapping does not know is rejected (the mapping is really
#     the user's);
#  4. bad choices fail at start with a clear message: an unknown column,
#     both lists, a mapping file that is not JSON or maps txidsync; and a
#     column named txidsync is fine once excluded.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
psql_q "create table customers (id int primary key, name text, email text, balance numeric(12,2), txidsync text)"
psql_q "insert into customers select i, 'name ' || i, 'c' || i || '@example.com', i * 1.25, 'x'
        from generate_series(1, 500) as i"
psql_q "select txidsync.track('customers')" >/dev/null

base=(--table customers --replicas 0 --once)
keys_of() { es GET "/$1/_doc/$2" | jq -c '._source | keys_unsorted'; }

ix=$(test_index excluded)
"$TXIDSYNC_BIN" "${base[@]}" --index "$ix" --state-index "$ix-state" \
    --exclude-columns 'email, txidsync' 2>/dev/null || fail "the sync without email failed"
check_consistent "$ix" customers
[ "$(keys_of "$ix" 7)" = '["id","name","balance","txidsync"]' ] ||
    fail "document 7 holds $(keys_of "$ix" 7)"
[ "$(es GET "/$ix/_doc/7" | jq -c '._source.txidsync | keys')" = '["key","table","txid","version"]' ] ||
    fail "the metadata of document 7: $(es GET "/$ix/_doc/7")"
echo "1. exclude-columns: documents without email, equal"

ix=$(test_index included)
"$TXIDSYNC_BIN" "${base[@]}" --index "$ix" --state-index "$ix-state" --columns 'name,id' \
    2>/dev/null || fail "the sync of two columns failed"
check_consistent "$ix" customers
[ "$(keys_of "$ix" 9)" = '["name","id","txidsync"]' ] || fail "document 9 holds $(keys_of "$ix" 9)"
echo "2. columns: exactly name and id"

ix=$(test_index mapped)
mapping=$TXIDSYNC_TEST_TMP/mapping.json
cat >"$mapping" <<'JSON'
{"settings": {"number_of_shards": 2},
 "mappings": {"dynamic": "strict", "_meta": {"team": "billing"},
   "properties": {"id": {"type": "integer"}, "name": {"type": "keyword"},
                  "balance": {"type": "scaled_float", "scaling_factor": 100}}}}
JSON
"$TXIDSYNC_BIN" "${base[@]}" --index "$ix" --state-index "$ix-state" --columns id,name,balance \
    --mapping "$mapping" 2>/dev/null || fail "the sync with a strict mapping failed"
check_consistent "$ix" customers
m=$(es GET "/$ix/_mapping" | jq -c ".\"$ix\".mappings")
[ "$(jq -r .dynamic <<<"$m")" = strict ] || fail "not strict: $m"
[ "$(jq -r .properties.balance.type <<<"$m")" = scaled_float ] || fail "balance: $m"
[ "$(jq -r .properties.txidsync.properties.key.type <<<"$m")" = keyword ] || fail "metadata: $m"
[ "$(jq -r ._meta.team <<<"$m")" = billing ] || fail "the user's _meta is gone: $m"
[ "$(jq -r ._meta.txidsync.owner <<<"$m")" = t_sync_columns/public.customers ] || fail "owner: $m"
[ "$(es GET "/$ix/_settings" | jq -r ".\"$ix\".settings.index.number_of_shards")" = 2 ] ||
    fail "the user's settings were not used"
[ "$(es GET "/$ix/_doc/4" | jq -r ._source.balance)" = 5 ] || fail "balance of 4: $(es GET "/$ix/_doc/4")"
psql_q "update customers set name = 'renamed' where id = 4"
expect 1 "rejected key 4 .*strict_dynamic_mapping_exception" \
    "$TXIDSYNC_BIN" "${base[@]}" --index "$ix" --state-index "$ix-state" --columns id,name,balance,email \
    --mapping "$mapping"
echo "3. a strict mapping of the user's own: used, and strict"

ix=$(test_index bad)
bad=(--index "$ix" --state-index "$ix-state")
expect 1 "columns: mail is not a column of customers" \
    "$TXIDSYNC_BIN" "${base[@]}" "${bad[@]}" --columns id,mail
expect 1 "columns and exclude-columns cannot both be given" \
    "$TXIDSYNC_BIN" "${base[@]}" "${bad[@]}" --columns id --exclude-columns email
expect 1 "the table has a column named txidsync" "$TXIDSYNC_BIN" "${base[@]}" "${bad[@]}"
echo '{"mappings": ' >"$TXIDSYNC_TEST_TMP/broken.json"
expect 2 "--mapping: not JSON" \
    "$TXIDSYNC_BIN" "${base[@]}" "${bad[@]}" --mapping "$TXIDSYNC_TEST_TMP/broken.json"
echo '{"mappings": {"properties": {"txidsync": {"type": "text"}}}}' >"$TXIDSYNC_TEST_TMP/meta.json"
expect 2 "--mapping: it maps txidsync" \
    "$TXIDSYNC_BIN" "${base[@]}" "${bad[@]}" --mapping "$TXIDSYNC_TEST_TMP/meta.json"
expect 2 "--mapping: cannot read /nonexistent" \
    "$TXIDSYNC_BIN" "${base[@]}" "${bad[@]}" --mapping /nonexistent
[ "$(curl -s -o /dev/null -w '%{http_code}' "$TXIDSYNC_ES_URL/$ix")" = 404 ] || fail "index $ix was created"
echo "4. bad column choices and mapping files: clear errors, nothing written"
