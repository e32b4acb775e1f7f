// Package tenanttest sets up databases for tests of tenant isolation: a database migrated with the default
// project, a few customers' data in core, rollups and marts (built by the project's own SQL), a pool that
// logs in as elt_runner, the tenant layer, and tenant logins.
package tenanttest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tests/pgtest"
)

// Customers are the customers Seed creates: customer i (1-based) has 3*i users and 40*i events.
var Customers = []string{"cus_0001", "cus_0002", "cus_0003"}

// Bundle is one test's database.
type Bundle struct {
	DB     *pgtest.DB    // superuser access
	Runner *pgxpool.Pool // the same database logged in as elt_runner, as elt runs
	Layer  *tenant.Layer // the default project's tenant layer
}

// New returns a fresh database migrated with the default project and seeded with Seed.
func New(t testing.TB) *Bundle {
	t.Helper()
	db := pgtest.New(t)
	Seed(t, db)
	return Open(t, db)
}

// Open returns the Bundle of db, already migrated and seeded.
func Open(t testing.TB, db *pgtest.DB) *Bundle {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(db.URLAs(tenant.RunnerRole))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	runner, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runner.Close)
	layer, err := tenant.LoadLayer(ctx, runner, db.Project)
	if err != nil {
		t.Fatal(err)
	}
	return &Bundle{DB: db, Runner: runner, Layer: layer}
}

// seedSQL fills core with Customers' data (30 days of events ending 2026-11-20, five features). {{scale}}
// multiplies the events of every customer but the first.
const seedSQL = `
insert into core.customers (customer_id, name, plan, country, created_at, updated_at, staging_id, batch_id)
select 'cus_' || lpad(i::text, 4, '0'), 'Customer ' || i || ' Ltd', (array['free', 'team', 'enterprise'])[i],
       (array['FR', 'DE', 'US'])[i], timestamptz '2025-01-01' + i * interval '1 day', timestamptz '2026-11-20', i, 0
from generate_series(1, 3) as i;

insert into core.users (customer_id, user_id, email, name, role, created_at, updated_at, staging_id, batch_id)
select c.customer_id, c.customer_id || '_u' || u, 'user' || u || '@' || c.customer_id || '.example', 'User ' || u,
       'member', timestamptz '2025-02-01', timestamptz '2026-11-20', u, 0
from (select customer_id, right(customer_id, 1)::int as n from core.customers) as c
cross join lateral generate_series(1, 3 * c.n) as u;

insert into core.events (customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id)
select c.customer_id, c.customer_id || '_e' || e, c.customer_id || '_u' || (1 + e % (3 * c.n)),
       (array['dashboard.view', 'report.export', 'alert.create', 'query.run', 'share.link'])[1 + (e * c.n) % 5],
       timestamptz '2026-11-20 12:00:00+00' - ((e * 7) % 30) * interval '1 day' - (e % 11) * interval '1 hour',
       timestamptz '2026-11-20', jsonb_build_object('n', e), e, 0
from (select customer_id, right(customer_id, 1)::int as n from core.customers) as c
cross join lateral generate_series(1, 40 * c.n * (case when c.n = 1 then 1 else {{scale}} end)) as e;
`

// queueSQL queues every (customer, day) with events as a changed bucket for the rollups and marts.
const queueSQL = `
insert into marts.dirty_days (customer_id, day)
select distinct customer_id, (occurred_at at time zone 'UTC')::date from core.events;
`

// Seed loads the test data into core and builds the rollups and marts from it with the project's own
// steps (sql/040_rollups.sql, sql/marts/010_marts.sql), as a superuser.
func Seed(t testing.TB, db *pgtest.DB) {
	t.Helper()
	SeedVariant(t, db, 1, "")
}

