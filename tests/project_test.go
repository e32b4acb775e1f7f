package tests

import (
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elt-dev/elt/demoapi"
	"github.com/elt-dev/elt/tests/pgtest"
)

// Acceptance (project folder): elt init writes a project; every command runs from it, named by ELT_PROJECT
// or as the working directory; a deliberate error at the top of its first transform makes the next
// elt refresh --full fail naming that file, with no rebuild of elt.
func TestInitProjectRunsFromItsFolder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	dir := filepath.Join(t.TempDir(), "p")
	api := demoapi.New(demoapi.Options{Customers: 2, Events: 800, Seed: 11, Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Token: "init-token"})
	ts := httptest.NewServer(api)
	defer ts.Close()

	if r := runElt(t, nil, "init", dir); r.Code != 0 || !strings.Contains(r.Stdout, "wrote a project of") {
		t.Fatalf("elt init: exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, f := range []string{"elt.yaml", "README.md", "migrations/001_core.sql", "views/customer_overview.sql", "sql/010_customers.sql", "sql/checks/events_not_null.sql", "sql/marts/010_marts.sql", "sql/report/tenant.sql"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("elt init did not write %s: %v", f, err)
		}
	}
	if r := runElt(t, nil, "init", dir); r.Code == 0 {
		t.Error("elt init over an existing project succeeded")
	}

	empty := emptyDatabase(t, db)
	env := []string{"ELT_PROJECT=" + dir, "ELT_DEMO_API_URL=" + ts.URL, "ELT_DEMO_API_TOKEN=init-token"}
	asSuper := append([]string{"DATABASE_URL=" + empty}, env...)
	if r := runElt(t, asSuper, "migrate"); r.Code != 0 {
		t.Fatalf("elt migrate: exit %d:\n%s", r.Code, r.Stderr)
	}
	runner := strings.Replace(empty, "postgres@", "elt_runner@", 1)
	asRunner := append([]string{"DATABASE_URL=" + runner}, env...)
	for _, args := range [][]string{{"extract"}, {"refresh"}, {"tenant", "add", "cus_0001", "--password-to", filepath.Join(t.TempDir(), "pw")}} {
		if r := runElt(t, asRunner, args...); r.Code != 0 {
			t.Fatalf("elt %v: exit %d:\n%s", args, r.Code, r.Stderr)
		}
	}
	// From inside the folder, without ELT_PROJECT.
	if r := runEltIn(t, dir, []string{"DATABASE_URL=" + runner, "ELT_PROJECT="}, "migrate", "status"); r.Code != 0 || !strings.Contains(r.Stdout, "project track: version 6 of 6") {
		t.Errorf("elt migrate status from inside the project: exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	first := filepath.Join(dir, "sql", "010_customers.sql")
	b, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(first, append([]byte("select 1 / 0;\n"), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runElt(t, asRunner, "refresh", "--full")
	if r.Code == 0 || !strings.Contains(r.Stderr, "sql/010_customers.sql failed at line 1") || !strings.Contains(r.Stderr, "division by zero") {
		t.Errorf("refresh --full with an error at the top of sql/010_customers.sql: exit %d, want it named:\n%s", r.Code, r.Stderr)
	}
}

// No Go code outside the demo API and the tests names a table or field of a model: the model is the
// project's. (Examples of a customer id in help texts are values, not names.)
func TestNoModelNamesInGo(t *testing.T) {
	t.Parallel()
	root := pgtest.RepoRoot()
	names := regexp.MustCompile(`\b(core|marts|analytics)\.[a-z_]+|\b(customer_id|event_id|user_id|occurred_at|dirty_days|retention_weekly)\b|\b(rollup_[a-z_]+|active_users[a-z_]*|feature_usage[a-z_]*|user_activity[a-z_]*|customer_overview)\b`)
	// elt's own map of the single-track layout had a customer_id column; reading it to take its logins over
	// is elt's machinery, not a model.
	allowed := map[string]string{"tenant/tenant.go": "select customer_id, role_name, created_at, password_set_at"}
	skip := regexp.MustCompile(`^(demoapi|cmd/elt-demo-api|tests|examples)/`)
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || skip.MatchString(rel+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := names.FindString(line); m != "" && (allowed[rel] == "" || !strings.Contains(line, allowed[rel])) {
				found = append(found, rel+":"+strconv.Itoa(i+1)+": "+m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("Go code names model tables or fields:\n%s", strings.Join(found, "\n"))
	}
}
