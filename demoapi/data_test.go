package demoapi_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/elt-dev/elt/demoapi"
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	srv := demoapi.New(small())
	check := func(t *testing.T, v interface {
		AppendJSON([]byte) []byte
	}) {
		t.Helper()
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.AppendJSON(nil); !bytes.Equal(want, got) {
			t.Fatalf("AppendJSON differs from encoding/json:\nwant %s\ngot  %s", want, got)
		}
	}
	t.Run("Customers", func(t *testing.T) {
		t.Parallel()
		for _, c := range srv.Customers() {
			check(t, c)
		}
	})
	t.Run("Users", func(t *testing.T) {
		t.Parallel()
		for _, u := range srv.Users() {
			check(t, u)
		}
	})
	t.Run("Events", func(t *testing.T) {
		t.Parallel()
		for i := range srv.EventCount() {
			check(t, srv.Event(i))
		}
	})
}

func TestEventInvariants(t *testing.T) {
	t.Parallel()
	opts := small()
	srv := demoapi.New(opts)
	users := map[string]demoapi.User{}
	for _, u := range srv.Users() {
		users[u.ID] = u
	}
	start := t0.AddDate(0, 0, -opts.Days)
	originals := map[string]demoapi.Event{}
	var prev demoapi.Event
	for i := range srv.EventCount() {
		e := srv.Event(i)
		if i > 0 {
			if c := e.UpdatedAt.Compare(prev.UpdatedAt); c < 0 || c == 0 && e.ID <= prev.ID {
				t.Fatalf("event %d (%s, %s) is not after (%s, %s)", i, e.UpdatedAt, e.ID, prev.UpdatedAt, prev.ID)
			}
		}
		u, ok := users[e.UserID]
		switch {
		case !ok:
			t.Fatalf("event %s: unknown user %s", e.ID, e.UserID)
		case u.CustomerID != e.CustomerID:
			t.Fatalf("event %s: user %s belongs to %s, not %s", e.ID, u.ID, u.CustomerID, e.CustomerID)
		case e.OccurredAt.Before(u.CreatedAt):
			t.Fatalf("event %s occurred at %s, before its user was created at %s", e.ID, e.OccurredAt, u.CreatedAt)
		case e.OccurredAt.Before(start) || !e.OccurredAt.Before(t0):
			t.Fatalf("event %s occurred at %s, outside [%s, %s)", e.ID, e.OccurredAt, start, t0)
		case !slices.Contains(demoapi.Features, e.Feature):
			t.Fatalf("event %s: unknown feature %q", e.ID, e.Feature)
		}
		if int64(i) < opts.Events {
			if i > 0 && e.OccurredAt.Before(prev.OccurredAt) {
				t.Fatalf("event %s occurred before the previous one", e.ID)
			}
			if e.Properties.Revision != 0 {
				t.Fatalf("original event %s has revision %d", e.ID, e.Properties.Revision)
			}
			originals[e.ID] = e
		} else {
			orig, ok := originals[e.ID]
			if !ok {
				t.Fatalf("update %d re-sends %s, which is not an earlier original", i, e.ID)
			}
			want := orig
			want.UpdatedAt = e.UpdatedAt
			want.Properties.DurationMS = e.Properties.DurationMS
			want.Properties.Revision = 2
			if diff := cmp.Diff(want, e); diff != "" {
				t.Fatalf("update of %s changes more than updated_at and properties (-want +got):\n%s", e.ID, diff)
			}
			if e.Properties.DurationMS == orig.Properties.DurationMS || !e.UpdatedAt.After(t0) {
				t.Fatalf("update of %s: properties %v (was %v), updated at %s", e.ID, e.Properties, orig.Properties, e.UpdatedAt)
			}
			delete(originals, e.ID) // each event is updated at most once
		}
		prev = e
	}
	if got, want := srv.EventCount(), int(opts.Events+opts.Updates); got != want {
		t.Errorf("EventCount() = %d, want %d", got, want)
	}
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	dump := func(opts demoapi.Options) string {
		b := setup(t, opts)
		var out strings.Builder
		for _, p := range []string{"/v1/customers", "/v1/users", "/v1/events.ndjson"} {
			resp := b.get(t, p+"?limit=10000")
			if resp.status != 200 {
				t.Fatalf("GET %s: %d %s", p, resp.status, resp.body)
			}
			out.Write(resp.body)
		}
		return out.String()
	}
	opts := small()
	first, second := dump(opts), dump(opts)
	if first != second {
		t.Errorf("two servers with the same options serve different bytes")
	}
	opts.Seed++
	if other := dump(opts); other == first {
		t.Errorf("seeds %d and %d serve the same bytes", opts.Seed-1, opts.Seed)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	srv := demoapi.New(demoapi.Options{})
	o := srv.Options()
	want := demoapi.Options{
		Customers: 3, UsersPerCustomer: 40, Events: 20000, Days: 90, Token: "demo-token",
		Now: time.Now().UTC().Truncate(24 * time.Hour),
	}
	if o.Now.Before(want.Now.Add(-24*time.Hour)) || o.Now.After(want.Now) {
		t.Errorf("default Now = %s, want today 00:00 UTC", o.Now)
	}
	o.Now = want.Now
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("Options() (-want +got):\n%s", diff)
	}
	if n := len(srv.Users()); n < 3*40 || n > 3*40+3 {
		t.Errorf("%d users, want about 120", n)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts demoapi.Options
		ok   bool
	}{
		{"Zero", demoapi.Options{}, true},
		{"NoEvents", demoapi.Options{Events: -1}, true},
		{"TooManyCustomers", demoapi.Options{Customers: 10000}, false},
		{"TooManyUsers", demoapi.Options{Customers: 1000, UsersPerCustomer: 50000}, false},
		{"NegativeDays", demoapi.Options{Days: -1}, false},
		{"NegativeUpdates", demoapi.Options{Updates: -1}, false},
		{"NegativeFault", demoapi.Options{Faults: demoapi.Faults{Every500: -1}}, false},
		{"AncientNow", demoapi.Options{Now: time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.opts.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestRealism checks the skew that makes per-customer charts differ: customer sizes, feature popularity,
// weekdays, and users joining during the span.
func TestRealism(t *testing.T) {
	t.Parallel()
	opts := demoapi.Options{Customers: 8, UsersPerCustomer: 40, Events: 40000, Days: 56, Seed: 3, Now: t0}
	srv := demoapi.New(opts)
	perCustomer := map[string]int{}
	perFeature := map[string]int{}
	var weekday, weekend int
	for i := range srv.EventCount() {
		e := srv.Event(i)
		perCustomer[e.CustomerID]++
		perFeature[e.Feature]++
		if wd := e.OccurredAt.Weekday(); wd == time.Saturday || wd == time.Sunday {
			weekend++
		} else {
			weekday++
		}
	}
	counts := func(m map[string]int) (lo, hi int) {
		lo = int(^uint(0) >> 1)
		for _, n := range m {
			lo, hi = min(lo, n), max(hi, n)
		}
		return lo, hi
	}
	if lo, hi := counts(perCustomer); hi < 4*lo {
		t.Errorf("customer sizes not skewed: smallest %d events, biggest %d", lo, hi)
	}
	if lo, hi := counts(perFeature); len(perFeature) != len(demoapi.Features) || hi < 10*lo {
		t.Errorf("feature popularity not skewed or features missing: %v", perFeature)
	}
	// 8 weeks: 40 weekdays and 16 weekend days.
	if perWeekday, perWeekend := weekday/40, weekend/16; perWeekday < 2*perWeekend {
		t.Errorf("weekday average %d events, weekend %d: want weekdays busier", perWeekday, perWeekend)
	}
	start := t0.AddDate(0, 0, -opts.Days)
	joined := 0
	for _, u := range srv.Users() {
		if u.CreatedAt.After(start) {
			joined++
		}
	}
	if joined < len(srv.Users())/3 {
		t.Errorf("only %d of %d users joined during the span", joined, len(srv.Users()))
	}
}

// TestDemoCustomersTimeZones: the customers of make demo (5 customers, seed 1; demo/demo.sh) are in at least
// three time zones, the first tenant's with a half-hour offset, and every zone is one Go (and so PostgreSQL,
// from the same IANA database) knows.
func TestDemoCustomersTimeZones(t *testing.T) {
	t.Parallel()
	srv := demoapi.New(demoapi.Options{Customers: 5, Seed: 1, Now: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)})
	zones := map[string]bool{}
	halfHour := ""
	for _, c := range srv.Customers() {
		loc, err := time.LoadLocation(c.TimeZone)
		if err != nil {
			t.Fatalf("%s: time zone %q: %v", c.ID, c.TimeZone, err)
		}
		zones[c.TimeZone] = true
		if _, off := time.Date(2026, 1, 15, 0, 0, 0, 0, loc).Zone(); off%3600 != 0 && halfHour == "" {
			halfHour = c.ID
		}
	}
	if len(zones) < 3 || halfHour != "cus_0001" {
		t.Errorf("demo customers in zones %v, first with a half-hour offset %q: want at least 3 zones and cus_0001", zones, halfHour)
	}
}
