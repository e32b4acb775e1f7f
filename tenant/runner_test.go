package tenant_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/migrate"
	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
	"github.com/elt-dev/elt/tests/pgtest"
)

// TestRunnerCannotEscalate: the credential the nightly job holds (elt_runner) cannot give itself a predefined
// role, become the role that manages logins, or replace what a superuser or elt_tenant_admin runs.
func TestRunnerCannotEscalate(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	tests := []struct{ name, sql string }{
		{"GrantServerProgram", "grant pg_execute_server_program to elt_runner"},
		{"GrantReadServerFiles", "grant pg_read_server_files to elt_runner"},
		{"Createrole", "alter role elt_runner createrole"},
		{"SetRoleAdmin", "set role elt_tenant_admin"},
		{"GrantAdmin", "grant elt_tenant_admin to elt_runner"},
		{"CopyToProgram", "copy (select 1) to program 'id'"},
		{"ReplaceHardening", "create or replace procedure elt_dba.harden_database() language sql as 'select 1'"},
		{"ReplaceTraps", "create or replace function elt_dba.traps() returns table (object text, problem text) language sql as 'select null::text, null::text where false'"},
		{"ReplaceAdminFunction", "create or replace function elt_admin.signal_tenant(integer, boolean) returns boolean language sql as 'select true'"},
		{"CreateInAdmin", "create function elt_admin.mine() returns int language sql as 'select 1'"},
		{"DropAdminFunction", "drop function elt_admin.drop_login(text)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := b.Runner.Exec(context.Background(), tt.sql)
			if sqlstate(err) != "42501" {
				t.Errorf("%s as elt_runner: %v, want permission denied (42501)", tt.sql, err)
			}
		})
	}
}

