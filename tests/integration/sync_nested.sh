#!/usr/bin/env bash
# Nested documents (docs/design.md, "Nested documents") against the real
# bed: orders with their customer (one), their items (many), each item's
# product (one) and each product's tags (many, through product_tags).
#  1. nest() refuses bad definitions with a message naming the problem;
#  2. the backfill builds nested documents, and --content finds them equal;
#  3. every kind of change of a related table reaches exactly the
#     documents it changes (their side versions go up, the others' stay),
#     with the content the syncer then sends: item inserted, updated,
#     moved to another order, deleted; customer, product and tag renamed;
#     a product tagged and untagged; an order re-pointed to another
#     customer; an order deleted with its items (cascade); product_tags
#     truncated;
#  4. the same in the log mode;
#  5. nest_drop removes a member from every document (a refresh), and a
#     reader role (grant_reader) can check them;
#  after each step the checker, content included, finds the index equal.
set -euo pipefail
. "$TXIDSYNC_ROOT/tests/integration/lib.sh"

tmp=$TXIDSYNC_TEST_TMP
ix=$(test_index)
psql -X -q -v ON_ERROR_STOP=1 -f "$TXIDSYNC_ROOT/sql/txidsync.sql" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 <<'EOF'
create table customers (id int primary key, name text not null);
create table orders (id int primary key, customer_id int references customers, status text);
create index on orders (customer_id);
create table products (id int primary key, name text not null);
create table order_items (id int primary key,
                          order_id int not null references orders on delete cascade,
                          product_id int references products, qty int not null);
create index on order_items (order_id);
create index on order_items (product_id);
create table tags (id int primary key, label text not null);
create table product_tags (product_id int references products, tag_id int references tags,
                           primary key (product_id, tag_id));
create index on product_tags (tag_id);
insert into customers select i, 'customer ' || i from generate_series(1, 50) as i;
insert into products select i, 'product ' || i from generate_series(1, 100) as i;
insert into tags select i, 'tag ' || i from generate_series(1, 20) as i;
insert into product_tags select p, t from generate_series(1, 100) as p, generate_series(1, 20) as t
 where (p + t) % 7 = 0;
insert into orders select i, 1 + i % 50, 'new' from generate_series(1, 300) as i;
insert into order_items select i, 1 + i % 300, 1 + i % 100, 1 + i % 5 from generate_series(1, 1500) as i;
select txidsync.track('orders') \g /dev/null
EOF

# 1. Bad definitions.
nest() { psql -X -q -v ON_ERROR_STOP=1 -At -c "select txidsync.nest($1)"; }
expect 1 'no column custid' nest "'orders', 'customer', 'one', 'customers', '{custid}'"
expect 1 '2 columns given, the referenced primary key has 1' \
    nest "'orders', 'customer', 'one', 'customers', '{customer_id,status}'"
expect 1 'unknown member kind "few"' nest "'orders', 'customer', 'few', 'customers', '{customer_id}'"
expect 1 'orders already has a column "status"' \
    nest "'orders', 'status', 'one', 'customers', '{customer_id}'"
expect 1 'has no member "items" to nest "product" in' \
    nest "'orders', 'items.product', 'one', 'products', '{product_id}'"
expect 1 'customers is not tracked' nest "'customers', 'orders', 'many', 'orders', '{customer_id}'"
expect 1 'is not a member path' nest "'orders', 'items..x', 'many', 'order_items', '{order_id}'"
expect 1 'cannot be built: operator does not exist' \
    nest "'orders', 'customer', 'one', 'customers', '{status}'"
[ "$(psql_q "select count(*) from txidsync.nested")" = 0 ] || fail "a refused member was recorded"
nest "'orders', 'customer', 'one', 'customers', '{customer_id}'" >/dev/null
nest "'orders', 'items', 'many', 'order_items', '{order_id}'" >/dev/null
nest "'orders', 'items.product', 'one', 'products', '{product_id}'" >/dev/null
nest "'orders', 'items.product.tags', 'many', 'tags', '{tag_id}', 'product_tags', '{product_id}'" >/dev/null
fns=$(psql_q "select string_agg(oid::text, ',' order by oid) from pg_proc where proname like '\_nested\_trg\_%'")
nest "'orders', 'items', 'many', 'order_items', '{order_id}'" >/dev/null
[ "$(psql_q "select string_agg(oid::text, ',' order by oid) from pg_proc where proname like '\_nested\_trg\_%'")" = "$fns" ] ||
    fail "a member given again as it is regenerated the triggers"
echo "1. bad definitions refused, four members nested, one given again changes nothing"

# The document of order KEY as the syncer sent it, without txidsync's field.
doc() { curl -sS "$TXIDSYNC_ES_URL/$ix/_source/$1" | jq -cS 'del(.txidsync)'; }
# doc_has KEY JQ: succeeds when order KEY's document satisfies JQ.
doc_has() { curl -sS "$TXIDSYNC_ES_URL/$ix/_source/$1" | jq -e "$2" >/dev/null; }
versions() { psql_q "select string_agg(id || ':' || coalesce((select max(v) from (select s.version as v
                       from txidsync.rows_orders as s where s.key = o.id union all select l.version
                       from txidsync.log_orders as l where l.key = o.id) as x), 0), ' ' order by id)
                     from generate_series(1, 300) as o(id)"; }
