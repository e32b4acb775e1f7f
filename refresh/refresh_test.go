package refresh_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/extract"
	"github.com/elt-dev/elt/refresh"
	"github.com/elt-dev/elt/tests/oracle"
	"github.com/elt-dev/elt/tests/pgtest"
)

var update = flag.Bool("update", false, "rewrite the golden files under tests/golden/refresh")

const goldenDir = "../tests/golden/refresh"

// fixture is the small fixed dataset of the golden tests, in four extract runs. It holds the cases a
// transform must get right: a duplicated record (in one batch and across batches), an update that moves an
// event to another day and feature, a late older version that must lose, a tie on updated_at broken by load
// order, users extracted as children of their customer, customers in time zones with half-hour and
// negative offsets, one whose zone changes (every day of its events moves) and one with a zone the server does
// not know (UTC), a day boundary, a month boundary inside a week, an event outside the 30-day window of
// user_activity, and a clock that moves on between runs, the last run without new events.
var fixture = [][]batch{
	{
		{"customers", []rec{
			customerIn("Asia/Kolkata", "cus_a", "Alpha", "pro", "2026-01-01T00:00:00Z"),
			customerIn("America/New_York", "cus_b", "Beta", "free", "2026-01-01T00:00:00Z"),
			customerIn("Mars/Olympus_Mons", "cus_c", "Gamma", "free", "2026-01-01T00:00:00Z"),
		}},
		{"users", []rec{
			childUser("usr_a1", "cus_a", "member", "2026-01-01T00:00:00Z"),
			childUser("usr_a2", "cus_a", "member", "2026-01-01T00:00:00Z"),
			user("usr_b1", "cus_b", "admin", "2026-01-01T00:00:00Z"),
			user("usr_c1", "cus_c", "admin", "2026-01-01T00:00:00Z"),
		}},
		{"events", []rec{
			event("e00", "cus_a", "usr_a2", "dashboard.view", "2026-02-20T10:00:00Z", "2026-02-20T10:00:01Z"),
			event("e01", "cus_a", "usr_a1", "dashboard.view", "2026-03-30T09:00:00Z", "2026-03-30T09:00:01Z"),
			event("e01", "cus_a", "usr_a1", "dashboard.view", "2026-03-30T09:00:00Z", "2026-03-30T09:00:01Z"),
			event("e02", "cus_a", "usr_a1", "reports.export", "2026-03-30T10:00:00Z", "2026-03-30T10:00:01Z"),
			event("e03", "cus_a", "usr_a2", "dashboard.view", "2026-03-30T23:59:59Z", "2026-03-31T00:00:01Z"),
			event("e04", "cus_a", "usr_a2", "dashboard.view", "2026-03-31T00:00:00Z", "2026-03-31T00:00:01Z"),
			event("e05", "cus_a", "usr_a1", "search.query", "2026-04-01T12:00:00Z", "2026-04-01T12:00:01Z"),
			event("e08", "cus_b", "usr_b1", "alerts.create", "2026-03-31T15:00:00Z", "2026-03-31T15:00:01Z"),
			// 23:30 of March 30 in New York, 05:30 of March 31 in Berlin.
			event("e09", "cus_b", "usr_b1", "alerts.create", "2026-03-31T03:30:00Z", "2026-03-31T16:00:01Z"),
			event("e11", "cus_c", "usr_c1", "search.query", "2026-03-31T23:30:00Z", "2026-03-31T23:30:01Z"),
		}},
	},
	{
		// usr_a3 signs up on April 7 in Kolkata (20:00 UTC of April 6) and comes back the next day; usr_a4
		// signs up and never has an event.
		{"users", []rec{signedUp(childUser("usr_a3", "cus_a", "viewer", "2026-04-01T00:00:00Z"), "2026-04-06T20:00:00Z"),
			signedUp(user("usr_a4", "cus_a", "viewer", "2026-04-07T00:00:00Z"), "2026-04-07T09:00:00Z")}},
		{"events", []rec{
			// e02 updated: moved to the next day and renamed.
			event("e02", "cus_a", "usr_a1", "reports.view", "2026-03-31T10:00:00Z", "2026-04-02T00:00:00Z"),
			event("e06", "cus_a", "usr_a3", "dashboard.view", "2026-04-07T08:00:00Z", "2026-04-07T08:00:01Z"),
			event("e07", "cus_a", "usr_a1", "dashboard.view", "2026-04-08T08:00:00Z", "2026-04-08T08:00:01Z"),
			event("e12", "cus_a", "usr_a3", "search.query", "2026-04-08T02:00:00Z", "2026-04-08T02:00:01Z"),
		}},
	},
	{
		// cus_b moves from New York to Berlin: every day of its events moves.
		{"customers", []rec{customerIn("Europe/Berlin", "cus_b", "Beta", "pro", "2026-04-10T00:00:00Z")}},
		{"users", []rec{user("usr_a1", "cus_a", "admin", "2026-04-10T00:00:00Z")}},
		{"events", []rec{
			event("e01", "cus_a", "usr_a1", "dashboard.view", "2026-03-30T09:00:00Z", "2026-03-30T09:00:01Z"),
			// A late, older version of e05: loses to the version already in core.
			event("e05", "cus_a", "usr_a1", "alerts.view", "2026-04-01T12:00:00Z", "2026-04-01T11:00:00Z"),
			// Same updated_at as the first e09: the later load wins.
			event("e09", "cus_b", "usr_b1", "alerts.view", "2026-03-31T03:30:00Z", "2026-03-31T16:00:01Z"),
			event("e10", "cus_b", "usr_b1", "dashboard.view", "2026-04-14T09:00:00Z", "2026-04-14T09:00:01Z"),
		}},
	},
	{
		// A late, older version of usr_a1: loses.
		{"users", []rec{user("usr_a1", "cus_a", "viewer", "2026-03-01T00:00:00Z")}},
	},
}

// fixtureClock is the clock of the refresh after each run of the fixture: the last one loads no event and
// only moves the day on.
var fixtureClock = []time.Time{
	time.Date(2026, 4, 2, 6, 0, 0, 0, time.UTC),
	time.Date(2026, 4, 8, 6, 0, 0, 0, time.UTC),
	time.Date(2026, 4, 14, 12, 0, 0, 0, time.UTC),
	clock,
}

func goldenPath(table string) string {
	return filepath.Join(goldenDir, table+".tsv")
}

