#!/usr/bin/env bash
# The CI fuzz stage read from a hot standby: the crash-loop fuzz of lib.sh
# into OpenSearch with the syncer reading a streaming standby of the bed's
# Postgres (tools/demo DEMO_SOURCE=standby) while the load generator writes
# the primary, for TXIDSYNC_FUZZ_STANDBY_SECONDS (default 60); checked
# against the primary once the standby replayed everything.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"
standby_up
trap 'cleanup_syncers; standby_down' EXIT
export DEMO_SOURCE=standby
fuzz_crash_loop opensearch "${TXIDSYNC_FUZZ_STANDBY_SECONDS:-60}"
