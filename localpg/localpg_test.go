package localpg_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/localpg"
)

func TestStartStopRestartKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := localpg.Start(ctx, localpg.Options{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })

	exec := func(url, sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(c.URL("postgres"), "create table kept (x int); insert into kept values (42)")

	// Starting a running cluster returns it, on the same port.
	again, err := localpg.Start(ctx, localpg.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if again.Port != c.Port {
		t.Errorf("second Start: port %d, want the running cluster's %d", again.Port, c.Port)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := localpg.Open(ctx, dir); err == nil {
		t.Fatal("Open after Stop: want an error saying the cluster is not running")
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("stopping a stopped cluster: %v", err)
	}

	c2, err := localpg.Start(ctx, localpg.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c2.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var x int
	if err := conn.QueryRow(ctx, "select x from kept").Scan(&x); err != nil || x != 42 {
		t.Fatalf("after restart: x=%d err=%v, want 42", x, err)
	}

	// Non-superusers log in over TCP with a password, never without one; and only where they were granted
	// CONNECT: PUBLIC has none on the maintenance databases.
	exec(c2.URL("postgres"), "create role probe login password 'right-password'")
	if _, err := pgx.Connect(ctx, "postgres://probe:right-password@127.0.0.1:"+strconv.Itoa(c2.Port)+"/postgres?sslmode=disable"); err == nil {
		t.Error("a role without CONNECT logged in to database postgres")
	}
	exec(c2.URL("postgres"), "grant connect on database postgres to probe")
	if _, err := pgx.Connect(ctx, "postgres://probe:wrong@127.0.0.1:"+strconv.Itoa(c2.Port)+"/postgres?sslmode=disable"); err == nil {
		t.Error("TCP login with a wrong password succeeded")
	}
	ok, err := pgx.Connect(ctx, "postgres://probe:right-password@127.0.0.1:"+strconv.Itoa(c2.Port)+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("TCP login with the right password: %v", err)
	}
	ok.Close(ctx)

	// A database elt creates is closed to PUBLIC too: a login of another database cannot connect to it.
	if err := c2.EnsureDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := c2.EnsureDatabase(ctx, "app"); err != nil {
		t.Fatalf("EnsureDatabase of an existing database: %v", err)
	}
	if _, err := pgx.Connect(ctx, "postgres://probe:right-password@127.0.0.1:"+strconv.Itoa(c2.Port)+"/app?sslmode=disable"); err == nil {
		t.Error("a role without CONNECT logged in to a database EnsureDatabase created")
	}
}
