package refresh

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/internal/citus"
	"github.com/elt-dev/elt/internal/pgerr"
)

// DefaultLockTimeout bounds how long a step waits for a table lock when Options.LockTimeout is zero.
const DefaultLockTimeout = time.Minute

// checkRowLimit is how many violating rows a data check fetches; CheckError shows the first few.
const checkRowLimit = 100

// Options configure a refresh run.
type Options struct {
	// Project is the project folder (its sql/ holds the steps): refresh reads the model's SQL from it at run
	// time. Required.
	Project fs.FS
	// Schemas are the project's schemas: their materialized views are refreshed at the end of a run.
	Schemas []string
	// Full rebuilds every step from all of staging instead of the batches above each watermark.
	Full bool
	// LockTimeout is the lock_timeout of every step, so a long-running reader (or another writer) makes the
	// step fail with a clear error instead of stalling the run forever. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// Logger receives one line per step. Nil discards.
	Logger *slog.Logger
	// Sessions is how many sessions run the units of a split step ("-- split:"), and the data checks, at once. Zero means the
	// client's cores, at most DefaultSessions; never more than the pool's connections minus two (the run's own
	// connection, which holds the refresh lock, and one for the step log).
	Sessions int
	// BeforeSteps, if not nil, runs after the batch watermark is read and before the first step, with that
	// watermark (elt uses it to delete the data of purged customers that arrived since their purge).
	BeforeSteps func(ctx context.Context, batchTo int64) error
	// AsOf is the run's clock, bound to @as_of in every step: what "today" and "complete" mean for the marts
	// (a period is complete once it ended before AsOf, in the customer's time zone). The zero value means the
	// time the run started; tests and replays set it to reproduce a run.
	AsOf time.Time
}

// Result describes a finished (or failed) run.
type Result struct {
	RunID   int64        // elt.runs.run_id
	Mode    string       // "incremental" or "full" (elt.runs.target)
	BatchTo int64        // the batch watermark this run processed up to
	Steps   []StepResult // in execution order
	// Changed lists the project files that changed (or appeared, or went away) since they last ran, e.g.
	// "sql/030_events.sql (changed)"; a changed step makes the run a full rebuild.
	Changed []string
}

// Rows is the number of rows the transform and mart steps wrote.
func (r *Result) Rows() int64 {
	var n int64
	for _, s := range r.Steps {
		if s.Kind == "transform" || s.Kind == "mart" {
			n += s.Rows
		}
	}
	return n
}

// StepResult is one line of the step log (elt.refresh_steps).
type StepResult struct {
	Kind      string // "transform", "check", "mart" (a step of sql/marts) or "view" (a materialized view)
	Name      string // file name relative to the project, or the qualified name of a materialized view
	BatchFrom int64  // exclusive lower batch bound (transforms and checks)
	BatchTo   int64  // inclusive upper batch bound (transforms and checks)
	Rows      int64  // rows written, violating rows, or rows in the mart
	Started   time.Time
	Duration  time.Duration

	sha string // of the step's file, for the step log
}

// ErrBusy is returned (wrapped) when another refresh holds the refresh lock.
var ErrBusy = errors.New("another elt refresh is running")

// CheckError reports the data checks that found violating rows; the mart steps and materialized views did not
// run.
type CheckError struct {
	Failures []CheckFailure
}

// CheckFailure is one failed data check and the first rows it returned.
type CheckFailure struct {
	Check   string     // file name, e.g. sql/checks/events_user_exists.sql
	Columns []string   // column names of the rows
	Rows    [][]string // first violating rows, as text
	More    bool       // more rows than Rows violate the check
}

// Error lists each failed check with its first violating rows.
func (e *CheckError) Error() string {
	var b strings.Builder
	b.WriteString("data checks failed, marts not refreshed (they keep their previous contents; fix the data or the check, then run elt refresh again):")
	for _, f := range e.Failures {
		n := strconv.Itoa(len(f.Rows)) + " violating rows"
		switch {
		case f.More:
			n = "more than " + n
		case len(f.Rows) == 1:
			n = "1 violating row"
		}
		fmt.Fprintf(&b, "\n  %s: %s, first:", f.Check, n)
		for i, r := range f.Rows {
			if i == 5 {
				break
			}
			b.WriteString("\n    ")
			for j, v := range r {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(f.Columns[j] + "=" + v)
			}
		}
	}
	return b.String()
}

