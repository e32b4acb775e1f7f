package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/demoapi"
	"github.com/elt-dev/elt/internal/syncbuf"
	"github.com/elt-dev/elt/tenant/tenanttest"
	"github.com/elt-dev/elt/tests/pgtest"
)

// TestUsageAndVersion: --version prints a version and exits 0; a usage error is one line that names the
// help to read, exit 2, not the whole help.
func TestUsageAndVersion(t *testing.T) {
	r := runElt(t, nil, "--version")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "elt ") {
		t.Errorf("elt --version: exit %d, %q%q", r.Code, r.Stdout, r.Stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, "elt: unexpected argument bogus (see elt --help)"},
		{[]string{"tenant", "add"}, `(see elt tenant add --help)`},
		{[]string{"tenant", "--bogus"}, "unknown flag --bogus (see elt tenant --help)"},
	} {
		r := runElt(t, nil, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code != 2 || len(lines) != 1 || !strings.Contains(r.Stderr, tc.want) || r.Stdout != "" {
			t.Errorf("elt %v: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", tc.args, r.Code, r.Stdout, r.Stderr, tc.want)
		}
	}
}

// TestConnectHints: each way of not reaching the database says what to do next.
func TestConnectHints(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	empty := emptyDatabase(t, db)
	nobody := "elt_cli_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	if _, err := db.Pool.Exec(ctx, "create role "+pgx.Identifier{nobody}.Sanitize()+" login"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, "grant connect on database "+pgx.Identifier{db.Name + "_empty"}.Sanitize()+" to "+pgx.Identifier{nobody}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Pool.Exec(ctx, "revoke connect on database "+pgx.Identifier{db.Name + "_empty"}.Sanitize()+" from "+pgx.Identifier{nobody}.Sanitize())
		db.Pool.Exec(ctx, "drop owned by "+pgx.Identifier{nobody}.Sanitize())
		db.Pool.Exec(ctx, "drop role if exists "+pgx.Identifier{nobody}.Sanitize())
	})
	proj := "ELT_PROJECT=" + pgtest.RepoRoot()
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no database configured", []string{"DATABASE_URL=", "PGHOST=", "PGPORT=1"}, []string{"status"},
			"no DATABASE_URL or PGHOST is set: export DATABASE_URL="},
		{"a database URL flag, nothing listening", []string{"DATABASE_URL=", "PGHOST="}, []string{"status", "--database-url", "postgres://u@127.0.0.1:1/d"},
			"connection refused (is PostgreSQL running and reachable there?)"},
		{"not migrated: status", []string{"DATABASE_URL=" + pgtest.As(empty, nobody)}, []string{"status"},
			"is not migrated by elt: run elt migrate first, as a superuser the first time"},
		{"not migrated: tenant list", []string{"DATABASE_URL=" + pgtest.As(empty, nobody)}, []string{"tenant", "list"},
			"is not migrated by elt: run elt migrate first"},
		{"first migrate as a non-superuser", []string{"DATABASE_URL=" + pgtest.As(empty, nobody)}, []string{"migrate"},
			"the first elt migrate of database " + db.Name + "_empty must run as a superuser"},
		{"wrong password", []string{"DATABASE_URL=" + db.ConnString("elt_runner", "not-the-password")}, []string{"status"},
			"check the password: in DATABASE_URL, PGPASSWORD or the passfile"},
		{"no such database", []string{"DATABASE_URL=" + db.URLFor(db.Name+"_missing")}, []string{"status"},
			"no such database: create it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runElt(t, append([]string{proj}, tc.env...), tc.args...)
			if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("elt %v: exit %d, stderr %q; want exit 1 and %q", tc.args, r.Code, r.Stderr, tc.want)
			}
			if strings.Contains(r.Stderr, "not-the-password") {
				t.Errorf("the password is in the message: %s", r.Stderr)
			}
		})
	}
}

