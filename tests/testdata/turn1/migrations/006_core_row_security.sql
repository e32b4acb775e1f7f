-- Row-level security on the core tables that analytics exposes (customers, users, events), enabled and
-- forced so it holds for their owner too.
--
-- The analytics views already keep only the rows of the customer mapped to session_user; these policies are a
-- second, independent wall under them. Should a tenant ever reach a core table directly (a grant by mistake),
-- its login still reads only its own customer's rows. Policies are chosen by role:
--   elt_tenant members (every tenant login)  read the rows of the customer mapped to session_user in the private
--                                             map elt.tenants, which no SET ROLE or set_config changes;
--   elt_owner members (elt_runner, and the    read and write every row: elt loads every customer, and the
--   analytics views, which run as their owner) analytics views do their own filtering by session_user.
-- Any other role reads nothing (forced RLS with no policy for it). Superusers bypass row-level security.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

-- The customer mapped to the session's login (null when none, which matches no row). SECURITY DEFINER so a
-- policy evaluated as a tenant can read the private map; it reveals only the caller's own mapping, and its
-- search_path is fixed.
create function elt.session_customer() returns text
    language sql stable security definer
    set search_path = pg_catalog
    return (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on function elt.session_customer() is 'Customer mapped to session_user in elt.tenants, or null; used by the row-level security policies of core.';
revoke execute on function elt.session_customer() from public;
grant execute on function elt.session_customer() to elt_tenant;

alter table core.customers enable row level security;
alter table core.customers force row level security;
create policy customers_tenant_read on core.customers for select to elt_tenant
    using (customer_id = (select elt.session_customer()));
comment on policy customers_tenant_read on core.customers is 'A tenant login reads only its own customer.';
create policy customers_owner_all on core.customers for all to elt_owner
    using (true) with check (true);
comment on policy customers_owner_all on core.customers is 'elt (elt_owner members) loads and reads every customer.';

alter table core.users enable row level security;
alter table core.users force row level security;
create policy users_tenant_read on core.users for select to elt_tenant
    using (customer_id = (select elt.session_customer()));
comment on policy users_tenant_read on core.users is 'A tenant login reads only its own customer''s users.';
create policy users_owner_all on core.users for all to elt_owner
    using (true) with check (true);
comment on policy users_owner_all on core.users is 'elt (elt_owner members) loads and reads every user.';

alter table core.events enable row level security;
alter table core.events force row level security;
create policy events_tenant_read on core.events for select to elt_tenant
    using (customer_id = (select elt.session_customer()));
comment on policy events_tenant_read on core.events is 'A tenant login reads only its own customer''s events.';
create policy events_owner_all on core.events for all to elt_owner
    using (true) with check (true);
comment on policy events_owner_all on core.events is 'elt (elt_owner members) loads and reads every event.';

---- create above / drop below ----

drop policy events_owner_all on core.events;
drop policy events_tenant_read on core.events;
alter table core.events no force row level security;
alter table core.events disable row level security;
drop policy users_owner_all on core.users;
drop policy users_tenant_read on core.users;
alter table core.users no force row level security;
alter table core.users disable row level security;
drop policy customers_owner_all on core.customers;
drop policy customers_tenant_read on core.customers;
alter table core.customers no force row level security;
alter table core.customers disable row level security;
drop function elt.session_customer();
