-- Every customer's own time zone, and the marts an analyst reaches for first: rolling active users and
-- stickiness, user lifecycle, N-day retention by signup cohort, feature adoption, and a complete flag on
-- every period and cohort row.
--
-- Days, weeks (Monday) and months of every rollup and mart are the customer's own, in the IANA zone of
-- core.customers.time_zone: a day of a customer in Asia/Kolkata runs from 18:30 to 18:30 UTC. After this
-- migration the next elt refresh is a full rebuild (the transforms that compute days changed), which
-- rebuilds every bucket in its customer's zone.
--
-- "Today" is the customer's local day of the refresh's clock (@as_of, the time the run started): a period
-- (day, week, month) is complete once it ended before today began, a cohort's day N once day N is over. The
-- mart step recomputes what the clock changes (new days of the rolling series, complete flags) once a day
-- per customer, even when no new data arrived (marts.customer_clock).
--
-- Every new table is empty here and partitioned by list (customer_id), like everything a tenant reads (see
-- 001_core.sql); the columns added to existing tables have constant defaults, so adding them rewrites
-- nothing (PostgreSQL 11+), and the brief ACCESS EXCLUSIVE lock each takes is bounded by lock_timeout.

set local lock_timeout = '10s';
set local statement_timeout = '15min';

alter table core.customers add column time_zone text not null default 'UTC';
comment on column core.customers.time_zone is 'IANA time zone of the customer, e.g. Asia/Kolkata (from the export API; UTC when it sends none or one the server does not know). Days, weeks and months of every mart are the customer''s own.';
comment on column core.events.occurred_at is 'When the event happened (UTC); marts bucket it by the customer''s own day (core.customers.time_zone).';

-- The complete flag of the period rows that exist already. false until the refresh that computes the row
-- says otherwise: the first refresh after this migration rebuilds them all.
alter table marts.rollup_customer_day add column complete boolean not null default false;
comment on column marts.rollup_customer_day.complete is 'The day is over (it ended before the customer''s day of the last refresh).';
alter table marts.rollup_feature_day add column complete boolean not null default false;
comment on column marts.rollup_feature_day.complete is 'The day is over (it ended before the customer''s day of the last refresh).';
alter table marts.rollup_feature_day add column active_share numeric;
comment on column marts.rollup_feature_day.active_share is 'Share of the day''s active users who used the feature: users / active users of the day, rounded to 4 decimals.';
alter table marts.rollup_user_day add column complete boolean not null default false;
comment on column marts.rollup_user_day.complete is 'The day is over (it ended before the customer''s day of the last refresh).';
alter table marts.active_users_weekly add column complete boolean not null default false;
comment on column marts.active_users_weekly.complete is 'The week is over (its Sunday ended before the customer''s day of the last refresh).';
alter table marts.active_users_monthly add column complete boolean not null default false;
comment on column marts.active_users_monthly.complete is 'The month is over (it ended before the customer''s day of the last refresh).';
alter table marts.retention_weekly add column complete boolean not null default false;
comment on column marts.retention_weekly.complete is 'Week cohort_week + week_number is over (later activity can no longer change active_users).';

comment on table marts.rollup_customer_day is 'Active users and events per customer and day of the customer''s time zone (only days with events).';
comment on column marts.rollup_customer_day.day is 'Day in the customer''s time zone.';
comment on table marts.rollup_feature_day is 'Events and distinct users of each feature per customer and day of the customer''s time zone.';
comment on column marts.rollup_feature_day.day is 'Day in the customer''s time zone.';
comment on table marts.rollup_user_day is 'Events of each user per day of the customer''s time zone (only days with events).';
comment on column marts.rollup_user_day.day is 'Day in the customer''s time zone.';
comment on table marts.active_users_weekly is 'Weekly active users per customer and week (Monday to Sunday, the customer''s time zone; only weeks with events).';
comment on column marts.active_users_weekly.week is 'Monday of the week (customer''s time zone).';
comment on table marts.active_users_monthly is 'Monthly active users per customer and calendar month (the customer''s time zone; only months with events).';
comment on column marts.active_users_monthly.month is 'First day of the month (customer''s time zone).';
comment on table marts.retention_weekly is 'Weekly retention: of the users first seen in a week, how many were active N weeks later (every week from the cohort week to the current one has a row, 0 included).';
comment on column marts.retention_weekly.cohort_week is 'Monday (customer''s time zone) of the week of the cohort''s first event.';
comment on column marts.user_activity.active_days is 'Days (customer''s time zone) with at least one event of the user.';
comment on column marts.user_activity.events_30d is 'Events of the user in the 30 days ending with the customer''s day of the last refresh (today included).';
comment on column marts.customer_overview.last_day is 'Latest day (customer''s time zone) with an event.';

