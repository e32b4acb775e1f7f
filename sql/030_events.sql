-- Events: the newest version of each event loaded by batches in (@batch_from, @batch_to], and the
-- (customer, day) buckets they change, queued in marts.dirty_days for the rollups: the day of each
-- version written and, when it replaces an older version, the older version's day too (an update may move an
-- event to another day). The newest version wins by updated_at, then by load order (batch, then staging id);
-- a late, older version is ignored.
-- A rebuild (every batch, @rebuild) leaves core.events in place and writes only what differs from it: the
-- versions that changed or are new, and deletes the events no version in staging stands for any more. A
-- rebuild after a change that leaves most events as they were (a new mart, a fix in a later step, --full)
-- then reads core.events instead of rewriting it: no dead rows, index entries or WAL for the rows that stay.
-- rebuild in place: core.events
--
-- The step runs in units of customers (the split: line below; docs/refresh.md, split steps): each unit in a
-- transaction of its own, several at once on separate sessions (elt refresh --sessions). The customers are
-- dealt, biggest first, into 8 units of about the same size, because every unit reads the batches' records of
-- staging.events once (staging is ordered by load, not by customer): 8 reads instead of one per customer.
-- @tenants is the unit's customers, so the statements read only their records and the planner opens only
-- their partitions of core.events (and the default one).
-- split: customer_id in (select customer_id, (row_number() over (order by n desc, customer_id) - 1) % 8 from (select s.record ->> 'customer_id' as customer_id, count(*) as n from staging.events as s where s.batch_id > @batch_from and s.batch_id <= @batch_to group by 1) as c order by n desc, customer_id)
-- A unit's versions are sorted in memory rather than on disk.
set local work_mem = '64MB';

with incoming as (
    select distinct on (s.customer_id, s.record ->> 'id')
           s.customer_id,
           s.record ->> 'id'                           as event_id,
           s.record ->> 'user_id'                      as user_id,
           s.record ->> 'feature'                      as feature,
           (s.record ->> 'occurred_at')::timestamptz   as occurred_at,
           (s.record ->> 'updated_at')::timestamptz    as updated_at,
           s.record -> 'properties'                    as properties,
           s.id                                        as staging_id,
           s.batch_id
    from (
        select x.id, x.batch_id, x.record, x.record ->> 'customer_id' as customer_id
        from staging.events as x
        where x.batch_id > @batch_from
          and x.batch_id <= @batch_to
    ) as s
    where (s.customer_id = any(@tenants) or @tenants is null)
    order by s.customer_id, s.record ->> 'id',
             (s.record ->> 'updated_at')::timestamptz desc, s.batch_id desc, s.id desc
),
-- Incremental only: the versions that win, new events and newer versions of known ones (with the day they
-- replace), which the upsert below writes. This reads core.events as it was before the statement; lateral, so
-- it probes the primary key per incoming event instead of scanning all of core.events.
winners as (
    select i.*, e.occurred_at as replaced_at
    from incoming as i
    left join lateral (
        select x.occurred_at, x.updated_at, x.batch_id, x.staging_id
        from core.events as x
        where x.customer_id = i.customer_id
          and (x.customer_id = any(@tenants) or @tenants is null)
          and x.event_id = i.event_id
    ) as e on true
    where not @rebuild
      and (e.updated_at is null
           or (i.updated_at, i.batch_id, i.staging_id) > (e.updated_at, e.batch_id, e.staging_id))
),
-- On a rebuild only: what core.events holds of the unit's customers, against the versions that win in all of
-- staging. The versions that differ from the row held (or have none) are written below; the rows held that no
-- version stands for any more (a transform that now leaves them out, records deleted by hand) go.
held as (
    select x.customer_id, x.event_id, x.user_id, x.feature, x.occurred_at, x.updated_at, x.properties,
           x.staging_id, x.batch_id
    from core.events as x
    where @rebuild
      and (x.customer_id = any(@tenants) or @tenants is null)
),
-- A row held alone has no staging_id (every version from staging has one). "Differs" is each type's
-- equality: jsonb holds 1.0 and 1 equal, so a rebuild keeps the stored spelling of an equal value.
differs as (
    select i.staging_id is null as gone, coalesce(i.customer_id, h.customer_id) as customer_id,
           coalesce(i.event_id, h.event_id) as event_id,
           i.user_id, i.feature, i.occurred_at, i.updated_at, i.properties, i.staging_id, i.batch_id
    from incoming as i
    full join held as h on h.customer_id = i.customer_id and h.event_id = i.event_id
    where @rebuild
      and (i.staging_id is null or h.event_id is null
           or (i.user_id, i.feature, i.occurred_at, i.updated_at, i.properties, i.staging_id, i.batch_id)
              is distinct from (h.user_id, h.feature, h.occurred_at, h.updated_at, h.properties, h.staging_id, h.batch_id))
),
gone as (
    delete from core.events as x
    using differs as d
    where d.gone
      and x.customer_id = d.customer_id
      and x.event_id = d.event_id
      and (x.customer_id = any(@tenants) or @tenants is null)
    returning x.customer_id, x.occurred_at
),
-- Days are the customer's own (core.customers.time_zone; UTC for a customer whose record has not arrived yet:
-- sql/010_customers.sql queues its days again when it does). A rebuild queues every day with an event, and
-- the days of the events gone.
queued as (
    insert into marts.dirty_days (customer_id, day)
    select w.customer_id, (t.at at time zone coalesce(c.time_zone, 'UTC'))::date
    from (select customer_id, occurred_at, replaced_at from winners
          union all
          select customer_id, occurred_at, null from incoming where @rebuild
          union all
          select customer_id, occurred_at, null from gone) as w
    cross join lateral (values (w.occurred_at), (w.replaced_at)) as t(at)
    left join core.customers as c
           on c.customer_id = w.customer_id
          and (c.customer_id = any(@tenants) or @tenants is null)
    where t.at is not null
    group by 1, 2
    on conflict do nothing
)
-- What is written: the winners (incremental), or the versions that differ from the row held or are new
-- (rebuild), sorted: the order in which a customer's rows reach its partition (its physical layout, the planner's
-- correlation statistics) then depends on its own data only, not on how a join over the unit's customers
-- emitted them. The upsert's update takes every row it meets: the winners above decided (no parameter in the
-- on conflict clause: Citus sends that clause to the workers without the parameters' values).
insert into core.events as e
       (customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id)
select customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id
from (
    select customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id
    from winners
    union all
    select customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id
    from differs
    where not gone
) as w
order by customer_id, event_id
on conflict (customer_id, event_id) do update
   set user_id     = excluded.user_id,
       feature     = excluded.feature,
       occurred_at = excluded.occurred_at,
       updated_at  = excluded.updated_at,
       properties  = excluded.properties,
       staging_id  = excluded.staging_id,
       batch_id    = excluded.batch_id;
