// Command elt extracts a product's usage data from its HTTP export API into PostgreSQL, transforms it inside
// the database, and exposes it per customer to BI tools through login roles and row-level security.
//
// main only parses the command line and wires dependencies; every command's logic lives in a package named
// for what it does.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/jackc/pgpassfile"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/extract"
	"github.com/elt-dev/elt/migrate"
	"github.com/elt-dev/elt/project"
)

// Globals are the flags every command shares.
type Globals struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" placeholder:"URL" help:"PostgreSQL connection string (postgres://... or key=value). Empty: the libpq variables PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD/PGPASSFILE. Prefer the environment or a passfile for passwords: flags show in ps."`
	Project     string `name:"project" env:"ELT_PROJECT" placeholder:"DIR" help:"Project folder: elt.yaml, migrations/, views/ and sql/ (default: the folder of --config, else the working directory)."`
	Config      string `name:"config" env:"ELT_CONFIG" placeholder:"PATH" help:"The project's config file (default: elt.yaml in the project folder)."`
	LogFormat   string `name:"log-format" env:"ELT_LOG_FORMAT" enum:"text,json" default:"text" help:"Log format: text for people, json for cron and log collectors (${default})."`
	LogLevel    string `name:"log-level" env:"ELT_LOG_LEVEL" enum:"debug,info,warn,error" default:"info" help:"Least severe level logged (${default})."`
}

// LoadProject reads the project named by --project/ELT_PROJECT and --config/ELT_CONFIG. Its sources are not
// parsed (LoadSources): commands that never call an API do not need the sources' ${VAR}s set.
func (g *Globals) LoadProject() (*project.Project, error) {
	return project.Load(project.Locate(g.Project, g.Config))
}

// LoadSources reads the project and parses its sources.
func (g *Globals) LoadSources() (*project.Project, *extract.Config, error) {
	p, err := g.LoadProject()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := extract.ParseConfig(p.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("project config %s: %w", p.ConfigPath, err)
	}
	return p, cfg, nil
}

// Connect opens a pool to the database named by --database-url, DATABASE_URL or the PG* variables. It
// refuses a superuser's login: elt runs the project's SQL and builds the tenants' objects, and code that
// elt_runner (or whoever holds elt_owner's rights) planted in the tables it writes would run with a
// superuser's rights, SET ROLE being no boundary (the code can reset it). Only elt migrate takes a
// superuser's login (connect), for elt's own migrations.
func (g *Globals) Connect(ctx context.Context) (*pgxpool.Pool, error) {
	pool, super, err := g.connect(ctx, "")
	if err != nil {
		return nil, err
	}
	if super {
		user := pool.Config().ConnConfig.User
		pool.Close()
		return nil, fmt.Errorf("refusing to run as %s, a superuser: code in the tables elt writes would run with a superuser's rights; connect as elt_runner (DATABASE_URL=postgres://elt_runner@...; only elt migrate takes a superuser, for elt's own migrations)", user)
	}
	if err := migrated(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// ErrNotMigrated is returned by Connect on a database elt's migrations have not made.
var ErrNotMigrated = errors.New("not migrated")

// migrated checks that elt's schema is there: every command but elt migrate needs it.
func migrated(ctx context.Context, pool *pgxpool.Pool) error {
	var ok bool
	if err := pool.QueryRow(ctx, `select to_regclass('elt.runs') is not null`).Scan(&ok); err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	if !ok {
		return fmt.Errorf("database %s is %w by elt: run elt migrate first, as a superuser the first time (it creates the roles elt_owner, elt_runner and elt_tenant), then run elt as elt_runner",
			pool.Config().ConnConfig.Database, ErrNotMigrated)
	}
	return nil
}

// connect opens a pool as the configured login or, when user is not empty, as user (same server, database
// and TLS settings; its password from the passfile, PGPASSFILE or ~/.pgpass, else none), and reports whether
// that login is a superuser. A superuser's sessions start with search_path pg_catalog, pg_temp, as a startup
// parameter so that RESET ALL (which tern runs after each migration) returns to it: elt's own SQL names its
// schemas, and nothing found through "$user" or public may shadow a catalog function for it.
func (g *Globals) connect(ctx context.Context, user string) (*pgxpool.Pool, bool, error) {
	cfg, err := pgxpool.ParseConfig(g.DatabaseURL)
	if err != nil {
		// pgx errors on a malformed URL may quote it, password included: say only what is wrong.
		return nil, false, errors.New("invalid database URL (check --database-url, DATABASE_URL or PG* variables)")
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "elt"
	}
	if user != "" {
		cfg.ConnConfig.User = user
		cfg.ConnConfig.Password = passfilePassword(cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, user)
	}
	pool, err := open(ctx, cfg, g.DatabaseURL != "")
	if err != nil {
		return nil, false, err
	}
	// A superuser's session, or any before elt's roles exist (the first migrate), is privileged: it gets the
	// pinned search_path that migrate.Up requires of it.
	super, priv, err := migrate.Privilege(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, false, fmt.Errorf("connect to postgres: %w", err)
	}
	if priv {
		pool.Close()
		cfg.ConnConfig.RuntimeParams["search_path"] = migrate.SuperuserSearchPath
		if pool, err = open(ctx, cfg, g.DatabaseURL != ""); err != nil {
			return nil, false, err
		}
	}
	return pool, super, nil
}

// open connects with cfg; configured says whether a database URL named the server (for the hint of a failure).
func open(ctx context.Context, cfg *pgxpool.Config, configured bool) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres at %s:%d as %s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.User, unwrapConnect(err, configured))
	}
	return pool, nil
}

