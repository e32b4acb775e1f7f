package migrate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/migrate"
	"github.com/elt-dev/elt/tests/pgtest"
)

func TestRenderedMigrationsHaveNoMissingTemplateValues(t *testing.T) {
	t.Parallel()
	ms, err := migrate.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	for _, m := range ms {
		if strings.Contains(m.SQL, "<no value>") {
			t.Errorf("%s renders a missing template value (<no value>)", m.Name)
		}
	}
}

func TestUpOnMigratedDatabaseIsNoOp(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	applied, err := migrate.Up(ctx, conn, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Errorf("second migrate applied %d migrations, want none", len(applied))
	}
	st, err := migrate.ReadStatus(ctx, conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]migrate.Migration(nil), st.Pending()); diff != "" {
		t.Errorf("pending after migrate (-want +got):\n%s", diff)
	}
}

func TestUpFromEmptyAppliesAllInOrder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// A second, empty database on the same server.
	if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{db.Name + "_empty"}.Sanitize()); err != nil {
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
	empty, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close(ctx)

	st, err := migrate.ReadStatus(ctx, empty, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 0 || len(st.Pending()) != len(st.All) {
		t.Fatalf("empty database: current %d, %d pending of %d", st.Current, len(st.Pending()), len(st.All))
	}
	var started []string
	applied, err := migrate.Up(ctx, empty, nil, func(m migrate.Migration) { started = append(started, m.Name) })
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range st.All {
		want = append(want, m.Name)
	}
	var got []string
	for _, m := range applied {
		got = append(got, m.Name)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, started); diff != "" {
		t.Errorf("onStart calls (-want +got):\n%s", diff)
	}
}
