#!/usr/bin/env bash
# The Kafka sink against the bed's real broker (tests/bed up --with-kafka):
#  1. backfill and 5 s of load into a 3-partition topic: the checker reads
#     the topic and finds it equal; a delete is an event followed by a
#     tombstone; each partition starts with the table's schema event;
#  2. the broker stopped for 30 s while the syncer runs under writes, then
#     started again: the syncer retries, nothing is lost, equal;
#  3. the syncer in a crash loop under load, then caught up: equal;
#  4. a column added while the syncer runs: a new schema event in every
#     partition, ahead of the first change that has the column, and the
#     syncer's refresh gives every row the column (the checks compare
#     content too);
#  5. a message over the broker's size limit (1 MB by default): --on-reject
#     stop names its key and exits 1; dead-letter records it in the
#     dead-letter topic and its neighbours are written;
#  6. the topic deleted under a kept cursor: refused, naming the reset.
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
    out=$("$CHECKER_BIN" --table some_table --kafka-topic "$topic" --content 2>&1) ||
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
"$LOADGEN_BIN" --connections 4 --duration 40 --seed 22 >/dev/null 2>&1 &
load=$!
sleep 3
tests_bed kafka-stop
sleep 30
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
echo "2. the broker down for 30 s under writes: retried ($(grep -cE 'must be retried|retrying|unavailable' "$log") lines), equal"

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

# kafka_messages TOPIC: every message as "partition offset key value".
kafka_messages() { kcat -C -b "$TXIDSYNC_KAFKA_BROKERS" -t "$1" -e -q -f '%p %o %k %s\n' 2>/dev/null; }
log=$dir/schema.log
start_syncer "$log" "${sink[@]}" --poll-interval 100
wait_for 30 grep -q 'caught up' "$log"
schemas=$(kafka_messages "$topic" | grep -c '"op":"schema"')
psql_q "alter table some_table add column note text"
key=$(psql_q "select id from some_table order by id limit 1")
psql_q "update some_table set note = 'a new column' where id = $key"
wait_for 30 sh -c "kcat -C -b '$TXIDSYNC_KAFKA_BROKERS' -t '$topic' -e -q 2>/dev/null | grep -q '\"note\":\"a new column\"'"
# The rows that did not change get the column through the refresh the
# syncer starts; it is stopped once the topic has every one.
topic_equal() { "$CHECKER_BIN" --table some_table --kafka-topic "$topic" --content >/dev/null 2>&1; }
wait_for 120 topic_equal
grep -q 'refresh [0-9]* of the table (columns changed) finished' "$log" ||
    fail "the syncer did not refresh the table: $(grep refresh "$log")"
code=0
stop_syncer "$SYNC_PID" || code=$?
[ "$code" = 0 ] || fail "the running syncer exited $code: $(tail -n 5 "$log")"
msgs=$(kafka_messages "$topic")
[ "$(grep -c '"op":"schema"' <<<"$msgs")" = $((schemas + 3)) ] ||
    fail "not one new schema event per partition for the new column"
read -r part at < <(grep '"note":"a new column"' <<<"$msgs" | head -n 1 | cut -d' ' -f1,2)
schema_at=$(grep "^$part [0-9]* ~sha256:schema " <<<"$msgs" | tail -n 1)
jq -e '.txidsync.columns | map(.name) == ["id","name","data","note"]' <<<"${schema_at#* * * }" >/dev/null ||
    fail "the last schema event of partition $part lacks the new column: $schema_at"
[ "$(cut -d' ' -f2 <<<"$schema_at")" -lt "$at" ] ||
    fail "the new schema event comes after the change (offsets $(cut -d' ' -f2 <<<"$schema_at") and $at)"
check_topic
echo "4. a new column: a schema event in each of the 3 partitions, ahead of the change using it"

# A 2 MB row (the broker takes 1 MB), between two small changes.
psql_q "update some_table set name = repeat(md5('big'), 65536) where id = $key"
psql_q "update some_table set name = 'small' where id in (select id from some_table where id > $key order by id limit 2)"
set +e
out=$("$TXIDSYNC_BIN" "${sink[@]}" --once 2>&1)
code=$?
set -e
[ "$code" = 1 ] || fail "--on-reject stop exited $code on a message over the broker's limit: $out"
grep -q "rejected key $key .*Message size too large" <<<"$out" || fail "the error does not name key $key: $out"
out=$("$TXIDSYNC_BIN" "${sink[@]}" --once --on-reject dead-letter --dead-letter-index "$topic-dead" 2>&1) ||
    fail "--on-reject dead-letter failed: $out"
grep -q "rejected key $key .*recorded as a dead letter" <<<"$out" || fail "no dead letter for key $key: $out"
letter=$(kcat -C -b "$TXIDSYNC_KAFKA_BROKERS" -t "$topic-dead" -e -q -f '%s\n' 2>/dev/null)
jq -e --arg k "$key" '.key == $k and .topic != null and (.error | test("too large")) and .document_truncated and .document_bytes > 2000000' \
    <<<"$letter" >/dev/null || fail "the dead letter is not right: $(head -c 300 <<<"$letter")"
msgs=$(kafka_messages "$topic")
for k in $(psql_q "select id from some_table where id > $key order by id limit 2"); do
    grep -q "^[0-9]* [0-9]* $k .*\"name\":\"small\"" <<<"$msgs" || fail "key $k next to the big row was not written"
done
psql_q "update some_table set name = 'fits again' where id = $key"
"$TXIDSYNC_BIN" "${sink[@]}" --once 2>/dev/null || fail "the sync after the fix failed"
check_topic
echo "5. a 2 MB message: stop names key $key; dead-letter records it in $topic-dead, its neighbours written"


# The topic deleted by hand while its cursor is kept (reset with another
# cursor file deletes only the topic): refused with the way out, which
# copies the table again.
"$TXIDSYNC_BIN" reset --table some_table --sink kafka --kafka-brokers "$TXIDSYNC_KAFKA_BROKERS" \
    --kafka-topic "$topic" --cursor-file "$dir/no-such-cursor.json" 2>/dev/null || fail "deleting the topic failed"
expect 1 "topic $topic does not exist, but the cursor in .* says rows up to xid .* txidsync reset" \
    "$TXIDSYNC_BIN" "${sink[@]}" --once
"$TXIDSYNC_BIN" reset "${sink[@]}" 2>/dev/null || fail "the reset failed"
"$TXIDSYNC_BIN" "${sink[@]}" --once 2>/dev/null || fail "the copy after the reset failed"
check_topic
echo "6. a topic deleted under a kept cursor is refused, naming txidsync reset; after it, equal"
