package refresh_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/elt-dev/elt/refresh"
	"github.com/elt-dev/elt/tests/pgtest"
)

// splitProject is a project of one split step over core.split_data: the keys of core.split_keys, grouped
// into units by their unit column, each unit logging what it saw to core.split_seen and writing 100 / v of
// its keys' rows to core.split_out (so a row with v = 0 fails its unit).
var splitProject = fstest.MapFS{"sql/010_split.sql": &fstest.MapFile{Data: []byte(`-- rebuild: core.split_out
-- split: k in (select k, unit from core.split_keys order by ord)
insert into core.split_seen (keys, txid, rebuild) values (@tenants::text, pg_catalog.txid_current(), @rebuild);
insert into core.split_out (k, v) select k, 100 / v from core.split_data where (k = any(@tenants) or @tenants is null);
`)}}

func splitDB(t *testing.T) *pgtest.DB {
	t.Helper()
	db := pgtest.New(t)
	if _, err := db.Pool.Exec(context.Background(), `
create table core.split_keys (k text, unit int, ord int);
create table core.split_data (k text, v int);
create table core.split_out (k text, v int);
create table core.split_seen (seq serial, keys text, txid bigint, rebuild bool);
insert into core.split_keys values ('a', 1, 1), ('b', 2, 2), ('c', 1, 3), ('d', 3, 4);
insert into core.split_data values ('a', 1), ('b', 2), ('c', 4), ('d', 5), ('d', 10)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// splitOut is what the split steps of these tests wrote, as key=value in order.
func splitOut(t *testing.T, db *pgtest.DB) []string {
	t.Helper()
	return strings2(t, db, `select k || '=' || v from core.split_out order by k, v`)
}

func strings2(t *testing.T, db *pgtest.DB, sql string) []string {
	t.Helper()
	rows, _ := db.Pool.Query(context.Background(), sql)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestSplitStepUnits: a split step runs once per unit of keys (keys sharing the query's second column form one
// unit), each unit in a transaction of its own with @tenants bound to its keys and @rebuild saying whether the
// step rebuilds. A rebuild empties each unit's keys' rows in that unit, and at the end the rows of keys the
// query no longer returns.
func TestSplitStepUnits(t *testing.T) {
	t.Parallel()
	db := splitDB(t)
	ctx := context.Background()
	o := refresh.Options{Project: splitProject, Sessions: 2}
	res, err := refresh.Run(ctx, db.Pool, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[0].Rows != 8 {
		t.Errorf("rows written: %d, want 8 (5 rows and 3 log lines)", res.Steps[0].Rows)
	}
	seen := func() []string {
		return strings2(t, db, `select keys || ' ' || rebuild from core.split_seen order by keys`)
	}
	if diff := cmp.Diff([]string{"{a,c} true", "{b} true", "{d} true"}, seen()); diff != "" {
		t.Errorf("units of the first run (-want +got):\n%s", diff)
	}
	if n := mustCount(t, db.Pool, `select count(distinct txid) from core.split_seen`); n != 3 {
		t.Errorf("%d transactions for 3 units", n)
	}
	want := []string{"a=100", "b=50", "c=25", "d=10", "d=20"}
	if diff := cmp.Diff(want, splitOut(t, db)); diff != "" {
		t.Errorf("rows written (-want +got):\n%s", diff)
	}

	// With a watermark the step does not rebuild: nothing is emptied.
	if _, err := db.Pool.Exec(ctx, `delete from core.split_seen`); err != nil {
		t.Fatal(err)
	}
	if _, err := refresh.Run(ctx, db.Pool, o); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"{a,c} false", "{b} false", "{d} false"}, seen()); diff != "" {
		t.Errorf("units of an incremental run (-want +got):\n%s", diff)
	}
	if n := len(splitOut(t, db)); n != 10 {
		t.Errorf("an incremental run emptied rows: %d left, want 10", n)
	}

	// --full after d went away: every unit empties its keys' rows first, and d's rows go at the end.
	if _, err := db.Pool.Exec(ctx, `delete from core.split_seen; delete from core.split_keys where k = 'd'`); err != nil {
		t.Fatal(err)
	}
	o.Full = true
	if _, err := refresh.Run(ctx, db.Pool, o); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"{a,c} true", "{b} true"}, seen()); diff != "" {
		t.Errorf("units of --full (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a=100", "b=50", "c=25"}, splitOut(t, db)); diff != "" {
		t.Errorf("rows after --full (-want +got):\n%s", diff)
	}
}

// TestSplitStepFailure: a failing unit rolls back alone; the units before it stay committed, no unit starts
// after it, the error names the unit and keeps the server's error, and the watermark does not move, so the next
// run runs every unit again (here a rebuild: the step had no watermark).
func TestSplitStepFailure(t *testing.T) {
	t.Parallel()
	db := splitDB(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `update core.split_data set v = 0 where k = 'b'`); err != nil {
		t.Fatal(err)
	}
	o := refresh.Options{Project: splitProject, Sessions: 1} // one session: the units run in the query's order
	_, err := refresh.Run(ctx, db.Pool, o)
	var se *refresh.StepError
	var pg *pgconn.PgError
	if !errors.As(err, &se) || !errors.As(err, &pg) || pg.Code != "22012" {
		t.Fatalf("error %v: want a StepError over division_by_zero", err)
	}
	if se.Unit != "k b" || se.Done != 1 || se.Units != 3 || se.Line != 4 {
		t.Errorf("unit %q, done %d of %d, line %d: want k b, 1 of 3, line 4", se.Unit, se.Done, se.Units, se.Line)
	}
	for _, w := range []string{"sql/010_split.sql failed at line 4 in the unit of k b", "division by zero", "1 of 3 units had committed", "the next run runs the whole step again"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if diff := cmp.Diff([]string{"a=100", "c=25"}, splitOut(t, db)); diff != "" {
		t.Errorf("what stayed after the failed unit (-want +got):\n%s", diff)
	}
	if n := mustCount(t, db.Pool, `select count(*) from elt.refresh_watermarks where step = 'sql/010_split.sql'`); n != 0 {
		t.Error("the failed step's watermark moved")
	}
	if _, err := db.Pool.Exec(ctx, `update core.split_data set v = 2 where k = 'b'`); err != nil {
		t.Fatal(err)
	}
	if _, err := refresh.Run(ctx, db.Pool, o); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a=100", "b=50", "c=25", "d=10", "d=20"}, splitOut(t, db)); diff != "" {
		t.Errorf("rows after the run that followed (-want +got):\n%s", diff)
	}
}

// TestSplitUnitsRunAtOnce: two units that each wait (up to 3 s) until the other holds its lock (and then hold
// theirs half a second more) pass with two sessions, and the same step fails with one: the units really run at the same time.
func TestSplitUnitsRunAtOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `
create function core.rendezvous(unit text) returns void language plpgsql as $$
declare
    me int := case when unit = '{x}' then 1 else 2 end;
begin
    perform pg_catalog.pg_advisory_xact_lock(4242, me);
    for i in 1..300 loop
        if exists (select from pg_catalog.pg_locks where locktype = 'advisory' and classid = 4242 and objid = 3 - me and granted) then
            -- Holding the lock a while longer, so the other unit, polling every 10 ms, sees it too.
            perform pg_catalog.pg_sleep(0.5);
            return;
        end if;
        perform pg_catalog.pg_sleep(0.01);
    end loop;
    raise exception 'the other unit did not run at the same time';
end $$`); err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"sql/010_meet.sql": &fstest.MapFile{Data: []byte("-- split: k in (values ('x'), ('y'))\nselect core.rendezvous(@tenants::text);\n")}}
	if _, err := refresh.Run(ctx, db.Pool, refresh.Options{Project: fsys, Sessions: 2}); err != nil {
		t.Errorf("two sessions: %v", err)
	}
	_, err := refresh.Run(ctx, db.Pool, refresh.Options{Project: fsys, Sessions: 1, Full: true})
	if err == nil || !strings.Contains(err.Error(), "did not run at the same time") {
		t.Errorf("one session: %v, want the rendezvous to fail", err)
	}
}

// TestSplitLineRefused: a malformed split line, one beside a tenants line, one in a data check, and a NULL key
// are refused with what to do.
func TestSplitLineRefused(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	for file, want := range map[string]string{
		"-- split: select k from t\nselect 1;\n":                                     `want "-- split: column in (query)" on one line`,
		"-- split: k in (select 1)\n-- split: k in (select 2)\nselect 1;\n":          `more than one "-- split:" line`,
		"-- split: k in (select 1)\n-- tenants: select 1\nselect 1;\n":               `not both`,
		"-- split: k in (select 1, 2, 3)\nselect 1;\n":                               `it returns 3 columns`,
		"-- split: k in (values ('a'), (null))\nselect @tenants::text;\n":            `it returned a NULL k`,
		"-- split: k in (select * from core.nothing)\nselect @tenants::text;\n":      `failed at line 1 (the -- split: query)`,
		"-- split: k in (select 'a')\nselect 1 where (k = any(@tenants) or true);\n": `uses @tenants other than as`,
	} {
		fsys := fstest.MapFS{"sql/010_split.sql": &fstest.MapFile{Data: []byte(file)}}
		if _, err := refresh.Run(ctx, db.Pool, refresh.Options{Project: fsys}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", file, err, want)
		}
	}
	fsys := fstest.MapFS{"sql/010_one.sql": &fstest.MapFile{Data: []byte("select 1;\n")},
		"sql/checks/x.sql": &fstest.MapFile{Data: []byte("-- split: k in (select 1)\nselect 1 where false\n")}}
	if _, err := refresh.Run(ctx, db.Pool, refresh.Options{Project: fsys}); err == nil || !strings.Contains(err.Error(), "a data check cannot be split") {
		t.Errorf("a split check: %v", err)
	}
}

// TestSessionsGiveTheSameMarts: the default project's split steps build the same core, rollups and marts
// whether their units run on one session or on four.
func TestSessionsGiveTheSameMarts(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	for _, b := range fixture {
		load(t, db.Pool, b...)
	}
	var want map[string]string
	for _, n := range []int{1, 4} {
		res, err := refresh.Run(ctx, db.Pool, opts(refresh.Options{Full: true, Sessions: n}))
		if err != nil {
			t.Fatalf("%d sessions: %v", n, err)
		}
		got := snapshotAll(t, db.Pool, true)
		if want == nil {
			want = got
			if res.Rows() == 0 {
				t.Fatal("nothing built")
			}
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("4 sessions differ from 1 (-1 +4):\n%s", diff)
		}
	}
}

// TestSplitKeysQuoted: keys that need quoting in an array literal reach @tenants as themselves, and match
// their rows.
func TestSplitKeysQuoted(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `create table core.odd (k text, seen text)`); err != nil {
		t.Fatal(err)
	}
	keys := []string{`plain`, `with space`, `comma,brace{}`, `quote"back\slash`, `NULL`, ``}
	if _, err := db.Pool.Exec(ctx, `insert into core.odd (k) select unnest($1::text[])`, keys); err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"sql/010_odd.sql": &fstest.MapFile{Data: []byte("-- split: k in (select k from core.odd)\n" +
		"update core.odd as o set seen = @tenants::text where (o.k = any(@tenants) or @tenants is null);\n")}}
	if _, err := refresh.Run(ctx, db.Pool, refresh.Options{Project: fsys}); err != nil {
		t.Fatal(err)
	}
	got := strings2(t, db, `select coalesce(seen, 'unseen') || ' = ' || array[k]::text from core.odd order by k`)
	for _, g := range got {
		if a, b, _ := strings.Cut(g, " = "); a != b {
			t.Errorf("a unit's @tenants and its key's literal differ: %s", g)
		}
	}
	if len(got) != len(keys) {
		t.Errorf("%d rows, want %d", len(got), len(keys))
	}
}

