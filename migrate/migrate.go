// Package migrate applies the versioned SQL migrations embedded in the elt binary, using tern.
//
// Migrations live in migrations/NNN_name.sql; each is a text/template that may include mart definitions from
// views/ with {{ template "views/name.sql" . }}. Every migration runs in its own transaction under tern's
// advisory lock, so two concurrent `elt migrate` runs apply each migration once.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/tern/v2/migrate"

	elt "github.com/elt-dev/elt"
)

// VersionTable records the version of the schema; tern creates it on the first migration.
const VersionTable = "public.elt_schema_version"

// Migration is one rendered migration.
type Migration struct {
	Version int32  // sequence number, from the file name
	Name    string // file name, e.g. 001_schemas.sql
	SQL     string // the up SQL after template rendering
}

// Status is the database's position in the migration sequence.
type Status struct {
	Current int32       // version applied; 0 when nothing is
	All     []Migration // every migration the binary carries
}

// Pending returns the migrations not yet applied.
func (s Status) Pending() []Migration {
	if int(s.Current) >= len(s.All) {
		return nil
	}
	return s.All[s.Current:]
}

// Load renders the migrations of fsys (nil means the ones embedded in the binary) without a database.
func Load(fsys fs.FS) ([]Migration, error) {
	m, err := migrate.NewMigratorEx(context.Background(), nil, VersionTable, &migrate.MigratorOptions{})
	if err != nil {
		return nil, err
	}
	if err := load(m, fsys); err != nil {
		return nil, err
	}
	return convert(m.Migrations), nil
}

func load(m *migrate.Migrator, fsys fs.FS) error {
	if fsys == nil {
		fsys = elt.Migrations
	}
	// An explicit, empty Data: templates see no keys, and any key they reference renders as "<no value>",
	// which the tests reject.
	m.Data = map[string]any{}
	if err := m.LoadMigrations(fsys); err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	return nil
}

func convert(ms []*migrate.Migration) []Migration {
	out := make([]Migration, len(ms))
	for i, m := range ms {
		out[i] = Migration{Version: m.Sequence, Name: m.Name, SQL: m.UpSQL}
	}
	return out
}

// CurrentVersion reads the applied version without creating anything; 0 when the database has never been
// migrated.
func CurrentVersion(ctx context.Context, conn *pgx.Conn) (int32, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `select to_regclass($1) is not null`, VersionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int32
	if err := conn.QueryRow(ctx, "select version from "+VersionTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// ReadStatus reports the applied version and the migrations the binary carries, changing nothing.
func ReadStatus(ctx context.Context, conn *pgx.Conn, fsys fs.FS) (Status, error) {
	all, err := Load(fsys)
	if err != nil {
		return Status{}, err
	}
	cur, err := CurrentVersion(ctx, conn)
	if err != nil {
		return Status{}, err
	}
	if err := checkKnown(cur, len(all)); err != nil {
		return Status{}, err
	}
	return Status{Current: cur, All: all}, nil
}

// Up applies every pending migration of fsys (nil: the embedded ones) in order and returns those it applied.
// onStart, if not nil, is called before each one. A failing migration is rolled back whole and the error names
// its file and the SQL error. After applying any, it gives every object of elt's schemas to the owner role
// (elt.adopt_objects).
func Up(ctx context.Context, conn *pgx.Conn, fsys fs.FS, onStart func(Migration)) ([]Migration, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", VersionTable, err)
	}
	if err := load(m, fsys); err != nil {
		return nil, err
	}
	before, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	if err := checkKnown(before, len(m.Migrations)); err != nil {
		return nil, err
	}
	all := convert(m.Migrations)
	if onStart != nil {
		m.OnStart = func(seq int32, _, _, _ string) { onStart(all[seq-1]) }
	}
	err = m.Migrate(ctx)
	after, verr := m.GetCurrentVersion(ctx)
	if verr != nil {
		after = before
	}
	applied := all[before:max(after, before)]
	if err != nil {
		return applied, describe(err)
	}
	if len(applied) > 0 {
		if err := adopt(ctx, conn); err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// adopt gives the objects the migrations just created to the owner role (elt.adopt_objects, from
// 005_tenants.sql): whoever applies migrations, often a superuser, must not own a view that tenants read (it
// would bypass row-level security) nor a mart that elt refresh must refresh. Before that migration exists it
// does nothing.
func adopt(ctx context.Context, conn *pgx.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, `select to_regprocedure('elt.adopt_objects()') is not null`).Scan(&exists); err != nil {
		return fmt.Errorf("give objects to elt_owner: %w", err)
	}
	if !exists {
		return nil
	}
	if _, err := conn.Exec(ctx, `call elt.adopt_objects()`); err != nil {
		return fmt.Errorf("give objects to elt_owner: %w", err)
	}
	return nil
}

// checkKnown fails when the database is at a version newer than the n migrations this binary carries.
func checkKnown(version int32, n int) error {
	if int(version) > n {
		return fmt.Errorf("database is at schema version %d but this elt binary knows only %d migrations: use a newer elt", version, n)
	}
	return nil
}

// describe turns tern's errors into one line an operator can act on.
func describe(err error) error {
	var mErr migrate.MigrationPgError
	if errors.As(err, &mErr) {
		pg := mErr.PgError
		msg := fmt.Sprintf("migration %s failed: %s (SQLSTATE %s)", mErr.MigrationName, pg.Message, pg.Code)
		if line := lineOf(mErr.Sql, int(pg.Position)); line > 0 {
			msg += fmt.Sprintf(" at line %d", line)
		}
		if pg.Detail != "" {
			msg += ": " + pg.Detail
		}
		return errors.New(msg + "; nothing of this migration was applied")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
		return fmt.Errorf("migrate: %w (a lock was held longer than lock_timeout; retry when the holder is done)", err)
	}
	return fmt.Errorf("migrate: %w", err)
}

// lineOf returns the 1-based line of a 1-based character position in sql, or 0.
func lineOf(sql string, pos int) int {
	if pos <= 0 {
		return 0
	}
	r := []rune(sql)
	if pos > len(r) {
		return 0
	}
	return strings.Count(string(r[:pos-1]), "\n") + 1
}
