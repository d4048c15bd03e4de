#!/usr/bin/env bash
# Tracking modes (design.md, "Tracking modes") against the real bed:
#  1. the demo tables switched side -> log -> side -> log while the load
#     generator writes them and one syncer runs throughout: versions keep
#     rising across each switch (no conflict leaves a document stale), the
#     checker finds the index equal, and the switch back merged the log;
#  2. without the C module's function, the log mode falls back to the
#     generated plpgsql trigger, which the checker finds equally right,
#     TRUNCATE included;
#  3. a refresh and a repair in the log mode give the keys new versions;
#  4. bad input: an unknown mode is refused and changes nothing;
#  5. txidsync track --mode log tracks a table online in the log mode.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

setup_demo
dir=$TXIDSYNC_TEST_TMP
index=$(test_index)
mode_of() { psql_q "select mode from txidsync.tracked where relid = '$1'::regclass"; }
trigger_of() {
    psql_q "select tgfoid::regprocedure from pg_trigger
             where tgname = 'txidsync_row' and tgrelid = '$1'::regclass"
}
switch() {
    psql_q "select txidsync.track('public.some_table', notify => true, mode => '$1');
            select txidsync.track('public.some_table_parts', mode => '$1')" >/dev/null
    [ "$(mode_of some_table)" = "$1" ] && [ "$(mode_of some_table_parts)" = "$1" ] ||
        fail "the switch to $1 did not take"
}

cat >"$dir/modes.ini" <<EOF
[txidsync]
replicas = 0
poll-interval = 100
state-index = $index-state
[some_table]
index = $index
[some_table_parts]
index = $index-parts
EOF
cfg=(--config "$dir/modes.ini")
log=$dir/syncer.log
start_syncer "$log" "${cfg[@]}"
wait_for 60 grep -q 'some_table_parts: copied the table' "$log"
wait_for 60 grep -q 'some_table: caught up' "$log"

# A switch waits for the writers in flight (sleeping ones among them) and
# holds new ones off meanwhile; the load lasts past the last one.
"$LOADGEN_BIN" --connections 4 --duration 30 --seed 77 >"$dir/load.log" 2>&1 &
load=$!
logged() { [ "$(psql_q "select count(*) from txidsync.log_some_table")" -gt 100 ]; }
for m in log side log; do
    sleep 3
    t0=$(date +%s.%N)
    switch "$m"
    echo "   switched to $m under load in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
    if [ "$m" = log ]; then
        kill -0 "$load" 2>/dev/null || fail "the load ended before the log mode was written"
        wait_for 20 logged
    fi
done
[ "$(trigger_of some_table)" = "txidsync._log_row_c()" ] ||
    fail "the log mode does not use the C trigger: $(trigger_of some_table)"
wait "$load" || fail "the load failed: $(tail -n 5 "$dir/load.log")"
entries=$(psql_q "select count(*) from txidsync.log_some_table")
code=0
stop_syncer "$SYNC_PID" || code=$?
[ "$code" = 0 ] || fail "the syncer exited $code: $(tail -n 5 "$log")"
"$TXIDSYNC_BIN" "${cfg[@]}" --once 2>>"$log" || fail "the catch-up failed"
check_consistent "$index" some_table
check_consistent "$index-parts" some_table_parts
echo "1. side -> log -> side -> log under load and a running syncer: equal ($entries log entries)"

# 2. The plpgsql fallback: back to side (the log merged), the C function
# dropped, then log again.
switch side
[ "$(psql_q "select count(*) from txidsync.log_some_table")" = 0 ] ||
    fail "the switch back to side left entries in the log"
psql_q "drop function txidsync._log_row_c()"
switch log
[ "$(trigger_of some_table)" = "txidsync.rows_some_table_trg()" ] ||
    fail "without the C function the log mode did not take the plpgsql trigger: $(trigger_of some_table)"
