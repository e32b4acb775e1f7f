package tenant

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Violation is one thing Check found wrong.
type Violation struct {
	Object  string // what is wrong: a role, a relation, a function, the database
	Problem string // why, in a sentence an operator can act on
}

func (v Violation) String() string { return v.Object + ": " + v.Problem }

// Check verifies on a live database that what each tenant can reach is its own schema of views over its own
// partitions, and nothing else, and returns every violation it finds (none: isolation holds). It checks the
// roles (no role elt sets up may grant itself a predefined role or act as another), each tenant login (its
// attributes, memberships, limits, databases), every privilege held by a tenant login, elt_tenant or PUBLIC
// (relations, columns, schemas, functions, default privileges, catalog statistics), and the structure of each
// tenant's layer (schema, views, what each view reads, partition bounds, comments). It reads catalogs only,
// with set-based queries, so its cost grows with the number of objects, not with their square. pool must be
// able to read the catalogs and elt.tenants: elt_runner or a superuser.
func Check(ctx context.Context, pool *pgxpool.Pool, layer *Layer) ([]Violation, error) {
	var vs []Violation
	steps := []func(context.Context, *pgxpool.Pool, *Layer) ([]Violation, error){
		checkRoles, checkTenantLogins, checkPrivileges, checkPublic, checkLayer,
	}
	for _, step := range steps {
		got, err := step(ctx, pool, layer)
		if err != nil {
			return vs, err
		}
		vs = append(vs, got...)
	}
	slices.SortStableFunc(vs, func(a, b Violation) int { return strings.Compare(a.Object, b.Object) })
	return vs, nil
}

// collectViolations runs a query returning (object, problem) rows, without JIT: the catalog joins are
// estimated high enough to be compiled, which took 1.2 of 1.8 s at 1,233 tenants for a query that runs once.
func collectViolations(ctx context.Context, pool *pgxpool.Pool, what, sql string, args ...any) ([]Violation, error) {
	var vs []Violation
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `set local jit = off`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		vs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Violation])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", what, describe(err))
	}
	return vs, nil
}

