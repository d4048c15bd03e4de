#!/usr/bin/env bash
# The syncer as a service (--metrics-listen):
#  1. /metrics scraped every second during a sync under writes: every
#     scrape parses with prometheus_client's parser, counters only grow,
#     changes applied grow;
#  2. caught up: lag in transactions and seconds goes to 0, /readyz 200;
#  3. the sink stopped: retries grow, lag in seconds grows, /readyz 503
#     naming the sink; it clears after the sink returns;
#  4. /healthz 200 with the loop turning, other paths 404; an address in
#     use is a clear start-up error;
#  5. --log-format json: every line is a JSON object with time, level and
#     message, a table's lines name it, the stats line carries its figures.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

setup_demo
ix=$(test_index)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
log=$TXIDSYNC_TEST_TMP/syncer.log
start_syncer "$log" --index "$ix" --state-index "$ix-state" --metrics-listen "127.0.0.1:$port" \
    --stats-interval 2
syncer=$SYNC_PID
stop_file=$TXIDSYNC_TEST_TMP/stop-writer
writer() {
    local end=$((SECONDS + 120)) i=0
    while [ ! -e "$stop_file" ] && [ $SECONDS -lt $end ]; do
        i=$((i + 1))
        psql -X -q -c "update some_table set name = 'm$i' where id = $((1 + i % 700));
                       insert into some_table (name, data) values ('n$i', '{}');
                       delete from some_table where id = (select min(id) from some_table where id > 20000)" \
            >/dev/null 2>&1 || true
        sleep 0.02
    done
}
writer &
writer_pid=$!
trap 'touch "$stop_file"; kill $writer_pid 2>/dev/null || true; cleanup_syncers' EXIT
metric() { # metric NAME: its value for some_table in the last scrape
    awk -v n="$1" '$1 == n "{table=\"some_table\"}" { print $2 }' "$TXIDSYNC_TEST_TMP/scrape"
}
scrape() { curl -sS -f "$url/metrics" -o "$TXIDSYNC_TEST_TMP/scrape"; }

wait_for 60 curl -sS -f -o /dev/null "$url/healthz"
scrapes=()
for i in $(seq 1 15); do
    f=$TXIDSYNC_TEST_TMP/scrape.$i
    curl -sS -f "$url/metrics" -o "$f" || fail "scrape $i failed"
    scrapes+=("$f")
    sleep 1
done
/usr/bin/python3 "$TXIDSYNC_ROOT/tests/support/prom_check.py" "${scrapes[@]}" || fail "the scrapes do not hold"
first=$(awk '$1 == "txidsync_changes_applied_total{table=\"some_table\"}" { print $2 }' "${scrapes[1]}")
last=$(awk '$1 == "txidsync_changes_applied_total{table=\"some_table\"}" { print $2 }' "${scrapes[14]}")
[ "${last%.*}" -gt "${first%.*}" ] || fail "changes applied did not grow under writes ($first -> $last)"
echo "1. 15 scrapes under writes: parsed, counters only grew, changes applied $first -> $last"

touch "$stop_file"
wait "$writer_pid" || true
caught_up() { scrape && [ "$(metric txidsync_lag_seconds)" = 0 ] && [ "$(metric txidsync_lag_transactions)" = 0 ]; }
wait_for 60 caught_up
curl -sS -f "$url/readyz" | jq -e '.ready == true and .tables[0].table == "some_table"' >/dev/null ||
    fail "/readyz is not ready when caught up: $(curl -sS "$url/readyz")"
echo "2. caught up: lag 0 transactions, 0 s; /readyz: $(curl -sS "$url/readyz")"

retries_before=$(metric txidsync_retries_total)
"$TXIDSYNC_ROOT/tests/bed" es-stop "$TXIDSYNC_BED"
psql_q "update some_table set name = 'during the outage' where id <= 50"
not_ready() {
    [ "$(curl -sS -o "$TXIDSYNC_TEST_TMP/ready" -w '%{http_code}' "$url/readyz")" = 503 ] &&
        jq -e '.tables[0].why | test("sink")' "$TXIDSYNC_TEST_TMP/ready" >/dev/null
}
wait_for 60 not_ready
sleep 6
scrape
lag=$(metric txidsync_lag_seconds)
retries=$(metric txidsync_retries_total)
awk -v l="$lag" 'BEGIN { exit !(l >= 5) }' || fail "lag in seconds is $lag s after the sink was down for 6 s"
[ "${retries%.*}" -gt "${retries_before%.*}" ] || fail "retries did not grow while the sink was down"
[ "$(metric txidsync_sink_up)" = 0 ] || fail "txidsync_sink_up is not 0 while the sink is down"
echo "3. the sink down: /readyz 503: $(cat "$TXIDSYNC_TEST_TMP/ready"); lag $lag s, retries $retries_before -> $retries"
"$TXIDSYNC_ROOT/tests/bed" es-start "$TXIDSYNC_BED"
ready() { curl -sS -f -o /dev/null "$url/readyz" && caught_up; }
wait_for 90 ready
echo "   the sink back: /readyz 200, lag 0 again"

curl -sS -f "$url/healthz" | jq -e '.status == "ok"' >/dev/null || fail "/healthz is not ok"
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$url/nothing")" = 404 ] || fail "an unknown path is not 404"
expect 2 "metrics-listen 127.0.0.1:$port: cannot listen" "$TXIDSYNC_BIN" --index "$ix-2" \
    --state-index "$ix-2-state" --metrics-listen "127.0.0.1:$port" --once
expect 2 "metrics-listen: expected HOST:PORT" "$TXIDSYNC_BIN" --index "$ix-2" --metrics-listen nonsense --once
echo "4. /healthz ok, unknown paths 404, a port in use and a bad address refused"
stop_syncer "$syncer" || fail "the syncer did not stop cleanly"
check_consistent "$ix"

json=$TXIDSYNC_TEST_TMP/json.log
"$TXIDSYNC_BIN" --index "$ix-json" --state-index "$ix-json-state" --replicas 0 --once \
    --log-format json 2>"$json" || fail "the sync with JSON logs failed: $(tail -n 3 "$json")"
lines=$(wc -l <"$json")
objects=$(jq -c 'select(type == "object" and (.time | test("^20[0-9-]+T[0-9:.]+Z$")) and .level and .message)' "$json" | wc -l)
[ "$lines" -gt 3 ] && [ "$objects" = "$lines" ] || fail "$objects of $lines log lines are JSON objects: $(head -n 3 "$json")"
jq -se 'map(select(.table == "some_table" and (.message | startswith("stats:")))) | last | .fields.rows >= 30000 and .fields.lag_seconds == 0' "$json" >/dev/null ||
    fail "no stats line with its figures as fields: $(grep stats "$json")"
echo "5. --log-format json: $lines lines, each a JSON object; the stats line: $(jq -c 'select(.fields) | .fields' "$json" | tail -n 1)"
