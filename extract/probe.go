package extract

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Probe makes one cheap request to src, as a run's first one would be (elt doctor): the first page of its
// first resource that has no parent, with the source's authentication and headers, no retries. It returns
// what it asked (the URL as logs show it, secrets redacted) and how long the answer took, or an error that
// says what failed (unreachable, an HTTP status with the start of the body, a wrong content type).
func Probe(ctx context.Context, src *Source, log *slog.Logger) (string, time.Duration, error) {
	var res *Resource
	for _, r := range src.Resources {
		if r.Parent == nil {
			res = r
			break
		}
	}
	if res == nil {
		return "", 0, errors.New("no resource without a parent to ask")
	}
	creds, err := resolveCredentials(src.Auth)
	if err != nil {
		return "", 0, err
	}
	c := newClient(src, creds, log)
	// The request a run would send first: params, the incremental filter from its initial value (the first
	// window, for a window walk), and the pagination's first-page parameters.
	initial := ""
	if res.Incremental != nil {
		initial = res.Incremental.Initial
	}
	r, err := firstRequest(src.BaseURL, res, nil, initial)
	if err != nil {
		return "", 0, err
	}
	if inc := res.Incremental; inc != nil && inc.Window != nil {
		w := inc.Window
		if s, err := w.parse(initial); err == nil {
			if e := w.end(s, w.limit(time.Now())); s.Before(e) {
				w.setBounds(r, inc.Param, s, e)
			}
		}
	}
	r = newPager(&res.Pagination, r).req
	shown := c.describe(r)
	start := time.Now()
	err = c.once(ctx, r, shown, res.accept(), func(*http.Response, int, *idleTimer) error { return nil }, 0, new(string))
	return shown, time.Since(start), err
}
