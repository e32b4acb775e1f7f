package refresh

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// fileChange is one project file that differs from the version that last ran.
type fileChange struct {
	name string
	what string // "changed", "new" or "removed"
}

// fileChanges compares the project's SQL files with the hashes recorded when they last ran.
type fileChanges struct {
	list   []fileChange
	steps  bool // a transform or mart step changed, appeared or went away: rebuild everything
	checks bool // a data check changed or appeared: check everything again
	first  bool // nothing recorded yet: record the hashes
}

func (c fileChanges) names() []string {
	var out []string
	for _, f := range c.list {
		out = append(out, f.name+" ("+f.what+")")
	}
	return out
}

// effect says what a change does to this run, for the log.
func (c fileChanges) effect() string {
	switch {
	case c.steps:
		return "every step rebuilds from staging (as elt refresh --full)"
	case c.checks:
		return "the data checks run over all rows again"
	}
	return "none"
}

// changes reads elt.refresh_files and compares it with p.
func (r *runner) changes(ctx context.Context, p plan) (fileChanges, error) {
	rows, err := r.conn.Query(ctx, `select name, sha256 from elt.refresh_files`)
	if err != nil {
		return fileChanges{}, fmt.Errorf("refresh: read file hashes: %w", err)
	}
	recorded := map[string]string{}
	var name, sha string
	if _, err := pgx.ForEachRow(rows, []any{&name, &sha}, func() error {
		recorded[name] = sha
		return nil
	}); err != nil {
		return fileChanges{}, fmt.Errorf("refresh: read file hashes: %w", err)
	}
	var c fileChanges
	if len(recorded) == 0 {
		c.first = true
		return c, nil
	}
	now := p.files()
	isCheck := func(name string) bool { return strings.HasPrefix(name, "sql/checks/") }
	for _, name := range slices.Sorted(maps.Keys(now)) {
		old, ok := recorded[name]
		switch {
		case !ok:
			c.list = append(c.list, fileChange{name, "new"})
		case old != now[name]:
			c.list = append(c.list, fileChange{name, "changed"})
		default:
			continue
		}
		if isCheck(name) {
			c.checks = true
		} else {
			c.steps = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(recorded)) {
		if _, ok := now[name]; !ok {
			c.list = append(c.list, fileChange{name, "removed"})
			if !isCheck(name) {
				c.steps = true
			}
		}
	}
	return c, nil
}

// recordFiles makes elt.refresh_files hold exactly files (name to hash).
func recordFiles(ctx context.Context, tx pgx.Tx, files map[string]string) error {
	names := slices.Sorted(maps.Keys(files))
	shas := make([]string, len(names))
	for i, n := range names {
		shas[i] = files[n]
	}
	if _, err := tx.Exec(ctx, `delete from elt.refresh_files where not (name = any ($1))`, names); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `
insert into elt.refresh_files (name, sha256)
select * from unnest($1::text[], $2::text[])
on conflict (name) do update set sha256 = excluded.sha256, ran_at = now()
where elt.refresh_files.sha256 <> excluded.sha256`, names, shas)
	return err
}

// coverage compares the staging tables the steps read with those extract loaded. A step that reads a staging
// table that does not exist fails the run before any step runs (the step would fail anyway, later, with less
// context); a staging table with records that no step reads, or one that a step reads while it is empty and
// others are not, is a warning: it is how a model that does not match its sources shows, instead of a silent
// "0 rows written".
func (r *runner) coverage(ctx context.Context, p plan) error {
	rows, err := r.conn.Query(ctx, `
select c.relname, coalesce(b.records, 0)
from pg_catalog.pg_class as c
left join (select staging_table, sum(records)::bigint as records from elt.batches group by staging_table) as b
       on b.staging_table = c.relname
where c.relnamespace = 'staging'::regnamespace and c.relkind in ('r', 'p') and c.relname !~ '__new$'`)
	if err != nil {
		return fmt.Errorf("refresh: list staging tables: %w", err)
	}
	loaded := map[string]int64{}
	var table string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&table, &n}, func() error {
		loaded[table] = n
		return nil
	}); err != nil {
		return fmt.Errorf("refresh: list staging tables: %w", err)
	}
	readers := map[string][]string{}
	for _, s := range slices.Concat(p.transforms, p.marts) {
		for _, t := range s.reads {
			readers[t] = append(readers[t], s.name)
		}
	}
	var missing []string
	for _, t := range slices.Sorted(maps.Keys(readers)) {
		if _, ok := loaded[t]; !ok {
			missing = append(missing, fmt.Sprintf("staging.%s (read by %s)", t, strings.Join(readers[t], ", ")))
		}
	}
	var total int64
	for _, n := range loaded {
		total += n
	}
	if len(missing) > 0 {
		hint := "elt extract creates a staging table for each resource (its table: key in elt.yaml): run elt extract first, or fix the table name in the step"
		if total > 0 {
			var have []string
			for _, t := range slices.Sorted(maps.Keys(loaded)) {
				have = append(have, "staging."+t)
			}
			hint = "staging has " + strings.Join(have, ", ") + ": do the steps read the tables of this project's sources (the table: key of each resource in elt.yaml)?"
		}
		return fmt.Errorf("refresh: the steps read staging tables that do not exist: %s; %s", strings.Join(missing, "; "), hint)
	}
	for _, t := range slices.Sorted(maps.Keys(loaded)) {
		switch {
		case len(readers[t]) == 0 && loaded[t] > 0:
			r.log.Warn("staging table is read by no step", "table", "staging."+t, "records", loaded[t],
				"hint", "write a transform in sql/ (elt scaffold "+t+" drafts one)")
		case len(readers[t]) > 0 && loaded[t] == 0 && total > 0:
			r.log.Warn("staging table is empty while others have records", "table", "staging."+t,
				"read_by", strings.Join(readers[t], ", "), "hint", "has its resource been extracted (elt status)?")
		}
	}
	return nil
}
