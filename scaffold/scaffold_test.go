package scaffold_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/extract"
	"github.com/elt-dev/elt/refresh"
	"github.com/elt-dev/elt/scaffold"
	"github.com/elt-dev/elt/tests/pgtest"
)

// row is one staging row: the record and its parent record (empty: none), as JSON text.
type row struct{ record, parent string }

// The records of staging.things: camelCase keys, integers, numbers with decimals, epoch seconds and
// milliseconds, ISO-8601 strings (with T and with a space), a nested object, an array, nulls and missing keys.
// The second batch has a newer version of thing 1 and a late, older version of thing 2.
var (
	batch1 = []row{
		{`{"id": 1, "customerId": "c1", "displayName": "Ann", "score": 1.5, "loginCount": 3, "active": true,
		   "createdAt": "2026-01-01T10:00:00Z", "updatedAt": "2026-01-02T00:00:00Z", "lastSeenMs": 1767225600000,
		   "seenAt": 1767225600, "address": {"city": "Rome", "zip": "00100"}, "tags": ["a"], "note": null}`,
			`{"id": "c1", "name": "Acme"}`},
		{`{"id": 2, "customerId": "c1", "displayName": "Bob", "score": 2, "loginCount": 0, "active": false,
		   "createdAt": "2026-01-01 11:00:00+00", "updatedAt": "2026-01-02T00:00:00Z", "lastSeenMs": 1767229200000,
		   "seenAt": 1767229200, "address": {"city": "Milan"}, "tags": []}`,
			`{"id": "c1", "name": "Acme"}`},
		{`{"id": 3, "customerId": "c2", "displayName": null, "score": 3.25, "loginCount": 7, "active": true,
		   "createdAt": "2026-01-03T00:00:00Z", "updatedAt": "2026-01-03T00:00:00Z", "lastSeenMs": null,
		   "seenAt": 1767398400, "address": null, "tags": ["b", "c"], "note": "vip"}`,
			``},
	}
	batch2 = []row{
		{`{"id": 1, "customerId": "c1", "displayName": "Ann B", "score": 1.5, "loginCount": 4, "active": true,
		   "createdAt": "2026-01-01T10:00:00Z", "updatedAt": "2026-01-05T00:00:00Z", "lastSeenMs": 1767571200000,
		   "seenAt": 1767571200, "address": {"city": "Rome", "zip": "00100"}, "tags": ["a"]}`,
			`{"id": "c1", "name": "Acme"}`},
		{`{"id": 2, "customerId": "c1", "displayName": "Bobby", "score": 2, "loginCount": 9, "active": false,
		   "createdAt": "2026-01-01 11:00:00+00", "updatedAt": "2026-01-01T00:00:00Z", "lastSeenMs": 1767229200000,
		   "seenAt": 1767229200, "address": {"city": "Milan"}, "tags": []}`,
			`{"id": "c1", "name": "Acme"}`},
	}
)

