// Package project reads a project folder: the unit a company owns, reviews and versions, from which elt runs.
//
// A project folder holds
//
//	elt.yaml        the sources to extract, the project's schemas, and what tenants may read (tenants:)
//	migrations/     the project's DDL, NNN_name.sql, applied by elt migrate on the project track
//	views/          templates the migrations include ({{ template "views/name.sql" . }})
//	sql/            transform steps (NNN_name.sql), data checks (checks/), mart steps (marts/NNN_name.sql),
//	                and the queries of elt tenant report (report/)
//
// elt reads it at run time: no SQL of a model is compiled into the binary. The usage-analytics model of the
// demo API is the default project, which elt init writes.
package project

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// ConfigFile is the name of a project's config file.
const ConfigFile = "elt.yaml"

// Project is a loaded project folder.
type Project struct {
	Dir        string // absolute path of the folder
	ConfigPath string // the config file read
	// Config is the config file's text; its sources: part is package extract's (extract.ParseConfig).
	Config []byte
	// Schemas are the project's own schemas, created by its migrations. Everything in them belongs to
	// elt_owner and is private: tenants read only what Tenants publishes, through their own schema.
	Schemas []string
	// Tenants declares the tenant key and what tenants may read; nil when the project has no tenants.
	Tenants *Tenants
	// Superset says what elt superset sync builds for every tenant; nil when the project says nothing.
	Superset *Superset
}

// Superset is the superset: part of elt.yaml.
type Superset struct {
	// Dashboard is the starter dashboard's template, relative to the project folder (package superset's
	// Template); empty: no dashboard.
	Dashboard string `yaml:"dashboard"`
	// Users maps a customer to existing Superset users (by user name) given its role; a customer not listed
	// gets one user named like it, created by elt superset sync.
	Users map[string][]string `yaml:"users"`
}

// Tenants is the tenants: part of elt.yaml.
type Tenants struct {
	// Key is the tenant key: the column that every table holding tenants' rows carries. Every table of the
	// project's schemas partitioned by list on this column gets one partition per tenant.
	Key string `yaml:"key"`
	// Customers is a relation (schema.table) whose Key column lists the known customers; elt tenant add
	// refuses others. Optional.
	Customers string `yaml:"customers"`
	// TimeZone is a column of Customers holding each customer's IANA time zone: a tenant login's sessions
	// default to its customer's zone unless elt tenant add (or limits) is given one. Optional.
	TimeZone string `yaml:"time_zone"`
	// Comment is the comment of every tenant's schema (what a BI tool shows for it).
	Comment string `yaml:"comment"`
	// Staging maps each staging table to an SQL expression over its columns record and parent that gives
	// the tenant key of a raw record, so that a purge deletes raw records too.
	Staging map[string]string `yaml:"staging"`
	// Publish lists the relations every tenant reads, each built in the tenant's own schema from the
	// tenant's own partition.
	Publish []Relation `yaml:"publish"`
	// Report names the queries of elt tenant report.
	Report *Report `yaml:"report"`
}

// Relation is one relation tenants may read: a view in each tenant's schema of the listed columns of the
// tenant's own partition of From.
type Relation struct {
	Name    string  `yaml:"name"`    // relation name in the tenant's schema
	From    string  `yaml:"from"`    // schema.table, partitioned by list on the tenant key
	Comment string  `yaml:"comment"` // what it holds, for the analyst
	Columns Columns `yaml:"columns"` // in order: name and comment
}

// Column is one published column.
type Column struct {
	Name    string
	Comment string
}

// Columns keeps the order in which a mapping lists them.
type Columns []Column

// UnmarshalYAML reads a mapping of column name to comment, in order.
func (c *Columns) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: columns must be a mapping of column name to comment", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: the comment of column %s must be text", v.Line, k.Value)
		}
		*c = append(*c, Column{Name: k.Value, Comment: v.Value})
	}
	return nil
}

// Report names the two queries of elt tenant report, relative to the project folder: Tenant runs logged in
// as the tenant (its schema on the search path), Owner runs as elt with @tenant set to the customer's key;
// both take @days. The report passes when both return the same rows.
type Report struct {
	Tenant string `yaml:"tenant"`
	Owner  string `yaml:"owner"`
}

