-- Rollups: recompute every (customer, day) bucket queued in marts.dirty_days from core.events, then
-- the weeks, months and users those days belong to from the day rollup. The cost follows the number of changed
-- buckets, not the history. Recomputing a bucket is idempotent, so a bucket queued twice (a run whose data
-- checks failed is retried) gives the same result. The mart step (sql/marts/010_marts.sql) empties the queue,
-- and it runs only once the data checks passed.
-- Days are the customer's own (core.customers.time_zone): a day's events are those from its local midnight to
-- the next (23 or 25 hours long when daylight saving time starts or ends); weeks start on Monday. A day is
-- complete once it ended before the customer's day of the run's clock (@as_of); the mart step completes the
-- days that end later (sql/marts/010_marts.sql).
--
-- The inserts into the tables tenants read (rollup_user_day, rollup_customer_day, rollup_feature_day) are
-- sorted: the order in which a customer's rows reach its partition, and so its physical layout, the planner's
-- correlation statistics and the order of a query without ORDER BY, then depends on its own data only, not on
-- how a hash aggregate over every changed customer happened to emit them.
-- rebuild: marts.rollup_user_day, marts.rollup_feature_day, marts.rollup_user_week, marts.rollup_user_month
-- rebuild: marts.rollup_user, marts.rollup_customer_day, marts.feature_first_use
--
-- The step runs in units of customers (the split: line below; docs/refresh.md, split steps): each unit's days
-- in a transaction of their own, several units at once on separate sessions (elt refresh --sessions). The
-- queue's customers are dealt, most changed days first, into at most 8 units of about the same size (a unit
-- has a fixed cost, a few dozen statements planned, that one unit per customer would pay thousands of times
-- when thousands of tenants changed). @tenants is the unit's customers: every reference to a table
-- partitioned by customer (core.events, rollup_user_day, rollup_customer_day, rollup_feature_day) carries
-- "(customer_id = any(@tenants) or @tenants is null)", so PostgreSQL plans, opens and locks only their
-- partitions (and the default one) instead of every tenant's, and the private copy of the queue below holds
-- their days only.
-- split: customer_id in (select customer_id, (row_number() over (order by n desc, customer_id) - 1) % 8 from (select customer_id, count(*) as n from marts.dirty_days group by 1) as c order by n desc, customer_id)

-- A private copy of the unit's queue with fresh statistics, so every statement below is planned for the
-- number of changed days of this run (a handful, or every day on --full).
-- Each day carries its bounds in UTC and whether it is over.
create temp table pg_temp.refresh_days on commit drop as
select q.customer_id, q.day, z.time_zone,
       q.day::timestamp at time zone z.time_zone       as starts_at,
       (q.day + 1)::timestamp at time zone z.time_zone as ends_at,
       q.day < (@as_of::timestamptz at time zone z.time_zone)::date as complete
from marts.dirty_days as q
left join core.customers as c
       on c.customer_id = q.customer_id
      and (c.customer_id = any(@tenants) or @tenants is null)
cross join lateral (select coalesce(c.time_zone, 'UTC') as time_zone) as z
where (q.customer_id = any(@tenants) or @tenants is null);
analyze pg_temp.refresh_days;