// TestInterruptedSplitRebuild: a rebuild of a split step that empties its queue per unit (as the default
// project's mart step does) stops at a failing unit; the rebuild run again finds only the keys still queued,
// and still keeps the rows of the units that committed the first time (elt.refresh_units), while the rows of
// a key that is in no unit at all go.
func TestInterruptedSplitRebuild(t *testing.T) {
	t.Parallel()
	db := splitDB(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `update core.split_data set v = 0 where k = 'c';
		update core.split_keys set unit = ord;
		insert into core.split_out values ('gone', 1)`); err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"sql/010_queue.sql": &fstest.MapFile{Data: []byte(`-- rebuild: core.split_out
-- split: k in (select k, unit from core.split_keys order by ord)
insert into core.split_out (k, v) select k, 100 / v from core.split_data where (k = any(@tenants) or @tenants is null);
delete from core.split_keys where (k = any(@tenants) or @tenants is null);
`)}}
	o := refresh.Options{Project: fsys, Sessions: 1}
	if _, err := refresh.Run(ctx, db.Pool, o); err == nil {
		t.Fatal("the unit of c should fail")
	}
	if diff := cmp.Diff([]string{"a", "b"}, strings2(t, db, `select unit_key from elt.refresh_units order by 1`)); diff != "" {
		t.Errorf("keys remembered after the failed unit (-want +got):\n%s", diff)
	}
	if _, err := db.Pool.Exec(ctx, `update core.split_data set v = 4 where k = 'c'`); err != nil {
		t.Fatal(err)
	}
	if _, err := refresh.Run(ctx, db.Pool, o); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a=100", "b=50", "c=25", "d=10", "d=20"}, splitOut(t, db)); diff != "" {
		t.Errorf("rows after the rebuild ran again (-want +got):\n%s", diff)
	}
	if n := mustCount(t, db.Pool, `select count(*) from elt.refresh_units`); n != 0 {
		t.Errorf("%d keys still remembered after the rebuild finished", n)
	}
}

