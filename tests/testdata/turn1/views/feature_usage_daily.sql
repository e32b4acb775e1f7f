create materialized view marts.feature_usage_daily as
select customer_id,
       day,
       feature,
       events,
       users
from marts.rollup_feature_day;
-- The view was just created (empty) in this migration's transaction: concurrently is neither needed nor possible.
-- squawk-ignore require-concurrent-index-creation
create unique index feature_usage_daily_key on marts.feature_usage_daily (customer_id, day, feature);
comment on materialized view marts.feature_usage_daily is 'Use of each product feature per customer and UTC day.';
comment on column marts.feature_usage_daily.customer_id is 'Customer (tenant key).';
comment on column marts.feature_usage_daily.day is 'UTC day.';
comment on column marts.feature_usage_daily.feature is 'Product feature, e.g. dashboard.view.';
comment on column marts.feature_usage_daily.events is 'Events of this feature that day.';
comment on column marts.feature_usage_daily.users is 'Distinct users who used this feature that day.';