// TestGolden loads the fixture run by run with an incremental refresh after each, compares every core table
// and mart with the committed expected rows, then checks that a --full rebuild gives the same rows.
func TestGolden(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	for i, r := range fixture {
		load(t, db.Pool, r...)
		runAt(t, db.Pool, false, fixtureClock[i])
	}
	got := snapshotAll(t, db.Pool, false)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, s := range got {
			if err := os.WriteFile(goldenPath(name), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range snapshotTables {
		want, err := os.ReadFile(goldenPath(tc.name))
		if err != nil {
			t.Fatalf("read golden (run go test ./refresh -run TestGolden -update to create it): %v", err)
		}
		if diff := cmp.Diff(string(want), got[tc.name]); diff != "" {
			t.Errorf("%s after incremental refreshes differs from %s (-want +got):\n%s", tc.name, goldenPath(tc.name), diff)
		}
	}

	run(t, db.Pool, true)
	full := snapshotAll(t, db.Pool, false)
	if diff := cmp.Diff(got, full); diff != "" {
		t.Errorf("--full differs from incremental (-incremental +full):\n%s", diff)
	}
	t.Logf("oracle: %d rows equal", oracle.Compare(t, db.Pool, clock))
}

// TestRefreshTwice: a second refresh without new batches writes nothing and changes nothing.
func TestRefreshTwice(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	for _, r := range fixture {
		load(t, db.Pool, r...)
	}
	run(t, db.Pool, false)
	first := snapshotAll(t, db.Pool, true)
	res := run(t, db.Pool, false)
	for _, s := range res.Steps {
		if s.Kind == "transform" && s.Rows != 0 {
			t.Errorf("second run: step %s wrote %d rows, want 0", s.Name, s.Rows)
		}
	}
	if diff := cmp.Diff(first, snapshotAll(t, db.Pool, true)); diff != "" {
		t.Errorf("second refresh changed the data (-first +second):\n%s", diff)
	}
}

// TestIncrementalEqualsFull loads a generated dataset with many updated, duplicated, late and re-sent events
// in several batches, refreshing after each; a --full rebuild, and a single refresh of a database that loaded
// everything at once, must give the same core tables, rollups and marts.
func TestIncrementalEqualsFull(t *testing.T) {
	t.Parallel()
	gen := func(round int) []batch {
		var users, events []rec
		for u := range 6 {
			c := []string{"cus_x", "cus_y"}[u%2]
			users = append(users, user(userID(u), c, []string{"admin", "member"}[round%2], stamp(round, 0)))
		}
		for i := range 60 {
			n := round*40 + i // rounds overlap: ids 40..59 of each round are re-sent by the next
			u := (n*7 + round) % 6
			c := []string{"cus_x", "cus_y"}[u%2]
			day := (n*5 + round*3) % 45 // updates move events between days, weeks and months
			occurred := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, day).Add(time.Duration(n%24) * time.Hour)
			updated := stamp(round, i)
			if i%9 == 0 {
				updated = stamp(0, i) // late: not newer than what earlier rounds sent
			}
			events = append(events, event(eventID(n), c, userID(u), []string{"a", "b", "c"}[(n+round)%3], occurred.Format(time.RFC3339), updated))
		}
		return []batch{
			// cus_x moves from a half-hour to a 45-minute offset half-way.
			{"customers", []rec{customerIn([]string{"Asia/Kolkata", "Pacific/Chatham"}[round/2], "cus_x", "X", "pro", stamp(round, 0)),
				customerIn("America/New_York", "cus_y", "Y", "free", stamp(0, 0))}},
			{"users", users},
			{"events", events},
			{"events", events[:10]}, // exact duplicates in a second batch
		}
	}

	// The clock moves on by 9 days a round, from inside the data's 45 days to past them, then a day without
	// data; the refreshes of everything at once run at the last one.
	at := func(round int) time.Time { return time.Date(2026, 5, 20, 20, 0, 0, 0, time.UTC).AddDate(0, 0, 9*round) }
	incr := newDB(t)
	once := newDB(t)
	for round := range 4 {
		load(t, incr.Pool, gen(round)...)
		runAt(t, incr.Pool, false, at(round))
		load(t, once.Pool, gen(round)...)
	}
	runAt(t, incr.Pool, false, at(4))
	runAt(t, once.Pool, false, at(4))
	want := snapshotAll(t, incr.Pool, true)

	if diff := cmp.Diff(want, snapshotAll(t, once.Pool, true)); diff != "" {
		t.Errorf("one refresh of everything differs from refreshes after each load (-incremental +once):\n%s", diff)
	}
	runAt(t, incr.Pool, true, at(4))
	if diff := cmp.Diff(want, snapshotAll(t, incr.Pool, true)); diff != "" {
		t.Errorf("--full differs from incremental (-incremental +full):\n%s", diff)
	}
	t.Logf("oracle: %d rows equal", oracle.Compare(t, incr.Pool, at(4)))
}

func userID(u int) string  { return fmt.Sprintf("usr_%d", u) }
func eventID(n int) string { return fmt.Sprintf("evt_%04d", n) }

// stamp is an updated_at that grows with the round and the record.
func stamp(round, i int) string {
	return time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(round)*24*time.Hour + time.Duration(i)*time.Second).Format(time.RFC3339)
}

// TestFailingCheckKeepsMarts: an event of an unknown user stops the refresh before the marts, which keep
// their previous rows; the error names the check and shows the row. Once the user arrives, the next refresh
// passes and the marts include the event. Eight tenants have a login, so the checks' @tenants is bound (the
// run's customers are at most a quarter of them): the pruned checks still see the violation.
func TestFailingCheckKeepsMarts(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	mapTenants(t, db.Pool, 8)
	load(t, db.Pool, fixture[0]...)
	run(t, db.Pool, false)
	before := snapshotAll(t, db.Pool, true)

	load(t, db.Pool, batch{"events", []rec{event("e99", "cus_a", "usr_ghost", "dashboard.view", "2026-04-20T10:00:00Z", "2026-04-20T10:00:00Z")}})
	_, err := refresh.Run(context.Background(), db.Pool, opts(refresh.Options{}))
	var ce *refresh.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("refresh error = %v, want a *refresh.CheckError", err)
	}
	want := []refresh.CheckFailure{{
		Check:   "sql/checks/events_user_exists.sql",
		Columns: []string{"customer_id", "event_id", "user_id"},
		Rows:    [][]string{{"cus_a", "e99", "usr_ghost"}},
	}}
	if diff := cmp.Diff(want, ce.Failures); diff != "" {
		t.Errorf("check failures (-want +got):\n%s", diff)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "event_id=e99") {
		t.Errorf("error %q does not show the violating row", err)
	}
	// What the mart steps build and the materialized views wait for the checks; the transforms (core, the
	// rollups) ran.
	after := snapshotAll(t, db.Pool, true)
	for _, m := range []string{"marts.active_users_weekly", "marts.active_users_monthly", "marts.user_activity", "marts.retention_weekly", "marts.customer_overview"} {
		if diff := cmp.Diff(before[m], after[m]); diff != "" {
			t.Errorf("%s changed although a check failed (-before +after):\n%s", m, diff)
		}
	}
	if got := mustCount(t, db.Pool, `select count(*) from marts.dirty_days where customer_id = 'cus_a' and day = '2026-04-20'`); got != 1 {
		t.Errorf("the changed day left the queue although the marts were not built")
	}
	if got := mustCount(t, db.Pool, `select count(*) from elt.runs where kind = 'refresh' and status = 'failed' and error like '%events_user_exists%'`); got != 1 {
		t.Errorf("failed runs logged = %d, want 1", got)
	}

	load(t, db.Pool, batch{"users", []rec{user("usr_ghost", "cus_a", "member", "2026-04-20T00:00:00Z")}})
	run(t, db.Pool, false)
	if got := mustCount(t, db.Pool, `select count(*) from marts.active_users_weekly where customer_id = 'cus_a' and week = '2026-04-20'`); got != 1 {
		t.Errorf("marts after the fix: week of e99 has %d rows, want 1", got)
	}
}

// TestFailingStep: a step that fails leaves every table as it was, and the error names the file and line.
func TestFailingStep(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	load(t, db.Pool, fixture[0]...)
	fsys := embeddedSQL(t)
	fsys["sql/025_broken.sql"] = &fstest.MapFile{Data: []byte(
		"-- writes, then fails: the write must be rolled back\n" +
			"delete from core.customers;\n" +
			"\n" +
			"select 1 / (select count(*) - count(*) from core.users);\n")}

	_, err := refresh.Run(context.Background(), db.Pool, opts(refresh.Options{Project: fsys}))
	var se *refresh.StepError
	if !errors.As(err, &se) {
		t.Fatalf("refresh error = %v, want a *refresh.StepError", err)
	}
	t.Log(err)
	if se.File != "sql/025_broken.sql" || se.Line != 4 {
		t.Errorf("error at %s line %d, want sql/025_broken.sql line 4 (%v)", se.File, se.Line, err)
	}
	if !strings.Contains(err.Error(), "division by zero") {
		t.Errorf("error %q does not carry the SQL error", err)
	}
	if got := mustCount(t, db.Pool, `select count(*) from core.customers`); got != 3 {
		t.Errorf("core.customers has %d rows after the failed step, want the 3 of the step before", got)
	}
	if got := mustCount(t, db.Pool, `select count(*) from core.events`); got != 0 {
		t.Errorf("core.events has %d rows: steps after the failed one ran", got)
	}
	if got := mustCount(t, db.Pool, `select count(*) from elt.refresh_watermarks where step = 'sql/025_broken.sql'`); got != 0 {
		t.Errorf("watermark of the failed step moved")
	}
	if got := mustCount(t, db.Pool, `select count(*) from elt.refresh_steps where name = 'sql/025_broken.sql' and status = 'failed' and error like '%line 4%'`); got != 1 {
		t.Errorf("failed step not logged in elt.refresh_steps")
	}
}

