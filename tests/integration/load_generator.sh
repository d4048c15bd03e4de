#!/usr/bin/env bash
# The load generator against the real Postgres of the bed: a 10 s run with
# 8 connections on the demo table exits 0 in bounded time, commits every
# kind of transaction at least once (update, insert, delete, reinsert,
# big, savepoint rollback and release, sleep, deliberate rollback), meets
# no unexpected error, leaves no connection behind, and the tracking side
# table still agrees with the table key by key.  SIGINT stops an endless
# run cleanly with totals; --rate paces the changed rows and stamps
# data.ts; bad flags exit 2 and a wrong table exits 1, each with one line
# naming what is wrong.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

bin=$TXIDSYNC_ROOT/${BUILD:-build}/load-generator
tmp=$TXIDSYNC_TEST_TMP
[ -x "$bin" ] || fail "$bin is not built (make build/load-generator)"

export PGOPTIONS="-c client_min_messages=warning"
q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# total NAME: the value of NAME in the totals line of $tmp/out.
total() {
    local line
    line=$(grep '^totals: ' "$tmp/out" | tail -n 1)
    [ -n "$line" ] || fail "no totals line; stdout: $(cat "$tmp/out")"
    sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"
}

# expect_one_line_error RC FLAG ARGS...: the generator exits RC at once with
# exactly one line on stderr, naming FLAG, and nothing on stdout.
expect_one_line_error() {
    local want=$1 flag=$2 rc=0
    shift 2
    timeout 30 "$bin" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    [ "$rc" = "$want" ] || fail "$*: expected exit $want, got $rc: $(cat "$tmp/err")"
    [ "$(wc -l <"$tmp/err")" = 1 ] || fail "$*: expected one line on stderr, got: $(cat "$tmp/err")"
    grep -q -- "$flag" "$tmp/err" || fail "$*: the error does not name $flag: $(cat "$tmp/err")"
    [ ! -s "$tmp/out" ] || fail "$*: unexpected stdout: $(cat "$tmp/out")"
}

q -f "$TXIDSYNC_ROOT/sql/txidsync.sql"
q -f "$TXIDSYNC_ROOT/sql/demo.sql" >/dev/null

# Bad usage and a wrong table, before any load.
expect_one_line_error 2 --connections --connections abc --duration 1
expect_one_line_error 2 --p-insert --p-insert 1.5 --duration 1
expect_one_line_error 2 --no-such-flag --no-such-flag
q -c "create table public.not_demo (id int primary key, v text)"
expect_one_line_error 1 not_demo --table not_demo --duration 1
expect_one_line_error 1 no_such_table --table no_such_table --duration 1

# 10 s with 8 connections: exit 0 within a bounded time, every kind seen.
start=$(date +%s)
rc=0
timeout 60 "$bin" --connections 8 --duration 10 >"$tmp/out" 2>"$tmp/err" || rc=$?
elapsed=$(($(date +%s) - start))
[ "$rc" = 0 ] || fail "10 s run exited $rc: $(tail -n 20 "$tmp/err")"
[ "$elapsed" -le 20 ] || fail "10 s run took $elapsed s"
grep '^totals: ' "$tmp/out"
for kind in update insert delete reinsert big savepoint_rollback savepoint_release sleep \
    rollback; do
    n=$(total "$kind")
    [ -n "$n" ] && [ "$n" -ge 1 ] || fail "no committed transaction of kind $kind: $(cat "$tmp/out")"
done
[ "$(total committed)" -ge 100 ] || fail "too few commits: $(cat "$tmp/out")"
[ "$(total rows)" -ge 12000 ] || fail "too few changed rows: $(cat "$tmp/out")"
[ "$(total errors)" = 0 ] || fail "unexpected errors: $(grep -i warn "$tmp/err")"
[ "$(total reconnects)" = 0 ] || fail "reconnected without a reason: $(cat "$tmp/out")"
stats=$(grep -c ' tx/s, ' "$tmp/err" || true)
[ "$stats" -ge 8 ] || fail "expected a stats line per second, got $stats: $(cat "$tmp/err")"
left=$(q -c "select count(*) from pg_stat_activity where application_name = 'txidsync-load-generator'")
[ "$left" = 0 ] || fail "$left connections of the load generator are still open"

# The tracking side table agrees with the table: every row has a live
# entry, every live entry a row.
bad=$(q -c "select count(*) from public.some_table t
              left join txidsync.rows_some_table s on s.key = t.id
             where s.key is null or s.deleted")
[ "$bad" = 0 ] || fail "$bad rows of some_table are missing or deleted in the side table"
bad=$(q -c "select count(*) from txidsync.rows_some_table s
             where not s.deleted and not exists (select from public.some_table t where t.id = s.key)")
[ "$bad" = 0 ] || fail "$bad live side-table entries have no row in some_table"

# Until SIGINT: stops within a bounded time, exit 0, totals printed, every
# transaction it had open rolled back (no connection left).
"$bin" --connections 8 --p-sleep 0.05 >"$tmp/out" 2>"$tmp/err" &
pid=$!
sleep 3
kill -INT "$pid"
stop_start=$(date +%s)
rc=0
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    fail "did not stop within 10 s of SIGINT"
fi
wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "exit $rc after SIGINT: $(tail -n 5 "$tmp/err")"
[ $(($(date +%s) - stop_start)) -le 5 ] || fail "took more than 5 s to stop after SIGINT"
[ "$(total committed)" -ge 1 ] || fail "no commit before SIGINT: $(cat "$tmp/out")"
left=$(q -c "select count(*) from pg_stat_activity where application_name = 'txidsync-load-generator'")
[ "$left" = 0 ] || fail "$left connections still open after SIGINT"

# Fixed rate: 500 rows/s for 4 s stays near the rate, and stamps data.ts.
before=$(q -c "select count(*) from public.some_table where data ? 'ts'")
[ "$before" = 0 ] || fail "rows carry ts before the fixed-rate run"
timeout 60 "$bin" --connections 4 --duration 4 --rate 500 >"$tmp/out" 2>"$tmp/err" ||
    fail "fixed-rate run failed: $(tail -n 5 "$tmp/err")"
rows=$(total rows)
[ "$rows" -ge 1400 ] && [ "$rows" -le 2300 ] || fail "fixed rate 500/s for 4 s changed $rows rows"
[ "$(total big)" = 0 ] && [ "$(total sleep)" = 0 ] || fail "big or sleeping transactions at a fixed rate"
stamped=$(q -c "select count(*) from public.some_table
                 where jsonb_typeof(data->'ts') = 'number'
                   and (data->>'ts')::numeric between extract(epoch from now()) - 60
                                                  and extract(epoch from now()) + 1")
[ "$stamped" -ge 500 ] || fail "only $stamped rows carry a recent data.ts"

echo "load_generator: 10 s x 8 connections committed every kind; SIGINT, --rate and bad input ok"
