-- An extract run that meets its source's quota (max_requests or max_duration in elt.yaml) stops at a batch
-- boundary and is recorded as 'partial': what it committed stays, and the next run resumes after it.
--
-- The check constraint is replaced without a long lock: the new one is added NOT VALID here (a brief ACCESS
-- EXCLUSIVE lock, no scan), and validated by the next migration, in a transaction of its own, under SHARE
-- UPDATE EXCLUSIVE, which lets runs go on writing. The new constraint allows every value the old one did.

set local lock_timeout = '10s';
set local statement_timeout = '15min';

alter table elt.runs
    drop constraint runs_status_check,
    add constraint runs_status_check
        check (status in ('running', 'succeeded', 'partial', 'failed', 'cancelled')) not valid;

comment on column elt.runs.status is 'running, succeeded, partial (an extract that met its source''s max_requests or max_duration: committed batches kept, the next run resumes after them), failed or cancelled.';
