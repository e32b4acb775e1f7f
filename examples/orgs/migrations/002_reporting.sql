-- Reporting: the marts tenants read, built by the mart step of elt refresh (sql/marts/010_reporting.sql)
-- for the orgs whose activities changed, once the data checks passed. Partitioned by list (org_id), like
-- everything a tenant reads (see 001_app.sql). Days are UTC days.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer of the table behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

create schema reporting;
comment on schema reporting is 'Marts built from app by elt refresh. Private: tenants read their own partitions through their own schema.';

create table reporting.daily_activity (
    org_id         bigint not null,
    day            date   not null,
    activities     bigint not null,
    active_members bigint not null,
    duration_ms    bigint not null,
    constraint daily_activity_pkey primary key (org_id, day)
) partition by list (org_id);
comment on table reporting.daily_activity is 'Activities and active members per organisation and UTC day (only days with activity).';
comment on column reporting.daily_activity.org_id is 'Organisation (tenant key).';
comment on column reporting.daily_activity.day is 'UTC day.';
comment on column reporting.daily_activity.activities is 'Activities that day.';
comment on column reporting.daily_activity.active_members is 'Distinct members with at least one activity that day.';
comment on column reporting.daily_activity.duration_ms is 'Total duration of that day''s activities, in milliseconds.';

create table reporting.project_usage (
    org_id      bigint      not null,
    project_id  bigint      not null,
    project_key text,
    activities  bigint      not null,
    members     bigint      not null,
    first_at    timestamptz not null,
    last_at     timestamptz not null,
    constraint project_usage_pkey primary key (org_id, project_id)
) partition by list (org_id);
comment on table reporting.project_usage is 'Lifetime use of each project of each organisation (only projects with activity).';
comment on column reporting.project_usage.org_id is 'Organisation (tenant key).';
comment on column reporting.project_usage.project_id is 'Project id.';
comment on column reporting.project_usage.project_key is 'Short key of the project (of its latest activity).';
comment on column reporting.project_usage.activities is 'Activities in the project.';
comment on column reporting.project_usage.members is 'Distinct members with at least one activity in the project.';
comment on column reporting.project_usage.first_at is 'Time of the project''s first activity (UTC).';
comment on column reporting.project_usage.last_at is 'Time of the project''s latest activity (UTC).';

---- create above / drop below ----

drop table reporting.project_usage;
drop table reporting.daily_activity;
drop schema reporting;
