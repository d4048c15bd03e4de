#!/usr/bin/env bash
# Tracking a big table online (txidsync track) while 8 writers update,
# insert and delete its rows:
#  1. the writers go on during the fill: each of their statements is
#     timed, and the longest wait is a small part of the fill (the
#     one-statement track() holds every writer for all of it); the
#     figures are printed;
#  2. every row ends with exactly one state: the side table holds a live
#     key for each row of the table and nothing else live;
#  3. a syncer (NDJSON) running during the fill and the writes ends equal
#     to the table, content too: a fill that overwrote a writer's state
#     would take a version back, which the checker sees as stale;
#  4. killed halfway, the same command resumes after its last chunk;
#     running it on a tracked table says so; bad input is refused.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

dir=$TXIDSYNC_TEST_TMP
n=${TRACK_ONLINE_ROWS:-3000000}
psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
psql_q "create table big (id bigint primary key, payload text not null, n int not null default 0)"
psql_q "insert into big select i, md5(i::text), 0 from generate_series(1, $n) as i"
psql_q "analyze big"
psql_q "create table waits (writer int, ops int, max_ms double precision)"

# writer W: random updates, inserts (ids above n) and deletes, one short
# transaction each and a pause of 2 ms between them, until the stop file appears (at most 10 minutes);
# records its statement count and its longest statement.
writer() {
    psql -X -q -v ON_ERROR_STOP=1 -c "do \$\$
    declare
        w int := $1; ops int := 0; worst double precision := 0; t0 timestamptz;
        k bigint; deadline timestamptz := clock_timestamp() + interval '10 min';
    begin
        while clock_timestamp() < deadline loop
            exit when (pg_catalog.pg_stat_file('$dir/stop', true)).size is not null;
            k := 1 + floor(random() * $n)::bigint;
            t0 := clock_timestamp();
            case ops % 4
                when 0, 1 then update big set n = n + 1 where id = k;
                when 2 then insert into big values ($n + w * 1000000 + ops, 'new', 0);
                else delete from big where id = k;
            end case;
            worst := greatest(worst, extract(epoch from clock_timestamp() - t0) * 1000);
            ops := ops + 1;
            commit;
            perform pg_sleep(0.002);
        end loop;
        insert into waits values (w, ops, worst);
    end \$\$"
}

pids=()
for w in 1 2 3 4 5 6 7 8; do
    writer "$w" &
    pids+=($!)
done
sleep 1
start=$(date +%s.%N)
"$TXIDSYNC_BIN" track --table big >"$dir/track.log" 2>&1 &
tracker=$!
# The syncer runs during the fill, from the moment the triggers are in.
wait_for 60 grep -q 'its triggers are installed' "$dir/track.log"
nd=$dir/big.ndjson
start_syncer "$dir/sync.log" --table big --sink ndjson --ndjson-file "$nd" --poll-interval 100
syncer=$SYNC_PID
wait "$tracker" || fail "txidsync track failed: $(tail -n 5 "$dir/track.log")"
end=$(date +%s.%N)
sleep 1
touch "$dir/stop"
for p in "${pids[@]}"; do wait "$p" || fail "a writer failed"; done
fill_ms=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
grep -qE "big: tracking big: the state of [0-9]+ rows is filled" "$dir/track.log" ||
    fail "the fill did not say it finished: $(cat "$dir/track.log")"
ops=$(psql_q "select sum(ops) from waits")
worst=$(psql_q "select round(max(max_ms)::numeric, 1) from waits")
[ "$(psql_q "select count(*) from waits")" = 8 ] || fail "not every writer reported"
[ "$ops" -gt 100 ] || fail "the writers made only $ops changes"
echo "fill of $n rows: $fill_ms ms, while 8 writers made $ops changes; the longest writer statement: $worst ms"
[ "$(awk -v w="$worst" -v f="$fill_ms" 'BEGIN { print (w * 10 < f) ? 1 : 0 }')" = 1 ] ||
    fail "a writer waited $worst ms, more than a tenth of the whole fill ($fill_ms ms)"
echo "1. the writers went on during the fill"

side=txidsync.rows_big
bad=$(psql_q "select count(*) from big b full join (select key from $side where not deleted) s
              on s.key = b.id where s.key is null or b.id is null")
[ "$bad" = 0 ] || fail "$bad keys differ between the table and its live tracked state"
[ "$(psql_q "select filling from txidsync.tracked where relid = 'big'::regclass")" = f ] ||
    fail "the table is still marked filling"
# Rows the writers changed after the fill reached them have versions above 1.
twice=$(psql_q "select count(*) from $side where version > 1")
[ "$twice" -gt 0 ] || fail "no row has a version above 1: the writers did not interleave"
echo "2. one state per row: the side table matches the table ($twice rows changed after their chunk)"

caught_up() { "$CHECKER_BIN" --table big --ndjson-file "$nd" >/dev/null 2>&1; }
wait_for 180 caught_up
"$CHECKER_BIN" --table big --ndjson-file "$nd" --content >"$dir/check.out" 2>&1 ||
    fail "the stream differs: $(tail -n 20 "$dir/check.out")"
tail -n 1 "$dir/check.out"
code=0
stop_syncer "$syncer" || code=$?
[ "$code" = 0 ] || fail "the syncer exited $code: $(tail -n 5 "$dir/sync.log")"
echo "3. the syncer that ran during the fill: equal, content too"

psql_q "create table half (id int primary key, v int)"
psql_q "insert into half select i, i from generate_series(1, 50000) as i"
runs=0
for _ in $(seq 1 30); do
    [ "$(psql_q "select coalesce((select not filling from txidsync.tracked where relid = 'half'::regclass), false)")" = t ] && break
    runs=$((runs + 1))
    { "$TXIDSYNC_BIN" track --table half --chunk 2000 --crash-probability 0.2 >>"$dir/half.log" 2>&1; } 2>/dev/null || true
done
[ "$runs" -ge 2 ] || fail "the fill was not killed ($runs runs)"
grep -q 'tracking half resumes after [0-9]* rows' "$dir/half.log" || fail "no run resumed: $(head -n 5 "$dir/half.log")"
[ "$(psql_q "select count(*) from txidsync.rows_half where not deleted and version = 1")" = 50000 ] ||
    fail "the resumed fill did not give each of the 50000 rows one state"
expect 0 'half is tracked already' "$TXIDSYNC_BIN" track --table half
expect 1 'relation "nosuch" does not exist' "$TXIDSYNC_BIN" track --table nosuch
psql_q "create table nokey (v int)"
expect 1 'table nokey has no primary key' "$TXIDSYNC_BIN" track --table nokey
echo "4. killed $runs times, the fill resumed each time; a tracked table and bad tables are refused clearly"
