-- elt tenant report (and make demo) log in as a tenant and run this query in the tenant's own schema: the
-- last @days days that have data, and what happened in them. sql/report/owner.sql computes the same rows from
-- the private tables for one customer; the report passes when both agree.
with period as (
    select max(day) - (@days::int - 1) as first_day, max(day) as last_day
    from active_users_daily
)
select 'period' as metric, p.first_day || ' to ' || p.last_day as value
from period as p
union all
select 'active users', count(distinct u.user_id)::text
from user_activity_daily as u, period as p
where u.day between p.first_day and p.last_day
union all
select 'events', coalesce(sum(d.events), 0)::text
from active_users_daily as d, period as p
where d.day between p.first_day and p.last_day
union all
select 'top feature ' || t.rank, t.feature || ' (' || t.events || ' events)'
from (
    select f.feature, sum(f.events) as events, row_number() over (order by sum(f.events) desc, f.feature) as rank
    from feature_usage_daily as f, period as p
    where f.day between p.first_day and p.last_day
    group by f.feature
) as t
where t.rank <= 3
