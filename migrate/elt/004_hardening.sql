-- Ownership and hardening, in schema elt_dba.
--
-- elt_dba.adopt_objects gives the objects of elt's schemas and of the project's schemas to elt_owner (elt
-- migrate calls it after every run): migrations run as whoever applies them, often a superuser, and a relation
-- owned by someone else could neither be refreshed by elt_runner nor safely read by a tenant's view.
--
-- elt_dba.harden_database and elt_dba.harden_catalogs take from PUBLIC what would let a tenant act on this
-- database (temporary objects, advisory locks, large objects, other databases) or observe other tenants
-- through it: statistics views and functions, sizes, row and page counts in pg_class, partition bounds,
-- transaction ids and WAL positions, other sessions and their locks. See docs/tenants.md, "What a tenant can
-- observe".
--
-- Schema elt_dba and these routines belong to whoever applies this migration (a superuser or the DBA), never
-- to elt_owner: a superuser calls them, and elt_runner, which has elt_owner's rights, must not be able to
-- replace what a superuser runs.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

-- Schema elt and the elt track's version table (tern created it as whoever applies this migration) stay the
-- DBA's (adopt skips them): elt_owner creates and owns the tables in the schema but cannot drop or replace
-- what it does not own, and may record versions but not change the version table (no trigger, constraint or
-- column type): a superuser's elt migrate writes it.
alter schema elt owner to current_user;
grant usage, create on schema elt to elt_owner;
alter table elt.schema_version owner to current_user;
grant select, insert, update, delete on elt.schema_version to elt_owner;

create schema elt_dba;
comment on schema elt_dba is 'Routines a superuser or the DBA runs (ownership, hardening). Owned by whoever applied elt''s migrations, never by elt_owner.';
revoke all on schema elt_dba from public;
grant usage on schema elt_dba to elt_owner;

create procedure elt_dba.adopt_objects(p_schemas text[])
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
declare
    r record;
    schemas text[] := array['staging', 'elt'] || coalesce(p_schemas, '{}');
