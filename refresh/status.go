package refresh

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/internal/pglock"
	"github.com/elt-dev/elt/internal/when"
)

// Status is what elt status shows about refresh: the latest run with its steps, and how fresh the marts are.
type Status struct {
	LastRun     *RunStatus `json:"last_run,omitempty"`     // nil when refresh never ran
	LastSuccess *time.Time `json:"last_success,omitempty"` // end of the latest successful run
	// MartsBatch is the highest batch the marts include (from the latest successful run); Pending counts the
	// committed batches above it, which the next refresh will process.
	MartsBatch int64 `json:"marts_batch"`
	Pending    int64 `json:"pending_batches"`
}

// RunStatus is one refresh run (a row of elt.runs) and its steps.
type RunStatus struct {
	RunID      int64        `json:"run_id"`
	Mode       string       `json:"mode"` // incremental or full
	Status     string       `json:"status"`
	StartedAt  time.Time    `json:"started_at"`
	FinishedAt *time.Time   `json:"finished_at,omitempty"`
	Rows       int64        `json:"rows"` // rows written by the transforms
	Error      string       `json:"error,omitempty"`
	Steps      []StepStatus `json:"steps"`
}

// StepStatus is one row of elt.refresh_steps.
type StepStatus struct {
	Kind      string        `json:"kind"`
	Name      string        `json:"name"`
	Status    string        `json:"status"`
	BatchFrom *int64        `json:"batch_from,omitempty"`
	BatchTo   *int64        `json:"batch_to,omitempty"`
	Rows      int64         `json:"rows"`
	Duration  time.Duration `json:"duration_ns"`
	Error     string        `json:"error,omitempty"`
}

// ReadStatus reads the refresh status, changing nothing.
func ReadStatus(ctx context.Context, pool *pgxpool.Pool) (Status, error) {
	var st Status
	var run RunStatus
	err := pool.QueryRow(ctx, `
select run_id, target,
       -- a run whose process died still says running: nobody holds the refresh lock (Lock)
       -- (advisory locks are not replicated: on a standby nobody holds it, so there it says running)
       case when status = 'running' and not pg_catalog.pg_is_in_recovery() and not `+pglock.Held("$1")+` then 'interrupted' else status end,
       started_at, finished_at, records, coalesce(error, '')
from elt.runs
where kind = 'refresh'
order by run_id desc
limit 1`, LockKey).Scan(&run.RunID, &run.Mode, &run.Status, &run.StartedAt, &run.FinishedAt, &run.Rows, &run.Error)
	switch {
	case err == pgx.ErrNoRows:
	case err != nil:
		return st, fmt.Errorf("read refresh runs: %w", err)
	default:
		st.LastRun = &run
	}
	if st.LastRun != nil {
		rows, err := pool.Query(ctx, `
select kind, name, status, batch_from, batch_to, rows,
       coalesce(finished_at - started_at, interval '0'), coalesce(error, '')
from elt.refresh_steps
where run_id = $1
order by seq`, run.RunID)
		if err != nil {
			return st, fmt.Errorf("read refresh steps: %w", err)
		}
		steps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StepStatus, error) {
			var s StepStatus
			err := r.Scan(&s.Kind, &s.Name, &s.Status, &s.BatchFrom, &s.BatchTo, &s.Rows, &s.Duration, &s.Error)
			return s, err
		})
		if err != nil {
			return st, fmt.Errorf("read refresh steps: %w", err)
		}
		st.LastRun.Steps = steps
	}
	err = pool.QueryRow(ctx, `
with ok as (
    select r.finished_at,
           (select max(s.batch_to) from elt.refresh_steps as s where s.run_id = r.run_id and s.kind = 'transform') as batch
    from elt.runs as r
    where r.kind = 'refresh' and r.status = 'succeeded'
    order by r.run_id desc
    limit 1
)
select (select finished_at from ok),
       coalesce((select batch from ok), 0),
       (select count(*) from elt.batches where batch_id > coalesce((select batch from ok), 0))`).Scan(&st.LastSuccess, &st.MartsBatch, &st.Pending)
	if err != nil {
		return st, fmt.Errorf("read refresh freshness: %w", err)
	}
	return st, nil
}

// WriteStatus prints st for people: one summary line, then the steps of the latest run.
func WriteStatus(w io.Writer, st Status, now time.Time) error {
	if st.LastRun == nil {
		_, err := fmt.Fprintf(w, "refresh: never ran (%d batches waiting)\n", st.Pending)
		return err
	}
	r := st.LastRun
	line := fmt.Sprintf("refresh: last run %d (%s) %s, started %s", r.RunID, r.Mode, r.Status, when.Ago(now, r.StartedAt))
	if r.FinishedAt != nil {
		line += fmt.Sprintf(", took %s", when.Duration(r.FinishedAt.Sub(r.StartedAt)))
	}
	line += fmt.Sprintf(", %d rows written", r.Rows)
	if st.LastSuccess != nil {
		line += fmt.Sprintf("; marts include batches up to %d (refreshed %s), %d newer batches pending", st.MartsBatch, when.Ago(now, *st.LastSuccess), st.Pending)
	} else {
		line += fmt.Sprintf("; no successful run yet, %d batches pending", st.Pending)
	}
	if _, err := fmt.Fprintln(w, line); err != nil {
		return err
	}
	if r.Error != "" {
		if _, err := fmt.Fprintf(w, "  error: %s\n", r.Error); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  STEP\tKIND\tSTATUS\tBATCHES\tROWS\tTIME")
	for _, s := range r.Steps {
		batches := "-"
		if s.BatchFrom != nil && s.BatchTo != nil {
			batches = fmt.Sprintf("(%d,%d]", *s.BatchFrom, *s.BatchTo)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.Kind, s.Status, batches, s.Rows, s.Duration.Round(time.Millisecond))
	}
	return tw.Flush()
}
