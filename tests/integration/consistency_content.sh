#!/usr/bin/env bash
# consistency-check --content and --repair against the real bed:
#  1. an index synced by txidsync is equal in content too, also after
#     documents were written again with their members in another order,
#     numbers in another notation and strings escaped otherwise;
#  2. documents edited, deleted and added by hand, a deleted row's
#     document brought back, and a body changed under the same version:
#     --content names each (the first differing field), the plain check
#     cannot see the last one;
#  3. --repair with the syncer running fixes them all, says what it did,
#     and a second check (content too) is equal;
#  4. --columns/--exclude-columns: documents of chosen columns are equal
#     when the checker is told the same choice, and differ when not;
#  5. an NDJSON stream: equal in content; an event forged in place (the
#     same version, another body) is found only by --content; --repair sends the key again and
#     the stream is equal.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

tmp=$TXIDSYNC_TEST_TMP
ix=$(test_index)
psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
psql_q "create table goods (id int primary key, name text, price numeric(10,2), tags text[],
                            meta jsonb, secret text)"
psql_q "insert into goods select i, 'good ' || i, i * 1.25, array['a', 'b'],
        jsonb_build_object('n', i, 'city', 'Zürich'), 's' || i from generate_series(1, 3000) as i"
psql_q "select txidsync.track('goods')" >/dev/null

sync=(--table goods --index "$ix" --state-index "$ix-state")
"$TXIDSYNC_BIN" "${sync[@]}" --replicas 0 --once 2>/dev/null || fail "the backfill failed"
run_checker --table goods --index "$ix" --content
expect_rc 0 "a synced index, with --content"
expect_line '^content: +0$'
# The same meaning in other bytes: members reordered, 3.75 as 375e-2, ü escaped.
txid3=$(psql_q "select txid from txidsync.rows_goods where key = 3")
es PUT "/$ix/_doc/3?version=1&version_type=external_gte" \
    "{\"txidsync\": {\"version\": 1, \"key\": \"3\", \"txid\": $txid3}, \"secret\": \"s3\",
      \"meta\": {\"n\": 3, \"city\": \"Z\\u00fcrich\"}, \"tags\": [\"a\", \"b\"],
      \"price\": 375e-2, \"name\": \"good 3\", \"id\": 3}" >/dev/null
es GET "/$ix/_source/3" | grep -q 'u00fc' || fail "the escaped document was not stored as sent"
run_checker --table goods --index "$ix" --content
expect_rc 0 "a document in other bytes of the same meaning"
echo "1. equal in content, also with members, numbers and escapes written otherwise"

start_syncer "$tmp/sync.log" "${sync[@]}" --poll-interval 100
syncer=$SYNC_PID
wait_for 30 grep -q 'syncing goods' "$tmp/sync.log"
txid7=$(psql_q "select txid from txidsync.rows_goods where key = 7")
es POST "/$ix/_update/5" '{"doc": {"name": "edited by hand"}}' >/dev/null
es PUT "/$ix/_doc/7?version=1&version_type=external_gte" \
    "{\"id\": 7, \"name\": \"good 7\", \"price\": 8.75, \"tags\": [\"a\", \"b\"],
      \"meta\": {\"n\": 7, \"city\": \"Bern\"}, \"secret\": \"s7\",
      \"txidsync\": {\"key\": \"7\", \"txid\": $txid7, \"version\": 1}}" >/dev/null
es DELETE "/$ix/_doc/9" >/dev/null
es PUT "/$ix/_doc/777777" '{"id": 777777, "txidsync": {"key": "777777", "txid": 1, "version": 1}}' >/dev/null
psql_q "delete from goods where id = 11"
wait_for 30 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$TXIDSYNC_ES_URL/$ix/_doc/11')\" = 404 ]"
es PUT "/$ix/_doc/11" '{"id": 11, "txidsync": {"key": "11", "txid": 1, "version": 1}}' >/dev/null
run_checker --table goods --index "$ix"
expect_rc 1 "the plain check after edits by hand"
expect_line '^stale +key 5: '
grep -q 'key 7:' "$tmp/out" && fail "the plain check saw the body of key 7: $(cat "$tmp/out")"
run_checker --table goods --index "$ix" --content
expect_rc 1 "the content check after edits by hand"
expect_line '^stale +key 5: .*\(first differing field: name\)$'
expect_line '^content +key 7: both txid [0-9]+ version 1; .*\(first differing field: meta\.city\)$'
expect_line '^missing +key 9: '
expect_line '^extra +key 11: '
expect_line '^extra +key 777777: '
expect_line '^consistency-check: 5 differences'
echo "2. edits by hand: each named by --content, the body under the same version only by it"

run_checker --table goods --index "$ix" --content --repair --repair-wait 60
expect_rc 0 "--repair with the syncer running"
expect_line '^repair: 4 keys sent again with new versions \(1 of them deletes\), 1 documents deleted from the index$'
expect_line '^consistency-check: equal'
run_checker --table goods --index "$ix" --content
expect_rc 0 "a second check after the repair"
[ "$(es GET "/$ix/_doc/7" | jq -r ._source.meta.city)" = Zürich ] || fail "key 7 was not repaired"
code=0
stop_syncer "$syncer" || code=$?
[ "$code" = 0 ] || fail "the syncer exited $code"
run_checker --table goods --index "$ix" --repair --repair-wait 2
expect_rc 0 "--repair of an equal index changes nothing"
grep -q '^repair:' "$tmp/out" && fail "an equal index was repaired: $(cat "$tmp/out")"
echo "3. --repair fixed all five through the syncer; checked again: equal"

ixc=$ix-cols
"$TXIDSYNC_BIN" --table goods --index "$ixc" --state-index "$ixc-state" --replicas 0 --once \
    --exclude-columns secret,meta 2>/dev/null || fail "the sync without secret failed"
run_checker --table goods --index "$ixc" --content --exclude-columns secret,meta
expect_rc 0 "the same column choice"
run_checker --table goods --index "$ixc" --content
expect_rc 1 "the checker not told of the column choice"
expect_line '^content +key 1: .*first differing field: meta'
echo "4. chosen columns: equal when told the same choice, different when not"

nd=$tmp/goods.ndjson
ndsync=(--table goods --sink ndjson --ndjson-file "$nd")
"$TXIDSYNC_BIN" "${ndsync[@]}" --once 2>/dev/null || fail "the NDJSON sync failed"
run_checker --table goods --ndjson-file "$nd" --content
expect_rc 0 "an NDJSON stream, with --content"
# Forge the event of key 21 in place: the same version, another body.
python3 - "$nd" <<'PY'
import sys
path = sys.argv[1]
lines = open(path).read().splitlines(keepends=True)
for i, l in enumerate(lines):
    if '"key":"21"' in l:
        lines[i] = l.replace('"good 21"', '"forged"')
        break
open(path, 'w').write(''.join(lines))
PY
run_checker --table goods --ndjson-file "$nd"
expect_rc 0 "the plain check of the forged stream"
run_checker --table goods --ndjson-file "$nd" --content
expect_rc 1 "a forged event"
expect_line '^content +key 21: .*the last event.s document differs'
start_syncer "$tmp/ndsync.log" "${ndsync[@]}" --poll-interval 100
run_checker --table goods --ndjson-file "$nd" --content --repair --repair-wait 60
expect_rc 0 "--repair of the stream with the syncer running"
expect_line '^repair: 1 keys sent again'
echo "5. NDJSON: equal in content; a forged event found; repaired through the syncer"
