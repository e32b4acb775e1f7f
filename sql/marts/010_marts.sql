-- Marts: rebuild, for the buckets queued in marts.dirty_days, the marts that are more than a rollup, then
-- empty the queue. This step runs only after the data checks passed, so tenants never see marts built from
-- data that failed a check. Recomputing is idempotent: a run that stops half-way is simply run again.
--   active_users_weekly, active_users_monthly: the weeks and months that contain a changed day;
--   user_activity, retention_weekly: every user of a customer with a changed day (events_30d follows the
--   customer's latest day, and a new user changes the cohort sizes).
-- Every insert is sorted, so that a customer's partition is laid out by its own data alone (see
-- sql/040_rollups.sql).
-- rebuild: marts.active_users_weekly, marts.active_users_monthly, marts.user_activity, marts.retention_weekly
-- The step runs in units of customers, several at once, as sql/040_rollups.sql (the split: line below): each
-- unit's marts and its part of the queue change in one transaction of their own, and every reference to a
-- table partitioned by customer carries "(customer_id = any(@tenants) or @tenants is null)", so only the
-- unit's partitions are planned, opened and locked.
-- split: customer_id in (select customer_id, (row_number() over (order by n desc, customer_id) - 1) % 8 from (select customer_id, count(*) as n from marts.dirty_days group by 1) as c order by n desc, customer_id)

-- On a rebuild (@rebuild) elt has just emptied the customer's rows of the tables this step rebuilds, so the
-- deletes below, which would find nothing, are skipped.
create temp table pg_temp.mart_periods on commit drop as
select distinct customer_id,
       date_trunc('week', day::timestamp)::date  as week,
       date_trunc('month', day::timestamp)::date as month
from marts.dirty_days
where (customer_id = any(@tenants) or @tenants is null);
analyze pg_temp.mart_periods;

create temp table pg_temp.mart_customers on commit drop as
select distinct customer_id from marts.dirty_days
where (customer_id = any(@tenants) or @tenants is null);
analyze pg_temp.mart_customers;

delete from marts.active_users_weekly as m
using (select distinct customer_id, week from pg_temp.mart_periods) as p
where m.customer_id = p.customer_id
  and m.week = p.week
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.active_users_weekly (customer_id, week, active_users)
select r.customer_id, r.week, count(*)
from (select distinct customer_id, week from pg_temp.mart_periods) as p
join marts.rollup_user_week as r on r.customer_id = p.customer_id and r.week = p.week
group by r.customer_id, r.week
order by r.customer_id, r.week;

delete from marts.active_users_monthly as m
using (select distinct customer_id, month from pg_temp.mart_periods) as p
where m.customer_id = p.customer_id
  and m.month = p.month
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.active_users_monthly (customer_id, month, active_users)
select r.customer_id, r.month, count(*)
from (select distinct customer_id, month from pg_temp.mart_periods) as p
join marts.rollup_user_month as r on r.customer_id = p.customer_id and r.month = p.month
group by r.customer_id, r.month
order by r.customer_id, r.month;

-- events_30d counts the 30 UTC days that end on the customer's as-of day: its latest UTC day with any event.
-- It does not depend on the clock, so a --full rebuild and the incremental path agree, and running the refresh
-- again on the same data gives the same numbers; and it depends on no other customer's data.
delete from marts.user_activity as m
using pg_temp.mart_customers as c
where m.customer_id = c.customer_id
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.user_activity (customer_id, user_id, first_seen, last_seen, active_days, events_30d)
with as_of as (
    select d.customer_id, max(d.day) as day
    from pg_temp.mart_customers as c
    join marts.rollup_customer_day as d on d.customer_id = c.customer_id
    where (d.customer_id = any(@tenants) or @tenants is null)
    group by d.customer_id
),
recent as (
    select r.customer_id, r.user_id, sum(r.events)::bigint as events
    from as_of
    join marts.rollup_user_day as r on r.customer_id = as_of.customer_id and r.day > as_of.day - 30
    where (r.customer_id = any(@tenants) or @tenants is null)
    group by r.customer_id, r.user_id
)
select u.customer_id, u.user_id, u.first_seen, u.last_seen, u.active_days, coalesce(recent.events, 0)
from pg_temp.mart_customers as c
join marts.rollup_user as u on u.customer_id = c.customer_id
left join recent on recent.customer_id = u.customer_id and recent.user_id = u.user_id
order by u.customer_id, u.user_id;

-- A user's cohort is the ISO week (Monday, UTC) of the user's first event. Only weeks in which at least one
-- user of the cohort was active have a row; week 0 is the cohort week itself (active_users = cohort_users).
delete from marts.retention_weekly as m
using pg_temp.mart_customers as c
where m.customer_id = c.customer_id
  and (m.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.retention_weekly (customer_id, cohort_week, week_number, cohort_users, active_users)
with cohort as (
    select u.customer_id, u.user_id, date_trunc('week', (u.first_seen at time zone 'UTC'))::date as cohort_week
    from pg_temp.mart_customers as c
    join marts.rollup_user as u on u.customer_id = c.customer_id
),
size as (
    select customer_id, cohort_week, count(*)::bigint as cohort_users
    from cohort
    group by customer_id, cohort_week
)
select c.customer_id, c.cohort_week, ((w.week - c.cohort_week) / 7)::int, s.cohort_users, count(*)
from cohort as c
join marts.rollup_user_week as w on w.customer_id = c.customer_id and w.user_id = c.user_id
join size as s on s.customer_id = c.customer_id and s.cohort_week = c.cohort_week
group by c.customer_id, c.cohort_week, w.week, s.cohort_users
order by c.customer_id, c.cohort_week, w.week;

delete from marts.dirty_days
where (customer_id = any(@tenants) or @tenants is null);
