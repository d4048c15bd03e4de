#!/usr/bin/env bash
# The benchmark cannot rot: tools/bench --smoke runs every step of make
# bench at small sizes (a 5,000-row backfill against the raw loader, a few
# seconds of latency, 8 tables in one process, pgbench, memory, idle CPU, a short crash-loop fuzz
# run with its plots, the backfill into NDJSON and Kafka, a refresh under load and the content check,
# pruning, the peers' write overhead, the capacity climb and PGSync)
# against this bed, writing its report and PNGs into
# the scratch directory, never over BENCHMARKS.md.  Speed is not asserted:
# only that every figure is there and the plots are PNG images.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

out=$TXIDSYNC_TEST_TMP/report/BENCHMARKS.md
plots=$TXIDSYNC_TEST_TMP/report/plots
before=$(cd "$TXIDSYNC_ROOT" && git hash-object BENCHMARKS.md 2>/dev/null || echo none)
cd "$TXIDSYNC_ROOT"
if ! tools/bench --smoke --no-bed --out "$out" --plots "$plots" --prefix "$(test_index)" \
    --work "$TXIDSYNC_TEST_TMP/work" >"$TXIDSYNC_TEST_TMP/bench.log" 2>&1; then
    tail -n 40 "$TXIDSYNC_TEST_TMP/bench.log"
    fail "tools/bench --smoke failed"
fi
[ -s "$out" ] || fail "no report at $out"
for section in "## 1. Backfill" "## 2. Steady-state latency" "## 3. Write overhead" \
    "## 4. Memory" "## 5. Idle cost" "## 6. Throughput and lag" "## 7. Change streams" \
    "## 8. A refresh under load" "## 9. What metrics cost" "## 10. Reading a hot standby" \
    "## 11. What deletes leave, before and after pruning" "## 12. Write overhead against the peers" \
    "## 13. Steady-state capacity" "## 14. Against PGSync 7.3" "## 15. Nested documents" \
    "## Decisions"; do
    grep -q "^$section" "$out" || fail "the report has no section '$section'"
done
# Every figure came out as a number, not empty or nan.
grep -Eq '^\| \*\*txidsync, defaults\*\* \| [0-9]+ \| \*\*[0-9.]+\*\* ' "$out" ||
    fail "no backfill figures: $(grep -A8 '^## 1' "$out")"
for design in "txidsync side mode" "txidsync log mode" "PgQ" "logical decoding"; do
    [ "$(grep -c "^| $design.* | [0-9]*, \*\*[0-9.]*\*\* ([0-9.]*-[0-9.]*) | [0-9]*, \*\*[0-9.]*\*\* " "$out")" = 2 ] ||
        fail "no overhead figures of $design (fsync off and on): $(grep -A30 '^## 12' "$out")"
done
for mode in side log; do
    grep -Eq "^\| $mode \| [0-9]+ rows \([0-9]+ tombstones\).* \| [0-9]+ rows \(0 tombstones\), log 0, [0-9.]+ MiB \| [0-9.]+ s \|" "$out" ||
        fail "no pruning figures of the $mode mode: $(grep -A8 '^## 11' "$out")"
done
for mode in side log; do
    grep -Eq "^\| $mode \| [0-9]+ \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \| (\*\*)?[0-9.]+(\*\*)? \| [0-9.]+ \| [0-9]+ % \| [0-9]+ % \([0-9]+ %\) \| [0-9]+ % \| [0-9]+ % \| [0-9]+ % \|$" "$out" ||
        fail "no capacity figures of the $mode mode: $(grep -A12 '^## 13' "$out")"
done
grep -Eq '^\| txidsync \| [0-9.]+ \([0-9., ]+\) \| [0-9]+ \| [0-9.]+× \|$' "$out" &&
    grep -Eq '^\| PGSync \| [0-9.]+ \([0-9., ]+\) \| [0-9]+ \| 1× \|$' "$out" ||
    fail "no PGSync backfill figures: $(grep -A10 '^## 14' "$out")"
for tool in txidsync PGSync; do
    grep -Eq "^\| $tool \| 1 \| [1-9][0-9]* of [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+ \| " "$out" ||
        fail "no lag figures of $tool: $(grep -A24 '^## 14' "$out")"
done
nested=$(sed -n '/^## 15\./,/^## [^1]/p' "$out")
grep -Eq '^\| txidsync \| [0-9.]+ \([0-9., ]+\) \| [0-9]+ \| [0-9.]+× \|$' <<<"$nested" &&
    grep -Eq '^\| PGSync \| [0-9.]+ \([0-9., ]+\) \| [0-9]+ \| 1× \|$' <<<"$nested" &&
    grep -Eq '^[0-9]+ of [0-9]+ sampled documents are$|[. ]([0-9]+) of \1 sampled documents are' <<<"$nested" ||
    fail "no nested backfill figures: $nested"
