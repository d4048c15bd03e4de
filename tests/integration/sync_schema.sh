#!/usr/bin/env bash
# Schema changes, handled by the daemon itself while a writer updates the
# table (no manual step):
#  1. ADD COLUMN with a default (no row trigger fires): every document
#     gets the column, through a background refresh the daemon starts and
#     logs, and its stats line counts;
#  2. ALTER COLUMN TYPE ... USING: every document has the new values;
#  3. DROP COLUMN: no document has it any more;
#  4. a change made while no syncer runs is found when one starts, and a
#     --once run waits for its refresh;
#  5. the other table of the process goes on when one is renamed, and then
#     when one is dropped, each reported by name;
# after each, the checker is equal, in content too.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
n=3000
psql_q "create table items (id int primary key, name text, qty int, n int not null default 0)"
psql_q "insert into items select i, 'item ' || i, i % 50, 0 from generate_series(1, $n) as i"
psql_q "select txidsync.track('items')" >/dev/null
psql_q "create table other (id int primary key, v int)"
psql_q "insert into other select i, i from generate_series(1, 100) as i"
psql_q "select txidsync.track('other')" >/dev/null

ix=$(test_index items)
ix_other=$(test_index other)
dir=$TXIDSYNC_TEST_TMP
cat >"$dir/sync.ini" <<INI
[txidsync]
replicas = 0
poll-interval = 200
stats-interval = 1
[items]
index = $ix
state-index = $ix-state
[other]
index = $ix_other
state-index = $ix_other-state
INI

# A writer of its own: one short transaction every 10 ms, for at most 60 s
# or until the stop file appears.
writer() {
    psql -X -q -c "do \$\$ begin
        for i in 1..6000 loop
            exit when (pg_catalog.pg_stat_file('$dir/stop-writer', true)).size is not null;
            update items set n = n + 1 where id = 1 + (i * 7919) % $n;
            commit;
            perform pg_sleep(0.01);
        end loop; end \$\$" >/dev/null 2>&1 || true
}

# docs_where JQ: how many documents of items satisfy the jq condition.
docs_where() {
    es POST "/$ix/_refresh" >/dev/null
    es GET "/$ix/_search?size=10000" | jq "[.hits.hits[]._source | select($1)] | length"
}
# shape_is JQ: every document satisfies JQ (and all are there).
shape_is() {
    [ "$(docs_where "$1")" = "$(psql_q "select count(*) from items")" ]
}
# refreshes_finished: how many background refreshes the log says finished.
refreshes_finished() {
    grep -c 'refresh [0-9]* of the table (columns changed) finished' "$dir/sync.log" || true
}
quiet_check() {
    touch "$dir/stop-writer"
    wait "$writer_pid" 2>/dev/null || true
    wait_for 60 "$CHECKER_BIN" --index "$ix" --table items
    check_consistent "$ix" items
    "$CHECKER_BIN" --index "$ix" --table items --content >"$dir/content.out" 2>&1 ||
        fail "the content check differs: $(tail -n 8 "$dir/content.out")"
    rm -f "$dir/stop-writer"
}

start_syncer "$dir/sync.log" --config "$dir/sync.ini"
daemon=$SYNC_PID
wait_for 60 "$CHECKER_BIN" --index "$ix" --table items
writer &
writer_pid=$!

psql_q "alter table items add column color text not null default 'blue'"
wait_for 60 shape_is '.color == "blue"'
wait_for 30 test "$(refreshes_finished)" -ge 1
grep -q "items: the table's columns changed" "$dir/sync.log" || fail "the change was not logged"
grep -q 'items: refresh [0-9]* of the table (columns changed) started in the background, about' \
    "$dir/sync.log" || fail "the refresh was not logged: $(grep refresh "$dir/sync.log" | head)"
wait_for 10 grep -qE 'items: stats: .* [1-9][0-9]* refreshes \([0-9]+ rows\)' "$dir/sync.log"
quiet_check
echo "1. ADD COLUMN ... DEFAULT: every document has color = blue, by a refresh the daemon started"

writer &
writer_pid=$!
psql_q "alter table items alter column qty type numeric(8,1) using qty + 0.5"
wait_for 60 shape_is '(.qty | tostring | endswith(".5"))'
wait_for 30 test "$(refreshes_finished)" -ge 2
quiet_check
echo "2. ALTER COLUMN TYPE: every document has the new qty"

writer &
writer_pid=$!
psql_q "alter table items drop column name"
wait_for 60 shape_is '(has("name") | not)'
wait_for 30 test "$(refreshes_finished)" -ge 3
quiet_check
echo "3. DROP COLUMN: no document has name"

stop_syncer "$daemon" || fail "the daemon did not stop cleanly: $(tail -n 5 "$dir/sync.log")"
psql_q "alter table items add column size int not null default 7"
"$TXIDSYNC_BIN" --config "$dir/sync.ini" --only items --once >"$dir/once.log" 2>&1 ||
    fail "the --once run failed: $(tail -n 5 "$dir/once.log")"
grep -q 'refresh [0-9]* of the table (columns changed) finished' "$dir/once.log" ||
    fail "the --once run did not refresh: $(cat "$dir/once.log")"
shape_is '.size == 7' || fail "$(docs_where '.size != 7') documents lack size = 7 after --once"
check_consistent "$ix" items
"$CHECKER_BIN" --index "$ix" --table items --content >"$dir/content.out" 2>&1 ||
    fail "the content check differs: $(tail -n 8 "$dir/content.out")"
echo "4. a change while no syncer ran: found at start, refreshed before --once ended"

start_syncer "$dir/sync2.log" --config "$dir/sync.ini"
daemon=$SYNC_PID
wait_for 60 "$CHECKER_BIN" --index "$ix_other" --table other
psql_q "alter table items rename to items_renamed"
psql_q "update items_renamed set n = n + 1 where id = 5"
wait_for 30 grep -q 'items: items was renamed to items_renamed' "$dir/sync2.log"
psql_q "update other set v = -1 where id = 3"
wait_for 30 "$CHECKER_BIN" --index "$ix_other" --table other
psql_q "drop table other"
psql_q "alter table items_renamed rename to items"
wait_for 30 grep -q 'other: other is no longer tracked' "$dir/sync2.log"
set +e
wait "$daemon"
code=$?
set -e
[ "$code" = 1 ] || fail "the daemon exited $code with both tables stopped, expected 1"
echo "5. a renamed and a dropped table: each reported by name, the other went on meanwhile"
