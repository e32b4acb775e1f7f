-- Marts: rebuild, for the customers this run touched, the marts that are more than a rollup, then empty their
-- part of the queue. This step runs only after the data checks passed, so tenants never see marts built from
-- data that failed a check. Recomputing is idempotent: a run that stops half-way is simply run again.
--
-- A customer is touched when it has days queued in marts.dirty_days, users or its own record loaded by this
-- run's batches (a new zone moves its signup days even without events), or when its own day (core.customers.time_zone) of the run's clock (@as_of) is later than that of the last
-- build (marts.customer_clock): a new day needs its row in the daily series and completes yesterday's, even
-- without new data. For a touched customer the step recomputes
--   active_users_rolling, user_lifecycle: the days (weeks, months) from its earliest changed day, or the day
--     of the last build if earlier, to today; the rest of its series cannot have changed;
--   active_users_weekly, active_users_monthly: the weeks and months that contain a changed day, and the
--     complete flag of those that ended since the last build (also of the three day rollups);
--   user_activity, retention_weekly, retention_signup, feature_adoption: every user, cohort and feature
--     (events_30d ends today, a new user changes the cohort sizes, and a new day makes rows complete).
-- "Today" is the customer's day of @as_of; every relation's comment says what it is relative to.
-- Every insert is sorted, so that a customer's partition is laid out by its own data alone (see
-- sql/040_rollups.sql).
-- rebuild: marts.active_users_weekly, marts.active_users_monthly, marts.user_activity, marts.retention_weekly
-- rebuild: marts.active_users_rolling, marts.user_lifecycle, marts.retention_signup, marts.feature_adoption
-- rebuild: marts.customer_clock
-- The step runs in units of customers, several at once, as sql/040_rollups.sql (the split: line below): each
-- unit's marts and its part of the queue change in one transaction of their own, and every read of a table
-- keyed by customer carries "(customer_id = any(@tenants) or @tenants is null)", so only the unit's
-- partitions are planned, opened and locked, and on Citus each statement of a one-customer unit goes to the
-- one shard that holds the customer (docs/scale.md). @tenants is never null here: the step needs its split.
-- split: customer_id in (select customer_id, (row_number() over (order by n desc, customer_id) - 1) % 8 from (select customer_id, sum(n) as n from (select customer_id, count(*) as n from marts.dirty_days group by 1 union all select customer_id, count(*) from core.users where batch_id > @batch_from and batch_id <= @batch_to group by 1 union all select customer_id, 1 from core.customers where batch_id > @batch_from and batch_id <= @batch_to union all select k.customer_id, 1 from marts.customer_clock as k left join core.customers as c on c.customer_id = k.customer_id where k.today < (@as_of::timestamptz at time zone coalesce(c.time_zone, 'UTC'))::date) as t group by 1) as c order by n desc, customer_id)

-- On a rebuild (@rebuild) elt has just emptied the customer's rows of the tables this step rebuilds, so the
-- deletes below, which would find nothing, are skipped.

-- The unit's customers: zone, today, the day of the last build, the first and last day with data, the
-- range of days whose series rows are recomputed (from_day to to_day; null without data), and whether its
-- data changed (else only the clock moved it on).
create temp table pg_temp.mart_customers on commit drop as
select x.*,
       x.built_today is null or x.first_dirty is not null or x.record_changed or exists (
           select from core.users as u
           where u.customer_id = x.customer_id
             and (u.customer_id = any(@tenants) or @tenants is null)
             and u.batch_id > @batch_from
             and u.batch_id <= @batch_to
       ) as data_changed,
       case when x.built_today is null then x.first_day
            else greatest(x.first_day, least(x.first_dirty, x.built_today)) end as from_day,
       greatest(x.today, x.last_day) as to_day