begin
    for r in
        select n.nspname from pg_namespace as n
        -- schema elt stays the DBA's (see the top of this migration)
        where n.nspname = any (schemas) and n.nspname <> 'elt' and n.nspowner <> 'elt_owner'::regrole
    loop
        execute format('alter schema %I owner to elt_owner', r.nspname);
    end loop;
    for r in
        select c.oid::regclass as rel, c.relkind
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = any (schemas)
          and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
          and c.relowner <> 'elt_owner'::regrole
          -- the elt track's version table stays the DBA's: a superuser's elt migrate writes it
          and c.oid is distinct from to_regclass('elt.schema_version')
          -- identity and serial sequences follow their table (partitions do not: each has its owner)
          and not (c.relkind = 'S' and exists (select from pg_depend as d
                                               where d.classid = 'pg_class'::regclass and d.objid = c.oid
                                                 and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
    loop
        execute format('alter %s %s owner to elt_owner',
            case r.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
                           when 'f' then 'foreign table' else 'table' end,
            r.rel);
    end loop;
    for r in
        select p.oid::regprocedure as fn, p.prokind
        from pg_proc as p
        join pg_namespace as n on n.oid = p.pronamespace
        where n.nspname = any (schemas)
          and p.proowner <> 'elt_owner'::regrole
    loop
        execute format('alter %s %s owner to elt_owner',
            case r.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end, r.fn);
    end loop;
end
$$;
comment on procedure elt_dba.adopt_objects(text[]) is 'Makes elt_owner the owner of every object in staging, elt and the given project schemas; elt migrate calls it after applying migrations.';

-- What PUBLIC may no longer read or call, because it depends on other tenants' data or activity. Derived from
-- the server's own catalogs, so it follows the server version.
create function elt_dba.catalog_surfaces() returns table (kind text, object text)
    language sql stable
    set search_path = pg_catalog, pg_temp
begin atomic
    select 'column', 'pg_catalog.' || (select c.relname from pg_class as c where c.oid = a.attrelid) || '.' || a.attname
    from pg_attribute as a
    where (a.attrelid = 'pg_catalog.pg_class'::regclass
           and a.attname in ('relpages', 'reltuples', 'relallvisible', 'relfilenode', 'relfrozenxid', 'relminmxid', 'relpartbound'))
       -- other tenants' limits, expiry and time zones
       or (a.attrelid = 'pg_catalog.pg_roles'::regclass and a.attname in ('rolconfig', 'rolconnlimit', 'rolvaliduntil'))
       or (a.attrelid = 'pg_catalog.pg_user'::regclass and a.attname in ('useconfig', 'valuntil'))
    union all
    -- superuser-only catalogs that must stay so (statistics hold most common values of every column)
    select 'relation', c.oid::regclass::text
    from pg_class as c
    where c.relnamespace = 'pg_catalog'::regnamespace
      and c.relname in ('pg_statistic', 'pg_statistic_ext_data', 'pg_authid', 'pg_shadow', 'pg_user_mapping')
    union all
    -- every role's settings per database (what ALTER ROLE ... SET wrote: limits, time zones)
    select 'relation', 'pg_db_role_setting'
    union all
    select 'relation', c.oid::regclass::text
    from pg_class as c
    where c.relnamespace = 'pg_catalog'::regnamespace and c.relkind = 'v'
      -- pg_stats (and _ext) show only relations the caller may read, which for a tenant are views without
      -- statistics, but the planner's estimates for them follow the size of pg_statistic, which holds the
      -- statistics of every tenant's partitions.
      and (c.relname ~ '^pg_stat(io|s)?_' or c.relname in ('pg_stats', 'pg_locks', 'pg_prepared_xacts', 'pg_replication_slots'))
    union all
    select 'function', p.oid::regprocedure::text
    from pg_proc as p
    where p.pronamespace = 'pg_catalog'::regnamespace
      and (p.proname ~ '^pg_stat_'
           or p.proname in (
               -- sizes
               'pg_relation_size', 'pg_total_relation_size', 'pg_table_size', 'pg_indexes_size', 'pg_database_size',
               'pg_tablespace_size', 'pg_relation_filenode', 'pg_relation_filepath', 'pg_filenode_relation',
               'pg_tablespace_location',
               -- partition bounds name the customer of a partition; walking a partition tree locks every partition
               'pg_get_partition_constraintdef', 'pg_partition_tree', 'pg_partition_ancestors', 'pg_partition_root',
               -- multixact and snapshot counters, prepared transactions
               'pg_get_multixact_members', 'pg_prepared_xact', 'pg_export_snapshot',
               -- transaction ids, snapshots and WAL positions advance with everyone's writes
               'txid_current', 'txid_current_if_assigned', 'txid_current_snapshot', 'txid_status',
               'pg_current_xact_id', 'pg_current_xact_id_if_assigned', 'pg_current_snapshot', 'pg_xact_status',
               'pg_current_wal_lsn', 'pg_current_wal_insert_lsn', 'pg_current_wal_flush_lsn',
               'pg_last_wal_receive_lsn', 'pg_last_wal_replay_lsn', 'pg_last_xact_replay_timestamp',
               'pg_last_committed_xact', 'pg_xact_commit_timestamp', 'pg_xact_commit_timestamp_origin', 'mxid_age',
               'pg_control_checkpoint', 'pg_control_system', 'pg_control_init', 'pg_control_recovery',
               'pg_get_replication_slots',
               -- other sessions: their locks, their notifications; signalling a pid fails differently for a
               -- live backend of another role and for no backend, so it lists other sessions
               'pg_lock_status', 'pg_blocking_pids', 'pg_safe_snapshot_blocking_pids',
               'pg_isolation_test_session_is_blocked', 'pg_notify', 'pg_notification_queue_usage',
               'pg_cancel_backend', 'pg_terminate_backend',
               -- they keep an ACCESS SHARE lock on whatever view or rule they decompile, without a privilege
               -- check, until the transaction ends: one session could fill the server's lock table
               'pg_get_viewdef', 'pg_get_ruledef')
           or p.oid = 'pg_catalog.age(xid)'::regprocedure);
end;
comment on function elt_dba.catalog_surfaces() is 'Catalog columns, views and functions whose values depend on other tenants'' data or activity; elt_dba.harden_catalogs revokes them from PUBLIC and elt tenant check reports any PUBLIC still has.';
revoke execute on function elt_dba.catalog_surfaces() from public;
grant execute on function elt_dba.catalog_surfaces() to elt_owner;

-- What in schema elt would run with the rights of whoever writes elt's tables: a trigger, a rule, a policy, or
-- a default, constraint or index expression calling a function outside pg_catalog. elt creates none; a role with
-- elt_owner's rights (elt_runner) could, and then wait for a superuser's elt migrate to write the table. elt
-- migrate refuses to run as a superuser while this returns rows, and elt tenant check reports them.
create function elt_dba.traps() returns table (object text, problem text)
    language sql stable
    set search_path = pg_catalog, pg_temp
begin atomic
    select t.tgrelid::regclass::text, 'has trigger ' || quote_ident(t.tgname) || ', which runs with the rights of whoever writes the table'
    from pg_trigger as t
    join pg_class as c on c.oid = t.tgrelid
    where not t.tgisinternal and c.relnamespace = 'elt'::regnamespace
    union all
    select r.ev_class::regclass::text, 'has rule ' || quote_ident(r.rulename)
    from pg_rewrite as r
    join pg_class as c on c.oid = r.ev_class
    where c.relnamespace = 'elt'::regnamespace and c.relkind in ('r', 'p')
    union all
    select p.polrelid::regclass::text, 'has policy ' || quote_ident(p.polname)
    from pg_policy as p
    join pg_class as c on c.oid = p.polrelid
    where c.relnamespace = 'elt'::regnamespace
    union all
    -- what elt reads must be its tables: a view or a foreign table in their place runs code for the reader
    select c.oid::regclass::text, 'is a ' || case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                            when 'f' then 'foreign table' else 'relation of kind ' || c.relkind::text end ||
           ', where elt keeps only tables'
    from pg_class as c
    where c.relnamespace = 'elt'::regnamespace and c.relkind not in ('r', 'p', 'i', 'I', 'S', 't', 'c')
    union all
    select distinct rel.oid::regclass::text, 'a default, constraint or index of it calls ' || f.oid::regprocedure::text
    from pg_depend as d
    join pg_proc as f on d.refclassid = 'pg_proc'::regclass and f.oid = d.refobjid
    join pg_class as rel on rel.oid = case d.classid
            when 'pg_attrdef'::regclass then (select a.adrelid from pg_attrdef as a where a.oid = d.objid)
            when 'pg_constraint'::regclass then (select k.conrelid from pg_constraint as k where k.oid = d.objid)
            when 'pg_class'::regclass then (select i.indrelid from pg_index as i where i.indexrelid = d.objid)
        end
    where d.classid in ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_class'::regclass)
      and f.pronamespace <> 'pg_catalog'::regnamespace
      and rel.relnamespace = 'elt'::regnamespace
    union all
    -- a domain's check, a type's input function: whatever writes the column runs them
    select a.attrelid::regclass::text, 'column ' || quote_ident(a.attname) || ' has type ' || a.atttypid::regtype::text || ', which elt did not choose'
    from pg_attribute as a
    join pg_class as c on c.oid = a.attrelid
    join pg_type as t on t.oid = a.atttypid
    where c.relnamespace = 'elt'::regnamespace and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped
      and t.typnamespace <> 'pg_catalog'::regnamespace
    union all
    select d.refobjid::regoperator::text, 'an operator elt did not make is used by ' || pg_describe_object(d.classid, d.objid, d.objsubid)
    from pg_depend as d
    join pg_operator as o on d.refclassid = 'pg_operator'::regclass and o.oid = d.refobjid
    where o.oprnamespace <> 'pg_catalog'::regnamespace
      and d.classid in ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_class'::regclass)
      and (select coalesce(c.relnamespace, 0) from pg_class as c where c.oid = case d.classid
               when 'pg_attrdef'::regclass then (select a.adrelid from pg_attrdef as a where a.oid = d.objid)
               when 'pg_constraint'::regclass then (select k.conrelid from pg_constraint as k where k.oid = d.objid)
               else (select i.indrelid from pg_index as i where i.indexrelid = d.objid) end) = 'elt'::regnamespace;
end;
comment on function elt_dba.traps() is 'Triggers, rules, policies and non-catalog functions in defaults, constraints or indexes of elt''s own tables: what would run with a superuser''s rights when it writes them. Must return nothing.';
revoke execute on function elt_dba.traps() from public;
grant execute on function elt_dba.traps() to elt_owner;

-- Superuser only (catalog privileges). What PUBLIC loses goes to elt_owner, which elt needs (pg_class.reltuples,
-- pg_locks, pg_stat_activity), and to pg_read_all_stats, so monitoring keeps working.
create procedure elt_dba.harden_catalogs()
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
declare
    r record;
    visible text;
begin
    if not (select rolsuper from pg_roles where rolname = current_user) then
        raise notice 'elt_dba.harden_catalogs: only a superuser can change the privileges of the system catalogs; run elt migrate (or call elt_dba.harden_catalogs()) as one';
        return;
    end if;
    for r in select * from elt_dba.catalog_surfaces() loop
        case r.kind
        when 'relation' then
            execute format('revoke select on %s from public', r.object);
            if r.object not in ('pg_statistic', 'pg_statistic_ext_data', 'pg_authid', 'pg_shadow', 'pg_user_mapping') then
                execute format('grant select on %s to elt_owner, pg_read_all_stats', r.object);
            end if;
        when 'function' then
            execute format('revoke execute on function %s from public', r.object);
            execute format('grant execute on function %s to elt_owner, pg_read_all_stats', r.object);
        else
            null; -- columns: below, one relation at a time
        end case;
    end loop;
    for r in
        select distinct split_part(s.object, '.', 1) || '.' || split_part(s.object, '.', 2) as rel
        from elt_dba.catalog_surfaces() as s
        where s.kind = 'column'
    loop
        select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into visible
        from pg_attribute as a
        where a.attrelid = r.rel::regclass and a.attnum > 0 and not a.attisdropped
          and r.rel || '.' || a.attname not in (select s.object from elt_dba.catalog_surfaces() as s where s.kind = 'column');
        execute format('revoke select on %s from public', r.rel);
        execute format('grant select (%s) on %s to public', visible, r.rel);
        execute format('grant select on %s to elt_owner, pg_read_all_stats', r.rel);
    end loop;
end
$$;
comment on procedure elt_dba.harden_catalogs() is 'Revokes elt_dba.catalog_surfaces() from PUBLIC (granted to elt_owner and pg_read_all_stats instead); run by a superuser.';

-- Run by the database owner or a superuser; what the caller may not change is reported by elt tenant check,
-- not silently skipped. A database created from a template does not inherit database privileges: call it in
-- every such database.
create procedure elt_dba.harden_database()
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
declare
    r record;
    super boolean := (select rolsuper from pg_roles where rolname = current_user);
    dbowner boolean := pg_has_role((select datdba from pg_database where datname = current_database()), 'member');
begin
    if super or dbowner then
        -- Tenant logins get CONNECT one by one (elt tenant add), so a login of another elt database of this
        -- cluster cannot connect here; elt_owner passes it on.
        execute format('revoke temporary, connect on database %I from public', current_database());
        execute format('grant connect, temporary, create on database %I to elt_owner with grant option', current_database());
        execute format('grant connect on database %I to pg_monitor', current_database());
        revoke create on schema public from public;
    else
        raise notice 'elt_dba.harden_database: only the owner of database % can revoke CONNECT and TEMPORARY from PUBLIC', current_database();
    end if;
    if super then
        for r in
            select p.oid::regprocedure as fn
            from pg_proc as p
            where p.pronamespace = 'pg_catalog'::regnamespace
              and p.proname ~ '^pg_(try_)?advisory(_xact)?_lock(_shared)?$'
        loop
            execute format('revoke execute on function %s from public', r.fn);
            execute format('grant execute on function %s to elt_owner', r.fn);
        end loop;
        for r in
            select p.oid::regprocedure as fn
            from pg_proc as p
            where p.pronamespace = 'pg_catalog'::regnamespace
              and p.proname in ('lo_creat', 'lo_create', 'lo_from_bytea')
        loop
            execute format('revoke execute on function %s from public', r.fn);
        end loop;
        call elt_dba.harden_catalogs();
    else
        raise notice 'elt_dba.harden_database: only a superuser can revoke advisory locks, large objects and catalog statistics from PUBLIC';
    end if;
end
$$;
comment on procedure elt_dba.harden_database() is 'Revokes from PUBLIC what would help a tenant (connect, temporary objects, advisory locks, large objects, catalog statistics); run by the database owner or a superuser.';

-- The shape of elt's own objects (schema elt but what elt_runner writes or drops there): every
-- relation with its kind, owner and options, columns with types and defaults, constraints, indexes, triggers,
-- rules, policies, inheritance parents and children wherever they are, and the functions, types and operators
-- of the schema. elt_runner has elt_owner's rights on these tables and could equip one with code (a CHECK
-- constraint calling query_to_xml, a child table with a trigger, a replaced table); elt_dba.traps() names the
-- known kinds, this catches any change. elt migrate records it (elt_dba.record_shape) after elt's track as the
-- DBA or a superuser, and refuses to run so while it differs from the record (elt_dba.shape_changes).
create function elt_dba.shape() returns table (object text, item text)
    language sql stable
    set search_path = pg_catalog, pg_temp
begin atomic
    with rel as (
        select c.oid, c.oid::regclass::text as name
        from pg_class as c
        -- but what elt_runner writes or drops: the project's version table, the old tenant map it takes over
        where c.relnamespace = 'elt'::regnamespace and c.relkind <> 't'
          and c.relname not in ('project_version', 'tenants_legacy')
          and not (c.relkind in ('i', 'I') and exists (select from pg_index as x where x.indexrelid = c.oid
                                                      and x.indrelid in (select to_regclass('elt.project_version')
                                                                         union all select to_regclass('elt.tenants_legacy'))))
    )
    -- (not the owner, which a superuser's migrate takes over while it runs, nor the storage options, which a
    -- DBA may tune; elt tenant check verifies the owners)
    select r.name, 'relation kind ' || c.relkind::text ||
           ', row security ' || c.relrowsecurity::text || '/' || c.relforcerowsecurity::text
    from rel as r join pg_class as c on c.oid = r.oid
    union all
    select r.name, 'column ' || quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) ||
           case when a.attnotnull then ' not null' else '' end ||
           coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') ||
           case when a.attidentity <> '' then ' identity ' || a.attidentity::text else '' end ||
           case when a.attgenerated <> '' then ' generated' else '' end
    from rel as r
    join pg_attribute as a on a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped
    left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
    union all
    select r.name, 'constraint ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid)
    from rel as r join pg_constraint as k on k.conrelid = r.oid
    union all
    select r.name, 'index ' || pg_get_indexdef(x.indexrelid)
    from rel as r join pg_index as x on x.indrelid = r.oid
    union all
    -- internal triggers are foreign keys' (staging tables reference elt.batches); they check as the owner of
    -- the referencing table
    select r.name, 'trigger ' || pg_get_triggerdef(t.oid)
    from rel as r join pg_trigger as t on t.tgrelid = r.oid and not t.tgisinternal
    union all
    select r.name, 'rule ' || quote_ident(w.rulename) || ' on ' || w.ev_type::text
    from rel as r join pg_rewrite as w on w.ev_class = r.oid
    union all
    select r.name, 'policy ' || quote_ident(p.polname) || ' ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' ' ||
           coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
    from rel as r join pg_policy as p on p.polrelid = r.oid
    union all
    select r.name, 'inherited by ' || i.inhrelid::regclass::text
    from rel as r join pg_inherits as i on i.inhparent = r.oid
    union all
    select r.name, 'inherits ' || i.inhparent::regclass::text
    from rel as r join pg_inherits as i on i.inhrelid = r.oid
    union all
    select 'function ' || p.oid::regprocedure::text,
           'definition ' || md5(case when p.prokind in ('f', 'p') then pg_get_functiondef(p.oid) else p.prosrc end)
    from pg_proc as p where p.pronamespace = 'elt'::regnamespace
    union all
    select 'type ' || t.oid::regtype::text, 'kind ' || t.typtype::text
    from pg_type as t where t.typnamespace = 'elt'::regnamespace and t.typrelid = 0 and t.typelem = 0
    union all
    select 'operator ' || o.oid::regoperator::text, 'function ' || o.oprcode::regproc::text
    from pg_operator as o where o.oprnamespace = 'elt'::regnamespace;
