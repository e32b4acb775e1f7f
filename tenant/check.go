package tenant

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Violation is one thing Check found wrong.
type Violation struct {
	Object  string // what is wrong: a role, a relation, a function, the database
	Problem string // why, in a sentence an operator can act on
}

func (v Violation) String() string { return v.Object + ": " + v.Problem }

// CheckOptions configure Check.
type CheckOptions struct {
	// SkipCounts skips the row-count comparison, which needs a probe login (createrole) and a connection as
	// it.
	SkipCounts bool
}

// privateSchemas are elt's own schemas, which no tenant may use, and whose objects elt_owner must own.
var privateSchemas = []string{"staging", "core", "marts", "elt"}

// Check verifies on a live database that tenants can read only their own rows, and returns every violation it
// finds (none: isolation holds). pool must be able to read the catalogs and elt.tenants and, for the row
// counts, create a role: elt_runner or a superuser.
func Check(ctx context.Context, pool *pgxpool.Pool, opts CheckOptions) ([]Violation, error) {
	var vs []Violation
	steps := []func(context.Context, *pgxpool.Pool) ([]Violation, error){
		checkRoles, checkTenantLogins, checkRelations, checkIndexes, checkFunctions, checkPublic, checkOwnership,
	}
	if !opts.SkipCounts {
		steps = append(steps, checkCounts)
	}
	for _, step := range steps {
		got, err := step(ctx, pool)
		if err != nil {
			return vs, err
		}
		vs = append(vs, got...)
	}
	return vs, nil
}

// collectViolations runs a query returning (object, problem) rows.
func collectViolations(ctx context.Context, pool *pgxpool.Pool, what, sql string, args ...any) ([]Violation, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", what, err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Violation])
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", what, err)
	}
	return vs, nil
}

// checkRoles: the owner and the group are what 005_tenants.sql made them.
func checkRoles(ctx context.Context, pool *pgxpool.Pool) ([]Violation, error) {
	return collectViolations(ctx, pool, "roles", `
with want(name) as (values ('elt_owner'), ('elt_tenant'))
select 'role ' || w.name, 'does not exist (run elt migrate)'
from want as w where not exists (select from pg_catalog.pg_roles as r where r.rolname = w.name)
union all
select 'role ' || r.rolname, 'is superuser or bypassrls: the views it owns would not filter'
from pg_catalog.pg_roles as r
where r.rolname in ('elt_owner', 'elt_tenant', 'elt_runner') and (r.rolsuper or r.rolbypassrls)
union all
select 'role elt_tenant', 'can log in, create roles or databases'
from pg_catalog.pg_roles as r
where r.rolname = 'elt_tenant' and (r.rolcanlogin or r.rolcreaterole or r.rolcreatedb or r.rolreplication)
union all
select 'role elt_tenant', 'is a member of ' || m.roleid::regrole || ', so every tenant has its privileges'
from pg_catalog.pg_auth_members as m
where m.member = 'elt_tenant'::regrole`)
}

