#!/usr/bin/env bash
# The CI fuzz stage with nested documents (design.md, "Nested documents";
# sql/demo_nested.sql): some_table's documents carry their items and each
# item's label, and the load generator, beside its 32 connections of
# nasty transactions on some_table, inserts items, moves them between
# parents, changes and deletes them and renames labels (--p-related) for
# TXIDSYNC_FUZZ_NESTED_SECONDS (default 60), while the syncer runs in its
# crash loop; then the checker compares content too (--content): every
# document must be what the document query builds now.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"
trap cleanup_syncers EXIT
export DEMO_NESTED=1
fuzz_crash_loop opensearch "${TXIDSYNC_FUZZ_NESTED_SECONDS:-60}"
grep -q '^content: *0$' "$TXIDSYNC_TEST_TMP/demo.out" || fail "the checker compared no content"
related=$(sed -n 's/^totals:.* related=\([0-9]*\).*/\1/p' "$TXIDSYNC_TEST_TMP/logs/load-generator.log")
[ "${related:-0}" -gt 100 ] || fail "only ${related:-no} committed transactions wrote the related tables"
moved=$(psql_q "select count(*) from some_table_items where parent_id <> 0")
[ "$moved" -gt 0 ] || fail "no items left"
