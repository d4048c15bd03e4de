#!/usr/bin/env bash
# txidsync refresh against the real bed (and the backfill's progress):
#  1. rows changed with the triggers off (session_replication_role =
#     replica, as bulk loads do): the documents keep the old values; a
#     refresh while the syncer runs brings the new ones to every one;
#  2. a refresh of a key range while the load generator updates, deletes
#     and re-inserts the same keys and the syncer runs in a crash loop:
#     equal afterwards, and every key of the range that lived through it
#     got a newer version;
#  3. a refresh killed again and again (crash injection after steps)
#     resumes after its last step: every key got exactly one new
#     version (one committed update of its side row);
#  4. a row another transaction holds: the step gives up after its lock
#     wait and tries again; bad input fails clearly and changes nothing;
#  5. txidsync refresh --background only starts it: the running syncer
#     steps it and every key gets exactly one new version.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

setup_demo
dir=$TXIDSYNC_TEST_TMP
index=$(test_index)
sync=(--table some_table --index "$index" --state-index "$index-state")
side=txidsync.$(psql_q "select side_table from txidsync.tracked where relid = 'some_table'::regclass")
"$TXIDSYNC_BIN" "${sync[@]}" --replicas 0 --once 2>"$dir/backfill.log" || fail "the backfill failed"
grep -qE 'some_table: copying the table: about [0-9]+ rows' "$dir/backfill.log" ||
    fail "the backfill did not say what it copies: $(cat "$dir/backfill.log")"
grep -qE 'some_table: copied the table: 30000 rows in [0-9]+s \([0-9]+ rows/s\)' "$dir/backfill.log" ||
    fail "the backfill did not say what it copied: $(cat "$dir/backfill.log")"
# On a terminal, the progress is a status line rewritten in place.
script -qec "'$TXIDSYNC_BIN' --table some_table --index $index-tty --state-index $index-tty-state \
    --replicas 0 --once --batch-size 20" "$dir/tty.out" >/dev/null || fail "the backfill on a terminal failed"
tr '\r' '\n' <"$dir/tty.out" | grep -qE '^some_table: copying: [0-9]+ rows of ~[0-9]+ \([0-9]+%\), [0-9]+ rows/s' ||
    fail "no progress line on the terminal: $(tr '\r' '\n' <"$dir/tty.out" | head -n 8)"

# stale: how many documents do not have the bulk update's name.
stale() {
    es POST "/$index/_refresh" >/dev/null
    es POST "/$index/_count" '{"query":{"bool":{"must_not":{"prefix":{"name.keyword":"bulk "}}}}}' |
        jq .count
}
log=$dir/syncer.log
start_syncer "$log" "${sync[@]}" --poll-interval 100
wait_for 30 grep -q 'caught up' "$log"
psql -X -q -v ON_ERROR_STOP=1 -c "set session_replication_role = replica" \
    -c "update some_table set name = 'bulk ' || id"
psql_q "update some_table set name = 'bulk ' || id where id <= 5" # a few tracked changes
wait_for 30 sh -c "[ \"\$(curl -sS '$TXIDSYNC_ES_URL/$index/_doc/5' | jq -r ._source.name)\" = 'bulk 5' ]"
before=$(stale)
[ "$before" -gt 29000 ] || fail "$before documents have the old name before the refresh"
"$TXIDSYNC_BIN" refresh --table some_table >"$dir/refresh1.log" 2>&1 ||
    fail "the refresh failed: $(tail -n 5 "$dir/refresh1.log")"
grep -q 'refresh [0-9]* of some_table finished: 30000 rows' "$dir/refresh1.log" ||
    fail "the refresh did not say it finished 30000 rows: $(cat "$dir/refresh1.log")"
stale_is_0() { [ "$(stale)" = 0 ]; }
wait_for 60 stale_is_0
code=0
stop_syncer "$SYNC_PID" || code=$?
[ "$code" = 0 ] || fail "the syncer exited $code: $(tail -n 5 "$log")"
check_consistent "$index"
echo "1. rows changed with the triggers off: $before documents were stale; after the refresh, none"

psql_q "drop table if exists versions_before"
psql_q "create table versions_before as select key, version from $side"
"$TXIDSYNC_ROOT/tools/crash-loop" --max-seconds 120 -- "${sync[@]}" --replicas 0 --crash-probability 0.2 \
    >"$dir/loop.out" 2>"$dir/crash.log" &
loop=$!
"$LOADGEN_BIN" --connections 6 --duration 20 --seed 31 >"$dir/load.log" 2>&1 &
load=$!
sleep 2
"$TXIDSYNC_BIN" refresh --table some_table --where 't.id <= 15000' --chunk 200 >"$dir/refresh2.log" 2>&1 ||
    fail "the refresh under load failed: $(tail -n 5 "$dir/refresh2.log")"