from (
    select t.customer_id,
           z.time_zone,
           (@as_of::timestamptz at time zone z.time_zone)::date as today,
           k.today                                              as built_today,
           coalesce(c.batch_id > @batch_from and c.batch_id <= @batch_to, false) as record_changed,
           (select min(q.day) from marts.dirty_days as q
            where q.customer_id = t.customer_id and (q.customer_id = any(@tenants) or @tenants is null)) as first_dirty,
           d.first_day,
           d.last_day
    from unnest(@tenants::text[]) as t(customer_id)
    left join core.customers as c
           on c.customer_id = t.customer_id
          and (c.customer_id = any(@tenants) or @tenants is null)
    cross join lateral (select coalesce(c.time_zone, 'UTC') as time_zone) as z
    left join marts.customer_clock as k
           on k.customer_id = t.customer_id
          and (k.customer_id = any(@tenants) or @tenants is null)
    left join lateral (
        select min(r.day) as first_day, max(r.day) as last_day
        from marts.rollup_customer_day as r
        where r.customer_id = t.customer_id
          and (r.customer_id = any(@tenants) or @tenants is null)
    ) as d on true
) as x;
analyze pg_temp.mart_customers;

create temp table pg_temp.mart_periods on commit drop as
select distinct q.customer_id,
       date_trunc('week', q.day::timestamp)::date  as week,
       date_trunc('month', q.day::timestamp)::date as month
from marts.dirty_days as q
where (q.customer_id = any(@tenants) or @tenants is null);
analyze pg_temp.mart_periods;

-- Days that ended since the last build: complete now.
update marts.rollup_customer_day as m
   set complete = true
  from pg_temp.mart_customers as c
 where m.customer_id = c.customer_id
   and (m.customer_id = any(@tenants) or @tenants is null)
   and m.day >= c.built_today
   and m.day < c.today
   and not m.complete;

update marts.rollup_feature_day as m
   set complete = true
  from pg_temp.mart_customers as c
 where m.customer_id = c.customer_id
   and (m.customer_id = any(@tenants) or @tenants is null)
   and m.day >= c.built_today
   and m.day < c.today
   and not m.complete;

update marts.rollup_user_day as m
   set complete = true
  from pg_temp.mart_customers as c
 where m.customer_id = c.customer_id
   and (m.customer_id = any(@tenants) or @tenants is null)
   and m.day >= c.built_today
   and m.day < c.today
   and not m.complete;

delete from marts.active_users_weekly as m
using (select distinct customer_id, week from pg_temp.mart_periods) as p
where m.customer_id = p.customer_id
  and m.week = p.week
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.active_users_weekly (customer_id, week, active_users, complete)
select r.customer_id, r.week, count(*), r.week + 7 <= c.today
from (select distinct customer_id, week from pg_temp.mart_periods) as p
join pg_temp.mart_customers as c on c.customer_id = p.customer_id
join marts.rollup_user_week as r
  on r.customer_id = p.customer_id and r.week = p.week
 and (r.customer_id = any(@tenants) or @tenants is null)
group by r.customer_id, r.week, c.today
order by r.customer_id, r.week;

update marts.active_users_weekly as m
   set complete = true
  from pg_temp.mart_customers as c
 where m.customer_id = c.customer_id
   and (m.customer_id = any(@tenants) or @tenants is null)
   and m.week + 7 <= c.today
   and not m.complete;

delete from marts.active_users_monthly as m
using (select distinct customer_id, month from pg_temp.mart_periods) as p
where m.customer_id = p.customer_id
  and m.month = p.month
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.active_users_monthly (customer_id, month, active_users, complete)
select r.customer_id, r.month, count(*), (r.month + interval '1 month')::date <= c.today
from (select distinct customer_id, month from pg_temp.mart_periods) as p
join pg_temp.mart_customers as c on c.customer_id = p.customer_id
join marts.rollup_user_month as r
  on r.customer_id = p.customer_id and r.month = p.month
 and (r.customer_id = any(@tenants) or @tenants is null)
