package extract

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// This file holds the pagination kinds (page number, offset/limit, cursor token, next URL in the body,
// RFC 8288 Link header) and their stop rules (has-more flag, total count, empty page, max pages). Every kind
// refuses to loop: a page that starts with the same record as the page before, or a cursor or next URL that
// does not change or that leads back to an earlier page of the walk, is an error naming the page.

// pager walks the pages of one resource request.
type pager struct {
	cfg      *Pagination
	req      *request       // the request for the page being read
	pages    int            // pages read
	records  int            // records read on all pages
	prev     []byte         // first record of the previous page
	first    []byte         // first record of the current page
	pageRec  int            // records on the current page so far
	visited  map[string]int // cursor tokens or URLs of the pages requested, with their page number
	total    int            // the record count the API gave on the latest page (total_path), 0 if none
	last     []byte         // the last record of the page just read (kind last_record); nil for an empty page
	pageLast []byte         // the last record of the current page so far
}

// pageKind is one pagination kind, all of it in one place: the defaults of its settings, the parameters of
// its first page, the body fields it reads, and how it moves to the next page. A new kind is one more entry
// of pageKinds.
type pageKind struct {
	// defaults fills the kind's unset settings (Pagination.validate).
	defaults func(p *Pagination)
	// needsStop: the kind never ends by itself (page numbers and offsets go on), so a stop rule is required.
	needsStop bool
	// start sets the first page's parameters; nil: the resource's request as it is.
	start func(pg *pager)
	// reads are the body fields the kind reads besides the stop rules'.
	reads func(p *Pagination) []string
	// next moves pg to the page after the one just read, or says the walk is done and why.
	next func(pg *pager, meta map[string]json.RawMessage, h http.Header) (done bool, why string, err error)
}

// pageKinds are the pagination kinds by name (Pagination.Kind).
var pageKinds = map[string]pageKind{
	"none": {
		defaults: func(*Pagination) {},
		next: func(*pager, map[string]json.RawMessage, http.Header) (bool, string, error) {
			return true, "single page", nil
		},
	},
	"page": {
		defaults: func(p *Pagination) {
			p.PageParam = cmp.Or(p.PageParam, "page")
			if p.FirstPage == nil {
				one := 1
				p.FirstPage = &one
			}
		},
		needsStop: true,
		start:     func(pg *pager) { pg.req.set(pg.cfg.PageParam, *pg.cfg.FirstPage) },
		next: func(pg *pager, _ map[string]json.RawMessage, _ http.Header) (bool, string, error) {
			pg.req.set(pg.cfg.PageParam, *pg.cfg.FirstPage+pg.pages)
			return false, "", nil
		},
	},
	"offset": {
		defaults: func(p *Pagination) {
			p.OffsetParam = cmp.Or(p.OffsetParam, "offset")
			p.SizeParam = cmp.Or(p.SizeParam, "limit")
			p.Size = cmp.Or(p.Size, 100)
		},
		needsStop: true,
		start:     func(pg *pager) { pg.req.set(pg.cfg.OffsetParam, 0) },
		next: func(pg *pager, _ map[string]json.RawMessage, _ http.Header) (bool, string, error) {
			pg.req.set(pg.cfg.OffsetParam, pg.records)
			return false, "", nil
		},
	},
	"cursor": {
		defaults: func(p *Pagination) {
			p.CursorParam = cmp.Or(p.CursorParam, "cursor")
			p.CursorPath = cmp.Or(p.CursorPath, "next_cursor")
		},
		reads: func(p *Pagination) []string { return []string{p.CursorPath} },
		next:  nextCursor,
	},
	"next_url": {
		defaults: func(p *Pagination) { p.NextURLPath = cmp.Or(p.NextURLPath, "next") },
		reads:    func(p *Pagination) []string { return []string{p.NextURLPath} },
		next: func(pg *pager, meta map[string]json.RawMessage, _ http.Header) (bool, string, error) {
			next, ok := scalarText(meta[pg.cfg.NextURLPath])
			if !ok || next == "" {
				return true, "no next URL", nil
			}
			return pg.follow(next, pg.cfg.NextURLPath)
		},
	},
	"header_cursor": {
		defaults: func(p *Pagination) {
			p.CursorParam = cmp.Or(p.CursorParam, "cursor")
			p.CursorHeader = cmp.Or(p.CursorHeader, "X-Next-Cursor")
		},
		next: func(pg *pager, _ map[string]json.RawMessage, h http.Header) (bool, string, error) {
			return pg.moveTo(strings.TrimSpace(h.Get(pg.cfg.CursorHeader)), "header "+pg.cfg.CursorHeader)
		},
	},
	"last_record": {
		defaults: func(p *Pagination) {
			p.RecordField = cmp.Or(p.RecordField, "id")
			p.CursorParam = cmp.Or(p.CursorParam, "starting_after")
		},
		next: nextAfterLast,
	},
	"link": {
		defaults: func(*Pagination) {},
		next: func(pg *pager, _ map[string]json.RawMessage, h http.Header) (bool, string, error) {
			next := linkNext(h.Values("Link"))
			if next == "" {
				return true, "no Link rel=next", nil
			}
			return pg.follow(next, "Link rel=next")
		},
	},
}

