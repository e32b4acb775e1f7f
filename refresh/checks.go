package refresh

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// snapshotID is what pg_export_snapshot returns (e.g. 00000003-0000001B-1), checked before it is written
// into SET TRANSACTION SNAPSHOT, which takes no parameter.
var snapshotID = regexp.MustCompile(`^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$`)

// check runs the data checks over what changed since they last passed, all in one repeatable-read snapshot,
// on up to as many sessions at once as a split step's units (each check is one query, and they do not depend
// on each other): the run's connection exports its snapshot and the other sessions import it, so every check
// reads the same data, as if they ran one after the other. A "-- tenants:" query that several checks share
// runs once. When every check passes, it moves the checks' watermark.
func (r *runner) check(ctx context.Context, checks []check, hi int64) error {
	// No checks watermark (a first run, --full, or the run after an interrupted --full): check everything.
	var from int64
	err := r.conn.QueryRow(ctx, `select coalesce((select batch_id from elt.refresh_watermarks where step = 'checks'), 0)`).Scan(&from)
	if err != nil {
		return fmt.Errorf("refresh: read checks watermark: %w", err)
	}
	args := pgx.NamedArgs{"checked_from": from, "batch_to": hi}
	type outcome struct {
		ran bool
		res StepResult
		f   CheckFailure
		err error
	}
	outcomes := make([]outcome, len(checks))

	// Tenant keys per "-- tenants:" query, computed by the first check that needs them.
	type keysOf struct {
		once sync.Once
		keys *string
		err  error
	}
	var mu sync.Mutex // guards tenants, next, stop
	tenants := map[string]*keysOf{}
	next, stop := 0, false
	take := func() (int, bool) { // the next check, unless all were taken or one failed
		mu.Lock()
		defer mu.Unlock()
		if stop || next == len(checks) {
			return 0, false
		}
		next++
		return next - 1, true
	}
	run := func(tx pgx.Tx, i int) error {
		c := checks[i]
		started := time.Now()
		res := StepResult{Kind: "check", Name: c.name, BatchFrom: from, BatchTo: hi, Started: started, sha: c.sha}
		cargs := args
		if c.tenants != "" {
			mu.Lock()
			k, ok := tenants[c.tenants]
			if !ok {
				k = &keysOf{}
				tenants[c.tenants] = k
			}
			mu.Unlock()
			k.once.Do(func() { k.keys, _, k.err = tenantKeys(ctx, tx, c.tenants, args) })
			if k.err != nil {
				err := fmt.Errorf("data check %s: line %d (the -- tenants: query): %w", c.name, c.tenantsLine, describePgError(k.err))
				outcomes[i] = outcome{ran: true, res: res, err: err}
				return err
			}
			cargs = maps.Clone(args)
			cargs["tenants"] = k.keys
		}
		f, err := runCheck(ctx, tx, c, cargs)
		res.Rows, res.Duration = int64(len(f.Rows)), time.Since(started)
		if err != nil {
			err = fmt.Errorf("data check %s: %w", c.name, describePgError(err))
			outcomes[i] = outcome{ran: true, res: res, err: err}
			return err
		}
		outcomes[i] = outcome{ran: true, res: res, f: f}
		return nil
	}
	// work runs checks on one session until none is left or one failed.
	work := func(tx pgx.Tx) {
		for {
			i, ok := take()
			if !ok {
				return
			}
			if err := run(tx, i); err != nil {
				mu.Lock()
				stop = true
				mu.Unlock()
			}
		}
	}

	err = r.readTx(ctx, r.conn, "", func(tx pgx.Tx) error {
		sessions := r.sessions(len(checks))
		var snapshot string
		if sessions > 1 {
			if err := tx.QueryRow(ctx, `select pg_catalog.pg_export_snapshot()`).Scan(&snapshot); err != nil {
				return fmt.Errorf("refresh: export the data checks' snapshot: %w", err)
			}
			if !snapshotID.MatchString(snapshot) {
				return fmt.Errorf("refresh: export the data checks' snapshot: unexpected snapshot id %q", snapshot)
			}
		}
		conns, err := r.acquire(ctx, sessions-1)
		if err != nil {
			r.log.Warn("data checks run on fewer sessions", "sessions", len(conns)+1, "err", err)
		}
		var wg sync.WaitGroup
		for _, conn := range conns {
			wg.Go(func() {
				defer conn.Release()
				err := r.readTx(ctx, conn, snapshot, func(tx pgx.Tx) error { work(tx); return nil })
				// A session whose import failed takes no check; the others take them all. (After a failed
				// check the exporting transaction may be aborted, and the import or the commit fails:
				// nothing to report.)
				mu.Lock()
				stopped := stop
				mu.Unlock()
				if err != nil && !stopped && ctx.Err() == nil {
					r.log.Warn("a session of the data checks could not share their snapshot", "err", err)
				}
			})
		}
		work(tx)
		wg.Wait()
		for _, o := range outcomes {
			if o.err != nil {
				return o.err
			}
		}
		return nil
	})
	// The step log is written after the read-only snapshot ends, in the checks' order.
	var failures []CheckFailure
	for _, o := range outcomes {
		if !o.ran {
			continue
		}
		r.seq++
		switch {
		case o.err != nil:
			r.logEnd(r.seq, o.res, o.err)
		case len(o.f.Rows) > 0:
			failures = append(failures, o.f)
			r.logEnd(r.seq, o.res, fmt.Errorf("%d violating rows", len(o.f.Rows)))
			r.log.Warn("data check failed", "check", o.res.Name, "rows", len(o.f.Rows))
		default:
			r.logEnd(r.seq, o.res, nil)
			r.log.Info("data check", "check", o.res.Name, "ms", o.res.Duration.Milliseconds())
		}
	}
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		return &CheckError{Failures: failures}
	}
	err = pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error { return setWatermark(ctx, tx, "checks", hi) })
	if err != nil {
		return fmt.Errorf("refresh: record passed checks: %w", err)
	}
	return nil
}

// readTx runs fn in a read-only repeatable-read transaction on conn configured by setLocals that reads the
// exported snapshot, if one is given (SET TRANSACTION SNAPSHOT comes first: setLocals is a query and takes
// the transaction's snapshot).
func (r *runner) readTx(ctx context.Context, conn *pgxpool.Conn, snapshot string, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if snapshot != "" {
			if _, err := tx.Exec(ctx, "set transaction snapshot '"+snapshot+"'"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, setLocals, r.timeout); err != nil {
			return err
		}
		return fn(tx)
	})
}
