// Package citus tells whether a database is a Citus coordinator. The few places where elt needs other SQL on
// Citus than on PostgreSQL ask it: elt migrate (migrate/citus.go) and the tenant layer (tenant/layer.go).
package citus

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Querier is what Installed needs: a connection, a pool or a transaction.
type Querier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

// Installed reports whether the database has the citus extension.
func Installed(ctx context.Context, q Querier) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `select exists (select from pg_catalog.pg_extension where extname = 'citus')`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look for the citus extension: %w", err)
	}
	return ok, nil
}