// nextCursor moves to the page of the cursor token the body gives (moveTo); has_more true with no token is
// an error.
func nextCursor(pg *pager, meta map[string]json.RawMessage, _ http.Header) (bool, string, error) {
	c := pg.cfg
	tok, _ := scalarText(meta[c.CursorPath]) // "" when absent, null or not a scalar
	if tok == "" && c.HasMorePath != "" && string(meta[c.HasMorePath]) == "true" {
		return false, "", fmt.Errorf("page %d: %s is true but %s is empty", pg.pages, c.HasMorePath, c.CursorPath)
	}
	return pg.moveTo(tok, c.CursorPath)
}

// moveTo asks for the page of cursor token tok (what names where it came from, for errors), or ends the
// walk when there is none; a token that does not change or leads back to an earlier page is an error.
func (pg *pager) moveTo(tok, what string) (bool, string, error) {
	if tok == "" {
		return true, "no next cursor in " + what, nil
	}
	if tok == pg.req.get(pg.cfg.CursorParam) {
		return false, "", fmt.Errorf("page %d: cursor %s did not advance", pg.pages, what)
	}
	if p, ok := pg.visited[tok]; ok {
		return false, "", fmt.Errorf("page %d: cursor %s leads back to page %d (the pages go round in a cycle)", pg.pages, what, p)
	}
	pg.visited[tok] = pg.pages + 1
	pg.req.set(pg.cfg.CursorParam, tok)
	return false, "", nil
}

// nextAfterLast asks for the records after the current page's last one, by its record_field (moveTo).
func nextAfterLast(pg *pager, _ map[string]json.RawMessage, _ http.Header) (bool, string, error) {
	c := pg.cfg
	if pg.last == nil {
		return true, "empty page", nil
	}
	v, ok := lookup(pg.last, strings.Split(c.RecordField, "."))
	tok, scalar := scalarText(v)
	if !ok || !scalar || tok == "" {
		return false, "", fmt.Errorf("page %d: the last record has no %s to ask for the next page with", pg.pages, c.RecordField)
	}
	return pg.moveTo(tok, "from the last record's "+c.RecordField)
}

// pageKindNames lists the kinds, for errors.
func pageKindNames() string {
	names := slices.Sorted(maps.Keys(pageKinds))
	return strings.Join(names, ", ")
}

func newPager(cfg *Pagination, start *request) *pager {
	pg := &pager{cfg: cfg, req: start, visited: map[string]int{}}
	if k := pageKinds[cfg.Kind]; k.start != nil {
		k.start(pg)
	}
	if cfg.SizeParam != "" {
		pg.req.set(cfg.SizeParam, cfg.Size)
	}
	return pg
}

// wanted lists the body fields this pager reads.
func (pg *pager) wanted() []string {
	var w []string
	for _, p := range []string{pg.cfg.HasMorePath, pg.cfg.TotalPath} {
		if p != "" {
			w = append(w, p)
		}
	}
	if k := pageKinds[pg.cfg.Kind]; k.reads != nil {
		w = append(w, k.reads(pg.cfg)...)
	}
	return w
}

// record is called with each record of the current page, in order; it refuses a page that repeats the
// previous one.
func (pg *pager) record(rec []byte) error {
	pg.pageRec++
	if pg.cfg.Kind == "last_record" {
		pg.pageLast = append(pg.pageLast[:0], rec...)
	}
	if pg.pageRec == 1 {
		if pg.pages > 0 && pg.prev != nil && bytes.Equal(pg.prev, rec) {
			return fmt.Errorf("page %d repeats page %d (same first record): the API ignores the pagination parameters?", pg.pages+1, pg.pages)
		}
		pg.first = append(pg.first[:0], rec...)
	}
	return nil
}

