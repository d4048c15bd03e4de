#!/usr/bin/env bash
# The CI fuzz stage into Kafka: the crash-loop fuzz of lib.sh for
# TXIDSYNC_FUZZ_KAFKA_SECONDS (default 90), the checker reading the topics
# from the beginning.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"
[ -n "${TXIDSYNC_KAFKA_BROKERS:-}" ] || fail "no Kafka broker in the bed (tests/bed up --with-kafka)"
fuzz_crash_loop kafka "${TXIDSYNC_FUZZ_KAFKA_SECONDS:-90}"
