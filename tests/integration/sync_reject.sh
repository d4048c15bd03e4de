#!/usr/bin/env bash
# A document the index rejects for good (a mapping conflict): with
# --on-reject stop the syncer exits non-zero naming the key and keeps its
# cursor before it; with --on-reject dead-letter it records the document
# and the rest is synced.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

index=$(test_index)
dead=$index-dead
setup_demo
args=(--index "$index" --state-index "$index-state" --dead-letter-index "$dead" --replicas 0)
"$TXIDSYNC_BIN" "${args[@]}" --once 2>/dev/null || fail "initial sync failed"

# data.qty is mapped as a number by now: a string there cannot be indexed.
psql_q "update some_table set data = jsonb_set(data, '{qty}', '\"lots\"') where id = 7" >/dev/null
psql_q "update some_table set name = 'fine' where id = 8" >/dev/null
want8=$(side_version 8)

set +e
out=$("$TXIDSYNC_BIN" "${args[@]}" --once 2>&1)
code=$?
set -e
echo "$out" | grep -E 'rejected' || true
[ "$code" -ne 0 ] || fail "--on-reject stop exited 0"
grep -q 'rejected key 7 ' <<<"$out" || fail "the error does not name key 7: $out"
# Again: the cursor did not move past the rejected row.
set +e
"$TXIDSYNC_BIN" "${args[@]}" --once >/dev/null 2>&1
code=$?
set -e
[ "$code" -ne 0 ] || fail "a second run went past the rejected row"

out=$("$TXIDSYNC_BIN" "${args[@]}" --once --on-reject dead-letter 2>&1) ||
    fail "--on-reject dead-letter failed: $out"
grep -q 'recorded as a dead letter' <<<"$out" || fail "no dead-letter message: $out"
[ "$(doc_version "$index" 8)" = "$want8" ] || fail "key 8 was not synced"
es POST "/$dead/_refresh" >/dev/null
body=$(es GET "/$dead/_search?q=*")
[ "$(jq '.hits.total.value' <<<"$body")" = 1 ] || fail "dead-letter index: $body"
[ "$(jq -r '.hits.hits[0]._source.key' <<<"$body")" = 7 ] || fail "dead-letter key: $body"
jq -r '.hits.hits[0]._source.error' <<<"$body" | grep -q 'mapper_parsing_exception' ||
    fail "dead-letter error: $body"
jq -r '.hits.hits[0]._source.document' <<<"$body" | grep -q '"lots"' ||
    fail "dead-letter document: $body"
echo "rejected key 7 recorded in $dead, the rest synced"
