package extract

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/elt-dev/elt/tests/pgtest"
)

// listAPI is a purpose-built API serving records 0..n-1 in pages of size, in one pagination kind, with
// control over what happens past the last page, so that each stop rule can be shown to be the one that
// stops the walk.
type listAPI struct {
	kind       string // page, offset, cursor, header_cursor, last_record, next_url, link, ndjson
	n, size    int
	beyond     string // past the end: "empty" (default), "repeat" (the last page again) or "infinite"
	alwaysNext bool   // always send a next cursor/URL/link, even on the last page
	hasMore    bool   // send has_more
	total      bool   // send total
	totalHead  bool   // send X-Total-Count
	ignorePage bool   // always serve the first page (a broken API)
	stuck      bool   // the next cursor never changes
	cycle      bool   // the pages go round: 0, 1, 2, 0, 1, ...
	otherHost  bool   // next URLs point to another server
}

func (a *listAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := 0
	switch a.kind {
	case "page":
		p, _ = strconv.Atoi(q.Get("page"))
		p--
	case "offset":
		o, _ := strconv.Atoi(q.Get("offset"))
		p = o / a.size
	case "cursor", "header_cursor":
		p, _ = strconv.Atoi(strings.TrimPrefix(q.Get("cursor"), "c"))
	case "last_record":
		if after := q.Get("starting_after"); after != "" {
			id, _ := strconv.Atoi(after)
			p = (id + a.size) / a.size // the page after the one id is on
		}
	default:
		p, _ = strconv.Atoi(q.Get("p"))
	}
	if a.ignorePage {
		p = 0
	}
	last := (a.n - 1) / a.size
	served := p
	if p > last && a.beyond == "repeat" {
		served = last
	}
	var recs []string
	for i := served * a.size; i < (served+1)*a.size && (i < a.n || a.beyond == "infinite"); i++ {
		recs = append(recs, fmt.Sprintf(`{"id":%d,"v":"r%d"}`, i, i))
	}
	more := p < last || a.beyond == "infinite"
	next := p + 1
	if a.stuck {
		next = 1
	}
	if a.cycle {
		next = (p + 1) % 3
	}
	haveNext := more || a.alwaysNext
	host := r.Host
	if a.otherHost {
		host = "elsewhere.example"
	}
	nextURL := fmt.Sprintf("http://%s%s?p=%d", host, r.URL.Path, next)
	if (a.kind == "link" || a.kind == "ndjson") && haveNext {
		w.Header().Add("Link", fmt.Sprintf(`<%s>; rel="next", <http://%s/first>; rel="first"`, nextURL, r.Host))
	}
	if a.kind == "ndjson" {
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, rec := range recs {
			fmt.Fprintln(w, rec)
		}
		return
	}
	if a.kind == "header_cursor" && haveNext {
		w.Header().Set("X-Next-Cursor", "c"+strconv.Itoa(next))
	}
	if a.totalHead {
		w.Header().Set("X-Total-Count", strconv.Itoa(a.n))
	}
	w.Header().Set("Content-Type", "application/json")
	if a.kind == "link" {
		fmt.Fprintf(w, "[%s]", strings.Join(recs, ","))
		return
	}
	body := map[string]any{}
	meta := map[string]any{}
	if a.hasMore {
		meta["has_more"] = more
	}
	if a.total {
		body["total"] = a.n
	}
	switch a.kind {
	case "cursor":
		if haveNext {
			body["next_cursor"] = "c" + strconv.Itoa(next)
		} else {
			body["next_cursor"] = nil
		}
	case "next_url":
		if haveNext {
			meta["next"] = nextURL
		} else {
			meta["next"] = nil
		}
	}
	body["meta"] = meta
	b, _ := json.Marshal(body)
	// The records go in a nested envelope, after some of the metadata: {"total":..,"result":{"items":[...]},"meta":{..}}.
	fmt.Fprintf(w, `{"result":{"count":%d,"items":[%s]},%s`, len(recs), strings.Join(recs, ","), b[1:])
}

