package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/project"
	"github.com/elt-dev/elt/refresh"
	"github.com/elt-dev/elt/tenant"
)

// TenantCmd manages customers' logins.
type TenantCmd struct {
	Add            TenantAddCmd    `cmd:"" help:"Create the login of a customer and its schema, which holds only that customer's data."`
	List           TenantListCmd   `cmd:"" help:"List tenant logins: customer, role, created, password set, open sessions."`
	Remove         TenantRemoveCmd `cmd:"" help:"Cut a customer's access at once: lock its login, end its sessions, drop the login and its schema (--purge: and its data)."`
	RotatePassword TenantRotateCmd `cmd:"" name:"rotate-password" help:"Set a new password for a customer's login (open sessions stay open)."`
	Limits         TenantLimitsCmd `cmd:"" help:"Set a customer's login limits and session defaults again (after a change, or when elt tenant check says the tenant reset them)."`
	Sync           TenantSyncCmd   `cmd:"" help:"Rebuild the tenants' schemas, partitions and views where they differ from the project's declarations (elt migrate does it too)."`
	URI            TenantURICmd    `cmd:"" name:"uri" help:"Print the URI a Superset admin pastes as a database's SQLAlchemy URI (or a libpq URI)."`
	Check          TenantCheckCmd  `cmd:"" help:"Verify isolation on this database: roles, logins, every privilege of tenants and PUBLIC, catalog statistics, and each tenant's objects. Exit 1 on any violation."`
	Guard          TenantGuardCmd  `cmd:"" help:"Run beside the database: cancel and end tenant sessions over their statement, idle-in-transaction and transaction time limits, which tenants cannot lift."`
	Report         TenantReportCmd `cmd:"" help:"Log in as a customer's login and run the project's report query, next to what the owner reads for that customer."`
}

// Help is the long help of elt tenant.
func (c *TenantCmd) Help() string {
	return `Each customer gets one PostgreSQL login with an opaque name (tenant_ and 16 hex digits) and a schema of the
same name, the only one on its search path. For every relation the project publishes (elt.yaml, tenants:
publish:) the schema holds a view of the declared columns of the customer's own partition of the table it
reads: whatever SQL the client sends, it reads only that customer's data, and the planner plans it with that
customer's statistics alone. Superset, Metabase, psql or Excel connect with the URI of elt tenant uri.

Run these commands as elt_runner (created by elt migrate), or a superuser. Passwords are generated (or read
with --password-from), printed once or written with --password-to, and never stored by elt; the server
receives only their SCRAM verifier.

A typical onboarding: elt tenant add cus_0042 --password-to cus_0042.pw, then
elt tenant uri cus_0042 --password-from cus_0042.pw for the Superset admin. Run elt tenant check after every
migration: it exits 1 on anything that would let a tenant reach or observe what it should not; keep
elt tenant guard running beside the database. See docs/tenants.md and docs/superset.md.`
}

// canonical returns customer as the database prints a value of the project's tenant key (0042 is 42 for an
// integer key), the form elt.tenants keeps; customer itself when the project cannot say.
func canonical(ctx context.Context, g *Globals, pool *pgxpool.Pool, customer string) string {
	_, key := layerAndKey(ctx, g, pool, customer)
	return key
}

// layerAndKey is the project's tenant layer (nil without one) and customer as canonical returns it.
func layerAndKey(ctx context.Context, g *Globals, pool *pgxpool.Pool, customer string) (*tenant.Layer, string) {
	_, l, err := layer(ctx, g, pool)
	if err != nil {
		return nil, customer
	}
	if c, err := l.Canonical(ctx, pool, customer); err == nil {
		return l, c
	}
	return l, customer
}

