package migrate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/migrate"
	"github.com/elt-dev/elt/tests/pgtest"
)

func tracks(t *testing.T) []migrate.Track {
	t.Helper()
	return []migrate.Track{migrate.Elt(), migrate.Project(pgtest.DefaultProject(t).Migrations())}
}

func TestRenderedMigrationsHaveNoMissingTemplateValues(t *testing.T) {
	t.Parallel()
	for _, tr := range tracks(t) {
		ms, err := migrate.Load(tr)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Fatalf("%s track: no migrations", tr.Name)
		}
		for _, m := range ms {
			if strings.Contains(m.SQL, "<no value>") {
				t.Errorf("%s track: %s renders a missing template value (<no value>)", tr.Name, m.Name)
			}
		}
	}
}

func TestUpOnMigratedDatabaseIsNoOp(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.Pinned(db.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	applied, err := migrate.Up(ctx, conn, migrate.Options{Schemas: db.Project.Schemas, Runner: pgtest.RunnerOf(db.URL)}, tracks(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Errorf("second migrate applied %d migrations, want none", len(applied))
	}
	sts, err := migrate.ReadStatus(ctx, conn, tracks(t)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if diff := cmp.Diff([]migrate.Migration(nil), st.Pending()); diff != "" {
			t.Errorf("%s track: pending after migrate (-want +got):\n%s", st.Track, diff)
		}
	}
}

func TestUpFromEmptyAppliesBothTracksInOrder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// A second, empty database on the same server.
	if err := pgtest.CreateDatabase(ctx, conn, db.Name+"_empty", ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), db.URL)
		if err == nil {
			c.Exec(context.Background(), "drop database "+pgx.Identifier{db.Name + "_empty"}.Sanitize()+" with (force)")
			c.Close(context.Background())
		}
	})
	cfg := conn.Config().Copy()
	cfg.Database = db.Name + "_empty"
	unpinned, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer unpinned.Close(ctx)
	// A superuser's connection whose search_path is the default ("$user", public) is refused.
	if _, err := migrate.Up(ctx, unpinned, migrate.Options{Schemas: db.Project.Schemas}, tracks(t)...); err == nil || !strings.Contains(err.Error(), "with search_path \"\\\"$user\\\", public\"") {
		t.Fatalf("superuser Up with the default search_path: %v, want a refusal", err)
	}
	cfg.RuntimeParams["search_path"] = migrate.SuperuserSearchPath
	empty, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close(ctx)

	sts, err := migrate.ReadStatus(ctx, empty, tracks(t)...)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, st := range sts {
		if st.Current != 0 || len(st.Pending()) != len(st.All) {
			t.Fatalf("empty database, %s track: current %d, %d pending of %d", st.Track, st.Current, len(st.Pending()), len(st.All))
		}
		for _, m := range st.All {
			want = append(want, m.Track+"/"+m.Name)
		}
	}
	var started []string
	opts := migrate.Options{
		Schemas: db.Project.Schemas,
		OnStart: func(m migrate.Migration) { started = append(started, m.Track+"/"+m.Name) },
	}
	// As a superuser with no way to connect as elt_runner: elt's track only.
	applied, err := migrate.Up(ctx, empty, opts, tracks(t)...)
	if !errors.Is(err, migrate.ErrRunner) {
		t.Fatalf("superuser Up without a runner connection: %v, want ErrRunner", err)
	}
	// A "runner" connection that is the superuser's own is refused.
	opts.Runner = func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, cfg) }
	more, err := migrate.Up(ctx, empty, opts, tracks(t)...)
	if !errors.Is(err, migrate.ErrRunner) || !strings.Contains(err.Error(), "superuser true") || len(more) != 0 {
		t.Fatalf("superuser Up with a superuser's connection as the runner's: applied %d, %v; want ErrRunner", len(more), err)
	}
	opts.Runner = pgtest.RunnerOf(db.URLFor(db.Name + "_empty"))
	more, err = migrate.Up(ctx, empty, opts, tracks(t)...)
	if err != nil {
		t.Fatal(err)
	}
	applied = append(applied, more...)
	var got []string
	for _, m := range applied {
		got = append(got, m.Track+"/"+m.Name)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, started); diff != "" {
		t.Errorf("onStart calls (-want +got):\n%s", diff)
	}
	// Everything of the project's schemas belongs to elt_owner, whoever applied the migrations.
	var foreign []string
	rows, err := empty.Query(ctx, `select c.oid::regclass::text from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
		where n.nspname = any ($1) and c.relkind in ('r', 'p', 'v', 'm') and c.relowner <> 'elt_owner'::regrole order by 1`, append(db.Project.Schemas, "elt", "staging"))
	if err != nil {
		t.Fatal(err)
	}
	if foreign, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	// But elt's version table, which a superuser's migrate writes: it stays its creator's, out of elt_runner's
	// reach.
	if diff := cmp.Diff([]string{"elt.schema_version"}, foreign); diff != "" {
		t.Errorf("relations not owned by elt_owner after migrate (-want +got):\n%s", diff)
	}
}