// checkTenantLogins: each mapped login is an unprivileged, limited member of elt_tenant with an opaque name.
// (Logins of elt_tenant that this database does not map are not flagged: roles are shared by the cluster,
// maps are per database, and an unmapped login reads no rows.)
func checkTenantLogins(ctx context.Context, pool *pgxpool.Pool) ([]Violation, error) {
	return collectViolations(ctx, pool, "tenant logins", `
select 'tenant ' || t.customer_id, 'its login ' || t.role_name || ' does not exist'
from elt.tenants as t
where t.kind = 'tenant' and not exists (select from pg_catalog.pg_roles as r where r.rolname = t.role_name)
union all
select 'login ' || r.rolname, problem
from elt.tenants as t
join pg_catalog.pg_roles as r on r.rolname = t.role_name
cross join lateral (values
    (case when r.rolsuper or r.rolbypassrls or r.rolcreaterole or r.rolcreatedb or r.rolreplication
          then 'has a privileged attribute (superuser, bypassrls, createrole, createdb or replication)' end),
    (case when r.rolconnlimit < 0 then 'has no connection limit' end),
    (case when strpos(lower(r.rolname), lower(t.customer_id)) > 0
               or exists (select from pg_catalog.pg_shdescription as d where d.objoid = r.oid)
          then 'its name or comment reveals its customer in pg_roles' end),
    (case when not pg_catalog.pg_has_role(r.oid, 'elt_tenant', 'member') then 'is not a member of elt_tenant' end),
    (case when t.kind = 'tenant' and not (
               exists (select from unnest(r.rolconfig) as c where c ~ '^statement_timeout=[1-9]')
               and exists (select from unnest(r.rolconfig) as c where c ~ '^idle_in_transaction_session_timeout=[1-9]'))
          then 'has lost its statement_timeout or idle_in_transaction_session_timeout default (a login may reset its own; restore with elt tenant limits ' || t.customer_id || ')' end)
) as p(problem)
where p.problem is not null
union all
select 'login ' || r.rolname, 'is a member of ' || m.roleid::regrole || ' besides elt_tenant'
from elt.tenants as t
join pg_catalog.pg_roles as r on r.rolname = t.role_name
join pg_catalog.pg_auth_members as m on m.member = r.oid
where m.roleid <> 'elt_tenant'::regrole
`)
}

// tenantRoles is the set of roles whose privileges are checked: the group and every mapped login (a login
// may have been granted something directly).
const tenantRoles = `
with tenant_roles as (
    select r.oid, r.rolname from pg_catalog.pg_roles as r
    where r.rolname = 'elt_tenant' or r.rolname in (select t.role_name from elt.tenants as t)
)`

// checkRelations: a tenant can read nothing outside analytics, only read in analytics, and every relation it
// reads there filters by the map.
func checkRelations(ctx context.Context, pool *pgxpool.Pool) ([]Violation, error) {
	return collectViolations(ctx, pool, "relations", tenantRoles+`,
rels as (
    select c.oid, c.oid::regclass::text as name, c.relkind, n.nspname, c.relowner, c.reloptions,
           c.relrowsecurity, c.relforcerowsecurity
    from pg_catalog.pg_class as c
    join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
    where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'
      and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
),
access as (
    select rel.*, tr.rolname,
           array_remove(array[
               case when has_table_privilege(tr.oid, rel.oid, 'select') or has_any_column_privilege(tr.oid, rel.oid, 'select') then 'select' end,
               case when rel.relkind <> 'S' and (has_table_privilege(tr.oid, rel.oid, 'insert') or has_any_column_privilege(tr.oid, rel.oid, 'insert')) then 'insert' end,
               case when has_table_privilege(tr.oid, rel.oid, 'update') or has_any_column_privilege(tr.oid, rel.oid, 'update') then 'update' end,
               case when rel.relkind <> 'S' and has_table_privilege(tr.oid, rel.oid, 'delete') then 'delete' end,
               case when rel.relkind <> 'S' and has_table_privilege(tr.oid, rel.oid, 'truncate') then 'truncate' end,
               case when rel.relkind <> 'S' and has_table_privilege(tr.oid, rel.oid, 'trigger') then 'trigger' end,
               case when rel.relkind <> 'S' and (has_table_privilege(tr.oid, rel.oid, 'references') or has_any_column_privilege(tr.oid, rel.oid, 'references')) then 'references' end
           ], null) as privs
    from rels as rel
    cross join tenant_roles as tr
    where has_schema_privilege(tr.oid, (select oid from pg_catalog.pg_namespace where nspname = rel.nspname), 'usage')
)
select a.name, a.rolname || ' can ' || array_to_string(a.privs, ', ') || ' outside schema analytics'
from access as a
where a.nspname <> 'analytics' and cardinality(a.privs) > 0
union all
select a.name, a.rolname || ' can ' || array_to_string(array_remove(a.privs, 'select'), ', ') || ': tenants may only read'
from access as a
where a.nspname = 'analytics' and cardinality(array_remove(a.privs, 'select')) > 0
union all
select distinct a.name, problem
from access as a
join pg_catalog.pg_roles as owner on owner.oid = a.relowner
cross join lateral (values
    (case when a.relkind in ('m', 'f', 'S') then 'tenants can read it directly, and it cannot carry row-level security (wrap it in a security_barrier view)' end),
    (case when a.relkind in ('r', 'p') and not (a.relrowsecurity and a.relforcerowsecurity)
          then 'tenants can read this table but row-level security is not enabled and forced' end),
    (case when a.relkind in ('r', 'p') and not exists (select from pg_catalog.pg_policy as p where p.polrelid = a.oid)
          then 'tenants can read this table and it has no policy' end),
    (case when a.relkind = 'v' and not coalesce('security_barrier=true' = any(a.reloptions), false)
          then 'tenants can read this view and it is not a security_barrier view' end),
    (case when a.relkind = 'v' and (pg_catalog.pg_get_viewdef(a.oid) !~* 'session_user'
                                    or not exists (select from pg_catalog.pg_depend as d
                                                   join pg_catalog.pg_rewrite as rw on rw.oid = d.objid
                                                   where d.classid = 'pg_rewrite'::regclass and rw.ev_class = a.oid
                                                     and d.refobjid = 'elt.tenants'::regclass))
          then 'tenants can read this view and it does not filter by session_user through elt.tenants' end),
    (case when owner.rolsuper or owner.rolbypassrls
          then 'tenants can read it and its owner ' || owner.rolname || ' bypasses row-level security' end)
) as p(problem)
where 'select' = any(a.privs) and p.problem is not null`)
}

