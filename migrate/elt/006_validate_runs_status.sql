-- Validates the status constraint 005_partial_runs added NOT VALID: a scan of elt.runs under SHARE UPDATE
-- EXCLUSIVE, which lets extract and refresh runs go on reading and writing it meanwhile.

set local lock_timeout = '10s';
set local statement_timeout = '15min';

alter table elt.runs validate constraint runs_status_check;
