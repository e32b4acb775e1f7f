-- Every activity belongs to a known org. Looks at the activities written since the checks last passed.
select a.org_id, a.activity_id
from app.activities as a
where a.batch_id > @checked_from
  and a.batch_id <= @batch_to
  and not exists (select from app.orgs as o where o.org_id = a.org_id)