// checkRoles: elt's roles are what 003_roles.sql made them, and none can become more.
func checkRoles(ctx context.Context, pool *pgxpool.Pool, layer *Layer) ([]Violation, error) {
	return collectViolations(ctx, pool, "roles", `
with want(name) as (values ('elt_owner'), ('elt_tenant'), ('elt_runner'), ('elt_tenant_admin'))
select 'role ' || w.name, 'does not exist (run elt migrate as a superuser)'
from want as w where not exists (select from pg_catalog.pg_roles as r where r.rolname = w.name)
union all
select 'role ' || r.rolname, 'is superuser or bypassrls'
from pg_catalog.pg_roles as r
where r.rolname in (select name from want) and (r.rolsuper or r.rolbypassrls)
union all
select 'role ' || r.rolname, 'has createrole: on PostgreSQL 15 it can grant itself any predefined role (pg_execute_server_program runs programs as the server''s OS user); only elt_tenant_admin, which no session can use, may have it (alter role ' || r.rolname || ' nocreaterole)'
from pg_catalog.pg_roles as r
where r.rolname in ('elt_owner', 'elt_tenant', 'elt_runner') and r.rolcreaterole
union all
select 'role ' || r.rolname, 'can create databases or replicate'
from pg_catalog.pg_roles as r
where r.rolname in (select name from want) and (r.rolcreatedb or r.rolreplication)
union all
select 'role ' || r.rolname, 'can log in'
from pg_catalog.pg_roles as r
where r.rolname in ('elt_owner', 'elt_tenant', 'elt_tenant_admin') and r.rolcanlogin
  -- Citus connects to the workers as these two (migrate/citus/after_elt.sql); neither has a password.
  and not ($1::boolean and r.rolname in ('elt_owner', 'elt_tenant_admin'))
union all
select 'role ' || m.member::regrole::text, 'is a member of ' || m.roleid::regrole::text ||
       case when m.admin_option then ' with admin option' else '' end || ', which elt does not give it'
from pg_catalog.pg_auth_members as m
where m.member in (select oid from pg_catalog.pg_roles where rolname in (select name from want))
  and (m.member::regrole::text, m.roleid::regrole::text) not in (
      ('elt_runner', 'elt_owner'), ('elt_runner', 'pg_read_all_stats'),
      ('elt_tenant_admin', 'pg_signal_backend'), ('elt_tenant_admin', 'pg_read_all_stats'),
      ('elt_tenant_admin', 'elt_tenant'))
union all
select 'role elt_tenant_admin', 'has member ' || m.member::regrole::text || ', which can then act as it (create and alter roles)'
from pg_catalog.pg_auth_members as m
where m.roleid = 'elt_tenant_admin'::regrole
union all
select 'role ' || m.member::regrole::text, 'can grant ' || m.roleid::regrole::text || ' (admin option)'
from pg_catalog.pg_auth_members as m
where m.admin_option and m.member in ('elt_owner'::regrole, 'elt_runner'::regrole)
union all
select p.oid::regprocedure::text, 'runs as ' || p.proowner::regrole::text || ', which has createrole, but is not one of elt''s functions in schema elt_admin'
from pg_catalog.pg_proc as p
where p.proowner = 'elt_tenant_admin'::regrole
  and not (p.pronamespace = 'elt_admin'::regnamespace
           and p.proname in ('check_name', 'check_login', 'check_verifier', 'create_login', 'configure_login',
                             'set_password', 'lock_login', 'drop_login', 'signal_tenant', 'end_lock_holders'))
union all
select p.oid::regprocedure::text, 'is in schema elt_admin but ' ||
       case when p.proowner <> 'elt_tenant_admin'::regrole then 'owned by ' || p.proowner::regrole::text
            else 'its search_path is not pg_catalog, pg_temp (a temporary object could stand in for a built-in one)' end
from pg_catalog.pg_proc as p
where p.pronamespace = 'elt_admin'::regnamespace
  and (p.proowner <> 'elt_tenant_admin'::regrole
       or not coalesce('search_path=pg_catalog, pg_temp' = any (p.proconfig), false))
union all
select p.oid::regprocedure::text, 'is in schema elt_dba, which a superuser runs, but owned by ' || p.proowner::regrole::text ||
       ', which elt_runner can act as: it could replace what a superuser runs'
from pg_catalog.pg_proc as p
where p.pronamespace = 'elt_dba'::regnamespace and pg_catalog.pg_has_role('elt_runner', p.proowner, 'member')
union all
select 'schema ' || n.nspname, 'is owned by ' || n.nspowner::regrole::text || ', which elt_runner can act as (it could replace what a superuser runs or writes there)'
from pg_catalog.pg_namespace as n
where n.nspname in ('elt_dba', 'elt') and pg_catalog.pg_has_role('elt_runner', n.nspowner, 'member')
union all
select c.oid::regclass::text, 'is owned by ' || c.relowner::regrole::text || ', which elt_runner can act as: a superuser''s elt migrate writes it'
from pg_catalog.pg_class as c
where c.oid in ('elt.schema_version'::regclass, 'elt_dba.recorded_shape'::regclass) and pg_catalog.pg_has_role('elt_runner', c.relowner, 'member')
union all
select t.object, t.problem || ' (elt did not put it there; a superuser''s elt migrate refuses to run while it is)'
from elt_dba.traps() as t
union all
select s.object, s.change || ' since the last elt migrate by the DBA or a superuser (which refuses to run until it is undone)'
from elt_dba.shape_changes() as s
union all
select 'schema elt_admin', 'is owned by ' || n.nspowner::regrole::text || ', not elt_tenant_admin'
from pg_catalog.pg_namespace as n
where n.nspname = 'elt_admin' and n.nspowner <> 'elt_tenant_admin'::regrole`, layer.Citus)
}

