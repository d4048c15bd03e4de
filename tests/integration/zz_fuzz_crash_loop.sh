#!/usr/bin/env bash
# The CI fuzz stage, the project's proof: the syncer in a crash loop under
# crash injection while the load generator runs 32 connections of nasty
# transactions for TXIDSYNC_FUZZ_SECONDS (default 180); then the load stops,
# the syncer catches up, and the checker must find zero differences.  The
# syncer must have been killed at least once every ~10 s on average.
# (Named zz_ so that it runs last.)
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

seconds=${TXIDSYNC_FUZZ_SECONDS:-180}
out=$TXIDSYNC_TEST_TMP/demo.out
cd "$TXIDSYNC_ROOT"
# 0.05 per crash point: under this load the syncer reads few batches a
# second on a 2-core machine, and 0.02 (the demo's) gave 14 to 26 kills in
# 180 s, at the edge of the floor below.
if ! DEMO_DURATION=$seconds DEMO_CONNECTIONS=32 DEMO_INDEX="$(test_index)" DEMO_CRASH_PROBABILITY=0.05 \
    DEMO_KEEP_LOGS="$TXIDSYNC_TEST_TMP/logs" tools/demo --no-bed >"$out" 2>&1; then
    cat "$out"
    tail -n 40 "$TXIDSYNC_TEST_TMP/logs/syncer.log" 2>/dev/null || true
    fail "the crash-loop fuzz ended with differences or an error"
fi
cat "$out"
kills=$(sed -n 's/.*kills (crash injection): *\([0-9]*\).*/\1/p' "$out")
want=$((seconds / 12))
[ -n "$kills" ] && [ "$kills" -ge "$want" ] ||
    fail "only ${kills:-no} kills in $seconds s (want at least $want: one per ~10 s)"
grep -q 'differences: *0$' "$out" || fail "no zero-difference line"