create table marts.active_users_rolling (
    customer_id      text    not null,
    day              date    not null,
    active_users     bigint  not null,
    active_users_7d  bigint  not null,
    active_users_28d bigint  not null,
    active_users_30d bigint  not null,
    dau_wau          numeric,
    dau_mau          numeric,
    complete         boolean not null,
    constraint active_users_rolling_pkey primary key (day, customer_id)
) partition by list (customer_id);
comment on table marts.active_users_rolling is 'Daily, rolling 7-, 28- and 30-day active users and stickiness: one row for every day (customer''s time zone) from the first day with data to today, days without events included.';
comment on column marts.active_users_rolling.customer_id is 'Customer (tenant key).';
comment on column marts.active_users_rolling.day is 'Day in the customer''s time zone.';
comment on column marts.active_users_rolling.active_users is 'Daily active users (DAU): distinct users with an event that day.';
comment on column marts.active_users_rolling.active_users_7d is 'Distinct users with an event in the 7 days ending with this day (WAU, rolling).';
comment on column marts.active_users_rolling.active_users_28d is 'Distinct users with an event in the 28 days ending with this day.';
comment on column marts.active_users_rolling.active_users_30d is 'Distinct users with an event in the 30 days ending with this day (MAU, rolling).';
comment on column marts.active_users_rolling.dau_wau is 'Stickiness: active_users / active_users_7d, rounded to 4 decimals (null when no user was active in the 7 days).';
comment on column marts.active_users_rolling.dau_mau is 'Stickiness: active_users / active_users_30d, rounded to 4 decimals (null when no user was active in the 30 days).';
comment on column marts.active_users_rolling.complete is 'The day is over (it ended before the customer''s day of the last refresh); today''s row still grows.';

create table marts.user_lifecycle (
    customer_id       text    not null,
    grain             text    not null,
    period            date    not null,
    active_users      bigint  not null,
    new_users         bigint  not null,
    retained_users    bigint  not null,
    resurrected_users bigint  not null,
    churned_users     bigint  not null,
    dormant_users     bigint  not null,
    complete          boolean not null,
    constraint user_lifecycle_pkey primary key (grain, period, customer_id),
    constraint user_lifecycle_grain_check check (grain in ('day', 'week', 'month'))
) partition by list (customer_id);
comment on table marts.user_lifecycle is 'Users by lifecycle state per day, week and month (customer''s time zone): one row for every period from the first with data to the current one. Every user seen before the period is in exactly one of retained, resurrected, churned, dormant; active_users = new_users + retained_users + resurrected_users.';
comment on column marts.user_lifecycle.customer_id is 'Customer (tenant key).';
comment on column marts.user_lifecycle.grain is 'Period length: day, week (Monday to Sunday) or month.';
comment on column marts.user_lifecycle.period is 'First day of the period (customer''s time zone).';
comment on column marts.user_lifecycle.active_users is 'Distinct users with an event in the period.';
comment on column marts.user_lifecycle.new_users is 'Users whose first event is in the period.';
comment on column marts.user_lifecycle.retained_users is 'Users active in the period and in the one before.';
comment on column marts.user_lifecycle.resurrected_users is 'Users active in the period, not in the one before, but in an earlier one.';
comment on column marts.user_lifecycle.churned_users is 'Users active in the period before, not in this one.';
comment on column marts.user_lifecycle.dormant_users is 'Users first seen before the period before, active neither in it nor in this one.';
comment on column marts.user_lifecycle.complete is 'The period is over (it ended before the customer''s day of the last refresh).';

