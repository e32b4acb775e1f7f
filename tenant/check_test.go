package tenant_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
	"github.com/elt-dev/elt/tests/pgtest"
)

func TestCheckPassesOnMigratedDatabase(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	for _, c := range tenanttest.Customers {
		b.Add(t, c, tenant.Limits{})
	}
	vs, err := tenant.Check(context.Background(), b.Runner, b.Layer)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]tenant.Violation(nil), vs); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

// TestCheckFindsViolations breaks isolation one way per case, as a careless migration, DBA or tenant could,
// and expects Check to report it. {{login}} is the test's tenant login (cus_0001), {{other}} another
// tenant's (cus_0002).
func TestCheckFindsViolations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		sql    string // run as superuser ({{as_login}}: as the tenant)
		undo   string // run as superuser at the end (for what outlives the test's database)
		object string // expected Violation.Object prefix
		want   string // substring of its Problem
	}{
		{
			// Latent: no schema usage yet, but the grant is there for the day someone grants the schema.
			name:   "LatentGrantOnMart",
			sql:    `grant select on marts.active_users_weekly to elt_tenant`,
			object: "marts.active_users_weekly",
			want:   "elt_tenant has select on it",
		},
		{
			name:   "GrantToPublicInCore",
			sql:    `grant usage on schema core to public; grant select on core.events to public`,
			object: "core.events",
			want:   "PUBLIC has select on it",
		},
		{
			name:   "SchemaUsageForPublic",
			sql:    `grant usage on schema core to public`,
			object: "schema core",
			want:   "PUBLIC has usage on it",
		},
		{
			name:   "GrantOnOtherTenantsView",
			sql:    `grant select on {{other}}.events to {{login}}`,
			object: "tenant_",
			want:   "has select on it: a tenant may read only the views of its own schema",
		},
		{
			name:   "GrantOnPartition",
			sql:    `grant select on core.{{events_default}} to {{login}}`,
			object: "core.events_default",
			want:   "a tenant may read only the views of its own schema",
		},
		{
			name:   "WriteOnOwnView",
			sql:    `grant insert on {{login}}.events to {{login}}`,
			object: "tenant_",
			want:   "has insert on it: a tenant may only read its views",
		},
		{
			name:   "ColumnGrant",
			sql:    `grant select (name) on core.customers to elt_tenant`,
			object: "core.customers.name",
			want:   "elt_tenant has select on this column",
		},
		{
			name: "ViewReadsSharedTable",
			sql: `create or replace view {{login}}.events as select e.event_id, e.user_id, e.feature, e.occurred_at, e.properties from core.events as e;
			      alter view {{login}}.events owner to elt_owner`,
			object: "tenant_",
			want:   "which is not a partition",
		},
		{
			name: "ViewReadsOtherTenantsPartition",
			sql: `create or replace view {{login}}.events as select e.event_id, e.user_id, e.feature, e.occurred_at, e.properties from core.{{other_events}} as e;
			      alter view {{login}}.events owner to elt_owner`,
			object: "tenant_",
			want:   "not to this tenant's key",
		},
		{
			name:   "ExtraViewInTenantSchema",
			sql:    `create view {{login}}.extra as select 1 as x; alter view {{login}}.extra owner to elt_owner`,
			object: "tenant_",
			want:   "is a view elt.yaml does not publish",
		},
		{
			name:   "MatviewInTenantSchema",
			sql:    `create materialized view {{login}}.mv as select 1 as x; alter materialized view {{login}}.mv owner to elt_owner`,
			object: "tenant_",
			want:   "is not a view",
		},
		{
			name:   "ViewOwnedBySuperuser",
			sql:    `alter view {{login}}.users owner to postgres`,
			object: "tenant_",
			want:   "is owned by postgres, not elt_owner",
		},
		{
			name:   "CommentChanged",
			sql:    `comment on column {{login}}.events.feature is 'something else'`,
			object: "tenant_",
			want:   "its comment differs",
		},
		{
			name:   "ViewDropped",
			sql:    `drop view {{login}}.retention_weekly`,
			object: "tenant cus_0001",
			want:   "lacks tenant_",
		},
		{
			// A definer function with a fixed search_path that returns private data, callable from a schema the
			// tenant can use.
			name: "SecurityDefinerLeak",
			sql: `create function public.names() returns setof text language sql security definer set search_path = pg_catalog
			      as 'select name from core.customers'`,
			object: "names()",
			want:   "is SECURITY DEFINER",
		},
		{
			name:   "DefaultPrivilegesToPublic",
			sql:    `alter default privileges for role elt_owner in schema marts grant select on tables to public`,
			object: "default privileges of elt_owner in schema marts",
			want:   "grant select to PUBLIC",
		},
		{
			// What a tenant may do to itself, and which would make elt tenant remove fail if not handled.
			name:   "TenantSetsDefaultPrivileges",
			sql:    `{{as_login}}alter default privileges grant select on tables to public`,
			object: "login tenant_",
			want:   "owns default privileges",
		},
		{
			name:   "TempForPublic",
			sql:    `do $$ begin execute format('grant temporary on database %I to public', current_database()); end $$`,
			object: "database ",
			want:   "PUBLIC has temporary",
		},
		{
			name:   "ConnectForPublic",
			sql:    `do $$ begin execute format('grant connect on database %I to public', current_database()); end $$`,
			object: "database ",
			want:   "PUBLIC has connect",
		},
		{
			name:   "AdvisoryLockForPublic",
			sql:    `grant execute on function pg_advisory_lock(bigint) to public`,
			object: "pg_advisory_lock(bigint)",
			want:   "PUBLIC may execute",
		},
		{
			name:   "SizeFunctionForPublic",
			sql:    `grant execute on function pg_relation_size(regclass) to public`,
			object: "pg_relation_size(regclass)",
			want:   "depends on other tenants' data",
		},
		{
			name:   "StatisticsViewForPublic",
			sql:    `grant select on pg_stat_user_tables to public`,
			object: "pg_stat_user_tables",
			want:   "depends on other tenants' data",
		},
		{
			name:   "RowCountsForPublic",
			sql:    `grant select (reltuples) on pg_class to public`,
			object: "pg_catalog.pg_class.reltuples",
			want:   "depends on other tenants' data",
		},
		{
			// Roles are shared by the cluster (and by parallel tests): only the test's own login is changed.
			name:   "TenantGrantedOwner",
			sql:    `grant elt_owner to {{login}}`,
			object: "login tenant_",
			want:   "is a member of elt_owner besides elt_tenant",
		},
		{
			// What a tenant may do to itself: ALTER ROLE <itself> RESET ALL.
			name:   "TenantResetItsDefaults",
			sql:    `{{as_login}}alter role {{login}} reset all`,
			object: "login tenant_",
			want:   "has lost a session default",
		},
		{
			name:   "TenantConnectionLimitChanged",
			sql:    `alter role {{login}} connection limit 500`,
			object: "login tenant_",
			want:   "has connection limit 500, not 10",
		},
		{
			name:   "TenantCanConnectElsewhere",
			sql:    `grant connect on database postgres to {{login}}`,
			object: "database postgres",
			want:   "tenant logins can connect to it",
		},
		{
			// A system catalog leaves no pg_depend row (it is pinned): the check reads the view's range table.
			name: "ViewReadsSystemCatalog",
			sql: `create or replace view {{login}}.users as select c.relname::text collate "default" as user_id, c.relname::text collate "default" as email, c.relname::text collate "default" as name, c.relname::text collate "default" as role, null::timestamptz as created_at from pg_catalog.pg_class as c;
			      alter view {{login}}.users owner to elt_owner`,
			object: "tenant_",
			want:   "reads pg_class, which is not a partition",
		},
		{
			name:   "ParameterGrantToTenant",
			sql:    `grant set on parameter temp_file_limit to {{login}}`,
			undo:   `revoke set on parameter temp_file_limit from {{login}}`,
			object: "parameter temp_file_limit",
			want:   "has set on it",
		},
		{
			name:   "TenantSettingsForThisDatabase",
			sql:    `do $$ begin execute format('alter role {{login}} in database %I set statement_timeout = 0', current_database()); end $$`,
			object: "login tenant_",
			want:   "has settings of its own for this database (statement_timeout=0)",
		},
		{
			name:   "CatalogGrantToTenant",
			sql:    `grant select on pg_catalog.pg_statistic to {{login}}`,
			object: "pg_statistic",
			want:   "has select on this system catalog",
		},
		{
			name:   "CatalogColumnGrantToTenant",
			sql:    `grant select (reltuples) on pg_catalog.pg_class to {{login}}`,
			object: "pg_class.reltuples",
			want:   "has select on this system catalog column",
		},
		{
			name:   "CatalogFunctionToEltTenant",
			sql:    `grant execute on function pg_relation_size(regclass) to elt_tenant`,
			object: "pg_relation_size(regclass)",
			want:   "elt_tenant has execute on this system function",
		},
		{
			// Its own partition, but through a function: elt's views only select columns.
			name: "ViewCallsFunction",
			sql: `create or replace view {{login}}.events as select e.event_id, e.user_id, e.feature, e.occurred_at, pg_catalog.jsonb_strip_nulls(e.properties) as properties from core.{{own_events}} as e;
			      alter view {{login}}.events owner to elt_owner`,
			object: "tenant_",
			want:   "computes something",
		},
		{
			name:   "MapRowWithoutLogin",
			sql:    `insert into elt.tenants (tenant_key, role_name, connection_limit, statement_timeout, idle_in_transaction_timeout, transaction_timeout, temp_file_limit_kb) values ('cus_0003', 'tenant_00000000000000ff', 10, '1m', '1m', '15m', 1048576)`,
			object: "tenant cus_0003",
			want:   "does not exist",
		},
		{
			name:   "LeftoverTenantSchema",
			sql:    `create schema tenant_00000000000000fe`,
			object: "schema tenant_00000000000000fe",
			want:   "belongs to no active tenant",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tenanttest.New(t)
			l := b.Add(t, "cus_0001", tenant.Limits{})
			o := b.Add(t, "cus_0002", tenant.Limits{})
			ctx := context.Background()
			sql := strings.NewReplacer("{{login}}", l.Role, "{{other}}", o.Role,
				"{{other_events}}", tenant.PartitionName("events", o.Role),
				"{{own_events}}", tenant.PartitionName("events", l.Role),
				"{{events_default}}", tenant.DefaultPartitionName("events")).Replace(tt.sql)
			if tt.undo != "" {
				undo := strings.ReplaceAll(tt.undo, "{{login}}", l.Role)
				t.Cleanup(func() { b.DB.Pool.Exec(context.Background(), undo) })
			}
			if q, ok := strings.CutPrefix(sql, "{{as_login}}"); ok {
				conn := b.Connect(t, l)
				if _, err := conn.Exec(ctx, "set default_transaction_read_only = off"); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			} else if _, err := b.DB.Pool.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
			vs, err := tenant.Check(ctx, b.Runner, b.Layer)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vs {
				if strings.HasPrefix(v.Object, tt.object) && strings.Contains(v.Problem, tt.want) {
					return
				}
			}
			t.Errorf("no violation on %s containing %q; got %v", tt.object, tt.want, vs)
		})
	}
}

