-- Core: typed, deduplicated tables built from staging by elt refresh (sql/0*.sql), and the refresh state
-- (watermarks, the queue of changed days, the step log).
--
-- Every core row carries customer_id (the tenant key) and the staging row (staging_id, batch_id) its current
-- version came from. A record's newest version wins by (updated_at, batch_id, staging_id): the later
-- updated_at, then the later load; an older or equal version arriving late never overwrites a newer one.
--
-- This migration runs in one transaction (tern), so indexes cannot be built concurrently; it creates empty
-- tables plus BRIN indexes on staging, which are summarized without scanning rows at build time when staging is
-- empty and in one cheap pass otherwise.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer of the table behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

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
);
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
    constraint users_pkey primary key (customer_id, user_id)
);
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
    constraint events_pkey primary key (customer_id, event_id)
);
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

-- The rollups recompute a (customer, UTC day) bucket from the events of that day.
-- squawk-ignore require-concurrent-index-creation
create index events_customer_occurred_idx on core.events (customer_id, occurred_at);
-- Data checks look at the rows written since the checks last passed.
-- squawk-ignore require-concurrent-index-creation
create index events_batch_idx on core.events (batch_id);
-- squawk-ignore require-concurrent-index-creation
create index users_batch_idx on core.users (batch_id);

-- Transforms read only batches above their watermark. Staging is append-only in batch order, so a BRIN index
-- finds the newest batches at almost no cost to COPY: block ranges not yet summarized (the newest pages) are
-- always read, and autosummarize (or any vacuum) summarizes the older ones.
-- squawk-ignore require-concurrent-index-creation
create index customers_batch_brin on staging.customers using brin (batch_id) with (autosummarize = on);
-- squawk-ignore require-concurrent-index-creation
create index users_batch_brin on staging.users using brin (batch_id) with (autosummarize = on);
-- squawk-ignore require-concurrent-index-creation
create index events_batch_brin on staging.events using brin (batch_id) with (autosummarize = on);

create table elt.refresh_watermarks (
    step       text        not null,
    batch_id   bigint      not null,
    updated_at timestamptz not null default now(),
    constraint refresh_watermarks_pkey primary key (step)
);
comment on table elt.refresh_watermarks is 'Highest batch each refresh step has processed, committed with the step''s result.';

create table elt.refresh_dirty_days (
    customer_id text not null,
    day         date not null,
    constraint refresh_dirty_days_pkey primary key (customer_id, day)
);
comment on table elt.refresh_dirty_days is 'UTC days of each customer whose events changed since the data checks last passed; rollups recompute them.';

create table elt.refresh_steps (
    run_id      bigint      not null references elt.runs (run_id),
    seq         bigint      not null,
    kind        text        not null,
    name        text        not null,
    started_at  timestamptz not null default now(),
    finished_at timestamptz,
    status      text        not null default 'running',
    batch_from  bigint,
    batch_to    bigint,
    rows        bigint      not null default 0,
    error       text,
    constraint refresh_steps_pkey primary key (run_id, seq),
    constraint refresh_steps_kind_check check (kind in ('transform', 'check', 'mart')),
    constraint refresh_steps_status_check check (status in ('running', 'succeeded', 'failed', 'skipped'))
);
comment on table elt.refresh_steps is 'One row per step of an elt refresh run: transforms, data checks and mart refreshes, with time and rows.';
comment on column elt.refresh_steps.rows is 'Rows written (transform), violating rows (check) or rows in the mart after refresh (mart).';

---- create above / drop below ----

drop table elt.refresh_steps;
drop table elt.refresh_dirty_days;
drop table elt.refresh_watermarks;
drop index staging.events_batch_brin;
drop index staging.users_batch_brin;
drop index staging.customers_batch_brin;
drop table core.events;
drop table core.users;
drop table core.customers;
