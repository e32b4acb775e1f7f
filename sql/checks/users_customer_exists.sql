-- Every user belongs to a known customer.
select u.customer_id, u.user_id
from core.users as u
where u.batch_id > @checked_from
  and u.batch_id <= @batch_to
  and not exists (select from core.customers as c where c.customer_id = u.customer_id)