-- What the changed days held before, per user, to update the users' lifetime summaries by difference.
create temp table pg_temp.refresh_old_days on commit drop as
select r.customer_id, r.user_id, r.day, r.events, r.first_at, r.last_at
from marts.rollup_user_day as r
join pg_temp.refresh_days as d on d.customer_id = r.customer_id and d.day = r.day
where (r.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

-- The deletes below find nothing on a rebuild (@rebuild: elt has just emptied the customer's rows of every
-- table of the rebuild: lines), so they are skipped then rather than walking the rows just deleted.
delete from marts.rollup_user_day as r
using pg_temp.refresh_days as d
where r.customer_id = d.customer_id
  and r.day = d.day
  and (r.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

-- What each user did with each feature on the changed days (user_id or feature null: events without one), with
-- one read of the days' events: the day rollups and the users' first uses below come from it. lateral: each
-- changed day reads its own events through the (customer_id, occurred_at) index, whatever the statistics say,
-- so a nightly run never scans history. "offset 0" keeps PostgreSQL from pulling the subquery up into a join:
-- with @tenants bound to one customer it would otherwise join every changed day with every event of that
-- customer and filter the times afterwards (quadratic in the customer's days). (--full, where every day
-- changed, would be a little faster with one scan of core.events, but a plan that depends on statistics is a
-- risk for the nightly path.)
create temp table pg_temp.refresh_user_features on commit drop as
select d.customer_id, d.day, d.time_zone, d.complete, e.user_id, e.feature,
       count(*) as events, min(e.occurred_at) as first_at, max(e.occurred_at) as last_at
from pg_temp.refresh_days as d
cross join lateral (
    select x.feature, x.user_id, x.occurred_at
    from core.events as x
    where x.customer_id = d.customer_id
      and (x.customer_id = any(@tenants) or @tenants is null)
      and x.occurred_at >= d.starts_at
      and x.occurred_at < d.ends_at
    offset 0 -- keeps the subquery a lateral one (see above)
) as e
group by d.customer_id, d.day, d.time_zone, d.complete, e.user_id, e.feature;
analyze pg_temp.refresh_user_features;

insert into marts.rollup_user_day (customer_id, day, user_id, events, first_at, last_at, complete)
select customer_id, day, user_id, sum(events), min(first_at), max(last_at), complete
from pg_temp.refresh_user_features
where user_id is not null
group by customer_id, day, complete, user_id
order by customer_id, day, user_id;

delete from marts.rollup_customer_day as r
using pg_temp.refresh_days as d
where r.customer_id = d.customer_id
  and r.day = d.day
  and (r.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.rollup_customer_day (customer_id, day, active_users, events, complete)
select r.customer_id, r.day, count(*), sum(r.events), d.complete
from pg_temp.refresh_days as d
join marts.rollup_user_day as r on r.customer_id = d.customer_id and r.day = d.day
where (r.customer_id = any(@tenants) or @tenants is null)
group by r.customer_id, r.day, d.complete
order by r.customer_id, r.day;

delete from marts.rollup_feature_day as r
using pg_temp.refresh_days as d
where r.customer_id = d.customer_id
  and r.day = d.day
  and (r.customer_id = any(@tenants) or @tenants is null)
  and not @rebuild;

insert into marts.rollup_feature_day (customer_id, day, feature, events, users, active_share, complete)
select f.customer_id, f.day, f.feature, sum(f.events), count(f.user_id),
       round(count(f.user_id)::numeric / nullif(c.active_users, 0), 4), f.complete
from pg_temp.refresh_user_features as f
left join marts.rollup_customer_day as c
       on c.customer_id = f.customer_id
      and c.day = f.day
      and (c.customer_id = any(@tenants) or @tenants is null)
where f.feature is not null
group by f.customer_id, f.day, f.feature, f.complete, c.active_users
order by f.customer_id, f.day, f.feature;

-- Users' first use of each feature: the earliest of what was kept and what the changed days hold now. That
-- is exact unless the kept first use was on a changed day and its event went away or moved later (an update):
-- for those pairs, which are rare, no event is earlier than the kept first use (it was the earliest, and the
-- changed days hold none earlier), so the new first use is the pair's first event from that time on, found
-- through the time index.
create temp table pg_temp.refresh_first_use on commit drop as
select customer_id, user_id, feature, min(first_at) as first_at, min(time_zone) as time_zone
from pg_temp.refresh_user_features
where user_id is not null
  and feature is not null
group by customer_id, user_id, feature;
analyze pg_temp.refresh_first_use;

create temp table pg_temp.refresh_first_use_lost on commit drop as
select u.customer_id, u.user_id, u.feature, u.first_used_at, d.time_zone
from marts.feature_first_use as u
join pg_temp.refresh_days as d on d.customer_id = u.customer_id and d.day = u.first_used_day
left join pg_temp.refresh_first_use as n
       on n.customer_id = u.customer_id and n.user_id = u.user_id and n.feature = u.feature
where (u.customer_id = any(@tenants) or @tenants is null)
  and (n.first_at is null or n.first_at > u.first_used_at)
  and not @rebuild;

delete from marts.feature_first_use as u
using pg_temp.refresh_first_use_lost as l
where u.customer_id = l.customer_id
  and u.user_id = l.user_id
  and u.feature = l.feature
  and (u.customer_id = any(@tenants) or @tenants is null);

insert into marts.feature_first_use (customer_id, user_id, feature, first_used_at, first_used_day)
select l.customer_id, l.user_id, l.feature, x.occurred_at, (x.occurred_at at time zone l.time_zone)::date
from pg_temp.refresh_first_use_lost as l
cross join lateral (
    select e.occurred_at
    from core.events as e
    where e.customer_id = l.customer_id
      and (e.customer_id = any(@tenants) or @tenants is null)
      and e.occurred_at >= l.first_used_at
      and e.user_id = l.user_id
      and e.feature = l.feature
    order by e.occurred_at
    limit 1
) as x;

insert into marts.feature_first_use as u (customer_id, user_id, feature, first_used_at, first_used_day)
select customer_id, user_id, feature, first_at, (first_at at time zone time_zone)::date
from pg_temp.refresh_first_use
order by customer_id, user_id, feature
on conflict (user_id, feature, customer_id) do update
   set first_used_at  = excluded.first_used_at,
       first_used_day = excluded.first_used_day
 where excluded.first_used_at <= u.first_used_at;

-- Weeks (Monday) and months (first day) that contain a changed day.
create temp table pg_temp.refresh_periods on commit drop as
select distinct customer_id,
       date_trunc('week', day::timestamp)::date  as week,
       date_trunc('month', day::timestamp)::date as month
from pg_temp.refresh_days;
-- Statistics, so the deletes below find a handful of periods through the primary keys rather than sort the
-- customers' every period (a table without statistics is planned as a few thousand rows).
analyze pg_temp.refresh_periods;

delete from marts.rollup_user_week as r
using pg_temp.refresh_periods as p
where r.customer_id = p.customer_id
  and r.week = p.week
  and not @rebuild;

-- lateral, as the days above: each period reads its own days through the (customer_id, day) index. A join
-- would hash the customers' every day and filter the ranges afterwards, comparing each day with every period
-- of its customer (54 weeks of a year on --full; all the days for one changed week).
insert into marts.rollup_user_week (customer_id, week, user_id, events)
select w.customer_id, w.week, r.user_id, sum(r.events)
from (select distinct customer_id, week from pg_temp.refresh_periods) as w
cross join lateral (
    select x.user_id, x.events
    from marts.rollup_user_day as x
    where x.customer_id = w.customer_id
      and (x.customer_id = any(@tenants) or @tenants is null)
      and x.day >= w.week
      and x.day < w.week + 7
    offset 0 -- keeps the subquery a lateral one
) as r
group by w.customer_id, w.week, r.user_id;

delete from marts.rollup_user_month as r
using pg_temp.refresh_periods as p
where r.customer_id = p.customer_id
  and r.month = p.month
  and not @rebuild;

insert into marts.rollup_user_month (customer_id, month, user_id, events)
select m.customer_id, m.month, r.user_id, sum(r.events)
from (select distinct customer_id, month from pg_temp.refresh_periods) as m
cross join lateral (
    select x.user_id, x.events
    from marts.rollup_user_day as x
    where x.customer_id = m.customer_id
      and (x.customer_id = any(@tenants) or @tenants is null)
      and x.day >= m.month
      and x.day < (m.month + interval '1 month')::date
    offset 0 -- keeps the subquery a lateral one (see the weeks)
) as r
group by m.customer_id, m.month, r.user_id;

-- Users: lifetime summary, updated by the difference between what the changed days held before and now.
-- That is exact for the counts; first_seen and last_seen can be merged too unless the user's first (last)
-- event was on a changed day and moved later (earlier) or went away: those users, and users left without any
-- event, are recomputed from all their days.
create temp table pg_temp.refresh_user_change on commit drop as
with before as (
    select customer_id, user_id, count(*) as days, sum(events) as events, min(first_at) as first_at, max(last_at) as last_at
    from pg_temp.refresh_old_days
    group by customer_id, user_id
),
after as (
    select r.customer_id, r.user_id, count(*) as days, sum(r.events) as events, min(r.first_at) as first_at, max(r.last_at) as last_at
    from marts.rollup_user_day as r
    join pg_temp.refresh_days as d on d.customer_id = r.customer_id and d.day = r.day
    where (r.customer_id = any(@tenants) or @tenants is null)
    group by r.customer_id, r.user_id
)
select coalesce(a.customer_id, b.customer_id)          as customer_id,
       coalesce(a.user_id, b.user_id)                  as user_id,
       coalesce(a.days, 0) - coalesce(b.days, 0)       as days,
       coalesce(a.events, 0) - coalesce(b.events, 0)   as events,
       b.first_at                                      as old_first,
       b.last_at                                       as old_last,
       a.first_at                                      as new_first,
       a.last_at                                       as new_last
from after as a
full join before as b on b.customer_id = a.customer_id and b.user_id = a.user_id;

create temp table pg_temp.refresh_user_recompute on commit drop as
select c.customer_id, c.user_id
from pg_temp.refresh_user_change as c
join marts.rollup_user as u on u.customer_id = c.customer_id and u.user_id = c.user_id
where (c.old_first = u.first_seen and (c.new_first is null or c.new_first > c.old_first))
   or (c.old_last = u.last_seen and (c.new_last is null or c.new_last < c.old_last))
   or u.active_days + c.days <= 0;

-- (The changes are a derived table: Citus plans it first, then joins its rows with each shard.)
update marts.rollup_user as u
   set first_seen  = least(u.first_seen, c.new_first),
       last_seen   = greatest(u.last_seen, c.new_last),
       active_days = u.active_days + c.days,
       events      = u.events + c.events
from (
    select c.*
    from pg_temp.refresh_user_change as c
    where not exists (
        select from pg_temp.refresh_user_recompute as x where x.customer_id = c.customer_id and x.user_id = c.user_id
    )
) as c
where c.customer_id = u.customer_id
  and c.user_id = u.user_id
  and (c.days <> 0 or c.events <> 0 or c.new_first < u.first_seen or c.new_last > u.last_seen);

delete from marts.rollup_user as u
using pg_temp.refresh_user_recompute as x
where u.customer_id = x.customer_id
  and u.user_id = x.user_id;

insert into marts.rollup_user (customer_id, user_id, first_seen, last_seen, active_days, events)
select r.customer_id, r.user_id, min(r.first_at), max(r.last_at), count(*)::int, sum(r.events)
from pg_temp.refresh_user_recompute as x
join marts.rollup_user_day as r on r.customer_id = x.customer_id and r.user_id = x.user_id
where (r.customer_id = any(@tenants) or @tenants is null)
group by r.customer_id, r.user_id;

-- Users seen for the first time: the changed days are all their days.
insert into marts.rollup_user (customer_id, user_id, first_seen, last_seen, active_days, events)
select c.customer_id, c.user_id, c.new_first, c.new_last, c.days::int, c.events
from pg_temp.refresh_user_change as c
left join marts.rollup_user as u on u.customer_id = c.customer_id and u.user_id = c.user_id
where c.new_first is not null
  and u.user_id is null;
