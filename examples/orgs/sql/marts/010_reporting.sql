-- Marts: recompute daily_activity and project_usage, whole, for every org that has an activity written by
-- the batches in (@batch_from, @batch_to] (app.activities.batch_id is the batch of each row's current
-- version). An activity never changes org (org_id is part of its key), so these are exactly the orgs whose
-- marts can have changed. The cost follows one org's history, not all orgs'. This step runs only after the
-- data checks passed, and recomputing is idempotent: a run that stops half-way is simply run again. On a
-- rebuild (@batch_from = 0) every org with activities is recomputed.
-- rebuild: reporting.daily_activity, reporting.project_usage
-- The orgs of the batches, from staging (not partitioned), bound to @tenants: every reference to a table
-- partitioned by org_id filters on it, so only those orgs' partitions are planned, opened and locked (when
-- they are more than a quarter of the tenants, @tenants is NULL and the filter folds away).
-- tenants: select distinct (s.record ->> 'orgId')::bigint from staging.activities as s where s.batch_id > @batch_from and s.batch_id <= @batch_to

create temp table pg_temp.changed_orgs (org_id bigint primary key) on commit drop;

insert into pg_temp.changed_orgs (org_id)
select distinct a.org_id
from app.activities as a
where a.batch_id > @batch_from
  and a.batch_id <= @batch_to
  and (a.org_id = any(@tenants) or @tenants is null);

analyze pg_temp.changed_orgs;

delete from reporting.daily_activity as d
using pg_temp.changed_orgs as c
where d.org_id = c.org_id
  and (d.org_id = any(@tenants) or @tenants is null);

insert into reporting.daily_activity (org_id, day, activities, active_members, duration_ms)
select a.org_id, (a.occurred_at at time zone 'UTC')::date, count(*), count(distinct a.actor_id),
       coalesce(sum(a.duration_ms), 0)
from pg_temp.changed_orgs as c
join app.activities as a on a.org_id = c.org_id
where (a.org_id = any(@tenants) or @tenants is null)
group by a.org_id, (a.occurred_at at time zone 'UTC')::date;

delete from reporting.project_usage as p
using pg_temp.changed_orgs as c
where p.org_id = c.org_id
  and (p.org_id = any(@tenants) or @tenants is null);

-- project_key: the key of the project's latest activity (a project renamed at the source shows its new key).
insert into reporting.project_usage (org_id, project_id, project_key, activities, members, first_at, last_at)
select a.org_id, a.project_id,
       (array_agg(a.project_key order by a.occurred_at desc, a.activity_id desc))[1],
       count(*), count(distinct a.actor_id), min(a.occurred_at), max(a.occurred_at)
from pg_temp.changed_orgs as c
join app.activities as a on a.org_id = c.org_id
where a.project_id is not null
  and (a.org_id = any(@tenants) or @tenants is null)
group by a.org_id, a.project_id;
