package demoapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/elt-dev/elt/demoapi"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, small())
	cases := []struct {
		name   string
		path   string
		auth   string
		status int
		body   string
	}{
		{"Missing", "/v1/events", "", 401, `{"error":"invalid token"}` + "\n"},
		{"Wrong", "/v1/events", "Bearer nope", 401, `{"error":"invalid token"}` + "\n"},
		{"NotBearer", "/v1/customers", "Basic " + testToken, 401, `{"error":"invalid token"}` + "\n"},
		{"UnknownPathStillNeedsToken", "/v2/nothing", "", 401, `{"error":"invalid token"}` + "\n"},
		{"Healthz", "/healthz", "", 200, "ok"},
	}
	// The group returns once its parallel subtests are done, so the counter check below sees them all.
	t.Run("Requests", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				req, err := http.NewRequest(http.MethodGet, b.ts.URL+tc.path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				resp, err := b.ts.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if diff := cmp.Diff([]any{tc.status, tc.body}, []any{resp.StatusCode, string(body)}); diff != "" {
					t.Errorf("status and body (-want +got):\n%s", diff)
				}
			})
		}
	})
	if n := b.srv.Requests(); n != 0 {
		t.Errorf("Requests() = %d after unauthenticated requests only, want 0", n)
	}
}

func TestDefaultToken(t *testing.T) {
	t.Parallel()
	opts := small()
	opts.Token = ""
	b := setup(t, opts)
	req, _ := http.NewRequest(http.MethodGet, b.ts.URL+"/v1/customers", nil)
	req.Header.Set("Authorization", "Bearer demo-token")
	resp, err := b.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d with the default token", resp.StatusCode)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, small())
	cases := []struct {
		name   string
		target string
		status int
		error  string
	}{
		{"LimitZero", "/v1/events?limit=0", 400, "invalid limit: want a positive integer"},
		{"LimitText", "/v1/events?limit=ten", 400, "invalid limit: want a positive integer"},
		{"PerPage", "/page/v1/events?per_page=-1", 400, "invalid per_page: want a positive integer"},
		{"PageZero", "/page/v1/events?page=0", 400, "invalid page: want an integer from 1"},
		{"OffsetNegative", "/offset/v1/events?offset=-1", 400, "invalid offset: want an integer from 0"},
		{"Cursor", "/v1/events?cursor=garbage", 400, "invalid cursor"},
		{"UpdatedSince", "/v1/events?updated_since=yesterday", 400, "invalid updated_since: want RFC 3339"},
		{"UnknownPath", "/v1/invoices", 404, "not found"},
		{"UnknownCustomer", "/v1/customers/cus_9999/users", 404, "customer not found"},
		{"UnknownStyle", "/pages/v1/events", 404, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := b.get(t, tc.target)
			var got struct {
				Error string `json:"error"`
			}
			mustUnmarshal(t, resp.body, &got)
			if diff := cmp.Diff([]any{tc.status, tc.error}, []any{resp.status, got.Error}); diff != "" {
				t.Errorf("status and error (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("Post", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequest(http.MethodPost, b.ts.URL+"/v1/events", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := b.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("status %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
}

func TestFaults(t *testing.T) {
	t.Parallel()
	type outcome struct {
		Status     int
		RetryAfter string
		Truncated  bool
	}
	ok := outcome{Status: 200}
	cases := []struct {
		name   string
		faults demoapi.Faults
		want   []outcome
	}{
		{"None", demoapi.Faults{}, []outcome{ok, ok, ok}},
		{"TooManyRequests", demoapi.Faults{Every429: 2},
			[]outcome{ok, {Status: 429, RetryAfter: "1"}, ok, {Status: 429, RetryAfter: "1"}}},
		{"RetryAfterRoundsUp", demoapi.Faults{Every429: 1, RetryAfter: 2500 * time.Millisecond},
			[]outcome{{Status: 429, RetryAfter: "3"}}},
		{"RetryAfterZero", demoapi.Faults{Every429: 1, RetryAfter: -1}, []outcome{{Status: 429, RetryAfter: "0"}}},
		{"ServerError", demoapi.Faults{Every500: 3}, []outcome{ok, ok, {Status: 500}, ok, ok, {Status: 500}}},
		{"Truncate", demoapi.Faults{EveryTruncate: 2}, []outcome{ok, {Status: 200, Truncated: true}, ok}},
		{"429BeforeTruncate", demoapi.Faults{Every429: 2, EveryTruncate: 2}, []outcome{ok, {Status: 429, RetryAfter: "1"}}},
		{"SlowStillAnswers", demoapi.Faults{Slow: time.Millisecond}, []outcome{ok, ok}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := small()
			opts.Faults = tc.faults
			b := setup(t, opts)
			clean := setup(t, small())
			const target = "/v1/events?limit=50"
			full := clean.get(t, target).body
			var got []outcome
			for range tc.want {
				resp := b.get(t, target)
				o := outcome{Status: resp.status, RetryAfter: resp.header.Get("Retry-After")}
				switch {
				case resp.err != nil:
					o.Truncated = true
					if !errors.Is(resp.err, io.ErrUnexpectedEOF) {
						t.Errorf("reading a truncated body: %v, want unexpected EOF", resp.err)
					}
					if len(resp.body) == 0 || !strings.HasPrefix(string(full), string(resp.body)) {
						t.Errorf("truncated body is not a prefix of the page: %.100q", resp.body)
					}
				case resp.status == 200 && string(resp.body) != string(full):
					t.Errorf("page differs from a fault-free server's")
				}
				got = append(got, o)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
			if n := b.srv.Requests(); n != int64(len(tc.want)) {
				t.Errorf("Requests() = %d, want %d", n, len(tc.want))
			}
		})
	}
}

// TestSlowFault checks that a slow request is delayed (the client gives up first) and that the server stops
// waiting when the client goes away: otherwise closing the test server would hang for an hour.
func TestSlowFault(t *testing.T) {
	t.Parallel()
	opts := small()
	opts.Faults = demoapi.Faults{Slow: time.Hour, SlowEvery: 2}
	b := setup(t, opts)
	if resp := b.get(t, "/v1/customers"); resp.status != 200 {
		t.Fatalf("first request: %d %v", resp.status, resp.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if resp := b.getContext(ctx, t, "/v1/customers"); !errors.Is(resp.err, context.DeadlineExceeded) {
		t.Fatalf("second request: status %d, err %v; want the client to give up", resp.status, resp.err)
	}
	if resp := b.get(t, "/v1/customers"); resp.status != 200 {
		t.Fatalf("third request: %d %v", resp.status, resp.err)
	}
}
