-- One row per organisation for the company's own staff: tier, members, lifetime activities and the latest day
-- with activity. It reads every organisation, so no tenant may read it (elt tenant check makes sure none can).
create materialized view reporting.org_overview as
select o.org_id,
       o.slug,
       o.tier,
       (select count(*) from app.members as m where m.org_id = o.org_id)::bigint as members,
       coalesce(d.activities, 0)::bigint as activities,
       d.last_day
from app.orgs as o
left join (
    select r.org_id, sum(r.activities) as activities, max(r.day) as last_day
    from reporting.daily_activity as r
    group by r.org_id
) as d on d.org_id = o.org_id;
-- The view was just created (empty) in this migration's transaction: concurrently is neither needed nor possible.
-- squawk-ignore require-concurrent-index-creation
create unique index org_overview_key on reporting.org_overview (org_id);
comment on materialized view reporting.org_overview is 'Every organisation with its tier, members, lifetime activities and latest day with activity: the company''s own overview. Private.';
comment on column reporting.org_overview.org_id is 'Organisation (tenant key).';
comment on column reporting.org_overview.slug is 'Short name of the organisation.';
comment on column reporting.org_overview.tier is 'Subscription tier.';
comment on column reporting.org_overview.members is 'Members of the organisation.';
comment on column reporting.org_overview.activities is 'Activities of the organisation since the beginning.';
comment on column reporting.org_overview.last_day is 'Latest UTC day with an activity.';
