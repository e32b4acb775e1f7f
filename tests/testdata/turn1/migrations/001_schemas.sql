-- The five schemas of elt. Only analytics is ever granted to customers; everything else is private to the
-- pipeline. Schemas created here have no grants to PUBLIC (Postgres grants nothing on a new schema).

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

create schema staging;
comment on schema staging is 'Raw records exactly as the export API sent them (jsonb), append-only. Private to elt.';

create schema core;
comment on schema core is 'Typed, deduplicated tables built from staging by elt refresh; every row carries customer_id. Private to elt.';

create schema marts;
comment on schema marts is 'Rollups and materialized views built from core. Private to elt; customers reach them only through analytics.';

create schema elt;
comment on schema elt is 'Internal state of elt: run log, batches, cursors, transform watermarks, tenant map. Private to elt.';

create schema analytics;
comment on schema analytics is 'Product-usage statistics for BI tools. Each customer login sees only its own rows.';

---- create above / drop below ----

drop schema analytics;
drop schema elt;
drop schema marts;
drop schema core;
drop schema staging;