// load commits each batch as extract would: an elt.batches row, then its records in staging.table. It
// returns the batch ids.
func load(t *testing.T, pool *pgxpool.Pool, table string, batches ...[]row) []int64 {
	t.Helper()
	ctx := context.Background()
	if err := extract.EnsureStagingTable(ctx, pool, table, "test"); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var runID int64
		if err := tx.QueryRow(ctx, `insert into elt.runs (kind, target, status) values ('extract', 'test', 'succeeded') returning run_id`).Scan(&runID); err != nil {
			return err
		}
		for _, b := range batches {
			var batchID int64
			if err := tx.QueryRow(ctx, `insert into elt.batches (run_id, source, resource, staging_table, records, bytes)
				values ($1, 'test', $2, $3, $4, 0) returning batch_id`, runID, table, table, len(b)).Scan(&batchID); err != nil {
				return err
			}
			ids = append(ids, batchID)
			for _, r := range b {
				var parent *string
				if r.parent != "" {
					parent = &r.parent
				}
				if _, err := tx.Exec(ctx, "insert into "+pgx.Identifier{"staging", table}.Sanitize()+" (batch_id, record, parent) values ($1, $2::jsonb, $3::jsonb)",
					batchID, r.record, parent); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("load staging.%s: %v", table, err)
	}
	return ids
}

func TestProfile(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	load(t, db.Pool, "things", batch1, batch2)

	rep, err := scaffold.Profile(ctx, db.Pool, "things", 1000)
	if err != nil {
		t.Fatal(err)
	}
	ts := func(pairs ...any) []scaffold.TypeCount {
		var out []scaffold.TypeCount
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, scaffold.TypeCount{Type: pairs[i].(string), Count: int64(pairs[i+1].(int))})
		}
		return out
	}
	rec := func(path string, types []scaffold.TypeCount, present, nulls, missing int64, example, sqlType, note string) scaffold.Key {
		return scaffold.Key{Column: scaffold.Record, Path: strings.Split(path, "."), Types: types, Present: present, Nulls: nulls,
			Missing: missing, NullRate: float64(nulls+missing) / 5, Example: example, SQLType: sqlType, Note: note}
	}
	want := &scaffold.Report{Table: "things", Records: 5, Parents: 4, Keys: []scaffold.Key{
		rec("active", ts("boolean", 5), 5, 0, 0, `false`, "boolean", ""),
		rec("address", ts("object", 4, "null", 1), 4, 1, 0, `{"city": "Milan"}`, "jsonb", ""),
		rec("address.city", ts("string", 4), 4, 0, 1, `"Milan"`, "text", ""),
		rec("address.zip", ts("string", 2), 2, 0, 3, `"00100"`, "text", ""),
		rec("createdAt", ts("string", 5), 5, 0, 0, `"2026-01-01 11:00:00+00"`, "timestamptz", scaffold.NoteISO),
		rec("customerId", ts("string", 5), 5, 0, 0, `"c1"`, "text", ""),
		rec("displayName", ts("string", 4, "null", 1), 4, 1, 0, `"Bobby"`, "text", ""),
		rec("id", ts("number", 5), 5, 0, 0, `2`, "bigint", ""),
		rec("lastSeenMs", ts("number", 4, "null", 1), 4, 1, 0, `1767229200000`, "timestamptz", scaffold.NoteEpochMillis),
		rec("loginCount", ts("number", 5), 5, 0, 0, `9`, "bigint", ""),
		rec("note", ts("string", 1, "null", 1), 1, 1, 3, `"vip"`, "text", ""),
		rec("score", ts("number", 5), 5, 0, 0, `2`, "numeric", ""),
		rec("seenAt", ts("number", 5), 5, 0, 0, `1767229200`, "timestamptz", scaffold.NoteEpochSecs),
		rec("tags", ts("array", 5), 5, 0, 0, `[]`, "jsonb", ""),
		rec("updatedAt", ts("string", 5), 5, 0, 0, `"2026-01-01T00:00:00Z"`, "timestamptz", scaffold.NoteISO),
		{Column: scaffold.Parent, Path: []string{"id"}, Types: ts("string", 4), Present: 4, Missing: 1, NullRate: 0.2, Example: `"c1"`, SQLType: "text"},
		{Column: scaffold.Parent, Path: []string{"name"}, Types: ts("string", 4), Present: 4, Missing: 1, NullRate: 0.2, Example: `"Acme"`, SQLType: "text"},
	}}
	if diff := cmp.Diff(want, rep, cmpopts.IgnoreFields(scaffold.Report{}, "SampledAt"), cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if time.Since(rep.SampledAt) > time.Minute {
		t.Errorf("SampledAt = %v", rep.SampledAt)
	}

	var out strings.Builder
	if err := scaffold.WriteReport(&out, rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", out.String())
	for _, s := range []string{"address.city", "timestamptz (epoch milliseconds)", "80%", "parent"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}

	// The sample is the newest records: the second batch.
	small, err := scaffold.Profile(ctx, db.Pool, "things", 2)
	if err != nil {
		t.Fatal(err)
	}
	if small.Records != 2 || small.Find(scaffold.Record, []string{"note"}) != nil {
		t.Errorf("sample of 2: %d records, note %+v; want 2 records without note", small.Records, small.Find(scaffold.Record, []string{"note"}))
	}
}

func TestProfileErrors(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if err := extract.EnsureStagingTable(ctx, db.Pool, "empty", "test"); err != nil {
		t.Fatal(err)
	}
	_, err := scaffold.Profile(ctx, db.Pool, "nothing", 10)
	if !errors.Is(err, scaffold.ErrNoTable) || !strings.Contains(err.Error(), "no staging table nothing: run elt extract first; staging has: ") ||
		!strings.Contains(err.Error(), "empty") {
		t.Errorf("missing table: %v", err)
	}
	if _, err := scaffold.Profile(ctx, db.Pool, "empty", 10); !errors.Is(err, scaffold.ErrEmpty) {
		t.Errorf("empty table: %v", err)
	}
	if _, err := scaffold.Profile(ctx, db.Pool, "empty", 0); err == nil {
		t.Error("sample 0: no error")
	}
}

// thing is one typed row of the drafted table.
type thing struct {
	CustomerID  string
	ID          int64
	Active      bool
	AddressCity *string
	AddressZip  *string
	CreatedAt   time.Time
	DisplayName *string
	LastSeenMs  *time.Time
	LoginCount  int64
	Note        *string
	Score       string
	SeenAt      time.Time
	Tags        string
	UpdatedAt   time.Time
	BatchID     int64
}

func ptr[T any](v T) *T { return &v }

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDraftRuns(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	batches := load(t, db.Pool, "things", batch1, batch2)
	rep, err := scaffold.Profile(ctx, db.Pool, "things", 1000)
	if err != nil {
		t.Fatal(err)
	}
	opts := scaffold.DraftOptions{Schema: "draft", PrimaryKey: "id", Cursor: "updatedAt", TenantKey: "customer_id",
		TenantExpr: "coalesce(record ->> 'customerId', parent ->> 'id')"}
	ddl, transform := scaffold.DraftTable(rep, opts), scaffold.Draft(rep, opts)
	t.Logf("draft migration:\n%s", ddl)
	t.Logf("draft transform:\n%s", transform)
	for _, s := range []string{
		"-- rebuild: draft.things\n",
		"from 5 sampled records of staging.things",
		"on conflict (customer_id, id) do update",
		"where (excluded.updated_at, excluded.batch_id, excluded.staging_id) > (t.updated_at, t.batch_id, t.staging_id);",
	} {
		if !strings.Contains(transform, s) {
			t.Errorf("transform lacks %q", s)
		}
	}
	for _, s := range []string{"partition by list (customer_id);", "primary key (customer_id, id)", "staging_id   bigint      not null,"} {
		if !strings.Contains(ddl, s) {
			t.Errorf("create table lacks %q", s)
		}
	}

	if _, err := db.Pool.Exec(ctx, "create schema draft"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, ddl); err != nil {
		t.Fatalf("create table: %v\n%s", err, ddl)
	}
	if _, err := db.Pool.Exec(ctx, "create table draft.things_default partition of draft.things default"); err != nil {
		t.Fatal(err)
	}
	run := func(from, to int64) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, transform, pgx.NamedArgs{"batch_from": from, "batch_to": to}); err != nil {
			t.Fatalf("transform (%d, %d]: %v\n%s", from, to, err, transform)
		}
	}
	read := func() []thing {
		t.Helper()
		rows, err := db.Pool.Query(ctx, `select customer_id, id, active, address_city, address_zip, created_at, display_name,
			last_seen_ms, login_count, note, score::text, seen_at, tags::text, updated_at, batch_id
			from draft.things order by customer_id, id`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[thing])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := []thing{
		// The newer version of thing 1, from the second batch.
		{CustomerID: "c1", ID: 1, Active: true, AddressCity: ptr("Rome"), AddressZip: ptr("00100"), CreatedAt: date("2026-01-01T10:00:00Z"),
			DisplayName: ptr("Ann B"), LastSeenMs: ptr(date("2026-01-05T00:00:00Z")), LoginCount: 4, Score: "1.5",
			SeenAt: date("2026-01-05T00:00:00Z"), Tags: `["a"]`, UpdatedAt: date("2026-01-05T00:00:00Z"), BatchID: batches[1]},
		// The second batch's version of thing 2 is older (updatedAt): the first batch's stays.
		{CustomerID: "c1", ID: 2, AddressCity: ptr("Milan"), CreatedAt: date("2026-01-01T11:00:00Z"),
			DisplayName: ptr("Bob"), LastSeenMs: ptr(date("2026-01-01T01:00:00Z")), LoginCount: 0, Score: "2",
			SeenAt: date("2026-01-01T01:00:00Z"), Tags: `[]`, UpdatedAt: date("2026-01-02T00:00:00Z"), BatchID: batches[0]},
		{CustomerID: "c2", ID: 3, Active: true, CreatedAt: date("2026-01-03T00:00:00Z"), LoginCount: 7, Note: ptr("vip"), Score: "3.25",
			SeenAt: date("2026-01-03T00:00:00Z"), Tags: `["b", "c"]`, UpdatedAt: date("2026-01-03T00:00:00Z"), BatchID: batches[0]},
	}

	// All batches at once (a rebuild).
	run(0, batches[1])
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Errorf("rows after (0, %d] (-want +got):\n%s", batches[1], diff)
	}
	// Batch by batch (incremental runs): the same rows.
	if _, err := db.Pool.Exec(ctx, "truncate draft.things"); err != nil {
		t.Fatal(err)
	}
	run(0, batches[0])
	run(batches[0], batches[1])
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Errorf("rows after two incremental runs (-want +got):\n%s", diff)
	}
	// Again: nothing changes.
	run(0, batches[1])
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Errorf("rows after running again (-want +got):\n%s", diff)
	}
	// As a step of elt refresh, whose first run rebuilds the table (-- rebuild: draft.things).
	if _, err := db.Pool.Exec(ctx, "update draft.things set display_name = 'stale'"); err != nil {
		t.Fatal(err)
	}
	res, err := refresh.Run(ctx, db.Pool, refresh.Options{
		Project: fstest.MapFS{"sql/010_things.sql": &fstest.MapFile{Data: []byte(transform)}}, Schemas: []string{"draft"}})
	if err != nil {
		t.Fatalf("elt refresh with the draft as its step: %v", err)
	}
	if res.Rows() != 3 {
		t.Errorf("refresh wrote %d rows, want 3", res.Rows())
	}
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Errorf("rows after elt refresh (-want +got):\n%s", diff)
	}
}

