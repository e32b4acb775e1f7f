-- Roles and the tenant map.
--
-- Roles belong to the cluster, so each is created only when missing (several databases of one cluster share
-- them), and its attributes are set again every time: a role left by an older elt keeps no power it should
-- not have.
--
--   elt_owner         no login; owns every object of staging, elt and the project's schemas. Not superuser,
--                     not bypassrls, not createrole.
--   elt_runner        the login elt runs as (migrate after the first time, extract, refresh, tenant): member of
--                     elt_owner and of pg_read_all_stats (to see tenant sessions). Not createrole: on
--                     PostgreSQL 15 a createrole role may grant itself any predefined role
--                     (pg_execute_server_program, pg_read_server_files), so the credential a nightly job holds
--                     must not have it.
--   elt_tenant        no login, no privileges: the group every tenant login belongs to (a marker for
--                     pg_hba.conf, elt tenant guard and elt tenant check).
--   elt_tenant_admin  no login, no members, never a session: createrole, member of pg_signal_backend, owner of
--                     the functions of schema elt_admin, the only code that ever runs with its rights. Those
--                     functions create, configure and drop tenant logins with fixed attributes, and signal
--                     tenant sessions; elt_runner may execute them and nothing else of this role's.
--   tenant_<16 hex>   one login per customer, created through elt_admin.create_login.
--
-- The first elt migrate must run as a superuser (or a DBA with createrole and the right to grant predefined
-- roles and parameters): this migration creates roles.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

