package superset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a project's starter dashboard (elt.yaml superset: dashboard:), built for every tenant over
// that tenant's datasets. Charts are laid out in rows of 12 grid columns, in order.
type Template struct {
	Title  string  `yaml:"title"` // dashboard title; {customer} is replaced by the tenant's key
	Charts []Chart `yaml:"charts"`
}

// Chart is one chart of the starter dashboard: an aggregate query over one published relation.
type Chart struct {
	Title    string   `yaml:"title"`    // the chart's name, unique within the dashboard
	Relation string   `yaml:"relation"` // a relation the project publishes (tenants: publish:)
	Kind     string   `yaml:"kind"`     // line, bar, table, heatmap or big_number (see kinds)
	X        string   `yaml:"x"`        // line: the time column; bar and heatmap: the x axis column
	Grain    string   `yaml:"grain"`    // line: day, week or month (default day)
	Y        string   `yaml:"y"`        // heatmap: the y axis column
	Columns  []string `yaml:"columns"`  // table: the columns grouped by
	Metrics  []Metric `yaml:"metrics"`  // SQL aggregates; heatmap and big_number take one
	Where    string   `yaml:"where"`    // an SQL condition over the relation's columns, or empty
	Limit    int      `yaml:"limit"`    // row limit (bar: the top N by the first metric)
	Width    int      `yaml:"width"`    // grid columns of 12 (default 6)
	Height   int      `yaml:"height"`   // grid rows (default 50)
}

// Metric is one aggregate: an SQL expression over the relation's columns and its label.
type Metric struct {
	Label string `yaml:"label"`
	SQL   string `yaml:"sql"`
}

var grains = map[string]string{"day": "P1D", "week": "P1W", "month": "P1M"}

// kind is what elt knows of a chart kind: Superset's viz_type, and its form data (what the dashboard
// renders from) and query (what the chart data API runs) for a chart.
type kind struct {
	vizType string
	check   func(c *Chart) error
	form    func(c *Chart, fd map[string]any)
	query   func(c *Chart, q map[string]any)
}

