-- txidsync: change tracking for the MVCC snapshot cursor (see docs/design.md).
--
-- Installs schema txidsync into the current database.  Idempotent: run it
-- again (psql -v ON_ERROR_STOP=1 -f sql/txidsync.sql) to upgrade the
-- functions in place; tracked tables, their side tables and the txid offset
-- are kept.  Needs PostgreSQL 13 or later (xid8, pg_current_xact_id).
--
-- What it provides:
--
--   txidsync.current_txid()      64-bit id of the current transaction plus
--                                the txid offset (assigns an id: writers only)
--   txidsync.snapshot()          (xmin, xmax, xip) of the calling statement's
--                                snapshot, offset added; never assigns an id
--   txidsync.txid_offset()       the offset, an inlined constant
--   txidsync.configure_txid_offset(at_least)
--                                raises the offset after a restore so that
--                                new ids stay above every recorded one
--   txidsync.track(tbl, notify)  starts tracking a table with a primary key
--   txidsync.untrack(tbl)        (any number of columns) / stops it and drops
--                                its state
--   txidsync.track_begin(tbl, notify), txidsync.track_step(tbl, chunk),
--   call txidsync.track_online(tbl, notify, chunk)
--                                tracking a big table online: the triggers
--                                under a short lock, the existing rows'
--                                state filled in chunks (txidsync track
--                                drives it with progress)
--   txidsync.tracked             the catalog of tracked tables
--   txidsync.forget_dropped()    cleans up after tables dropped while tracked
--                                (an event trigger does it on DROP when the
--                                installing role is a superuser)
--   txidsync.refresh_start(tbl, where_sql, reason)
--   txidsync.refresh_step(id, chunk)
--                                a refresh: re-sends the current state of a
--                                table's rows, one short transaction a chunk
--                                (txidsync refresh drives it)
--   txidsync.refreshes           every refresh and its progress
--   txidsync.columns_noted(tbl)  starts a refresh when the columns of tbl
--                                changed since it was last called (the
--                                syncer calls it)
--   txidsync.grant_reader(role), txidsync.revoke_reader(role)
--                                what a syncer's role needs to read every
--                                tracked table, now and tracked later
--
-- The txid offset: every id txidsync records or reports is
-- pg_current_xact_id() (64-bit, with epoch) plus an offset, 0 at first.
-- A database restored from a dump into another cluster keeps its recorded
-- txids, but that cluster's xid counter may be lower, so new writes would
-- get ids the syncer's cursor has already passed and they would never be
-- synced.  After such a restore, before the application writes again, run
--
--   select txidsync.configure_txid_offset(<the cursor's xid_next>);
--
-- (the daemon refuses to start on a database whose ids are behind its
-- cursor and prints this command with the number filled in).  It raises the
-- offset so that new ids are above every recorded txid and that number.
--
-- For a tracked table T the side table txidsync.rows_<T> holds one row per
-- key that ever existed: (key, version, txid, deleted), where key is one
-- column for a one-column primary key and key1, key2, ... (the primary
-- key's columns in index order, same types) for a composite one.  version strictly
-- increases with every committed change of the key, across delete and
-- re-insert; txid is the top-level transaction that changed it last; a
-- deleted key stays as a tombstone.  The index (txid, key...) serves the
-- syncer's batch query.
--
-- Two-phase commit: a table tracked with notify => true cannot be written
-- in a transaction that is then prepared (PREPARE TRANSACTION refuses a
-- transaction that executed NOTIFY).  The default, notify => false, keeps
-- 2PC working; the syncer's adaptive poll finds the changes.
--
-- Notification channel: when tracked with notify => true, every statement
-- that writes T sends NOTIFY on the channel "txidsync_<T>" (the table name,
-- with its schema unless public, cut to 63 bytes; made unique by the
-- table's oid when another tracked table has it; stored in
-- txidsync.tracked.channel),
-- with an empty payload.  NOTIFY serialises committing writers, so it is
-- optional per table and off by default: BENCHMARKS.md measured writers of
-- a notifying table at less than half the throughput of a quiet one, while
-- the syncer's adaptive poll (20 ms while changes flow) keeps a quiet
-- table's changes well within a tenth of a second of their commit.  Turn
-- it on for the lowest latency after idle periods (without it, the first
-- change after a pause waits up to the syncer's --poll-interval).
--
-- Privileges: track() must be run by a role that owns the table (it adds
-- triggers).  The row trigger function is SECURITY DEFINER, so any role that
-- may write the table also maintains the side table; because it does not
-- pin search_path (that costs every write), all generated code qualifies
-- every name and operator.  The syncer's role needs USAGE on schema
-- txidsync and SELECT on txidsync.tracked, txidsync.refreshes, the side
-- tables and the tracked tables: select txidsync.grant_reader('ROLE')
-- grants all that, and track() grants each new table to such readers.

-- One transaction: a failed install or upgrade leaves nothing half done.
begin;

create schema if not exists txidsync;

create table if not exists txidsync.tracked (
    relid regclass primary key,   -- dumped by name, so it survives pg_dump
    side_table name not null unique, -- a table in schema txidsync
    notify boolean not null,
    channel text not null,
    key_columns name[] not null,  -- the primary key's columns, in index order
    key_types text[] not null     -- their types, as format_type() spells them
);

-- Upgrade from an installation of one-column keys only (key_column,
-- key_type): the same keys as one-element arrays.  Their side tables keep
-- their one key column "key", which is still the layout of a one-column
-- key, so the syncer's cursors and the targets' ids stay valid.
do $install$
begin
    if exists (select from pg_catalog.pg_attribute
                where attrelid = 'txidsync.tracked'::pg_catalog.regclass
                  and attname = 'key_column' and not attisdropped) then
        alter table txidsync.tracked add column key_columns name[], add column key_types text[];
        update txidsync.tracked set key_columns = array[key_column], key_types = array[key_type];
        alter table txidsync.tracked
            alter column key_columns set not null, alter column key_types set not null,
            drop column key_column, drop column key_type;
    end if;
end
$install$;

-- The fingerprint of the table's columns the last time they were noted
-- (txidsync.columns_noted); null: not noted yet.
alter table txidsync.tracked add column if not exists columns_seen text;
-- Tracking online (track_begin, track_step): whether the state of the rows
-- that existed at track_begin is still being filled, the last key filled
-- (text per key column; null: none yet), and how many rows were filled.
alter table txidsync.tracked add column if not exists filling boolean not null default false;
alter table txidsync.tracked add column if not exists fill_after text[];
alter table txidsync.tracked add column if not exists fill_done bigint not null default 0;
-- The tracking mode (docs/design.md, "Tracking modes"): 'side', the row
-- trigger keeps the side table's row of each key; 'log', it appends to the
-- table's change log txidsync.log_<T> and the side table is the state of
-- the keys before the log (filled by track and track_step).
alter table txidsync.tracked add column if not exists mode text not null default 'side';
do $install$
begin
    if not exists (select from pg_catalog.pg_constraint
                    where conrelid = 'txidsync.tracked'::pg_catalog.regclass
                      and conname = 'tracked_mode_check') then
        alter table txidsync.tracked add constraint tracked_mode_check
            check (mode in ('side', 'log'));
    end if;
end
$install$;

-- The C row trigger of the change-log mode (sql/txidsync_log.c, built as
-- txidsync_log.so; make install puts it into the server's library
-- directory).  Creating a C function needs a superuser and the module on
-- the server; without either, tables tracked with mode => 'log' get a
-- generated plpgsql trigger that does the same, slower.
do $install$
begin
    create or replace function txidsync._log_row_c() returns trigger
        language c as 'txidsync_log', 'txidsync_log_row';
exception when others then
    raise notice 'txidsync: no C trigger for the change-log mode (%); tables tracked with '
                 'mode => ''log'' use a plpgsql trigger', sqlerrm;
end
$install$;

-- The roles txidsync.grant_reader() made readers: each table tracked later
-- is made readable by them too (txidsync._grant_readers).
create table if not exists txidsync.readers (
    role_name name primary key
);

-- Nested documents (docs/design.md, "Nested documents"): the members
-- txidsync.nest() gave the documents of tracked table root.  path is the
-- member's place: its parent's path (empty for the root), a dot, its name
-- ('items', 'items.product').  kind 'one': the parent's columns reference
-- rel's primary key (an object, or null); 'many': rel's columns reference
-- the parent's primary key (an array in rel's key order), or, through the
-- join table via, via's via_columns reference the parent's key and its
-- columns rel's key.
create table if not exists txidsync.nested (
    root regclass not null references txidsync.tracked (relid) on delete cascade,
    path text not null,
    kind text not null check (kind in ('one', 'many')),
    rel regclass not null,
    columns name[] not null,
    via regclass,
    via_columns name[],
    primary key (root, path)
);

-- The offset is the constant body of a SQL function, so the planner inlines
-- it into the trigger's cached plan: reading it costs nothing per row.  It
-- is STABLE, not IMMUTABLE, on purpose: the planner pre-evaluates an
-- immutable call without recording a dependency, so replacing the function
-- would leave plans with the old offset; an inlined stable function is a
-- recorded dependency and replacing it invalidates them.  Created only when
-- missing: re-running this file must not reset the offset.
do $install$
begin
    if to_regprocedure('txidsync.txid_offset()') is null then
        create function txidsync.txid_offset() returns bigint
            language sql stable parallel safe
            as 'select 0::bigint';
    end if;
end
$install$;
alter function txidsync.txid_offset() stable;

-- Returns the id of the current top-level transaction (assigning one if it
-- has none yet) as a 64-bit integer with the txid offset added.  Only
-- writers call it; the syncer's reads must never assign an id.
create or replace function txidsync.current_txid() returns bigint
    language sql volatile
    as $$ select pg_catalog.pg_current_xact_id()::pg_catalog.text::bigint
                 operator(pg_catalog.+) txidsync.txid_offset() $$;

-- Returns the snapshot of the calling statement as one row (xmin, xmax,
-- xip) with the txid offset added, xip sorted.  STABLE matters: a
-- non-volatile function sees the snapshot of the query that calls it, so a
-- single statement that selects this and rows sees both under one
-- snapshot.  Declared as a set-returning function so that the planner
-- inlines it into the calling query (no planning of its own per call).
create or replace function txidsync.snapshot()
    returns table (xmin bigint, xmax bigint, xip bigint[])
    language sql stable rows 1
    as $$
    select pg_catalog.pg_snapshot_xmin(s)::pg_catalog.text::bigint
               operator(pg_catalog.+) txidsync.txid_offset(),
           pg_catalog.pg_snapshot_xmax(s)::pg_catalog.text::bigint
               operator(pg_catalog.+) txidsync.txid_offset(),
           array(select x::pg_catalog.text::bigint operator(pg_catalog.+) txidsync.txid_offset()
                   from pg_catalog.pg_snapshot_xip(s) as x
                  order by 1)
      from pg_catalog.pg_current_snapshot() as s
    $$;

-- Cuts an identifier to at most max_bytes bytes without splitting a
-- multibyte character (identifiers are limited to 63 bytes).
create or replace function txidsync._ident_cut(s text, max_bytes int) returns text
    language plpgsql immutable strict
    as $$
begin
    while octet_length(s) > max_bytes loop
        s := left(s, -1);
    end loop;
    return s;
end
$$;

-- Raises the txid offset so that every transaction id assigned after this
-- call commits is greater than max(every recorded txid) + 1 and greater than
-- at_least (pass the cursor's xid_next, which can lie above every recorded
-- txid).  The offset never decreases.  Takes SHARE ROW EXCLUSIVE locks on
-- the tracked tables, so writers wait for it and re-plan with the new offset.
-- Returns the offset now in force.  Run it after restoring a dump into
-- another cluster, before the application writes again.
create or replace function txidsync.configure_txid_offset(at_least bigint default null)
    returns bigint
    language plpgsql
    as $$
declare
    t record;
    m bigint;
    floor_id bigint := coalesce(at_least, 0);
    cur_offset bigint := txidsync.txid_offset();
    raw_now bigint;
    new_offset bigint;
begin
    for t in select relid, side_table from txidsync.tracked order by side_table loop
        -- A table dropped without untrack leaves a row naming a missing
        -- OID (see forget_dropped); its side table still counts.
        if exists (select from pg_catalog.pg_class where oid = t.relid::oid) then
            execute format('lock table %s in share row exclusive mode', t.relid);
        end if;
        if to_regclass(format('txidsync.%I', t.side_table)) is not null then
            execute format('select max(txid) from txidsync.%I', t.side_table) into m;
            if m is not null and m + 1 > floor_id then
                floor_id := m + 1;
            end if;
        end if;
        if to_regclass(format('txidsync.%I', txidsync._log_table(t.side_table))) is not null then
            execute format('select max(txid) from txidsync.%I', txidsync._log_table(t.side_table))
               into m;
            if m is not null and m + 1 > floor_id then
                floor_id := m + 1;
            end if;
        end if;
    end loop;
    -- Later transactions get raw ids > raw_now, so with this offset their
    -- ids are >= floor_id + 1.
    raw_now := pg_catalog.pg_current_xact_id()::text::bigint;
    new_offset := greatest(cur_offset, floor_id - raw_now);
    if new_offset <> cur_offset then
        execute format('create or replace function txidsync.txid_offset() returns bigint '
                       'language sql stable parallel safe as %L',
                       format('select %s::bigint', new_offset));
        -- The C trigger of the log mode has the offset as an argument.
        for t in select tr.relid, tr.notify from txidsync.tracked as tr
                  where tr.mode = 'log'
                    and exists (select from pg_catalog.pg_class as c where c.oid = tr.relid::oid)
        loop
            perform txidsync._track(t.relid, t.notify, true);
        end loop;
    end if;
    return new_offset;
end
$$;

-- Trigger function for the optional statement-level NOTIFY of a tracked
-- table; the channel is the trigger's first argument.
create or replace function txidsync.notify_trigger() returns trigger
    language plpgsql
    as $$
begin
    perform pg_catalog.pg_notify(TG_ARGV[0], '');
    return null;
end
$$;

-- The primary key of tbl: per column, in index order, its name, type and
-- the schema of its btree equality operator.  Empty when it has none.
create or replace function txidsync._primary_key(tbl regclass,
        out names name[], out types text[], out op_schemas name[])
    language sql stable
    as $$
    select array_agg(a.attname order by k.i),
           array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) order by k.i),
           array_agg(opn.nspname order by k.i)
      from pg_catalog.pg_index i
     cross join lateral unnest(i.indkey::pg_catalog.int2[], i.indclass::pg_catalog.oid[])
           with ordinality as k(attnum, opclass, i)
      join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
      join pg_catalog.pg_opclass oc on oc.oid = k.opclass
      left join pg_catalog.pg_amop ao on ao.amopfamily = oc.opcfamily and ao.amopstrategy = 3
                                     and ao.amoplefttype = oc.opcintype
                                     and ao.amoprighttype = oc.opcintype
      left join pg_catalog.pg_operator o on o.oid = ao.amopopr
      left join pg_catalog.pg_namespace opn on opn.oid = o.oprnamespace
     where i.indrelid = tbl and i.indisprimary
    $$;

