-- Queues every (customer, day) with events as a changed bucket for the default project's rollups and marts.
insert into marts.dirty_days (customer_id, day)
select distinct customer_id, (occurred_at at time zone 'UTC')::date from core.events;
