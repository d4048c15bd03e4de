-- txidsync demo data: installs txidsync (sql/txidsync.sql beside this file),
-- creates public.some_table, tracks it (with NOTIFY on channel
-- "txidsync_some_table") and fills it with 30,000 rows of a realistic small
-- size (about 200 bytes each, deterministic content).  A second tracked
-- table, public.some_table_parts, has a composite key (id bigint, part
-- text, with a ',' and a '%' in every part) and is kept by a trigger on
-- some_table: every write of a row of some_table writes its parts in the
-- same transaction (an insert or update adds to one of three parts, chosen
-- by the transaction's id, a delete or key change deletes them), so whatever the load
-- generator does to some_table (transactions far larger than a batch
-- included) happens to a composite-key table too.
--
--   psql -v ON_ERROR_STOP=1 -f sql/demo.sql
--
-- Re-runnable: a second run changes nothing (the table is created and
-- filled only when missing or empty).  To start over, run
-- select txidsync.untrack('public.some_table_parts');
-- select txidsync.untrack('public.some_table');
-- drop table public.some_table_parts, public.some_table; first — and rebuild any target fed from it, as versions restart at 1.

\ir txidsync.sql

begin;

-- Schema-qualified: under the default search_path ("$user", public) a role
-- named txidsync would otherwise create it inside schema txidsync.
create table if not exists public.some_table (
    id bigint generated always as identity primary key,
    name text,
    data jsonb
);

create table if not exists public.some_table_parts (
    id bigint,
    part text,
    qty integer not null,
    primary key (id, part)
);

create or replace function public.some_table_parts_mirror() returns trigger
    language plpgsql
    as $$
begin
    if tg_op = 'DELETE' or (tg_op = 'UPDATE' and new.id <> old.id) then
        delete from public.some_table_parts where id = old.id;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        insert into public.some_table_parts as p (id, part, qty)
        values (new.id, format('p,%s%%', pg_catalog.pg_current_xact_id()::text::bigint % 3), 1)
        on conflict (id, part) do update set qty = p.qty + 1;
    end if;
    return null;
end
$$;

drop trigger if exists some_table_parts_mirror on public.some_table;
create trigger some_table_parts_mirror after insert or update or delete on public.some_table
    for each row execute function public.some_table_parts_mirror();

-- The tracking mode from TXIDSYNC_TRACK_MODE (side or log); unset, a new
-- table is tracked in the side mode and a tracked one keeps its mode.
\getenv track_mode TXIDSYNC_TRACK_MODE
\if :{?track_mode}
\else
\set track_mode ''
\endif
select txidsync.track('public.some_table', notify => true, mode => nullif(:'track_mode', ''));
select txidsync.track('public.some_table_parts', mode => nullif(:'track_mode', ''));

insert into public.some_table (name, data)
select format('%s %s %s', adj[1 + i % 7], noun[1 + i % 11], i),
       jsonb_build_object(
           'sku', format('SKU-%s', lpad(i::text, 6, '0')),
           'price', round((1 + (i * 7919) % 50000 / 100.0)::numeric, 2),
           'qty', (i * 31) % 97,
           'active', i % 5 <> 0,
           'tags', jsonb_build_array(adj[1 + i % 7], noun[1 + (i / 7) % 11]),
           'created', to_char(timestamptz '2024-01-01 00:00:00+00' + i * interval '17 minutes',
                              'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'note', format('row %s of the txidsync demo', i))
  from generate_series(1, 30000) as i,
       (select array['red', 'small', 'quick', 'quiet', 'bright', 'heavy', 'old'] as adj,
               array['lamp', 'chair', 'table', 'kettle', 'spoon', 'clock', 'shelf',
                     'mirror', 'rug', 'vase', 'desk'] as noun) as words
 where not exists (select 1 from public.some_table);

commit;