// StepError reports a failed transform step: its file, the line of the failing statement and the SQL error.
// The step's transaction was rolled back, so every table is as it was before the step.
type StepError struct {
	File string
	Line int
	What string // what failed at that line when it is not a statement, e.g. "the -- tenants: query"
	// Unit names the failed unit of a split step: the split column and the unit's key, e.g. "tenant_key t7"
	// (empty otherwise); Done of its Units had committed.
	Unit        string
	Done, Units int
	Err         error
}

// Error names the file, line and SQL error (and in a split step the unit, and what committed).
func (e *StepError) Error() string {
	what := ""
	if e.What != "" {
		what = " (" + e.What + ")"
	}
	if e.Unit != "" {
		return fmt.Sprintf("step %s failed at line %d in the unit of %s: %s; that unit was rolled back, %d of %d units had committed (each unit is a transaction of its own), and the step's watermark did not move: the next run runs the whole step again",
			e.File, e.Line, e.Unit, describePgError(e.Err), e.Done, e.Units)
	}
	return fmt.Sprintf("step %s failed at line %d%s: %s; the step was rolled back", e.File, e.Line, what, describePgError(e.Err))
}

// Unwrap returns the SQL error.
func (e *StepError) Unwrap() error { return e.Err }

// setLocals configures a step's transaction: its lock_timeout, no JIT compilation, which costs more than it
// saves on the short statements of an incremental run, and TimeZone UTC, so that a timestamp without an offset
// in a record is read as UTC and days are UTC days whatever the session's (or the role's) TimeZone.
const setLocals = `select set_config('lock_timeout', $1, true), set_config('jit', 'off', true), set_config('TimeZone', 'UTC', true)`

// runner carries the state of one run on its dedicated connection.
type runner struct {
	pool    *pgxpool.Pool // for the run log: its rows must be written even if conn broke
	conn    *pgxpool.Conn // holds the refresh lock; every step runs on it
	opts    Options
	log     *slog.Logger
	result  *Result
	seq     int
	timeout string    // lock_timeout setting value
	asOf    time.Time // @as_of
	citus   bool      // a Citus coordinator: the units of a split step are the key's shards (citusUnits)
}

// args are the named parameters of a step's statements (and of its tenants: and split: queries): the batch
// window (from, hi], whether the step rebuilds, and the run's clock.
func (r *runner) args(from, hi int64, rebuild bool) pgx.NamedArgs {
	return pgx.NamedArgs{"batch_from": from, "batch_to": hi, "rebuild": rebuild, "as_of": r.asOf}
}

// stepTx runs fn in a transaction on the run's connection configured by setLocals.
func (r *runner) stepTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return r.inTx(ctx, r.conn, fn)
}

// inTx runs fn in a transaction on conn configured by setLocals (the run's connection, or a session of a
// split step's units).
func (r *runner) inTx(ctx context.Context, conn *pgxpool.Conn, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, setLocals, r.timeout); err != nil {
			return err
		}
		return fn(tx)
	})
}

// stepMark reads the watermark of step name, locking its row for tx: from is the batch it processed up to
// (exclusive lower bound of this run), and rebuild says it has none, so it rebuilds.
func stepMark(ctx context.Context, tx pgx.Tx, name string) (from int64, rebuild bool, err error) {
	var mark *int64
	if err := tx.QueryRow(ctx, `select (select batch_id from elt.refresh_watermarks where step = $1 for update)`, name).Scan(&mark); err != nil {
		return 0, false, err
	}
	if mark == nil {
		return 0, true, nil
	}
	return *mark, false, nil
}

// execStatements runs the statements of s in tx with args and returns the rows they wrote; on a failure, the
// StepError names the line of the failing statement in the file.
func execStatements(ctx context.Context, tx pgx.Tx, s step, args pgx.NamedArgs) (int64, *StepError) {
	var rows int64
	for _, st := range s.statements {
		tag, err := tx.Exec(ctx, st.sql, pgx.QueryExecModeExec, args)
		if err != nil {
			return rows, &StepError{File: s.name, Line: st.line + errorLine(st.sql, err) - 1, Err: err}
		}
		if tag.Insert() || tag.Update() || tag.Delete() || strings.HasPrefix(tag.String(), "MERGE") {
			rows += tag.RowsAffected()
		}
	}
	return rows, nil
}