-- The name of key column i (1-based) of a side table with n key columns:
-- "key" for a one-column key (the layout from before composite keys),
-- key1, key2, ... otherwise.
create or replace function txidsync._side_key(i int, n int) returns text
    language sql immutable
    as $$ select case when n = 1 then 'key' else 'key' || i end $$;

-- The change log and the version sequence of the tracked table whose
-- side table (in schema txidsync) is side: rows_<T> has log_<T> and ver_<T>.
create or replace function txidsync._log_table(side name) returns name
    language sql immutable
    as $$ select ('log_' || substr(side, 6))::name $$;
create or replace function txidsync._version_seq(side name) returns name
    language sql immutable
    as $$ select ('ver_' || substr(side, 6))::name $$;

-- Joins, for each key column i, format(fmt, side column, table column,
-- equality operator) with sep.
create or replace function txidsync._key_list(cols name[], ops name[], fmt text, sep text)
    returns text
    language sql immutable
    as $$
    select string_agg(pg_catalog.format(fmt, txidsync._side_key(i::int, cardinality(cols)),
                                        pg_catalog.quote_ident(cols[i]),
                                        pg_catalog.format('operator(%I.=)', ops[i])), sep
                      order by i)
      from generate_subscripts(cols, 1) as i
    $$;

-- Joins, for each column of cols (a tracked table's key columns, in
-- order), format(fmt, the column quoted, the side table's key column
-- quoted) with ', '.
create or replace function txidsync._col_list(cols name[], fmt text) returns text
    language sql immutable
    as $$
    select string_agg(pg_catalog.format(fmt, pg_catalog.quote_ident(cols[i]),
                                        pg_catalog.quote_ident(
                                            txidsync._side_key(i::int, cardinality(cols)))),
                      ', ' order by i)
      from generate_subscripts(cols, 1) as i
    $$;

-- Starts tracking tbl, which must have a primary key (of any number of
-- columns): creates its side table, backfills every existing row (version
-- 1, the txid of this call), generates its trigger function and installs
-- the row, TRUNCATE and (when notify) NOTIFY triggers, and records it in
-- txidsync.tracked.  Writers of tbl wait while this runs.  On a table
-- already tracked it keeps the side table and its rows, regenerates the
-- trigger function (so a new version of this file takes effect) and
-- applies notify (off by default, see "Notification channel" above).
-- The columns of rel: their names, types and nullability, in order.
create or replace function txidsync._rel_columns(rel regclass) returns text
    language sql stable
    as $$
    select pg_catalog.string_agg(
               a.attname || ':' || pg_catalog.format_type(a.atttypid, a.atttypmod) || ':' ||
               a.attnotnull::text, ',' order by a.attnum)
      from pg_catalog.pg_attribute as a
     where a.attrelid = rel and a.attnum > 0 and not a.attisdropped
$$;

-- What shapes the nested members of tbl's documents: their definitions
-- and the columns of their tables; null when it has none.
create or replace function txidsync._nest_fingerprint(tbl regclass) returns text
    language sql stable
    as $$
    select pg_catalog.string_agg(
               pg_catalog.concat_ws(':', n.path, n.kind, n.rel::oid, n.columns, n.via::oid,
                                    n.via_columns, txidsync._rel_columns(n.rel),
                                    txidsync._rel_columns(n.via)), ';' order by n.path)
      from txidsync.nested as n
     where n.root = tbl
$$;

-- A fingerprint of the columns of tbl (their names, types and
-- nullability, in order) and of its nested members.  Any change of the
-- column set, or of what the documents nest, changes it.
create or replace function txidsync._columns_fingerprint(tbl regclass) returns text
    language sql stable
    as $$
    select pg_catalog.md5(txidsync._rel_columns(tbl) ||
                          coalesce(txidsync._nest_fingerprint(tbl), ''))
$$;

-- The condition "the key columns cols come after the key after" of a
-- chunked walk in key order, with after (text per column, of the types
-- types) as the statement's parameter $1; 'true' when after is null.
create or replace function txidsync._after(cols text, types text[], after text[]) returns text
    language sql immutable
    as $$
    select case when after is null then 'true'
                else format('(%s) > (%s)', cols,
                            (select string_agg(format('$1[%s]::%s', i, types[i]), ', ' order by i)
                               from generate_subscripts(types, 1) as i))
           end
$$;

-- Grants SELECT on tracked table tbl and its side table to who (null:
-- every role in txidsync.readers).  A grant the caller may not give (it
-- does not own tbl) is skipped with PostgreSQL's own warning.
create or replace function txidsync._grant_readers(tbl regclass, side name, who name)
    returns void
    language plpgsql
    as $$
declare
    r name;
begin
    for r in select x.role_name from txidsync.readers as x
              where who is null or x.role_name = who loop
        execute format('grant select on %s to %I', tbl, r);
        execute format('grant select on txidsync.%I to %I', side, r);
        if to_regclass(format('txidsync.%I', txidsync._log_table(side))) is not null then
            execute format('grant select on txidsync.%I to %I', txidsync._log_table(side), r);
        end if;
    end loop;
end
$$;

