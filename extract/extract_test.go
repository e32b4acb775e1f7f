package extract

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/elt-dev/elt/demoapi"
)

func TestDemoSourceEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{updates: 100})
	if err := b.run(t, Options{}); err != nil {
		t.Fatal(err)
	}
	checkStagingEqualsSource(t, b)
	// The parent column of a user holds its customer.
	if n := queryOne[int64](t, b.db, `select count(*) from staging.users where parent->>'id' is distinct from record->>'customer_id'`); n != 0 {
		t.Errorf("%d users with a parent that is not their customer", n)
	}
	// A second run finds nothing new and loads nothing twice.
	if err := b.run(t, Options{}); err != nil {
		t.Fatal(err)
	}
	checkStagingEqualsSource(t, b)
	var status string
	var records, pages int64
	if err := b.db.Pool.QueryRow(context.Background(), `select status, records, pages from elt.runs order by run_id desc limit 1`).Scan(&status, &records, &pages); err != nil {
		t.Fatal(err)
	}
	if status != "succeeded" || records != 0 || pages == 0 {
		t.Errorf("second run: status %s, records %d, pages %d; want succeeded, 0, >0", status, records, pages)
	}
}

func TestIncrementalResume(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{updates: 300})
	// Stop each resource early, several times, then finish: each run resumes exactly after the last.
	for i := 0; i < 4; i++ {
		if err := b.run(t, Options{Limit: 700}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.run(t, Options{}); err != nil {
		t.Fatal(err)
	}
	checkStagingEqualsSource(t, b)
}

func TestFaultsAreRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults demoapi.Faults
	}{
		{"429RetryAfter", demoapi.Faults{Every429: 4, RetryAfter: -1}},
		{"500", demoapi.Faults{Every500: 3}},
		{"TruncatedBody", demoapi.Faults{EveryTruncate: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, bundleOpts{events: 2000, faults: tc.faults})
			if err := b.run(t, Options{}); err != nil {
				t.Fatal(err)
			}
			checkStagingEqualsSource(t, b)
			if n := queryOne[int64](t, b.db, `select retries from elt.runs order by run_id desc limit 1`); n == 0 {
				t.Errorf("run log shows no retries")
			}
		})
	}
}

func TestWrongTokenFailsFast(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.api = demoapi.New(demoapi.Options{Token: "another-token", Now: testNow})
	b.srv.Config.Handler = b.api
	err := b.run(t, Options{})
	if err == nil {
		t.Fatal("extract with a wrong token succeeded")
	}
	want := "extract demo/customers: GET " + b.srv.URL + "/v1/customers?has_more"
	_ = want
	msg := err.Error()
	for _, part := range []string{"extract demo/customers: GET " + b.srv.URL + "/v1/customers?", `401 Unauthorized: {"error":"invalid token"}`} {
		if !strings.Contains(msg, part) {
			t.Errorf("error %q does not contain %q", msg, part)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if n := queryOne[int64](t, b.db, `select retries from elt.runs`); n != 0 {
		t.Errorf("401 was retried %d times", n)
	}
	if diff := cmp.Diff("failed", queryOne[string](t, b.db, `select status from elt.runs`)); diff != "" {
		t.Errorf("run status (-want +got):\n%s", diff)
	}
}

func TestStoppedAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{})
	b.srv.Close()
	err := b.run(t, Options{})
	if err == nil {
		t.Fatal("extract from a stopped API succeeded")
	}
	want := "extract demo/customers: cannot reach " + b.srv.URL + ": connection refused (is the API running?) (gave up after 5 retries)"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{events: 500})
	if err := b.run(t, Options{}); err != nil {
		t.Fatal(err)
	}
	b.srv.Close()
	b.cfg.Sources[0].MaxRetries = 0
	if err := b.run(t, Options{}); err == nil {
		t.Fatal("run against a closed API succeeded")
	}
	status, err := ReadStatus(context.Background(), b.db.Pool, b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := status.Sources
	if len(st) != 1 || st[0].LastSuccess == nil || st[0].LastRun == nil {
		t.Fatalf("status %+v, want one source with a success and a last run", st)
	}
	ignore := cmpopts.IgnoreFields(ResourceStatus{}, "LastBatch")
	last := events(b.api)
	want := SourceStatus{
		Source: "demo", Configured: true, LastSuccess: st[0].LastSuccess,
		LastRun: &RunStatus{RunID: 2, Status: "failed", StartedAt: st[0].LastRun.StartedAt, FinishedAt: st[0].LastRun.FinishedAt,
			Error: "extract demo/customers: cannot reach " + b.srv.URL + ": connection refused (is the API running?)"},
		Resources: []ResourceStatus{
			{Resource: "customers", Cursor: maxUpdated(sourceKeys(b.api, "customers"))},
			{Resource: "users", Cursor: maxUpdated(sourceKeys(b.api, "users")), Scopes: 3},
			{Resource: "events", Cursor: last},
		},
	}
	if diff := cmp.Diff(want, st[0], ignore); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	var out strings.Builder
	if err := WriteStatus(&out, status, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"demo    ", "failed ", "demo/users", "(latest of 3 parents)", "connection refused"} {
		if !strings.Contains(out.String(), part) {
			t.Errorf("status output lacks %q:\n%s", part, out.String())
		}
	}
}

