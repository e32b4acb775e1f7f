-- events_30d counts the 30 UTC days that end on the customer's as-of day: its latest UTC day with any event.
-- It does not depend on the clock, so a --full rebuild and the incremental path agree, and running the refresh
-- again on the same data gives the same numbers; and it depends on no other customer's data, so no customer's
-- numbers reveal (or are skewed by) another's latest day.
create materialized view marts.user_activity as
with as_of as (
    select c.customer_id, max(c.day) as day
    from marts.rollup_customer_day as c
    group by c.customer_id
),
recent as (
    select r.customer_id, r.user_id, sum(r.events)::bigint as events
    from marts.rollup_user_day as r
    join as_of on as_of.customer_id = r.customer_id
    where r.day > as_of.day - 30
    group by r.customer_id, r.user_id
)
select u.customer_id,
       u.user_id,
       u.first_seen,
       u.last_seen,
       u.active_days,
       coalesce(recent.events, 0)::bigint as events_30d
from marts.rollup_user as u
left join recent on recent.customer_id = u.customer_id and recent.user_id = u.user_id;
-- The view was just created (empty) in this migration's transaction: concurrently is neither needed nor possible.
-- squawk-ignore require-concurrent-index-creation
create unique index user_activity_key on marts.user_activity (customer_id, user_id);
comment on materialized view marts.user_activity is 'Activity summary of each user who has at least one event.';
comment on column marts.user_activity.customer_id is 'Customer (tenant key).';
comment on column marts.user_activity.user_id is 'User id.';
comment on column marts.user_activity.first_seen is 'Time of the user''s first event (UTC).';
comment on column marts.user_activity.last_seen is 'Time of the user''s latest event (UTC).';
comment on column marts.user_activity.active_days is 'UTC days with at least one event of the user.';
comment on column marts.user_activity.events_30d is 'Events of the user in the 30 UTC days ending on the customer''s latest day with data (not the current date).';
