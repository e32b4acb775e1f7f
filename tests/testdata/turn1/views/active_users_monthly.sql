create materialized view marts.active_users_monthly as
select customer_id,
       month,
       count(*)::bigint as active_users
from marts.rollup_user_month
group by customer_id, month;
-- The view was just created (empty) in this migration's transaction: concurrently is neither needed nor possible.
-- squawk-ignore require-concurrent-index-creation
create unique index active_users_monthly_key on marts.active_users_monthly (customer_id, month);
comment on materialized view marts.active_users_monthly is 'Monthly active users per customer and calendar month (UTC).';
comment on column marts.active_users_monthly.customer_id is 'Customer (tenant key).';
comment on column marts.active_users_monthly.month is 'First day of the month (UTC).';
comment on column marts.active_users_monthly.active_users is 'Distinct users with at least one event that month.';