// TestInterruptExitStatus: Ctrl-C (SIGINT) during an extract stops it with 130, SIGTERM with 143, as a
// shell reports a command ended by that signal, and says so.
func TestInterruptExitStatus(t *testing.T) {
	db := pgtest.New(t)
	hang := make(chan struct{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // an API that never answers: the run is mid-request when the signal comes
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); api.Close() })
	env := []string{"ELT_PROJECT=" + pgtest.RepoRoot(), "DATABASE_URL=" + db.URLAs("elt_runner"),
		"ELT_DEMO_API_URL=" + api.URL, "ELT_DEMO_API_TOKEN=t", "ELT_LOG_FORMAT=json"}
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143} {
		cmd := exec.Command(eltBin, "extract")
		cmd.Env = append(cmd.Environ(), env...)
		var stderr syncbuf.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Signal once the run has started (its handler is set long before): mid-request to the API.
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), `"msg":"extract started"`) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		_ = cmd.Process.Signal(sig)
		_ = cmd.Wait()
		if got := cmd.ProcessState.ExitCode(); got != want || !strings.Contains(stderr.String(), "stopped by SIG") {
			t.Errorf("extract ended by %v: exit %d, stderr %q; want %d and 'stopped by'", sig, got, stderr.String(), want)
		}
		// The run is recorded and logged as cancelled, a warning, not as a failure.
		if !strings.Contains(stderr.String(), `"level":"WARN","msg":"extract finished"`) || !strings.Contains(stderr.String(), `"status":"cancelled"`) {
			t.Errorf("extract ended by %v logs %s; want extract finished at WARN with status cancelled", sig, stderr.String())
		}
	}
}

// TestJSONLogError: with --log-format json every line on stderr is JSON, the final error too (level ERROR,
// with the exit status), for log collectors.
func TestJSONLogError(t *testing.T) {
	u := runElt(t, nil, "--log-format", "json", "bogus")
	if u.Code != 2 || !strings.HasPrefix(u.Stderr, `{"time":`) || !strings.Contains(u.Stderr, `"msg":"elt usage error","error":"unexpected argument bogus (see elt --help)","exit":2}`) {
		t.Errorf("a usage error with --log-format json: exit %d, %q", u.Code, u.Stderr)
	}
	r := runElt(t, []string{"DATABASE_URL=", "PGHOST=", "PGPORT=1"}, "--log-format", "json", "status")
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1", r.Code)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a stderr line is not JSON: %q", line)
		}
		if rec["level"] != "ERROR" || rec["exit"] != float64(1) || !strings.Contains(fmt.Sprint(rec["error"]), "connect to postgres") {
			t.Errorf("the error line %v: want level ERROR, exit 1 and the error", rec)
		}
	}
}