// TestConcurrentReader: readers of the marts see no error while incremental refreshes and a --full rebuild run
// (TestFullDoesNotWaitForReaders shows that no step takes a lock a reader's conflicts with).
func TestConcurrentReader(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	load(t, db.Pool, fixture[0]...)
	run(t, db.Pool, false)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var reads atomic.Int64
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var n int64
			err := db.Pool.QueryRow(ctx, `select (select count(*) from marts.rollup_customer_day) + (select count(*) from marts.rollup_feature_day)
				+ (select count(*) from marts.user_activity) + (select count(*) from marts.retention_weekly)`).Scan(&n)
			if err != nil && ctx.Err() == nil {
				errs <- err
				return
			}
			reads.Add(1)
		}
	}()
	for _, r := range fixture[1:] {
		load(t, db.Pool, r...)
		run(t, db.Pool, false)
	}
	run(t, db.Pool, true)
	cancel()
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("reader failed during refresh: %v", err)
	default:
	}
	if reads.Load() == 0 {
		t.Fatal("the reader never completed a query")
	}
}

// TestBusy: a second run while one holds the refresh lock fails at once and names the holder.
func TestBusy(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `select pg_advisory_lock(hashtextextended('elt:refresh', 0))`); err != nil {
		t.Fatal(err)
	}
	_, err = refresh.Run(ctx, db.Pool, opts(refresh.Options{}))
	t.Log(err)
	if !errors.Is(err, refresh.ErrBusy) || !strings.Contains(err.Error(), "backend pid") {
		t.Fatalf("refresh while locked: %v, want ErrBusy naming the holder", err)
	}
	if _, err := conn.Exec(ctx, `select pg_advisory_unlock(hashtextextended('elt:refresh', 0))`); err != nil {
		t.Fatal(err)
	}
	run(t, db.Pool, false)
}

// TestLockTimeout: a session holding a lock that conflicts with a step makes the run fail after lock_timeout
// with an explanation, instead of waiting forever.
func TestLockTimeout(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `lock table marts.rollup_user in share mode`); err != nil {
		t.Fatal(err)
	}
	_, err = refresh.Run(ctx, db.Pool, opts(refresh.Options{LockTimeout: 200 * time.Millisecond}))
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "sql/040_rollups.sql") || !strings.Contains(err.Error(), "lock_timeout") {
		t.Fatalf("refresh with a locked rollup: %v, want a lock_timeout error naming sql/040_rollups.sql", err)
	}
}

// TestMartOrder: a materialized view of the project over another one is refreshed after it, whatever their
// names, and after the mart steps.
func TestMartOrder(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `
create materialized view marts.aaa_top_days as
select customer_id, max(active_users) as top from marts.rollup_customer_day group by customer_id;
create unique index on marts.aaa_top_days (customer_id);
create materialized view marts.aab_top as select max(top) as top from marts.aaa_top_days;
create unique index on marts.aab_top (top);`)
	if err != nil {
		t.Fatal(err)
	}
	load(t, db.Pool, fixture[0]...)
	res := run(t, db.Pool, false)
	pos := map[string]int{}
	for i, s := range res.Steps {
		if s.Kind == "view" || s.Kind == "mart" {
			pos[s.Name] = i
		}
	}
	if !(pos["sql/marts/010_marts.sql"] < pos["marts.aaa_top_days"] && pos["marts.aaa_top_days"] < pos["marts.aab_top"]) {
		t.Errorf("materialized view order %v: mart steps and dependencies must come first", pos)
	}
	want := mustCount(t, db.Pool, `select max(active_users) from marts.rollup_customer_day`)
	if got := mustCount(t, db.Pool, `select top from marts.aab_top`); got != want || want == 0 {
		t.Errorf("top = %d, want %d (refreshed over fresh data)", got, want)
	}
}

// TestStepLog: every step of a run is in elt.refresh_steps with its kind, batches and rows.
func TestStepLog(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	load(t, db.Pool, fixture[0]...)
	res := run(t, db.Pool, false)
	rows, err := db.Pool.Query(context.Background(), `select kind, name, status, rows from elt.refresh_steps where run_id = $1 order by seq`, res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	type logged struct {
		Kind, Name, Status string
		Rows               int64
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[logged])
	if err != nil {
		t.Fatal(err)
	}
	var want []logged
	for _, s := range res.Steps {
		want = append(want, logged{s.Kind, s.Name, "succeeded", s.Rows})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("elt.refresh_steps (-want +got):\n%s", diff)
	}
	if len(got) < 4+6+1+1 {
		t.Errorf("only %d steps logged", len(got))
	}
	if n := mustCount(t, db.Pool, `select count(*) from elt.runs where run_id = $1 and status = 'succeeded' and records > 0`, res.RunID); n != 1 {
		t.Errorf("run not logged as succeeded")
	}
}

// TestUserSummaryMovesAndRemovals: a user's lifetime summary follows updates that move the first or last event
// to another day or to another user (the incremental path must recompute those users, not merge them), and
// matches a --full rebuild after each step.
func TestUserSummaryMovesAndRemovals(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	load(t, db.Pool,
		batch{"customers", []rec{customer("cus_a", "Alpha", "pro", "2026-01-01T00:00:00Z")}},
		batch{"users", []rec{user("u1", "cus_a", "member", "2026-01-01T00:00:00Z"), user("u2", "cus_a", "member", "2026-01-01T00:00:00Z")}},
	)
	steps := []struct {
		name   string
		events []rec
		want   string // marts.user_activity without the header
	}{
		{"Initial", []rec{
			event("e1", "cus_a", "u1", "f", "2026-05-01T10:00:00Z", "2026-06-01T00:00:01Z"),
			event("e2", "cus_a", "u1", "f", "2026-05-03T10:00:00Z", "2026-06-01T00:00:02Z"),
			event("e3", "cus_a", "u1", "f", "2026-05-05T10:00:00Z", "2026-06-01T00:00:03Z"),
			event("e4", "cus_a", "u2", "f", "2026-05-04T10:00:00Z", "2026-06-01T00:00:04Z"),
		}, "cus_a\tu1\t2026-05-01 10:00:00+00\t2026-05-05 10:00:00+00\t3\t3\n" +
			"cus_a\tu2\t2026-05-04 10:00:00+00\t2026-05-04 10:00:00+00\t1\t1\n"},
		{"FirstMovesLater", []rec{event("e1", "cus_a", "u1", "f", "2026-05-04T09:00:00Z", "2026-06-02T00:00:00Z")},
			"cus_a\tu1\t2026-05-03 10:00:00+00\t2026-05-05 10:00:00+00\t3\t3\n" +
				"cus_a\tu2\t2026-05-04 10:00:00+00\t2026-05-04 10:00:00+00\t1\t1\n"},
		{"LastMovesEarlier", []rec{event("e3", "cus_a", "u1", "f", "2026-05-04T08:00:00Z", "2026-06-02T00:00:01Z")},
			"cus_a\tu1\t2026-05-03 10:00:00+00\t2026-05-04 09:00:00+00\t2\t3\n" +
				"cus_a\tu2\t2026-05-04 10:00:00+00\t2026-05-04 10:00:00+00\t1\t1\n"},
		{"UserLosesAllEvents", []rec{event("e4", "cus_a", "u1", "f", "2026-05-04T10:00:00Z", "2026-06-02T00:00:02Z")},
			"cus_a\tu1\t2026-05-03 10:00:00+00\t2026-05-04 10:00:00+00\t2\t4\n"},
		{"FirstMovesEarlier", []rec{event("e2", "cus_a", "u1", "f", "2026-04-30T10:00:00Z", "2026-06-02T00:00:03Z")},
			"cus_a\tu1\t2026-04-30 10:00:00+00\t2026-05-04 10:00:00+00\t2\t4\n"},
	}
	asOf := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC) // events_30d: April 11 to May 10
	for _, s := range steps {
		load(t, db.Pool, batch{"events", s.events})
		runAt(t, db.Pool, false, asOf)
		incr := snapshotAll(t, db.Pool, true)
		want := "customer_id\tuser_id\tfirst_seen\tlast_seen\tactive_days\tevents_30d\n" + s.want
		if diff := cmp.Diff(want, incr["marts.user_activity"]); diff != "" {
			t.Errorf("%s: marts.user_activity (-want +got):\n%s", s.name, diff)
		}
		runAt(t, db.Pool, true, asOf)
		if diff := cmp.Diff(incr, snapshotAll(t, db.Pool, true)); diff != "" {
			t.Errorf("%s: --full differs from incremental (-incremental +full):\n%s", s.name, diff)
		}
	}
}

