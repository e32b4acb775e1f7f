package extract

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/demoapi"
	"github.com/elt-dev/elt/internal/syncbuf"
	"github.com/elt-dev/elt/tests/pgtest"
)

// fixture is a purpose-built API: handle answers every request (n counts them from 1).
type fixture struct {
	db   *pgtest.DB
	srv  *httptest.Server
	logs *syncbuf.Buffer
	n    atomic.Int64
}

func newFixture(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int64)) *fixture {
	t.Helper()
	f := &fixture{db: pgtest.New(t), logs: &syncbuf.Buffer{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handle(w, r, f.n.Add(1))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// config renders a one-resource source "fx" (resource "items", table "items") with extra resource lines.
func (f *fixture) config(t *testing.T, source, resource string) *Config {
	t.Helper()
	return mustConfig(t, fmt.Sprintf(`
sources:
  - name: fx
    base_url: %s
    backoff: 5ms
    max_backoff: 1s
    max_retries: 2
%s
    resources:
      - name: items
        path: /items
        records: data
        primary_key: id
%s
`, f.srv.URL, source, resource))
}

func (f *fixture) run(t *testing.T, cfg *Config, opts Options, secrets ...string) error {
	t.Helper()
	opts.Log = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.ProgressEvery = -1
	err := Run(context.Background(), f.db.Pool, cfg, opts)
	for _, s := range secrets {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("error shows a secret: %v", err)
		}
		if strings.Contains(f.logs.String(), s) {
			t.Errorf("logs show a secret:\n%s", f.logs.String())
		}
	}
	return err
}

func (f *fixture) ids(t *testing.T) []string {
	t.Helper()
	return stagingIDs(t, f.db, "items")
}

func stagingIDs(t *testing.T, db *pgtest.DB, table string) []string {
	t.Helper()
	// Load order: batch, then staging id (parallel copy sessions interleave ids across batches).
	rows, err := db.Pool.Query(context.Background(), `select record->>'id' from staging.`+table+` order by batch_id, id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 {
		return nil // as the tests' wanted IDs are
	}
	return ids
}

const appendByID = `        incremental: {cursor_field: id}`

func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		contentType string
		body        string
		ndjson      bool
		rejects     bool
		wantErr     string   // "" : success
		wantIDs     []string // staged
		wantRejects []string // reasons
	}{
		{name: "InvalidJSON", body: `{"data":[{"id":1},{"id":2,,}]}`, wantErr: "invalid JSON"},
		{name: "Truncated", body: `{"data":[{"id":1},{"id":2,"v":"abc`, wantErr: "truncated body (gave up after 2 retries)"},
		{name: "NotAnObject", body: `{"data":[{"id":1},5]}`, wantErr: "record not a JSON object"},
		{name: "NotAnObjectRejected", body: `{"data":[{"id":1},5,{"id":2}]}`, rejects: true, wantIDs: []string{"1", "2"}, wantRejects: []string{"not a JSON object"}},
		{name: "NulEscape", body: `{"data":[{"id":1},{"id":2,"s":"a\u0000b"}]}`, wantErr: `contains \u0000`},
		{name: "NulEscapeRejected", body: `{"data":[{"id":1},{"id":2,"s":"a\u0000b"},{"id":3,"s":"a\\u0000b"}]}`, rejects: true, wantIDs: []string{"1", "3"}, wantRejects: []string{`contains \u0000, which jsonb cannot store`}},
		{name: "NoCursorRejected", body: `{"data":[{"id":1},{"v":2}]}`, rejects: true, wantIDs: []string{"1"}, wantRejects: []string{"no cursor field id"}},
		{name: "HTMLPage", contentType: "text/html", body: `<html>maintenance</html>`, wantErr: `unexpected content type "text/html": <html>maintenance</html>`},
		{name: "NoRecordsArray", body: `{"error":"x"}`, wantErr: `body has no records array at "data"`},
		{name: "NDJSONBadLineRejected", ndjson: true, contentType: "application/x-ndjson", body: "{\"id\":1}\n{\"id\":2\n{\"id\":3}\n", rejects: true, wantIDs: []string{"1", "3"}, wantRejects: []string{"invalid JSON"}},
		{name: "NDJSONBadLine", ndjson: true, contentType: "application/x-ndjson", body: "{\"id\":1}\n{\"id\":2\n{\"id\":3}\n", wantErr: "record invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				ct := tc.contentType
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				fmt.Fprint(w, tc.body)
			})
			res := appendByID
			if tc.rejects {
				res += "\n        rejects: true"
			}
			if tc.ndjson {
				res += "\n        format: ndjson"
			}
			err := f.run(t, f.config(t, "", res), Options{})
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "extract fx/items: ") {
					t.Fatalf("error %v, want one starting with extract fx/items: and containing %q", err, tc.wantErr)
				}
			}
			// A failed batch is never half-committed.
			if diff := cmp.Diff(tc.wantIDs, f.ids(t)); diff != "" {
				t.Errorf("staged ids (-want +got):\n%s", diff)
			}
			var reasons []string
			rows, _ := f.db.Pool.Query(context.Background(), `select reason from elt.rejects order by reject_id`)
			for rows.Next() {
				var s string
				_ = rows.Scan(&s)
				reasons = append(reasons, s)
			}
			if diff := cmp.Diff(tc.wantRejects, reasons); diff != "" {
				t.Errorf("rejects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReplaceSwapsAtomically(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	pages := [][]string{{`{"id":"a"}`, `{"id":"b"}`}, {`{"id":"c"}`}}
	fail := false
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		mu.Lock()
		defer mu.Unlock()
		p := 0
		fmt.Sscan(r.URL.Query().Get("page"), &p)
		if fail && p == 2 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		var recs []string
		if p >= 1 && p <= len(pages) {
			recs = pages[p-1]
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data":[%s]}`, strings.Join(recs, ","))
	})
	cfg := f.config(t, "", "        mode: replace\n        pagination: {kind: page}")
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, f.ids(t)); diff != "" {
		t.Errorf("first snapshot (-want +got):\n%s", diff)
	}
	var lastID int64
	if err := f.db.Pool.QueryRow(context.Background(), `select max(id) from staging.items`).Scan(&lastID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	pages = [][]string{{`{"id":"d"}`}, {`{"id":"e"}`}}
	mu.Unlock()
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"d", "e"}, f.ids(t)); diff != "" {
		t.Errorf("second snapshot (-want +got):\n%s", diff)
	}
	// The snapshot continues the load order (refresh breaks ties by it) and belongs to elt_owner, like every
	// elt object.
	var firstID int64
	var owner string
	if err := f.db.Pool.QueryRow(context.Background(), `select min(id), (select tableowner from pg_tables where schemaname = 'staging' and tablename = 'items') from staging.items`).Scan(&firstID, &owner); err != nil {
		t.Fatal(err)
	}
	if firstID <= lastID || owner != "elt_owner" {
		t.Errorf("swapped-in table: first id %d (want > %d), owner %s (want elt_owner)", firstID, lastID, owner)
	}
	mu.Lock()
	pages, fail = [][]string{{`{"id":"x"}`}, {`{"id":"y"}`}}, true
	mu.Unlock()
	err := f.run(t, cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error: boom") {
		t.Fatalf("error %v, want the 500", err)
	}
	if diff := cmp.Diff([]string{"d", "e"}, f.ids(t)); diff != "" {
		t.Errorf("after a failed replace (-want +got):\n%s", diff)
	}
	// The swapped-in table keeps the staging shape, constraint names and a comment.
	var pkey, fkey string
	var comment *string
	err = f.db.Pool.QueryRow(context.Background(), `
		select (select conname from pg_constraint where conrelid = 'staging.items'::regclass and contype = 'p'),
		       (select conname from pg_constraint where conrelid = 'staging.items'::regclass and contype = 'f'),
		       obj_description('staging.items'::regclass, 'pg_class')`).Scan(&pkey, &fkey, &comment)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"items_pkey", "items_batch_id_fkey", "Raw records of fx/items (created by elt extract)."}, []string{pkey, fkey, deref(comment)}); diff != "" {
		t.Errorf("table after swaps (-want +got):\n%s", diff)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestFullRefresh(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{events: 1500, updates: 50})
	if err := b.run(t, Options{Limit: 400}); err != nil {
		t.Fatal(err)
	}
	if err := b.run(t, Options{FullRefresh: true}); err != nil {
		t.Fatal(err)
	}
	checkStagingEqualsSource(t, b)
	// Cursors are back in step: an incremental run adds nothing.
	if err := b.run(t, Options{}); err != nil {
		t.Fatal(err)
	}
	checkStagingEqualsSource(t, b)
}

func TestLookBackLoadsLateRecordsOnce(t *testing.T) {
	t.Parallel()
	a, b := `{"id":"a","updated_at":"2026-01-01T10:00:00Z"}`, `{"id":"b","updated_at":"2026-01-01T10:05:00Z"}`
	api := &sinceAPI{}
	api.set(a, b)
	f := newFixture(t, api.serve)
	cfg := f.config(t, "", `        incremental: {cursor_field: updated_at, param: updated_since, initial: "2026-01-01T00:00:00Z", look_back: 10m}`)
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	// c arrived late with an older updated_at than b; d is new; b is sent again unchanged.
	api.set(a, `{"id":"c","updated_at":"2026-01-01T10:03:00Z"}`, b, `{"id":"d","updated_at":"2026-01-01T10:10:00Z"}`)
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d"}, f.ids(t)); diff != "" {
		t.Errorf("staged (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"2026-01-01T00:00:00Z", "2026-01-01T09:55:00Z"}, api.since); diff != "" {
		t.Errorf("updated_since sent (-want +got):\n%s", diff)
	}
}

func TestRecordsOutOfCursorOrderFail(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data":[{"id":1},{"id":3},{"id":2}]}`)
	})
	err := f.run(t, f.config(t, "", appendByID), Options{})
	if err == nil || !strings.Contains(err.Error(), "records are not in ascending id order (2 after 3)") {
		t.Fatalf("error %v, want the order error", err)
	}
}