create table marts.retention_signup (
    customer_id        text    not null,
    cohort_day         date    not null,
    -- squawk-ignore prefer-bigint-over-int
    day_number         integer not null, -- 1, 7, 14 or 30; the mart's contract type
    cohort_users       bigint  not null,
    retained_users     bigint  not null,
    retained_unbounded bigint  not null,
    complete           boolean not null,
    constraint retention_signup_pkey primary key (cohort_day, day_number, customer_id)
) partition by list (customer_id);
comment on table marts.retention_signup is 'N-day retention by signup cohort: of the users who signed up on a day (customer''s time zone), how many were active on day 1, 7, 14 and 30 after it, and on that day or later. Every cohort has its four rows, 0 included; users who never had an event count in cohort_users.';
comment on column marts.retention_signup.customer_id is 'Customer (tenant key).';
comment on column marts.retention_signup.cohort_day is 'Signup day (users.created_at, customer''s time zone).';
comment on column marts.retention_signup.day_number is 'Days after the signup day: 1, 7, 14 or 30.';
comment on column marts.retention_signup.cohort_users is 'Users who signed up that day.';
comment on column marts.retention_signup.retained_users is 'Users of the cohort with an event on day cohort_day + day_number (N-day retention).';
comment on column marts.retention_signup.retained_unbounded is 'Users of the cohort with an event on day cohort_day + day_number or any later day (unbounded retention).';
comment on column marts.retention_signup.complete is 'Day cohort_day + day_number is over (retained_users can no longer grow; retained_unbounded still can).';

create table marts.feature_first_use (
    customer_id    text        not null,
    user_id        text        not null,
    feature        text        not null,
    first_used_at  timestamptz not null,
    first_used_day date        not null,
    constraint feature_first_use_pkey primary key (user_id, feature, customer_id)
) partition by list (customer_id);
comment on table marts.feature_first_use is 'When each user first used each feature (one row per user and feature used at least once).';
comment on column marts.feature_first_use.customer_id is 'Customer (tenant key).';
comment on column marts.feature_first_use.user_id is 'User id.';
comment on column marts.feature_first_use.feature is 'Product feature, e.g. dashboard.view.';
comment on column marts.feature_first_use.first_used_at is 'Time of the user''s first event of the feature.';
comment on column marts.feature_first_use.first_used_day is 'Day (customer''s time zone) of the user''s first event of the feature.';

create table marts.feature_adoption (
    customer_id              text    not null,
    feature                  text    not null,
    adopters                 bigint  not null,
    adoption                 numeric not null,
    median_days_to_first_use numeric not null,
    first_used_day           date    not null,
    new_adopters_30d         bigint  not null,
    constraint feature_adoption_pkey primary key (feature, customer_id)
) partition by list (customer_id);
comment on table marts.feature_adoption is 'Adoption of each feature since the first day with data: who ever used it, how soon after their first day, and how many started in the last 30 days (customer''s time zone, ending today).';
comment on column marts.feature_adoption.customer_id is 'Customer (tenant key).';
comment on column marts.feature_adoption.feature is 'Product feature, e.g. dashboard.view.';
comment on column marts.feature_adoption.adopters is 'Users who used the feature at least once.';
comment on column marts.feature_adoption.adoption is 'adopters / users with at least one event, rounded to 4 decimals.';
comment on column marts.feature_adoption.median_days_to_first_use is 'Median, over adopters, of the days from the user''s first day with an event to the first use of the feature (0: the same day).';
comment on column marts.feature_adoption.first_used_day is 'Day of the feature''s first use by any user.';
comment on column marts.feature_adoption.new_adopters_30d is 'Users whose first use of the feature is in the 30 days ending today (today included).';

-- The customer's day of the last mart build (private): the mart step recomputes, once a day per customer,
-- what the clock changes even without new data.
create table marts.customer_clock (
    customer_id text not null,
    today       date not null,
    constraint customer_clock_pkey primary key (customer_id)
);
comment on table marts.customer_clock is 'The customer''s day (time zone) of the refresh that last built its marts: the next refresh on a later day extends its series and completes its periods.';

---- create above / drop below ----

drop table marts.customer_clock;
drop table marts.feature_adoption;
drop table marts.feature_first_use;
drop table marts.retention_signup;
drop table marts.user_lifecycle;
drop table marts.active_users_rolling;
alter table marts.retention_weekly drop column complete;
alter table marts.active_users_monthly drop column complete;
alter table marts.active_users_weekly drop column complete;
alter table marts.rollup_user_day drop column complete;
alter table marts.rollup_feature_day drop column active_share;
alter table marts.rollup_feature_day drop column complete;
alter table marts.rollup_customer_day drop column complete;
alter table core.customers drop column time_zone;
