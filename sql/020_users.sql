-- Users: the newest version of each user record loaded by batches in (@batch_from, @batch_to].
-- A user extracted as a child of its customer carries the customer record in parent; record.customer_id wins
-- when present.
-- rebuild: core.users

insert into core.users as u
       (customer_id, user_id, email, name, role, created_at, updated_at, staging_id, batch_id)
select distinct on (1, 2)
       coalesce(s.record ->> 'customer_id', s.parent ->> 'id'),
       s.record ->> 'id',
       s.record ->> 'email',
       s.record ->> 'name',
       s.record ->> 'role',
       (s.record ->> 'created_at')::timestamptz,
       (s.record ->> 'updated_at')::timestamptz,
       s.id,
       s.batch_id
from staging.users as s
where s.batch_id > @batch_from
  and s.batch_id <= @batch_to
order by 1, 2, (s.record ->> 'updated_at')::timestamptz desc, s.batch_id desc, s.id desc
on conflict (customer_id, user_id) do update
   set email      = excluded.email,
       name       = excluded.name,
       role       = excluded.role,
       created_at = excluded.created_at,
       updated_at = excluded.updated_at,
       staging_id = excluded.staging_id,
       batch_id   = excluded.batch_id
 where (excluded.updated_at, excluded.batch_id, excluded.staging_id) > (u.updated_at, u.batch_id, u.staging_id);
