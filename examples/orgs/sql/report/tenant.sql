-- elt tenant report logs in as the tenant and runs this query in the tenant's own schema: the last @days
-- days that have activity, and what happened in them. sql/report/owner.sql computes the same rows from the
-- private tables for one org (@tenant); the report passes when both agree.
with period as (
    select max(day) - (@days::int - 1) as first_day, max(day) as last_day
    from daily_activity
)
select 'period' as metric, p.first_day || ' to ' || p.last_day as value
from period as p
union all
select 'activities', coalesce(sum(d.activities), 0)::text
from daily_activity as d, period as p
where d.day between p.first_day and p.last_day
union all
select 'active members', count(distinct a.actor_id)::text
from activities as a, period as p
where a.occurred_at >= p.first_day::timestamp at time zone 'UTC'
  and a.occurred_at < (p.last_day + 1)::timestamp at time zone 'UTC'
union all
select 'busiest project ' || t.rank, t.project_key || ' (' || t.activities || ' activities)'
from (
    select a.project_key, count(*) as activities,
           row_number() over (order by count(*) desc, a.project_key) as rank
    from activities as a, period as p
    where a.occurred_at >= p.first_day::timestamp at time zone 'UTC'
      and a.occurred_at < (p.last_day + 1)::timestamp at time zone 'UTC'
    group by a.project_key
) as t
where t.rank <= 2
