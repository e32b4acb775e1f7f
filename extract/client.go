package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// client sends the requests of one source: auth, headers, rate limit, retries.
type client struct {
	src     *Source
	hc      *http.Client
	creds   credentials
	limiter *rate.Limiter // nil: no rate_limit
	log     *slog.Logger
	retries atomic.Int64
	pages   atomic.Int64
	bytes   atomic.Int64
	total   atomic.Int64 // the record count the API gave (total_path) on the walk's latest page; 0: none
	quota   *quota       // nil: no max_requests or max_duration
}

func newClient(src *Source, creds credentials, log *slog.Logger) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	return &client{
		src:     src,
		hc:      &http.Client{Transport: tr, CheckRedirect: sameServerRedirect},
		creds:   creds,
		limiter: newRateLimiter(src.RateLimit),
		log:     log,
		quota:   newQuota(src),
	}
}

// redirectsKey is the context key of a request's count of redirects followed (sameServerRedirect).
type redirectsKey struct{}

// redirectError is a redirect to another server (or scheme), refused: the source's credentials (headers,
// API-key parameters) would go with it.
type redirectError struct {
	to     string // scheme://host of the target, nothing more
	method string // set when the redirect would change the method (a POST sent again as a GET)
}

func (e *redirectError) Error() string {
	if e.method != "" {
		return fmt.Sprintf("redirected as a %s, refused: a redirect that drops the request's body is not the search asked for; use the URL it points to", e.method)
	}
	return fmt.Sprintf("redirected to another server (%s), refused: the source's credentials never leave for another host", e.to)
}

// sameServerRedirect is the client's redirect policy: only to the same scheme and host, at most 10 times.
func sameServerRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return &redirectError{to: req.URL.Scheme + "://" + req.URL.Host}
	}
	if req.Method != via[0].Method {
		// A 301, 302 or 303 turns a POST into a GET without its body: not the search that was asked for.
		return &redirectError{method: req.Method}
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if n, ok := req.Context().Value(redirectsKey{}).(*atomic.Int32); ok {
		n.Add(1) // a redirect takes a connection of its own: it is not a resend
	}
	return nil
}

// show renders u for logs and errors: no credentials, no secret query parameters.
func (c *client) show(u *url.URL) string {
	var extra []string
	if c.creds.auth.Kind == "api_key" && c.creds.auth.In == "query" {
		extra = append(extra, c.creds.auth.Name)
	}
	return c.creds.redactAll(redactURL(u.String(), extra))
}

// bodySecrets lists the string values of a request body's fields named like secrets, to be redacted from
// what the API answers too (an error body that echoes the request).
func bodySecrets(body map[string]any) []string {
	var out []string
	var walk func(v any, sensitive bool)
	walk = func(v any, sensitive bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(e, sensitive || sensitiveName(k))
			}
		case []any:
			for _, e := range v {
				walk(e, sensitive)
			}
		case string:
			if sensitive && v != "" {
				out = append(out, v)
			}
		}
	}
	walk(body, false)
	return out
}

// answer redacts text the API sent back for request r: the source's secrets, and the secret-named values of
// r's body.
func (c *client) answer(r *request, text string) string {
	text = c.creds.redactAll(text)
	for _, v := range bodySecrets(r.body) {
		text = replaceSecret(text, v)
	}
	return text
}

// describe renders a page request for logs and errors: its URL (show) and, for a POST, the start of its
// body (which names the page when the page parameters are in it), redacted as the API's answers are.
func (c *client) describe(r *request) string {
	s := c.show(r.url)
	if b := r.payload(); b != nil {
		body := c.answer(r, string(b))
		if len(body) > 200 {
			body = body[:200] + "..."
		}
		s += " " + body
	}
	return s
}

