#!/usr/bin/env bash
# Syncing from a hot standby, exactly, and through a failover:
#  1. the load generator (out-of-order commits, transactions sleeping for
#     seconds, big transactions) writes the primary for 30 s while the
#     syncer reads the standby (tests/bed standby-up) in a crash loop;
#     after the standby replayed everything, the index equals the primary;
#  2. the syncer runs on the standby while the primary is written, the
#     standby is promoted (tests/bed promote) and written in turn: the
#     syncer notices, goes on, and the index equals the promoted server;
#     before the promotion its session on the standby is ended: it
#     reconnects to the standby.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

setup_demo
standby_up
loop=
trap '[ -n "$loop" ] && kill -TERM "$loop" 2>/dev/null; cleanup_syncers; standby_down' EXIT
ix=$(test_index)
on_standby=(--pg "port=$TXIDSYNC_STANDBY_PORT" --index "$ix" --state-index "$ix-state" --replicas 0)
log=$TXIDSYNC_TEST_TMP/syncer.log

"$TXIDSYNC_ROOT/tools/crash-loop" --max-seconds 120 -- "${on_standby[@]}" --crash-probability 0.05 \
    --stats-interval 5 >"$TXIDSYNC_TEST_TMP/crash-loop.log" 2>"$log" &
loop=$!
"$LOADGEN_BIN" --connections 8 --duration 30 --seed 16 >"$TXIDSYNC_TEST_TMP/load1.log" 2>&1 ||
    fail "the load generator failed: $(tail -n 5 "$TXIDSYNC_TEST_TMP/load1.log")"
kill -TERM "$loop"
wait "$loop" || true
loop=
kills=$(sed -n 's/.*kills=\([0-9]*\).*/\1/p' "$TXIDSYNC_TEST_TMP/crash-loop.log")
grep -q 'reading a hot standby' "$log" || fail "the syncer did not say it reads a standby"
standby_replayed
"$TXIDSYNC_BIN" "${on_standby[@]}" --once 2>>"$log" || fail "the catch-up on the standby failed: $(tail -n 5 "$log")"
check_consistent "$ix"
echo "1. 30 s of load on the primary, the syncer on the standby killed $kills times: equal to the primary"

start_syncer "$TXIDSYNC_TEST_TMP/failover.log" "${on_standby[@]}" --stats-interval 5
syncer=$SYNC_PID
"$LOADGEN_BIN" --connections 4 --duration 8 --seed 17 >"$TXIDSYNC_TEST_TMP/load2.log" 2>&1 ||
    fail "the load generator failed on the primary"
standby_replayed
# Its session ended (as a recovery conflict may end it): it reconnects to
# the standby and reads on.
standby_q "select count(pg_terminate_backend(pid)) from pg_stat_activity
    where application_name = 'txidsync' and pid <> pg_backend_pid()" >/dev/null
wait_for 30 grep -q 'reconnected to postgres' "$TXIDSYNC_TEST_TMP/failover.log"
"$TXIDSYNC_ROOT/tests/bed" promote "$TXIDSYNC_BED"
promoted() { [ "$(standby_q "select pg_is_in_recovery()")" = f ]; }
wait_for 30 promoted
PGPORT=$TXIDSYNC_STANDBY_PORT "$LOADGEN_BIN" --connections 4 --duration 8 --seed 18 \
    >"$TXIDSYNC_TEST_TMP/load3.log" 2>&1 || fail "the load generator failed on the promoted server"
wait_for 60 grep -q 'the standby was promoted' "$TXIDSYNC_TEST_TMP/failover.log"
last=$(standby_q "select max(id) from some_table")
wait_for 60 doc_present "$ix" "$last"
stop_syncer "$syncer" || fail "the syncer did not stop cleanly after the failover"
PGPORT=$TXIDSYNC_STANDBY_PORT "$TXIDSYNC_BIN" "${on_standby[@]}" --once 2>>"$TXIDSYNC_TEST_TMP/failover.log" ||
    fail "the catch-up on the promoted server failed"
out=$(PGPORT=$TXIDSYNC_STANDBY_PORT "$CHECKER_BIN" --index "$ix" --table some_table 2>&1) ||
    fail "the index differs from the promoted server: $(tail -n 20 <<<"$out")"
tail -n 1 <<<"$out"
echo "2. reconnected to the standby, then promoted under the running syncer: it noticed, went on, and the index equals the promoted server"
