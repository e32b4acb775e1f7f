-- Customers: the newest version of each customer record loaded by batches in (@batch_from, @batch_to].
-- The newest version wins by updated_at, then by load order (batch, then staging id); a late, older version
-- is ignored.
-- rebuild: core.customers

insert into core.customers as c
       (customer_id, name, plan, country, created_at, updated_at, staging_id, batch_id)
select distinct on (s.record ->> 'id')
       s.record ->> 'id',
       s.record ->> 'name',
       s.record ->> 'plan',
       s.record ->> 'country',
       (s.record ->> 'created_at')::timestamptz,
       (s.record ->> 'updated_at')::timestamptz,
       s.id,
       s.batch_id
from staging.customers as s
where s.batch_id > @batch_from
  and s.batch_id <= @batch_to
order by s.record ->> 'id', (s.record ->> 'updated_at')::timestamptz desc, s.batch_id desc, s.id desc
on conflict (customer_id) do update
   set name       = excluded.name,
       plan       = excluded.plan,
       country    = excluded.country,
       created_at = excluded.created_at,
       updated_at = excluded.updated_at,
       staging_id = excluded.staging_id,
       batch_id   = excluded.batch_id
 where (excluded.updated_at, excluded.batch_id, excluded.staging_id) > (c.updated_at, c.batch_id, c.staging_id);
