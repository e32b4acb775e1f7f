package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/internal/citus"
	"github.com/elt-dev/elt/project"
)

// Table is a table of the project's schemas partitioned by list on the tenant key. Each tenant gets one
// partition of it (named after the table and the tenant's login), and customers without a login share its
// default partition.
type Table struct {
	Schema  string
	Name    string
	Columns []string          // in order
	Types   map[string]string // column name: type as format_type shows it
	Default string            // name of its default partition ("" when it has none yet)
}

// Ident is the table's sanitized name.
func (t Table) Ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

func (t Table) String() string { return t.Schema + "." + t.Name }

// Layer is what elt builds for every tenant from the project's declarations: a schema named like the tenant's
// login, a partition of every Table, and in the schema one view per published relation that reads the listed
// columns of the tenant's own partition and nothing else. A tenant's queries therefore name only relations
// that hold its own rows: their plans, estimates, costs and statistics come from its data alone.
type Layer struct {
	Key     string             // the tenant key column
	KeyType string             // its type (format_type), the same in every table of Tables
	Tables  []Table            // partitioned by list on Key, by schema and name
	Publish []project.Relation // the declared relations
	// Customers is the relation listing known customers ("" when the project names none); Comment is the
	// comment of every tenant schema.
	Customers, Comment string
	// TimeZone is the column of Customers with each customer's time zone ("" when none is declared).
	TimeZone string
	// SHA is a hash of all of the above: a tenant whose objects were built from another SHA is rebuilt.
	SHA string
	// Citus is set on a Citus coordinator, where a tenant's views differ (viewSQL) and its login is created in
	// a transaction of its own (Add).
	Citus   bool
	schemas []string
	staging map[string]string
	keyed   []string          // project tables (not partitioned by the key) that have a Key column, sanitized
	quoted  map[string]string // every comment of the layer as an SQL literal (or null), quoted by the server once
}

// ErrNoTenants is returned when the project declares no tenants: section.
var ErrNoTenants = errors.New("the project declares no tenants (a tenants: section in elt.yaml with key and publish)")

