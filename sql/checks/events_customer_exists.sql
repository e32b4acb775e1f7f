-- Every event belongs to a known customer. Looks at the events written since the checks last passed.
select e.customer_id, e.event_id
from core.events as e
where e.batch_id > @checked_from
  and e.batch_id <= @batch_to
  and not exists (select from core.customers as c where c.customer_id = e.customer_id)
