-- Citus coordinator only, as the superuser, after elt's own migrations, with Citus's DDL propagation on (so
-- every node gets the same attributes and privileges).
--
-- On PostgreSQL elt_owner and elt_tenant_admin never log in. On Citus they must: the workers run a tenant's
-- partition DDL (elt tenant add, as elt_owner), a materialized view's refresh (as its owner) and the creation
-- of tenant logins (elt_admin.create_login, as elt_tenant_admin) over connections as those roles. Neither has
-- a password, so neither can log in where pg_hba.conf asks for one: allow passwordless connections (trust,
-- certificates) only from the cluster's own nodes (docs/scale.md).
alter role elt_owner login;
alter role elt_tenant_admin login;

-- The database privileges of elt_dba.harden_database (migration 004), on every node: elt's roles connect to
-- the workers' database too, PUBLIC does not.
call elt_dba.harden_database();

-- elt_tenant_admin runs the creation of tenant logins on the workers (above), so it connects there.
do $$
begin
    execute pg_catalog.format('grant connect on database %I to elt_tenant_admin', pg_catalog.current_database());
end
$$;

-- ... and sets the tenant logins' temp_file_limit there (a superuser setting; 003_roles.sql grants it on the
-- coordinator). Citus does not propagate privileges on parameters: each worker is told directly.
do $$
declare
    r record;
begin
    for r in select * from pg_catalog.run_command_on_workers('grant set on parameter temp_file_limit to elt_tenant_admin')
             where not success loop
        raise exception 'worker %:%: %', r.nodename, r.nodeport, r.result;
    end loop;
end
$$;

-- Citus's internal functions are for the nodes' own connections: PUBLIC may not use their schema on the
-- coordinator (the workers keep Citus's defaults, which their connections need). elt_owner may, so that elt
-- tenant check can name what is there.
do $$
begin
    perform pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
    revoke usage on schema citus_internal from public;
    grant usage on schema citus, citus_internal to elt_owner;
end
$$;