func TestConcurrentRunsOfOneSource(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{events: 200, faults: demoapi.Faults{Slow: 100 * time.Millisecond}})
	first := make(chan error, 1)
	go func() {
		first <- Run(context.Background(), b.db.Pool, b.cfg, Options{ProgressEvery: -1})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for queryOne[int64](t, b.db, `select count(*) from elt.runs where status = 'running'`) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	err := b.run(t, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second run: %v, want the lock error", err)
	}
	// The first run, alive and holding its lock, is shown as running (not interrupted).
	st, serr := ReadStatus(context.Background(), b.db.Pool, b.cfg)
	if serr != nil || len(st.Sources) == 0 || st.Sources[0].LastRun == nil || st.Sources[0].LastRun.Status != "running" {
		t.Errorf("status of the live run: %+v, %v; want running", st, serr)
	}
	for _, part := range []string{"extract demo: source is locked by another elt extract (backend pid ", ", application \"elt extract ", "run 1 started "} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not contain %q", err, part)
		}
	}
	if err := <-first; err != nil {
		t.Fatalf("first run: %v", err)
	}
	checkStagingEqualsSource(t, b)
}

func TestRetries(t *testing.T) {
	t.Parallel()
	page := `{"data":[{"id":1},{"id":2}]}`
	for _, tc := range []struct {
		name    string
		source  string
		handle  func(w http.ResponseWriter, n int64)
		wantErr string
		retries int64
	}{
		{"RetryAfterSeconds", "", func(w http.ResponseWriter, n int64) {
			if n == 1 {
				w.Header().Set("Retry-After", "0")
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			}
			fmt.Fprint(w, page)
		}, "", 1},
		{"RetryAfterDate", "", func(w http.ResponseWriter, n int64) {
			if n == 1 {
				w.Header().Set("Retry-After", time.Now().Add(-time.Second).UTC().Format(http.TimeFormat))
				http.Error(w, "slow down", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, page)
		}, "", 1},
		{"RetryAfterTooLong", "", func(w http.ResponseWriter, n int64) {
			w.Header().Set("Retry-After", "3600")
			http.Error(w, "come back later", http.StatusTooManyRequests)
		}, "429 Too Many Requests: come back later (Retry-After 1h0m0s is more than max_backoff 1s)", 0},
		{"500ThenSuccess", "", func(w http.ResponseWriter, n int64) {
			if n <= 2 {
				http.Error(w, "oops", http.StatusInternalServerError)
				return
			}
			fmt.Fprint(w, page)
		}, "", 2},
		{"TimeoutThenSuccess", "    timeout: 300ms", func(w http.ResponseWriter, n int64) {
			if n == 1 {
				time.Sleep(1200 * time.Millisecond)
			}
			fmt.Fprint(w, page)
		}, "", 1},
		{"TimeoutEveryTime", "    timeout: 50ms", func(w http.ResponseWriter, n int64) {
			time.Sleep(200 * time.Millisecond)
			fmt.Fprint(w, page)
		}, "/items: timed out after 50ms without data (gave up after 2 retries)", 2},
		{"BodyStallsThenSuccess", "    timeout: 300ms", func(w http.ResponseWriter, n int64) {
			fmt.Fprint(w, `{"data":[{"id":1},`)
			w.(http.Flusher).Flush()
			if n == 1 {
				time.Sleep(1200 * time.Millisecond)
			}
			fmt.Fprint(w, `{"id":2}]}`)
		}, "", 1},
		{"SlowSteadyBodyIsFine", "    timeout: 300ms", func(w http.ResponseWriter, n int64) {
			fmt.Fprint(w, `{"data":[{"id":0}`)
			for i := 1; i <= 6; i++ {
				w.(http.Flusher).Flush()
				time.Sleep(40 * time.Millisecond)
				fmt.Fprintf(w, `,{"id":%d}`, i)
			}
			fmt.Fprint(w, `]}`)
		}, "", 0},
		{"NotFoundFailsFast", "", func(w http.ResponseWriter, n int64) {
			http.Error(w, "no such thing", http.StatusNotFound)
		}, "/items: 404 Not Found: no such thing", 0},
		{"ForbiddenFailsFast", "", func(w http.ResponseWriter, n int64) {
			http.Error(w, "nope", http.StatusForbidden)
		}, "/items: 403 Forbidden: nope", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Content-Type", "application/json")
				tc.handle(w, n)
			})
			err := f.run(t, f.config(t, tc.source, appendByID), Options{})
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if got := queryOne[int64](t, f.db, `select retries from elt.runs`); got != tc.retries {
				t.Errorf("retries %d, want %d", got, tc.retries)
			}
		})
	}
}

