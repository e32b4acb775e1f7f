package tests

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/elt-dev/elt/project"
	"github.com/elt-dev/elt/tests/pgtest"
)

// Acceptance (upgrade): a database migrated by the elt before the project folder (one migration track of six
// migrations in public.elt_schema_version, the demo model compiled in, tenants reading an analytics schema) is
// upgraded by elt migrate itself: staging and the run log are kept, the model is rebuilt by the next
// elt refresh from the raw records, each tenant keeps its login and password and now reads its own schema,
// and elt's own tables end up exactly as on a new database.
func TestLegacyDatabaseUpgrades(t *testing.T) {
	t.Parallel()
	// Its own cluster: the old migrations give elt_runner powers (createrole, pg_signal_backend) that the new
	// ones take back, and roles belong to the whole cluster.
	fresh := pgtest.NewServer(t, nil).New(t, pgtest.DefaultProject(t))
	ctx := context.Background()
	name := fresh.Name + "_legacy"
	if _, err := fresh.Pool.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	legacyURL := fresh.URLFor(name)
	conn, err := pgx.Connect(ctx, legacyURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	// 1. The old layout, with the old migrations (tests/testdata/turn1) as that elt applied them.
	m, err := migrate.NewMigrator(ctx, conn, "public.elt_schema_version")
	if err != nil {
		t.Fatal(err)
	}
	m.Data = map[string]any{}
	if err := m.LoadMigrations(project.MigrationFS(os.DirFS("testdata/turn1"))); err != nil {
		t.Fatal(err)
	}
	if err := m.Migrate(ctx); err != nil {
		t.Fatalf("old migrations: %v", err)
	}
	// Raw records in the old staging tables, one batch per table, and a tenant login made as the old
	// elt tenant add made it.
	stage := map[string][]map[string]any{
		"customers": {{"id": "cus_a", "name": "Alpha", "plan": "pro", "country": "IT", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"},
			{"id": "cus_b", "name": "Beta", "plan": "free", "country": "FR", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}},
		"users": {{"id": "usr_a1", "customer_id": "cus_a", "email": "a1@example.com", "name": "A1", "role": "admin", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"},
			{"id": "usr_b1", "customer_id": "cus_b", "email": "b1@example.com", "name": "B1", "role": "admin", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}},
		"events": {{"id": "e1", "customer_id": "cus_a", "user_id": "usr_a1", "feature": "dashboard.view", "occurred_at": "2026-03-30T09:00:00Z", "updated_at": "2026-03-30T09:00:00Z"},
			{"id": "e2", "customer_id": "cus_a", "user_id": "usr_a1", "feature": "search.query", "occurred_at": "2026-03-31T09:00:00Z", "updated_at": "2026-03-31T09:00:00Z"},
			{"id": "e3", "customer_id": "cus_b", "user_id": "usr_b1", "feature": "alerts.create", "occurred_at": "2026-03-31T10:00:00Z", "updated_at": "2026-03-31T10:00:00Z"}},
	}
	var runID int64
	if err := conn.QueryRow(ctx, `insert into elt.runs (kind, target, status) values ('extract', 'demo', 'succeeded') returning run_id`).Scan(&runID); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"customers", "users", "events"} {
		var batch int64
		if err := conn.QueryRow(ctx, `insert into elt.batches (run_id, source, resource, staging_table, records, bytes) values ($1, 'demo', $2, $2, $3, 0) returning batch_id`,
			runID, table, len(stage[table])).Scan(&batch); err != nil {
			t.Fatal(err)
		}
		for _, r := range stage[table] {
			b, _ := json.Marshal(r)
			if _, err := conn.Exec(ctx, "insert into "+pgx.Identifier{"staging", table}.Sanitize()+" (batch_id, record) values ($1, $2)", batch, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	const role, password = "tenant_0000000000000c0a", "legacy-password-0123456789"
	if _, err := conn.Exec(ctx, "create role "+role+" login password '"+password+"' in role elt_tenant; alter role "+role+" set search_path = analytics"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fresh.Pool.Exec(context.Background(), "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)")
	})
	if _, err := conn.Exec(ctx, `insert into elt.tenants (role_name, customer_id) values ($1, 'cus_a')`, role); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	// 2. The new elt: migrate (as the DBA), then refresh and check as elt_runner.
	env := []string{"ELT_PROJECT=" + pgtest.RepoRoot()}
	r := runElt(t, append([]string{"DATABASE_URL=" + legacyURL}, env...), "migrate")
	if r.Code != 0 {
		t.Fatalf("elt migrate of the old layout: exit %d:\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "tenant logins taken over from the old tenant map") {
		t.Errorf("migrate does not say it took the old logins over:\n%s", r.Stderr)
	}
	runner := append([]string{"DATABASE_URL=" + strings.Replace(legacyURL, "postgres@", "elt_runner@", 1)}, env...)
	for _, args := range [][]string{{"refresh"}, {"tenant", "check"}} {
		if r := runElt(t, runner, args...); r.Code != 0 {
			t.Fatalf("elt %v after the upgrade: exit %d:\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
	}

	// The tenant logs in with its old password and reads its own rows from its own schema.
	tconn, err := pgx.Connect(ctx, strings.Replace(fresh.ConnString(role, password), "/"+fresh.Name+"?", "/"+name+"?", 1))
	if err != nil {
		t.Fatalf("the old tenant login after the upgrade: %v", err)
	}
	defer tconn.Close(ctx)
	rows, err := tconn.Query(ctx, `select event_id from events order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"e1", "e2"}, got); diff != "" {
		t.Errorf("events the old tenant reads after the upgrade (-want +got):\n%s", diff)
	}
	var schema string
	if err := tconn.QueryRow(ctx, `select current_schema()`).Scan(&schema); err != nil || schema != role {
		t.Errorf("the old tenant's schema is %q (%v), want its own %s", schema, err, role)
	}

	// elt's own tables are those of a new database, column by column; nothing of the old layout is left.
	shape := func(url string) string {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var s string
		err = c.QueryRow(ctx, `
select string_agg(format('%s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                         coalesce(pg_get_expr(d.adbin, d.adrelid), '')), E'\n' order by c.relname, a.attnum)
from pg_class as c
join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_attrdef as d on d.adrelid = c.oid and d.adnum = a.attnum
where c.relnamespace = 'elt'::regnamespace and c.relkind = 'r'`).Scan(&s)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if diff := cmp.Diff(shape(fresh.URL), shape(legacyURL)); diff != "" {
		t.Errorf("elt's tables after the upgrade differ from a new database's (-new +upgraded):\n%s", diff)
	}
	check, err := pgx.Connect(ctx, legacyURL)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close(ctx)
	var left []string
	rows, err = check.Query(ctx, `select coalesce(to_regclass('public.elt_schema_version')::text, '')
		union all select coalesce(to_regnamespace('analytics')::text, '')
		union all select coalesce(to_regclass('elt.tenants_legacy')::text, '')`)
	if err != nil {
		t.Fatal(err)
	}
	if left, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"", "", ""}, left); diff != "" {
		t.Errorf("left of the old layout (-want +got):\n%s", diff)
	}
	var attrs struct{ createrole, signal bool }
	if err := check.QueryRow(ctx, `select rolcreaterole, pg_has_role('elt_runner', 'pg_signal_backend', 'member') from pg_roles where rolname = 'elt_runner'`).Scan(&attrs.createrole, &attrs.signal); err != nil {
		t.Fatal(err)
	}
	if attrs.createrole || attrs.signal {
		t.Errorf("elt_runner after the upgrade: createrole %v, pg_signal_backend %v; want neither", attrs.createrole, attrs.signal)
	}
}
