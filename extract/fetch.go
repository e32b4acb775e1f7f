package extract

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// record is one record on its way from the API to staging.
type record struct {
	data   []byte // the raw JSON object
	parent []byte // parent fields (child resources), else nil
	cursor string // incremental cursor value, "" without incremental
	scope  string // parent key of a child resource, "" otherwise
	reject string // why it goes to elt.rejects instead of staging ("" normally)
	page   string // the page URL (without secrets), for rejects
	mark   bool   // no record: the end of a date window walked whole, cursor its last instant (window.go)
}

// item is what the fetcher sends to the loader: records, then either end or err.
type item struct {
	recs []record
	end  bool
	err  error
}

// errLimit stops a walk once --limit records were fetched (at a cursor boundary).
var errLimit = errors.New("limit reached")

// cursorState is what the database knows of a resource's incremental progress.
type cursorState struct {
	values map[string]string   // committed cursor per scope
	lower  map[string]string   // look-back lower bound per scope
	loaded map[string]struct{} // scope, key and cursor of records of the look-back window already in staging
}

func newCursorState() *cursorState {
	return &cursorState{values: map[string]string{}, lower: map[string]string{}, loaded: map[string]struct{}{}}
}

func loadedKey(scope, key, cursor string) string { return scope + "\x00" + key + "\x00" + cursor }

// load reads the committed cursors and, with a look-back window, the keys of the records in the window.
func (cs *cursorState) load(ctx context.Context, pool *pgxpool.Pool, res *Resource) error {
	rows, err := pool.Query(ctx, `select scope, value from elt.cursors where source = $1 and resource = $2`, res.source.Name, res.Name)
	if err != nil {
		return fmt.Errorf("read cursors: %w", err)
	}
	for rows.Next() {
		var scope, value string
		if err := rows.Scan(&scope, &value); err != nil {
			return fmt.Errorf("read cursors: %w", err)
		}
		cs.values[scope] = value
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read cursors: %w", err)
	}
	lb := time.Duration(res.Incremental.LookBack)
	if lb <= 0 || len(cs.values) == 0 {
		return nil
	}
	minLower := ""
	for scope, v := range cs.values {
		l, err := subtractTime(v, lb)
		if err != nil {
			return fmt.Errorf("look_back: cursor %q of %s: %w", v, res.Incremental.CursorField, err)
		}
		cs.lower[scope] = l
		if minLower == "" || compareCursor(l, minLower) < 0 {
			minLower = l
		}
	}
	// Only batches whose highest cursor reaches the window can hold records of it.
	brows, err := pool.Query(ctx, `select batch_id, cursor_max from elt.batches
		where source = $1 and resource = $2 and staging_table = $3 and cursor_max is not null`, res.source.Name, res.Name, res.Table)
	if err != nil {
		return fmt.Errorf("read batches: %w", err)
	}
	var ids []int64
	for brows.Next() {
		var id int64
		var max string
		if err := brows.Scan(&id, &max); err != nil {
			return fmt.Errorf("read batches: %w", err)
		}
		if compareCursor(max, minLower) >= 0 {
			ids = append(ids, id)
		}
	}
	if err := brows.Err(); err != nil {
		return fmt.Errorf("read batches: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	// The key's fields as text, as the fetcher reads them (keyText): $1..$k are their paths.
	args := []any{}
	var fields []string
	for _, p := range res.PrimaryKey {
		args = append(args, strings.Split(p, "."))
		fields = append(fields, fmt.Sprintf("record #>> $%d", len(args)))
	}
	args = append(args, strings.Split(res.Incremental.CursorField, "."), ids)
	rows, err = pool.Query(ctx, fmt.Sprintf(`select array[%s]::text[], record #>> $%d, parent from %s where batch_id = any($%d)`,
		strings.Join(fields, ", "), len(args)-1, pgx.Identifier{"staging", res.Table}.Sanitize(), len(args)), args...)
	if err != nil {
		return fmt.Errorf("read look-back window: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var parts []*string
		var c *string
		var parent []byte
		if err := rows.Scan(&parts, &c, &parent); err != nil {
			return fmt.Errorf("read look-back window: %w", err)
		}
		texts := make([]string, len(parts))
		complete := c != nil
		for i, p := range parts {
			if p == nil {
				complete = false
				break
			}
			texts[i] = *p
		}
		if !complete {
			continue
		}
		key := joinKey(texts)
		scope := ""
		if res.Parent != nil {
			scope, _ = scopeOf(res, parent)
		}
		if l, ok := cs.lower[scope]; ok && compareCursor(*c, l) >= 0 {
			cs.loaded[loadedKey(scope, key, *c)] = struct{}{}
		}
	}
	return rows.Err()
}

// subtractTime returns the RFC 3339 timestamp v minus d, in the same precision.
func subtractTime(v string, d time.Duration) (string, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return "", errors.New("look_back needs an RFC 3339 timestamp cursor")
	}
	layout := time.RFC3339
	if strings.Contains(v, ".") {
		layout = time.RFC3339Nano
	}
	return t.Add(-d).UTC().Format(layout), nil
}

// fetcher walks the API for one resource and streams its records to the loader.
type fetcher struct {
	x     *sourceRun
	res   *Resource
	cs    *cursorState
	out   chan<- item
	buf   []record
	count int               // records sent (rejects excluded)
	last  map[string]string // last cursor seen per scope in this run
	prev  record            // the last record sent
	due   atomic.Bool       // set every flushEvery: hand over what is buffered even if it is little

	// With a quota, the records of the latest cursor value wait in hold until one with another value comes
	// (pass): a walk stopped by the quota between two pages may not have seen all of that value's records,
	// and committing some of them would make the next run skip the rest.
	holding bool
	hold    []record
	group   record // scope and cursor of the latest record passed
	grouped bool   // group is set
	uncut   bool   // the current group outgrew maxHold: part of it went on, so it cannot be held back
	quota   error  // the quota error that ended the walk at a clean boundary (the loader commits what it got)
}

// flushEvery bounds how long a record waits in the fetcher's buffer when the API is slow.
const flushEvery = 100 * time.Millisecond

func (f *fetcher) run(ctx context.Context) {
	defer close(f.out)
	f.last = map[string]string{}
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-tick.C:
				f.due.Store(true)
			case <-stop:
				return
			}
		}
	}()
	err := f.walkAll(ctx)
	if errors.Is(err, errLimit) {
		err = nil
	}
	if err == nil {
		err = f.release(ctx)
	}
	if errors.Is(err, ErrQuota) && f.holding && !f.uncut {
		// Every record passed on belongs to a cursor value whose records are all in: commit them, drop the
		// held ones (the next run asks for them again), and report the quota once the loader is done.
		f.quota, f.hold, err = err, nil, nil
	}
	if err == nil {
		err = f.flush(ctx)
	}
	it := item{end: true}
	if err != nil {
		it = item{err: err}
	}
	select {
	case f.out <- it:
	case <-ctx.Done():
	}
}