// TestStatus: elt status shows the latest run, its steps, and how many batches the marts lack.
func TestStatus(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	st, err := refresh.ReadStatus(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastRun != nil || st.Pending != 0 {
		t.Errorf("status before any run = %+v, want no run and nothing pending", st)
	}

	load(t, db.Pool, fixture[0]...)
	res := run(t, db.Pool, false)
	load(t, db.Pool, fixture[1]...)
	if st, err = refresh.ReadStatus(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	if st.LastRun == nil || st.LastRun.RunID != res.RunID || st.LastRun.Status != "succeeded" || st.MartsBatch != res.BatchTo || st.Pending != 2 {
		t.Fatalf("status = %+v, want run %d succeeded, marts at batch %d, 2 batches pending", st, res.RunID, res.BatchTo)
	}
	if len(st.LastRun.Steps) != len(res.Steps) {
		t.Errorf("status has %d steps, the run had %d", len(st.LastRun.Steps), len(res.Steps))
	}
	var b strings.Builder
	if err := refresh.WriteStatus(&b, st, time.Now()); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	for _, want := range []string{"(incremental) succeeded", "2 newer batches pending", "sql/030_events.sql", "sql/marts/010_marts.sql", "marts.customer_overview", "(0,3]"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestRunsAsPipelineRole: the refresh works as a login with elt_runner's privileges (a member of elt_owner),
// not a superuser: temporary tables, analyze, advisory lock and concurrent refresh all go through ownership.
func TestRunsAsPipelineRole(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	role := "refresh_test_" + strings.ToLower(strings.TrimPrefix(db.Name, "t_"))
	if _, err := db.Pool.Exec(ctx, "create role "+pgx.Identifier{role}.Sanitize()+" login password 'pw' in role elt_runner;"+
		"grant connect on database "+pgx.Identifier{db.Name}.Sanitize()+" to "+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Pool.Exec(context.Background(), "drop owned by "+pgx.Identifier{role}.Sanitize())
		db.Pool.Exec(context.Background(), "drop role if exists "+pgx.Identifier{role}.Sanitize())
	})
	load(t, db.Pool, fixture[0]...)
	pool, err := pgxpool.New(ctx, db.ConnString(role, "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var super bool
	if err := pool.QueryRow(ctx, `select rolsuper from pg_roles where rolname = current_user`).Scan(&super); err != nil || super {
		t.Fatalf("connected as a superuser (%v)", err)
	}
	for _, full := range []bool{false, true} {
		if _, err := refresh.Run(ctx, pool, opts(refresh.Options{Full: full})); err != nil {
			t.Fatalf("refresh as %s (full=%v): %v", role, full, err)
		}
	}
	want := mustCount(t, db.Pool, `select count(distinct (e.customer_id, (e.occurred_at at time zone c.time_zone)::date))
		from core.events as e join core.customers as c on c.customer_id = e.customer_id`)
	if got := mustCount(t, db.Pool, `select count(*) from marts.rollup_customer_day`); got != want || want == 0 {
		t.Errorf("active_users_daily has %d rows, want %d", got, want)
	}
}

// TestWaitsForBatchInFlight: a batch whose transaction started before the refresh read its watermark is
// either included whole or left for the next run, never half-read: the refresh waits for the batch to commit
// (elt.lock_staging_exclusive), then includes it.
func TestWaitsForBatchInFlight(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	load(t, db.Pool, fixture[0]...)

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var runID, batchID int64
	if _, err := tx.Exec(ctx, `select elt.lock_staging_shared()`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `insert into elt.runs (kind, target) values ('extract', 'test') returning run_id`).Scan(&runID); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
		values ($1, 'test', 'events', 'staging.events', 1, 0) returning batch_id`, runID).Scan(&batchID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `insert into staging.events (batch_id, record) values ($1, $2)`, batchID,
		`{"id": "e50", "customer_id": "cus_a", "user_id": "usr_a1", "feature": "f", "occurred_at": "2026-04-20T10:00:00Z", "updated_at": "2026-04-20T10:00:00Z"}`); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	var res *refresh.Result
	go func() {
		var err error
		res, err = refresh.Run(ctx, db.Pool, opts(refresh.Options{}))
		done <- err
	}()
	// Wait until the refresh waits for the batch's lock, then commit the batch.
	for {
		var waiting int64
		if err := db.Pool.QueryRow(ctx, `select count(*) from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("refresh finished while a batch was in flight: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res.BatchTo != batchID {
		t.Errorf("refresh processed batches up to %d, want the in-flight batch %d", res.BatchTo, batchID)
	}
	if got := mustCount(t, db.Pool, `select count(*) from core.events where event_id = 'e50'`); got != 1 {
		t.Errorf("event of the in-flight batch is not in core.events")
	}
}

// TestNotMigrated: on a database without elt's tables the refresh says to migrate.
func TestNotMigrated(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `drop table elt.refresh_files`); err != nil {
		t.Fatal(err)
	}
	_, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{}))
	if err == nil || !strings.Contains(err.Error(), "run elt migrate") {
		t.Fatalf("refresh of an unmigrated database: %v, want advice to run elt migrate", err)
	}
}

// embeddedSQL copies the default project's SQL into a map the test can change.
func embeddedSQL(t *testing.T) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(project, "sql", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(project, p)
		fsys[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// TestInterruptedFullThenIncremental: a --full that stops after rebuilding core (the rollups step fails) and
// is followed by an incremental run must end as a full rebuild: a day that lost all its events in the rebuild
// (staging repaired by hand) must not keep its rollup buckets.
func TestInterruptedFullThenIncremental(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	for _, r := range fixture {
		load(t, db.Pool, r...)
		run(t, db.Pool, false)
	}
	if got := mustCount(t, db.Pool, `select count(*) from marts.rollup_user_day where day = '2026-02-20'`); got != 1 {
		t.Fatalf("rollup_user_day of 2026-02-20 has %d rows before the repair, want 1", got)
	}
	// The only event of 2026-02-20 leaves staging: only a rebuild removes it from core and the rollups.
	if _, err := db.Pool.Exec(ctx, `delete from staging.events where record ->> 'id' = 'e00'`); err != nil {
		t.Fatal(err)
	}

	broken := embeddedSQL(t)
	rollups := broken["sql/040_rollups.sql"]
	broken["sql/040_rollups.sql"] = &fstest.MapFile{Data: append(append([]byte{}, rollups.Data...), "\nselect 1 / 0;\n"...)}
	_, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{Full: true, Project: broken}))
	var se *refresh.StepError
	if !errors.As(err, &se) || se.File != "sql/040_rollups.sql" {
		t.Fatalf("--full with a failing rollups step: %v, want a StepError of sql/040_rollups.sql", err)
	}
	if got := mustCount(t, db.Pool, `select count(*) from core.events where event_id = 'e00'`); got != 0 {
		t.Fatalf("the interrupted --full did not rebuild core.events")
	}

	run(t, db.Pool, false)
	got := snapshotAll(t, db.Pool, true)
	if n := mustCount(t, db.Pool, `select count(*) from marts.rollup_user_day where day = '2026-02-20'`); n != 0 {
		t.Errorf("rollup_user_day keeps %d stale rows of 2026-02-20 after the incremental run", n)
	}
	run(t, db.Pool, true)
	if diff := cmp.Diff(snapshotAll(t, db.Pool, true), got); diff != "" {
		t.Errorf("an interrupted --full then an incremental run differs from a clean --full (-full +interrupted):\n%s", diff)
	}
}

// TestFullDoesNotWaitForReaders: a --full rebuild empties its tables with DELETE, whose lock conflicts with no
// reader's: a tenant login idle in a repeatable-read transaction that read core.events and a rollup (with its
// idle timeout lifted, holding ACCESS SHARE locks on them) neither makes the rebuild wait (lock_timeout is 2 s
// here) nor is ended by it; it keeps reading the rows of its snapshot, and sees the rebuilt ones afterwards.
func TestFullDoesNotWaitForReaders(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	load(t, db.Pool, fixture[0]...)
	run(t, db.Pool, false)

	// A login as elt tenant add makes it (a member of elt_tenant named tenant_ and 16 hex digits), mapped, and
	// allowed to read core.events and a rollup directly.
	role := pgx.Identifier{"tenant_" + strings.TrimPrefix(db.Name, "t_")}
	_, err := db.Pool.Exec(ctx, "create role "+role.Sanitize()+" login password 'pw' in role elt_tenant;"+
		"grant connect on database "+pgx.Identifier{db.Name}.Sanitize()+" to "+role.Sanitize()+";"+
		"grant usage on schema core, marts to "+role.Sanitize()+"; grant select on core.events, marts.rollup_customer_day to "+role.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		db.Pool.Exec(ctx, "select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", role[0])
		db.Pool.Exec(ctx, "drop owned by "+role.Sanitize())
		db.Pool.Exec(ctx, "drop role if exists "+role.Sanitize())
	})
	if _, err := db.Pool.Exec(ctx, `insert into elt.tenants (tenant_key, role_name, connection_limit, statement_timeout,
		idle_in_transaction_timeout, transaction_timeout, temp_file_limit_kb) values ('cus_a', $1, 10, '1m', '1m', '15m', 1048576)`, role[0]); err != nil {
		t.Fatal(err)
	}
	tenant, err := pgx.Connect(ctx, db.ConnString(role[0], "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer tenant.Close(ctx)
	if _, err := tenant.Exec(ctx, "set idle_in_transaction_session_timeout = 0"); err != nil {
		t.Fatal(err)
	}
	tx, err := tenant.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	const read = `select (select count(*) from core.events), (select coalesce(sum(events), 0) from marts.rollup_customer_day)`
	var events, rolled int64
	if err := tx.QueryRow(ctx, read).Scan(&events, &rolled); err != nil {
		t.Fatal(err)
	}

	// New events, so that the rebuilt tables differ from the snapshot.
	load(t, db.Pool, fixture[1]...)
	runner, err := pgxpool.New(ctx, db.URLAs("elt_runner"))
	if err != nil {
		t.Fatal(err)
	}
	defer runner.Close()
	if _, err := refresh.Run(ctx, runner, opts(refresh.Options{Full: true, LockTimeout: 2 * time.Second})); err != nil {
		t.Fatalf("--full while a tenant holds ACCESS SHARE locks on core.events and a rollup: %v", err)
	}
	var events2, rolled2 int64
	if err := tx.QueryRow(ctx, read).Scan(&events2, &rolled2); err != nil {
		t.Fatalf("the tenant's open transaction after --full: %v", err)
	}
	if events2 != events || rolled2 != rolled {
		t.Errorf("the tenant's snapshot changed under it: events %d -> %d, rollup %d -> %d", events, events2, rolled, rolled2)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var want int64
	if err := db.Pool.QueryRow(ctx, `select count(*) from core.events`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if err := tenant.QueryRow(ctx, read).Scan(&events2, &rolled2); err != nil {
		t.Fatal(err)
	}
	if events2 != want || events2 <= events {
		t.Errorf("after its transaction the tenant reads %d events, want the rebuilt %d (more than the %d before)", events2, want, events)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestSessionTimeZoneIgnored: records whose timestamps lack an offset are read as UTC, and days are UTC days
// for a customer without a time zone, even when the refresh's connection has another TimeZone.
func TestSessionTimeZoneIgnored(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	load(t, db.Pool,
		batch{"customers", []rec{customer("cus_a", "Alpha", "pro", "2026-01-01T00:00:00")}},
		batch{"users", []rec{user("usr_a1", "cus_a", "member", "2026-01-01T00:00:00")}},
		batch{"events", []rec{
			// No offset: read in New York's zone they would be 02:30 and 03:30 UTC on March 31.
			event("e01", "cus_a", "usr_a1", "dashboard.view", "2026-03-30T22:30:00", "2026-03-30T22:30:00"),
			event("e02", "cus_a", "usr_a1", "dashboard.view", "2026-03-30T23:30:00", "2026-03-30T23:30:00"),
		}},
	)
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["timezone"] = "America/New_York"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var tz string
	if err := pool.QueryRow(ctx, "show timezone").Scan(&tz); err != nil || tz != "America/New_York" {
		t.Fatalf("session TimeZone = %q (%v), want America/New_York", tz, err)
	}
	for _, full := range []bool{false, true} {
		if _, err := refresh.Run(ctx, pool, opts(refresh.Options{Full: full})); err != nil {
			t.Fatalf("refresh (full=%v): %v", full, err)
		}
		if got := mustCount(t, db.Pool, `select count(*) from core.events where occurred_at = updated_at
			and occurred_at in ('2026-03-30 22:30:00+00', '2026-03-30 23:30:00+00')`); got != 2 {
			t.Errorf("full=%v: %d of 2 events read as UTC", full, got)
		}
		if diff := cmp.Diff("customer_id\tday\tactive_users\tevents\tcomplete\ncus_a\t2026-03-30\t1\t2\tt\n",
			snapshot(t, db.Pool, "marts.rollup_customer_day", "*")); diff != "" {
			t.Errorf("full=%v: active_users_daily (-want +got):\n%s", full, diff)
		}
	}
}

// TestChangedStepRebuilds: a step file that changed since it last ran makes the next run a full rebuild that
// says which file changed, and its result equals a --full run with the new file; a changed check only
// re-checks all rows; an unchanged project runs incrementally.
func TestChangedStepRebuilds(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	for _, r := range fixture {
		load(t, db.Pool, r...)
		run(t, db.Pool, false)
	}
	changed := embeddedSQL(t)
	// The new version of the users step: role upper-cased.
	users := string(changed["sql/020_users.sql"].Data)
	changed["sql/020_users.sql"] = &fstest.MapFile{Data: []byte(strings.Replace(users, "s.record ->> 'role',", "upper(s.record ->> 'role'),", 1))}
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	res, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{Project: changed, Logger: logger}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "full" || !slices.Equal(res.Changed, []string{"sql/020_users.sql (changed)"}) {
		t.Errorf("run after a changed step: mode %s, changed %v; want full, [sql/020_users.sql (changed)]", res.Mode, res.Changed)
	}
	mu.Lock()
	if !strings.Contains(logs.String(), `file=sql/020_users.sql change=changed effect="every step rebuilds`) {
		t.Errorf("log does not say which file changed:\n%s", logs.String())
	}
	mu.Unlock()
	if got := mustCount(t, db.Pool, `select count(*) from core.users where role <> upper(role)`); got != 0 {
		t.Errorf("%d users still have the old step's role", got)
	}
	incr := snapshotAll(t, db.Pool, true)
	if _, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{Project: changed, Full: true})); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snapshotAll(t, db.Pool, true), incr); diff != "" {
		t.Errorf("the rebuild after a change differs from --full (-full +rebuild):\n%s", diff)
	}

	// Unchanged: incremental again.
	res, err = refresh.Run(ctx, db.Pool, opts(refresh.Options{Project: changed}))
	if err != nil || res.Mode != "incremental" || len(res.Changed) != 0 {
		t.Errorf("run with nothing changed: mode %s, changed %v, %v; want incremental", res.Mode, res.Changed, err)
	}
	// A changed check: the checks look at every row again, nothing rebuilds.
	changed["sql/checks/events_not_null.sql"] = &fstest.MapFile{Data: append(append([]byte{}, changed["sql/checks/events_not_null.sql"].Data...), "\n-- reviewed\n"...)}
	res, err = refresh.Run(ctx, db.Pool, opts(refresh.Options{Project: changed}))
	if err != nil {
		t.Fatal(err)
	}
	var from int64 = -1
	for _, s := range res.Steps {
		if s.Name == "sql/checks/events_not_null.sql" {
			from = s.BatchFrom
		}
	}
	if res.Mode != "incremental" || from != 0 {
		t.Errorf("run after a changed check: mode %s, checks from batch %d; want incremental, checks from 0", res.Mode, from)
	}
}

// TestStagingCoverage: a step that reads a staging table that does not exist fails before any step runs,
// naming the table, the step and the tables there are; a staging table with records that no step reads is
// reported.
func TestStagingCoverage(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	if err := extract.EnsureStagingTable(ctx, db.Pool, "accounts", "test"); err != nil {
		t.Fatal(err)
	}
	load(t, db.Pool, batch{"accounts", []rec{{record: map[string]any{"accountId": 1}}}})
	if _, err := db.Pool.Exec(ctx, `drop table staging.users`); err != nil {
		t.Fatal(err)
	}
	_, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{}))
	if err == nil || !strings.Contains(err.Error(), "staging.users (read by sql/020_users.sql)") || !strings.Contains(err.Error(), "staging has staging.accounts") {
		t.Fatalf("refresh without staging.users: %v, want an error naming the table, its step and what staging has", err)
	}
	if got := mustCount(t, db.Pool, `select count(*) from elt.refresh_steps`); got != 0 {
		t.Errorf("%d steps ran although a staging table was missing", got)
	}

	if err := extract.EnsureStagingTable(ctx, db.Pool, "users", "test"); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	if _, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{Logger: logger})); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{`msg="staging table is read by no step" table=staging.accounts records=1`,
		`msg="staging table is empty while others have records" table=staging.customers`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}

// TestTenantsParameter: a step with a "-- tenants:" line gets the keys its query returns bound to @tenants (an
// array, in key order) while they are at most a quarter of the tenants, and a statement filtering a
// partitioned table with "(customer_id = any(@tenants) or @tenants is null)" is planned over those customers'
// partitions only: it does not lock another tenant's partition, which the same statement without the filter
// does. With more keys, @tenants is NULL and the same statement reads (and locks) every partition. A step
// that uses @tenants without the line, or any(@tenants) without the NULL guard, is refused when it is read.
func TestTenantsParameter(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	load(t, db.Pool, fixture[0]...)
	// Twelve tenants with a login: the fixture's three customers are a quarter of them.
	mapTenants(t, db.Pool, 12)
	if _, err := db.Pool.Exec(ctx, `create table core.events_other partition of core.events for values in ('cus_other');
		create table core.seen (seq serial, what text, value text)`); err != nil {
		t.Fatal(err)
	}
	locks := `insert into core.seen (what, value) select '%s', count(*)::text from pg_catalog.pg_locks
where pid = pg_catalog.pg_backend_pid() and relation = 'core.events_other'::regclass;
`
	fsys := embeddedSQL(t)
	fsys["sql/035_tenants.sql"] = &fstest.MapFile{Data: []byte(
		"-- tenants: select distinct record ->> 'customer_id' from staging.events where batch_id > @batch_from and batch_id <= @batch_to\n" +
			"insert into core.seen (what, value) values ('tenants', @tenants::text);\n" +
			"create temp table pg_temp.pruned on commit drop as\n" +
			"select e.event_id from core.events as e join core.customers as c on c.customer_id = e.customer_id where (e.customer_id = any(@tenants) or @tenants is null);\n" +
			fmt.Sprintf(locks, "locked after the pruned statement") +
			"create temp table pg_temp.unpruned on commit drop as\n" +
			"select e.event_id from core.events as e join core.customers as c on c.customer_id = e.customer_id;\n" +
			fmt.Sprintf(locks, "locked after the unpruned statement"))}
	if _, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{Project: fsys})); err != nil {
		t.Fatal(err)
	}
	var want string
	if err := db.Pool.QueryRow(ctx, `select array_agg(distinct customer_id order by customer_id)::text from core.events`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	rows, _ := db.Pool.Query(ctx, `select array[what, value] from core.seen order by seq`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"tenants", want}, {"locked after the pruned statement", "0"}, {"locked after the unpruned statement", "1"}}, got); diff != "" {
		t.Errorf("what the step saw (-want +got):\n%s", diff)
	}

	// Eleven tenants: three keys are more than a quarter; @tenants is NULL, nothing is pruned.
	if _, err := db.Pool.Exec(ctx, `delete from elt.tenants where tenant_key = 'cus_t12'; delete from core.seen;
		update elt.refresh_watermarks set batch_id = 0 where step = 'sql/035_tenants.sql'`); err != nil {
		t.Fatal(err)
	}
	if _, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{Project: fsys})); err != nil {
		t.Fatal(err)
	}
	rows, _ = db.Pool.Query(ctx, `select array[what, coalesce(value, 'NULL')] from core.seen order by seq`)
	got, err = pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"tenants", "NULL"}, {"locked after the pruned statement", "1"}, {"locked after the unpruned statement", "1"}}, got); diff != "" {
		t.Errorf("what the step saw with three keys of eleven tenants (-want +got):\n%s", diff)
	}

	for _, bad := range []string{
		"select count(*) from core.events where customer_id = any(@tenants)",
		"select count(*) from core.events where customer_id = some(@tenants)",
		"select count(*) from core.events where (@tenants is null or customer_id = any(@tenants))",
		"select count(*) from core.events where customer_id in (select unnest(@tenants))",
		"select (select 1 where customer_id = any(@tenants)) from core.events where (customer_id = any(@tenants) or @tenants is null)",
	} {
		fsys["sql/035_tenants.sql"] = &fstest.MapFile{Data: []byte("-- tenants: select 'cus_a'\n" + bad + ";\n")}
		if _, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{Project: fsys})); err == nil || !strings.Contains(err.Error(), "uses @tenants other than as (key = any(@tenants) or @tenants is null)") {
			t.Errorf("%s: %v, want a refusal", bad, err)
		}
	}
	// A comment may mention @tenants; a failing tenants query is named as such.
	fsys["sql/035_tenants.sql"] = &fstest.MapFile{Data: []byte("-- tenants: select customer_id from core.nothing -- a note\n-- about @tenants\nselect 1;\n")}
	_, err = refresh.Run(ctx, db.Pool, opts(refresh.Options{Project: fsys}))
	if err == nil || !strings.Contains(err.Error(), "sql/035_tenants.sql failed at line 1 (the -- tenants: query)") || !strings.Contains(err.Error(), "core.nothing") {
		t.Errorf("a tenants query over a missing table: %v, want the step, line 1, the tenants query and the error", err)
	}
	delete(fsys, "sql/035_tenants.sql")
	fsys["sql/035_no_line.sql"] = &fstest.MapFile{Data: []byte("-- no tenants line\nselect 1;\nselect count(*) from core.events where customer_id = any(@tenants);\n")}
	_, err = refresh.Run(ctx, db.Pool, opts(refresh.Options{Project: fsys}))
	if err == nil || !strings.Contains(err.Error(), "sql/035_no_line.sql: line 3 uses @tenants") {
		t.Errorf("a step using @tenants without a tenants: line: %v, want a refusal naming the file and line", err)
	}
}