// checkTenantLogins: each active tenant's login is an unprivileged, limited member of elt_tenant with an
// opaque name, that can connect to this database and no other; removed customers have no login.
func checkTenantLogins(ctx context.Context, pool *pgxpool.Pool, _ *Layer) ([]Violation, error) {
	return collectViolations(ctx, pool, "tenant logins", `
select 'tenant ' || t.tenant_key, 'its login ' || t.role_name || ' does not exist (elt tenant remove it, then add it again)'
from elt.tenants as t
where t.state = 'active' and not exists (select from pg_catalog.pg_roles as r where r.rolname = t.role_name)
union all
select 'login ' || t.role_name, 'belongs to ' || t.state || ' customer ' || t.tenant_key || ' but still exists (drop it: elt tenant remove does)'
from elt.tenants as t
join pg_catalog.pg_roles as r on r.rolname = t.role_name
where t.state <> 'active'
union all
select 'login ' || r.rolname, problem
from elt.tenants as t
join pg_catalog.pg_roles as r on r.rolname = t.role_name
cross join lateral (values
    (case when r.rolsuper or r.rolbypassrls or r.rolcreaterole or r.rolcreatedb or r.rolreplication
          then 'has a privileged attribute (superuser, bypassrls, createrole, createdb or replication)' end),
    (case when r.rolconnlimit <> t.connection_limit
          then 'has connection limit ' || r.rolconnlimit || ', not ' || t.connection_limit || ' (elt tenant limits ' || t.tenant_key || ')' end),
    (case when strpos(lower(r.rolname), lower(t.tenant_key)) > 0
               or exists (select from pg_catalog.pg_shdescription as d where d.objoid = r.oid)
          then 'its name or comment reveals its customer in pg_roles' end),
    (case when not pg_catalog.pg_has_role(r.oid, 'elt_tenant', 'member') then 'is not a member of elt_tenant' end),
    (case when not (coalesce(r.rolconfig, '{}') @> array[
               'statement_timeout=' || (extract(epoch from t.statement_timeout) * 1000)::bigint || 'ms',
               'idle_in_transaction_session_timeout=' || (extract(epoch from t.idle_in_transaction_timeout) * 1000)::bigint || 'ms',
               'temp_file_limit=' || t.temp_file_limit_kb || 'kB',
               'TimeZone=' || t.time_zone,
               'search_path=' || t.role_name,
               'default_transaction_read_only=on'])
          then 'has lost a session default elt set (timeouts, temp_file_limit, TimeZone, search_path; a login may reset its own): restore with elt tenant limits ' || t.tenant_key end),
    (case when not pg_catalog.has_database_privilege(r.oid, pg_catalog.current_database(), 'connect')
          then 'cannot connect to this database (elt tenant sync grants it)' end)
) as p(problem)
where t.state = 'active' and p.problem is not null
union all
select 'login ' || r.rolname, 'is a member of ' || m.roleid::regrole::text || ' besides elt_tenant'
from elt.tenants as t
join pg_catalog.pg_roles as r on r.rolname = t.role_name
join pg_catalog.pg_auth_members as m on m.member = r.oid
where m.roleid <> 'elt_tenant'::regrole
union all
select 'login ' || r.rolname, 'has members (' || m.member::regrole::text || ' can act as the tenant)'
from elt.tenants as t
join pg_catalog.pg_roles as r on r.rolname = t.role_name
join pg_catalog.pg_auth_members as m on m.roleid = r.oid
union all
select 'database ' || d.datname, 'tenant logins can connect to it (' ||
       case when exists (select from aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) as a where a.grantee = 0 and a.privilege_type = 'CONNECT')
            then 'PUBLIC has CONNECT: revoke connect on database ' || quote_ident(d.datname) || ' from public, or reject +elt_tenant there in pg_hba.conf'
            else 'granted to a tenant login or elt_tenant' end || ')'
from pg_catalog.pg_database as d
where d.datname <> pg_catalog.current_database() and d.datallowconn
  and exists (select from elt.tenants as t join pg_catalog.pg_roles as r on r.rolname = t.role_name
              where t.state = 'active' and pg_catalog.has_database_privilege(r.oid, d.oid, 'connect'))`)
}

// tenantGrantees are the roles whose privileges are checked: PUBLIC (oid 0), elt_tenant, and every tenant
// login (mapped or not: any login in elt_tenant).
const tenantGrantees = `
with grantee as (
    select 0::oid as oid, 'PUBLIC' as name, null::text as own_schema
    union all
    select r.oid, r.rolname, null from pg_catalog.pg_roles as r where r.rolname = 'elt_tenant'
    union all
    select m.member, m.member::regrole::text, m.member::regrole::text
    from pg_catalog.pg_auth_members as m
    where m.roleid = 'elt_tenant'::regrole and m.member::regrole::text ~ '^tenant_[0-9a-f]{16}$'
)`

