#!/usr/bin/env bash
# Pruning (design.md, "Pruning") against the real bed, for a side-mode
# table (the demo's) and a log-mode one with a composite key:
#  1. no consumer registered: txidsync.prune removes nothing;
#  2. a syncer running with --prune-interval 1 --prune-margin 0 registers
#     each target and prunes every tombstone and change-log entry once its
#     cursor has passed them; the checker finds both indices equal;
#  3. keys re-inserted after their tombstones were pruned reach the index
#     (their new versions are above the deletes the index keeps);
#  4. a registered consumer behind the others holds pruning back;
#  5. a consumer not seen for --consumer-timeout is dropped with a
#     warning; when its syncer comes back it says deletes were pruned
#     before it read them, and consistency-check --repair removes the
#     documents left behind.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

setup_demo
dir=$TXIDSYNC_TEST_TMP
index=$(test_index)
psql_q "create table public.pl (a int, b text, v int, primary key (a, b));
        insert into public.pl select g, 'k' || g, 0 from generate_series(1, 3000) g;
        select txidsync.track('public.pl', mode => 'log')" >/dev/null
dead() { psql_q "select count(*) from txidsync.rows_some_table where deleted"; }
dead_pl() { psql_q "select count(*) from txidsync.rows_pl where deleted"; }
logged() { psql_q "select count(*) from txidsync.log_pl"; }
no_dead() { [ "$(dead)" = 0 ]; }
b_registered() { [ "$(psql_q "select count(*) from txidsync.consumers where consumer like '%$index-b'")" = 1 ]; }

# 1. Nothing is pruned without a consumer.
psql_q "delete from some_table where id <= 100; delete from pl where a <= 100"
[ "$(psql_q "select tombstones, log_entries, horizon is null from txidsync.prune('some_table', '0 s')")" = "0|0|t" ] ||
    fail "prune removed something with no consumer registered"
[ "$(psql_q "select count(*) from txidsync.prune('pl', '0 s') where horizon is null")" = 1 ] ||
    fail "prune found a horizon with no consumer"
[ "$(dead)" = 100 ] || fail "tombstones of some_table: $(dead), want 100"

cat >"$dir/prune.ini" <<EOF
[txidsync]
replicas = 0
poll-interval = 100
state-index = $index-state
prune-interval = 1
prune-margin = 0
consumer-timeout = 60
[some_table]
index = $index
[pl]
index = $index-pl
EOF
log=$dir/syncer.log
start_syncer "$log" --config "$dir/prune.ini"
syncer=$SYNC_PID
wait_for 60 grep -q 'pl: copied the table' "$log"
wait_for 60 grep -q 'some_table: caught up' "$log"

# 2. Deletes and rewrites while the syncer runs: all of it pruned once sent.
psql_q "delete from some_table where id between 101 and 5000;
        update some_table set data = data || '{\"p\": 1}' where id between 5001 and 6000;
        update pl set v = v + 1 where a <= 2000;
        update pl set v = v + 1 where a <= 1000;
        update pl set a = a + 10000 where a between 2001 and 2100;
        delete from pl where a between 2500 and 2999"
gone() { [ "$(dead)" = 0 ] && [ "$(dead_pl)" = 0 ] && [ "$(logged)" = 0 ]; }
wait_for 60 gone
wait_for 30 grep -q 'some_table: pruned' "$log"
wait_for 30 grep -q 'pl: pruned' "$log"
grep 'pruned' "$log" | sed 's/^/   /' | head -4
[ "$(psql_q "select count(*) from txidsync.consumers")" = 2 ] ||
    fail "not one consumer per target: $(psql_q 'select relid, consumer from txidsync.consumers')"
psql_q "select relid || ' ' || consumer from txidsync.consumers order by 1" | sed 's/^/   consumer: /'
check_consistent "$index" some_table
check_consistent "$index-pl" pl

# 3. Keys whose tombstones were pruned come back, with versions above the
# deletes the index remembers (index.gc_deletes, 60 s): a lower one would
# be refused as a conflict and leave the document missing.
psql_q "insert into some_table (id, data) overriding system value select g, '{\"back\": true}' from generate_series(1, 300) g;
        insert into pl select g, 'k' || g, 7 from generate_series(2500, 2599) g"
equal() { "$CHECKER_BIN" --index "$1" --table "$2"; }
wait_for 30 equal "$index" some_table
wait_for 30 equal "$index-pl" pl
doc_present "$index" 300 || fail "key 300 did not come back"
check_consistent "$index-pl" pl

# 4. A consumer behind the others holds pruning back.
low=$(psql_q "select xmin from txidsync.snapshot()")
psql_q "select txidsync.consumer_seen('some_table', 'by-hand', $low)" >/dev/null
psql_q "delete from some_table where id between 6001 and 6500"
sleep 4
[ "$(dead)" = 500 ] || fail "a consumer behind did not hold pruning back: $(dead) tombstones left of 500"
psql_q "delete from txidsync.consumers where consumer = 'by-hand'"
wait_for 30 no_dead

# 5. A target whose syncer stopped is dropped after --consumer-timeout;
# when it comes back, it says what it missed, and repair fixes it.
cat >"$dir/b.ini" <<EOF
[txidsync]
replicas = 0
poll-interval = 100
state-index = $index-state
prune-interval = 0
[some_table]
index = $index-b
EOF
blog=$dir/b.log
start_syncer "$blog" --config "$dir/b.ini"
b=$SYNC_PID
wait_for 60 grep -q 'some_table: caught up' "$blog"
wait_for 30 b_registered
stop_syncer "$b" >/dev/null || true
psql_q "update txidsync.consumers set seen = now() - interval '2 days' where consumer like '%$index-b'"
psql_q "delete from some_table where id between 7001 and 7200"
wait_for 30 grep -q "dropped as consumers of the table.*$index-b" "$log"
wait_for 30 no_dead
start_syncer "$blog" --config "$dir/b.ini"
b=$SYNC_PID
wait_for 60 grep -q 'were pruned before this target read them' "$blog"
grep 'were pruned before' "$blog" | sed 's/^/   /'
run_checker --index "$index-b" --table some_table
expect_rc 1 "the target that missed pruned deletes"
expect_line '^extra +key 7001:'
run_checker --index "$index-b" --table some_table --repair
cat "$TXIDSYNC_TEST_TMP/out" | tail -n 2 | sed 's/^/   /'
check_consistent "$index-b" some_table
stop_syncer "$b" >/dev/null || true

stop_syncer "$syncer" || fail "the syncer did not stop cleanly"
echo "sync_prune: tombstones and change-log entries pruned once every consumer passed them"