group by r.customer_id, r.month, c.today
order by r.customer_id, r.month;

update marts.active_users_monthly as m
   set complete = true
  from pg_temp.mart_customers as c
 where m.customer_id = c.customer_id
   and (m.customer_id = any(@tenants) or @tenants is null)
   and (m.month + interval '1 month')::date <= c.today
   and not m.complete;

-- Rolling active users. A user counts on day t in the w-day window when it has an active day in
-- [t - w + 1, t]: each active day d covers the days d to d + w - 1. Chained active days less than w + 1 days
-- apart cover one unbroken stretch, so the series is a running sum of +1 where a user's stretch begins and -1
-- the day after it ends: one pass over the user days, however long the window. The pass reads the user days
-- from 29 days before from_day, which is all that the windows of the days from from_day on can hold.
delete from marts.active_users_rolling as m
using pg_temp.mart_customers as c
where m.customer_id = c.customer_id
  and (m.customer_id = any(@tenants) or @tenants is null)
  and (c.first_day is null or m.day >= c.from_day or m.day < c.first_day)
  and not @rebuild;

insert into marts.active_users_rolling
       (customer_id, day, active_users, active_users_7d, active_users_28d, active_users_30d, dau_wau, dau_mau, complete)
with user_days as (
    select r.customer_id, r.user_id, r.day,
           r.day - lag(r.day) over u  as gap_before,
           lead(r.day) over u - r.day as gap_after
    from pg_temp.mart_customers as c
    join marts.rollup_user_day as r
      on r.customer_id = c.customer_id
     and r.day >= c.from_day - 29
     and r.day <= c.to_day
    where (r.customer_id = any(@tenants) or @tenants is null)
    window u as (partition by r.customer_id, r.user_id order by r.day)
),
changes as (
    select customer_id, day as at, w, 1 as delta
    from user_days, (values (7), (28), (30)) as n(w)
    where gap_before is null or gap_before > w
    union all
    select customer_id, day + w, w, -1
    from user_days, (values (7), (28), (30)) as n(w)
    where gap_after is null or gap_after > w
),
per_day as (
    select customer_id, at,
           sum(delta) filter (where w = 7)  as d7,
           sum(delta) filter (where w = 28) as d28,
           sum(delta) filter (where w = 30) as d30
    from changes
    group by customer_id, at
),
series as (
    select c.customer_id, c.from_day, c.today, s.day::date as day,
           sum(coalesce(p.d7, 0)) over w  as active_7d,
           sum(coalesce(p.d28, 0)) over w as active_28d,
           sum(coalesce(p.d30, 0)) over w as active_30d
    from pg_temp.mart_customers as c
    cross join lateral generate_series((c.from_day - 29)::timestamp, c.to_day::timestamp, interval '1 day') as s(day)
    left join per_day as p on p.customer_id = c.customer_id and p.at = s.day::date
    where c.first_day is not null
    window w as (partition by c.customer_id order by s.day)
)
select s.customer_id, s.day, coalesce(d.active_users, 0), s.active_7d, s.active_28d, s.active_30d,
       round(coalesce(d.active_users, 0)::numeric / nullif(s.active_7d, 0), 4),
       round(coalesce(d.active_users, 0)::numeric / nullif(s.active_30d, 0), 4),
       s.day < s.today
from series as s
left join marts.rollup_customer_day as d
       on d.customer_id = s.customer_id
      and d.day = s.day
      and (d.customer_id = any(@tenants) or @tenants is null)
where s.day >= s.from_day
order by s.customer_id, s.day;

-- Lifecycle. For each grain, the periods from the one holding from_day to the one holding to_day: active
-- users, the new ones (first event in the period), the retained ones (active in the period before too), and
-- from those and the users first seen before the period every other state; the pass reads one period more,
-- the one before.
delete from marts.user_lifecycle as m
using pg_temp.mart_customers as c,
      lateral (values ('day', c.from_day),
                      ('week', date_trunc('week', c.from_day::timestamp)::date),
                      ('month', date_trunc('month', c.from_day::timestamp)::date)) as g(grain, from_period)