// checkPrivileges: every privilege held by PUBLIC, elt_tenant or a tenant login on a relation, column, schema
// or function outside the system schemas is one of those elt grants (usage on the tenant's own schema, select
// on its views), wherever it is, reachable or latent (a grant on a relation of a schema the tenant cannot use
// yet still counts). Tenant logins own nothing.
//
// On Citus a tenant's views run with its own privileges (Layer.viewSQL), so there it may also use the schemas
// of the published tables and select the columns its views read of its own partitions (Layer.citusReads).
func checkPrivileges(ctx context.Context, pool *pgxpool.Pool, layer *Layer) ([]Violation, error) {
	reads := map[string][]string{}
	var schemas []string
	if layer.Citus {
		for _, c := range layer.citusReads() {
			reads[c.Table.Ident()] = c.Columns
			if !slices.Contains(schemas, c.Table.Schema) {
				schemas = append(schemas, c.Table.Schema)
			}
		}
	}
	readsJSON, err := json.Marshal(reads)
	if err != nil {
		return nil, err
	}
	return collectViolations(ctx, pool, "privileges", tenantGrantees+`,
rel as (
    select c.oid, c.relname, c.relkind, c.relacl, n.nspname
    from pg_catalog.pg_class as c
    join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
    where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'
)
select distinct rel.oid::regclass::text, g.name || ' has ' || lower(a.privilege_type) || ' on it' ||
       case when coalesce(rel.nspname = g.own_schema and rel.relkind = 'v', false) then ': a tenant may only read its views'
            else ': a tenant may read only the views of its own schema' end
from rel
cross join lateral aclexplode(rel.relacl) as a
join grantee as g on g.oid = a.grantee
where not coalesce(rel.nspname = g.own_schema and rel.relkind = 'v' and a.privilege_type = 'SELECT', false)
union all
select distinct rel.oid::regclass::text || '.' || quote_ident(att.attname), g.name || ' has ' || lower(a.privilege_type) || ' on this column'
from rel
join pg_catalog.pg_attribute as att on att.attrelid = rel.oid and att.attacl is not null
cross join lateral aclexplode(att.attacl) as a
join grantee as g on g.oid = a.grantee
-- Citus: select on a column its views read ($2) of a partition bound to the login's own key.
where not coalesce($1::boolean and a.privilege_type = 'SELECT' and exists (
    select from pg_catalog.pg_inherits as i
    join pg_catalog.pg_class as p on p.oid = i.inhrelid
    join elt.tenants as t on t.role_name = g.name and t.state = 'active'
    join pg_catalog.jsonb_each($2::jsonb) as r(tbl, cols) on pg_catalog.to_regclass(r.tbl) = i.inhparent
    where i.inhrelid = rel.oid
      and r.cols ? att.attname::text
      and pg_catalog.pg_get_expr(p.relpartbound, p.oid) in (pg_catalog.format('FOR VALUES IN (%L)', t.tenant_key),
                                                          pg_catalog.format('FOR VALUES IN (%s)', t.tenant_key))
), false)
union all
select distinct 'schema ' || n.nspname, g.name || ' has ' || lower(a.privilege_type) || ' on it'
from pg_catalog.pg_namespace as n
cross join lateral aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) as a
join grantee as g on g.oid = a.grantee
where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'
  and not coalesce(n.nspname = g.own_schema and a.privilege_type = 'USAGE', false)
  -- Citus: a login may use the schemas of the published tables ($3).
  and not coalesce($1::boolean and g.own_schema is not null and a.privilege_type = 'USAGE' and n.nspname = any ($3::text[]), false)
  and not (n.nspname = 'public' and g.oid = 0 and a.privilege_type = 'USAGE')
union all
select distinct p.oid::regprocedure::text, 'is SECURITY DEFINER (runs as ' || p.proowner::regrole::text || ') and ' || g.name ||
       ' can execute it in schema ' || n.nspname || ', which it can use: a definer function hands its owner''s rights to tenants'
from pg_catalog.pg_proc as p
join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
cross join lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a
join grantee as g on g.oid = a.grantee
where p.prosecdef and n.nspname not in ('pg_catalog', 'information_schema') and a.privilege_type = 'EXECUTE'
  and exists (select from grantee as u
              where (u.oid = g.oid or g.oid = 0)
                and (coalesce(n.nspname = u.own_schema, false)
                     or exists (select from aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) as s
                                where s.privilege_type = 'USAGE' and (s.grantee = u.oid or s.grantee = 0))))
union all
select distinct 'default privileges of ' || d.defaclrole::regrole::text || coalesce(' in schema ' || d.defaclnamespace::regnamespace::text, ''),
       'grant ' || lower(a.privilege_type) || ' to ' || g.name || ' on every new ' ||
       case d.defaclobjtype when 'r' then 'table' when 'S' then 'sequence' when 'f' then 'function' when 'T' then 'type' when 'n' then 'schema' else d.defaclobjtype::text end
from pg_catalog.pg_default_acl as d
cross join lateral aclexplode(d.defaclacl) as a
join grantee as g on g.oid = a.grantee
where g.oid <> 0 or d.defaclobjtype in ('r', 'S', 'n')
union all
-- In the system schemas elt grants a tenant nothing: what PUBLIC may read there is checked by checkPublic,
-- and a grant to elt_tenant or a login (on pg_statistic, pg_stat_activity, a catalog function) is a hole.
select distinct c.oid::regclass::text, g.name || ' has ' || lower(a.privilege_type) || ' on this system catalog: elt grants tenants nothing there'
from pg_catalog.pg_class as c
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
cross join lateral aclexplode(c.relacl) as a
join grantee as g on g.oid = a.grantee
where g.oid <> 0 and (n.nspname in ('pg_catalog', 'information_schema') or n.nspname ~ '^pg_toast')
union all
select distinct c.oid::regclass::text || '.' || quote_ident(att.attname), g.name || ' has ' || lower(a.privilege_type) || ' on this system catalog column: elt grants tenants nothing there'
from pg_catalog.pg_class as c
join pg_catalog.pg_attribute as att on att.attrelid = c.oid and att.attacl is not null
cross join lateral aclexplode(att.attacl) as a
join grantee as g on g.oid = a.grantee
where g.oid <> 0 and c.relnamespace in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
union all
select distinct p.oid::regprocedure::text, g.name || ' has execute on this system function: elt grants tenants nothing there'
from pg_catalog.pg_proc as p
cross join lateral aclexplode(p.proacl) as a
join grantee as g on g.oid = a.grantee
where g.oid <> 0 and p.pronamespace in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
union all
select distinct 'database ' || d.datname, g.name || ' has ' || lower(a.privilege_type) || ' on it: a tenant may only connect'
from pg_catalog.pg_database as d
cross join lateral aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) as a
join grantee as g on g.oid = a.grantee
where g.oid <> 0 and a.privilege_type <> 'CONNECT'
union all
-- Grants on parameters (GRANT SET ON PARAMETER temp_file_limit TO ...) would let a tenant lift its limits.
select 'parameter ' || p.parname, g.name || ' has ' || lower(a.privilege_type) || ' on it: a tenant may not change server settings'
from pg_catalog.pg_parameter_acl as p
cross join lateral aclexplode(p.paracl) as a
join grantee as g on g.oid = a.grantee
-- parameters belong to the cluster: this database's tenants only
where g.oid = 0 or g.name = 'elt_tenant' or g.name in (select role_name from elt.tenants)
union all
-- A login's settings for this database override the ones elt sets for every database (rolconfig).
select 'login ' || g.name, 'has settings of its own for this database (' || array_to_string(s.setconfig, ', ') ||
       '), which override elt''s: alter role ' || g.name || ' in database ' || quote_ident(current_database()) || ' reset all'
from pg_catalog.pg_db_role_setting as s
join grantee as g on g.oid = s.setrole
where g.oid <> 0 and s.setdatabase = (select oid from pg_catalog.pg_database where datname = current_database())
union all
-- Owners, by a hash join rather than one catalog scan per login.
select 'login ' || g.name, 'owns ' || o.what
from grantee as g
join (
    select c.relowner, 'relation ' || c.oid::regclass::text from pg_catalog.pg_class as c
    union all
    select p.proowner, 'function ' || p.oid::regprocedure::text from pg_catalog.pg_proc as p
    union all
    select n.nspowner, 'schema ' || n.nspname from pg_catalog.pg_namespace as n
    union all
    select d.defaclrole, 'default privileges' from pg_catalog.pg_default_acl as d
) as o(owner, what) on o.owner = g.oid
where g.oid <> 0`, layer.Citus, string(readsJSON), schemas)
}

