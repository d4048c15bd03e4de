#!/usr/bin/env bash
# Big rows and request caps (the bed's node takes requests of at most
# 32 MB, the syncer's default cap is 10 MiB):
#  1. 150 rows of about 1 MB with the default batch size: every row
#     arrives, in requests under the cap (no request is refused), read in
#     batches the byte budget keeps small;
#  2. one row of 12 MB fits in no request under the cap: --on-reject stop
#     names its key and exits 1 with the cursor before it; dead-letter
#     records it and its neighbours sync;
#  3. a raised cap (64 MiB) lets a request grow past what the node takes:
#     the node refuses it as a whole (413), the syncer splits it until the
#     40 MB row is alone, records it and applies the rest;
#  4. once the operator shrinks the rows, the checker finds the index equal.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

index=$(test_index)
dead=$index-dead
psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
psql_q "create table big_rows (id int primary key, body text not null)"
psql_q "select txidsync.track('big_rows')" >/dev/null
# About 1 MB each, and different (md5 of the id, repeated).
psql_q "insert into big_rows select i, repeat(md5(i::text), 32768) from generate_series(1, 150) as i"
args=(--table big_rows --index "$index" --state-index "$index-state" --dead-letter-index "$dead"
    --replicas 0 --once)

out=$("$TXIDSYNC_BIN" "${args[@]}" 2>&1) || fail "the sync of 1 MB rows failed: $out"
! grep -q 'refused' <<<"$out" || fail "a request was refused under the default cap: $out"
check_consistent "$index" big_rows
# The default 64 MiB batch budget reads them in batches of about 60 rows
# (16 first, while row sizes are unknown), not all 150 at once.
batches=$(sed -n 's/.*stats: .* \([0-9]*\) batches,.*/\1/p' <<<"$out" | tail -n 1)
[ "${batches:-0}" -ge 4 ] || fail "150 rows of 1 MB were read in ${batches:-?} batches: $out"
echo "1. 150 rows of 1 MB synced in requests under the cap, read in $batches batches"

psql_q "update big_rows set body = repeat('y', 12 * 1024 * 1024) where id = 7"
psql_q "update big_rows set body = 'small' where id in (6, 8)"
set +e
out=$("$TXIDSYNC_BIN" "${args[@]}" 2>&1)
code=$?
set -e
[ "$code" = 1 ] || fail "--on-reject stop exited $code on a row too large for any request: $out"
grep -q 'rejected key 7 .*does not fit in a bulk request of at most 10485760 bytes' <<<"$out" ||
    fail "the error does not name key 7 and the cap: $out"
out=$("$TXIDSYNC_BIN" "${args[@]}" --on-reject dead-letter 2>&1) ||
    fail "--on-reject dead-letter failed: $out"
grep -q 'rejected key 7 .*recorded as a dead letter' <<<"$out" || fail "no dead letter for key 7: $out"
[ "$(doc_version "$index" 6)" = "$(side_version 6 big_rows)" ] || fail "key 6 was not synced"
[ "$(doc_version "$index" 8)" = "$(side_version 8 big_rows)" ] || fail "key 8 was not synced"
es POST "/$dead/_refresh" >/dev/null
body=$(es GET "/$dead/_search?q=*&size=100" | jq -c '[.hits.hits[]._source | select(.key == "7")]')
[ "$(jq length <<<"$body")" = 1 ] || fail "dead-letter index: $(head -c 500 <<<"$body")"
[ "$(jq '.[0].document_truncated' <<<"$body")" = true ] ||
    fail "the dead letter of a 12 MB document is not cut: $(head -c 500 <<<"$body")"
echo "2. a 12 MB row stops the table naming its key, or goes to the dead letters"

psql_q "update big_rows set body = repeat('z', 40 * 1024 * 1024) where id = 100"
psql_q "update big_rows set body = 'also small' where id between 90 and 110 and id <> 100"
out=$("$TXIDSYNC_BIN" "${args[@]}" --on-reject dead-letter --bulk-max-bytes 67108864 2>&1) ||
    fail "the sync with a 64 MiB cap failed: $out"
grep -q 'refused a request of [0-9]* changes for what it holds' <<<"$out" ||
    fail "no request was split: $out"
grep -q 'rejected key 100 .*413.*recorded as a dead letter' <<<"$out" || fail "key 100 was not isolated: $out"
for k in 90 99 101 110; do
    [ "$(doc_version "$index" $k)" = "$(side_version $k big_rows)" ] || fail "key $k was not synced"
done
echo "3. a request the node refused (413) was split until the 40 MB row was alone"

psql_q "update big_rows set body = 'fixed' where id in (7, 100)"
out=$("$TXIDSYNC_BIN" "${args[@]}" 2>&1) || fail "the sync after the fix failed: $out"
check_consistent "$index" big_rows
echo "4. equal after the operator shrank the two rows"