// TestCheckFindsPrivilegedRoles: a role elt sets up that could grant itself a predefined role (createrole on
// PostgreSQL 15), members of the role that has that power, and a right of elt_tenant on a database. Roles are
// shared by a cluster: the test has one of its own, where each case changes a role and puts it back.
func TestCheckFindsPrivilegedRoles(t *testing.T) {
	t.Parallel()
	db := pgtest.NewServer(t, nil).New(t, pgtest.DefaultProject(t))
	tenanttest.Seed(t, db)
	b := tenanttest.Open(t, db)
	ctx := context.Background()
	tests := []struct {
		name, do, undo, object, want string
	}{
		{"RunnerCreaterole", `alter role elt_runner createrole`, `alter role elt_runner nocreaterole`,
			"role elt_runner", "has createrole"},
		{"RunnerServerProgram", `grant pg_execute_server_program to elt_runner`, `revoke pg_execute_server_program from elt_runner`,
			"role elt_runner", "is a member of pg_execute_server_program"},
		{"AdminHasMember", `grant elt_tenant_admin to elt_runner`, `revoke elt_tenant_admin from elt_runner`,
			"role elt_tenant_admin", "has member elt_runner"},
		// elt_tenant is the cluster's: a grant to it on any database is every tenant's, so every check of the
		// cluster reports it (a shared cluster's other tests included, hence here).
		{"TempForEltTenant", `do $$ begin execute format('grant temporary on database %I to elt_tenant', current_database()); end $$`,
			`do $$ begin execute format('revoke temporary on database %I from elt_tenant', current_database()); end $$`,
			"database ", "elt_tenant has temporary on it: a tenant may only connect"},
	}
	for _, tt := range tests {
		if _, err := b.DB.Pool.Exec(ctx, tt.do); err != nil {
			t.Fatal(err)
		}
		vs, err := tenant.Check(ctx, b.Runner, b.Layer)
		if _, uerr := b.DB.Pool.Exec(ctx, tt.undo); uerr != nil {
			t.Fatal(uerr)
		}
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, v := range vs {
			found = found || strings.HasPrefix(v.Object, tt.object) && strings.Contains(v.Problem, tt.want)
		}
		if !found {
			t.Errorf("%s: no violation on %s containing %q; got %v", tt.name, tt.object, tt.want, vs)
		}
	}
}
