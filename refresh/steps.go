package refresh

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// A step is one transform file of sql/: its statements run in one transaction together with the update of
// the step's watermark.
type step struct {
	name       string      // file name relative to the SQL root, e.g. "sql/030_events.sql"
	statements []statement // in file order
	rebuild    []string    // tables emptied first by --full, sanitized, from "-- rebuild:" lines
}

// A check is one data check of sql/checks/: a query returning the rows that violate a rule.
type check struct {
	name string // e.g. "sql/checks/events_user_exists.sql"
	sql  string
}

var (
	stepFile    = regexp.MustCompile(`^[0-9]{3}_[a-z0-9_]+\.sql$`)
	rebuildLine = regexp.MustCompile(`(?m)^--\s*rebuild:\s*(.+)$`)
	identPart   = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// loadSteps reads the transform steps (dir/NNN_name.sql, in name order) and data checks (dir/checks/*.sql) of
// fsys.
func loadSteps(fsys fs.FS, dir string) ([]step, []check, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read transform steps: %w", err)
	}
	var steps []step
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		name := path.Join(dir, e.Name())
		if !stepFile.MatchString(e.Name()) {
			return nil, nil, fmt.Errorf("transform step %s: file name must look like NNN_name.sql", name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, nil, fmt.Errorf("read transform step: %w", err)
		}
		s := step{name: name, statements: splitStatements(string(b))}
		if len(s.statements) == 0 {
			return nil, nil, fmt.Errorf("transform step %s has no statement", name)
		}
		for _, m := range rebuildLine.FindAllStringSubmatch(string(b), -1) {
			for _, table := range strings.Split(m[1], ",") {
				id, err := tableIdent(strings.TrimSpace(table))
				if err != nil {
					return nil, nil, fmt.Errorf("transform step %s: rebuild: %w", name, err)
				}
				s.rebuild = append(s.rebuild, id)
			}
		}
		steps = append(steps, s)
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].name < steps[j].name })

	checkDir := path.Join(dir, "checks")
	entries, err = fs.ReadDir(fsys, checkDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("read data checks: %w", err)
	}
	var checks []check
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		name := path.Join(checkDir, e.Name())
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, nil, fmt.Errorf("read data check: %w", err)
		}
		stmts := splitStatements(string(b))
		if len(stmts) != 1 {
			return nil, nil, fmt.Errorf("data check %s must hold exactly one select, found %d statements", name, len(stmts))
		}
		checks = append(checks, check{name: name, sql: strings.TrimSuffix(stmts[0].sql, ";")})
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i].name < checks[j].name })
	return steps, checks, nil
}

// tableIdent turns "schema.table" into a sanitized identifier; both parts are required.
func tableIdent(s string) (string, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 2 || !identPart.MatchString(parts[0]) || !identPart.MatchString(parts[1]) {
		return "", fmt.Errorf("%q is not a schema-qualified table name", s)
	}
	return pgx.Identifier(parts).Sanitize(), nil
}