// document is elt.yaml; its sources are parsed (with ${VAR} expansion) by package extract, which this
// package does not import (extract's tests use the project harness).
type document struct {
	Sources  yaml.Node `yaml:"sources"`
	Schemas  []string  `yaml:"schemas"`
	Tenants  *Tenants  `yaml:"tenants"`
	Superset *Superset `yaml:"superset"`
}

// Locate resolves the project folder and config file from --project (ELT_PROJECT) and --config
// (ELT_CONFIG): a project folder alone means its elt.yaml; a config file alone means its folder; neither
// means elt.yaml in the working directory.
func Locate(dir, config string) (string, string) {
	switch {
	case dir == "" && config == "":
		return ".", ConfigFile
	case config == "":
		return dir, filepath.Join(dir, ConfigFile)
	case dir == "":
		return filepath.Dir(config), config
	}
	return dir, config
}

// Load reads and validates the project in dir with its config file config (see Locate).
func Load(dir, config string) (*Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(config)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read project: %w (run elt in a project folder, or name one with --project or ELT_PROJECT; elt init DIR writes a new one)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("read project: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("project config %s: %w", config, err)
	}
	p.Dir, p.ConfigPath = abs, config
	if err := p.checkFiles(); err != nil {
		return nil, fmt.Errorf("project %s: %w", abs, err)
	}
	return p, nil
}

// Parse parses and validates a config document without reading the folder around it.
func Parse(b []byte) (*Project, error) {
	var doc document
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, describeYAML(err)
	}
	p := &Project{Config: b, Schemas: doc.Schemas, Tenants: doc.Tenants, Superset: doc.Superset}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// describeYAML rewords yaml.v3's unknown-field errors ("field sorces not found in type project.document").
func describeYAML(err error) error {
	msg := err.Error()
	re := regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)
	if m := re.FindAllStringSubmatch(msg, -1); m != nil {
		var parts []string
		for _, x := range m {
			parts = append(parts, fmt.Sprintf("line %s: unknown key %q", x[1], x[2]))
		}
		return errors.New(strings.Join(parts, "; "))
	}
	return err
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// reserved are schemas a project may not claim: elt's own, PostgreSQL's, and the tenants'.
func reserved(s string) bool {
	return s == "elt" || s == "staging" || s == "elt_admin" || s == "public" || s == "information_schema" ||
		strings.HasPrefix(s, "pg_") || strings.HasPrefix(s, "tenant_")
}

func (p *Project) validate() error {
	seen := map[string]bool{}
	for _, s := range p.Schemas {
		if !identRE.MatchString(s) {
			return fmt.Errorf("schemas: %q is not a lower-case SQL identifier", s)
		}
		if reserved(s) {
			return fmt.Errorf("schemas: %s is reserved (elt, staging, elt_admin, public, pg_* and tenant_* belong to elt or PostgreSQL)", s)
		}
		if seen[s] {
			return fmt.Errorf("schemas: %s is listed twice", s)
		}
		seen[s] = true
	}
	if p.Tenants == nil {
		if p.Superset != nil {
			return fmt.Errorf("superset: needs a tenants: section (Superset is provisioned per tenant)")
		}
		return nil
	}
	t := p.Tenants
	if !identRE.MatchString(t.Key) {
		return fmt.Errorf("tenants: key %q is not a lower-case SQL identifier (the tenant key column, e.g. account_id)", t.Key)
	}
	if t.Customers != "" {
		if err := p.checkRelation("tenants: customers", t.Customers); err != nil {
			return err
		}
	}
	if t.TimeZone != "" && (t.Customers == "" || !identRE.MatchString(t.TimeZone)) {
		return fmt.Errorf("tenants: time_zone %q must be a lower-case column name of the tenants: customers relation (which must be set)", t.TimeZone)
	}
	for table, expr := range t.Staging {
		if !identRE.MatchString(table) {
			return fmt.Errorf("tenants: staging: %q is not a staging table name", table)
		}
		if strings.TrimSpace(expr) == "" {
			return fmt.Errorf("tenants: staging: %s: the tenant key expression is empty", table)
		}
	}
	names := map[string]bool{}
	for i, r := range t.Publish {
		where := fmt.Sprintf("tenants: publish[%d]", i)
		if r.Name != "" {
			where = "tenants: publish " + r.Name
		}
		if !identRE.MatchString(r.Name) {
			return fmt.Errorf("%s: name %q is not a lower-case SQL identifier", where, r.Name)
		}
		if names[r.Name] {
			return fmt.Errorf("%s: published twice", where)
		}
		names[r.Name] = true
		if err := p.checkRelation(where+": from", r.From); err != nil {
			return err
		}
		if strings.TrimSpace(r.Comment) == "" {
			return fmt.Errorf("%s: comment is required (it is what an analyst reads in the BI tool)", where)
		}
		if len(r.Columns) == 0 {
			return fmt.Errorf("%s: columns is empty", where)
		}
		cols := map[string]bool{}
		for _, c := range r.Columns {
			if !identRE.MatchString(c.Name) {
				return fmt.Errorf("%s: column %q is not a lower-case SQL identifier", where, c.Name)
			}
			if cols[c.Name] {
				return fmt.Errorf("%s: column %s is listed twice", where, c.Name)
			}
			cols[c.Name] = true
			if strings.TrimSpace(c.Comment) == "" {
				return fmt.Errorf("%s: column %s has no comment", where, c.Name)
			}
		}
	}
	if t.Report != nil && (t.Report.Tenant == "" || t.Report.Owner == "") {
		return errors.New("tenants: report needs both tenant and owner (files with the two queries)")
	}
	return nil
}

