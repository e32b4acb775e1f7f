-- App: typed, deduplicated tables built from staging by elt refresh (sql/010..030). The source's integer ids
-- stay bigint; its epoch-millisecond timestamps become timestamptz (UTC); its nested objects become columns.
--
-- Every row carries org_id, the tenant key, and the staging row (staging_id, batch_id) its current version
-- came from. A record's newest version wins by (updated_at, batch_id, staging_id).
--
-- Each table is partitioned by list (org_id): elt creates one partition per org with a login (elt tenant
-- add) and a default partition for the others, and builds each tenant's views on its own partitions. Primary
-- keys include org_id, as a partitioned table requires. Indexes are created on every partition, where all
-- rows have the same org_id: they lead with the column a query ranges over, not with org_id.
--
-- This migration runs in one transaction and creates empty tables: nothing to block, and concurrently is
-- not possible inside a transaction.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer of the table behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

create schema app;
comment on schema app is 'Typed, deduplicated tables built from staging by elt refresh; every row carries org_id. Private: tenants read their own partitions through their own schema.';

create table app.orgs (
    org_id       bigint      not null,
    slug         text,
    display_name text,
    tier         text,
    currency     text,
    seats        bigint,
    created_at   timestamptz,
    updated_at   timestamptz not null,
    staging_id   bigint      not null,
    batch_id     bigint      not null,
    constraint orgs_pkey primary key (org_id)
) partition by list (org_id);
comment on table app.orgs is 'Organisations (tenants): the newest version of each org record.';
comment on column app.orgs.org_id is 'Organisation id from the API (orgId), the tenant key.';
comment on column app.orgs.slug is 'Short name of the organisation, as in its URLs.';
comment on column app.orgs.display_name is 'Organisation name (displayName).';
comment on column app.orgs.tier is 'Subscription tier.';
comment on column app.orgs.currency is 'Billing currency (billing.currency).';
comment on column app.orgs.seats is 'Seats paid for (billing.seats).';
comment on column app.orgs.created_at is 'When the organisation was created (createdAt, UTC).';
comment on column app.orgs.updated_at is 'When the source last changed the record (updatedAt, UTC); the newest version wins.';
comment on column app.orgs.staging_id is 'staging.orgs.id of the version kept (load order within its batch).';
comment on column app.orgs.batch_id is 'Batch that loaded the version kept (load order: breaks updated_at ties).';

create table app.members (
    org_id     bigint      not null,
    member_id  bigint      not null,
    full_name  text,
    email      text,
    access     text,
    joined_at  timestamptz,
    updated_at timestamptz not null,
    staging_id bigint      not null,
    batch_id   bigint      not null,
    constraint members_pkey primary key (org_id, member_id)
) partition by list (org_id);
comment on table app.members is 'Members of each organisation: the newest version of each member record.';
comment on column app.members.org_id is 'Organisation of the member (tenant key), from the parent org of the record.';
comment on column app.members.member_id is 'Member id from the API (memberId).';
comment on column app.members.full_name is 'Full name (profile.fullName).';
comment on column app.members.email is 'Email address (profile.email).';
comment on column app.members.access is 'Access level: owner, editor or viewer.';
comment on column app.members.joined_at is 'When the member joined (joinedAt, UTC).';
comment on column app.members.updated_at is 'When the source last changed the record (updatedAt, UTC); the newest version wins.';
comment on column app.members.staging_id is 'staging.members.id of the version kept (load order within its batch).';
comment on column app.members.batch_id is 'Batch that loaded the version kept (load order: breaks updated_at ties).';

create table app.activities (
    org_id      bigint      not null,
    activity_id bigint      not null,
    kind        text,
    actor_id    bigint,
    project_id  bigint,
    project_key text,
    duration_ms bigint,
    occurred_at timestamptz not null,
    updated_at  timestamptz not null,
    staging_id  bigint      not null,
    batch_id    bigint      not null,
    constraint activities_pkey primary key (org_id, activity_id)
) partition by list (org_id);
comment on table app.activities is 'Activities of the members: the newest version of each activity record.';
comment on column app.activities.org_id is 'Organisation of the activity (tenant key).';
comment on column app.activities.activity_id is 'Activity id from the API (activityId).';
comment on column app.activities.kind is 'What happened, e.g. issue.created or build.run.';
comment on column app.activities.actor_id is 'Member who did it (actor.memberId).';
comment on column app.activities.project_id is 'Project it happened in (project.projectId).';
comment on column app.activities.project_key is 'Short key of the project (project.key).';
comment on column app.activities.duration_ms is 'How long it took, in milliseconds (durationMs).';
comment on column app.activities.occurred_at is 'When it happened (createdAt, UTC); marts bucket it by UTC day.';
comment on column app.activities.updated_at is 'When the source last changed the record (updatedAt, UTC); the newest version wins.';
comment on column app.activities.staging_id is 'staging.activities.id of the version kept (load order within its batch).';
comment on column app.activities.batch_id is 'Batch that loaded the version kept (load order: breaks updated_at ties).';

-- A tenant's time series reads its own partition by time.
-- squawk-ignore require-concurrent-index-creation
create index activities_occurred_idx on app.activities (occurred_at);
-- Data checks and the mart step look at the rows written since they last ran.
-- squawk-ignore require-concurrent-index-creation
create index activities_batch_idx on app.activities (batch_id);
-- squawk-ignore require-concurrent-index-creation
create index members_batch_idx on app.members (batch_id);

---- create above / drop below ----

drop table app.activities;
drop table app.members;
drop table app.orgs;
drop schema app;
