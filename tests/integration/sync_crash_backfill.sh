#!/usr/bin/env bash
# Ten kill -9 at random moments of a 100,000-row backfill, each followed by
# a restart from the persisted cursor: the index ends equal to Postgres.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

index=$(test_index)
setup_demo
psql_q "insert into some_table (name, data)
        select 'bulk ' || g, jsonb_build_object('g', g, 'tag', md5(g::text))
        from generate_series(1, 70000) g" >/dev/null
[ "$(psql_q 'select count(*) from some_table')" = 100000 ] || fail "expected 100000 rows"

log=$TXIDSYNC_TEST_TMP/syncer.log
RANDOM=42
kills=0
for i in $(seq 1 10); do
    start_syncer "$log" --index "$index" --state-index "$index-state" --batch-size 500
    # 0.3 to 1.5 s: inside the backfill, at a different point each time
    sleep "$(awk -v r=$RANDOM 'BEGIN{printf "%.2f", 0.3 + (r % 120) / 100}')"
    if kill -KILL "$SYNC_PID" 2>/dev/null; then
        kills=$((kills + 1))
    fi
    wait "$SYNC_PID" 2>/dev/null || true
    echo "kill $i: $(curl -s "$TXIDSYNC_ES_URL/$index/_count" | jq .count) documents so far"
done
[ "$kills" -ge 10 ] || fail "only $kills of 10 kills hit a running syncer"
grep -c 'resuming at' "$log" | grep -qv '^0$' || fail "no restart resumed from a stored cursor"
"$TXIDSYNC_BIN" --replicas 0 --index "$index" --state-index "$index-state" --batch-size 500 --once \
    >>"$log" 2>&1 || fail "the final --once run failed"
check_consistent "$index"
