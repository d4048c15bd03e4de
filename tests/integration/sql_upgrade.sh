#!/usr/bin/env bash
# An installation of the one-column-key release (sql/txidsync.sql as of
# commit 95241ff, read from git) keeps working after sql/txidsync.sql is
# run over it: the catalog gets key_columns/key_types, the side table and
# its rows stay as they were, the trigger is regenerated, and the syncer
# picks up where the side table is, with the same document ids.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

old_sql=$TXIDSYNC_TEST_TMP/txidsync-95241ff.sql
git -C "$TXIDSYNC_ROOT" show 95241ff:sql/txidsync.sql >"$old_sql" ||
    fail "cannot read the previous release's sql/txidsync.sql from git (a shallow clone?)"
index=$(test_index)
q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

q -f "$old_sql"
q -c "create table public.up (id text primary key, v int)"
q -c "insert into public.up select 'k' || g, g from generate_series(1, 500) g"
q -c "select txidsync.track('public.up', notify => true)" >/dev/null
q -c "update public.up set v = v + 1 where id in ('k1', 'k2')"
[ "$(q -c "select count(*) from pg_attribute where attrelid = 'txidsync.tracked'::regclass and attname = 'key_column' and not attisdropped")" = 1 ] ||
    fail "the old release has no key_column: is 95241ff the wrong commit?"

q -f "$TXIDSYNC_ROOT/sql/txidsync.sql"
[ "$(q -c "select key_columns, key_types, notify from txidsync.tracked")" = "{id}|{text}|t" ] ||
    fail "catalog not upgraded: $(q -c 'select * from txidsync.tracked')"
[ "$(q -c "select version from txidsync.rows_up where key = 'k1'")" = 2 ] || fail "versions lost"
q -c "update public.up set v = 0 where id = 'k1'"
q -c "delete from public.up where id = 'k3'"
q -c "insert into public.up values ('new,one', 1)"
# The regenerated trigger takes versions from the table's sequence, set
# above the per-key versions of the old release.
v1=$(q -c "select version from txidsync.rows_up where key = 'k1' and not deleted")
[ -n "$v1" ] && [ "$v1" -gt 2 ] || fail "the regenerated trigger did not bump k1: '$v1'"

"$TXIDSYNC_BIN" --table up --index "$index" --state-index "$index-state" --replicas 0 --once \
    >"$TXIDSYNC_TEST_TMP/sync.log" 2>&1 || { cat "$TXIDSYNC_TEST_TMP/sync.log"; fail "sync failed"; }
check_consistent "$index" up
doc_is "$index" k1 "$v1" || fail "k1 is not at version $v1: $(doc_version "$index" k1)"
doc_present "$index" "new,one" || fail "the key 'new,one' is not its own id"
echo "sql_upgrade: the one-column release upgrades in place and syncs"
