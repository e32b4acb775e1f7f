package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/migrate"
	"github.com/elt-dev/elt/project"
	"github.com/elt-dev/elt/tenant"
)

// MigrateCmd groups the migration commands; plain `elt migrate` applies pending migrations.
type MigrateCmd struct {
	Up     MigrateUpCmd     `cmd:"" default:"withargs" help:"Apply pending migrations of both tracks, then rebuild the tenants' objects (the default)."`
	Status MigrateStatusCmd `cmd:"" help:"Show the applied version and pending migrations of both tracks, by name."`
	Render MigrateRenderCmd `cmd:"" help:"Write every migration of both tracks as it would run (templates rendered, no rollback part) to DIR/elt and DIR/project, for review and linting (make lint). Needs no database."`
}

// Help is the long help of elt migrate.
func (c *MigrateCmd) Help() string {
	return `Migrations run on two tracks, each with its own numbering and version table:

  elt      elt's own machinery (run log, cursors, batches, watermarks, the tenant map, roles), carried by
           this binary and recorded in elt.schema_version;
  project  the project's migrations/ (which include views/ with {{ template "views/x.sql" . }}), read from
           the project folder at run time and recorded in elt.project_version.

The elt track runs first. Each migration runs in one transaction; a failing one is rolled back whole. The first
elt migrate, and any that brings elt's own migrations, runs as a superuser (it creates roles); it applies
only elt's track in the superuser's session and the project's on a connection of its own as elt_runner
(password from ~/.pgpass or PGPASSFILE, else none). Otherwise run it as elt_runner. After migrating,
every object of the project's schemas is given to elt_owner and each tenant's schema, partitions and views are
rebuilt where the declarations (elt.yaml tenants:) or the tables changed.`
}

// tracks returns the elt track and the project's.
func tracks(p *project.Project) []migrate.Track {
	return []migrate.Track{migrate.Elt(), migrate.Project(p.Migrations())}
}

// MigrateRenderCmd writes the rendered migrations to a folder.
type MigrateRenderCmd struct {
	Dir string `arg:"" placeholder:"DIR" help:"Folder to write elt/NNN_name.sql and project/NNN_name.sql into (created if missing)."`
}

