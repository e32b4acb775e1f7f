package tenant_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/extract"
	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
)

// startGuard runs the guard as elt_runner until the end of the test.
func startGuard(t *testing.T, b *tenanttest.Bundle) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tenant.Guard(ctx, b.Runner, tenant.GuardOptions{Interval: 200 * time.Millisecond, Grace: time.Second})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("guard: %v", err)
		}
	})
}

// TestGuardEnforcesLiftedLimits: a tenant that lifts its own statement and idle timeouts (SET ... = 0) is
// still stopped at its login's limits by the guard, and a transaction kept alive with short statements (an
// old snapshot holding back vacuum) ends at the transaction limit. Sessions of other roles are left alone.
func TestGuardEnforcesLiftedLimits(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	l := b.Add(t, "cus_0001", tenant.Limits{StatementTimeout: time.Second, IdleInTransactionTimeout: time.Second, TransactionTimeout: 4 * time.Second})
	startGuard(t, b)
	ctx := context.Background()

	t.Run("Statement", func(t *testing.T) {
		conn := b.Connect(t, l)
		if _, err := conn.Exec(ctx, "set statement_timeout = 0"); err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		_, err := conn.Exec(ctx, "select pg_sleep(30)")
		if sqlstate(err) != "57014" || time.Since(started) > 10*time.Second {
			t.Errorf("a 30 s statement with statement_timeout 0: %v after %s, want query_canceled (57014) within seconds", err, time.Since(started))
		}
	})
	t.Run("IdleInTransaction", func(t *testing.T) {
		conn := b.Connect(t, l)
		if _, err := conn.Exec(ctx, "set idle_in_transaction_session_timeout = 0"); err != nil {
			t.Fatal(err)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "select count(*) from events"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if _, err := tx.Exec(ctx, "select 1"); err == nil {
			t.Error("a transaction idle for 3 s (limit 1 s, session timeout lifted) is still alive")
		}
	})
	t.Run("TransactionAge", func(t *testing.T) {
		conn := b.Connect(t, l)
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		for time.Since(started) < 15*time.Second {
			if _, err = tx.Exec(ctx, "select count(*) from events"); err != nil {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if err == nil || time.Since(started) > 10*time.Second {
			t.Errorf("a repeatable-read transaction kept busy with short statements: %v after %s, want it ended after about 4 s", err, time.Since(started))
		}
	})
	t.Run("OtherRolesUntouched", func(t *testing.T) {
		if _, err := b.Runner.Exec(ctx, "select pg_sleep(2)"); err != nil {
			t.Errorf("elt_runner's 2 s statement: %v", err)
		}
	})
}

// TestTempFileLimit: a tenant's sort that spills more than its temp_file_limit fails, and the tenant cannot
// lift the limit.
func TestTempFileLimit(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	l := b.Add(t, "cus_0001", tenant.Limits{TempFileLimit: 1024})
	conn := b.Connect(t, l)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "set work_mem = '64kB'"); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctx, "select count(*) from (select g from generate_series(1, 2000000) as g order by g desc) as s")
	if sqlstate(err) != "53400" {
		t.Errorf("a sort spilling past 1 MB of temporary files: %v, want configuration_limit_exceeded (53400)", err)
	}
	if _, err := conn.Exec(ctx, "set temp_file_limit = -1"); sqlstate(err) != "42501" {
		t.Errorf("set temp_file_limit = -1: %v, want 42501", err)
	}
}

// TestPurge: remove --purge drops the customer's partitions, deletes its rows everywhere else and its raw
// staging records, records the purge, refuses the customer from then on, and deletes data of it that arrives
// later (Refuse, which elt refresh runs before its steps).
func TestPurge(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	// Raw records of two customers in staging.events, as elt extract loads them.
	if err := extract.EnsureStagingTable(ctx, b.DB.Pool, "events", "test"); err != nil {
		t.Fatal(err)
	}
	stage := func(customers ...string) int64 {
		var batch int64
		err := b.DB.Pool.QueryRow(ctx, `
with run as (insert into elt.runs (kind, target, status) values ('extract', 'test', 'succeeded') returning run_id)
insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
select run_id, 'demo', 'events', 'events', $1, 0 from run returning batch_id`, len(customers)).Scan(&batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range customers {
			rec, _ := json.Marshal(map[string]any{"id": c + "_raw" + string(rune('a'+i)), "customer_id": c})
			if _, err := b.DB.Pool.Exec(ctx, `insert into staging.events (batch_id, record) values ($1, $2)`, batch, rec); err != nil {
				t.Fatal(err)
			}
		}
		return batch
	}
	stage("cus_0001", "cus_0002", "cus_0002")
	b.Add(t, "cus_0001", tenant.Limits{})
	two := b.Add(t, "cus_0002", tenant.Limits{})

	if _, err := tenant.Purge(ctx, b.Runner, b.Layer, "cus_0002"); err == nil {
		t.Error("Purge of a customer whose login is active succeeded; want it to ask for Remove first")
	}
	if _, err := tenant.Remove(ctx, b.Runner, "cus_0002"); err != nil {
		t.Fatal(err)
	}
	counts, err := tenant.Purge(ctx, b.Runner, b.Layer, "cus_0002")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"core.customers": 1, "core.users": 6, "core.events": 80, "staging.events": 2,
		"marts.rollup_customer_day": 30, "marts.rollup_feature_day": 0, "marts.rollup_user_day": 0,
		"marts.active_users_weekly": 0, "marts.active_users_monthly": 0, "marts.user_activity": 6,
		"marts.retention_weekly": 0, "marts.rollup_user_week": 0, "marts.rollup_user_month": 0, "marts.rollup_user": 6,
	}
	// The exact counts of the rollups follow the seed's dates; what matters is that each table lost every row
	// of cus_0002 and the counts say how many.
	for table := range want {
		var left int64
		if err := b.DB.Pool.QueryRow(ctx, "select count(*) from "+table+" where "+keyExpr(table)+" = 'cus_0002'").Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Errorf("%s still has %d rows of cus_0002", table, left)
		}
		if counts[table] == 0 && want[table] != 0 {
			t.Errorf("purge counted no rows of %s", table)
		}
	}
	for _, table := range []string{"core.customers", "core.users", "core.events", "staging.events"} {
		if counts[table] != want[table] {
			t.Errorf("purge counted %d rows of %s, want %d", counts[table], table, want[table])
		}
	}
	var partitions int
	if err := b.DB.Pool.QueryRow(ctx, `select count(*) from pg_class where relispartition and relname like '%\_' || right($1, 16)`, two.Role).Scan(&partitions); err != nil {
		t.Fatal(err)
	}
	if partitions != 0 {
		t.Errorf("%d partitions of cus_0002 left after the purge", partitions)
	}
	var recorded map[string]int64
	var by string
	if err := b.DB.Pool.QueryRow(ctx, `select rows, purged_by from elt.purges where tenant_key = 'cus_0002'`).Scan(&recorded, &by); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(counts, recorded); diff != "" || by != "elt_runner" {
		t.Errorf("elt.purges records %v by %s; want the counts by elt_runner (-counts +recorded):\n%s", recorded, by, diff)
	}
	if _, _, err := tenant.Add(ctx, b.Runner, b.Layer, "cus_0002", tenant.AddOptions{AllowUnknownCustomer: true}); !errors.Is(err, tenant.ErrPurged) {
		t.Errorf("Add of a purged customer: %v, want ErrPurged", err)
	}
	// cus_0001 kept everything.
	var own int64
	if err := b.DB.Pool.QueryRow(ctx, `select count(*) from core.events where customer_id = 'cus_0001'`).Scan(&own); err != nil || own != 40 {
		t.Errorf("cus_0001 has %d events after the purge of cus_0002 (%v), want 40", own, err)
	}

	// The source still exports cus_0002: its records arrive in a new batch, and a row of it reaches core
	// (in the default partition). Refuse deletes both and counts them.
	hi := stage("cus_0002", "cus_0001")
	if _, err := b.DB.Pool.Exec(ctx, `insert into core.customers (customer_id, name, updated_at, staging_id, batch_id) values ('cus_0002', 'back', now(), 1, $1)`, hi); err != nil {
		t.Fatal(err)
	}
	n, err := tenant.Refuse(ctx, b.Runner, b.Layer, hi, nil)
	if err != nil {
		t.Fatal(err)
	}
	var refused, through int64
	if err := b.DB.Pool.QueryRow(ctx, `select refused, through_batch from elt.purges where tenant_key = 'cus_0002'`).Scan(&refused, &through); err != nil {
		t.Fatal(err)
	}
	if n != 2 || refused != 2 || through != hi {
		t.Errorf("Refuse deleted %d rows, elt.purges says %d refused through batch %d; want 2, 2, %d", n, refused, through, hi)
	}
	var rawLeft, rawOwn int64
	if err := b.DB.Pool.QueryRow(ctx, `select count(*) filter (where record ->> 'customer_id' = 'cus_0002'), count(*) filter (where record ->> 'customer_id' = 'cus_0001') from staging.events`).Scan(&rawLeft, &rawOwn); err != nil {
		t.Fatal(err)
	}
	if rawLeft != 0 || rawOwn != 2 {
		t.Errorf("staging.events after Refuse: %d records of cus_0002, %d of cus_0001; want 0 and 2", rawLeft, rawOwn)
	}
}

// keyExpr is how the customer of a row of table is found.
func keyExpr(table string) string {
	if table == "staging.events" {
		return "record ->> 'customer_id'"
	}
	return "customer_id"
}
