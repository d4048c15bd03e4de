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

# expect CODE PATTERN COMMAND...: runs COMMAND, which must exit CODE with
# output (stdout and stderr) matching the extended regex PATTERN.
expect() {
    local want=$1 pattern=$2 out code
    shift 2
    set +e
    out=$("$@" 2>&1)
    code=$?
    set -e
    [ "$code" = "$want" ] || fail "$*: exit $code, expected $want: $out"
    grep -qE -- "$pattern" <<<"$out" || fail "$*: output lacks /$pattern/: $out"
}

# json_get JSON JQ_PATH: one scalar out of a JSON document, e.g. "._version".
json_get() {
    jq -r "$2" <<<"$1"
}

export PGOPTIONS="${PGOPTIONS:-} --client-min-messages=warning"
TXIDSYNC_BIN="$TXIDSYNC_ROOT/${BUILD:-build}/txidsync"
CHECKER_BIN="$TXIDSYNC_ROOT/${BUILD:-build}/consistency-check"
LOADGEN_BIN="$TXIDSYNC_ROOT/${BUILD:-build}/load-generator"

# psql_q SQL: runs SQL quietly, stops on the first error, prints tuples only.
psql_q() {
    psql -X -q -v ON_ERROR_STOP=1 -At -c "$1"
}

# setup_demo: the tracking schema and the demo table (30,000 rows) in $PGDATABASE.
setup_demo() {
    psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/demo.sql" >/dev/null
}

# wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds;
# fails the test when it has not within SECONDS.
wait_for() {
    local limit=$1 deadline
    shift
    deadline=$(($(date +%s%N) + limit * 1000000000))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s%N)" -lt "$deadline" ] || fail "timed out after ${limit}s waiting for: $*"
        sleep 0.1
    done
}

# Background syncers started through start_syncer, ended on exit.
SYNC_PIDS=()
cleanup_syncers() {
    local p
    for p in "${SYNC_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
}
trap cleanup_syncers EXIT

# start_syncer LOGFILE ARGS...: starts txidsync in the background with
# --replicas 0 (unless ARGS has --config, whose file says it); its pid is in
# SYNC_PID.
start_syncer() {
    local logfile=$1 replicas=(--replicas 0) a
    shift
    for a in "$@"; do [ "$a" = --config ] && replicas=(); done
    "$TXIDSYNC_BIN" "${replicas[@]}" "$@" >>"$logfile" 2>&1 &
    SYNC_PID=$!
    SYNC_PIDS+=("$SYNC_PID")
}

# stop_syncer PID: SIGTERM, then waits (at most 30 s) and returns its exit code.
stop_syncer() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && fail "syncer $pid did not stop within 30 s of SIGTERM"
    wait "$pid"
}

# doc_version INDEX KEY: the document's _version, or "absent" (realtime GET).
doc_version() {
    local body
    body=$(curl -sS "$TXIDSYNC_ES_URL/$1/_doc/$2")
    if [ "$(jq -r .found <<<"$body")" = true ]; then
        jq -r ._version <<<"$body"
    else
        echo absent
    fi
}

# doc_is INDEX KEY VERSION: succeeds when the document has that version
# ("absent" for none); for wait_for, which re-runs it.
doc_is() {
    [ "$(doc_version "$1" "$2")" = "$3" ]
}

# doc_present INDEX KEY: succeeds when the document exists.
doc_present() {
    [ "$(doc_version "$1" "$2")" != absent ]
}

# side_version KEY [TABLE]: the version txidsync tracks for KEY in Postgres.
side_version() {
    local side log
    IFS='|' read -r side log <<<"$(psql_q "select side_table, txidsync._log_table(side_table)
                                            from txidsync.tracked where relid = '${2:-some_table}'::regclass")"
    # The side table's row or the log's newest entry (design.md, "Tracking modes").
    psql_q "select max(version) from (select key, version from txidsync.$side union all
            select key, version from txidsync.$log) as s where key = $1"
}

# standby_up: a streaming hot standby of the bed's Postgres (tests/bed
# standby-up, with TXIDSYNC_STANDBY_OPTIONS); exports TXIDSYNC_STANDBY_PORT.
# The test's EXIT trap calls standby_down.
standby_up() {
    local sb
    sb=$("$TXIDSYNC_ROOT/tests/bed" standby-up "$TXIDSYNC_BED") || fail "the standby did not come up"
    eval "$sb"
}
standby_down() {
    "$TXIDSYNC_ROOT/tests/bed" standby-down "$TXIDSYNC_BED"
}

# standby_q SQL: one value from the bed's standby (tests/bed standby-up).
standby_q() {
    psql -X -q -v ON_ERROR_STOP=1 -At -p "$TXIDSYNC_STANDBY_PORT" -c "$1"
}

