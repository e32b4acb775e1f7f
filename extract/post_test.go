package extract

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// searchAPI is a POST search endpoint: the filter, the page size and the page token (or page number) in a
// JSON body, records with an integer cursor t sorted by it, filtered by updated_after (a JSON number).
type searchAPI struct {
	mu     sync.Mutex
	n      int      // records 0..n-1, t = 100 + i
	bodies []string // every body received, as sent
	fail   int      // answer 503 to this many requests first
}

func (a *searchAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, _ int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	raw, _ := io.ReadAll(r.Body)
	a.bodies = append(a.bodies, string(raw))
	if a.fail > 0 {
		a.fail--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var body struct {
		Query struct {
			Status string `json:"status"`
		} `json:"query"`
		Page struct {
			Size  *int    `json:"size"`
			After *string `json:"after"`
			Num   *int    `json:"number"`
		} `json:"page"`
		UpdatedAfter *int `json:"updated_after"`
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(raw, &body) != nil ||
		body.Query.Status != "active" || body.Page.Size == nil || *body.Page.Size != 2 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"bad search","got":%q}`, raw)
		return
	}
	from := 0
	if body.UpdatedAfter != nil {
		from = max(0, *body.UpdatedAfter-100)
	}
	pos := from
	if body.Page.After != nil {
		pos, _ = strconv.Atoi(*body.Page.After)
	}
	if body.Page.Num != nil {
		pos = from + (*body.Page.Num-1)*2
	}
	var recs []string
	for i := pos; i < min(pos+2, a.n); i++ {
		recs = append(recs, fmt.Sprintf(`{"id":"s%d","t":%d}`, i, 100+i))
	}
	next := "null"
	if pos+2 < a.n {
		next = strconv.Quote(strconv.Itoa(pos + 2))
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"results":[%s],"next":%s}`, strings.Join(recs, ","), next)
}

// TestPostSearchBodies: a POST search endpoint walked with its page token (or page number) and the
// incremental start in the JSON body at their dotted paths, numbers as JSON numbers; a 503 is retried with
// the same body; the next run resumes from the cursor; errors name the request with its body.
func TestPostSearchBodies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, pagination string }{
		{"token", `{kind: cursor, cursor_param: page.after, cursor_path: next, size_param: page.size, size: 2}`},
		{"number", `{kind: page, page_param: page.number, size_param: page.size, size: 2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := &searchAPI{n: 7, fail: 1}
			f := newFixture(t, api.ServeHTTP)
			cfg := mustConfig(t, fmt.Sprintf(`
sources:
  - name: fx
    base_url: %s
    backoff: 5ms
    resources:
      - name: items
        path: /search
        method: POST
        body: {query: {status: active}}
        records: results
        primary_key: id
        pagination: %s
        incremental: {cursor_field: t, param: updated_after}
`, f.srv.URL, tc.pagination))
			if err := f.run(t, cfg, Options{}); err != nil {
				t.Fatal(err)
			}
			if api.bodies[0] != api.bodies[1] {
				t.Errorf("the retry after a 503 sent %s, the first attempt %s", api.bodies[1], api.bodies[0])
			}
			api.mu.Lock()
			api.n = 10
			api.bodies = nil
			api.mu.Unlock()
			if err := f.run(t, cfg, Options{}); err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := 0; i < 10; i++ {
				want = append(want, fmt.Sprintf("s%d", i))
			}
			if diff := cmp.Diff(want, f.ids(t)); diff != "" {
				t.Errorf("staged (-want +got):\n%s", diff)
			}
			first := map[string]any{}
			_ = json.Unmarshal([]byte(api.bodies[0]), &first)
			if first["updated_after"] != float64(106) {
				t.Errorf("the second run's first body is %s: want updated_after 106, a number", api.bodies[0])
			}
		})
	}
	t.Run("errors name the body", func(t *testing.T) {
		t.Parallel()
		api := &searchAPI{n: 3}
		f := newFixture(t, api.ServeHTTP)
		cfg := f.config(t, "", `        method: POST
        body: {query: {status: archived, api_key: sekrit-9876}}
        mode: replace
        pagination: {kind: cursor, cursor_param: page.after, size_param: page.size, size: 2}`)
		err := f.run(t, cfg, Options{}, "sekrit-9876")
		// The request with its body, the value of a field named like a secret left out.
		if err == nil || !strings.Contains(err.Error(), `POST `+f.srv.URL+`/items {"page":{"size":2},"query":{"api_key":"REDACTED","status":"archived"}}: 400 Bad Request`) {
			t.Errorf("a refused search: %v; want the request with its body", err)
		}
	})
	t.Run("a redirect that drops the body", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
			http.Redirect(w, r, "/elsewhere", http.StatusSeeOther)
		})
		cfg := f.config(t, "", `        method: POST
        mode: replace`)
		if err := f.run(t, cfg, Options{}); err == nil || !strings.Contains(err.Error(), "redirected as a GET, refused") || f.n.Load() != 1 {
			t.Errorf("a 303 to a POST: %v after %d requests; want it refused at once", err, f.n.Load())
		}
	})
	// The body is JSON as YAML means it: numbers, booleans, null, a date as written.
	c := mustConfig(t, "sources:\n  - name: fx\n    base_url: http://127.0.0.1:1\n    resources:\n      - {name: r, path: /r, mode: replace, method: POST, body: {n: 2, f: 1.5, b: true, z: null, d: 2024-01-01, s: '7', l: [1, x]}}")
	r := newRequest(c.Sources[0].Resources[0], mustURL(t, "http://127.0.0.1:1/r"), nil)
	if got, want := string(r.payload()), `{"b":true,"d":"2024-01-01","f":1.5,"l":[1,"x"],"n":2,"s":"7","z":null}`; got != want {
		t.Errorf("body sent %s, want %s", got, want)
	}
	for _, bad := range []string{
		"{name: r, path: /r, mode: replace, method: POST, body: {size: .nan}}",
		"{name: r, path: /r, mode: replace, method: POST, body: {filter: {[a]: open}}}",
		"{name: r, path: /r, mode: replace, method: POST, body: [1, 2]}",
		"{name: r, path: /r, mode: replace, body: {a: 1}}",
		"{name: r, path: /r, mode: replace, params_in: body}",
		"{name: r, path: /r, mode: replace, method: PUT}",
		"{name: r, path: /r, mode: replace, method: POST, body: {q: '{id}'}}",
	} {
		if _, err := ParseConfig([]byte("sources:\n  - name: fx\n    base_url: http://127.0.0.1:1\n    resources:\n      - " + bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