// LoadLayer reads the project's declarations and, from the catalog, the tables partitioned by list on the
// tenant key, and checks that every published relation reads such a table and only columns it has.
func LoadLayer(ctx context.Context, q Querier, proj *project.Project) (*Layer, error) {
	if proj == nil || proj.Tenants == nil {
		return nil, ErrNoTenants
	}
	decl := proj.Tenants
	l := &Layer{Key: decl.Key, Publish: decl.Publish, Customers: decl.Customers, Comment: decl.Comment,
		TimeZone: decl.TimeZone, schemas: proj.Schemas, staging: decl.Staging}
	rows, err := q.Query(ctx, `
select n.nspname, c.relname,
       array(select a.attname::text from pg_catalog.pg_attribute as a
             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum),
       array(select pg_catalog.format_type(a.atttypid, a.atttypmod) from pg_catalog.pg_attribute as a
             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum),
       coalesce((select d.relname from pg_catalog.pg_class as d where d.oid = pt.partdefid), '')
from pg_catalog.pg_partitioned_table as pt
join pg_catalog.pg_class as c on c.oid = pt.partrelid
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
join pg_catalog.pg_attribute as k on k.attrelid = c.oid and k.attnum = pt.partattrs[0]
where n.nspname = any ($1) and pt.partstrat = 'l' and pt.partnatts = 1 and k.attname = $2 and not c.relispartition
order by 1, 2`, proj.Schemas, decl.Key)
	if err != nil {
		return nil, fmt.Errorf("read partitioned tables: %w", err)
	}
	err = forEach(rows, func(r pgx.CollectableRow) error {
		var t Table
		var types []string
		if err := r.Scan(&t.Schema, &t.Name, &t.Columns, &types, &t.Default); err != nil {
			return err
		}
		t.Types = map[string]string{}
		for i, c := range t.Columns {
			t.Types[c] = types[i]
		}
		l.Tables = append(l.Tables, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read partitioned tables: %w", err)
	}
	for _, t := range l.Tables {
		if kt := t.Types[l.Key]; l.KeyType == "" {
			l.KeyType = kt
		} else if kt != l.KeyType {
			return nil, fmt.Errorf("tenants: key %s is %s in %s but %s in %s: every table partitioned by it must give it one type",
				l.Key, l.KeyType, l.Tables[0], kt, t)
		}
	}
	for _, r := range decl.Publish {
		t := l.table(r.From)
		if t == nil {
			return nil, fmt.Errorf("tenants: publish %s: %s is not a table partitioned by list (%s) in the database: create it in a migration with partition by list (%s) and run elt migrate",
				r.Name, r.From, decl.Key, decl.Key)
		}
		for _, c := range r.Columns {
			if _, ok := t.Types[c.Name]; !ok {
				return nil, fmt.Errorf("tenants: publish %s: %s has no column %s (it has %s)", r.Name, r.From, c.Name, strings.Join(t.Columns, ", "))
			}
		}
	}
	if decl.Customers != "" && l.table(decl.Customers) == nil {
		var exists bool
		if err := q.QueryRow(ctx, `select to_regclass($1) is not null`, decl.Customers).Scan(&exists); err != nil {
			return nil, fmt.Errorf("tenants: customers: %w", err)
		}
		if !exists {
			return nil, fmt.Errorf("tenants: customers: %s does not exist (run elt migrate)", decl.Customers)
		}
	}
	rows, err = q.Query(ctx, `
select pg_catalog.format('%I.%I', n.nspname, c.relname)
from pg_catalog.pg_class as c
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
join pg_catalog.pg_attribute as a on a.attrelid = c.oid and a.attname = $2 and not a.attisdropped
where n.nspname = any ($1) and c.relkind = 'r' and not c.relispartition
order by 1`, proj.Schemas, decl.Key)
	if err != nil {
		return nil, fmt.Errorf("read tables with a %s column: %w", decl.Key, err)
	}
	err = forEach(rows, func(r pgx.CollectableRow) error {
		var name string
		if err := r.Scan(&name); err != nil {
			return err
		}
		l.keyed = append(l.keyed, name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tables with a %s column: %w", decl.Key, err)
	}
	b, err := json.Marshal(struct {
		Key, Comment string
		Tables       []Table
		Publish      []project.Relation
	}{l.Key, l.Comment, tablesForHash(l.Tables), l.Publish})
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(b)
	l.SHA = hex.EncodeToString(h[:])
	if l.Citus, err = citus.Installed(ctx, q); err != nil {
		return nil, fmt.Errorf("tenants: %w", err)
	}
	return l, nil
}

// tablesForHash leaves out what changes without changing what a tenant's objects must be (the default
// partition, made by Sync).
func tablesForHash(ts []Table) []Table {
	out := slices.Clone(ts)
	for i := range out {
		out[i].Default = ""
	}
	return out
}

func (l *Layer) table(rel string) *Table {
	for i := range l.Tables {
		if l.Tables[i].String() == rel {
			return &l.Tables[i]
		}
	}
	return nil
}

// ZoneOf returns the time zone of customer's sessions by default: its row's tenants: time_zone column of
// the customers relation, or UTC when the project declares none or the row has none.
func (l *Layer) ZoneOf(ctx context.Context, q Querier, customer string) (string, error) {
	if l == nil || l.TimeZone == "" || l.Customers == "" {
		return DefaultTimeZone, nil
	}
	rel := pgx.Identifier(strings.SplitN(l.Customers, ".", 2)).Sanitize()
	var zone *string
	err := q.QueryRow(ctx, "select "+pgx.Identifier{l.TimeZone}.Sanitize()+"::text from "+rel+" where "+
		pgx.Identifier{l.Key}.Sanitize()+"::text = $1", customer).Scan(&zone)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && (zone == nil || *zone == "")) {
		return DefaultTimeZone, nil
	}
	if err != nil {
		return "", fmt.Errorf("read the time zone of %s (tenants: time_zone: %s of %s): %w", customer, l.TimeZone, l.Customers, err)
	}
	return *zone, nil
}

// Canonical returns key as the database prints a value of the tenant key's type (0102 becomes 102 for an
// integer key), so that the key elt stores, the partition bounds it creates and what elt tenant check compares
// are one text. A key the type does not accept is an error.
func (l *Layer) Canonical(ctx context.Context, q Querier, key string) (string, error) {
	if l.KeyType == "" || l.KeyType == "text" {
		return key, nil
	}
	var cast string
	if err := q.QueryRow(ctx, `select pg_catalog.format('select %L::%s::text', $1::text, $2::text)`, key, l.KeyType).Scan(&cast); err != nil {
		return "", err
	}
	var canon string
	if err := q.QueryRow(ctx, cast).Scan(&canon); err != nil {
		return "", fmt.Errorf("customer id %q is not a value of the tenant key %s (%s): %w", key, l.Key, l.KeyType, err)
	}
	return canon, nil
}

// PartitionName is the name of a tenant's partition of table: the table's name (shortened to fit) and the
// login's random part, so it says nothing about the customer.
func PartitionName(table, role string) string {
	return shorten(table, 63-17) + "_" + strings.TrimPrefix(role, rolePrefix)
}

// DefaultPartitionName is the name of the default partition elt gives table.
func DefaultPartitionName(table string) string { return shorten(table, 63-8) + "_default" }

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// viewSQL is the definition of published relation r in the schema of role: the listed columns of the
// tenant's own partition.
//
// Citus: the view also filters on the tenant key (keyLit, the customer's key as a literal), so that Citus
// sends the tenant's query to the one shard of the partition that holds its rows (the partition is
// distributed by the key like its parent, and its other shards are empty), and build makes it a
// security_invoker view: Citus runs the query on the workers as the tenant's login, which therefore reads the
// partition with privileges of its own (its declared columns, granted by build), never the view owner's.
func (l *Layer) viewSQL(r project.Relation, role, keyLit string) string {
	t := l.table(r.From)
	cols := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	sql := "select " + strings.Join(cols, ", ") + " from " + pgx.Identifier{t.Schema, PartitionName(t.Name, role)}.Sanitize()
	if l.Citus {
		sql += " where " + pgx.Identifier{l.Key}.Sanitize() + " = " + keyLit
	}
	return sql
}

// ensureDefaults creates the default partition of every table that has none, so rows of customers without a
// login always have a place, owned by elt_owner.
func (l *Layer) ensureDefaults(ctx context.Context, pool *pgxpool.Pool) error {
	for i, t := range l.Tables {
		if t.Default != "" {
			continue
		}
		name := DefaultPartitionName(t.Name)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := asOwner(ctx, tx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "create table if not exists "+pgx.Identifier{t.Schema, name}.Sanitize()+" partition of "+t.Ident()+" default")
			return err
		})
		if err != nil {
			return fmt.Errorf("create default partition of %s: %w", t, describe(err))
		}
		l.Tables[i].Default = name
	}
	return nil
}

// asOwner makes the rest of tx act as elt_owner (so what it creates belongs to elt_owner) with bounded lock
// waits.
func asOwner(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `select pg_catalog.set_config('role', 'elt_owner', true), pg_catalog.set_config('lock_timeout', '10s', true)`)
	return err
}