func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	const key = "k3y-in-query-0123"
	const pass = "b4sic-pa55word"
	for _, tc := range []struct {
		name   string
		auth   string
		secret string
	}{
		{"APIKeyInQuery", "api_key, name: api_key, in: query", key},
		{"APIKeyInHeader", "api_key, name: X-Api-Key", key},
		{"Basic", "basic, username: bob", pass},
		{"Bearer", "bearer", key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				// A careless API that echoes what it got, first with a 500 (retried, logged), then a 401.
				echo := r.URL.String() + " " + r.Header.Get("Authorization") + " " + r.Header.Get("X-Api-Key")
				if n == 1 {
					http.Error(w, echo, http.StatusInternalServerError)
					return
				}
				http.Error(w, echo, http.StatusUnauthorized)
			})
			secretFile := tokenFileWith(t, tc.secret)
			src := fmt.Sprintf("    auth: {kind: %s, token_file: %s, password_file: %s}", tc.auth, secretFile, secretFile)
			err := f.run(t, f.config(t, src, appendByID), Options{}, tc.secret, base64.StdEncoding.EncodeToString([]byte("bob:"+pass)))
			if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") {
				t.Fatalf("error %v, want the 401", err)
			}
		})
	}
}

func tokenFileWith(t *testing.T, secret string) string {
	t.Helper()
	p := t.TempDir() + "/secret"
	if err := writeFile(p, secret); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRateLimiterSpacesRequests(t *testing.T) {
	t.Parallel()
	l := newRateLimiter(20) // one request every 50ms
	start := time.Now()
	for i := 0; i < 4; i++ {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The first request goes at once, each next one 50ms after the one before: 150ms for four.
	if took := time.Since(start); took < 140*time.Millisecond {
		t.Errorf("four requests at 20/s took %s, want at least 150ms", took)
	}
	if newRateLimiter(0) != nil {
		t.Error("rate 0 should mean no limiter")
	}
}

func TestSlowAPICommitsSmallBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data":[{"id":0}`)
		for i := 1; i <= 8; i++ {
			w.(http.Flusher).Flush()
			time.Sleep(30 * time.Millisecond)
			fmt.Fprintf(w, `,{"id":%d}`, i)
		}
		fmt.Fprint(w, `]}`)
	})
	cfg := f.config(t, "    batch_time: 50ms", appendByID)
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	if n := queryOne[int64](t, f.db, `select count(*) from elt.batches`); n < 2 {
		t.Errorf("%d batch for a slow stream, want several (batch_time)", n)
	}
	if diff := cmp.Diff([]string{"0", "1", "2", "3", "4", "5", "6", "7", "8"}, f.ids(t)); diff != "" {
		t.Errorf("staged (-want +got):\n%s", diff)
	}
}

