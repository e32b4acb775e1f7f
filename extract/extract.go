package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/internal/pgerr"
)

// Options tune one elt extract.
type Options struct {
	// Sources restricts the run to these source names (all when empty).
	Sources []string
	// FullRefresh reloads every resource from scratch: a fresh table swapped in at the end, cursors reset.
	FullRefresh bool
	// Limit stops each resource after about this many records (0: no limit); the run still ends on a
	// cursor boundary, so the next run resumes exactly after it.
	Limit int
	// Log receives structured logs (nil: discarded). Secrets never reach it.
	Log *slog.Logger
	// Progress, when set (a terminal), receives a single updating progress line.
	Progress io.Writer
	// ProgressEvery is the interval of progress log lines when Progress is nil (default 10s; <0: none).
	ProgressEvery time.Duration
	// SourcesAtOnce is how many sources are extracted at the same time (0: two; 1: one after another). It
	// is bounded by the pool: every source running holds a connection for its lock and needs one to load.
	SourcesAtOnce int
}

// Run extracts the selected sources of cfg into staging, one source after another. A source that fails does
// not stop the others; the returned error has one line per failed source.
func Run(ctx context.Context, pool *pgxpool.Pool, cfg *Config, opts Options) error {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ProgressEvery == 0 {
		opts.ProgressEvery = 10 * time.Second
	}
	sources, err := cfg.Select(opts.Sources)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	if len(sources) == 0 {
		return errors.New("extract: no sources in the config")
	}
	// Sources do not depend on each other: up to atOnce run at the same time, each with its own lock, run row
	// and client, and a share of the pool's connections for its copy sessions.
	atOnce := opts.SourcesAtOnce
	if atOnce <= 0 {
		atOnce = 2
	}
	maxConns := int(pool.Config().MaxConns)
	if maxConns < 2 {
		// A source's lock holds a connection for the whole run and its batches need another: with one,
		// the first batch would wait for ever.
		return fmt.Errorf("extract: the connection pool allows %d connection; elt extract needs at least 2 (pool_max_conns in the database URL)", maxConns)
	}
	atOnce = max(1, min(atOnce, len(sources), maxConns/2))
	sessionsCap := max(1, (maxConns-atOnce)/atOnce)
	if atOnce > 1 && opts.Progress != nil {
		// One updating terminal line cannot show several sources: progress comes as log lines instead.
		opts.Progress = nil
	}
	// Every source's failure, one per line in source order, each keeping its chain (errors.Is(err, ErrLocked)).
	errs := make([]error, len(sources))
	slots := make(chan struct{}, atOnce)
	var wg sync.WaitGroup
	for i, src := range sources {
		slots <- struct{}{}
		if ctx.Err() != nil {
			<-slots
			errs[i] = fmt.Errorf("extract %s: cancelled before it started: %w", src.Name, ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			errs[i] = runSource(ctx, pool, src, opts, sessionsCap)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sourceRun is the state of one source's run.
type sourceRun struct {
	pool    *pgxpool.Pool
	src     *Source
	opts    Options
	log     *slog.Logger
	client  *client
	runID   int64
	started time.Time // the run's start: date windows end at it minus their lag
	// sessionsCap bounds the copy sessions: the pool's connections are shared with the sources running beside.
	sessionsCap int
	records     int64 // committed records, all resources
	fetched     atomic.Int64
}

func runSource(ctx context.Context, pool *pgxpool.Pool, src *Source, opts Options, sessionsCap int) (err error) {
	log := opts.Log.With("source", src.Name)
	creds, err := resolveCredentials(src.Auth)
	if err != nil {
		return fmt.Errorf("extract %s: %w", src.Name, err)
	}
	defer func() {
		if err != nil {
			err = &redactedError{msg: creds.redact(err.Error()), err: err}
		}
	}()
	lock, err := lockSource(ctx, pool, src.Name)
	if err != nil {
		return fmt.Errorf("extract %s: %w", src.Name, err)
	}
	defer lock.unlock()
	// Runs left 'running' by a process that died: this process holds the lock, so they are over.
	if _, err := pool.Exec(ctx, `
		update elt.runs set status = 'failed', finished_at = now(),
		       error = coalesce(error, 'interrupted: the process ended before the run finished')
		where kind = 'extract' and target = $1 and status = 'running'`, src.Name); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == pgerr.UndefinedTable {
			return fmt.Errorf("extract %s: the database has no elt tables yet: run elt migrate first", src.Name)
		}
		return fmt.Errorf("extract %s: close interrupted runs: %w", src.Name, err)
	}
	x := &sourceRun{pool: pool, src: src, opts: opts, log: log, client: newClient(src, creds, log), started: time.Now(),
		sessionsCap: sessionsCap}
	if err := pool.QueryRow(ctx, `insert into elt.runs (kind, target) values ('extract', $1) returning run_id`, src.Name).Scan(&x.runID); err != nil {
		return fmt.Errorf("extract %s: start run: %w", src.Name, err)
	}
	log.Info("extract started", "run_id", x.runID, "copy_sessions", x.copySessions())
	start := time.Now()
	left := 0 // index of the first resource not finished
	for i, res := range src.Resources {
		left = i
		if err = x.resource(ctx, res); err != nil {
			err = fmt.Errorf("extract %s/%s: %w", src.Name, res.Name, err)
			break
		}
	}
	status, msg := "succeeded", ""
	switch {
	case err != nil && ctx.Err() != nil:
		status, msg = "cancelled", "cancelled"
		err = fmt.Errorf("extract %s: cancelled (%w); committed batches are kept, the next run resumes after them", src.Name, ctx.Err())
	case errors.Is(err, ErrQuota):
		var names []string
		for _, r := range src.Resources[left:] {
			names = append(names, src.Name+"/"+r.Name)
		}
		err = fmt.Errorf("%w; this run committed %d records; left for the next run, which resumes where this one stopped: %s",
			err, x.records, strings.Join(names, ", "))
		status, msg = "partial", creds.redact(err.Error())
	case err != nil:
		status, msg = "failed", creds.redact(err.Error())
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, ferr := pool.Exec(fctx, `
		update elt.runs set status = $2, finished_at = now(), error = nullif($3, ''),
		       pages = $4, records = $5, bytes = $6, retries = $7
		where run_id = $1`, append([]any{x.runID, status, msg}, x.runCounters(0)...)...); ferr != nil && err == nil {
		err = fmt.Errorf("extract %s: finish run: %w", src.Name, ferr)
	}
	// A failed run is logged as an error, a cancelled one as a warning: a log collector alerts on level.
	level := slog.LevelInfo
	switch status {
	case "failed":
		level = slog.LevelError
	case "cancelled", "partial":
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "extract finished", "run_id", x.runID, "status", status, "committed", x.records,
		"pages", x.client.pages.Load(), "retries", x.client.retries.Load(), "seconds", time.Since(start).Seconds())
	return err
}

// resource extracts one resource: a fetching goroutine streams records to the loader, which commits them
// batch by batch (append) or in one swap (replace, full refresh).
func (x *sourceRun) resource(ctx context.Context, res *Resource) error {
	replace := res.Mode == "replace" || x.opts.FullRefresh
	if err := ensureTable(ctx, x.pool, res); err != nil {
		return err
	}
	cs := newCursorState()
	if !replace && res.Incremental != nil {
		if err := cs.load(ctx, x.pool, res); err != nil {
			return err
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan item, 8)
	f := &fetcher{x: x, res: res, cs: cs, out: items,
		holding: x.client.quota != nil && !replace && res.Incremental != nil}
	// The loader's own copy of the committed cursors: the fetcher goroutine reads cs.
	saved := maps.Clone(cs.values)
	go f.run(fctx)
	stop := x.progress(ctx, res)
	var err error
	if replace {
		err = x.loadReplace(ctx, res, items, saved)
	} else {
		err = x.loadAppend(ctx, res, items, saved)
	}
	stop()
	cancel()
	for range items { // let the fetcher finish
	}
	if err == nil && f.quota != nil {
		return f.quota // read after the loader saw the end, which the fetcher sent after setting it
	}
	return err
}

// resolvePath joins a resource path to the base URL, filling {placeholders} from vars.
func resolvePath(base, path string, vars map[string]string) (*url.URL, error) {
	for k, v := range vars {
		path = strings.ReplaceAll(path, "{"+k+"}", url.PathEscape(v))
	}
	raw := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		raw = strings.TrimRight(base, "/") + "/" + strings.TrimLeft(path, "/")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("resource URL: %w", err)
	}
	return u, nil
}

// progress reports the resource's progress until the returned stop is called: a single updating line on a
// terminal, a log line every ProgressEvery otherwise.
func (x *sourceRun) progress(ctx context.Context, res *Resource) (stop func()) {
	label := x.src.Name + "/" + res.Name
	start := time.Now()
	x.client.total.Store(0) // a total read for another resource is not this one's
	startFetched := x.fetched.Load()
	startBytes := x.client.bytes.Load()
	startPages := x.client.pages.Load()
	line := func() (int64, int64, float64, float64) {
		n := x.fetched.Load() - startFetched
		p := x.client.pages.Load() - startPages
		secs := time.Since(start).Seconds()
		mb := float64(x.client.bytes.Load()-startBytes) / 1e6
		return n, p, float64(n) / secs, mb / secs
	}
	every := 500 * time.Millisecond
	if x.opts.Progress == nil {
		if x.opts.ProgressEvery < 0 {
			return func() {}
		}
		every = x.opts.ProgressEvery
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if x.opts.Progress != nil {
					n, p, rate, mbs := line()
					fmt.Fprintf(x.opts.Progress, "\r\033[K%s: %d records fetched, %d pages, %.0f records/s, %.1f MB/s, done\n", label, n, p, rate, mbs)
				}
				return
			case <-ctx.Done():
				if x.opts.Progress != nil {
					fmt.Fprint(x.opts.Progress, "\r\033[K")
				}
				return
			case <-t.C:
				// Progress counts records fetched from the API; the run's summary counts those committed, which
				// trail by what is in flight and leave out rejects: the two are named apart.
				// When the API says how many records there are (total_path) for a top-level resource, progress
				// shows how far along it is and about how long is left.
				n, p, rate, mbs := line()
				total := int64(0)
				if res.Parent == nil {
					total = x.client.total.Load()
				}
				of, eta := "", time.Duration(0)
				if total > 0 && rate > 0 {
					eta = time.Duration(float64(max(total-n, 0)) / rate * float64(time.Second)).Round(time.Second)
					of = fmt.Sprintf(" of %d (%d%%, about %s left)", total, min(100, n*100/total), eta)
				}
				if x.opts.Progress != nil {
					fmt.Fprintf(x.opts.Progress, "\r\033[K%s: %d records fetched%s, %d pages, %.0f records/s, %.1f MB/s", label, n, of, p, rate, mbs)
				} else {
					attrs := []any{"resource", res.Name, "fetched", n, "pages", p,
						"records_per_s", int64(rate), "mb_per_s", math.Round(mbs*10) / 10}
					if of != "" {
						attrs = append(attrs, "total", total, "eta_s", int64(eta.Seconds()))
					}
					x.log.Info("extract progress", attrs...)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