// TestChecksShareOneSnapshot: the data checks run on several sessions at once, and every one reads the
// snapshot of the first: while they run, other transactions keep committing, so a check that took a
// snapshot of its own would see a later one.
func TestChecksShareOneSnapshot(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `create function core.pause() returns int language sql as 'select 1 from pg_catalog.pg_sleep(0.4)'`); err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"sql/010_noop.sql": &fstest.MapFile{Data: []byte("select 1;\n")}}
	for _, name := range []string{"a", "b", "c", "d"} {
		fsys["sql/checks/"+name+".sql"] = &fstest.MapFile{Data: []byte(
			"select pg_catalog.pg_backend_pid()::text as pid, pg_catalog.pg_current_snapshot()::text as snapshot, core.pause() as paused\n")}
	}
	done := make(chan struct{})
	writer := make(chan error, 1)
	go func() { // transactions that commit one after the other move every later snapshot on
		for {
			select {
			case <-done:
				writer <- nil
				return
			default:
			}
			if _, err := db.Pool.Exec(ctx, `select pg_catalog.txid_current()`); err != nil {
				writer <- err
				return
			}
		}
	}()
	_, err := refresh.Run(ctx, db.Pool, refresh.Options{Project: fsys, Sessions: 2})
	close(done)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	var ce *refresh.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("refresh error = %v, want a *refresh.CheckError (every check returns its session)", err)
	}
	pids, snapshots := map[string]bool{}, map[string]bool{}
	for _, f := range ce.Failures {
		if len(f.Rows) != 1 {
			t.Fatalf("%s returned %d rows, want 1", f.Check, len(f.Rows))
		}
		pids[f.Rows[0][0]], snapshots[f.Rows[0][1]] = true, true
	}
	if len(ce.Failures) != 4 || len(pids) < 2 {
		t.Errorf("%d checks ran on %d sessions, want 4 on 2", len(ce.Failures), len(pids))
	}
	if len(snapshots) != 1 {
		t.Errorf("the checks read %d snapshots, want one: %v", len(snapshots), snapshots)
	}
}

