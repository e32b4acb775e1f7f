package extract

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/internal/pglock"
	"github.com/elt-dev/elt/internal/when"
)

// Status is what elt status shows about extract: every source's freshness and resources. (Refresh has a
// status of its own: refresh.ReadStatus.)
type Status struct {
	Sources []SourceStatus `json:"sources"`
}

// SourceStatus is the freshness of one source, for elt status.
type SourceStatus struct {
	Source string `json:"source"`
	// Configured is false for a source found in the run log but not in the config file.
	Configured bool `json:"configured"`
	// LastSuccess is when the last successful run finished: the source's freshness.
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// LastRun is the most recent run, whatever its outcome.
	LastRun   *RunStatus       `json:"last_run,omitempty"`
	Resources []ResourceStatus `json:"resources"`
}

// RunStatus is one row of elt.runs.
type RunStatus struct {
	RunID      int64      `json:"run_id"`
	Status     string     `json:"status"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Pages      int64      `json:"pages"`
	Records    int64      `json:"records"`
	Bytes      int64      `json:"bytes"`
	Retries    int64      `json:"retries"`
	Error      string     `json:"error,omitempty"`
}

// ResourceStatus is the state of one resource of a source.
type ResourceStatus struct {
	Resource string `json:"resource"`
	// Cursor is the committed incremental cursor (the highest one for a child resource).
	Cursor string `json:"cursor,omitempty"`
	// Scopes counts the parents with a cursor of their own (child resources).
	Scopes int `json:"scopes,omitempty"`
	// LastBatch is when its last batch committed.
	LastBatch *time.Time `json:"last_batch,omitempty"`
	// Rejects counts its records in elt.rejects.
	Rejects int64 `json:"rejects"`
}

// ReadStatus reads the run log, cursors and batches; cfg (optional) adds the sources that never ran.
func ReadStatus(ctx context.Context, pool *pgxpool.Pool, cfg *Config) (*Status, error) {
	sources, err := readSources(ctx, pool, cfg)
	if err != nil {
		return nil, err
	}
	return &Status{Sources: sources}, nil
}

func readSources(ctx context.Context, pool *pgxpool.Pool, cfg *Config) ([]SourceStatus, error) {
	bySource := map[string]*SourceStatus{}
	get := func(name string) *SourceStatus {
		s := bySource[name]
		if s == nil {
			s = &SourceStatus{Source: name}
			bySource[name] = s
		}
		return s
	}
	resOf := func(s *SourceStatus, name string) *ResourceStatus {
		for i := range s.Resources {
			if s.Resources[i].Resource == name {
				return &s.Resources[i]
			}
		}
		s.Resources = append(s.Resources, ResourceStatus{Resource: name})
		return &s.Resources[len(s.Resources)-1]
	}
	if cfg != nil {
		for _, src := range cfg.Sources {
			s := get(src.Name)
			s.Configured = true
			for _, r := range src.Resources {
				resOf(s, r.Name)
			}
		}
	}
	rows, err := pool.Query(ctx, `
		select distinct on (target) target, run_id,
		       -- a run whose process died still says running: nobody holds its source's lock (lockSource)
		       -- (advisory locks are not replicated: on a standby nobody holds it, so there it says running)
		       case when status = 'running' and not pg_catalog.pg_is_in_recovery() and not `+pglock.Held(`'elt:extract:' || target`)+` then 'interrupted' else status end,
		       started_at, finished_at, pages, records, bytes, retries, coalesce(error, ''),
		       (select max(s.finished_at) from elt.runs s where s.kind = 'extract' and s.target = r.target and s.status = 'succeeded')
		from elt.runs r where kind = 'extract'
		order by target, run_id desc`)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	for rows.Next() {
		var target string
		var r RunStatus
		var last *time.Time
		if err := rows.Scan(&target, &r.RunID, &r.Status, &r.StartedAt, &r.FinishedAt, &r.Pages, &r.Records, &r.Bytes, &r.Retries, &r.Error, &last); err != nil {
			return nil, fmt.Errorf("read runs: %w", err)
		}
		s := get(target)
		s.LastRun, s.LastSuccess = &r, last
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	rows, err = pool.Query(ctx, `select source, resource, value from elt.cursors`)
	if err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	for rows.Next() {
		var source, resource, value string
		if err := rows.Scan(&source, &resource, &value); err != nil {
			return nil, fmt.Errorf("read cursors: %w", err)
		}
		r := resOf(get(source), resource)
		r.Scopes++
		if r.Cursor == "" || compareCursor(value, r.Cursor) > 0 {
			r.Cursor = value
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	rows, err = pool.Query(ctx, `
		select source, resource, max(committed_at), 0::bigint from elt.batches group by source, resource
		union all
		select source, resource, null, count(*) from elt.rejects group by source, resource`)
	if err != nil {
		return nil, fmt.Errorf("read batches: %w", err)
	}
	for rows.Next() {
		var source, resource string
		var last *time.Time
		var rejects int64
		if err := rows.Scan(&source, &resource, &last, &rejects); err != nil {
			return nil, fmt.Errorf("read batches: %w", err)
		}
		r := resOf(get(source), resource)
		if last != nil {
			r.LastBatch = last
		}
		r.Rejects += rejects
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read batches: %w", err)
	}
	var out []SourceStatus
	for _, s := range bySource {
		for i := range s.Resources {
			if s.Resources[i].Scopes == 1 {
				s.Resources[i].Scopes = 0
			}
		}
		out = append(out, *s)
	}
	order := map[string]int{}
	if cfg != nil {
		for i, src := range cfg.Sources {
			order[src.Name] = i + 1
		}
	}
	sort.Slice(out, func(i, j int) bool {
		oi, oj := order[out[i].Source], order[out[j].Source]
		if oi != oj {
			if oi == 0 || oj == 0 {
				return oi != 0
			}
			return oi < oj
		}
		return out[i].Source < out[j].Source
	})
	return out, nil
}

// WriteStatus prints the status as tables: freshness and last run per source, then its resources.
func WriteStatus(w io.Writer, status *Status, now time.Time) error {
	return writeSources(w, status.Sources, now)
}

func fresh(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	return when.Ago(now, *t)
}

func lastRun(r *RunStatus) string {
	s := fmt.Sprintf("%s %s", r.Status, when.Stamp(r.StartedAt))
	if r.FinishedAt != nil {
		s += fmt.Sprintf(", took %s", when.Duration(r.FinishedAt.Sub(r.StartedAt)))
	}
	return s
}

func oneLineErr(e string) string {
	e = strings.ReplaceAll(e, "\n", " ")
	if len(e) > 160 {
		e = e[:160] + "..."
	}
	return e
}

func writeSources(w io.Writer, st []SourceStatus, now time.Time) error {
	if len(st) == 0 {
		_, err := fmt.Fprintln(w, "No sources configured and no extract runs yet.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tFRESH AS OF\tLAST RUN\tRECORDS\tPAGES\tRETRIES\tERROR")
	for _, s := range st {
		name := s.Source
		if !s.Configured {
			name += " (not in config)"
		}
		last, records, pages, retries, errText := "-", "", "", "", ""
		if r := s.LastRun; r != nil {
			last = lastRun(r)
			records, pages, retries = fmt.Sprint(r.Records), fmt.Sprint(r.Pages), fmt.Sprint(r.Retries)
			errText = oneLineErr(r.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, fresh(s.LastSuccess, now), last, records, pages, retries, errText)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tCURSOR\tLAST BATCH\tREJECTS")
	for _, s := range st {
		for _, r := range s.Resources {
			cursor, last := "-", "no data yet"
			if r.Cursor != "" {
				cursor = r.Cursor
				if r.Scopes > 1 {
					cursor += fmt.Sprintf(" (latest of %d parents)", r.Scopes)
				}
			}
			if r.LastBatch != nil {
				last = when.Stamp(*r.LastBatch)
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%d\n", s.Source, r.Resource, cursor, last, r.Rejects)
		}
	}
	return tw.Flush()
}
