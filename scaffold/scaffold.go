package scaffold

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier runs queries: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNoTable is the error of Profile for a staging table that does not exist.
var ErrNoTable = errors.New("no staging table")

// ErrEmpty is the error of Profile for a staging table without records.
var ErrEmpty = errors.New("empty staging table")

// The JSON columns of a staging table that Profile walks.
const (
	Record = "record" // the record as the API sent it
	Parent = "parent" // the parent record of a child resource (null otherwise)
)

// Notes say how Key.SQLType was guessed when it is not the plain type of the JSON values.
const (
	NoteISO         = "ISO-8601"           // strings that look like ISO-8601 timestamps
	NoteEpochSecs   = "epoch seconds"      // 10-digit integers
	NoteEpochMillis = "epoch milliseconds" // 13-digit integers
	NoteMixed       = "mixed types"        // values of more than one JSON type (nulls aside)
	NoteAlwaysNull  = "always null"        // no value but null in the sample
)

// isoPattern is what a string must start with to be guessed a timestamp.
const isoPattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}`

// exampleBytes is the longest example kept (of its JSON text).
const exampleBytes = 200

// Report is what a sample of a staging table holds.
type Report struct {
	Table     string    // the staging table, without the schema
	Records   int64     // records sampled: the newest ones, by staging id
	Parents   int64     // sampled records that have a parent record
	SampledAt time.Time // when
	Keys      []Key     // keys of record, then of parent, each by path
}

// Key is what the sample holds under one key path of record or parent.
type Key struct {
	Column   string      // Record or Parent
	Path     []string    // the keys from the top of the document: one, or two for a key of a nested object
	Types    []TypeCount // the JSON types seen, null included, most frequent first
	Present  int64       // values that are not null
	Nulls    int64       // JSON nulls
	Missing  int64       // sampled records without the key (or whose outer value is not an object)
	NullRate float64     // (Nulls + Missing) / Report.Records
	Example  string      // the newest value that is not null, as JSON text (cut at 200 bytes)
	SQLType  string      // the column type the values suggest: text, bigint, numeric, boolean, timestamptz, jsonb
	Note     string      // how SQLType was guessed when it is not plain (NoteISO, NoteEpochSecs, ...), or ""
}

// TypeCount is how many values of one JSON type a key holds.
type TypeCount struct {
	Type  string // string, number, boolean, object, array or null
	Count int64
}

// Name is the key path written with dots: outer.inner.
func (k Key) Name() string { return strings.Join(k.Path, ".") }

// Is reports whether k is the key path of column.
func (k Key) Is(column string, path []string) bool {
	return k.Column == column && slices.Equal(k.Path, path)
}

// Find returns the key path of column, or nil when the sample never had it.
func (r *Report) Find(column string, path []string) *Key {
	for i := range r.Keys {
		if r.Keys[i].Is(column, path) {
			return &r.Keys[i]
		}
	}
	return nil
}

// profileSQL walks the newest $1 records of a staging table (%s) in one pass: every key path of record and
// parent, with per-type counts, the counts that tell timestamps and integers apart ($2: the ISO-8601 pattern),
// and the newest example ($3 bytes at most). The totals row comes out even when no record has a key.
const profileSQL = `
with sample as (
    select s.id, s.record, s.parent
    from %s as s
    order by s.id desc
    limit $1
),
docs as (
    select 'record' as col, id, record as doc from sample
    union all
    select 'parent', id, parent from sample where jsonb_typeof(parent) = 'object'
),
top as (
    select d.col, d.id, array[kv.key] as path, kv.value
    from docs as d
    cross join lateral jsonb_each(case when jsonb_typeof(d.doc) = 'object' then d.doc else '{}'::jsonb end) as kv
),
nested as (
    select t.col, t.id, t.path || kv.key, kv.value
    from top as t
    cross join lateral jsonb_each(case when jsonb_typeof(t.value) = 'object' then t.value else '{}'::jsonb end) as kv
),
pairs as (
    select p.col, p.id, p.path, p.value, jsonb_typeof(p.value) as type,
           case when jsonb_typeof(p.value) in ('string', 'number') then p.value #>> '{}' end as scalar
    from (select * from top union all select * from nested) as p
),
keys as (
    select col, path,
           count(*) filter (where type = 'string')                                  as strings,
           count(*) filter (where type = 'string' and scalar ~ $2)                  as iso,
           count(*) filter (where type = 'number')                                  as numbers,
           count(*) filter (where type = 'number' and scalar ~ '^-?[0-9]{1,18}$')   as bigints,
           count(*) filter (where type = 'number' and scalar ~ '^[0-9]{10}$')       as epoch_secs,
           count(*) filter (where type = 'number' and scalar ~ '^[0-9]{13}$')       as epoch_millis,
           count(*) filter (where type = 'boolean')                                 as booleans,
           count(*) filter (where type = 'object')                                  as objects,
           count(*) filter (where type = 'array')                                   as arrays,
           count(*) filter (where type = 'null')                                    as nulls,
           (array_agg(left(value::text, $3) order by id desc) filter (where type <> 'null'))[1] as example
    from pairs
    group by col, path
)
select n.records, n.parents, k.col, k.path, coalesce(k.strings, 0), coalesce(k.iso, 0), coalesce(k.numbers, 0),
       coalesce(k.bigints, 0), coalesce(k.epoch_secs, 0), coalesce(k.epoch_millis, 0), coalesce(k.booleans, 0),
       coalesce(k.objects, 0), coalesce(k.arrays, 0), coalesce(k.nulls, 0), k.example
