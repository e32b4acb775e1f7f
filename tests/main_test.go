// Package tests holds end-to-end tests of the elt binary: real processes, a real PostgreSQL, real HTTP.
package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/tests/pgtest"
)

// eltBin is the elt binary built once for this test run.
var eltBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "elt-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	eltBin = filepath.Join(dir, "elt")
	build := exec.Command("go", "build", "-o", eltBin, "github.com/elt-dev/elt/cmd/elt")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build elt:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one elt invocation did.
type result struct {
	Stdout, Stderr string
	Code           int
}

// runElt runs the elt binary with args and the given extra environment (DATABASE_URL and friends).
func runElt(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return runEltIn(t, "", env, args...)
}

// runEltIn is runElt in working directory dir ("": this process's).
func runEltIn(t testing.TB, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(eltBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run elt %v: %v", args, err)
	}
	return result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// emptyDatabase creates a database with no migrations applied, next to the test's own, and returns its URL.
func emptyDatabase(t testing.TB, db *pgtest.DB) string {
	t.Helper()
	ctx := context.Background()
	name := db.Name + "_empty"
	if err := pgtest.CreateDatabase(ctx, db.Pool, name, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Pool.Exec(context.Background(), "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)")
	})
	return db.URLFor(name)
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