// A late record found in the look-back window must not move the saved cursor backwards (else the next run
// loads again what lies between the two).
func TestLookBackNeverMovesTheCursorBack(t *testing.T) {
	t.Parallel()
	a := `{"id":"a","updated_at":"2026-01-01T10:00:00Z"}`
	b := `{"id":"b","updated_at":"2026-01-01T10:05:00Z"}`
	c := `{"id":"c","updated_at":"2026-01-01T10:03:00Z"}`
	api := &sinceAPI{}
	f := newFixture(t, api.serve)
	cfg := f.config(t, "", `        incremental: {cursor_field: updated_at, param: updated_since, initial: "2026-01-01T00:00:00Z", look_back: 10m}`)
	var cursors []string
	for _, served := range [][]string{{a, b}, {c}, {a, c, b}} {
		api.set(served...)
		if err := f.run(t, cfg, Options{}); err != nil {
			t.Fatal(err)
		}
		var cur string
		if err := f.db.Pool.QueryRow(context.Background(), `select value from elt.cursors where source = 'fx' and resource = 'items'`).Scan(&cur); err != nil {
			t.Fatal(err)
		}
		cursors = append(cursors, cur)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, f.ids(t)); diff != "" {
		t.Errorf("staged (-want +got):\n%s", diff)
	}
	want := []string{"2026-01-01T10:05:00Z", "2026-01-01T10:05:00Z", "2026-01-01T10:05:00Z"}
	if diff := cmp.Diff(want, cursors); diff != "" {
		t.Errorf("cursor after each run (-want +got):\n%s", diff)
	}
}

