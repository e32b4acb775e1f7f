package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/tenant"
)

// TenantCmd manages customers' login roles.
type TenantCmd struct {
	Add            TenantAddCmd    `cmd:"" help:"Create the login role of a customer, which reads only that customer's rows in schema analytics."`
	List           TenantListCmd   `cmd:"" help:"List tenant logins: customer, role, created, password set, open sessions."`
	Remove         TenantRemoveCmd `cmd:"" help:"Cut a customer's access at once: unmap and lock its login, end its sessions, drop the role."`
	RotatePassword TenantRotateCmd `cmd:"" name:"rotate-password" help:"Set a new password for a customer's login (open sessions stay open)."`
	Limits         TenantLimitsCmd `cmd:"" help:"Set a customer's login limits and session defaults again (after a change, or when elt tenant check says the tenant reset them)."`
	URI            TenantURICmd    `cmd:"" name:"uri" help:"Print the URI a Superset admin pastes as a database's SQLAlchemy URI (or a libpq URI)."`
	Check          TenantCheckCmd  `cmd:"" help:"Verify isolation on this database: roles, grants, views, functions, PUBLIC, and per-tenant row counts. Exit 1 on any violation."`
	Report         TenantReportCmd `cmd:"" help:"Log in as a customer's login and print its recent usage, next to what the owner reads for that customer."`
}

// Help is the long help of elt tenant.
func (c *TenantCmd) Help() string {
	return `Each customer gets one PostgreSQL login with an opaque name (tenant_ and 16 hex digits), mapped to its
customer in the private table elt.tenants. The login can read only the views of schema analytics, and every
view keeps only the rows of the customer mapped to the session's login (session_user), whatever SQL the
client sends: no setting, SET ROLE or set_config changes it. Superset, Metabase, psql or Excel connect with
the URI of elt tenant uri.

Run these commands as elt_runner (created by elt migrate), or a superuser. Passwords are generated (or read
with --password-from), printed once or written with --password-to, and never stored by elt; the server
receives only their SCRAM verifier.

A typical onboarding: elt tenant add cus_0042 --password-to cus_0042.pw, then
elt tenant uri cus_0042 --password-from cus_0042.pw for the Superset admin. Run elt tenant check after every
migration: it exits 1 on anything that would let a tenant read what it should not. See docs/tenants.md and
docs/superset.md.`
}

// readPassword reads a password from path ("-": standard input), without its trailing newline.
func readPassword(path string) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("read password: %s is empty", path)
	}
	return pw, nil
}

// writePassword writes pw to path, readable by its owner only.
func writePassword(path, pw string) error {
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("write password: %w", err)
	}
	return os.Chmod(path, 0o600)
}

// PasswordFlags choose where a password comes from or goes to.
type PasswordFlags struct {
	PasswordFrom string `name:"password-from" xor:"password" placeholder:"FILE" help:"Read the password from FILE (- for standard input) instead of generating one."`
	PasswordTo   string `name:"password-to" xor:"password" placeholder:"FILE" help:"Write the generated password to FILE (mode 0600) instead of printing it."`
}

func (p PasswordFlags) password() (string, error) {
	if p.PasswordFrom == "" {
		return "", nil
	}
	return readPassword(p.PasswordFrom)
}

// deliver prints or saves a new password.
func (p PasswordFlags) deliver(pw string) error {
	if p.PasswordFrom != "" {
		return nil // the caller has it
	}
	if p.PasswordTo != "" {
		if err := writePassword(p.PasswordTo, pw); err != nil {
			return err
		}
		fmt.Printf("password written to %s\n", p.PasswordTo)
		return nil
	}
	fmt.Printf("password (shown once, elt does not keep it): %s\n", pw)
	return nil
}

// TenantAddCmd creates a tenant login.
type TenantAddCmd struct {
	Customer string `arg:"" help:"Customer id, as in core.customers (e.g. cus_0001)."`
	PasswordFlags
	IfNotExists  bool `name:"if-not-exists" help:"Exit 0 when the customer already has a login (with --password-to and that file missing, set a new password and write it there)."`
	AllowUnknown bool `name:"allow-unknown" help:"Create the login even if core.customers has no such customer yet."`
	LimitsFlags
}

// LimitsFlags are a tenant login's limits.
type LimitsFlags struct {
	ConnectionLimit          int           `name:"connection-limit" default:"10" help:"Most concurrent sessions of the login (${default}); the tenant cannot change it."`
	StatementTimeout         time.Duration `name:"statement-timeout" default:"60s" help:"Default statement_timeout of the login (${default}); the tenant can change it (see docs/tenants.md)."`
	IdleInTransactionTimeout time.Duration `name:"idle-in-transaction-timeout" default:"60s" help:"Default idle_in_transaction_session_timeout of the login (${default}); the tenant can change it (see docs/tenants.md)."`
}

func (f LimitsFlags) limits() tenant.Limits {
	return tenant.Limits{
		ConnectionLimit:          f.ConnectionLimit,
		StatementTimeout:         f.StatementTimeout,
		IdleInTransactionTimeout: f.IdleInTransactionTimeout,
	}
}