// build makes the objects of one tenant match the layer, inside tx (which acts as elt_owner): its schema, a
// partition of every table (moving the customer's rows out of the default partition), and exactly the
// declared views with their comments and grants.
func (l *Layer) build(ctx context.Context, tx pgx.Tx, role, key string) error {
	schema := pgx.Identifier{role}.Sanitize()
	if _, err := tx.Exec(ctx, "create schema if not exists "+schema); err != nil {
		return fmt.Errorf("create schema %s: %w", role, err)
	}
	if err := comment(ctx, tx, "schema "+schema, l.Comment); err != nil {
		return err
	}
	// Citus: what the login held from an earlier build goes (a column no longer published, say); what this
	// build grants comes back below, in the same transaction.
	if l.Citus {
		if err := revokeGranted(ctx, tx, role); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, "grant usage on schema "+schema+" to "+schema); err != nil {
		return fmt.Errorf("grant usage on schema %s: %w", role, err)
	}
	for _, t := range l.Tables {
		if err := l.partition(ctx, tx, t, role, key); err != nil {
			return err
		}
	}
	// The views: drop those not declared (or whose columns changed), then create or replace the others.
	rows, err := tx.Query(ctx, `
select c.relname,
       array(select a.attname::text from pg_catalog.pg_attribute as a where a.attrelid = c.oid and a.attnum > 0 order by a.attnum)
from pg_catalog.pg_depend as d
join pg_catalog.pg_class as c on c.oid = d.objid
-- The schema's relations through pg_depend's index: pg_class has none on relnamespace, and a scan of it per
-- tenant made a rebuild of every tenant quadratic.
where d.refclassid = 'pg_catalog.pg_namespace'::regclass and d.refobjid = $1::regnamespace
  and d.classid = 'pg_catalog.pg_class'::regclass and c.relkind = 'v'`, schema)
	if err != nil {
		return fmt.Errorf("list views of %s: %w", role, err)
	}
	existing := map[string][]string{}
	var views []string
	err = forEach(rows, func(r pgx.CollectableRow) error {
		var name string
		var cols []string
		if err := r.Scan(&name, &cols); err != nil {
			return err
		}
		existing[name] = cols
		views = append(views, pgx.Identifier{role, name}.Sanitize())
		return nil
	})
	if err != nil {
		return fmt.Errorf("list views of %s: %w", role, err)
	}
	if err := endLockHolders(ctx, tx, false, views...); err != nil {
		return err
	}
	for name, cols := range existing {
		r := l.publishedRelation(name)
		if r == nil || !slices.Equal(cols, columnNames(r)) {
			if _, err := tx.Exec(ctx, "drop view "+pgx.Identifier{role, name}.Sanitize()); err != nil {
				return fmt.Errorf("drop view %s.%s: %w", role, name, err)
			}
		}
	}
	// The views, their comments and grants: the same statements for every tenant, sent in one round trip.
	lit, err := l.literals(ctx, tx)
	if err != nil {
		return err
	}
	type stmt struct{ what, sql string } // what names it in an error
	var stmts []stmt
	var keyLit, options string
	if l.Citus {
		if err := tx.QueryRow(ctx, `select pg_catalog.quote_literal($1::text)`, key).Scan(&keyLit); err != nil {
			return fmt.Errorf("quote %s: %w", key, err)
		}
		options = " with (security_invoker = true)"
		for _, g := range l.citusGrants(role) {
			stmts = append(stmts, stmt{g, g})
		}
	}
	for _, r := range l.Publish {
		view := pgx.Identifier{role, r.Name}.Sanitize()
		stmts = append(stmts,
			stmt{"create view " + view, "create or replace view " + view + options + " as " + l.viewSQL(r, role, keyLit)},
			stmt{"comment on view " + view, "comment on view " + view + " is " + lit[r.Comment]})
		for _, c := range r.Columns {
			col := view + "." + pgx.Identifier{c.Name}.Sanitize()
			stmts = append(stmts, stmt{"comment on column " + col, "comment on column " + col + " is " + lit[c.Comment]})
		}
		stmts = append(stmts, stmt{"grant select on " + view, "grant select on " + view + " to " + schema})
	}
	b := &pgx.Batch{}
	for _, q := range stmts {
		b.Queue(q.sql)
	}
	res := tx.SendBatch(ctx, b)
	for _, q := range stmts {
		if _, err := res.Exec(); err != nil {
			res.Close()
			return fmt.Errorf("%s: %w", q.what, err)
		}
	}
	return res.Close()
}