where m.customer_id = c.customer_id
  and (m.customer_id = any(@tenants) or @tenants is null)
  and m.grain = g.grain
  and (c.first_day is null or m.period >= g.from_period
       or m.period < case g.grain when 'day' then c.first_day
                                  else date_trunc(g.grain, c.first_day::timestamp)::date end)
  and not @rebuild;

insert into marts.user_lifecycle
       (customer_id, grain, period, active_users, new_users, retained_users, resurrected_users, churned_users,
        dormant_users, complete)
with grains as (
    select c.customer_id, c.time_zone, c.today, g.grain, g.step,
           case g.grain when 'day' then c.from_day  else date_trunc(g.grain, c.from_day::timestamp)::date  end as from_period,
           case g.grain when 'day' then c.to_day    else date_trunc(g.grain, c.to_day::timestamp)::date    end as to_period,
           case g.grain when 'day' then c.first_day else date_trunc(g.grain, c.first_day::timestamp)::date end as first_period
    from pg_temp.mart_customers as c
    cross join (values ('day', interval '1 day'), ('week', interval '7 days'), ('month', interval '1 month')) as g(grain, step)
    where c.first_day is not null
),
active as (
    select g.customer_id, g.grain, a.period, a.user_id,
           a.period - lag(a.period) over (partition by g.customer_id, g.grain, a.user_id order by a.period) as since
    from grains as g
    cross join lateral (
        select r.day as period, r.user_id
        from marts.rollup_user_day as r
        where g.grain = 'day'
          and r.customer_id = g.customer_id
          and (r.customer_id = any(@tenants) or @tenants is null)
          and r.day >= (g.from_period - g.step)::date
          and r.day <= g.to_period
        union all
        select r.week, r.user_id
        from marts.rollup_user_week as r
        where g.grain = 'week'
          and r.customer_id = g.customer_id
          and (r.customer_id = any(@tenants) or @tenants is null)
          and r.week >= (g.from_period - g.step)::date
          and r.week <= g.to_period
        union all
        select r.month, r.user_id
        from marts.rollup_user_month as r
        where g.grain = 'month'
          and r.customer_id = g.customer_id
          and (r.customer_id = any(@tenants) or @tenants is null)
          and r.month >= (g.from_period - g.step)::date
          and r.month <= g.to_period
    ) as a
),
counts as (
    select a.customer_id, a.grain, a.period, count(*) as active_users,
           count(*) filter (where (a.period - a.since) = (a.period - g.step)::date) as retained_users
    from active as a
    join grains as g on g.customer_id = a.customer_id and g.grain = a.grain
    group by a.customer_id, a.grain, a.period
),
firsts as (
    select g.customer_id, g.grain,
           case g.grain when 'day' then f.day else date_trunc(g.grain, f.day::timestamp)::date end as period,
           count(*) as new_users
    from grains as g
    join marts.rollup_user as u
        on u.customer_id = g.customer_id
       and (u.customer_id = any(@tenants) or @tenants is null)
    cross join lateral (select (u.first_seen at time zone g.time_zone)::date as day) as f
    group by 1, 2, 3
),
-- Users first seen before the first period of the series.
base as (
    select g.customer_id, g.grain, coalesce(sum(f.new_users), 0) as seen
    from grains as g
    left join firsts as f
           on f.customer_id = g.customer_id
          and f.grain = g.grain
          and f.period < (g.from_period - g.step)::date
    group by g.customer_id, g.grain
),
series as (
    select g.customer_id, g.grain, g.step, g.from_period, g.today, s.period::date as period,
           coalesce(n.active_users, 0)   as active_users,
           coalesce(n.retained_users, 0) as retained_users,
           coalesce(f.new_users, 0)      as new_users,
           -- users first seen before the period
           b.seen + coalesce(sum(f.new_users) over (partition by g.customer_id, g.grain order by s.period
                                                    rows between unbounded preceding and 1 preceding), 0) as seen_before,
           lag(coalesce(n.active_users, 0)) over (partition by g.customer_id, g.grain order by s.period) as active_before
    from grains as g
    join base as b on b.customer_id = g.customer_id and b.grain = g.grain
    cross join lateral generate_series((g.from_period - g.step)::timestamp, g.to_period::timestamp, g.step) as s(period)
    left join counts as n on n.customer_id = g.customer_id and n.grain = g.grain and n.period = s.period::date
    left join firsts as f on f.customer_id = g.customer_id and f.grain = g.grain and f.period = s.period::date
)
select customer_id, grain, period, active_users, new_users, retained_users,
       active_users - new_users - retained_users,
       active_before - retained_users,
       seen_before - (active_users - new_users) - (active_before - retained_users),
       (period + step)::date <= today
