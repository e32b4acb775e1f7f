package demoapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves the demo export API. It implements http.Handler, is safe for concurrent use, and its
// accessors (Customers, Users, Event) are the source of truth that tests compare extracted data with.
type Server struct {
	opts     Options
	data     *dataset
	auth     []byte // the whole expected Authorization header
	custByID map[string]int32
	requests atomic.Int64
	bufs     sync.Pool // *[]byte
	idxs     sync.Pool // *[]int64
}

// flushSize is how much of a page the server renders before writing it out.
const flushSize = 64 << 10

// New builds the customers, users and calendar of opts; events are computed on demand. It panics if the
// options are out of range (see Options.Validate).
func New(opts Options) *Server {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		panic("demoapi: " + err.Error())
	}
	s := &Server{opts: o, data: build(o), auth: []byte("Bearer " + o.Token)}
	s.custByID = make(map[string]int32, len(s.data.customers))
	for i, c := range s.data.customers {
		s.custByID[c.ID] = int32(i)
	}
	return s
}

// Options returns the options in effect, defaults filled in (Now among them).
func (s *Server) Options() Options { return s.opts }

// Customers returns every customer in id order.
func (s *Server) Customers() []Customer { return slices.Clone(s.data.customers) }

// Users returns every user in id order (by customer, then by number).
func (s *Server) Users() []User { return slices.Clone(s.data.users) }

// UserCount is len(Users()) without copying the users.
func (s *Server) UserCount() int { return len(s.data.users) }

// EventCount is the number of records /v1/events serves without filters: the events, then the updates.
func (s *Server) EventCount() int { return int(s.data.eventCount()) }

// Event returns record i (0 <= i < EventCount()) of the event stream in (updated_at, id) order, which is
// the order the API serves. Indices from Options.Events on are updated versions of earlier events.
func (s *Server) Event(i int) Event {
	if i < 0 || int64(i) >= s.data.eventCount() {
		panic(fmt.Sprintf("demoapi: event index %d out of range [0, %d)", i, s.data.eventCount()))
	}
	return s.data.export(s.data.event(int64(i)))
}

// Requests is the number of authenticated requests to data endpoints so far: the count the faults use.
func (s *Server) Requests() int64 { return s.requests.Load() }