// TestClockMovesOn: with no new data, each refresh on a later day extends the daily series, moves the rolling
// windows past old activity and completes the periods that ended, exactly as the oracle recomputes them from
// staging and as a --full rebuild at the same clock.
func TestClockMovesOn(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	load(t, db.Pool,
		batch{"customers", []rec{customerIn("Asia/Kolkata", "cus_a", "Alpha", "pro", "2026-01-01T00:00:00Z"),
			customerIn("America/New_York", "cus_b", "Beta", "pro", "2026-01-01T00:00:00Z")}},
		batch{"users", []rec{signedUp(user("u1", "cus_a", "member", "2026-01-01T00:00:00Z"), "2026-05-01T20:00:00Z"),
			signedUp(user("u2", "cus_a", "member", "2026-01-01T00:00:00Z"), "2026-05-02T10:00:00Z"),
			signedUp(user("u3", "cus_b", "member", "2026-01-01T00:00:00Z"), "2026-05-02T03:00:00Z")}},
		batch{"events", []rec{
			event("e1", "cus_a", "u1", "f", "2026-05-02T10:00:00Z", "2026-05-02T10:00:00Z"),
			event("e2", "cus_a", "u2", "g", "2026-05-03T19:00:00Z", "2026-05-03T19:00:00Z"),
			event("e3", "cus_a", "u1", "f", "2026-05-09T10:00:00Z", "2026-05-09T10:00:00Z"),
			event("e4", "cus_b", "u3", "f", "2026-05-02T03:30:00Z", "2026-05-02T03:30:00Z"),
		}},
	)
	start := time.Date(2026, 5, 9, 12, 0, 0, 0, time.UTC)
	// The days after the last event at which a window or a period boundary passes the data.
	for _, days := range []int{0, 1, 7, 22, 27, 30, 31} {
		asOf := start.AddDate(0, 0, days)
		runAt(t, db.Pool, false, asOf)
		if diff := oracleThenFull(t, db.Pool, asOf); diff != "" {
			t.Fatalf("%d days on: --full differs from incremental (-incremental +full):\n%s", days, diff)
		}
	}
}

