-- Tenants: the roles, the private role-to-customer map, and the analytics schema that customers read.
--
-- Roles (cluster-wide, so each is created only when missing: several databases of one cluster share them):
--   elt_owner   no login; owns every object of staging, core, marts, elt and analytics. Not superuser, not
--               bypassrls, so the analytics views it owns are subject to everything they say.
--   elt_runner  the login elt runs as (extract, refresh, tenant add/remove): member of elt_owner, createrole
--               (to manage tenant logins), pg_signal_backend (to end a removed tenant's sessions) and
--               pg_read_all_stats (to show when tenants connected). Neither superuser nor bypassrls.
--   elt_tenant  no login; the group every tenant login belongs to: usage on analytics and select on its views,
--               nothing else.
--   tenant_...  one login per customer (elt tenant add), with an opaque random name, mapped to its customer in
--               elt.tenants, which no tenant can read.
--
-- Isolation: every relation of analytics is a security_barrier view owned by elt_owner whose rows are those of
-- the customer mapped to session_user, the login of the session, which no SET ROLE or set_config can change.
-- Unmapped logins (elt_runner, elt_owner, a superuser) see no rows through analytics; they read marts.
-- See docs/tenants.md for the threat model.

-- Bounded waits: if a lock is not granted quickly the migration fails (and can be run again) instead of
-- queueing every reader and writer behind it.
set local lock_timeout = '10s';
set local statement_timeout = '15min';

do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_owner') then
        create role elt_owner nologin nosuperuser nobypassrls nocreatedb nocreaterole noreplication;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_tenant') then
        create role elt_tenant nologin nosuperuser nobypassrls nocreatedb nocreaterole noreplication;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'elt_runner') then
        -- No password: a DBA sets one (alter role elt_runner password ...) or the local cluster's Unix
        -- socket (trust, reachable only by its OS owner) is used.
        create role elt_runner login nosuperuser nobypassrls nocreatedb createrole noreplication inherit;
    end if;
    if not pg_catalog.pg_has_role('elt_runner', 'elt_owner', 'member') then
        grant elt_owner to elt_runner;
    end if;
    if not pg_catalog.pg_has_role('elt_runner', 'pg_signal_backend', 'member') then
        grant pg_signal_backend to elt_runner;
    end if;
    if not pg_catalog.pg_has_role('elt_runner', 'pg_read_all_stats', 'member') then
        grant pg_read_all_stats to elt_runner;
    end if;
end
$$;

-- The map. Private: no tenant has usage on schema elt.
create table elt.tenants (
    role_name       text        not null,
    customer_id     text        not null,
    kind            text        not null default 'tenant',
    created_at      timestamptz not null default now(),
    password_set_at timestamptz not null default now(),
    constraint tenants_pkey primary key (role_name),
    constraint tenants_kind_check check (kind in ('tenant', 'probe'))
);
comment on table elt.tenants is 'Tenant login roles and the customer each may read; the analytics views filter on it by session_user. Private to elt.';
comment on column elt.tenants.role_name is 'Login role (opaque name, no customer id in it).';
comment on column elt.tenants.customer_id is 'Customer whose rows the role reads in analytics.';
comment on column elt.tenants.kind is 'tenant: a customer''s login (one per customer); probe: a short-lived login of elt tenant check.';
comment on column elt.tenants.password_set_at is 'When the password was last set (add or rotate-password).';
-- squawk-ignore require-concurrent-index-creation
create unique index tenants_customer_key on elt.tenants (customer_id) where kind = 'tenant';

-- The analytics views. Each is security_barrier, so a tenant's own predicates (a leaky function, an error
-- oracle) run only on rows the view already filtered; the filter is a scalar subquery on the map, computed
-- once per query, so the scan underneath uses the mart's index led by customer_id.

create view analytics.customers with (security_barrier = true) as
select c.customer_id, c.name, c.plan, c.country, c.created_at
from core.customers as c
where c.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.customers is 'Your customer account (one row).';
comment on column analytics.customers.customer_id is 'Your customer id.';
comment on column analytics.customers.name is 'Customer (company) name.';
comment on column analytics.customers.plan is 'Subscription plan.';
comment on column analytics.customers.country is 'Country code.';
comment on column analytics.customers.created_at is 'When the account was created (UTC).';