for t in "untracked copy" "items, nested into orders" "items tracked as a table"; do
    grep -Eq "^\| $t \| [0-9]+ \| [0-9]+(, [0-9]+)* \|$" <<<"$nested" || fail "no write overhead of $t: $nested"
done
grep -Eq 'renaming tag 1 \(on [0-9]+ products\) bumped$' <<<"$nested" &&
    grep -Eq '^[1-9][0-9]* order documents in [0-9]+ ms' <<<"$nested" || fail "no lookup rename figures: $nested"
for size in 1000 5000 10000; do
    grep -Eq "^\| raw, bulks of $size \| [0-9]+ \| [0-9.]+ " "$out" || fail "no raw ceiling at $size"
done
grep -Eq '^\| txidsync, 8 tables of [0-9]+ rows in one process \| [0-9]+ \| [0-9.]+ ' "$out" ||
    fail "no multi-table figure"
grep -Eq '^\| lat_quiet \| .* \| [1-9][0-9]* \([0-9]+\) \| [0-9.]+ \| [0-9.]+ \| \*\*[0-9.]+\*\* ' "$out" ||
    fail "no latency figures: $(grep 'lat_quiet' "$out")"
grep -Eq '^\| pgb_quiet \| .* \| [0-9]+ \| \*\*[0-9.]+\*\* \|$' "$out" || fail "no pgbench figures"
grep -Eq '^\| 5000 \| [0-9.]+ \|$' "$out" || fail "no memory figure for the backfill size"
grep -Eq '^\| lat_notify \| LISTEN.* \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ s \|$' "$out" || fail "no idle figures"
grep -q 'consistency checker found 0 differences' "$out" || fail "the fuzz run is not reported clean"
grep -Eq '^\| on / off \| \*\*[0-9.]+\*\* \| [0-9.]+ \|$' "$out" || fail "no metrics cost figure: $(grep -A8 '^## 9' "$out")"
grep -Eq '^\| backfill of [0-9]+ rows, rows/s \(median of [0-9]+\) \| [0-9]+ \| [0-9]+ \| \*\*[0-9.]+\*\* \|$' "$out" ||
    fail "no standby backfill figures: $(grep -A12 '^## 10' "$out")"
grep -Eq '^\| p99 ms \| [0-9.]+ \| [0-9.]+ \| \|$' "$out" || fail "no standby latency figures"
grep -Eq '^\| [1-9][0-9]* \| [0-9]+ \| \*\*[0-9.]+\*\* \| [0-9]+ \| [0-9]+ \| [0-9.]+ / [0-9.]+ \| [0-9.]+ \|$' "$out" ||
    fail "no figures for the open transaction: $(grep -A20 '^## 10' "$out")"
for sink in NDJSON Kafka; do
    grep -Eq "^\| $sink \| \*\*[0-9.]+\*\*( \(to the COPY on one backend: [0-9.]+\))? \| [0-9.]+ \|$" "$out" || fail "no $sink ratios: $(grep -A12 '^## 7' "$out")"
done
grep -Eq '^\| \*\*Kafka: txidsync --sink kafka\*\* \| [0-9]+ \| ' "$out" || fail "no Kafka backfill figure"
grep -Eq '^\| refresh, its own steps \(rows/s\) \| [0-9]+ \| [0-9]+ \|$' "$out" ||
    fail "no refresh rates: $(grep -A12 '^## 8' "$out")"
grep -Eq '^\| live stream p99 latency during the refresh / without \(ms\) \| [0-9.]+ / [0-9.]+ \| [0-9.]+ / [0-9.]+ \|$' "$out" ||
    fail "no live latency during the refreshes"
grep -Eq '^\| `--content`: the canonical body too \| [0-9.]+ \| [0-9]+ MiB \|$' "$out" || fail "no content check figure"
grep -q 'nan' "$out" && fail "a figure is nan: $(grep nan "$out")"
for png in backfill fuzz; do
    [ "$(head -c 4 "$plots/$png.png" | tail -c 3)" = PNG ] || fail "$plots/$png.png is not a PNG"
    grep -q "](plots/$png.png)" "$out" || fail "the report does not show plots/$png.png"
done
after=$(git hash-object BENCHMARKS.md 2>/dev/null || echo none)
[ "$before" = "$after" ] || fail "the smoke run changed BENCHMARKS.md"
[ ! -e "$TXIDSYNC_TEST_TMP/work" ] || fail "the bench left its work directory behind"
echo "bench_smoke: every figure reported ($(grep -c '^## ' "$out") sections), plots ok"