// oracleThenFull compares the marts the incremental path built with the oracle's (reporting every
// difference), then rebuilds with --full at the same clock and returns how that differs from them.
func oracleThenFull(t *testing.T, pool *pgxpool.Pool, asOf time.Time) string {
	t.Helper()
	incr := snapshotAll(t, pool, true)
	oracle.Compare(t, pool, asOf)
	runAt(t, pool, true, asOf)
	return cmp.Diff(incr, snapshotAll(t, pool, true))
}

// TestZoneChangeWithoutEvents: a customer with users but no events moves to another zone: its signup cohorts
// move to the new zone's days in the same run, as the oracle and --full put them.
func TestZoneChangeWithoutEvents(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	asOf := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	load(t, db.Pool,
		batch{"customers", []rec{customerIn("UTC", "cus_a", "Alpha", "pro", "2026-01-01T00:00:00Z"),
			customerIn("UTC", "cus_b", "Beta", "pro", "2026-01-01T00:00:00Z")}},
		batch{"users", []rec{signedUp(user("u1", "cus_a", "member", "2026-01-01T00:00:00Z"), "2026-05-01T20:00:00Z"),
			user("u2", "cus_b", "member", "2026-01-01T00:00:00Z")}},
		batch{"events", []rec{event("e1", "cus_b", "u2", "f", "2026-05-02T10:00:00Z", "2026-05-02T10:00:00Z")}},
	)
	runAt(t, db.Pool, false, asOf)
	// 20:00 UTC of May 1 is 01:30 of May 2 in Kolkata.
	load(t, db.Pool, batch{"customers", []rec{customerIn("Asia/Kolkata", "cus_a", "Alpha", "pro", "2026-02-01T00:00:00Z")}})
	runAt(t, db.Pool, false, asOf)
	if got := mustCount(t, db.Pool, `select count(*) from marts.retention_signup where customer_id = 'cus_a' and cohort_day = '2026-05-02'`); got != 4 {
		t.Errorf("cus_a's cohort of May 2 (Kolkata) has %d rows, want 4", got)
	}
	if diff := oracleThenFull(t, db.Pool, asOf); diff != "" {
		t.Errorf("--full differs from incremental (-incremental +full):\n%s", diff)
	}
}