var kinds = map[string]kind{
	"line": {
		vizType: "echarts_timeseries_line",
		check: func(c *Chart) error {
			if c.X == "" {
				return fmt.Errorf("x: the time column is missing")
			}
			if _, ok := grains[c.grain()]; !ok {
				return fmt.Errorf("grain %q: want day, week or month", c.Grain)
			}
			return nil
		},
		form: func(c *Chart, fd map[string]any) {
			fd["x_axis"], fd["time_grain_sqla"] = c.X, grains[c.grain()]
			fd["metrics"], fd["groupby"] = c.adhocMetrics(), []any{}
			fd["rich_tooltip"], fd["show_legend"], fd["y_axis_format"] = true, len(c.Metrics) > 1, "SMART_NUMBER"
		},
		query: func(c *Chart, q map[string]any) {
			q["columns"] = []any{map[string]any{"columnType": "BASE_AXIS", "expressionType": "SQL",
				"label": c.X, "sqlExpression": c.X, "timeGrain": grains[c.grain()]}}
			q["metrics"], q["orderby"] = c.adhocMetrics(), []any{[]any{c.X, true}}
		},
	},
	"bar": {
		vizType: "echarts_timeseries_bar",
		check: func(c *Chart) error {
			if c.X == "" {
				return fmt.Errorf("x: the category column is missing")
			}
			return nil
		},
		form: func(c *Chart, fd map[string]any) {
			fd["x_axis"], fd["metrics"], fd["groupby"] = c.X, c.adhocMetrics(), []any{}
			fd["x_axis_sort"], fd["x_axis_sort_asc"] = c.Metrics[0].Label, false
			fd["show_legend"], fd["y_axis_format"] = false, "SMART_NUMBER"
		},
		query: func(c *Chart, q map[string]any) {
			q["columns"] = []any{map[string]any{"columnType": "BASE_AXIS", "expressionType": "SQL",
				"label": c.X, "sqlExpression": c.X}}
			q["metrics"], q["orderby"] = c.adhocMetrics(), []any{[]any{c.adhocMetrics()[0], false}}
		},
	},
	"table": {
		vizType: "table",
		check: func(c *Chart) error {
			if len(c.Columns) == 0 {
				return fmt.Errorf("columns: a table groups by at least one column")
			}
			return nil
		},
		form: func(c *Chart, fd map[string]any) {
			fd["query_mode"], fd["groupby"], fd["metrics"] = "aggregate", anys(c.Columns), c.adhocMetrics()
			fd["order_desc"], fd["timeseries_limit_metric"] = true, c.adhocMetrics()[0]
		},
		query: func(c *Chart, q map[string]any) {
			q["columns"], q["metrics"] = anys(c.Columns), c.adhocMetrics()
			q["orderby"] = []any{[]any{c.adhocMetrics()[0], false}}
		},
	},
	"heatmap": {
		vizType: "heatmap_v2",
		check: func(c *Chart) error {
			if c.X == "" || c.Y == "" {
				return fmt.Errorf("x and y: a heatmap needs both columns")
			}
			if len(c.Metrics) != 1 {
				return fmt.Errorf("metrics: a heatmap shows exactly one")
			}
			return nil
		},
		form: func(c *Chart, fd map[string]any) {
			fd["x_axis"], fd["groupby"], fd["metric"] = c.X, c.Y, c.adhocMetrics()[0]
			fd["normalize_across"], fd["linear_color_scheme"], fd["show_values"] = "heatmap", "superset_seq_1", true
			fd["sort_x_axis"], fd["sort_y_axis"], fd["value_bounds"] = "alpha_asc", "alpha_asc", []any{nil, nil}
		},
		query: func(c *Chart, q map[string]any) {
			q["columns"], q["metrics"] = []any{c.X, c.Y}, c.adhocMetrics()
			q["orderby"] = []any{[]any{c.X, true}, []any{c.Y, true}}
		},
	},
	"big_number": {
		vizType: "big_number_total",
		check: func(c *Chart) error {
			if len(c.Metrics) != 1 {
				return fmt.Errorf("metrics: a big number shows exactly one")
			}
			return nil
		},
		form: func(c *Chart, fd map[string]any) {
			fd["metric"], fd["y_axis_format"], fd["subheader"] = c.adhocMetrics()[0], "SMART_NUMBER", c.Metrics[0].Label
		},
		query: func(c *Chart, q map[string]any) { q["metrics"] = c.adhocMetrics() },
	},
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

func (c *Chart) grain() string {
	if c.Grain == "" {
		return "day"
	}
	return c.Grain
}

func (c *Chart) adhocMetrics() []any {
	out := make([]any, len(c.Metrics))
	for i, m := range c.Metrics {
		out[i] = map[string]any{"expressionType": "SQL", "sqlExpression": m.SQL, "label": m.Label,
			"hasCustomLabel": true, "optionName": "metric_" + strconv.Itoa(i)}
	}
	return out
}

var columnRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// LoadTemplate reads a dashboard template and checks it against the published relations (name: columns).
func LoadTemplate(path string, published map[string][]string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("superset dashboard template: %w", err)
	}
	var t Template
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("superset dashboard template %s: %w", path, err)
	}
	if err := t.check(published); err != nil {
		return nil, fmt.Errorf("superset dashboard template %s: %w", path, err)
	}
	return &t, nil
}

