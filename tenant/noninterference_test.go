package tenant_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/elt-dev/elt/tenant"
	"github.com/elt-dev/elt/tenant/tenanttest"
	"github.com/elt-dev/elt/tests/pgtest"
)

// The non-interference test: two clusters that went through the same steps and differ only in other
// customers' data (their row counts, or their values) must look exactly the same to tenant cus_0001, whatever
// it observes: results and errors of queries on everything it can read, EXPLAIN output (rows, costs, widths,
// and actual rows) of a battery of queries, every catalog relation it may read, every function without
// arguments it may call, and the size and statistics functions on every relation it can name. Each variant
// runs in a cluster of its own (autovacuum off, so statistics change only when elt analyzes), because
// cluster-wide counters (transaction ids, WAL positions) are part of what must not show.

// tenantRoles are fixed login names, so that both clusters have the same catalog names.
var tenantRoles = map[string]string{
	"cus_0001": "tenant_00000000000000a1",
	"cus_0002": "tenant_00000000000000a2",
	"cus_0003": "tenant_00000000000000a3",
}

const tenantPassword = "non-interference-password-0123456789"

// variant builds a cluster with the three customers' data (others scaled and mutated as asked), their
// tenant logins and fresh statistics, and returns a connection as cus_0001 and the database name. weaken, if
// not empty, runs as a superuser first (to show that the battery sees what hardening hides).
func variant(t *testing.T, scale int, mutate, weaken string) (*pgx.Conn, string) {
	t.Helper()
	db := pgtest.NewServer(t, map[string]string{"autovacuum": "off"}).New(t, pgtest.DefaultProject(t))
	if weaken != "" {
		if _, err := db.Pool.Exec(context.Background(), weaken); err != nil {
			t.Fatal(err)
		}
	}
	tenanttest.SeedVariant(t, db, scale, mutate)
	b := tenanttest.Open(t, db)
	for _, c := range tenanttest.Customers {
		b.AddWith(t, c, tenant.AddOptions{Role: tenantRoles[c], Password: tenantPassword})
	}
	if _, err := db.Pool.Exec(context.Background(), "analyze"); err != nil {
		t.Fatal(err)
	}
	return b.Connect(t, tenanttest.Login{Customer: "cus_0001", Role: tenantRoles["cus_0001"], Password: tenantPassword}), db.Name
}

func TestNonInterference(t *testing.T) {
	t.Parallel()
	base, baseDB := variant(t, 1, "", "")
	want := observe(t, base, baseDB)
	t.Logf("%d observations as cus_0001", len(want))
	cases := []struct {
		name   string
		scale  int
		mutate string
	}{
		// Four times the events of the other customers.
		{"OtherCustomersRowCounts", 4, ""},
		// The same number of rows, other values: features, users, times and properties.
		{"OtherCustomersValues", 1, `
update core.events set feature = 'other.' || md5(event_id), user_id = customer_id || '_u1',
       occurred_at = occurred_at - interval '3 days 5 hours', properties = jsonb_build_object('k', repeat('x', 500))
where customer_id <> 'cus_0001';
update core.users set name = upper(name) || repeat('!', 40), role = 'admin' where customer_id <> 'cus_0001';
update core.customers set plan = 'enterprise-plus', country = 'ZZ' where customer_id <> 'cus_0001'`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn, dbName := variant(t, c.scale, c.mutate, "")
			got := observe(t, conn, dbName)
			var diffs []string
			for _, k := range slices.Sorted(mapsKeys(want)) {
				if want[k] != got[k] {
					diffs = append(diffs, fmt.Sprintf("%s:\n%s", k, cmp.Diff(want[k], got[k])))
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					diffs = append(diffs, "only in the variant: "+k)
				}
			}
			if len(diffs) > 0 {
				t.Errorf("%d of %d observations of cus_0001 depend on the other customers' data:\n%s", len(diffs), len(want), strings.Join(diffs, "\n"))
			}
		})
	}
}

