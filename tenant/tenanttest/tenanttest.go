// Package tenanttest sets up databases for tests of tenant isolation: a database migrated with the default
// project, a few customers' data in core, rollups and marts (built by the project's own SQL), a pool that
// logs in as elt_runner, the tenant layer, and tenant logins.
package tenanttest

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// seedSQL fills the default project's core tables with Customers' data; queueSQL queues every day with events
// for its rollups and marts. They are SQL files of this package, so that no Go code names the model.
var (
	//go:embed seed.sql
	seedSQL string
	//go:embed queue.sql
	queueSQL string
	// keysSQL is the expression that stands for @tenants in the steps the seed runs: every customer.
	//go:embed keys.sql
	keysSQL string
)

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
	// through it. @tenants (bound by elt refresh to a unit's customers) becomes every customer; @rebuild false
	// (the tables are empty, so the deletes of a step's own rows find nothing either way); @as_of, the run's
	// clock, the day after the data's last; the batch window, every batch.
	for _, f := range []string{"sql/040_rollups.sql", "sql/marts/010_marts.sql"} {
		b, err := db.Project.ReadFile(f)
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
		script := strings.NewReplacer("@tenants", strings.TrimSpace(keysSQL),
			"@rebuild", "false", "@as_of", "timestamptz '2026-11-21 12:00:00+00'", "@batch_from", "0", "@batch_to", "9223372036854775807").Replace(string(b))
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
	// DROP OWNED takes back only what the dropping role granted: the rights on the database that others
	// granted (Add's CONNECT, by elt_owner) are revoked as each grantor (REVOKE ... GRANTED BY must name the
	// current role).
	if err := revokeDatabaseGrants(ctx, db, role); err != nil {
		t.Logf("revoke the rights of tenant login %s on database %s: %v", role, db.Name, err)
	}
	if _, err := db.Pool.Exec(ctx, "drop owned by "+ident); err != nil {
		t.Logf("drop what tenant login %s owns: %v", role, err)
	}
	if _, err := db.Pool.Exec(ctx, "drop role if exists "+ident); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Detail != "" {
			err = fmt.Errorf("%w (%s)", err, pe.Detail)
		}
		t.Logf("drop tenant login %s: %v", role, err)
	}
}

// revokeDatabaseGrants revokes every right role holds on db's database, on one session, as each role that
// granted it.
func revokeDatabaseGrants(ctx context.Context, db *pgtest.DB, role string) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, `select distinct a.grantor::regrole::text from pg_catalog.pg_database as d,
		pg_catalog.aclexplode(d.datacl) as a where d.datname = current_database() and a.grantee = $1::regrole`, role)
	if err != nil {
		return err
	}
	grantors, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, g := range grantors { // g is regrole's output: an identifier, quoted where it must be
		_, err := conn.Exec(ctx, "set role "+g+"; revoke all on database "+pgx.Identifier{db.Name}.Sanitize()+
			" from "+pgx.Identifier{role}.Sanitize()+"; reset role")
		if err != nil {
			conn.Exec(ctx, "reset role")
			return fmt.Errorf("as %s: %w", g, err)
		}
	}
	return nil
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
