#!/usr/bin/env bash
# One table's trouble never stalls the others: in one process, a table
# whose documents the index rejects (--on-reject stop) stops alone, a
# table dropped while the daemon runs is reported and stops alone, and the third
# table keeps syncing new writes.  The exit code tells that a table failed.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
ix=$(test_index)
q -f "$TXIDSYNC_ROOT/sql/txidsync.sql"
q <<'SQL'
create table public.good (id int primary key, v int);
create table public.bad (id int primary key, v text);
create table public.doomed (id int primary key, v int);
insert into public.good select g, g from generate_series(1, 100) g;
insert into public.bad select g, g::text from generate_series(1, 100) g;
insert into public.doomed select g, g from generate_series(1, 100) g;
select txidsync.track('public.good');
select txidsync.track('public.bad');
select txidsync.track('public.doomed');
SQL
# The bad table's index maps v as a number: a text there is rejected.
es PUT "/$ix-bad" '{"settings":{"number_of_replicas":0},"mappings":{"properties":{"v":{"type":"long"}}}}' >/dev/null

conf=$TXIDSYNC_TEST_TMP/txidsync.ini
cat >"$conf" <<EOF
[txidsync]
es-url = $TXIDSYNC_ES_URL
replicas = 0
state-index = $ix-state
poll-interval = 100
[public.good]
index = $ix-good
[public.bad]
index = $ix-bad
[public.doomed]
index = $ix-doomed
EOF
log=$TXIDSYNC_TEST_TMP/sync.log
start_syncer "$log" --config "$conf"
pid=$SYNC_PID
wait_for 60 doc_present "$ix-good" 100
wait_for 60 doc_present "$ix-doomed" 100

q -c "update public.bad set v = 'not a number' where id = 7"
wait_for 30 grep -q "public.bad: the table stopped syncing" "$log"
grep -q "public.bad: the sink rejected key 7 " "$log" || fail "no reject message naming the key"
q -c "drop table public.doomed"
wait_for 30 grep -q "public.doomed: doomed is no longer tracked (dropped, or untracked)" "$log"
grep -q "public.doomed: the table stopped syncing" "$log" || fail "the dropped table did not stop"

# The third table goes on, in the same process.
q -c "insert into public.good values (101, 1); update public.good set v = -1 where id = 1"
wait_for 30 doc_present "$ix-good" 101
want=$(side_version 1 public.good)
wait_for 30 doc_is "$ix-good" 1 "$want"
kill -0 "$pid" || fail "the daemon exited although one table still syncs"
set +e
stop_syncer "$pid"
code=$?
set -e
[ "$code" = 1 ] || { tail -n 20 "$log"; fail "exit $code after a table failed, expected 1"; }
grep -q "public.good: stopped by a signal" "$log" || fail "the good table did not stop cleanly"
check_consistent "$ix-good" good
echo "sync_isolation: a rejecting table and a dropped one did not hold up the third; exit 1"
