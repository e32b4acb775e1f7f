package pgtest

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Rows reads columns (an SQL select list) of relation (schema.name) as psql would print them, in UTC: the
// column names, and every row as tab-separated text (NULL as \N), sorted, so that two relations, or one
// before and after, compare as text.
func Rows(t testing.TB, pool *pgxpool.Pool, relation, columns string) (header []string, lines []string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "set timezone to 'UTC'"); err != nil {
		t.Fatal(err)
	}
	return Query(t, conn, "select "+columns+" from "+pgx.Identifier(strings.SplitN(relation, ".", 2)).Sanitize())
}

// Querier is a connection, a pool or a transaction.
type Querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

// Query runs sql with args (simple protocol, so every value prints as the session prints it) and returns the
// column names and every row as tab-separated text (NULL as \N), sorted.
func Query(t testing.TB, q Querier, sql string, args ...any) (header []string, lines []string) {
	t.Helper()
	rows, err := q.Query(context.Background(), sql, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	for _, fd := range rows.FieldDescriptions() {
		header = append(header, fd.Name)
	}
	for rows.Next() {
		var vals []string
		for _, v := range rows.RawValues() {
			if v == nil {
				vals = append(vals, `\N`)
			} else {
				vals = append(vals, string(v))
			}
		}
		lines = append(lines, strings.Join(vals, "\t"))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	sort.Strings(lines)
	return header, lines
}
