-- Rollup counts are positive (a bucket without events has no row). Looks at the days changed since the checks
-- last passed.
-- @tenants: the customers of the queued days (docs/refresh.md, prune by tenant).
-- tenants: select distinct customer_id from marts.dirty_days
select 'rollup_user_day' as rollup, r.customer_id, r.day, r.user_id as key, r.events, null::bigint as users
from marts.rollup_user_day as r
join marts.dirty_days as d on d.customer_id = r.customer_id and d.day = r.day
where r.events < 1
  and (r.customer_id = any(@tenants) or @tenants is null)
union all
select 'rollup_feature_day', r.customer_id, r.day, r.feature, r.events, r.users
from marts.rollup_feature_day as r
join marts.dirty_days as d on d.customer_id = r.customer_id and d.day = r.day
where (r.events < 1 or r.users < 1)
  and (r.customer_id = any(@tenants) or @tenants is null)