// TestUnitsCommitAsynchronously: a unit of a split step commits with synchronous_commit off (the step's
// closing transaction, which moves the watermark, makes them durable); a step without units keeps the
// server's setting.
func TestUnitsCommitAsynchronously(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	// The test cluster runs with synchronous_commit off; this database's sessions get the default.
	if _, err := db.Pool.Exec(ctx, `create table core.sync_seen (step text, k text, sync text);
do $$ begin execute format('alter database %I set synchronous_commit = on', current_database()); end $$`); err != nil {
		t.Fatal(err)
	}
	db.Pool.Reset()
	fsys := fstest.MapFS{
		"sql/010_plain.sql": &fstest.MapFile{Data: []byte("insert into core.sync_seen select 'plain', null, pg_catalog.current_setting('synchronous_commit');\n")},
		"sql/020_split.sql": &fstest.MapFile{Data: []byte("-- split: k in (values ('x'), ('y'))\ninsert into core.sync_seen select 'split', k, pg_catalog.current_setting('synchronous_commit') from unnest(@tenants::text[]) as t(k);\n")},
	}
	if _, err := refresh.Run(ctx, db.Pool, refresh.Options{Project: fsys, Sessions: 2}); err != nil {
		t.Fatal(err)
	}
	got := strings2(t, db, `select step || ' ' || coalesce(k, '-') || ' ' || sync from core.sync_seen order by 1`)
	want := []string{"plain - on", "split x off", "split y off"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("synchronous_commit per step (-want +got):\n%s", diff)
	}
}