// checkIndexes: every index on a relation an analytics view reads is led by customer_id when its leading column
// is one the view uses. Otherwise a tenant's own (leakproof) predicate on that column can drive the scan under
// the barrier, the view's customer filter becomes a plain Filter, and EXPLAIN ANALYZE's "Rows Removed by
// Filter" counts other customers' rows.
func checkIndexes(ctx context.Context, pool *pgxpool.Pool) ([]Violation, error) {
	return collectViolations(ctx, pool, "indexes", `
with used as (
    select distinct d.refobjid as relid, d.refobjsubid as attnum
    from pg_catalog.pg_rewrite as rw
    join pg_catalog.pg_class as v on v.oid = rw.ev_class
    join pg_catalog.pg_depend as d on d.classid = 'pg_catalog.pg_rewrite'::regclass and d.objid = rw.oid
    where v.relnamespace = 'analytics'::regnamespace and v.relkind = 'v'
      and d.refclassid = 'pg_catalog.pg_class'::regclass and d.refobjsubid > 0
      and d.refobjid <> 'elt.tenants'::regclass -- the map is read only by the view's own filter
)
select distinct i.indexrelid::regclass::text,
       'leads with ' || a.attname || ', not customer_id, on ' || i.indrelid::regclass::text ||
       ', which an analytics view reads: EXPLAIN ANALYZE of a tenant''s query on ' || a.attname || ' can count other customers'' rows'
from pg_catalog.pg_index as i
join used as u on u.relid = i.indrelid and u.attnum = i.indkey[0]
join pg_catalog.pg_attribute as a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
where a.attname <> 'customer_id'`)
}

// checkFunctions: no SECURITY DEFINER function a tenant can call lacks a fixed search_path.
func checkFunctions(ctx context.Context, pool *pgxpool.Pool) ([]Violation, error) {
	return collectViolations(ctx, pool, "functions", tenantRoles+`
select distinct p.oid::regprocedure::text, 'is SECURITY DEFINER without a fixed search_path and ' || tr.rolname || ' can execute it'
from pg_catalog.pg_proc as p
cross join tenant_roles as tr
where p.prosecdef
  and not exists (select from unnest(p.proconfig) as c where c like 'search\_path=%')
  and has_schema_privilege(tr.oid, p.pronamespace, 'usage')
  and has_function_privilege(tr.oid, p.oid, 'execute')`)
}