// TestAdminFunctionsIgnoreTemporaryObjects: a temporary domain named text (elt_runner may create temporary
// objects) does not stand in for the built-in type inside elt_admin's functions, which run as
// elt_tenant_admin: its check would otherwise run with that role's rights.
func TestAdminFunctionsIgnoreTemporaryObjects(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	conn, err := b.Runner.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, q := range []string{
		"create temporary table spied (who text)",
		"create function pg_temp.spy(v pg_catalog.text) returns boolean language sql as $$ insert into pg_temp.spied values (current_user) returning true $$",
		"create domain pg_temp.text as pg_catalog.text check (pg_temp.spy(value))",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// A session of another login, so that signal_tenant reads a user name.
	if _, err := conn.Exec(ctx, `select elt_admin.signal_tenant(pg_backend_pid(), false)`); err != nil {
		t.Fatal(err)
	}
	var spied int
	if err := conn.QueryRow(ctx, `select count(*) from pg_temp.spied`).Scan(&spied); err != nil {
		t.Fatal(err)
	}
	if spied != 0 {
		t.Errorf("the temporary domain ran %d times inside elt_admin.signal_tenant", spied)
	}
}

// TestSuperuserMigrateRefusesTraps: a trigger on one of elt's tables (which elt_runner, with elt_owner's
// rights, could add and then wait for a DBA's elt migrate to fire it as a superuser) makes a superuser's
// migrate refuse to run, and elt tenant check report it. elt's version table belongs to the superuser who
// ran the first migrate, so elt_runner cannot put one there; and a project version table turned into a view
// (which would run its code for whoever reads it) is not read by a superuser.
func TestSuperuserMigrateRefusesTraps(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	if _, err := b.Runner.Exec(ctx, "create function elt.trap() returns trigger language plpgsql as 'begin return new; end'"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Runner.Exec(ctx, "create trigger trap before update on elt.schema_version for each row execute function elt.trap()"); err == nil {
		t.Error("elt_runner could put a trigger on elt.schema_version, which a superuser's migrate writes")
	}
	if _, err := b.Runner.Exec(ctx, "create trigger trap before update on elt.runs for each row execute function elt.trap()"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pgtest.Pinned(b.DB.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	opts := migrate.Options{Schemas: b.DB.Project.Schemas, Runner: pgtest.RunnerOf(b.DB.URL)}
	_, err = migrate.Up(ctx, conn, opts, migrate.Elt(), migrate.Project(b.DB.Project.Migrations()))
	if err == nil || !strings.Contains(err.Error(), "refusing to run as a superuser") || !strings.Contains(err.Error(), "elt.runs has trigger trap") {
		t.Errorf("superuser migrate with a trigger on elt.runs: %v, want a refusal naming it", err)
	}
	vs, err := tenant.Check(ctx, b.Runner, b.Layer)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range vs {
		found = found || v.Object == "elt.runs" && strings.Contains(v.Problem, "has trigger trap")
	}
	if !found {
		t.Errorf("tenant check does not report the trigger: %v", vs)
	}

	if _, err := b.Runner.Exec(ctx, "drop trigger trap on elt.runs"); err != nil {
		t.Fatal(err)
	}
	// elt's version table is out of elt_runner's reach: schema elt is the DBA's.
	if _, err := b.Runner.Exec(ctx, "drop table elt.schema_version"); err == nil {
		t.Error("elt_runner could drop elt.schema_version, which a superuser's migrate writes")
	}
	// Code no trap names, caught by the recorded shape of elt's tables: a CHECK constraint calling a catalog
	// function that runs SQL, and a child table with a trigger (an UPDATE of the parent fires it).
	for _, c := range []struct{ plant, want, undo string }{
		{
			plant: "alter table elt.runs add constraint spy check (pg_catalog.query_to_xml('select 1', false, false, '') is not null) not valid",
			want:  "elt.runs has constraint spy CHECK",
			undo:  "alter table elt.runs drop constraint spy",
		},
		{
			plant: "create table staging.child () inherits (elt.tenants); create trigger trap before update on staging.child for each row execute function elt.trap()",
			want:  "elt.tenants has inherited by staging.child",
			undo:  "drop table staging.child",
		},
	} {
		if _, err := b.Runner.Exec(ctx, c.plant); err != nil {
			t.Fatalf("%s as elt_runner: %v", c.plant, err)
		}
		_, err := migrate.Up(ctx, conn, opts, migrate.Elt(), migrate.Project(b.DB.Project.Migrations()))
		if err == nil || !strings.Contains(err.Error(), "elt's tables changed since the last superuser's elt migrate") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("superuser migrate after %q: %v, want a refusal naming %q", c.plant, err, c.want)
		}
		vs, err := tenant.Check(ctx, b.Runner, b.Layer)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, v := range vs {
			found = found || strings.Contains(v.Object+" "+v.Problem, c.want)
		}
		if !found {
			t.Errorf("tenant check does not report %q: %v", c.want, vs)
		}
		if _, err := b.Runner.Exec(ctx, c.undo); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Runner.Exec(ctx, "drop function elt.trap()"); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Up(ctx, conn, opts, migrate.Elt(), migrate.Project(b.DB.Project.Migrations())); err != nil {
		t.Fatalf("superuser migrate once the changes are undone: %v", err)
	}

	// The project's version table replaced by a view that calls elt_runner's code.
	for _, q := range []string{
		"create table elt.project_version_kept as table elt.project_version",
		"drop table elt.project_version",
		"create function elt.spy() returns integer language sql as 'select version from elt.project_version_kept'",
		"create view elt.project_version as select elt.spy() as version",
	} {
		if _, err := b.Runner.Exec(ctx, q); err != nil {
			t.Fatalf("%s as elt_runner: %v", q, err)
		}
	}
	proj := migrate.Project(b.DB.Project.Migrations())
	if _, err := migrate.CurrentVersion(ctx, conn, proj); err == nil || !strings.Contains(err.Error(), "refusing to read it as a superuser") {
		t.Errorf("a superuser read a project version table that is a view: %v", err)
	}
	if _, err := migrate.Up(ctx, conn, opts, migrate.Elt(), proj); err == nil || !strings.Contains(err.Error(), "elt.project_version is a view") {
		t.Errorf("superuser migrate with a view as elt.project_version: %v, want a refusal naming it", err)
	}
}
