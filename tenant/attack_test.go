package tenant_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
)

// The attacks run as the login of cus_0001 with raw SQL. Each either fails with the expected SQLSTATE or
// reads only cus_0001's rows. Ids of every seeded row contain its customer id, so a leaked row shows.

// sqlstate returns the SQLSTATE of err, or "" when it is not a PostgreSQL error.
func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// strings returns the first column of every row of sql as text.
func column(t *testing.T, conn *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

// onlyOwn fails unless every value contains customer (and there is at least one).
func onlyOwn(t *testing.T, customer string, values []string) {
	t.Helper()
	if len(values) == 0 {
		t.Errorf("read no rows, want %s's", customer)
	}
	for _, v := range values {
		if !strings.Contains(v, customer) {
			t.Errorf("read %q, which is not %s's", v, customer)
		}
	}
}

// TestAttacksDenied: statements a tenant must not be able to run at all.
func TestAttacksDenied(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	me := b.Add(t, "cus_0001", tenant.Limits{})
	other := b.Add(t, "cus_0002", tenant.Limits{})
	otherEvents := pgx.Identifier{other.Role, "events"}.Sanitize()
	tests := []struct {
		name, sql, code string
	}{
		{"SetRoleOwner", "set role elt_owner", "42501"},
		{"SetRoleRunner", "set role elt_runner", "42501"},
		{"SetRoleAdmin", "set role elt_tenant_admin", "42501"},
		{"SetRoleOtherTenant", "set role " + other.Role, "42501"},
		{"SetSessionAuthorization", "set session authorization " + other.Role, "42501"},
		{"SetSessionAuthorizationSuperuser", "set session authorization postgres", "42501"},
		{"SelectOtherTenantsSchema", "select * from " + otherEvents, "42501"},
		{"SelectStaging", "select * from staging.events", "42501"},
		{"SelectCore", "select * from core.events", "42501"},
		{"SelectOtherPartition", "select * from core." + tenant.PartitionName("events", other.Role), "42501"},
		{"SelectDefaultPartition", "select * from core." + tenant.DefaultPartitionName("events"), "42501"},
		{"SelectMart", "select * from marts.active_users_weekly", "42501"},
		// Other logins' session defaults (limits, time zones): revoked by elt_dba.harden_catalogs.
		{"ReadRoleSettings", "select rolconfig from pg_roles", "42501"},
		{"WalkPartitionTree", "select * from pg_partition_tree('core.events')", "42501"},
		// pg_get_viewdef and pg_get_ruledef keep a lock on whatever they decompile until the transaction ends.
		{"DecompileView", "select pg_get_viewdef(oid) from pg_class where relkind = 'v'", "42501"},
		{"DecompileRule", "select pg_get_ruledef(oid) from pg_rewrite", "42501"},
		// Signalling a pid tells a live backend from none: it would list other sessions.
		{"ProbeBackends", "select pg_cancel_backend(1)", "42501"},
		{"OtherRolesSettings", "select * from pg_db_role_setting", "42501"},
		{"SelectRollup", "select * from marts.rollup_user_day", "42501"},
		{"SelectPrivateMatview", "select * from marts.customer_overview", "42501"},
		{"SelectMap", "select * from elt.tenants", "42501"},
		{"SelectRunLog", "select * from elt.runs", "42501"},
		{"CallAdminFunction", "select elt_admin.drop_login('" + other.Role + "')", "42501"},
		{"CopyCoreToStdout", "copy core.events to stdout", "42501"},
		{"CopyQueryOnCoreToStdout", "copy (select * from core.customers) to stdout", "42501"},
		{"CopyToServerFile", "copy (select 1) to '/tmp/elt-tenant-attack'", "42501"},
		{"CopyToProgram", "copy (select 1) to program 'id'", "42501"},
		{"SelectPgStatistic", "select * from pg_statistic", "42501"},
		{"SelectPgStats", "select * from pg_stats", "42501"},
		{"SelectPgStatsExt", "select * from pg_stats_ext", "42501"},
		// What would tell the sizes or activity of other tenants (elt_dba.harden_catalogs).
		{"PgClassRowCounts", "select relname, reltuples, relpages from pg_class", "42501"},
		{"PgClassPartitionBounds", "select relname, relpartbound from pg_class", "42501"},
		{"PartitionConstraint", "select pg_get_partition_constraintdef(oid) from pg_class where relispartition", "42501"},
		{"RelationSize", "select pg_relation_size('pg_catalog.pg_class')", "42501"},
		{"TotalRelationSize", "select pg_total_relation_size('pg_catalog.pg_class')", "42501"},
		{"DatabaseSize", "select pg_database_size(current_database())", "42501"},
		{"StatUserTables", "select * from pg_stat_user_tables", "42501"},
		{"StatUserIndexes", "select * from pg_stat_user_indexes", "42501"},
		{"StatioUserTables", "select * from pg_statio_user_tables", "42501"},
		{"StatDatabase", "select * from pg_stat_database", "42501"},
		{"StatActivity", "select * from pg_stat_activity", "42501"},
		{"StatGetFunction", "select pg_stat_get_live_tuples('pg_catalog.pg_class'::regclass)", "42501"},
		{"Locks", "select * from pg_locks", "42501"},
		{"TransactionID", "select txid_current()", "42501"},
		{"CurrentXactID", "select pg_current_xact_id()", "42501"},
		{"Snapshot", "select pg_current_snapshot()", "42501"},
		{"XidAge", "select age('3'::xid)", "42501"},
		{"WALPosition", "select pg_current_wal_lsn()", "42501"},
		{"Notify", "select pg_notify('elt', 'x')", "42501"},
		{"NotificationQueue", "select pg_notification_queue_usage()", "42501"},
		// Writes, locks and objects.
		{"InsertView", "insert into events (event_id) values ('x')", "42501"},
		{"UpdateView", "update users set name = 'x'", "42501"},
		{"DeleteView", "delete from users", "42501"},
		{"TruncateView", "truncate events", "42809"},
		{"TruncateCore", "truncate core.events", "42501"},
		{"SelectForUpdate", "select * from users for update", "42501"},
		{"SelectForShare", "select * from users for share", "42501"},
		{"LockViewExclusive", "begin; lock table active_users_daily in access exclusive mode; commit", "42501"},
		{"LockMart", "begin; lock table marts.active_users_weekly in access share mode; commit", "42501"},
		{"AdvisoryLock", "select pg_advisory_lock(hashtextextended('elt:staging-batches', 0))", "42501"},
		{"AdvisoryXactLock", "select pg_try_advisory_xact_lock(1)", "42501"},
		{"TempTable", "create temp table t (x int)", "42501"},
		{"TempFunction", "create function pg_temp.leak(text) returns bool language plpgsql as 'begin raise notice ''%'', $1; return true; end'", "42501"},
		{"CreateInPublic", "create table public.t (x int)", "42501"},
		{"CreateInOwnSchema", "create view " + pgx.Identifier{me.Role, "v"}.Sanitize() + " as select 1", "42501"},
		{"CreateSchema", "create schema mine", "42501"},
		{"LargeObject", "select lo_create(0)", "42501"},
		{"ReadServerFile", "select pg_read_file('/etc/passwd')", "42501"},
		{"RaiseOwnConnectionLimit", "alter role " + me.Role + " connection limit -1", "42501"},
		{"LiftTempFileLimit", "set temp_file_limit = -1", "42501"},
		{"LiftOwnTempFileLimit", "alter role " + me.Role + " set temp_file_limit = -1", "42501"},
		{"GrantSelfOwner", "grant elt_owner to " + me.Role, "0LP01"},
		{"GrantSelfServerProgram", "grant pg_execute_server_program to " + me.Role, "0LP01"},
		{"RefreshMart", "refresh materialized view marts.customer_overview", "42501"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := b.Connect(t, me)
			ctx := context.Background()
			// The login defaults to read-only transactions; lift that so the privileges themselves are tested.
			if _, err := conn.Exec(ctx, "set default_transaction_read_only = off"); err != nil {
				t.Fatal(err)
			}
			_, err := conn.Exec(ctx, tt.sql)
			if got := sqlstate(err); got != tt.code {
				if got != "42501" || tt.code != "0LP01" { // GRANT's code for a missing privilege varies by version
					t.Errorf("%s: error %v (SQLSTATE %q), want SQLSTATE %s", tt.sql, err, got, tt.code)
				}
			}
		})
	}
}

