-- The oracle: every published mart of the default project recomputed from raw staging, written apart from
-- the project's SQL (sql/) and as plainly as possible (brute force: a count of distinct users per day and
-- window, an exists per user and period), so that a mistake in the incremental SQL cannot hide in a shared
-- helper. It reads staging.customers, staging.users and staging.events and the clock oracle.as_of(), created
-- by the test before this file runs, and creates one view per mart in schema oracle, with the mart's name and
-- columns.

-- Newest version of every record: later updated_at, then later batch, then later staging row.
create view oracle.customers as
select distinct on (record ->> 'id')
       record ->> 'id' as customer_id,
       case when exists (select from pg_catalog.pg_timezone_names as z where z.name = record ->> 'timezone')
            then record ->> 'timezone' else 'UTC' end as tz
from staging.customers
order by record ->> 'id', (record ->> 'updated_at')::timestamptz desc, batch_id desc, id desc;

create view oracle.users as
select distinct on (coalesce(record ->> 'customer_id', parent ->> 'id'), record ->> 'id')
       coalesce(record ->> 'customer_id', parent ->> 'id') as customer_id,
       record ->> 'id' as user_id,
       (record ->> 'created_at')::timestamptz as created_at
from staging.users
order by coalesce(record ->> 'customer_id', parent ->> 'id'), record ->> 'id',
         (record ->> 'updated_at')::timestamptz desc, batch_id desc, id desc;

-- Events with the customer's local day and today.
create view oracle.events as
select e.*, (e.occurred_at at time zone z.tz)::date as day, (oracle.as_of() at time zone z.tz)::date as today
from (
    select distinct on (record ->> 'customer_id', record ->> 'id')
           record ->> 'customer_id' as customer_id,
           record ->> 'user_id' as user_id,
           record ->> 'feature' as feature,
           (record ->> 'occurred_at')::timestamptz as occurred_at
    from staging.events
    order by record ->> 'customer_id', record ->> 'id', (record ->> 'updated_at')::timestamptz desc, batch_id desc, id desc
) as e
left join oracle.customers as c on c.customer_id = e.customer_id
cross join lateral (select coalesce(c.tz, 'UTC') as tz) as z;

create view oracle.user_events as
select * from oracle.events where user_id is not null;

-- Per customer: zone, today, first and last day with a user's event.
create view oracle.spans as
select customer_id, min(day) as first_day, max(day) as last_day, min(today) as today
from oracle.user_events
group by customer_id;

create view oracle.rollup_customer_day as
select customer_id, day, count(distinct user_id) as active_users, count(*) as events, day < min(today) as complete
from oracle.user_events
group by customer_id, day;

create view oracle.rollup_feature_day as
select f.customer_id, f.day, f.feature, count(*) as events, count(distinct f.user_id) as users,
       round(count(distinct f.user_id)::numeric
             / nullif((select count(distinct e.user_id) from oracle.user_events as e
                        where e.customer_id = f.customer_id and e.day = f.day), 0), 4) as active_share,
       f.day < min(f.today) as complete
from oracle.events as f
where f.feature is not null
group by f.customer_id, f.day, f.feature;

create view oracle.rollup_user_day as
select customer_id, day, user_id, count(*) as events, min(occurred_at) as first_at, max(occurred_at) as last_at,
       day < min(today) as complete
from oracle.user_events
group by customer_id, day, user_id;

create view oracle.active_users_weekly as
select customer_id, week, count(distinct user_id) as active_users, week + 7 <= min(today) as complete
from (select e.*, date_trunc('week', e.day::timestamp)::date as week from oracle.user_events as e) as e
group by customer_id, week;

create view oracle.active_users_monthly as
select customer_id, month, count(distinct user_id) as active_users,
       (month + interval '1 month')::date <= min(today) as complete
from (select e.*, date_trunc('month', e.day::timestamp)::date as month from oracle.user_events as e) as e
group by customer_id, month;

create view oracle.active_users_rolling as
select s.customer_id, d.day::date as day,
       (select count(distinct e.user_id) from oracle.user_events as e
         where e.customer_id = s.customer_id and e.day = d.day::date) as active_users,
       w.n7 as active_users_7d, w.n28 as active_users_28d, w.n30 as active_users_30d,
       round((select count(distinct e.user_id) from oracle.user_events as e
               where e.customer_id = s.customer_id and e.day = d.day::date)::numeric / nullif(w.n7, 0), 4) as dau_wau,
       round((select count(distinct e.user_id) from oracle.user_events as e
               where e.customer_id = s.customer_id and e.day = d.day::date)::numeric / nullif(w.n30, 0), 4) as dau_mau,
       d.day::date < s.today as complete
from oracle.spans as s
cross join lateral generate_series(s.first_day::timestamp, greatest(s.today, s.last_day)::timestamp, interval '1 day') as d(day)
cross join lateral (
    select count(distinct e.user_id) filter (where e.day > d.day::date - 7)  as n7,
           count(distinct e.user_id) filter (where e.day > d.day::date - 28) as n28,
           count(distinct e.user_id)                                         as n30
    from oracle.user_events as e
    where e.customer_id = s.customer_id and e.day > d.day::date - 30 and e.day <= d.day::date
) as w;