// emitError carries an error raised by the consumer of records through the body readers unchanged.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// get sends r (shown: r as c.describe renders it) and hands a 200 response to read, retrying per the retry
// policy. read must call restart semantics itself: attempt counts from 0.
func (c *client) get(ctx context.Context, r *request, shown, accept string, read func(resp *http.Response, attempt int, idle *idleTimer) error) error {
	renewed := false // an OAuth2 access token was refused and a new one asked for
	for attempt := 0; ; attempt++ {
		var used string // the access token sent
		err := c.once(ctx, r, shown, accept, read, attempt, &used)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ee emitError
		if errors.As(err, &ee) {
			return ee.err
		}
		var he *httpError
		if used != "" && errors.As(err, &he) && he.status == http.StatusUnauthorized && !he.token {
			// The API refused the access token (revoked, or expired early): one new token per request.
			if renewed {
				return fmt.Errorf("%w (the API refused a freshly issued access token too: check the client's scopes and its rights on this API)", err)
			}
			renewed = true
			c.creds.refused(used)
			c.retries.Add(1)
			c.log.Warn("access token refused (401): asking the token endpoint for a new one", "url", shown)
			attempt--
			continue
		}
		ok, retryAfter := retryable(err)
		if !ok || attempt >= c.src.MaxRetries {
			if ok && attempt > 0 {
				return fmt.Errorf("%w (gave up after %d retries)", err, attempt)
			}
			return err
		}
		wait := backoff(time.Duration(c.src.Backoff), time.Duration(c.src.MaxBackoff), attempt+1)
		if retryAfter > 0 {
			if retryAfter > time.Duration(c.src.MaxBackoff) {
				return fmt.Errorf("%w (Retry-After %s is more than max_backoff %s)", err, retryAfter, time.Duration(c.src.MaxBackoff))
			}
			wait = retryAfter
		}
		c.retries.Add(1)
		c.log.Warn("retrying request", "error", c.creds.redact(err.Error()), "attempt", attempt+1, "wait", wait.Round(time.Millisecond).String())
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// once sends one request; used receives the OAuth2 access token it carried.
func (c *client) once(ctx context.Context, r *request, shown, accept string, read func(*http.Response, int, *idleTimer) error, attempt int, used *string) error {
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return err
		}
	}
	// The timeout is an idle timeout: for the response headers, then for each read of the body, so that a
	// long streamed body (a big NDJSON export) is fine as long as bytes keep coming.
	timeout := time.Duration(c.src.Timeout)
	if c.creds.oauth != nil { // an access token first, from the token endpoint when none is valid
		tok, err := c.creds.accessToken(ctx, c.hc, timeout)
		if err != nil {
			return err
		}
		*used = tok
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := newIdleTimer(timeout, cancel)
	defer idle.stop()
	timedOut := func(err error) error {
		if idle.fired.Load() && ctx.Err() == nil {
			return fmt.Errorf("%w after %s without data", errTimeout, timeout)
		}
		return err
	}
	// Go's transport sends a GET again by itself when a kept-alive connection turns out closed or reset
	// before any answer: each connection it takes for the request is counted, so such resends are counted
	// and logged with the other retries instead of passing unseen.
	var conns, redirects atomic.Int32
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { conns.Add(1) }}
	tctx := context.WithValue(httptrace.WithClientTrace(rctx, trace), redirectsKey{}, &redirects)
	var body io.Reader
	payload := r.payload()
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(tctx, r.method, r.url.String(), body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	defer func() {
		if n := conns.Load() - 1 - redirects.Load(); n > 0 {
			c.retries.Add(int64(n))
			c.log.Warn("request sent again on a new connection: the API closed or reset a kept-alive one",
				"url", shown, "resends", n)
		}
	}()
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "elt-extract")
	for k, v := range c.src.Headers {
		req.Header.Set(k, v)
	}
	c.creds.apply(req, *used)
	// The quota counts the requests sent to the API (not those to a token endpoint): this one is about to go.
	if err := c.quota.take(); err != nil {
		return fmt.Errorf("%w, before %s %s", err, r.method, shown)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var rd *redirectError
		if errors.As(err, &rd) {
			return fmt.Errorf("%s %s: %w", r.method, shown, rd) // not retried
		}
		return &reachError{method: r.method, url: shown, err: timedOut(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return &httpError{
			method: r.method, url: shown, status: resp.StatusCode,
			body:       c.answer(r, oneLine(head)),
			retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	}
	if err := checkContentType(resp.Header.Get("Content-Type"), accept); err != nil {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("%s %s: %w: %s", r.method, shown, err, c.answer(r, oneLine(head)))
	}
	c.pages.Add(1)
	resp.Body = &countingReader{r: resp.Body, n: &c.bytes, progress: idle.touch}
	if err := read(resp, attempt, idle); err != nil {
		var ee emitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			return err
		}
		return &bodyError{method: r.method, url: shown, err: timedOut(err)}
	}
	return nil
}

// idleTimer cancels a request when no bytes arrived for timeout, except while it is paused: the time a record
// waits for the loader (a slow or locked Postgres) is not the API being idle.
type idleTimer struct {
	timeout time.Duration
	t       *time.Timer
	cancel  func()
	paused  atomic.Bool
	rearmed atomic.Bool // the timer went off while paused and was set again
	fired   atomic.Bool // the request was cancelled for idleness
}

func newIdleTimer(timeout time.Duration, cancel func()) *idleTimer {
	it := &idleTimer{timeout: timeout, cancel: cancel}
	it.t = time.AfterFunc(time.Duration(1<<62), it.expire)
	it.t.Reset(timeout)
	return it
}

func (it *idleTimer) expire() {
	if it.paused.Load() {
		it.rearmed.Store(true)
		it.t.Reset(it.timeout)
		return
	}
	it.fired.Store(true)
	it.cancel()
}

// touch restarts the wait: bytes arrived.
func (it *idleTimer) touch() { it.t.Reset(it.timeout) }

// pause stops counting until resume (cheap: called around each record handed on).
func (it *idleTimer) pause() { it.paused.Store(true) }

func (it *idleTimer) resume() {
	if it.rearmed.Swap(false) {
		it.t.Reset(it.timeout) // a long pause: a whole timeout from now
	}
	it.paused.Store(false)
}

func (it *idleTimer) stop() { it.t.Stop() }

// checkContentType refuses a body that is not what the resource format expects (an HTML error page
// served with 200, for instance). A missing Content-Type is accepted.
func checkContentType(ct, accept string) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("unexpected content type %q", ct)
	}
	if strings.Contains(mt, "json") || (accept != "application/json" && (mt == "text/plain" || strings.Contains(mt, "jsonl"))) {
		return nil
	}
	return fmt.Errorf("unexpected content type %q", mt)
}

