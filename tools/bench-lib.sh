# Helpers of tools/bench and tools/bench-streams (sourced, not run).  The
# caller sets pg_pid and srv_pid (the server under test, for timed) and
# bench_name (for messages).

say() { echo "${bench_name:-bench}: $*" >&2; }
die() { say "$*"; exit 1; }

q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# median NUMBER...: the median (mean of the middle two for an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1}
        END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2];
              else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# calc EXPR: floating-point arithmetic.
calc() { awk "BEGIN { print $* }"; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }

# cpu PID: CPU seconds of a process, with its reaped children (postmaster:
# every backend that ended); 0 when unknown.
cpu() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo 0; return; }
    awk '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13 + $14 + $15) / 100 }' "/proc/$1/stat"
}
# own_cpu PID: CPU seconds of the process itself (utime + stime).
own_cpu() {
    awk '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / 100 }' "/proc/$1/stat"
}
now() { date +%s.%N; }

# The processes a script started, for its cleanup; forget PID: one that was
# waited for is no longer ours to stop (its number may be reused).
started=()
forget() {
    local p keep=()
    for p in "${started[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    started=("${keep[@]}")
}
# OpenSearch at $es: rm_index NAME drops an index if there; count_docs NAME
# counts its documents after a refresh.
rm_index() { curl -sS -o /dev/null -X DELETE "$es/$1?ignore_unavailable=true" || true; }
count_docs() {
    curl -sS -f -o /dev/null -X POST "$es/$1/_refresh"
    curl -sS -f "$es/$1/_count" | jq -r .count
}
# totals_rate FILE: the rows per second of a load generator's totals line.
totals_rate() {
    awk '/^totals:/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
         END { printf "%.0f", v["rows"] / v["seconds"] }' "$1"
}

# mk_rows_table NAME ROWS: a tracked table (notify off) of ROWS realistic
# rows: four text fields and a small JSON object, about 300 bytes as a
# document.
mk_rows_table() {
    q -v rows="$2" <<SQL >/dev/null
drop table if exists public.$1;
create table public.$1 (
    id bigint primary key,
    name text not null,
    email text not null,
    city text not null,
    note text,
    data jsonb not null
);
insert into public.$1
select i,
       format('%s %s', (array['Ada','Bela','Chen','Dora','Emil','Fumiko','Goran','Hana'])[1 + i % 8],
              (array['Novak','Okafor','Petit','Quinn','Rossi','Sato','Tanaka','Ueda','Varga'])[1 + i % 9]),
       format('user%s@example.org', i),
       (array['Lisbon','Oslo','Kyoto','Quito','Accra','Perth','Tallinn'])[1 + i % 7],
       format('customer since %s, tier %s, prefers %s delivery', 2000 + i % 25, 1 + i % 4,
              (array['morning','evening','weekend'])[1 + i % 3]),
       jsonb_build_object('sku', format('SKU-%s', lpad(i::text, 7, '0')),
                          'price', round((1 + (i * 7919) % 50000 / 100.0)::numeric, 2),
                          'qty', (i * 31) % 97,
                          'active', i % 5 <> 0,
                          'tags', jsonb_build_array('t' || i % 13, 't' || i % 17))
  from generate_series(1::bigint, :rows) as i;
select txidsync.track('public.$1', notify => false);
vacuum analyze public.$1;
SQL
}

# mk_demo_table NAME ROWS NOTIFY: a table of the load generator's shape.
mk_demo_table() {
    q <<SQL >/dev/null
drop table if exists public.$1;
create table public.$1 (id bigint generated always as identity primary key, name text, data jsonb);
insert into public.$1 (name, data)
select format('row %s', i), jsonb_build_object('n', i, 'sku', format('SKU-%s', i), 'qty', i % 97)
  from generate_series(1, $2) as i;
select txidsync.track('public.$1', notify => $3);
vacuum analyze public.$1;
SQL
}

