-- Citus coordinator only, as the superuser, after after_elt.sql has committed (its changes to the database's
-- privileges hold locks on the workers until then, which the connections below would wait for).
--
-- The workers are hardened like the coordinator: Citus runs a tenant's query there, with whatever functions it
-- calls, as the tenant's login. elt_dba's hardening routines (migrations 004 and 008) are copied to each worker
-- as the coordinator has them, and run there (elt_dba.catalog_surfaces() knows a worker: elt's own tables are
-- not there).
do $$
declare
    r record;
    stmt text;
    stmts text[] := array['create schema if not exists elt_dba', 'revoke all on schema elt_dba from public']
        || array(select pg_catalog.pg_get_functiondef(p.oid)
                 from pg_catalog.pg_proc as p
                 where p.oid in ('elt_dba.catalog_surfaces()'::regprocedure, 'elt_dba.harden_catalogs()'::regprocedure,
                                 'elt_dba.harden_database()'::regprocedure)
                 order by p.proname)
        || array['revoke all on all routines in schema elt_dba from public', 'call elt_dba.harden_database()'];
begin
    foreach stmt in array stmts loop
        -- (A worker refuses DDL it would have to propagate: it is told not to.)
        for r in select * from pg_catalog.run_command_on_workers('begin; set local citus.enable_ddl_propagation = off; ' || stmt || '; commit')
                 where not success loop
            raise exception 'worker %:%: %', r.nodename, r.nodeport, r.result;
        end loop;
    end loop;
end
$$;