# standby_replayed: waits (at most 60 s) until the standby has replayed
# what the primary has written now.  The insert position, not the flush
# one: with the bed's synchronous_commit = off a commit returns before its
# record is flushed, so the flush position can be short of the last
# commits.
standby_replayed() {
    local lsn i
    lsn=$(psql_q "select pg_current_wal_insert_lsn()")
    for i in $(seq 1 600); do
        [ "$(standby_q "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
        sleep 0.1
    done
    fail "the standby replayed only to $(standby_q "select pg_last_wal_replay_lsn()"), not $lsn (the primary: $(psql_q "select sent_lsn || ' sent, ' || replay_lsn || ' replayed' from pg_stat_replication"))"
}

# check_consistent INDEX [TABLE [LOG]]: the consistency checker must find no
# difference; on one, what the syncer's LOG says besides retries and stats.
check_consistent() {
    local out
    if ! out=$("$CHECKER_BIN" --index "$1" --table "${2:-some_table}" 2>&1); then
        echo "$out" | tail -n 30 >&2
        if [ -n "${3:-}" ]; then
            echo "the syncer's log, without retries and stats lines:" >&2
            grep -vE 'sink unavailable|cannot save the cursor yet|: stats: ' "$3" | tail -n 60 >&2
        fi
        fail "index $1 differs from table ${2:-some_table}"
    fi
    echo "$out" | tail -n 3
}

# fuzz_crash_loop SINK SECONDS: the crash-loop fuzz (tools/demo --no-bed)
# into SINK: the syncer in a crash loop under crash injection while the
# load generator runs 32 connections of nasty transactions for SECONDS;
# then the load stops, the syncer catches up, and the checker must find
# zero differences, with tombstones pruned on the way.  The syncer must
# have been killed at least once every ~12 s on average.
fuzz_crash_loop() {
    local sink=$1 seconds=$2 out=$TXIDSYNC_TEST_TMP/demo.out kills want
    # 0.05 per crash point: under this load the syncer reads few batches a
    # second on a 2-core machine, and 0.02 (the demo's) gave 14 to 26 kills
    # in 180 s, at the edge of the floor below.
    if ! (cd "$TXIDSYNC_ROOT" && DEMO_SINK=$sink DEMO_DURATION=$seconds DEMO_CONNECTIONS=32 \
        DEMO_INDEX="$(test_index)" DEMO_CRASH_PROBABILITY=0.05 DEMO_PRUNE=1 \
        DEMO_KEEP_LOGS="$TXIDSYNC_TEST_TMP/logs" tools/demo --no-bed >"$out" 2>&1); then
        cat "$out"
        tail -n 40 "$TXIDSYNC_TEST_TMP/logs/syncer.log" 2>/dev/null || true
        fail "the crash-loop fuzz into $sink ended with differences or an error"
    fi
    cat "$out"
    kills=$(sed -n 's/.*kills (crash injection): *\([0-9]*\).*/\1/p' "$out")
    want=$((seconds / 12))
    [ -n "$kills" ] && [ "$kills" -ge "$want" ] ||
        fail "only ${kills:-no} kills in $seconds s (want at least $want: one per ~12 s)"
    grep -q 'differences: *0$' "$out" || fail "no zero-difference line"
    # The syncer pruned on the way (every second, no margin): what its
    # stored cursors had passed, under the kills.  The log mode merges its
    # change log first and deletes tombstones only once no log entry is
    # left below the horizon, which a slow machine may not reach under
    # this load: either count will do.
    local pruned
    pruned=$(sed -n 's/^  pruned: *\([0-9]*\) tombstones, \([0-9]*\) change-log.*/\1 \2/p' "$out")
    [ "${DEMO_SOURCE:-primary}" = standby ] || [ "${pruned:-0 0}" != "0 0" ] ||
        fail "nothing was pruned (${pruned:-no pruned line})"
}

# run_checker ARGS...: runs the consistency checker, output in
# $TXIDSYNC_TEST_TMP/out and .../err, exit status in $rc.
run_checker() {
    rc=0
    "$CHECKER_BIN" "$@" >"$TXIDSYNC_TEST_TMP/out" 2>"$TXIDSYNC_TEST_TMP/err" || rc=$?
}

# expect_rc WANT WHAT: the last run_checker must have exited WANT.
expect_rc() {
    [ "$rc" = "$1" ] || {
        cat "$TXIDSYNC_TEST_TMP/out" "$TXIDSYNC_TEST_TMP/err" >&2
        fail "$2: expected exit $1, got $rc"
    }
}

# expect_line REGEX: the last run_checker printed a line matching REGEX.
expect_line() {
    grep -Eq -- "$1" "$TXIDSYNC_TEST_TMP/out" || {
        cat "$TXIDSYNC_TEST_TMP/out" >&2
        fail "no output line matches: $1"
    }
}

# expect_count NAME N: the count line "NAME: N" of the last run_checker.
expect_count() {
    expect_line "^$1: +$2\$"
}