from series
where period >= from_period
order by customer_id, grain, period;

-- events_30d counts the 30 days that end with the customer's today (@as_of in its zone), today included.
delete from marts.user_activity as m
using pg_temp.mart_customers as c
where m.customer_id = c.customer_id
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.user_activity (customer_id, user_id, first_seen, last_seen, active_days, events_30d)
with recent as (
    select r.customer_id, r.user_id, sum(r.events)::bigint as events
    from pg_temp.mart_customers as c
    join marts.rollup_user_day as r on r.customer_id = c.customer_id and r.day > c.today - 30 and r.day <= c.today
    where (r.customer_id = any(@tenants) or @tenants is null)
    group by r.customer_id, r.user_id
)
select u.customer_id, u.user_id, u.first_seen, u.last_seen, u.active_days, coalesce(recent.events, 0)
from pg_temp.mart_customers as c
join marts.rollup_user as u
  on u.customer_id = c.customer_id
 and (u.customer_id = any(@tenants) or @tenants is null)
left join recent on recent.customer_id = u.customer_id and recent.user_id = u.user_id
order by u.customer_id, u.user_id;

-- A user's cohort is the week (Monday, customer's time zone) of the user's first event. Every week from the
-- cohort week to the current one (or the latest with data, if later) has a row, 0 included; week 0 is the
-- cohort week itself (active_users = cohort_users). Without new data the rows change only when a new week
-- begins.
create temp table pg_temp.mart_weekly_customers on commit drop as
select * from pg_temp.mart_customers
where data_changed
   or date_trunc('week', today::timestamp) <> date_trunc('week', built_today::timestamp);
analyze pg_temp.mart_weekly_customers;

delete from marts.retention_weekly as m
using pg_temp.mart_weekly_customers as c
where m.customer_id = c.customer_id
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.retention_weekly (customer_id, cohort_week, week_number, cohort_users, active_users, complete)
with cohort as (
    select u.customer_id, u.user_id, date_trunc('week', (u.first_seen at time zone c.time_zone))::date as cohort_week
    from pg_temp.mart_weekly_customers as c
    join marts.rollup_user as u
        on u.customer_id = c.customer_id
       and (u.customer_id = any(@tenants) or @tenants is null)
),
size as (
    select customer_id, cohort_week, count(*)::bigint as cohort_users
    from cohort
    group by customer_id, cohort_week
),
active as (
    select c.customer_id, c.cohort_week, w.week, count(*) as active_users
    from cohort as c
    join marts.rollup_user_week as w
        on w.customer_id = c.customer_id and w.user_id = c.user_id
       and (w.customer_id = any(@tenants) or @tenants is null)
    group by c.customer_id, c.cohort_week, w.week
)
select s.customer_id, s.cohort_week, ((wk.week::date - s.cohort_week) / 7)::int, s.cohort_users,
       coalesce(a.active_users, 0), wk.week::date + 7 <= c.today
