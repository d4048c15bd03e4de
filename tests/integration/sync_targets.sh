#!/usr/bin/env bash
# Targets and their owners:
#  1. sales.orders and public.orders with defaults: two indices (orders,
#     sales.orders), two notify channels, both equal;
#  2. forcing both into one index is refused at start: in one config file
#     (exit 2), and across two runs (exit 1, naming the table that feeds it),
#     as is a cursor file written for the other table;
#  3. a second syncer on a table already being synced is refused, and the
#     first one goes on undisturbed;
#  4. the index deleted by hand, then emptied by hand, with the cursor kept:
#     the restart refuses and prints the command; txidsync reset starts the
#     table over and the checker finds it equal.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
psql_q "create schema sales"
for t in public.orders sales.orders; do
    psql_q "create table $t (id int primary key, what text)"
    psql_q "select txidsync.track('$t', notify => true)" >/dev/null
done
psql_q "insert into public.orders select i, 'public ' || i from generate_series(1, 300) as i"
psql_q "insert into sales.orders select i, 'sales ' || i from generate_series(1, 200) as i"


conf=$TXIDSYNC_TEST_TMP/two.ini
printf '[txidsync]\nreplicas = 0\nstate-index = %s\n\n[public.orders]\n\n[sales.orders]\n' \
    "$(test_index state)" >"$conf"
"$TXIDSYNC_BIN" --config "$conf" --once 2>"$TXIDSYNC_TEST_TMP/two.log" ||
    fail "the sync of both tables failed: $(cat "$TXIDSYNC_TEST_TMP/two.log")"
check_consistent orders public.orders
check_consistent sales.orders sales.orders
[ "$(psql_q "select count(distinct channel) from txidsync.tracked")" = 2 ] ||
    fail "the two tables share a notify channel: $(psql_q "select channel from txidsync.tracked")"
echo "1. two tables of one name: indices orders and sales.orders, both equal"

same=$TXIDSYNC_TEST_TMP/same.ini
printf '[txidsync]\nreplicas = 0\nindex = shared\n\n[public.orders]\n\n[sales.orders]\n' >"$same"
expect 2 "index shared is the target of public.orders too" "$TXIDSYNC_BIN" --config "$same" --once
one=(--replicas 0 --state-index "$(test_index state)" --once)
expect 1 "is fed by table t_sync_targets/public.orders, not t_sync_targets/sales.orders" \
    "$TXIDSYNC_BIN" "${one[@]}" --table sales.orders --index orders
"$TXIDSYNC_BIN" "${one[@]}" --table public.orders --cursor-file "$TXIDSYNC_TEST_TMP/c.json" \
    --index "$(test_index file)" 2>/dev/null || fail "the sync with a cursor file failed"
expect 1 "was written for table t_sync_targets/public.orders" \
    "$TXIDSYNC_BIN" "${one[@]}" --table sales.orders --cursor-file "$TXIDSYNC_TEST_TMP/c.json" \
    --index "$(test_index file2)"
check_consistent orders public.orders
echo "2. one target for both: refused at start, and the other table's cursor too"

log=$TXIDSYNC_TEST_TMP/first.log
start_syncer "$log" --table public.orders --state-index "$(test_index state)"
first=$SYNC_PID
wait_for 30 grep -q 'listening on' "$log"
expect 1 "another txidsync \(postgres backend pid [0-9]+\) is syncing t_sync_targets/public.orders into" \
    "$TXIDSYNC_BIN" "${one[@]}" --table public.orders
psql_q "update public.orders set what = 'changed' where id = 5"
want=$(side_version 5 public.orders)
wait_for 30 doc_is orders 5 "$want"
kill -0 "$first" || fail "the first syncer died"
code=0
stop_syncer "$first" || code=$?
[ "$code" = 0 ] || fail "the first syncer exited $code: $(cat "$log")"
echo "3. a second syncer on the same table and target is refused, the first goes on"

es DELETE /orders >/dev/null
expect 1 "orders does not exist, but the cursor .* To copy the table again from the start, run: txidsync reset --table public.orders" \
    "$TXIDSYNC_BIN" "${one[@]}" --table public.orders
expect 0 "reset: nothing to delete at .*/orders; removed the cursor" \
    "$TXIDSYNC_BIN" reset "${one[@]}" --table public.orders
"$TXIDSYNC_BIN" "${one[@]}" --table public.orders 2>/dev/null || fail "the sync after reset failed"
check_consistent orders public.orders
# Emptied: deleted and created again by hand (the bed's node has no
# _delete_by_query).
es DELETE /orders >/dev/null
es PUT /orders '{"settings":{"number_of_replicas":0}}' >/dev/null
expect 1 "orders is empty, but the cursor" "$TXIDSYNC_BIN" "${one[@]}" --table public.orders
expect 1 "run: txidsync reset --config .*two.ini --only public.orders" \
    "$TXIDSYNC_BIN" --config "$conf" --once
expect 0 "reset: deleted .*/orders; removed the cursor" \
    "$TXIDSYNC_BIN" reset --config "$conf" --only public.orders
"$TXIDSYNC_BIN" --config "$conf" --once 2>/dev/null || fail "the sync after the second reset failed"
check_consistent orders public.orders
check_consistent sales.orders sales.orders
echo "4. a target deleted or emptied by hand: refused with the command, equal after reset"
