-- Row-level security on the core tables that analytics exposes (customers, users, events), enabled and
-- forced so it holds for their owner too.
--
-- The analytics views already keep only the rows of the customer mapped to session_user; these policies are a
-- second, independent wall under them. If a tenant ever reaches a core table (a grant by mistake, a new view
-- written without its filter), a tenant login still reads only its own customer's rows. The identity is the
-- session's login (session_user) through the private map elt.tenants, which no SET ROLE or set_config
-- changes. Sessions that are not tenant logins (elt_runner, which loads and reads every customer) pass.
--
-- Both conditions are scalar subqueries, computed once per query: refresh pays one comparison per row, and a
-- tenant's query keeps using the indexes led by customer_id.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

-- The customer a session is confined to: for a tenant login, its mapped customer ('' when the map has none, so
-- it matches nothing); null for every other login (elt_runner, a DBA), which the policies leave unrestricted.
-- A login counts as a tenant when it is in the map or a direct member of elt_tenant (tenant logins are both),
-- whatever role it has SET since. SECURITY DEFINER so a policy evaluated as a tenant can read the private map;
-- it reveals only the caller's own mapping, and its search_path is fixed.
create function elt.tenant_scope() returns text
    language sql stable security definer
    set search_path = pg_catalog
    return case
        when exists (select from elt.tenants as t where t.role_name = session_user)
          or exists (select from pg_catalog.pg_auth_members as m
                     join pg_catalog.pg_roles as r on r.oid = m.member
                     join pg_catalog.pg_roles as g on g.oid = m.roleid
                     where r.rolname = session_user and g.rolname = 'elt_tenant')
        then coalesce((select t.customer_id from elt.tenants as t where t.role_name = session_user), '')
    end;
comment on function elt.tenant_scope() is 'Customer the session''s login is confined to (tenant logins; empty string when unmapped), or null for logins that are not tenants. Used by row-level security policies.';
revoke execute on function elt.tenant_scope() from public;
grant execute on function elt.tenant_scope() to elt_tenant;

alter table core.customers enable row level security;
alter table core.customers force row level security;
create policy customers_tenant_rows on core.customers
    using (
        (select elt.tenant_scope()) is null
        or customer_id = (select elt.tenant_scope())
    );
comment on policy customers_tenant_rows on core.customers is 'A tenant login sees only its own customer; other sessions (elt itself) see all rows.';

alter table core.users enable row level security;
alter table core.users force row level security;
create policy users_tenant_rows on core.users
    using (
        (select elt.tenant_scope()) is null
        or customer_id = (select elt.tenant_scope())
    );
comment on policy users_tenant_rows on core.users is 'A tenant login sees only its own customer''s users; other sessions (elt itself) see all rows.';

alter table core.events enable row level security;
alter table core.events force row level security;
create policy events_tenant_rows on core.events
    using (
        (select elt.tenant_scope()) is null
        or customer_id = (select elt.tenant_scope())
    );
comment on policy events_tenant_rows on core.events is 'A tenant login sees only its own customer''s events; other sessions (elt itself) see all rows.';

---- create above / drop below ----

drop policy events_tenant_rows on core.events;
alter table core.events no force row level security;
alter table core.events disable row level security;
drop policy users_tenant_rows on core.users;
alter table core.users no force row level security;
alter table core.users disable row level security;
drop policy customers_tenant_rows on core.customers;
alter table core.customers no force row level security;
alter table core.customers disable row level security;
drop function elt.tenant_scope();