// TestAttacksReadOnlyOwnRows: statements a tenant may run, which must still read only its own rows.
func TestAttacksReadOnlyOwnRows(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	me := b.Add(t, "cus_0001", tenant.Limits{})
	b.Add(t, "cus_0002", tenant.Limits{})
	ctx := context.Background()

	t.Run("ForgedSettings", func(t *testing.T) {
		conn := b.Connect(t, me)
		for _, s := range []string{
			"select set_config('elt.customer_id', 'cus_0002', false)",
			"set app.customer_id = 'cus_0002'",
			"set application_name = 'cus_0002'",
		} {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		onlyOwn(t, "cus_0001", column(t, conn, "select user_id from users"))
		onlyOwn(t, "cus_0001", column(t, conn, "select customer_id from customers"))
		// Allowed (its own group), and it only takes the login's own privileges away.
		if _, err := conn.Exec(ctx, "set role elt_tenant"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "select * from "+pgx.Identifier{me.Role, "events"}.Sanitize()); sqlstate(err) != "42501" {
			t.Errorf("as elt_tenant: %v, want 42501", err)
		}
		if _, err := conn.Exec(ctx, "reset role"); err != nil {
			t.Fatal(err)
		}
		onlyOwn(t, "cus_0001", column(t, conn, "select event_id from events"))
		// Another search path finds nothing else to read.
		if _, err := conn.Exec(ctx, "set search_path = core, marts, public"); err != nil {
			t.Fatal(err)
		}
		// Schemas it may not use are not on its path at all.
		if _, err := conn.Exec(ctx, "select * from events"); sqlstate(err) != "42P01" {
			t.Errorf("with search_path core: %v, want 42P01 undefined_table", err)
		}
	})

	t.Run("LeakyFunctionNotice", func(t *testing.T) {
		// A cheap, non-leakproof function that reports every value it sees. Tenants cannot create one (see
		// TestAttacksDenied); a superuser made this one to show that, whatever the plan, no other rows exist
		// under the tenant's views to be seen.
		if _, err := b.DB.Pool.Exec(ctx, `create function public.peek(text) returns boolean language plpgsql cost 0.0001 as
			'begin raise notice ''peek %'', $1; return true; end'`); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var seen []string
		cfg, err := pgx.ParseConfig(b.URL(me))
		if err != nil {
			t.Fatal(err)
		}
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			mu.Lock()
			seen = append(seen, strings.TrimPrefix(n.Message, "peek "))
			mu.Unlock()
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for _, q := range []string{
			"select count(*)::text from users where public.peek(user_id)",
			"select count(*)::text from events as e join users as u on public.peek(e.event_id) and public.peek(u.user_id)",
			"select user_id from user_activity order by public.peek(user_id)",
		} {
			column(t, conn, q)
		}
		mu.Lock()
		defer mu.Unlock()
		onlyOwn(t, "cus_0001", seen)
	})

	t.Run("ErrorOracle", func(t *testing.T) {
		conn := b.Connect(t, me)
		// Each would divide by zero on a row of cus_0002, if it ever saw one.
		for _, q := range []string{
			"select user_id from users where 1 / (case when user_id like 'cus_0002%' then 0 else 1 end) = 1",
			"select u.user_id from users as u join events as e on e.user_id = u.user_id and 1 / (case when e.event_id like 'cus_0002%' then 0 else 1 end) = 1",
			"select user_id from user_activity order by 1 / (case when user_id like 'cus_0002%' then 0 else 1 end)",
			"select customer_id from customers where 1 / (case when customer_id = 'cus_0002' then 0 else 1 end) = 1",
		} {
			onlyOwn(t, "cus_0001", column(t, conn, q))
		}
	})

	t.Run("CopyViewQuery", func(t *testing.T) {
		conn := b.Connect(t, me)
		var buf strings.Builder
		if _, err := conn.PgConn().CopyTo(ctx, &buf, "copy (select user_id from users) to stdout"); err != nil {
			t.Fatal(err)
		}
		onlyOwn(t, "cus_0001", strings.Fields(buf.String()))
	})

	t.Run("CatalogsRevealNoCustomer", func(t *testing.T) {
		conn := b.Connect(t, me)
		for _, q := range []string{
			"select rolname from pg_roles where rolname ~ 'cus_'",
			"select description from pg_shdescription where description ~ 'cus_|Customer '",
			"select description from pg_description where description ~ 'cus_0|Customer [0-9]'",
			"select c.relname from pg_class as c where c.relname ~ 'cus_'",
		} {
			if got := column(t, conn, q); len(got) != 0 {
				t.Errorf("%s: got %v, want nothing", q, got)
			}
		}
	})

}

// TestTenantCannotStallRefresh: an idle transaction that read every view of the tenant, and holds a lock on
// one, does not block what an incremental refresh does to the tables under them (deletes and inserts of the
// changed buckets, a concurrent refresh of a materialized view); and the login's idle timeout ends it.
func TestTenantCannotStallRefresh(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	me := b.Add(t, "cus_0001", tenant.Limits{IdleInTransactionTimeout: time.Second})
	ctx := context.Background()
	conn := b.Connect(t, me)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range column(t, conn, "select table_name::text from information_schema.views where table_schema = current_schema()") {
		if _, err := tx.Exec(ctx, "select * from "+pgx.Identifier{v}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, "lock table active_users_daily in access share mode"); err != nil {
		t.Fatal(err)
	}
	rtx, err := b.Runner.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback(ctx)
	for _, q := range []string{
		"set local lock_timeout = '5s'",
		"delete from marts.rollup_customer_day where customer_id = 'cus_0001' and day = '2026-11-20'",
		"insert into marts.rollup_customer_day values ('cus_0001', '2026-11-20', 1, 1)",
		"delete from core.events where customer_id = 'cus_0001' and event_id = 'cus_0001_e1'",
		"refresh materialized view concurrently marts.customer_overview",
	} {
		if _, err := rtx.Exec(ctx, q); err != nil {
			t.Errorf("%s while a tenant holds a transaction open: %v", q, err)
		}
	}
	rtx.Rollback(ctx)

	time.Sleep(2 * time.Second) // past the login's 1 s idle_in_transaction_session_timeout
	if _, err := tx.Exec(ctx, "select 1"); err == nil {
		t.Error("the idle transaction survived the login's idle_in_transaction_session_timeout")
	}
}

// TestConnectionLimit: the login's connection limit holds, and the tenant cannot lift it.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	me := b.Add(t, "cus_0001", tenant.Limits{ConnectionLimit: 2})
	b.Connect(t, me)
	b.Connect(t, me)
	conn, err := b.TryConnect(me)
	if err == nil {
		conn.Close(context.Background())
		t.Fatal("a third session logged in past a connection limit of 2")
	}
	if got := sqlstate(err); got != "53300" {
		t.Errorf("third session: %v (SQLSTATE %q), want 53300 too_many_connections", err, got)
	}
}

// TestRemoveCutsAccessAtOnce: Remove ends the open sessions, and the login cannot log in again.
func TestRemoveCutsAccessAtOnce(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	me := b.Add(t, "cus_0001", tenant.Limits{})
	ctx := context.Background()
	conn := b.Connect(t, me)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select * from events"); err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.Remove(ctx, b.Runner, "cus_0001"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select * from events"); err == nil {
		t.Error("the open transaction still reads after Remove")
	}
	if c, err := b.TryConnect(me); err == nil {
		c.Close(ctx)
		t.Error("the removed login logged in again")
	}
}

