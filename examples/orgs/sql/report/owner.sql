-- The rows of sql/report/tenant.sql for org @tenant, read by elt (as elt_owner) from the private tables with
-- an explicit filter: the independent side of elt tenant report's comparison. @tenant arrives as an untyped
-- literal ('101'), which the server reads as the bigint org_id.
with period as (
    select max(day) - (@days::int - 1) as first_day, max(day) as last_day
    from reporting.daily_activity
    where org_id = @tenant
)
select 'period' as metric, p.first_day || ' to ' || p.last_day as value
from period as p
union all
select 'activities', coalesce(sum(d.activities), 0)::text
from reporting.daily_activity as d, period as p
where d.org_id = @tenant and d.day between p.first_day and p.last_day
union all
select 'active members', count(distinct a.actor_id)::text
from app.activities as a, period as p
where a.org_id = @tenant
  and a.occurred_at >= p.first_day::timestamp at time zone 'UTC'
  and a.occurred_at < (p.last_day + 1)::timestamp at time zone 'UTC'
union all
select 'busiest project ' || t.rank, t.project_key || ' (' || t.activities || ' activities)'
from (
    select a.project_key, count(*) as activities,
           row_number() over (order by count(*) desc, a.project_key) as rank
    from app.activities as a, period as p
    where a.org_id = @tenant
      and a.occurred_at >= p.first_day::timestamp at time zone 'UTC'
      and a.occurred_at < (p.last_day + 1)::timestamp at time zone 'UTC'
    group by a.project_key
) as t
where t.rank <= 2
