-- Extract state: the run log, the batches that reached staging, incremental cursors, and the staging tables
-- of the demo export API. A batch (its COPY, its elt.batches row, the cursor and the run counters) commits in
-- one transaction, so staging never holds half a batch and a cursor never runs ahead of the data.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

create table elt.runs (
    run_id      bigint generated always as identity primary key,
    kind        text        not null,
    target      text        not null,
    started_at  timestamptz not null default now(),
    finished_at timestamptz,
    status      text        not null default 'running',
    pages       bigint      not null default 0,
    records     bigint      not null default 0,
    bytes       bigint      not null default 0,
    retries     bigint      not null default 0,
    error       text,
    constraint runs_kind_check check (kind in ('extract', 'refresh')),
    constraint runs_status_check check (status in ('running', 'succeeded', 'failed', 'cancelled'))
);
comment on table elt.runs is 'One row per elt extract (per source) or elt refresh run; elt status summarises it.';
create index runs_target_started_idx on elt.runs (kind, target, started_at desc);

create table elt.batches (
    batch_id      bigint generated always as identity primary key,
    run_id        bigint      not null references elt.runs (run_id),
    source        text        not null,
    resource      text        not null,
    staging_table text        not null,
    records       bigint      not null,
    bytes         bigint      not null,
    cursor_max    text,
    committed_at  timestamptz not null default now()
);
comment on table elt.batches is 'Each committed batch of records in staging; transforms process batches above their watermark.';
comment on column elt.batches.cursor_max is 'Highest incremental cursor value in the batch (null for replace loads); bounds the look-back scan.';
create index batches_run_idx on elt.batches (run_id);

create table elt.cursors (
    source     text        not null,
    resource   text        not null,
    scope      text        not null default '',
    value      text        not null,
    updated_at timestamptz not null default now(),
    constraint cursors_pkey primary key (source, resource, scope)
);
comment on table elt.cursors is 'Incremental cursor of each source resource, committed with the batch that reached it.';
comment on column elt.cursors.scope is 'Empty for a top-level resource; the parent key for a child resource, which keeps one cursor per parent.';
comment on column elt.cursors.value is 'Every record with a cursor value up to this one is in staging.';

create table elt.rejects (
    reject_id   bigint generated always as identity primary key,
    run_id      bigint      not null references elt.runs (run_id),
    source      text        not null,
    resource    text        not null,
    url         text        not null,
    reason      text        not null,
    raw         text        not null,
    rejected_at timestamptz not null default now()
);
comment on table elt.rejects is 'Records a source sent that could not be loaded (resources with rejects: true), with the reason and the raw text.';
create index rejects_source_idx on elt.rejects (source, resource, rejected_at desc);

-- Batch transactions share this lock; elt refresh takes it exclusively for an instant, so a watermark it
-- reads (max committed batch_id) can never be overtaken by a batch that was still in flight.
create function elt.lock_staging_shared() returns void
    language sql volatile
    set search_path = pg_catalog
    return pg_advisory_xact_lock_shared(hashtextextended('elt:staging-batches', 0));
comment on function elt.lock_staging_shared() is 'Taken by every extract batch transaction.';

create function elt.lock_staging_exclusive() returns void
    language sql volatile
    set search_path = pg_catalog
    return pg_advisory_xact_lock(hashtextextended('elt:staging-batches', 0));
comment on function elt.lock_staging_exclusive() is 'Taken by elt refresh to read a safe batch watermark.';

create table staging.customers (
    id       bigint generated always as identity primary key,
    batch_id bigint not null references elt.batches (batch_id),
    record   jsonb  not null,
    parent   jsonb
);
comment on table staging.customers is 'Raw customer records of the demo export API.';

create table staging.users (
    id       bigint generated always as identity primary key,
    batch_id bigint not null references elt.batches (batch_id),
    record   jsonb  not null,
    parent   jsonb
);
comment on table staging.users is 'Raw user records of the demo export API (children of customers).';

create table staging.events (
    id       bigint generated always as identity primary key,
    batch_id bigint not null references elt.batches (batch_id),
    record   jsonb  not null,
    parent   jsonb
);
comment on table staging.events is 'Raw usage event records of the demo export API.';

---- create above / drop below ----

drop table staging.events;
drop table staging.users;
drop table staging.customers;
drop function elt.lock_staging_exclusive();
drop function elt.lock_staging_shared();
drop table elt.rejects;
drop table elt.cursors;
drop table elt.batches;
drop table elt.runs;