create view analytics.users with (security_barrier = true) as
select u.user_id, u.email, u.name, u.role, u.created_at
from core.users as u
where u.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.users is 'Your users.';
comment on column analytics.users.user_id is 'User id.';
comment on column analytics.users.email is 'User email address.';
comment on column analytics.users.name is 'User display name.';
comment on column analytics.users.role is 'User role within your account.';
comment on column analytics.users.created_at is 'When the user joined (UTC).';

create view analytics.events with (security_barrier = true) as
select e.event_id, e.user_id, e.feature, e.occurred_at, e.properties
from core.events as e
where e.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.events is 'Every product usage event of your users. For charts over long periods prefer the daily views.';
comment on column analytics.events.event_id is 'Event id.';
comment on column analytics.events.user_id is 'User who triggered the event.';
comment on column analytics.events.feature is 'Product feature used, e.g. dashboard.view.';
comment on column analytics.events.occurred_at is 'When the event happened (UTC).';
comment on column analytics.events.properties is 'Free-form event properties (JSON).';

create view analytics.active_users_daily with (security_barrier = true) as
select m.day, m.active_users, m.events
from marts.active_users_daily as m
where m.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.active_users_daily is 'Daily active users and events, per UTC day (days without events have no row).';
comment on column analytics.active_users_daily.day is 'UTC day.';
comment on column analytics.active_users_daily.active_users is 'Distinct users with at least one event that day.';
comment on column analytics.active_users_daily.events is 'Events that day.';

create view analytics.active_users_weekly with (security_barrier = true) as
select m.week, m.active_users
from marts.active_users_weekly as m
where m.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.active_users_weekly is 'Weekly active users, per ISO week (Monday to Sunday, UTC).';
comment on column analytics.active_users_weekly.week is 'Monday of the week (UTC).';
comment on column analytics.active_users_weekly.active_users is 'Distinct users with at least one event that week.';

create view analytics.active_users_monthly with (security_barrier = true) as
select m.month, m.active_users
from marts.active_users_monthly as m
where m.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.active_users_monthly is 'Monthly active users, per calendar month (UTC).';
comment on column analytics.active_users_monthly.month is 'First day of the month (UTC).';
comment on column analytics.active_users_monthly.active_users is 'Distinct users with at least one event that month.';

create view analytics.feature_usage_daily with (security_barrier = true) as
select m.day, m.feature, m.events, m.users
from marts.feature_usage_daily as m
where m.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.feature_usage_daily is 'Use of each product feature per UTC day.';
comment on column analytics.feature_usage_daily.day is 'UTC day.';
comment on column analytics.feature_usage_daily.feature is 'Product feature, e.g. dashboard.view.';
comment on column analytics.feature_usage_daily.events is 'Events of this feature that day.';
comment on column analytics.feature_usage_daily.users is 'Distinct users who used this feature that day.';

create view analytics.user_activity with (security_barrier = true) as
select m.user_id, m.first_seen, m.last_seen, m.active_days, m.events_30d
from marts.user_activity as m
where m.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.user_activity is 'Activity summary of each of your users who has at least one event.';
comment on column analytics.user_activity.user_id is 'User id.';
comment on column analytics.user_activity.first_seen is 'Time of the user''s first event (UTC).';
comment on column analytics.user_activity.last_seen is 'Time of the user''s latest event (UTC).';
comment on column analytics.user_activity.active_days is 'UTC days with at least one event of the user.';
comment on column analytics.user_activity.events_30d is 'Events of the user in the 30 UTC days ending on the latest day with data.';

create view analytics.user_activity_daily with (security_barrier = true) as
select r.day, r.user_id, r.events, r.first_at, r.last_at
from marts.rollup_user_day as r
where r.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.user_activity_daily is 'Events of each user per UTC day (only days with events): one user''s activity over time.';
comment on column analytics.user_activity_daily.day is 'UTC day.';
comment on column analytics.user_activity_daily.user_id is 'User id.';
comment on column analytics.user_activity_daily.events is 'Events of the user that day.';
comment on column analytics.user_activity_daily.first_at is 'Time of the user''s first event that day (UTC).';
comment on column analytics.user_activity_daily.last_at is 'Time of the user''s last event that day (UTC).';

create view analytics.retention_weekly with (security_barrier = true) as
select m.cohort_week, m.week_number, m.cohort_users, m.active_users
from marts.retention_weekly as m
where m.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
comment on view analytics.retention_weekly is 'Weekly retention: of the users first seen in a week, how many were active N weeks later.';
comment on column analytics.retention_weekly.cohort_week is 'Monday (UTC) of the week of the cohort''s first event.';
comment on column analytics.retention_weekly.week_number is 'Weeks since the cohort week (0 = the cohort week).';
comment on column analytics.retention_weekly.cohort_users is 'Users in the cohort.';
comment on column analytics.retention_weekly.active_users is 'Users of the cohort active in week cohort_week + week_number.';

