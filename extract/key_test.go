package extract

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCompositePrimaryKey: with primary_key [account.id, id], records whose id repeats across accounts are
// told apart: a late record of one account in the look-back window loads even though another account's
// record has the same id and cursor, and records already loaded are not loaded again; a record without one
// of the key's fields is refused, naming it.
func TestCompositePrimaryKey(t *testing.T) {
	t.Parallel()
	rec := func(acct string, id int, at string) string {
		return fmt.Sprintf(`{"account":{"id":%q},"id":%d,"updated_at":"2026-01-01T%s:00Z"}`, acct, id, at)
	}
	api := &sinceAPI{}
	api.set(rec("x", 1, "10:00"), rec("y", 1, "10:05"))
	f := newFixture(t, api.serve)
	config := func(key string) *Config {
		return mustConfig(t, fxSource(f.srv.URL, fmt.Sprintf(`      - name: items
        path: /items
        records: data
        primary_key: %s
        incremental: {cursor_field: updated_at, param: updated_since, initial: "2026-01-01T00:00:00Z", look_back: 10m}
`, key)))
	}
	cfg := config("[account.id, id]")
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	// y/1 at 10:00 arrives late: same id and cursor as x/1, another account. The others come again.
	recs := []string{rec("x", 1, "10:00"), rec("y", 1, "10:00"), rec("y", 1, "10:05"), rec("x", 2, "10:10")}
	api.set(recs...)
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"x/1@10:00", "x/2@10:10", "y/1@10:00", "y/1@10:05"}
	if diff := cmp.Diff(want, accountKeys(t, f)); diff != "" {
		t.Errorf("staged (-want +got):\n%s", diff)
	}

	api.set(append(recs, `{"id":3,"updated_at":"2026-01-01T10:20:00Z"}`)...)
	if err := f.run(t, cfg, Options{}); err == nil || !strings.Contains(err.Error(), "no primary key field account.id") {
		t.Errorf("a record without account.id: %v; want it refused, naming the field", err)
	}
	api.set(append(recs, `{"account":{"id":null},"id":3,"updated_at":"2026-01-01T10:20:00Z"}`)...)
	if err := f.run(t, cfg, Options{}); err == nil || !strings.Contains(err.Error(), "primary key field account.id is null or not a scalar") {
		t.Errorf("a record whose account.id is null: %v; want it refused, naming the field", err)
	}
	for _, bad := range []string{"[id, id]", "[id, {a: b}]"} {
		if _, err := ParseConfig([]byte(strings.Replace(`
sources:
  - name: fx
    base_url: http://127.0.0.1:1
    resources:
      - {name: r, path: /r, mode: replace, primary_key: KEY}`, "KEY", bad, 1))); err == nil || !strings.Contains(err.Error(), "primary_key") {
			t.Errorf("primary_key: %s: %v; want an error about primary_key", bad, err)
		}
	}
}

// accountKeys lists account/id@time of staging.items, sorted.
func accountKeys(t *testing.T, f *fixture) []string {
	var out []string
	for _, k := range queryStrings(t, f, `select (record #>> '{account,id}') || '/' || (record->>'id') || '@' || substr(record->>'updated_at', 12, 5) from staging.items`) {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func queryStrings(t *testing.T, f *fixture, sql string) []string {
	t.Helper()
	rows, err := f.db.Pool.Query(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
