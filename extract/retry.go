package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// This file is the retry policy: what is retried (network errors, truncated bodies, 408, 429 and 5xx), how
// long to wait (exponential backoff with jitter, or the server's Retry-After), and what fails at once (other
// 4xx: 401, 403, 404...), plus the per-source request-rate limit.

// httpError is a response that is not a 200: its status, the URL without secrets and the first bytes of the
// body, for an operator to act on.
type httpError struct {
	method, url string
	status      int
	body        string
	retryAfter  time.Duration
	token       bool // the answer of an OAuth2 token endpoint, not of the API
}

func (e *httpError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.method, e.url, e.status, http.StatusText(e.status))
	if e.body != "" {
		msg += ": " + e.body
	}
	return msg
}

func (e *httpError) retryable() bool {
	return e.status == http.StatusTooManyRequests || e.status == http.StatusRequestTimeout ||
		(e.status >= 500 && e.status != http.StatusNotImplemented)
}

// errTimeout is a request or body that stalled for longer than the source's timeout.
var errTimeout = errors.New("timed out")

// reachError is a request that never got a response: refused, reset, timed out, DNS.
type reachError struct {
	method string // "" for GET
	url    string
	err    error
}

func (e *reachError) Error() string {
	method := e.method
	if method == "" {
		method = "GET"
	}
	u, err := url.Parse(e.url)
	host := e.url
	if err == nil {
		host = u.Scheme + "://" + u.Host
	}
	var ne net.Error
	switch {
	case errors.Is(e.err, syscall.ECONNREFUSED):
		return fmt.Sprintf("cannot reach %s: connection refused (is the API running?)", host)
	case errors.Is(e.err, errTimeout):
		return fmt.Sprintf("%s %s: %v", method, e.url, e.err)
	case errors.Is(e.err, context.DeadlineExceeded), errors.As(e.err, &ne) && ne.Timeout(), errors.Is(e.err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("%s %s: timed out", method, e.url)
	}
	var dns *net.DNSError
	if errors.As(e.err, &dns) {
		return fmt.Sprintf("cannot reach %s: %v", host, dns)
	}
	msg := e.err.Error()
	var ue *url.Error
	if errors.As(e.err, &ue) {
		msg = ue.Err.Error()
	}
	return fmt.Sprintf("%s %s: %s", method, e.url, msg)
}

func (e *reachError) Unwrap() error { return e.err }

// bodyError is a failure while reading a 200 body (a cut connection, truncated JSON).
type bodyError struct {
	method, url string
	err         error
}

func (e *bodyError) Error() string {
	return fmt.Sprintf("%s %s: read body: %v", e.method, e.url, e.err)
}
func (e *bodyError) Unwrap() error { return e.err }

// retryable reports whether err is worth another attempt, and the wait the server asked for.
func retryable(err error) (bool, time.Duration) {
	var he *httpError
	if errors.As(err, &he) {
		return he.retryable(), he.retryAfter
	}
	var re *reachError
	if errors.As(err, &re) {
		return true, 0
	}
	var be *bodyError
	if errors.As(err, &be) {
		if errors.Is(be.err, errTruncated) || errors.Is(be.err, io.ErrUnexpectedEOF) || errors.Is(be.err, errTimeout) {
			return true, 0
		}
		var ne net.Error
		if errors.As(be.err, &ne) || errors.Is(be.err, syscall.ECONNRESET) {
			return true, 0
		}
	}
	return false, 0
}

// backoff returns the wait before retry number attempt (1-based): base*2^(attempt-1) capped at max, with
// equal jitter (half fixed, half random) so that clients do not retry in lockstep.
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(half+1)
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// newRateLimiter spaces a source's requests at perSecond (rate_limit), with no burst: golang.org/x/time/rate's
// token bucket of size 1. Nil (no limit) when perSecond is not positive.
func newRateLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), 1)
}
