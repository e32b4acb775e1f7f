-- Core: typed, deduplicated tables built from staging by elt refresh (sql/0*.sql).
--
-- Every core row carries customer_id, the tenant key, and the staging row (staging_id, batch_id) its current
-- version came from. A record's newest version wins by (updated_at, batch_id, staging_id): the later
-- updated_at, then the later load; an older or equal version arriving late never overwrites a newer one.
--
-- The tables a tenant reads are partitioned by list (customer_id). elt creates one partition per tenant (elt
-- tenant add) and a default partition for customers without a login, and builds each tenant's views on its own
-- partitions only: the planner then plans a tenant's queries with that tenant's statistics alone, and a purge
-- is a drop. Indexes created here on the partitioned tables are created on every partition.
--
-- This migration runs in one transaction (tern) and creates empty tables: nothing to block, and concurrently
-- is not possible inside a transaction.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer of the table behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

create schema core;
comment on schema core is 'Typed, deduplicated tables built from staging by elt refresh; every row carries customer_id. Private: tenants read their own partitions through their own schema.';

create schema marts;
comment on schema marts is 'Rollups and marts built from core by elt refresh. Private: tenants read their own partitions through their own schema.';

create table core.customers (
    customer_id text        not null,
    name        text,
    plan        text,
    country     text,
    created_at  timestamptz,
    updated_at  timestamptz not null,
    staging_id  bigint      not null,
    batch_id    bigint      not null,
    constraint customers_pkey primary key (customer_id)
) partition by list (customer_id);
comment on table core.customers is 'Customers (tenants) of the product: the newest version of each customer record.';
comment on column core.customers.customer_id is 'Customer id from the export API, the tenant key.';
comment on column core.customers.name is 'Customer (company) name.';
comment on column core.customers.plan is 'Subscription plan.';
comment on column core.customers.country is 'Country code.';
comment on column core.customers.created_at is 'When the customer account was created (UTC).';
comment on column core.customers.updated_at is 'When the source last changed the record (UTC); the newest version wins.';
comment on column core.customers.staging_id is 'staging.customers.id of the version kept (load order within its batch).';
comment on column core.customers.batch_id is 'Batch that loaded the version kept (load order: breaks updated_at ties).';

create table core.users (
    customer_id text        not null,
    user_id     text        not null,
    email       text,
    name        text,
    role        text,
    created_at  timestamptz,
    updated_at  timestamptz not null,
    staging_id  bigint      not null,
    batch_id    bigint      not null,
    constraint users_pkey primary key (user_id, customer_id)
) partition by list (customer_id);
comment on table core.users is 'Users of each customer: the newest version of each user record.';
comment on column core.users.customer_id is 'Customer the user belongs to (tenant key).';
comment on column core.users.user_id is 'User id from the export API.';
comment on column core.users.email is 'User email address.';
comment on column core.users.name is 'User display name.';
comment on column core.users.role is 'User role within the customer account.';
comment on column core.users.created_at is 'When the user joined (UTC).';
comment on column core.users.updated_at is 'When the source last changed the record (UTC); the newest version wins.';
comment on column core.users.staging_id is 'staging.users.id of the version kept (load order within its batch).';
comment on column core.users.batch_id is 'Batch that loaded the version kept (load order: breaks updated_at ties).';

create table core.events (
    customer_id text        not null,
    event_id    text        not null,
    user_id     text,
    feature     text,
    occurred_at timestamptz not null,
    updated_at  timestamptz not null,
    properties  jsonb,
    staging_id  bigint      not null,
    batch_id    bigint      not null,
    constraint events_pkey primary key (event_id, customer_id)
) partition by list (customer_id);
comment on table core.events is 'Product usage events: the newest version of each event record.';
comment on column core.events.customer_id is 'Customer the event belongs to (tenant key).';
comment on column core.events.event_id is 'Event id from the export API.';
comment on column core.events.user_id is 'User who triggered the event.';
comment on column core.events.feature is 'Product feature used, e.g. dashboard.view.';
comment on column core.events.occurred_at is 'When the event happened (UTC); marts bucket it by UTC day.';
comment on column core.events.updated_at is 'When the source last changed the record (UTC); the newest version wins.';
comment on column core.events.properties is 'Free-form event properties as sent by the source.';
comment on column core.events.staging_id is 'staging.events.id of the version kept (load order within its batch).';
comment on column core.events.batch_id is 'Batch that loaded the version kept (load order: breaks updated_at ties).';

-- Indexes on a partitioned table are built on each partition, where every row has the same customer_id: they
-- lead with the column a query ranges over, not with customer_id (which the primary keys therefore list last). The rollups recompute a (customer, UTC day)
-- bucket from the events of that day (the customer picks the partition, the time picks the rows), and a
-- tenant's time series reads its own partition by time the same way.
-- squawk-ignore require-concurrent-index-creation
create index events_occurred_idx on core.events (occurred_at);

-- The default partition holds the events of every customer without a login, so a day of one customer is a
-- range of (customer_id, occurred_at) there. (elt creates the default partitions the project does not.)
create table core.events_default partition of core.events default;
comment on table core.events_default is 'Events of the customers without a tenant login (elt tenant add moves a customer''s rows to a partition of its own).';
-- squawk-ignore require-concurrent-index-creation
create index events_default_customer_occurred_idx on core.events_default (customer_id, occurred_at);
-- Data checks look at the rows written since the checks last passed.
-- squawk-ignore require-concurrent-index-creation
create index events_batch_idx on core.events (batch_id);
-- squawk-ignore require-concurrent-index-creation
create index users_batch_idx on core.users (batch_id);

-- The (customer, UTC day) buckets whose events changed since the marts were last built: written by
-- sql/030_events.sql, read by the rollups (sql/040_rollups.sql) and the data checks, emptied by the mart step
-- (sql/marts/010_marts.sql) once the checks passed.
create table marts.dirty_days (
    customer_id text not null,
    day         date not null,
    constraint dirty_days_pkey primary key (customer_id, day)
);
comment on table marts.dirty_days is 'UTC days of each customer whose events changed since the marts were last built; the rollups and marts recompute them.';

---- create above / drop below ----

drop table marts.dirty_days;
drop table core.events_default;
drop table core.events;
drop table core.users;
drop table core.customers;
drop schema marts;
drop schema core;
