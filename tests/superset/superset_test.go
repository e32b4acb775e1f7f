// Package superset_test checks that a tenant login works through Superset's own database layer, Python
// SQLAlchemy with psycopg2, and that only the tenant's rows come back; and (sync_test.go) that elt superset
// sync provisions a real Apache Superset for tenants. compat.py runs with the Python of the pinned Superset
// venv (make superset-install, which make test runs first), or $ELT_PYTHON: the tests fail, not skip,
// without it.
package superset_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
	"github.com/elt-dev/elt/tests/pgtest"
)

// compat is what compat.py prints.
type compat struct {
	SQLAlchemy       string                       `json:"sqlalchemy"`
	Schemas          []string                     `json:"schemas"`
	DefaultSchema    string                       `json:"default_schema"`
	Tables           []string                     `json:"tables"`
	Views            []string                     `json:"views"`
	Columns          map[string]map[string]string `json:"columns"`
	Uncommented      []string                     `json:"uncommented"`
	EventsByWeek     [][2]any                     `json:"events_by_week"`
	ActiveUsersByDay int                          `json:"active_users_by_day"`
	TopFeatures      [][2]any                     `json:"top_features"`
	Customers        []string                     `json:"customers"`
	UserPrefixes     []string                     `json:"user_prefixes"`
	EventPrefixes    []string                     `json:"event_prefixes"`
}

// python is $ELT_PYTHON, or the Python of the Superset venv that make test installs (superset-install):
// Superset's own SQLAlchemy and psycopg2.
func python(t *testing.T) string {
	if p := os.Getenv("ELT_PYTHON"); p != "" {
		return p
	}
	return filepath.Join(strings.TrimSpace(script(t, nil, "venv")), "bin", "python")
}

func TestSupersetSeesOnlyItsTenant(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	const customer = "cus_0002"
	l := b.Add(t, customer, tenant.Limits{})
	b.Add(t, "cus_0003", tenant.Limits{}) // another tenant exists, with more data

	// The URI elt tenant uri prints, for the test cluster's TCP address.
	cfg, err := pgx.ParseConfig(b.URL(l))
	if err != nil {
		t.Fatal(err)
	}
	e := tenant.EndpointFrom(cfg)
	e.SSLMode = "disable"
	uri := e.URI(tenant.FormatSQLAlchemy, l.Role, l.Password)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python(t), "compat.py")
	cmd.Env = append(os.Environ(), "ELT_TENANT_URI="+uri)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s compat.py: %v\n%s\n(make test installs Superset's venv first: make superset-install)", python(t), err, stderr.String())
	}
	var got compat
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("compat.py output: %v\n%s", err, stdout.String())
	}

	// Every relation the project publishes, and nothing else.
	var wantViews []string
	for _, r := range pgtest.DefaultProject(t).Tenants.Publish {
		wantViews = append(wantViews, r.Name)
	}
	slices.Sort(wantViews)
	if diff := cmp.Diff(wantViews, got.Views); diff != "" {
		t.Errorf("views Superset lists in the tenant's schema (-want +got):\n%s", diff)
	}
	if len(got.Tables) != 0 {
		t.Errorf("tables in the tenant's schema = %v, want none (only views)", got.Tables)
	}
	if got.DefaultSchema != l.Role {
		t.Errorf("default schema = %q, want %s (the login's own schema, its search_path)", got.DefaultSchema, l.Role)
	}
	if len(got.Uncommented) != 0 {
		t.Errorf("relations or columns without a comment (Superset shows them): %v", got.Uncommented)
	}
	wantCols := map[string]string{"event_id": "TEXT", "user_id": "TEXT", "feature": "TEXT", "occurred_at": "TIMESTAMP", "properties": "JSONB"}
	if diff := cmp.Diff(wantCols, got.Columns["events"]); diff != "" {
		t.Errorf("columns of events (-want +got):\n%s", diff)
	}
	own := []string{customer}
	for name, g := range map[string][]string{"customers": got.Customers, "user ids": got.UserPrefixes, "event ids": got.EventPrefixes} {
		if diff := cmp.Diff(own, g); diff != "" {
			t.Errorf("%s seen through SQLAlchemy (-want +got):\n%s", name, diff)
		}
	}

	// The time series and top-N equal what the owner counts for this customer alone.
	var wantEvents, wantDays int64
	if err := b.DB.Pool.QueryRow(context.Background(),
		`select (select count(*) from core.events where customer_id = $1),
		        (select count(*) from marts.rollup_customer_day where customer_id = $1)`, customer).Scan(&wantEvents, &wantDays); err != nil {
		t.Fatal(err)
	}
	var gotEvents int64
	for _, p := range got.EventsByWeek {
		gotEvents += int64(p[1].(float64))
	}
	if gotEvents != wantEvents || int64(got.ActiveUsersByDay) != wantDays {
		t.Errorf("time series: %d events over %d days, want %d events over %d days", gotEvents, got.ActiveUsersByDay, wantEvents, wantDays)
	}
	if len(got.TopFeatures) == 0 {
		t.Error("top features: no rows")
	}
}
