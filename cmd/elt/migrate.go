package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/elt-dev/elt/migrate"
)

// MigrateCmd groups the migration commands; plain `elt migrate` applies pending migrations.
type MigrateCmd struct {
	Up     MigrateUpCmd     `cmd:"" default:"withargs" help:"Apply pending migrations (the default)."`
	Status MigrateStatusCmd `cmd:"" help:"Show the applied version and pending migrations by name."`
	Render MigrateRenderCmd `cmd:"" help:"Write every migration as it would run (templates rendered, no rollback part) to DIR, one file each, for review and linting (make lint). Needs no database."`
}

// MigrateRenderCmd writes the rendered migrations to a folder.
type MigrateRenderCmd struct {
	Dir string `arg:"" placeholder:"DIR" help:"Folder to write NNN_name.sql files into (created if missing)."`
}

// Run renders the embedded migrations into c.Dir.
func (c *MigrateRenderCmd) Run() error {
	ms, err := migrate.Load(nil)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	for _, m := range ms {
		if err := os.WriteFile(filepath.Join(c.Dir, m.Name), []byte(m.SQL+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d migrations to %s\n", len(ms), c.Dir)
	return nil
}

// MigrateUpCmd applies pending migrations.
type MigrateUpCmd struct {
	DryRun bool `name:"dry-run" help:"Print the SQL of every pending migration, in order, and change nothing (for review by a DBA)."`
}

// Run applies or prints the pending migrations.
func (c *MigrateUpCmd) Run(ctx context.Context, g *Globals, log *slog.Logger) error {
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Release()

	if c.DryRun {
		st, err := migrate.ReadStatus(ctx, conn.Conn(), nil)
		if err != nil {
			return err
		}
		pending := st.Pending()
		fmt.Printf("-- elt migrate --dry-run: database at version %d, %d pending migration(s); nothing was changed.\n", st.Current, len(pending))
		for _, m := range pending {
			fmt.Printf("\n-- ==== %s (version %d) ====\n-- runs in one transaction\n%s\n", m.Name, m.Version, m.SQL)
		}
		return nil
	}
	applied, err := migrate.Up(ctx, conn.Conn(), nil, func(m migrate.Migration) {
		log.Info("applying migration", "version", m.Version, "name", m.Name)
	})
	if err != nil {
		return err
	}
	v, err := migrate.CurrentVersion(ctx, conn.Conn())
	if err != nil {
		return err
	}
	log.Info("database is up to date", "version", v, "applied", len(applied))
	return nil
}

// MigrateStatusCmd shows the migration state.
type MigrateStatusCmd struct{}

// Run prints each migration with whether it is applied.
func (c *MigrateStatusCmd) Run(ctx context.Context, g *Globals) error {
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Release()
	st, err := migrate.ReadStatus(ctx, conn.Conn(), nil)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tMIGRATION\tSTATE")
	for _, m := range st.All {
		state := "applied"
		if m.Version > st.Current {
			state = "pending"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\n", m.Version, m.Name, state)
	}
	w.Flush()
	fmt.Printf("current version %d of %d; %d pending\n", st.Current, len(st.All), len(st.Pending()))
	return nil
}
