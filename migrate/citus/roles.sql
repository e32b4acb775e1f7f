-- Citus coordinator only (elt migrate runs this when the database has the citus extension), as the superuser,
-- before elt's own migrations, with Citus's DDL propagation on.
--
-- Citus runs a statement's work on the worker nodes over connections it opens as the role that runs the
-- statement, so a role must exist on every node, and a role that runs DDL on distributed objects must be able
-- to log in there. elt's own migrations run with propagation off (elt's machinery, its run log, the tenant map
-- and the elt_admin functions, lives on the coordinator only), so elt's roles are created here first, with
-- propagation on: Citus creates them on every node and keeps them alike. Their attributes are then set by the
-- elt track's 003_roles.sql, and after_elt.sql after it.
do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_owner') then
        create role elt_owner;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_tenant') then
        create role elt_tenant;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_runner') then
        create role elt_runner login;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_tenant_admin') then
        create role elt_tenant_admin createrole;
    end if;
    if not pg_catalog.pg_has_role('elt_runner', 'elt_owner', 'member') then
        grant elt_owner to elt_runner;
    end if;
end
$$;
