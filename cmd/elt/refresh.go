package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/elt-dev/elt/refresh"
)

// RefreshCmd is elt refresh.
type RefreshCmd struct {
	Full        bool          `name:"full" help:"Rebuild core tables, rollups and marts from everything in staging (no re-fetching), instead of only the batches loaded since the last run. Gives exactly the marts the incremental path gives."`
	LockTimeout time.Duration `name:"lock-timeout" default:"1m" placeholder:"DURATION" help:"Longest wait of any step for a table lock held by another session; past it the run fails and can be run again (${default})."`
}

// Help is the long help of elt refresh.
func (c *RefreshCmd) Help() string {
	return `Transforms what extract loaded, inside PostgreSQL:

  1. transforms: the SQL steps in sql/NNN_name.sql, in order, each in one transaction with its watermark:
     staging to typed, deduplicated core tables (the newest version of each record wins), then the
     incremental rollups of the (customer, day) buckets whose events changed;
  2. data checks: sql/checks/*.sql, queries returning violating rows; any row stops the run here and the
     marts keep their previous contents;
  3. marts: every materialized view of schema marts, refreshed concurrently (readers are never blocked) in
     dependency order.

Only batches committed since the last run are processed, so the cost follows the new data. Two runs never
overlap: a second one exits at once naming the first. Each step's time and rows go to elt.refresh_steps
(see elt status). Days are UTC days. See docs/refresh.md.`
}

// Run refreshes and prints one line per step.
func (c *RefreshCmd) Run(ctx context.Context, g *Globals, log *slog.Logger) error {
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	started := time.Now()
	res, err := refresh.Run(ctx, pool, refresh.Options{Full: c.Full, LockTimeout: c.LockTimeout, Logger: log})
	if err != nil {
		return err
	}
	fmt.Printf("refresh %s: run %d, batches up to %d, %d steps, %d rows written, %s\n",
		res.Mode, res.RunID, res.BatchTo, len(res.Steps), res.Rows(), time.Since(started).Round(time.Millisecond))
	return nil
}
