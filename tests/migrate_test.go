package tests

import (
	"regexp"
	"strings"
	"testing"

	"github.com/elt-dev/elt/migrate"
	"github.com/elt-dev/elt/tests/pgtest"
)

// Acceptance: on an empty database, --dry-run prints every migration's SQL and changes nothing; migrate
// then applies them all; status reports nothing pending; a second migrate is a no-op.
func TestMigrateDryRunThenUpThenStatus(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	env := []string{"DATABASE_URL=" + emptyDatabase(t, db), "ELT_PROJECT=" + pgtest.RepoRoot()}
	var all []migrate.Migration
	for _, tr := range []migrate.Track{migrate.Elt(), migrate.Project(db.Project.Migrations())} {
		ms, err := migrate.Load(tr)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ms...)
	}

	dry := runElt(t, env, "migrate", "--dry-run")
	if dry.Code != 0 {
		t.Fatalf("migrate --dry-run: exit %d: %s", dry.Code, dry.Stderr)
	}
	for _, m := range all {
		if !strings.Contains(dry.Stdout, m.SQL) {
			t.Errorf("dry run does not print the SQL of %s", m.Name)
		}
	}
	st := runElt(t, env, "migrate", "status")
	if st.Code != 0 || !strings.Contains(st.Stdout, "elt track: version 0 of") || !strings.Contains(st.Stdout, "project track: version 0 of") {
		t.Fatalf("status after dry run (exit %d) should show version 0:\n%s%s", st.Code, st.Stdout, st.Stderr)
	}

	up := runElt(t, env, "migrate")
	if up.Code != 0 {
		t.Fatalf("migrate: exit %d: %s", up.Code, up.Stderr)
	}
	st = runElt(t, env, "migrate", "status")
	if st.Code != 0 || strings.Count(st.Stdout, "; 0 pending") != 2 || regexp.MustCompile(`(?m)^\S+\s+\d+\s+\S+\s+pending$`).MatchString(st.Stdout) {
		t.Fatalf("status after migrate (exit %d) should show nothing pending:\n%s%s", st.Code, st.Stdout, st.Stderr)
	}
	for _, m := range all {
		if !regexp.MustCompile(`(?m)^` + m.Track + `\s+\d+\s+` + regexp.QuoteMeta(m.Name) + `\s+applied`).MatchString(st.Stdout) {
			t.Errorf("status does not list %s as applied:\n%s", m.Name, st.Stdout)
		}
	}

	again := runElt(t, env, "migrate")
	if again.Code != 0 || !strings.Contains(again.Stderr, "applied=0") {
		t.Fatalf("second migrate should apply nothing (exit %d):\n%s", again.Code, again.Stderr)
	}
	dry = runElt(t, env, "migrate", "--dry-run")
	if dry.Code != 0 || strings.Count(dry.Stdout, " 0 pending migration(s)") != 2 {
		t.Fatalf("dry run after migrate should have nothing to print (exit %d):\n%s", dry.Code, dry.Stdout)
	}
	// The superuser migrated elt's track; the project's ran as elt_runner. Every other command refuses a
	// superuser's login.
	if !strings.Contains(up.Stderr, "the project's and the tenants' objects as elt_runner") {
		t.Errorf("a superuser's migrate does not say the project's track ran as elt_runner:\n%s", up.Stderr)
	}
	for _, args := range [][]string{{"refresh"}, {"tenant", "list"}, {"status"}} {
		r := runElt(t, env, args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "a superuser: code in the tables elt writes would run with a superuser's rights; connect as elt_runner") {
			t.Errorf("elt %v as a superuser: exit %d, want a refusal:\n%s", args, r.Code, r.Stderr)
		}
	}
}

// A database that cannot be reached gives a one-line error, exit 1, and never the password.
func TestUnreachableDatabaseErrorHidesPassword(t *testing.T) {
	t.Parallel()
	r := runElt(t, []string{"DATABASE_URL=postgres://someone:s3cret-pw@127.0.0.1:1/x", "ELT_PROJECT=" + pgtest.RepoRoot()}, "migrate", "status")
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1", r.Code)
	}
	if strings.Contains(r.Stdout+r.Stderr, "s3cret-pw") {
		t.Errorf("output shows the password:\n%s", r.Stderr)
	}
	if lines := strings.Count(strings.TrimSpace(r.Stderr), "\n") + 1; lines != 1 || !strings.Contains(r.Stderr, "connect to postgres") {
		t.Errorf("want one line naming the failed connection, got %d lines:\n%s", lines, r.Stderr)
	}
}