// checkPublic: what PUBLIC still has that would help a tenant act on or observe this database (see
// elt_dba.harden_database and elt_dba.harden_catalogs).
func checkPublic(ctx context.Context, pool *pgxpool.Pool, layer *Layer) ([]Violation, error) {
	return collectViolations(ctx, pool, "PUBLIC privileges", `
select 'database ' || current_database(), 'PUBLIC has ' || lower(a.privilege_type) || ' on it (call elt_dba.harden_database() as the database owner or a superuser)'
from pg_catalog.pg_database as d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) as a
where d.datname = current_database() and a.grantee = 0 and a.privilege_type in ('TEMPORARY', 'CONNECT', 'CREATE')
union all
select 'schema public', 'PUBLIC may create objects in it'
where exists (select from pg_catalog.pg_namespace as n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) as a
              where n.nspname = 'public' and a.grantee = 0 and a.privilege_type = 'CREATE')
union all
select p.oid::regprocedure::text, 'PUBLIC may execute it (call elt_dba.harden_database() as a superuser)'
from pg_catalog.pg_proc as p
where p.pronamespace = 'pg_catalog'::regnamespace
  and (p.proname ~ '^pg_(try_)?advisory(_xact)?_lock(_shared)?$' or p.proname in ('lo_creat', 'lo_create', 'lo_from_bytea'))
  and exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a
              where a.grantee = 0 and a.privilege_type = 'EXECUTE')
union all
select 'setting max_prepared_transactions', 'is ' || current_setting('max_prepared_transactions') ||
       ': a tenant can PREPARE TRANSACTION, which keeps its locks and snapshot after it disconnects and which elt tenant guard cannot end (set it to 0 unless you use two-phase commit)'
where current_setting('max_prepared_transactions')::int > 0
  and not $1::boolean
union all
-- Citus commits in two phases and sets max_prepared_transactions itself (2 x max_connections, when 0 on
-- PostgreSQL 15): there, a transaction a tenant prepared is reported instead.
select 'prepared transaction ' || quote_literal(x.gid), 'was prepared by tenant login ' || x.owner ||
       ': it keeps its locks and snapshot until a superuser ends it (rollback prepared ' || quote_literal(x.gid) || ')'
from pg_catalog.pg_prepared_xacts as x
join pg_catalog.pg_roles as r on r.rolname = x.owner
where pg_catalog.pg_has_role(r.oid, 'elt_tenant', 'member')
union all
select s.object, 'PUBLIC may ' ||
       case s.kind when 'function' then 'execute it' else 'read it' end ||
       ': it depends on other tenants'' data or activity (call elt_dba.harden_catalogs() as a superuser)'
from elt_dba.catalog_surfaces() as s
where case s.kind
      when 'function' then has_function_privilege('public', s.object::regprocedure, 'execute')
      when 'relation' then has_table_privilege('public', s.object::regclass, 'select')
      else has_column_privilege('public', (split_part(s.object, '.', 1) || '.' || split_part(s.object, '.', 2))::regclass, split_part(s.object, '.', 3), 'select')
      end`, layer.Citus)
}

