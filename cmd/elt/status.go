package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/elt-dev/elt/extract"
	"github.com/elt-dev/elt/refresh"
	"github.com/elt-dev/elt/replication"
)

// StatusCmd is elt status.
type StatusCmd struct {
	JSON bool `name:"json" help:"Print the status as JSON instead of a table."`
}

// Help is the long help of elt status.
func (c *StatusCmd) Help() string {
	return `Shows, for each source, when it last loaded successfully (its freshness), how its last run ended (records,
pages, retries, error), per resource the incremental cursor, last batch and rejects, and the last elt refresh
run with its steps, the last batch the marts include and how many newer batches wait, and replication: on a
primary the standbys streaming from it and how far behind they are, on a hot standby what it has received
and replayed. Sources in the config file that never ran are listed too. Exit status 0 even when a source
failed: read the table.`
}

// Run prints the status.
func (c *StatusCmd) Run(ctx context.Context, g *Globals, log *slog.Logger) error {
	var cfg *extract.Config
	if _, loaded, err := g.LoadSources(); err == nil {
		cfg = loaded
	} else if !errors.Is(err, fs.ErrNotExist) {
		log.Warn("project not read; listing only sources that ran", "error", err)
	}
	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	ext, err := extract.ReadStatus(ctx, pool, cfg)
	if err != nil {
		return err
	}
	ref, err := refresh.ReadStatus(ctx, pool)
	if err != nil {
		return err
	}
	rep, err := replication.ReadStatus(ctx, pool)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Extract     *extract.Status    `json:"extract"`
			Refresh     refresh.Status     `json:"refresh"`
			Replication replication.Status `json:"replication"`
		}{ext, ref, rep})
	}
	now := time.Now()
	if err := extract.WriteStatus(os.Stdout, ext, now); err != nil {
		return err
	}
	fmt.Println()
	if err := refresh.WriteStatus(os.Stdout, ref, now); err != nil {
		return err
	}
	fmt.Println()
	return replication.WriteStatus(os.Stdout, rep, now)
}