// TestOpenTransactionDoesNotHoldUpSync: a tenant's open transaction on its own views does not hold up elt's
// rebuild of them (elt ends the sessions that hold or await a lock on them, elt_admin.end_lock_holders); and
// it cannot lock another tenant's views, as pg_get_viewdef would (TestAttacksDenied).
func TestOpenTransactionDoesNotHoldUpSync(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	me := b.Add(t, "cus_0001", tenant.Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := b.Connect(t, me)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "select count(*) from events"); err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.Sync(ctx, b.Runner, b.Layer, true, nil); err != nil {
		t.Fatalf("sync while the tenant holds a lock on its view: %v", err)
	}
	if _, err := tx.Exec(ctx, "select 1"); err == nil {
		t.Error("the session that held the lock is still open")
	}
}

// TestOtherTenantCannotEndMySessions: a tenant cannot terminate or cancel another tenant's session.
func TestOtherTenantCannotEndMySessions(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	me := b.Add(t, "cus_0001", tenant.Limits{})
	other := b.Add(t, "cus_0002", tenant.Limits{})
	victim := b.Connect(t, other)
	pid := victim.PgConn().PID()
	conn := b.Connect(t, me)
	for _, f := range []string{"pg_terminate_backend", "pg_cancel_backend"} {
		_, err := conn.Exec(context.Background(), "select "+f+"($1)", int32(pid))
		if sqlstate(err) != "42501" {
			t.Errorf("%s of another tenant's session: %v, want SQLSTATE 42501", f, err)
		}
	}
	if _, err := victim.Exec(context.Background(), "select 1"); err != nil {
		t.Errorf("victim session: %v", err)
	}
}

