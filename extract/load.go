package extract

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/internal/pgerr"
)

// maxRejectsPerBatch bounds the rejects a batch keeps in memory: a source sending that many bad records is
// broken, and the run stops.
const maxRejectsPerBatch = 10000

// ensureTable creates the resource's staging table if it does not exist yet.
func ensureTable(ctx context.Context, pool *pgxpool.Pool, res *Resource) error {
	return EnsureStagingTable(ctx, pool, res.Table, fmt.Sprintf("Raw records of %s/%s (created by elt extract).", res.source.Name, res.Name))
}

// EnsureStagingTable creates staging.table, commented, if it does not exist yet, in the shape every staging
// table has (docs/architecture.md), owned by elt_owner.
func EnsureStagingTable(ctx context.Context, pool *pgxpool.Pool, table, comment string) error {
	t := pgx.Identifier{"staging", table}.Sanitize()
	var exists bool
	if err := pool.QueryRow(ctx, `select to_regclass($1) is not null`, t).Scan(&exists); err != nil {
		return fmt.Errorf("check table staging.%s: %w", table, err)
	}
	if exists {
		return nil
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := actAsOwner(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `create table if not exists `+t+` (
			id       bigint generated always as identity primary key,
			batch_id bigint not null references elt.batches (batch_id),
			record   jsonb  not null,
			parent   jsonb
		)`); err != nil {
			return err
		}
		// Transforms read the batches above their watermark. Staging is append-only in batch order, so a BRIN
		// index finds the newest batches at almost no cost to COPY: block ranges not yet summarized (the
		// newest pages) are always read, and autosummarize (or any vacuum) summarizes the older ones. The name
		// is the one PostgreSQL gives it, which a replace load's swap keeps.
		brin := pgx.Identifier{table + "_batch_id_idx"}.Sanitize()
		if _, err := tx.Exec(ctx, `create index `+brin+` on `+t+` using brin (batch_id) with (autosummarize = on)`); err != nil {
			return err
		}
		return commentOn(ctx, tx, t, comment)
	})
	if err != nil {
		return fmt.Errorf("create table staging.%s: %w", table, err)
	}
	return nil
}

// commentOn sets the comment of table (a sanitized name) to text.
func commentOn(ctx context.Context, tx pgx.Tx, table, text string) error {
	// comment on takes no parameters: quote the literal through the server.
	var lit string
	if err := tx.QueryRow(ctx, `select pg_catalog.quote_literal($1)`, text).Scan(&lit); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `comment on table `+table+` is `+lit)
	return err
}

// actAsOwner makes the objects tx creates belong to elt_owner, the owner of every elt object (docs/tenants.md),
// when the session may act as it. Without the role (a database not migrated by this elt) it does nothing.
func actAsOwner(ctx context.Context, tx pgx.Tx) error {
	var member bool
	err := tx.QueryRow(ctx, `select case when exists (select from pg_catalog.pg_roles where rolname = 'elt_owner')
		then pg_catalog.pg_has_role(current_user, 'elt_owner', 'member') else false end`).Scan(&member)
	if err != nil {
		return fmt.Errorf("check role elt_owner: %w", err)
	}
	if !member {
		return nil
	}
	if _, err := tx.Exec(ctx, `set local role elt_owner`); err != nil {
		return fmt.Errorf("act as elt_owner: %w", err)
	}
	return nil
}

// batchSource feeds one batch's COPY from the fetcher's stream. It ends a batch only between two records
// with different cursor values (or scopes), so a committed cursor C means every record up to C is loaded.
type batchSource struct {
	in      <-chan item
	chunk   []record
	pos     int
	peeked  *record
	ended   bool
	err     error
	limit   int         // records per batch, at least; 0: no limit
	late    atomic.Bool // set by timer: the batch ends at the next cursor boundary
	timer   *time.Timer
	batchID int64
	n       int
	marks   int // date-window marks in this batch (cursor only, no row)
	bytes   int64
	cursors map[string]string // last cursor per scope in this batch
	max     *string           // cursorMax, set by endBatch
	rejects []record
	row     record
	saved   map[string]string // committed cursor per scope: the loader's copy of cursorState.values
}

