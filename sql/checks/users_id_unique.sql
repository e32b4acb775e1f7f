-- A user id is unique across customers: the same id under two customers means the source re-assigned a user,
-- which would count it twice. (Core keys are enforced by primary keys; this is the one key they cannot see.)
select u.user_id, array_agg(u.customer_id order by u.customer_id) as customers
from core.users as u
where u.user_id in (
    select n.user_id from core.users as n where n.batch_id > @checked_from and n.batch_id <= @batch_to
)
group by u.user_id
having count(*) > 1
