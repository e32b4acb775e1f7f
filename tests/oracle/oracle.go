// Package oracle recomputes every published mart of the default project from raw staging with SQL written
// apart from the project's (oracle.sql), and compares it with what elt refresh built: the independent check
// of the marts' numbers, used on the small fixtures of package refresh and on the demo API's data.
package oracle

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/tests/pgtest"
)

//go:embed oracle.sql
var views string

// Mart is one mart compared: its table and the columns compared (all of the oracle's view).
type Mart struct {
	Table   string // schema.table of the mart
	Columns string
}

// Marts are the marts the oracle recomputes, with every column a tenant reads.
var Marts = []Mart{
	{"marts.rollup_customer_day", "customer_id, day, active_users, events, complete"},
	{"marts.rollup_user_day", "customer_id, day, user_id, events, first_at, last_at, complete"},
	{"marts.rollup_feature_day", "customer_id, day, feature, events, users, active_share, complete"},
	{"marts.feature_first_use", "customer_id, user_id, feature, first_used_at, first_used_day"},
	{"marts.feature_adoption", "customer_id, feature, adopters, adoption, median_days_to_first_use, first_used_day, new_adopters_30d"},
	{"marts.active_users_weekly", "customer_id, week, active_users, complete"},
	{"marts.active_users_monthly", "customer_id, month, active_users, complete"},
	{"marts.active_users_rolling", "customer_id, day, active_users, active_users_7d, active_users_28d, active_users_30d, dau_wau, dau_mau, complete"},
	{"marts.user_lifecycle", "customer_id, grain, period, active_users, new_users, retained_users, resurrected_users, churned_users, dormant_users, complete"},
	{"marts.retention_signup", "customer_id, cohort_day, day_number, cohort_users, retained_users, retained_unbounded, complete"},
	{"marts.retention_weekly", "customer_id, cohort_week, week_number, cohort_users, active_users, complete"},
	{"marts.user_activity", "customer_id, user_id, first_seen, last_seen, active_days, events_30d"},
}

// Compare creates the oracle's views in schema oracle (replacing an earlier one) with the clock asOf, the
// @as_of of the last refresh, and reports every mart whose rows differ from the oracle's, and a mart that is
// empty. It returns the number of rows compared.
func Compare(t testing.TB, pool *pgxpool.Pool, asOf time.Time) int {
	t.Helper()
	ctx := context.Background()
	setup := fmt.Sprintf(`drop schema if exists oracle cascade;
create schema oracle;
create function oracle.as_of() returns timestamptz language sql immutable as $$ select %s::timestamptz $$;
`, quote(asOf.UTC().Format(time.RFC3339Nano)))
	if _, err := pool.Exec(ctx, setup+views); err != nil {
		t.Fatalf("oracle: create views: %v", err)
	}
	n := 0
	for _, m := range Marts {
		name := strings.SplitN(m.Table, ".", 2)[1]
		_, want := pgtest.Rows(t, pool, "oracle."+name, m.Columns)
		_, got := pgtest.Rows(t, pool, m.Table, m.Columns)
		if len(want) == 0 {
			t.Errorf("oracle: %s is empty: nothing compared", name)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s differs from the oracle's recomputation from staging (-oracle +mart):\n%s", m.Table, diff)
		}
		n += len(want)
	}
	return n
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
