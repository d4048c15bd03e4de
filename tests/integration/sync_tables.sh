#!/usr/bin/env bash
# One process syncs a table set from a config file: a table in a
# non-public schema, one with a composite key of mixed types, a
# partitioned one, and one whose keys are empty, 600 bytes long, or full
# of / ? # % \ " ` and unicode.  Writes go to all of them while the daemon
# runs; each ends equal under the checker.  Config mistakes are errors
# naming file and line, and a table set that collides is refused.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
ix=$(test_index)
q -f "$TXIDSYNC_ROOT/sql/txidsync.sql"
q <<'SQL'
create schema shop;
create table shop.orders (id bigint primary key, customer text, total numeric);
insert into shop.orders select g, 'c' || g % 17, g * 1.5 from generate_series(1, 3000) g;
create table public.line_items (order_id bigint, sku text, day date, qty int,
                                primary key (order_id, sku, day));
insert into public.line_items
select g / 3, 'sku,' || (g % 3) || '%', date '2026-01-01' + g % 5, g
  from generate_series(1, 3000) g on conflict do nothing;
create table public.events (id bigint, at date, what text, primary key (id, at))
  partition by range (at);
create table public.events_2025 partition of public.events
  for values from ('2025-01-01') to ('2026-01-01');
create table public.events_2026 partition of public.events
  for values from ('2026-01-01') to ('2027-01-01');
insert into public.events select g, date '2025-06-01' + g % 400, 'e' || g
  from generate_series(1, 2000) g;
create table public.odd_keys (k text primary key, v int);
insert into public.odd_keys values
  ('', 1), (repeat('x', 600), 2), ('/ ? # % \ " `', 3), (E'tab\there', 4),
  ('日本語 ключ ✓', 5), ('~sha256:not-a-hash', 6), ('a,b', 7), (repeat('é', 300), 8);
select txidsync.track('shop.orders');
select txidsync.track('public.line_items', notify => true);
select txidsync.track('public.events');
select txidsync.track('public.odd_keys');
SQL

conf=$TXIDSYNC_TEST_TMP/txidsync.ini
cat >"$conf" <<EOF
; the bed's servers
[txidsync]
es-url = $TXIDSYNC_ES_URL
replicas = 0
state-index = $ix-state
stats_interval = 2
poll-interval = 200

[shop.orders]
index = $ix-orders

[public.line_items]
index = $ix-items
batch-size = 100

[events]
table = public.events
index = $ix-events

[public.odd_keys]
index = $ix-odd
EOF

log=$TXIDSYNC_TEST_TMP/sync.log
start_syncer "$log" --config "$conf"
pid=$SYNC_PID
for t in orders items events odd; do
    wait_for 60 curl -sf "$TXIDSYNC_ES_URL/$ix-$t"
done

# Writes to every table while the daemon runs.
for round in $(seq 1 20); do
    q <<SQL
update shop.orders set total = total + 1 where id % 20 = $round % 20;
delete from shop.orders where id = $round * 7;
insert into shop.orders values (10000 + $round, 'new', 1) on conflict (id) do update set total = 0;
update public.line_items set qty = qty + 1 where order_id % 10 = $round % 10;
delete from public.line_items where order_id = $round * 3;
update public.line_items set sku = sku || '/' where order_id = $round * 5;
update public.events set at = at + 200 where id = $round * 11;
delete from public.events where id = $round * 13;
update public.odd_keys set v = v + 1;
SQL
    sleep 0.1
done
q -c "delete from public.odd_keys where k = 'a,b'"
q -c "insert into public.odd_keys values ('a,b', 70), (repeat('y', 513), 9)"

# Notifications wake the notifying table once it caught up.
wait_for 60 grep -q "line_items: caught up at xid [0-9]*; listening on txidsync_line_items" "$log"
q -c "update public.line_items set qty = -1 where order_id = 1"
items_negative() {
    [ "$(es POST "/$ix-items/_count" '{"query":{"term":{"qty":-1}}}' | jq .count)" -ge 1 ]
}
wait_for 30 items_negative
stop_syncer "$pid" || { tail -n 30 "$log"; fail "the daemon did not exit 0 on SIGTERM"; }
"$TXIDSYNC_BIN" --config "$conf" --once >>"$log" 2>&1 || { tail -n 30 "$log"; fail "--once failed"; }
for t in orders:shop.orders items:public.line_items events:public.events odd:public.odd_keys; do
    check_consistent "$ix-${t%%:*}" "${t#*:}"
done
# The long and the empty key got hashed ids; the others are their own id.
[ "$(es GET "/$ix-odd/_count?q=_id:%22a,b%22" | jq .count)" = 1 ] || fail "a,b is not its own id"
[ "$(es GET "/$ix-odd/_search?size=20" | jq '[.hits.hits[]._id | select(startswith("~sha256:"))] | length')" = 5 ] ||
    fail "expected 5 hashed ids (empty, 600 x, 300 é, 513 y, the fake hash)"
[ "$(es GET "/$ix-items/_doc/1,sku%252C1%2525,2026-01-05" | jq -r .found)" = true ] ||
    fail "the composite id of (1, 'sku,1%', 2026-01-05) is not as documented"

# Config mistakes: file and line named, exit 2, nothing started.
bad=$TXIDSYNC_TEST_TMP/bad.ini
expect_usage() { # expect_usage PATTERN ARGS...
    local pattern=$1 out code
    shift
    set +e
    out=$("$TXIDSYNC_BIN" "$@" 2>&1)
    code=$?
    set -e
    [ "$code" = 2 ] || fail "$*: exit $code, expected 2: $out"
    grep -qE -- "$pattern" <<<"$out" || fail "$*: output lacks /$pattern/: $out"
    echo "ok: $out"
}
printf '[txidsync]\nes-url = %s\n[a]\nindex = x\nbatchsize = 3\n' "$TXIDSYNC_ES_URL" >"$bad"
expect_usage "bad.ini:5: unknown key 'batchsize' in \[a\]" --config "$bad"
printf '[a]\nindex = same\n[b]\nindex = same\n' >"$bad"
expect_usage "b: index same is the target of a too" --config "$bad"
printf '[a]\n[public.a]\ntable = a\n' >"$bad"
expect_usage "public.a: table a is configured twice \(also in a\)" --config "$bad"
expect_usage "--index cannot be used with --config" --config "$conf" --index x
expect_usage "nothere.ini: cannot open" --config "$TXIDSYNC_TEST_TMP/nothere.ini"
echo "sync_tables: 4 tables from one config file, equal; config errors named"