// Run renders the migrations of both tracks into c.Dir.
func (c *MigrateRenderCmd) Run(g *Globals) error {
	p, err := g.LoadProject()
	if err != nil {
		return err
	}
	n := 0
	for _, t := range tracks(p) {
		ms, err := migrate.Load(t)
		if err != nil {
			return err
		}
		dir := filepath.Join(c.Dir, t.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, m := range ms {
			if err := os.WriteFile(filepath.Join(dir, m.Name), []byte(m.SQL+"\n"), 0o644); err != nil {
				return err
			}
			n++
		}
	}
	fmt.Printf("wrote %d migrations to %s/elt and %s/project\n", n, c.Dir, c.Dir)
	return nil
}

// MigrateUpCmd applies pending migrations.
type MigrateUpCmd struct {
	DryRun bool `name:"dry-run" help:"Print the SQL of every pending migration of both tracks, in order, and change nothing (for review by a DBA)."`
}

// Run applies or prints the pending migrations, then syncs the tenants' objects.
func (c *MigrateUpCmd) Run(ctx context.Context, g *Globals, log *slog.Logger) error {
	p, err := g.LoadProject()
	if err != nil {
		return err
	}
	pool, super, err := g.connect(ctx, "")
	if err != nil {
		return err
	}
	defer pool.Close()
	if !super && !c.DryRun {
		// The first migrate creates elt's roles: a superuser, or a DBA with CREATEROLE (managed PostgreSQL's
		// admin roles, which are no superusers) may run it; elt_runner and other plain roles may not.
		var createRole bool
		if err := pool.QueryRow(ctx, `select rolcreaterole from pg_catalog.pg_roles where rolname = current_user`).Scan(&createRole); err != nil {
			return fmt.Errorf("connect to postgres: %w", err)
		}
		if err := migrated(ctx, pool); errors.Is(err, ErrNotMigrated) && !createRole {
			return fmt.Errorf("the first elt migrate of database %s must run as a superuser or a role with CREATEROLE (it creates elt's roles and schemas); connect as one, e.g. DATABASE_URL=postgres://postgres@HOST/%s, then run elt as elt_runner",
				pool.Config().ConnConfig.Database, pool.Config().ConnConfig.Database)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Release()

	if c.DryRun {
		sts, err := migrate.ReadStatus(ctx, conn.Conn(), tracks(p)...)
		if err != nil {
			return err
		}
		for _, st := range sts {
			pending := st.Pending()
			fmt.Printf("-- elt migrate --dry-run: %s track at version %d, %d pending migration(s); nothing was changed.\n", st.Track, st.Current, len(pending))
			if st.Track == "elt" && len(pending) > 0 && !super {
				fmt.Println("-- elt's own migrations are applied by a superuser (elt migrate as one); elt_runner applies only the project's.")
			}
			for _, m := range pending {
				fmt.Printf("\n-- ==== %s track: %s (version %d) ====\n-- runs in one transaction\n%s\n", m.Track, m.Name, m.Version, m.SQL)
			}
			fmt.Println()
		}
		return nil
	}
	// As a superuser, only elt's own migrations run in this session; the project's, the adoption and the
	// tenants' objects are done as elt_runner, on connections of its own (migrate.Up).
	var runner *pgxpool.Pool
	defer func() {
		if runner != nil {
			runner.Close()
		}
	}()
	openRunner := func(ctx context.Context) (*pgx.Conn, error) {
		if runner == nil {
			p, _, err := g.connect(ctx, "elt_runner")
			if err != nil {
				return nil, err
			}
			runner = p
		}
		c, err := runner.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return c.Hijack(), nil
	}
	applied, err := migrate.Up(ctx, conn.Conn(), migrate.Options{
		Schemas: p.Schemas,
		Key:     tenantKey(p),
		Runner:  openRunner,
		OnStart: func(m migrate.Migration) {
			log.Info("applying migration", "track", m.Track, "version", m.Version, "name", m.Name)
		},
	}, tracks(p)...)
	if err != nil {
		return err
	}
	conn.Release()
	// The tenants' objects and the status are done where the project's migrations ran: on elt_runner's
	// connections when this session was privileged (migrate.Up opened one), else here.
	work := pool
	if runner != nil {
		work = runner
		log.Info("elt's own migrations ran as the superuser; the project's and the tenants' objects as elt_runner")
	} else if super {
		return fmt.Errorf("migrate: %w", migrate.ErrRunner)
	}
	if p.Tenants != nil {
		if err := syncTenants(ctx, work, p, false, log); err != nil {
			return err
		}
	}
	sts, err := readStatus(ctx, work, p)
	if err != nil {
		return err
	}
	log.Info("database is up to date", "elt_version", sts[0].Current, "project_version", sts[1].Current, "applied", len(applied))
	return nil
}

// syncTenants rebuilds the tenants' objects that do not match the project's declarations.
func syncTenants(ctx context.Context, pool *pgxpool.Pool, p *project.Project, force bool, log *slog.Logger) error {
	layer, err := tenant.LoadLayer(ctx, pool, p)
	if err != nil {
		return err
	}
	res, err := tenant.Sync(ctx, pool, layer, force, log)
	if err != nil {
		return err
	}
	if res.Adopted > 0 {
		log.Info("tenant logins taken over from the old tenant map", "logins", res.Adopted)
	}
	return nil
}

func readStatus(ctx context.Context, pool *pgxpool.Pool, p *project.Project) ([]migrate.Status, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Release()
	return migrate.ReadStatus(ctx, conn.Conn(), tracks(p)...)
}

// MigrateStatusCmd shows the migration state.
type MigrateStatusCmd struct{}

// Run prints each migration of both tracks with whether it is applied.
func (c *MigrateStatusCmd) Run(ctx context.Context, g *Globals) error {
	p, err := g.LoadProject()
	if err != nil {
		return err
	}
	pool, _, err := g.connect(ctx, "")
	if err != nil {
		return err
	}
	defer pool.Close()
	sts, err := readStatus(ctx, pool, p)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TRACK\tVERSION\tMIGRATION\tSTATE")
	for _, st := range sts {
		for _, m := range st.All {
			state := "applied"
			if m.Version > st.Current {
				state = "pending"
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", st.Track, m.Version, m.Name, state)
		}
	}
	w.Flush()
	for _, st := range sts {
		fmt.Printf("%s track: version %d of %d; %d pending\n", st.Track, st.Current, len(st.All), len(st.Pending()))
	}
	return nil
}

// tenantKey is the project's tenant key column, empty when it declares no tenants.
func tenantKey(p *project.Project) string {
	if p.Tenants == nil {
		return ""
	}
	return p.Tenants.Key
}
