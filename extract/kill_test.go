package extract

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/demoapi"
)

// TestHelperProcess is not a test: run by TestKilledRunsLeaveNoDuplicatesOrGaps in a child process (the
// test binary itself, with ELT_EXTRACT_HELPER set), it runs a real extract there, to be killed with SIGKILL.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("ELT_EXTRACT_HELPER") != "1" {
		return
	}
	ctx := context.Background()
	cfg, err := ParseConfig([]byte(os.Getenv("ELT_EXTRACT_HELPER_CONFIG")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pool, err := pgxpool.New(ctx, os.Getenv("ELT_EXTRACT_HELPER_DB"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	full := os.Getenv("ELT_EXTRACT_HELPER_FULL") == "1"
	err = Run(ctx, pool, cfg, Options{FullRefresh: full, Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), ProgressEvery: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startHelper starts an extract of yaml into the database at dbURL in a child process.
func startHelper(t *testing.T, dbURL, yaml string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "ELT_EXTRACT_HELPER=1", "ELT_EXTRACT_HELPER_CONFIG="+yaml, "ELT_EXTRACT_HELPER_DB="+dbURL)
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestKilledRunsLeaveNoDuplicatesOrGaps(t *testing.T) {
	t.Parallel()
	// Small pages, small batches and a slightly slow API give many instants to be killed at: during a COPY,
	// between batches, while fetching, in the middle of the child resource.
	b := setup(t, bundleOpts{events: 12000, updates: 500, batchSize: 300, pageSize: 100,
		faults: demoapi.Faults{Slow: 2 * time.Millisecond}})
	yaml := fmt.Sprintf(demoConfig, b.srv.URL, tokenFile(t), 300, 100)
	ctx := context.Background()
	// The runs killed alternate between one copy session (batches streamed) and three (batches loaded side by
	// side, committed in order).
	parallel := strings.Replace(yaml, "    batch_size:", "    copy_sessions: 3\n    batch_size:", 1)
	for i, killAt := range []int64{0, 1, 5, 12, 20, 33} {
		y := strings.Replace(yaml, "    batch_size:", "    copy_sessions: 1\n    batch_size:", 1)
		if i%2 == 1 {
			y = parallel
		}
		cmd := startHelper(t, b.db.URL, y)
		deadline := time.Now().Add(30 * time.Second)
		for {
			if n := queryOne[int64](t, b.db, `select count(*) from elt.batches`); n >= killAt || time.Now().After(deadline) {
				break
			}
			time.Sleep(3 * time.Millisecond)
		}
		if killAt == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		t.Logf("kill %d at %d batches", i, queryOne[int64](t, b.db, `select count(*) from elt.batches`))
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Logf("kill %d: the run ended before the kill (%v)", i, err)
		}
	}
	waitForKilledSessions(t, b)
	if err := b.run(t, Options{}); err != nil {
		t.Fatal(err)
	}
	checkStagingEqualsSource(t, b)

	// A full refresh (replace: fresh tables swapped in at the end) killed halfway leaves staging as it was.
	runs := queryOne[int64](t, b.db, `select count(*) from elt.runs`)
	cmd := startHelper(t, b.db.URL, yaml, "ELT_EXTRACT_HELPER_FULL=1")
	for queryOne[int64](t, b.db, `select count(*) from elt.runs`) == runs {
		time.Sleep(3 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	waitForKilledSessions(t, b)
	checkStagingEqualsSource(t, b)
	if err := b.run(t, Options{FullRefresh: true}); err != nil {
		t.Fatal(err)
	}
	checkStagingEqualsSource(t, b)
	var interrupted int64
	if err := b.db.Pool.QueryRow(ctx, `select count(*) from elt.runs where status = 'failed' and error like 'interrupted%'`).Scan(&interrupted); err != nil {
		t.Fatal(err)
	}
	if interrupted == 0 {
		t.Errorf("no run was marked interrupted")
	}
}

// waitForKilledSessions waits until the server has noticed that killed extract processes are gone (and so
// released their locks).
func waitForKilledSessions(t *testing.T, b *testBundle) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for queryOne[int64](t, b.db, `select count(*) from pg_stat_activity where datname = current_database() and application_name like 'elt extract%'`) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}