"$LOADGEN_BIN" --connections 2 --duration 5 --seed 78 >"$dir/load2.log" 2>&1 ||
    fail "the load failed: $(tail -n 5 "$dir/load2.log")"
psql_q "create table public.lt (id int primary key, v text);
        insert into public.lt select g, 'v' || g from generate_series(1, 50) g;
        select txidsync.track('public.lt', mode => 'log');
        update public.lt set v = 'w' where id <= 10;
        truncate public.lt;
        insert into public.lt values (3, 'back')" >/dev/null
"$TXIDSYNC_BIN" "${cfg[@]}" --once 2>>"$log" || fail "the catch-up failed"
"$TXIDSYNC_BIN" --table lt --index "$index-lt" --state-index "$index-state" --replicas 0 --once \
    2>>"$log" || fail "the sync of lt failed"
check_consistent "$index" some_table
check_consistent "$index-parts" some_table_parts
check_consistent "$index-lt" lt
echo "2. the plpgsql trigger of the log mode (no C function): equal, TRUNCATE included"

# 3. A refresh and a repair in the log mode, of two live keys (the load
# generator deletes rows too).
read -r k1 k2 <<<"$(psql_q "select string_agg(id::text, ' ') from
    (select id from some_table where id <= 100 order by id limit 2) s")"
[ -n "$k2" ] || fail "fewer than two live keys at or below 100"
before=$(side_version "$k1")
"$TXIDSYNC_BIN" refresh --table some_table --where 't.id <= 100' >"$dir/refresh.log" 2>&1 ||
    fail "the refresh failed: $(tail -n 5 "$dir/refresh.log")"
after=$(side_version "$k1")
[ "$after" -gt "$before" ] || fail "the refresh left key $k1 at version $after (was $before)"
"$TXIDSYNC_BIN" "${cfg[@]}" --once 2>>"$log" || fail "the catch-up failed"
[ "$(doc_version "$index" "$k1")" = "$after" ] ||
    fail "key $k1 is at $(doc_version "$index" "$k1"), not $after"
es DELETE "/$index/_doc/$k2" >/dev/null
run_checker --index "$index" --table some_table --repair
"$TXIDSYNC_BIN" "${cfg[@]}" --once 2>>"$log" || fail "the catch-up failed"
[ "$(doc_version "$index" "$k2")" != absent ] || fail "the repair did not bring back key $k2"
check_consistent "$index" some_table
echo "3. a refresh (key $k1: version $before -> $after) and a repair of a deleted document (key $k2) in the log mode"

# 4. Bad input.
out=$(psql_q "select txidsync.track('public.some_table', mode => 'wal')" 2>&1) &&
    fail "an unknown mode was taken"
grep -q 'unknown tracking mode "wal"' <<<"$out" || fail "unclear refusal: $out"
[ "$(mode_of some_table)" = log ] || fail "a refused switch changed the mode"
echo "4. an unknown mode is refused: $(grep -o 'unknown tracking mode.*' <<<"$out" | head -n 1)"

# 5. txidsync track --mode log tracks a table online in the log mode.
psql_q "create table public.lt2 (id int primary key, v text);
        insert into public.lt2 select g, 'v' || g from generate_series(1, 3000) g" >/dev/null
"$TXIDSYNC_BIN" track --table lt2 --mode log --chunk 1000 >"$dir/track.log" 2>&1 ||
    fail "txidsync track --mode log failed: $(tail -n 5 "$dir/track.log")"
[ "$(mode_of lt2)" = log ] || fail "txidsync track --mode log left lt2 in mode $(mode_of lt2)"
psql_q "update public.lt2 set v = 'w' where id <= 10" >/dev/null
"$TXIDSYNC_BIN" --table lt2 --index "$index-lt2" --state-index "$index-state" --replicas 0 --once \
    2>>"$log" || fail "the sync of lt2 failed"
check_consistent "$index-lt2" lt2
echo "5. txidsync track --mode log: tracked online in the log mode, equal"
