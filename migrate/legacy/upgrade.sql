-- Upgrade of a database laid out by elt before its two migration tracks (one track of six migrations,
-- recorded in public.elt_schema_version, with the usage-analytics model of the demo API compiled in).
-- elt migrate runs this once, in one transaction, when it finds that layout; it needs a superuser or a DBA.
--
-- Kept: everything extract loaded and knows (staging tables, elt.runs, elt.batches, elt.cursors,
-- elt.rejects, the staging locks) and the refresh step log. The raw records are what matter: the model is
-- rebuilt from them.
-- Dropped: the model (schemas core, marts, analytics), which now belongs to the project and is created by
-- the project's migrations; the next elt refresh rebuilds it from staging, because every watermark is reset.
-- Renamed: the tenant map becomes elt.tenants_legacy; elt migrate then moves each customer's login into the
-- new map (same login name, same password) and builds its schema.
--
-- Afterwards the database is at version 2 of the elt track (its two state migrations), and the rest of the
-- elt track and the project's migrations apply as on a new database.

set local lock_timeout = '10s';
set local statement_timeout = '15min';

-- The old model may have grown dependents elsewhere (a view of the DBA's own over core.events): list them and
-- stop rather than drop them with it.
do $$
declare
    dependents text;
begin
    select string_agg(distinct pg_describe_object(d.classid, d.objid, d.objsubid), ', ') into dependents
    from pg_depend as d
    join pg_class as ref on d.refclassid = 'pg_class'::regclass and ref.oid = d.refobjid
    where ref.relnamespace in ('analytics'::regnamespace, 'marts'::regnamespace, 'core'::regnamespace)
      and d.deptype = 'n'
      and not exists (select from pg_rewrite as rw join pg_class as v on v.oid = rw.ev_class
                      where d.classid = 'pg_rewrite'::regclass and rw.oid = d.objid
                        and v.relnamespace in ('analytics'::regnamespace, 'marts'::regnamespace, 'core'::regnamespace))
      and not exists (select from pg_class as c
                      where d.classid = 'pg_class'::regclass and c.oid = d.objid
                        and c.relnamespace in ('analytics'::regnamespace, 'marts'::regnamespace, 'core'::regnamespace))
      and not exists (select from pg_policy as p join pg_class as c on c.oid = p.polrelid
                      where d.classid = 'pg_policy'::regclass and p.oid = d.objid
                        and c.relnamespace in ('analytics'::regnamespace, 'marts'::regnamespace, 'core'::regnamespace))
      and not exists (select from pg_constraint as k join pg_class as c on c.oid = k.conrelid
                      where d.classid = 'pg_constraint'::regclass and k.oid = d.objid
                        and c.relnamespace in ('analytics'::regnamespace, 'marts'::regnamespace, 'core'::regnamespace));
    if dependents is not null then
        raise exception 'the old model (schemas analytics, marts, core) has dependents elt did not make: %', dependents
            using hint = 'drop or move them, then run elt migrate again';
    end if;
    -- The old layout granted CONNECT to the group of all tenant logins; each login now gets its own.
    execute format('revoke connect on database %I from elt_tenant', current_database());
end
$$;

drop schema analytics cascade;
drop schema marts cascade;
drop schema core cascade;
drop table elt.refresh_dirty_days;
drop function elt.session_customer();
drop procedure elt.adopt_objects();
drop procedure elt.harden_database();

comment on schema elt is 'Internal state of elt: run log, batches, cursors, refresh watermarks, the tenant map. Private to elt.';
comment on schema staging is 'Raw records exactly as the export APIs sent them (jsonb), one table per resource, append-only; created by elt extract. Private to elt.';
revoke execute on function elt.lock_staging_shared(), elt.lock_staging_exclusive() from public;

-- Refresh state as in 002_refresh_state.sql: the step log gains the hash of each file, and the hashes of the
-- files as they last ran get a table. No watermark survives: the next refresh rebuilds every step.
alter table elt.refresh_steps add column sha256 text;
alter table elt.refresh_steps drop constraint refresh_steps_kind_check;
alter table elt.refresh_steps add constraint refresh_steps_kind_check check (kind in ('transform', 'check', 'mart', 'view'));
comment on table elt.refresh_steps is 'One row per step of an elt refresh run: transforms, data checks, mart steps and materialized view refreshes, with time and rows.';
comment on column elt.refresh_steps.rows is 'Rows written (transform, mart step), violating rows (check) or rows in the materialized view after refresh.';
comment on column elt.refresh_steps.sha256 is 'SHA-256 of the SQL file as it ran (null for materialized view refreshes).';
comment on column elt.refresh_watermarks.step is 'File name of the step relative to the project (sql/030_events.sql), or checks for the data checks.';
create table elt.refresh_files (
    name       text        not null,
    sha256     text        not null,
    ran_at     timestamptz not null default now(),
    constraint refresh_files_pkey primary key (name)
);
comment on table elt.refresh_files is 'The SQL of each project file as it last ran successfully (by hash): elt refresh compares the files on disk with it.';
delete from elt.refresh_watermarks;

alter table elt.tenants rename to tenants_legacy;
alter table elt.tenants_legacy rename constraint tenants_pkey to tenants_legacy_pkey;
alter table elt.tenants_legacy rename constraint tenants_kind_check to tenants_legacy_kind_check;
alter index elt.tenants_customer_key rename to tenants_legacy_customer_key;
comment on table elt.tenants_legacy is 'The tenant map before the two migration tracks; elt migrate moves its logins into elt.tenants and drops it.';

create table elt.schema_version (version int4 not null);
insert into elt.schema_version (version) values (2);
drop table public.elt_schema_version;
