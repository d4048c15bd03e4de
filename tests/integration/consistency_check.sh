#!/usr/bin/env bash
# The consistency checker against the real bed: an index synced by
# txidsync is equal to its table (tombstones and paging included, and with
# text keys whose column collation is not byte order); edits made behind
# the syncer's back are each reported with the right kind (stale, missing,
# extra, and the documents whose txidsync field is broken); a node that
# answers 429 is waited for; bad flags,
# unreachable servers, an untracked table and a missing index exit 2 with
# one clear line that never shows the connection string's password.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

index=$(test_index)
tmp=$TXIDSYNC_TEST_TMP

# A closed TCP port on 127.0.0.1.
closed_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    fail "no closed port found"
}

# The demo, shrunk to 3,000 live rows; the 27,000 deleted ones stay as
# tombstones, which the checker must not count.
setup_demo
psql_q "delete from some_table where id > 3000"
"$TXIDSYNC_BIN" --once --replicas 0 --index "$index" --state-index "$index-state" \
    >"$tmp/sync.log" 2>&1 || { tail -n 20 "$tmp/sync.log" >&2; fail "the syncer failed"; }

# Equal, read in one page and in 30 pages of 100.
for page in 5000 100; do
    run_checker --index "$index" --page-size "$page"
    expect_rc 0 "synced index, page size $page"
    expect_count "rows in postgres" 3000
    expect_count "documents in index" 3000
    expect_count equal 3000
    for kind in missing extra stale; do expect_count "$kind" 0; done
    expect_line "^consistency-check: equal"
done
echo "equal after a sync: ok"

