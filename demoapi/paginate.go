package demoapi

import (
	"encoding/base64"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// This file is the one place that knows how listings are split into pages. Every style serves the same
// records in the same (updated_at, id) order; only the request parameters and the envelope differ.
//
//	prefix     parameters                          body / header
//	/v1/...    limit, cursor                       {"data":[...],"next_cursor":"..."|null,"has_more":bool}
//	/page/v1   page (from 1), per_page             {"data":[...],"page":P,"per_page":N,"total":T}
//	/offset/v1 offset (from 0), limit              {"data":[...],"offset":O,"limit":N,"total":T}
//	/next/v1   limit, cursor                       {"data":[...],"next":"<full URL>"|null}
//	/link/v1   limit, cursor                       [...] plus Link: <full URL>; rel="next"
//	NDJSON     limit, cursor                       one record per line plus Link: <full URL>; rel="next"
//
// NDJSON is chosen by a ".ndjson" suffix on the resource (/v1/events.ndjson) or by Accept:
// application/x-ndjson on any prefix; it always paginates with the Link header. All styles take
// updated_since, and /v1/events and /v1/users take customer_id.

// style is a pagination style, chosen by the path prefix.
type style int

const (
	styleCursor style = iota
	stylePage
	styleOffset
	styleNext
	styleLink
	styleNDJSON
)

// stylePrefixes maps path prefixes (before /v1/) to styles.
var stylePrefixes = map[string]style{
	"page":   stylePage,
	"offset": styleOffset,
	"next":   styleNext,
	"link":   styleLink,
}

// splitStyle removes a style prefix and an NDJSON suffix from the path.
func splitStyle(r *http.Request) (style, string) {
	p := r.URL.Path
	s := styleCursor
	if rest, ok := strings.CutPrefix(p, "/"); ok {
		if prefix, tail, ok := strings.Cut(rest, "/"); ok {
			if ps, ok := stylePrefixes[prefix]; ok {
				s, p = ps, "/"+tail
			}
		}
	}
	if trimmed, ok := strings.CutSuffix(p, ".ndjson"); ok {
		return styleNDJSON, trimmed
	}
	for _, a := range r.Header.Values("Accept") {
		if strings.Contains(a, "application/x-ndjson") {
			return styleNDJSON, p
		}
	}
	return s, p
}

// listing is one ordered collection of records: a customer, user or event stream, possibly filtered.
// Positions 0..n-1 are in (updated_at, id) order.
type listing struct {
	n         int64
	updatedAt func(i int64) int64
	match     func(i int64) bool // nil: every record
	append    func(dst []byte, i int64) []byte
}

// seek returns the first position whose updated_at is at or after since.
func (l *listing) seek(since int64) int64 {
	lo, hi := int64(0), l.n
	for lo < hi {
		m := int64(uint64(lo+hi) >> 1)
		if l.updatedAt(m) < since {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// collect appends to idx up to limit matching positions from position from, and returns the position of
// the next match after them (-1 when there is none, so has_more is exact).
func (l *listing) collect(from int64, limit int, idx []int64) ([]int64, int64) {
	i := from
	for ; i < l.n && len(idx) < limit; i++ {
		if l.match == nil || l.match(i) {
			idx = append(idx, i)
		}
	}
	for ; i < l.n; i++ {
		if l.match == nil || l.match(i) {
			return idx, i
		}
	}
	return idx, -1
}

// skip returns the position after skipping k matching records from position from.
func (l *listing) skip(from, k int64) int64 {
	if l.match == nil {
		return min(from+k, l.n)
	}
	i := from
	for ; i < l.n && k > 0; i++ {
		if l.match(i) {
			k--
		}
	}
	return i
}

// count returns the number of matching records from position from.
func (l *listing) count(from int64) int64 {
	if l.match == nil {
		return l.n - from
	}
	var c int64
	for i := from; i < l.n; i++ {
		if l.match(i) {
			c++
		}
	}
	return c
}

// pageRequest holds the parsed pagination parameters of a request.
type pageRequest struct {
	style  style
	since  int64 // Unix seconds; 0 when absent
	limit  int   // per_page for stylePage
	cursor int64 // position; -1 when absent
	page   int64
	offset int64
}

// paramError is a parameter the client must fix (400); its message is safe to send back.
type paramError struct{ msg string }

func (e *paramError) Error() string { return e.msg }

func badRequest(msg string) error { return &paramError{msg} }

// parsePageRequest reads the query parameters of a style.
func parsePageRequest(s style, q url.Values) (pageRequest, error) {
	pr := pageRequest{style: s, cursor: -1, page: 1}
	if v := q.Get("updated_since"); v != "" {
		// A literal '+' in an unescaped query string arrives as a space.
		t, err := time.Parse(time.RFC3339, strings.ReplaceAll(v, " ", "+"))
		if err != nil {
			return pr, badRequest("invalid updated_since: want RFC 3339")
		}
		pr.since = t.Unix()
		if t.Nanosecond() > 0 {
			pr.since++ // inclusive bound on second-precision timestamps
		}
	}
	limitName := "limit"
	if s == stylePage {
		limitName = "per_page"
	}
	pr.limit = DefaultLimit
	if v := q.Get(limitName); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return pr, badRequest("invalid " + limitName + ": want a positive integer")
		}
		pr.limit = min(n, MaxLimit)
	}
	switch s {
	case stylePage:
		if v := q.Get("page"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return pr, badRequest("invalid page: want an integer from 1")
			}
			pr.page = n
		}
	case styleOffset:
		if v := q.Get("offset"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return pr, badRequest("invalid offset: want an integer from 0")
			}
			pr.offset = n
		}
	default:
		if v := q.Get("cursor"); v != "" {
			pos, err := decodeCursor(v)
			if err != nil {
				return pr, err
			}
			pr.cursor = pos
		}
	}
	return pr, nil
}