// layer loads the project and its tenant layer.
func layer(ctx context.Context, g *Globals, pool *pgxpool.Pool) (*project.Project, *tenant.Layer, error) {
	p, err := g.LoadProject()
	if err != nil {
		return nil, nil, err
	}
	l, err := tenant.LoadLayer(ctx, pool, p)
	if err != nil {
		return p, nil, err
	}
	return p, l, nil
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
	Customer string `arg:"" help:"Customer id: its value of the project's tenant key (e.g. cus_0001)."`
	PasswordFlags
	IfNotExists  bool `name:"if-not-exists" help:"Exit 0 when the customer already has a login (with --password-to and that file missing, set a new password and write it there)."`
	AllowUnknown bool `name:"allow-unknown" help:"Create the login even if the project's customers relation (elt.yaml tenants: customers:) has no such customer yet."`
	LimitsFlags
}

// LimitsFlags are a tenant login's limits.
type LimitsFlags struct {
	ConnectionLimit          int           `name:"connection-limit" default:"10" help:"Most concurrent sessions of the login (${default}); the tenant cannot change it."`
	StatementTimeout         time.Duration `name:"statement-timeout" default:"60s" help:"Longest statement (${default}): the login's statement_timeout, and enforced by elt tenant guard when the tenant lifts it."`
	IdleInTransactionTimeout time.Duration `name:"idle-in-transaction-timeout" default:"60s" help:"Longest idle time inside a transaction (${default}), likewise."`
	TransactionTimeout       time.Duration `name:"transaction-timeout" default:"15m" help:"Longest life of a transaction and its snapshot (${default}), enforced by elt tenant guard."`
	TempFileLimit            string        `name:"temp-file-limit" default:"1GB" help:"Most temporary file space one session may use (${default}; kB, MB, GB); a superuser setting the tenant cannot lift."`
	TimeZone                 string        `name:"time-zone" placeholder:"ZONE" help:"TimeZone of the login's sessions, which date_trunc, casts to date and printed timestamps follow (IANA name, e.g. Asia/Kolkata). Default: the customer's own zone (tenants: time_zone: in elt.yaml), else UTC."`
}

func (f LimitsFlags) limits() (tenant.Limits, error) {
	kb, err := parseKB(f.TempFileLimit)
	if err != nil {
		return tenant.Limits{}, fmt.Errorf("--temp-file-limit: %w", err)
	}
	return tenant.Limits{
		ConnectionLimit:          f.ConnectionLimit,
		StatementTimeout:         f.StatementTimeout,
		IdleInTransactionTimeout: f.IdleInTransactionTimeout,
		TransactionTimeout:       f.TransactionTimeout,
		TempFileLimit:            kb,
		TimeZone:                 f.TimeZone,
	}, nil
}

// parseKB reads a size such as 1GB, 512MB or 2048kB (PostgreSQL's units) as kB.
func parseKB(s string) (int64, error) {
	units := []struct {
		suffix string
		kb     int64
	}{{"TB", 1 << 30}, {"GB", 1 << 20}, {"MB", 1 << 10}, {"kB", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
			if err != nil || v <= 0 {
				break
			}
			return v * u.kb, nil
		}
	}
	return 0, fmt.Errorf("%q is not a size such as 1GB, 512MB or 2048kB", s)
}

// Run creates the login and prints or saves its password.
func (c *TenantAddCmd) Run(ctx context.Context, g *Globals, log *slog.Logger) error {
	pw, err := c.password()
	if err != nil {
		return err
	}
	limits, err := c.limits()
	if err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, l, err := layer(ctx, g, pool)
	if err != nil {
		return err
	}
	opts := tenant.AddOptions{Password: pw, AllowUnknownCustomer: c.AllowUnknown, Limits: limits}
	if !c.IfNotExists {
		t, pw, err := tenant.Add(ctx, pool, l, c.Customer, opts)
		if err != nil {
			return err
		}
		fmt.Printf("added tenant %s: login and schema %s\n", t.Key, t.Role)
		return c.deliver(pw)
	}
	// An existing login gets a new password only when its password file is gone.
	lost := false
	if c.PasswordTo != "" {
		_, serr := os.Stat(c.PasswordTo)
		lost = serr != nil
	}
	t, pw, created, err := tenant.Ensure(ctx, pool, l, c.Customer, opts, lost)
	switch {
	case err != nil:
		return err
	case created:
		fmt.Printf("added tenant %s: login and schema %s\n", t.Key, t.Role)
		return c.deliver(pw)
	}
	fmt.Printf("tenant %s exists: login %s\n", c.Customer, t.Role)
	if pw == "" {
		return nil
	}
	log.Info("password file missing: set a new password", "customer", c.Customer, "file", c.PasswordTo)
	return c.deliver(pw)
}

