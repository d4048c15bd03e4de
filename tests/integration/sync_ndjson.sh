#!/usr/bin/env bash
# The NDJSON sink: change events in files, as exact as the index.
#  1. a backfill and then inserts, updates and deletes (the load generator):
#     the checker replays the file and finds it equal; a delete is an event
#     with op delete; the first line is the table's schema event, and a
#     column added later gets a new one before the first change using it;
#  2. the syncer in a crash loop under load (kills between write and fsync
#     among them), files rotated at 2 MB: every event kept across the
#     rotated files, the checker equal;
#  3. a line cut short by a crash is cut off at the next start and the
#     events go on; a file deleted by hand with its cursor kept is refused
#     with the command, and reset starts over;
#  4. --dry-run prints the events to standard output and writes nothing.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

setup_demo
dir=$TXIDSYNC_TEST_TMP
file=$dir/some_table.ndjson
sink=(--table some_table --sink ndjson --ndjson-file "$file")
args=("${sink[@]}" --once)
check_stream() {
    local out
    out=$("$CHECKER_BIN" --table some_table --ndjson-file "$file" --content 2>&1) ||
        fail "the events of $file differ from the table: $(tail -n 30 <<<"$out")"
    tail -n 1 <<<"$out"
}

"$TXIDSYNC_BIN" "${args[@]}" 2>/dev/null || fail "the backfill into $file failed"
[ "$(wc -l <"$file")" = 30001 ] || fail "$(wc -l <"$file") lines for a schema event and 30000 rows"
schema=$(head -n 1 "$file")
[ "$(jq -c '.txidsync | [.op, [.columns[] | .name + " " + .type + " " + (.nullable | tostring)], .key]' <<<"$schema")" = \
    '["schema",["id bigint false","name text true","data jsonb true"],["id"]]' ] ||
    fail "the first line is not the table's schema event: $schema"
[ -s "$file.cursor" ] || fail "no cursor in $file.cursor"
"$LOADGEN_BIN" --connections 4 --duration 5 --seed 11 >/dev/null 2>&1 || fail "the load failed"
"$TXIDSYNC_BIN" "${args[@]}" 2>/dev/null || fail "the sync of the changes failed"
check_stream
grep -q '"op":"delete"}}$' "$file" || fail "no delete event in $file"
# A column added while the syncer runs: it notices with the next batch.
start_syncer "$dir/running.log" "${sink[@]}" --poll-interval 100
wait_for 30 grep -q 'caught up' "$dir/running.log"
schemas=$(grep -c '"op":"schema"' "$file")
psql_q "alter table some_table add column note text"
psql_q "update some_table set note = 'a new column' where id = 3"
wait_for 30 grep -q '"note":"a new column"' "$file"
# The rows that did not change get the column through the refresh the
# syncer starts; it is stopped once the stream has every one.
stream_equal() { "$CHECKER_BIN" --table some_table --ndjson-file "$file" --content >/dev/null 2>&1; }
wait_for 120 stream_equal
grep -q 'refresh [0-9]* of the table (columns changed) finished' "$dir/running.log" ||
    fail "the syncer did not refresh the table: $(grep refresh "$dir/running.log")"
code=0
stop_syncer "$SYNC_PID" || code=$?
[ "$code" = 0 ] || fail "the running syncer exited $code: $(tail -n 5 "$dir/running.log")"
grep -q "the table's columns changed" "$dir/running.log" || fail "no column change noticed"
[ "$(grep -c '"op":"schema"' "$file")" = $((schemas + 1)) ] ||
    fail "not one new schema event for the new column"
at_schema=$(grep -n '"op":"schema"' "$file" | tail -n 1 | cut -d: -f1)
at_change=$(grep -n '"note":"a new column"' "$file" | head -n 1 | cut -d: -f1)
[ -n "$at_change" ] && [ "$at_schema" -lt "$at_change" ] ||
    fail "no schema event before the first change with the new column (lines $at_schema, $at_change)"
sed -n "${at_schema}p" "$file" | jq -e '.txidsync.columns | map(.name) == ["id","name","data","note"]' >/dev/null ||
    fail "the schema event lacks the new column: $(sed -n "${at_schema}p" "$file")"
check_stream
echo "1. backfill and changes: the events replay to the table; a schema event first, and before the first change with a new column"

rm -f "$file" "$file".*
log=$dir/crash.log
"$TXIDSYNC_ROOT/tools/crash-loop" --max-seconds 60 -- "${sink[@]}" --crash-probability 0.05 \
    --ndjson-rotate-bytes 2000000 >"$dir/loop.out" 2>"$log" &
loop=$!
"$LOADGEN_BIN" --connections 8 --duration 15 --seed 12 >/dev/null 2>&1 || fail "the load failed"
kill -TERM "$loop"
wait "$loop" || true
"$TXIDSYNC_BIN" "${args[@]}" --ndjson-rotate-bytes 2000000 2>>"$log" || fail "the catch-up failed"
kills=$(grep -c 'crash injection: killing myself' "$log" || true)
[ "$kills" -ge 3 ] || fail "only $kills kills in the crash loop: $(tail -n 5 "$log")"
[ -e "$file.1" ] && [ -e "$file.2" ] || fail "the stream was not rotated: $(ls "$dir")"
check_stream
echo "2. $kills kills ($(grep -c 'before fsync' "$log" || true) between write and fsync), $(ls "$file".[0-9]* | wc -l) rotated files: equal"

printf '{"id": 1, "cut sh' >>"$file"
psql_q "update some_table set name = 'after the cut' where id = 3"
out=$("$TXIDSYNC_BIN" "${args[@]}" --ndjson-rotate-bytes 2000000 2>&1) || fail "the sync after a cut line failed: $out"
grep -q 'ended in a line cut short' <<<"$out" || fail "the cut line was not noticed: $out"
check_stream
rm -f "$file" "$file".[0-9]*
expect 1 "$file does not exist, but the cursor .* run: txidsync reset" "$TXIDSYNC_BIN" "${args[@]}"
expect 0 "reset: nothing to delete at $file; removed the cursor" "$TXIDSYNC_BIN" reset "${args[@]}"
"$TXIDSYNC_BIN" "${args[@]}" 2>/dev/null || fail "the sync after reset failed"
check_stream
echo "3. a cut line is cut off; a deleted file is refused, and reset starts over"

rm -f "$file" "$file".*
events=$("$TXIDSYNC_BIN" --table some_table --dry-run 2>/dev/null | wc -l)
# A schema event, then one event per key that ever existed: the live rows
# and the tombstones.
[ "$events" = "$(($(psql_q "select count(*) from txidsync.rows_some_table") + 1))" ] ||
    fail "--dry-run printed $events events"
[ -z "$(ls "$dir"/*.ndjson* 2>/dev/null)" ] || fail "--dry-run wrote files: $(ls "$dir")"
echo "4. --dry-run: $events events on standard output, nothing written"
