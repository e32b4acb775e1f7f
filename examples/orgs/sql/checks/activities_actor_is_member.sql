-- Every activity names its actor, and the actor is a member of the activity's own org (the marts count
-- members per org). Looks at the activities written since the checks last passed.
select a.org_id, a.activity_id, a.actor_id
from app.activities as a
where a.batch_id > @checked_from
  and a.batch_id <= @batch_to
  and (a.actor_id is null
       or not exists (select from app.members as m where m.org_id = a.org_id and m.member_id = a.actor_id))
