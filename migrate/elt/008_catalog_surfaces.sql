-- More catalog surfaces (what PUBLIC may not read or call, elt_dba.catalog_surfaces of migration 004):
--   - pg_attribute.attoptions: PostgreSQL 15.20 records in every new column's options the WAL position of its
--     creation ("pg_attver=..."), so a tenant would read, on its own views' columns, how much every tenant had
--     written before (the same as pg_current_wal_lsn, which 004 revokes);
--   - on Citus: the query trees of views (pg_rewrite.ev_action: a tenant's view there names its customer,
--     tenant/layer.go); on the coordinator every relation and function the citus extension owns (shard sizes,
--     statistics and activity of every tenant's shards, metadata, shard counters and administration) except
--     what a tenant's own query runs (read_intermediate_result, relation_is_a_known_shard); on a worker those
--     of them that depend on other tenants' data or activity.
-- elt_dba.harden_catalogs revokes them from PUBLIC and grants them to elt_owner and pg_read_all_stats, and elt
-- tenant check reports any PUBLIC still has.

set local lock_timeout = '10s';
set local statement_timeout = '15min';

create or replace function elt_dba.catalog_surfaces() returns table (kind text, object text)
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
       -- per-column options: n_distinct overrides, and from PostgreSQL 15.20 on "pg_attver", the WAL position
       -- at which the column was created or changed, which advances with every tenant's writes
       or (a.attrelid = 'pg_catalog.pg_attribute'::regclass and a.attname = 'attoptions')
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
           or p.oid = 'pg_catalog.age(xid)'::regprocedure)
    union all
    -- Citus (a coordinator): a tenant's view there names its customer (tenant/layer.go), and pg_rewrite holds
    -- every view's query tree, readable by anyone (pg_get_viewdef, which prints it, is revoked above).
    select 'column', 'pg_catalog.pg_rewrite.ev_action'
    where exists (select from pg_extension where extname = 'citus')
    union all
    -- Citus, on the coordinator (where elt's own tables are): all of what the extension owns, its metadata,
    -- statistics, activity and administration (the sizes of every tenant's shards in citus_shards and
    -- citus_tables, queries and tenants in citus_stat_statements and citus_stat_tenants, other sessions in
    -- citus_stat_activity and citus_locks, shard counters in its sequences, and the functions behind them).
    -- On a worker (where migrate/citus/after_elt.sql hardens the database too, because a tenant's query runs
    -- there with whatever functions it calls), only those of them that depend on other tenants' data or
    -- activity: Citus's own connections there call the rest as the role that runs a statement.
    select 'relation', c.oid::regclass::text
    from pg_depend as d
    join pg_class as c on c.oid = d.objid
    where d.classid = 'pg_class'::regclass and d.deptype = 'e'
      and d.refclassid = 'pg_extension'::regclass
      and d.refobjid = (select e.oid from pg_extension as e where e.extname = 'citus')
      and c.relkind in ('r', 'v', 'm', 'p', 'S')
      and c.relname <> 'pg_dist_authinfo' -- superuser only already
      and (to_regclass('elt.tenants') is not null
           or c.relkind = 'S'
           or c.relname ~ '^citus_(shards|tables|stat|dist_stat|lock|stats|shard_indexes)'
           or c.relname in ('pg_dist_placement', 'pg_dist_shard_placement', 'pg_dist_transaction', 'pg_dist_cleanup'))
    union all
    select 'function', p.oid::regprocedure::text
    from pg_depend as d
    join pg_proc as p on p.oid = d.objid
    where d.classid = 'pg_proc'::regclass and d.deptype = 'e'
      and d.refclassid = 'pg_extension'::regclass
      and d.refobjid = (select e.oid from pg_extension as e where e.extname = 'citus')
      and p.prokind = 'f' -- its procedures administer (they need a superuser or the table's owner)
      -- what Citus runs for a tenant's own query on the coordinator: its intermediate results, and the filter
      -- it adds to every query of pg_class to hide shards (psql's \d, SQLAlchemy's inspector)
      and p.proname not in ('read_intermediate_result', 'read_intermediate_results', 'relation_is_a_known_shard')
      and (to_regclass('elt.tenants') is not null
           or p.proname ~ '(size|^citus_stat|stat_activity|^citus_lock|^citus_stats|clock|blocked_processes|active_transactions|connection_stats|rebalance_progress|^citus_backend_gpid|^citus_nodes|^citus_shards)');
end;
comment on function elt_dba.catalog_surfaces() is 'Catalog columns, views and functions whose values depend on other tenants'' data or activity; elt_dba.harden_catalogs revokes them from PUBLIC and elt tenant check reports any PUBLIC still has.';

call elt_dba.harden_database();

---- create above / drop below ----

create or replace function elt_dba.catalog_surfaces() returns table (kind text, object text)
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
