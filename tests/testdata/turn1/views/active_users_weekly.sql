create materialized view marts.active_users_weekly as
select customer_id,
       week,
       count(*)::bigint as active_users
from marts.rollup_user_week
group by customer_id, week;
-- The view was just created (empty) in this migration's transaction: concurrently is neither needed nor possible.
-- squawk-ignore require-concurrent-index-creation
create unique index active_users_weekly_key on marts.active_users_weekly (customer_id, week);
comment on materialized view marts.active_users_weekly is 'Weekly active users per customer and ISO week (Monday to Sunday, UTC).';
comment on column marts.active_users_weekly.customer_id is 'Customer (tenant key).';
comment on column marts.active_users_weekly.week is 'Monday of the week (UTC).';
comment on column marts.active_users_weekly.active_users is 'Distinct users with at least one event that week.';