// TestChainedIncrementals: incremental runs one after another, never a --full in between, each equal to the
// oracle: a zone across a daylight saving change, a late event that makes a user's first day earlier, a
// first use that moves later, an event moved to another user, a future event pulled back, zone changes that
// move today back and forth (+14, then -11), and clock jumps over days without data. At the end, a database
// that loaded everything at once and refreshed once at the last clock holds the same rows.
func TestChainedIncrementals(t *testing.T) {
	t.Parallel()
	day := func(m time.Month, d, h int) string {
		return time.Date(2026, m, d, h, 0, 0, 0, time.UTC).Format(time.RFC3339)
	}
	rounds := []struct {
		asOf    time.Time
		batches []batch
	}{
		{time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC), []batch{
			{"customers", []rec{customerIn("America/Los_Angeles", "cus_a", "Alpha", "pro", day(1, 1, 0))}},
			{"users", []rec{signedUp(user("u1", "cus_a", "member", day(1, 1, 0)), day(2, 20, 20)),
				signedUp(user("u2", "cus_a", "member", day(1, 1, 0)), day(3, 1, 10)),
				signedUp(user("u3", "cus_a", "member", day(1, 1, 0)), day(3, 2, 10))}},
			{"events", []rec{
				event("e1", "cus_a", "u1", "f", day(2, 21, 10), day(2, 21, 10)),
				event("e2", "cus_a", "u1", "f", day(3, 1, 10), day(3, 1, 10)),
				event("e3", "cus_a", "u2", "g", day(3, 2, 7), day(3, 2, 7)),
				event("e4", "cus_a", "u2", "g", day(3, 20, 10), day(3, 2, 8)), // in the future
			}},
		}},
		{time.Date(2026, 3, 9, 18, 0, 0, 0, time.UTC), []batch{ // after the DST change of March 8
			{"events", []rec{
				event("e5", "cus_a", "u3", "g", day(2, 10, 9), day(3, 9, 1)),  // late: u3's first day earlier
				event("e1", "cus_a", "u1", "f", day(3, 8, 10), day(3, 9, 2)),  // u1's first use of f moves later
				event("e3", "cus_a", "u3", "g", day(3, 2, 7), day(3, 9, 3)),   // to another user
				event("e4", "cus_a", "u2", "g", day(3, 6, 10), day(3, 9, 4)),  // the future event pulled back
				event("e6", "cus_a", "u2", "h", day(3, 9, 16), day(3, 9, 16)), // today, still under way
			}},
		}},
		{time.Date(2026, 3, 21, 12, 0, 0, 0, time.UTC), []batch{
			{"customers", []rec{customerIn("Pacific/Kiritimati", "cus_a", "Alpha", "pro", day(3, 21, 0))}},
		}},
		{time.Date(2026, 3, 22, 12, 0, 0, 0, time.UTC), []batch{
			{"customers", []rec{customerIn("Pacific/Pago_Pago", "cus_a", "Alpha", "pro", day(3, 22, 0))}},
			{"events", []rec{event("e7", "cus_a", "u1", "g", day(3, 22, 1), day(3, 22, 1))}},
		}},
		{time.Date(2026, 4, 28, 12, 0, 0, 0, time.UTC), nil}, // 37 days without data
	}
	db, once := newDB(t), newDB(t)
	for i, r := range rounds {
		load(t, db.Pool, r.batches...)
		load(t, once.Pool, r.batches...)
		runAt(t, db.Pool, false, r.asOf)
		if n := oracle.Compare(t, db.Pool, r.asOf); t.Failed() {
			t.Fatalf("round %d (%d rows): the marts differ from the oracle", i, n)
		}
	}
	last := rounds[len(rounds)-1].asOf
	runAt(t, once.Pool, false, last)
	if diff := cmp.Diff(snapshotAll(t, db.Pool, true), snapshotAll(t, once.Pool, true)); diff != "" {
		t.Errorf("chained incrementals differ from one refresh of everything (-chained +once):\n%s", diff)
	}
}