wait "$load" || fail "the load failed: $(tail -n 5 "$dir/load.log")"
kill -TERM "$loop"
wait "$loop" || true
"$TXIDSYNC_BIN" "${sync[@]}" --replicas 0 --once 2>>"$dir/crash.log" || fail "the catch-up failed"
kills=$(grep -c 'crash injection: killing myself' "$dir/crash.log" || true)
[ "$kills" -ge 3 ] || fail "only $kills kills of the syncer during the refresh"
stale=$(psql_q "select count(*) from versions_before b join $side s using (key)
                  join some_table t on t.id = s.key where t.id <= 15000 and s.version <= b.version")
[ "$stale" = 0 ] || fail "$stale keys of the range kept their version through the refresh"
check_consistent "$index"
"$CHECKER_BIN" --index "$index" --content >"$dir/content2.out" 2>&1 ||
    fail "the content check differs after the refresh under load: $(tail -n 8 "$dir/content2.out")"
echo "2. a refresh of ids <= 15000 under load, the syncer killed $kills times: equal in content too, every key newer"

psql_q "drop table versions_before"
psql_q "create table versions_before as select key, version from $side"
n_side=$(psql_q "select count(*) from $side")
# Versions come from the table's sequence, so "one new version" is one
# committed update of the key's side row, counted by a trigger on it (a
# killed step's rows roll back with it).
psql_q "create table bumps (key text);
        create function count_bump() returns trigger language plpgsql
            as \$\$ begin insert into bumps values (new.key::text); return null; end \$\$;
        create trigger count_bump after update on $side for each row execute function count_bump()"
not_once() {
    psql_q "select count(*) from versions_before b full join $side s using (key)
              left join (select key, count(*) as n from bumps group by key) u on u.key = b.key::text
             where u.n is distinct from 1 or s.version <= b.version or s.version is null"
}
# Run again while the refresh is unfinished (a kill after its last step
# leaves it finished: running once more would start a second refresh).
# The shell's "Killed" notices go to /dev/null.
unfinished() { psql_q "select count(*) from txidsync.refreshes where finished_at is null"; }
runs=0
{ "$TXIDSYNC_BIN" refresh --table some_table --chunk 100 --crash-probability 0.05 \
    >>"$dir/refresh3.log" 2>&1; } 2>/dev/null || runs=1
while [ "$(unfinished)" != 0 ]; do
    [ "$runs" -lt 300 ] || fail "the refresh did not finish in 300 runs: $(tail -n 3 "$dir/refresh3.log")"
    { "$TXIDSYNC_BIN" refresh --table some_table --chunk 100 --crash-probability 0.05 \
        >>"$dir/refresh3.log" 2>&1; } 2>/dev/null || runs=$((runs + 1))
done
[ "$runs" -ge 2 ] || fail "the refresh was killed only $runs times"
grep -q 'resumes after [0-9]* rows' "$dir/refresh3.log" || fail "no run resumed: $(head -n 5 "$dir/refresh3.log")"
wrong=$(not_once)
[ "$wrong" = 0 ] || fail "$wrong of $n_side keys did not get exactly one new version"
"$TXIDSYNC_BIN" "${sync[@]}" --replicas 0 --once 2>/dev/null || fail "the sync after the refresh failed"
check_consistent "$index"
echo "3. a refresh killed $runs times resumed each time: each of the $n_side keys got exactly one new version"

held=$(psql_q "select min(id) from some_table")
PGAPPNAME=refresh_holder psql -X -q -c "begin" -c "update some_table set name = 'held' where id = $held" \
    -c "select pg_sleep(3)" -c "commit" >/dev/null &
holder=$!
for _ in $(seq 100); do # the holder has its row lock once it sleeps
    [ "$(psql_q "select count(*) from pg_stat_activity
                  where application_name = 'refresh_holder' and query like '%pg_sleep%'")" = 1 ] && break
    sleep 0.05
done
"$TXIDSYNC_BIN" refresh --table some_table --where "t.id <= $held + 100" >"$dir/refresh4.log" 2>&1 ||
    fail "the refresh next to a held row failed: $(tail -n 5 "$dir/refresh4.log")"
wait "$holder"
grep -q 'rows are held by other transactions; trying again' "$dir/refresh4.log" ||
    fail "no lock wait was given up: $(cat "$dir/refresh4.log")"
expect 1 'some_table_nope.* does not exist' "$TXIDSYNC_BIN" refresh --table some_table_nope
psql_q "create table untracked (id int primary key)"
expect 1 'untracked is not tracked' "$TXIDSYNC_BIN" refresh --table untracked
versions=$(psql_q "select sum(version) from $side")
expect 1 'column t.nosuch does not exist' "$TXIDSYNC_BIN" refresh --table some_table --where 't.nosuch = 1'
[ "$(psql_q "select sum(version) from $side")" = "$versions" ] || fail "a refused refresh changed versions"
echo "4. a held row: the step gave up and tried again; bad tables and conditions are refused"

psql_q "drop table if exists versions_before; truncate bumps"
psql_q "create table versions_before as select key, version from $side"
start_syncer "$dir/syncer5.log" "${sync[@]}" --poll-interval 100
"$TXIDSYNC_BIN" refresh --table some_table --background >"$dir/refresh5.log" 2>&1 ||
    fail "the background refresh did not start: $(cat "$dir/refresh5.log")"
grep -q 'left to the running syncers' "$dir/refresh5.log" || fail "$(cat "$dir/refresh5.log")"
wait_for 120 grep -q 'refresh [0-9]* of the table (requested) finished: [0-9]* rows' "$dir/syncer5.log"
wrong=$(not_once)
[ "$wrong" = 0 ] || fail "$wrong keys did not get exactly one new version from the background refresh"
code=0
stop_syncer "$SYNC_PID" || code=$?
[ "$code" = 0 ] || fail "the syncer exited $code: $(tail -n 5 "$dir/syncer5.log")"
check_consistent "$index"
echo "5. --background: the running syncer stepped the refresh itself, one new version per key"
