-- Every member belongs to a known org. Looks at the members written since the checks last passed.
select m.org_id, m.member_id
from app.members as m
where m.batch_id > @checked_from
  and m.batch_id <= @batch_to
  and not exists (select from app.orgs as o where o.org_id = m.org_id)
