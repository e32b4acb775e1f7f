package demoapi_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/elt-dev/elt/demoapi"
)

func TestPaginationStyles(t *testing.T) {
	t.Parallel()
	b := setup(t, small())
	customers := byUpdated(b.srv.Customers(), customerKey)
	users := byUpdated(b.srv.Users(), userKey)
	target := customers[1].ID
	var targetUsers []demoapi.User
	for _, u := range users {
		if u.CustomerID == target {
			targetUsers = append(targetUsers, u)
		}
	}
	listings := []struct {
		name  string
		path  string
		query url.Values
		want  []string
	}{
		{"Customers", "/v1/customers", nil, rendered(customers)},
		{"Users", "/v1/users", nil, rendered(users)},
		{"CustomerUsers", "/v1/customers/" + target + "/users", nil, rendered(targetUsers)},
		{"UsersOfCustomer", "/v1/users", url.Values{"customer_id": {target}}, rendered(targetUsers)},
		{"Events", "/v1/events", nil, rendered(events(b.srv, nil))},
		{"EventsOfCustomer", "/v1/events", url.Values{"customer_id": {target}},
			rendered(events(b.srv, func(e demoapi.Event) bool { return e.CustomerID == target }))},
	}
	for _, style := range []string{"cursor", "page", "offset", "next", "link", "ndjson", "accept"} {
		for _, l := range listings {
			t.Run(style+"/"+l.name, func(t *testing.T) {
				t.Parallel()
				for _, size := range []int{3, 97} {
					got := b.walk(t, style, l.path, l.query, size)
					if diff := cmp.Diff(l.want, got); diff != "" {
						t.Errorf("page size %d: records (-want +got):\n%s", size, diff)
					}
				}
			})
		}
	}
}

func TestUpdatedSince(t *testing.T) {
	t.Parallel()
	b := setup(t, small())
	all := events(b.srv, nil)
	mid := all[len(all)/3].UpdatedAt
	cases := []struct {
		name  string
		since string
		from  time.Time // records with updated_at >= from are expected
	}{
		{"BeforeEverything", "2000-01-01T00:00:00Z", time.Time{}},
		{"ExactSecondIsIncluded", mid.Format(time.RFC3339), mid},
		{"FractionRoundsUp", mid.Add(-500 * time.Millisecond).Format(time.RFC3339Nano), mid},
		{"OffsetZone", mid.In(time.FixedZone("CET", 3600)).Format(time.RFC3339), mid},
		{"UpdatesOnly", t0.Format(time.RFC3339), t0},
		{"AfterEverything", "2099-01-01T00:00:00Z", time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var want []string
			for _, e := range all {
				if !e.UpdatedAt.Before(tc.from) {
					want = append(want, string(e.AppendJSON(nil)))
				}
			}
			for _, style := range []string{"cursor", "page", "link"} {
				got := b.walk(t, style, "/v1/events", url.Values{"updated_since": {tc.since}}, 500)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: records (-want +got):\n%s", style, diff)
				}
			}
		})
	}
	t.Run("Users", func(t *testing.T) {
		t.Parallel()
		users := byUpdated(b.srv.Users(), userKey)
		since := users[len(users)/2].UpdatedAt
		want := rendered(users[len(users)/2:])
		got := b.walk(t, "cursor", "/v1/users", url.Values{"updated_since": {since.Format(time.RFC3339)}}, 7)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
	})
}

func TestPageEnvelopes(t *testing.T) {
	t.Parallel()
	b := setup(t, small())
	n := b.srv.EventCount()
	cases := []struct {
		name   string
		target string
		want   map[string]any // top-level fields other than data
		count  int
	}{
		{"CursorLastPage", "/v1/customers", map[string]any{"next_cursor": nil, "has_more": false}, 4},
		{"PageTotal", "/page/v1/events?page=2&per_page=10", map[string]any{"page": 2.0, "per_page": 10.0, "total": float64(n)}, 10},
		{"PagePastEnd", "/page/v1/events?page=1000&per_page=10", map[string]any{"page": 1000.0, "per_page": 10.0, "total": float64(n)}, 0},
		{"OffsetTotal", "/offset/v1/events?offset=5&limit=10", map[string]any{"offset": 5.0, "limit": 10.0, "total": float64(n)}, 10},
		{"LimitClamped", "/offset/v1/events?limit=20000", map[string]any{"offset": 0.0, "limit": 10000.0, "total": float64(n)}, n},
		{"NextLastPage", "/next/v1/customers", map[string]any{"next": nil}, 4},
		{"UnknownCustomerHasNoEvents", "/v1/events?customer_id=cus_9999", map[string]any{"next_cursor": nil, "has_more": false}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := b.get(t, tc.target)
			if resp.status != 200 {
				t.Fatalf("status %d: %s", resp.status, resp.body)
			}
			var got map[string]any
			mustUnmarshal(t, resp.body, &got)
			data, _ := got["data"].([]any)
			delete(got, "data")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
			if len(data) != tc.count {
				t.Errorf("got %d records, want %d", len(data), tc.count)
			}
		})
	}
}