// TestDraftWithoutTenantOrCursor drafts for a project without tenants and a resource without a cursor: the
// version loaded last wins, and the table is not partitioned.
func TestDraftWithoutTenantOrCursor(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	batches := load(t, db.Pool, "things", batch1, batch2)
	rep, err := scaffold.Profile(ctx, db.Pool, "things", 1000)
	if err != nil {
		t.Fatal(err)
	}
	opts := scaffold.DraftOptions{Schema: "plain", Table: "thing versions", MaxFlatten: -1}
	ddl, transform := scaffold.DraftTable(rep, opts), scaffold.Draft(rep, opts)
	t.Logf("draft migration:\n%s\ndraft transform:\n%s", ddl, transform)
	for _, s := range []string{"-- TODO: the project declares no tenant key", "-- TODO: the resource has no primary_key: the record key id",
		"the version loaded last wins", `on conflict (id) do update`, `insert into plain."thing versions" as t`} {
		if !strings.Contains(transform, s) {
			t.Errorf("transform lacks %q", s)
		}
	}
	if strings.Contains(ddl, "partition by") || strings.Contains(transform, "address_city") {
		t.Errorf("partitioned, or address flattened:\n%s\n%s", ddl, transform)
	}
	if _, err := db.Pool.Exec(ctx, "create schema plain"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, ddl); err != nil {
		t.Fatalf("create table: %v\n%s", err, ddl)
	}
	if _, err := db.Pool.Exec(ctx, transform, pgx.NamedArgs{"batch_from": 0, "batch_to": batches[1]}); err != nil {
		t.Fatalf("transform: %v\n%s", err, transform)
	}
	var names []string
	rows, err := db.Pool.Query(ctx, `select coalesce(display_name, '-') || ' ' || coalesce(address ->> 'city', '-') from plain."thing versions" order by id`)
	if err != nil {
		t.Fatal(err)
	}
	if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	// Without a cursor the version loaded last wins: Bobby, though older by updatedAt. Thing 3 has no address.
	if diff := cmp.Diff([]string{"Ann B Rome", "Bobby Milan", "- -"}, names); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestDraftGuessesTenantKey(t *testing.T) {
	rep := &scaffold.Report{Table: "orders", Records: 1, Keys: []scaffold.Key{
		{Column: scaffold.Record, Path: []string{"customerId"}, Types: []scaffold.TypeCount{{"string", 1}}, Present: 1, SQLType: "text"},
		{Column: scaffold.Record, Path: []string{"orderId"}, Types: []scaffold.TypeCount{{"number", 1}}, Present: 1, SQLType: "timestamptz", Note: scaffold.NoteEpochSecs},
		{Column: scaffold.Record, Path: []string{"order"}, Types: []scaffold.TypeCount{{"string", 1}}, Present: 1, SQLType: "text"},
		{Column: scaffold.Record, Path: []string{"it's"}, Types: []scaffold.TypeCount{{"boolean", 1}}, Present: 1, SQLType: "boolean"},
	}}
	got := scaffold.Draft(rep, scaffold.DraftOptions{TenantKey: "customer_id", PrimaryKey: "orderId"})
	for _, s := range []string{
		"s.record ->> 'customerId',",                   // the guessed tenant key
		"TODO: elt.yaml has no tenants.staging.orders", // says so
		"(s.record ->> 'orderId')::bigint,",            // an identifier is never a timestamp
		`"order",`,                                     // a keyword is quoted
		"(s.record ->> 'it''s')::boolean,",             // a key is an SQL literal
		"insert into core.orders as t",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("draft lacks %q:\n%s", s, got)
		}
	}
}