// TenantListCmd lists tenant logins.
type TenantListCmd struct{}

// Run prints the tenants as a table.
func (c *TenantListCmd) Run(ctx context.Context, g *Globals, pool *pgxpool.Pool) error {
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
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", t.Key, t.Role, t.CreatedAt.UTC().Format(layout),
			t.PasswordSetAt.UTC().Format(layout), t.Sessions, last)
	}
	return w.Flush()
}

// TenantRemoveCmd removes tenant logins.
type TenantRemoveCmd struct {
	Customers []string `arg:"" name:"customer" help:"Customer ids."`
	IfExists  bool     `name:"if-exists" help:"Exit 0 for a customer without a login."`
	Purge     bool     `name:"purge" help:"Also delete the customer's data everywhere elt keeps it (its partitions, its rows in the project's tables, its raw records in staging) and refuse it from then on; elt.purges records when, by whom and how many rows."`
}

// Run removes (and purges) each customer.
func (c *TenantRemoveCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, pool *pgxpool.Pool) error {
	var p *project.Project
	var l *tenant.Layer
	var err error
	if c.Purge {
		if p, l, err = layer(ctx, g, pool); err != nil {
			return err
		}
	}
	for _, cu := range c.Customers {
		cu = canonical(ctx, g, pool, cu)
		role, err := tenant.Remove(ctx, pool, cu)
		switch {
		case errors.Is(err, tenant.ErrNotFound) && (c.IfExists || c.Purge):
			fmt.Printf("tenant %s: no login\n", cu)
		case err != nil:
			return err
		default:
			fmt.Printf("removed tenant %s: login and schema %s dropped\n", cu, role)
		}
		if !c.Purge {
			continue
		}
		counts, err := tenant.Purge(ctx, pool, l, cu)
		if err != nil {
			return err
		}
		var parts []string
		var total int64
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
			total += counts[k]
		}
		fmt.Printf("purged tenant %s: %d rows deleted (%s); recorded in elt.purges\n", cu, total, strings.Join(parts, ", "))
		if err := refresh.RefreshViews(ctx, pool, p.Schemas, log); err != nil {
			return fmt.Errorf("purged %s, but the project's materialized views still hold its rows until they refresh: %w", cu, err)
		}
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
	pw, err = tenant.Rotate(ctx, pool, canonical(ctx, g, pool, c.Customer), pw)
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
	if _, err := c.limits(); err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	limits, err := c.limits()
	if err != nil {
		return err
	}
	l, customer := layerAndKey(ctx, g, pool, c.Customer) // without a layer (no tenants: declared), the default zone is UTC
	set, err := tenant.SetLimits(ctx, pool, l, customer, limits)
	if err != nil {
		return err
	}
	fmt.Printf("limits of tenant %s set: %d connections, statement %s, idle in transaction %s, transaction %s, temp files %s, time zone %s\n",
		c.Customer, c.ConnectionLimit, c.StatementTimeout, c.IdleInTransactionTimeout, c.TransactionTimeout, c.TempFileLimit, set.TimeZone)
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
	t, err := tenant.Get(ctx, pool, canonical(ctx, g, pool, c.Customer))
	if err != nil {
		return err
	}
	fmt.Println(c.endpoint(pool.Config().ConnConfig).URI(c.Format, t.Role, pw))
	return nil
}

