#!/usr/bin/env bash
# The bed's OpenSearch is real and honours external versions: a document
# indexed with version_type=external version 5 reads back as version 5,
# and a write of version 4 or 5 again is rejected with 409.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

index=$(test_index)
es PUT "/$index" '{"settings":{"number_of_shards":1,"number_of_replicas":0}}' >/dev/null
expect_status 201 PUT "/$index/_doc/1?version=5&version_type=external" '{"name":"five"}'
body=$(es GET "/$index/_doc/1")
[ "$(json_get "$body" ._version)" = 5 ] || fail "read back version: $body"
[ "$(json_get "$body" ._source.name)" = five ] || fail "read back source: $body"
expect_status 409 PUT "/$index/_doc/1?version=4&version_type=external" '{"name":"four"}'
expect_status 409 PUT "/$index/_doc/1?version=5&version_type=external" '{"name":"five again"}'
body=$(es GET "/$index/_doc/1")
[ "$(json_get "$body" ._source.name)" = five ] || fail "a rejected write changed the document: $body"
expect_status 200 PUT "/$index/_doc/1?version=6&version_type=external" '{"name":"six"}'
es DELETE "/$index" >/dev/null
echo "opensearch honours external versions"