// SeedVariant is Seed with scale times the events for cus_0002 and cus_0003, and mutate (SQL run on core
// before the rollups, "" for none), for tests that compare databases differing only in other customers'
// data.
func SeedVariant(t testing.TB, db *pgtest.DB, scale int, mutate string) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, strings.ReplaceAll(seedSQL, "{{scale}}", strconv.Itoa(scale))); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if mutate != "" {
		if _, err := db.Pool.Exec(ctx, mutate); err != nil {
			t.Fatalf("seed: mutate: %v", err)
		}
	}
	if _, err := db.Pool.Exec(ctx, queueSQL); err != nil {
		t.Fatalf("seed: %v", err)
	}
	// Each step is one simple-protocol script: one transaction, so its on-commit-drop temporary tables live
	// through it. @tenants (bound by elt refresh) becomes NULL: no pruning, every customer.
	for _, f := range []string{"sql/040_rollups.sql", "sql/marts/010_marts.sql"} {
		b, err := db.Project.ReadFile(f)
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
		script := strings.ReplaceAll(string(b), "@tenants", "null::text[]")
		if _, err := db.Pool.Exec(ctx, "begin;\n"+script+";\ncommit"); err != nil {
			t.Fatalf("seed: %s: %v", f, err)
		}
	}
}

// Login is a tenant login created for a test.
type Login struct {
	Customer, Role, Password string
}

// Add creates the login of customer as elt_runner.
func (b *Bundle) Add(t testing.TB, customer string, limits tenant.Limits) Login {
	t.Helper()
	return b.AddWith(t, customer, tenant.AddOptions{Limits: limits})
}

// AddWith creates the login of customer as elt_runner with opts.
func (b *Bundle) AddWith(t testing.TB, customer string, opts tenant.AddOptions) Login {
	t.Helper()
	tn, pw, err := tenant.Add(context.Background(), b.Runner, b.Layer, customer, opts)
	if err != nil {
		t.Fatalf("add tenant %s: %v", customer, err)
	}
	// Roles outlive the test's database: drop this one (with DATABASE_URL, the cluster is shared and kept).
	t.Cleanup(func() { DropLogin(t, b.DB, tn.Role) })
	return Login{Customer: customer, Role: tn.Role, Password: pw}
}

// DropLogin drops a tenant login left by a test, whatever it owns in the test's database.
func DropLogin(t testing.TB, db *pgtest.DB, role string) {
	ctx := context.Background()
	ident := pgx.Identifier{role}.Sanitize()
	db.Pool.Exec(ctx, `select pg_terminate_backend(pid, 5000) from pg_stat_activity where usename = $1`, role)
	var exists bool
	db.Pool.QueryRow(ctx, `select exists (select from pg_roles where rolname = $1)`, role).Scan(&exists)
	if !exists {
		return
	}
	// DROP OWNED does not take back CONNECT granted by elt_owner (Add's grant).
	db.Pool.Exec(ctx, "revoke connect on database "+pgx.Identifier{db.Name}.Sanitize()+" from "+ident+" granted by elt_owner")
	if _, err := db.Pool.Exec(ctx, "drop owned by "+ident); err != nil {
		t.Logf("drop what tenant login %s owns: %v", role, err)
	}
	if _, err := db.Pool.Exec(ctx, "drop role if exists "+ident); err != nil {
		t.Logf("drop tenant login %s: %v", role, err)
	}
}

// URL is l's connection string to the test database over TCP, as a BI tool would connect.
func (b *Bundle) URL(l Login) string {
	return b.DB.ConnString(l.Role, l.Password)
}

// Connect logs in as l; the connection is closed at the end of the test.
func (b *Bundle) Connect(t testing.TB, l Login) *pgx.Conn {
	t.Helper()
	conn, err := b.TryConnect(l)
	if err != nil {
		t.Fatalf("log in as %s (%s): %v", l.Customer, l.Role, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TryConnect logs in as l and returns the error, if any. The caller closes the connection.
func (b *Bundle) TryConnect(l Login) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(b.URL(l))
	if err != nil {
		return nil, fmt.Errorf("parse tenant URL: %w", err)
	}
	return pgx.ConnectConfig(context.Background(), cfg)
}
