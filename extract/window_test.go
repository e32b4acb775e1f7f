package extract

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// windowAPI serves records stamped every 4 hours (with a gap of three days without any) to requests that
// must name a window (from, to) of at most a day, in pages of 2 by a cursor: an API that caps a range.
type windowAPI struct {
	base      time.Time
	stamps    []time.Time
	inclusive bool // to is inclusive (t <= to), else exclusive (t < to)
	after     bool // from is exclusive (t > from), else inclusive (t >= from)
	unix      bool // bounds and t are Unix seconds
	delay     time.Duration
	requests  atomic.Int64
}

func newWindowAPI(now time.Time) *windowAPI {
	a := &windowAPI{base: now.UTC().Truncate(time.Hour).Add(-10 * 24 * time.Hour)}
	for i := 0; i < 58; i++ { // the last one 12 hours before now: outside any lag
		if i/6 >= 3 && i/6 < 6 { // days 3, 4 and 5 have no records
			continue
		}
		a.stamps = append(a.stamps, a.base.Add(time.Duration(i)*4*time.Hour))
	}
	return a
}

func (a *windowAPI) write(t time.Time) string {
	if a.unix {
		return strconv.FormatInt(t.Unix(), 10)
	}
	return strconv.Quote(t.Format(time.RFC3339))
}

func (a *windowAPI) read(v string) (time.Time, error) {
	if a.unix {
		n, err := strconv.ParseInt(v, 10, 64)
		return time.Unix(n, 0).UTC(), err
	}
	return time.Parse(time.RFC3339, v)
}