// A parent that comes twice in one walk (offset pagination over a list that shifted under it) has its
// children walked once.
func TestParentSeenTwiceWalksChildrenOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	parents := []string{"p1", "p2", "p3"}
	var kidWalks []string
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if pid, ok := strings.CutPrefix(r.URL.Path, "/parents/"); ok {
			pid = strings.TrimSuffix(pid, "/kids")
			kidWalks = append(kidWalks, pid)
			if len(kidWalks) == 1 {
				parents = append([]string{"p0"}, parents...) // a new parent shifts the list
			}
			fmt.Fprintf(w, `{"data":[{"id":"%s-k","updated_at":"2026-01-01T10:00:00Z"}]}`, pid)
			return
		}
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		var out []string
		for i := off; i < len(parents) && i < off+2; i++ {
			out = append(out, fmt.Sprintf(`{"id":%q}`, parents[i]))
		}
		fmt.Fprintf(w, `{"data":[%s]}`, strings.Join(out, ","))
	})
	cfg := mustConfig(t, fxSource(f.srv.URL, `      - name: parents
        path: /parents
        records: data
        primary_key: id
        mode: replace
        pagination: {kind: offset, size: 2}
      - name: kids
        path: /parents/{pid}/kids
        records: data
        primary_key: id
        parent: {resource: parents, fields: {pid: id}}
        incremental: {cursor_field: updated_at, param: updated_since}
`))
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"p1-k", "p2-k", "p3-k"}, stagingIDs(t, f.db, "kids")); diff != "" {
		t.Errorf("staged kids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"p1", "p2", "p3"}, kidWalks); diff != "" {
		t.Errorf("children walked (-want +got):\n%s", diff)
	}
}