end;
comment on function elt_dba.shape() is 'The shape of elt''s own objects in schema elt (relations, columns, constraints, indexes, triggers, rules, policies, inheritance; functions, types, operators).';

-- Makes the caller the owner of elt's own objects (relations and functions of schema elt), so that nothing
-- can change them while a superuser's elt migrate checks and migrates them; adopt_objects gives them back.
create procedure elt_dba.take_over()
    language plpgsql
    set search_path = pg_catalog, pg_temp
as $$
declare
    r record;
begin
    for r in
        select c.oid::regclass as rel, c.relkind
        from pg_class as c
        where c.relnamespace = 'elt'::regnamespace
          and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
          and c.relowner <> (select oid from pg_roles where rolname = current_user)
          and not (c.relkind = 'S' and exists (select from pg_depend as d
                                               where d.classid = 'pg_class'::regclass and d.objid = c.oid
                                                 and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
    loop
        execute format('alter %s %s owner to %I',
            case r.relkind when 'v' then 'view' when 'm' then 'materialized view' when 'S' then 'sequence'
                           when 'f' then 'foreign table' else 'table' end,
            r.rel, current_user);
    end loop;
    for r in
        select p.oid::regprocedure as fn, p.prokind
        from pg_proc as p
        where p.pronamespace = 'elt'::regnamespace and p.proowner <> (select oid from pg_roles where rolname = current_user)
    loop
        execute format('alter %s %s owner to %I',
            case r.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end, r.fn, current_user);
    end loop;
end
$$;
comment on procedure elt_dba.take_over() is 'Makes the caller (a superuser''s elt migrate) the owner of elt''s own objects while it checks and migrates them; elt_dba.adopt_objects gives them back.';

create table elt_dba.recorded_shape (
    object text not null,
    item   text not null,
    primary key (object, item)
);
comment on table elt_dba.recorded_shape is 'elt_dba.shape() as the last elt migrate by the DBA or a superuser left it.';

create procedure elt_dba.record_shape()
    language sql
    set search_path = pg_catalog, pg_temp
begin atomic
    delete from elt_dba.recorded_shape;
    insert into elt_dba.recorded_shape (object, item) select distinct s.object, s.item from elt_dba.shape() as s;
end;
comment on procedure elt_dba.record_shape() is 'Records elt_dba.shape(); run by elt migrate as the DBA or a superuser, after elt''s track.';

create function elt_dba.shape_changes() returns table (object text, change text)
    language sql stable
    set search_path = pg_catalog, pg_temp
begin atomic
    select x.object, x.change from (
        (select s.object, 'has ' || s.item as change from elt_dba.shape() as s
         except
         select r.object, 'has ' || r.item from elt_dba.recorded_shape as r)
        union all
        (select r.object, 'no longer has ' || r.item from elt_dba.recorded_shape as r
         except
         select s.object, 'no longer has ' || s.item from elt_dba.shape() as s)
    ) as x
    where exists (select from elt_dba.recorded_shape);
end;
comment on function elt_dba.shape_changes() is 'What differs in elt''s own objects from what the last elt migrate by the DBA or a superuser recorded. Must return nothing.';

revoke all on table elt_dba.recorded_shape from public;
grant select on table elt_dba.recorded_shape to elt_owner;
revoke execute on function elt_dba.shape(), elt_dba.shape_changes() from public;
grant execute on function elt_dba.shape(), elt_dba.shape_changes() to elt_owner;
revoke execute on procedure elt_dba.record_shape(), elt_dba.take_over() from public;

revoke execute on procedure elt_dba.adopt_objects(text[]), elt_dba.harden_database(), elt_dba.harden_catalogs() from public;
-- elt_runner gives what it creates (later migrations, staging tables) to elt_owner itself.
grant execute on procedure elt_dba.adopt_objects(text[]) to elt_owner;

call elt_dba.harden_database();

---- create above / drop below ----

drop schema elt_dba cascade;