// checkPublic: what PUBLIC still has that would help a tenant (see elt.harden_database()).
func checkPublic(ctx context.Context, pool *pgxpool.Pool) ([]Violation, error) {
	return collectViolations(ctx, pool, "PUBLIC privileges", `
select 'database ' || current_database(), 'PUBLIC may create temporary objects (call elt.harden_database() as the database owner)'
where exists (select from pg_catalog.pg_database as d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) as a
              where d.datname = current_database() and a.grantee = 0 and a.privilege_type = 'TEMPORARY')
union all
select 'schema public', 'PUBLIC may create objects in it'
where exists (select from pg_catalog.pg_namespace as n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) as a
              where n.nspname = 'public' and a.grantee = 0 and a.privilege_type = 'CREATE')
union all
select p.oid::regprocedure::text, 'PUBLIC may execute it (call elt.harden_database() as a superuser)'
from pg_catalog.pg_proc as p
where p.pronamespace = 'pg_catalog'::regnamespace
  and (p.proname ~ '^pg_(try_)?advisory(_xact)?_lock(_shared)?$' or p.proname in ('lo_creat', 'lo_create', 'lo_from_bytea'))
  and exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a
              where a.grantee = 0 and a.privilege_type = 'EXECUTE')`)
}

// checkOwnership: elt_owner owns elt's schemas and everything in analytics and marts (a view owned by a
// superuser would bypass row-level security; a mart owned by someone else cannot be refreshed by elt_runner).
// Tables that elt extract creates in staging at run time may belong to whoever ran it: tenants cannot reach
// them either way.
func checkOwnership(ctx context.Context, pool *pgxpool.Pool) ([]Violation, error) {
	schemas := append(slices.Clone(privateSchemas), "analytics")
	return collectViolations(ctx, pool, "ownership", `
select 'schema ' || n.nspname, 'is owned by ' || n.nspowner::regrole || ', not elt_owner (call elt.adopt_objects())'
from pg_catalog.pg_namespace as n
where n.nspname = any($1) and n.nspowner <> 'elt_owner'::regrole
union all
select c.oid::regclass::text, 'is owned by ' || c.relowner::regrole || ', not elt_owner (call elt.adopt_objects())'
from pg_catalog.pg_class as c
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
where n.nspname in ('analytics', 'marts') and c.relkind in ('r', 'p', 'v', 'm', 'f') and c.relowner <> 'elt_owner'::regrole
union all
select p.oid::regprocedure::text, 'is owned by ' || p.proowner::regrole || ', not elt_owner (call elt.adopt_objects())'
from pg_catalog.pg_proc as p
join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
where n.nspname in ('analytics', 'marts') and p.proowner <> 'elt_owner'::regrole`, schemas)
}

// countedView is an analytics view and the private relation whose rows it filters.
type countedView struct {
	View, Base string
}

