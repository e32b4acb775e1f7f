package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/elt-dev/elt/demoapi"
	"github.com/elt-dev/elt/tests/pgtest"
)

// Acceptance (scale, hot standby): elt db start --standby-of makes a streaming hot standby of a primary; after
// extract, refresh and tenant add on the primary, each tenant's login reads the standby exactly as the primary
// (rows, and EXPLAIN's estimates and costs: the standby has the primary's planner statistics), is denied there
// what it is denied on the primary, and is held to its limits there by elt tenant guard run against the
// standby; elt tenant check passes on the standby; elt status shows the replication on both.
func TestStandbyServesTenantsAsThePrimary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Without autovacuum: an analyze committed on the primary between the two observations would change
	// EXPLAIN's estimates on one side only.
	srv := pgtest.NewServer(t, map[string]string{"autovacuum": "off"})
	db := srv.New(t, pgtest.DefaultProject(t))
	api := demoapi.New(demoapi.Options{Customers: 3, Events: 6000, Seed: 11, Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Token: "standby-token"})
	ts := httptest.NewServer(api)
	defer ts.Close()
	primary := []string{
		"DATABASE_URL=" + db.URLAs("elt_runner"),
		"ELT_CONFIG=" + demoConfig,
		"ELT_DEMO_API_URL=" + ts.URL,
		"ELT_DEMO_API_TOKEN=standby-token",
	}
	if r := runElt(t, primary, "extract"); r.Code != 0 {
		t.Fatalf("elt extract: exit %d:\n%s", r.Code, r.Stderr)
	}

	// The standby, from a base backup of the primary taken now: what follows reaches it by streaming.
	dir := filepath.Join(t.TempDir(), "standby")
	start := runElt(t, nil, "db", "--dir", dir, "--database", db.Name, "start", "--standby-of", db.URLFor("postgres"))
	if start.Code != 0 {
		t.Fatalf("elt db start --standby-of: exit %d:\n%s%s", start.Code, start.Stdout, start.Stderr)
	}
	t.Cleanup(func() { runElt(t, nil, "db", "--dir", dir, "stop") })
	standbyURL := strings.TrimSpace(start.Stdout)
	standbyPort := portOf(t, standbyURL)
	standby := []string{"DATABASE_URL=" + pgtest.As(standbyURL, "elt_runner"), "ELT_CONFIG=" + demoConfig}
	if st := runElt(t, nil, "db", "--dir", dir, "status"); st.Code != 0 || !strings.Contains(st.Stdout, "a hot standby") {
		t.Errorf("elt db status of the standby: exit %d:\n%s%s", st.Code, st.Stdout, st.Stderr)
	}
	if again := runElt(t, nil, "db", "--dir", dir, "--database", db.Name, "start", "--standby-of", db.URLFor("postgres")); again.Code != 0 {
		t.Errorf("elt db start of a running standby: exit %d:\n%s", again.Code, again.Stderr)
	}
	for _, withPassword := range []string{
		strings.Replace(db.URLFor("postgres"), "postgres@", "postgres:secret@", 1),
		db.URLFor("postgres") + "&password=secret",
	} {
		if bad := runElt(t, nil, "db", "--dir", filepath.Join(t.TempDir(), "s2"), "start", "--standby-of", withPassword); bad.Code == 0 ||
			!strings.Contains(bad.Stderr, "PGPASSWORD") || strings.Contains(bad.Stderr, "secret") {
			t.Errorf("--standby-of with a password in the URL: exit %d, want a refusal that names PGPASSWORD and hides the password:\n%s", bad.Code, bad.Stderr)
		}
	}

	// Refresh and tenants on the primary, with a short statement limit for the guard test below.
	if r := runElt(t, primary, "refresh"); r.Code != 0 {
		t.Fatalf("elt refresh: exit %d:\n%s", r.Code, r.Stderr)
	}
	type login struct{ role, password string }
	logins := map[string]login{}
	for _, c := range []string{"cus_0001", "cus_0002"} {
		pw := filepath.Join(t.TempDir(), c+".pw")
		r := runElt(t, primary, "tenant", "add", c, "--password-to", pw, "--statement-timeout", "2s")
		if r.Code != 0 {
			t.Fatalf("tenant add %s: exit %d:\n%s", c, r.Code, r.Stderr)
		}
		m := regexp.MustCompile(`login and schema (\S+)`).FindStringSubmatch(r.Stdout)
		if m == nil {
			t.Fatalf("tenant add %s: no login in output:\n%s", c, r.Stdout)
		}
		logins[c] = login{m[1], readFile(t, pw)}
	}
	// The insert position, not pg_current_wal_lsn (the write position): with synchronous_commit off (the test
	// cluster's setting) a committed transaction's record may not be written yet.
	var lsn string
	if err := db.Pool.QueryRow(ctx, `select pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	waitForReplay(t, standbyURL, lsn)

	// What a tenant reads, and how the planner sees it, on one server.
	queries := []string{
		`select day::text, active_users from active_users_daily order by day`,
		`select feature, sum(events)::bigint from feature_usage_daily group by feature order by 2 desc, 1`,
		`select count(*), count(distinct user_id), min(occurred_at)::text, max(occurred_at)::text from events`,
		`select * from customers`,
	}
	observe := func(port int, l login) []string {
		t.Helper()
		conn, err := pgx.Connect(ctx, pgtest.TCPURL("127.0.0.1:"+strconv.Itoa(port), db.Name, l.role, l.password))
		if err != nil {
			t.Fatalf("connect as %s on port %d: %v", l.role, port, err)
		}
		defer conn.Close(ctx)
		var out []string
		for _, q := range queries {
			for _, sql := range []string{q, "explain " + q} {
				rows, err := conn.Query(ctx, sql)
				if err != nil {
					t.Fatalf("%s on port %d: %s: %v", l.role, port, sql, err)
				}
				for rows.Next() {
					vals, err := rows.Values()
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, fmt.Sprintf("%v", vals))
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		return out
	}
	primaryPort := portOf(t, db.URLFor("postgres"))
	seen := map[string]string{}
	for c, l := range logins {
		onPrimary, onStandby := observe(primaryPort, l), observe(standbyPort, l)
		if diff := cmp.Diff(onPrimary, onStandby); diff != "" {
			t.Errorf("%s reads the standby differently from the primary (-primary +standby):\n%s", c, diff)
		}
		seen[c] = strings.Join(onStandby, "\n")
	}
	if seen["cus_0001"] == seen["cus_0002"] {
		t.Error("both tenants see the same on the standby")
	}

	// Denied there as on the primary; read-only.
	conn, err := pgx.Connect(ctx, pgtest.TCPURL("127.0.0.1:"+strconv.Itoa(standbyPort), db.Name, logins["cus_0001"].role, logins["cus_0001"].password))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, probe := range []struct{ sql, code string }{
		{"select count(*) from core.events", "42501"},
		{"select count(*) from " + logins["cus_0002"].role + ".events", "42501"},
		{"select * from pg_catalog.pg_stat_user_tables", "42501"},
		{"create temporary table x (i int)", "25006"},
		{"listen anything", "25006"},
	} {
		_, err := conn.Exec(ctx, probe.sql)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != probe.code {
			t.Errorf("as a tenant on the standby: %s: %v, want SQLSTATE %s", probe.sql, err, probe.code)
		}
	}

	// The guard, run against the standby, holds a tenant there to its statement limit (2 s) after it lifted
	// its own statement_timeout.
	guardCtx, stopGuard := context.WithCancel(ctx)
	guard := exec.CommandContext(guardCtx, eltBin, "tenant", "guard", "--interval", "200ms", "--grace", "1s")
	guard.Env = append(os.Environ(), standby...)
	var guardLog strings.Builder
	guard.Stderr = &guardLog
	if err := guard.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stopGuard(); guard.Wait() }()
	if _, err := conn.Exec(ctx, "set statement_timeout = 0"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = conn.Exec(ctx, "select pg_sleep(30)")
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != "57014" || time.Since(began) > 20*time.Second {
		t.Errorf("a tenant's pg_sleep(30) on the standby with the guard running there: %v after %s, want cancelled (57014)\nguard:\n%s", err, time.Since(began), guardLog.String())
	}

	// tenant check passes on the standby; status shows the replication on both sides.
	if chk := runElt(t, standby, "tenant", "check"); chk.Code != 0 {
		t.Errorf("tenant check on the standby: exit %d:\n%s%s", chk.Code, chk.Stdout, chk.Stderr)
	}
	if st := runElt(t, standby, "status"); st.Code != 0 || !strings.Contains(st.Stdout, "hot standby") || !regexp.MustCompile(`receiver\s+streaming`).MatchString(st.Stdout) {
		t.Errorf("elt status on the standby: exit %d:\n%s%s", st.Code, st.Stdout, st.Stderr)
	}
	if st := runElt(t, primary, "status"); st.Code != 0 || !regexp.MustCompile(`(?m)^\S+\s+local\s+streaming\s`).MatchString(st.Stdout) {
		t.Errorf("elt status on the primary: exit %d, want a streaming standby:\n%s%s", st.Code, st.Stdout, st.Stderr)
	}
}

// waitForReplay waits until the standby at the superuser URL u has replayed the primary's WAL up to lsn.
func waitForReplay(t *testing.T, u, lsn string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect to the standby: %v", err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(time.Minute)
	for {
		var done bool
		if err := conn.QueryRow(ctx, `select pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby did not replay up to %s within a minute", lsn)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// portOf is the port parameter of a local cluster's URL.
func portOf(t *testing.T, u string) int {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(parsed.Query().Get("port"))
	if err != nil {
		t.Fatalf("no port in %s", u)
	}
	return p
}