// Cursors are opaque to clients; inside they are the position of the next record.
const cursorPrefix = "p1."

func encodeCursor(pos int64) string {
	return base64.RawURLEncoding.EncodeToString(strconv.AppendInt([]byte(cursorPrefix), pos, 10))
}

func decodeCursor(s string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
			if pos, err := strconv.ParseInt(rest, 10, 64); err == nil && pos >= 0 {
				return pos, nil
			}
		}
	}
	return 0, badRequest("invalid cursor")
}

// page is the selection of one response.
type page struct {
	idx   []int64 // positions of the records, in order
	next  int64   // position the next page starts at; -1 on the last page
	total int64   // matching records overall (page and offset styles)
}

// selectPage chooses the records of a request.
func (l *listing) selectPage(pr pageRequest, idx []int64) page {
	start := l.seek(pr.since)
	switch pr.style {
	case stylePage, styleOffset:
		off := pr.offset
		if pr.style == stylePage {
			off = (pr.page - 1) * int64(pr.limit)
			if off/int64(pr.limit) != pr.page-1 { // overflow: far past the end
				off = l.n
			}
		}
		total := l.count(start)
		idx, next := l.collect(l.skip(start, off), pr.limit, idx)
		return page{idx: idx, next: next, total: total}
	}
	if pr.cursor >= 0 {
		start = max(start, min(pr.cursor, l.n))
	}
	idx, next := l.collect(start, pr.limit, idx)
	return page{idx: idx, next: next, total: -1}
}

// nextURL is the absolute URL of the page of request r, whose query is q, that starts at position next.
func nextURL(r *http.Request, q url.Values, next int64) string {
	q = maps.Clone(q) // q is the request's: leave it as it is
	q.Set("cursor", encodeCursor(next))
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
	return u.String()
}

// header sets the response headers of a page: its content type and, for Link styles, the next link.
func (pg *page) header(h http.Header, r *http.Request, q url.Values, s style) {
	if s == styleNDJSON {
		h.Set("Content-Type", "application/x-ndjson")
	} else {
		h.Set("Content-Type", "application/json")
	}
	if (s == styleLink || s == styleNDJSON) && pg.next >= 0 {
		h.Set("Link", "<"+nextURL(r, q, pg.next)+`>; rel="next"`)
	}
}

// open appends what comes before the first record.
func (pg *page) open(dst []byte, s style) []byte {
	switch s {
	case styleNDJSON:
		return dst
	case styleLink:
		return append(dst, '[')
	}
	return append(dst, `{"data":[`...)
}

// before appends what comes before record k of a page.
func before(dst []byte, s style, k int) []byte {
	if k > 0 && s != styleNDJSON {
		return append(dst, ',')
	}
	return dst
}

// after appends what comes after each record.
func after(dst []byte, s style) []byte {
	if s == styleNDJSON {
		return append(dst, '\n')
	}
	return dst
}

// close appends what comes after the last record.
func (pg *page) close(dst []byte, r *http.Request, q url.Values, pr pageRequest) []byte {
	switch pr.style {
	case styleNDJSON:
		return dst
	case styleLink:
		return append(dst, "]\n"...)
	case stylePage:
		dst = append(dst, `],"page":`...)
		dst = strconv.AppendInt(dst, pr.page, 10)
		dst = append(dst, `,"per_page":`...)
		dst = strconv.AppendInt(dst, int64(pr.limit), 10)
		dst = append(dst, `,"total":`...)
		dst = strconv.AppendInt(dst, pg.total, 10)
	case styleOffset:
		dst = append(dst, `],"offset":`...)
		dst = strconv.AppendInt(dst, pr.offset, 10)
		dst = append(dst, `,"limit":`...)
		dst = strconv.AppendInt(dst, int64(pr.limit), 10)
		dst = append(dst, `,"total":`...)
		dst = strconv.AppendInt(dst, pg.total, 10)
	case styleNext:
		dst = append(dst, `],"next":`...)
		if pg.next >= 0 {
			dst = appendString(dst, nextURL(r, q, pg.next))
		} else {
			dst = append(dst, "null"...)
		}
	default:
		dst = append(dst, `],"next_cursor":`...)
		if pg.next >= 0 {
			dst = appendString(dst, encodeCursor(pg.next))
			dst = append(dst, `,"has_more":true`...)
		} else {
			dst = append(dst, `null,"has_more":false`...)
		}
	}
	return append(dst, "}\n"...)
}
