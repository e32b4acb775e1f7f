-- Rollups: incremental aggregates of core.events, kept current by elt refresh (sql/040_rollups.sql), which
-- recomputes only the (customer, UTC day) buckets whose events changed, so their cost follows the new data.
-- All days, weeks and months are UTC: a week starts on Monday, a month on its first day.
--
-- The three day rollups are published to tenants as they are (elt.yaml: active_users_daily,
-- feature_usage_daily, user_activity_daily), so they are partitioned by list (customer_id) like core, with
-- customer_id last in their primary keys (each partition holds one customer: a tenant's range on day uses the
-- key); the week, month and lifetime rollups only feed the marts and stay plain tables.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer of the table behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

create table marts.rollup_customer_day (
    customer_id  text   not null,
    day          date   not null,
    active_users bigint not null,
    events       bigint not null,
    constraint rollup_customer_day_pkey primary key (day, customer_id)
) partition by list (customer_id);
comment on table marts.rollup_customer_day is 'Active users and events per customer and UTC day (only days with events).';
comment on column marts.rollup_customer_day.customer_id is 'Customer (tenant key).';
comment on column marts.rollup_customer_day.day is 'UTC day.';
comment on column marts.rollup_customer_day.active_users is 'Distinct users with at least one event that day.';
comment on column marts.rollup_customer_day.events is 'Events that day.';

create table marts.rollup_feature_day (
    customer_id text   not null,
    day         date   not null,
    feature     text   not null,
    events      bigint not null,
    users       bigint not null,
    constraint rollup_feature_day_pkey primary key (day, feature, customer_id)
) partition by list (customer_id);
comment on table marts.rollup_feature_day is 'Events and distinct users of each feature per customer and UTC day.';
comment on column marts.rollup_feature_day.customer_id is 'Customer (tenant key).';
comment on column marts.rollup_feature_day.day is 'UTC day.';
comment on column marts.rollup_feature_day.feature is 'Product feature, e.g. dashboard.view.';
comment on column marts.rollup_feature_day.events is 'Events of this feature that day.';
comment on column marts.rollup_feature_day.users is 'Distinct users who used this feature that day.';

create table marts.rollup_user_day (
    customer_id text        not null,
    day         date        not null,
    user_id     text        not null,
    events      bigint      not null,
    first_at    timestamptz not null,
    last_at     timestamptz not null,
    constraint rollup_user_day_pkey primary key (day, user_id, customer_id)
) partition by list (customer_id);
comment on table marts.rollup_user_day is 'Events of each user per UTC day (only days with events).';
comment on column marts.rollup_user_day.customer_id is 'Customer (tenant key).';
comment on column marts.rollup_user_day.day is 'UTC day.';
comment on column marts.rollup_user_day.user_id is 'User id.';
comment on column marts.rollup_user_day.events is 'Events of the user that day.';
comment on column marts.rollup_user_day.first_at is 'Time of the user''s first event that day (UTC).';
comment on column marts.rollup_user_day.last_at is 'Time of the user''s last event that day (UTC).';
-- Per-user recomputation (lifetime summaries) and a tenant's view of one user's activity read this table by
-- user, within the customer's partition.
-- squawk-ignore require-concurrent-index-creation
create index rollup_user_day_user_idx on marts.rollup_user_day (user_id, day);

create table marts.rollup_user_week (
    customer_id text   not null,
    week        date   not null,
    user_id     text   not null,
    events      bigint not null,
    constraint rollup_user_week_pkey primary key (customer_id, week, user_id)
);
comment on table marts.rollup_user_week is 'Events of each user per ISO week (Monday, UTC).';
-- squawk-ignore require-concurrent-index-creation
create index rollup_user_week_user_idx on marts.rollup_user_week (customer_id, user_id);

create table marts.rollup_user_month (
    customer_id text   not null,
    month       date   not null,
    user_id     text   not null,
    events      bigint not null,
    constraint rollup_user_month_pkey primary key (customer_id, month, user_id)
);
comment on table marts.rollup_user_month is 'Events of each user per calendar month (first day, UTC).';

create table marts.rollup_user (
    customer_id text        not null,
    user_id     text        not null,
    first_seen  timestamptz not null,
    last_seen   timestamptz not null,
    -- squawk-ignore prefer-bigint-over-int
    active_days integer     not null, -- days, at most a few thousand; the mart's contract type
    events      bigint      not null,
    constraint rollup_user_pkey primary key (customer_id, user_id)
);
comment on table marts.rollup_user is 'Lifetime activity of each user who has at least one event.';

---- create above / drop below ----

drop table marts.rollup_user;
drop table marts.rollup_user_month;
drop table marts.rollup_user_week;
drop table marts.rollup_user_day;
drop table marts.rollup_feature_day;
drop table marts.rollup_customer_day;
