#!/usr/bin/env bash
# The daemon backfills the demo table, then picks up an insert, an update
# and a delete within a second of commit.  --poll-interval is 60 s, so only
# the NOTIFY of the tracked table can wake it that fast.
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
expect_within_1s "$new_key" 1 "$t0"

psql_q "update some_table set name = 'changed' where id = 17" >/dev/null
t0=$(now)
expect_within_1s 17 "$(side_version 17)" "$t0"

psql_q "delete from some_table where id = 18" >/dev/null
t0=$(now)
expect_within_1s 18 absent "$t0"

stop_syncer "$SYNC_PID" || fail "syncer exited non-zero on SIGTERM"
grep -q 'stopped by a signal' "$log" || fail "no clean stop in the log"
check_consistent "$index"
