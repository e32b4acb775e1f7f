// Package tenanttest sets up databases for tests of tenant isolation: a migrated, hardened database with
// a few customers' data in core and the marts, a pool that acts as elt_runner, and tenant logins.
package tenanttest

import (
	"context"
	"fmt"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	elt "github.com/elt-dev/elt"
	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tests/pgtest"
)

// Customers are the customers Seed creates: customer i (1-based) has 3*i users and 40*i events.
var Customers = []string{"cus_0001", "cus_0002", "cus_0003"}

// Bundle is one test's database.
type Bundle struct {
	DB     *pgtest.DB    // superuser access
	Runner *pgxpool.Pool // the same database as elt_runner (SET ROLE), as elt runs
}

// New returns a fresh migrated database, hardened (elt.harden_database(): a database cloned from a template
// does not inherit the template's database privileges) and seeded with Seed.
func New(t testing.TB) *Bundle {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `call elt.harden_database()`); err != nil {
		t.Fatalf("harden database: %v", err)
	}
	Seed(t, db.Pool)
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "set role "+tenant.RunnerRole)
		return err
	}
	runner, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runner.Close)
	return &Bundle{DB: db, Runner: runner}
}

// seedSQL fills core with Customers' data (30 days of events ending 2026-11-20, five features) and queues
// every day for the rollups.
const seedSQL = `
insert into core.customers (customer_id, name, plan, country, created_at, updated_at, staging_id, batch_id)
select 'cus_' || lpad(i::text, 4, '0'), 'Customer ' || i || ' Ltd', (array['free', 'team', 'enterprise'])[i],
       (array['FR', 'DE', 'US'])[i], timestamptz '2025-01-01' + i * interval '1 day', now(), i, 0
from generate_series(1, 3) as i;

insert into core.users (customer_id, user_id, email, name, role, created_at, updated_at, staging_id, batch_id)
select c.customer_id, c.customer_id || '_u' || u, 'user' || u || '@' || c.customer_id || '.example', 'User ' || u,
       'member', timestamptz '2025-02-01', now(), u, 0
from (select customer_id, right(customer_id, 1)::int as n from core.customers) as c
cross join lateral generate_series(1, 3 * c.n) as u;

insert into core.events (customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id)
select c.customer_id, c.customer_id || '_e' || e, c.customer_id || '_u' || (1 + e % (3 * c.n)),
       (array['dashboard.view', 'report.export', 'alert.create', 'query.run', 'share.link'])[1 + (e * c.n) % 5],
       timestamptz '2026-11-20 12:00:00+00' - ((e * 7) % 30) * interval '1 day' - (e % 11) * interval '1 hour',
       now(), jsonb_build_object('n', e), e, 0
from (select customer_id, right(customer_id, 1)::int as n from core.customers) as c
cross join lateral generate_series(1, 40 * c.n) as e;

-- Every (customer, day) with events is a changed bucket for the rollup step of elt refresh.
insert into elt.refresh_dirty_days (customer_id, day)
select distinct customer_id, (occurred_at at time zone 'UTC')::date from core.events;
`

// Seed loads the test data into core and builds the rollups and marts from it with elt refresh's own SQL
// (pool: a superuser or a member of elt_owner).
func Seed(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, seedSQL); err != nil {
		t.Fatalf("seed: %v", err)
	}
	// The rollups are built by elt refresh's own step (one simple-protocol script: one transaction, so its
	// on-commit-drop temporary tables live through it), then the marts are refreshed.
	rollups, err := fs.ReadFile(elt.SQL, "sql/040_rollups.sql")
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if _, err := pool.Exec(ctx, string(rollups)+";\ndelete from elt.refresh_dirty_days"); err != nil {
		t.Fatalf("seed: sql/040_rollups.sql: %v", err)
	}
	rows, err := pool.Query(ctx, `select format('%I.%I', schemaname, matviewname) from pg_matviews where schemaname = 'marts' order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	mvs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, mv := range mvs {
		if _, err := pool.Exec(ctx, "refresh materialized view "+mv); err != nil {
			t.Fatalf("seed: refresh %s: %v", mv, err)
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
	tn, pw, err := tenant.Add(context.Background(), b.Runner, customer, tenant.AddOptions{Limits: limits})
	if err != nil {
		t.Fatalf("add tenant %s: %v", customer, err)
	}
	// Roles outlive the test's database: drop this one (with DATABASE_URL, the cluster is shared and kept).
	t.Cleanup(func() {
		ctx := context.Background()
		ident := pgx.Identifier{tn.Role}.Sanitize()
		b.DB.Pool.Exec(ctx, `select pg_terminate_backend(pid, 5000) from pg_stat_activity where usename = $1`, tn.Role)
		if _, err := b.DB.Pool.Exec(ctx, "drop role if exists "+ident); err != nil {
			t.Logf("drop tenant login %s: %v", tn.Role, err)
		}
	})
	return Login{Customer: customer, Role: tn.Role, Password: pw}
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