func events(api *demoapi.Server) string {
	return api.Event(api.EventCount() - 1).UpdatedAt.UTC().Format(time.RFC3339)
}

func maxUpdated(keys []string) string {
	max := ""
	for _, k := range keys {
		if _, u, _ := strings.Cut(k, "@"); u > max {
			max = u
		}
	}
	return max
}

func TestCancelStopsAtABatchBoundary(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{events: 6000, batchSize: 200, pageSize: 100, faults: demoapi.Faults{Slow: 2 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, b.db.Pool, b.cfg, Options{ProgressEvery: -1}) }()
	for queryOne[int64](t, b.db, `select count(*) from elt.batches where resource = 'events'`) < 3 {
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "extract demo: cancelled (context canceled); committed batches are kept") {
		t.Fatalf("error %v, want the cancellation", err)
	}
	if got := queryOne[string](t, b.db, `select status from elt.runs`); got != "cancelled" {
		t.Errorf("run status %s, want cancelled", got)
	}
	// Every committed batch is whole: its rows are all there.
	if n := queryOne[int64](t, b.db, `select count(*) from elt.batches b where records <> (select count(*) from staging.events e where e.batch_id = b.batch_id) and resource = 'events'`); n != 0 {
		t.Errorf("%d batches are not whole", n)
	}
	if err := b.run(t, Options{}); err != nil {
		t.Fatal(err)
	}
	checkStagingEqualsSource(t, b)
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	const head = "sources:\n  - name: s\n    base_url: http://127.0.0.1:1\n    resources:\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"AppendWithoutCursor", head + "      - {name: r, path: /r}", "resource r: append mode needs incremental"},
		{"UnknownPagination", head + "      - {name: r, path: /r, mode: replace, pagination: {kind: magic}}", `pagination: unknown kind "magic"`},
		{"PageWithoutStopRule", head + "      - {name: r, path: /r, mode: replace, pagination: {kind: page, stop_on_empty: false}}", "needs a stop rule"},
		{"ParentUnknown", head + "      - {name: r, path: '/r/{id}', mode: replace, parent: {resource: x, fields: {id: id}}}", `parent resource "x" is not defined`},
		{"PlaceholderWithoutParent", head + "      - {name: r, path: '/r/{id}', mode: replace}", "no parent"},
		{"KeepWithoutKey", head + "      - {name: p, path: /p, mode: replace}\n      - {name: r, path: '/r/{id}', mode: replace, parent: {resource: p, fields: {id: id}, keep: [name]}}", "parent.keep must list id"},
		{"CredentialsInURL", "sources:\n  - name: s\n    base_url: http://u:pw@127.0.0.1:1\n", "base_url must not carry credentials"},
		{"BearerWithoutSecret", "sources:\n  - name: s\n    base_url: http://h\n    auth: {kind: bearer}\n", "bearer needs token_env or token_file"},
		{"MissingVariable", "sources:\n  - name: s\n    base_url: ${ELT_TEST_SURELY_UNSET_VAR}\n", "line 3: environment variable ELT_TEST_SURELY_UNSET_VAR is not set"},
		{"Typo", head + "      - {name: r, path: /r, mode: replace, pagnation: {kind: page}}", `line 5: unknown key "pagnation"`},
		{"TypoInAuth", "sources:\n  - name: s\n    base_url: http://h\n    auth:\n      kind: bearer\n      token_evn: X\n", `line 6: unknown key "token_evn"`},
		{"MaxPagesWithIncremental", head + "      - {name: r, path: /r, incremental: {cursor_field: t}, pagination: {kind: page, max_pages: 3}}", "resource r: pagination.max_pages cannot be used with incremental"},
		{"TableOfTwoResources", head + "      - {name: r, path: /r, mode: replace}\n      - {name: q, path: /q, mode: replace, table: r}", "resources r and q both load staging.r"},
		{"TableOfTwoSources", head + "      - {name: r, path: /r, mode: replace}\n  - name: t\n    base_url: http://127.0.0.1:2\n    resources:\n      - {name: q, path: /q, mode: replace, table: staging.r}", "resources s/r and t/q both load staging.r"},
		{"LookBackWithoutKey", head + "      - {name: r, path: /r, incremental: {cursor_field: t, look_back: 1h}}", "look_back needs primary_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("ELT_TEST_HOST", "api.example")
	for in, want := range map[string]string{
		"https://${ELT_TEST_HOST}/v1":           "https://api.example/v1",
		"${ELT_TEST_UNSET_X:-http://localhost}": "http://localhost",
		"literal $${ELT_TEST_HOST}":             "literal ${ELT_TEST_HOST}",
		"no vars $HOME":                         "no vars $HOME",
	} {
		got, err := expandEnv(in)
		if err != nil || got != want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// ${VAR} works in numeric fields: unquoted, a number from the environment is a number; quoted, it stays a
// string (and an integer field refuses it, as YAML says).
func TestEnvInNumericFields(t *testing.T) {
	t.Setenv("ELT_TEST_RETRIES", "7")
	t.Setenv("ELT_TEST_TOKEN", "12345")
	const y = `
sources:
  - name: s
    base_url: http://127.0.0.1:1
    max_retries: ${ELT_TEST_RETRIES}
    headers:
      X-Num: ${ELT_TEST_TOKEN}
    resources:
      - {name: r, path: /r, primary_key: id, mode: replace}
`
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources[0].MaxRetries; got != 7 {
		t.Errorf("max_retries = %d, want 7", got)
	}
	if got := cfg.Sources[0].Headers["X-Num"]; got != "12345" {
		t.Errorf("a numeric value in a string field = %q, want 12345", got)
	}
	if _, err := ParseConfig([]byte(strings.Replace(y, "${ELT_TEST_RETRIES}", `"${ELT_TEST_RETRIES}"`, 1))); err == nil {
		t.Error("a quoted ${VAR} in an integer field was accepted")
	}
}

func TestDemoConfigLoads(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("../elt.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range cfg.Sources {
		for _, r := range s.Resources {
			got = append(got, s.Name+"/"+r.Name+" -> staging."+r.Table)
		}
	}
	want := []string{"demo/customers -> staging.customers", "demo/users -> staging.users", "demo/events -> staging.events"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("demo resources (-want +got):\n%s", diff)
	}
}
