# Helpers for the shell integration tests (sourced).  The bed's
# environment (PG*, TXIDSYNC_ES_URL, TXIDSYNC_BED) and TXIDSYNC_ROOT,
# TXIDSYNC_TEST_NAME, TXIDSYNC_TEST_TMP come from tests/run-integration.

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# An index name of this test's own (OpenSearch is shared between tests).
test_index() {
    echo "t-$(echo "$TXIDSYNC_TEST_NAME" | tr 'A-Z_' 'a-z-')${1:+-$1}"
}

# es METHOD PATH [BODY]: the response body; fails on a status >= 400.
es() {
    local method=$1 path=$2 body=${3:-}
    curl -sS -f -X "$method" -H 'Content-Type: application/json' \
        ${body:+--data-binary "$body"} "$TXIDSYNC_ES_URL$path"
}

# expect_status CODE METHOD PATH [BODY]: the HTTP status must be CODE.
expect_status() {
    local want=$1 method=$2 path=$3 body=${4:-} got
    got=$(curl -sS -o "$TXIDSYNC_TEST_TMP/last-body" -w '%{http_code}' -X "$method" \
        -H 'Content-Type: application/json' ${body:+--data-binary "$body"} "$TXIDSYNC_ES_URL$path")
    [ "$got" = "$want" ] || fail "$method $path: expected HTTP $want, got $got: $(cat "$TXIDSYNC_TEST_TMP/last-body")"
}

# json_get JSON JQ_PATH: one scalar out of a JSON document, e.g. "._version".
json_get() {
    jq -r "$2" <<<"$1"
}