// Run creates the login and prints or saves its password.
func (c *TenantAddCmd) Run(ctx context.Context, g *Globals, log *slog.Logger) error {
	pw, err := c.password()
	if err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	t, pw, err := tenant.Add(ctx, pool, c.Customer, tenant.AddOptions{
		Password:             pw,
		AllowUnknownCustomer: c.AllowUnknown,
		Limits:               c.limits(),
	})
	if errors.Is(err, tenant.ErrExists) && c.IfNotExists {
		fmt.Printf("tenant %s exists: login %s\n", c.Customer, t.Role)
		if c.PasswordTo == "" {
			return nil
		}
		if _, serr := os.Stat(c.PasswordTo); serr == nil {
			return nil
		}
		pw, err := tenant.Rotate(ctx, pool, c.Customer, "")
		if err != nil {
			return err
		}
		log.Info("password file missing: set a new password", "customer", c.Customer, "file", c.PasswordTo)
		return c.deliver(pw)
	}
	if err != nil {
		return err
	}
	fmt.Printf("added tenant %s: login %s\n", t.CustomerID, t.Role)
	return c.deliver(pw)
}

// TenantListCmd lists tenant logins.
type TenantListCmd struct{}

// Run prints the tenants as a table.
func (c *TenantListCmd) Run(ctx context.Context, g *Globals) error {
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	ts, err := tenant.List(ctx, pool)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CUSTOMER\tROLE\tCREATED\tPASSWORD SET\tSESSIONS\tLAST LOGIN")
	const layout = "2006-01-02 15:04:05Z07:00"
	for _, t := range ts {
		last := "unknown (no open session)"
		if t.LastLogin != nil {
			last = t.LastLogin.UTC().Format(layout)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", t.CustomerID, t.Role, t.CreatedAt.UTC().Format(layout),
			t.PasswordSetAt.UTC().Format(layout), t.Sessions, last)
	}
	return w.Flush()
}

// TenantRemoveCmd removes tenant logins.
type TenantRemoveCmd struct {
	Customers []string `arg:"" name:"customer" help:"Customer ids."`
	IfExists  bool     `name:"if-exists" help:"Exit 0 for a customer without a login."`
}

// Run removes each customer's login.
func (c *TenantRemoveCmd) Run(ctx context.Context, g *Globals) error {
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	for _, cu := range c.Customers {
		role, err := tenant.Remove(ctx, pool, cu)
		if errors.Is(err, tenant.ErrNotFound) && c.IfExists {
			fmt.Printf("tenant %s: no login\n", cu)
			continue
		}
		if err != nil {
			return err
		}
		fmt.Printf("removed tenant %s: login %s dropped\n", cu, role)
	}
	return nil
}

// TenantRotateCmd sets a new password.
type TenantRotateCmd struct {
	Customer string `arg:"" help:"Customer id."`
	PasswordFlags
}

// Run sets the password and prints or saves it.
func (c *TenantRotateCmd) Run(ctx context.Context, g *Globals) error {
	pw, err := c.password()
	if err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	pw, err = tenant.Rotate(ctx, pool, c.Customer, pw)
	if err != nil {
		return err
	}
	fmt.Printf("new password set for tenant %s\n", c.Customer)
	return c.deliver(pw)
}

// TenantLimitsCmd sets a login's limits.
type TenantLimitsCmd struct {
	Customer string `arg:"" help:"Customer id."`
	LimitsFlags
}

// Run sets the limits.
func (c *TenantLimitsCmd) Run(ctx context.Context, g *Globals) error {
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := tenant.SetLimits(ctx, pool, c.Customer, c.limits()); err != nil {
		return err
	}
	fmt.Printf("limits of tenant %s set: %d connections, statement_timeout %s, idle_in_transaction_session_timeout %s\n",
		c.Customer, c.ConnectionLimit, c.StatementTimeout, c.IdleInTransactionTimeout)
	return nil
}

// EndpointFlags say where tenants connect, when it differs from elt's own connection.
type EndpointFlags struct {
	Host    string `name:"host" env:"ELT_TENANT_HOST" placeholder:"HOST" help:"Host tenants connect to (default: elt's own host; 127.0.0.1 when elt uses a Unix socket)."`
	Port    int    `name:"port" env:"ELT_TENANT_PORT" placeholder:"PORT" help:"Port tenants connect to (default: elt's own)."`
	DBName  string `name:"dbname" env:"ELT_TENANT_DBNAME" placeholder:"NAME" help:"Database tenants connect to (default: elt's own)."`
	SSLMode string `name:"sslmode" env:"ELT_TENANT_SSLMODE" placeholder:"MODE" help:"libpq sslmode to put in the URI (default: none, i.e. prefer)."`
}

func (f EndpointFlags) endpoint(cfg *pgx.ConnConfig) tenant.Endpoint {
	e := tenant.EndpointFrom(cfg)
	if f.Host != "" {
		e.Host = f.Host
	}
	if f.Port != 0 {
		e.Port = f.Port
	}
	if f.DBName != "" {
		e.Database = f.DBName
	}
	e.SSLMode = f.SSLMode
	return e
}

