package refresh_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/extract"
	"github.com/elt-dev/elt/refresh"
	"github.com/elt-dev/elt/tests/pgtest"
)

// rec is one staging record (and its parent record, for users extracted as children of customers).
type rec struct {
	record map[string]any
	parent map[string]any
}

// batch is what one extract batch loads into one staging table.
type batch struct {
	table   string // customers, users or events
	records []rec
}

// load commits each batch as extract would: an elt.batches row and the records in staging, in order.
func load(t testing.TB, pool *pgxpool.Pool, batches ...batch) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var runID int64
		if err := tx.QueryRow(ctx, `insert into elt.runs (kind, target, status) values ('extract', 'test', 'succeeded') returning run_id`).Scan(&runID); err != nil {
			return err
		}
		for _, b := range batches {
			var batchID int64
			if err := tx.QueryRow(ctx, `insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
				values ($1, 'test', $2, $3, $4, 0) returning batch_id`, runID, b.table, b.table, len(b.records)).Scan(&batchID); err != nil {
				return err
			}
			table := pgx.Identifier{"staging", b.table}.Sanitize()
			for _, r := range b.records {
				rj, err := json.Marshal(r.record)
				if err != nil {
					return err
				}
				var pj []byte
				if r.parent != nil {
					if pj, err = json.Marshal(r.parent); err != nil {
						return err
					}
				}
				if _, err := tx.Exec(ctx, "insert into "+table+" (batch_id, record, parent) values ($1, $2, $3)", batchID, rj, pj); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("load staging: %v", err)
	}
}

// project is the default project (the repository's root), whose SQL these tests run.
var project = os.DirFS(pgtest.RepoRoot())

// schemas are the default project's schemas.
var schemas = []string{"core", "marts"}

// clock is the run's clock (@as_of) of the tests that do not set their own: a fixed time, so that what is
// "today" and "complete" does not depend on when the tests run.
var clock = time.Date(2026, 4, 15, 12, 0, 0, 0, time.UTC)

// opts completes o with the default project and, without a clock of its own, the fixed clock.
func opts(o refresh.Options) refresh.Options {
	if o.Project == nil {
		o.Project = project
	}
	if o.Schemas == nil {
		o.Schemas = schemas
	}
	if o.AsOf.IsZero() {
		o.AsOf = clock
	}
	return o
}

// run refreshes at the fixed clock and fails the test on error.
func run(t testing.TB, pool *pgxpool.Pool, full bool) *refresh.Result {
	t.Helper()
	return runAt(t, pool, full, clock)
}

// runAt refreshes with the run's clock at asOf and fails the test on error.
func runAt(t testing.TB, pool *pgxpool.Pool, full bool, asOf time.Time) *refresh.Result {
	t.Helper()
	res, err := refresh.Run(context.Background(), pool, opts(refresh.Options{Full: full, AsOf: asOf}))
	if err != nil {
		t.Fatalf("refresh (full=%v, as of %s): %v", full, asOf.Format(time.RFC3339), err)
	}
	return res
}

// snapshotTables are the tables compared by the golden and equality tests, with the columns compared
// (staging_id and batch_id of core depend on load order, not on the data).
var snapshotTables = []struct{ name, columns string }{
	{"core.customers", "customer_id, name, plan, country, created_at, updated_at, time_zone"},
	{"core.users", "customer_id, user_id, email, name, role, created_at, updated_at"},
	{"core.events", "customer_id, event_id, user_id, feature, occurred_at, updated_at, properties"},
	{"marts.rollup_customer_day", "*"},
	{"marts.active_users_weekly", "*"},
	{"marts.active_users_monthly", "*"},
	{"marts.rollup_feature_day", "*"},
	{"marts.user_activity", "*"},
	{"marts.retention_weekly", "*"},
	{"marts.active_users_rolling", "*"},
	{"marts.user_lifecycle", "*"},
	{"marts.retention_signup", "*"},
	{"marts.feature_first_use", "*"},
	{"marts.feature_adoption", "*"},
}

// rollupTables are compared between the incremental and full paths too.
var rollupTables = []string{
	"marts.rollup_user_day", "marts.rollup_user_week", "marts.rollup_user_month", "marts.rollup_user", "marts.customer_overview",
	"marts.customer_clock",
}

// snapshot renders a table as sorted tab-separated lines (header first), in UTC, as psql would print them.
func snapshot(t testing.TB, pool *pgxpool.Pool, table, columns string) string {
	t.Helper()
	header, lines := pgtest.Rows(t, pool, table, columns)
	return strings.Join(append([]string{strings.Join(header, "\t")}, lines...), "\n") + "\n"
}

// snapshotAll snapshots the core tables, the marts and, with rollups, the rollup tables.
func snapshotAll(t testing.TB, pool *pgxpool.Pool, rollups bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range snapshotTables {
		out[s.name] = snapshot(t, pool, s.name, s.columns)
	}
	if rollups {
		for _, r := range rollupTables {
			out[r] = snapshot(t, pool, r, "*")
		}
	}
	return out
}

func customer(id, name, plan, updated string) rec {
	return rec{record: map[string]any{"id": id, "name": name, "plan": plan, "country": "IT", "created_at": "2026-01-01T00:00:00Z", "updated_at": updated}}
}

// customerIn is a customer record with a time zone.
func customerIn(zone, id, name, plan, updated string) rec {
	r := customer(id, name, plan, updated)
	r.record["timezone"] = zone
	return r
}

func user(id, customerID, role, updated string) rec {
	return rec{record: map[string]any{"id": id, "customer_id": customerID, "email": id + "@example.com", "name": "User " + id, "role": role, "created_at": "2026-01-01T00:00:00Z", "updated_at": updated}}
}

// signedUp sets the signup time (created_at) of user record r.
func signedUp(r rec, at string) rec {
	r.record["created_at"] = at
	return r
}

// childUser is a user as extracted from /customers/{id}/users: without customer_id, the customer in parent.
func childUser(id, customerID, role, updated string) rec {
	r := user(id, customerID, role, updated)
	delete(r.record, "customer_id")
	r.parent = customer(customerID, "Parent", "pro", "2026-01-01T00:00:00Z").record
	return r
}

func event(id, customerID, userID, feature, occurred, updated string) rec {
	return rec{record: map[string]any{"id": id, "customer_id": customerID, "user_id": userID, "feature": feature,
		"occurred_at": occurred, "updated_at": updated, "properties": map[string]any{"client": "web"}}}
}

func mustCount(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// newDB is a database migrated with the default project and the staging tables of the demo API's
// resources, as elt extract creates them.
func newDB(t *testing.T) *pgtest.DB {
	t.Helper()
	db := pgtest.New(t)
	for _, table := range []string{"customers", "users", "events"} {
		if err := extract.EnsureStagingTable(context.Background(), db.Pool, table, "test"); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// mapTenants maps n made-up customers to logins in elt.tenants (no roles behind them): what the @tenants rule
// counts.
func mapTenants(t testing.TB, pool *pgxpool.Pool, n int) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `insert into elt.tenants (tenant_key, role_name, connection_limit,
		statement_timeout, idle_in_transaction_timeout, transaction_timeout, temp_file_limit_kb)
		select 'cus_t' || i, 'tenant_' || lpad(i::text, 16, '0'), 10, '1m', '1m', '15m', 1048576 from generate_series(1, $1::int) as i`, n); err != nil {
		t.Fatal(err)
	}
}