-- Lifecycle: each user's state in each period, decided from the set of periods it was active in.
create view oracle.user_lifecycle as
with grains (grain, step) as (values ('day', interval '1 day'), ('week', interval '7 days'), ('month', interval '1 month')),
active as (
    select distinct e.customer_id, g.grain, e.user_id, date_trunc(g.grain, e.day::timestamp)::date as period
    from oracle.user_events as e, grains as g
),
firsts as (
    select customer_id, grain, user_id, min(period) as first_period from active group by 1, 2, 3
),
periods as (
    select s.customer_id, g.grain, g.step, p.period::date as period, s.today
    from oracle.spans as s, grains as g,
         generate_series(date_trunc(g.grain, s.first_day::timestamp), date_trunc(g.grain, greatest(s.today, s.last_day)::timestamp), g.step) as p(period)
),
states as (
    select p.customer_id, p.grain, p.period, p.step, p.today, f.first_period,
           exists (select from active as a where a.customer_id = p.customer_id and a.grain = p.grain
                    and a.user_id = f.user_id and a.period = p.period) as now_active,
           exists (select from active as a where a.customer_id = p.customer_id and a.grain = p.grain
                    and a.user_id = f.user_id and a.period = (p.period - p.step)::date) as was_active
    from periods as p
    join firsts as f on f.customer_id = p.customer_id and f.grain = p.grain and f.first_period <= p.period
)
select customer_id, grain, period,
       count(*) filter (where now_active) as active_users,
       count(*) filter (where first_period = period) as new_users,
       count(*) filter (where now_active and was_active) as retained_users,
       count(*) filter (where now_active and not was_active and first_period < period) as resurrected_users,
       count(*) filter (where was_active and not now_active) as churned_users,
       count(*) filter (where not now_active and not was_active and first_period < period) as dormant_users,
       (period + step)::date <= today as complete
from states
group by customer_id, grain, period, step, today;

create view oracle.retention_signup as
select u.customer_id, (u.created_at at time zone z.tz)::date as cohort_day, n.n as day_number, count(*) as cohort_users,
       count(*) filter (where exists (select from oracle.user_events as e where e.customer_id = u.customer_id
                        and e.user_id = u.user_id and e.day = (u.created_at at time zone z.tz)::date + n.n)) as retained_users,
       count(*) filter (where exists (select from oracle.user_events as e where e.customer_id = u.customer_id
                        and e.user_id = u.user_id and e.day >= (u.created_at at time zone z.tz)::date + n.n)) as retained_unbounded,
       (u.created_at at time zone z.tz)::date + n.n < (oracle.as_of() at time zone z.tz)::date as complete
from oracle.users as u
left join oracle.customers as c on c.customer_id = u.customer_id
cross join lateral (select coalesce(c.tz, 'UTC') as tz) as z
cross join (values (1), (7), (14), (30)) as n(n)
where u.created_at is not null
group by u.customer_id, z.tz, 2, n.n;

create view oracle.retention_weekly as
with cohorts as (
    select customer_id, user_id, date_trunc('week', min(day)::timestamp)::date as cohort_week
    from oracle.user_events group by 1, 2
)
select k.customer_id, k.cohort_week, ((w.week::date - k.cohort_week) / 7)::int as week_number,
       count(*) as cohort_users,
       count(*) filter (where exists (select from oracle.user_events as e where e.customer_id = k.customer_id
                        and e.user_id = k.user_id and date_trunc('week', e.day::timestamp)::date = w.week::date)) as active_users,
       w.week::date + 7 <= s.today as complete
from cohorts as k
join oracle.spans as s on s.customer_id = k.customer_id
cross join lateral generate_series(k.cohort_week::timestamp, date_trunc('week', greatest(s.today, s.last_day)::timestamp), interval '7 days') as w(week)
group by k.customer_id, k.cohort_week, w.week, s.today;

create view oracle.user_activity as
select customer_id, user_id, min(occurred_at) as first_seen, max(occurred_at) as last_seen,
       count(distinct day)::int as active_days,
       count(*) filter (where day > today - 30 and day <= today) as events_30d
from oracle.user_events
group by customer_id, user_id;

create view oracle.feature_first_use as
select customer_id, user_id, feature, min(occurred_at) as first_used_at, min(day) as first_used_day
from oracle.user_events
where feature is not null
group by customer_id, user_id, feature;

create view oracle.feature_adoption as
with firsts as (
    select customer_id, user_id, min(day) as first_day from oracle.user_events group by 1, 2
)
select u.customer_id, u.feature, count(*) as adopters,
       round(count(*)::numeric / (select count(*) from firsts as a where a.customer_id = u.customer_id), 4) as adoption,
       (percentile_cont(0.5) within group (order by u.first_used_day - f.first_day))::numeric as median_days_to_first_use,
       min(u.first_used_day) as first_used_day,
       count(*) filter (where u.first_used_day > e.today - 30 and u.first_used_day <= e.today) as new_adopters_30d
from oracle.feature_first_use as u
join firsts as f on f.customer_id = u.customer_id and f.user_id = u.user_id
join lateral (select x.today from oracle.user_events as x where x.customer_id = u.customer_id limit 1) as e on true
group by u.customer_id, u.feature, e.today;
