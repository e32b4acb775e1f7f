package refresh

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultSessions is how many sessions run the units of a split step when Options.Sessions is zero: the
// client's cores, at most this many (each unit keeps one server backend busy).
const DefaultSessions = 4

// sessions is how many connections the units of a split step of n units run on: Options.Sessions (or the
// client's cores, at most DefaultSessions), never more than the units, nor than the pool holds besides the run's
// own connection and one for the step log.
func (r *runner) sessions(n int) int {
	want := r.opts.Sessions
	if want <= 0 {
		want = min(runtime.NumCPU(), DefaultSessions)
	}
	return max(1, min(want, n, int(r.pool.Config().MaxConns)-2))
}

// acquire takes up to n connections of the pool, stopping at the first that cannot be had (a busy pool),
// and returns those it took with that error.
func (r *runner) acquire(ctx context.Context, n int) ([]*pgxpool.Conn, error) {
	var conns []*pgxpool.Conn
	for range n {
		conn, err := r.pool.Acquire(ctx)
		if err != nil {
			return conns, err
		}
		conns = append(conns, conn)
	}
	return conns, nil
}

// unitKey is one unit of a split step: its keys as text (for messages) and the array literal of them that
// @tenants binds.
type unitKey struct {
	keys  []string
	array string
}

// text names the unit in messages: its key, or its first key and how many more.
func (u unitKey) text() string {
	if len(u.keys) == 1 {
		return u.keys[0]
	}
	return fmt.Sprintf("%s and %d more", u.keys[0], len(u.keys)-1)
}

// arrayLiteral is the PostgreSQL array literal of keys, written as PostgreSQL writes one (an element is
// double-quoted only when it must be), so that @tenants::text reads the same as array_agg(key)::text.
// PostgreSQL reads each element with the input function of the column's type.
func arrayLiteral(keys []string) string {
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if k == "" || strings.EqualFold(k, "null") || strings.ContainsAny(k, "{},\"\\ \t\n\r\v\f") {
			k = `"` + q.Replace(k) + `"`
		}
		b.WriteString(k)
	}
	b.WriteByte('}')
	return b.String()
}

