package extract

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// groupedAPI serves records 0..n-1 whose cursor u is i/3 (three records share each value), ascending, in
// pages of 4 with a next cursor, filtered by since (u >= since): the groups straddle page boundaries, so a
// walk stopped between two pages always stops inside a group.
func groupedAPI(n int, delay time.Duration) func(w http.ResponseWriter, r *http.Request, _ int64) {
	return func(w http.ResponseWriter, r *http.Request, _ int64) {
		time.Sleep(delay)
		q := r.URL.Query()
		since, _ := strconv.Atoi(q.Get("since"))
		from, _ := strconv.Atoi(q.Get("cursor"))
		from = max(from, since*3)
		var recs []string
		for i := from; i < min(from+4, n); i++ {
			recs = append(recs, fmt.Sprintf(`{"id":%d,"u":%d}`, i, i/3))
		}
		next := "null"
		if from+4 < n {
			next = strconv.Itoa(from + 4)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data":[%s],"next_cursor":%s}`, strings.Join(recs, ","), next)
	}
}

// TestQuotaStopsAtABoundaryAndResumes: a run that meets max_requests (or max_duration) mid-walk commits only
// whole cursor values, is recorded partial with what is left, and reports ErrQuota (Partial); the runs after
// it resume there, until staging equals the source key by key, each record once.
func TestQuotaStopsAtABoundaryAndResumes(t *testing.T) {
	t.Parallel()
	const n = 30
	var want []string
	for i := 0; i < n; i++ {
		want = append(want, strconv.Itoa(i))
	}
	for _, tc := range []struct {
		name, quota string
		delay       time.Duration
	}{
		{"max_requests", "max_requests: 2", 0},
		{"max_duration", "max_duration: 350ms", 100 * time.Millisecond}, // room for the run's own queries before its first request
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, groupedAPI(n, tc.delay))
			cfg := f.config(t, "    "+tc.quota, `        pagination: {kind: cursor}
        incremental: {cursor_field: u, param: since}`)
			runs := 0
			before := 0
			for ; runs < 40; runs++ {
				err := f.run(t, cfg, Options{})
				if err == nil {
					break
				}
				if !errors.Is(err, ErrQuota) || !Partial(err) || !strings.Contains(err.Error(), strings.Replace(tc.quota, ":", "", 1)) ||
					!strings.Contains(err.Error(), "left for the next run, which resumes where this one stopped: fx/items") {
					t.Fatalf("run %d: %v; want the quota, what is left", runs+1, err)
				}
				// Whole cursor values only: the last value committed has its three records.
				ids := f.ids(t)
				// max_requests is exact, so every run gets past its first new value; max_duration depends on how
				// fast the machine is, and a slow moment may leave a run no further than the one before.
				if len(ids)%3 != 0 || len(ids) < before || (tc.delay == 0 && len(ids) == before) {
					t.Fatalf("run %d committed records %v after %d: not whole cursor values, or no progress", runs+1, ids, before)
				}
				before = len(ids)
				status := queryOne[string](t, f.db, `select status || ': ' || error from elt.runs order by run_id desc limit 1`)
				if !strings.HasPrefix(status, "partial: ") || !strings.Contains(status, strings.Replace(tc.quota, ":", "", 1)) {
					t.Errorf("run %d recorded %q; want partial with the quota", runs+1, status)
				}
			}
			if runs == 0 {
				t.Fatal("the first run did not meet the quota")
			}
			if diff := cmp.Diff(want, f.ids(t)); diff != "" {
				t.Errorf("staging after %d partial runs and one that finished (-source +staging):\n%s", runs, diff)
			}
			if got := queryOne[string](t, f.db, `select status from elt.runs order by run_id desc limit 1`); got != "succeeded" {
				t.Errorf("the last run is %s", got)
			}
		})
	}
}

// TestQuotaOnReplaceKeepsTheOldTable: a replace load cannot be cut (its snapshot would be half): a quota met
// during it leaves the table as it was, recorded partial.
func TestQuotaOnReplaceKeepsTheOldTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, groupedAPI(30, 0))
	full := f.config(t, "", `        mode: replace
        pagination: {kind: cursor}`)
	if err := f.run(t, full, Options{}); err != nil {
		t.Fatal(err)
	}
	before := f.ids(t)
	cut := f.config(t, "    max_requests: 3", `        mode: replace
        pagination: {kind: cursor}`)
	if err := f.run(t, cut, Options{}); !Partial(err) {
		t.Fatalf("replace run with a quota: %v; want ErrQuota", err)
	}
	if diff := cmp.Diff(before, f.ids(t)); diff != "" {
		t.Errorf("a replace cut by its quota changed the table (-before +after):\n%s", diff)
	}
	if Partial(errors.Join(fmt.Errorf("x: %w", ErrQuota), errors.New("failed"))) || Partial(nil) {
		t.Error("Partial counts a failure or nothing as partial")
	}
}
