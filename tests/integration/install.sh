#!/usr/bin/env bash
# make install DESTDIR=... PREFIX=/usr: the expected tree, man pages that
# render (and carry every option of --help), a unit that systemd-analyze
# verifies without a word, and make uninstall leaving nothing behind.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

dest=$TXIDSYNC_TEST_TMP/root
make -s -C "$TXIDSYNC_ROOT" install DESTDIR="$dest" PREFIX=/usr BUILD="${BUILD:-build}" >/dev/null
# The log mode's C trigger goes where the server loads modules from (the
# Makefile's PG_CONFIG: the newest server's).
pg_config=$(ls /usr/lib/postgresql/*/bin/pg_config | LC_ALL=C sort | tail -n 1)
pkglib=$("$pg_config" --pkglibdir)
want="usr/bin/txidsync
usr/bin/txidsync-consistency-check
${pkglib#/}/txidsync_log.so
usr/lib/systemd/system/txidsync.service
usr/lib/sysusers.d/txidsync.conf
usr/share/doc/txidsync/README.md
usr/share/doc/txidsync/txidsync.ini.example
usr/share/man/man1/txidsync-consistency-check.1
usr/share/man/man1/txidsync.1
usr/share/txidsync/sql/txidsync.sql"
want=$(LC_ALL=C sort <<<"$want")
got=$(cd "$dest" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
[ "$got" = "$want" ] || fail "make install put: $got"
"$dest/usr/bin/txidsync" --version | grep -q '^txidsync [0-9]' || fail "the installed txidsync does not run"
echo "1. make install DESTDIR PREFIX=/usr: $(wc -l <<<"$got") files where expected"

page=$(MANWIDTH=100 man -l "$dest/usr/share/man/man1/txidsync.1" 2>"$TXIDSYNC_TEST_TMP/man.err")
[ ! -s "$TXIDSYNC_TEST_TMP/man.err" ] || fail "man -l complains: $(cat "$TXIDSYNC_TEST_TMP/man.err")"
grep -q '^NAME' <<<"$page" && grep -qE 'txidsync +- +Copies +tracked' <<<"$page" ||
    fail "the man page has no NAME: $(head -n 5 <<<"$page")"
missing=0
for flag in $("$TXIDSYNC_BIN" --help | grep -oE '^  --[a-z-]+' | tr -d ' '); do
    grep -qF -- "$flag" <<<"$page" || { echo "not in the man page: $flag" >&2; missing=1; }
done
[ $missing -eq 0 ] || fail "the man page lacks options of --help"
man -l "$dest/usr/share/man/man1/txidsync-consistency-check.1" 2>/dev/null | grep -q 'TXIDSYNC-CONSISTENCY-CHECK(1)' ||
    fail "the checker's man page does not render under its installed name"
echo "2. the man pages render, with every option of --help"

unit=$dest/usr/lib/systemd/system/txidsync.service
grep -qx 'ExecStart=/usr/bin/txidsync --config /etc/txidsync/txidsync.ini' "$unit" || fail "the unit's ExecStart: $(grep ExecStart "$unit")"
grep -qx 'Restart=on-failure' "$unit" && grep -qx 'User=txidsync' "$unit" && grep -qx 'NoNewPrivileges=yes' "$unit" ||
    fail "the unit lacks Restart=on-failure, its user or hardening"
# systemd-analyze wants ExecStart's program to exist: the installed one.
sed "s|^ExecStart=/usr/bin/|ExecStart=$dest/usr/bin/|" "$unit" >"$TXIDSYNC_TEST_TMP/txidsync.service"
systemd-analyze verify --man=no "$TXIDSYNC_TEST_TMP/txidsync.service" >"$TXIDSYNC_TEST_TMP/verify" 2>&1 ||
    fail "systemd-analyze verify failed: $(cat "$TXIDSYNC_TEST_TMP/verify")"
[ ! -s "$TXIDSYNC_TEST_TMP/verify" ] || fail "systemd-analyze verify says: $(cat "$TXIDSYNC_TEST_TMP/verify")"
echo "3. the unit passes systemd-analyze verify without a word"

# The example configuration is one txidsync reads (a bad key would be exit 2).
sed 's/^pg = .*/pg = dbname=nonexistent_db_for_the_test/; s|^es-ca-file.*||; s|^es-password-file.*||; s|^es-user.*||' \
    "$dest/usr/share/doc/txidsync/txidsync.ini.example" >"$TXIDSYNC_TEST_TMP/example.ini"
expect 1 'nonexistent_db_for_the_test' "$TXIDSYNC_BIN" --config "$TXIDSYNC_TEST_TMP/example.ini" --once --metrics-listen ''
echo "4. the example config parses (it fails only on its made-up database)"

make -s -C "$TXIDSYNC_ROOT" uninstall DESTDIR="$dest" PREFIX=/usr BUILD="${BUILD:-build}"
left=$(cd "$dest" && find . -type f | wc -l)
[ "$left" = 0 ] || fail "make uninstall left $left files"
echo "5. make uninstall removed every file"
