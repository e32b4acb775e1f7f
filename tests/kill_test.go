package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/demoapi"
	"github.com/elt-dev/elt/tests/pgtest"
)

// The demo's config, with small pages and batches so that a run commits many batches.
const killConfig = `
sources:
  - name: demo
    base_url: ${ELT_DEMO_API_URL}
    auth: {kind: bearer, token_env: ELT_DEMO_API_TOKEN}
    batch_size: 700
    resources:
      - name: customers
        path: /v1/customers
        records: data
        primary_key: id
        pagination: {kind: cursor, cursor_param: cursor, cursor_path: next_cursor, has_more_path: has_more}
        incremental: {cursor_field: updated_at, param: updated_since}
      - name: users
        path: /v1/customers/{customer_id}/users
        params: {limit: "25"}
        records: data
        primary_key: id
        parent: {resource: customers, fields: {customer_id: id}}
        pagination: {kind: cursor, cursor_param: cursor, cursor_path: next_cursor, has_more_path: has_more}
        incremental: {cursor_field: updated_at, param: updated_since}
      - name: events
        path: /v1/events
        params: {limit: "250"}
        records: data
        primary_key: id
        pagination: {kind: cursor, cursor_param: cursor, cursor_path: next_cursor, has_more_path: has_more}
        incremental: {cursor_field: updated_at, param: updated_since}
`

// Acceptance (extract): the real elt binary, killed with SIGKILL at several instants and run again, leaves
// staging equal to the source: every record once, none missing, including re-sent (updated) versions.
func TestKilledExtractRerunLeavesStagingEqualToSource(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	api := demoapi.New(demoapi.Options{Customers: 3, Events: 12000, Updates: 300, Seed: 3,
		Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Token: "kill-token",
		Faults: demoapi.Faults{Slow: 10 * time.Millisecond}})
	ts := httptest.NewServer(api)
	defer ts.Close()
	cfg := filepath.Join(t.TempDir(), "elt.yaml")
	if err := os.WriteFile(cfg, []byte(killConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := []string{"DATABASE_URL=" + db.URLAs("elt_runner"), "ELT_CONFIG=" + cfg,
		"ELT_DEMO_API_URL=" + ts.URL, "ELT_DEMO_API_TOKEN=kill-token"}
	env := append(os.Environ(), append(extra, "ELT_LOG_FORMAT=json")...)

	ctx := context.Background()
	// staging.events appears with the first batch elt extract commits.
	countEvents := func() int {
		var exists bool
		if err := db.Pool.QueryRow(ctx, "select to_regclass('staging.events') is not null").Scan(&exists); err != nil || !exists {
			return 0
		}
		var n int
		if err := db.Pool.QueryRow(ctx, "select count(*) from staging.events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Kill before anything commits, then each time staging has grown past a mark: right after a commit, most
	// likely with the next batch in flight.
	killed := 0
	for _, mark := range []int{-1, 1000, 3000, 6000, 9000} {
		cmd := exec.Command(eltBin, "extract")
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(30 * time.Second)
		if mark < 0 {
			time.Sleep(30 * time.Millisecond)
		}
		for mark >= 0 && countEvents() < mark && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		err := <-exited
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			killed++
		} else if err != nil {
			t.Fatalf("run failed by itself before the kill: %v\n%s", err, stderr.String())
		}
		t.Logf("killed past %d events: %d events in staging", mark, countEvents())
	}
	if killed < 3 {
		t.Fatalf("only %d runs were still going when killed: the test no longer kills mid-run", killed)
	}
	// The killed run's row still says running, but nobody holds its lock: elt status says interrupted.
	var lastStatus string
	if err := db.Pool.QueryRow(ctx, `select status from elt.runs where kind = 'extract' order by run_id desc limit 1`).Scan(&lastStatus); err != nil {
		t.Fatal(err)
	}
	t.Logf("the last killed run's row says %s", lastStatus)
	if lastStatus == "running" {
		st := runElt(t, extra, "status", "--json")
		var got struct {
			Extract struct {
				Sources []struct {
					LastRun struct {
						Status string `json:"status"`
					} `json:"last_run"`
				} `json:"sources"`
			} `json:"extract"`
		}
		if err := json.Unmarshal([]byte(st.Stdout), &got); err != nil || len(got.Extract.Sources) == 0 {
			t.Fatalf("elt status --json: %v\n%s%s", err, st.Stdout, st.Stderr)
		}
		if s := got.Extract.Sources[0].LastRun.Status; s != "interrupted" {
			t.Errorf("elt status shows the SIGKILLed run as %q, want interrupted", s)
		}
	}

	r := runElt(t, extra, "extract")
	if r.Code != 0 {
		t.Fatalf("final extract: exit %d:\n%s", r.Code, r.Stderr)
	}

	// The source's versions, by key: each event once, plus each re-sent version once.
	var want []string
	for i := 0; i < api.EventCount(); i++ {
		e := api.Event(i)
		want = append(want, e.ID+"@"+e.UpdatedAt.UTC().Format(time.RFC3339))
	}
	slices.Sort(want)
	rows, err := db.Pool.Query(ctx, `select record->>'id' || '@' || (record->>'updated_at') from staging.events order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("staging.events versions vs the source (-want +got):\n%s", diff)
	}

	var wantUsers []string
	for _, u := range api.Users() {
		wantUsers = append(wantUsers, u.ID)
	}
	slices.Sort(wantUsers)
	rows, err = db.Pool.Query(ctx, `select record->>'id' from staging.users order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	gotUsers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantUsers, gotUsers); diff != "" {
		t.Errorf("staging.users vs the source (-want +got):\n%s", diff)
	}
	if strings.Contains(r.Stderr, "kill-token") {
		t.Error("a log line shows the token")
	}
}
