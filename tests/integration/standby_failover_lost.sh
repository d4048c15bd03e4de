#!/usr/bin/env bash
# A failover that loses transactions the sink has: the standby stops
# receiving WAL, the syncer reads the primary and sends its newest
# changes, the primary stops and the standby is promoted without them.
# Its transaction ids are then behind the syncer's cursor: reusing them
# would put new changes under ids the cursor counts as done, and versions
# under the ones of the lost changes.  The syncer must refuse, clearly:
#  1. a running syncer (multi-host conninfo, target_session_attrs=read-write)
#     reconnects to the promoted server, refuses and exits non-zero;
#  2. a syncer started on it refuses at start.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

setup_demo
standby_up
primary_down=
trap 'cleanup_syncers; [ -n "$primary_down" ] && "$TXIDSYNC_ROOT/tests/bed" pg-start "$TXIDSYNC_BED"; standby_down' EXIT
ix=$(test_index)
log=$TXIDSYNC_TEST_TMP/syncer.log
standby_replayed
# The standby stops streaming: what the primary does from now on is lost.
standby_q "alter system set primary_conninfo = ''" >/dev/null
standby_q "select pg_reload_conf()" >/dev/null
streaming() { [ "$(standby_q "select count(*) from pg_stat_wal_receiver")" != 0 ]; }
not_streaming() { ! streaming; }
wait_for 30 not_streaming

both="host=$PGHOST,$PGHOST port=$PGPORT,$TXIDSYNC_STANDBY_PORT target_session_attrs=read-write"
start_syncer "$log" --pg "$both" --index "$ix" --state-index "$ix-state" --stats-interval 2
syncer=$SYNC_PID
psql_q "insert into some_table (name) select 'lost-' || g from generate_series(1, 100) g" >/dev/null
last=$(psql_q "select max(id) from some_table")
wait_for 60 doc_present "$ix" "$last"
sleep 2 # a cursor save (every second) after the last batch

"$TXIDSYNC_ROOT/tests/bed" pg-stop "$TXIDSYNC_BED"
primary_down=1
"$TXIDSYNC_ROOT/tests/bed" promote "$TXIDSYNC_BED"
promoted() { [ "$(standby_q "select pg_is_in_recovery()")" = f ]; }
wait_for 30 promoted
[ "$(standby_q "select count(*) from some_table where id = $last")" = 0 ] ||
    fail "the promoted server has the rows it should have lost"
exited() { ! kill -0 "$syncer" 2>/dev/null; }
wait_for 90 exited
rc=0
wait "$syncer" || rc=$?
[ "$rc" != 0 ] || fail "the syncer went on with a server that lost transactions (exit 0)"
grep -q 'are behind the cursor' "$log" || fail "no refusal in the log: $(tail -n 5 "$log")"
grep 'are behind the cursor' "$log" | head -n 1 | cut -c 1-400
echo "1. the running syncer reconnected to the promoted server, refused (exit $rc)"

rc=0
"$TXIDSYNC_BIN" --pg "port=$TXIDSYNC_STANDBY_PORT" --index "$ix" --state-index "$ix-state" \
    --replicas 0 --once >"$TXIDSYNC_TEST_TMP/start.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "a syncer started on the promoted server exited $rc, not 1: $(tail -n 5 "$TXIDSYNC_TEST_TMP/start.log")"
grep -q 'promoted from a standby that had not replayed everything' "$TXIDSYNC_TEST_TMP/start.log" ||
    fail "the start-up refusal does not say what happened: $(tail -n 3 "$TXIDSYNC_TEST_TMP/start.log")"
echo "2. a syncer started on it refused at start (exit 1)"
