package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/elt-dev/elt/refresh"
	"github.com/elt-dev/elt/tenant"
)

// RefreshCmd is elt refresh.
type RefreshCmd struct {
	Full        bool          `name:"full" help:"Rebuild every step from everything in staging (no re-fetching), instead of only the batches loaded since the last run. Gives exactly what the incremental path gives."`
	LockTimeout time.Duration `name:"lock-timeout" default:"1m" placeholder:"DURATION" help:"Longest wait of any step for a table lock held by another session; past it the run fails and can be run again (${default})."`
	AsOf        string        `name:"as-of" placeholder:"TIME" help:"The run's clock, RFC 3339 (e.g. 2026-11-30T23:00:00Z): what today is for the marts, and so which periods are complete. Default: now. For replaying a past run; never set it earlier than a previous run's."`
	Sessions    int           `name:"sessions" default:"0" placeholder:"N" help:"Sessions that run the units of a split step (a \"-- split:\" line: one transaction per key), and the data checks, at once; 0: the client's cores, at most 4, and at most the pool's connections minus 2 (pool_max_conns in the database URL)."`
}

// Help is the long help of elt refresh.
func (c *RefreshCmd) Help() string {
	return `Transforms what extract loaded, inside PostgreSQL, with the SQL of the project folder (read at run time):

  1. transforms: sql/NNN_name.sql, in order, each in one transaction with its watermark (staging to typed,
     deduplicated tables, then incremental rollups);
  2. data checks: sql/checks/*.sql, queries returning violating rows; any row stops the run here and what
     comes after keeps its previous contents;
  3. mart steps: sql/marts/NNN_name.sql, in order, like transforms;
  4. materialized views of the project's schemas, refreshed concurrently (readers are never blocked) in
     dependency order.

A step with a "-- split: column in (query)" line runs in units of the keys its query returns (customers),
each unit in a transaction of its own, --sessions of them at once.

Only batches committed since the last run are processed, so the cost follows the new data. A step file that
changed since it last ran (elt.refresh_files keeps the hash of each) makes the run a full rebuild, and the
log says which file changed; a changed check re-checks all rows. Two runs never overlap: a second one exits at
once naming the first. Each step's time, rows and file hash go to elt.refresh_steps (see elt status). See
docs/refresh.md.`
}

// Run refreshes and prints one line.
func (c *RefreshCmd) Run(ctx context.Context, g *Globals, log *slog.Logger) error {
	p, err := g.LoadProject()
	if err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	opts := refresh.Options{Project: p.FS(), Schemas: p.Schemas, Full: c.Full, LockTimeout: c.LockTimeout, Sessions: c.Sessions, Logger: log}
	if c.AsOf != "" {
		if opts.AsOf, err = time.Parse(time.RFC3339, c.AsOf); err != nil {
			return fmt.Errorf("refresh: --as-of %q is not an RFC 3339 time such as 2026-11-30T23:00:00Z: %w", c.AsOf, err)
		}
	}
	if p.Tenants != nil {
		layer, err := tenant.LoadLayer(ctx, pool, p)
		if err != nil {
			return err
		}
		opts.BeforeSteps = func(ctx context.Context, hi int64) error {
			_, err := tenant.Refuse(ctx, pool, layer, hi, log)
			return err
		}
	}
	started := time.Now()
	res, err := refresh.Run(ctx, pool, opts)
	if err != nil {
		return err
	}
	fmt.Printf("refresh %s: run %d, batches up to %d, %d steps, %d rows written, %s\n",
		res.Mode, res.RunID, res.BatchTo, len(res.Steps), res.Rows(), time.Since(started).Round(time.Millisecond))
	return nil
}
