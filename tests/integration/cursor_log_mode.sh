#!/usr/bin/env bash
# it_cursor_pg's cases (the cursor's hard cases against Postgres) with every
# table tracked in the log mode (design.md, "Tracking modes"), in a
# database of its own beside the side-mode run of build/tests/it_cursor_pg.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"
db="${PGDATABASE}_log"
createdb "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1 || true' EXIT
out=$TXIDSYNC_TEST_TMP/it_cursor_pg.out
rc=0
PGDATABASE=$db TXIDSYNC_TRACK_MODE=log "$TXIDSYNC_ROOT/${BUILD:-build}/tests/it_cursor_pg" \
    >"$out" 2>&1 || rc=$?
grep '^it_cursor_pg: ' "$out" | cut -c1-200
[ "$rc" -eq 0 ] || { tail -n 30 "$out"; fail "it_cursor_pg failed in the log mode (exit $rc)"; }
grep -q '^it_cursor_pg: tracking mode log$' "$out" || fail "it_cursor_pg did not run in the log mode"
grep -q '^it_cursor_pg: [0-9]* cases passed$' "$out" || fail "no summary line"