// TenantCheckCmd verifies isolation.
type TenantCheckCmd struct{}

// Run prints every violation and fails if there is one.
func (c *TenantCheckCmd) Run(ctx context.Context, g *Globals, pool *pgxpool.Pool) error {
	_, l, err := layer(ctx, g, pool)
	if err != nil {
		return err
	}
	vs, err := tenant.Check(ctx, pool, l)
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

// TenantSyncCmd rebuilds the tenants' objects.
type TenantSyncCmd struct {
	Force bool `name:"force" help:"Rebuild every tenant, not only those built from other declarations."`
}

// Run syncs every tenant.
func (c *TenantSyncCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, pool *pgxpool.Pool) error {
	_, l, err := layer(ctx, g, pool)
	if err != nil {
		return err
	}
	res, err := tenant.Sync(ctx, pool, l, c.Force, log)
	if err != nil {
		return err
	}
	fmt.Printf("tenant sync: %d tenants, %d rebuilt\n", res.Tenants, res.Rebuilt)
	return nil
}

// TenantGuardCmd runs the guard.
type TenantGuardCmd struct {
	Interval time.Duration `name:"interval" default:"1s" help:"Time between two looks at the tenants' sessions (${default})."`
	Grace    time.Duration `name:"grace" default:"5s" help:"How long a cancelled statement may go on before its session is ended (${default})."`
}

// Run guards until interrupted.
func (c *TenantGuardCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, pool *pgxpool.Pool) error {
	log.Info("tenant guard started", "interval", c.Interval.String(), "grace", c.Grace.String())
	err := tenant.Guard(ctx, pool, tenant.GuardOptions{Interval: c.Interval, Grace: c.Grace, Logger: log})
	if errors.Is(err, context.Canceled) {
		log.Info("tenant guard stopped")
		return nil
	}
	return err
}

// TenantReportCmd prints what a tenant's own login reads.
type TenantReportCmd struct {
	Customer     string `arg:"" help:"Customer id."`
	PasswordFrom string `name:"password-from" required:"" placeholder:"FILE" help:"The login's password, read from FILE (- for standard input)."`
	Days         int    `name:"days" default:"7" help:"Days to cover, ending on the customer's latest day with data (${default})."`
	EndpointFlags
}

// Run logs in as the tenant, runs the project's report queries, compares them with the owner's, and prints
// both.
func (c *TenantReportCmd) Run(ctx context.Context, g *Globals) error {
	pw, err := readPassword(c.PasswordFrom)
	if err != nil {
		return err
	}
	p, err := g.LoadProject()
	if err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	t, err := tenant.Get(ctx, pool, canonical(ctx, g, pool, c.Customer))
	if err != nil {
		return err
	}
	cfg, err := c.endpoint(pool.Config().ConnConfig).ConnConfig(t.Role, pw)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", c.Customer, err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("log in as tenant %s (%s) at %s:%d: %w", c.Customer, t.Role, cfg.Host, cfg.Port, unwrapConnect(err, true))
	}
	defer conn.Close(ctx)
	rep, err := tenant.RunReport(ctx, p, conn, pool, c.Customer, c.Days)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", c.Customer, err)
	}
	fmt.Printf("%s, read as its own login %s:\n", c.Customer, t.Role)
	if len(rep.Tenant) == 0 {
		fmt.Println("  no rows")
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, r := range rep.Tenant {
		fmt.Fprintf(w, "  %s\n", strings.Join(r, "\t"))
	}
	w.Flush()
	if !rep.Same() {
		fmt.Printf("  the owner reads different rows for %s:\n", c.Customer)
		for _, r := range rep.Owner {
			fmt.Printf("    %s\n", strings.Join(r, " | "))
		}
		return fmt.Errorf("tenant %s reads different numbers than the owner", c.Customer)
	}
	fmt.Printf("  the owner reads the same rows for %s from the private tables\n", c.Customer)
	return nil
}
