package demoapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elt-dev/elt/demoapi"
)

// t0 is the fixed end of the event span every test uses, so test data never depends on the clock.
var t0 = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

const testToken = "test-token"

// testBundle is a server and the httptest server in front of it.
type testBundle struct {
	srv *demoapi.Server
	ts  *httptest.Server
}

// small is a data set big enough for many pages and every kind of record, small enough for fast tests.
func small() demoapi.Options {
	return demoapi.Options{Customers: 4, UsersPerCustomer: 10, Events: 3000, Updates: 40, Days: 30, Seed: 7, Now: t0, Token: testToken}
}

func setup(t testing.TB, opts demoapi.Options) *testBundle {
	t.Helper()
	srv := demoapi.New(opts)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testBundle{srv: srv, ts: ts}
}

// response is what a test needs of an HTTP response; err is the error reading the body, if any.
type response struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// get requests a path (or an absolute URL) with the test token.
func (b *testBundle) get(t testing.TB, target string, header ...string) response {
	t.Helper()
	return b.getContext(context.Background(), t, target, header...)
}

func (b *testBundle) getContext(ctx context.Context, t testing.TB, target string, header ...string) response {
	t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = b.ts.URL + target
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.ts.Client().Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

var linkNext = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// walk follows every page of a listing in the given style and returns the raw records in order.
// path is the listing under /v1/ without style prefix, query its extra parameters.
func (b *testBundle) walk(t testing.TB, style, path string, query url.Values, pageSize int) []string {
	t.Helper()
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	var got []string
	addRaw := func(data []json.RawMessage) {
		for _, r := range data {
			got = append(got, string(r))
		}
	}
	limitName := "limit"
	if style == "page" {
		limitName = "per_page"
	}
	q.Set(limitName, strconv.Itoa(pageSize))
	prefix := ""
	if style != "cursor" && style != "ndjson" && style != "accept" {
		prefix = "/" + style
	}
	target := prefix + path
	if style == "ndjson" {
		target += ".ndjson"
	}
	next := target + "?" + q.Encode()
	for pages := 0; next != ""; pages++ {
		if pages > 10000 {
			t.Fatalf("walk %s %s: no end after %d pages", style, path, pages)
		}
		var resp response
		if style == "accept" {
			resp = b.get(t, next, "Accept", "application/x-ndjson")
		} else {
			resp = b.get(t, next)
		}
		if resp.err != nil || resp.status != http.StatusOK {
			t.Fatalf("GET %s: %d %v %s", next, resp.status, resp.err, resp.body)
		}
		next = ""
		switch style {
		case "cursor":
			var p struct {
				Data       []json.RawMessage `json:"data"`
				NextCursor *string           `json:"next_cursor"`
				HasMore    bool              `json:"has_more"`
			}
			mustUnmarshal(t, resp.body, &p)
			addRaw(p.Data)
			if p.HasMore != (p.NextCursor != nil) {
				t.Fatalf("has_more %v with next_cursor %v", p.HasMore, p.NextCursor)
			}
			if p.NextCursor != nil {
				q.Set("cursor", *p.NextCursor)
				next = target + "?" + q.Encode()
			}
		case "page", "offset":
			var p struct {
				Data  []json.RawMessage `json:"data"`
				Page  int               `json:"page"`
				Off   int               `json:"offset"`
				Total int               `json:"total"`
			}
			mustUnmarshal(t, resp.body, &p)
			addRaw(p.Data)
			if len(got) < p.Total {
				if style == "page" {
					q.Set("page", strconv.Itoa(p.Page+1))
				} else {
					q.Set("offset", strconv.Itoa(p.Off+len(p.Data)))
				}
				next = target + "?" + q.Encode()
			}
		case "next":
			var p struct {
				Data []json.RawMessage `json:"data"`
				Next *string           `json:"next"`
			}
			mustUnmarshal(t, resp.body, &p)
			addRaw(p.Data)
			if p.Next != nil {
				next = *p.Next
			}
		case "link", "ndjson", "accept":
			if style == "link" {
				var data []json.RawMessage
				mustUnmarshal(t, resp.body, &data)
				addRaw(data)
			} else {
				if ct := resp.header.Get("Content-Type"); ct != "application/x-ndjson" {
					t.Fatalf("Content-Type %q", ct)
				}
				for line := range strings.Lines(string(resp.body)) {
					got = append(got, strings.TrimSuffix(line, "\n"))
				}
			}
			if m := linkNext.FindStringSubmatch(resp.header.Get("Link")); m != nil {
				next = m[1]
			}
		default:
			t.Fatalf("unknown style %q", style)
		}
		if style != "ndjson" && style != "accept" {
			if ct := resp.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		}
	}
	return got
}

func mustUnmarshal(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %.200s: %v", b, err)
	}
}

// record is any exported record type.
type record interface{ AppendJSON([]byte) []byte }

func rendered[R record](recs []R) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.AppendJSON(nil))
	}
	return out
}

// events returns the event stream in served order, filtered by keep.
func events(srv *demoapi.Server, keep func(demoapi.Event) bool) []demoapi.Event {
	var out []demoapi.Event
	for i := range srv.EventCount() {
		if e := srv.Event(i); keep == nil || keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// byUpdated sorts records the way the API serves them.
func byUpdated[R any](recs []R, key func(R) (time.Time, string)) []R {
	out := slices.Clone(recs)
	slices.SortFunc(out, func(a, b R) int {
		ta, ia := key(a)
		tb, ib := key(b)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return strings.Compare(ia, ib)
	})
	return out
}

func customerKey(c demoapi.Customer) (time.Time, string) { return c.UpdatedAt, c.ID }
func userKey(u demoapi.User) (time.Time, string)         { return u.UpdatedAt, u.ID }