# bumped SQL KEYS...: runs SQL, and the orders whose tracked version went up
# must be exactly KEYS.
bumped() {
    local sql=$1 before after got
    shift
    before=$(versions)
    psql_q "$sql" >/dev/null
    after=$(versions)
    got=$(join -j1 <(tr ' ' '\n' <<<"$before" | tr ':' ' ' | sort) \
                   <(tr ' ' '\n' <<<"$after" | tr ':' ' ' | sort) |
          awk '$3 > $2 { print $1 }' | sort -n | tr '\n' ' ')
    [ "$got" = "$* " ] || [ -z "$*" -a -z "$got" ] ||
        fail "$sql: bumped orders '$got', expected '$* '"
}
# content_equal WHAT: once the syncer has caught up, the index equals the
# table, content included.
content_equal() {
    wait_for 60 "$CHECKER_BIN" --table orders --index "$ix"
    run_checker --table orders --index "$ix" --content
    expect_rc 0 "$1"
    expect_line '^content: +0$'
}

start_syncer "$tmp/sync.log" --table orders --index "$ix" --state-index "$ix-state" --poll-interval 100
wait_for 60 grep -q 'refresh .* finished' "$tmp/sync.log"
wait_for 30 doc_has 7 '.items | length == 5'
doc_has 7 '.customer.name == "customer 8" and .items[0].product.tags != null' ||
    fail "order 7's document: $(doc 7)"
content_equal "after the backfill"
echo "2. backfilled nested documents equal in content"

# changes MODE CUSTOMER: every kind of change, in the tracking mode MODE;
# order 7 is re-pointed to CUSTOMER.
changes() {
    local mode=$1
    bumped "insert into order_items values (5001, 3, 2, 9)" 3
    wait_for 30 doc_has 3 '[.items[].id] | index(5001) != null'
    bumped "update order_items set qty = 42 where id = 5001" 3
    wait_for 30 doc_has 3 '.items[] | select(.id == 5001) | .qty == 42'
    bumped "update order_items set order_id = 4 where id = 5001" 3 4
    wait_for 30 doc_has 4 '[.items[].id] | index(5001) != null'
    doc_has 3 '[.items[].id] | index(5001) == null' || fail "$mode: item 5001 still in order 3"
    bumped "delete from order_items where id = 5001" 4
    wait_for 30 doc_has 4 '[.items[].id] | index(5001) == null'
    # Customer 8 has orders 7 (but in the log mode's run), 57, 107, ..., 257.
    bumped "update customers set name = 'renamed $mode' where id = 8" \
        $(psql_q "select id from orders where customer_id = 8 order by id")
    wait_for 30 doc_has 257 ".customer.name == \"renamed $mode\""
    # Product 9's items are 8, 108, ..., 1408, in orders 9, 109, 209 (five each).
    bumped "update products set name = 'product $mode' where id = 9" 9 109 209
    wait_for 30 doc_has 209 ".items[] | select(.product.id == 9) | .product.name == \"product $mode\""
    # Tag 5 is on products 2, 9, 16, ..., 93: their orders.
    local tagged
    tagged=$(psql_q "select string_agg(distinct i.order_id::text, ' ' order by i.order_id::text)
                       from order_items as i join product_tags as t on t.product_id = i.product_id
                      where t.tag_id = 5" | tr ' ' '\n' | sort -n | tr '\n' ' ')
    bumped "update tags set label = 'tag $mode' where id = 5" $tagged
    wait_for 30 doc_has 9 ".items[0].product.tags[] | select(.id == 5) | .label == \"tag $mode\""
    bumped "insert into product_tags values (9, 1)" 9 109 209
    wait_for 30 doc_has 109 '.items[0].product.tags[0].id == 1'
    bumped "delete from product_tags where product_id = 9 and tag_id = 1" 9 109 209
    wait_for 30 doc_has 109 '.items[0].product.tags[0].id != 1'
    bumped "update orders set customer_id = $2 where id = 7" 7
    wait_for 30 doc_has 7 ".customer.id == $2"
    content_equal "$mode: after the changes"
}

changes side 9
# Deleting an order deletes its items (cascade): its document goes.
bumped "delete from orders where id = 11" 11
wait_for 30 sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$TXIDSYNC_ES_URL/$ix/_doc/11')\" = 404 ]"
echo "3. side mode: each change reached exactly its documents"

psql_q "select txidsync.track('orders', mode => 'log')" >/dev/null
[ "$(psql_q "select prosrc like '%log_orders%' from pg_proc
              where proname = '_nested_trg_' || 'order_items'::regclass::oid")" = t ] ||
    fail "the nested triggers were not regenerated for the log mode"
changes log 10
bumped "truncate product_tags" $(psql_q "select distinct order_id from order_items
                                          where product_id in (select product_id from product_tags)
                                          order by 1")
wait_for 30 doc_has 9 '.items[0].product.tags == []'
content_equal "log mode: after truncate"
echo "4. log mode: each change reached exactly its documents"

psql_q "select txidsync.nest_drop('orders', 'items.product')" >/dev/null
[ "$(psql_q "select count(*) from txidsync.nested")" = 2 ] || fail "nest_drop left its descendants"
wait_for 60 doc_has 9 '.items[0].product == null and .customer != null'
psql_q "do \$\$ begin create role nested_reader login; exception when duplicate_object then null; end \$\$" # roles are the cluster's
psql_q "select txidsync.grant_reader('nested_reader')" >/dev/null
run_checker --table orders --index "$ix" --content --pg "user=nested_reader"
expect_rc 0 "a reader role after nest_drop"
expect_line '^content: +0$'
stop_syncer "$SYNC_PID" || fail "the syncer did not stop cleanly"
grep -E ' (error|warn) ' "$tmp/sync.log" && fail "the syncer logged errors or warnings"
echo "5. nest_drop refreshed every document; a reader role checks them"
