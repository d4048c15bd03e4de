#!/usr/bin/env bash
# Recovery conflicts are retries: the standby runs with
# max_standby_streaming_delay = 0 and hot_standby_feedback off, so replaying
# the primary's vacuum cancels a batch query whose snapshot still needs the
# rows it removes.  The syncer reads large batches of large rows (slow
# queries) while the primary rewrites and vacuums the table; once a batch
# query was cancelled ("conflict with recovery", SQLSTATE 40001) or the
# session ended (a lost connection, reconnected to the standby) the writes
# stop, and the syncer must catch up and leave the index equal.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
psql_q "create table wide (id int primary key, n int not null default 0, pad text not null);
    insert into wide select g, 0, repeat(md5(g::text), 64) from generate_series(1, 20000) g;
    select txidsync.track('wide');" >/dev/null
TXIDSYNC_STANDBY_OPTIONS="-c max_standby_streaming_delay=0 -c hot_standby_feedback=off" standby_up
writer=
trap '[ -n "$writer" ] && kill -TERM "$writer" 2>/dev/null; cleanup_syncers; standby_down' EXIT
[ "$(standby_q "show max_standby_streaming_delay")" = 0 ] || fail "the standby's max_standby_streaming_delay is not 0"
ix=$(test_index)
log=$TXIDSYNC_TEST_TMP/syncer.log

# The writer: every round rewrites a tenth of the rows and vacuums.
(
    for round in $(seq 1 600); do
        psql -X -q -c "update wide set n = n + 1 where id % 10 = $((round % 10))" \
            -c "vacuum wide" >/dev/null 2>&1 || true
        sleep 0.1
    done
) &
writer=$!
standby_replayed
start_syncer "$log" --pg "port=$TXIDSYNC_STANDBY_PORT" --table wide --index "$ix" \
    --state-index "$ix-state" --batch-size 5000 --batch-max-bytes 67108864 --stats-interval 5
# A conflict cancels the batch query (an error the syncer retries) or, when
# the session held its snapshot between queries, ends the session (a lost
# connection the syncer reconnects from, to the standby again).
conflict='conflict with recovery\|lost the connection to postgres'
wait_for 90 grep -q "$conflict" "$log"
conflicts=$(grep -c "$conflict" "$log")
kill -TERM "$writer" 2>/dev/null || true
wait "$writer" 2>/dev/null || true
writer=
grep "$conflict" "$log" | head -n 1 | cut -c 1-300
standby_replayed
n=$(psql_q "select sum(n) from wide")
# Caught up: every row there (the copy of rows never rewritten may still be
# under way) and the sum of every rewrite.
indexed() {
    curl -sS -XPOST "$TXIDSYNC_ES_URL/$ix/_refresh" >/dev/null
    [ "$(curl -sS "$TXIDSYNC_ES_URL/$ix/_search" -H 'Content-Type: application/json' \
        -d '{"size":0,"track_total_hits":true,"aggs":{"n":{"sum":{"field":"n"}}}}' |
        jq -r '"\(.hits.total.value) \(.aggregations.n.value | floor)"')" = "20000 $n" ]
}
wait_for 120 indexed
check_consistent "$ix" wide
grep -q "the table stopped syncing" "$log" && fail "the syncer stopped: $(grep error "$log" | head -n 1)"
echo "a batch query or session cancelled by replay $conflicts time(s), retried; the syncer caught up, equal"