// passfilePassword returns user's password for host:port/database from the passfile (PGPASSFILE, else
// ~/.pgpass), or "" when there is none.
func passfilePassword(host string, port uint16, database, user string) string {
	path := os.Getenv("PGPASSFILE")
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		path = filepath.Join(home, ".pgpass")
	}
	pf, err := pgpassfile.ReadPassfile(path)
	if err != nil {
		return ""
	}
	if strings.HasPrefix(host, "/") {
		host = "localhost" // libpq's convention for Unix sockets
	}
	return pf.FindPassword(host, strconv.Itoa(int(port)), database, user)
}

// CLI is the command tree.
type CLI struct {
	Globals
	Version kong.VersionFlag `name:"version" help:"Print elt's version and exit."`

	Init     InitCmd     `cmd:"" help:"Write a new project folder: the usage-analytics model of the demo API, with comments on each part."`
	Migrate  MigrateCmd  `cmd:"" help:"Apply elt's own migrations, then the project's, and rebuild the tenants' objects (elt migrate --help)."`
	Extract  ExtractCmd  `cmd:"" help:"Load the configured HTTP sources into staging (raw jsonb, exactly once)."`
	Refresh  RefreshCmd  `cmd:"" help:"Transform staging into core tables, run data checks, refresh the usage marts."`
	Status   StatusCmd   `cmd:"" help:"Show freshness and the last result of every source and of refresh."`
	Tenant   TenantCmd   `cmd:"" help:"Manage customers' logins and their schemas (add, list, remove, sync, check, guard, report, ...)."`
	Superset SupersetCmd `cmd:"" help:"Provision Apache Superset for the tenants: one Database, role, users, datasets and starter dashboard per tenant (elt superset sync)."`
	Scaffold ScaffoldCmd `cmd:"" help:"Sample a staging table and draft a transform for it: each JSON key with its types and null rate, typed columns, newest version wins."`
	Doctor   DoctorCmd   `cmd:"" help:"Check what a nightly run needs, one line each: the config, each source answering (one request), the database as the configured role, migrations of both tracks, the tenant layer. Exit 1 on any failure."`
	DB       DBCmd       `cmd:"" name:"db" help:"Run a local PostgreSQL cluster in a project folder, for the demo and development."`
}

const description = `elt loads a product's usage data from its HTTP export API into PostgreSQL (extract), turns it into
typed tables and marts inside the database with the SQL of a project folder (refresh), and gives each
customer a login and a schema of its own that holds only its own data (tenant), ready for Superset or any SQL
tool. The project folder (elt init writes one) holds elt.yaml, migrations/, views/ and sql/.

A nightly run is: elt extract && elt refresh. Exit status is 0 only on success; 3 when an extract stopped
at a source's quota (max_requests, max_duration) and nothing failed: the next run resumes there.`