// ServeHTTP serves /healthz and the data endpoints under /v1/ and the pagination style prefixes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.Logger != nil {
		lw := &loggingWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		defer func() {
			s.opts.Logger.Info("request", slog.String("method", r.Method), slog.String("uri", r.URL.RequestURI()),
				slog.Int("status", lw.status), slog.Int64("bytes", lw.bytes), slog.Duration("duration", time.Since(start)))
		}()
		w = lw
	}
	if r.URL.Path == "/healthz" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), s.auth) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="elt-demo-api"`)
		writeError(w, http.StatusUnauthorized, "invalid token")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	q := r.URL.Query()
	st, path := splitStyle(r)
	l, status, msg := s.route(path, q)
	if l == nil {
		writeError(w, status, msg)
		return
	}
	n := s.requests.Add(1)
	if !s.fault(w, r, n) {
		return
	}
	pr, err := parsePageRequest(st, q)
	if err != nil {
		var pe *paramError
		if errors.As(err, &pe) {
			writeError(w, http.StatusBadRequest, pe.msg)
		} else {
			writeError(w, http.StatusBadRequest, "bad request")
		}
		return
	}
	s.servePage(w, r, q, l, pr, every(n, s.opts.Faults.EveryTruncate, false))
}

// route maps a path without style prefix and its query to a listing, or to an error status and message.
func (s *Server) route(path string, q url.Values) (*listing, int, string) {
	d := s.data
	switch path {
	case "/v1/customers":
		return &listing{
			n:         int64(len(d.customerOrder)),
			updatedAt: func(i int64) int64 { return d.customers[d.customerOrder[i]].UpdatedAt.Unix() },
			append:    func(dst []byte, i int64) []byte { return append(dst, d.customerJSON[d.customerOrder[i]]...) },
		}, 0, ""
	case "/v1/users":
		if id := q.Get("customer_id"); id != "" {
			c, ok := s.custByID[id]
			if !ok {
				return userListing(d, nil), 0, ""
			}
			return userListing(d, d.custUsers[c]), 0, ""
		}
		return userListing(d, d.userOrder), 0, ""
	case "/v1/events":
		l := &listing{
			n:         d.eventCount(),
			updatedAt: d.eventUpdatedAt,
			append:    func(dst []byte, i int64) []byte { return d.appendEvent(dst, d.event(i)) },
		}
		if id := q.Get("customer_id"); id != "" {
			c, ok := s.custByID[id]
			if !ok {
				l.n = 0 // no such customer: no events
			}
			l.match = func(i int64) bool { return d.eventCustomer(i) == c }
		}
		return l, 0, ""
	}
	if rest, ok := strings.CutPrefix(path, "/v1/customers/"); ok {
		if id, ok := strings.CutSuffix(rest, "/users"); ok {
			c, ok := s.custByID[id]
			if !ok {
				return nil, http.StatusNotFound, "customer not found"
			}
			return userListing(d, d.custUsers[c]), 0, ""
		}
	}
	return nil, http.StatusNotFound, "not found"
}

// userListing lists the users at the given positions of d.users, already in (updated_at, id) order.
func userListing(d *dataset, order []int32) *listing {
	return &listing{
		n:         int64(len(order)),
		updatedAt: func(i int64) int64 { return d.users[order[i]].UpdatedAt.Unix() },
		append:    func(dst []byte, i int64) []byte { return append(dst, d.userJSON[order[i]]...) },
	}
}

// fault applies the slow, 429 and 500 faults to request n; it reports whether to go on serving.
func (s *Server) fault(w http.ResponseWriter, r *http.Request, n int64) bool {
	f := s.opts.Faults
	if f.Slow > 0 && every(n, f.SlowEvery, true) {
		t := time.NewTimer(f.Slow)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return false
		}
	}
	if every(n, f.Every429, false) {
		w.Header().Set("Retry-After", strconv.FormatInt(f.retryAfterSeconds(), 10))
		writeError(w, http.StatusTooManyRequests, "rate limited")
		return false
	}
	if every(n, f.Every500, false) {
		writeError(w, http.StatusInternalServerError, "internal error")
		return false
	}
	return true
}

// every reports whether request n is hit by a fault that hits every nth request; zero means never, or
// always when zeroIsAlways.
func every(n int64, nth int, zeroIsAlways bool) bool {
	if nth <= 0 {
		return zeroIsAlways
	}
	return n%int64(nth) == 0
}

// servePage renders one page of request r, whose query is q, flushing every flushSize bytes. A truncated
// page is rendered whole, declared with its full Content-Length, cut in the middle of its middle record,
// and the connection dropped.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request, q url.Values, l *listing, pr pageRequest, truncate bool) {
	idxp := s.getIdx()
	defer s.idxs.Put(idxp)
	bufp := s.getBuf()
	defer s.bufs.Put(bufp)

	pg := l.selectPage(pr, (*idxp)[:0])
	*idxp = pg.idx
	pg.header(w.Header(), r, q, pr.style)
	buf := pg.open((*bufp)[:0], pr.style)
	cut := -1
	for k, i := range pg.idx {
		buf = before(buf, pr.style, k)
		rec := len(buf)
		buf = l.append(buf, i)
		if truncate && k == len(pg.idx)/2 {
			cut = rec + (len(buf)-rec)/2
		}
		buf = after(buf, pr.style)
		if !truncate && len(buf) >= flushSize {
			if _, err := w.Write(buf); err != nil {
				*bufp = buf
				return
			}
			buf = buf[:0]
		}
	}
	buf = pg.close(buf, r, q, pr)
	*bufp = buf
	if !truncate {
		_, _ = w.Write(buf)
		return
	}
	if cut < 0 {
		cut = len(buf) / 2
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf[:cut])
	_ = http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler) // net/http closes the connection without logging
}

func (s *Server) getBuf() *[]byte {
	if p, ok := s.bufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, flushSize+8<<10)
	return &b
}

func (s *Server) getIdx() *[]int64 {
	if p, ok := s.idxs.Get().(*[]int64); ok {
		return p
	}
	b := make([]int64, 0, DefaultLimit)
	return &b
}

// writeError sends {"error": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b := append(appendString(append(make([]byte, 0, 64), `{"error":`...), msg), "}\n"...)
	_, _ = w.Write(b)
}

// loggingWriter records the status and size of a response for the per-request log line.
type loggingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (lw *loggingWriter) WriteHeader(status int) {
	lw.status = status
	lw.ResponseWriter.WriteHeader(status)
}

func (lw *loggingWriter) Write(b []byte) (int, error) {
	n, err := lw.ResponseWriter.Write(b)
	lw.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (lw *loggingWriter) Unwrap() http.ResponseWriter { return lw.ResponseWriter }
