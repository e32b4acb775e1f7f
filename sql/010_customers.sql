-- Customers: the newest version of each customer record loaded by batches in (@batch_from, @batch_to].
-- The newest version wins by updated_at, then by load order (batch, then staging id); a late, older version
-- is ignored.
-- rebuild: core.customers
--
-- time_zone is the record's IANA zone (timezone) when the server knows it, else UTC. Every day of the marts
-- is a day of that zone, so when a customer's zone changes (or its record arrives after its events, which
-- were bucketed in UTC until then), every day of its events, in the old zone and in the new one, is queued in
-- marts.dirty_days: the rollups delete the old buckets and build the new ones.

create temp table pg_temp.incoming_customers on commit drop as
with zones as materialized (
    select name from pg_catalog.pg_timezone_names
)
select distinct on (s.record ->> 'id')
       s.record ->> 'id'                                                   as customer_id,
       s.record ->> 'name'                                                 as name,
       s.record ->> 'plan'                                                 as plan,
       s.record ->> 'country'                                              as country,
       (s.record ->> 'created_at')::timestamptz                            as created_at,
       (s.record ->> 'updated_at')::timestamptz                            as updated_at,
       coalesce((select z.name from zones as z where z.name = s.record ->> 'timezone'), 'UTC') as time_zone,
       s.id                                                                as staging_id,
       s.batch_id
from staging.customers as s
where s.batch_id > @batch_from
  and s.batch_id <= @batch_to
order by s.record ->> 'id', (s.record ->> 'updated_at')::timestamptz desc, s.batch_id desc, s.id desc;

-- The customers whose zone the upsert below changes (a customer without a row so far had UTC days). A
-- rebuild has just emptied core.customers, and rebuilds core.events next: nothing to queue.
insert into marts.dirty_days (customer_id, day)
select distinct e.customer_id, (e.occurred_at at time zone z.zone)::date
from (
    select i.customer_id, coalesce(c.time_zone, 'UTC') as old_zone, i.time_zone as new_zone
    from pg_temp.incoming_customers as i
    left join core.customers as c on c.customer_id = i.customer_id
    where (c.customer_id is null
           or (i.updated_at, i.batch_id, i.staging_id) > (c.updated_at, c.batch_id, c.staging_id))
      and coalesce(c.time_zone, 'UTC') <> i.time_zone
      and not @rebuild
) as changed
cross join lateral (values (changed.old_zone), (changed.new_zone)) as z(zone)
join core.events as e on e.customer_id = changed.customer_id
on conflict do nothing;

insert into core.customers as c
       (customer_id, name, plan, country, created_at, updated_at, time_zone, staging_id, batch_id)
select customer_id, name, plan, country, created_at, updated_at, time_zone, staging_id, batch_id
from pg_temp.incoming_customers
on conflict (customer_id) do update
   set name       = excluded.name,
       plan       = excluded.plan,
       country    = excluded.country,
       created_at = excluded.created_at,
       updated_at = excluded.updated_at,
       time_zone  = excluded.time_zone,
       staging_id = excluded.staging_id,
       batch_id   = excluded.batch_id
 where (excluded.updated_at, excluded.batch_id, excluded.staging_id) > (c.updated_at, c.batch_id, c.staging_id);