// Exit statuses: 0 success, 1 a failed command, 2 a usage error (unknown command or flag), 3 an extract that
// stopped at a source's quota (max_requests, max_duration) with nothing failed, 128+N ended by signal N (130
// for Ctrl-C, 143 for SIGTERM), as shells report it.
const (
	exitFailed  = 1
	exitUsage   = 2
	exitPartial = 3
)

func main() {
	// A reader that went away (elt extract | head, a tee that was stopped) makes writes to stdout fail with
	// EPIPE instead of killing elt mid-run with SIGPIPE: the run goes on to its end or its next checkpoint.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("elt"),
		kong.Description(description),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, Summary: true}),
		kong.Vars{"version": version()},
	)
	if err != nil {
		panic(err) // the command tree itself is wrong: a bug
	}
	kctx, err := parser.Parse(os.Args[1:])
	if err != nil {
		// A usage error says what is wrong and where the help is, not the whole help.
		help := "elt --help"
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil {
			if cmd := pe.Context.Command(); cmd != "" {
				help = "elt " + commandPath(cmd) + " --help"
			}
		}
		msg := fmt.Sprintf("%v (see %s)", err, help)
		if jsonLogsAsked(os.Args[1:]) {
			newLogger("json", "info").Error("elt usage error", "error", msg, "exit", exitUsage)
		} else {
			fmt.Fprintf(os.Stderr, "elt: %s\n", msg)
		}
		os.Exit(exitUsage)
	}
	log := newLogger(cli.LogFormat, cli.LogLevel)

	// The first SIGINT or SIGTERM cancels the command's context (a run stops at a clean checkpoint); the
	// exit status then says which signal ended it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var got atomic.Value
	go func() {
		sig := <-sigs
		got.Store(sig)
		cancel()
		signal.Stop(sigs) // a second signal kills at once
	}()
	kctx.BindTo(ctx, (*context.Context)(nil))
	// A command whose Run takes a *pgxpool.Pool gets one connected as the configured login (Globals.Connect),
	// closed when it returns. Commands that must check their input before they connect (a config, a
	// password file) call Connect themselves.
	var pools []*pgxpool.Pool
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	if err := kctx.BindSingletonProvider(func(ctx context.Context) (*pgxpool.Pool, error) {
		pool, err := cli.Globals.Connect(ctx)
		if pool != nil {
			pools = append(pools, pool)
		}
		return pool, err
	}); err != nil {
		panic(err)
	}
	err = kctx.Run(&cli.Globals, log)
	if err == nil {
		return
	}
	code := exitFailed
	if extract.Partial(err) {
		code = exitPartial
	}
	if sig, ok := got.Load().(syscall.Signal); ok {
		code = 128 + int(sig)
		err = fmt.Errorf("stopped by %s: %w", sigName(sig), err)
	}
	if cli.LogFormat == "json" {
		log.Error("elt failed", "error", err.Error(), "exit", code)
	} else {
		fmt.Fprintf(os.Stderr, "elt: %v\n", err)
	}
	cancel()
	os.Exit(code)
}

// jsonLogsAsked reports whether the command line or ELT_LOG_FORMAT asks for JSON logs, for the errors that
// come before the command line is understood.
func jsonLogsAsked(args []string) bool {
	format := os.Getenv("ELT_LOG_FORMAT")
	for i, a := range args {
		switch {
		case a == "--log-format" && i+1 < len(args):
			format = args[i+1]
		case strings.HasPrefix(a, "--log-format="):
			format = strings.TrimPrefix(a, "--log-format=")
		}
	}
	return format == "json"
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGINT {
		return "SIGINT (Ctrl-C)"
	}
	return "SIGTERM"
}

// commandPath is kong's command ("tenant add <customer>") without its arguments.
func commandPath(cmd string) string {
	var words []string
	for _, w := range strings.Fields(cmd) {
		if !strings.HasPrefix(w, "<") {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

// revision is the commit elt was built from when the build says it (make build sets it with -ldflags -X,
// for builds without Go's VCS stamping).
var revision string

// version is elt's module version and VCS revision, from the build.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "elt (unknown version)"
	}
	v := info.Main.Version
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	if rev == "" {
		rev = revision
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	out := "elt " + v
	if rev != "" {
		out += " " + rev + dirty
	}
	return out + " " + info.GoVersion
}

func newLogger(format, level string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
