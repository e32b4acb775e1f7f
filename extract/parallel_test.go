package extract

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParallelCopyCommitsInOrder: with three copy sessions, the demo source loads exactly as with one (every
// record once); batch ids follow the stream, and commits follow batch ids.
func TestParallelCopyCommitsInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, bundleOpts{events: 6000, batchSize: 150, pageSize: 100})
	for _, s := range b.cfg.Sources {
		s.CopySessions = 3
	}
	if err := b.run(t, Options{}); err != nil {
		t.Fatal(err)
	}
	checkStagingEqualsSource(t, b)
	if n := queryOne[int64](t, b.db, `select count(*) from elt.batches where resource = 'events'`); n < 20 {
		t.Fatalf("%d batches of events: too few to load side by side", n)
	}
	// Per resource, in batch id order: the highest cursor and the commit time never go back.
	bad := queryOne[int64](t, b.db, `
		select count(*) from (
			select resource, cursor_max, committed_at,
			       lag(cursor_max) over w as prev_max, lag(committed_at) over w as prev_at
			from elt.batches window w as (partition by resource order by batch_id)) as x
		where (resource = 'events' and cursor_max::timestamptz < prev_max::timestamptz) or committed_at < prev_at`)
	if bad != 0 {
		t.Errorf("%d batches out of order (cursor or commit time below the batch before)", bad)
	}
}

// TestParallelCopyFailureKeepsAPrefix: a batch the server refuses (a number jsonb cannot hold) rolls back,
// and so do the batches loading beside it after it; those before it stay, the cursor at the last of them;
// the next run, once the API is mended, loads the rest once.
func TestParallelCopyFailureKeepsAPrefix(t *testing.T) {
	t.Parallel()
	const n, bad = 120, 65
	var mended atomic.Bool
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
		from, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		since, _ := strconv.Atoi(r.URL.Query().Get("since"))
		from = max(from, since)
		var recs []string
		for i := from; i < min(from+10, n); i++ {
			if i == bad && !mended.Load() {
				recs = append(recs, fmt.Sprintf(`{"id":%d,"x":1e1000000}`, i))
				continue
			}
			recs = append(recs, fmt.Sprintf(`{"id":%d}`, i))
		}
		next := "null"
		if from+10 < n {
			next = strconv.Itoa(from + 10)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data":[%s],"next_cursor":%s}`, strings.Join(recs, ","), next)
	})
	cfg := f.config(t, "    batch_size: 10\n    copy_sessions: 3", `        pagination: {kind: cursor}
        incremental: {cursor_field: id, param: since}`)
	err := f.run(t, cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "is not valid for jsonb") {
		t.Fatalf("a batch jsonb refuses: %v", err)
	}
	var want []string
	for i := 0; i < 60; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if diff := cmp.Diff(want, f.ids(t)); diff != "" {
		t.Errorf("staged after the failed batch 60-69 (-want +got):\n%s", diff)
	}
	if c := queryOne[string](t, f.db, `select value from elt.cursors`); c != "59" {
		t.Errorf("cursor %s after the failure, want 59", c)
	}
	mended.Store(true)
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	want = want[:0]
	for i := 0; i < n; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if diff := cmp.Diff(want, f.ids(t)); diff != "" {
		t.Errorf("staged after the second run (-want +got):\n%s", diff)
	}
}
