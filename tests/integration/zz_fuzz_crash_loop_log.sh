#!/usr/bin/env bash
# The CI fuzz stage with the demo tables tracked in the log mode
# (design.md, "Tracking modes"; the C trigger from build/ext): the
# crash-loop fuzz of lib.sh into OpenSearch, the load generator's 32
# connections writing, for TXIDSYNC_FUZZ_LOG_SECONDS (default 40); the
# checker compares the index with the state of the side table and the log.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"
trap cleanup_syncers EXIT
export TXIDSYNC_TRACK_MODE=log
fuzz_crash_loop opensearch "${TXIDSYNC_FUZZ_LOG_SECONDS:-40}"
mode=$(psql_q "select string_agg(distinct mode, ',') from txidsync.tracked")
[ "$mode" = log ] || fail "the demo tables were tracked in mode $mode, not log"
trigger=$(psql_q "select count(*) from pg_trigger where tgname = 'txidsync_row'
                   and tgfoid = 'txidsync._log_row_c()'::regprocedure")
[ "$trigger" = 2 ] || fail "the demo tables do not have the C trigger ($trigger of 2)"