-- Gives tracked table tbl (tracking mode old_mode, its side table side)
-- the tracking mode m.  Every tracked table has a change log
-- txidsync.log_<T> (txid, version, the side table's key columns) with its
-- (txid, key..., version desc) index, and a version sequence txidsync.ver_<T>: the
-- syncer reads the side table and the log together in either mode, so a
-- switch needs nothing of it.  Both modes take every version from the
-- sequence; from 'side' (a new table, a side-mode table whose trigger is
-- regenerated, a switch to 'log') the sequence is first set above every
-- version in the side table, so that versions keep increasing per key
-- (side tables of releases before the sequence counted per key from 1).  Back to 'side', each key's newest log entry is merged into
-- the side table (its version, its txid, and deleted when the row is
-- gone) and the log emptied: a syncer that has not read that txid reads
-- the side row instead, and one that has read it has sent that version.
-- Both under _track's lock, which holds writers off.
create or replace function txidsync._track_mode(tbl regclass, m text, old_mode text, side name,
                                                names name[], ops name[], base text, only_kw text)
    returns void
    language plpgsql
    set client_min_messages = warning
    as $$
declare
    qside text := format('txidsync.%I', side);
    log_name text := txidsync._log_table(side);
    qlog text := format('txidsync.%I', txidsync._log_table(side));
    qseq text := format('txidsync.%I', txidsync._version_seq(side));
    cols text := txidsync._key_list(names, ops, '%1$s', ', ');
    r record;
begin
    if to_regclass(qlog) is null then
        execute format('create table %s as select txid, version, %s from %s with no data',
                       qlog, cols, qside);
        -- version descending last: the batch query's DISTINCT ON takes a
        -- transaction's newest entry of a key straight off the index.
        execute format('create index %I on %s (txid, %s, version desc)', log_name || '_txid_key',
                       qlog, cols);
        for r in select x.role_name from txidsync.readers as x loop
            execute format('grant select on %s to %I', qlog, r.role_name);
        end loop;
    end if;
    execute format('create sequence if not exists %s cache 1', qseq);
    if old_mode = 'side' then
        execute format('select pg_catalog.setval(%1$L, greatest(coalesce(max(s.version), 0) + 1,'
                       ' (select q.last_value from %1$s as q))) from %2$s as s', qseq, qside);
    elsif m = 'side' and old_mode = 'log' then
        execute format(
            'insert into %1$s as s (%2$s, version, txid, deleted)'
            ' select distinct on (%2$s) %2$s, l.version, l.txid,'
            '        not exists (select from %3$s%4$s as b where %5$s)'
            '   from %6$s as l order by %2$s, l.version desc'
            ' on conflict (%2$s) do update'
            ' set version = excluded.version, txid = excluded.txid, deleted = excluded.deleted'
            ' where excluded.version > s.version',
            qside, cols, only_kw, base,
            txidsync._key_list(names, ops, 'b.%2$s %3$s l.%1$s', ' and '), qlog);
        execute format('delete from %s', qlog);
    end if;
    update txidsync.tracked set mode = m where relid = tbl;
end
$$;

-- The triggers of a table in the log mode (txidsync._track_mode made its
-- log txidsync.log_<T> and sequence txidsync.ver_<T>).  The row trigger
-- appends (txid, next version, key) per row written, the old key too
-- when an update changes it: the C one (txidsync._log_row_c) where it is
-- installed, else the generated plpgsql function fn, which also handles
-- TRUNCATE: run BEFORE it, it appends every key the table still holds
-- (costs a pass over the table, under TRUNCATE's own lock).  AFTER the
-- row, the writer holds the key's row lock or has passed the primary
-- key's unique check, so its version is above every earlier committed
-- write's (docs/design.md, "Tracking modes").
create or replace function txidsync._track_log_triggers(tbl regclass, side name, fn text,
                                                        names name[], ops name[], base text,
                                                        only_kw text)
    returns void
    language plpgsql
    set client_min_messages = warning
    as $track$
declare
    log_name text := txidsync._log_table(side);
    qlog text := format('txidsync.%I', txidsync._log_table(side));
    seq_name text := txidsync._version_seq(side);
    nextv text := format('pg_catalog.nextval(%L::pg_catalog.regclass)',
                         format('txidsync.%I', txidsync._version_seq(side)));
    cols text := txidsync._key_list(names, ops, '%1$s', ', ');
begin
    execute format($f$
create or replace function txidsync.%1$I() returns trigger
    language plpgsql security definer
    as $body$
declare
    x constant bigint := txidsync.current_txid();  -- one id per call, as in the C trigger
begin
    if TG_OP operator(pg_catalog.=) 'TRUNCATE' then
        insert into %2$s (txid, version, %3$s) select x, %4$s, %5$s from %6$s%7$s as b;
        return null;
    end if;
    if TG_OP operator(pg_catalog.=) 'DELETE'
       or (TG_OP operator(pg_catalog.=) 'UPDATE' and not (%8$s)) then
        insert into %2$s (txid, version, %3$s) values (x, %4$s, %9$s);
    end if;
    if TG_OP operator(pg_catalog.<>) 'DELETE' then
        insert into %2$s (txid, version, %3$s) values (x, %4$s, %10$s);
    end if;
    return null;
end
$body$
$f$, fn, qlog, cols, nextv,
        txidsync._key_list(names, ops, 'b.%2$s', ', '), only_kw, base,
        txidsync._key_list(names, ops, 'NEW.%2$s %3$s OLD.%2$s', ' and '),
        txidsync._key_list(names, ops, 'OLD.%2$s', ', '),
        txidsync._key_list(names, ops, 'NEW.%2$s', ', '));
    execute format('drop trigger if exists txidsync_row on %s', base);
    if to_regprocedure('txidsync._log_row_c()') is not null then
        execute format('create trigger txidsync_row after insert or update or delete on %s '
                       'for each row execute function txidsync._log_row_c(%L, %L, %L)',
                       base, log_name, seq_name, txidsync.txid_offset());
    else
        execute format('create trigger txidsync_row after insert or update or delete on %s '
                       'for each row execute function txidsync.%I()', base, fn);
    end if;
    execute format('drop trigger if exists txidsync_truncate on %s', base);
    execute format('create trigger txidsync_truncate before truncate on %s '
                   'for each statement execute function txidsync.%I()', base, fn);
end
$track$;

-- Starts tracking tbl: its side table, its row in txidsync.tracked, its
-- triggers; with fill, also the state of every existing row (version 1,
-- this transaction's txid), all under a lock that holds writers off until
-- the caller commits; without fill, the side table starts empty and
-- tracked.filling is set, for track_step to fill.  On a tracked table it
-- only regenerates the trigger function and the triggers, and switches
-- the tracking mode when mode names another one (null: keep it; 'side'
-- for a new table).
drop function if exists txidsync._track(regclass, boolean, boolean);
create or replace function txidsync._track(tbl regclass, notify boolean, fill boolean,
                                           mode text default null)
    returns void
    language plpgsql
    set client_min_messages = warning
    as $track$
declare
    rel record;
    pk record;
    side text;
    fn text;
    chan text;
    base text;
    qside text;
    only_kw text;
    existing txidsync.tracked;
    x bigint;
    side_cols text;
    m text;
begin
    execute format('lock table %s in share row exclusive mode', tbl);

    select c.relname, n.nspname, c.relkind into rel
      from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where c.oid = tbl;
    if rel.relkind not in ('r', 'p') then
        raise exception 'txidsync: % is not a table', tbl;
    end if;
    if rel.nspname = 'txidsync' then
        raise exception 'txidsync: refusing to track % in schema txidsync', tbl;
    end if;

    pk := txidsync._primary_key(tbl);
    if pk.names is null then
        raise exception 'txidsync: table % has no primary key', tbl;
    end if;
    if array_position(pk.op_schemas, null) is not null then
        raise exception 'txidsync: no btree equality operator for the primary key of %', tbl;
    end if;

    select * into existing from txidsync.tracked where relid = tbl;
    m := coalesce(_track.mode, existing.mode, 'side');
    if m not in ('side', 'log') then
        raise exception 'txidsync: unknown tracking mode "%": ''side'' or ''log''', m;
    end if;
    -- The log mode's versions increase per key because a writer takes its
    -- version after the primary key's unique check waited for a writer of
    -- the same key; a deferred check does not wait.
    if m = 'log' and exists (select from pg_catalog.pg_constraint as k
                              where k.conrelid = tbl and k.contype = 'p' and k.condeferrable) then
        raise exception 'txidsync: the primary key of % is deferrable: the log mode needs an '
                        'immediate one (use mode => ''side'')', tbl;
    end if;
    if found then
        side := existing.side_table;
        chan := existing.channel;
        if existing.key_columns <> pk.names then
            raise exception 'txidsync: the primary key of % changed from (%) to (%): untrack it '
                            'and track it again (and rebuild its targets)',
                tbl, array_to_string(existing.key_columns, ', '), array_to_string(pk.names, ', ');
        end if;
    else
        side := 'rows_' || txidsync._ident_cut(rel.relname, 50);
        if to_regclass(format('txidsync.%I', side)) is not null then
            side := 'rows_' || txidsync._ident_cut(rel.relname, 40) || '_' || tbl::oid;
        end if;
        chan := txidsync._ident_cut('txidsync_' || case when rel.nspname = 'public' then ''
                                         else rel.nspname || '.' end || rel.relname, 63);
    end if;
    -- One channel per table: a name another tracked table has (a table of
    -- the same name in another schema, tracked by an older release, or a
    -- cut name) becomes one made unique by the table's oid.
    if exists (select from txidsync.tracked as o where o.channel = chan and o.relid <> tbl) then
        chan := txidsync._ident_cut('txidsync_' || rel.relname, 50) || '_' || tbl::oid;
    end if;

    fn := side || '_trg';
    base := format('%I.%I', rel.nspname, rel.relname);
    qside := format('txidsync.%I', side);
    side_cols := txidsync._key_list(pk.names, pk.op_schemas, '%1$s', ', ');
    -- ONLY: a plain table's inheritance children are not tracked; a
    -- partitioned table has no rows of its own, so it needs its partitions.
    only_kw := case when rel.relkind = 'r' then 'only ' else '' end;

    if existing.relid is null then
        execute format('create table %s (%s, version bigint not null, txid bigint not null, '
                       'deleted boolean not null, primary key (%s))',
                       qside,
                       (select string_agg(format('%s %s', txidsync._side_key(i::int,
                                                      cardinality(pk.names)), pk.types[i]),
                                          ', ' order by i)
                          from generate_subscripts(pk.names, 1) as i),
                       side_cols);
        execute format('create index %I on %s (txid, %s)', side || '_txid_key', qside, side_cols);
        if fill then
            x := txidsync.current_txid();
            execute format('insert into %s (%s, version, txid, deleted) '
                           'select %s, 1, $1, false from %s%s',
                           qside, side_cols,
                           txidsync._key_list(pk.names, pk.op_schemas, '%2$s', ', '), only_kw,
                           base)
              using x;
        end if;
        insert into txidsync.tracked (relid, side_table, key_columns, key_types, notify, channel,
                                      columns_seen, filling)
        values (tbl, side, pk.names, pk.types, notify, chan, txidsync._columns_fingerprint(tbl),
                not fill);
    else
        update txidsync.tracked set notify = _track.notify, channel = chan where relid = tbl;
    end if;
    perform txidsync._track_mode(tbl, m, coalesce(existing.mode, 'side'), side, pk.names,
                                 pk.op_schemas, base, only_kw);

    -- The row trigger, with the side table baked in.  It runs after the
    -- statement, so "does the key exist now" is the statement's final
    -- state; that is how delete and primary-key changes pick deleted, which
    -- stays right whatever order the row events of one statement fire in.
    -- The plain update is the hot path: one indexed update, no lookup.
    -- Each version is the next of the table's sequence, taken after the
    -- writer holds the key (its row lock, or the primary key's unique
    -- check) and, but for a key's first state, the side row's lock: a
    -- key's versions increase in commit order, and a key whose tombstone
    -- was pruned starts above every version it had (docs/design.md,
    -- "Pruning").
    -- Every operator is schema-qualified because the function runs as its
    -- owner with the caller's search_path.
    if m = 'log' then
        perform txidsync._track_log_triggers(tbl, side, fn, pk.names, pk.op_schemas, base, only_kw);
    else
    execute format($f$
create or replace function txidsync.%1$I() returns trigger
    language plpgsql security definer
    as $body$
declare
    x bigint := txidsync.current_txid();
    same_key boolean := false;
begin
    if TG_OP operator(pg_catalog.=) 'TRUNCATE' then
        update %4$s set version = %12$s, txid = x, deleted = true
         where not deleted;
        return null;
    end if;
    if TG_OP operator(pg_catalog.=) 'UPDATE' then
        same_key := %2$s;
    end if;
    if same_key then
        update %4$s set version = %12$s, txid = x, deleted = false
         where %3$s;
        if found then
            return null;
        end if;
    elsif TG_OP operator(pg_catalog.<>) 'INSERT' then
        -- A delete, or an update that moved the row to another key: the
        -- old key is gone unless the statement wrote it again.
        update %4$s set version = %12$s, txid = x,
               deleted = not exists (select from %6$s%5$s b where %8$s)
         where %7$s;
        if not found then
            -- The old key has no state yet (tracked online, its chunk
            -- not filled, or being filled: the insert then waits for
            -- that chunk and updates what it wrote, never leaving a
            -- deleted row's state live).
            insert into %4$s as s (%9$s, version, txid, deleted)
                values (%11$s, %12$s, x, not exists (select from %6$s%5$s b where %8$s))
                on conflict (%9$s) do update
                set version = %12$s, txid = excluded.txid,
                    deleted = excluded.deleted;
        end if;
        if TG_OP operator(pg_catalog.=) 'DELETE' then
            return null;
        end if;
    end if;
    insert into %4$s as s (%9$s, version, txid, deleted) values (%10$s, %12$s, x, false)
        on conflict (%9$s) do update
        set version = %12$s, txid = excluded.txid, deleted = false;
    return null;
end
$body$
$f$, fn,
        txidsync._key_list(pk.names, pk.op_schemas, 'NEW.%2$s %3$s OLD.%2$s', ' and '),
        txidsync._key_list(pk.names, pk.op_schemas, '%1$s %3$s NEW.%2$s', ' and '),
        qside, base, only_kw,
        txidsync._key_list(pk.names, pk.op_schemas, '%1$s %3$s OLD.%2$s', ' and '),
        txidsync._key_list(pk.names, pk.op_schemas, 'b.%2$s %3$s OLD.%2$s', ' and '),
        side_cols,
        txidsync._key_list(pk.names, pk.op_schemas, 'NEW.%2$s', ', '),
        txidsync._key_list(pk.names, pk.op_schemas, 'OLD.%2$s', ', '),
        format('pg_catalog.nextval(%L::pg_catalog.regclass)',
               format('txidsync.%I', txidsync._version_seq(side))));

    execute format('drop trigger if exists txidsync_row on %s', base);
    execute format('create trigger txidsync_row after insert or update or delete on %s '
                   'for each row execute function txidsync.%I()', base, fn);
    execute format('drop trigger if exists txidsync_truncate on %s', base);
    execute format('create trigger txidsync_truncate after truncate on %s '
                   'for each statement execute function txidsync.%I()', base, fn);
    end if;
    perform txidsync._grant_readers(tbl, side, null);
    -- The nested documents' triggers have the root's mode baked in.
    if to_regprocedure('txidsync._nest_install()') is not null
       and exists (select from txidsync.nested as n where n.root = tbl) then
        perform txidsync._nest_install();
    end if;
    execute format('drop trigger if exists txidsync_notify on %s', base);
    if notify then
        execute format('create trigger txidsync_notify '
                       'after insert or update or delete or truncate on %s '
                       'for each statement execute function txidsync.notify_trigger(%L)',
                       base, chan);
        raise warning 'txidsync: % is tracked with notify => true: a transaction that writes it '
                     'can no longer be prepared (PREPARE TRANSACTION refuses a transaction '
                     'that executed NOTIFY); applications using two-phase commit on it need '
                     'notify => false', tbl;
    end if;
end
$track$;

-- Starts tracking tbl in one transaction: the triggers and the state of
-- every existing row.  Writers of tbl wait until the caller commits (about
-- 1.8 s per million rows): for a big table in use, track_online.
-- notify => true breaks two-phase commit on tbl: PostgreSQL refuses
-- PREPARE TRANSACTION in a transaction that executed NOTIFY, and every
-- write of tbl then does.  Keep it false (the default) where applications
-- prepare transactions; the syncer's poll finds their changes anyway.
drop function if exists txidsync.track(regclass, boolean);
create or replace function txidsync.track(tbl regclass, notify boolean default false,
                                          mode text default null)
    returns void
    language sql
    as $$ select txidsync._track(tbl, notify, true, mode) $$;

-- Tracking a big table online, step 1: installs the triggers (and an
-- empty side table) under a lock held only until the caller commits,
-- which is short.  From then on every write of tbl is tracked.  Commit,
-- then call track_step until it says finished; syncers may run meanwhile.
drop function if exists txidsync.track_begin(regclass, boolean);
create or replace function txidsync.track_begin(tbl regclass, notify boolean default false,
                                                mode text default null)
    returns void
    language sql
    as $$ select txidsync._track(tbl, notify, false, mode) $$;

-- Tracking online, step 2 (docs/design.md, "Tracking a big table
-- online"): fills the state of the next chunk of existing rows, in key
-- order, with version 1 and this transaction's txid, recording how far it
-- got in the same transaction (run each step as a transaction of its
-- own).  A key the triggers wrote meanwhile keeps their state (on
-- conflict do nothing): its version counts from the application's write,
-- which is newer than anything the fill could say.  Writers never wait
-- for more than one step.  Returns the rows of this step, the rows so
-- far, and whether the fill is finished.
create or replace function txidsync.track_step(tbl regclass, chunk integer default 10000)
    returns table (rows integer, rows_done bigint, finished boolean)
    language plpgsql
    set client_min_messages = warning
    as $$
declare
    t txidsync.tracked;
    n_keys int;
    cols text;   -- b.a, b.b
    after text;  -- the row comparison with fill_after, or true
    n int;
    last text[];
begin
    if chunk is null or chunk < 1 then
        raise exception 'txidsync: a fill chunk must be at least 1 row, not %', chunk;
    end if;
    select * into t from txidsync.tracked as x where x.relid = tbl for update;
    if not found then
        raise exception 'txidsync: % is not tracked', tbl;
    end if;
    if not t.filling then
        return query select 0, t.fill_done, true;
        return;
    end if;
    n_keys := cardinality(t.key_columns);
    select string_agg(format('b.%I', t.key_columns[i]), ', ' order by i)
      into cols from generate_subscripts(t.key_columns, 1) as i;
    after := txidsync._after(cols, t.key_types, t.fill_after);
    execute format(
        'with c as (select %1$s from %2$s%3$s as b where %4$s order by %1$s limit $2),'
        '     i as (insert into txidsync.%5$I (%6$s, version, txid, deleted)'
        '             select %7$s, 1, $3, false from c on conflict do nothing)'
        ' select (select count(*) from c)::int,'
        '        (select array[%8$s] from c order by %9$s limit 1)',
        cols,
        case when (select c.relkind from pg_catalog.pg_class as c where c.oid = tbl) = 'r'
             then 'only ' else '' end,
        tbl, after, t.side_table, txidsync._col_list(t.key_columns, '%2$s'),
        txidsync._col_list(t.key_columns, 'c.%1$s'),
        txidsync._col_list(t.key_columns, 'c.%1$s::text'),
        txidsync._col_list(t.key_columns, 'c.%1$s desc'))
      into n, last
      using t.fill_after, chunk, txidsync.current_txid();
    update txidsync.tracked as x
       set fill_after = coalesce(last, x.fill_after), fill_done = x.fill_done + n,
           filling = n >= chunk
     where x.relid = tbl;
    return query select n, t.fill_done + n, n < chunk;
end
$$;

-- Tracking online in one command, for psql: track_begin, then track_step
-- until finished, each in a transaction of its own, with a notice of the
-- progress now and then.  Call it outside a transaction block; run again,
-- it resumes.
drop procedure if exists txidsync.track_online(regclass, boolean, integer);
create or replace procedure txidsync.track_online(tbl regclass, notify boolean default false,
                                                  chunk integer default 10000,
                                                  mode text default null)
    language plpgsql
    as $$
declare
    s record;
    last_notice timestamptz := pg_catalog.clock_timestamp();
begin
    if not exists (select from txidsync.tracked where relid = tbl and not filling) then
        if not exists (select from txidsync.tracked where relid = tbl) then
            perform txidsync.track_begin(tbl, notify, mode);
            commit;
        end if;
        loop
            select * into s from txidsync.track_step(tbl, chunk);
            commit;
            exit when s.finished;
            if pg_catalog.clock_timestamp() - last_notice > interval '5 s' then
                raise notice 'txidsync: tracking %: % rows filled', tbl, s.rows_done;
                last_notice := pg_catalog.clock_timestamp();
            end if;
        end loop;
        raise notice 'txidsync: tracking %: filled, % rows', tbl, s.rows_done;
    end if;
end
$$;

-- Regenerates the trigger function of every tracked table that still
-- exists, so that re-running this file upgrades them too (track() on a
-- tracked table keeps its rows and its notify setting).
do $install$
declare
    t record;
begin
    for t in select tr.relid, tr.notify from txidsync.tracked as tr
              where exists (select from pg_catalog.pg_class as c where c.oid = tr.relid::oid)
    loop
        begin
            perform txidsync.track(t.relid, t.notify);
        exception when others then
            raise warning 'txidsync: cannot regenerate the triggers of %: %', t.relid, sqlerrm;
        end;
    end loop;
end
$install$;

-- Stops tracking tbl: drops its triggers, trigger function and side table
-- (with every version and tombstone) and its txidsync.tracked row.  A table
-- that is not tracked is left alone with a notice.  Tracking it again
-- restarts versions at 1, so a target fed before must be rebuilt.
create or replace function txidsync.untrack(tbl regclass) returns void
    language plpgsql
    as $$
declare
    t txidsync.tracked;
    nested boolean;
begin
    execute format('lock table %s in share row exclusive mode', tbl);
    select * into t from txidsync.tracked where relid = tbl;
    if not found then
        raise notice 'txidsync: % is not tracked', tbl;
        return;
    end if;
    execute format('drop trigger if exists txidsync_notify on %s', tbl);
    execute format('drop trigger if exists txidsync_truncate on %s', tbl);
    execute format('drop trigger if exists txidsync_row on %s', tbl);
    execute format('drop function if exists txidsync.%I()', t.side_table || '_trg');
    execute format('drop table if exists txidsync.%I', t.side_table);
    execute format('drop table if exists txidsync.%I', txidsync._log_table(t.side_table));
    execute format('drop sequence if exists txidsync.%I', txidsync._version_seq(t.side_table));
    nested := exists (select from txidsync.nested as n where n.root = tbl);
    delete from txidsync.tracked where relid = tbl;  -- its members go with it (on delete cascade)
    if nested then
        perform txidsync._nest_install();
    end if;
end
$$;

-- Forgets every tracked table that no longer exists (dropped without
-- untrack): drops its side table and trigger function and deletes its
-- txidsync.tracked row, whose relid would otherwise be a bare OID that a
-- restore of a dump could even see collide with a new table's.  Returns
-- how many were forgotten.  The event trigger below calls it on DROP.
create or replace function txidsync.forget_dropped() returns integer
    language plpgsql
    as $$
declare
    t record;
    n integer := 0;
begin
    for t in select tr.relid::oid as rel, tr.side_table
               from txidsync.tracked as tr
              where not exists (select from pg_catalog.pg_class as c where c.oid = tr.relid::oid)
    loop
        execute format('drop function if exists txidsync.%I()', t.side_table || '_trg');
        execute format('drop table if exists txidsync.%I', t.side_table);
        execute format('drop table if exists txidsync.%I', txidsync._log_table(t.side_table));
        execute format('drop sequence if exists txidsync.%I', txidsync._version_seq(t.side_table));
        delete from txidsync.tracked where relid::oid = t.rel;
        n := n + 1;
    end loop;
    return n + txidsync._nest_forget_dropped();
end
$$;

-- Consumers and pruning (docs/design.md, "Pruning").  Every syncer that
-- reads the primary records, now and then, in a short transaction of its
-- own, how far its stored cursor has come: low, below which it has every
-- change of the table acknowledged (and will never read again).
-- txidsync.prune() removes what every registered consumer has passed:
-- tombstones, and the change log's entries after merging them into the
-- side table.  A table without any registered consumer is never pruned.
create table if not exists txidsync.consumers (
    relid regclass not null references txidsync.tracked (relid) on delete cascade,
    consumer text not null,     -- the syncer's target: "URL/index", a file, "brokers/topic"
    low bigint not null,        -- every change of a lower txid is in the target
    seen timestamptz not null default pg_catalog.now(),
    primary key (relid, consumer)
);
-- The oldest transaction still running at a moment (xmin with the txid
-- offset), recorded by each prune: the newest mark at least the margin old
-- bounds the horizon, so nothing is pruned that a transaction ending less
-- than the margin ago wrote.
create table if not exists txidsync.prune_marks (
    at timestamptz primary key,
    oldest bigint not null
);
-- Where the next search for tombstones starts (every tombstone below it
-- was pruned but for ones a writer held), and one past the highest txid
-- of a pruned tombstone: a consumer whose low is below it may have missed
-- a delete.
alter table txidsync.tracked add column if not exists prune_from bigint not null default 0;
alter table txidsync.tracked add column if not exists pruned_below bigint not null default 0;

-- Registers (or refreshes) consumer of tbl at low.  Returns the table's
-- pruned_below: when low is below it, deletes this consumer had not read
-- were pruned (it was dropped, or started from an old cursor).
create or replace function txidsync.consumer_seen(tbl regclass, consumer text, low bigint)
    returns bigint
    language sql
    as $$
    insert into txidsync.consumers as c (relid, consumer, low, seen)
    values (tbl, consumer, low, pg_catalog.now())
    on conflict (relid, consumer) do update set low = excluded.low, seen = excluded.seen;
    select t.pruned_below from txidsync.tracked as t where t.relid = tbl;
    $$;

-- The horizon of a prune of tbl: the lowest registered low, the newest
-- mark at least margin old and this snapshot's xmin, whichever is lowest;
-- null (prune nothing) without a consumer or a mark that old.  Records
-- this moment's mark and forgets those older than the one used.
create or replace function txidsync._prune_horizon(tbl regclass, margin interval)
    returns bigint
    language plpgsql
    as $$
declare
    now_xmin bigint := (select s.xmin from txidsync.snapshot() as s);
    mark txidsync.prune_marks;
    low bigint;
begin
    insert into txidsync.prune_marks values (pg_catalog.now(), now_xmin) on conflict do nothing;
    select * into mark from txidsync.prune_marks as m
     where m.at <= pg_catalog.now() - margin
     order by m.at desc limit 1;
    if not found then
        return null;
    end if;
    delete from txidsync.prune_marks as m where m.at < mark.at;
    select min(c.low) into low from txidsync.consumers as c where c.relid = tbl;
    if low is null then
        return null;
    end if;
    return least(low, mark.oldest, now_xmin);
end
$$;

-- Merges the change-log entries of tracked table t below txid cut into
-- its side table (per key the newest: its version, its txid, deleted when
-- the row is gone now, as a switch to the side mode does) and deletes
-- them, in one statement.  Returns how many entries it deleted.
create or replace function txidsync._prune_log(t txidsync.tracked, cut bigint) returns bigint
    language plpgsql
    as $$
declare
    ops name[] := (txidsync._primary_key(t.relid)).op_schemas;
    cols text := txidsync._key_list(t.key_columns, ops, '%1$s', ', ');
    n bigint;
begin
    execute format(
        'with m as (select distinct on (%1$s) %1$s, l.version, l.txid from txidsync.%2$I as l'
        '            where l.txid < $1 order by %1$s, l.version desc),'
        '     i as (insert into txidsync.%3$I as s (%1$s, version, txid, deleted)'
        '             select %1$s, m.version, m.txid,'
        '                    not exists (select from %4$s%5$s as b where %6$s) from m'
        '             on conflict (%1$s) do update'
        '             set version = excluded.version, txid = excluded.txid,'
        '                 deleted = excluded.deleted'
        '             where excluded.version > s.version)'
        ' delete from txidsync.%2$I as l where l.txid < $1',
        cols, txidsync._log_table(t.side_table), t.side_table,
        case when (select c.relkind from pg_catalog.pg_class as c where c.oid = t.relid) = 'r'
             then 'only ' else '' end,
        t.relid, txidsync._key_list(t.key_columns, ops, 'b.%2$s %3$s m.%1$s', ' and '))
      using cut;
    get diagnostics n = row_count;
    return n;
end
$$;

-- Prunes tracked table tbl below the horizon (txidsync._prune_horizon):
-- first the change log, at most about chunk entries a call, oldest
-- first; once the log holds nothing below the horizon, at most chunk
-- tombstones, skipping those a writer holds (it is about to give the key
-- a newer state).  Consumers not seen for drop_after are dropped first,
-- with a warning.  One pruner of a table at a time: another call returns
-- at once.  Returns what it removed, the horizon (null: nothing may be
-- pruned) and the consumers it dropped.  A call that removed chunk of
-- either has more to do: call it again.
create or replace function txidsync.prune(tbl regclass, margin interval default '10 minutes',
                                          drop_after interval default '1 day',
                                          chunk integer default 10000)
    returns table (tombstones bigint, log_entries bigint, horizon bigint, dropped text[])
    language plpgsql
    as $$
declare
    t txidsync.tracked;
    h bigint;
    lo bigint;
    cut bigint;
    n_log bigint := 0;
    n_dead bigint := 0;
    last_txid bigint;
    gone text[];
begin
    if chunk is null or chunk < 1 then
        raise exception 'txidsync: a prune chunk must be at least 1 row, not %', chunk;
    end if;
    select * into t from txidsync.tracked as x where x.relid = tbl;
    if not found then
        raise exception 'txidsync: % is not tracked', tbl;
    end if;
    if not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('txidsync.prune'),
                                                tbl::oid::integer) then
        return query select 0::bigint, 0::bigint, null::bigint, null::text[];
        return;
    end if;
    with d as (delete from txidsync.consumers as c
                where c.relid = tbl and c.seen < pg_catalog.now() - drop_after
                returning c.consumer)
    select pg_catalog.array_agg(d.consumer order by d.consumer) into gone from d;
    if gone is not null then
        raise warning 'txidsync: consumers of % not seen for % dropped: %; pruning no longer '
                      'waits for them, so one that comes back may have missed deletes (its '
                      'syncer then says so)', tbl, drop_after, array_to_string(gone, ', ');
    end if;
    h := txidsync._prune_horizon(tbl, margin);
    if h is null then
        return query select 0::bigint, 0::bigint, null::bigint, gone;
        return;
    end if;
    execute format('select min(l.txid) from txidsync.%I as l', txidsync._log_table(t.side_table))
       into lo;
    if lo < h then
        execute format('select l.txid from txidsync.%I as l where l.txid < $1 order by l.txid'
                       ' offset $2 limit 1', txidsync._log_table(t.side_table))
           into cut using h, chunk;
        -- A transaction with more entries than a chunk goes whole.
        cut := case when cut is null then h when cut <= lo then lo + 1 else cut end;
        n_log := txidsync._prune_log(t, cut);
    end if;
    if cut is null or cut >= h then
        execute format(
            'with d as (delete from txidsync.%1$I as s where s.ctid = any (array('
            '             select x.ctid from txidsync.%1$I as x'
            '              where x.txid >= $1 and x.txid < $2 and x.deleted'
            '              order by x.txid limit $3 for update skip locked))'
            '           returning s.txid)'
            ' select count(*), max(d.txid) from d', t.side_table)
          into n_dead, last_txid using t.prune_from, h, chunk;
        update txidsync.tracked as x
           set prune_from = case when n_dead < chunk then h else last_txid end,
               pruned_below = greatest(x.pruned_below, coalesce(last_txid + 1, 0))
         where x.relid = tbl;
    end if;
    return query select n_dead, n_log, h, gone;
end
$$;

-- Refreshes (docs/design.md, "Refresh").  A refresh re-sends the current
-- state of a table's rows: each step takes the next chunk of side-table
-- rows in key order and bumps their version and txid, in one short
-- transaction, so that every syncer reads them again as changes of that
-- transaction.  A refreshed document replaces what a target holds for its
-- key (its version is higher) and is itself replaced by any later change
-- (a higher version still): the side-table row lock orders a chunk and the
-- application's changes of the same key like any two writers.  With a
-- where_sql condition only live rows matching it are refreshed; without
-- one, every key, tombstones too (a document a restore brought back is
-- deleted again).  Progress is recorded in the chunk's transaction, so a
-- refresh interrupted anywhere resumes after its last committed chunk.
create table if not exists txidsync.refreshes (
    id bigserial primary key,
    relid regclass not null references txidsync.tracked (relid) on delete cascade,
    where_sql text,            -- a condition on the table's row "t"; null: every key
    reason text not null,      -- why it was started, for logs
    after_key text[],          -- the last key refreshed, as text per key column; null: none yet
    rows_done bigint not null default 0,
    rows_estimate bigint,      -- how many rows it will touch, as the planner guesses
    started_at timestamptz not null default pg_catalog.now(),
    finished_at timestamptz
);
create index if not exists refreshes_unfinished on txidsync.refreshes (relid)
    where finished_at is null;

-- About how many rows rel holds: the statistics when there are some, else
-- the planner's guess (which, on a table never analyzed, counts dead rows
-- too).  For progress reports.
create or replace function txidsync._rel_estimate(rel regclass) returns bigint
    language plpgsql
    as $$
declare
    est bigint;
    plan json;
begin
    select pg_catalog.round(c.reltuples)::bigint into est from pg_catalog.pg_class as c
     where c.oid = rel and c.relkind = 'r';
    if est is null or est <= 0 then
        execute format('explain (format json) select from %s', rel) into plan;
        est := (plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric::bigint;
    end if;
    return est;
end
$$;

-- About how many keys tbl's side table holds (live and tombstones).
create or replace function txidsync.row_estimate(tbl regclass) returns bigint
    language plpgsql
    as $$
declare
    side text;
begin
    select format('txidsync.%I', t.side_table) into side
      from txidsync.tracked as t where t.relid = tbl;
    if side is null then
        raise exception 'txidsync: % is not tracked', tbl;
    end if;
    return txidsync._rel_estimate(side::regclass);
end
$$;

-- Starts a refresh of tbl (or returns the unfinished one with the same
-- condition, which then resumes) and returns its id.  where_sql is an SQL
-- condition on the table's row, named t (e.g. 't.id < 1000'); it is
-- checked here, so that a typo fails now and not at the first step.
create or replace function txidsync.refresh_start(tbl regclass, where_sql text default null,
                                                  reason text default 'requested')
    returns bigint
    language plpgsql
    set client_min_messages = warning
    as $$
declare
    t txidsync.tracked;
    rid bigint;
    plan json;
    est bigint;
    only_kw text;
begin
    select * into t from txidsync.tracked where relid = tbl;
    if not found then
        raise exception 'txidsync: % is not tracked', tbl;
    end if;
    select r.id into rid from txidsync.refreshes as r
     where r.relid = tbl and r.finished_at is null
       and r.where_sql is not distinct from refresh_start.where_sql
     order by r.id limit 1;
    if found then
        return rid;
    end if;
    only_kw := case when (select c.relkind from pg_catalog.pg_class as c where c.oid = tbl) = 'r'
                    then 'only ' else '' end;
    if where_sql is null then
        est := txidsync.row_estimate(tbl);
    else
        begin
            execute format('explain (format json) select from %s%s as t where (%s)',
                           only_kw, tbl, where_sql) into plan;
        exception when others then
            raise exception 'txidsync: the condition "%" for %: %', where_sql, tbl, sqlerrm
                using errcode = sqlstate;
        end;
    end if;
    est := coalesce(est, (plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric::bigint);
    insert into txidsync.refreshes (relid, where_sql, reason, rows_estimate)
    values (tbl, where_sql, reason, est)
    returning id into rid;
    return rid;
end
$$;

-- refresh_step of a table in the log mode: the next chunk of the table's
-- live rows (those matching where_sql, if any) in key order, locked FOR NO
-- KEY UPDATE so that each waits for a running writer of it, each given a
-- log entry of a new version.  Deleted keys have no row to lock, so a
-- refresh in the log mode re-sends live rows only.
create or replace function txidsync._refresh_step_log(r txidsync.refreshes, t txidsync.tracked,
                                                      chunk integer, out n integer,
                                                      out last text[])
    language plpgsql
    as $$
declare
    cols text;
begin
    cols := txidsync._col_list(t.key_columns, 't.%1$s');
    execute format(
        'with c as (select %1$s from %2$s%3$s as t where %4$s and (%5$s)'
        '            order by %1$s limit $2 for no key update of t),'
        '     i as (insert into txidsync.%6$I (txid, version, %7$s)'
        '             select $3, pg_catalog.nextval(%8$L::pg_catalog.regclass), %9$s from c'
        '             returning 1)'
        ' select (select count(*) from i)::int,'
        '        (select array[%10$s] from c order by %11$s limit 1)',
        cols,
        case when (select c.relkind from pg_catalog.pg_class as c where c.oid = r.relid) = 'r'
             then 'only ' else '' end,
        r.relid, txidsync._after(cols, t.key_types, r.after_key), coalesce(r.where_sql, 'true'),
        txidsync._log_table(t.side_table), txidsync._col_list(t.key_columns, '%2$s'),
        format('txidsync.%I', txidsync._version_seq(t.side_table)),
        txidsync._col_list(t.key_columns, 'c.%1$s'),
        txidsync._col_list(t.key_columns, 'c.%1$s::text'),
        txidsync._col_list(t.key_columns, 'c.%1$s desc'))
      into n, last
      using r.after_key, chunk, txidsync.current_txid();
end
$$;

-- One step of refresh id: bumps the version and txid of the next chunk
-- of rows in key order (at most chunk of them) and records how far it
-- got, in the caller's transaction (run each step as a transaction of its
-- own).  It waits for a row another transaction holds at most
-- lock_wait_ms, then fails with lock_not_available (55P03): the caller
-- tries the step again, and the application never waits long for a
-- refresh.  Returns the rows of this step, the rows so far, and whether
-- the refresh is finished.
create or replace function txidsync.refresh_step(id bigint, chunk integer default 1000,
                                                 lock_wait_ms integer default 200)
    returns table (rows integer, rows_done bigint, finished boolean)
    language plpgsql
    set client_min_messages = warning
    as $$
declare
    r txidsync.refreshes;
    t txidsync.tracked;
    n_keys int;
    keys text;     -- s.key1, s.key2, ...
    after text;    -- the row comparison with after_key, or true
    cond text;
    join_t text := '';
    n int;
    last text[];
begin
    if chunk is null or chunk < 1 then
        raise exception 'txidsync: a refresh chunk must be at least 1 row, not %', chunk;
    end if;
    perform pg_catalog.set_config('lock_timeout', lock_wait_ms || 'ms', true);
    select * into r from txidsync.refreshes as x where x.id = refresh_step.id for update;
    if not found then
        raise exception 'txidsync: there is no refresh %', refresh_step.id;
    end if;
    if r.finished_at is not null then
        return query select 0, r.rows_done, true;
        return;
    end if;
    select * into t from txidsync.tracked as x where x.relid = r.relid;
    n_keys := cardinality(t.key_columns);
    if t.mode = 'log' then
        select * into n, last from txidsync._refresh_step_log(r, t, chunk);
    else
    select string_agg(format('s.%I', txidsync._side_key(i::int, n_keys)), ', ' order by i)
      into keys from generate_subscripts(t.key_columns, 1) as i;
    after := txidsync._after(keys, t.key_types, r.after_key);
    cond := after;
    if r.where_sql is not null then
        join_t := format(' join %s%s as t on %s',
            case when (select c.relkind from pg_catalog.pg_class as c where c.oid = r.relid) = 'r'
                 then 'only ' else '' end,
            r.relid,
            (select string_agg(format('t.%I = s.%I', t.key_columns[i],
                                      txidsync._side_key(i::int, n_keys)), ' and ' order by i)
               from generate_subscripts(t.key_columns, 1) as i));
        cond := format('%s and (%s)', after, r.where_sql);
    end if;
    execute format(
        'with c as (select %1$s from txidsync.%2$I as s%3$s where %4$s'
        '            order by %1$s limit $2 for update of s),'
        '     u as (update txidsync.%2$I as s'
        '             set version = pg_catalog.nextval(%8$L::pg_catalog.regclass), txid = $3'
        '             from c where (%1$s) = (%5$s) returning 1)'
        ' select (select count(*) from u)::int,'
        '        (select array[%6$s] from c order by %7$s limit 1)',
        keys, t.side_table, join_t, cond,
        (select string_agg(format('c.%I', txidsync._side_key(i::int, n_keys)), ', ' order by i)
           from generate_subscripts(t.key_columns, 1) as i),
        (select string_agg(format('c.%I::text', txidsync._side_key(i::int, n_keys)), ', '
                           order by i)
           from generate_subscripts(t.key_columns, 1) as i),
        (select string_agg(format('c.%I desc', txidsync._side_key(i::int, n_keys)), ', '
                           order by i)
           from generate_subscripts(t.key_columns, 1) as i),
        format('txidsync.%I', txidsync._version_seq(t.side_table)))
      into n, last
      using r.after_key, chunk, txidsync.current_txid();
    end if;
    update txidsync.refreshes as x
       set after_key = coalesce(last, x.after_key), rows_done = x.rows_done + n,
           finished_at = case when n < chunk then pg_catalog.now() end
     where x.id = r.id;
    return query select n, r.rows_done + n, n < chunk;
end
$$;

-- The oldest unfinished refresh of tbl, null when there is none: the
-- syncers step it in the background (docs/design.md, "Schema changes").
create or replace function txidsync.refresh_pending(tbl regclass) returns bigint
    language sql stable
    as $$
    select r.id from txidsync.refreshes as r
     where r.relid = tbl and r.finished_at is null
     order by r.id limit 1
$$;

-- Compares the columns of tbl with those noted last (the syncer calls it
-- when it starts and when a batch shows other columns).  When they
-- changed, it starts a refresh of the whole table with the reason
-- 'columns changed' (an unfinished refresh of the whole table starts over
-- instead: the rows it already did were sent in the old shape), so that
-- every document gets the new shape although no row changed.  Returns the
-- oldest unfinished refresh of tbl (refresh_pending), null when none.
-- It writes only when the columns changed: a role that may only read can
-- call it while they stay the same.  The first call of a table tracked by
-- an older release only records them.
create or replace function txidsync.columns_noted(tbl regclass) returns bigint
    language plpgsql
    set client_min_messages = warning
    as $$
declare
    seen text;
    now_seen text := txidsync._columns_fingerprint(tbl);
    rid bigint;
begin
    select t.columns_seen into seen from txidsync.tracked as t where t.relid = tbl;
    if not found then
        raise exception 'txidsync: % is not tracked', tbl;
    end if;
    if seen is distinct from now_seen then
        select t.columns_seen into seen from txidsync.tracked as t where t.relid = tbl for update;
        if seen is distinct from now_seen then
            update txidsync.tracked as t set columns_seen = now_seen where t.relid = tbl;
            if seen is not null then
                perform txidsync._refresh_all(tbl, 'columns changed');
            end if;
        end if;
    end if;
    return txidsync.refresh_pending(tbl);
end
$$;

-- Nested documents (docs/design.md, "Nested documents").  A tracked
-- table's documents can carry rows of related tables, to any depth:
-- declared with txidsync.nest(), recorded in txidsync.nested, built by the
-- document expression txidsync._nested_doc() in the syncer's batch query,
-- and kept exact by statement triggers on every related table that bump
-- the version and txid of each root key whose document a write changed,
-- in the writer's own transaction.

-- The parent's path of a member's path, '' for a member of the root, and
-- the member's name.
create or replace function txidsync._nest_parent(path text) returns text
    language sql immutable
    as $$ select case when pg_catalog.strpos(path, '.') = 0 then ''
                      else pg_catalog.regexp_replace(path, '\.[^.]*$', '') end $$;
create or replace function txidsync._nest_name(path text) returns text
    language sql immutable
    as $$ select pg_catalog.regexp_replace(path, '^.*\.', '') $$;

-- The relation a member of root's documents reads from FROM: ONLY for a
-- plain table (as the tracking triggers), qualified and quoted.
create or replace function txidsync._nest_from(rel regclass) returns text
    language sql stable
    as $$
    select case when c.relkind = 'r' then 'only ' else '' end
           || pg_catalog.format('%I.%I', n.nspname, c.relname)
      from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
     where c.oid = rel
$$;

-- The table of the node at path of root's documents: root itself for ''.
create or replace function txidsync._nest_rel(root regclass, path text) returns regclass
    language sql stable
    as $$
    select case when path = '' then root
                else (select n.rel from txidsync.nested as n
                       where n.root = _nest_rel.root and n.path = _nest_rel.path) end
$$;

-- "a.x1 op b.y1 and a.x2 op b.y2 ...": equality of columns xs of alias a
-- and ys of alias b, with the equality operators of the schemas ops.
create or replace function txidsync._nest_eq(a text, xs name[], b text, ys name[], ops name[])
    returns text
    language sql immutable
    as $$
    select pg_catalog.string_agg(pg_catalog.format('%s.%I operator(%I.=) %s.%I', a, xs[i], ops[i],
                                                   b, ys[i]), ' and ' order by i)
      from pg_catalog.generate_subscripts(xs, 1) as i
$$;

-- "fmt(1), fmt(2), ..." for the columns cols: %1$s the position, %2$s the
-- column quoted.
create or replace function txidsync._nest_list(cols name[], fmt text, sep text default ', ')
    returns text
    language sql immutable
    as $$
    select pg_catalog.string_agg(pg_catalog.format(fmt, i, pg_catalog.quote_ident(cols[i])), sep
                                 order by i)
      from pg_catalog.generate_subscripts(cols, 1) as i
$$;

-- The members of the node at ppath (row alias palias, nesting depth
-- depth) as arguments of jsonb_build_object: 'name', value, ...; null
-- when it has none.  A 'one' member is its row's object or null, a
-- 'many' member the array of its rows in key order ([] when none); each
-- row's object is to_jsonb of the row with its own members added.
create or replace function txidsync._nest_members(root regclass, ppath text, palias text,
                                                  depth integer)
    returns text
    language plpgsql stable
    set search_path = pg_catalog, pg_temp
    as $$
declare
    n txidsync.nested;
    a text := '_n' || depth;
    j text := '_j' || depth;
    pk record := txidsync._primary_key(txidsync._nest_rel(root, ppath));
    rk record;
    sub text;
    val text;
    parts text[] := '{}';
begin
    for n in select * from txidsync.nested as x
              where x.root = _nest_members.root and txidsync._nest_parent(x.path) = ppath
              order by x.path loop
        rk := txidsync._primary_key(n.rel);
        sub := txidsync._nest_members(root, n.path, a, depth + 1);
        val := case when sub is null then format('pg_catalog.to_jsonb(%s.*)', a)
                    else format('(pg_catalog.to_jsonb(%s.*) operator(pg_catalog.||) '
                                'pg_catalog.jsonb_build_object(%s))', a, sub) end;
        if n.kind = 'one' then
            val := format('(select %s from %s as %s where %s)', val, txidsync._nest_from(n.rel),
                          a, txidsync._nest_eq(a, rk.names, palias, n.columns, rk.op_schemas));
        elsif n.via is null then
            val := format('coalesce((select pg_catalog.jsonb_agg(%s order by %s) from %s as %s'
                          ' where %s), ''[]''::pg_catalog.jsonb)',
                          val, txidsync._nest_list(rk.names, a || '.%2$s'),
                          txidsync._nest_from(n.rel), a,
                          txidsync._nest_eq(a, n.columns, palias, pk.names, pk.op_schemas));
        else
            val := format('coalesce((select pg_catalog.jsonb_agg(%s order by %s) from %s as %s'
                          ' join %s as %s on %s where %s), ''[]''::pg_catalog.jsonb)',
                          val, txidsync._nest_list(rk.names, a || '.%2$s'),
                          txidsync._nest_from(n.via), j, txidsync._nest_from(n.rel), a,
                          txidsync._nest_eq(a, rk.names, j, n.columns, rk.op_schemas),
                          txidsync._nest_eq(j, n.via_columns, palias, pk.names, pk.op_schemas));
        end if;
        parts := parts || format('%L, %s', txidsync._nest_name(n.path), val);
    end loop;
    return nullif(array_to_string(parts, ', '), '');
end
$$;

-- The nested members of tracked table root's documents, as a jsonb
-- expression over its row r (the syncer adds it to to_jsonb(r.*)); null
-- when it has none.
create or replace function txidsync._nested_doc(root regclass) returns text
    language sql stable
    as $$
    select 'pg_catalog.jsonb_build_object(' || m || ')'
      from txidsync._nest_members(root, '', 'r', 1) as m
     where m is not null
$$;

-- Whether rel has an index whose leading columns are cols (in any order).
create or replace function txidsync._nest_indexed(rel regclass, cols name[]) returns boolean
    language sql stable
    as $$
    select exists (
        select from pg_catalog.pg_index as i
         where i.indrelid = rel
           and (select pg_catalog.array_agg(a.attname order by a.attname)
                  from pg_catalog.unnest((i.indkey::pg_catalog.int2[])[0:cardinality(cols) - 1])
                       as k(attnum)
                  join pg_catalog.pg_attribute as a on a.attrelid = rel and a.attnum = k.attnum)
               = (select pg_catalog.array_agg(c order by c) from pg_catalog.unnest(cols) as c))
$$;

-- Trigger code (see _nest_body): the keys (k1, k2, ... of the parent's
-- primary key) of the parents of the rows of node path that relation src
-- holds.  A 'many' row names its parent; a 'one' row's parents are the
-- rows referencing it; through a join table, the join rows referencing it
-- name them, and are locked FOR SHARE so that none moves to another
-- parent before this transaction ends.
create or replace function txidsync._nest_keys_of(root regclass, path text, src text)
    returns text
    language plpgsql stable
    set search_path = pg_catalog, pg_temp
    as $$
declare
    n txidsync.nested;
    rk record;
    pk record := txidsync._primary_key(txidsync._nest_rel(root, txidsync._nest_parent(path)));
begin
    select * into n from txidsync.nested as x where x.root = _nest_keys_of.root and x.path = _nest_keys_of.path;
    rk := txidsync._primary_key(n.rel);
    if n.kind = 'many' and n.via is null then
        return format('select %s from %s as s where %s',
                      txidsync._nest_list(n.columns, 's.%2$s as k%1$s'), src,
                      txidsync._nest_list(n.columns, 's.%2$s is not null', ' and '));
    elsif n.kind = 'one' then
        return format('select %s from %s as p join %s as s on %s',
                      txidsync._nest_list(pk.names, 'p.%2$s as k%1$s'),
                      txidsync._nest_from(txidsync._nest_rel(root, txidsync._nest_parent(path))),
                      src, txidsync._nest_eq('p', n.columns, 's', rk.names, rk.op_schemas));
    end if;
    return format('select %s from (select %s from %s as j join %s as s on %s for share of j) as j',
                  txidsync._nest_list(n.via_columns, 'j.%2$s as k%1$s'),
                  txidsync._nest_list(n.via_columns, 'j.%2$s'), txidsync._nest_from(n.via), src,
                  txidsync._nest_eq('j', n.columns, 's', rk.names, rk.op_schemas));
end
$$;

-- Trigger code: bumps the version and txid of the documents of root
-- whose keys the relation keys holds (distinct columns k1, k2, ... of
-- root's key types), in key order.  In the side mode the side row's lock
-- orders the versions of a key (an insert takes its version in DO UPDATE,
-- after the lock); in the log mode the root row's lock does, as for the
-- row trigger, so only keys whose row exists get an entry.
create or replace function txidsync._nest_bump(root regclass, keys text) returns text
    language plpgsql stable
    set search_path = pg_catalog, pg_temp
    as $$
declare
    t txidsync.tracked;
    pk record := txidsync._primary_key(root);
    nextv text;
    ks name[];
begin
    select * into t from txidsync.tracked as x where x.relid = root;
    nextv := format('pg_catalog.nextval(%L::pg_catalog.regclass)',
                    format('txidsync.%I', txidsync._version_seq(t.side_table)));
    select array_agg(format('k%s', i)::name order by i) into ks
      from generate_subscripts(pk.names, 1) as i;
    if t.mode = 'log' then
        return format(
            'insert into txidsync.%I (txid, version, %s)'
            ' select txidsync.current_txid(), %s, %s from (select %s from %s as r join %s as q'
            ' on %s order by %s for no key update of r) as c;',
            txidsync._log_table(t.side_table),
            txidsync._key_list(pk.names, pk.op_schemas, '%1$s', ', '), nextv,
            txidsync._nest_list(pk.names, 'c.%2$s'), txidsync._nest_list(pk.names, 'r.%2$s'),
            txidsync._nest_from(root), keys,
            txidsync._nest_eq('r', pk.names, 'q', ks, pk.op_schemas),
            txidsync._nest_list(pk.names, 'r.%2$s'));
    end if;
    return format(
        'insert into txidsync.%1$I as s (%2$s, version, txid, deleted)'
        ' select %3$s, %4$s, txidsync.current_txid(), not exists (select from %5$s as r where %6$s)'
        ' from %7$s as q order by %3$s'
        ' on conflict (%2$s) do update set version = %4$s, txid = excluded.txid;',
        t.side_table, txidsync._key_list(pk.names, pk.op_schemas, '%1$s', ', '),
        txidsync._nest_list(pk.names, 'q.k%1$s'), nextv, txidsync._nest_from(root),
        txidsync._nest_eq('r', pk.names, 'q', ks, pk.op_schemas), keys);
end
$$;

-- Trigger code: given the query keys of the parents' keys (k1, k2, ...)
-- of a member of the node at ppath, bumps the documents they belong to.
-- The keys are typed as the parent's key (its equality operators apply).
-- At the root they go into the bump in one statement.  Below it, they are
-- gathered first, in a statement of their own, and the parents' rows are
-- then locked, in key order (FOR SHARE when their own
-- link to their parent is in them; FOR NO KEY UPDATE when rows elsewhere
-- reference them, which conflicts with those writers' reference locks,
-- see _nest_refs), and the walk goes on from them in a statement of its
-- own: in READ COMMITTED that sees whatever a writer it waited for
-- committed.  depth names the walk's variables.
create or replace function txidsync._nest_from_keys(root regclass, ppath text, keys text,
                                                    depth integer)
    returns text
    language plpgsql stable
    set search_path = pg_catalog, pg_temp
    as $$
declare
    p txidsync.nested;
    prel regclass := txidsync._nest_rel(root, ppath);
    pk record := txidsync._primary_key(prel);
    k text := '_k' || depth || '_';
    w text := '_w' || depth || '_';
    ks name[];
    qrel text;
    decl text;
    next text;
begin
    select array_agg(format('k%s', i)::name order by i) into ks
      from generate_subscripts(pk.names, 1) as i;
    decl := (select string_agg(format('%s%s %s[]; %s%s %s[];', k, i, pk.types[i], w, i,
                                      pk.types[i]), ' ' order by i)
               from generate_subscripts(pk.names, 1) as i);
    qrel := format('(select distinct %s from unnest(%s) as q(%s))',
                   txidsync._nest_list(pk.names, 'q.k%1$s'), txidsync._nest_list(pk.names, k || '%1$s'),
                   txidsync._nest_list(pk.names, 'k%1$s'));
    if ppath = '' then
        -- At the root the keys go straight into the bump, one statement.
        return txidsync._nest_bump(root, format('(select distinct %s from (%s) as q)',
            (select string_agg(format('q.k%s::%s as k%s', i, pk.types[i], i), ', ' order by i)
               from generate_subscripts(pk.names, 1) as i), keys));
    else
        select * into p from txidsync.nested as x
         where x.root = _nest_from_keys.root and x.path = ppath;
        next := format(
            'select %s into %s from (select %s from %s as p join %s as q on %s order by %s for %s of p) as p;'
            ' if %s1 is not null then %s end if;',
            txidsync._nest_list(pk.names, 'pg_catalog.array_agg(p.%2$s)'),
            txidsync._nest_list(pk.names, w || '%1$s'),
            txidsync._nest_list(pk.names, 'p.%2$s'), txidsync._nest_from(prel), qrel,
            txidsync._nest_eq('p', pk.names, 'q', ks, pk.op_schemas),
            txidsync._nest_list(pk.names, 'p.%2$s'),
            case when p.kind = 'one' or p.via is not null then 'no key update' else 'share' end,
            w,
            txidsync._nest_from_keys(root, txidsync._nest_parent(ppath),
                txidsync._nest_keys_of(root, ppath,
                    format('(select p.* from %s as p join unnest(%s) as u(%s) on %s)',
                           txidsync._nest_from(prel), txidsync._nest_list(pk.names, w || '%1$s'),
                           txidsync._nest_list(pk.names, 'k%1$s'),
                           txidsync._nest_eq('p', pk.names, 'u', ks, pk.op_schemas))),
                depth + 1));
    end if;
    return format('declare %s begin select %s into %s from (%s) as q; if %s1 is not null then %s end if; end;',
                  decl,
                  (select string_agg(format('pg_catalog.array_agg(q.k%s::%s)', i, pk.types[i]), ', '
                                     order by i)
                     from generate_subscripts(pk.names, 1) as i),
                  txidsync._nest_list(pk.names, k || '%1$s'), keys, k, next);
end
$$;

-- Trigger code: the reference locks of the rows of tbl that relation src
-- holds (inserted, or updated to reference other rows).  A row that
-- references a row of a 'one' member's table, or a join row that
-- references a 'many' member's row, locks that row FOR SHARE: a
-- concurrent writer of it (holding it FOR NO KEY UPDATE) then either
-- committed first, and this transaction's documents are built after it,
-- or waits, and its walk (a statement after the wait) sees this reference.
-- For an update, only rows whose references changed (matched to their old
-- row by tbl's primary key; all of them when it has none).
create or replace function txidsync._nest_refs(tbl regclass, src text, upd boolean)
    returns text
    language plpgsql stable
    set search_path = pg_catalog, pg_temp
    as $$
declare
    r record;
    rk record;
    tk record := txidsync._primary_key(tbl);
    rows_of text;
    code text := '';
begin
    for r in select distinct n.rel, n.columns
               from txidsync.nested as n
              where (n.kind = 'one' and txidsync._nest_rel(n.root, txidsync._nest_parent(n.path)) = tbl)
                 or n.via = tbl
              order by 1, 2 loop
        rk := txidsync._primary_key(r.rel);
        rows_of := src;
        if upd and tk.names is not null then
            rows_of := format('(select s.* from %s as s where not exists (select from txidsync_old as o'
                              ' where %s and %s))', src,
                              txidsync._nest_eq('o', tk.names, 's', tk.names, tk.op_schemas),
                              txidsync._nest_eq('o', r.columns, 's', r.columns, rk.op_schemas));
        end if;
        code := code || format(
            ' perform from (select from %s as c where exists (select from %s as s where %s)'
            ' order by %s for share of c) as c;',
            txidsync._nest_from(r.rel), rows_of,
            txidsync._nest_eq('c', rk.names, 's', r.columns, rk.op_schemas),
            txidsync._nest_list(rk.names, 'c.%2$s'));
    end loop;
    return code;
end
$$;

-- Trigger code: everything a write of the rows src of tbl does for the
-- documents that nest tbl: as a member's table, a walk from its rows; as
-- a join table, a walk from the parents its rows name; and the reference
-- locks (refs: src of the rows whose references to lock, null: none).
create or replace function txidsync._nest_actions(tbl regclass, src text, refs text, upd boolean)
    returns text
    language plpgsql stable
    set search_path = pg_catalog, pg_temp
    as $$
declare
    n txidsync.nested;
    code text := '';
begin
    if refs is not null then
        code := txidsync._nest_refs(tbl, refs, upd);
    end if;
    for n in select * from txidsync.nested as x where x.rel = tbl order by x.root, x.path loop
        code := code || ' ' || txidsync._nest_from_keys(n.root, txidsync._nest_parent(n.path),
                                                        txidsync._nest_keys_of(n.root, n.path, src), 1);
    end loop;
    for n in select * from txidsync.nested as x where x.via = tbl order by x.root, x.path loop
        code := code || ' ' || txidsync._nest_from_keys(n.root, txidsync._nest_parent(n.path),
            format('select %s from %s as s where %s',
                   txidsync._nest_list(n.via_columns, 's.%2$s as k%1$s'), src,
                   txidsync._nest_list(n.via_columns, 's.%2$s is not null', ' and ')), 1);
    end loop;
    return code;
end
$$;

-- The body of tbl's statement trigger function: per event, the actions
-- over its transition tables (txidsync_old, txidsync_new); a TRUNCATE,
-- run before it, walks from every row.  Null when tbl needs none.
create or replace function txidsync._nest_body(tbl regclass) returns text
    language plpgsql stable
    set search_path = pg_catalog, pg_temp
    as $$
declare
    ins text := txidsync._nest_actions(tbl, 'txidsync_new', 'txidsync_new', false);
begin
    if ins = '' then
        return null;
    end if;
    return format(
        'begin if TG_OP operator(pg_catalog.=) ''INSERT'' then %s'
        ' elsif TG_OP operator(pg_catalog.=) ''UPDATE'' then %s'
        ' elsif TG_OP operator(pg_catalog.=) ''DELETE'' then %s'
        ' else %s end if; return null; end',
        ins,
        txidsync._nest_actions(tbl, '(select * from txidsync_old union all select * from txidsync_new)',
                               'txidsync_new', true),
        txidsync._nest_actions(tbl, 'txidsync_old', null, false),
        txidsync._nest_actions(tbl, txidsync._nest_from(tbl), null, false));
end
$$;

-- Generates the statement triggers of every table that nested documents
-- read (txidsync_nest_ins, _upd, _del after the statement, with its
-- transition tables; txidsync_nest_trunc before a TRUNCATE) and their
-- functions txidsync._nested_trg_<oid>, after dropping all earlier ones.  The
-- functions are SECURITY DEFINER, so any writer of a table bumps the
-- documents, with search_path pinned (they run once per statement).
create or replace function txidsync._nest_install() returns void
    language plpgsql
    set search_path = pg_catalog, pg_temp
    set client_min_messages = warning
    as $$
declare
    t regclass;
    fn text;
    body text;
begin
    for t in select distinct g.tgrelid::regclass from pg_catalog.pg_trigger as g
              where g.tgname in ('txidsync_nest_ins', 'txidsync_nest_upd', 'txidsync_nest_del',
                                 'txidsync_nest_trunc') loop
        execute format('drop trigger if exists txidsync_nest_ins on %1$s;'
                       ' drop trigger if exists txidsync_nest_upd on %1$s;'
                       ' drop trigger if exists txidsync_nest_del on %1$s;'
                       ' drop trigger if exists txidsync_nest_trunc on %1$s', t);
    end loop;
    for fn in select p.oid::regprocedure::text from pg_catalog.pg_proc as p
               where p.pronamespace = 'txidsync'::regnamespace and p.proname like '\_nested\_trg\_%' loop
        execute format('drop function %s', fn);
    end loop;
    for t in select x.root from txidsync.nested as x
             union select x.rel from txidsync.nested as x
             union select x.via from txidsync.nested as x where x.via is not null loop
        body := txidsync._nest_body(t);
        continue when body is null;
        fn := format('txidsync.%I', '_nested_trg_' || t::oid);
        execute format('create function %s() returns trigger language plpgsql security definer'
                       ' set search_path = pg_catalog, pg_temp as %L', fn, body);
        execute format('create trigger txidsync_nest_ins after insert on %1$s'
                       ' referencing new table as txidsync_new for each statement execute function %2$s();'
                       ' create trigger txidsync_nest_upd after update on %1$s'
                       ' referencing old table as txidsync_old new table as txidsync_new'
                       ' for each statement execute function %2$s();'
                       ' create trigger txidsync_nest_del after delete on %1$s'
                       ' referencing old table as txidsync_old for each statement execute function %2$s();'
                       ' create trigger txidsync_nest_trunc before truncate on %1$s'
                       ' for each statement execute function %2$s()', t, fn);
    end loop;
end
$$;

-- Starts a refresh of every key of tbl for reason, or restarts the
-- unfinished one of every key (the rows it did were sent in the old
-- shape).
create or replace function txidsync._refresh_all(tbl regclass, reason text) returns void
    language plpgsql
    as $$
begin
    update txidsync.refreshes as r
       set after_key = null, reason = _refresh_all.reason
     where r.relid = tbl and r.finished_at is null and r.where_sql is null;
    if not found then
        perform txidsync.refresh_start(tbl, null, reason);
    end if;
end
$$;

-- Refuses a member definition that cannot work, with a message that says
-- why; warns when a join the triggers or the documents run has no index.
create or replace function txidsync._nest_check(n txidsync.nested) returns void
    language plpgsql
    set search_path = pg_catalog, pg_temp
    as $$
declare
    ppath text := txidsync._nest_parent(n.path);
    prel regclass := txidsync._nest_rel(n.root, ppath);
    pk record;
    rk record;
    c name;
begin
    if not exists (select from txidsync.tracked as t where t.relid = n.root) then
        raise exception 'txidsync: % is not tracked (select txidsync.track(''%''))', n.root, n.root;
    end if;
    if n.path is null or n.path !~ '^[^.]+(\.[^.]+)*$' then
        raise exception 'txidsync: "%" is not a member path: names joined by dots, none empty '
                        '(''items'', ''items.product'')', n.path;
    end if;
    if prel is null then
        raise exception 'txidsync: % has no member "%" to nest "%" in (nest it first)',
            n.root, ppath, txidsync._nest_name(n.path);
    end if;
    if n.kind is null or n.kind not in ('one', 'many') then
        raise exception 'txidsync: unknown member kind "%": ''one'' (the parent references a row) '
                        'or ''many'' (rows reference the parent)', n.kind;
    end if;
    if (select c.relnamespace from pg_catalog.pg_class as c where c.oid = n.rel)
       = 'txidsync'::regnamespace then
        raise exception 'txidsync: refusing to nest % from schema txidsync', n.rel;
    end if;
    if (select c.relkind from pg_catalog.pg_class as c where c.oid = n.rel) not in ('r', 'p')
       or (n.via is not null
           and (select c.relkind from pg_catalog.pg_class as c where c.oid = n.via) not in ('r', 'p')) then
        raise exception 'txidsync: % is not a table', case when (select c.relkind
            from pg_catalog.pg_class as c where c.oid = n.rel) in ('r', 'p') then n.via else n.rel end;
    end if;
    pk := txidsync._primary_key(prel);
    rk := txidsync._primary_key(n.rel);
    if rk.names is null then
        raise exception 'txidsync: % has no primary key (a nested table needs one)', n.rel;
    end if;
    if n.via is not null and n.kind <> 'many' then
        raise exception 'txidsync: a join table (via) makes a ''many'' member, not ''%''', n.kind;
    end if;
    if cardinality(n.columns) is distinct from
       cardinality(case when n.kind = 'many' and n.via is null then pk.names else rk.names end) then
        raise exception 'txidsync: member "%": % columns given, the referenced primary key has %',
            n.path, coalesce(cardinality(n.columns), 0),
            cardinality(case when n.kind = 'many' and n.via is null then pk.names else rk.names end);
    end if;
    if n.via is not null and cardinality(n.via_columns) is distinct from cardinality(pk.names) then
        raise exception 'txidsync: member "%": % via_columns given, the primary key of % has %',
            n.path, coalesce(cardinality(n.via_columns), 0), prel, cardinality(pk.names);
    end if;
    if n.via is null and n.via_columns is not null then
        raise exception 'txidsync: member "%": via_columns without via', n.path;
    end if;
    foreach c in array n.columns loop
        if not exists (select from pg_catalog.pg_attribute as a
                        where a.attrelid = case when n.kind = 'one' then prel
                                                else coalesce(n.via, n.rel) end
                          and a.attname = c and a.attnum > 0 and not a.attisdropped) then
            raise exception 'txidsync: member "%": % has no column %', n.path,
                case when n.kind = 'one' then prel else coalesce(n.via, n.rel) end, c;
        end if;
    end loop;
    foreach c in array coalesce(n.via_columns, '{}') loop
        if not exists (select from pg_catalog.pg_attribute as a
                        where a.attrelid = n.via and a.attname = c and a.attnum > 0
                          and not a.attisdropped) then
            raise exception 'txidsync: member "%": % has no column %', n.path, n.via, c;
        end if;
    end loop;
    if exists (select from pg_catalog.pg_attribute as a
                where a.attrelid = prel and a.attname = txidsync._nest_name(n.path)
                  and a.attnum > 0 and not a.attisdropped) then
        raise exception 'txidsync: member "%": % already has a column "%"', n.path, prel,
            txidsync._nest_name(n.path);
    end if;
    if (select count(*) from txidsync.nested as x
         where x.root = n.root and txidsync._nest_parent(x.path) = ppath and x.path <> n.path) >= 50 then
        raise exception 'txidsync: % already has 50 members at "%", the most one object may have',
            n.root, ppath;
    end if;
    if n.kind = 'one' and not txidsync._nest_indexed(prel, n.columns) then
        raise warning 'txidsync: no index of % leads with (%): a change of a row of % scans it',
            prel, array_to_string(n.columns, ', '), n.rel;
    elsif n.kind = 'many' and not txidsync._nest_indexed(coalesce(n.via, n.rel),
                                                         coalesce(n.via_columns, n.columns)) then
        raise warning 'txidsync: no index of % leads with (%): every document scans it',
            coalesce(n.via, n.rel), array_to_string(coalesce(n.via_columns, n.columns), ', ');
    end if;
    if n.via is not null and not txidsync._nest_indexed(n.via, n.columns) then
        raise warning 'txidsync: no index of % leads with (%): a change of a row of % scans it',
            n.via, array_to_string(n.columns, ', '), n.rel;
    end if;
end
$$;

-- Gives the documents of tracked table root the member path (see
-- txidsync.nested), or changes it: kind 'one' (the parent's columns
-- reference rel's primary key) or 'many' (rel's columns reference the
-- parent's key; with via, the join table's via_columns reference the
-- parent's key and its columns rel's key).  Run it as the owner of the
-- tables (it adds triggers to them).  It generates the triggers that keep
-- the documents exact, grants the readers SELECT on rel and via, and
-- starts a refresh of root so that every document gets the new shape
-- (the syncers step it in the background); a member given again as it
-- is changes nothing.  Writers of the tables wait until the caller commits.
create or replace function txidsync.nest(root regclass, path text, kind text, rel regclass,
                                         columns name[], via regclass default null,
                                         via_columns name[] default null)
    returns void
    language plpgsql
    set client_min_messages = warning
    as $$
declare
    n txidsync.nested := row(root, path, kind, rel, columns, via, via_columns);
    r name;
    doc text;
begin
    perform txidsync._nest_check(n);
    if exists (select from txidsync.nested as x where x is not distinct from n) then
        return;  -- as it is: no new triggers, no refresh
    end if;
    insert into txidsync.nested as x values (n.*)
        on conflict on constraint nested_pkey do update
        set kind = excluded.kind, rel = excluded.rel, columns = excluded.columns,
            via = excluded.via, via_columns = excluded.via_columns;
    doc := txidsync._nested_doc(root);
    begin
        execute format('select %s from %s as r limit 0', doc, txidsync._nest_from(root));
    exception when others then
        raise exception 'txidsync: member "%" of %: its documents cannot be built: %', path, root,
            sqlerrm using errcode = sqlstate;
    end;
    for r in select x.role_name from txidsync.readers as x loop
        execute format('grant select on %s to %I', rel, r);
        if via is not null then
            execute format('grant select on %s to %I', via, r);
        end if;
    end loop;
    perform txidsync._nest_install();
    perform txidsync._refresh_all(root, 'documents changed');
    update txidsync.tracked as t set columns_seen = txidsync._columns_fingerprint(root)
     where t.relid = root;
end
$$;

-- Removes member path (and the members nested in it) from the documents
-- of root, regenerates the triggers and starts a refresh of root.
create or replace function txidsync.nest_drop(root regclass, path text) returns void
    language plpgsql
    set client_min_messages = warning
    as $$
begin
    delete from txidsync.nested as x
     where x.root = nest_drop.root
       and (x.path = nest_drop.path or pg_catalog.starts_with(x.path, nest_drop.path || '.'));
    if not found then
        raise notice 'txidsync: % has no member "%"', root, path;
        return;
    end if;
    perform txidsync._nest_install();
    perform txidsync._refresh_all(root, 'documents changed');
    update txidsync.tracked as t set columns_seen = txidsync._columns_fingerprint(root)
     where t.relid = root;
end
$$;

-- Forgets the members whose tables no longer exist (and those nested in
-- them), and regenerates the triggers.  Returns how many it forgot.
create or replace function txidsync._nest_forget_dropped() returns integer
    language plpgsql
    as $$
declare
    gone txidsync.nested;
    n integer := 0;
begin
    for gone in select * from txidsync.nested as x
                 where not exists (select from pg_catalog.pg_class as c where c.oid = x.rel::oid)
                    or (x.via is not null and not exists (select from pg_catalog.pg_class as c
                                                            where c.oid = x.via::oid)) loop
        delete from txidsync.nested as x
         where x.root = gone.root
           and (x.path = gone.path or pg_catalog.starts_with(x.path, gone.path || '.'));
        n := n + 1;
    end loop;
    if n > 0 then
        perform txidsync._nest_install();
    end if;
    return n;
end
$$;

-- Makes role_name a reader: what a syncer's role needs to sync every
-- tracked table, now and after (USAGE on the schema, SELECT on its
-- catalog tables, and on every tracked table and its side table; tables
-- tracked later are granted by track()).  Run it as the tables' owner or
-- a superuser.  A reader may not write: it cannot step a refresh or note
-- changed columns (the syncer then warns and names txidsync refresh).
-- Returns how many tracked tables it granted.
create or replace function txidsync.grant_reader(role_name name) returns integer
    language plpgsql
    as $$
declare
    t record;
    n integer := 0;
begin
    if not exists (select from pg_catalog.pg_roles as r where r.rolname = role_name) then
        raise exception 'txidsync: role % does not exist', role_name;
    end if;
    insert into txidsync.readers as x values (role_name) on conflict do nothing;
    execute format('grant usage on schema txidsync to %I', role_name);
    execute format('grant select on txidsync.tracked, txidsync.refreshes to %I', role_name);
    execute format('grant select, insert, update on txidsync.consumers to %I', role_name);
    execute format('grant select on txidsync.nested to %I', role_name);
    for t in select k.relid, k.side_table from txidsync.tracked as k loop
        perform txidsync._grant_readers(t.relid, t.side_table, role_name);
        n := n + 1;
    end loop;
    for t in select n.rel from txidsync.nested as n union select n.via from txidsync.nested as n
              where n.via is not null loop
        execute format('grant select on %s to %I', t.rel, role_name);
    end loop;
    return n;
end
$$;

-- Undoes grant_reader: role_name is no reader any more, and loses what it
-- gave (SELECT on the tracked tables too: grant it again if the role
-- needs it for something else).
create or replace function txidsync.revoke_reader(role_name name) returns void
    language plpgsql
    as $$
declare
    t record;
begin
    delete from txidsync.readers as x where x.role_name = revoke_reader.role_name;
    for t in select k.relid, k.side_table from txidsync.tracked as k loop
        execute format('revoke select on %s from %I', t.relid, role_name);
        execute format('revoke select on txidsync.%I from %I', t.side_table, role_name);
        if to_regclass(format('txidsync.%I', txidsync._log_table(t.side_table))) is not null then
            execute format('revoke select on txidsync.%I from %I',
                           txidsync._log_table(t.side_table), role_name);
        end if;
    end loop;
    for t in select n.rel from txidsync.nested as n union select n.via from txidsync.nested as n
              where n.via is not null loop
        execute format('revoke select on %s from %I', t.rel, role_name);
    end loop;
    execute format('revoke select on txidsync.nested from %I', role_name);
    execute format('revoke select, insert, update on txidsync.consumers from %I', role_name);
    execute format('revoke select on txidsync.tracked, txidsync.refreshes from %I', role_name);
    execute format('revoke usage on schema txidsync from %I', role_name);
end
$$;

-- Event trigger function: after a DROP that removed a tracked table,
-- forget it.  Does nothing when txidsync itself is being dropped.
create or replace function txidsync.on_sql_drop() returns event_trigger
    language plpgsql
    as $$
begin
    if to_regclass('txidsync.tracked') is null then
        return;
    end if;
    if exists (select from pg_catalog.pg_event_trigger_dropped_objects() as d
                where d.classid = 'pg_catalog.pg_class'::regclass
                  and (exists (select from txidsync.tracked as t where t.relid::oid = d.objid)
                       or exists (select from txidsync.nested as n
                                   where n.rel::oid = d.objid or n.via::oid = d.objid))) then
        perform txidsync.forget_dropped();
    end if;
end
$$;

-- Creating an event trigger needs a superuser; without one, tracking works
-- the same and a table should be untracked before it is dropped (or
-- txidsync.forget_dropped() called after).
do $install$
begin
    if not exists (select from pg_catalog.pg_event_trigger
                    where evtname = 'txidsync_forget_dropped') then
        create event trigger txidsync_forget_dropped on sql_drop
            execute function txidsync.on_sql_drop();
    end if;
exception when insufficient_privilege then
    raise notice 'txidsync: no event trigger (needs a superuser): untrack a table before '
                 'dropping it, or call txidsync.forget_dropped() afterwards';
end
$install$;

-- Regenerates the triggers of nested documents, so that re-running this
-- file upgrades them too.
do $install$
begin
    perform txidsync._nest_install();
end
$install$;

commit;
