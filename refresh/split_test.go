package refresh

import (
	"testing"

	"os"
	"path/filepath"

	"github.com/google/go-cmp/cmp"
)

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		want   []statement
	}{
		{"Empty", "  \n-- only a comment\n/* and; another */\n", nil},
		{"Two", "select 1;\nselect 2;", []statement{{"select 1;", 1}, {"select 2;", 2}}},
		{"NoFinalSemicolon", "select 1;\n\n  select 2\n", []statement{{"select 1;", 1}, {"select 2", 3}}},
		{"SemicolonInString", "select 'a;b', 'it''s; ok';\nselect 2;", []statement{{"select 'a;b', 'it''s; ok';", 1}, {"select 2;", 2}}},
		{"EscapeString", "select E'a\\';b';\nselect 2;", []statement{{"select E'a\\';b';", 1}, {"select 2;", 2}}},
		{"QuotedIdentifier", "select 1 as \"x;y\";", []statement{{"select 1 as \"x;y\";", 1}}},
		{"LineComment", "select 1; -- a; b\nselect 2;", []statement{{"select 1;", 1}, {"-- a; b\nselect 2;", 1}}},
		{"BlockComment", "/* a;\n b; /* nested; */ */ select 1;", []statement{{"/* a;\n b; /* nested; */ */ select 1;", 1}}},
		{"DollarQuote", "do $$ begin perform 1; end $$;\nselect 2;", []statement{{"do $$ begin perform 1; end $$;", 1}, {"select 2;", 2}}},
		{"TaggedDollarQuote", "select $f$ ; $$ ; $f$;\nselect $1;", []statement{{"select $f$ ; $$ ; $f$;", 1}, {"select $1;", 2}}},
		{"LinesAfterMultilineString", "select 'a\nb';\n\nselect 2;", []statement{{"select 'a\nb';", 1}, {"select 2;", 4}}},
		{"NamedParameter", "select @batch_from;", []statement{{"select @batch_from;", 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := splitStatements(tt.script)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(statement{})); diff != "" {
				t.Errorf("splitStatements(%q) (-want +got):\n%s", tt.script, diff)
			}
		})
	}
}

// TestDefaultProjectSQL: the default project's steps and checks load, every step is named NNN_name.sql, has
// a rebuild line, and the staging tables it reads are found.
func TestDefaultProjectSQL(t *testing.T) {
	t.Parallel()
	p, err := loadPlan(os.DirFS(filepath.Join("..")))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.transforms) < 4 || len(p.checks) < 4 || len(p.marts) < 1 {
		t.Fatalf("loaded %d transforms, %d checks and %d mart steps, want at least 4, 4 and 1", len(p.transforms), len(p.checks), len(p.marts))
	}
	for _, s := range append(p.transforms, p.marts...) {
		if len(s.owned()) == 0 {
			t.Errorf("step %s has no -- rebuild: line, so --full could not rebuild it", s.name)
		}
	}
	want := map[string][]string{
		"sql/010_customers.sql": {"customers"}, "sql/020_users.sql": {"users"}, "sql/030_events.sql": {"events"},
		"sql/040_rollups.sql": nil, "sql/marts/010_marts.sql": nil,
	}
	got := map[string][]string{}
	for _, s := range append(p.transforms, p.marts...) {
		got[s.name] = s.reads
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("staging tables each step reads (-want +got):\n%s", diff)
	}
}
