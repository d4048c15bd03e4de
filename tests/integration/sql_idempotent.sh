#!/usr/bin/env bash
# sql/txidsync.sql installs twice (and keeps the txid offset when re-run);
# track / track again / untrack / untrack again / track works and leaves
# exactly the expected objects; tables without a usable primary key are
# refused with a clear message; composite keys are tracked; the row trigger works for a role with no
# rights on the side table; NOTIFY reaches the documented channel; and
# sql/demo.sql (run twice) gives 30,000 tracked rows.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

sqldir=$TXIDSYNC_ROOT/sql
export PGOPTIONS="-c client_min_messages=warning"
q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
expect() { # expect WANT SQL
    local got
    got=$(q -c "$2") || fail "query failed: $2"
    [ "$got" = "$1" ] || fail "$2: expected '$1', got '$got'"
}

app_role="it_app_$PGDATABASE"
cleanup() {
    psql -X -q -c "drop owned by \"$app_role\"" -c "drop role if exists \"$app_role\"" \
        >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Installs twice, and a re-install keeps the offset.
q -f "$sqldir/txidsync.sql"
q -f "$sqldir/txidsync.sql"
expect 0 "select txidsync.txid_offset()"
floor=$(q -c "select pg_current_xact_id()::text::bigint + 5000000")
q -c "select txidsync.configure_txid_offset($floor)" >/dev/null
q -f "$sqldir/txidsync.sql"
expect t "select txidsync.txid_offset() > 0"
expect t "select txidsync.current_txid() > $floor"
expect t "select xmax > $floor and xmin <= xmax from txidsync.snapshot()"
# The offset never goes down.
before=$(q -c "select txidsync.txid_offset()")
q -c "select txidsync.configure_txid_offset(10)" >/dev/null
expect "$before" "select txidsync.txid_offset()"

# track (notify is off by default), track again with notify, change
# notify, untrack, untrack again, track.
q -c "create table public.tr (id text primary key, v int)"
q -c "insert into public.tr values ('a', 1), ('b', 2)"
q -c "select txidsync.track('public.tr')" >/dev/null
expect "rows_tr|{id}|{text}|f|txidsync_tr" \
    "select side_table, key_columns, key_types, notify, channel from txidsync.tracked"
expect "txidsync_row txidsync_truncate" \
    "select string_agg(tgname, ' ' order by tgname) from pg_trigger where tgrelid = 'public.tr'::regclass"
q -c "select txidsync.track('public.tr', notify => true)" >/dev/null
expect "rows_tr|{id}|{text}|t|txidsync_tr" \
    "select side_table, key_columns, key_types, notify, channel from txidsync.tracked"
expect "2|1" "select count(*), max(version) from txidsync.rows_tr"
expect "txidsync_notify txidsync_row txidsync_truncate" \
    "select string_agg(tgname, ' ' order by tgname) from pg_trigger where tgrelid = 'public.tr'::regclass"
# Versions come from the table's sequence: they rise per key, by any step.
vof() { q -c "select version from txidsync.rows_$2 where key = '$1'"; }
above() { [ "$1" -gt "$2" ] || fail "$3: version $1 is not above $2"; }
q -c "update public.tr set v = 3 where id = 'a'"
va=$(vof a tr)
above "$va" 1 "the update of a"
q -c "select txidsync.track('public.tr', false)" >/dev/null
expect "f" "select notify from txidsync.tracked where relid = 'public.tr'::regclass"
expect "txidsync_row txidsync_truncate" \
    "select string_agg(tgname, ' ' order by tgname) from pg_trigger where tgrelid = 'public.tr'::regclass"
expect "$va" "select version from txidsync.rows_tr where key = 'a'"
q -c "select txidsync.untrack('public.tr')" >/dev/null
expect 0 "select count(*) from txidsync.tracked"
expect 0 "select count(*) from pg_trigger where tgrelid = 'public.tr'::regclass"
expect "" "select to_regclass('txidsync.rows_tr')"
expect "" "select to_regprocedure('txidsync.rows_tr_trg()')"
q -c "select txidsync.untrack('public.tr')" >/dev/null
q -c "select txidsync.track('public.tr', true)" >/dev/null
expect "2|1" "select count(*), max(version) from txidsync.rows_tr"
q -c "delete from public.tr where id = 'b'"
vb=$(vof b tr)
above "$vb" 1 "the delete of b"
q -c "insert into public.tr values ('b', 9)"
above "$(vof b tr)" "$vb" "the re-insert of b"
expect "f" "select deleted from txidsync.rows_tr where key = 'b'"

# NOTIFY reaches txidsync_<table> once per writing transaction.
out=$(psql -X -v ON_ERROR_STOP=1 2>&1 <<'SQL'
listen txidsync_tr;
insert into public.tr values ('c', 1);
select 1;
SQL
)
grep -q 'notification "txidsync_tr" received' <<<"$out" || fail "no notification on txidsync_tr: $out"

# Other key types and refusals.
q -c "create table public.tu (id uuid primary key default gen_random_uuid(), v int)"
q -c "insert into public.tu (v) select g from generate_series(1, 3) g"
q -c "select txidsync.track('public.tu', false)" >/dev/null
q -c "update public.tu set v = v + 1"
expect "3|t" "select count(*), min(version) > 1 from txidsync.rows_tu"
q -c "create table public.nopk (id int, v int)"
msg=$(q -c "select txidsync.track('public.nopk')" 2>&1) && fail "tracked a table without a primary key"
grep -q "has no primary key" <<<"$msg" || fail "unclear refusal: $msg"

# A composite key, in index order (b before a), of mixed types with
# separators in its values: every key column goes to the side table, and
# updates, key changes, deletes and re-inserts keep versions per key.
q -c "create table public.twopk (a int, b text, v int, primary key (b, a))"
q -c "insert into public.twopk values (1, 'x,y', 1), (2, '%', 2)"
q -c "select txidsync.track('public.twopk')" >/dev/null
expect "{b,a}|{text,integer}" \
    "select key_columns, key_types from txidsync.tracked where relid = 'public.twopk'::regclass"
expect "key1 text,key2 integer,version bigint,txid bigint,deleted boolean" \
    "select string_agg(attname || ' ' || format_type(atttypid, atttypmod), ',' order by attnum) from pg_attribute where attrelid = 'txidsync.rows_twopk'::regclass and attnum > 0"
expect "(txid, key1, key2)" \
    "select substring(indexdef from '\(.*\)') from pg_indexes where indexname = 'rows_twopk_txid_key'"
q -c "update public.twopk set v = 5 where a = 1"
q -c "update public.twopk set a = 3 where a = 2"
q -c "delete from public.twopk where a = 1"
q -c "insert into public.twopk values (1, 'x,y', 9)"
expect "%|2|true|true %|3|false|true x,y|1|false|true" \
    "select string_agg(key1 || '|' || key2 || '|' || deleted || '|' || (version > 1), ' ' order by key1, key2) from txidsync.rows_twopk"
# Tracking again keeps it; a changed primary key is refused.
q -c "select txidsync.track('public.twopk')" >/dev/null
expect 3 "select count(*) from txidsync.rows_twopk"
q -c "alter table public.twopk drop constraint twopk_pkey, add primary key (a)"
msg=$(q -c "select txidsync.track('public.twopk')" 2>&1) && fail "tracked a changed primary key"
grep -q "primary key of twopk changed" <<<"$msg" || fail "unclear refusal: $msg"
# A re-install warns about it and upgrades the rest.
msg=$(PGOPTIONS= q -f "$sqldir/txidsync.sql" 2>&1) || fail "re-install failed: $msg"
grep -q "cannot regenerate the triggers of twopk" <<<"$msg" || fail "no warning: $msg"
q -c "select txidsync.untrack('public.twopk')" >/dev/null

# A role that may write the table but not the side table: the trigger runs
# as its owner.
q -c "create role \"$app_role\""
q -c "grant usage on schema public to \"$app_role\"; grant select, insert, update, delete on public.tr to \"$app_role\""
vc=$(vof c tr)
q -c "set role \"$app_role\"; insert into public.tr values ('by-app', 1); reset role"
vapp=$(vof by-app tr)
q -c "set role \"$app_role\"; update public.tr set v = 2 where id = 'by-app'; delete from public.tr where id = 'c'; reset role"
above "$(vof by-app tr)" "$vapp" "the application role's update"
expect "f" "select deleted from txidsync.rows_tr where key = 'by-app'"
above "$(vof c tr)" "$vc" "the application role's delete"
expect "t" "select deleted from txidsync.rows_tr where key = 'c'"

# Dropping a tracked table forgets it (event trigger, as the bed's user is
# a superuser); forget_dropped cleans up by hand otherwise.
q -c "create table public.gone (id int primary key)"
q -c "select txidsync.track('public.gone', false)" >/dev/null
q -c "drop table public.gone"
expect "0||" "select count(*) filter (where side_table = 'rows_gone'), to_regclass('txidsync.rows_gone'), to_regprocedure('txidsync.rows_gone_trg()') from txidsync.tracked"
q -c "create table public.gone2 (id int primary key)"
q -c "select txidsync.track('public.gone2', false)" >/dev/null
q -c "alter event trigger txidsync_forget_dropped disable"
q -c "drop table public.gone2"
expect 1 "select count(*) from txidsync.tracked where side_table = 'rows_gone2'"
expect t "select txidsync.configure_txid_offset() >= 0"
expect 1 "select txidsync.forget_dropped()"
expect "0|" "select count(*), to_regclass('txidsync.rows_gone2') from txidsync.tracked where side_table = 'rows_gone2'"
q -c "alter event trigger txidsync_forget_dropped enable"

# The whole schema can be dropped and installed again.
q -c "create schema scratch; create table scratch.t (id int primary key)"
q -c "select txidsync.track('scratch.t', false)" >/dev/null
q -c "drop schema scratch cascade"
expect 0 "select count(*) from txidsync.tracked where side_table = 'rows_t'"

# The demo: 30,000 rows, tracked, and a second run changes nothing.
q -f "$sqldir/demo.sql" >/dev/null
first=$(q -c "select count(*) || '|' || count(*) filter (where not deleted) || '|' || sum(version) from txidsync.rows_some_table")
q -f "$sqldir/demo.sql" >/dev/null
expect 30000 "select count(*) from public.some_table"
expect "$first" "select count(*) || '|' || count(*) filter (where not deleted) || '|' || sum(version) from txidsync.rows_some_table"
case $first in 30000\|30000\|*) ;; *) fail "the demo's side table: $first" ;; esac
expect "t|txidsync_some_table" "select notify, channel from txidsync.tracked where relid = 'public.some_table'::regclass"
expect 0 "select count(*) from public.some_table t left join txidsync.rows_some_table s on s.key = t.id where s.key is null"
expect "30000|30000|{id,part}" "select count(*), count(*) filter (where not deleted), (select key_columns from txidsync.tracked where relid = 'public.some_table_parts'::regclass) from txidsync.rows_some_table_parts"
# Drop everything and install from scratch.
q -c "drop schema txidsync cascade"
expect 0 "select count(*) from pg_event_trigger where evtname = 'txidsync_forget_dropped'"
q -f "$sqldir/txidsync.sql"
q -f "$sqldir/demo.sql" >/dev/null
expect 30000 "select count(*) from txidsync.rows_some_table"
echo "sql_idempotent: install, re-install, track/untrack/track, refusals, privileges, notify, drops and demo ok"
