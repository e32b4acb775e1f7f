package tenant_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
)

// settings returns the session defaults of role.
func settings(t *testing.T, b *tenanttest.Bundle, role string) (int, []string) {
	t.Helper()
	var limit int
	var s []string
	if err := b.DB.Pool.QueryRow(context.Background(), `select rolconnlimit, rolconfig from pg_roles where rolname = $1`, role).Scan(&limit, &s); err != nil {
		t.Fatal(err)
	}
	return limit, s
}

func TestAddGetListRemove(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()

	l := b.Add(t, "cus_0002", tenant.Limits{})
	if !regexp.MustCompile(`^tenant_[0-9a-f]{16}$`).MatchString(l.Role) {
		t.Errorf("role name %q is not opaque (tenant_ and 16 hex digits)", l.Role)
	}
	if err := tenant.ValidatePassword(l.Password); err != nil {
		t.Errorf("generated password: %v", err)
	}

	// A second login for the same customer is refused, and names the existing one.
	got, _, err := tenant.Add(ctx, b.Runner, b.Layer, "cus_0002", tenant.AddOptions{})
	if !errors.Is(err, tenant.ErrExists) || got.Role != l.Role {
		t.Errorf("second Add = %q, %v; want ErrExists with role %s", got.Role, err, l.Role)
	}
	// An unknown customer is refused unless allowed.
	if _, _, err := tenant.Add(ctx, b.Runner, b.Layer, "cus_9999", tenant.AddOptions{}); !errors.Is(err, tenant.ErrUnknownCustomer) {
		t.Errorf("Add(unknown) error = %v, want ErrUnknownCustomer", err)
	}
	if _, _, err := tenant.Add(ctx, b.Runner, b.Layer, "cus_0001", tenant.AddOptions{Password: "short"}); err == nil {
		t.Error("Add accepted a short password")
	}

	conn := b.Connect(t, l)
	limit, s := settings(t, b, l.Role)
	want := []string{"statement_timeout=60000ms", "idle_in_transaction_session_timeout=60000ms", "temp_file_limit=1048576kB",
		"TimeZone=UTC", "search_path=" + l.Role, "default_transaction_read_only=on"}
	if diff := cmp.Diff(sortedCopy(want), sortedCopy(s)); diff != "" || limit != 10 {
		t.Errorf("connection limit %d, want 10; role settings (-want +got):\n%s", limit, diff)
	}
	// Its schema holds the project's published relations, and its partitions took its rows out of the
	// default partitions.
	var views []string
	rows, err := conn.Query(ctx, `select table_name::text from information_schema.views where table_schema = current_schema() order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	if views, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	var published []string
	for _, r := range b.Layer.Publish {
		published = append(published, r.Name)
	}
	if diff := cmp.Diff(sortedCopy(published), views); diff != "" {
		t.Errorf("views of the tenant's schema (-published +got):\n%s", diff)
	}
	var own, inDefault int64
	if err := b.DB.Pool.QueryRow(ctx, `select (select count(*) from core.`+tenant.PartitionName("events", l.Role)+`),
		(select count(*) from core.events_default where customer_id = 'cus_0002')`).Scan(&own, &inDefault); err != nil {
		t.Fatal(err)
	}
	if own != 80 || inDefault != 0 {
		t.Errorf("events of cus_0002: %d in its partition, %d left in the default; want 80 and 0", own, inDefault)
	}

	ts, err := tenant.List(ctx, b.Runner)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Key != "cus_0002" || ts[0].Role != l.Role || ts[0].Sessions != 1 || ts[0].LastLogin == nil {
		t.Errorf("List = %+v, want cus_0002 with 1 open session", ts)
	}
	if g, err := tenant.Get(ctx, b.Runner, "cus_0002"); err != nil || g.Role != l.Role {
		t.Errorf("Get = %+v, %v", g, err)
	}
	if _, err := tenant.Get(ctx, b.Runner, "cus_0003"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("Get(no login) error = %v, want ErrNotFound", err)
	}

	role, err := tenant.Remove(ctx, b.Runner, "cus_0002")
	if err != nil || role != l.Role {
		t.Fatalf("Remove = %q, %v", role, err)
	}
	if _, err := conn.Exec(ctx, "select 1"); err == nil {
		t.Error("the removed tenant's open session still runs queries")
	}
	if _, err := tenant.Remove(ctx, b.Runner, "cus_0002"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("second Remove error = %v, want ErrNotFound", err)
	}
	var roleExists, schemaExists, partitionExists bool
	if err := b.DB.Pool.QueryRow(ctx, `select exists (select from pg_roles where rolname = $1), to_regnamespace($1) is not null,
		to_regclass('core.'||$2) is not null`, l.Role, tenant.PartitionName("events", l.Role)).Scan(&roleExists, &schemaExists, &partitionExists); err != nil {
		t.Fatal(err)
	}
	if roleExists || schemaExists || !partitionExists {
		t.Errorf("after Remove: role exists %v, schema exists %v, partition exists %v; want false, false, true (the data stays)", roleExists, schemaExists, partitionExists)
	}

	// Added again, the customer gets its login name, schema and partitions back, with a new password.
	again := b.Add(t, "cus_0002", tenant.Limits{})
	if again.Role != l.Role || again.Password == l.Password {
		t.Errorf("re-added login %s (same password %v), want %s with a new password", again.Role, again.Password == l.Password, l.Role)
	}
	var n int64
	if err := b.Connect(t, again).QueryRow(ctx, `select count(*) from events`).Scan(&n); err != nil || n != 80 {
		t.Errorf("re-added tenant reads %d events (%v), want 80", n, err)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestRemoveWhateverTheTenantDid: a tenant that set default privileges of its own (which makes DROP ROLE fail
// with "objects depend on it") is still removed, with nothing left behind.
func TestRemoveWhateverTheTenantDid(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	l := b.Add(t, "cus_0001", tenant.Limits{})
	conn := b.Connect(t, l)
	for _, q := range []string{
		"set default_transaction_read_only = off",
		"alter default privileges grant select on tables to public",
		"alter default privileges grant execute on functions to public",
		"alter role " + pgx.Identifier{l.Role}.Sanitize() + " set work_mem = '4GB'",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close(ctx)
	if _, err := tenant.Remove(ctx, b.Runner, "cus_0001"); err != nil {
		t.Fatalf("Remove after the tenant set default privileges: %v", err)
	}
	var left int64
	if err := b.DB.Pool.QueryRow(ctx, `select (select count(*) from pg_roles where rolname = $1) + (select count(*) from pg_default_acl where defaclrole::regrole::text = $1)`, l.Role).Scan(&left); err != nil {
		// the role is gone, so its oid no longer casts to a name: count by missing role
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d objects of the removed login left", left)
	}
}

func TestRotatePassword(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	l := b.Add(t, "cus_0001", tenant.Limits{})

	pw, err := tenant.Rotate(ctx, b.Runner, "cus_0001", "")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := b.TryConnect(l); err == nil {
		c.Close(ctx)
		t.Error("the old password still logs in")
	}
	l.Password = pw
	b.Connect(t, l)

	mine := "my-own-password-0123456789"
	if _, err := tenant.Rotate(ctx, b.Runner, "cus_0001", mine); err != nil {
		t.Fatal(err)
	}
	l.Password = mine
	b.Connect(t, l)

	// The password never reaches the server as text: only its SCRAM verifier.
	var stored string
	if err := b.DB.Pool.QueryRow(ctx, `select rolpassword from pg_authid where rolname = $1`, l.Role).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "SCRAM-SHA-256$4096:") {
		t.Errorf("stored password = %q, want a SCRAM-SHA-256 verifier", stored)
	}
	if _, err := tenant.Rotate(ctx, b.Runner, "cus_0009", ""); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("Rotate(no tenant) error = %v, want ErrNotFound", err)
	}
}

func TestEndpointURI(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig("postgres://elt_runner@/elt?host=/tmp/run&port=5433")
	if err != nil {
		t.Fatal(err)
	}
	e := tenant.EndpointFrom(cfg)
	tests := []struct {
		name, format, password, sslmode, want string
	}{
		{"SQLAlchemyWithPassword", tenant.FormatSQLAlchemy, "p@ss/word", "", "postgresql+psycopg2://tenant_1:p%40ss%2Fword@127.0.0.1:5433/elt"},
		{"SQLAlchemyWithoutPassword", tenant.FormatSQLAlchemy, "", "require", "postgresql+psycopg2://tenant_1@127.0.0.1:5433/elt?sslmode=require"},
		{"Libpq", tenant.FormatLibpq, "pw", "", "postgresql://tenant_1:pw@127.0.0.1:5433/elt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e
			e.SSLMode = tt.sslmode
			if got := e.URI(tt.format, "tenant_1", tt.password); got != tt.want {
				t.Errorf("URI = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestReportAsTenantEqualsOwner: the project's report query, run as each tenant's own login, reads what the
// owner's query reads for that customer from the private tables, and customers' numbers differ.
func TestReportAsTenantEqualsOwner(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	seen := map[string]string{}
	for _, c := range tenanttest.Customers {
		conn := b.Connect(t, b.Add(t, c, tenant.Limits{}))
		rep, err := tenant.RunReport(ctx, b.DB.Project, conn, b.Runner, c, 7)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rep.Owner, rep.Tenant); diff != "" {
			t.Errorf("%s: report as tenant (-owner +tenant):\n%s", c, diff)
		}
		if len(rep.Tenant) != 6 || rep.Tenant[2][0] != "events" {
			t.Fatalf("%s: report rows %v, want period, active users, events and 3 features", c, rep.Tenant)
		}
		events := rep.Tenant[2][1]
		if other, ok := seen[events]; ok {
			t.Errorf("%s and %s read the same event count %s", c, other, events)
		}
		seen[events] = c
	}
}

func TestSetLimitsRestoresDefaults(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	l := b.Add(t, "cus_0001", tenant.Limits{})
	conn := b.Connect(t, l)
	// A login may reset its own defaults.
	for _, q := range []string{"set default_transaction_read_only = off", "alter role " + pgx.Identifier{l.Role}.Sanitize() + " reset all"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tenant.SetLimits(ctx, b.Runner, b.Layer, "cus_0001", tenant.Limits{ConnectionLimit: 3, StatementTimeout: 5 * time.Second, TimeZone: "Europe/Paris"}); err != nil {
		t.Fatal(err)
	}
	limit, s := settings(t, b, l.Role)
	want := []string{"statement_timeout=5000ms", "idle_in_transaction_session_timeout=60000ms", "temp_file_limit=1048576kB",
		"TimeZone=Europe/Paris", "search_path=" + l.Role, "default_transaction_read_only=on"}
	if diff := cmp.Diff(sortedCopy(want), sortedCopy(s)); diff != "" || limit != 3 {
		t.Errorf("connection limit %d, want 3; settings (-want +got):\n%s", limit, diff)
	}
	if _, err := tenant.SetLimits(ctx, b.Runner, b.Layer, "cus_0001", tenant.Limits{TimeZone: "Mars/Olympus"}); err == nil {
		t.Error("SetLimits accepted an unknown time zone")
	}
}

// TestTimeZonePinned: a tenant's sessions are in its login's TimeZone whatever the server's or the
// database's default, so a BI tool's date_trunc buckets do not move.
func TestTimeZonePinned(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	l := b.Add(t, "cus_0001", tenant.Limits{})
	if _, err := b.DB.Pool.Exec(ctx, "alter database "+pgx.Identifier{b.DB.Name}.Sanitize()+" set timezone = 'America/New_York'"); err != nil {
		t.Fatal(err)
	}
	var tz string
	if err := b.Connect(t, l).QueryRow(ctx, "show timezone").Scan(&tz); err != nil || tz != "UTC" {
		t.Errorf("tenant session TimeZone = %q (%v), want UTC", tz, err)
	}
}

// TestSessionsFollowCustomersZone: without --time-zone, a login's sessions default to its customer's time zone
// (tenants: time_zone), and elt tenant limits picks up a zone that changed since.
func TestSessionsFollowCustomersZone(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	zoneOf := func(l tenanttest.Login) string {
		var tz string
		if err := b.Connect(t, l).QueryRow(ctx, "show timezone").Scan(&tz); err != nil {
			t.Fatal(err)
		}
		return tz
	}
	if _, err := b.DB.Pool.Exec(ctx, "update core.customers set time_zone = 'Asia/Kolkata' where customer_id = 'cus_0002'"); err != nil {
		t.Fatal(err)
	}
	in, utc := b.Add(t, "cus_0002", tenant.Limits{}), b.Add(t, "cus_0003", tenant.Limits{})
	if got := []string{zoneOf(in), zoneOf(utc)}; !slices.Equal(got, []string{"Asia/Kolkata", "UTC"}) {
		t.Errorf("session zones of cus_0002 (Asia/Kolkata) and cus_0003 (none) = %v", got)
	}
	if _, err := b.DB.Pool.Exec(ctx, "update core.customers set time_zone = 'Australia/Adelaide' where customer_id = 'cus_0002'"); err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.SetLimits(ctx, b.Runner, b.Layer, "cus_0002", tenant.Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := zoneOf(in); got != "Australia/Adelaide" {
		t.Errorf("after the customer's zone changed and limits were set again: %s, want Australia/Adelaide", got)
	}
}

// TestSyncFollowsDeclarations: when the declarations change (a published column dropped from elt.yaml), Sync
// rebuilds every tenant's views, and only the tenants that need it.
func TestSyncFollowsDeclarations(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	l := b.Add(t, "cus_0001", tenant.Limits{})
	b.Add(t, "cus_0002", tenant.Limits{})
	res, err := tenant.Sync(ctx, b.Runner, b.Layer, false, nil)
	if err != nil || res.Tenants != 2 || res.Rebuilt != 0 {
		t.Fatalf("Sync with nothing changed = %+v, %v; want 2 tenants, none rebuilt", res, err)
	}
	p := *b.DB.Project
	decl := *p.Tenants
	decl.Publish = append(decl.Publish[:0:0], decl.Publish...)
	events := decl.Publish[2]
	events.Columns = events.Columns[:len(events.Columns)-1] // properties no longer published
	decl.Publish[2] = events
	p.Tenants = &decl
	layer, err := tenant.LoadLayer(ctx, b.Runner, &p)
	if err != nil {
		t.Fatal(err)
	}
	res, err = tenant.Sync(ctx, b.Runner, layer, false, nil)
	if err != nil || res.Rebuilt != 2 {
		t.Fatalf("Sync after a change = %+v, %v; want 2 rebuilt", res, err)
	}
	_, err = b.Connect(t, l).Exec(ctx, "select properties from events")
	if sqlstate(err) != "42703" {
		t.Errorf("select of the dropped column: %v, want 42703 undefined_column", err)
	}
	if vs, err := tenant.Check(ctx, b.Runner, layer); err != nil || len(vs) != 0 {
		t.Errorf("Check after Sync: %v, %v", vs, err)
	}
}
