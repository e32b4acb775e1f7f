-- Orgs: the newest version of each org record loaded by batches in (@batch_from, @batch_to]. Ids are
-- integers, timestamps epoch milliseconds, billing a nested object. The newest version wins by updatedAt,
-- then by load order (batch, then staging id); a late, older version is ignored.
-- rebuild: app.orgs

insert into app.orgs as o
       (org_id, slug, display_name, tier, currency, seats, created_at, updated_at, staging_id, batch_id)
select distinct on ((s.record ->> 'orgId')::bigint)
       (s.record ->> 'orgId')::bigint,
       s.record ->> 'slug',
       s.record ->> 'displayName',
       s.record ->> 'tier',
       s.record #>> '{billing,currency}',
       (s.record #>> '{billing,seats}')::bigint,
       to_timestamp((s.record ->> 'createdAt')::bigint / 1000.0),
       to_timestamp((s.record ->> 'updatedAt')::bigint / 1000.0),
       s.id,
       s.batch_id
from staging.orgs as s
where s.batch_id > @batch_from
  and s.batch_id <= @batch_to
order by (s.record ->> 'orgId')::bigint, (s.record ->> 'updatedAt')::bigint desc, s.batch_id desc, s.id desc
on conflict (org_id) do update
   set slug         = excluded.slug,
       display_name = excluded.display_name,
       tier         = excluded.tier,
       currency     = excluded.currency,
       seats        = excluded.seats,
       created_at   = excluded.created_at,
       updated_at   = excluded.updated_at,
       staging_id   = excluded.staging_id,
       batch_id     = excluded.batch_id
 where (excluded.updated_at, excluded.batch_id, excluded.staging_id) > (o.updated_at, o.batch_id, o.staging_id);