func (f *fetcher) flush(ctx context.Context) error {
	if len(f.buf) == 0 {
		return nil
	}
	select {
	case f.out <- item{recs: f.buf}:
		f.buf = make([]record, 0, 256)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fetcher) walkAll(ctx context.Context) error {
	res := f.res
	c := f.x.client
	if res.parent == nil {
		return f.walkScope(ctx, res, nil, "", nil)
	}
	// Child resource: walk the parent's pages; after each page, walk the children of its records. Only one
	// parent page is held in memory, and no response stays open while children are fetched.
	var parents [][]byte
	// A parent may come twice in one walk of the parent (an offset walk over a list that shifted, say): its
	// children are walked once, or the second walk would load them again (the cursors were read at start).
	walked := map[string]bool{}
	pstart, err := f.startRequest(res.parent, nil, "")
	if err != nil {
		return err
	}
	collect := func(rec []byte, bad string, page string) error {
		if bad == "" {
			bad = badRecord(rec)
		}
		if bad != "" {
			return fmt.Errorf("parent %s: %s %s: %s", res.parent.Name, res.parent.Method, page, bad)
		}
		parents = append(parents, rec)
		return nil
	}
	children := func() error {
		for _, p := range parents {
			vars, field, ok := parentVars(res, p)
			if !ok {
				return fmt.Errorf("parent %s record has no field %s: %.200s", res.parent.Name, field, p)
			}
			scope := scopeFromVars(vars)
			if walked[scope] {
				continue
			}
			walked[scope] = true
			if err := f.walkScope(ctx, res, vars, scope, keepFields(p, res.Parent.Keep)); err != nil {
				return err
			}
		}
		parents = parents[:0]
		return nil
	}
	return c.walk(ctx, res.parent, pstart, collect, children)
}

// walkScope walks res for one scope (a parent's children, or "" for a top-level resource): one walk, or a
// walk per date window.
func (f *fetcher) walkScope(ctx context.Context, res *Resource, vars map[string]string, scope string, parent []byte) error {
	emit := f.emitter(ctx, scope, parent)
	if inc := res.Incremental; inc != nil && inc.Window != nil {
		return f.walkWindows(ctx, res, vars, scope, emit)
	}
	start, err := f.startRequest(res, vars, scope)
	if err != nil {
		return err
	}
	if err := f.x.client.walk(ctx, res, start, emit, func() error { return f.flush(ctx) }); err != nil {
		return err
	}
	return f.release(ctx) // the walk of this scope is over: its last cursor value is whole
}

// from is where an incremental walk of scope starts: the committed cursor (minus the look-back window), or
// incremental.initial on the first run ("" for none).
func (f *fetcher) from(res *Resource, scope string) string {
	from := res.Incremental.Initial
	if v, ok := f.cs.values[scope]; ok {
		from = v
		if l, ok := f.cs.lower[scope]; ok {
			from = l
		}
	}
	return from
}

// startRequest builds the first request of a resource walk (firstRequest), starting at the committed cursor
// for the resource this fetcher loads (not for a parent it walks for a child's sake).
func (f *fetcher) startRequest(res *Resource, vars map[string]string, scope string) (*request, error) {
	from := ""
	if res.Incremental != nil && res == f.res {
		from = f.from(res, scope)
	}
	return firstRequest(f.x.src.BaseURL, res, vars, from)
}

// firstRequest is the first request of a walk of res: path and params (a child's {placeholders} filled from
// vars, its parent's fields), body, and from as the incremental filter ("" for none).
func firstRequest(base string, res *Resource, vars map[string]string, from string) (*request, error) {
	u, err := resolvePath(base, res.Path, vars)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	for k, v := range res.Params {
		for name, val := range vars {
			v = strings.ReplaceAll(v, "{"+name+"}", val)
		}
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	r := newRequest(res, u, vars)
	if inc := res.Incremental; inc != nil && inc.Param != "" && from != "" {
		r.setCursor(inc.Param, from)
	}
	return r, nil
}

// emitter returns the record callback of one walk: checks, incremental filter, limit, then batching.
func (f *fetcher) emitter(ctx context.Context, scope string, parent []byte) func(rec []byte, bad string, page string) error {
	res := f.res
	var curPath []string
	var window *Window
	if res.Incremental != nil {
		curPath = strings.Split(res.Incremental.CursorField, ".")
		window = res.Incremental.Window
	}
	pkPaths := make([][]string, len(res.PrimaryKey))
	for i, p := range res.PrimaryKey {
		pkPaths[i] = strings.Split(p, ".")
	}
	committed, hasCommitted := f.cs.values[scope]
	lower, hasLower := f.cs.lower[scope]
	checked := window == nil // the first record's cursor is of the kind window.format says
	return func(rec []byte, bad string, page string) error {
		r := record{data: rec, parent: parent, scope: scope, page: page}
		if bad == "" {
			bad = badRecord(rec)
		}
		if bad == "" && curPath != nil {
			c, ok := fieldText(rec, curPath)
			if !ok {
				bad = "no cursor field " + res.Incremental.CursorField
			}
			r.cursor = c
		}
		if bad == "" {
			bad = keyBad(rec, pkPaths)
		}
		if bad == "" && !checked {
			// Window bounds and marks are written in window.format; cursors of another kind would not
			// compare with them. Nothing of this walk is committed yet: its first record stops it.
			if _, err := window.parse(r.cursor); err != nil {
				return fmt.Errorf("%s %s: record cursor %s: %w: incremental.window.format must match the cursor field %s",
					res.Method, page, res.Incremental.CursorField, err, res.Incremental.CursorField)
			}
			checked = true
		}
		if bad != "" {
			if !res.Rejects {
				return fmt.Errorf("%s %s: record %s (set rejects: true to divert such records to elt.rejects): %.200s", res.Method, page, bad, rec)
			}
			r.reject = bad
			return f.send(ctx, r)
		}
		if curPath != nil {
			if last, ok := f.last[scope]; ok && compareCursor(r.cursor, last) < 0 {
				return fmt.Errorf("%s %s: records are not in ascending %s order (%s after %s); incremental loading needs the API to sort by its cursor",
					res.Method, page, res.Incremental.CursorField, r.cursor, last)
			}
			f.last[scope] = r.cursor
			if hasCommitted && compareCursor(r.cursor, committed) <= 0 {
				if !hasLower || compareCursor(r.cursor, lower) < 0 {
					return nil // loaded by an earlier run
				}
				if _, ok := f.cs.loaded[loadedKey(scope, keyText(rec, pkPaths), r.cursor)]; ok {
					return nil // in the look-back window, already loaded
				}
			}
		}
		if f.x.opts.Limit > 0 && f.count >= f.x.opts.Limit && (r.scope != f.prev.scope || compareCursor(r.cursor, f.prev.cursor) != 0) {
			return errLimit
		}
		f.count++
		f.prev = r
		f.x.fetched.Add(1)
		return f.pass(ctx, r)
	}
}

// pass hands a record on; with a quota (holding), the records of the latest cursor value are held back until
// a record with another value (or scope) comes or the walk ends.
func (f *fetcher) pass(ctx context.Context, r record) error {
	if !f.holding {
		return f.send(ctx, r)
	}
	if f.grouped && (r.scope != f.group.scope || compareCursor(r.cursor, f.group.cursor) != 0) {
		if err := f.release(ctx); err != nil {
			return err
		}
		f.uncut = false
	}
	f.group, f.grouped = record{scope: r.scope, cursor: r.cursor}, true
	if f.uncut {
		return f.send(ctx, r)
	}
	f.hold = append(f.hold, r)
	if len(f.hold) >= maxHold {
		f.uncut = true
		return f.release(ctx)
	}
	return nil
}

// release hands the held records on.
func (f *fetcher) release(ctx context.Context) error {
	for _, r := range f.hold {
		if err := f.send(ctx, r); err != nil {
			return err
		}
	}
	f.hold = f.hold[:0]
	return nil
}

func (f *fetcher) send(ctx context.Context, r record) error {
	f.buf = append(f.buf, r)
	if len(f.buf) >= 256 || f.due.Load() {
		f.due.Store(false)
		return f.flush(ctx)
	}
	return nil
}

// keyBad says which field of the primary key rec lacks, or holds null or no scalar; "" when the key is
// whole. It reads without copying: it runs for every record, the key's text (keyText) only in a look-back
// window.
func keyBad(rec []byte, paths [][]string) string {
	for _, p := range paths {
		v, ok := lookup(rec, p)
		if !ok {
			return "no primary key field " + strings.Join(p, ".")
		}
		if len(v) == 0 || v[0] == 'n' || v[0] == '{' || v[0] == '[' { // what scalarText has no text for
			return "primary key field " + strings.Join(p, ".") + " is null or not a scalar"
		}
	}
	return ""
}

// keyText is the primary key of a record keyBad passed, as text: each field's text (a number as written),
// joined by joinKey.
func keyText(rec []byte, paths [][]string) string {
	texts := make([]string, len(paths))
	for i, p := range paths {
		v, _ := lookup(rec, p)
		texts[i], _ = scalarText(v)
	}
	return joinKey(texts)
}

// joinKey joins the texts of a key's fields, each quoted, so that no two keys join alike; one field is
// itself.
func joinKey(texts []string) string {
	if len(texts) == 1 {
		return texts[0]
	}
	var b strings.Builder
	for i, t := range texts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(t))
	}
	return b.String()
}