func (t *Template) check(published map[string][]string) error {
	if strings.TrimSpace(t.Title) == "" {
		return fmt.Errorf("title is missing")
	}
	if len(t.Charts) == 0 {
		return fmt.Errorf("charts: none")
	}
	seen := map[string]bool{}
	for i := range t.Charts {
		c := &t.Charts[i]
		where := fmt.Sprintf("charts[%d]", i)
		if c.Title == "" {
			return fmt.Errorf("%s: title is missing", where)
		}
		where = fmt.Sprintf("chart %q", c.Title)
		if seen[c.Title] {
			return fmt.Errorf("%s: two charts have this title", where)
		}
		seen[c.Title] = true
		cols, ok := published[c.Relation]
		if !ok {
			return fmt.Errorf("%s: relation %q is not published (tenants: publish: in elt.yaml)", where, c.Relation)
		}
		k, ok := kinds[c.Kind]
		if !ok {
			return fmt.Errorf("%s: kind %q: want line, bar, table, heatmap or big_number", where, c.Kind)
		}
		if len(c.Metrics) == 0 {
			return fmt.Errorf("%s: metrics: at least one", where)
		}
		for _, m := range c.Metrics {
			if m.Label == "" || strings.TrimSpace(m.SQL) == "" {
				return fmt.Errorf("%s: every metric needs a label and sql", where)
			}
		}
		if err := k.check(c); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for _, col := range append([]string{c.X, c.Y}, c.Columns...) {
			if col == "" {
				continue
			}
			if !columnRE.MatchString(col) || !contains(cols, col) {
				return fmt.Errorf("%s: column %q is not a column of %s (%s)", where, col, c.Relation, strings.Join(cols, ", "))
			}
		}
		if c.Width == 0 {
			c.Width = 6
		}
		if c.Width < 1 || c.Width > 12 {
			return fmt.Errorf("%s: width %d: want 1 to 12 grid columns", where, c.Width)
		}
		if c.Height == 0 {
			c.Height = 50
		}
		if c.Limit < 0 {
			return fmt.Errorf("%s: limit %d is negative", where, c.Limit)
		}
	}
	return nil
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

func (c *Chart) rowLimit() int {
	if c.Limit > 0 {
		return c.Limit
	}
	return 10000
}

// VizType is Superset's name of the chart's kind.
func (c *Chart) VizType() string { return kinds[c.Kind].vizType }

// params is the chart's form data for the dataset with id ds, as JSON (Superset keeps it as a string).
func (c *Chart) params(ds int) string {
	fd := map[string]any{
		"datasource": fmt.Sprintf("%d__table", ds), "viz_type": c.VizType(), "row_limit": c.rowLimit(),
		"adhoc_filters": c.adhocFilters(),
	}
	kinds[c.Kind].form(c, fd)
	return mustJSON(fd)
}

func (c *Chart) adhocFilters() []any {
	if c.Where == "" {
		return []any{}
	}
	return []any{map[string]any{"expressionType": "SQL", "clause": "WHERE", "sqlExpression": c.Where}}
}

// queryContext is what the chart data API runs for the chart (GET /api/v1/chart/{id}/data/), as JSON.
func (c *Chart) queryContext(ds int) string {
	q := map[string]any{"filters": []any{}, "extras": map[string]any{"where": c.Where, "having": ""},
		"row_limit": c.rowLimit(), "columns": []any{}, "orderby": []any{}, "annotation_layers": []any{}}
	kinds[c.Kind].query(c, q)
	var fd map[string]any
	_ = json.Unmarshal([]byte(c.params(ds)), &fd)
	qc := map[string]any{
		"datasource": map[string]any{"id": ds, "type": "table"}, "force": false, "queries": []any{q},
		"form_data": fd, "result_format": "json", "result_type": "full",
	}
	return mustJSON(qc)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// position is the dashboard's layout (position_json): a header and rows of the charts, in order; ids are
// the charts' ids, in the template's order.
func (t *Template) position(title string, ids []int) string {
	p := map[string]any{
		"DASHBOARD_VERSION_KEY": "v2",
		"ROOT_ID":               map[string]any{"type": "ROOT", "id": "ROOT_ID", "children": []any{"GRID_ID"}},
		"HEADER_ID":             map[string]any{"type": "HEADER", "id": "HEADER_ID", "meta": map[string]any{"text": title}},
	}
	var rows []any
	var row map[string]any
	width := 0
	for i, c := range t.Charts {
		if row == nil || width+c.Width > 12 {
			id := fmt.Sprintf("ROW-%d", len(rows)+1)
			row = map[string]any{"type": "ROW", "id": id, "children": []any{}, "parents": []any{"ROOT_ID", "GRID_ID"},
				"meta": map[string]any{"background": "BACKGROUND_TRANSPARENT"}}
			p[id] = row
			rows = append(rows, id)
			width = 0
		}
		id := fmt.Sprintf("CHART-%d", i+1)
		row["children"] = append(row["children"].([]any), id)
		width += c.Width
		p[id] = map[string]any{"type": "CHART", "id": id, "children": []any{},
			"parents": []any{"ROOT_ID", "GRID_ID", row["id"]},
			"meta":    map[string]any{"chartId": ids[i], "width": c.Width, "height": c.Height, "sliceName": c.Title}}
	}
	p["GRID_ID"] = map[string]any{"type": "GRID", "id": "GRID_ID", "children": rows, "parents": []any{"ROOT_ID"}}
	return mustJSON(p)
}