// A redirect to another server is refused before anything (headers, API key) is sent there; one on the same
// server is followed.
func TestRedirectsStayOnTheSourceServer(t *testing.T) {
	t.Parallel()
	const key = "k3y-redirected-4567"
	for _, tc := range []struct {
		name    string
		auth    string
		across  bool   // redirect to the other server, else to another path of the same one
		wantErr string // "" : success
	}{
		{"APIKeyInHeaderAcross", "api_key, name: X-Api-Key", true, "redirected to another server (http://127.0.0.1:"},
		{"APIKeyInQueryAcross", "api_key, name: api_key, in: query", true, "redirected to another server (http://127.0.0.1:"},
		{"BearerAcross", "bearer", true, "redirected to another server (http://127.0.0.1:"},
		{"APIKeyInHeaderSameServer", "api_key, name: X-Api-Key", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var otherHits atomic.Int64
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				otherHits.Add(1)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"data":[{"id":"stolen"}]}`)
			}))
			t.Cleanup(other.Close)
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				if r.URL.Path == "/items" {
					target := "/moved"
					if tc.across {
						target = other.URL + "/items"
					}
					http.Redirect(w, r, target, http.StatusFound)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"data":[{"id":"x"}]}`)
			})
			src := fmt.Sprintf("    auth: {kind: %s, token_file: %s}", tc.auth, tokenFileWith(t, key))
			err := f.run(t, f.config(t, src, appendByID), Options{}, key)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff([]string{"x"}, f.ids(t)); diff != "" {
					t.Errorf("staged (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "GET "+f.srv.URL+"/items") {
				t.Fatalf("error %v, want one naming the source URL and containing %q", err, tc.wantErr)
			}
			if n := otherHits.Load(); n != 0 {
				t.Errorf("the other server got %d requests", n)
			}
			if n := f.n.Load(); n != 1 {
				t.Errorf("the source got %d requests, want 1 (a refused redirect is not retried)", n)
			}
		})
	}
}

// The idle timeout is for the API: while the loader waits for Postgres (here a lock held by "elt refresh"),
// the body is not read, and that is not the API being idle.
func TestSlowLoaderIsNotAnIdleAPI(t *testing.T) {
	t.Parallel()
	const n = 10000
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		w.Header().Set("Content-Type", "application/json")
		recs := make([]string, n)
		for i := range recs {
			recs[i] = fmt.Sprintf(`{"id":"%05d"}`, i)
		}
		fmt.Fprintf(w, `{"data":[%s]}`, strings.Join(recs, ","))
	})
	cfg := f.config(t, "    timeout: 500ms\n    batch_size: 1000", appendByID)
	ctx := context.Background()
	tx, err := f.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `select elt.lock_staging_exclusive()`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.run(t, cfg, Options{}) }()
	time.Sleep(2500 * time.Millisecond) // many timeouts long
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(f.ids(t)); got != n {
		t.Errorf("%d records staged, want %d", got, n)
	}
	if got := queryOne[int64](t, f.db, `select retries from elt.runs order by run_id desc limit 1`); got != 0 {
		t.Errorf("%d retries, want 0:\n%s", got, f.logs.String())
	}
}