// restart forgets the records of the current page, before a retry of it.
func (pg *pager) restart() { pg.pageRec = 0 }

// advance moves to the next page after the current one was read whole; done reports the end.
func (pg *pager) advance(meta map[string]json.RawMessage, h http.Header) (done bool, why string, err error) {
	n := pg.pageRec
	pg.pages++
	pg.records += n
	pg.pageRec = 0
	pg.last = nil
	if n > 0 && pg.cfg.Kind == "last_record" {
		pg.last = append(pg.last[:0], pg.pageLast...)
	}
	pg.prev, pg.first = pg.first, pg.prev[:0]
	if n == 0 {
		pg.prev = nil
	}
	c := pg.cfg
	if p := c.HasMorePath; p != "" {
		if v, ok := meta[p]; ok {
			more, err := strconv.ParseBool(strings.Trim(string(v), `"`))
			if err != nil {
				return false, "", fmt.Errorf("page %d: %s is %s, not a boolean", pg.pages, p, v)
			}
			if !more {
				return true, p + " is false", nil
			}
		}
	}
	if p := c.TotalPath; p != "" {
		if v, ok := meta[p]; ok {
			total, err := strconv.Atoi(strings.Trim(string(v), `"`))
			if err != nil {
				return false, "", fmt.Errorf("page %d: %s is %s, not a count", pg.pages, p, v)
			}
			pg.total = total
			if pg.records >= total {
				return true, "read " + p + " records", nil
			}
		}
	}
	if hd := c.TotalHeader; hd != "" && h.Get(hd) != "" {
		total, err := strconv.Atoi(strings.TrimSpace(h.Get(hd)))
		if err != nil {
			return false, "", fmt.Errorf("page %d: header %s is %q, not a count", pg.pages, hd, h.Get(hd))
		}
		pg.total = total
		if pg.records >= total {
			return true, "read " + hd + " records", nil
		}
	}
	if n == 0 && *c.StopOnEmpty {
		return true, "empty page", nil
	}
	if c.MaxPages > 0 && pg.pages >= c.MaxPages {
		return true, "max_pages reached", nil
	}
	return pageKinds[c.Kind].next(pg, meta, h)
}

func (pg *pager) follow(next, what string) (bool, string, error) {
	cur := pg.req.url
	u, err := cur.Parse(next)
	if err != nil {
		return false, "", fmt.Errorf("page %d: %s is not a URL", pg.pages, what)
	}
	if u.String() == cur.String() {
		return false, "", fmt.Errorf("page %d: %s points to the same page", pg.pages, what)
	}
	if u.Scheme != cur.Scheme || u.Host != cur.Host {
		// The credentials of this source must not travel to another server.
		return false, "", fmt.Errorf("page %d: %s points to another server (%s://%s)", pg.pages, what, u.Scheme, u.Host)
	}
	if len(pg.visited) == 0 {
		pg.visited[cur.String()] = 1 // the first page
	}
	if p, ok := pg.visited[u.String()]; ok {
		return false, "", fmt.Errorf("page %d: %s leads back to page %d (the pages go round in a cycle)", pg.pages, what, p)
	}
	pg.visited[u.String()] = pg.pages + 1
	pg.req.url = u
	return false, "", nil
}

// linkNext returns the target of the rel="next" link in RFC 8288 Link header values.
func linkNext(values []string) string {
	for _, v := range values {
		for _, link := range splitLinks(v) {
			link = strings.TrimSpace(link)
			if !strings.HasPrefix(link, "<") {
				continue
			}
			end := strings.IndexByte(link, '>')
			if end < 0 {
				continue
			}
			target := link[1:end]
			for _, param := range strings.Split(link[end+1:], ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// splitLinks splits a Link header value at the commas between links (not those inside <...> or quotes).
func splitLinks(v string) []string {
	var out []string
	inURL, inQuote, start := false, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '<':
			inURL = true
		case '>':
			inURL = false
		case '"':
			inQuote = !inQuote
		case ',':
			if !inURL && !inQuote {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}