// TestNonInterferenceBatterySeesLeaks: the same battery on two clusters where PUBLIC was given back the row
// counts of pg_class and the size functions finds that the other customers' row counts show: the test above
// passes because the surfaces are closed, not because the battery looks nowhere.
func TestNonInterferenceBatterySeesLeaks(t *testing.T) {
	t.Parallel()
	const weaken = `grant select (reltuples, relpages) on pg_catalog.pg_class to public;
grant execute on function pg_catalog.pg_relation_size(regclass), pg_catalog.pg_relation_size(regclass, text) to public`
	base, baseDB := variant(t, 1, "", weaken)
	want := observe(t, base, baseDB)
	conn, dbName := variant(t, 4, "", weaken)
	got := observe(t, conn, dbName)
	var leaks []string
	for k, v := range want {
		if got[k] != v {
			leaks = append(leaks, k)
		}
	}
	sort.Strings(leaks)
	t.Logf("%d observations differ, e.g. %v", len(leaks), leaks[:min(len(leaks), 5)])
	found := false
	for _, k := range leaks {
		found = found || strings.HasPrefix(k, "pg_relation_size(core.events_00000000000000a2)")
	}
	if !found {
		t.Errorf("with pg_relation_size granted to PUBLIC, the size of another tenant's partition does not differ: the battery is blind")
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// oidTypes are the types whose values are OIDs or transaction ids, or hold them (node trees name relations by
// OID), as an SQL list.
const oidTypes = `'oid'::regtype, 'regclass'::regtype, 'regtype'::regtype, 'regproc'::regtype,
    'regprocedure'::regtype, 'regoper'::regtype, 'regoperator'::regtype, 'regnamespace'::regtype, 'regrole'::regtype,
    'regconfig'::regtype, 'regdictionary'::regtype, 'regcollation'::regtype, 'oidvector'::regtype, 'xid'::regtype,
    'xid8'::regtype, 'cid'::regtype, 'tid'::regtype, 'pg_lsn'::regtype, 'oid[]'::regtype, 'regtype[]'::regtype,
    'pg_node_tree'::regtype`

// norm (in observe) replaces what differs between two clusters but is not data: the test database's random
// name, the OIDs in TOAST relation names, and the backend slot numbers in temporary schema names.
var (
	toastName = regexp.MustCompile(`pg_toast_\d+`)
	// Temporary schemas are numbered by backend slot, whichever backend first needed one.
	tempName = regexp.MustCompile(`pg_(toast_)?temp_\d+`)
)

// excludedSettings differ between two clusters by construction (where each one listens).
var excludedSettings = []string{"port", "unix_socket_directories"}

// excludedFunctions change with the clock, at random, or with the session or the server process itself, not
// with anybody's data: timing is the channel docs/tenants.md leaves open and bounds.
var excludedFunctions = map[string]string{
	"now": "clock", "clock_timestamp": "clock", "statement_timestamp": "clock", "transaction_timestamp": "clock",
	"timeofday": "clock", "localtime": "clock", "localtimestamp": "clock", "current_time": "clock",
	"current_timestamp": "clock", "pg_postmaster_start_time": "clock", "pg_conf_load_time": "clock",
	"random": "random", "gen_random_uuid": "random", "random_normal": "random",
	"pg_backend_pid": "this session", "inet_client_port": "this session", "inet_server_port": "this server's port",
	"inet_client_addr": "this session", "inet_server_addr": "this server",
	"pg_current_logfile": "this server", "pg_get_keywords": "set-returning, static",
	"pg_prepared_statement": "this session's own statements, with the clock time they were prepared",
	"pg_show_all_settings":  "this server's port (pg_settings is observed without it)",
}

// excludedCatalogs are catalog relations observed by other means, or that hold only this session's state.
var excludedCatalogs = map[string]string{
	"pg_catalog.pg_prepared_statements": "this session's own statements, with the clock time they were prepared",
}

// observe records, as the tenant on conn, everything the battery looks at, by a stable key.
func observe(t *testing.T, conn *pgx.Conn, dbName string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	norm := func(s string) string {
		s = tempName.ReplaceAllString(strings.ReplaceAll(s, dbName, "DB"), "pg_${1}temp_N")
		return toastName.ReplaceAllString(s, "pg_toast_N")
	}
	// try runs sql and records its rows (sorted unless ordered) or its error.
	try := func(key, sql string, ordered bool) {
		rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		var lines []string
		if err == nil {
			for rows.Next() {
				vals := rows.RawValues()
				cells := make([]string, len(vals))
				for i, v := range vals {
					if v == nil {
						cells[i] = "NULL"
					} else {
						cells[i] = string(v)
					}
				}
				lines = append(lines, strings.Join(cells, "|"))
			}
			rows.Close()
			err = rows.Err()
		}
		if err != nil {
			out[key] = "ERROR " + sqlstate(err) + " " + norm(err.Error())
			return
		}
		if !ordered {
			sort.Strings(lines)
		}
		out[key] = norm(strings.Join(lines, "\n"))
	}

	// 1. Every relation the tenant can read: its rows (in the order the server returns them, and sorted),
	//    and EXPLAIN, plain and with ANALYZE (actual rows, no timing), of a battery of queries over every column.
	type column struct{ name, typ string }
	rels := map[string][]column{}
	rows, err := conn.Query(ctx, `
select c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
from pg_class as c join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0
where c.relnamespace = current_schema()::regnamespace
order by 1, a.attnum`)
	if err != nil {
		t.Fatal(err)
	}
	var rel, col, typ string
	if _, err := pgx.ForEachRow(rows, []any{&rel, &col, &typ}, func() error {
		rels[rel] = append(rels[rel], column{col, typ})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rels) < 5 {
		t.Fatalf("the tenant reads %d relations, want the project's published ones", len(rels))
	}
	explain := func(key, q string) {
		try("explain "+key, "explain (costs, verbose, format json) "+q, true)
		try("explain analyze "+key, "explain (analyze, costs, verbose, timing off, summary off, format json) "+q, true)
	}
	for _, r := range slices.Sorted(func(yield func(string) bool) {
		for k := range rels {
			if !yield(k) {
				return
			}
		}
	}) {
		ident := pgx.Identifier{r}.Sanitize()
		try("rows "+r, "select * from "+ident, true)
		try("sorted rows "+r, "select * from "+ident, false)
		explain(r+" all", "select * from "+ident)
		explain(r+" count", "select count(*) from "+ident)
		for _, c := range rels[r] {
			ci := pgx.Identifier{c.name}.Sanitize()
			k := r + "." + c.name
			explain(k+" group", "select "+ci+", count(*) from "+ident+" group by 1")
			explain(k+" distinct", "select count(distinct "+ci+") from "+ident)
			explain(k+" not null", "select * from "+ident+" where "+ci+" is not null")
			explain(k+" order", "select * from "+ident+" order by "+ci+" limit 5")
			// Range probes on the other customers' ids and on values only they have.
			explain(k+" other customer", "select * from "+ident+" where "+ci+"::text >= 'cus_0002' and "+ci+"::text < 'cus_0002~'")
			explain(k+" other feature", "select * from "+ident+" where "+ci+"::text like 'other.%'")
			explain(k+" own value", "select * from "+ident+" where "+ci+" = (select "+ci+" from "+ident+" order by 1 limit 1)")
			if strings.HasPrefix(c.typ, "timestamp") || c.typ == "date" {
				explain(k+" range", "select * from "+ident+" where "+ci+" >= '2026-11-01' and "+ci+" < '2026-11-15'")
			}
		}
	}
	explain("join events users", "select * from events as e join users as u using (user_id)")
	explain("join activity daily", "select * from user_activity as a join user_activity_daily as d using (user_id) where d.day > '2026-11-10'")

	// 2. Every relation of pg_catalog and information_schema the tenant may read, without the columns that
	//    hold OIDs or transaction ids, raw or in node trees (allocated cluster-wide, their values follow
	//    everyone's activity: see docs/tenants.md), and the planner's view of each.
	type catRel struct {
		name string
		cols []string
	}
	var cats []catRel
	rows, err = conn.Query(ctx, `
select format('%I.%I', n.nspname, c.relname),
       array(select quote_ident(a.attname) from pg_attribute as a
             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
               and has_column_privilege(c.oid, a.attnum, 'select')
               and a.atttypid not in (`+oidTypes+`)
             order by a.attnum)
from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where n.nspname in ('pg_catalog', 'information_schema') and c.relkind in ('r', 'v')
order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var cols []string
	if _, err := pgx.ForEachRow(rows, []any{&name, &cols}, func() error {
		cats = append(cats, catRel{name, cols})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cats {
		if _, skip := excludedCatalogs[c.name]; skip {
			continue
		}
		if len(c.cols) == 0 {
			try("catalog "+c.name, "select * from "+c.name, false)
			continue
		}
		where := ""
		switch c.name {
		case "pg_catalog.pg_settings":
			where = " where name not in ('" + strings.Join(excludedSettings, "', '") + "')"
		case "pg_catalog.pg_stats":
			// The statistics of the catalogs' OID columns are OIDs.
			where = ` as s where not exists (select from pg_attribute as a
				where a.attrelid = format('%I.%I', s.schemaname, s.tablename)::regclass and a.attname = s.attname
				  and a.atttypid in (` + oidTypes + `))`
		}
		try("catalog "+c.name, "select "+strings.Join(c.cols, ", ")+" from "+c.name+where, false)
		try("explain catalog "+c.name, "explain (costs, format json) select * from "+c.name, true)
	}

	// 3. Every function of pg_catalog without arguments the tenant may call, but those listed above.
	var fns []string
	rows, err = conn.Query(ctx, `
select p.proname::text from pg_proc as p
where p.pronamespace = 'pg_catalog'::regnamespace and p.pronargs = 0 and p.prokind = 'f'
  and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype, 'internal'::regtype, 'void'::regtype)
  and has_function_privilege(p.oid, 'execute')
order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	if fns, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	for _, f := range slices.Compact(fns) {
		if _, skip := excludedFunctions[f]; skip {
			continue
		}
		try("function "+f, "select * from pg_catalog."+pgx.Identifier{f}.Sanitize()+"()", false)
	}
	// And the ones revoked from PUBLIC, which must stay errors.
	for _, f := range []string{"txid_current", "pg_current_xact_id", "pg_current_wal_lsn", "pg_current_snapshot", "pg_notification_queue_usage"} {
		try("revoked function "+f, "select pg_catalog."+f+"()", false)
	}

	// 4. Size, statistics and partition functions on every relation the tenant can name in the project's
	//    schemas (its own partitions, the others', the defaults, the parents), and its own views.
	// Relations are named by a lookup in pg_class, which needs no usage on their schema.
	var targets []string
	rows, err = conn.Query(ctx, `
select format('%I.%I', n.nspname, c.relname) from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where n.nspname in ('core', 'marts', 'staging', 'elt') or n.nspname ~ '^tenant_' order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	if targets, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(targets) < 50 {
		t.Fatalf("the tenant can name %d relations, want the partitions of every tenant", len(targets))
	}
	for _, fn := range []string{"pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
		"pg_relation_filenode", "pg_stat_get_live_tuples", "pg_stat_get_numscans", "pg_stat_get_tuples_inserted",
		"pg_get_partition_constraintdef", "pg_partition_root", "pg_relation_is_publishable"} {
		for _, r := range targets {
			schema, name, _ := strings.Cut(r, ".")
			byName := fmt.Sprintf("(select c.oid from pg_class as c join pg_namespace as n on n.oid = c.relnamespace where n.nspname = %s and c.relname = %s)",
				quoteLiteral(strings.Trim(schema, `"`)), quoteLiteral(strings.Trim(name, `"`)))
			try(fmt.Sprintf("%s(%s)", fn, r), fmt.Sprintf("select pg_catalog.%s(%s)", fn, byName), false)
		}
	}
	for _, r := range targets {
		try("explain "+r, "explain select * from "+r, false)
		try("select "+r, "select count(*) from "+r, false)
	}
	try("database size", "select pg_database_size(current_database())", false)
	try("pg_partition_tree", "select relid::text, level from pg_partition_tree('core.events')", false)
	return out
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
