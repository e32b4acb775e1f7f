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
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/extract"
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

// Connect opens a pool to the database named by --database-url, DATABASE_URL or the PG* variables.
func (g *Globals) Connect(ctx context.Context) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(g.DatabaseURL)
	if err != nil {
		// pgx errors on a malformed URL may quote it, password included: say only what is wrong.
		return nil, errors.New("invalid database URL (check --database-url, DATABASE_URL or PG* variables)")
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "elt"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, unwrapConnect(err))
	}
	return pool, nil
}

// CLI is the command tree.
type CLI struct {
	Globals

	Init     InitCmd     `cmd:"" help:"Write a new project folder: the usage-analytics model of the demo API, with comments on each part."`
	Migrate  MigrateCmd  `cmd:"" help:"Apply elt's own migrations, then the project's, and rebuild the tenants' objects (elt migrate --help)."`
	Extract  ExtractCmd  `cmd:"" help:"Load the configured HTTP sources into staging (raw jsonb, exactly once)."`
	Refresh  RefreshCmd  `cmd:"" help:"Transform staging into core tables, run data checks, refresh the usage marts."`
	Status   StatusCmd   `cmd:"" help:"Show freshness and the last result of every source and of refresh."`
	Tenant   TenantCmd   `cmd:"" help:"Manage customers' logins and their schemas (add, list, remove, sync, check, guard, report, ...)."`
	Scaffold ScaffoldCmd `cmd:"" help:"Sample a staging table and draft a transform for it: each JSON key with its types and null rate, typed columns, newest version wins."`
	DB       DBCmd       `cmd:"" name:"db" help:"Run a local PostgreSQL cluster in a project folder, for the demo and development."`
}

const description = `elt loads a product's usage data from its HTTP export API into PostgreSQL (extract), turns it into
typed tables and marts inside the database with the SQL of a project folder (refresh), and gives each
customer a login and a schema of its own that holds only its own data (tenant), ready for Superset or any SQL
tool. The project folder (elt init writes one) holds elt.yaml, migrations/, views/ and sql/.

A nightly run is: elt extract && elt refresh. Exit status is 0 only on success.`

func main() {
	var cli CLI
	kctx := kong.Parse(&cli,
		kong.Name("elt"),
		kong.Description(description),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, Summary: true}),
	)
	log := newLogger(cli.LogFormat, cli.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	err := kctx.Run(&cli.Globals, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "elt: %v\n", err)
		stop()
		os.Exit(1)
	}
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