# timed OUT_PREFIX CMD...: runs CMD (stdin inherited) under /usr/bin/time -v
# and writes OUT_PREFIX.{out,err,time} and OUT_PREFIX.vals: wall seconds,
# user+sys CPU seconds, peak RSS in KiB, CPU seconds of postgres and of
# the server under test (srv_pid) during the run.  Fails when CMD fails.
timed() {
    local o=$1
    shift
    local p0 e0 t0 t1 rc=0
    p0=$(cpu "$pg_pid")
    e0=$(cpu "$srv_pid")
    t0=$(now)
    /usr/bin/time -v -o "$o.time" "$@" >"$o.out" 2>"$o.err" || rc=$?
    t1=$(now)
    sleep 0.5 # let the postmaster reap the run's backend
    local wall cpu_s rss
    wall=$(calc "$t1 - $t0")
    cpu_s=$(awk -F': ' '/User time|System time/ { s += $2 } END { print s }' "$o.time")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$o.time")
    echo "$wall $cpu_s $rss $(calc "$(cpu "$pg_pid") - $p0") $(calc "$(cpu "$srv_pid") - $e0")" >"$o.vals"
    if [ $rc -ne 0 ]; then
        tail -n 20 "$o.err" >&2
        die "failed ($rc): $*"
    fi
}

machine() {
    local model mem
    model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "$(nproc) CPUs ($model), $mem memory, Linux $(uname -r)"
}

# PGSync on the bed, for tools/bench-pgsync and tools/bench-nested.
# pgsync_setup WORK: installs PGSync $BENCH_PGSYNC_VERSION (7.3.0) into
# build/pgsync-venv the first time, starts Debian's redis-server on a free
# port (in started), restarts the bed's Postgres with wal_level = logical
# and installs sql/txidsync.sql again; sets venv, redis_port, pgsync_vars.
# pgsync_env CMD...: runs CMD with PGSync's settings in its environment.
# pgsync_restore: stops what the script started and gives Postgres its
# wal_level back (for the script's EXIT trap).
pgsync_setup() {
    : "${BENCH_PGSYNC_VERSION:=7.3.0}"
    venv=$root/build/pgsync-venv
    if ! "$venv/bin/pgsync" --version 2>/dev/null | grep -q "$BENCH_PGSYNC_VERSION"; then
        say "installing PGSync $BENCH_PGSYNC_VERSION into $venv (the first time only)"
        python3 -m venv "$venv" && "$venv/bin/pip" install -q "pgsync==$BENCH_PGSYNC_VERSION" >&2 ||
            die "cannot install PGSync $BENCH_PGSYNC_VERSION from the Python package index"
    fi
    redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    pgsync_vars=(PG_HOST=127.0.0.1 PG_PORT="$PGPORT" PG_USER="${PGUSER:-postgres}" PG_DATABASE="$PGDATABASE"
        OPENSEARCH=true ELASTICSEARCH=false ELASTICSEARCH_HOST=127.0.0.1 ELASTICSEARCH_PORT="${es##*:}"
        REDIS_HOST=127.0.0.1 REDIS_PORT="$redis_port" CHECKPOINT_PATH="$1" LOG_INTERVAL=5)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$1/redis.log" 2>&1 &
    started+=($!)
    say "restarting postgres with wal_level = logical"
    q -c "alter system set wal_level = 'logical'" >/dev/null
    tests/bed pg-stop "$TXIDSYNC_BED" >/dev/null && tests/bed pg-start "$TXIDSYNC_BED" >/dev/null ||
        die "cannot restart postgres with wal_level = logical"
    [ "$(q -c 'show wal_level')" = logical ] || die "wal_level is not logical after the restart"
    q -f "$root/sql/txidsync.sql" >/dev/null
}
pgsync_env() { env "${pgsync_vars[@]}" "$@"; }
pgsync_restore() {
    local p
    for p in "${started[@]}"; do
        kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
        kill -KILL -- "-$p" 2>/dev/null || true
    done
    q -c "alter system reset wal_level" >/dev/null 2>&1 || true
    tests/bed pg-stop "$TXIDSYNC_BED" >/dev/null 2>&1 && tests/bed pg-start "$TXIDSYNC_BED" >/dev/null 2>&1 || true
}
