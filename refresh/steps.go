package refresh

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// A step is one SQL file of the project run by refresh: a transform (sql/NNN_name.sql) or a mart step
// (sql/marts/NNN_name.sql). Its statements run in one transaction together with the update of the step's
// watermark.
type step struct {
	kind       string      // "transform" or "mart"
	name       string      // file name relative to the project, e.g. "sql/030_events.sql"
	sha        string      // SHA-256 of the file, hex
	statements []statement // in file order
	rebuild    []string    // tables emptied first when the step rebuilds, sanitized, from "-- rebuild:" lines
	// inPlace are the tables of "-- rebuild in place:" lines, sanitized: on a rebuild elt leaves them as they
	// are and the step's statements make them right themselves (write the rows that differ, delete the rows
	// that are gone), so a rebuild that changes little writes little. Otherwise like rebuild's.
	inPlace []string
	reads   []string // staging tables the file names (staging.x), for the coverage report
	// tenants is the query of the "-- tenants:" line (empty without one): the tenant keys this run of the step
	// touches, bound to @tenants as an array (or NULL, see tenantKeys) so that a statement's
	// "(key = any(@tenants) or @tenants is null)" prunes the partitioned tables to those tenants' partitions
	// when it is planned.
	tenants     string
	tenantsLine int
	// split is the step's "-- split: column in (query)" line (nil without one): the step runs once per key
	// the query returns, each key in its own transaction, on several sessions at once (splitStep).
	split *split
}

// owned is every table of the step's rebuild lines: those it empties first and those it rebuilds in place.
func (s step) owned() []string { return append(slices.Clone(s.rebuild), s.inPlace...) }

// split is a "-- split: column in (query)" line: the tenant key column every table the step writes carries,
// and the query listing the keys this run of the step touches.
type split struct {
	column string // sanitized identifier
	name   string // as written, for messages
	query  string
	line   int
}

// A check is one data check of sql/checks/: a query returning the rows that violate a rule.
type check struct {
	name string // e.g. "sql/checks/events_user_exists.sql"
	sha  string
	sql  string
	// tenants and tenantsLine: the check's "-- tenants:" line, as a step's.
	tenants     string
	tenantsLine int
}

// plan is everything one refresh runs, in order: transforms, checks, mart steps (then the project's
// materialized views, found in the catalog).
type plan struct {
	transforms []step
	checks     []check
	marts      []step
}

// files returns every file of the plan with its hash.
func (p plan) files() map[string]string {
	m := map[string]string{}
	for _, s := range slices.Concat(p.transforms, p.marts) {
		m[s.name] = s.sha
	}
	for _, c := range p.checks {
		m[c.name] = c.sha
	}
	return m
}

var (
	stepFile     = regexp.MustCompile(`^[0-9]{3}_[a-z0-9_]+\.sql$`)
	rebuildLine  = regexp.MustCompile(`(?m)^--\s*rebuild(\s+in\s+place)?:\s*(.+)$`)
	tenantsLine  = regexp.MustCompile(`(?m)^--\s*tenants:\s*(.+)$`)
	splitLine    = regexp.MustCompile(`(?m)^--[ \t]*split:[ \t]*(.*)$`)
	splitForm    = regexp.MustCompile(`(?s)^([a-z_][a-z0-9_]*)\s+(?i:in)\s*\((.+)\)$`)
	tenantsParam = regexp.MustCompile(`@tenants\b`)
	// The only uses of @tenants a statement may make: the pruning filter, and reading it as text.
	tenantsUse   = regexp.MustCompile(`(?i)\(\s*[a-z_][a-z0-9_]*(\s*\.\s*[a-z_][a-z0-9_]*)?\s*=\s*any\s*\(\s*@tenants\s*\)\s+or\s+@tenants\s+is\s+null\s*\)|@tenants\s*::\s*text\b`)
	sqlComment   = regexp.MustCompile(`(?s)--[^\n]*|/\*.*?\*/`)
	identPart    = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	stagingTable = regexp.MustCompile(`\bstaging\s*\.\s*"?([a-z_][a-z0-9_]*)"?`)
)

// loadPlan reads the transforms (sql/NNN_name.sql, in name order), data checks (sql/checks/*.sql) and mart
// steps (sql/marts/NNN_name.sql) of the project file system fsys.
func loadPlan(fsys fs.FS) (plan, error) {
	var p plan
	var err error
	if p.transforms, err = loadSteps(fsys, "sql", "transform"); err != nil {
		return p, err
	}
	if len(p.transforms) == 0 {
		return p, errors.New("the project has no transform steps (sql/NNN_name.sql): is this the project folder (--project, ELT_PROJECT)?")
	}
	if p.marts, err = loadSteps(fsys, "sql/marts", "mart"); err != nil {
		return p, err
	}
	checkDir := "sql/checks"
	entries, err := fs.ReadDir(fsys, checkDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return p, fmt.Errorf("read data checks: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		name := path.Join(checkDir, e.Name())
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return p, fmt.Errorf("read data check: %w", err)
		}
		stmts := splitStatements(string(b))
		if len(stmts) != 1 {
			return p, fmt.Errorf("data check %s must hold exactly one select, found %d statements", name, len(stmts))
		}
		c := check{name: name, sha: hash(b), sql: strings.TrimSuffix(stmts[0].sql, ";")}
		if splitLine.MatchString(string(b)) {
			return p, fmt.Errorf("data check %s: a data check cannot be split (\"-- split:\" is for transform and mart steps)", name)
		}
		if c.tenants, c.tenantsLine, err = tenantsOf("data check", name, string(b), stmts, false); err != nil {
			return p, err
		}
		p.checks = append(p.checks, c)
	}
	sort.Slice(p.checks, func(i, j int) bool { return p.checks[i].name < p.checks[j].name })
	return p, nil
}

