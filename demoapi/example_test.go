package demoapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/elt-dev/elt/demoapi"
)

// A test starts the API on a loopback port, requests a page, and compares it with the source of truth.
func Example() {
	srv := demoapi.New(demoapi.Options{
		Customers: 2, UsersPerCustomer: 5, Events: 100, Days: 7, Seed: 1,
		Now:   time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		Token: "secret",
	})
	ts := httptest.NewServer(srv)
	defer ts.Close()

	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/events.ndjson?limit=1", nil)
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)

	fmt.Println(resp.Header.Get("Content-Type"))
	fmt.Println(string(body) == string(srv.Event(0).AppendJSON(nil))+"\n")
	fmt.Println(srv.EventCount(), srv.Requests())
	// Output:
	// application/x-ndjson
	// true
	// 100 1
}