// checkLayer: each active tenant has exactly the layer's objects. Its schema holds only the declared views,
// each with the declared columns and comments, and each view reads only partitions of the layer's tables
// bound to the tenant's own key. That is the structural proof that a tenant's queries touch its own rows only.
func checkLayer(ctx context.Context, pool *pgxpool.Pool, layer *Layer) ([]Violation, error) {
	type decl struct {
		Name    string            `json:"name"`
		Comment string            `json:"comment"`
		Columns []string          `json:"columns"`
		Notes   map[string]string `json:"notes"`
	}
	var ds []decl
	for _, r := range layer.Publish {
		d := decl{Name: r.Name, Comment: r.Comment, Notes: map[string]string{}}
		for _, c := range r.Columns {
			d.Columns = append(d.Columns, c.Name)
			d.Notes[c.Name] = c.Comment
		}
		ds = append(ds, d)
	}
	declJSON, err := json.Marshal(ds)
	if err != nil {
		return nil, err
	}
	var tables []string
	for _, t := range layer.Tables {
		tables = append(tables, t.String())
	}
	return collectViolations(ctx, pool, "tenant objects", `
with t as (
    select tenant_key, role_name, layer_sha256 from elt.tenants where state = 'active'
),
decl as (
    select d.name, d.comment, d.columns, d.notes
    from jsonb_to_recordset($1::jsonb) as d(name text, comment text, columns text[], notes jsonb)
),
layer_table as (
    select unnest($2::text[])::regclass as oid
),
views as (
    select t.tenant_key, t.role_name, c.oid, c.relname, c.relkind, c.relowner
    from t
    join pg_catalog.pg_namespace as n on n.nspname = t.role_name
    join pg_catalog.pg_class as c on c.relnamespace = n.oid
),
reads as (
    -- Every relation in the view's query tree (its range table): pg_depend has no row for a system catalog,
    -- which is pinned, so a view over pg_class would not show there.
    select distinct v.tenant_key, v.role_name, v.oid as view_oid, v.relname as view_name, r.rel
    from views as v
    join pg_catalog.pg_rewrite as rw on rw.ev_class = v.oid
    cross join lateral (
        select m[1]::oid from pg_catalog.regexp_matches(rw.ev_action::text, ':relid ([0-9]+)', 'g') as m
        union
        select d.refobjid from pg_catalog.pg_depend as d
        where d.classid = 'pg_catalog.pg_rewrite'::regclass and d.objid = rw.oid and d.refclassid = 'pg_catalog.pg_class'::regclass
    ) as r(rel)
    where r.rel <> v.oid
)
select 'tenant ' || t.tenant_key, 'its schema ' || t.role_name || ' does not exist (elt tenant sync builds it)'
from t where to_regnamespace(t.role_name) is null
union all
select 'schema ' || t.role_name, 'is owned by ' || n.nspowner::regrole::text || ', not elt_owner'
from t join pg_catalog.pg_namespace as n on n.nspname = t.role_name
where n.nspowner <> 'elt_owner'::regrole
union all
select 'tenant ' || t.tenant_key, 'was built from other declarations than elt.yaml''s (run elt tenant sync)'
from t where t.layer_sha256 is distinct from $3 and to_regnamespace(t.role_name) is not null
union all
select 'tenant ' || t.tenant_key, 'lacks ' || t.role_name || '.' || d.name || ', which elt.yaml publishes (run elt tenant sync)'
from t cross join decl as d
where to_regnamespace(t.role_name) is not null
  and not exists (select from views as v where v.tenant_key = t.tenant_key and v.relname = d.name)
union all
select v.oid::regclass::text, case when v.relkind = 'v' then 'is a view elt.yaml does not publish'
                                   else 'is not a view: a tenant''s schema holds only the views elt builds' end
from views as v
where v.relkind <> 'v' or v.relname not in (select name from decl)
union all
select v.oid::regclass::text, 'is owned by ' || v.relowner::regrole::text || ', not elt_owner'
from views as v where v.relowner <> 'elt_owner'::regrole
union all
select v.oid::regclass::text, 'has columns (' || array_to_string(cols.names, ', ') || '), elt.yaml publishes (' || array_to_string(d.columns, ', ') || ') (run elt tenant sync)'
from views as v
join decl as d on d.name = v.relname
cross join lateral (select array(select a.attname::text from pg_catalog.pg_attribute as a
                                 where a.attrelid = v.oid and a.attnum > 0 order by a.attnum) as names) as cols
where cols.names <> d.columns
union all
select v.oid::regclass::text, 'its comment differs from elt.yaml''s (run elt tenant sync)'
from views as v join decl as d on d.name = v.relname
where pg_catalog.obj_description(v.oid, 'pg_class') is distinct from d.comment
union all
select v.oid::regclass::text || '.' || quote_ident(a.attname), 'its comment differs from elt.yaml''s (run elt tenant sync)'
from views as v
join decl as d on d.name = v.relname
join pg_catalog.pg_attribute as a on a.attrelid = v.oid and a.attnum > 0
where pg_catalog.col_description(v.oid, a.attnum) is distinct from d.notes ->> a.attname::text
union all
select r.view_oid::regclass::text,
       'reads ' || r.rel::regclass::text || ', ' ||
       case when not c.relispartition then 'which is not a partition: a tenant''s view may read only its own partitions'
            when i.inhparent not in (select oid from layer_table) then 'a partition of ' || i.inhparent::regclass::text || ', which is not a table partitioned by the tenant key'
            else 'which is bound to ' || pg_catalog.pg_get_expr(c.relpartbound, c.oid) || ', not to this tenant''s key' end
from reads as r
join pg_catalog.pg_class as c on c.oid = r.rel
left join pg_catalog.pg_inherits as i on i.inhrelid = c.oid
where not c.relispartition
   or i.inhparent not in (select oid from layer_table)
   -- Bounds print quoted, but those of some types (integer, numeric) bare: the key is stored as its type prints it.
   or pg_catalog.pg_get_expr(c.relpartbound, c.oid) not in (pg_catalog.format('FOR VALUES IN (%L)', r.tenant_key),
                                                          pg_catalog.format('FOR VALUES IN (%s)', r.tenant_key))
union all
select v.oid::regclass::text, 'depends on ' || pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) ||
       ': elt''s views only select columns of a partition (run elt tenant sync)'
from views as v
join pg_catalog.pg_rewrite as rw on rw.ev_class = v.oid
join pg_catalog.pg_depend as d on d.classid = 'pg_catalog.pg_rewrite'::regclass and d.objid = rw.oid
where d.refclassid <> 'pg_catalog.pg_class'::regclass
union all
-- Built-in functions and operators are pinned and leave no pg_depend row: read the view's query tree.
select v.oid::regclass::text, 'computes something (a function or operator call, a subquery, an aggregate): elt''s views only select columns of a partition (run elt tenant sync)'
from views as v
join pg_catalog.pg_rewrite as rw on rw.ev_class = v.oid
where rw.ev_action::text ~ $4
union all
-- Citus: each view filters on its own key, and on nothing else (Layer.viewSQL): one operator, and the
-- definition ends with that filter.
select v.oid::regclass::text, 'is not a security_invoker view that reads exactly its own key''s rows (where ' || quote_ident($6) || ' = ' || quote_literal(v.tenant_key) ||
       '): on Citus elt''s views are, so that Citus sends a tenant''s query to one shard as the tenant (run elt tenant sync)'
from views as v
join pg_catalog.pg_rewrite as rw on rw.ev_class = v.oid
where $5::boolean and v.relkind = 'v'
  and (not coalesce((select 'security_invoker=true' = any (c.reloptions) from pg_catalog.pg_class as c where c.oid = v.oid), false)
       or (pg_catalog.length(rw.ev_action::text) - pg_catalog.length(pg_catalog.replace(rw.ev_action::text, '{OPEXPR ', ''))) <> pg_catalog.length('{OPEXPR ')
       or not exists (
           select
           from reads as r
           join pg_catalog.pg_class as c on c.oid = r.rel
           -- a literal prints cast to its type without a length (character varying, not character varying(20))
           cross join lateral (values (pg_catalog.format(E'\n  WHERE (%I.%I = %L::%s);', c.relname, $6::text, v.tenant_key,
                                                         pg_catalog.regexp_replace($7::text, '\(.*\)$', ''))),
                                      (pg_catalog.format(E'\n  WHERE (%I.%I = %s);', c.relname, $6::text, v.tenant_key))) as e(want)
           where r.view_oid = v.oid
             and pg_catalog.right(pg_catalog.pg_get_viewdef(v.oid), pg_catalog.length(e.want)) = e.want))
union all
select 'schema ' || n.nspname, 'looks like a tenant''s schema but belongs to no active tenant (left over: drop it)'
from pg_catalog.pg_namespace as n
where n.nspname ~ '^tenant_[0-9a-f]{16}$' and n.nspname not in (select role_name from t)`, string(declJSON), tables, layer.SHA, computes(layer.Citus), layer.Citus, layer.Key, layer.KeyType)
}

// computes is a pattern of the nodes of a view's query tree that compute something, which elt's views do not
// (checkLayer): an operator is allowed on Citus only, where a view filters on its key (Layer.viewSQL).
func computes(citus bool) string {
	nodes := []string{"FUNCEXPR", "OPEXPR", "DISTINCTEXPR", "NULLIFEXPR", "SCALARARRAYOPEXPR", "ROWCOMPAREEXPR", "SUBLINK",
		"AGGREF", "WINDOWFUNC", "GROUPINGFUNC", "COERCEVIAIO", "ARRAYCOERCEEXPR", "CONVERTROWTYPEEXPR", "COERCETODOMAIN",
		"RANGETBLFUNCTION", "TABLEFUNC", "SQLVALUEFUNCTION", "XMLEXPR", "MINMAXEXPR", "NEXTVALUEEXPR"}
	if citus {
		nodes = slices.DeleteFunc(nodes, func(n string) bool { return n == "OPEXPR" })
	}
	return `\{(` + strings.Join(nodes, "|") + `) `
}
