package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/elt-dev/elt/extract"
	"github.com/elt-dev/elt/scaffold"
)

// ScaffoldCmd is elt scaffold.
type ScaffoldCmd struct {
	Table  string `arg:"" placeholder:"TABLE" help:"Staging table to sample (staging.TABLE, as elt extract loaded it)."`
	Sample int    `name:"sample" default:"1000" placeholder:"N" help:"Records sampled: the newest N (${default})."`
	Out    string `name:"out" type:"path" placeholder:"FILE" help:"Write the draft transform to FILE (e.g. sql/050_TABLE.sql) instead of standard output; an existing file is never overwritten."`
	Schema string `name:"schema" placeholder:"SCHEMA" help:"Schema of the drafted table (default: the project's first schema, else core)."`
}

// Help is the long help of elt scaffold.
func (c *ScaffoldCmd) Help() string {
	return `Samples the newest records of a staging table and prints, for each JSON key of record (and of parent, for a
child resource; one level into nested objects as outer.inner), the JSON types seen with their counts, how
often it is null or missing, the column type it suggests, and an example. Then it drafts, for you to edit:

  - a transform step for sql/: typed columns (ISO-8601 strings and epoch numbers as timestamptz, integers
    bigint, other numbers numeric, objects and arrays jsonb), the newest version of each primary key winning by
    the resource's incremental cursor and then by load order, and the project's tenant key on every row;
  - the create table of its target for a migration, partitioned by list on the tenant key.

The primary key and the cursor are those of the resource of elt.yaml that loads the table (primary_key,
incremental.cursor_field); the tenant key is tenants.key, and its expression tenants.staging.TABLE. Every
type is a guess from the sample: read the comments of the draft, then elt migrate and elt refresh --full.`
}

// Run profiles the table and prints the report and the drafts.
func (c *ScaffoldCmd) Run(ctx context.Context, g *Globals) error {
	table := strings.TrimPrefix(c.Table, "staging.")
	if c.Sample <= 0 {
		return fmt.Errorf("--sample must be at least 1, not %d", c.Sample)
	}
	p, cfg, err := g.LoadSources()
	if err != nil {
		return err
	}
	opts := scaffold.DraftOptions{Schema: c.Schema, Table: table}
	if opts.Schema == "" {
		opts.Schema = "core"
		if len(p.Schemas) > 0 {
			opts.Schema = p.Schemas[0]
		}
	}
	res := resourceOf(cfg, table)
	if res != nil {
		if len(res.PrimaryKey) > 0 {
			opts.PrimaryKey, opts.MoreKeys = res.PrimaryKey[0], res.PrimaryKey[1:]
		}
		if res.Incremental != nil {
			opts.Cursor = res.Incremental.CursorField
		}
	}
	if p.Tenants != nil {
		opts.TenantKey = p.Tenants.Key
		opts.TenantExpr = p.Tenants.Staging[table]
	}
	if c.Out != "" {
		if _, err := os.Stat(c.Out); err == nil {
			return fmt.Errorf("write draft: %s exists (elt scaffold never overwrites a file)", c.Out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write draft: %w", err)
		}
	}

	pool, err := g.Connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	rep, err := scaffold.Profile(ctx, pool, table, c.Sample)
	if err != nil {
		return err
	}
	if res == nil {
		fmt.Fprintf(os.Stderr, "note: no resource of %s loads staging.%s: the draft guesses the primary key (id) and has no cursor\n", p.ConfigPath, table)
	}
	if err := scaffold.WriteReport(os.Stdout, rep); err != nil {
		return err
	}
	transform, ddl := scaffold.Draft(rep, opts), scaffold.DraftTable(rep, opts)
	if c.Out != "" {
		if err := writeNew(c.Out, transform); err != nil {
			return err
		}
		fmt.Printf("\nwrote the draft transform to %s\n", c.Out)
	} else {
		fmt.Printf("\n%s", transform)
	}
	fmt.Printf("\n%s", ddl)
	return nil
}

// resourceOf is the resource that loads staging.table, or nil.
func resourceOf(cfg *extract.Config, table string) *extract.Resource {
	for _, s := range cfg.Sources {
		for _, r := range s.Resources {
			if r.Table == table {
				return r
			}
		}
	}
	return nil
}

// writeNew writes text to a file that must not exist yet.
func writeNew(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write draft: %s exists (elt scaffold never overwrites a file)", path)
	}
	if err != nil {
		return fmt.Errorf("write draft: %w", err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("write draft %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write draft %s: %w", path, err)
	}
	return nil
}
