package superset

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRison(t *testing.T) {
	got := Q().Filter("database_name", "eq", "it's cus_0001!").Filter("id", "gt", 3).Set("page", 0).Set("flag", true).String()
	want := `(filters:!((col:'database_name',opr:'eq',value:'it!'s cus_0001!!'),(col:'id',opr:'gt',value:3)),page:0,flag:!t)`
	if got != want {
		t.Errorf("rison\n got %s\nwant %s", got, want)
	}
}

func TestMaskedURI(t *testing.T) {
	got := maskedURI("postgresql+psycopg2://tenant_ab:p%40ss:w@127.0.0.1:5432/elt?sslmode=require")
	want := "postgresql+psycopg2://tenant_ab:XXXXXXXXXX@127.0.0.1:5432/elt?sslmode=require"
	if got != want {
		t.Errorf("masked %s, want %s", got, want)
	}
}

var published = map[string][]string{
	"daily":    {"day", "active_users"},
	"features": {"day", "feature", "events"},
}

func load(t *testing.T, yaml string) (*Template, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return LoadTemplate(p, published)
}

func TestTemplateRefusals(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"title: T\ncharts: []\n", "charts: none"},
		{"charts:\n  - {title: A}\n", "title is missing"},
		{"title: T\ncharts:\n  - {title: A, relation: nope, kind: line, x: day, metrics: [{label: L, sql: x}]}\n", `relation "nope" is not published`},
		{"title: T\ncharts:\n  - {title: A, relation: daily, kind: pie, x: day, metrics: [{label: L, sql: x}]}\n", `kind "pie"`},
		{"title: T\ncharts:\n  - {title: A, relation: daily, kind: line, x: week, metrics: [{label: L, sql: x}]}\n", `column "week" is not a column of daily (day, active_users)`},
		{"title: T\ncharts:\n  - {title: A, relation: daily, kind: line, x: day, grain: hour, metrics: [{label: L, sql: x}]}\n", `grain "hour"`},
		{"title: T\ncharts:\n  - {title: A, relation: daily, kind: line, x: day}\n", "metrics: at least one"},
		{"title: T\ncharts:\n  - {title: A, relation: features, kind: heatmap, x: day, metrics: [{label: L, sql: x}]}\n", "a heatmap needs both columns"},
		{"title: T\ncharts:\n  - {title: A, relation: daily, kind: line, x: day, width: 13, metrics: [{label: L, sql: x}]}\n", "width 13"},
		{"title: T\ncharts:\n  - {title: A, relation: daily, kind: line, x: day, metrics: [{label: L, sql: x}]}\n  - {title: A, relation: daily, kind: line, x: day, metrics: [{label: L, sql: x}]}\n", "two charts have this title"},
		{"title: T\ncolour: red\ncharts: []\n", "field colour not found"},
	} {
		_, err := load(t, tc.yaml)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.yaml, err, tc.want)
		}
	}
}

// TestChartQuery: the query a chart's saved query context runs is the template's aggregate, over the
// dataset the chart names; the layout puts charts in rows of 12 grid columns.
func TestChartQuery(t *testing.T) {
	tpl, err := load(t, `title: "{customer} usage"
charts:
  - {title: Daily, relation: daily, kind: line, x: day, grain: week, width: 12, metrics: [{label: Active, sql: sum(active_users)}]}
  - {title: Top, relation: features, kind: bar, x: feature, where: day > current_date - 30, limit: 5, metrics: [{label: Events, sql: sum(events)}]}
  - {title: Total, relation: features, kind: big_number, metrics: [{label: Events, sql: sum(events)}]}
`)
	if err != nil {
		t.Fatal(err)
	}
	var qc struct {
		Datasource map[string]any `json:"datasource"`
		Queries    []struct {
			Columns  []map[string]any `json:"columns"`
			Metrics  []map[string]any `json:"metrics"`
			Extras   map[string]any   `json:"extras"`
			RowLimit int              `json:"row_limit"`
		} `json:"queries"`
	}
	if err := json.Unmarshal([]byte(tpl.Charts[1].queryContext(7)), &qc); err != nil {
		t.Fatal(err)
	}
	q := qc.Queries[0]
	got := []any{qc.Datasource["id"], q.Columns[0]["sqlExpression"], q.Metrics[0]["sqlExpression"], q.Extras["where"], q.RowLimit}
	if diff := cmp.Diff([]any{float64(7), "feature", "sum(events)", "day > current_date - 30", 5}, got); diff != "" {
		t.Errorf("bar chart query (-want +got):\n%s", diff)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(tpl.position("x", []int{11, 12, 13})), &raw); err != nil {
		t.Fatal(err)
	}
	pos := map[string]struct {
		Children []string       `json:"children"`
		Meta     map[string]any `json:"meta"`
	}{}
	for _, k := range []string{"ROW-1", "ROW-2", "CHART-3"} {
		v := pos[k]
		if err := json.Unmarshal(raw[k], &v); err != nil {
			t.Fatal(k, err)
		}
		pos[k] = v
	}
	rows := [][]string{pos["ROW-1"].Children, pos["ROW-2"].Children}
	if diff := cmp.Diff([][]string{{"CHART-1"}, {"CHART-2", "CHART-3"}}, rows); diff != "" {
		t.Errorf("layout rows (-want +got):\n%s", diff)
	}
	if pos["CHART-3"].Meta["chartId"] != float64(13) {
		t.Errorf("CHART-3 shows chart %v, want 13", pos["CHART-3"].Meta["chartId"])
	}
}
