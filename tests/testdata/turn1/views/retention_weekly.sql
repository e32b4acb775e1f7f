-- A user's cohort is the ISO week (Monday, UTC) of the user's first event. Only weeks in which at least one
-- user of the cohort was active have a row; week 0 is the cohort week itself (active_users = cohort_users).
create materialized view marts.retention_weekly as
with cohort as (
    select customer_id,
           user_id,
           date_trunc('week', (first_seen at time zone 'UTC'))::date as cohort_week
    from marts.rollup_user
),
size as (
    select customer_id, cohort_week, count(*)::bigint as cohort_users
    from cohort
    group by customer_id, cohort_week
)
select c.customer_id,
       c.cohort_week,
       ((w.week - c.cohort_week) / 7)::int as week_number,
       s.cohort_users,
       count(*)::bigint as active_users
from cohort as c
join marts.rollup_user_week as w on w.customer_id = c.customer_id and w.user_id = c.user_id
join size as s on s.customer_id = c.customer_id and s.cohort_week = c.cohort_week
group by c.customer_id, c.cohort_week, w.week, s.cohort_users;
-- The view was just created (empty) in this migration's transaction: concurrently is neither needed nor possible.
-- squawk-ignore require-concurrent-index-creation
create unique index retention_weekly_key on marts.retention_weekly (customer_id, cohort_week, week_number);
comment on materialized view marts.retention_weekly is 'Weekly retention: of the users first seen in a week, how many were active N weeks later.';
comment on column marts.retention_weekly.customer_id is 'Customer (tenant key).';
comment on column marts.retention_weekly.cohort_week is 'Monday (UTC) of the week of the cohort''s first event.';
comment on column marts.retention_weekly.week_number is 'Weeks since the cohort week (0 = the cohort week).';
comment on column marts.retention_weekly.cohort_users is 'Users in the cohort.';
comment on column marts.retention_weekly.active_users is 'Users of the cohort active in week cohort_week + week_number.';