from (select count(*) as records, count(*) filter (where jsonb_typeof(parent) = 'object') as parents from sample) as n
left join keys as k on true`

// counts are the counts of one key path that the guess reads.
type counts struct {
	strings, iso, numbers, bigints, epochSecs, epochMillis, booleans, objects, arrays, nulls int64
}

// Profile samples the newest records of staging.table, at most sample of them, and reports every key path of
// their record and parent columns. It returns an error wrapping ErrNoTable when the table does not exist and
// ErrEmpty when it has no records.
func Profile(ctx context.Context, q Querier, table string, sample int) (*Report, error) {
	if sample <= 0 {
		return nil, fmt.Errorf("profile staging.%s: the sample must be at least 1 record, not %d", table, sample)
	}
	ident := pgx.Identifier{"staging", table}.Sanitize()
	var exists bool
	if err := q.QueryRow(ctx, `select to_regclass($1) is not null`, ident).Scan(&exists); err != nil {
		return nil, fmt.Errorf("check table staging.%s: %w", table, err)
	}
	if !exists {
		have, err := stagingTables(ctx, q)
		if err != nil {
			return nil, err
		}
		list := "no tables"
		if len(have) > 0 {
			list = strings.Join(have, ", ")
		}
		return nil, fmt.Errorf("%w %s: run elt extract first; staging has: %s", ErrNoTable, table, list)
	}
	rep := &Report{Table: table, SampledAt: time.Now()}
	rows, err := q.Query(ctx, fmt.Sprintf(profileSQL, ident), sample, isoPattern, exampleBytes)
	if err != nil {
		return nil, fmt.Errorf("profile staging.%s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			col     *string
			path    []string
			c       counts
			example *string
		)
		if err := rows.Scan(&rep.Records, &rep.Parents, &col, &path, &c.strings, &c.iso, &c.numbers, &c.bigints,
			&c.epochSecs, &c.epochMillis, &c.booleans, &c.objects, &c.arrays, &c.nulls, &example); err != nil {
			return nil, fmt.Errorf("profile staging.%s: %w", table, err)
		}
		if col == nil {
			continue // the totals row of a sample without keys
		}
		k := Key{Column: *col, Path: path, Nulls: c.nulls}
		k.Present = c.strings + c.numbers + c.booleans + c.objects + c.arrays
		k.Missing = rep.Records - k.Present - k.Nulls
		k.NullRate = float64(k.Nulls+k.Missing) / float64(rep.Records)
		if example != nil {
			k.Example = *example
		}
		for _, tc := range []TypeCount{{"string", c.strings}, {"number", c.numbers}, {"boolean", c.booleans},
			{"object", c.objects}, {"array", c.arrays}, {"null", c.nulls}} {
			if tc.Count > 0 {
				k.Types = append(k.Types, tc)
			}
		}
		slices.SortStableFunc(k.Types, func(a, b TypeCount) int { return cmp.Compare(b.Count, a.Count) })
		k.SQLType, k.Note = guess(c)
		rep.Keys = append(rep.Keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("profile staging.%s: %w", table, err)
	}
	if rep.Records == 0 {
		return nil, fmt.Errorf("%w staging.%s: run elt extract first (elt status shows how its resource's last run ended)", ErrEmpty, table)
	}
	slices.SortFunc(rep.Keys, func(a, b Key) int {
		if a.Column != b.Column {
			if a.Column == Record {
				return -1
			}
			return 1
		}
		return slices.Compare(a.Path, b.Path)
	})
	return rep, nil
}

// stagingTables lists the tables of schema staging.
func stagingTables(ctx context.Context, q Querier) ([]string, error) {
	rows, err := q.Query(ctx, `select c.relname::text
