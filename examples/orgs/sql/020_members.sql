-- Members: the newest version of each member record loaded by batches in (@batch_from, @batch_to]. A member
-- record does not name its org: members are extracted per org (/orgs/{orgId}/members), and the parent column
-- holds the org's orgId and slug. The profile is a nested object.
-- rebuild: app.members

insert into app.members as m
       (org_id, member_id, full_name, email, access, joined_at, updated_at, staging_id, batch_id)
select distinct on (1, 2)
       (s.parent ->> 'orgId')::bigint,
       (s.record ->> 'memberId')::bigint,
       s.record #>> '{profile,fullName}',
       s.record #>> '{profile,email}',
       s.record ->> 'access',
       to_timestamp((s.record ->> 'joinedAt')::bigint / 1000.0),
       to_timestamp((s.record ->> 'updatedAt')::bigint / 1000.0),
       s.id,
       s.batch_id
from staging.members as s
where s.batch_id > @batch_from
  and s.batch_id <= @batch_to
order by 1, 2, (s.record ->> 'updatedAt')::bigint desc, s.batch_id desc, s.id desc
on conflict (org_id, member_id) do update
   set full_name  = excluded.full_name,
       email      = excluded.email,
       access     = excluded.access,
       joined_at  = excluded.joined_at,
       updated_at = excluded.updated_at,
       staging_id = excluded.staging_id,
       batch_id   = excluded.batch_id
 where (excluded.updated_at, excluded.batch_id, excluded.staging_id) > (m.updated_at, m.batch_id, m.staging_id);
