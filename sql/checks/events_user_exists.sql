-- Every event's user is a known user of the same customer. Looks at the events written since the checks
-- last passed. Their (customer, user) pairs, far fewer than the events, are compared with core.users first,
-- and only the events of a missing pair are read again (see events_customer_exists.sql).
-- @tenants: the customers of those batches (docs/refresh.md, prune by tenant).
-- tenants: select distinct s.record ->> 'customer_id' from staging.events as s where s.batch_id > @checked_from and s.batch_id <= @batch_to
with seen as materialized (
    select distinct e.customer_id, e.user_id
    from core.events as e
    where e.batch_id > @checked_from
      and e.batch_id <= @batch_to
      and (e.customer_id = any(@tenants) or @tenants is null)
      and e.user_id is not null
),
missing as materialized (
    select s.customer_id, s.user_id
    from seen as s
    where not exists (
        select from core.users as u
        where u.customer_id = s.customer_id and u.user_id = s.user_id
          and (u.customer_id = any(@tenants) or @tenants is null)
    )
)
select e.customer_id, e.event_id, e.user_id
from missing as m
join core.events as e on e.customer_id = m.customer_id and e.user_id = m.user_id
where e.batch_id > @checked_from
  and e.batch_id <= @batch_to
  and (e.customer_id = any(@tenants) or @tenants is null)
