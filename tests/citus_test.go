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

// Acceptance (past one machine): the default project, unchanged, on a Citus coordinator with two workers:
// elt migrate distributes every table keyed by customer (co-located), extract and refresh run there and the
// marts equal the oracle's recomputation, tenant add builds each tenant's layer, every tenant reads exactly
// its own rows, every query of a tenant's dashboard goes to one shard (EXPLAIN: one task), and elt tenant
// check passes.
func TestCitusEndToEnd(t *testing.T) {
	ctx := context.Background()
	const dbName = "elt"
	settings := map[string]string{"shared_preload_libraries": "'citus'", "citus.shard_count": "4"}
	coord := pgtest.NewCluster(t, settings)
	workers := []*localpg.Cluster{pgtest.NewCluster(t, settings), pgtest.NewCluster(t, settings)}
	for _, c := range append([]*localpg.Cluster{coord}, workers...) {
		execSQL(t, c.URL("postgres"), "create database "+dbName)
		execSQL(t, c.URL(dbName), "create extension citus")
	}
	// The nodes reach each other over their Unix sockets (trust, reachable by the server's OS user only).
	execSQL(t, coord.URL(dbName), fmt.Sprintf("select citus_set_coordinator_host('%s', %d)", coord.SocketDir(), coord.Port))
	for _, w := range workers {
		execSQL(t, coord.URL(dbName), fmt.Sprintf("select citus_add_node('%s', %d)", w.SocketDir(), w.Port))
	}

	super := coord.URL(dbName)
	if r := runElt(t, []string{"DATABASE_URL=" + super, "ELT_CONFIG=" + demoConfig}, "migrate"); r.Code != 0 {
		t.Fatalf("elt migrate on the coordinator: exit %d:\n%s", r.Code, r.Stderr)
	}
	pool, err := pgxpool.New(ctx, super)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	// Every table of the project's schemas with the tenant key is hash-distributed by it, all in one
	// co-location group (partitions included); none is left on the coordinator.
	p, err := project.Load(filepath.Dir(demoConfig), demoConfig)
	if err != nil {
		t.Fatal(err)
	}
	var local []string
	var groups []int64
	rows, _ := pool.Query(ctx, `
select c.oid::regclass::text from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where n.nspname = any ($1) and c.relkind in ('r', 'p')
  and exists (select from pg_attribute as a where a.attrelid = c.oid and a.attname = $2)
  and not exists (select from pg_dist_partition as d where d.logicalrelid = c.oid and d.partmethod = 'h')
order by 1`, p.Schemas, p.Tenants.Key)
	if local, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(local) > 0 {
		t.Errorf("tables keyed by %s that are not distributed by it: %v", p.Tenants.Key, local)
	}
	rows, _ = pool.Query(ctx, `select distinct colocationid::bigint from pg_dist_partition where partmethod = 'h'`)
	if groups, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil || len(groups) != 1 {
		t.Errorf("co-location groups of the distributed tables: %v (%v), want one", groups, err)
	}

	// Six customers on four shards: some shards hold several, so a unit of the refresh's split steps holds
	// several customers (those of one shard, refresh.citusUnits); three have logins (their own partitions),
	// three share the default partitions.
	api := demoapi.New(demoapi.Options{Customers: 6, Events: 9000, Seed: 7, Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Token: "citus-token"})
	ts := httptest.NewServer(api)
	defer ts.Close()
	env := []string{
		"DATABASE_URL=" + pgtest.As(super, "elt_runner"),
		"ELT_CONFIG=" + demoConfig,
		"ELT_DEMO_API_URL=" + ts.URL,
		"ELT_DEMO_API_TOKEN=citus-token",
	}
	asOf := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for _, args := range [][]string{{"extract"}, {"refresh", "--as-of", asOf.Format(time.RFC3339)}} {
		if r := runElt(t, env, args...); r.Code != 0 {
			t.Fatalf("elt %v on Citus: exit %d:\n%s", args, r.Code, r.Stderr)
		}
	}
	t.Logf("oracle after the first refresh: %d rows equal", oracle.Compare(t, pool, asOf))

	// Tenants, then an incremental run on a later day (the clock moves every customer's marts on).
	logins := map[string]string{} // customer -> login
	passwords := map[string]string{}
	tenants := api.Customers()[:3]
	for _, c := range tenants {
		pwFile := filepath.Join(t.TempDir(), c.ID+".password")
		r := runElt(t, env, "tenant", "add", c.ID, "--password-to", pwFile)
		if r.Code != 0 {
			t.Fatalf("tenant add %s on Citus: exit %d:\n%s", c.ID, r.Code, r.Stderr)
		}
		m := regexp.MustCompile(`login and schema (\S+)`).FindStringSubmatch(r.Stdout)
		if m == nil {
			t.Fatalf("tenant add %s: no login name in output:\n%s", c.ID, r.Stdout)
		}
		logins[c.ID], passwords[c.ID] = m[1], readFile(t, pwFile)
	}
	later := asOf.Add(50 * time.Hour)
	if r := runElt(t, env, "refresh", "--as-of", later.Format(time.RFC3339)); r.Code != 0 {
		t.Fatalf("incremental refresh on Citus: exit %d:\n%s", r.Code, r.Stderr)
	}
	t.Logf("oracle after an incremental refresh two days later: %d rows equal", oracle.Compare(t, pool, later))

	// Each tenant reads, through each published relation, exactly its own rows of the table it is published
	// from, and each of these queries, and those a dashboard sends, goes to one shard.
	for _, c := range tenants {
		tenant, err := pgx.Connect(ctx, pgtest.TCPURL("127.0.0.1:"+strconv.Itoa(coord.Port), dbName, logins[c.ID], passwords[c.ID]))
		if err != nil {
			t.Fatalf("connect as %s's login: %v", c.ID, err)
		}
		// Text in UTC, as the owner's session prints it (a tenant's session is in its customer's zone).
		if _, err := tenant.Exec(ctx, "set timezone to 'UTC'"); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Tenants.Publish {
			cols := make([]string, len(r.Columns))
			for i, col := range r.Columns {
				cols[i] = pgx.Identifier{col.Name}.Sanitize()
			}
			list := strings.Join(cols, ", ")
			from := pgx.Identifier(strings.SplitN(r.From, ".", 2)).Sanitize()
			own := lines(t, pool, "select "+list+" from "+from+" where "+pgx.Identifier{p.Tenants.Key}.Sanitize()+" = $1", c.ID)
			seen := lines(t, tenant, "select "+list+" from "+pgx.Identifier{r.Name}.Sanitize())
			if diff := cmp.Diff(own, seen); diff != "" {
				t.Errorf("%s reads %s (-its rows of %s +what it sees):\n%s", c.ID, r.Name, r.From, diff)
			}
			if len(own) == 0 && r.Name != "feature_adoption" {
				t.Errorf("%s: %s has no rows for %s: the comparison shows nothing", c.ID, r.From, c.ID)
			}
			oneTask(t, tenant, c.ID, "select count(*) from "+pgx.Identifier{r.Name}.Sanitize())
		}
		for _, q := range []string{
			// what Superset sends for the starter dashboard's charts (time series, a breakdown, a table)
			`select date_trunc('week', day) as __timestamp, sum(active_users) as "DAU" from active_users_daily where day >= '2026-08-01' group by 1 order by 2 desc limit 10000`,
			`select feature, sum(events) as events from feature_usage_daily group by feature order by events desc limit 100`,
			`select * from user_activity order by events_30d desc limit 50`,
			`select cohort_week, week_number, active_users::float / nullif(cohort_users, 0) from retention_weekly where complete`,
			// an analyst's own SQL: a join of two of its relations
			`select u.user_id, count(e.event_id) from users as u join events as e on e.user_id = u.user_id group by 1 order by 2 desc limit 10`,
		} {
			oneTask(t, tenant, c.ID, q)
		}
		tenant.Close(ctx)
	}
	if r := runElt(t, env, "tenant", "check"); r.Code != 0 {
		t.Errorf("tenant check on Citus: exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
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

// lines runs sql and returns its rows as tab-separated text (NULL as \N), sorted.
func lines(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), sql, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var vals []string
		for _, v := range rows.RawValues() {
			if v == nil {
				vals = append(vals, `\N`)
			} else {
				vals = append(vals, string(v))
			}
		}
		out = append(out, strings.Join(vals, "\t"))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	sort.Strings(out)
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
