#!/usr/bin/env bash
# Under a steady stream of writes, OpenSearch is stopped for 30 s and
# started again, then Postgres is restarted under the syncer: the syncer
# recovers by itself each time and nothing is lost.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

index=$(test_index)
setup_demo
log=$TXIDSYNC_TEST_TMP/syncer.log
start_syncer "$log" --index "$index" --state-index "$index-state" --stats-interval 2
syncer=$SYNC_PID
wait_for 60 grep -q 'listening on' "$log"

# writer: one small transaction every 50 ms for at most 90 s, until told to stop
stop_file=$TXIDSYNC_TEST_TMP/stop-writer
writer() {
    local end=$((SECONDS + 90)) i=0
    while [ ! -e "$stop_file" ] && [ $SECONDS -lt $end ]; do
        i=$((i + 1))
        psql -X -q -c "update some_table set name = 'w$i' where id = $((1 + i % 500));
                       insert into some_table (name, data) values ('new$i', '{}');" \
            >/dev/null 2>&1 || true
        sleep 0.05
    done
}
writer &
writer_pid=$!
trap 'touch "$stop_file"; kill $writer_pid 2>/dev/null || true; cleanup_syncers' EXIT

sleep 2
tests_bed() { "$TXIDSYNC_ROOT/tests/bed" "$@" "$TXIDSYNC_BED"; }
echo "stopping opensearch for 30 s"
tests_bed es-stop
sleep 30
kill -0 "$syncer" || fail "the syncer died while the sink was down"
tests_bed es-start
echo "opensearch is back"
sleep 5

echo "restarting postgres under the syncer"
tests_bed pg-stop
sleep 3
tests_bed pg-start
sleep 3
touch "$stop_file"
wait "$writer_pid" || true
kill -0 "$syncer" || fail "the syncer died while postgres restarted"

# Let it catch up: the last written row must arrive.
last=$(psql_q "select max(id) from some_table")
wait_for 60 doc_present "$index" "$last"
stop_syncer "$syncer" || fail "syncer exited non-zero on SIGTERM"
grep -q 'sink unavailable, retrying' "$log" || fail "no retry was logged during the sink outage"
grep -q 'reconnected to postgres' "$log" || fail "no reconnect was logged after the postgres restart"
# Lag in seconds is the age of the oldest commit the sink has not taken:
# it grows through the 30 s outage.
most=$(grep -oE 'transactions [0-9.]+ s' "$log" | awk '{ if ($2 > m) m = $2 } END { print m + 0 }')
awk -v m="$most" 'BEGIN { exit !(m >= 20) }' || fail "lag in seconds reached only $most s in a 30 s sink outage"
echo "lag in seconds during the outage: up to $most s"
# On a difference, what the syncer said besides its retries and stats (a
# batch held behind its backoff once left one transaction out).
check_consistent "$index" some_table "$log"
