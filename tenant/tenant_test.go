package tenant_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
)

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
	got, _, err := tenant.Add(ctx, b.Runner, "cus_0002", tenant.AddOptions{})
	if !errors.Is(err, tenant.ErrExists) || got.Role != l.Role {
		t.Errorf("second Add = %q, %v; want ErrExists with role %s", got.Role, err, l.Role)
	}
	// An unknown customer is refused unless allowed.
	if _, _, err := tenant.Add(ctx, b.Runner, "cus_9999", tenant.AddOptions{}); !errors.Is(err, tenant.ErrUnknownCustomer) {
		t.Errorf("Add(unknown) error = %v, want ErrUnknownCustomer", err)
	}
	if _, _, err := tenant.Add(ctx, b.Runner, "cus_0001", tenant.AddOptions{Password: "short"}); err == nil {
		t.Error("Add accepted a short password")
	}

	conn := b.Connect(t, l)
	var settings []string
	if err := b.DB.Pool.QueryRow(ctx, `select rolconfig from pg_roles where rolname = $1`, l.Role).Scan(&settings); err != nil {
		t.Fatal(err)
	}
	want := []string{"statement_timeout=60000", "idle_in_transaction_session_timeout=60000", "default_transaction_read_only=on", "search_path=analytics"}
	if diff := cmp.Diff(want, settings); diff != "" {
		t.Errorf("role settings (-want +got):\n%s", diff)
	}

	ts, err := tenant.List(ctx, b.Runner)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].CustomerID != "cus_0002" || ts[0].Role != l.Role || ts[0].Sessions != 1 || ts[0].LastLogin == nil {
		t.Errorf("List = %+v, want cus_0002 with 1 open session", ts)
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
	var exists bool
	if err := b.DB.Pool.QueryRow(ctx, `select exists (select from pg_roles where rolname = $1)`, l.Role).Scan(&exists); err != nil || exists {
		t.Errorf("role %s still exists after Remove (%v)", l.Role, err)
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

func TestUsageAsTenantEqualsOwner(t *testing.T) {
	t.Parallel()
	b := tenanttest.New(t)
	ctx := context.Background()
	seen := map[int64]string{}
	for _, c := range tenanttest.Customers {
		conn := b.Connect(t, b.Add(t, c, tenant.Limits{}))
		got, err := tenant.TenantUsage(ctx, conn, 7, 3)
		if err != nil {
			t.Fatal(err)
		}
		want, err := tenant.OwnerUsage(ctx, b.Runner, c, 7, 3)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: usage as tenant (-owner +tenant):\n%s", c, diff)
		}
		if got.Events == 0 || len(got.TopFeatures) != 3 {
			t.Errorf("%s: usage %+v, want events and 3 features", c, got)
		}
		if other, ok := seen[got.Events]; ok {
			t.Errorf("%s and %s read the same event count %d", c, other, got.Events)
		}
		seen[got.Events] = c
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
	if err := tenant.SetLimits(ctx, b.Runner, "cus_0001", tenant.Limits{ConnectionLimit: 3, StatementTimeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	var limit int
	var settings []string
	if err := b.DB.Pool.QueryRow(ctx, `select rolconnlimit, rolconfig from pg_roles where rolname = $1`, l.Role).Scan(&limit, &settings); err != nil {
		t.Fatal(err)
	}
	want := []string{"statement_timeout=5000", "idle_in_transaction_session_timeout=60000", "default_transaction_read_only=on", "search_path=analytics"}
	if diff := cmp.Diff(want, settings); diff != "" || limit != 3 {
		t.Errorf("connection limit %d, want 3; settings (-want +got):\n%s", limit, diff)
	}
}
