package superset

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestListPages: a server that caps its page size below what list asks (FAB_API_MAX_PAGE_SIZE) still
// gives every item, and the security endpoints are read in the order of id (a stable paging order).
func TestListPages(t *testing.T) {
	const total, cap = 250, 40
	var orders []bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		orders = append(orders, strings.Contains(q, "order_column:'id'"))
		page, _ := strconv.Atoi(regexp.MustCompile(`page:(\d+)`).FindStringSubmatch(q)[1])
		var items []named
		for i := page * cap; i < min((page+1)*cap, total); i++ {
			items = append(items, named{ID: i + 1, Name: "r" + strconv.Itoa(i+1)})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"count": total, "result": items})
	}))
	defer srv.Close()
	c := &Client{base: mustURL(t, srv.URL), http: srv.Client()}
	got, err := list[named](context.Background(), c, "/api/v1/security/roles/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total || got[total-1].ID != total {
		t.Fatalf("list gave %d items (last %+v), want %d", len(got), got[len(got)-1], total)
	}
	for i, o := range orders {
		if !o {
			t.Errorf("request %d of a security list is not ordered by id", i)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