// TestDashboardQueriesUseTenantIndexes: typical dashboard queries, as a tenant, scan only the tenant's own
// partitions and use their indexes with the tenant's own condition. Sequential scans are disabled so that the
// tiny test data does not hide the plan the planner would choose on real volumes.
func TestDashboardQueriesUseTenantIndexes(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	me := b.Add(t, "cus_0001", tenant.Limits{})
	conn := b.Connect(t, me)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "set enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	suffix := strings.TrimPrefix(me.Role, "tenant_")
	tests := []struct {
		name, sql, index, cond string
	}{
		{"DailyActiveUsers90Days", "select day, active_users from active_users_daily where day >= date '2026-11-20' - 90 order by day",
			"rollup_customer_day_" + suffix + "_pkey", "day >="},
		{"OneUsersActivity", "select day, events from user_activity_daily where user_id = 'cus_0001_u1' order by day",
			"rollup_user_day_" + suffix + "_user_id_day_idx", "user_id ="},
		{"EventsTimeSeries", "select date_trunc('day', occurred_at), count(*) from events where occurred_at >= timestamptz '2026-11-01 00:00+00' group by 1",
			"events_" + suffix + "_occurred_at_idx", "occurred_at >="},
	}
	for _, tt := range tests {
		lines := column(t, conn, "explain (costs off) "+tt.sql)
		plan := strings.Join(lines, "\n")
		var scan, cond bool
		for _, l := range lines {
			scan = scan || strings.Contains(l, "Index") && strings.Contains(l, tt.index)
			cond = cond || strings.Contains(l, "Index Cond:") && strings.Contains(l, tt.cond)
		}
		if !scan || !cond {
			t.Errorf("%s: want an index scan on %s with %q in the index condition; plan:\n%s", tt.name, tt.index, tt.cond, plan)
		}
		for _, l := range lines {
			if strings.Contains(l, " on ") && !strings.Contains(l, suffix) {
				t.Errorf("%s: plan reads a relation that is not the tenant's own: %s", tt.name, l)
			}
		}
	}
}