// loadSteps reads the NNN_name.sql files directly in dir (none when dir does not exist).
func loadSteps(fsys fs.FS, dir, kind string) ([]step, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s steps: %w", kind, err)
	}
	var steps []step
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		name := path.Join(dir, e.Name())
		if !stepFile.MatchString(e.Name()) {
			return nil, fmt.Errorf("%s step %s: file name must look like NNN_name.sql", kind, name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read %s step: %w", kind, err)
		}
		s := step{kind: kind, name: name, sha: hash(b), statements: splitStatements(string(b))}
		if len(s.statements) == 0 {
			return nil, fmt.Errorf("%s step %s has no statement", kind, name)
		}
		for _, m := range rebuildLine.FindAllStringSubmatch(string(b), -1) {
			for _, table := range strings.Split(m[2], ",") {
				id, err := tableIdent(strings.TrimSpace(table))
				if err != nil {
					return nil, fmt.Errorf("%s step %s: rebuild: %w", kind, name, err)
				}
				if slices.Contains(s.owned(), id) {
					return nil, fmt.Errorf("%s step %s: table %s is named twice on its rebuild lines", kind, name, id)
				}
				if m[1] != "" {
					s.inPlace = append(s.inPlace, id)
				} else {
					s.rebuild = append(s.rebuild, id)
				}
			}
		}
		if s.split, err = splitOf(kind+" step", name, string(b)); err != nil {
			return nil, err
		}
		if s.tenants, s.tenantsLine, err = tenantsOf(kind+" step", name, string(b), s.statements, s.split != nil); err != nil {
			return nil, err
		}
		if s.split != nil && s.tenants != "" {
			return nil, fmt.Errorf("%s step %s: a step has a \"-- split:\" line or a \"-- tenants:\" line, not both (a split step binds each unit's key to @tenants)", kind, name)
		}
		for _, st := range s.statements {
			for _, m := range stagingTable.FindAllStringSubmatch(st.sql, -1) {
				if !slices.Contains(s.reads, m[1]) {
					s.reads = append(s.reads, m[1])
				}
			}
		}
		steps = append(steps, s)
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].name < steps[j].name })
	return steps, nil
}

// splitOf reads the "-- split: column in (query)" line of a step file, if it has one.
func splitOf(what, name, text string) (*split, error) {
	ms := splitLine.FindAllStringSubmatchIndex(text, -1)
	switch {
	case len(ms) == 0:
		return nil, nil
	case len(ms) > 1:
		return nil, fmt.Errorf("%s %s: more than one \"-- split:\" line", what, name)
	}
	line := 1 + strings.Count(text[:ms[0][0]], "\n")
	m := splitForm.FindStringSubmatch(strings.TrimSuffix(strings.TrimSpace(text[ms[0][2]:ms[0][3]]), ";"))
	if m == nil {
		return nil, fmt.Errorf("%s %s: line %d: want \"-- split: column in (query)\" on one line, the column in lower case and nothing after the closing parenthesis, e.g. \"-- split: tenant_key in (select distinct tenant_key from queue)\"", what, name, line)
	}
	return &split{column: pgx.Identifier{m[1]}.Sanitize(), name: m[1], query: strings.TrimSpace(m[2]), line: line}, nil
}

// tenantsOf reads the "-- tenants:" line of a step or check file (what names it, e.g. "transform step") and
// checks every use of @tenants in its statements: only with the line (or in a split step, which binds it to
// each unit's key), and only in the forms that stay right when @tenants is NULL.
func tenantsOf(what, name, text string, stmts []statement, split bool) (query string, line int, err error) {
	switch ms := tenantsLine.FindAllStringSubmatchIndex(text, -1); {
	case len(ms) > 1:
		return "", 0, fmt.Errorf("%s %s: more than one \"-- tenants:\" line", what, name)
	case len(ms) == 1:
		query = strings.TrimSuffix(strings.TrimSpace(text[ms[0][2]:ms[0][3]]), ";")
		line = 1 + strings.Count(text[:ms[0][0]], "\n")
	}
	for _, st := range stmts {
		code := sqlComment.ReplaceAllString(st.sql, "")
		if query == "" && !split && tenantsParam.MatchString(code) {
			return "", 0, fmt.Errorf("%s %s: line %d uses @tenants, which only a file with a \"-- tenants: <query>\" or \"-- split: column in (query)\" line has", what, name, st.line)
		}
		// @tenants is NULL when pruning would not pay (tenantKeys): any other use ("key = any(@tenants)"
		// alone, some(), in (select unnest(...))) would then match nothing, or fail to type.
		if tenantsParam.MatchString(tenantsUse.ReplaceAllString(code, "")) {
			return "", 0, fmt.Errorf("%s %s: statement at line %d uses @tenants other than as (key = any(@tenants) or @tenants is null), in that order, or @tenants::text: @tenants is NULL when the keys are more than a quarter of the tenants (docs/refresh.md, prune by tenant)", what, name, st.line)
		}
	}
	return query, line, nil
}

func hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// tableIdent turns "schema.table" into a sanitized identifier; both parts are required.
func tableIdent(s string) (string, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 2 || !identPart.MatchString(parts[0]) || !identPart.MatchString(parts[1]) {
		return "", fmt.Errorf("%q is not a schema-qualified table name", s)
	}
	return pgx.Identifier(parts).Sanitize(), nil
}
