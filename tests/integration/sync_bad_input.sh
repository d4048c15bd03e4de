#!/usr/bin/env bash
# Bad input gets a clear one-line error, a non-zero exit, and nothing is
# written: bad flags, an unreachable Postgres, an unreachable sink, an
# untracked table, a corrupt stored cursor (in the state index and in a
# file), a password in the connection string never shows up.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

index=$(test_index)
setup_demo
args=(--index "$index" --state-index "$index-state" --replicas 0 --once)

index_absent() {
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$TXIDSYNC_ES_URL/$index")" = 404 ] ||
        fail "index $index was created"
}

expect 2 "--batch-size: expected an integer" "$TXIDSYNC_BIN" --batch-size x
expect 2 "unknown option '--frobnicate'" "$TXIDSYNC_BIN" --frobnicate
expect 2 "--on-reject: expected one of stop\|dead-letter" "$TXIDSYNC_BIN" --on-reject maybe
expect 2 "--crash-probability: expected a number" "$TXIDSYNC_BIN" --crash-probability 2
expect 2 "--es-url: sink url must start with http" "$TXIDSYNC_BIN" "${args[@]}" --es-url ftp://x
index_absent

closed_port=$(( (RANDOM % 1000) + 1 ))
secret=S3cretPassw0rd
expect 1 "cannot connect to postgres" "$TXIDSYNC_BIN" "${args[@]}" \
    --pg "postgresql://txidsync:$secret@127.0.0.1:$closed_port/nodb?connect_timeout=3"
out=$("$TXIDSYNC_BIN" "${args[@]}" --pg "host=127.0.0.1 port=$closed_port password=$secret" 2>&1 || true)
grep -q "$secret" <<<"$out" && fail "the password shows in: $out"
index_absent

expect 1 "cannot reach the sink at http://127.0.0.1:$closed_port" \
    "$TXIDSYNC_BIN" "${args[@]}" --es-url "http://127.0.0.1:$closed_port"
out=$("$TXIDSYNC_BIN" "${args[@]}" --es-url "http://elastic:$secret@127.0.0.1:$closed_port" 2>&1 || true)
grep -q "$secret" <<<"$out" && fail "the sink password shows in: $out"
index_absent

psql_q "create table untracked (id int primary key)"
expect 1 "not tracked" "$TXIDSYNC_BIN" "${args[@]}" --table untracked
expect 1 "does not exist" "$TXIDSYNC_BIN" "${args[@]}" --table no_such_table
# A column with the name of the metadata member: refused, nothing written.
psql_q "create table has_meta (id int primary key, txidsync text)"
psql_q "select txidsync.track('has_meta')" >/dev/null
expect 1 "has_meta: the table has a column named txidsync.*rename the column" \
    "$TXIDSYNC_BIN" "${args[@]}" --table has_meta
index_absent

# A corrupt cursor in the state index: stop, write nothing.
es PUT "/$index-state" '{"settings":{"number_of_replicas":0},"mappings":{"dynamic":false}}' >/dev/null
es PUT "/$index-state/_doc/some_table:$index" '{"format":1,"xid_next":"12x"}' >/dev/null
expect 1 "corrupt" "$TXIDSYNC_BIN" "${args[@]}"
index_absent

# A corrupt cursor file, the same.
file=$TXIDSYNC_TEST_TMP/cursor.json
printf '{"format":1,"xid_next":"100","xip":["5","3"],"xid_at":null,"xid_at_key":null,"part_k":0,"part_n":1}' >"$file"
expect 1 "corrupt.*xip" "$TXIDSYNC_BIN" "${args[@]}" --cursor-file "$file"
printf '{"format":1,"xid_n' >"$file"
expect 1 "corrupt" "$TXIDSYNC_BIN" "${args[@]}" --cursor-file "$file"
index_absent

# And a good cursor file works, and is rewritten atomically.
rm -f "$file"
"$TXIDSYNC_BIN" "${args[@]}" --cursor-file "$file" 2>/dev/null || fail "sync with a cursor file failed"
jq -e '.xid_next' "$file" >/dev/null || fail "no cursor in $file"
[ ! -e "$file.tmp" ] || fail "a temporary cursor file was left behind"
