#!/usr/bin/env bash
# The daemon backfills the demo table, then picks up an insert, an update
# and a delete within a second of commit.  --poll-interval is 60 s, so only
# the NOTIFY of the tracked table can wake it that fast.  Then the caveat
# track() warns of: a write of a notifying table cannot be prepared (2PC),
# one of a table tracked without notify can, and it is synced.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

index=$(test_index)
setup_demo
log=$TXIDSYNC_TEST_TMP/syncer.log
start_syncer "$log" --index "$index" --state-index "$index-state" --poll-interval 60000
wait_for 60 grep -q 'listening on' "$log"
check_consistent "$index"

# Seconds (with fraction) since the epoch.
now() { date +%s.%N; }
# waits for KEY's document to reach VERSION ("absent" for deleted), at most
# 1 s after t0; prints the delay.
expect_within_1s() {
    local key=$1 want=$2 t0=$3 got t
    while :; do
        got=$(doc_version "$index" "$key")
        t=$(now)
        [ "$got" = "$want" ] && break
        awk -v a="$t" -v b="$t0" 'BEGIN{exit !(a-b > 1.0)}' &&
            fail "key $key: version $got, expected $want within 1 s of commit"
        sleep 0.02
    done
    awk -v a="$t" -v b="$t0" -v k="$key" 'BEGIN{printf "key %s visible %.0f ms after commit\n", k, (a-b)*1000}'
}

sleep 2 # idle, so that no poll is due soon
new_key=$(psql_q "insert into some_table (name, data) values ('fresh', '{\"n\":1}') returning id")
t0=$(now)
expect_within_1s "$new_key" "$(side_version "$new_key")" "$t0"

psql_q "update some_table set name = 'changed' where id = 17" >/dev/null
t0=$(now)
expect_within_1s 17 "$(side_version 17)" "$t0"

psql_q "delete from some_table where id = 18" >/dev/null
t0=$(now)
expect_within_1s 18 absent "$t0"

stop_syncer "$SYNC_PID" || fail "syncer exited non-zero on SIGTERM"
grep -q 'stopped by a signal' "$log" || fail "no clean stop in the log"
check_consistent "$index"

out=$(psql -X -q -v ON_ERROR_STOP=1 -c "begin; update some_table set name = '2pc' where id = 1;
                                        prepare transaction 'txidsync_2pc_a'" 2>&1) &&
    fail "a write of a notifying table was prepared"
grep -q 'cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY' <<<"$out" ||
    fail "the 2PC refusal is not PostgreSQL's NOTIFY one: $out"
out=$(psql -X -q -v ON_ERROR_STOP=1 -c "select txidsync.track('some_table', notify => true)" 2>&1)
grep -q 'can no longer be prepared' <<<"$out" || fail "track(notify => true) does not warn of 2PC: $out"
psql_q "begin; update some_table_parts set qty = qty + 1 where id = 2; prepare transaction 'txidsync_2pc_b'"
psql_q "commit prepared 'txidsync_2pc_b'"
"$TXIDSYNC_BIN" --table some_table_parts --index "$index-parts" --state-index "$index-state" --replicas 0 --once 2>/dev/null ||
    fail "the sync of the table written by a prepared transaction failed"
check_consistent "$index-parts" some_table_parts
echo "2PC: refused on the notifying table, and track() says so; prepared and synced on the quiet one"

