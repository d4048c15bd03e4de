#!/usr/bin/env bash
# The facts the cursor's rule for a hot standby rests on (docs/design.md
# §4, "On a hot standby"), against a real streaming standby (tests/bed
# standby-up):
#  1. while a transaction holding an id runs on the primary and later ones
#     commit, the standby's pg_current_snapshot() lists no xip, though the
#     primary's lists it;
#  2. its xmin is that transaction's id, below the ids that committed
#     after it (so "below xmin, ended" holds and xmin holds them back);
#  3. once it ends and is replayed, xmin passes it;
#  4. tests/bed promote makes it a primary, whose snapshots list xip again.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

standby_up
trap 'standby_down; [ -n "${holder:-}" ] && kill "$holder" 2>/dev/null || true' EXIT
standby() { psql -X -q -v ON_ERROR_STOP=1 -At -p "$TXIDSYNC_STANDBY_PORT" -c "$1"; }
# replayed: the standby has replayed everything the primary wrote so far.
replayed() {
    local lsn
    lsn=$(psql_q "select pg_current_wal_insert_lsn()")
    past() { [ "$(standby "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ]; }
    wait_for 30 past
}
snapshot="select pg_snapshot_xmin(s), pg_snapshot_xmax(s), coalesce(array_to_string(array(select pg_snapshot_xip(s)), ','), '')
            from pg_current_snapshot() as s"

psql_q "create table standby_probe (id int primary key)"
held_file=$TXIDSYNC_TEST_TMP/held
psql -X -q -At -c "begin" -c "select pg_current_xact_id()" -c "select pg_sleep(6)" -c "commit" \
    >"$held_file" 2>&1 &
holder=$!
wait_for 10 test -s "$held_file"
held=$(head -n 1 "$held_file")
psql_q "insert into standby_probe values (1)"
later=$(psql_q "insert into standby_probe values (2) returning pg_current_xact_id()")
replayed
IFS='|' read -r sxmin sxmax sxip <<<"$(standby "$snapshot")"
IFS='|' read -r pxmin pxmax pxip <<<"$(psql_q "$snapshot")"
[ -z "$sxip" ] || fail "the standby's snapshot lists xip '$sxip'"
[[ ",$pxip," == *",$held,"* ]] || fail "the primary's snapshot xip '$pxip' lacks the running $held"
echo "1. running $held: the primary's xip is '$pxip', the standby's is empty"
[ "$sxmin" = "$held" ] || fail "the standby's xmin is $sxmin, not the running $held"
[ "$sxmax" -gt "$later" ] || fail "the standby's xmax $sxmax is not above the later commit $later"
echo "2. the standby's xmin is $sxmin (the running one), xmax $sxmax above the later commit $later"

wait "$holder"
holder=
psql_q "insert into standby_probe values (3)"
replayed
IFS='|' read -r sxmin sxmax sxip <<<"$(standby "$snapshot")"
[ "$sxmin" -gt "$held" ] || fail "the standby's xmin $sxmin did not pass $held after it ended"
echo "3. $held ended: the standby's xmin is $sxmin"

[ "$(standby "select pg_is_in_recovery()")" = t ] || fail "the standby is not in recovery"
"$TXIDSYNC_ROOT/tests/bed" promote "$TXIDSYNC_BED"
promoted() { [ "$(standby "select pg_is_in_recovery()")" = f ]; }
wait_for 30 promoted
psql -X -q -At -p "$TXIDSYNC_STANDBY_PORT" -c "begin" -c "select pg_current_xact_id()" -c "select pg_sleep(3)" \
    -c "commit" >"$held_file" 2>&1 &
holder=$!
wait_for 10 test -s "$held_file"
held=$(head -n 1 "$held_file")
# A snapshot's xmax is one past the newest id that ended: the running one
# is listed once a later one commits.
standby "insert into standby_probe values (4)"
IFS='|' read -r sxmin sxmax sxip <<<"$(standby "$snapshot")"
[[ ",$sxip," == *",$held,"* ]] || fail "the promoted server's xip '$sxip' lacks the running $held"
wait "$holder"
holder=
echo "4. promoted: no longer in recovery, its snapshots list xip again ('$sxip')"