// stepFailure is the error of a step whose transaction failed with err: failed, when the step said what
// failed where, else err with the step's name.
func stepFailure(name string, failed *StepError, err error) error {
	if failed != nil {
		return failed
	}
	return fmt.Errorf("step %s: %w", name, describePgError(err))
}

// Run performs one refresh: it takes the refresh lock (failing with ErrBusy if another run holds it), reads the
// batch watermark, runs every transform step in its own transaction, runs the data checks, then the mart
// steps, and refreshes the project's materialized views concurrently in dependency order. Every step is
// logged in elt.refresh_steps and the run in elt.runs. A step file that changed since it last ran makes the
// run a full rebuild (Result.Changed names them).
func Run(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Result, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Project == nil {
		return nil, errors.New("refresh: no project folder")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := loadPlan(opts.Project)
	if err != nil {
		return nil, err
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("refresh: connect: %w", err)
	}
	defer conn.Release()
	var migrated bool
	if err := conn.QueryRow(ctx, `select to_regclass('elt.refresh_files') is not null and to_regclass('elt.project_version') is not null`).Scan(&migrated); err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	if !migrated {
		return nil, errors.New("refresh: the database lacks elt's tables or the project's (elt.refresh_files, elt.project_version): run elt migrate first")
	}
	if err := lock(ctx, conn); err != nil {
		return nil, err
	}
	defer unlock(conn)

	r := &runner{pool: pool, conn: conn, opts: opts, log: log, result: &Result{Mode: "incremental"}, timeout: strconv.FormatInt(opts.LockTimeout.Milliseconds(), 10), asOf: opts.AsOf}
	if r.asOf.IsZero() {
		r.asOf = time.Now()
	}
	if r.citus, err = citus.Installed(ctx, conn); err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	changes, err := r.changes(ctx, p)
	if err != nil {
		return nil, err
	}
	r.result.Changed = changes.names()
	if opts.Full || changes.steps {
		r.result.Mode = "full"
	}
	if err := pool.QueryRow(ctx, `insert into elt.runs (kind, target) values ('refresh', $1) returning run_id`, r.result.Mode).Scan(&r.result.RunID); err != nil {
		return nil, fmt.Errorf("refresh: start run log: %w", err)
	}
	log.Info("refresh started", "run_id", r.result.RunID, "mode", r.result.Mode, "as_of", r.asOf.UTC().Format(time.RFC3339))
	for _, c := range changes.list {
		log.Warn("project file changed since it last ran", "file", c.name, "change", c.what, "effect", changes.effect())
	}

	err = r.run(ctx, p, changes)
	r.finish(err)
	return r.result, err
}

func (r *runner) run(ctx context.Context, p plan, changes fileChanges) error {
	if err := r.reset(ctx, p, changes); err != nil {
		return err
	}
	hi, err := r.watermark(ctx)
	if err != nil {
		return err
	}
	r.result.BatchTo = hi
	if r.opts.BeforeSteps != nil {
		if err := r.opts.BeforeSteps(ctx, hi); err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
	}
	if err := r.coverage(ctx, p); err != nil {
		return err
	}
	for _, s := range p.transforms {
		if err := r.step(ctx, s, hi); err != nil {
			return err
		}
	}
	if err := r.check(ctx, p.checks, hi); err != nil {
		return err
	}
	for _, s := range p.marts {
		if err := r.step(ctx, s, hi); err != nil {
			return err
		}
	}
	return r.refreshViews(ctx)
}

// reset starts a run that rebuilds (--full, or a changed step file) by deleting every watermark, of the steps
// and of the checks, or one whose data checks changed by deleting the checks' watermark; in the same committed
// transaction it records the hashes of the files as they are now. A step without a watermark rebuilds, so if
// this run stops half-way (a failed step, a data check, a cancel), the next run, incremental or not, rebuilds
// every step this one did not finish instead of updating tables that no longer match what the steps before
// them rebuilt.
func (r *runner) reset(ctx context.Context, p plan, changes fileChanges) error {
	full := r.result.Mode == "full"
	if !full && !changes.checks && !changes.first {
		return nil
	}
	err := r.stepTx(ctx, func(tx pgx.Tx) error {
		switch {
		case full:
			if _, err := tx.Exec(ctx, `delete from elt.refresh_watermarks`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `delete from elt.refresh_units`); err != nil {
				return err
			}
		case changes.checks:
			if _, err := tx.Exec(ctx, `delete from elt.refresh_watermarks where step = 'checks'`); err != nil {
				return err
			}
		}
		return recordFiles(ctx, tx, p.files())
	})
	if err != nil {
		return fmt.Errorf("refresh: reset watermarks: %w", describePgError(err))
	}
	return nil
}

// watermark reads the highest committed batch under the staging lock, so no batch still in flight can commit
// below it later.
func (r *runner) watermark(ctx context.Context) (int64, error) {
	var hi int64
	err := r.stepTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select elt.lock_staging_exclusive()`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `select coalesce(max(batch_id), 0) from elt.batches`).Scan(&hi)
	})
	if err != nil {
		return 0, fmt.Errorf("refresh: read batch watermark: %w", describePgError(err))
	}
	return hi, nil
}

// stillRunningEvery is how often a step that takes long says it is still going (a full rebuild of a big
// step runs for minutes; silence looks like a hang to whoever watches).
var stillRunningEvery = 10 * time.Second

// stillRunning logs every stillRunningEvery that the step name is running, with what progress returns (if
// given), until the returned stop.
func (r *runner) stillRunning(kind, name string, started time.Time, progress ...func() []any) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(stillRunningEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				attrs := []any{"kind", kind, "step", name, "seconds", int64(time.Since(started).Seconds())}
				for _, p := range progress {
					attrs = append(attrs, p()...)
				}
				r.log.Info("refresh step still running", attrs...)
			}
		}
	}()
	return func() { close(done) }
}

// step runs one step file (a transform or a mart step) in one transaction with its watermark update.
func (r *runner) step(ctx context.Context, s step, hi int64) error {
	if s.split != nil {
		return r.splitStep(ctx, s, hi)
	}
	started := time.Now()
	seq, err := r.logStart(ctx, s.kind, s.name)
	if err != nil {
		return err
	}
	defer r.stillRunning(s.kind, s.name, started)()
	var from, rows, tenants int64
	var rebuild bool
	var failed *StepError
	err = r.stepTx(ctx, func(tx pgx.Tx) error {
		// A step without a watermark rebuilds: on its first run, during a full run (which deleted every
		// watermark first), and on the run after an interrupted full run, whose steps that did not commit
		// must still rebuild over what the steps before them rebuilt.
		var err error
		if from, rebuild, err = stepMark(ctx, tx, s.name); err != nil {
			return err
		}
		// The tenants query runs before a rebuild empties anything, so it may read the step's own tables.
		args := r.args(from, hi, rebuild)
		if s.tenants != "" {
			keys, n, err := tenantKeys(ctx, tx, s.tenants, args)
			if err != nil {
				failed = &StepError{File: s.name, Line: s.tenantsLine, What: "the -- tenants: query", Err: err}
				return err
			}
			tenants = n
			args["tenants"] = keys
		}
		if rebuild {
			// Emptied with DELETE, not TRUNCATE: DELETE takes a ROW EXCLUSIVE lock, which no reader's lock
			// conflicts with, so readers (tenants included) keep reading the old rows until the step commits
			// and a reader idle in a transaction does not hold the rebuild up. TRUNCATE's ACCESS EXCLUSIVE lock
			// would make every reader of these tables wait for the whole step. Autovacuum reclaims the old
			// rows. Identifiers come from the step file and went through pgx.Identifier.Sanitize.
			for _, table := range s.rebuild {
				if _, err := tx.Exec(ctx, "delete from "+table); err != nil {
					failed = &StepError{File: s.name, Line: 1, Err: err}
					return err
				}
			}
		}
		if rows, failed = execStatements(ctx, tx, s, args); failed != nil {
			return failed.Err
		}
		if err := analyzeRebuilt(ctx, tx, s, rows, rebuild); err != nil {
			failed = &StepError{File: s.name, Line: 1, Err: err}
			return err
		}
		return setWatermark(ctx, tx, s.name, hi)
	})
	res := StepResult{Kind: s.kind, Name: s.name, BatchFrom: from, BatchTo: hi, Rows: rows, Started: started, Duration: time.Since(started), sha: s.sha}
	if err != nil {
		err = stepFailure(s.name, failed, err)
		r.logEnd(seq, res, err)
		return err
	}
	r.logEnd(seq, res, nil)
	attrs := []any{"step", s.name, "batches", fmt.Sprintf("(%d,%d]", from, hi), "rebuild", rebuild, "rows", rows}
	if s.tenants != "" {
		attrs = append(attrs, "tenants", tenants)
	}
	r.log.Info(s.kind, append(attrs, "ms", res.Duration.Milliseconds())...)
	return nil
}

// tenantKeys runs the step's "-- tenants:" query (from its project file, like its statements) and returns what
// @tenants binds: the keys as a PostgreSQL array literal in key order, or nil (NULL: no pruning) when they are
// more than a quarter of the tenants with a login. Pruning pays when a run touches few tenants' partitions:
// their statements then plan and lock those partitions only. When it touches many, it saves little planning
// and costs at run time, since PostgreSQL 15 probes an index once per array element; so steps filter with
// "(key = any(@tenants) or @tenants is null)", which the planner folds to no filter at all for NULL. n is the
// number of keys.
func tenantKeys(ctx context.Context, tx pgx.Tx, query string, args pgx.NamedArgs) (keys *string, n int64, err error) {
	var list string
	var active int64
	// "\n" before the closing parenthesis: a trailing -- comment on the tenants: line stays a comment.
	// Two statements: on Citus the query reads distributed tables, and elt.tenants is the coordinator's own.
	err = tx.QueryRow(ctx, `select count(distinct k), coalesce(pg_catalog.array_agg(distinct k order by k), '{}')::text
from (`+query+"\n"+`) as q(k)`, pgx.QueryExecModeExec, args).Scan(&n, &list)
	if err != nil {
		return nil, 0, err
	}
	if err := tx.QueryRow(ctx, `select count(*) from elt.tenants where state = 'active'`).Scan(&active); err != nil {
		return nil, 0, err
	}
	if n*4 > active {
		return nil, n, nil
	}
	return &list, n, nil
}

// setWatermark records that step has processed the batches up to hi.
func setWatermark(ctx context.Context, tx pgx.Tx, step string, hi int64) error {
	_, err := tx.Exec(ctx, `insert into elt.refresh_watermarks (step, batch_id) values ($1, $2)
		on conflict (step) do update set batch_id = excluded.batch_id, updated_at = now()`, step, hi)
	return err
}

// analyzeRebuilt refreshes the planner statistics of the tables a step rebuilt (a first load, a full run), so
// that the following steps and the next run are planned for the data just written rather than for an empty
// table; and, after an incremental run, of a plain table the step changed a large part of. A partitioned table
// is left to autovacuum after an incremental run: whether a tenant's partition is analyzed must follow that
// partition's own changes (autovacuum's per-table thresholds), not how many rows every customer got, or the
// tenant's estimates would tell the others' volume. Autovacuum would do the rest too, but only later.
func analyzeRebuilt(ctx context.Context, tx pgx.Tx, s step, rows int64, rebuild bool) error {
	// A rebuild in place writes only what differs, so its row count tells whether any customer's rows
	// changed: its tables are analyzed whatever the count, or whether a tenant's partition is analyzed (and
	// its estimates move) would depend on the other customers' data.
	if rows == 0 && !(rebuild && len(s.inPlace) > 0) {
		return nil
	}
	for _, table := range s.owned() {
		if !rebuild {
			var tuples float64
			var partitioned bool
			if err := tx.QueryRow(ctx, `select reltuples, relkind = 'p' from pg_catalog.pg_class where oid = $1::regclass`, table).Scan(&tuples, &partitioned); err != nil {
				return err
			}
			if partitioned || tuples >= 0 && float64(rows) <= 0.2*tuples {
				continue
			}
		}
		if _, err := tx.Exec(ctx, "analyze "+table); err != nil {
			return err
		}
	}
	return nil
}

// runCheck returns the first violating rows of one check.
func runCheck(ctx context.Context, tx pgx.Tx, c check, args pgx.NamedArgs) (CheckFailure, error) {
	f := CheckFailure{Check: c.name}
	// The check's text is the project's own SQL (trusted like every step); the newline keeps a trailing
	// comment from swallowing ")".
	rows, err := tx.Query(ctx, "select * from (\n"+c.sql+"\n) as violation limit "+strconv.Itoa(checkRowLimit+1), pgx.QueryExecModeExec, args)
	if err != nil {
		return f, err
	}
	defer rows.Close()
	for _, fd := range rows.FieldDescriptions() {
		f.Columns = append(f.Columns, fd.Name)
	}
	for rows.Next() {
		if len(f.Rows) == checkRowLimit {
			f.More = true
			break
		}
		vals := rows.RawValues()
		row := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				row[i] = "null"
			} else {
				row[i] = string(v)
			}
		}
		f.Rows = append(f.Rows, row)
	}
	rows.Close()
	return f, rows.Err()
}

// refreshViews refreshes every materialized view of the project's schemas concurrently, each in its own
// transaction, in dependency order read from the catalog.
func (r *runner) refreshViews(ctx context.Context) error {
	views, err := viewOrder(ctx, r.conn, r.opts.Schemas)
	if err != nil {
		return err
	}
	for _, v := range views {
		started := time.Now()
		name := v[0] + "." + v[1]
		seq, err := r.logStart(ctx, "view", name)
		if err != nil {
			return err
		}
		ident := pgx.Identifier(v[:]).Sanitize()
		var n int64
		err = r.stepTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "refresh materialized view concurrently "+ident); err != nil {
				return err
			}
			return tx.QueryRow(ctx, "select count(*) from "+ident).Scan(&n)
		})
		res := StepResult{Kind: "view", Name: name, Rows: n, Started: started, Duration: time.Since(started)}
		if err != nil {
			err = fmt.Errorf("refresh materialized view %s: %w", name, describePgError(err))
			r.logEnd(seq, res, err)
			return err
		}
		r.logEnd(seq, res, nil)
		r.log.Info("view", "view", name, "rows", n, "ms", res.Duration.Milliseconds())
	}
	return nil
}

// viewOrder lists the materialized views of schemas so that every view comes after the materialized views it
// reads, following pg_depend edges of the views' rewrite rules.
func viewOrder(ctx context.Context, conn *pgxpool.Conn, schemas []string) ([][2]string, error) {
	rows, err := conn.Query(ctx, `
with recursive mv as (
    select c.oid, n.nspname, c.relname
    from pg_catalog.pg_class as c
    join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
    where c.relkind = 'm' and n.nspname = any ($1)
),
edge as (
    select distinct rw.ev_class as view_oid, d.refobjid as dep_oid
    from pg_catalog.pg_rewrite as rw
    join pg_catalog.pg_depend as d
      on d.classid = 'pg_catalog.pg_rewrite'::regclass and d.objid = rw.oid
    where rw.ev_class in (select oid from mv)
      and d.refobjid in (select oid from mv)
      and d.refobjid <> rw.ev_class
),
depth as (
    select oid, 0 as level from mv
    union all
    select e.view_oid, depth.level + 1 from edge as e join depth on depth.oid = e.dep_oid
)
select mv.nspname, mv.relname
from mv
join depth on depth.oid = mv.oid
group by mv.nspname, mv.relname
order by max(depth.level), mv.nspname, mv.relname`, schemas)
	if err != nil {
		return nil, fmt.Errorf("refresh: read materialized view dependencies: %w", err)
	}
	var out [][2]string
	for rows.Next() {
		var v [2]string
		if err := rows.Scan(&v[0], &v[1]); err != nil {
			return nil, fmt.Errorf("refresh: read materialized view dependencies: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("refresh: read materialized view dependencies: %w", err)
	}
	return out, nil
}

// logStart records a running step outside any transaction, so it survives the step's rollback.
func (r *runner) logStart(ctx context.Context, kind, name string) (int, error) {
	r.seq++
	_, err := r.pool.Exec(ctx, `insert into elt.refresh_steps (run_id, seq, kind, name) values ($1, $2, $3, $4)`, r.result.RunID, r.seq, kind, name)
	if err != nil {
		return 0, fmt.Errorf("refresh: log step %s: %w", name, err)
	}
	return r.seq, nil
}

// logEnd records a step's outcome; it uses its own context so that a cancelled run still logs why it stopped.
func (r *runner) logEnd(seq int, res StepResult, stepErr error) {
	r.result.Steps = append(r.result.Steps, res)
	status, msg := "succeeded", (*string)(nil)
	if stepErr != nil {
		status = "failed"
		s := stepErr.Error()
		msg = &s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var from, to *int64
	if res.Kind != "view" {
		from, to = &res.BatchFrom, &res.BatchTo
	}
	var sha *string
	if res.sha != "" {
		sha = &res.sha
	}
	_, err := r.pool.Exec(ctx, `
insert into elt.refresh_steps (run_id, seq, kind, name, started_at, finished_at, status, batch_from, batch_to, rows, error, sha256)
values ($1, $2, $3, $4, $5, $5::timestamptz + $6::interval, $7, $8, $9, $10, $11, $12)
on conflict (run_id, seq) do update
   set started_at = excluded.started_at, finished_at = excluded.finished_at, status = excluded.status, batch_from = excluded.batch_from,
       batch_to = excluded.batch_to, rows = excluded.rows, error = excluded.error, sha256 = excluded.sha256`,
		r.result.RunID, seq, res.Kind, res.Name, res.Started, res.Duration, status, from, to, res.Rows, msg, sha)
	if err != nil {
		r.log.Warn("could not log refresh step", "step", res.Name, "err", err)
	}
}

// finish closes the run log row.
func (r *runner) finish(runErr error) {
	status, msg := "succeeded", (*string)(nil)
	if runErr != nil {
		status = "failed"
		if errors.Is(runErr, context.Canceled) {
			status = "cancelled"
		}
		s := runErr.Error()
		msg = &s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.pool.Exec(ctx, `update elt.runs set finished_at = now(), status = $2, records = $3, error = $4 where run_id = $1`,
		r.result.RunID, status, r.result.Rows(), msg)
	if err != nil {
		r.log.Warn("could not close refresh run log", "run_id", r.result.RunID, "err", err)
	}
	if runErr == nil {
		r.log.Info("refresh finished", "run_id", r.result.RunID, "batch_to", r.result.BatchTo)
	}
}

// errorLine is the 1-based line within sql of a PostgreSQL error position, or 1.
func errorLine(sql string, err error) int {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return 1
	}
	if line := pgerr.Line(sql, pg.Position); line > 0 {
		return line
	}
	return 1
}

// describePgError renders a PostgreSQL error as message, detail and SQLSTATE, and explains lock timeouts.
func describePgError(err error) error {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return err
	}
	msg := pgerr.Describe(pg)
	switch {
	case pg.Code == pgerr.LockNotAvailable:
		msg += "; another session held a lock longer than lock_timeout: run elt refresh again later or raise --lock-timeout"
	case pg.Code == pgerr.OutOfMemory && strings.Contains(pg.Hint, "max_locks_per_transaction"):
		// A statement over partitioned tables locks every partition it cannot prune at planning time.
		msg += "; a statement over the partitioned tables locks each tenant's partitions and indexes: raise max_locks_per_transaction (docs/tenants.md, cost against the number of tenants)"
	case pg.Hint != "":
		msg += " (hint: " + pg.Hint + ")"
	}
	return &describedError{msg: msg, err: err}
}

// describedError is a server error said with its detail, SQLSTATE and what to do; Unwrap keeps the chain
// (errors.As finds the *pgconn.PgError, errors.Is context.Canceled).
type describedError struct {
	msg string
	err error
}

func (e *describedError) Error() string { return e.msg }
func (e *describedError) Unwrap() error { return e.err }

// RefreshViews refreshes the materialized views of schemas concurrently, in dependency order, outside any
// refresh run (after a purge, so that none still holds the purged customer's rows).
func RefreshViews(ctx context.Context, pool *pgxpool.Pool, schemas []string, log *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("refresh: connect: %w", err)
	}
	defer conn.Release()
	views, err := viewOrder(ctx, conn, schemas)
	if err != nil {
		return err
	}
	for _, v := range views {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, setLocals, strconv.FormatInt(DefaultLockTimeout.Milliseconds(), 10)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "refresh materialized view concurrently "+pgx.Identifier(v[:]).Sanitize())
			return err
		})
		if err != nil {
			return fmt.Errorf("refresh materialized view %s.%s: %w", v[0], v[1], describePgError(err))
		}
		if log != nil {
			log.Info("materialized view refreshed", "view", v[0]+"."+v[1])
		}
	}
	return nil
}