-- Two databases of one cluster migrated at once would change the same roles concurrently ("tuple concurrently
-- updated"): a superuser serializes this migration across the cluster by locking pg_authid (a shared catalog,
-- so its lock is the cluster's) against other role changes until it commits.
do $$
begin
    if (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
        lock table pg_catalog.pg_authid in share row exclusive mode;
    end if;
end
$$;

do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_owner') then
        create role elt_owner;
    end if;
    alter role elt_owner nologin nosuperuser nobypassrls nocreatedb nocreaterole noreplication;
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_tenant') then
        create role elt_tenant;
    end if;
    alter role elt_tenant nologin nosuperuser nobypassrls nocreatedb nocreaterole noreplication;
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_runner') then
        -- No password: a DBA sets one (\password elt_runner in psql) or the local cluster's Unix socket
        -- (trust, reachable only by its OS owner) is used.
        create role elt_runner login;
    end if;
    alter role elt_runner nosuperuser nobypassrls nocreatedb nocreaterole noreplication inherit;
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_tenant_admin') then
        create role elt_tenant_admin;
    end if;
    alter role elt_tenant_admin nologin nosuperuser nobypassrls nocreatedb createrole noreplication inherit;

    if not pg_catalog.pg_has_role('elt_runner', 'elt_owner', 'member') then
        grant elt_owner to elt_runner;
    end if;
    if not pg_catalog.pg_has_role('elt_runner', 'pg_read_all_stats', 'member') then
        grant pg_read_all_stats to elt_runner;
    end if;
    -- elt before this layout gave elt_runner the power to signal any session; the guard and tenant remove
    -- now go through elt_admin.signal_tenant.
    if exists (select from pg_catalog.pg_auth_members
               where roleid = 'pg_signal_backend'::regrole and member = 'elt_runner'::regrole) then
        revoke pg_signal_backend from elt_runner;
    end if;
    if not pg_catalog.pg_has_role('elt_tenant_admin', 'pg_signal_backend', 'member') then
        grant pg_signal_backend to elt_tenant_admin;
    end if;
    if not pg_catalog.pg_has_role('elt_tenant_admin', 'pg_read_all_stats', 'member') then
        grant pg_read_all_stats to elt_tenant_admin;
    end if;
    -- temp_file_limit is a superuser setting: tenants cannot lift it. elt_tenant_admin may set it on tenant
    -- logins (ALTER ROLE ... SET needs the SET privilege on the parameter since PostgreSQL 15).
    grant set on parameter temp_file_limit to elt_tenant_admin;
    -- PostgreSQL 16 and later: a createrole role manages only roles it has ADMIN OPTION on (it gets it on the
    -- roles it creates), and needs it on elt_tenant to create logins in that group.
    if current_setting('server_version_num')::int >= 160000 then
        execute 'grant elt_tenant to elt_tenant_admin with admin option, inherit false, set false';
    end if;
end
$$;

-- The map: one row per customer that has (or had) a tenant login. Private: no tenant has usage on schema
-- elt. A customer keeps its row, and so its login name, schema name and partitions, when its login is
-- removed; a purge keeps it too, to refuse the customer's data from then on.
create table elt.tenants (
    tenant_key                  text        not null,
    role_name                   text        not null,
    state                       text        not null default 'active',
    created_at                  timestamptz not null default now(),
    password_set_at             timestamptz not null default now(),
    removed_at                  timestamptz,
    -- squawk-ignore prefer-bigint-over-int
    connection_limit            integer     not null, -- a role's connection limit is an int4
    statement_timeout           interval    not null,
    idle_in_transaction_timeout interval    not null,
    transaction_timeout         interval    not null,
    temp_file_limit_kb          bigint      not null,
    time_zone                   text        not null default 'UTC',
    layer_sha256                text,
    constraint tenants_pkey primary key (tenant_key),
    constraint tenants_role_name_key unique (role_name),
    constraint tenants_role_name_check check (role_name ~ '^tenant_[0-9a-f]{16}$'),
    constraint tenants_state_check check (state in ('active', 'removed', 'purged'))
);
comment on table elt.tenants is 'Customers with a tenant login (state active), or that had one (removed, purged). Private to elt.';
comment on column elt.tenants.tenant_key is 'The customer''s value of the project''s tenant key (as text).';
comment on column elt.tenants.role_name is 'Login role and schema of the customer: opaque and random, nothing in it relates to the customer.';
comment on column elt.tenants.state is 'active: the login exists; removed: the login was dropped, the data kept; purged: the data was deleted and is refused from then on.';
comment on column elt.tenants.transaction_timeout is 'Longest a transaction (and its snapshot) of the login may live; enforced by elt tenant guard.';
comment on column elt.tenants.layer_sha256 is 'Hash of the declarations the customer''s schema, views and partitions were last built from.';

create table elt.purges (
    purge_id    bigint generated always as identity primary key,
    tenant_key  text        not null,
    purged_at   timestamptz not null default now(),
    purged_by   text        not null default session_user,
    rows        jsonb       not null,
    refused     bigint      not null default 0,
    through_batch bigint    not null,
    constraint purges_tenant_key_fkey foreign key (tenant_key) references elt.tenants (tenant_key)
);
comment on table elt.purges is 'Each elt tenant remove --purge: when, by whom, and how many rows of each table were deleted.';
comment on column elt.purges.rows is 'Rows deleted (or dropped with a partition) per table, e.g. {"core.events": 19177}.';
comment on column elt.purges.refused is 'Rows of the customer that arrived after the purge and that elt refresh deleted.';
comment on column elt.purges.through_batch is 'Highest batch whose staging records elt refresh has searched for the customer''s (and deleted).';

-- elt_admin: the functions that act with the rights of elt_tenant_admin. Each validates its arguments and does
-- one fixed thing; names and values reach SQL only through format('%I', '%L'). Their search_path is pg_catalog
-- then pg_temp, last, so that no temporary object (a domain named text, say) can stand in for a built-in one.
create schema elt_admin authorization elt_tenant_admin;
comment on schema elt_admin is 'Functions that create, configure and drop tenant logins with fixed attributes, and signal tenant sessions. Owned by elt_tenant_admin; executable by elt_runner.';
revoke all on schema elt_admin from public;

set local role elt_tenant_admin;

create function elt_admin.check_name(p_role text) returns void
    language plpgsql immutable
    set search_path = pg_catalog, pg_temp
as $$
begin
    if p_role is null or p_role !~ '^tenant_[0-9a-f]{16}$' then
        raise exception 'elt_admin: % is not a tenant login name (tenant_ and 16 hex digits)', coalesce(quote_literal(p_role), 'null')
            using errcode = '22023';
    end if;
end
$$;

-- A tenant login: the name pattern, a member of elt_tenant, and nothing a tenant login may not be.
create function elt_admin.check_login(p_role text) returns boolean
    language plpgsql stable
    set search_path = pg_catalog, pg_temp
as $$
declare
    r pg_catalog.pg_roles;
begin
    perform elt_admin.check_name(p_role);
    select * into r from pg_catalog.pg_roles where rolname = p_role;
    if not found then
        return false;
    end if;
    if r.rolsuper or r.rolcreaterole or r.rolcreatedb or r.rolreplication or r.rolbypassrls
       or not pg_catalog.pg_has_role(r.oid, 'elt_tenant', 'member') then
        raise exception 'elt_admin: role % is not a plain tenant login (member of elt_tenant without privileged attributes)', p_role
            using errcode = '42501';
    end if;
    return true;
end
$$;

create function elt_admin.check_verifier(p_verifier text) returns void
    language plpgsql immutable
    set search_path = pg_catalog, pg_temp
as $$
begin
    if p_verifier is null or p_verifier !~ '^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$' then
        raise exception 'elt_admin: the password must be given as a SCRAM-SHA-256 verifier' using errcode = '22023';
    end if;
end
$$;

create function elt_admin.create_login(p_role text, p_verifier text, p_valid_until timestamptz) returns void
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    perform elt_admin.check_name(p_role);
    perform elt_admin.check_verifier(p_verifier);
    -- Connection limit 0 until configure_login gives the login its limits and session defaults.
    execute format('create role %I login inherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls '
                   'connection limit 0 password %L valid until %L in role elt_tenant',
                   p_role, p_verifier, coalesce(p_valid_until, 'infinity'));
end
$$;
comment on function elt_admin.create_login(text, text, timestamptz) is 'Creates tenant login p_role (tenant_ and 16 hex digits) in group elt_tenant with fixed attributes and a SCRAM verifier; it cannot log in until configure_login.';

create function elt_admin.configure_login(p_role text, p_connection_limit integer, p_statement_timeout interval,
                                          p_idle_in_transaction_timeout interval, p_temp_file_limit_kb bigint,
                                          p_time_zone text) returns void
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    if not elt_admin.check_login(p_role) then
        raise exception 'elt_admin: no tenant login %', p_role using errcode = '42704';
    end if;
    if p_connection_limit is null or p_connection_limit not between 1 and 1000 then
        raise exception 'elt_admin: connection limit must be between 1 and 1000' using errcode = '22023';
    end if;
    if p_statement_timeout is null or p_statement_timeout < interval '1 second'
       or p_idle_in_transaction_timeout is null or p_idle_in_transaction_timeout < interval '1 second' then
        raise exception 'elt_admin: timeouts must be at least 1 second' using errcode = '22023';
    end if;
    if p_temp_file_limit_kb is null or p_temp_file_limit_kb < 1024 then
        raise exception 'elt_admin: temp_file_limit must be at least 1024 kB' using errcode = '22023';
    end if;
    if p_time_zone is null or not exists (select from pg_catalog.pg_timezone_names where name = p_time_zone) then
        raise exception 'elt_admin: unknown time zone %', coalesce(quote_literal(p_time_zone), 'null') using errcode = '22023';
    end if;
    execute format('alter role %I connection limit %s', p_role, p_connection_limit);
    execute format('alter role %I set statement_timeout = %L', p_role, (extract(epoch from p_statement_timeout) * 1000)::bigint || 'ms');
    execute format('alter role %I set idle_in_transaction_session_timeout = %L', p_role,
                   (extract(epoch from p_idle_in_transaction_timeout) * 1000)::bigint || 'ms');
    execute format('alter role %I set temp_file_limit = %L', p_role, p_temp_file_limit_kb || 'kB');
    execute format('alter role %I set timezone = %L', p_role, p_time_zone);
    -- The login's own schema (named like the login) is the only one on its path.
    execute format('alter role %I set search_path = %I', p_role, p_role);
    execute format('alter role %I set default_transaction_read_only = on', p_role);
end
$$;
comment on function elt_admin.configure_login(text, integer, interval, interval, bigint, text) is 'Sets the connection limit and session defaults of tenant login p_role (temp_file_limit cannot be lifted by the tenant).';

create function elt_admin.set_password(p_role text, p_verifier text) returns void
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    if not elt_admin.check_login(p_role) then
        raise exception 'elt_admin: no tenant login %', p_role using errcode = '42704';
    end if;
    perform elt_admin.check_verifier(p_verifier);
    execute format('alter role %I password %L', p_role, p_verifier);
end
$$;
comment on function elt_admin.set_password(text, text) is 'Sets the SCRAM verifier of tenant login p_role.';

create function elt_admin.lock_login(p_role text) returns void
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    if elt_admin.check_login(p_role) then
        execute format('alter role %I nologin', p_role);
    end if;
end
$$;
comment on function elt_admin.lock_login(text) is 'Forbids tenant login p_role to log in (elt tenant remove, first step).';

-- Drops tenant login p_role whatever the tenant did to itself: it ends its sessions, drops what it owns in
-- this database (default privileges it set, for instance) and revokes what was granted to it, then drops it.
-- False when there is no such role.
create function elt_admin.drop_login(p_role text) returns boolean
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
as $$
begin
    if not elt_admin.check_login(p_role) then
        return false;
    end if;
    execute format('alter role %I nologin', p_role);
    perform pg_catalog.pg_terminate_backend(a.pid, 5000)
    from pg_catalog.pg_stat_activity as a
    where a.usename = p_role;
    -- DROP OWNED needs the privileges of the role: a createrole role may take them.
    execute format('grant %I to %I', p_role, current_user);
    execute format('drop owned by %I', p_role);
    execute format('drop role %I', p_role);
    return true;
end
$$;
comment on function elt_admin.drop_login(text) is 'Ends the sessions of tenant login p_role, drops what it owns here and revokes its privileges, and drops it.';

-- Cancels the statement of (or terminates) a session of a tenant login; false for any other session.
create function elt_admin.signal_tenant(p_pid integer, p_terminate boolean) returns boolean
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    login text;
begin
    select a.usename into login from pg_catalog.pg_stat_activity as a where a.pid = p_pid;
    if login is null or login !~ '^tenant_[0-9a-f]{16}$' or not pg_catalog.pg_has_role(login, 'elt_tenant', 'member') then
        return false;
    end if;
    if p_terminate then
        return pg_catalog.pg_terminate_backend(p_pid);
    end if;
    return pg_catalog.pg_cancel_backend(p_pid);
end
$$;
comment on function elt_admin.signal_tenant(integer, boolean) is 'Cancels the statement of (p_terminate false) or ends (true) the session p_pid if it belongs to a tenant login.';

-- The sessions of tenant logins that hold or await a lock on any of p_relations (with p_partitions, or on one
-- of their partitions) in this database, ended: what elt does before DDL that a tenant's open transaction would
-- otherwise hold up (a tenant may lock any relation it can name, its own views or, through catalog functions
-- that lock what they inspect, another's). Returns how many it ended.
create function elt_admin.end_lock_holders(p_relations regclass[], p_partitions boolean) returns bigint
    language sql volatile security definer
    set search_path = pg_catalog, pg_temp
begin atomic
    select count(*) filter (where pg_terminate_backend(t.pid))
    from (
        select distinct l.pid
        from pg_locks as l
        join pg_stat_activity as a on a.pid = l.pid
        where l.locktype = 'relation'
          and l.database = (select oid from pg_database where datname = current_database())
          and l.relation in (select i.inhrelid from pg_inherits as i where p_partitions and i.inhparent = any (p_relations)
                             union all
                             select unnest(p_relations))
          and a.usename ~ '^tenant_[0-9a-f]{16}$'
          and pg_has_role(a.usesysid, 'elt_tenant', 'member')
          and l.pid <> pg_backend_pid()
    ) as t;
end;
comment on function elt_admin.end_lock_holders(regclass[], boolean) is 'Ends the tenant sessions that hold or await a lock on the given relations (and their partitions), before elt''s own DDL on them.';

reset role;

revoke execute on all functions in schema elt_admin from public;
grant usage on schema elt_admin to elt_runner, elt_owner;
grant execute on function
    elt_admin.create_login(text, text, timestamptz),
    elt_admin.configure_login(text, integer, interval, interval, bigint, text),
    elt_admin.set_password(text, text),
    elt_admin.lock_login(text),
    elt_admin.drop_login(text),
    elt_admin.signal_tenant(integer, boolean),
    elt_admin.end_lock_holders(regclass[], boolean)
    to elt_runner, elt_owner;

---- create above / drop below ----

drop schema elt_admin cascade;
drop table elt.purges;
drop table elt.tenants;
