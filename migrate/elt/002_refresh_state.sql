-- elt's own state for refresh: how far each SQL step of the project has processed the staging batches, the
-- step log, and the hash of every SQL file as it was when it last ran, so that a changed transform is noticed
-- (and rebuilt) instead of silently mixing the output of two versions.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

create table elt.refresh_watermarks (
    step       text        not null,
    batch_id   bigint      not null,
    updated_at timestamptz not null default now(),
    constraint refresh_watermarks_pkey primary key (step)
);
comment on table elt.refresh_watermarks is 'Highest batch each refresh step has processed, committed with the step''s result.';
comment on column elt.refresh_watermarks.step is 'File name of the step relative to the project (sql/030_events.sql), or checks for the data checks.';

create table elt.refresh_steps (
    run_id      bigint      not null references elt.runs (run_id),
    seq         bigint      not null,
    kind        text        not null,
    name        text        not null,
    started_at  timestamptz not null default now(),
    finished_at timestamptz,
    status      text        not null default 'running',
    batch_from  bigint,
    batch_to    bigint,
    rows        bigint      not null default 0,
    error       text,
    sha256      text,
    constraint refresh_steps_pkey primary key (run_id, seq),
    constraint refresh_steps_kind_check check (kind in ('transform', 'check', 'mart', 'view')),
    constraint refresh_steps_status_check check (status in ('running', 'succeeded', 'failed', 'skipped'))
);
comment on table elt.refresh_steps is 'One row per step of an elt refresh run: transforms, data checks, mart steps and materialized view refreshes, with time and rows.';
comment on column elt.refresh_steps.rows is 'Rows written (transform, mart step), violating rows (check) or rows in the materialized view after refresh.';
comment on column elt.refresh_steps.sha256 is 'SHA-256 of the SQL file as it ran (null for materialized view refreshes).';

create table elt.refresh_files (
    name       text        not null,
    sha256     text        not null,
    ran_at     timestamptz not null default now(),
    constraint refresh_files_pkey primary key (name)
);
comment on table elt.refresh_files is 'The SQL of each project file as it last ran successfully (by hash): elt refresh compares the files on disk with it.';

---- create above / drop below ----

drop table elt.refresh_files;
drop table elt.refresh_steps;
drop table elt.refresh_watermarks;