func walkTestAPI(t *testing.T, api *listAPI, pag Pagination) (ids []int, err error) {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	format, records := "json", "result.items"
	switch api.kind {
	case "link":
		records = ""
	case "ndjson":
		format, records = "ndjson", ""
	}
	res := &Resource{Name: "things", Path: "/things", Format: format, Records: records, Mode: "replace", Pagination: pag}
	src := &Source{Name: "test", BaseURL: srv.URL, Resources: []*Resource{res}, MaxRetries: -1}
	if err := (&Config{Sources: []*Source{src}}).validate(); err != nil {
		t.Fatal(err)
	}
	c := newClient(src, credentials{}, slog.New(slog.DiscardHandler))
	start, _ := url.Parse(srv.URL + "/things")
	err = c.walk(context.Background(), res, newRequest(res, start, nil), func(rec []byte, bad, page string) error {
		v, _ := fieldText(rec, []string{"id"})
		id, _ := strconv.Atoi(v)
		ids = append(ids, id)
		return nil
	}, nil)
	return ids, err
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestPaginationKindsAndStopRules(t *testing.T) {
	t.Parallel()
	f := false
	for _, tc := range []struct {
		name string
		api  listAPI
		pag  Pagination
		want int // records read
	}{
		{"PageEmptyPage", listAPI{kind: "page", n: 23, size: 5}, Pagination{Kind: "page", SizeParam: "per_page", Size: 5}, 23},
		{"PageHasMore", listAPI{kind: "page", n: 23, size: 5, beyond: "repeat", hasMore: true}, Pagination{Kind: "page", SizeParam: "per_page", Size: 5, HasMorePath: "meta.has_more"}, 23},
		{"PageTotal", listAPI{kind: "page", n: 25, size: 5, beyond: "repeat", total: true}, Pagination{Kind: "page", SizeParam: "per_page", Size: 5, TotalPath: "total"}, 25},
		{"PageMaxPages", listAPI{kind: "page", n: 10, size: 5, beyond: "infinite"}, Pagination{Kind: "page", SizeParam: "per_page", Size: 5, MaxPages: 3, StopOnEmpty: &f}, 15},
		{"OffsetEmptyPage", listAPI{kind: "offset", n: 12, size: 4}, Pagination{Kind: "offset", Size: 4}, 12},
		{"OffsetHasMore", listAPI{kind: "offset", n: 13, size: 4, beyond: "repeat", hasMore: true}, Pagination{Kind: "offset", Size: 4, HasMorePath: "meta.has_more"}, 13},
		{"OffsetTotal", listAPI{kind: "offset", n: 13, size: 4, beyond: "repeat", total: true}, Pagination{Kind: "offset", Size: 4, TotalPath: "total"}, 13},
		{"OffsetMaxPages", listAPI{kind: "offset", n: 4, size: 4, beyond: "infinite"}, Pagination{Kind: "offset", Size: 4, MaxPages: 2}, 8},
		{"CursorNullToken", listAPI{kind: "cursor", n: 17, size: 5}, Pagination{Kind: "cursor"}, 17},
		{"CursorHasMore", listAPI{kind: "cursor", n: 17, size: 5, alwaysNext: true, beyond: "repeat", hasMore: true}, Pagination{Kind: "cursor", HasMorePath: "meta.has_more"}, 17},
		{"CursorTotal", listAPI{kind: "cursor", n: 17, size: 5, alwaysNext: true, beyond: "repeat", total: true}, Pagination{Kind: "cursor", TotalPath: "total"}, 17},
		{"CursorEmptyPage", listAPI{kind: "cursor", n: 15, size: 5, alwaysNext: true}, Pagination{Kind: "cursor"}, 15},
		{"CursorMaxPages", listAPI{kind: "cursor", n: 5, size: 5, beyond: "infinite"}, Pagination{Kind: "cursor", MaxPages: 4}, 20},
		{"NextURLNull", listAPI{kind: "next_url", n: 11, size: 3}, Pagination{Kind: "next_url", NextURLPath: "meta.next"}, 11},
		{"NextURLHasMore", listAPI{kind: "next_url", n: 11, size: 3, alwaysNext: true, beyond: "repeat", hasMore: true}, Pagination{Kind: "next_url", NextURLPath: "meta.next", HasMorePath: "meta.has_more"}, 11},
		{"NextURLMaxPages", listAPI{kind: "next_url", n: 3, size: 3, beyond: "infinite"}, Pagination{Kind: "next_url", NextURLPath: "meta.next", MaxPages: 2}, 6},
		{"LinkHeader", listAPI{kind: "link", n: 11, size: 3}, Pagination{Kind: "link"}, 11},
		{"LinkEmptyPage", listAPI{kind: "link", n: 9, size: 3, alwaysNext: true}, Pagination{Kind: "link"}, 9},
		{"LinkMaxPages", listAPI{kind: "link", n: 3, size: 3, beyond: "infinite"}, Pagination{Kind: "link", MaxPages: 5}, 15},
		{"NDJSONLink", listAPI{kind: "ndjson", n: 10, size: 4}, Pagination{Kind: "link"}, 10},
		{"HeaderCursorNoHeader", listAPI{kind: "header_cursor", n: 17, size: 5}, Pagination{Kind: "header_cursor"}, 17},
		{"HeaderCursorHasMore", listAPI{kind: "header_cursor", n: 17, size: 5, alwaysNext: true, beyond: "repeat", hasMore: true}, Pagination{Kind: "header_cursor", HasMorePath: "meta.has_more"}, 17},
		{"HeaderCursorTotal", listAPI{kind: "header_cursor", n: 17, size: 5, alwaysNext: true, beyond: "repeat", total: true}, Pagination{Kind: "header_cursor", TotalPath: "total"}, 17},
		{"HeaderCursorTotalHeader", listAPI{kind: "header_cursor", n: 17, size: 5, alwaysNext: true, beyond: "repeat", totalHead: true}, Pagination{Kind: "header_cursor", TotalHeader: "X-Total-Count"}, 17},
		{"HeaderCursorEmptyPage", listAPI{kind: "header_cursor", n: 15, size: 5, alwaysNext: true}, Pagination{Kind: "header_cursor"}, 15},
		{"HeaderCursorMaxPages", listAPI{kind: "header_cursor", n: 5, size: 5, beyond: "infinite"}, Pagination{Kind: "header_cursor", MaxPages: 3}, 15},
		{"LastRecordEmptyPage", listAPI{kind: "last_record", n: 17, size: 5}, Pagination{Kind: "last_record"}, 17},
		{"LastRecordHasMore", listAPI{kind: "last_record", n: 15, size: 5, hasMore: true}, Pagination{Kind: "last_record", HasMorePath: "meta.has_more", StopOnEmpty: &f}, 15},
		{"LastRecordTotal", listAPI{kind: "last_record", n: 15, size: 5, total: true}, Pagination{Kind: "last_record", TotalPath: "total", StopOnEmpty: &f}, 15},
		{"LastRecordTotalHeader", listAPI{kind: "last_record", n: 15, size: 5, totalHead: true}, Pagination{Kind: "last_record", TotalHeader: "X-Total-Count", StopOnEmpty: &f}, 15},
		{"LastRecordMaxPages", listAPI{kind: "last_record", n: 5, size: 5, beyond: "infinite"}, Pagination{Kind: "last_record", MaxPages: 3}, 15},
		{"PageTotalHeader", listAPI{kind: "page", n: 25, size: 5, beyond: "repeat", totalHead: true}, Pagination{Kind: "page", SizeParam: "per_page", Size: 5, TotalHeader: "X-Total-Count"}, 25},
		{"NoPagination", listAPI{kind: "cursor", n: 4, size: 10}, Pagination{}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ids, err := walkTestAPI(t, &tc.api, tc.pag)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(seq(tc.want), ids); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPaginationNeverLoops(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		api  listAPI
		pag  Pagination
		want string
	}{
		{"PageIgnored", listAPI{kind: "page", n: 20, size: 5, ignorePage: true}, Pagination{Kind: "page"}, "page 2 repeats page 1"},
		{"OffsetIgnored", listAPI{kind: "offset", n: 20, size: 5, ignorePage: true}, Pagination{Kind: "offset", Size: 5}, "page 2 repeats page 1"},
		{"RepeatPastTheEnd", listAPI{kind: "page", n: 10, size: 5, beyond: "repeat"}, Pagination{Kind: "page"}, "page 3 repeats page 2"},
		{"CursorStuck", listAPI{kind: "cursor", n: 20, size: 5, stuck: true}, Pagination{Kind: "cursor"}, "page 2: cursor next_cursor did not advance"},
		{"NextURLSame", listAPI{kind: "next_url", n: 20, size: 5, stuck: true}, Pagination{Kind: "next_url", NextURLPath: "meta.next"}, "points to the same page"},
		{"CursorCycle", listAPI{kind: "cursor", n: 20, size: 5, beyond: "infinite", cycle: true}, Pagination{Kind: "cursor"}, "page 4: cursor next_cursor leads back to page 2 (the pages go round in a cycle)"},
		{"NextURLCycle", listAPI{kind: "next_url", n: 20, size: 5, beyond: "infinite", cycle: true}, Pagination{Kind: "next_url", NextURLPath: "meta.next"}, "page 4: meta.next leads back to page 2 (the pages go round in a cycle)"},
		{"LinkCycle", listAPI{kind: "link", n: 20, size: 5, beyond: "infinite", cycle: true}, Pagination{Kind: "link"}, "page 4: Link rel=next leads back to page 2 (the pages go round in a cycle)"},
		{"HeaderCursorStuck", listAPI{kind: "header_cursor", n: 20, size: 5, stuck: true}, Pagination{Kind: "header_cursor"}, "page 2: cursor header X-Next-Cursor did not advance"},
		{"HeaderCursorCycle", listAPI{kind: "header_cursor", n: 20, size: 5, beyond: "infinite", cycle: true}, Pagination{Kind: "header_cursor"}, "leads back to page 2 (the pages go round in a cycle)"},
		{"LastRecordIgnored", listAPI{kind: "last_record", n: 20, size: 5, ignorePage: true}, Pagination{Kind: "last_record"}, "page 2 repeats page 1"},
		{"LinkToAnotherServer", listAPI{kind: "link", n: 20, size: 5, otherHost: true}, Pagination{Kind: "link"}, "page 1: Link rel=next points to another server (http://elsewhere.example)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := walkTestAPI(t, &tc.api, tc.pag)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLinkNext(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{`<https://a/b?page=2>; rel="next", <https://a/b?page=9>; rel="last"`}, "https://a/b?page=2"},
		{[]string{`<https://a/b?x=1,2>; rel="prev"`, `<https://a/c>; rel="next"`}, "https://a/c"},
		{[]string{`<https://a/b>; title="a, b"; rel="next last"`}, "https://a/b"},
		{[]string{`<https://a/b>; rel=next`}, "https://a/b"},
		{[]string{`<https://a/b>; rel="prev"`}, ""},
		{nil, ""},
	} {
		if got := linkNext(tc.in); got != tc.want {
			t.Errorf("linkNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Kind last_record (Stripe's starting_after=<last id>): each page asks for the records after the previous
// page's last one, until has_more is false; total_header (X-Total-Count) stops a page walk by the count;
// kind header_cursor takes the next cursor from a response header until there is none.
func TestLastRecordAndTotalHeader(t *testing.T) {
	t.Parallel()
	ids := []string{"a1", "a2", "a3", "a4", "a5"}
	var asked []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/headed" { // the next cursor in a response header: c1 -> c2 -> none
			next := map[string]string{"": "c1", "c1": "c2"}[r.URL.Query().Get("cursor")]
			if next != "" {
				w.Header().Set("X-Next-Cursor", next)
			}
			fmt.Fprintf(w, `[{"id":"h-%s"}]`, r.URL.Query().Get("cursor"))
			return
		}
		if r.URL.Path == "/counted" { // page kind, a total in a header and no stop in the body
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			w.Header().Set("X-Total-Count", "4")
			fmt.Fprintf(w, `[{"id":"p%d-1"},{"id":"p%d-2"}]`, page, page)
			return
		}
		after := r.URL.Query().Get("starting_after")
		mu.Lock()
		asked = append(asked, after)
		mu.Unlock()
		start := 0
		for i, id := range ids {
			if id == after {
				start = i + 1
			}
		}
		end := min(start+2, len(ids))
		var recs []string
		for _, id := range ids[start:end] {
			recs = append(recs, fmt.Sprintf(`{"id":%q,"n":{"k":%q}}`, id, id))
		}
		fmt.Fprintf(w, `{"data":[%s],"has_more":%v}`, strings.Join(recs, ","), end < len(ids))
	}))
	defer srv.Close()
	db := pgtest.New(t)
	cfg := mustConfig(t, fxSource(srv.URL, `      - name: items
        path: /items
        records: data
        primary_key: id
        mode: replace
        pagination: {kind: last_record, record_field: n.k, has_more_path: has_more, size_param: limit, size: 2}
      - name: counted
        path: /counted
        primary_key: id
        mode: replace
        pagination: {kind: page, total_header: X-Total-Count, stop_on_empty: false}
      - name: headed
        path: /headed
        primary_key: id
        mode: replace
        pagination: {kind: header_cursor}
`))
	if err := Run(context.Background(), db.Pool, cfg, Options{ProgressEvery: -1}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"", "a2", "a4"}, asked); diff != "" {
		t.Errorf("starting_after asked (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ids, stagingIDs(t, db, "items")); diff != "" {
		t.Errorf("staged items (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"p1-1", "p1-2", "p2-1", "p2-2"}, stagingIDs(t, db, "counted")); diff != "" {
		t.Errorf("staged counted (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"h-", "h-c1", "h-c2"}, stagingIDs(t, db, "headed")); diff != "" {
		t.Errorf("staged headed (-want +got):\n%s", diff)
	}
}