// citusRead is one of a tenant's partitions that its views read on Citus, and the columns they read there.
type citusRead struct {
	Table   Table
	Columns []string // the key, then the declared columns of every relation published from Table
}

// citusReads are what a tenant's views read on Citus, where they run with the login's own privileges
// (viewSQL), in the order of the declarations.
func (l *Layer) citusReads() []citusRead {
	var out []citusRead
	for _, r := range l.Publish {
		t := l.table(r.From)
		i := slices.IndexFunc(out, func(c citusRead) bool { return c.Table.String() == t.String() })
		if i < 0 {
			out = append(out, citusRead{Table: *t, Columns: []string{l.Key}})
			i = len(out) - 1
		}
		for _, c := range r.Columns {
			if !slices.Contains(out[i].Columns, c.Name) {
				out[i].Columns = append(out[i].Columns, c.Name)
			}
		}
	}
	return out
}

// citusGrants are the privileges a tenant's login needs on Citus (citusReads): usage on the schemas of the
// published tables, and on each of its own partitions select on the columns its views read and nothing else
// (build revokes what an earlier build granted first, so that a column no longer declared is no longer
// readable).
func (l *Layer) citusGrants(role string) []string {
	login := pgx.Identifier{role}.Sanitize()
	var grants, schemas []string
	for _, c := range l.citusReads() {
		if !slices.Contains(schemas, c.Table.Schema) {
			schemas = append(schemas, c.Table.Schema)
			grants = append(grants, "grant usage on schema "+pgx.Identifier{c.Table.Schema}.Sanitize()+" to "+login)
		}
		part := pgx.Identifier{c.Table.Schema, PartitionName(c.Table.Name, role)}.Sanitize()
		cols := make([]string, len(c.Columns))
		for i, name := range c.Columns {
			cols[i] = pgx.Identifier{name}.Sanitize()
		}
		grants = append(grants, "grant select ("+strings.Join(cols, ", ")+") on "+part+" to "+login)
	}
	return grants
}