from size as s
join pg_temp.mart_weekly_customers as c on c.customer_id = s.customer_id
cross join lateral generate_series(s.cohort_week::timestamp,
                                   greatest(date_trunc('week', c.today::timestamp), date_trunc('week', c.last_day::timestamp)),
                                   interval '7 days') as wk(week)
left join active as a on a.customer_id = s.customer_id and a.cohort_week = s.cohort_week and a.week = wk.week::date
order by s.customer_id, s.cohort_week, wk.week;

-- N-day retention by signup cohort: every user with a signup time (core.users.created_at), events or not.
delete from marts.retention_signup as m
using pg_temp.mart_customers as c
where m.customer_id = c.customer_id
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.retention_signup
       (customer_id, cohort_day, day_number, cohort_users, retained_users, retained_unbounded, complete)
with cohort as (
    select u.customer_id, u.user_id, (u.created_at at time zone c.time_zone)::date as cohort_day,
           (a.last_seen at time zone c.time_zone)::date as last_day
    from pg_temp.mart_customers as c
    join core.users as u
      on u.customer_id = c.customer_id
     and (u.customer_id = any(@tenants) or @tenants is null)
    left join marts.rollup_user as a
        on a.customer_id = u.customer_id and a.user_id = u.user_id
       and (a.customer_id = any(@tenants) or @tenants is null)
    where u.created_at is not null
)
select k.customer_id, k.cohort_day, n.n, count(*),
       count(*) filter (where exists (
           select from marts.rollup_user_day as r
           where r.customer_id = k.customer_id
             and (r.customer_id = any(@tenants) or @tenants is null)
             and r.user_id = k.user_id
             and r.day = k.cohort_day + n.n)),
       count(*) filter (where k.last_day >= k.cohort_day + n.n),
       k.cohort_day + n.n < c.today
from cohort as k
join pg_temp.mart_customers as c on c.customer_id = k.customer_id
cross join (values (1), (7), (14), (30)) as n(n)
group by k.customer_id, k.cohort_day, n.n, c.today
order by k.customer_id, k.cohort_day, n.n;

-- Feature adoption: from the users' first uses (marts.feature_first_use, kept by sql/040_rollups.sql) and
-- their first days.
delete from marts.feature_adoption as m
using pg_temp.mart_customers as c
where m.customer_id = c.customer_id
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.feature_adoption
       (customer_id, feature, adopters, adoption, median_days_to_first_use, first_used_day, new_adopters_30d)
with seen as (
    select u.customer_id, u.user_id, (u.first_seen at time zone c.time_zone)::date as first_day
    from pg_temp.mart_customers as c
    join marts.rollup_user as u
        on u.customer_id = c.customer_id
       and (u.customer_id = any(@tenants) or @tenants is null)
),
users as (
    select customer_id, count(*) as users from seen group by customer_id
)
select f.customer_id, f.feature, count(*),
       round(count(*)::numeric / n.users, 4),
       (percentile_cont(0.5) within group (order by f.first_used_day - s.first_day))::numeric,
       min(f.first_used_day),
       count(*) filter (where f.first_used_day > c.today - 30 and f.first_used_day <= c.today)
from pg_temp.mart_customers as c
join marts.feature_first_use as f
  on f.customer_id = c.customer_id
 and (f.customer_id = any(@tenants) or @tenants is null)
join seen as s on s.customer_id = f.customer_id and s.user_id = f.user_id
join users as n on n.customer_id = f.customer_id
group by f.customer_id, f.feature, n.users, c.today
order by f.customer_id, f.feature;

insert into marts.customer_clock (customer_id, today)
select customer_id, today from pg_temp.mart_customers
on conflict (customer_id) do update set today = excluded.today;

delete from marts.dirty_days
where (customer_id = any(@tenants) or @tenants is null);