// The project track's numbering is the project's own: a project with one migration next to elt's four is at
// version 1, and a failing project migration names its track and file.
func TestProjectTrackIsIndependent(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := db.Name + "_own"
	if err := pgtest.CreateDatabase(ctx, conn, name, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), db.URL)
		if err == nil {
			c.Exec(context.Background(), "drop database "+pgx.Identifier{name}.Sanitize()+" with (force)")
			c.Close(context.Background())
		}
	})
	cfg := conn.Config().Copy()
	cfg.Database = name
	cfg.RuntimeParams["search_path"] = migrate.SuperuserSearchPath
	own, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close(ctx)

	proj := migrate.Project(fsOf(map[string]string{
		"001_things.sql": "create schema things;\ncreate table things.thing (id bigint primary key);",
		"002_broken.sql": "create table things.other (id bigint primary key);\nselect 1/0;",
	}))
	_, err = migrate.Up(ctx, own, migrate.Options{Schemas: []string{"things"}, Runner: pgtest.RunnerOf(db.URLFor(name))}, migrate.Elt(), proj)
	if err == nil || !strings.Contains(err.Error(), "project migration 002_broken.sql failed: division by zero") {
		t.Fatalf("Up error = %v, want the failing project migration named", err)
	}
	sts, err := migrate.ReadStatus(ctx, own, migrate.Elt(), proj)
	if err != nil {
		t.Fatal(err)
	}
	eltAll, _ := migrate.Load(migrate.Elt())
	if sts[0].Current != int32(len(eltAll)) || sts[1].Current != 1 {
		t.Errorf("versions after a failed project migration: elt %d, project %d; want %d and 1", sts[0].Current, sts[1].Current, len(eltAll))
	}
	var exists bool
	if err := own.QueryRow(ctx, `select to_regclass('things.other') is not null`).Scan(&exists); err != nil || exists {
		t.Errorf("the failed migration left things.other behind (%v)", err)
	}
}

// elt's own migrations are a superuser's to apply: elt_runner's migrate refuses while one is pending, naming it.
func TestRunnerRefusesPendingEltMigrations(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	eltAll, err := migrate.Load(migrate.Elt())
	if err != nil {
		t.Fatal(err)
	}
	last := eltAll[len(eltAll)-1]
	if _, err := db.Pool.Exec(ctx, `update elt.schema_version set version = $1`, last.Version-1); err != nil {
		t.Fatal(err)
	}
	runner, err := pgx.Connect(ctx, db.URLAs("elt_runner"))
	if err != nil {
		t.Fatal(err)
	}
	defer runner.Close(ctx)
	_, err = migrate.Up(ctx, runner, migrate.Options{Schemas: db.Project.Schemas}, tracks(t)...)
	if err == nil || !strings.Contains(err.Error(), "elt's own migrations "+last.Name+" are pending: a superuser applies them") {
		t.Errorf("elt_runner's migrate with %s pending: %v, want a refusal naming it", last.Name, err)
	}
}
