package extract

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/elt-dev/elt/tests/pgtest"
)

// TestSourcesRunAtOnce: two sources are extracted at the same time: each API holds its first request open
// until the other's has arrived, which one after another would never do (each then gives up and
// answers 503 after 8 s, with no retries). With SourcesAtOnce 1 they run one after another and the same wait
// fails, so the test can tell.
func TestSourcesRunAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		atOnce   int
		together bool
	}{{0, true}, {1, false}} {
		t.Run(fmt.Sprint(tc.atOnce), func(t *testing.T) {
			t.Parallel()
			arrived := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
			api := func(name, other string) *httptest.Server {
				first := true
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if first {
						first = false
						close(arrived[name])
						select {
						case <-arrived[other]:
						case <-time.After(8 * time.Second):
							http.Error(w, "the other source never came", http.StatusServiceUnavailable)
							return
						}
					}
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprintf(w, `{"data":[{"id":"%s1"},{"id":"%s2"}]}`, name, name)
				}))
				t.Cleanup(srv.Close)
				return srv
			}
			a, b := api("a", "b"), api("b", "a")
			db := pgtest.New(t)
			// The tables first: creating one (its foreign key to elt.batches) waits for open batch transactions.
			for _, table := range []string{"items_a", "items_b"} {
				if err := EnsureStagingTable(t.Context(), db.Pool, table, "test"); err != nil {
					t.Fatal(err)
				}
			}
			var y strings.Builder
			y.WriteString("sources:\n")
			for name, srv := range map[string]*httptest.Server{"a": a, "b": b} {
				fmt.Fprintf(&y, "  - name: %s\n    base_url: %s\n    max_retries: -1\n    resources:\n      - {name: items_%s, path: /items, records: data, primary_key: id, mode: replace}\n", name, srv.URL, name)
			}
			err := Run(t.Context(), db.Pool, mustConfig(t, y.String()), Options{ProgressEvery: -1, SourcesAtOnce: tc.atOnce})
			if tc.together {
				if err != nil {
					t.Fatalf("two sources at once: %v", err)
				}
				if diff := cmp.Diff([]string{"a1", "a2"}, stagingIDs(t, db, "items_a")); diff != "" {
					t.Errorf("staging.items_a (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"b1", "b2"}, stagingIDs(t, db, "items_b")); diff != "" {
					t.Errorf("staging.items_b (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "the other source never came") {
				t.Errorf("sources one after another: %v; want the first to give up waiting for the second", err)
			}
		})
	}
}

// TestPoolOfOneConnection: a source's lock holds a connection for the whole run and its batches need another:
// a pool of one is refused at once, saying what to change, instead of waiting for ever.
func TestPoolOfOneConnection(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	c := mustConfig(t, "sources:\n  - name: fx\n    base_url: http://127.0.0.1:1\n    resources:\n      - {name: r, path: /r, mode: replace}")
	if err := Run(t.Context(), pool, c, Options{ProgressEvery: -1}); err == nil || !strings.Contains(err.Error(), "needs at least 2 (pool_max_conns") {
		t.Errorf("a pool of one connection: %v", err)
	}
}