// checkRelation accepts schema.table in one of the project's schemas.
func (p *Project) checkRelation(where, rel string) error {
	schema, table, ok := strings.Cut(rel, ".")
	if !ok || !identRE.MatchString(schema) || !identRE.MatchString(table) {
		return fmt.Errorf("%s: %q is not a schema-qualified relation name (schema.table)", where, rel)
	}
	if !slices.Contains(p.Schemas, schema) {
		return fmt.Errorf("%s: %s is not in one of the project's schemas (%s)", where, rel, strings.Join(p.Schemas, ", "))
	}
	return nil
}

// checkFiles verifies the folder has what the config names.
func (p *Project) checkFiles() error {
	if p.Tenants != nil && p.Tenants.Report != nil {
		for _, f := range []string{p.Tenants.Report.Tenant, p.Tenants.Report.Owner} {
			if _, err := p.ReadFile(f); err != nil {
				return fmt.Errorf("tenants: report: %w", err)
			}
		}
	}
	if p.Superset != nil && p.Superset.Dashboard != "" {
		if _, err := p.ReadFile(p.Superset.Dashboard); err != nil {
			return fmt.Errorf("superset: dashboard: %w", err)
		}
	}
	return nil
}

// ReadFile reads a file of the project by its slash-separated path relative to the folder.
func (p *Project) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, fmt.Errorf("%s is not a path inside the project folder", name)
	}
	return fs.ReadFile(os.DirFS(p.Dir), name)
}

// FS is the project folder.
func (p *Project) FS() fs.FS { return os.DirFS(p.Dir) }

// Migrations is the file system of the project's migration track: migrations/ at its root and views/ as a
// subfolder of it, so a migration includes a view with {{ template "views/name.sql" . }}.
func (p *Project) Migrations() fs.FS { return MigrationFS(p.FS()) }

// MigrationFS presents the migrations/ folder of a project file system as the root, with the project's
// views/ folder beside the migration files.
func MigrationFS(project fs.FS) fs.FS { return migrationFS{project} }

type migrationFS struct{ files fs.FS }

func (m migrationFS) resolve(name string) string {
	if name == "views" || strings.HasPrefix(name, "views/") {
		return name
	}
	return path.Join("migrations", name)
}

// Open opens name, mapping it onto the project folder.
func (m migrationFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	return m.files.Open(m.resolve(name))
}

// ReadDir lists name; the root lists the migration files and, when there is one, the views folder.
func (m migrationFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	entries, err := fs.ReadDir(m.files, m.resolve(name))
	if err != nil || name != "." {
		return entries, err
	}
	entries = slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return e.IsDir() })
	views, err := fs.Stat(m.files, "views")
	if errors.Is(err, fs.ErrNotExist) {
		return entries, nil
	}
	if err != nil {
		return nil, err
	}
	return append(entries, fs.FileInfoToDirEntry(views)), nil
}

// Published returns the published relation named name, or nil.
func (t *Tenants) Published(name string) *Relation {
	for i := range t.Publish {
		if t.Publish[i].Name == name {
			return &t.Publish[i]
		}
	}
	return nil
}