func (a *windowAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, _ int64) {
	a.requests.Add(1)
	time.Sleep(a.delay)
	q := r.URL.Query()
	from, err1 := a.read(q.Get("from"))
	to, err2 := a.read(q.Get("to"))
	span := 24 * time.Hour
	if a.after {
		span += time.Second // (s - 1s, s + 1 day)
	}
	if err1 != nil || err2 != nil || to.Sub(from) > span || to.Before(from) {
		http.Error(w, `{"error":"from and to are required, at most a day apart"}`, http.StatusBadRequest)
		return
	}
	var in []int
	for i, t := range a.stamps {
		if (t.After(from) || (!a.after && t.Equal(from))) && (t.Before(to) || (a.inclusive && t.Equal(to))) {
			in = append(in, i)
		}
	}
	pos, _ := strconv.Atoi(q.Get("cursor"))
	var recs []string
	for _, i := range in[min(pos, len(in)):min(pos+2, len(in))] {
		recs = append(recs, fmt.Sprintf(`{"id":"r%d","t":%s}`, i, a.write(a.stamps[i])))
	}
	next := "null"
	if pos+2 < len(in) {
		next = strconv.Quote(strconv.Itoa(pos + 2))
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"data":[%s],"next_cursor":%s}`, strings.Join(recs, ","), next)
}

func (a *windowAPI) ids() []string {
	var ids []string
	for i := range a.stamps {
		ids = append(ids, fmt.Sprintf("r%d", i))
	}
	sort.Strings(ids)
	return ids
}

func (a *windowAPI) resource(extra string) string {
	initial := a.base.Format(time.RFC3339)
	if a.unix {
		initial = strconv.FormatInt(a.base.Unix(), 10)
	}
	end := "exclusive"
	if a.inclusive {
		end = "inclusive"
	}
	if a.after {
		end += ", start: exclusive"
	}
	return fmt.Sprintf(`        pagination: {kind: cursor}
        incremental:
          cursor_field: t
          param: from
          initial: "%s"
          window: {end_param: to, step: 24h, lag: 1h, end: %s%s}`, initial, end, extra)
}

func sortedIDs(t *testing.T, f *fixture) []string {
	ids := f.ids(t)
	sort.Strings(ids)
	return ids
}

// TestDateWindows: a run walks day windows from incremental.initial up to now minus lag (an API refusing
// longer ranges), with exclusive or inclusive ends, RFC 3339 or Unix bounds; records on window boundaries
// load once; empty windows move the cursor on, so the next run asks only for the last window.
func TestDateWindows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                   string
		inclusive, unix, after bool
	}{{"exclusive", false, false, false}, {"inclusive", true, false, false}, {"unix", false, true, false}, {"exclusive start", false, false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := newWindowAPI(time.Now())
			api.inclusive, api.unix, api.after = tc.inclusive, tc.unix, tc.after
			f := newFixture(t, api.ServeHTTP)
			extra := ""
			if tc.unix {
				extra = ", format: unix"
			}
			cfg := f.config(t, "", api.resource(extra))
			if err := f.run(t, cfg, Options{}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(api.ids(), sortedIDs(t, f)); diff != "" {
				t.Errorf("staged (-source +staging):\n%s", diff)
			}
			first := api.requests.Load()
			if first < 10 {
				t.Errorf("%d requests for 10 day windows", first)
			}
			// Nothing new: the second run starts at the last window's end (now - lag), one window of an hour
			// or so, not at the last record (12 hours before now) or at initial.
			if err := f.run(t, cfg, Options{}); err != nil {
				t.Fatal(err)
			}
			if n := api.requests.Load() - first; n != 1 {
				t.Errorf("a second run with nothing new sent %d requests, want 1 (the window since the last one)", n)
			}
			cursor := queryOne[string](t, f.db, `select value from elt.cursors where resource = 'items'`)
			c, err := (&Window{Format: map[bool]string{true: "unix", false: "rfc3339"}[tc.unix]}).parse(cursor)
			if err != nil || time.Since(c) > 75*time.Minute || time.Since(c) < time.Hour {
				t.Errorf("the cursor after the windows is %s (%v): want about now minus the lag", cursor, err)
			}
			if diff := cmp.Diff(api.ids(), sortedIDs(t, f)); diff != "" {
				t.Errorf("staged after the second run (-source +staging):\n%s", diff)
			}
		})
	}
}

// TestWindowFormatMustMatchTheCursor: window bounds in Unix seconds over records whose cursor is RFC 3339
// would never compare with the marks: the first record stops the run, saying so, and nothing is committed.
func TestWindowFormatMustMatchTheCursor(t *testing.T) {
	t.Parallel()
	api := newWindowAPI(time.Now())
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		q := r.URL.Query()
		for _, k := range []string{"from", "to"} { // Unix seconds in, RFC 3339 cursors out
			s, _ := strconv.ParseInt(q.Get(k), 10, 64)
			q.Set(k, time.Unix(s, 0).UTC().Format(time.RFC3339))
		}
		r.URL.RawQuery = q.Encode()
		api.ServeHTTP(w, r, n)
	})
	cfg := f.config(t, "", strings.Replace(api.resource(", format: unix"), api.base.Format(time.RFC3339), strconv.FormatInt(api.base.Unix(), 10), 1))
	err := f.run(t, cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "is not a number of Unix seconds (format unix): incremental.window.format must match the cursor field t") {
		t.Fatalf("unix windows over RFC 3339 cursors: %v", err)
	}
	if n := queryOne[int64](t, f.db, `select count(*) from elt.cursors`); n != 0 {
		t.Errorf("%d cursors committed", n)
	}
}

// TestKilledWindowWalkResumes: runs of a date-window walk killed with SIGKILL between (and inside) windows
// leave staging that the next run completes with every record once, and that run starts at the first
// window not walked whole, not at incremental.initial.
func TestKilledWindowWalkResumes(t *testing.T) {
	t.Parallel()
	api := newWindowAPI(time.Now())
	api.delay = 15 * time.Millisecond
	f := newFixture(t, api.ServeHTTP)
	yaml := fmt.Sprintf(`
sources:
  - name: fx
    base_url: %s
    backoff: 5ms
    batch_size: 1
    batch_time: 20ms
    resources:
      - name: items
        path: /items
        records: data
        primary_key: id
%s
`, f.srv.URL, api.resource(""))
	// Killed inside a window (after a few batches), right after a window's end was committed (its last
	// second is the cursor: records are on the hour), and in the days without records.
	isMark := func() bool {
		return strings.HasSuffix(queryOne[string](t, f.db, `select coalesce(max(value), '') from elt.cursors`), ":59:59Z")
	}
	batches := func(n int64) func() bool {
		return func() bool { return queryOne[int64](t, f.db, `select count(*) from elt.batches`) >= n }
	}
	for i, when := range []func() bool{batches(3), isMark, batches(22)} {
		cmd := startHelper(t, f.db.URL, yaml)
		hit := false // the condition held when the kill was sent (a batch may still commit before it lands)
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if hit = when(); hit {
				break
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		t.Logf("kill %d at %d batches, cursor %s", i, queryOne[int64](t, f.db, `select count(*) from elt.batches`),
			queryOne[string](t, f.db, `select coalesce(max(value), '') from elt.cursors`))
		if i == 1 && !hit {
			t.Error("the second run was not killed right after a window's end was committed")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for queryOne[int64](t, f.db, `select count(*) from pg_stat_activity where datname = current_database() and application_name like 'elt extract%'`) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cursor := queryOne[string](t, f.db, `select value from elt.cursors where resource = 'items'`)
	before := api.requests.Load()
	cfg := mustConfig(t, yaml)
	if err := f.run(t, cfg, Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(api.ids(), sortedIDs(t, f)); diff != "" {
		t.Errorf("staged after the killed runs and one more (-source +staging):\n%s", diff)
	}
	c, _ := time.Parse(time.RFC3339, cursor)
	if c.Before(api.base.Add(24 * time.Hour)) {
		t.Errorf("the killed runs committed no whole window (cursor %s)", cursor)
	}
	var full int64
	fresh := newWindowAPI(time.Now())
	for s := api.base; s.Before(time.Now().Add(-time.Hour)); s = s.Add(24 * time.Hour) {
		full++
	}
	if n := api.requests.Load() - before; n >= full+int64(len(fresh.stamps))/2 {
		t.Errorf("the run after the kills sent %d requests; a walk from initial sends about %d", n, full+int64(len(fresh.stamps))/2)
	}
}
