#!/usr/bin/env bash
# The CI fuzz stage, the project's proof, into OpenSearch: the crash-loop
# fuzz of lib.sh for TXIDSYNC_FUZZ_SECONDS (default 120).  (Named zz_ so
# that it runs last.)
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"
fuzz_crash_loop opensearch "${TXIDSYNC_FUZZ_SECONDS:-120}"
