package tests

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/demoapi"
	"github.com/elt-dev/elt/tests/oracle"
	"github.com/elt-dev/elt/tests/pgtest"
)

// demoConfig is the default project's config file: the pipeline test runs exactly what make demo runs.
var demoConfig, _ = filepath.Abs("../elt.yaml")

// customerTotals is what a customer should see: events and distinct active users over all time.
type customerTotals struct {
	Events int64
	Users  int64
}

// Acceptance (foundation): extract the demo API, refresh, add tenants, and read through each tenant's own
// login: each sees its own customer's numbers (equal to the source's), which differ between customers.
func TestPipelineTenantsSeeTheirOwnNumbers(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	api := demoapi.New(demoapi.Options{Customers: 3, Events: 6000, Seed: 7, Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Token: "pipeline-token"})
	ts := httptest.NewServer(api)
	defer ts.Close()
	// elt runs as elt_runner, as in make demo: neither superuser nor bypassrls nor createrole.
	env := []string{
		"DATABASE_URL=" + db.URLAs("elt_runner"),
		"ELT_CONFIG=" + demoConfig,
		"ELT_DEMO_API_URL=" + ts.URL,
		"ELT_DEMO_API_TOKEN=pipeline-token",
	}

	asOf := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC) // the API's last day, still under way in every zone
	for _, args := range [][]string{{"extract"}, {"refresh", "--as-of", asOf.Format(time.RFC3339)}} {
		if r := runElt(t, env, args...); r.Code != 0 {
			t.Fatalf("elt %v: exit %d:\n%s", args, r.Code, r.Stderr)
		}
	}
	// Every mart equals its recomputation from staging, in each customer's own time zone.
	zones := map[string]bool{}
	for _, c := range api.Customers() {
		zones[c.TimeZone] = true
	}
	t.Logf("oracle: %d rows equal, customers in %d time zones", oracle.Compare(t, db.Pool, asOf), len(zones))

	// The staging tables extract created on demand carry the BRIN index on batch_id the transforms rely on.
	var brin int
	if err := db.Pool.QueryRow(context.Background(), `select count(*) from pg_indexes where schemaname = 'staging'
		and tablename in ('customers', 'users', 'events') and indexdef like '%USING brin (batch_id)%'`).Scan(&brin); err != nil || brin != 3 {
		t.Errorf("staging tables with a BRIN index on batch_id: %d (%v), want 3", brin, err)
	}

	// The source's truth, per customer.
	want := map[string]customerTotals{}
	users := map[string]map[string]bool{}
	for i := 0; i < api.EventCount(); i++ {
		e := api.Event(i)
		tot := want[e.CustomerID]
		tot.Events++
		want[e.CustomerID] = tot
		if users[e.CustomerID] == nil {
			users[e.CustomerID] = map[string]bool{}
		}
		users[e.CustomerID][e.UserID] = true
	}
	for c, u := range users {
		tot := want[c]
		tot.Users = int64(len(u))
		want[c] = tot
	}

	ctx := context.Background()
	got := map[string]customerTotals{}
	for _, c := range api.Customers() {
		pwFile := filepath.Join(t.TempDir(), c.ID+".password")
		r := runElt(t, env, "tenant", "add", c.ID, "--password-to", pwFile)
		if r.Code != 0 {
			t.Fatalf("tenant add %s: exit %d:\n%s", c.ID, r.Code, r.Stderr)
		}
		m := regexp.MustCompile(`login and schema (\S+)`).FindStringSubmatch(r.Stdout)
		if m == nil {
			t.Fatalf("tenant add %s: no login name in output:\n%s", c.ID, r.Stdout)
		}
		role := m[1]
		if strings.Contains(role, c.ID) {
			t.Errorf("login role %q reveals the customer id", role)
		}
		conn, err := pgx.Connect(ctx, db.ConnString(role, readFile(t, pwFile)))
		if err != nil {
			t.Fatalf("connect as tenant %s: %v", c.ID, err)
		}
		var tot customerTotals
		var seen []string
		err = conn.QueryRow(ctx, `select count(*), count(distinct user_id) from events`).Scan(&tot.Events, &tot.Users)
		if err == nil {
			rows, _ := conn.Query(ctx, `select customer_id from customers order by 1`)
			seen, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		conn.Close(ctx)
		if err != nil {
			t.Fatalf("query as tenant %s: %v", c.ID, err)
		}
		if diff := cmp.Diff([]string{c.ID}, seen); diff != "" {
			t.Errorf("customers visible to %s's login (-want +got):\n%s", c.ID, diff)
		}
		got[c.ID] = tot

		// A grant on core.events by mistake is what elt tenant check exists for: it exits 1 naming it.
		if _, err := db.Pool.Exec(ctx, "grant select on core.events to "+role); err != nil {
			t.Fatal(err)
		}
		if chk := runElt(t, env, "tenant", "check"); chk.Code != 1 || !strings.Contains(chk.Stdout, "VIOLATION core.events: "+role+" has select on it") {
			t.Errorf("tenant check with a grant on core.events: exit %d:\n%s%s", chk.Code, chk.Stdout, chk.Stderr)
		}
		if _, err := db.Pool.Exec(ctx, "revoke select on core.events from "+role); err != nil {
			t.Fatal(err)
		}

		// What the report (and make demo) prints matches the owner's numbers.
		rep := runElt(t, env, "tenant", "report", c.ID, "--password-from", pwFile)
		if rep.Code != 0 {
			t.Errorf("tenant report %s: exit %d:\n%s%s", c.ID, rep.Code, rep.Stdout, rep.Stderr)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("per-tenant totals read through tenant logins vs the source (-want +got):\n%s", diff)
	}
	if chk := runElt(t, env, "tenant", "check"); chk.Code != 0 {
		t.Errorf("tenant check: exit %d:\n%s%s", chk.Code, chk.Stdout, chk.Stderr)
	}
	if len(got) != 3 || got["cus_0001"] == got["cus_0002"] || got["cus_0002"] == got["cus_0003"] {
		t.Errorf("tenants should see different numbers: %v", got)
	}
}

// Acceptance (foundation): extract against a stopped API, or with a wrong token, exits non-zero with one line
// naming the source and the cause, and never prints the token.
func TestExtractFailsClearly(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	api := demoapi.New(demoapi.Options{Customers: 1, Events: 10, Token: "right-token-123"})
	live := httptest.NewServer(api)
	defer live.Close()
	stopped := httptest.NewServer(api)
	stoppedURL := stopped.URL
	stopped.Close()

	cases := []struct {
		name, url, token, cause string
	}{
		{"StoppedAPI", stoppedURL, "right-token-123", "connection refused"},
		{"WrongToken", live.URL, "wrong-token-456", "401"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runElt(t, []string{
				"DATABASE_URL=" + db.URLAs("elt_runner"),
				"ELT_CONFIG=" + demoConfig,
				"ELT_DEMO_API_URL=" + tc.url,
				"ELT_DEMO_API_TOKEN=" + tc.token,
				"ELT_LOG_LEVEL=error",
			}, "extract")
			if r.Code == 0 {
				t.Fatal("extract succeeded, want a failure")
			}
			out := r.Stdout + r.Stderr
			if strings.Contains(out, tc.token) {
				t.Errorf("output shows the token:\n%s", out)
			}
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "elt: ") || !strings.Contains(last, "demo") || !strings.Contains(last, tc.cause) {
				t.Errorf("want a last line naming the source (demo) and the cause (%s), got:\n%s", tc.cause, r.Stderr)
			}
		})
	}
}