// oneLine turns the first bytes of a body into a single printable line.
func oneLine(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Join(strings.Fields(s), " ")
	if len(b) == 200 {
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "..."
	}
	return s
}

type countingReader struct {
	r        io.ReadCloser
	n        *atomic.Int64
	progress func()
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n.Add(int64(n))
		c.progress()
	}
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// walk requests every page of res starting at start and calls emit with each record, in order; a page that
// fails halfway is retried and its records already emitted are skipped, so emit sees each record once.
// pageDone, when set, runs after each page, once its response is closed.
func (c *client) walk(ctx context.Context, res *Resource, start *request, emit func(rec []byte, bad string, page string) error, pageDone func() error) error {
	pg := newPager(&res.Pagination, start)
	wanted := pg.wanted()
	accept := res.accept()
	for {
		var meta map[string]json.RawMessage
		var header http.Header
		emitted := 0
		shown := c.describe(pg.req)
		err := c.get(ctx, pg.req, shown, accept, func(resp *http.Response, attempt int, idle *idleTimer) error {
			pg.restart()
			header = resp.Header
			seen := 0
			one := func(rec []byte, bad string) error {
				if err := pg.record(rec); err != nil {
					return emitError{fmt.Errorf("%s %s: %w", res.Method, shown, err)}
				}
				seen++
				if seen <= emitted {
					return nil // already emitted before a retry of this page
				}
				emitted++
				// Handing the record on may wait for the loader: that is not the API being idle.
				idle.pause()
				err := emit(rec, bad, shown)
				idle.resume()
				if err != nil {
					return emitError{err}
				}
				return nil
			}
			var err error
			if res.Format == "ndjson" {
				err = readNDJSON(resp.Body, one)
			} else {
				meta, err = readJSONPage(resp.Body, res.Records, wanted, func(rec []byte) error { return one(rec, "") })
			}
			return err
		})
		var he *httpError
		if err != nil && errors.As(err, &he) && !he.token && slices.Contains(res.EmptyOn, he.status) {
			c.log.Info("no records here: the API answered a status listed in empty_on", "resource", res.Name,
				"url", shown, "status", he.status)
			return nil
		}
		if err != nil {
			return err
		}
		done, why, err := pg.advance(meta, header)
		if pg.total > 0 {
			c.total.Store(int64(pg.total))
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", res.Method, shown, err)
		}
		if pageDone != nil {
			if err := pageDone(); err != nil {
				return err
			}
		}
		if done {
			c.log.Debug("pagination ended", "resource", res.Name, "pages", pg.pages, "reason", why)
			return nil
		}
	}
}
