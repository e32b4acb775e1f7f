-- Every user belongs to a known customer.
-- @tenants: the customers of those batches' users (docs/refresh.md, prune by tenant).
-- tenants: select distinct coalesce(s.record ->> 'customer_id', s.parent ->> 'id') from staging.users as s where s.batch_id > @checked_from and s.batch_id <= @batch_to
select u.customer_id, u.user_id
from core.users as u
where u.batch_id > @checked_from
  and u.batch_id <= @batch_to
  and (u.customer_id = any(@tenants) or @tenants is null)
  and not exists (
      select from core.customers as c
      where c.customer_id = u.customer_id and (c.customer_id = any(@tenants) or @tenants is null)
  )