from pg_catalog.pg_class as c
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
where n.nspname = 'staging' and c.relkind in ('r', 'p')
order by 1`)
	if err != nil {
		return nil, fmt.Errorf("list staging tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list staging tables: %w", err)
	}
	return names, nil
}

// guess is the column type that the values of one key suggest, and how it was guessed.
func guess(c counts) (sqlType, note string) {
	present := c.strings + c.numbers + c.booleans + c.objects + c.arrays
	switch {
	case present == 0:
		return "text", NoteAlwaysNull
	case c.strings == present && c.iso == present:
		return "timestamptz", NoteISO
	case c.strings == present:
		return "text", ""
	case c.numbers == present && c.epochMillis == present:
		return "timestamptz", NoteEpochMillis
	case c.numbers == present && c.epochSecs == present:
		return "timestamptz", NoteEpochSecs
	case c.numbers == present && c.bigints == present:
		return "bigint", ""
	case c.numbers == present:
		return "numeric", ""
	case c.booleans == present:
		return "boolean", ""
	case c.objects+c.arrays == present:
		return "jsonb", ""
	case c.objects+c.arrays > 0:
		return "jsonb", NoteMixed
	}
	return "text", NoteMixed
}

// WriteReport writes the report as an aligned table: one line per key path.
func WriteReport(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "staging.%s: %d records sampled (the newest), %d with a parent record, on %s\n\n",
		r.Table, r.Records, r.Parents, r.SampledAt.UTC().Format("2006-01-02 15:04:05Z07:00"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COLUMN\tKEY\tTYPES\tNULL\tGUESS\tEXAMPLE")
	for _, k := range r.Keys {
		guess := k.SQLType
		if k.Note != "" {
			guess += " (" + k.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Column, oneLine(k.Name()), typesText(k.Types, true),
			percent(k.NullRate), guess, shorten(k.Example, 60))
	}
	return tw.Flush()
}

// typesText lists the JSON types, with their counts when withCounts.
func typesText(types []TypeCount, withCounts bool) string {
	parts := make([]string, 0, len(types))
	for _, t := range types {
		if withCounts {
			parts = append(parts, t.Type+" "+strconv.FormatInt(t.Count, 10))
		} else {
			parts = append(parts, t.Type)
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// percent writes a rate as a percentage: whole when it is, else with one decimal.
func percent(rate float64) string {
	p := rate * 100
	if p == float64(int64(p)) {
		return strconv.FormatInt(int64(p), 10) + "%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

// shorten cuts s to at most n runes, marking the cut, and puts it on one line.
func shorten(s string, n int) string {
	s = oneLine(s)
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// oneLine replaces control characters (newlines, tabs) by spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}
