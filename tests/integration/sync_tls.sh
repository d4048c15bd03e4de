#!/usr/bin/env bash
# A secured sink: OpenSearch behind a TLS-terminating nginx with basic
# auth (tests/bed tls-up: a CA and certificates made with openssl, a
# password holding '@' and ':').
#  1. the right CA, --es-user and --es-password-file: syncs, equal (the
#     checker through the proxy with the same options);
#  2. a wrong CA: exit 1 at once, the message names --es-ca-file;
#  3. a wrong password: exit 1, "authentication failed", no retry storm
#     (a handful of requests in the proxy's log);
#  4. the password is in no log line, not in ps, not in /proc/PID/cmdline
#     of a running syncer; TXIDSYNC_ES_PASSWORD works too;
#  5. the password in the URL: raw '@' refused without echoing any part of
#     it, percent-encoded accepted;
#  6. --es-insecure syncs without the CA and says so loudly;
#  7. the port that asks for a client certificate: with --es-cert-file and
#     --es-key-file it syncs; without, a clear error and exit 1.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

setup_demo
eval "$("$TXIDSYNC_ROOT/tests/bed" tls-up "$TXIDSYNC_BED")"
trap '"$TXIDSYNC_ROOT/tests/bed" tls-down "$TXIDSYNC_BED"; cleanup_syncers' EXIT
password=$(cat "$TXIDSYNC_TLS_PASSWORD_FILE")
access=$TXIDSYNC_BED/tls/access.log
ix=$(test_index)
secure=(--es-url "$TXIDSYNC_TLS_URL" --es-user "$TXIDSYNC_TLS_USER"
    --es-password-file "$TXIDSYNC_TLS_PASSWORD_FILE" --es-ca-file "$TXIDSYNC_TLS_CA")
sync=(--index "$ix" --state-index "$ix-state" --replicas 0)
logs=$TXIDSYNC_TEST_TMP/all.log
: >"$logs"

"$TXIDSYNC_BIN" "${secure[@]}" "${sync[@]}" --once 2>>"$logs" || fail "the sync through TLS failed: $(tail -n 5 "$logs")"
"$CHECKER_BIN" "${secure[@]}" --index "$ix" >>"$logs" 2>&1 || fail "the checker through TLS found differences"
check_consistent "$ix"
grep -q 'POST /_bulk' "$access" || fail "no bulk request went through the proxy"
echo "1. the right CA, user and password file: synced through the proxy, equal"

psql_q "update some_table set name = 'after tls' where id <= 100"
expect 1 "es-ca-file" "$TXIDSYNC_BIN" --es-url "$TXIDSYNC_TLS_URL" --es-user elastic \
    --es-password-file "$TXIDSYNC_TLS_PASSWORD_FILE" --es-ca-file "$TXIDSYNC_TLS_WRONG_CA" \
    "${sync[@]}" --once
expect 1 "certificate" "$TXIDSYNC_BIN" --es-url "$TXIDSYNC_TLS_URL" "${sync[@]}" --once
echo "2. a wrong CA, or none: exit 1 naming the certificate and --es-ca-file"

printf 'not-the-password\n' >"$TXIDSYNC_TEST_TMP/wrong"
chmod 600 "$TXIDSYNC_TEST_TMP/wrong"
before=$(grep -c ' 401 ' "$access" || true)
start=$SECONDS
expect 1 "authentication failed" "$TXIDSYNC_BIN" --es-url "$TXIDSYNC_TLS_URL" --es-user elastic \
    --es-password-file "$TXIDSYNC_TEST_TMP/wrong" --es-ca-file "$TXIDSYNC_TLS_CA" "${sync[@]}" --once
refused=$(($(grep -c ' 401 ' "$access") - before))
[ "$refused" -le 3 ] || fail "a wrong password made $refused requests (a retry storm)"
[ $((SECONDS - start)) -le 15 ] || fail "a wrong password took $((SECONDS - start)) s to fail"
echo "3. a wrong password: exit 1 after $refused refused request(s), authentication failed"

