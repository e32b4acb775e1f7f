package tenant

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Usage is a short summary of a customer's recent product usage: what the demo prints for each tenant.
type Usage struct {
	From, To    time.Time      // UTC days covered (inclusive); zero when there is no data
	ActiveUsers int64          // distinct users with an event in [From, To]
	Events      int64          // events in [From, To]
	TopFeatures []FeatureCount // most used features in [From, To], most used first
}

// FeatureCount is a feature and its events.
type FeatureCount struct {
	Feature string
	Events  int64
}

// usageQueries read the same numbers as a tenant (through analytics, no customer named) or as the owner
// (from marts, for one customer). The window is the last `days` days ending on the customer's latest day with
// data, not on today's date, so the numbers do not depend on when they are read.
var usageQueries = map[bool]struct{ window, totals, top string }{
	true: { // as the tenant
		window: `select max(day) from analytics.active_users_daily`,
		totals: `select (select count(distinct user_id) from analytics.user_activity_daily where day between $1 and $2),
		                (select coalesce(sum(events), 0)::bigint from analytics.active_users_daily where day between $1 and $2)`,
		top: `select feature, sum(events)::bigint from analytics.feature_usage_daily
		      where day between $1 and $2 group by feature order by 2 desc, 1 limit $3`,
	},
	false: { // as the owner, customer in the last parameter ($1 of window, $3 of totals, $4 of top)
		window: `select max(day) from marts.active_users_daily where customer_id = $1`,
		totals: `select (select count(distinct user_id) from marts.rollup_user_day where customer_id = $3 and day between $1 and $2),
		                (select coalesce(sum(events), 0)::bigint from marts.active_users_daily where customer_id = $3 and day between $1 and $2)`,
		top: `select feature, sum(events)::bigint from marts.feature_usage_daily
		      where customer_id = $4 and day between $1 and $2 group by feature order by 2 desc, 1 limit $3`,
	},
}

// Querier is what the usage queries need: a *pgx.Conn, a pgxpool.Pool or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// TenantUsage reads the usage of the last days days as the tenant logged in on q sees it (no customer named).
func TenantUsage(ctx context.Context, q Querier, days, top int) (Usage, error) {
	return usage(ctx, q, true, "", days, top)
}

// OwnerUsage reads the same numbers as TenantUsage for customer, from the private marts, as elt_owner sees them.
func OwnerUsage(ctx context.Context, q Querier, customer string, days, top int) (Usage, error) {
	return usage(ctx, q, false, customer, days, top)
}

func usage(ctx context.Context, q Querier, asTenant bool, customer string, days, top int) (Usage, error) {
	qs := usageQueries[asTenant]
	var u Usage
	// withCustomer appends the customer to a query's arguments when reading as the owner.
	withCustomer := func(args ...any) []any {
		if !asTenant {
			args = append(args, customer)
		}
		return args
	}
	var last *time.Time
	if err := q.QueryRow(ctx, qs.window, withCustomer()...).Scan(&last); err != nil {
		return u, fmt.Errorf("read usage window: %w", err)
	}
	if last == nil {
		return u, nil
	}
	u.To = *last
	u.From = last.AddDate(0, 0, -(days - 1))
	if err := q.QueryRow(ctx, qs.totals, withCustomer(u.From, u.To)...).Scan(&u.ActiveUsers, &u.Events); err != nil {
		return u, fmt.Errorf("read usage totals: %w", err)
	}
	rows, err := q.Query(ctx, qs.top, withCustomer(u.From, u.To, top)...)
	if err != nil {
		return u, fmt.Errorf("read top features: %w", err)
	}
	u.TopFeatures, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (FeatureCount, error) {
		var f FeatureCount
		err := r.Scan(&f.Feature, &f.Events)
		return f, err
	})
	if err != nil {
		return u, fmt.Errorf("read top features: %w", err)
	}
	return u, nil
}
