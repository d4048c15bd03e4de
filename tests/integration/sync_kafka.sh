#!/usr/bin/env bash
# The Kafka sink against the bed's real broker (tests/bed up --with-kafka):
#  1. backfill and 5 s of load into a 3-partition topic: the checker reads
#     the topic and finds it equal; a delete is an event followed by a
#     tombstone; each partition starts with the table's schema event;
#  2. the broker stopped for 15 s while the syncer runs under writes, then
#     started again: the syncer retries, nothing is lost, equal;
#  3. the syncer in a crash loop under load, then caught up: equal.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"
[ -n "${TXIDSYNC_KAFKA_BROKERS:-}" ] || fail "no Kafka broker in the bed (tests/bed up --with-kafka)"

setup_demo
dir=$TXIDSYNC_TEST_TMP
topic=$(test_index)
sink=(--table some_table --sink kafka --kafka-brokers "$TXIDSYNC_KAFKA_BROKERS" --kafka-topic "$topic"
    --kafka-partitions 3 --cursor-file "$dir/cursor.json")
check_topic() {
    local out
    out=$("$CHECKER_BIN" --table some_table --kafka-topic "$topic" 2>&1) ||
        fail "topic $topic differs from the table: $(tail -n 30 <<<"$out")"
    tail -n 1 <<<"$out"
}
tests_bed() { "$TXIDSYNC_ROOT/tests/bed" "$@" "$TXIDSYNC_BED"; }

"$TXIDSYNC_BIN" "${sink[@]}" --once 2>/dev/null || fail "the backfill into $topic failed"
"$LOADGEN_BIN" --connections 4 --duration 5 --seed 21 >/dev/null 2>&1 || fail "the load failed"
"$TXIDSYNC_BIN" "${sink[@]}" --once 2>/dev/null || fail "the sync of the changes failed"
check_topic
deleted=$(psql_q "select key from txidsync.rows_some_table where deleted limit 1")
[ -n "$deleted" ] || fail "the load deleted nothing"
msgs=$(kcat -C -b "$TXIDSYNC_KAFKA_BROKERS" -t "$topic" -e -q -f '%p %k %S %s\n' 2>/dev/null)
grep -E "^[0-9]+ $deleted [0-9]+ .*\"op\":\"delete\"" <<<"$msgs" >/dev/null || fail "no delete event for key $deleted"
grep -E "^[0-9]+ $deleted -1 $" <<<"$msgs" >/dev/null || fail "no tombstone for key $deleted"
for p in 0 1 2; do
    first=$(kcat -C -b "$TXIDSYNC_KAFKA_BROKERS" -t "$topic" -p "$p" -o beginning -c 1 -q -f '%k %s\n' 2>/dev/null)
    grep -q '^~sha256:schema {"txidsync":{"op":"schema"' <<<"$first" || fail "partition $p starts with: $first"
done
echo "1. backfill and changes into 3 partitions: equal; deletes have tombstones; schema events first"

log=$dir/outage.log
start_syncer "$log" "${sink[@]}" --poll-interval 100 --stats-interval 2
"$LOADGEN_BIN" --connections 4 --duration 25 --seed 22 >/dev/null 2>&1 &
load=$!
sleep 3
tests_bed kafka-stop
sleep 15
kill -0 "$SYNC_PID" || fail "the syncer died while the broker was down: $(tail -n 5 "$log")"
tests_bed kafka-start
wait "$load" || fail "the load failed"
sleep 5
code=0
stop_syncer "$SYNC_PID" || code=$?
[ "$code" = 0 ] || fail "the syncer exited $code after the outage: $(tail -n 5 "$log")"
"$TXIDSYNC_BIN" "${sink[@]}" --once 2>>"$log" || fail "the catch-up after the outage failed"
grep -qE "must be retried|retrying|unavailable" "$log" || fail "no retry while the broker was down"
check_topic
echo "2. the broker down for 15 s under writes: retried ($(grep -cE 'must be retried|retrying|unavailable' "$log") lines), equal"

"$TXIDSYNC_ROOT/tools/crash-loop" --max-seconds 60 -- "${sink[@]}" --crash-probability 0.05 \
    >"$dir/loop.out" 2>"$dir/crash.log" &
loop=$!
"$LOADGEN_BIN" --connections 8 --duration 15 --seed 23 >/dev/null 2>&1 || fail "the load failed"
kill -TERM "$loop"
wait "$loop" || true
"$TXIDSYNC_BIN" "${sink[@]}" --once 2>>"$dir/crash.log" || fail "the catch-up after the crash loop failed"
kills=$(grep -c 'crash injection: killing myself' "$dir/crash.log" || true)
[ "$kills" -ge 3 ] || fail "only $kills kills in the crash loop: $(tail -n 5 "$dir/crash.log")"
check_topic
echo "3. $kills kills under load: equal"
