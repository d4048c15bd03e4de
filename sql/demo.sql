-- txidsync demo data: installs txidsync (sql/txidsync.sql beside this file),
-- creates public.some_table, tracks it (with NOTIFY on channel
-- "txidsync_some_table") and fills it with 30,000 rows of a realistic small
-- size (about 200 bytes each, deterministic content).
--
--   psql -v ON_ERROR_STOP=1 -f sql/demo.sql
--
-- Re-runnable: a second run changes nothing (the table is created and
-- filled only when missing or empty).  To start over, run
-- select txidsync.untrack('public.some_table'); drop table public.some_table;
-- first — and rebuild any target fed from it, as versions restart at 1.

\ir txidsync.sql

begin;

-- Schema-qualified: under the default search_path ("$user", public) a role
-- named txidsync would otherwise create it inside schema txidsync.
create table if not exists public.some_table (
    id bigint generated always as identity primary key,
    name text,
    data jsonb
);

select txidsync.track('public.some_table', notify => true);

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