func (b *batchSource) pull() (record, bool) {
	if b.peeked != nil {
		r := *b.peeked
		b.peeked = nil
		return r, true
	}
	for b.pos >= len(b.chunk) {
		if b.ended || b.err != nil {
			return record{}, false
		}
		it, ok := <-b.in
		if !ok {
			b.err = errors.New("record stream stopped")
			return record{}, false
		}
		switch {
		case it.err != nil:
			b.err = it.err
			return record{}, false
		case it.end:
			b.ended = true
			return record{}, false
		}
		b.chunk, b.pos = it.recs, 0
	}
	r := b.chunk[b.pos]
	b.chunk[b.pos] = record{}
	b.pos++
	return r, true
}

// waitFirst blocks until the next record arrives, so no transaction stays open while the API is slow; false
// at the end of the stream or on error.
func (b *batchSource) waitFirst() bool {
	r, ok := b.pull()
	if ok {
		b.peeked = &r
	}
	return ok
}

func (b *batchSource) reset(limit int, d time.Duration) {
	b.limit, b.n, b.bytes, b.marks = limit, 0, 0, 0
	if b.timer != nil { // stopped before late is cleared: the old batch's timer never ends the new batch
		b.timer.Stop()
		b.timer = nil
	}
	b.late.Store(false)
	if d > 0 {
		b.timer = time.AfterFunc(d, func() { b.late.Store(true) })
	}
	b.cursors = map[string]string{}
	b.max = nil
	b.rejects = b.rejects[:0]
}

// Next implements pgx.CopyFromSource.
func (b *batchSource) Next() bool {
	for {
		r, ok := b.pull()
		if !ok {
			return false
		}
		if r.reject != "" {
			if len(b.rejects) >= maxRejectsPerBatch {
				b.err = fmt.Errorf("more than %d rejected records in one batch; last: %s", maxRejectsPerBatch, r.reject)
				return false
			}
			b.rejects = append(b.rejects, r)
			continue
		}
		if b.limit > 0 && (b.n > 0 || b.marks > 0) && (b.n+b.marks >= b.limit || b.late.Load()) && (r.scope != b.row.scope || compareCursor(r.cursor, b.row.cursor) != 0) {
			b.peeked = &r
			return false
		}
		if r.mark { // a date window walked whole: its cursor, no row
			b.marks++
			if old, ok := b.cursors[r.scope]; !ok || compareCursor(r.cursor, old) > 0 {
				b.cursors[r.scope] = r.cursor
			}
			b.row = record{scope: r.scope, cursor: r.cursor}
			continue
		}
		b.row = r
		b.n++
		b.bytes += int64(len(r.data))
		b.cursors[r.scope] = r.cursor
		return true
	}
}

// Values implements pgx.CopyFromSource: the raw bytes go to jsonb unchanged.
func (b *batchSource) Values() ([]any, error) { return b.row.values(b.batchID), nil }

// values is the staging row of r in batch batchID (stagingColumns).
func (r record) values(batchID int64) []any {
	if r.parent == nil {
		return []any{batchID, r.data, nil}
	}
	return []any{batchID, r.data, r.parent}
}

// Err implements pgx.CopyFromSource.
func (b *batchSource) Err() error { return b.err }

func (b *batchSource) cursorMax() *string {
	var max *string
	for _, c := range b.cursors {
		if c == "" {
			continue
		}
		if max == nil || compareCursor(c, *max) > 0 {
			c := c
			max = &c
		}
	}
	return max
}

var stagingColumns = []string{"batch_id", "record", "parent"}

// loadAppend commits the stream in batches: each batch's COPY, elt.batches row, cursors and run counters in
// one transaction; with several copy sessions, loadParallel.
func (x *sourceRun) loadAppend(ctx context.Context, res *Resource, in <-chan item, saved map[string]string) error {
	if n := x.copySessions(); n > 1 {
		return x.loadParallel(ctx, res, in, saved, n)
	}
	b := &batchSource{in: in, saved: saved}
	table := pgx.Identifier{"staging", res.Table}
	for b.waitFirst() {
		b.reset(x.src.BatchSize, time.Duration(x.src.BatchTime))
		err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
			if err := x.beginBatch(ctx, tx, res, b); err != nil {
				return err
			}
			if _, err := tx.CopyFrom(ctx, table, stagingColumns, b); err != nil {
				return copyErr(res, err)
			}
			if err := x.upsertCursors(ctx, tx, res, b, false); err != nil {
				return err
			}
			return x.endBatch(ctx, tx, res, b)
		})
		if err != nil {
			return loadErr(ctx, b, err)
		}
		x.committed(res, b)
	}
	b.reset(0, 0)
	return b.err
}