-- Tenants read analytics and nothing else. Functions are created without execute for PUBLIC.
grant usage on schema analytics to elt_tenant;
grant select on
    analytics.customers, analytics.users, analytics.events,
    analytics.active_users_daily, analytics.active_users_weekly, analytics.active_users_monthly,
    analytics.feature_usage_daily, analytics.user_activity, analytics.user_activity_daily,
    analytics.retention_weekly
    to elt_tenant;
alter default privileges for role elt_owner revoke execute on functions from public;

-- elt.adopt_objects gives every object of elt's schemas (and tern's version table) to elt_owner. Migrations
-- run as whoever applies them (often a superuser); a view owned by a superuser would bypass row-level security
-- and a mart owned by someone else could not be refreshed by elt_runner. elt migrate calls it after every run.
create procedure elt.adopt_objects()
    language plpgsql
    set search_path = pg_catalog
as $$
declare
    r record;
begin
    for r in
        select n.nspname from pg_namespace as n
        where n.nspname in ('staging', 'core', 'marts', 'elt', 'analytics')
          and n.nspowner <> 'elt_owner'::regrole
    loop
        execute format('alter schema %I owner to elt_owner', r.nspname);
    end loop;
    for r in
        select c.oid::regclass as rel, c.relkind
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where (n.nspname in ('staging', 'core', 'marts', 'elt', 'analytics')
               or c.oid = to_regclass('public.elt_schema_version'))
          and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
          and c.relowner <> 'elt_owner'::regrole
          -- identity and serial sequences follow their table
          and not exists (select from pg_depend as d
                          where d.classid = 'pg_class'::regclass and d.objid = c.oid
                            and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i'))
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
        where n.nspname in ('staging', 'core', 'marts', 'elt', 'analytics')
          and p.proowner <> 'elt_owner'::regrole
    loop
        execute format('alter %s %s owner to elt_owner',
            case r.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end, r.fn);
    end loop;
end
$$;
comment on procedure elt.adopt_objects() is 'Makes elt_owner the owner of every object in staging, core, marts, elt and analytics; elt migrate calls it after applying migrations.';

-- elt.harden_database takes from PUBLIC what would help a tenant attack the pipeline: temporary objects in this
-- database, advisory locks (a tenant holding elt's staging lock would stall every extract and refresh), and
-- server-side large objects (writes). Database privileges need the database owner; pg_catalog functions need a
-- superuser: what the caller may not change is reported by elt tenant check, not silently skipped.
create procedure elt.harden_database()
    language plpgsql
    set search_path = pg_catalog
as $$
declare
    r record;
    super boolean := (select rolsuper from pg_roles where rolname = current_user);
    dbowner boolean := pg_has_role((select datdba from pg_database where datname = current_database()), 'member');
begin
    if super or dbowner then
        execute format('revoke temporary on database %I from public', current_database());
        execute format('grant temporary, connect on database %I to elt_owner', current_database());
        execute format('grant connect on database %I to elt_tenant', current_database());
        revoke create on schema public from public;
    else
        raise notice 'elt.harden_database: only the owner of database % can revoke TEMPORARY from PUBLIC', current_database();
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
    else
        raise notice 'elt.harden_database: only a superuser can revoke advisory locks and large objects from PUBLIC';
    end if;
end
$$;
comment on procedure elt.harden_database() is 'Revokes from PUBLIC the default privileges that would help a tenant (temporary objects, advisory locks, large objects); run by the database owner or a superuser.';

revoke execute on procedure elt.adopt_objects(), elt.harden_database() from public;

call elt.harden_database();
call elt.adopt_objects();

---- create above / drop below ----

drop procedure elt.harden_database();
drop procedure elt.adopt_objects();
drop view analytics.retention_weekly;
drop view analytics.user_activity_daily;
drop view analytics.user_activity;
drop view analytics.feature_usage_daily;
drop view analytics.active_users_monthly;
drop view analytics.active_users_weekly;
drop view analytics.active_users_daily;
drop view analytics.events;
drop view analytics.users;
drop view analytics.customers;
drop table elt.tenants;
revoke usage on schema analytics from elt_tenant;