// literals returns every comment of the layer quoted as an SQL literal by the server (null for none),
// computed once per layer.
func (l *Layer) literals(ctx context.Context, tx pgx.Tx) (map[string]string, error) {
	if l.quoted != nil {
		return l.quoted, nil
	}
	texts := []string{"", l.Comment}
	for _, r := range l.Publish {
		texts = append(texts, r.Comment)
		for _, c := range r.Columns {
			texts = append(texts, c.Comment)
		}
	}
	rows, err := tx.Query(ctx, `select t, pg_catalog.quote_nullable(nullif(t, '')) from pg_catalog.unnest($1::text[]) as t`, texts)
	if err != nil {
		return nil, fmt.Errorf("quote comments: %w", err)
	}
	quoted := map[string]string{}
	err = forEach(rows, func(r pgx.CollectableRow) error {
		var t, q string
		if err := r.Scan(&t, &q); err != nil {
			return err
		}
		quoted[t] = q
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("quote comments: %w", err)
	}
	l.quoted = quoted
	return quoted, nil
}

func (l *Layer) publishedRelation(name string) *project.Relation {
	return (&project.Tenants{Publish: l.Publish}).Published(name)
}

func columnNames(r *project.Relation) []string {
	out := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		out[i] = c.Name
	}
	return out
}