// scopeFromVars is the cursor scope of a child walk: its parent key values, in placeholder order.
func scopeFromVars(vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + vars[k]
	}
	return strings.Join(parts, "&")
}

// scopeOf recomputes the scope of a staging row from its parent column.
func scopeOf(res *Resource, parent []byte) (string, bool) {
	vars, _, ok := parentVars(res, parent)
	if !ok {
		return "", false
	}
	return scopeFromVars(vars), true
}

// parentVars fills the child's placeholders from a parent record; on a missing field it returns that field
// and false.
func parentVars(res *Resource, parent []byte) (vars map[string]string, missing string, ok bool) {
	vars = map[string]string{}
	for ph, field := range res.Parent.Fields {
		v, ok := fieldText(parent, strings.Split(field, "."))
		if !ok {
			return nil, field, false
		}
		vars[ph] = v
	}
	return vars, "", true
}

// keepFields returns the parent record reduced to the kept fields (the whole record when keep is empty).
func keepFields(rec []byte, keep []string) []byte {
	if len(keep) == 0 {
		return rec
	}
	out := []byte{'{'}
	for i, k := range keep {
		v, ok := member(rec, k)
		if !ok {
			v = []byte("null")
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendQuote(out, k)
		out = append(out, ':')
		out = append(out, v...)
	}
	return append(out, '}')
}
