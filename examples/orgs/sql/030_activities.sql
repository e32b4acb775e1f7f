-- Activities: the newest version of each activity loaded by batches in (@batch_from, @batch_to]. The actor
-- and the project are nested objects; createdAt (epoch ms) is when it happened. The newest version wins by
-- updatedAt, then by load order (batch, then staging id); a late, older version is ignored. The mart step
-- (sql/marts/010_reporting.sql) recomputes the orgs whose rows this step wrote (their batch_id).
-- rebuild: app.activities

insert into app.activities as a
       (org_id, activity_id, kind, actor_id, project_id, project_key, duration_ms, occurred_at, updated_at,
        staging_id, batch_id)
select distinct on (1, 2)
       (s.record ->> 'orgId')::bigint,
       (s.record ->> 'activityId')::bigint,
       s.record ->> 'kind',
       (s.record #>> '{actor,memberId}')::bigint,
       (s.record #>> '{project,projectId}')::bigint,
       s.record #>> '{project,key}',
       (s.record ->> 'durationMs')::bigint,
       to_timestamp((s.record ->> 'createdAt')::bigint / 1000.0),
       to_timestamp((s.record ->> 'updatedAt')::bigint / 1000.0),
       s.id,
       s.batch_id
from staging.activities as s
where s.batch_id > @batch_from
  and s.batch_id <= @batch_to
order by 1, 2, (s.record ->> 'updatedAt')::bigint desc, s.batch_id desc, s.id desc
on conflict (org_id, activity_id) do update
   set kind        = excluded.kind,
       actor_id    = excluded.actor_id,
       project_id  = excluded.project_id,
       project_key = excluded.project_key,
       duration_ms = excluded.duration_ms,
       occurred_at = excluded.occurred_at,
       updated_at  = excluded.updated_at,
       staging_id  = excluded.staging_id,
       batch_id    = excluded.batch_id
 where (excluded.updated_at, excluded.batch_id, excluded.staging_id) > (a.updated_at, a.batch_id, a.staging_id);
