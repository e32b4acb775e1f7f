-- Every event belongs to a known customer. Looks at the events written since the checks last passed.
-- The customers of those events (a few) are compared with core.customers first, and only the events of a
-- missing one are read again. (Comparing each event with core.customers is one lookup per event: the new
-- batches are beyond core.events' statistics, so PostgreSQL estimates them at one row and plans a nested
-- loop, 0.2 s per 100,000 events.)
-- @tenants: the customers of those batches (docs/refresh.md, prune by tenant).
-- tenants: select distinct s.record ->> 'customer_id' from staging.events as s where s.batch_id > @checked_from and s.batch_id <= @batch_to
-- (except, which also keeps each customer once, rather than a correlated "not exists": Citus plans no
-- correlated subquery over a CTE.)
with missing as materialized (
    select e.customer_id
    from core.events as e
    where e.batch_id > @checked_from
      and e.batch_id <= @batch_to
      and (e.customer_id = any(@tenants) or @tenants is null)
    except
    select c.customer_id from core.customers as c where (c.customer_id = any(@tenants) or @tenants is null)
)
select e.customer_id, e.event_id
from missing as m
join core.events as e on e.customer_id = m.customer_id
where e.batch_id > @checked_from
  and e.batch_id <= @batch_to
  and (e.customer_id = any(@tenants) or @tenants is null)
