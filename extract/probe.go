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
	u, err := resolvePath(src.BaseURL, res.Path, nil)
	if err != nil {
		return "", 0, err
	}
	// The request a run would send first: params, the incremental filter from its initial value (the first
	// window, for a window walk), and the pagination's first-page parameters.
	q := u.Query()
	for k, v := range res.Params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	r := newRequest(res, u, nil)
	if inc := res.Incremental; inc != nil && inc.Param != "" && inc.Initial != "" {
		r.set(inc.Param, paramValue(r, inc.Initial))
		if w := inc.Window; w != nil {
			if s, e, ok := w.firstWindow(inc.Initial, time.Now()); ok {
				w.setBounds(r, inc.Param, s, e)
			}
		}
	}
	r = newPager(&res.Pagination, r).req
	accept := "application/json"
	if res.Format == "ndjson" {
		accept = "application/x-ndjson"
	}
	shown := c.describe(r)
	start := time.Now()
	err = c.once(ctx, r, shown, accept, func(*http.Response, int, *idleTimer) error { return nil }, 0, new(string))
	if err != nil {
		return shown, time.Since(start), err
	}
	return shown, time.Since(start), nil
}
