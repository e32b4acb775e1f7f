-- Every event names its user and feature (the keys of the marts). Looks at the events written since the
-- checks last passed.
select e.customer_id, e.event_id, e.user_id, e.feature
from core.events as e
where e.batch_id > @checked_from
  and e.batch_id <= @batch_to
  and (e.user_id is null or e.feature is null)
