package project_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/elt-dev/elt/project"
)

const valid = `
sources: []
schemas: [app]
tenants:
  key: org_id
  customers: app.orgs
  publish:
    - name: orgs
      from: app.orgs
      comment: Your organisation.
      columns:
        org_id: Its id.
        name: Its name.
`

func TestParseValid(t *testing.T) {
	t.Parallel()
	p, err := project.Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	want := []project.Column{{Name: "org_id", Comment: "Its id."}, {Name: "name", Comment: "Its name."}}
	if diff := cmp.Diff(want, []project.Column(p.Tenants.Publish[0].Columns)); diff != "" {
		t.Errorf("columns, in file order (-want +got):\n%s", diff)
	}
	if p.Tenants.Published("orgs") == nil || p.Tenants.Published("nope") != nil {
		t.Error("Published does not find the declared relation (or finds an undeclared one)")
	}
}

// Each mistake a user makes in elt.yaml is an error that says what and where.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, doc, want string }{
		{"TopLevelTypo", "sorces: []\n", `line 1: unknown key "sorces"`},
		{"TenantsTypo", "schemas: [app]\ntenants:\n  kee: org_id\n", `line 3: unknown key "kee"`},
		{"ReservedSchema", "schemas: [elt]\n", "schemas: elt is reserved"},
		{"TenantSchema", "schemas: [tenant_abc]\n", "is reserved"},
		{"BadKey", "schemas: [app]\ntenants:\n  key: Org-Id\n", `key "Org-Id" is not a lower-case SQL identifier`},
		{"FromOutsideSchemas", strings.Replace(valid, "from: app.orgs", "from: other.orgs", 1), "other.orgs is not in one of the project's schemas"},
		{"UnqualifiedFrom", strings.Replace(valid, "from: app.orgs", "from: orgs", 1), `"orgs" is not a schema-qualified relation name`},
		{"NoComment", strings.Replace(valid, "comment: Your organisation.", "comment: \"\"", 1), "comment is required"},
		{"ColumnWithoutComment", strings.Replace(valid, "name: Its name.", "name: \"\"", 1), "column name has no comment"},
		{"DuplicateRelation", valid + "    - name: orgs\n      from: app.orgs\n      comment: x\n      columns: {org_id: x}\n", "published twice"},
		{"ReportHalf", valid + "  report: {tenant: a.sql}\n", "report needs both tenant and owner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := project.Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLocate(t *testing.T) {
	t.Parallel()
	tests := []struct{ dir, config, wantDir, wantConfig string }{
		{"", "", ".", "elt.yaml"},
		{"p", "", "p", filepath.Join("p", "elt.yaml")},
		{"", filepath.Join("q", "other.yaml"), "q", filepath.Join("q", "other.yaml")},
		{"p", "x.yaml", "p", "x.yaml"},
	}
	for _, tt := range tests {
		d, c := project.Locate(tt.dir, tt.config)
		if d != tt.wantDir || c != tt.wantConfig {
			t.Errorf("Locate(%q, %q) = %q, %q; want %q, %q", tt.dir, tt.config, d, c, tt.wantDir, tt.wantConfig)
		}
	}
}

// The migration file system has the migrations at its root and views/ beside them, and nothing else of the
// project.
func TestMigrationFS(t *testing.T) {
	t.Parallel()
	m := project.MigrationFS(fstest.MapFS{
		"elt.yaml":                  {Data: []byte("x")},
		"migrations/001_a.sql":      {Data: []byte("create schema a;")},
		"migrations/002_b.sql":      {Data: []byte("{{ template \"views/v.sql\" . }}")},
		"views/v.sql":               {Data: []byte("create view a.v as select 1;")},
		"sql/010_x.sql":             {Data: []byte("select 1;")},
		"migrations/notes/draft.md": {Data: []byte("x")},
	})
	var got []string
	if err := fs.WalkDir(m, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"001_a.sql", "002_b.sql", "views/v.sql"}, got); diff != "" {
		t.Errorf("files of the migration FS (-want +got):\n%s", diff)
	}
}

func TestInitRefusesAnExistingProject(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := fstest.MapFS{"elt.yaml": {Data: []byte(valid)}, "sql/010_x.sql": {Data: []byte("select 1;")}, "docs/readme.md": {Data: []byte("# p")}}
	files, err := project.Init(dir, src, "docs/readme.md")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"README.md", "elt.yaml", "sql/010_x.sql"}, files); diff != "" {
		t.Errorf("files written (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Error(err)
	}
	if _, err := project.Init(dir, src, ""); err == nil || !strings.Contains(err.Error(), "already holds a project") {
		t.Errorf("second Init: %v, want a refusal", err)
	}
}
