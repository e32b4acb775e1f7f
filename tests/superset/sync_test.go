package superset_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/superset"
	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
	"github.com/elt-dev/elt/tests/pgtest"
)

var (
	buildOnce sync.Once
	eltBin    string
	buildErr  error
)

// elt builds the elt binary once for this package's tests.
func elt(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "elt-superset-bin-")
		if err != nil {
			buildErr = err
			return
		}
		eltBin = filepath.Join(dir, "elt")
		out, err := exec.Command("go", "build", "-o", eltBin, "github.com/elt-dev/elt/cmd/elt").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build elt: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return eltBin
}

func script(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(pgtest.RepoRoot(), "superset", "superset.sh")}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("superset.sh %v: %v\n%s\n(make test installs Superset first: make superset-install)", args, err, out)
	}
	return string(out)
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

type run struct {
	out, err string
	code     int
}

func runElt(t *testing.T, env []string, args ...string) run {
	t.Helper()
	cmd := exec.Command(elt(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return run{o.String(), e.String(), code}
}

func mustElt(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := runElt(t, env, args...)
	if r.code != 0 {
		t.Fatalf("elt %v: exit %d\n%s%s", args, r.code, r.out, r.err)
	}
	return r.out + r.err // what it printed, and its log
}

// chartData is one chart's rows as the chart data API returns them: column names, Superset's generic types
// (2: temporal) and rows.
type chartData struct {
	Result []struct {
		Colnames []string         `json:"colnames"`
		Coltypes []int            `json:"coltypes"`
		Data     []map[string]any `json:"data"`
		Error    *string          `json:"error"`
	} `json:"result"`
}

// rows turns chart data into group -> value strings: temporal values as dates, numbers as integers or
// decimals, the last metrics columns the metrics (joined with |).
func (d chartData) rows(metrics int) map[string]string {
	out := map[string]string{}
	r := d.Result[0]
	n := len(r.Colnames) - metrics
	for _, row := range r.Data {
		var key, vals []string
		for i, c := range r.Colnames[:n] {
			key = append(key, value(row[c], r.Coltypes[i] == 2))
		}
		for _, c := range r.Colnames[n:] {
			vals = append(vals, value(row[c], false))
		}
		out[strings.Join(key, "|")] = strings.Join(vals, "|")
	}
	return out
}

func value(v any, temporal bool) string {
	switch v := v.(type) {
	case float64:
		if temporal {
			return time.UnixMilli(int64(v)).UTC().Format("2006-01-02")
		}
		if v == math.Trunc(v) {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

// ownerRows is what the owner reads for customer: the chart's aggregate over the table the relation is
// published from, for that customer alone, with SQL written from the template here, not by Superset.
func ownerRows(t *testing.T, b *tenanttest.Bundle, c superset.Chart, customer string) map[string]string {
	t.Helper()
	var from string
	for _, r := range b.Layer.Publish {
		if r.Name == c.Relation {
			from = r.From
		}
	}
	var dims []string
	switch c.Kind {
	case "line":
		g := c.Grain
		if g == "" {
			g = "day"
		}
		dims = []string{fmt.Sprintf("to_char(date_trunc('%s', %s), 'YYYY-MM-DD')", g, c.X)}
	case "bar":
		dims = []string{c.X + "::text"}
	case "heatmap":
		dims = []string{c.X + "::text", "to_char(" + c.Y + ", 'YYYY-MM-DD')"}
	case "table":
		for _, col := range c.Columns {
			dims = append(dims, col+"::text")
		}
	}
	where := "customer_id = $1"
	if c.Where != "" {
		where += " and (" + c.Where + ")"
	}
	var metrics []string
	for _, m := range c.Metrics {
		metrics = append(metrics, "("+m.SQL+")::float8")
	}
	sql := fmt.Sprintf("select concat_ws('|', %s), array[%s] from %s where %s group by 1",
		strings.Join(dims, ", "), strings.Join(metrics, ", "), from, where)
	ctx := context.Background()
	conn, err := b.DB.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "set time zone 'UTC'"); err != nil { // the tenants' session time zone
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, sql, customer)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out := map[string]string{}
	for rows.Next() {
		var k string
		var vs []*float64
		if err := rows.Scan(&k, &vs); err != nil {
			t.Fatal(err)
		}
		var vals []string
		for _, v := range vs {
			if v == nil {
				vals = append(vals, value(nil, false))
			} else {
				vals = append(vals, value(*v, false))
			}
		}
		out[k] = strings.Join(vals, "|")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkChart compares a chart's rows with the owner's: every row equal, and all of them, or the top
// limit by value.
func checkChart(t *testing.T, c superset.Chart, got, want map[string]string) {
	t.Helper()
	if c.Limit == 0 {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("chart %q: rows (-owner +Superset):\n%s", c.Title, diff)
		}
		return
	}
	var wantVals, gotVals []float64
	for k, v := range got {
		if want[k] != v {
			t.Errorf("chart %q: %s = %s through Superset, %q for the owner", c.Title, k, v, want[k])
		}
		f, _ := strconv.ParseFloat(v, 64)
		gotVals = append(gotVals, f)
	}
	for _, v := range want {
		f, _ := strconv.ParseFloat(v, 64)
		wantVals = append(wantVals, f)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(wantVals)))
	sort.Sort(sort.Reverse(sort.Float64Slice(gotVals)))
	if n := min(c.Limit, len(wantVals)); !slices.Equal(gotVals, wantVals[:n]) {
		t.Errorf("chart %q: values %v, want the owner's top %d %v", c.Title, gotVals, n, wantVals[:n])
	}
}

type named struct {
	ID   int    `json:"id"`
	Name string `json:"database_name"`
	Slug string `json:"slug"`
}

type listing struct {
	Count  int     `json:"count"`
	Result []named `json:"result"`
}

func get(t *testing.T, c *superset.Client, path string, out any) error {
	t.Helper()
	return c.Call(context.Background(), http.MethodGet, path, nil, nil, out)
}

// TestSupersetSync provisions a real Apache Superset for two tenants with elt superset sync and looks at
// it as each tenant's Superset user: its own Database, datasets and starter dashboard only; every chart's
// numbers equal the owner's for that customer; the dashboard renders in headless Chromium. Then a second
// sync changes nothing, a rotated password is carried over, and a removed tenant's objects are gone.
func TestSupersetSync(t *testing.T) {
	ctx := context.Background()
	b := tenanttest.New(t)
	customers := []string{"cus_0001", "cus_0002"}
	secrets := t.TempDir()
	logins := map[string]tenanttest.Login{}
	for _, c := range customers {
		l := b.Add(t, c, tenant.Limits{})
		logins[c] = l
		if err := os.WriteFile(filepath.Join(secrets, c+".password"), []byte(l.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// A Superset of this test's own: its metadata database in the test cluster, dropped at the end.
	state := t.TempDir()
	meta := "superset_" + b.DB.Name
	env := []string{"DATABASE_URL=" + b.DB.URL, "ELT_SUPERSET_METADATA_DB=" + meta}
	t.Cleanup(func() {
		if t.Failed() { // what Superset said, for a failure that came from it
			if b, err := os.ReadFile(filepath.Join(state, "superset.log")); err == nil {
				t.Logf("the last lines of %s:\n%s", filepath.Join(state, "superset.log"), lastLines(string(b), 40))
			}
		}
		script(t, env, "stop", state)
		_, _ = b.DB.Pool.Exec(ctx, "drop database if exists "+pgx.Identifier{meta}.Sanitize()+" with (force)")
		_, _ = b.DB.Pool.Exec(ctx, "drop role if exists "+pgx.Identifier{meta}.Sanitize())
	})
	start := time.Now()
	script(t, env, "start", state)
	t.Logf("Superset started in %s", time.Since(start).Round(time.Second))
	urlb, err := os.ReadFile(filepath.Join(state, "url"))
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(string(urlb))

	eltEnv := []string{
		"DATABASE_URL=" + b.DB.URLAs(tenant.RunnerRole), "ELT_PROJECT=" + pgtest.RepoRoot(),
		"ELT_SUPERSET_URL=" + url, "ELT_SUPERSET_PASSWORD_FILE=" + filepath.Join(state, "admin.password"),
		"ELT_SUPERSET_SECRETS=" + secrets, "ELT_SUPERSET_PASSWORD=",
	}
	// Superset's metadata database in the same cluster does not open anything to tenants.
	mustElt(t, eltEnv, "tenant", "check")

	admin, err := superset.Login(ctx, url, "admin", readFile(t, filepath.Join(state, "admin.password")))
	if err != nil {
		t.Fatal(err)
	}
	// A role named like a tenant's that no tenant of this database has (made by hand, or another
	// database's tenant): sync leaves it alone.
	if err := admin.Call(ctx, http.MethodPost, "/api/v1/security/roles/", nil, map[string]any{"name": superset.RoleName("viewers")}, nil); err != nil {
		t.Fatal(err)
	}

	plan := mustElt(t, eltEnv, "superset", "sync", "--dry-run")
	for _, want := range []string{`would create database "cus_0001 analytics"`, `would create role "elt tenant cus_0002"`,
		`would create user "cus_0001"`, "would create dataset retention_weekly of \"cus_0002 analytics\"",
		"would create dashboard elt-cus_0001"} {
		if !strings.Contains(plan, want) {
			t.Errorf("dry run does not say %q:\n%s", want, plan)
		}
	}
	var dbs listing
	if err := get(t, admin, "/api/v1/database/", &dbs); err != nil {
		t.Fatal(err)
	}
	if dbs.Count != 0 || len(roleNames(t, admin)) != 1 || userCount(t, admin) != 1 {
		t.Fatalf("after a dry run Superset has %d databases, roles %v and %d users; want none but the admin and the hand-made role",
			dbs.Count, roleNames(t, admin), userCount(t, admin))
	}
	if m, _ := filepath.Glob(filepath.Join(secrets, "*.superset-password")); len(m) > 0 {
		t.Fatalf("a dry run wrote %v", m)
	}

	out := mustElt(t, eltEnv, "superset", "sync")
	if !strings.Contains(out, "superset sync: 2 tenants") || !strings.Contains(out, `left alone: role(s) elt tenant viewers`) {
		t.Errorf("sync says %q", out)
	}
	if again := mustElt(t, eltEnv, "superset", "sync"); !strings.Contains(again, "changed 0 objects") {
		t.Errorf("a second sync changed something: %s", again)
	}

	tpl, err := superset.LoadTemplate(filepath.Join(pgtest.RepoRoot(), "dashboards", "starter.yaml"), published(b))
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]*superset.Client{}
	dashboards := map[string]int{}
	charts := map[string]map[string]int{}
	for _, c := range customers {
		pw := readFile(t, filepath.Join(secrets, c+".superset-password"))
		u, err := superset.Login(ctx, url, c, pw)
		if err != nil {
			t.Fatal(err)
		}
		users[c] = u
		var dbs listing
		if err := get(t, u, "/api/v1/database/", &dbs); err != nil {
			t.Fatal(err)
		}
		if len(dbs.Result) != 1 || dbs.Result[0].Name != superset.DatabaseName(c) {
			t.Errorf("%s's user lists databases %+v, want only %q", c, dbs.Result, superset.DatabaseName(c))
		}
		var ds struct {
			Count  int `json:"count"`
			Result []struct {
				ID          int    `json:"id"`
				TableName   string `json:"table_name"`
				Schema      string `json:"schema"`
				Description string `json:"description"`
				Database    struct {
					Name string `json:"database_name"`
				} `json:"database"`
			} `json:"result"`
		}
		if err := u.Call(ctx, http.MethodGet, "/api/v1/dataset/", superset.Q().Set("page_size", 100).
			Set("columns", []any{"id", "table_name", "schema", "description", "database.database_name"}), nil, &ds); err != nil {
			t.Fatal(err)
		}
		gotDS, wantDS := map[string]string{}, map[string]string{}
		for _, d := range ds.Result {
			if d.Database.Name != superset.DatabaseName(c) || d.Schema != logins[c].Role {
				t.Errorf("%s's user sees dataset %s.%s of %q", c, d.Schema, d.TableName, d.Database.Name)
			}
			gotDS[d.TableName] = d.Description
		}
		for _, r := range b.Layer.Publish {
			wantDS[r.Name] = r.Comment
		}
		if diff := cmp.Diff(wantDS, gotDS); diff != "" {
			t.Errorf("%s's datasets and descriptions (-want +got):\n%s", c, diff)
		}
		var dl listing
		if err := get(t, u, "/api/v1/dashboard/", &dl); err != nil {
			t.Fatal(err)
		}
		if len(dl.Result) != 1 || dl.Result[0].Slug != superset.Slug(c) {
			t.Fatalf("%s's user lists dashboards %+v, want only %s", c, dl.Result, superset.Slug(c))
		}
		dashboards[c] = dl.Result[0].ID
		var cl struct {
			Result []struct {
				ID   int    `json:"id"`
				Name string `json:"slice_name"`
			} `json:"result"`
		}
		if err := get(t, u, fmt.Sprintf("/api/v1/dashboard/%d/charts", dashboards[c]), &cl); err != nil {
			t.Fatal(err)
		}
		charts[c] = map[string]int{}
		for _, ch := range cl.Result {
			charts[c][ch.Name] = ch.ID
		}
		if len(charts[c]) != len(tpl.Charts) {
			t.Errorf("%s's dashboard has %d charts, the template %d", c, len(charts[c]), len(tpl.Charts))
		}
		// Every chart returns the owner's numbers for this customer.
		for _, ch := range tpl.Charts {
			var d chartData
			if err := get(t, u, fmt.Sprintf("/api/v1/chart/%d/data/?force=true", charts[c][ch.Title]), &d); err != nil {
				t.Fatalf("%s chart %q: %v", c, ch.Title, err)
			}
			got, want := d.rows(len(ch.Metrics)), ownerRows(t, b, ch, c)
			if len(want) == 0 {
				t.Fatalf("chart %q: the owner reads no rows for %s: the test data should have some", ch.Title, c)
			}
			checkChart(t, ch, got, want)
		}
	}
	// The two customers' numbers differ (the test data gives them different sizes), so equal-to-owner is
	// not equal-to-anything.
	differ := 0
	for _, ch := range tpl.Charts {
		if !cmp.Equal(ownerRows(t, b, ch, "cus_0001"), ownerRows(t, b, ch, "cus_0002")) {
			differ++
		}
	}
	if differ == 0 {
		t.Fatal("the two customers' charts are equal: the test cannot tell them apart")
	}
	first := tpl.Charts[0]

	// Superset's user and role pickers show a tenant's user only itself and its own roles, not the other
	// customers (whose names the roles and users carry); the admin's show them all (the endpoint does list).
	var adminRel struct {
		Result []struct {
			Text string `json:"text"`
		} `json:"result"`
	}
	if err := get(t, admin, "/api/v1/dashboard/related/roles", &adminRel); err != nil || !strings.Contains(fmt.Sprint(adminRel.Result), superset.RoleName("cus_0002")) {
		t.Errorf("the admin's role picker: %v %v, want it to list %s", adminRel.Result, err, superset.RoleName("cus_0002"))
	}
	for _, c := range customers {
		for _, path := range []string{"/api/v1/dashboard/related/roles", "/api/v1/dashboard/related/owners",
			"/api/v1/chart/related/owners", "/api/v1/dataset/related/owners"} {
			var rel struct {
				Result []struct {
					Text string `json:"text"`
				} `json:"result"`
			}
			if err := get(t, users[c], path, &rel); err != nil {
				t.Fatalf("%s GET %s: %v", c, path, err)
			}
			for _, r := range rel.Result {
				for _, other := range customers {
					if other != c && strings.Contains(r.Text, other) {
						t.Errorf("%s's user sees %q in %s", c, r.Text, path)
					}
				}
			}
		}
	}

	// Nothing of the other tenant is reachable: its Database, dashboard, charts, or its schema in SQL Lab.
	for _, pair := range [][2]string{{"cus_0001", "cus_0002"}, {"cus_0002", "cus_0001"}} {
		me, other := users[pair[0]], pair[1]
		var chartID int
		for _, id := range charts[other] {
			chartID = id
		}
		for _, path := range []string{
			fmt.Sprintf("/api/v1/chart/%d/data/", chartID),
			fmt.Sprintf("/api/v1/chart/%d", chartID),
			fmt.Sprintf("/api/v1/dashboard/%d", dashboards[other]),
		} {
			if err := get(t, me, path, new(map[string]any)); !superset.IsStatus(err, 404) && !superset.IsStatus(err, 403) {
				t.Errorf("%s's user GET %s: %v, want 403 or 404", pair[0], path, err)
			}
		}
		otherDB := dbID(t, admin, superset.DatabaseName(other))
		ownDB := dbID(t, admin, superset.DatabaseName(pair[0]))
		res, err := sqlLab(me, otherDB, logins[other].Role, "select count(*) as n from events")
		if err == nil {
			t.Errorf("%s's user ran SQL Lab on %s's Database: %v", pair[0], other, res)
		}
		// Superset's schema permission refuses it first; PostgreSQL would (permission denied) if it did not.
		res, err = sqlLab(me, ownDB, logins[pair[0]].Role, "select count(*) as n from "+logins[other].Role+".events")
		if err == nil || !(strings.Contains(err.Error(), "You need access to the following tables") || strings.Contains(err.Error(), "permission denied")) {
			t.Errorf("%s's user read %s's schema through its own Database: %v %v", pair[0], other, res, err)
		}
		res, err = sqlLab(me, ownDB, logins[pair[0]].Role, "select count(*) as n from events")
		var want int64
		if err2 := b.DB.Pool.QueryRow(ctx, "select count(*) from core.events where customer_id = $1", pair[0]).Scan(&want); err2 != nil {
			t.Fatal(err2)
		}
		if err != nil || len(res) != 1 || value(res[0]["n"], false) != strconv.FormatInt(want, 10) {
			t.Errorf("%s's SQL Lab count of its events: %v %v, want %d", pair[0], res, err, want)
		}
	}

	// The starter dashboard renders in a browser, every chart drawn, no error.
	png := filepath.Join(t.TempDir(), "dashboard.png")
	venv := strings.TrimSpace(script(t, nil, "venv"))
	shot := exec.Command(filepath.Join(venv, "bin", "python"), filepath.Join(pgtest.RepoRoot(), "superset", "screenshot.py"),
		url, "cus_0001", filepath.Join(secrets, "cus_0001.superset-password"), superset.Slug("cus_0001"), png)
	shotOut, err := shot.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("screenshot: %v\n%s", err, stderr)
	}
	var seen struct {
		Title    string   `json:"title"`
		Charts   int      `json:"charts"`
		Rendered int      `json:"rendered"`
		Errors   []string `json:"errors"`
		Titles   []string `json:"titles"`
	}
	if err := json.Unmarshal(shotOut, &seen); err != nil {
		t.Fatalf("screenshot.py: %v\n%s", err, shotOut)
	}
	if seen.Charts != len(tpl.Charts) || seen.Rendered != seen.Charts || len(seen.Errors) > 0 {
		t.Errorf("dashboard in Chromium: %d charts, %d drawn, errors %q; want %d drawn, none", seen.Charts, seen.Rendered, seen.Errors, len(tpl.Charts))
	}
	for _, ch := range tpl.Charts {
		if !slices.Contains(seen.Titles, ch.Title) {
			t.Errorf("dashboard in Chromium has no chart titled %q (titles %q)", ch.Title, seen.Titles)
		}
	}
	if img, err := os.ReadFile(png); err != nil || len(img) < 20_000 || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Errorf("screenshot %s: %d bytes, %v", png, len(img), err)
	}

	// A rotated password: charts fail until the next sync carries it over.
	mustElt(t, eltEnv, "tenant", "rotate-password", "cus_0001", "--password-to", filepath.Join(secrets, "cus_0001.password"))
	dailyID := charts["cus_0001"][first.Title]
	if err := get(t, users["cus_0001"], fmt.Sprintf("/api/v1/chart/%d/data/?force=true", dailyID), new(chartData)); err == nil {
		t.Error("a chart still worked with the old password: the rotation test proves nothing")
	}
	out = mustElt(t, eltEnv, "superset", "sync")
	r := runElt(t, eltEnv, "superset", "sync", "--dry-run")
	if !strings.Contains(r.out, "would change 0 objects") {
		t.Errorf("after the password sync, a dry run still plans changes: %s", r.out)
	}
	if err := get(t, users["cus_0001"], fmt.Sprintf("/api/v1/chart/%d/data/?force=true", dailyID), new(chartData)); err != nil {
		t.Errorf("chart after the rotated password was synced: %v\n(sync said %s)", err, out)
	}

	// Users named in the project: an existing Superset user (e.g. from SSO) gets the tenant's roles and keeps
	// its own; the user elt created before loses the tenant's role.
	var publicRole int
	{
		var rs struct {
			Result []struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
			} `json:"result"`
		}
		if err := admin.Call(ctx, http.MethodGet, "/api/v1/security/roles/", superset.Q().Set("page_size", 100), nil, &rs); err != nil {
			t.Fatal(err)
		}
		for _, r := range rs.Result {
			if r.Name == "Public" { // a role of Superset's own that the user keeps
				publicRole = r.ID
			}
		}
	}
	alicePW := "alice-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := admin.Call(ctx, http.MethodPost, "/api/v1/security/users/", nil, map[string]any{
		"username": "alice", "first_name": "Alice", "last_name": "Analyst", "email": "alice@example.invalid",
		"active": true, "password": alicePW, "roles": []int{publicRole}}, nil); err != nil {
		t.Fatal(err)
	}
	mapped := mappedProject(t, "cus_0001", "alice")
	mappedEnv := append(slices.Clone(eltEnv), "ELT_PROJECT="+mapped)
	out = mustElt(t, mappedEnv, "superset", "sync")
	for _, want := range []string{`update user "alice" (roles)`, `update user "cus_0001" (remove role elt tenant cus_0001)`} {
		if !strings.Contains(out, want) {
			t.Errorf("sync with users mapped does not say %q:\n%s", want, out)
		}
	}
	alice, err := superset.Login(ctx, url, "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	var aliceDBs listing
	if err := get(t, alice, "/api/v1/database/", &aliceDBs); err != nil {
		t.Fatal(err)
	}
	if len(aliceDBs.Result) != 1 || aliceDBs.Result[0].Name != superset.DatabaseName("cus_0001") {
		t.Errorf("alice, mapped to cus_0001, lists databases %+v", aliceDBs.Result)
	}
	var old listing
	if err := get(t, users["cus_0001"], "/api/v1/database/", &old); err != nil || old.Count != 0 {
		t.Errorf("the created user cus_0001, no longer the tenant's, lists %d databases (%v), want 0", old.Count, err)
	}
	if again := mustElt(t, mappedEnv, "superset", "sync"); !strings.Contains(again, "changed 0 objects") {
		t.Errorf("a second sync with users mapped changed something: %s", again)
	}

	// A removed tenant: its Database, user, role and dashboard are gone; the other tenant's stay.
	mustElt(t, eltEnv, "tenant", "remove", "cus_0002")
	mustElt(t, eltEnv, "superset", "sync")
	if id := dbID(t, admin, superset.DatabaseName("cus_0002")); id != 0 {
		t.Errorf("database of removed tenant cus_0002 is still there (id %d)", id)
	}
	if _, err := superset.Login(ctx, url, "cus_0002", readFile(t, filepath.Join(secrets, "cus_0002.superset-password"))); err == nil {
		t.Error("the removed tenant's Superset user can still log in")
	}
	var dl listing
	if err := admin.Call(ctx, http.MethodGet, "/api/v1/dashboard/", superset.Q().Set("page_size", 100), nil, &dl); err != nil {
		t.Fatal(err)
	}
	var slugs []string
	for _, d := range dl.Result {
		slugs = append(slugs, d.Slug)
	}
	if diff := cmp.Diff([]string{superset.Slug("cus_0001")}, slugs); diff != "" {
		t.Errorf("dashboards after removing cus_0002 (-want +got):\n%s", diff)
	}
	left := roleNames(t, admin)
	if diff := cmp.Diff([]string{superset.RoleName("cus_0001"), superset.RoleName("viewers")}, left); diff != "" {
		t.Errorf("tenant roles after removing cus_0002 (-want +got):\n%s", diff)
	}
	var left2 struct {
		Count int `json:"count"`
	}
	if err := admin.Call(ctx, http.MethodGet, "/api/v1/security/users/", superset.Q().Filter("username", "eq", "alice"), nil, &left2); err != nil || left2.Count != 1 {
		t.Errorf("user alice, not elt's, after removals: %d (%v), want still there", left2.Count, err)
	}
	if dbID(t, admin, superset.DatabaseName("cus_0001")) == 0 {
		t.Error("removing cus_0002 removed cus_0001's database")
	}
}

// mappedProject is a copy of the default project whose elt.yaml gives customer's Superset role to user.
func mappedProject(t *testing.T, customer, user string) string {
	t.Helper()
	dir := t.TempDir()
	root := pgtest.RepoRoot()
	for _, part := range []string{"elt.yaml", "migrations", "views", "sql", "dashboards"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(root, part), dir).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", part, err, out)
		}
	}
	cfg := filepath.Join(dir, "elt.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "  dashboard: dashboards/starter.yaml\n",
		fmt.Sprintf("  dashboard: dashboards/starter.yaml\n  users:\n    %s: [%s]\n", customer, user), 1)
	if s == string(b) {
		t.Fatal("elt.yaml has no superset: dashboard: line to add users to")
	}
	if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// roleNames are the names of Superset's tenant roles (RolePrefix), sorted.
func roleNames(t *testing.T, admin *superset.Client) []string {
	t.Helper()
	var rs struct {
		Result []struct {
			Name string `json:"name"`
		} `json:"result"`
	}
	if err := admin.Call(context.Background(), http.MethodGet, "/api/v1/security/roles/", superset.Q().Set("page_size", 100), nil, &rs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs.Result {
		if strings.HasPrefix(r.Name, superset.RolePrefix) {
			out = append(out, r.Name)
		}
	}
	slices.Sort(out)
	return out
}

func userCount(t *testing.T, admin *superset.Client) int {
	t.Helper()
	var us struct {
		Count int `json:"count"`
	}
	if err := admin.Call(context.Background(), http.MethodGet, "/api/v1/security/users/", nil, nil, &us); err != nil {
		t.Fatal(err)
	}
	return us.Count
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func published(b *tenanttest.Bundle) map[string][]string {
	m := map[string][]string{}
	for _, r := range b.Layer.Publish {
		for _, c := range r.Columns {
			m[r.Name] = append(m[r.Name], c.Name)
		}
	}
	return m
}

func dbID(t *testing.T, admin *superset.Client, name string) int {
	t.Helper()
	var dbs listing
	if err := admin.Call(context.Background(), http.MethodGet, "/api/v1/database/",
		superset.Q().Filter("database_name", "eq", name), nil, &dbs); err != nil {
		t.Fatal(err)
	}
	for _, d := range dbs.Result {
		if d.Name == name {
			return d.ID
		}
	}
	return 0
}

// sqlLab runs sql in SQL Lab on database db (synchronously) and returns its rows, or Superset's error.
func sqlLab(c *superset.Client, db int, schema, sql string) ([]map[string]any, error) {
	var res struct {
		Data []map[string]any `json:"data"`
	}
	err := c.Call(context.Background(), http.MethodPost, "/api/v1/sqllab/execute/", nil, map[string]any{
		"database_id": db, "schema": schema, "sql": sql, "runAsync": false, "select_as_cta": false,
		"client_id": strconv.FormatInt(time.Now().UnixNano()%1e10, 36),
	}, &res)
	return res.Data, err
}