// splitStep runs a step with a "-- split: column in (query)" line. The query runs first, in its own
// transaction with @batch_from, @batch_to and @rebuild (before anything is emptied, so it may read the step's
// own tables), and lists the keys this run touches, grouped into units (splitKeys); then every unit runs the
// step's statements in one transaction of its own, with @tenants bound to the unit's keys (so "(column =
// any(@tenants) or @tenants is null)" prunes every partitioned table to their partitions), on one of several
// sessions at once, in the query's order (list the biggest units first: the sessions then end together). A
// rebuilding step empties, in each unit, the rows of the unit's keys of its "-- rebuild:" tables, so readers
// see a key's old rows until its unit commits; once every unit committed, one last transaction deletes the
// rows of keys neither the query nor an earlier attempt at this rebuild (elt.refresh_units) returned,
// refreshes statistics and moves the step's watermark. A failed unit rolls back alone; units that committed
// stay (the statements must be idempotent per key, as an incremental step already is: rerunning the batches
// above the watermark gives the same rows), no further unit starts, and the watermark stays, so the next run
// runs the whole step again.
func (r *runner) splitStep(ctx context.Context, s step, hi int64) error {
	started := time.Now()
	seq, err := r.logStart(ctx, s.kind, s.name)
	if err != nil {
		return err
	}
	var from, rows int64
	var rebuild bool
	var keys []unitKey
	var done, sessions int
	var mu sync.Mutex // guards keys, rows, done
	progress := func() []any {
		mu.Lock()
		defer mu.Unlock()
		return []any{"units_done", done, "units", len(keys)}
	}
	defer r.stillRunning(s.kind, s.name, started, progress)()
	res := func() StepResult {
		return StepResult{Kind: s.kind, Name: s.name, BatchFrom: from, BatchTo: hi, Rows: rows, Started: started, Duration: time.Since(started), sha: s.sha}
	}
	fail := func(err error) error {
		r.logEnd(seq, res(), err)
		return err
	}

	var allKeys []string
	var failed *StepError
	err = r.stepTx(ctx, func(tx pgx.Tx) error {
		var err error
		if from, rebuild, err = stepMark(ctx, tx, s.name); err != nil {
			return err
		}
		k, a, err := splitKeys(ctx, tx, s, r.args(from, hi, rebuild))
		if err == nil && r.citus {
			k, err = citusUnits(ctx, tx, s.split.name, k, a)
		}
		mu.Lock()
		keys, allKeys = k, a
		mu.Unlock()
		if err != nil {
			failed = &StepError{File: s.name, Line: s.split.line, What: "the -- split: query", Err: err}
		}
		return err
	})
	if err != nil {
		return fail(stepFailure(s.name, failed, err))
	}

	sessions = r.sessions(len(keys))
	if len(keys) > 0 {
		var unitErr *StepError
		next := 0
		take := func() (unitKey, bool) { // the next key, unless every key was taken or a unit failed
			mu.Lock()
			defer mu.Unlock()
			if next == len(keys) || unitErr != nil {
				return unitKey{}, false
			}
			next++
			return keys[next-1], true
		}
		// Every session is taken before the first unit starts; fewer than asked for (a busy pool) just run
		// more units each.
		conns, err := r.acquire(ctx, sessions)
		if len(conns) == 0 {
			return fail(fmt.Errorf("step %s: connect a session for its units: %w", s.name, err))
		}
		if err != nil {
			r.log.Warn("refresh step runs on fewer sessions", "step", s.name, "sessions", len(conns), "err", err)
		}
		sessions = len(conns)
		var wg sync.WaitGroup
		for _, conn := range conns {
			wg.Go(func() {
				defer conn.Release()
				for {
					key, ok := take()
					if !ok {
						return
					}
					t0 := time.Now()
					n, err := r.unit(ctx, conn, s, key, from, hi, rebuild)
					r.log.Debug("refresh unit", "step", s.name, s.split.name, key.text(), "rows", n, "ms", time.Since(t0).Milliseconds(), "failed", err != nil)
					mu.Lock()
					if err != nil {
						if unitErr == nil {
							unitErr = err
						}
					} else {
						rows += n
						done++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if unitErr != nil {
			unitErr.Done, unitErr.Units = done, len(keys)
			return fail(unitErr)
		}
	}

	err = r.stepTx(ctx, func(tx pgx.Tx) error {
		if rebuild {
			// What the units did not cover: rows of keys the split query no longer returns (a customer whose
			// records went away), but for the keys of units that committed in an earlier attempt at this
			// rebuild. Identifiers went through pgx.Identifier.Sanitize.
			var earlier []string
			if err := tx.QueryRow(ctx, `select coalesce(array_agg(unit_key), '{}') from elt.refresh_units where step = $1`, s.name).Scan(&earlier); err != nil {
				return err
			}
			keep := arrayLiteral(append(slices.Clone(allKeys), earlier...))
			for _, table := range s.owned() {
				if _, err := tx.Exec(ctx, "delete from "+table+" where not ("+s.split.column+" = any(@keys))", pgx.QueryExecModeExec, pgx.NamedArgs{"keys": keep}); err != nil {
					failed = &StepError{File: s.name, Line: s.split.line, What: "deleting the rows of keys the -- split: query no longer returns", Err: err}
					return err
				}
			}
		}
		if err := analyzeRebuilt(ctx, tx, s, rows, rebuild); err != nil {
			failed = &StepError{File: s.name, Line: 1, Err: err}
			return err
		}
		if _, err := tx.Exec(ctx, `delete from elt.refresh_units where step = $1`, s.name); err != nil {
			return err
		}
		return setWatermark(ctx, tx, s.name, hi)
	})
	if err != nil {
		return fail(stepFailure(s.name, failed, err))
	}
	r.logEnd(seq, res(), nil)
	r.log.Info(s.kind, "step", s.name, "batches", fmt.Sprintf("(%d,%d]", from, hi), "rebuild", rebuild, "rows", rows,
		"units", len(keys), "sessions", sessions, "ms", time.Since(started).Milliseconds())
	return nil
}

// splitKeys runs the split query of s and returns its units in the order of their first row, and every key.
// The query returns a key per row, and optionally a second column: keys with the same value there form one
// unit (several small keys in one transaction); without it every key is a unit. A NULL key is an error: the
// rows it stands for would be in no unit.
func splitKeys(ctx context.Context, tx pgx.Tx, s step, args pgx.NamedArgs) ([]unitKey, []string, error) {
	// "\n" before the closing parenthesis: a trailing -- comment in the query stays a comment. Text results,
	// so that every key type reads the same way.
	rows, err := tx.Query(ctx, "select * from (\n"+s.split.query+"\n) as q", pgx.QueryExecModeExec, pgx.QueryResultFormats{pgx.TextFormatCode}, args)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	if n := len(rows.FieldDescriptions()); n != 1 && n != 2 {
		return nil, nil, fmt.Errorf("it returns %d columns: want the %s (and optionally the unit it belongs to)", n, s.split.name)
	}
	var units []unitKey
	var all []string
	seen := map[string]bool{}
	unitOf := map[string]int{}
	for rows.Next() {
		raw := rows.RawValues()
		if raw[0] == nil {
			return nil, nil, fmt.Errorf("it returned a NULL %s: the rows it stands for would be in no unit; fix those rows, or leave NULL out of the query and out of the step", s.split.name)
		}
		key := string(raw[0])
		if seen[key] {
			continue
		}
		seen[key] = true
		all = append(all, key)
		group := key
		if len(raw) == 2 {
			if raw[1] == nil {
				return nil, nil, fmt.Errorf("it returned a NULL unit for %s %s", s.split.name, key)
			}
			group = "\x00" + string(raw[1])
		}
		i, ok := unitOf[group]
		if !ok {
			i = len(units)
			unitOf[group] = i
			units = append(units, unitKey{})
		}
		units[i].keys = append(units[i].keys, key)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for i := range units {
		units[i].array = arrayLiteral(units[i].keys)
	}
	return units, all, nil
}

// citusUnits regroups the keys of a split step by the shard that holds them, on a Citus coordinator whose
// tables are distributed by the split column: each statement of a unit then goes to one group of co-located
// shards, as Citus plans a statement over several shards only for a narrower SQL than the project's steps
// use. The units follow the split query's order of their first key; without a table distributed by column,
// units stays as the query grouped them.
func citusUnits(ctx context.Context, tx pgx.Tx, column string, units []unitKey, keys []string) ([]unitKey, error) {
	rows, err := tx.Query(ctx, `
select pg_catalog.get_shard_id_for_distribution_column(d.logicalrelid, u.k)
from pg_catalog.unnest($2::text[]) with ordinality as u(k, i)
cross join (select p.logicalrelid
            from pg_catalog.pg_dist_partition as p
            where p.partmethod = 'h' and pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) = $1
            order by p.logicalrelid::oid
            limit 1) as d
order by u.i`, column, keys)
	if err != nil {
		return nil, fmt.Errorf("group the keys by the Citus shard that holds them: %w", err)
	}
	shards, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("group the keys by the Citus shard that holds them: %w", err)
	}
	if len(shards) == 0 {
		return units, nil
	}
	var out []unitKey
	unitOf := map[int64]int{}
	for i, key := range keys {
		j, ok := unitOf[shards[i]]
		if !ok {
			j = len(out)
			unitOf[shards[i]] = j
			out = append(out, unitKey{})
		}
		out[j].keys = append(out[j].keys, key)
	}
	for i := range out {
		out[i].array = arrayLiteral(out[i].keys)
	}
	return out, nil
}

// unit runs the statements of split step s for one unit of keys in one transaction on conn, and returns the
// rows they wrote.
func (r *runner) unit(ctx context.Context, conn *pgxpool.Conn, s step, key unitKey, from, hi int64, rebuild bool) (int64, *StepError) {
	args := r.args(from, hi, rebuild)
	args["tenants"] = key.array
	var rows int64
	var failed *StepError
	err := r.inTx(ctx, conn, func(tx pgx.Tx) error {
		// A unit's commit does not wait for its WAL to reach disk: the step's last transaction, which moves
		// the watermark, waits for all of it. A crash before that loses at most units that the next run,
		// starting from the same watermark, does again (with their elt.refresh_units rows, which go with
		// them). Not on Citus: there a unit's rows commit on the workers and its elt.refresh_units rows on
		// the coordinator, so a coordinator crash could keep the rows and lose the record of them.
		if !r.citus {
			if _, err := tx.Exec(ctx, `select pg_catalog.set_config('synchronous_commit', 'off', true)`); err != nil {
				return err
			}
		}
		if rebuild {
			// The unit's keys' rows only, with DELETE (see step): readers keep seeing them until the unit
			// commits.
			for _, table := range s.rebuild {
				if _, err := tx.Exec(ctx, "delete from "+table+" where "+s.split.column+" = any(@tenants)", pgx.QueryExecModeExec, args); err != nil {
					return err
				}
			}
		}
		if rows, failed = execStatements(ctx, tx, s, args); failed != nil {
			return failed.Err
		}
		if rebuild {
			// Remembered with the unit's rows: if this rebuild stops before its end and runs again, its split
			// query may no longer return these keys (a step that empties its queue per unit), and the end of
			// that rebuild must keep their rows.
			if _, err := tx.Exec(ctx, `insert into elt.refresh_units (step, unit_key) select $1, unnest($2::text[]) on conflict do nothing`, s.name, key.keys); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if failed == nil {
			failed = &StepError{File: s.name, Line: 1, Err: err}
		}
		failed.Unit = s.split.name + " " + key.text()
		return 0, failed
	}
	return rows, nil
}