// Batches and --limit end only between cursor values that differ as cursors (compareCursor), not as text:
// 00:00:00Z and 01:00:00+01:00 are one instant, so a run must not stop between them (the next run would drop
// the second as already loaded).
func TestBoundariesCompareCursorsAsCursors(t *testing.T) {
	t.Parallel()
	body := `{"data":[{"id":"a","updated_at":"2026-01-01T00:00:00Z"},{"id":"b","updated_at":"2026-01-01T01:00:00+01:00"},{"id":"c","updated_at":"2026-01-01T00:01:00Z"}]}`
	for _, tc := range []struct {
		name        string
		source      string
		runs        []Options
		wantIDs     [][]string // after each run
		wantBatches []int64    // records per batch
	}{
		{"BatchSize", "    batch_size: 1", []Options{{}}, [][]string{{"a", "b", "c"}}, []int64{2, 1}},
		{"Limit", "", []Options{{Limit: 1}, {}}, [][]string{{"a", "b"}, {"a", "b", "c"}}, []int64{2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, body)
			})
			cfg := f.config(t, tc.source, `        incremental: {cursor_field: updated_at}`)
			var ids [][]string
			for _, o := range tc.runs {
				if err := f.run(t, cfg, o); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, f.ids(t))
			}
			if diff := cmp.Diff(tc.wantIDs, ids); diff != "" {
				t.Errorf("staged after each run (-want +got):\n%s", diff)
			}
			rows, err := f.db.Pool.Query(context.Background(), `select records from elt.batches order by batch_id`)
			if err != nil {
				t.Fatal(err)
			}
			batches, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantBatches, batches); diff != "" {
				t.Errorf("records per batch (-want +got):\n%s", diff)
			}
		})
	}
}

// A child's params take {placeholders} from its parent's fields, as its path does (GET /kids?parent=p1);
// a placeholder no parent field fills is refused when the config is read, not sent as-is.
func TestChildParamsPlaceholders(t *testing.T) {
	t.Parallel()
	var asked []string
	var mu sync.Mutex
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/parents" {
			fmt.Fprint(w, `{"data":[{"id":"p1"},{"id":"p2"}]}`)
			return
		}
		pid := r.URL.Query().Get("parent")
		mu.Lock()
		asked = append(asked, pid)
		mu.Unlock()
		fmt.Fprintf(w, `{"data":[{"id":"%s-k"}]}`, pid)
	})
	const tmpl = `      - name: parents
        path: /parents
        records: data
        primary_key: id
        mode: replace
      - name: kids
        path: /kids
        params: {parent: "%s", limit: "10"}
        records: data
        primary_key: id
        mode: replace
        parent: {resource: parents, fields: {pid: id}}
`
	if err := f.run(t, mustConfig(t, fxSource(f.srv.URL, fmt.Sprintf(tmpl, "{pid}"))), Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"p1-k", "p2-k"}, stagingIDs(t, f.db, "kids")); diff != "" {
		t.Errorf("staged kids (-want +got):\n%s", diff)
	}
	slices.Sort(asked)
	if diff := cmp.Diff([]string{"p1", "p2"}, asked); diff != "" {
		t.Errorf("params the API got (-want +got):\n%s", diff)
	}
	_, err := ParseConfig([]byte(fxSource(f.srv.URL, fmt.Sprintf(tmpl, "{parent_id}"))))
	if err == nil || !strings.Contains(err.Error(), "params.parent: placeholder {parent_id} has no parent.fields entry") {
		t.Errorf("a placeholder no field fills: %v", err)
	}
}

// A kept-alive connection the API closes before answering is sent again by Go's transport on its own; the
// resend is counted with the retries and logged, not invisible.
func TestResentOnClosedConnectionIsCounted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 2 { // close the kept-alive connection the second request came on, without an answer
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data":[{"id":%d}]}`, n)
	})
	cfg := f.config(t, "", "        mode: replace\n        pagination: {kind: page, max_pages: 3}")
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := queryOne[int64](t, f.db, `select retries from elt.runs order by run_id desc limit 1`); got != 1 {
		t.Errorf("retries recorded = %d, want 1 (the transport's resend)", got)
	}
	if !strings.Contains(f.logs.String(), "request sent again on a new connection") {
		t.Errorf("the resend is not logged:\n%s", f.logs.String())
	}
}

// A replace load says when it has every record and is swapping the fresh table in, and when that is
// committed: the silent part of a --full-refresh of a big table.
func TestReplaceLoadSaysWhenItSwaps(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data":[{"id":1},{"id":2}]}`)
	})
	if err := f.run(t, f.config(t, "", "        mode: replace"), Options{}); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	i := strings.Index(logs, `msg="all records loaded into a fresh table: swapping it in and committing" source=fx resource=items table=staging.items records=2`)
	j := strings.Index(logs, `msg="fresh table swapped in and committed" source=fx resource=items`)
	if i < 0 || j < i {
		t.Errorf("the swap is not said, or not in order:\n%s", logs)
	}
}

