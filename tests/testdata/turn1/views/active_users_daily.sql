create materialized view marts.active_users_daily as
select customer_id,
       day,
       active_users,
       events
from marts.rollup_customer_day;
-- The view was just created (empty) in this migration's transaction: concurrently is neither needed nor possible.
-- squawk-ignore require-concurrent-index-creation
create unique index active_users_daily_key on marts.active_users_daily (customer_id, day);
comment on materialized view marts.active_users_daily is 'Daily active users and events per customer and UTC day.';
comment on column marts.active_users_daily.customer_id is 'Customer (tenant key).';
comment on column marts.active_users_daily.day is 'UTC day.';
comment on column marts.active_users_daily.active_users is 'Distinct users with at least one event that day.';
comment on column marts.active_users_daily.events is 'Events that day.';