// TestDoctor: elt doctor says ok for each part of a working setup; a wrong token fails its source's line
// with the API's answer, an unmigrated database the database line with what to run; exit 1 on any failure.
func TestDoctor(t *testing.T) {
	db := pgtest.New(t)
	api := demoapi.New(demoapi.Options{Customers: 2, Events: 100, Seed: 1, Token: "doctor-token"})
	ts := httptest.NewServer(api)
	defer ts.Close()
	env := []string{"ELT_PROJECT=" + pgtest.RepoRoot(), "DATABASE_URL=" + db.URLAs("elt_runner"),
		"ELT_DEMO_API_URL=" + ts.URL, "ELT_DEMO_API_TOKEN=doctor-token"}
	r := runElt(t, env, "doctor")
	want := []string{"ok   project: ", "ok   source demo: GET " + ts.URL + "/v1/customers", "ok   database: ",
		"ok   migrations elt: ", "ok   migrations project: ", "ok   tenant layer: 0 tenants", "doctor: ok"}
	for _, w := range want {
		if !strings.Contains(r.Stdout, w) {
			t.Errorf("doctor on a working setup does not say %q:\n%s%s", w, r.Stdout, r.Stderr)
		}
	}
	if r.Code != 0 {
		t.Errorf("doctor on a working setup: exit %d", r.Code)
	}

	r = runElt(t, append(env, "ELT_DEMO_API_TOKEN=wrong-token"), "doctor")
	if r.Code != 1 || !strings.Contains(r.Stdout, "FAIL source demo: GET ") || !strings.Contains(r.Stdout, "401") ||
		!strings.Contains(r.Stdout, "ok   database: ") || strings.Contains(r.Stdout+r.Stderr, "wrong-token") {
		t.Errorf("doctor with a wrong token: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	empty := emptyDatabase(t, db)
	r = runElt(t, append(env, "DATABASE_URL="+pgtest.As(empty, "elt_runner")), "doctor")
	if r.Code != 1 || !strings.Contains(r.Stdout, "FAIL database: ") {
		t.Errorf("doctor on another database: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestBrokenStdout: when whoever reads elt's output is gone, elt is not killed by SIGPIPE (141) mid-run:
// its writes fail and it finishes.
func TestBrokenStdout(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // nobody reads
	cmd := exec.Command(eltBin, "--help")
	cmd.Stdout = w
	err = cmd.Run()
	w.Close()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("elt --help with a closed stdout was killed by %v (%v)", ws.Signal(), err)
	}
}

// TestTenantAddIfNotExists: a second add --if-not-exists keeps the login and its password while the
// password file is there, and sets a new password (which logs in) when the file is gone.
func TestTenantAddIfNotExists(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	env := []string{"ELT_PROJECT=" + pgtest.RepoRoot(), "DATABASE_URL=" + db.URLAs("elt_runner")}
	pwFile := filepath.Join(t.TempDir(), "cus_x.pw")
	add := func() result {
		return runElt(t, env, "tenant", "add", "cus_x", "--allow-unknown", "--if-not-exists", "--password-to", pwFile)
	}
	r := add()
	if r.Code != 0 || !strings.Contains(r.Stdout, "added tenant cus_x") {
		t.Fatalf("first add: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var role string
	if err := db.Pool.QueryRow(ctx, `select role_name from elt.tenants where tenant_key = 'cus_x'`).Scan(&role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tenanttest.DropLogin(t, db, role) })
	first := readFile(t, pwFile)

	r = add()
	if r.Code != 0 || !strings.Contains(r.Stdout, "tenant cus_x exists: login "+role) || readFile(t, pwFile) != first {
		t.Errorf("second add with the password file there: exit %d, password changed %v\n%s%s", r.Code, readFile(t, pwFile) != first, r.Stdout, r.Stderr)
	}

	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	r = add()
	if r.Code != 0 || !strings.Contains(r.Stderr, "password file missing: set a new password") {
		t.Fatalf("add with the password file gone: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	second := readFile(t, pwFile)
	if second == first {
		t.Fatal("the password did not change")
	}
	for pw, wantOK := range map[string]bool{second: true, first: false} {
		conn, err := pgx.Connect(ctx, db.ConnString(role, pw))
		if err == nil {
			conn.Close(ctx)
		}
		if (err == nil) != wantOK {
			t.Errorf("login with the %s password: %v", map[bool]string{true: "new", false: "old"}[wantOK], err)
		}
	}
}

// TestQuotaExitStatus: an extract that meets its source's max_requests exits 3 (partial, nothing failed),
// says what is left, and elt status shows the run partial; the next runs resume and finish with 0.
func TestQuotaExitStatus(t *testing.T) {
	db := pgtest.New(t)
	api := demoapi.New(demoapi.Options{Customers: 2, UsersPerCustomer: 3, Events: 2000, Seed: 3, Token: "quota-token"})
	ts := httptest.NewServer(api)
	defer ts.Close()
	project := t.TempDir()
	for _, dir := range []string{"sql", "views", "migrations", "dashboards"} { // the default project, with a quota
		if err := os.CopyFS(filepath.Join(project, dir), os.DirFS(filepath.Join(pgtest.RepoRoot(), dir))); err != nil {
			t.Fatal(err)
		}
	}
	yaml := strings.Replace(readFile(t, filepath.Join(pgtest.RepoRoot(), "elt.yaml")), "    max_retries: 4\n",
		"    max_retries: 4\n    max_requests: ${QUOTA}\n", 1)
	yaml = strings.ReplaceAll(yaml, `params: {limit: "5000"}`, `params: {limit: "300"}`)
	if err := os.WriteFile(filepath.Join(project, "elt.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"ELT_PROJECT=" + project, "DATABASE_URL=" + db.URLAs("elt_runner"),
		"ELT_DEMO_API_URL=" + ts.URL, "ELT_DEMO_API_TOKEN=quota-token", "QUOTA=6"}
	r := runElt(t, env, "extract")
	if r.Code != 3 || !strings.Contains(r.Stderr, "quota reached (max_requests 6)") || !strings.Contains(r.Stderr, "left for the next run") {
		t.Fatalf("extract meeting its quota: exit %d, stderr %q; want 3 and what is left", r.Code, r.Stderr)
	}
	s := runElt(t, env, "status")
	if !strings.Contains(s.Stdout, "partial") {
		t.Errorf("elt status after a partial run:\n%s", s.Stdout)
	}
	codes := []int{r.Code}
	for i := 0; i < 20 && r.Code == 3; i++ {
		r = runElt(t, env, "extract")
		codes = append(codes, r.Code)
	}
	if r.Code != 0 {
		t.Fatalf("extract runs exited %v, the last with %q; want 3s, then 0", codes, r.Stderr)
	}
	var n int64
	if err := db.Pool.QueryRow(context.Background(), `select count(distinct record->>'id') filter (where true) from staging.events having count(*) = count(distinct record->>'id')`).Scan(&n); err != nil || n != int64(api.EventCount()) {
		t.Errorf("staging.events after the partial runs: %d distinct events (%v), want %d, each once", n, err, api.EventCount())
	}
}
