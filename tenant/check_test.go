package tenant_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
)

func TestCheckPassesOnMigratedDatabase(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	for _, c := range tenanttest.Customers {
		b.Add(t, c, tenant.Limits{})
	}
	vs, err := tenant.Check(context.Background(), b.Runner, tenant.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]tenant.Violation(nil), vs); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
	// The probe login is gone.
	var probes int
	if err := b.DB.Pool.QueryRow(context.Background(), `select count(*) from elt.tenants where kind = 'probe'`).Scan(&probes); err != nil || probes != 0 {
		t.Errorf("probe rows left: %d (%v)", probes, err)
	}
}

// TestCheckFindsViolations breaks isolation one way per case, as a careless migration or DBA could, and
// expects Check to report it.
func TestCheckFindsViolations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		sql    string // run as superuser
		object string // expected Violation.Object
		want   string // substring of its Problem
	}{
		{
			name:   "GrantOnMart",
			sql:    `grant usage on schema marts to elt_tenant; grant select on marts.active_users_daily to elt_tenant`,
			object: "marts.active_users_daily",
			want:   "outside schema analytics",
		},
		{
			name:   "GrantToPublicInCore",
			sql:    `grant usage on schema core to public; grant select on core.events to public`,
			object: "core.events",
			want:   "outside schema analytics",
		},
		{
			name:   "WriteOnAnalyticsView",
			sql:    `grant insert on analytics.events to elt_tenant`,
			object: "analytics.events",
			want:   "tenants may only read",
		},
		{
			name: "UnfilteredView",
			sql: `create view analytics.all_events with (security_barrier = true) as select e.feature from core.events as e;
			      alter view analytics.all_events owner to elt_owner; grant select on analytics.all_events to elt_tenant`,
			object: "analytics.all_events",
			want:   "does not filter by session_user",
		},
		{
			name: "ViewWithoutBarrier",
			sql: `create view analytics.plain as select m.day from marts.active_users_daily as m
			      where m.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user);
			      alter view analytics.plain owner to elt_owner; grant select on analytics.plain to elt_tenant`,
			object: "analytics.plain",
			want:   "not a security_barrier view",
		},
		{
			name:   "ViewOwnedBySuperuser",
			sql:    `alter view analytics.users owner to postgres`,
			object: "analytics.users",
			want:   "bypasses row-level security",
		},
		{
			name: "TableWithoutForcedRLS",
			sql: `create table analytics.notes (customer_id text, note text); alter table analytics.notes owner to elt_owner;
			      alter table analytics.notes enable row level security;
			      create policy notes_tenant on analytics.notes using (customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user));
			      grant select on analytics.notes to elt_tenant`,
			object: "analytics.notes",
			want:   "not enabled and forced",
		},
		{
			name:   "MatviewInAnalytics",
			sql:    `create materialized view analytics.mv as select 1 as x; alter materialized view analytics.mv owner to elt_owner; grant select on analytics.mv to elt_tenant`,
			object: "analytics.mv",
			want:   "cannot carry row-level security",
		},
		{
			name: "SecurityDefinerWithoutSearchPath",
			sql: `create function analytics.f() returns int language sql security definer as 'select 1';
			      alter function analytics.f() owner to elt_owner; grant execute on function analytics.f() to elt_tenant`,
			object: "analytics.f()",
			want:   "SECURITY DEFINER without a fixed search_path",
		},
		{
			name:   "IndexNotLedByCustomer",
			sql:    `create index rollup_user_day_by_day on marts.rollup_user_day (day)`,
			object: "marts.rollup_user_day_by_day",
			want:   "leads with day, not customer_id",
		},
		{
			name:   "TempForPublic",
			sql:    `do $$ begin execute format('grant temporary on database %I to public', current_database()); end $$`,
			object: "database ",
			want:   "temporary objects",
		},
		{
			name:   "AdvisoryLockForPublic",
			sql:    `grant execute on function pg_advisory_lock(bigint) to public`,
			object: "pg_advisory_lock(bigint)",
			want:   "PUBLIC may execute",
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
			sql:    `alter role {{login}} reset all`,
			object: "login tenant_",
			want:   "has lost its statement_timeout",
		},
		{
			name:   "MartOwnedByOther",
			sql:    `create table marts.scratch (customer_id text)`,
			object: "marts.scratch",
			want:   "not elt_owner",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tenanttest.New(t)
			l := b.Add(t, "cus_0001", tenant.Limits{})
			ctx := context.Background()
			if _, err := b.DB.Pool.Exec(ctx, strings.ReplaceAll(tt.sql, "{{login}}", l.Role)); err != nil {
				t.Fatal(err)
			}
			vs, err := tenant.Check(ctx, b.Runner, tenant.CheckOptions{SkipCounts: true})
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

// TestCheckCountsFindLeakyView plants a view that filters by the map but also lets a second customer's rows
// through: the static checks pass it, the probe's row counts do not.
func TestCheckCountsFindLeakyView(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	b.Add(t, "cus_0001", tenant.Limits{})
	ctx := context.Background()
	if _, err := b.DB.Pool.Exec(ctx, `
create view analytics.leaky with (security_barrier = true) as
select m.day from marts.active_users_daily as m
where m.customer_id = (select t.customer_id from elt.tenants as t where t.role_name = session_user) or m.customer_id = 'cus_0003';
alter view analytics.leaky owner to elt_owner;
grant select on analytics.leaky to elt_tenant`); err != nil {
		t.Fatal(err)
	}
	vs, err := tenant.Check(ctx, b.Runner, tenant.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.Object)
	}
	if diff := cmp.Diff([]string{"analytics.leaky", "analytics.leaky"}, got); diff != "" {
		t.Errorf("violations (-want +got):\n%s\n%v", diff, vs)
	}
}
