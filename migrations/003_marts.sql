-- Marts that tenants read and that are more than a rollup: built by the mart step of elt refresh
-- (sql/marts/010_marts.sql) for the customers, weeks and months whose days changed, once the data checks
-- passed. Partitioned by list (customer_id), like everything a tenant reads (see 001_core.sql).

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer of the table behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

create table marts.active_users_weekly (
    customer_id  text   not null,
    week         date   not null,
    active_users bigint not null,
    constraint active_users_weekly_pkey primary key (week, customer_id)
) partition by list (customer_id);
comment on table marts.active_users_weekly is 'Weekly active users per customer and ISO week (Monday to Sunday, UTC).';
comment on column marts.active_users_weekly.customer_id is 'Customer (tenant key).';
comment on column marts.active_users_weekly.week is 'Monday of the week (UTC).';
comment on column marts.active_users_weekly.active_users is 'Distinct users with at least one event that week.';

create table marts.active_users_monthly (
    customer_id  text   not null,
    month        date   not null,
    active_users bigint not null,
    constraint active_users_monthly_pkey primary key (month, customer_id)
) partition by list (customer_id);
comment on table marts.active_users_monthly is 'Monthly active users per customer and calendar month (UTC).';
comment on column marts.active_users_monthly.customer_id is 'Customer (tenant key).';
comment on column marts.active_users_monthly.month is 'First day of the month (UTC).';
comment on column marts.active_users_monthly.active_users is 'Distinct users with at least one event that month.';

create table marts.user_activity (
    customer_id text        not null,
    user_id     text        not null,
    first_seen  timestamptz not null,
    last_seen   timestamptz not null,
    -- squawk-ignore prefer-bigint-over-int
    active_days integer     not null, -- days, at most a few thousand; the mart's contract type
    events_30d  bigint      not null,
    constraint user_activity_pkey primary key (user_id, customer_id)
) partition by list (customer_id);
comment on table marts.user_activity is 'Activity summary of each user who has at least one event.';
comment on column marts.user_activity.customer_id is 'Customer (tenant key).';
comment on column marts.user_activity.user_id is 'User id.';
comment on column marts.user_activity.first_seen is 'Time of the user''s first event (UTC).';
comment on column marts.user_activity.last_seen is 'Time of the user''s latest event (UTC).';
comment on column marts.user_activity.active_days is 'UTC days with at least one event of the user.';
comment on column marts.user_activity.events_30d is 'Events of the user in the 30 UTC days ending on the customer''s latest day with data (not the current date).';

create table marts.retention_weekly (
    customer_id  text    not null,
    cohort_week  date    not null,
    -- squawk-ignore prefer-bigint-over-int
    week_number  integer not null, -- weeks since the cohort week; the mart's contract type
    cohort_users bigint  not null,
    active_users bigint  not null,
    constraint retention_weekly_pkey primary key (cohort_week, week_number, customer_id)
) partition by list (customer_id);
comment on table marts.retention_weekly is 'Weekly retention: of the users first seen in a week, how many were active N weeks later.';
comment on column marts.retention_weekly.customer_id is 'Customer (tenant key).';
comment on column marts.retention_weekly.cohort_week is 'Monday (UTC) of the week of the cohort''s first event.';
comment on column marts.retention_weekly.week_number is 'Weeks since the cohort week (0 = the cohort week).';
comment on column marts.retention_weekly.cohort_users is 'Users in the cohort.';
comment on column marts.retention_weekly.active_users is 'Users of the cohort active in week cohort_week + week_number.';

---- create above / drop below ----

drop table marts.retention_weekly;
drop table marts.user_activity;
drop table marts.active_users_monthly;
drop table marts.active_users_weekly;