// checkCounts logs in as a short-lived probe login, maps it to each tenant's customer in turn, and compares
// what it reads through every analytics view with the owner's count of that customer's rows underneath; then,
// unmapped, the probe must read nothing at all.
func checkCounts(ctx context.Context, pool *pgxpool.Pool) ([]Violation, error) {
	rows, err := pool.Query(ctx, `
select c.oid::regclass::text,
       (select string_agg(distinct d.refobjid::regclass::text, ',')
        from pg_catalog.pg_rewrite as rw
        join pg_catalog.pg_depend as d on d.classid = 'pg_rewrite'::regclass and d.objid = rw.oid
                                      and d.refclassid = 'pg_class'::regclass
        where rw.ev_class = c.oid and d.refobjid not in (c.oid, 'elt.tenants'::regclass))
from pg_catalog.pg_class as c
where c.relnamespace = 'analytics'::regnamespace and c.relkind = 'v'
  and has_table_privilege('elt_tenant', c.oid, 'select')
order by 1`)
	if err != nil {
		return nil, fmt.Errorf("check counts: list views: %w", err)
	}
	type viewRow struct {
		View string
		Base *string
	}
	vrows, err := pgx.CollectRows(rows, pgx.RowToStructByPos[viewRow])
	if err != nil {
		return nil, fmt.Errorf("check counts: list views: %w", err)
	}
	var vs []Violation
	var views []countedView
	for _, v := range vrows {
		if v.Base == nil || strings.Contains(*v.Base, ",") {
			vs = append(vs, Violation{v.View, "cannot compare row counts: the view must read exactly one relation besides elt.tenants"})
			continue
		}
		views = append(views, countedView{View: v.View, Base: *v.Base})
	}
	var customers []string
	rows, err = pool.Query(ctx, `select customer_id from elt.tenants where kind = 'tenant' order by 1`)
	if err != nil {
		return nil, fmt.Errorf("check counts: %w", err)
	}
	if customers, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("check counts: %w", err)
	}

	probe, conn, err := openProbe(ctx, pool)
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		conn.Close(cctx)
		dropProbe(ctx, pool, probe)
	}()

	// The owner's counts of every customer's rows, one query per view; a customer without rows has no key.
	owner := make([]map[string]int64, len(views))
	if len(customers) > 0 {
		for i, v := range views {
			rows, err := pool.Query(ctx, "select customer_id, count(*) from "+v.Base+" where customer_id is not null group by 1")
			if err != nil {
				return nil, fmt.Errorf("check counts: count %s as owner: %w", v.Base, err)
			}
			owner[i] = make(map[string]int64)
			var customer string
			var n int64
			if _, err := pgx.ForEachRow(rows, []any{&customer, &n}, func() error {
				owner[i][customer] = n
				return nil
			}); err != nil {
				return nil, fmt.Errorf("check counts: count %s as owner: %w", v.Base, err)
			}
		}
	}

	for _, customer := range customers {
		if _, err := pool.Exec(ctx, `update elt.tenants set customer_id = $2 where role_name = $1`, probe, customer); err != nil {
			return nil, fmt.Errorf("check counts: map probe login: %w", err)
		}
		for i, v := range views {
			want := owner[i][customer]
			var got int64
			if err := conn.QueryRow(ctx, "select count(*) from "+v.View).Scan(&got); err != nil {
				return nil, fmt.Errorf("check counts: count %s as a tenant of %s: %w", v.View, customer, err)
			}
			if want != got {
				vs = append(vs, Violation{v.View, fmt.Sprintf("a tenant of %s reads %d rows, the owner counts %d in %s", customer, got, want, v.Base)})
			}
		}
	}
	if _, err := pool.Exec(ctx, `delete from elt.tenants where role_name = $1`, probe); err != nil {
		return nil, fmt.Errorf("check counts: unmap probe login: %w", err)
	}
	for _, v := range views {
		var got int64
		if err := conn.QueryRow(ctx, "select count(*) from "+v.View).Scan(&got); err != nil {
			return nil, fmt.Errorf("check counts: count %s as an unmapped login: %w", v.View, err)
		}
		if got != 0 {
			vs = append(vs, Violation{v.View, fmt.Sprintf("a login mapped to no customer reads %d rows", got)})
		}
	}
	return vs, nil
}

// openProbe creates a probe login (member of elt_tenant, expiring in 15 minutes should cleanup fail) mapped
// to no customer yet, and connects as it with elt's own connection settings.
func openProbe(ctx context.Context, pool *pgxpool.Pool) (string, *pgx.Conn, error) {
	role := newRoleName(rolePrefix + "probe_")
	pw := GeneratePassword()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Mapped to a customer id no customer has, until checkCounts maps it for real.
		if _, err := tx.Exec(ctx, `insert into elt.tenants (role_name, customer_id, kind) values ($1, '', 'probe')`, role); err != nil {
			return err
		}
		return createLogin(ctx, tx, role, pw, Limits{ConnectionLimit: 1}, time.Now().Add(15*time.Minute))
	})
	if err != nil {
		return "", nil, fmt.Errorf("check counts: create probe login: %w", describe(err))
	}
	cfg := pool.Config().ConnConfig.Copy()
	cfg.User, cfg.Password = role, pw
	cfg.RuntimeParams["application_name"] = "elt tenant check"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		dropProbe(ctx, pool, role)
		return "", nil, fmt.Errorf("check counts: log in as probe %s: %w", role, err)
	}
	return role, conn, nil
}

// dropProbe unmaps and drops a probe login, best effort and even when ctx is cancelled.
func dropProbe(ctx context.Context, pool *pgxpool.Pool, role string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	pool.Exec(ctx, `delete from elt.tenants where role_name = $1`, role)
	dropLogin(ctx, pool, role)
}
