#!/usr/bin/env bash
# The syncer's role needs only what txidsync.grant_reader() gives:
#  1. before the grant, a syncer of a role without privileges fails with a
#     message naming grant_reader;
#  2. after select txidsync.grant_reader('ROLE') it syncs (equal), and a
#     table tracked later is readable without another grant;
#  3. a column change: the reader may not start the refresh, says so and
#     names txidsync refresh, which the owner runs; then equal again;
#  4. what a new user meets first: no --table (exit 2, says how), a
#     database without txidsync (the message names it), the start-up line
#     naming host, port and database.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

setup_demo
role=txs_reader_$$
psql_q "create role $role login"
psql_q "create table priv_a (id int primary key, name text)"
psql_q "insert into priv_a select i, 'a' || i from generate_series(1, 300) as i"
psql_q "select txidsync.track('priv_a')" >/dev/null
as_reader=(--pg "user=$role" --replicas 0 --once)
ix=$(test_index a)

expect 1 "grant_reader" "$TXIDSYNC_BIN" "${as_reader[@]}" --table priv_a --index "$ix" \
    --state-index "$ix-state"
echo "1. without privileges: fails naming txidsync.grant_reader"

[ "$(psql_q "select txidsync.grant_reader('$role')")" -ge 2 ] || fail "grant_reader granted fewer than 2 tables"
out=$("$TXIDSYNC_BIN" "${as_reader[@]}" --table priv_a --index "$ix" --state-index "$ix-state" 2>&1) ||
    fail "the reader's sync failed: $out"
grep -qF "syncing priv_a (key id) of database $PGDATABASE on socket $PGHOST port $PGPORT as $role into" <<<"$out" ||
    fail "the start-up line does not name database, host, port and role: $out"
check_consistent "$ix" priv_a
psql_q "create table priv_b (id int primary key, v text)"
psql_q "insert into priv_b select i, 'b' || i from generate_series(1, 50) as i"
psql_q "select txidsync.track('priv_b')" >/dev/null
ixb=$(test_index b)
"$TXIDSYNC_BIN" "${as_reader[@]}" --table priv_b --index "$ixb" --state-index "$ixb-state" 2>/dev/null ||
    fail "the reader cannot sync a table tracked after grant_reader"
check_consistent "$ixb" priv_b
echo "2. after grant_reader: equal, and a table tracked later is readable"

psql_q "alter table priv_a add column extra text default 'x'"
psql_q "update priv_a set name = 'changed' where id <= 10"
out=$("$TXIDSYNC_BIN" "${as_reader[@]}" --table priv_a --index "$ix" --state-index "$ix-state" 2>&1) ||
    fail "the reader's sync after a column change failed: $out"
grep -q "txidsync refresh" <<<"$out" || fail "no word of txidsync refresh after a column change: $out"
"$TXIDSYNC_BIN" refresh --table priv_a --index "$ix" --state-index "$ix-state" 2>/dev/null ||
    fail "the owner's refresh failed"
"$TXIDSYNC_BIN" "${as_reader[@]}" --table priv_a --index "$ix" --state-index "$ix-state" 2>/dev/null ||
    fail "the reader's sync after the refresh failed"
run_checker --table priv_a --index "$ix" --content
expect_rc 0 "the content check after the refresh"
echo "3. a column change: the reader names txidsync refresh; after it, equal in content"

expect 2 "name the table to sync: --table NAME" env -u TXIDSYNC_TABLE "$TXIDSYNC_BIN" --once
createdb -T template0 "nodb_$$"
expect 1 "not installed in database nodb_$$ " "$TXIDSYNC_BIN" --pg "dbname=nodb_$$" --table t --once
dropdb "nodb_$$"
echo "4. no --table: exit 2 saying how; a database without txidsync is named"