// loadReplace loads the whole stream into a fresh table and swaps it in, all in one transaction: a run that
// dies leaves the old table as it was.
func (x *sourceRun) loadReplace(ctx context.Context, res *Resource, in <-chan item, saved map[string]string) error {
	b := &batchSource{in: in, saved: saved}
	b.reset(0, 0)
	fresh := res.Table + "__new"
	var swapStart time.Time
	err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		// The batch's id now, its elt.batches row at the end, with the fresh table's foreign key: a
		// transaction that inserted into elt.batches first and then added the key would hold ROW EXCLUSIVE
		// on it and ask for SHARE ROW EXCLUSIVE, and two replace loads (two sources at once) would deadlock.
		if _, err := tx.Exec(ctx, `select elt.lock_staging_shared()`); err != nil {
			return fmt.Errorf("lock staging: %w", err)
		}
		if err := tx.QueryRow(ctx, `select nextval(pg_catalog.pg_get_serial_sequence('elt.batches', 'batch_id'))`).Scan(&b.batchID); err != nil {
			return fmt.Errorf("start batch: %w", err)
		}
		if err := createFresh(ctx, tx, res, fresh); err != nil {
			return err
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"staging", fresh}, stagingColumns, b)
		if err != nil {
			return copyErr(res, err)
		}
		// What follows (the swap, then the commit of every row in one transaction) takes a while on a big
		// table: say so, or the run looks hung once the count stops.
		x.log.Info("all records loaded into a fresh table: swapping it in and committing", "resource", res.Name,
			"table", "staging."+res.Table, "records", n)
		swapStart = time.Now()
		// Waits for other sources' open batches (they hold ROW EXCLUSIVE) and makes theirs wait until this
		// commits: the swap is short.
		if _, err := tx.Exec(ctx, `lock table elt.batches in share row exclusive mode`); err != nil {
			return fmt.Errorf("lock elt.batches: %w", err)
		}
		if _, err := tx.Exec(ctx, `insert into elt.batches (batch_id, run_id, source, resource, staging_table, records, bytes)
			overriding system value values ($1, $2, $3, $4, $5, 0, 0)`, b.batchID, x.runID, x.src.Name, res.Name, res.Table); err != nil {
			return fmt.Errorf("start batch: %w", err)
		}
		if err := addBatchKey(ctx, tx, fresh); err != nil {
			return err
		}
		if err := x.swap(ctx, tx, res, fresh); err != nil {
			return err
		}
		if err := x.upsertCursors(ctx, tx, res, b, true); err != nil {
			return err
		}
		return x.endBatch(ctx, tx, res, b)
	})
	if err != nil {
		return loadErr(ctx, b, err)
	}
	x.log.Info("fresh table swapped in and committed", "resource", res.Name,
		"seconds", math.Round(time.Since(swapStart).Seconds()*10)/10)
	x.committed(res, b)
	return nil
}

// loadErr is the error of a failed batch transaction: the record stream's own error when it stopped the
// COPY, unless the run was cancelled.
func loadErr(ctx context.Context, b *batchSource, err error) error {
	if b.err != nil && ctx.Err() == nil {
		return b.err
	}
	return err
}

// createFresh creates staging table fresh in the shape of res's table, replacing a leftover of a dead run.
func createFresh(ctx context.Context, tx pgx.Tx, res *Resource, fresh string) error {
	old := pgx.Identifier{"staging", res.Table}.Sanitize()
	nw := pgx.Identifier{"staging", fresh}.Sanitize()
	if _, err := tx.Exec(ctx, `drop table if exists `+nw); err != nil {
		return fmt.Errorf("drop leftover table: %w", err)
	}
	if err := actAsOwner(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `create table `+nw+` (like `+old+` including all)`); err != nil {
		return fmt.Errorf("create fresh table: %w", err)
	}
	// The fresh table's identity (load order) continues the old one's, so a reloaded record never looks
	// older to refresh than the version it replaces.
	var next int64
	if err := tx.QueryRow(ctx, `select coalesce(pg_catalog.pg_sequence_last_value(pg_catalog.pg_get_serial_sequence($1, 'id')), 0) + 1`, "staging."+pgx.Identifier{res.Table}.Sanitize()).Scan(&next); err != nil {
		return fmt.Errorf("create fresh table: read load order: %w", err)
	}
	if _, err := tx.Exec(ctx, `alter table `+nw+` alter column id restart with `+strconv.FormatInt(next, 10)); err != nil {
		return fmt.Errorf("create fresh table: %w", err)
	}
	return nil
}