start_syncer "$TXIDSYNC_TEST_TMP/running.log" "${secure[@]}" "${sync[@]}" --log-level debug
pid=$SYNC_PID
wait_for 60 grep -q 'listening on\|waiting for changes\|caught up' "$TXIDSYNC_TEST_TMP/running.log"
ps -ef >"$TXIDSYNC_TEST_TMP/ps.txt"
tr '\0' ' ' <"/proc/$pid/cmdline" >"$TXIDSYNC_TEST_TMP/cmdline.txt"
grep -qF -- "--es-password-file" "$TXIDSYNC_TEST_TMP/cmdline.txt" || fail "the cmdline read is not the syncer's"
for f in ps.txt cmdline.txt running.log; do
    ! grep -qF "$password" "$TXIDSYNC_TEST_TMP/$f" || fail "the password shows in $f"
done
stop_syncer "$pid" || fail "the secured syncer did not stop cleanly"
TXIDSYNC_ES_PASSWORD=$password "$TXIDSYNC_BIN" --es-url "$TXIDSYNC_TLS_URL" --es-user elastic \
    --es-ca-file "$TXIDSYNC_TLS_CA" "${sync[@]}" --once 2>>"$logs" ||
    fail "the sync with TXIDSYNC_ES_PASSWORD failed"
check_consistent "$ix"
echo "4. the password is in no log, not in ps or /proc/PID/cmdline; TXIDSYNC_ES_PASSWORD works"

hostport=${TXIDSYNC_TLS_URL#https://}
out=$("$TXIDSYNC_BIN" --es-url "https://elastic:$password@$hostport" --es-ca-file "$TXIDSYNC_TLS_CA" \
    "${sync[@]}" --once 2>&1) && fail "a raw '@' in the URL's password was taken"
grep -q "percent-encode" <<<"$out" || fail "the raw '@' message does not say to percent-encode: $out"
for piece in "${password#*@}" "${password##*-}" "w0rd"; do
    ! grep -qF "$piece" <<<"$out" || fail "the message echoes part of the password ($piece): $out"
done
encoded=$(jq -rn --arg p "$password" '$p | @uri')
psql_q "update some_table set name = 'encoded' where id <= 10"
"$TXIDSYNC_BIN" --es-url "https://elastic:$encoded@$hostport" --es-ca-file "$TXIDSYNC_TLS_CA" \
    "${sync[@]}" --once >"$TXIDSYNC_TEST_TMP/encoded.log" 2>&1 || fail "the percent-encoded URL failed: $(tail -n 3 "$TXIDSYNC_TEST_TMP/encoded.log")"
! grep -qF "$encoded" "$TXIDSYNC_TEST_TMP/encoded.log" || fail "the encoded password shows in the log"
cat "$TXIDSYNC_TEST_TMP/encoded.log" >>"$logs"
echo "5. a raw '@' in the URL: refused without echoing it; percent-encoded: synced"

psql_q "update some_table set name = 'insecure' where id <= 10"
out=$("$TXIDSYNC_BIN" --es-url "$TXIDSYNC_TLS_URL" --es-user elastic --es-password-file \
    "$TXIDSYNC_TLS_PASSWORD_FILE" --es-insecure "${sync[@]}" --once 2>&1) ||
    fail "the sync with --es-insecure failed: $out"
grep -q "warn .*--es-insecure: .*NOT verified" <<<"$out" || fail "--es-insecure was not logged loudly: $out"
check_consistent "$ix"
! grep -qF "$password" "$logs" || fail "the password shows in a log"
echo "6. --es-insecure: synced without the CA, with a warning"

mtls=(--es-url "$TXIDSYNC_TLS_MTLS_URL" --es-ca-file "$TXIDSYNC_TLS_CA")
psql_q "update some_table set name = 'client certificate' where id <= 10"
"$TXIDSYNC_BIN" "${mtls[@]}" --es-cert-file "$TXIDSYNC_TLS_CLIENT_CERT" --es-key-file "$TXIDSYNC_TLS_CLIENT_KEY" \
    "${sync[@]}" --once 2>>"$logs" || fail "the sync with a client certificate failed: $(tail -n 3 "$logs")"
check_consistent "$ix"
expect 1 "http 400: the sink asks for a client certificate" "$TXIDSYNC_BIN" "${mtls[@]}" "${sync[@]}" --once
echo "7. a client certificate: synced with --es-cert-file/--es-key-file, refused without (exit 1)"

