//go:build citus

// The Citus end-to-end test: make test-citus (Citus built from ../shared/vendor by tests/citus/build.sh).

package tests

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/demoapi"
	"github.com/elt-dev/elt/localpg"
	"github.com/elt-dev/elt/project"
	"github.com/elt-dev/elt/tests/oracle"
	"github.com/elt-dev/elt/tests/pgtest"
)

// citusRun is the default project after the pipeline on a Citus coordinator with two workers (citusPipeline).
type citusRun struct {
	coord     *localpg.Cluster
	pool      *pgxpool.Pool // the coordinator's superuser
	env       []string      // elt's environment (as elt_runner)
	project   *project.Project
	tenants   []demoapi.Customer
	logins    map[string]string // customer -> login
	passwords map[string]string
	later     time.Time // the clock of the last refresh
	took      map[string]time.Duration
}

const citusDB = "elt"

// citusPipeline starts a coordinator and two workers (throwaway clusters, citus.shard_count 4), runs elt
// migrate as the superuser, extracts the demo API (six customers), runs mutate as the superuser (SQL on the
// staging tables, "" for none), refreshes, adds tenants for the first three customers, and refreshes again two
// days later. With check, the marts are compared with the oracle after both refreshes.
func citusPipeline(t *testing.T, mutate string, check bool) *citusRun {
	t.Helper()
	ctx := context.Background()
	// Autovacuum off, so that statistics change only when elt (or the test) analyzes: when autovacuum gets to a
	// shard is timing, which docs/tenants.md leaves open.
	settings := map[string]string{"shared_preload_libraries": "'citus'", "citus.shard_count": "4", "autovacuum": "off"}
	coord := pgtest.NewCluster(t, settings)
	workers := []*localpg.Cluster{pgtest.NewCluster(t, settings), pgtest.NewCluster(t, settings)}
	for _, c := range append([]*localpg.Cluster{coord}, workers...) {
		execSQL(t, c.URL("postgres"), "create database "+citusDB)
		execSQL(t, c.URL(citusDB), "create extension citus")
	}
	// The nodes reach each other over their Unix sockets (trust, reachable by the server's OS user only).
	execSQL(t, coord.URL(citusDB), fmt.Sprintf("select citus_set_coordinator_host('%s', %d)", coord.SocketDir(), coord.Port))
	for _, w := range workers {
		execSQL(t, coord.URL(citusDB), fmt.Sprintf("select citus_add_node('%s', %d)", w.SocketDir(), w.Port))
	}
	p, err := project.Load(filepath.Dir(demoConfig), demoConfig)
	if err != nil {
		t.Fatal(err)
	}
	run := &citusRun{coord: coord, project: p, logins: map[string]string{}, passwords: map[string]string{}, took: map[string]time.Duration{}}
	timed := func(what string, env []string, args ...string) {
		t.Helper()
		t0 := time.Now()
		if r := runElt(t, env, args...); r.Code != 0 {
			t.Fatalf("elt %v on Citus: exit %d:\n%s", args, r.Code, r.Stderr)
		}
		run.took[what] = time.Since(t0)
	}
	super := coord.URL(citusDB)
	timed("migrate", []string{"DATABASE_URL=" + super, "ELT_CONFIG=" + demoConfig}, "migrate")
	if run.pool, err = pgxpool.New(ctx, super); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(run.pool.Close)

	// Six customers on four shards: some shards hold several, so a unit of the refresh's split steps holds
	// several customers (those of one shard, refresh.citusUnits); three have logins (their own partitions),
	// three share the default partitions.
	api := demoapi.New(demoapi.Options{Customers: 6, Events: 9000, Seed: 7, Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Token: "citus-token"})
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	run.env = []string{
		"DATABASE_URL=" + pgtest.As(super, "elt_runner"),
		"ELT_CONFIG=" + demoConfig,
		"ELT_DEMO_API_URL=" + ts.URL,
		"ELT_DEMO_API_TOKEN=citus-token",
	}
	timed("extract", run.env, "extract")
	if mutate != "" {
		if _, err := run.pool.Exec(ctx, mutate); err != nil {
			t.Fatalf("mutate: %v", err)
		}
	}
	asOf := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	timed("refresh (first)", run.env, "refresh", "--as-of", asOf.Format(time.RFC3339))
	if check {
		t.Logf("oracle after the first refresh: %d rows equal", oracle.Compare(t, run.pool, asOf))
	}
	run.tenants = api.Customers()[:3]
	for _, c := range run.tenants {
		pwFile := filepath.Join(t.TempDir(), c.ID+".password")
		t0 := time.Now()
		r := runElt(t, run.env, "tenant", "add", c.ID, "--password-to", pwFile)
		run.took["tenant add (each)"] = time.Since(t0)
		if r.Code != 0 {
			t.Fatalf("tenant add %s on Citus: exit %d:\n%s", c.ID, r.Code, r.Stderr)
		}
		m := regexp.MustCompile(`login and schema (\S+)`).FindStringSubmatch(r.Stdout)
		if m == nil {
			t.Fatalf("tenant add %s: no login name in output:\n%s", c.ID, r.Stdout)
		}
		run.logins[c.ID], run.passwords[c.ID] = m[1], readFile(t, pwFile)
	}
	// An incremental run on a later day: the clock moves every customer's marts on.
	run.later = asOf.Add(50 * time.Hour)
	timed("refresh two days later", run.env, "refresh", "--as-of", run.later.Format(time.RFC3339))
	if check {
		t.Logf("oracle after an incremental refresh two days later: %d rows equal", oracle.Compare(t, run.pool, run.later))
		// A full rebuild over what is there: sql/030_events.sql rebuilds core.events in place (on each shard,
		// staging's versions against the rows held, the tenants' partitions among them), writes nothing
		// since nothing changed, and the marts stay the oracle's.
		timed("refresh --full", run.env, "refresh", "--full", "--as-of", run.later.Format(time.RFC3339))
		var written int64
		if err := run.pool.QueryRow(ctx, `select rows from elt.refresh_steps where name = 'sql/030_events.sql'
			order by run_id desc limit 1`).Scan(&written); err != nil {
			t.Fatal(err)
		}
		if written != 0 {
			t.Errorf("--full over unchanged data rewrote %d events on Citus, want 0", written)
		}
		t.Logf("oracle after --full: %d rows equal", oracle.Compare(t, run.pool, run.later))
	}
	// Fresh statistics everywhere (Citus analyzes every shard of a distributed table).
	if _, err := run.pool.Exec(ctx, "analyze"); err != nil {
		t.Fatal(err)
	}
	return run
}

