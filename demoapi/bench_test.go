package demoapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/elt-dev/elt/demoapi"
)

// BenchmarkServeEvents pages through the event stream over loopback the way an extractor does (pages of
// 10k, body read as raw bytes) and reports records/s. The client's cost is included: it is the bound
// an extractor sees.
func BenchmarkServeEvents(b *testing.B) {
	cases := []struct {
		name   string
		path   string
		header string
	}{
		{"Cursor", "/v1/events", ""},
		{"NDJSON", "/v1/events", "application/x-ndjson"},
		{"CustomerFilter", "/v1/events?customer_id=cus_0001", ""},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			bundle := setup(b, demoapi.Options{Customers: 3, UsersPerCustomer: 40, Events: 10_000_000, Now: t0, Token: testToken})
			client := bundle.ts.Client()
			next := bundle.ts.URL + tc.path
			sep := "?"
			if len(tc.path) > len("/v1/events") {
				sep = "&"
			}
			next += sep + "limit=10000"
			first := next
			var records, size int64
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, next, nil)
				req.Header.Set("Authorization", "Bearer "+testToken)
				if tc.header != "" {
					req.Header.Set("Accept", tc.header)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("status %d: %v", resp.StatusCode, err)
				}
				size += int64(len(body))
				records += int64(bytes.Count(body, []byte(`{"id":`)))
				next = first // after the last page, start again
				if tc.header == "" {
					var p struct {
						NextCursor *string `json:"next_cursor"`
					}
					// Only the tail holds the cursor: decoding the whole body would measure encoding/json.
					if i := bytes.LastIndex(body, []byte(`],"next_cursor":`)); i >= 0 {
						if err := json.Unmarshal(append([]byte("{"), body[i+2:]...), &p); err != nil {
							b.Fatal(err)
						}
					}
					if p.NextCursor != nil {
						next = first + "&cursor=" + *p.NextCursor
					}
				} else if m := linkNext.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
					next = m[1]
				}
			}
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(size)/float64(records), "B/record")
		})
	}
}
