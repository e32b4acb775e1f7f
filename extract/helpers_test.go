package extract

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/demoapi"
	"github.com/elt-dev/elt/internal/syncbuf"
	"github.com/elt-dev/elt/tests/pgtest"
)

// testNow fixes the demo API's clock, so its data is the same in every run.
var testNow = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// testToken is the demo API token of the tests; every log line and error is checked not to contain it.
const testToken = "s3cret-test-token-9f8e7d"

// demoConfig is the demo source as a test config: customers, users as children of customers, events.
const demoConfig = `
sources:
  - name: demo
    base_url: %s
    auth: {kind: bearer, token_file: %s}
    backoff: 10ms
    max_backoff: 2s
    batch_size: %d
    resources:
      - name: customers
        path: /v1/customers
        params: {limit: "2"}
        records: data
        primary_key: id
        pagination: {kind: cursor, has_more_path: has_more}
        incremental: {cursor_field: updated_at, param: updated_since}
      - name: users
        path: /v1/customers/{customer_id}/users
        params: {limit: "7"}
        records: data
        primary_key: id
        parent: {resource: customers, fields: {customer_id: id}}
        pagination: {kind: cursor, has_more_path: has_more}
        incremental: {cursor_field: updated_at, param: updated_since}
      - name: events
        path: /v1/events
        params: {limit: "%d"}
        records: data
        primary_key: id
        pagination: {kind: cursor, has_more_path: has_more}
        incremental: {cursor_field: updated_at, param: updated_since}
`

// testBundle is what most tests need: a database, a demo API and a config pointing at it.
type testBundle struct {
	db   *pgtest.DB
	api  *demoapi.Server
	srv  *httptest.Server
	cfg  *Config
	logs *syncbuf.Buffer
}

type bundleOpts struct {
	events    int64
	updates   int64
	batchSize int
	pageSize  int
	faults    demoapi.Faults
}

func setup(t *testing.T, o bundleOpts) *testBundle {
	t.Helper()
	if o.events == 0 {
		o.events = 3000
	}
	if o.batchSize == 0 {
		o.batchSize = 500
	}
	if o.pageSize == 0 {
		o.pageSize = 200
	}
	api := demoapi.New(demoapi.Options{Customers: 3, UsersPerCustomer: 10, Events: o.events, Updates: o.updates,
		Days: 30, Seed: 7, Now: testNow, Token: testToken, Faults: o.faults})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	b := &testBundle{db: pgtest.New(t), api: api, srv: srv, logs: &syncbuf.Buffer{}}
	b.cfg = mustConfig(t, fmt.Sprintf(demoConfig, srv.URL, tokenFile(t), o.batchSize, o.pageSize))
	return b
}

func tokenFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustConfig(t testing.TB, y string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return c
}

// run extracts with logs at debug level into b.logs, and checks that the token appears nowhere.
func (b *testBundle) run(t *testing.T, opts Options) error {
	t.Helper()
	opts.Log = slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.ProgressEvery = -1
	err := Run(context.Background(), b.db.Pool, b.cfg, opts)
	if err != nil && strings.Contains(err.Error(), testToken) {
		t.Errorf("error shows the token: %v", err)
	}
	if strings.Contains(b.logs.String(), testToken) {
		t.Errorf("logs show the token:\n%s", b.logs.String())
	}
	return err
}

// stagingKeys lists "id@updated_at" of every row of a staging table, sorted; duplicates stay.
func stagingKeys(t testing.TB, db *pgtest.DB, table string) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `select (record->>'id') || '@' || (record->>'updated_at') from `+pgx.Identifier{"staging", table}.Sanitize())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keys)
	return keys
}

// sourceKeys lists "id@updated_at" of every record the demo API serves for table.
func sourceKeys(api *demoapi.Server, table string) []string {
	var keys []string
	switch table {
	case "customers":
		for _, c := range api.Customers() {
			keys = append(keys, c.ID+"@"+c.UpdatedAt.UTC().Format(time.RFC3339))
		}
	case "users":
		for _, u := range api.Users() {
			keys = append(keys, u.ID+"@"+u.UpdatedAt.UTC().Format(time.RFC3339))
		}
	case "events":
		for i := 0; i < api.EventCount(); i++ {
			e := api.Event(i)
			keys = append(keys, e.ID+"@"+e.UpdatedAt.UTC().Format(time.RFC3339))
		}
	}
	sort.Strings(keys)
	return keys
}

// checkStagingEqualsSource compares every demo staging table with the API, key by key.
func checkStagingEqualsSource(t *testing.T, b *testBundle) {
	t.Helper()
	for _, table := range []string{"customers", "users", "events"} {
		if diff := cmp.Diff(sourceKeys(b.api, table), stagingKeys(t, b.db, table)); diff != "" {
			t.Errorf("staging.%s differs from the source (-want +got):\n%s", table, diff)
		}
	}
}

// queryOne returns the single value sql selects.
func queryOne[T any](t testing.TB, db *pgtest.DB, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := db.Pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// fxSource is a config of one source "fx" at url, no retries, with the resources lines given (each starting
// "      - name: ...").
func fxSource(url, resources string) string {
	return fmt.Sprintf("\nsources:\n  - name: fx\n    base_url: %s\n    max_retries: -1\n    resources:\n%s", url, resources)
}

// sinceAPI serves, as {"data":[...]}, those of its records whose updated_at is at least the request's
// updated_since, in their order, and keeps the updated_since values asked: an incremental API whose data a
// test changes between runs (set).
type sinceAPI struct {
	mu    sync.Mutex
	recs  []string
	since []string
}

func (a *sinceAPI) set(recs ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = recs
}

func (a *sinceAPI) serve(w http.ResponseWriter, r *http.Request, _ int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := r.URL.Query().Get("updated_since")
	a.since = append(a.since, s)
	var out []string
	for _, rec := range a.recs {
		if v, _ := fieldText([]byte(rec), []string{"updated_at"}); v >= s {
			out = append(out, rec)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"data":[%s]}`, strings.Join(out, ","))
}