// TenantURICmd prints a tenant's connection URI.
type TenantURICmd struct {
	Customer     string `arg:"" help:"Customer id."`
	PasswordFrom string `name:"password-from" placeholder:"FILE" help:"Put the password read from FILE (- for standard input) in the URI; without it the URI has none and Superset asks for it."`
	Format       string `name:"format" enum:"sqlalchemy,libpq" default:"sqlalchemy" help:"sqlalchemy (postgresql+psycopg2://, for Superset) or libpq (postgresql://, for psql and other tools) (${default})."`
	EndpointFlags
}

// Run prints the URI.
func (c *TenantURICmd) Run(ctx context.Context, g *Globals) error {
	pw, err := PasswordFlags{PasswordFrom: c.PasswordFrom}.password()
	if err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	t, err := tenant.Get(ctx, pool, c.Customer)
	if err != nil {
		return err
	}
	fmt.Println(c.endpoint(pool.Config().ConnConfig).URI(c.Format, t.Role, pw))
	return nil
}

// TenantCheckCmd verifies isolation.
type TenantCheckCmd struct {
	SkipCounts bool `name:"skip-counts" help:"Skip the per-tenant row counts (they create a short-lived probe login and connect as it)."`
}

// Run prints every violation and fails if there is one.
func (c *TenantCheckCmd) Run(ctx context.Context, g *Globals) error {
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	vs, err := tenant.Check(ctx, pool, tenant.CheckOptions{SkipCounts: c.SkipCounts})
	for _, v := range vs {
		fmt.Printf("VIOLATION %s\n", v)
	}
	if err != nil {
		return err
	}
	if len(vs) > 0 {
		return fmt.Errorf("tenant check: %d violation(s)", len(vs))
	}
	fmt.Println("tenant check: ok")
	return nil
}

// TenantReportCmd prints what a tenant's own login reads.
type TenantReportCmd struct {
	Customer     string `arg:"" help:"Customer id."`
	PasswordFrom string `name:"password-from" required:"" placeholder:"FILE" help:"The login's password, read from FILE (- for standard input)."`
	Days         int    `name:"days" default:"7" help:"Days to cover, ending on the customer's latest day with data (${default})."`
	Top          int    `name:"top" default:"3" help:"Features to list (${default})."`
	EndpointFlags
}

// Run logs in as the tenant, reads its usage, compares it with the owner's, and prints both.
func (c *TenantReportCmd) Run(ctx context.Context, g *Globals) error {
	pw, err := readPassword(c.PasswordFrom)
	if err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	return report(ctx, pool, c, pw)
}

func report(ctx context.Context, pool *pgxpool.Pool, c *TenantReportCmd, pw string) error {
	t, err := tenant.Get(ctx, pool, c.Customer)
	if err != nil {
		return err
	}
	cfg, err := c.endpoint(pool.Config().ConnConfig).ConnConfig(t.Role, pw)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", c.Customer, err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("log in as tenant %s (%s) at %s:%d: %w", c.Customer, t.Role, cfg.Host, cfg.Port, unwrapConnect(err))
	}
	defer conn.Close(ctx)
	got, err := tenant.TenantUsage(ctx, conn, c.Days, c.Top)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", c.Customer, err)
	}
	want, err := tenant.OwnerUsage(ctx, pool, c.Customer, c.Days, c.Top)
	if err != nil {
		return fmt.Errorf("owner view of %s: %w", c.Customer, err)
	}
	fmt.Printf("%s, read as its own login %s:\n", c.Customer, t.Role)
	if got.To.IsZero() {
		fmt.Println("  no usage data yet")
	} else {
		fmt.Printf("  last %d days with data: %s to %s\n", c.Days, got.From.Format("2006-01-02"), got.To.Format("2006-01-02"))
		fmt.Printf("  active users: %d   events: %d\n", got.ActiveUsers, got.Events)
		var fs []string
		for _, f := range got.TopFeatures {
			fs = append(fs, fmt.Sprintf("%s (%d)", f.Feature, f.Events))
		}
		fmt.Printf("  top features: %s\n", strings.Join(fs, ", "))
	}
	if !sameUsage(got, want) {
		fmt.Printf("  the owner reads different numbers for %s: active users %d, events %d, top %v\n", c.Customer, want.ActiveUsers, want.Events, want.TopFeatures)
		return fmt.Errorf("tenant %s reads different numbers than the owner", c.Customer)
	}
	fmt.Printf("  the owner reads the same numbers for %s from the private marts\n", c.Customer)
	return nil
}

func sameUsage(a, b tenant.Usage) bool {
	if !a.From.Equal(b.From) || !a.To.Equal(b.To) || a.ActiveUsers != b.ActiveUsers || a.Events != b.Events || len(a.TopFeatures) != len(b.TopFeatures) {
		return false
	}
	for i := range a.TopFeatures {
		if a.TopFeatures[i] != b.TopFeatures[i] {
			return false
		}
	}
	return true
}