# Text keys ordered by a linguistic collation in Postgres: the checker
# must still merge in byte order (COLLATE "C" against the keyword sort).
coll=$(psql_q "select case when exists (select from pg_collation where collname = 'und-x-icu')
                      then 'collate \"und-x-icu\"' else '' end")
psql_q "create table public.words (w text $coll primary key, n int);
        select txidsync.track('public.words', notify => false);
        insert into public.words values ('a', 1), ('A', 2), ('B', 3), ('Z', 4), ('_x', 5), ('10', 6),
            ('9', 7), ('é', 8), ('e', 9), ('日本', 10), ('ÿ', 11), ('a b', 12), ('😀', 13),
            ('quote\"d', 14), ('back\\slash', 15)" >/dev/null
"$TXIDSYNC_BIN" --once --replicas 0 --table words --index "$index-words" \
    --state-index "$index-state" >>"$tmp/sync.log" 2>&1 ||
    { tail -n 20 "$tmp/sync.log" >&2; fail "the syncer failed on words"; }
run_checker --table words --index "$index-words" --page-size 4
expect_rc 0 "text keys"
expect_count equal 15
echo "text keys in byte order: ok"

# A busy node: a proxy answers 429 (as OpenSearch's circuit breaker does)
# to the first search and twice to a scroll request within; the checker
# waits, sends them again, and misses no page.
python3 - "$TXIDSYNC_ES_URL" "$tmp/proxy.port" <<'PY' 2>"$tmp/proxy.err" &
import http.client, http.server, os, sys, threading, urllib.parse
up = urllib.parse.urlsplit(sys.argv[1])
seen = [0]
class Proxy(http.server.BaseHTTPRequestHandler):
    def relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if "_search" in self.path:
            seen[0] += 1
            if seen[0] in (1, 3, 4):
                out = b'{"error":{"type":"circuit_breaking_exception","reason":"[parent] Data too large"},"status":429}'
                return self.answer(429, [("Content-Type", "application/json")], out)
        c = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        c.request(self.command, self.path, body,
                  {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")})
        r = c.getresponse()
        skip = ("transfer-encoding", "content-length", "connection")
        self.answer(r.status, [(k, v) for k, v in r.getheaders() if k.lower() not in skip], r.read())
    def answer(self, status, headers, data):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = relay
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
threading.Timer(120, server.shutdown).start()
open(sys.argv[2] + ".tmp", "w").write(str(server.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
PY
proxy=$!
wait_for 20 test -s "$tmp/proxy.port"
run_checker --table words --index "$index-words" --page-size 4 --es-url "http://127.0.0.1:$(cat "$tmp/proxy.port")"
kill "$proxy" 2>/dev/null || true
expect_rc 0 "a node answering 429"
expect_count equal 15
[ "$(grep -c 'http 429.*trying again' "$tmp/err")" = 3 ] ||
    fail "not three waits for the busy node: $(cat "$tmp/err")"
echo "a busy node (429 three times): waited and went on, equal"

# Behind the syncer's back: key 10 re-indexed with a higher version, key 20
# deleted, an unknown key added, row 30 deleted in Postgres only, a
# document without a txidsync field, and key 40 rewritten with a
# txidsync.key that is not its _id.
src10=$(es GET "/$index/_source/10")
v10=$(json_get "$(es GET "/$index/_doc/10")" ._version)
es PUT "/$index/_doc/10?version=$((v10 + 5))&version_type=external" "$src10" >/dev/null
es DELETE "/$index/_doc/20" >/dev/null
es PUT "/$index/_doc/no-such-key?version=1&version_type=external" \
    '{"name":"ghost","txidsync":{"key":"no-such-key","txid":1,"version":1}}' >/dev/null
psql_q "delete from some_table where id = 30"
es PUT "/$index/_doc/lonely" '{"name":"no metadata"}' >/dev/null
src40=$(es GET "/$index/_source/40" | jq -c '.txidsync.key = "not-40"')
v40=$(json_get "$(es GET "/$index/_doc/40")" ._version)
es PUT "/$index/_doc/40?version=$((v40 + 1))&version_type=external" "$src40" >/dev/null

run_checker --index "$index" --page-size 100
expect_rc 1 "edited index"
expect_count "rows in postgres" 2999
expect_count "documents in index" 3001
expect_count equal 2996
expect_count missing 1
expect_count extra 3
expect_count stale 2
expect_line "^stale +key 10: postgres txid [0-9]+ version $v10, index txid [0-9]+ version $((v10 + 5))\$"
expect_line "^missing +key 20: postgres txid [0-9]+ version [0-9]+; not in the index\$"
expect_line "^extra +key no-such-key: index txid 1 version 1; not a live row in postgres\$"
expect_line "^extra +key 30: index txid [0-9]+ version [0-9]+; not a live row in postgres\$"
expect_line "^extra +key lonely: index txid \? version 1; .*txidsync.key is missing"
expect_line "^stale +key 40: postgres txid [0-9]+ version $v40, index txid [0-9]+ version $((v40 + 1)) .*\"not-40\", which is not the key of its _id"
expect_line "^consistency-check: 6 differences"
[ "$(grep -Ec '^(missing|extra|stale) ' "$tmp/out")" = 6 ] || { cat "$tmp/out" >&2; fail "not 6 difference lines"; }
echo "edits behind the syncer's back: ok"

# --max-report bounds the list, not the counts.
run_checker --index "$index" --max-report 2
expect_rc 1 "--max-report 2"
[ "$(grep -Ec '^(missing|extra|stale) ' "$tmp/out")" = 2 ] || { cat "$tmp/out" >&2; fail "--max-report 2 listed other than 2"; }
expect_line "^\(4 more differences not shown"
expect_count extra 3
echo "--max-report: ok"

# Errors: exit 2 and one line on stderr.
run_checker --bogus
expect_rc 2 "unknown flag"
run_checker --max-report -1
expect_rc 2 "negative --max-report"
grep -q -- "--max-report" "$tmp/err" || fail "the message does not name --max-report: $(cat "$tmp/err")"

port=$(closed_port)
run_checker --index "$index" --es-url "http://elastic:hunter2@127.0.0.1:$port"
expect_rc 2 "unreachable sink"
[ "$(wc -l <"$tmp/err")" = 1 ] || fail "not one line: $(cat "$tmp/err")"
grep -q "127.0.0.1:$port" "$tmp/err" || fail "the message does not name the sink: $(cat "$tmp/err")"
grep -q hunter2 "$tmp/err" "$tmp/out" && fail "the sink's password was printed"
echo "unreachable sink: $(cat "$tmp/err")"

port=$(closed_port)
run_checker --index "$index" --pg "host=127.0.0.1 port=$port dbname=x user=y password=sekret77"
expect_rc 2 "unreachable postgres"
grep -q sekret77 "$tmp/err" "$tmp/out" && fail "the postgres password was printed"
echo "unreachable postgres: $(cat "$tmp/err")"

psql_q "create table public.untracked (id int primary key)"
run_checker --table untracked --index "$index"
expect_rc 2 "untracked table"
grep -q "not tracked" "$tmp/err" || fail "untracked: $(cat "$tmp/err")"

run_checker --index "$index-nope"
expect_rc 2 "missing index"
grep -q "does not exist" "$tmp/err" || fail "missing index: $(cat "$tmp/err")"
echo "errors: ok"

curl -sS -X DELETE "$TXIDSYNC_ES_URL/$index,$index-words,$index-state" >/dev/null
echo "consistency checker: ok"
