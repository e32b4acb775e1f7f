-- Indexes on the default partitions of the day rollups that lead with customer_id, as core.events_default
-- has one. The default partition holds every customer without a tenant login, so a (customer, day range)
-- lookup there, which the split steps of sql/040_rollups.sql and sql/marts/010_marts.sql make for each unit
-- of customers (the weeks and months of a changed day, the 30 days before a customer's latest day), would
-- otherwise read every such customer's rows once per unit. A tenant's own partition holds one customer and
-- needs none: its primary key leads with day.
--
-- CREATE INDEX takes a SHARE lock on the partition for as long as it builds: tenants and BI go on reading,
-- while elt refresh (the only writer) waits; lock_timeout makes the migration fail rather than queue behind a
-- running refresh. On a large default partition, build them by hand first with CREATE INDEX CONCURRENTLY
-- under these names: the migration then finds them and does nothing.

set local lock_timeout = '10s';
set local statement_timeout = '15min';

-- The default partitions are created here if the tenant layer (elt migrate, after the migrations) has not
-- made them yet, under the name it gives them, so that it finds them.
create table if not exists marts.rollup_user_day_default partition of marts.rollup_user_day default;
create table if not exists marts.rollup_customer_day_default partition of marts.rollup_customer_day default;

create index if not exists rollup_user_day_default_customer_day_idx
    on marts.rollup_user_day_default (customer_id, day);
create index if not exists rollup_customer_day_default_customer_day_idx
    on marts.rollup_customer_day_default (customer_id, day);

---- create above / drop below ----

drop index marts.rollup_customer_day_default_customer_day_idx;
drop index marts.rollup_user_day_default_customer_day_idx;
-- The default partitions stay: the tenant layer would create them again, and they hold rows.