// addBatchKey gives the fresh table its foreign key to elt.batches, once it is loaded: adding it locks
// elt.batches in SHARE ROW EXCLUSIVE mode until the commit, which every batch insert of every other source
// (and every new staging table) would wait for; taken at the end, it is held for the check and the swap only.
func addBatchKey(ctx context.Context, tx pgx.Tx, fresh string) error {
	nw := pgx.Identifier{"staging", fresh}.Sanitize()
	fk := pgx.Identifier{fresh + "_batch_fkey"}.Sanitize()
	if _, err := tx.Exec(ctx, `alter table `+nw+` add constraint `+fk+` foreign key (batch_id) references elt.batches (batch_id)`); err != nil {
		return fmt.Errorf("fresh table's foreign key: %w", err)
	}
	return nil
}

// swap replaces the staging table with the fresh one, keeping its comment and the usual constraint names.
func (x *sourceRun) swap(ctx context.Context, tx pgx.Tx, res *Resource, fresh string) error {
	old := pgx.Identifier{"staging", res.Table}.Sanitize()
	nw := pgx.Identifier{"staging", fresh}.Sanitize()
	var comment *string
	if err := tx.QueryRow(ctx, `select pg_catalog.obj_description($1::regclass, 'pg_class')`, "staging."+pgx.Identifier{res.Table}.Sanitize()).Scan(&comment); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	rows, err := tx.Query(ctx, `select indexname from pg_catalog.pg_indexes where schemaname = 'staging' and tablename = $1`, fresh)
	if err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	indexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	if _, err := tx.Exec(ctx, `drop table `+old); err != nil {
		return fmt.Errorf("swap: drop old table: %w", err)
	}
	if _, err := tx.Exec(ctx, `alter table `+nw+` rename to `+pgx.Identifier{res.Table}.Sanitize()); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	for _, ix := range indexes {
		name := strings.Replace(ix, fresh, res.Table, 1)
		if name == ix {
			continue
		}
		if _, err := tx.Exec(ctx, `alter index `+pgx.Identifier{"staging", ix}.Sanitize()+` rename to `+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("swap: rename index: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `alter table `+old+` rename constraint `+pgx.Identifier{fresh + "_batch_fkey"}.Sanitize()+` to `+pgx.Identifier{res.Table + "_batch_id_fkey"}.Sanitize()); err != nil {
		return fmt.Errorf("swap: rename constraint: %w", err)
	}
	if comment != nil {
		if err := commentOn(ctx, tx, old, *comment); err != nil {
			return fmt.Errorf("swap: %w", err)
		}
	}
	return nil
}

func (x *sourceRun) beginBatch(ctx context.Context, tx pgx.Tx, res *Resource, b *batchSource) error {
	if _, err := tx.Exec(ctx, `select elt.lock_staging_shared()`); err != nil {
		return fmt.Errorf("lock staging: %w", err)
	}
	err := tx.QueryRow(ctx, `insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
		values ($1, $2, $3, $4, 0, 0) returning batch_id`, x.runID, x.src.Name, res.Name, res.Table).Scan(&b.batchID)
	if err != nil {
		return fmt.Errorf("start batch: %w", err)
	}
	return nil
}

// upsertCursors saves the batch's last cursor of each scope; reset first forgets all (full refresh).
func (x *sourceRun) upsertCursors(ctx context.Context, tx pgx.Tx, res *Resource, b *batchSource, reset bool) error {
	if res.Incremental == nil {
		return nil
	}
	if reset {
		if _, err := tx.Exec(ctx, `delete from elt.cursors where source = $1 and resource = $2`, x.src.Name, res.Name); err != nil {
			return fmt.Errorf("reset cursors: %w", err)
		}
	}
	if len(b.cursors) == 0 {
		return nil
	}
	// A batch of a look-back window may end on a late record below the saved cursor: the saved cursor never
	// goes backwards (records up to it are loaded), so keep per scope the greater of the two, compared as
	// cursors (compareCursor), not as text. The source's lock makes this run the only writer of its cursors,
	// so the loader's copy (b.saved) is what elt.cursors holds.
	scopes := make([]string, 0, len(b.cursors))
	values := make([]string, 0, len(b.cursors))
	for s, v := range b.cursors {
		if !reset && !b.advances(s, v) {
			continue
		}
		scopes = append(scopes, s)
		values = append(values, v)
	}
	if len(scopes) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `
		insert into elt.cursors (source, resource, scope, value)
		select $1, $2, s, v from unnest($3::text[], $4::text[]) as u (s, v)
		on conflict (source, resource, scope) do update set value = excluded.value, updated_at = now()`,
		x.src.Name, res.Name, scopes, values)
	if err != nil {
		return fmt.Errorf("save cursor: %w", err)
	}
	return nil
}

// endBatch records the batch's rejects, counts and the run's counters, inside the batch transaction.
func (x *sourceRun) endBatch(ctx context.Context, tx pgx.Tx, res *Resource, b *batchSource) error {
	if len(b.rejects) > 0 {
		urls := make([]string, len(b.rejects))
		reasons := make([]string, len(b.rejects))
		raws := make([]string, len(b.rejects))
		for i, r := range b.rejects {
			urls[i], reasons[i] = r.page, r.reject
			raws[i] = strings.ToValidUTF8(strings.ReplaceAll(string(r.data), "\x00", ""), "\uFFFD")
		}
		_, err := tx.Exec(ctx, `
			insert into elt.rejects (run_id, source, resource, url, reason, raw)
			select $1, $2, $3, u, r, w from unnest($4::text[], $5::text[], $6::text[]) as x (u, r, w)`,
			x.runID, x.src.Name, res.Name, urls, reasons, raws)
		if err != nil {
			return fmt.Errorf("save rejects: %w", err)
		}
	}
	b.max = b.cursorMax()
	// committed_at is the commit's time (the transaction's last statement), not its start: with parallel copy
	// sessions a batch may start before the one it commits after.
	if _, err := tx.Exec(ctx, `update elt.batches set records = $2, bytes = $3, cursor_max = $4, committed_at = clock_timestamp() where batch_id = $1`,
		b.batchID, b.n, b.bytes, b.max); err != nil {
		return fmt.Errorf("finish batch: %w", err)
	}
	if _, err := tx.Exec(ctx, `update elt.runs set pages = $2, records = $3, bytes = $4, retries = $5 where run_id = $1`,
		append([]any{x.runID}, x.runCounters(int64(b.n))...)...); err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	return nil
}

// advances reports whether cursor v of scope s is beyond the committed one.
func (b *batchSource) advances(s, v string) bool {
	old, ok := b.saved[s]
	return !ok || compareCursor(v, old) > 0
}

// runCounters are the run's counters for elt.runs, in the order pages, records, bytes, retries; pending
// counts the records of a batch not committed yet.
func (x *sourceRun) runCounters(pending int64) []any {
	c := x.client
	return []any{c.pages.Load(), x.records + pending, c.bytes.Load(), c.retries.Load()}
}

func (x *sourceRun) committed(res *Resource, b *batchSource) {
	if res.Incremental != nil {
		for s, v := range b.cursors {
			if b.advances(s, v) {
				b.saved[s] = v
			}
		}
	}
	x.records += int64(b.n)
	cursor := ""
	if c := b.max; c != nil {
		cursor = *c
	}
	x.log.Debug("batch committed", "resource", res.Name, "batch_id", b.batchID, "records", b.n,
		"rejects", len(b.rejects), "cursor", cursor)
}

// copyErr explains a COPY failure; a record jsonb refuses fails the whole batch, which is rolled back.
func copyErr(res *Resource, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pgerr.Is(pe, pgerr.InvalidTextRepresentation, pgerr.UntranslatableCharacter, pgerr.InvalidEscapeSequence, pgerr.NumericValueOutOfRange) {
		return fmt.Errorf("copy into staging.%s: a record is not valid for jsonb (%s: %s); the batch was rolled back", res.Table, pe.Code, pe.Message)
	}
	return fmt.Errorf("copy into staging.%s: %w", res.Table, err)
}

// copySessions is how many sessions load an append resource's batches: copy_sessions, or the client's cores
// (at most 4), and never more than the pool can give besides the source's lock connection and the sources
// running beside it (sessionsCap).
func (x *sourceRun) copySessions() int {
	n := x.src.CopySessions
	if n == 0 {
		n = min(runtime.NumCPU(), 4)
	}
	return max(1, min(n, int(x.pool.Config().MaxConns)-1, x.sessionsCap))
}

// sliceSource is a pgx.CopyFromSource over a batch held in memory.
type sliceSource struct {
	rows    []record
	i       int
	batchID int64
}

func (s *sliceSource) Next() bool             { s.i++; return s.i <= len(s.rows) }
func (s *sliceSource) Err() error             { return nil }
func (s *sliceSource) Values() ([]any, error) { return s.rows[s.i-1].values(s.batchID), nil }

// loadParallel commits the stream in batches as loadAppend does, with up to sessions batches loading at
// once, each in its own session and transaction: the server parses one batch's jsonb per core. The batches
// are cut from the stream in order, as loadAppend cuts them (at cursor boundaries), and held in memory;
// batch k takes its elt.batches row (batch ids follow the stream) and commits (cursors and run counters
// included) only after batch k-1 has, so a committed cursor still means every record up to it is in. A
// batch that fails rolls back, and so do the batches after it; those before it stay committed.
func (x *sourceRun) loadParallel(ctx context.Context, res *Resource, in <-chan item, saved map[string]string, sessions int) error {
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	// A failed batch stops the dispatch and the batches after it (each checks, once the one before it is
	// done); those before it go on to commit.
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	closed := make(chan struct{})
	close(closed)
	prevBegun, prevDone := closed, closed // of the batch before the next one
	prevOK := &atomic.Bool{}              // that batch committed (set before its done closes)
	prevOK.Store(true)
	slots := make(chan struct{}, sessions)
	table := pgx.Identifier{"staging", res.Table}
	b := &batchSource{in: in, saved: saved}
	// A batch is held in memory until its session has copied it: smaller batches than one session's keep
	// memory flat and the sessions' copies overlapping.
	size := min(x.src.BatchSize, parallelBatch)
	for failed() == nil && b.waitFirst() {
		b.reset(size, time.Duration(x.src.BatchTime))
		rows := make([]record, 0, size)
		for b.Next() {
			rows = append(rows, b.row)
		}
		if b.err != nil {
			break // the stream failed: the batch being cut is dropped, those handed on still commit
		}
		if failed() != nil {
			break // a batch failed while this one was being cut: it could not commit
		}
		job := &batchSource{saved: saved, cursors: b.cursors, n: b.n, bytes: b.bytes, marks: b.marks,
			rejects: append([]record(nil), b.rejects...)}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			fail(err) // cancelled: the batch cut is not loaded, and the run must say so
			break
		}
		// Connections are taken in stream order: a later batch never holds the connection an earlier one,
		// which it waits for, needs.
		conn, err := x.pool.Acquire(ctx)
		if err != nil {
			<-slots
			fail(fmt.Errorf("acquire a connection: %w", err))
			break
		}
		begun, done, ok := make(chan struct{}), make(chan struct{}), &atomic.Bool{}
		waitBegun, waitDone, earlierOK := prevBegun, prevDone, prevOK
		prevBegun, prevDone, prevOK = begun, done, ok
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer close(done)
			defer conn.Release()
			var once sync.Once
			signal := func() { once.Do(func() { close(begun) }) }
			defer signal()
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if err := wait(ctx, waitBegun); err != nil {
					return err
				}
				err := x.beginBatch(ctx, tx, res, job)
				signal()
				if err != nil {
					return err
				}
				if _, err := tx.CopyFrom(ctx, table, stagingColumns, &sliceSource{rows: rows, batchID: job.batchID}); err != nil {
					return copyErr(res, err)
				}
				rows = nil // the server has them
				if err := wait(ctx, waitDone); err != nil {
					return err
				}
				if !earlierOK.Load() {
					return errEarlierBatch // it failed: this one must not commit past it
				}
				if err := x.upsertCursors(ctx, tx, res, job, false); err != nil {
					return err
				}
				return x.endBatch(ctx, tx, res, job)
			})
			if err != nil {
				if !errors.Is(err, errEarlierBatch) {
					fail(err)
				}
				return
			}
			x.committed(res, job) // before done: the next batch reads saved and x.records after it
			ok.Store(true)
		}()
	}
	wg.Wait()
	b.reset(0, 0)
	if err := failed(); err != nil {
		return err
	}
	return b.err
}

// parallelBatch caps the records of a batch loaded beside others (held in memory until copied).
const parallelBatch = 10000

// errEarlierBatch rolls back a batch whose predecessor failed.
var errEarlierBatch = errors.New("an earlier batch failed")

// wait blocks until ch is closed or ctx is done.
func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