// When the API gives the record count (total_path), progress says how far along the walk is and about how
// long is left.
func TestProgressWithTotal(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		time.Sleep(40 * time.Millisecond)
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"total": 10, "data":[{"id":%d},{"id":%d}]}`, 2*page, 2*page+1)
	})
	cfg := f.config(t, "", "        mode: replace\n        pagination: {kind: page, total_path: total}")
	opts := Options{Log: slog.New(slog.NewTextHandler(f.logs, nil)), ProgressEvery: 15 * time.Millisecond}
	if err := Run(context.Background(), f.db.Pool, cfg, opts); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}, stagingIDs(t, f.db, "items")); diff != "" {
		t.Errorf("staged (-want +got):\n%s", diff)
	}
	if !regexp.MustCompile(`msg="extract progress" source=fx resource=items fetched=\d+ pages=\d+ records_per_s=\d+ mb_per_s=[0-9.]+ total=10 eta_s=\d+`).MatchString(f.logs.String()) {
		t.Errorf("no progress line with the total and the time left:\n%s", f.logs.String())
	}
}

// A redirect the client follows on the same server is not a resend: no retry counted, no warning.
func TestRedirectIsNoResend(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.URL.Path == "/items" {
			http.Redirect(w, r, "/v2/items", http.StatusMovedPermanently)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data":[{"id":1}]}`)
	})
	if err := f.run(t, f.config(t, "", "        mode: replace"), Options{}); err != nil {
		t.Fatal(err)
	}
	if got := queryOne[int64](t, f.db, `select retries from elt.runs order by run_id desc limit 1`); got != 0 || strings.Contains(f.logs.String(), "sent again") {
		t.Errorf("a followed redirect counted as %d retries:\n%s", got, f.logs.String())
	}
}

// empty_on: a child whose parent is gone answers 404; with empty_on: [404] that walk is empty and the run
// succeeds with the other children, without it the run fails naming the 404; 401 cannot be listed.
func TestEmptyOnStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/parents":
			fmt.Fprint(w, `{"data":[{"id":"p1"},{"id":"p2"},{"id":"p3"}]}`)
		case "/parents/p2/kids":
			http.Error(w, `{"error":"no such parent"}`, http.StatusNotFound)
		default:
			pid := strings.Split(r.URL.Path, "/")[2]
			fmt.Fprintf(w, `{"data":[{"id":"%s-k"}]}`, pid)
		}
	})
	const tmpl = `      - name: parents
        path: /parents
        records: data
        primary_key: id
        mode: replace
      - name: kids
        path: /parents/{pid}/kids
        records: data
        primary_key: id
        mode: replace
        parent: {resource: parents, fields: {pid: id}}
%s`
	err := f.run(t, mustConfig(t, fxSource(f.srv.URL, fmt.Sprintf(tmpl, ""))), Options{})
	if err == nil || !strings.Contains(err.Error(), "/parents/p2/kids") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("without empty_on: %v, want the 404 named", err)
	}
	if err := f.run(t, mustConfig(t, fxSource(f.srv.URL, fmt.Sprintf(tmpl, "        empty_on: [404]\n"))), Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"p1-k", "p3-k"}, stagingIDs(t, f.db, "kids")); diff != "" {
		t.Errorf("staged kids (-want +got):\n%s", diff)
	}
	if !strings.Contains(f.logs.String(), "no records here: the API answered a status listed in empty_on") {
		t.Errorf("the empty answer is not logged:\n%s", f.logs.String())
	}
	if _, err := ParseConfig([]byte(fxSource(f.srv.URL, fmt.Sprintf(tmpl, "        empty_on: [401]\n")))); err == nil || !strings.Contains(err.Error(), "would hide a wrong or expired credential") {
		t.Errorf("empty_on: [401]: %v", err)
	}
}