// TestPsqlDescribes: with the catalog statistics revoked, psql's describe commands still work for a tenant on
// what it can read (its schema's views, their columns and comments), and the size columns of \dt+ fail only
// because the sizes are revoked.
func TestPsqlDescribes(t *testing.T) {
	t.Parallel()
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql is not installed (the PostgreSQL client, Debian postgresql-client): %v", err)
	}
	b := tenanttest.New(t)
	me := b.Add(t, "cus_0001", tenant.Limits{})
	for _, tt := range []struct{ cmd, want string }{
		{`\d`, "active_users_daily"},
		{`\dv`, "retention_weekly"},
		{`\d events`, "occurred_at"},
		// Comments, without \d+ (which decompiles the view with pg_get_viewdef, revoked: it keeps a lock on
		// whatever it decompiles, another tenant's views included, and one session could fill the lock table).
		{`select col_description('events'::regclass, 3)`, "Product feature used"},
		{`select obj_description('active_users_daily'::regclass, 'pg_class')`, "Daily active users"},
		{`\dn`, me.Role},
		{`\df`, "List of functions"},
		{`\dt`, "Did not find any relations"},
	} {
		out, err := exec.Command(psql, "-X", "-c", tt.cmd, b.URL(me)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("psql %s as the tenant: %v\n%s\nwant it to show %q", tt.cmd, err, out, tt.want)
		}
	}
}
