-- A split step (a "-- split: column in (query)" line in a step of the project) commits one transaction per
-- unit of keys. While such a step rebuilds, this table remembers the keys whose units committed, so that a
-- rebuild stopped half-way (a failing unit, a killed run) and run again keeps their rows when it finishes,
-- even if its query no longer returns them (a mart step that empties its queue per unit). elt refresh writes
-- a unit's keys in the unit's transaction and empties a step's rows when the step's rebuild finishes (in the
-- transaction that moves its watermark), and all of them when a full run starts.

set local lock_timeout = '10s';
set local statement_timeout = '15min';

create table elt.refresh_units (
    step         text        not null,
    unit_key     text        not null,
    committed_at timestamptz not null default now(),
    constraint refresh_units_pkey primary key (step, unit_key)
);
comment on table elt.refresh_units is 'Keys whose unit of a split step committed during a rebuild that has not finished yet; a rebuild run again keeps their rows.';
comment on column elt.refresh_units.step is 'File name of the split step relative to the project (sql/marts/010_marts.sql).';
comment on column elt.refresh_units.unit_key is 'A key of the split column (as text) whose unit committed.';

---- create above / drop below ----

drop table elt.refresh_units;
