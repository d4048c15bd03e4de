#!/usr/bin/env bash
# The cursor covers only what the target made durable.  An index created
# beforehand with index.translog.durability async (and a long sync
# interval, so the node fsyncs nothing by itself during the test) takes
# 50,000 rows; then the node is killed with SIGKILL and started again.
#  1. The bed really loses unflushed writes: 1,000 documents bulk-written
#     into a second async index, acknowledged but not flushed, are gone
#     after the kill (else this test could not fail);
#  2. the syncer warned at start, flushed the index before its cursor
#     saves, and every document is still there: the next run is equal.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

index=$(test_index)
control=$(test_index control)
async='{"settings":{"number_of_replicas":0,"index.translog.durability":"async","index.translog.sync_interval":"600s"}}'
es PUT "/$index" "$async" >/dev/null
es PUT "/$control" "$async" >/dev/null

psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
psql_q "create table durable (id int primary key, what text)"
psql_q "insert into durable select i, 'row ' || i from generate_series(1, 50000) as i"
psql_q "select txidsync.track('durable')" >/dev/null
args=(--table durable --index "$index" --state-index "$index-state" --replicas 0 --once)
out=$("$TXIDSYNC_BIN" "${args[@]}" 2>&1) || fail "the sync failed: $out"
grep -q "index $index has index.translog.durability async.*flushes it before each cursor save" \
    <<<"$out" || fail "no warning about the async translog: $out"

bulk=$TXIDSYNC_TEST_TMP/control.ndjson
for i in $(seq 1 1000); do
    printf '{"index":{"_id":"%d"}}\n{"n":%d}\n' "$i" "$i"
done >"$bulk"
curl -sS -f -H 'Content-Type: application/x-ndjson' --data-binary "@$bulk" \
    "$TXIDSYNC_ES_URL/$control/_bulk" | jq -e '.errors == false' >/dev/null ||
    fail "the control bulk failed"

"$TXIDSYNC_ROOT/tests/bed" es-kill "$TXIDSYNC_BED"
"$TXIDSYNC_ROOT/tests/bed" es-start "$TXIDSYNC_BED"
wait_for 60 es GET "/_cluster/health?wait_for_status=yellow&timeout=1s"

es POST "/$control/_refresh" >/dev/null
left=$(es GET "/$control/_count" | jq .count)
[ "$left" -lt 1000 ] || fail "the kill lost nothing unflushed ($left of 1000 left): this test proves nothing"
echo "1. the kill lost $((1000 - left)) of 1000 acknowledged, unflushed documents of an async index"

es POST "/$index/_refresh" >/dev/null
count=$(es GET "/$index/_count" | jq .count)
[ "$count" = 50000 ] || fail "the kill lost synced documents: $count of 50000 left"
out=$("$TXIDSYNC_BIN" "${args[@]}" 2>&1) || fail "the sync after the kill failed: $out"
check_consistent "$index" durable
echo "2. all 50000 synced documents survived the kill, the checker is equal"
