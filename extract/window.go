package extract

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// This file is date-window incremental loading (incremental.window): a run walks [s, s+step) windows from
// the saved cursor up to its start minus lag. When a window has been walked to its end, a mark (a record
// with no data) carries the window's last instant, end minus granularity, as the cursor: every record up to
// it is in, so the loader commits it like a record's cursor and a killed run resumes at the first window not
// walked to its end, even after windows without records.

// parse reads a window bound or cursor value: an RFC 3339 timestamp, or Unix seconds with format unix.
func (w *Window) parse(v string) (time.Time, error) {
	if w.Format == "unix" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a number of Unix seconds (format unix)", v)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 timestamp", v)
	}
	return t.UTC(), nil
}

// format writes t as the API takes window bounds (and as the cursor marks are kept).
func (w *Window) format(t time.Time) string {
	if w.Format == "unix" {
		return strconv.FormatInt(t.Unix(), 10)
	}
	if time.Duration(w.Granularity)%time.Second == 0 && t.Nanosecond() == 0 {
		return t.UTC().Format(time.RFC3339)
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// walkWindows walks res (for one parent's scope, or "" at the top) window by window, from the committed
// cursor, or incremental.initial, up to the run's start minus lag.
func (f *fetcher) walkWindows(ctx context.Context, res *Resource, vars map[string]string, scope string,
	emit func(rec []byte, bad string, page string) error) error {
	inc := res.Incremental
	w := inc.Window
	from, err := w.parse(f.from(res, scope))
	if err != nil {
		return fmt.Errorf("incremental.window: cursor %w", err)
	}
	limit := w.limit(f.x.started)
	for s := from; s.Before(limit); {
		e := w.end(s, limit)
		start, err := f.startRequest(res, vars, scope)
		if err != nil {
			return err
		}
		w.setBounds(start, inc.Param, s, e)
		if err := f.x.client.walk(ctx, res, start, emit, func() error { return f.flush(ctx) }); err != nil {
			return err
		}
		if err := f.mark(ctx, scope, w.format(e.Add(-time.Duration(w.Granularity)))); err != nil {
			return err
		}
		s = e
	}
	return nil
}

// setBounds puts the window [s, e) into r as the API takes it: the start minus granularity for an exclusive
// start, the end minus granularity for an inclusive end.
func (w *Window) setBounds(r *request, param string, s, e time.Time) {
	g := time.Duration(w.Granularity)
	if w.Start == "exclusive" {
		s = s.Add(-g)
	}
	if w.End == "inclusive" {
		e = e.Add(-g)
	}
	r.setCursor(param, w.format(s))
	r.setCursor(w.EndParam, w.format(e))
}

// limit is where the windows of a run started at started end: lag before it, in whole granules (the last
// window's end is a bound the API takes: whole seconds by default).
func (w *Window) limit(started time.Time) time.Time {
	return started.Add(-time.Duration(w.Lag)).Truncate(time.Duration(w.Granularity))
}

// end is the end of the window that starts at s: a step later, or limit.
func (w *Window) end(s, limit time.Time) time.Time {
	if e := s.Add(time.Duration(w.Step)); e.Before(limit) {
		return e
	}
	return limit
}

// mark hands on the end of a window walked whole: every record up to cursor is in. The records held back
// for a quota (pass) go first: their cursor value is complete too.
func (f *fetcher) mark(ctx context.Context, scope, cursor string) error {
	if err := f.release(ctx); err != nil {
		return err
	}
	f.uncut, f.grouped = false, false
	if last, ok := f.last[scope]; !ok || compareCursor(cursor, last) > 0 {
		f.last[scope] = cursor
	}
	return f.send(ctx, record{mark: true, scope: scope, cursor: cursor})
}