// connect opens a session as customer's login, its text in UTC, as the owner's session prints it (a tenant's
// session is in its customer's zone).
func (run *citusRun) connect(t *testing.T, customer string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.TCPURL("127.0.0.1:"+strconv.Itoa(run.coord.Port), citusDB, run.logins[customer], run.passwords[customer]))
	if err != nil {
		t.Fatalf("connect as %s's login: %v", customer, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "set timezone to 'UTC'"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// dashboardQueries are what Superset sends for the starter dashboard's charts (a time series, a breakdown, a
// table, a heatmap) and an analyst's own join of two relations.
var dashboardQueries = []string{
	`select date_trunc('week', day) as __timestamp, sum(active_users) as "DAU" from active_users_daily where day >= '2026-08-01' group by 1 order by 2 desc limit 10000`,
	`select feature, sum(events) as events from feature_usage_daily group by feature order by events desc limit 100`,
	`select * from user_activity order by events_30d desc limit 50`,
	`select cohort_week, week_number, active_users::float / nullif(cohort_users, 0) from retention_weekly where complete`,
	`select u.user_id, count(e.event_id) from users as u join events as e on e.user_id = u.user_id group by 1 order by 2 desc limit 10`,
}

// Acceptance (past one machine): the default project, unchanged, on a Citus coordinator with two workers:
// elt migrate distributes every table keyed by customer (co-located), extract and refresh run there and the
// marts equal the oracle's recomputation, tenant add builds each tenant's layer, every tenant reads exactly
// its own rows, every query of a tenant's dashboard goes to one shard (EXPLAIN: one task), and elt tenant
// check passes.
func TestCitusEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := citusPipeline(t, "", true)
	p := run.project

	// Every table of the project's schemas with the tenant key is hash-distributed by it, all in one
	// co-location group (partitions included); none is left on the coordinator.
	rows, _ := run.pool.Query(ctx, `
select c.oid::regclass::text from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where n.nspname = any ($1) and c.relkind in ('r', 'p')
  and exists (select from pg_attribute as a where a.attrelid = c.oid and a.attname = $2)
  and not exists (select from pg_dist_partition as d where d.logicalrelid = c.oid and d.partmethod = 'h')
order by 1`, p.Schemas, p.Tenants.Key)
	local, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(local) > 0 {
		t.Errorf("tables keyed by %s that are not distributed by it: %v", p.Tenants.Key, local)
	}
	rows, _ = run.pool.Query(ctx, `select distinct colocationid::bigint from pg_dist_partition where partmethod = 'h'`)
	if groups, err := pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil || len(groups) != 1 {
		t.Errorf("co-location groups of the distributed tables: %v (%v), want one", groups, err)
	}

	// Each tenant reads, through each published relation, exactly its own rows of the table it is published
	// from, and each of these queries, and those a dashboard sends, goes to one shard.
	for _, c := range run.tenants {
		tenant := run.connect(t, c.ID)
		for _, r := range p.Tenants.Publish {
			cols := make([]string, len(r.Columns))
			for i, col := range r.Columns {
				cols[i] = pgx.Identifier{col.Name}.Sanitize()
			}
			list := strings.Join(cols, ", ")
			from := pgx.Identifier(strings.SplitN(r.From, ".", 2)).Sanitize()
			own := lines(t, run.pool, "select "+list+" from "+from+" where "+pgx.Identifier{p.Tenants.Key}.Sanitize()+" = $1", c.ID)
			seen := lines(t, tenant, "select "+list+" from "+pgx.Identifier{r.Name}.Sanitize())
			if diff := cmp.Diff(own, seen); diff != "" {
				t.Errorf("%s reads %s (-its rows of %s +what it sees):\n%s", c.ID, r.Name, r.From, diff)
			}
			if len(own) == 0 && r.Name != "feature_adoption" {
				t.Errorf("%s: %s has no rows for %s: the comparison shows nothing", c.ID, r.From, c.ID)
			}
			oneTask(t, tenant, c.ID, "select count(*) from "+pgx.Identifier{r.Name}.Sanitize())
		}
		for _, q := range dashboardQueries {
			oneTask(t, tenant, c.ID, q)
		}
	}
	t0 := time.Now()
	if r := runElt(t, run.env, "tenant", "check"); r.Code != 0 {
		t.Errorf("tenant check on Citus: exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	run.took["tenant check"] = time.Since(t0)
	t.Logf("took: %v", run.took)
}

// othersOnCitus changes the other customers' data in staging before the first refresh: three more copies of
// each of their events (new ids, an hour apart), and other features and properties. cus_0001's records stay.
const othersOnCitus = `
insert into staging.events (batch_id, record)
select e.batch_id,
       e.record || jsonb_build_object('id', (e.record ->> 'id') || '_c' || n,
                                      'occurred_at', to_char(((e.record ->> 'occurred_at')::timestamptz + n * interval '1 hour') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
from staging.events as e
cross join generate_series(1, 3) as n
where e.record ->> 'customer_id' <> 'cus_0001';
update staging.events
   set record = record || jsonb_build_object('feature', 'other.' || md5(record ->> 'id'), 'properties', jsonb_build_object('k', repeat('x', 300)))
 where record ->> 'customer_id' <> 'cus_0001'`

// Non-interference on Citus: two clusters that went through the same steps and differ only in the other
// customers' data look the same to cus_0001: the plans of its queries with Citus's tasks, estimates, costs
// and actual rows, its rows, the catalog it can read of the project's schemas, and what it gets from Citus's
// metadata, statistics and size functions (refused). The same comparison after granting cus_0001 one size
// function sees the difference: the observations look where a leak would show.
func TestCitusNonInterference(t *testing.T) {
	t.Parallel()
	base := citusPipeline(t, "", false)
	other := citusPipeline(t, othersOnCitus, false)
	want, got := base.observe(t, "cus_0001"), other.observe(t, "cus_0001")
	t.Logf("%d observations as cus_0001", len(want))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what cus_0001 observes depends on the other customers' data (-base +others):\n%s", diff)
	}
	// The controls: with a size function granted on the coordinator, or a statistics function on the workers,
	// the other customers' data shows, and in that observation.
	controls := []struct{ observation, grant string }{
		{"select citus_total_relation_size('core.events_default')", "grant execute on function pg_catalog.citus_total_relation_size(regclass, boolean) to %s"},
		{"select pg_current_wal_lsn() from users limit 1", "select run_command_on_workers('grant execute on function pg_catalog.pg_current_wal_lsn() to %s')"},
	}
	for _, c := range controls {
		for _, run := range []*citusRun{base, other} {
			if _, err := run.pool.Exec(context.Background(), fmt.Sprintf(c.grant, pgx.Identifier{run.logins["cus_0001"]}.Sanitize())); err != nil {
				t.Fatal(err)
			}
		}
		want, got = base.observe(t, "cus_0001"), other.observe(t, "cus_0001")
		if want[c.observation] == got[c.observation] {
			t.Errorf("control %q: cus_0001 observes the same in both clusters (%q): the comparison cannot see a leak there", c.grant, got[c.observation])
		}
	}
}

// observe records what customer's login sees, by a stable key, with what differs between two clusters but is
// not data replaced: login names (random) and the workers' addresses in EXPLAIN.
func (run *citusRun) observe(t *testing.T, customer string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn := run.connect(t, customer)
	var repl []string
	for c, login := range run.logins {
		repl = append(repl, strings.TrimPrefix(login, "tenant_"), "LOGIN-"+c)
	}
	node := regexp.MustCompile(`host=\S+ port=\d+`)
	norm := func(s string) string {
		return node.ReplaceAllString(strings.NewReplacer(repl...).Replace(s), "host=NODE")
	}
	out := map[string]string{}
	try := func(key, sql string, sorted bool) {
		rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		var got []string
		if err == nil {
			for rows.Next() {
				var cells []string
				for _, v := range rows.RawValues() {
					cells = append(cells, string(v))
				}
				got = append(got, strings.Join(cells, "|"))
			}
			rows.Close()
			err = rows.Err()
		}
		if err != nil {
			got = append(got, "error: "+err.Error())
			if _, rerr := conn.Exec(ctx, "select 1"); rerr != nil {
				t.Fatalf("%s: session broken: %v", key, rerr)
			}
		}
		for i := range got {
			got[i] = norm(got[i])
		}
		if sorted {
			sort.Strings(got)
		}
		out[key] = strings.Join(got, "\n")
	}
	for _, r := range run.project.Tenants.Publish {
		rel := pgx.Identifier{r.Name}.Sanitize()
		try("rows "+r.Name, "select * from "+rel, true)
		try("explain analyze "+r.Name, "explain (analyze, costs, verbose, timing off, summary off) select * from "+rel, false)
		try("explain count "+r.Name, "explain (analyze, costs, timing off, summary off) select count(*) from "+rel, false)
	}
	for i, q := range dashboardQueries {
		try(fmt.Sprintf("explain dashboard %d", i), "explain (analyze, costs, timing off, summary off) "+q, false)
	}
	try("catalog", `select n.nspname, c.relname, c.relkind, c.relnatts, c.relhasindex
from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where n.nspname in ('core', 'marts', current_user)`, true)
	for _, q := range []string{
		"select * from citus_shards", "select * from citus_tables", "select * from citus_stat_tenants",
		"select * from citus_stat_statements", "select * from pg_dist_shard", "select * from pg_dist_placement",
		"select * from citus_shard_sizes()", "select citus_relation_size('core.events_default')",
		"select citus_total_relation_size('core.events_default')", "select citus_table_size('core.events')",
		"select * from citus_stat_activity", "select * from citus_locks", "select last_value from pg_dist_shardid_seq",
		// Citus runs a router query's functions on the worker, as the tenant's login: the workers are hardened too.
		"select pg_current_wal_lsn() from users limit 1",
		"select txid_current_if_assigned(), pg_stat_get_db_xact_commit(1) from users limit 1",
		"select query_to_xml('select sum(reltuples) from pg_class', false, false, '') from users limit 1",
		"select query_to_xml('select sum(pg_relation_size(oid)) from pg_class', false, false, '') from users limit 1",
		"select query_to_xml('select count(*) from pg_statistic', false, false, '') from users limit 1",
		"select query_to_xml('select * from citus_shard_sizes()', false, false, '') from users limit 1",
	} {
		try(q, q, true)
	}
	return out
}

// oneTask fails the test unless Citus runs q, as the tenant's session, as one task on one shard.
func oneTask(t *testing.T, conn *pgx.Conn, customer, q string) {
	t.Helper()
	plan := strings.Join(lines(t, conn, "explain "+q), "\n")
	tasks := regexp.MustCompile(`Task Count: (\d+)`).FindAllStringSubmatch(plan, -1)
	if len(tasks) != 1 || tasks[0][1] != "1" {
		t.Errorf("%s: %s: want one task on one shard, got plan:\n%s", customer, q, plan)
	}
}

// lines runs sql and returns its rows as tab-separated text (NULL as \N), sorted (pgtest.Query).
func lines(t *testing.T, q pgtest.Querier, sql string, args ...any) []string {
	t.Helper()
	_, out := pgtest.Query(t, q, sql, args...)
	return out
}

// execSQL runs sql on a fresh connection to u.
func execSQL(t *testing.T, u, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
