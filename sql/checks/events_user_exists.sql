-- Every event's user is a known user of the same customer. Looks at the events written since the checks
-- last passed.
-- @tenants: the customers of those batches (docs/refresh.md, prune by tenant).
-- tenants: select distinct s.record ->> 'customer_id' from staging.events as s where s.batch_id > @checked_from and s.batch_id <= @batch_to
select e.customer_id, e.event_id, e.user_id
from core.events as e
where e.batch_id > @checked_from
  and e.batch_id <= @batch_to
  and (e.customer_id = any(@tenants) or @tenants is null)
  and e.user_id is not null
  and not exists (
      select from core.users as u
      where u.customer_id = e.customer_id and u.user_id = e.user_id
        and (u.customer_id = any(@tenants) or @tenants is null)
  )
