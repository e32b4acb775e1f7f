package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/elt-dev/elt/extract"
)

// ExtractCmd is elt extract.
type ExtractCmd struct {
	Sources     []string `arg:"" optional:"" name:"source" help:"Sources to extract, by name (default: every source in the config file, in order)."`
	FullRefresh bool     `name:"full-refresh" help:"Reload each resource from scratch: load a fresh copy, swap it in atomically at the end, and reset its incremental cursor."`
	Limit       int      `name:"limit" placeholder:"N" help:"Stop each resource after about N records (at a cursor boundary, so the next run resumes exactly there); for trying a new source."`
	AtOnce      int      `name:"sources-at-once" placeholder:"N" default:"2" help:"Extract up to N sources at the same time (${default}; 1: one after another). With more than one at once, progress is logged, not drawn on one line."`
}

// Help is the long help of elt extract.
func (c *ExtractCmd) Help() string {
	return `Loads each configured HTTP source into its staging tables (raw jsonb), streaming pages straight into COPY.

Each batch commits its records, the source's incremental cursor and the run log in one transaction: a run
killed at any moment and started again leaves staging equal to the source, with no duplicates and no gaps.
Ctrl-C stops at a batch boundary. A source is extracted by one process at a time: a second elt extract of the
same source exits at once and says who holds it. See docs/extract.md for the config file.`
}

// Run loads the config and extracts.
func (c *ExtractCmd) Run(ctx context.Context, g *Globals, log *slog.Logger) error {
	_, cfg, err := g.LoadSources()
	if err != nil {
		return err
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	opts := extract.Options{Sources: c.Sources, FullRefresh: c.FullRefresh, Limit: c.Limit, Log: log, SourcesAtOnce: c.AtOnce}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		opts.Progress = os.Stderr
	}
	return extract.Run(ctx, pool, cfg, opts)
}
