-- The company's own overview of its organisations: a materialized view (views/org_overview.sql) that elt
-- refresh refreshes concurrently after the mart steps, so readers never wait. Private to the company's staff.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer of the table behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

{{ template "views/org_overview.sql" . }}

---- create above / drop below ----

drop materialized view reporting.org_overview;
