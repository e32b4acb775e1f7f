package tenant

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/project"
)

// Querier is what the queries of this package need: a *pgx.Conn, a pgxpool.Pool or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Report is what a tenant reads with the project's report query, next to what the owner reads for it.
type Report struct {
	Columns []string   // of the tenant query
	Tenant  [][]string // rows the tenant's own login read, as text ("null" for NULL)
	Owner   [][]string // rows the owner query read for the customer
}

// Same reports whether the tenant and the owner read the same rows, in any order.
func (r Report) Same() bool {
	key := func(rows [][]string) []string {
		out := make([]string, len(rows))
		for i, row := range rows {
			out[i] = strings.Join(row, "\x00")
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(r.Tenant), key(r.Owner))
}

// RunReport runs the project's report queries (tenants: report: in elt.yaml): the tenant query on asTenant,
// a connection logged in as the tenant, and the owner query on owner with @tenant set to customer. Both get
// @days. The queries are sent with the simple protocol, so @tenant is read as the key column's type.
func RunReport(ctx context.Context, proj *project.Project, asTenant, owner Querier, customer string, days int) (Report, error) {
	var rep Report
	if proj.Tenants == nil || proj.Tenants.Report == nil {
		return rep, fmt.Errorf("the project declares no report (tenants: report: tenant: and owner: in %s)", proj.ConfigPath)
	}
	tq, err := proj.ReadFile(proj.Tenants.Report.Tenant)
	if err != nil {
		return rep, fmt.Errorf("read report query: %w", err)
	}
	oq, err := proj.ReadFile(proj.Tenants.Report.Owner)
	if err != nil {
		return rep, fmt.Errorf("read report query: %w", err)
	}
	rep.Columns, rep.Tenant, err = textRows(ctx, asTenant, string(tq), pgx.NamedArgs{"days": days})
	if err != nil {
		return rep, fmt.Errorf("%s, as the tenant: %w", proj.Tenants.Report.Tenant, err)
	}
	_, rep.Owner, err = textRows(ctx, owner, string(oq), pgx.NamedArgs{"days": days, "tenant": customer})
	if err != nil {
		return rep, fmt.Errorf("%s, as the owner: %w", proj.Tenants.Report.Owner, err)
	}
	return rep, nil
}

// textRows runs sql and returns its column names and its rows as text.
func textRows(ctx context.Context, q Querier, sql string, args pgx.NamedArgs) ([]string, [][]string, error) {
	rows, err := q.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol, args)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var cols []string
	for _, f := range rows.FieldDescriptions() {
		cols = append(cols, f.Name)
	}
	var out [][]string
	for rows.Next() {
		vals := rows.RawValues()
		row := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				row[i] = "null"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	return cols, out, rows.Err()
}
