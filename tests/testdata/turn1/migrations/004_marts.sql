-- Marts: incremental rollups (tables) and the materialized views built over them.
--
-- elt refresh keeps the rollups current by recomputing only the (customer, UTC day) buckets whose events
-- changed (sql/040_rollups.sql), so their cost follows the new data. The materialized views (views/*.sql) read
-- only rollups, which are small next to core.events, and each has a unique index so that
-- refresh materialized view concurrently never blocks a reader.
--
-- All days, weeks and months are UTC: a week starts on Monday, a month on its first day.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer of the table behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

create table marts.rollup_user_day (
    customer_id text        not null,
    day         date        not null,
    user_id     text        not null,
    events      bigint      not null,
    first_at    timestamptz not null,
    last_at     timestamptz not null,
    constraint rollup_user_day_pkey primary key (customer_id, day, user_id)
);
comment on table marts.rollup_user_day is 'Events of each user per UTC day (only days with events).';
-- Per-user recomputation reads this table by user; the 30-day window per customer uses the primary key.
-- Every index here leads with customer_id: analytics.user_activity_daily reads this table, and an index led
-- by another column could let a tenant's predicate drive the scan under the view's barrier (elt tenant check).
-- The table was created above, empty, in this transaction: nothing to block, and concurrently is not possible
-- inside a migration's transaction.
-- squawk-ignore require-concurrent-index-creation
create index rollup_user_day_user_idx on marts.rollup_user_day (customer_id, user_id);

create table marts.rollup_customer_day (
    customer_id  text   not null,
    day          date   not null,
    active_users bigint not null,
    events       bigint not null,
    constraint rollup_customer_day_pkey primary key (customer_id, day)
);
comment on table marts.rollup_customer_day is 'Active users and events per customer and UTC day (only days with events).';

create table marts.rollup_feature_day (
    customer_id text   not null,
    day         date   not null,
    feature     text   not null,
    events      bigint not null,
    users       bigint not null,
    constraint rollup_feature_day_pkey primary key (customer_id, day, feature)
);
comment on table marts.rollup_feature_day is 'Events and distinct users of each feature per customer and UTC day.';

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

{{ template "views/active_users_daily.sql" . }}

{{ template "views/active_users_weekly.sql" . }}

{{ template "views/active_users_monthly.sql" . }}

{{ template "views/feature_usage_daily.sql" . }}

{{ template "views/user_activity.sql" . }}

{{ template "views/retention_weekly.sql" . }}

---- create above / drop below ----

drop materialized view marts.retention_weekly;
drop materialized view marts.user_activity;
drop materialized view marts.feature_usage_daily;
drop materialized view marts.active_users_monthly;
drop materialized view marts.active_users_weekly;
drop materialized view marts.active_users_daily;
drop table marts.rollup_user;
drop table marts.rollup_user_month;
drop table marts.rollup_user_week;
drop table marts.rollup_feature_day;
drop table marts.rollup_customer_day;
drop table marts.rollup_user_day;