// partition creates the tenant's partition of t unless it exists. The customer's rows already in the default
// partition (loaded before it had a login) move into it, in the same transaction. The bound is the key value
// as a literal, quoted by the server.
func (l *Layer) partition(ctx context.Context, tx pgx.Tx, t Table, role, key string) error {
	name := PartitionName(t.Name, role)
	var exists bool
	err := tx.QueryRow(ctx, `
select exists (select from pg_catalog.pg_inherits as i
               where i.inhrelid = to_regclass($1) and i.inhparent = $2::regclass)`,
		pgx.Identifier{t.Schema, name}.Sanitize(), t.Ident()).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up partition %s.%s: %w", t.Schema, name, err)
	}
	if exists {
		return nil
	}
	// The parent first: creating the partition takes ACCESS EXCLUSIVE on it anyway, and taking it before the
	// rows move keeps a refresh writing the table from deadlocking with this transaction. A tenant that holds a
	// lock on the parent or the default partition (catalog functions lock what they inspect) is ended first.
	if err := endLockHolders(ctx, tx, false, t.Ident(), pgx.Identifier{t.Schema, t.Default}.Sanitize()); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "lock table "+t.Ident()+" in access exclusive mode"); err != nil {
		return fmt.Errorf("lock %s: %w", t, err)
	}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	colList := strings.Join(cols, ", ")
	if t.Default != "" {
		var move string
		err := tx.QueryRow(ctx, `select pg_catalog.format('create temporary table elt_move on commit drop as with moved as (delete from %I.%I where %I = %L returning *) select * from moved', $1::text, $2::text, $3::text, $4::text)`,
			t.Schema, t.Default, l.Key, key).Scan(&move)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, move); err != nil {
			return fmt.Errorf("move the rows of %s out of %s.%s: %w", key, t.Schema, t.Default, err)
		}
	}
	var create string
	err = tx.QueryRow(ctx, `select pg_catalog.format('create table %I.%I partition of %I.%I for values in (%L)', $1::text, $2::text, $1::text, $3::text, $4::text)`,
		t.Schema, name, t.Name, key).Scan(&create)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, create); err != nil {
		return fmt.Errorf("create partition %s.%s of %s: %w", t.Schema, name, t, err)
	}
	if t.Default != "" {
		if _, err := tx.Exec(ctx, "insert into "+t.Ident()+" ("+colList+") select "+colList+" from pg_temp.elt_move"); err != nil {
			return fmt.Errorf("move the rows of %s into %s.%s: %w", key, t.Schema, name, err)
		}
		if _, err := tx.Exec(ctx, "drop table pg_temp.elt_move"); err != nil {
			return err
		}
	}
	// Statistics of the new partition now, so the tenant's first queries are planned for its data.
	if _, err := tx.Exec(ctx, "analyze "+pgx.Identifier{t.Schema, name}.Sanitize()); err != nil {
		return fmt.Errorf("analyze %s.%s: %w", t.Schema, name, err)
	}
	return nil
}

// endLockHolders ends the tenant sessions that hold or await a lock on relations (sanitized names; with
// partitions, on their partitions too), before elt's DDL on them (elt_admin.end_lock_holders).
func endLockHolders(ctx context.Context, tx pgx.Tx, partitions bool, relations ...string) error {
	if len(relations) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `select elt_admin.end_lock_holders(array(select pg_catalog.to_regclass(r) from pg_catalog.unnest($1::text[]) as r where pg_catalog.to_regclass(r) is not null), $2)`, relations, partitions); err != nil {
		return fmt.Errorf("end tenant sessions holding locks on %s: %w", strings.Join(relations, ", "), err)
	}
	return nil
}

// comment sets the comment of object (an SQL object reference built from sanitized names) to text, quoted
// by the server (COMMENT takes no parameters).
func comment(ctx context.Context, tx pgx.Tx, object, text string) error {
	var lit string
	if err := tx.QueryRow(ctx, `select pg_catalog.quote_nullable($1::text)`, nullIfEmpty(text)).Scan(&lit); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "comment on "+object+" is "+lit); err != nil {
		return fmt.Errorf("comment on %s: %w", object, err)
	}
	return nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// forEach calls fn for each row and closes rows.
func forEach(rows pgx.Rows, fn func(pgx.CollectableRow) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
