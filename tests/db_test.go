package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// elt db start, url, status and stop manage one local cluster, with the folder given relative to the working
// directory as make demo does (.elt/pg).
func TestLocalClusterLifecycle(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) result {
		t.Helper()
		return runEltIn(t, work, nil, append([]string{"db", "--dir", "cluster"}, args...)...)
	}
	t.Cleanup(func() { run("stop") })

	start := run("start", "--ephemeral")
	if start.Code != 0 || !strings.Contains(start.Stdout, "/elt?") {
		t.Fatalf("db start: exit %d, want the URL of database elt:\n%s%s", start.Code, start.Stdout, start.Stderr)
	}
	if url := run("url"); url.Stdout != start.Stdout {
		t.Errorf("db url printed %q, db start %q", url.Stdout, start.Stdout)
	}
	if st := run("status"); st.Code != 0 || !strings.Contains(st.Stdout, filepath.Join(work, "cluster")) {
		t.Errorf("db status: exit %d:\n%s%s", st.Code, st.Stdout, st.Stderr)
	}
	if stop := run("stop"); stop.Code != 0 {
		t.Fatalf("db stop: exit %d: %s", stop.Code, stop.Stderr)
	}
	if st := run("status"); st.Code == 0 {
		t.Errorf("db status after stop: exit 0, want the cluster reported as not running:\n%s", st.Stdout)
	}
	if _, err := os.Stat(filepath.Join(work, "cluster", "data", "postmaster.pid")); err == nil {
		t.Error("postmaster.pid still there after db stop: the server still runs")
	}
}
