-- The rows of sql/report/tenant.sql for customer @tenant, read by elt (as elt_owner) from the private tables
-- with an explicit filter: the independent side of elt tenant report's comparison.
with period as (
    select max(day) - (@days::int - 1) as first_day, max(day) as last_day
    from marts.rollup_customer_day
    where customer_id = @tenant
)
select 'period' as metric, p.first_day || ' to ' || p.last_day as value
from period as p
union all
select 'active users', count(distinct u.user_id)::text
from marts.rollup_user_day as u, period as p
where u.customer_id = @tenant and u.day between p.first_day and p.last_day
union all
select 'events', coalesce(sum(d.events), 0)::text
from marts.rollup_customer_day as d, period as p
where d.customer_id = @tenant and d.day between p.first_day and p.last_day
union all
select 'top feature ' || t.rank, t.feature || ' (' || t.events || ' events)'
from (
    select f.feature, sum(f.events) as events, row_number() over (order by sum(f.events) desc, f.feature) as rank
    from marts.rollup_feature_day as f, period as p
    where f.customer_id = @tenant and f.day between p.first_day and p.last_day
    group by f.feature
) as t
where t.rank <= 3