// TestRebuildInPlace: sql/030_events.sql rebuilds core.events in place ("-- rebuild in place:"). A --full
// over unchanged data rewrites no event (every row keeps the transaction that wrote it), mends a row that
// differs from staging and deletes one that no staging record stands for, and ends with the rows of a build
// from scratch. A changed events step rewrites what it changes, and equals a database built with it from
// the start.
func TestRebuildInPlace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	for i, r := range fixture {
		load(t, db.Pool, r...)
		runAt(t, db.Pool, false, fixtureClock[i])
	}
	at := fixtureClock[len(fixtureClock)-1]
	want := snapshotAll(t, db.Pool, true)
	written := func() map[string]string { // event -> the transaction that wrote its row
		m := map[string]string{}
		_, lines := pgtest.Query(t, db.Pool, `select event_id, xmin::text from core.events`)
		for _, l := range lines {
			id, x, _ := strings.Cut(l, "\t")
			m[id] = x
		}
		return m
	}
	eventsRows := func(res *refresh.Result) int64 { // what the events step wrote, -1 when it did not run
		for _, s := range res.Steps {
			if s.Name == "sql/030_events.sql" {
				return s.Rows
			}
		}
		return -1
	}

	// Drift that a rebuild must undo: one event's feature changed by hand, and an event that no staging
	// record stands for.
	var mended string
	if err := db.Pool.QueryRow(ctx, `update core.events set feature = 'edited by hand'
		where event_id = (select min(event_id) from core.events) returning event_id`).Scan(&mended); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `insert into core.events (customer_id, event_id, user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id)
		select customer_id, 'evt_stray', user_id, feature, occurred_at, updated_at, properties, staging_id, batch_id
		from core.events where event_id = $1`, mended); err != nil {
		t.Fatal(err)
	}
	before := written()
	analyzed := func() (n int64) { // how often the customers' shared partition of core.events was analyzed
		if err := db.Pool.QueryRow(ctx, `select analyze_count from pg_stat_user_tables where relid = 'core.events_default'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	res := runAt(t, db.Pool, true, at)
	after := written()
	if diff := cmp.Diff(want, snapshotAll(t, db.Pool, true)); diff != "" {
		t.Errorf("--full in place differs from the incremental build (-incremental +full):\n%s", diff)
	}
	if _, ok := after["evt_stray"]; ok {
		t.Error("--full kept an event no staging record stands for")
	}
	var rewritten []string
	for id, x := range after {
		if before[id] != x {
			rewritten = append(rewritten, id)
		}
	}
	if !slices.Equal(rewritten, []string{mended}) {
		t.Errorf("--full rewrote events %v, want only %s (the one that differed)", rewritten, mended)
	}
	if n := eventsRows(res); n != 1 {
		t.Errorf("the events step of --full reports %d rows written (-1: no such step), want 1", n)
	}

	// A rebuild that writes nothing still analyzes what it rebuilt in place: whether a tenant's partition gets
	// fresh statistics must not depend on whether other customers' rows changed.
	analyzedBefore := analyzed()
	res = runAt(t, db.Pool, true, at)
	if n := eventsRows(res); n != 0 {
		t.Errorf("a --full over unchanged events reports %d rows written (-1: no such step), want 0", n)
	}
	deadline := time.Now().Add(5 * time.Second) // the statistics views are read from a snapshot of shared memory
	for analyzed() == analyzedBefore && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if analyzed() == analyzedBefore {
		t.Error("a --full that wrote no event did not analyze core.events")
	}

	// A changed events step (features upper-cased): the rebuild rewrites every event, and its rows equal
	// those of a database that ran the changed step from the start.
	changed := embeddedSQL(t)
	events := string(changed["sql/030_events.sql"].Data)
	if !strings.Contains(events, "s.record ->> 'feature'                      as feature") {
		t.Fatal("the events step no longer reads feature as this test expects")
	}
	changed["sql/030_events.sql"] = &fstest.MapFile{Data: []byte(strings.Replace(events,
		"s.record ->> 'feature'                      as feature", "upper(s.record ->> 'feature')               as feature", 1))}
	rebuildWith := func(pool *pgxpool.Pool) *refresh.Result {
		res, err := refresh.Run(ctx, pool, opts(refresh.Options{Project: changed, AsOf: at}))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := rebuildWith(db.Pool); res.Mode != "full" {
		t.Errorf("run after a changed events step: mode %s, want full", res.Mode)
	}
	if n := mustCount(t, db.Pool, `select count(*) from core.events where feature <> upper(feature)`); n != 0 {
		t.Errorf("%d events keep the old step's feature", n)
	}
	fresh := newDB(t)
	for _, r := range fixture {
		load(t, fresh.Pool, r...)
	}
	rebuildWith(fresh.Pool)
	if diff := cmp.Diff(snapshotAll(t, fresh.Pool, true), snapshotAll(t, db.Pool, true)); diff != "" {
		t.Errorf("the changed step rebuilt in place differs from a build from scratch (-scratch +in place):\n%s", diff)
	}
}

// TestChecksFindUnknownCustomerAndUser: the events checks (events_customer_exists.sql compares the new
// events' customers first) return every event of a missing customer or user, and nothing else.
func TestChecksFindUnknownCustomerAndUser(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	load(t, db.Pool, fixture[0]...)
	run(t, db.Pool, false)

	load(t, db.Pool, batch{"events", []rec{
		event("e97", "cus_a", "usr_a1", "dashboard.view", "2026-04-20T10:00:00Z", "2026-04-20T10:00:00Z"),
		event("e98", "cus_nobody", "usr_x", "dashboard.view", "2026-04-20T10:00:00Z", "2026-04-20T10:00:00Z"),
		event("e99", "cus_nobody", "usr_x", "reports.view", "2026-04-20T11:00:00Z", "2026-04-20T11:00:00Z"),
		event("e96", "cus_a", "usr_ghost", "dashboard.view", "2026-04-20T10:00:00Z", "2026-04-20T10:00:00Z"),
	}})
	_, err := refresh.Run(context.Background(), db.Pool, opts(refresh.Options{}))
	var ce *refresh.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("refresh error = %v, want a *refresh.CheckError", err)
	}
	for i := range ce.Failures {
		slices.SortFunc(ce.Failures[i].Rows, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
	}
	want := []refresh.CheckFailure{{
		Check:   "sql/checks/events_customer_exists.sql",
		Columns: []string{"customer_id", "event_id"},
		Rows:    [][]string{{"cus_nobody", "e98"}, {"cus_nobody", "e99"}},
	}, {
		Check:   "sql/checks/events_user_exists.sql",
		Columns: []string{"customer_id", "event_id", "user_id"},
		Rows:    [][]string{{"cus_a", "e96", "usr_ghost"}, {"cus_nobody", "e98", "usr_x"}, {"cus_nobody", "e99", "usr_x"}},
	}}
	if diff := cmp.Diff(want, ce.Failures); diff != "" {
		t.Errorf("check failures (-want +got):\n%s", diff)
	}
}
