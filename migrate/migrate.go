// Package migrate applies versioned SQL migrations with tern, on two tracks that never share a number:
//
//   - the elt track: elt's own machinery (run log, batches, cursors, refresh watermarks, the tenant map, roles,
//     hardening), embedded in the binary (migrate/elt/*.sql) and recorded in elt.schema_version;
//   - the project track: the project's model (its tables, marts, materialized views), read at run time from
//     the project folder's migrations/ (templates from its views/ folder) and recorded in
//     elt.project_version.
//
// Upgrading elt adds migrations to the elt track only, so it never collides with a project's numbering. Each
// migration is a text/template, runs in its own transaction under tern's advisory lock (two concurrent
// `elt migrate` runs apply each migration once), and the elt track always runs first.
package migrate

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/tern/v2/migrate"

	"github.com/elt-dev/elt/internal/citus"
	"github.com/elt-dev/elt/internal/pgerr"
)

//go:embed elt/*.sql
var eltFiles embed.FS

// Version tables of the two tracks. Both live in schema elt, which elt migrate creates first.
const (
	EltVersionTable     = "elt.schema_version"
	ProjectVersionTable = "elt.project_version"
)

// Track is a sequence of migrations with its own version table.
type Track struct {
	Name         string // "elt" or "project": how status and errors name it
	VersionTable string // schema-qualified
	// FS holds the migrations (NNN_name.sql) at its root; .sql files in subfolders are templates the
	// migrations may include ({{ template "views/name.sql" . }}).
	FS fs.FS
}

// Elt is the track of elt's own machinery, embedded in the binary.
func Elt() Track {
	sub, err := fs.Sub(eltFiles, "elt")
	if err != nil {
		panic(err) // the embedded folder exists
	}
	return Track{Name: "elt", VersionTable: EltVersionTable, FS: sub}
}

// Project is the track of a project's migrations; fsys is as Track.FS describes (see project.Migrations).
func Project(fsys fs.FS) Track {
	return Track{Name: "project", VersionTable: ProjectVersionTable, FS: fsys}
}

// Migration is one rendered migration.
type Migration struct {
	Track   string // track name
	Version int32  // sequence number, from the file name
	Name    string // file name, e.g. 001_core.sql
	SQL     string // the up SQL after template rendering
}

// Status is the database's position on one track.
type Status struct {
	Track   string
	Current int32       // version applied; 0 when nothing is
	All     []Migration // every migration of the track
}

// Pending returns the migrations not yet applied.
func (s Status) Pending() []Migration {
	if int(s.Current) >= len(s.All) {
		return nil
	}
	return s.All[s.Current:]
}

// Load renders the migrations of t without a database.
func Load(t Track) ([]Migration, error) {
	m, err := migrate.NewMigratorEx(context.Background(), nil, t.VersionTable, &migrate.MigratorOptions{})
	if err != nil {
		return nil, err
	}
	if err := load(m, t); err != nil {
		return nil, err
	}
	return convert(t, m.Migrations), nil
}

func load(m *migrate.Migrator, t Track) error {
	// An explicit, empty Data: templates see no keys, and any key they reference renders as "<no value>",
	// which the tests reject.
	m.Data = map[string]any{}
	if err := m.LoadMigrations(t.FS); err != nil {
		if errors.Is(err, migrate.ErrNoFwMigration) {
			return fmt.Errorf("load %s migrations: a migration has no SQL above its ---- create above / drop below ---- line", t.Name)
		}
		var none migrate.NoMigrationsFoundError
		if errors.As(err, &none) {
			return fmt.Errorf("load %s migrations: none found (the project's migrations/ folder holds NNN_name.sql files)", t.Name)
		}
		return fmt.Errorf("load %s migrations: %w", t.Name, err)
	}
	return nil
}

func convert(t Track, ms []*migrate.Migration) []Migration {
	out := make([]Migration, len(ms))
	for i, m := range ms {
		out[i] = Migration{Track: t.Name, Version: m.Sequence, Name: m.Name, SQL: m.UpSQL}
	}
	return out
}

// CurrentVersion reads the applied version of t without creating anything; 0 when the track never ran. In a
// privileged session (see privileged) the table is first locked (ACCESS SHARE conflicts with DROP, CREATE RULE
// and changes of column types) and checked to be a plain table without rules or row security whose columns
// have catalog types: reading a view, a policy or a column of a type elt_runner made would run its code.
func CurrentVersion(ctx context.Context, conn *pgx.Conn, t Track) (int32, error) {
	v, err := readVersion(ctx, conn, t.VersionTable)
	if err != nil {
		return 0, fmt.Errorf("read %s schema version: %w", t.Name, err)
	}
	return v, nil
}

// readVersion reads the version in table (one of this package's constants), 0 when it does not exist; in a
// privileged session (see CurrentVersion) only once it is locked and checked.
func readVersion(ctx context.Context, conn *pgx.Conn, table string) (int32, error) {
	priv, err := privileged(ctx, conn)
	if err != nil {
		return 0, err
	}
	var v int32
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `select to_regclass($1) is not null`, table).Scan(&exists); err != nil || !exists {
			return err
		}
		if priv {
			if _, err := tx.Exec(ctx, "lock table only "+table+" in access share mode"); err != nil {
				return err
			}
			var plain bool
			err := tx.QueryRow(ctx, `
select c.relkind = 'r' and not c.relhasrules and not c.relrowsecurity
       and not exists (select from pg_catalog.pg_attribute as a join pg_catalog.pg_type as y on y.oid = a.atttypid
                       where a.attrelid = c.oid and a.attnum > 0 and y.typnamespace <> 'pg_catalog'::regnamespace)
from pg_catalog.pg_class as c where c.oid = $1::regclass`, table).Scan(&plain)
			if err != nil {
				return err
			}
			if !plain {
				return fmt.Errorf("refusing to read it as a superuser: %s is not the plain table elt made (a role with elt_owner's rights changed it: find out who)", table)
			}
		}
		return tx.QueryRow(ctx, "select version from only "+table).Scan(&v)
	})
	return v, err
}

// ReadStatus reports the applied version of each track and the migrations it has, changing nothing.
func ReadStatus(ctx context.Context, conn *pgx.Conn, tracks ...Track) ([]Status, error) {
	var out []Status
	for _, t := range tracks {
		all, err := Load(t)
		if err != nil {
			return nil, err
		}
		cur, err := CurrentVersion(ctx, conn, t)
		if err != nil {
			return nil, err
		}
		if err := checkKnown(t, cur, len(all)); err != nil {
			return nil, err
		}
		out = append(out, Status{Track: t.Name, Current: cur, All: all})
	}
	return out, nil
}

// Options configure Up.
type Options struct {
	// Schemas are the project's own schemas: after the migrations, every object in them (and in staging and
	// elt) is given to elt_owner (elt_dba.adopt_objects).
	Schemas []string
	// OnStart, if not nil, is called before each migration.
	OnStart func(Migration)
	// Runner opens a connection as elt_runner. Up calls it when conn is a superuser's, after the elt track:
	// the other tracks and the adoption run there (see Up). Nil: Up stops after the elt track with ErrRunner.
	Runner func(context.Context) (*pgx.Conn, error)
	// Key is the project's tenant key column (elt.yaml tenants.key): on a Citus coordinator, after the
	// project's migrations, the tables of Schemas that have it are distributed by it and the others become
	// reference tables (distribute). Empty: every table becomes a reference table.
	Key string
}

// ErrRunner is returned by Up run as a superuser when the project's track could not be given to a
// connection as elt_runner: elt's own migrations are applied, the project's are not.
var ErrRunner = errors.New("the project's migrations run as elt_runner, never in a superuser's session")

// Up applies every pending migration of the tracks, in order (pass Elt() first), and returns those it
// applied. A failing migration is rolled back whole and the error names its track, file and the SQL error;
// the tracks after it are not run. A database laid out by elt before the two tracks existed is upgraded first
// (see upgradeLegacy). Then every object of staging, elt and the project's schemas is given to elt_owner.
//
// Run as a superuser (the first migrate, and any that brings elt migrations), Up first takes back the
// ownership of elt's own objects (elt_dba.take_over: from then on elt_runner cannot change them), then refuses
// to go on if they carry code that would run with the superuser's rights (elt_dba.traps) or differ in any way
// from the shape the last such migrate recorded (elt_dba.shape_changes), runs only the elt track in the
// superuser's session, gives the objects back to elt_owner and records their shape. The project's track and
// its adoption run on a second connection as elt_runner (opts.Runner): project migrations write tables that
// elt_runner owns and could have booby-trapped, and SET ROLE would be no boundary (code can reset it).
func Up(ctx context.Context, conn *pgx.Conn, opts Options, tracks ...Track) ([]Migration, error) {
	priv, err := privileged(ctx, conn)
	if err != nil {
		return nil, err
	}
	onCitus, err := citus.Installed(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if !priv {
		return upAsRunner(ctx, conn, opts, tracks, onCitus)
	}
	if err := pinnedSearchPath(ctx, conn); err != nil {
		return nil, err
	}
	if err := takeOver(ctx, conn); err != nil {
		return nil, err
	}
	// Whatever happens next, elt_runner gets elt's objects back (as they were, or as the migrations left them).
	adopted := false
	defer func() {
		if !adopted {
			Adopt(context.WithoutCancel(ctx), conn, nil)
		}
	}()
	if err := refuseTraps(ctx, conn); err != nil {
		return nil, err
	}
	if onCitus {
		if err := citusBeforeElt(ctx, conn); err != nil {
			return nil, err
		}
	}
	if err := prepare(ctx, conn); err != nil {
		return nil, err
	}
	var applied []Migration
	i := 0
	for ; i < len(tracks) && tracks[i].Name == "elt"; i++ {
		got, err := up(ctx, conn, tracks[i], opts.OnStart, onCitus)
		applied = append(applied, got...)
		if err != nil {
			return applied, err
		}
	}
	// What the elt track made (schema elt's tables) belongs to elt_owner again before elt_runner writes its
	// version table there; the shape is recorded when elt's migrations changed it (or was never recorded).
	if err := Adopt(ctx, conn, nil); err != nil {
		return applied, err
	}
	adopted = true
	if err := recordShape(ctx, conn, len(applied) > 0); err != nil {
		return applied, err
	}
	if onCitus {
		if err := citusAfterElt(ctx, conn); err != nil {
			return applied, err
		}
	}
	if i == len(tracks) {
		return applied, nil
	}
	rc, err := runnerConn(ctx, opts.Runner)
	if err != nil {
		return applied, err
	}
	defer rc.Close(context.WithoutCancel(ctx))
	got, err := upAsRunner(ctx, rc, opts, tracks[i:], onCitus)
	applied = append(applied, got...)
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == pgerr.InsufficientPrivilege {
		err = fmt.Errorf("%w (the project's migrations run as elt_runner even when elt migrate runs as a superuser: apply what needs a superuser, such as create extension, as the DBA first)", err)
	}
	return applied, err
}

// upAsRunner applies the tracks in a session with elt_owner's rights: elt's own track must have nothing
// pending (refusePending), and the project's migrations must leave schema elt as the last superuser's migrate
// recorded it (they have no business there, and a change would make the next one refuse).
// On a Citus coordinator (onCitus) the project's tables are then distributed (distribute).
func upAsRunner(ctx context.Context, conn *pgx.Conn, opts Options, tracks []Track, onCitus bool) ([]Migration, error) {
	for _, t := range tracks {
		if t.Name == "elt" {
			if err := refusePending(ctx, conn, t); err != nil {
				return nil, err
			}
		}
	}
	if err := prepare(ctx, conn); err != nil {
		return nil, err
	}
	var applied []Migration
	for _, t := range tracks {
		got, err := up(ctx, conn, t, opts.OnStart, false)
		applied = append(applied, got...)
		if err != nil {
			return applied, err
		}
	}
	if err := Adopt(ctx, conn, opts.Schemas); err != nil {
		return applied, err
	}
	if onCitus {
		if err := distribute(ctx, conn, opts.Schemas, opts.Key); err != nil {
			return applied, err
		}
	}
	changes, err := shapeChanges(ctx, conn)
	if err != nil {
		return applied, err
	}
	if len(changes) > 0 {
		return applied, fmt.Errorf("migrate: the migrations are applied, but schema elt differs from what the last superuser's elt migrate recorded: %s (project migrations must not create or change anything in schema elt; the next superuser's elt migrate refuses to run until it is undone)", changes)
	}
	return applied, nil
}

// privileged reports whether the session is privileged (see Privilege).
func privileged(ctx context.Context, conn *pgx.Conn) (bool, error) {
	_, priv, err := Privilege(ctx, conn)
	return priv, err
}

// Privilege reports whether the session's role is a superuser (super), and whether the session is privileged:
// a superuser's, or anyone's before elt's roles exist. A privileged session applies elt's own migrations,
// must start with SuperuserSearchPath and must not run code elt_runner could have planted.
func Privilege(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (super, priv bool, err error) {
	err = q.QueryRow(ctx, `
select r.rolsuper, r.rolsuper or not exists (select from pg_catalog.pg_roles as o where o.rolname = 'elt_owner')
from pg_catalog.pg_roles as r where r.rolname = current_user`).Scan(&super, &priv)
	if err != nil {
		return false, false, fmt.Errorf("migrate: %w", err)
	}
	return super, priv, nil
}

// takeOver makes the session's role the owner of elt's own objects (elt_dba.take_over), so that nothing can
// change them while it checks and migrates them; Adopt gives them back.
func takeOver(ctx context.Context, conn *pgx.Conn) error {
	if exists, err := hasRoutine(ctx, conn, "elt_dba.take_over()"); err != nil || !exists {
		return err
	}
	if _, err := conn.Exec(ctx, `call elt_dba.take_over()`); err != nil {
		return fmt.Errorf("migrate: take over elt's tables for the migration: %w", err)
	}
	return nil
}

// refusePending fails when elt's own track has migrations pending in a session with elt_owner's rights: they
// are the DBA's to apply (they may need a superuser, and their result is recorded by elt_dba.record_shape).
func refusePending(ctx context.Context, conn *pgx.Conn, t Track) error {
	all, err := Load(t)
	if err != nil {
		return err
	}
	cur, err := CurrentVersion(ctx, conn, t)
	if err != nil {
		return err
	}
	if int(cur) >= len(all) {
		return nil
	}
	var names []string
	for _, m := range all[cur:] {
		names = append(names, m.Name)
	}
	return fmt.Errorf("migrate: elt's own migrations %s are pending: a superuser applies them (elt migrate as one; it then runs the project's as elt_runner); elt_runner applies only the project's", strings.Join(names, ", "))
}

// recordShape records the shape of elt's own objects (elt_dba.record_shape) for the next privileged migrate,
// when elt's migrations changed it (changed) or none was ever recorded; otherwise it must not have changed.
func recordShape(ctx context.Context, conn *pgx.Conn, changed bool) error {
	if exists, err := hasRoutine(ctx, conn, "elt_dba.record_shape()"); err != nil || !exists {
		return err
	}
	var empty bool
	if err := conn.QueryRow(ctx, `select not exists (select from elt_dba.recorded_shape)`).Scan(&empty); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if !changed && !empty {
		return nil
	}
	if _, err := conn.Exec(ctx, `call elt_dba.record_shape()`); err != nil {
		return fmt.Errorf("migrate: record the shape of elt's tables: %w", err)
	}
	return nil
}

// shapeChanges lists how elt's own objects differ from their recorded shape (elt_dba.shape_changes), at most
// ten, joined; "" when they do not or nothing was recorded yet.
func shapeChanges(ctx context.Context, conn *pgx.Conn) (string, error) {
	if exists, err := hasRoutine(ctx, conn, "elt_dba.shape_changes()"); err != nil || !exists {
		return "", err
	}
	rows, err := conn.Query(ctx, `select object || ' ' || change from elt_dba.shape_changes() order by 1`)
	if err != nil {
		return "", fmt.Errorf("migrate: compare elt's tables with their recorded shape: %w", err)
	}
	changes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("migrate: compare elt's tables with their recorded shape: %w", err)
	}
	const most = 10
	more := ""
	if len(changes) > most {
		more = fmt.Sprintf(" and %d more", len(changes)-most)
		changes = changes[:most]
	}
	if len(changes) == 0 {
		return "", nil
	}
	return strings.Join(changes, "; ") + more, nil
}

// runnerConn opens the connection as elt_runner for the project's track and checks that it is one.
func runnerConn(ctx context.Context, open func(context.Context) (*pgx.Conn, error)) (*pgx.Conn, error) {
	if open == nil {
		return nil, fmt.Errorf("migrate: elt's own migrations are applied; %w: run elt migrate again as elt_runner", ErrRunner)
	}
	rc, err := open(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: elt's own migrations are applied; %w, and connecting as elt_runner failed: %w (give elt_runner a password and put it in the passfile, or run elt migrate again as elt_runner)", ErrRunner, err)
	}
	var user string
	var super bool
	err = rc.QueryRow(ctx, `select current_user, rolsuper from pg_catalog.pg_roles where rolname = current_user`).Scan(&user, &super)
	if err == nil && (user != "elt_runner" || super) {
		err = fmt.Errorf("the connection for elt_runner is %s's (superuser %t)", user, super)
	}
	if err != nil {
		rc.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("migrate: %w: %w", ErrRunner, err)
	}
	return rc, nil
}

// SuperuserSearchPath is the search_path a superuser's connection must start with (a startup parameter:
// options=-csearch_path=... or search_path=... in the URL).
const SuperuserSearchPath = "pg_catalog, pg_temp"

// pinnedSearchPath fails unless the session's search_path, as RESET ALL leaves it (tern resets after each
// migration), is SuperuserSearchPath: with "$user" or public in it, a schema elt_owner created under the
// superuser's name could shadow a catalog function for elt's migrations.
func pinnedSearchPath(ctx context.Context, conn *pgx.Conn) error {
	var path string
	if _, err := conn.Exec(ctx, `reset all`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := conn.QueryRow(ctx, `select pg_catalog.current_setting('search_path')`).Scan(&path); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if strings.ReplaceAll(path, " ", "") != strings.ReplaceAll(SuperuserSearchPath, " ", "") {
		return fmt.Errorf("migrate: refusing to migrate as a superuser (or before elt's roles exist) with search_path %q: the connection must start with search_path=%s (elt migrate does so)", path, SuperuserSearchPath)
	}
	return nil
}

// hasRoutine reports whether the function or procedure signature exists: elt's own migrations create the
// elt_dba routines Up calls, so before they ran there is nothing to call.
func hasRoutine(ctx context.Context, conn *pgx.Conn, signature string) (bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `select pg_catalog.to_regprocedure($1) is not null`, signature).Scan(&exists); err != nil {
		return false, fmt.Errorf("migrate: look up %s: %w", signature, err)
	}
	return exists, nil
}

// refuseTraps fails when elt's tables carry code that would run with a superuser's rights (elt_dba.traps).
func refuseTraps(ctx context.Context, conn *pgx.Conn) error {
	if exists, err := hasRoutine(ctx, conn, "elt_dba.traps()"); err != nil || !exists {
		return err
	}
	rows, err := conn.Query(ctx, `select object || ' ' || problem from elt_dba.traps() order by 1`)
	if err != nil {
		return fmt.Errorf("migrate: look for code in elt's tables: %w", err)
	}
	traps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("migrate: look for code in elt's tables: %w", err)
	}
	if len(traps) > 0 {
		return fmt.Errorf("migrate: refusing to run as a superuser: elt's tables carry code elt did not put there, which would run with the superuser's rights: %s (a role with elt_owner's rights, such as elt_runner, made it: remove it and find out who)",
			strings.Join(traps, "; "))
	}
	changes, err := shapeChanges(ctx, conn)
	if err != nil {
		return err
	}
	if changes != "" {
		return fmt.Errorf("migrate: refusing to run as a superuser: elt's tables changed since the last superuser's elt migrate recorded them: %s; only elt's own migrations change them, and code added to them would run with the superuser's rights. If elt_runner (or anyone with elt_owner's rights) made the change, undo it and find out who; if a DBA made it on purpose (an index, say), review select * from elt_dba.shape_changes() and accept it with call elt_dba.record_shape() as a superuser", changes)
	}
	return nil
}

// prepare creates schema elt, which holds both version tables, and upgrades a legacy layout.
func prepare(ctx context.Context, conn *pgx.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, `select to_regnamespace('elt') is not null`).Scan(&exists); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `create schema elt`); err != nil {
			return firstMigrate(fmt.Errorf("migrate: create schema elt: %w", err))
		}
	}
	return upgradeLegacy(ctx, conn)
}

// up applies the pending migrations of t. With coordinatorOnly (elt's own track on a Citus coordinator), each
// runs with Citus's DDL propagation off: what it creates stays on the coordinator.
func up(ctx context.Context, conn *pgx.Conn, t Track, onStart func(Migration), coordinatorOnly bool) ([]Migration, error) {
	m, err := migrate.NewMigrator(ctx, conn, t.VersionTable)
	if err != nil {
		return nil, firstMigrate(fmt.Errorf("prepare %s: %w", t.VersionTable, err))
	}
	if err := load(m, t); err != nil {
		return nil, err
	}
	before, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s schema version: %w", t.Name, err)
	}
	if err := checkKnown(t, before, len(m.Migrations)); err != nil {
		return nil, err
	}
	all := convert(t, m.Migrations)
	// OnStart runs inside each migration's transaction, before its SQL (tern resets the session's settings
	// after each migration, so a session-wide setting would not last).
	var localErr error
	m.OnStart = func(seq int32, _, _, _ string) {
		if coordinatorOnly && localErr == nil {
			_, localErr = conn.Exec(ctx, `set local citus.enable_ddl_propagation = off`)
		}
		if onStart != nil {
			onStart(all[seq-1])
		}
	}
	err = m.Migrate(ctx)
	if localErr != nil {
		err = fmt.Errorf("citus: turn DDL propagation off: %w", localErr)
	}
	after, verr := m.GetCurrentVersion(ctx)
	if verr != nil {
		after = before
	}
	applied := all[before:max(after, before)]
	if err != nil {
		return applied, describe(t, err)
	}
	return applied, nil
}

// Adopt gives the objects of staging, elt and the project's schemas to the owner role (elt_dba.adopt_objects):
// whoever applies migrations, often a superuser, must not own a relation that a tenant's view reads nor one
// that elt refresh must write or refresh. Before the elt track created the procedure it does nothing.
func Adopt(ctx context.Context, conn *pgx.Conn, schemas []string) error {
	if schemas == nil {
		schemas = []string{}
	}
	if exists, err := hasRoutine(ctx, conn, "elt_dba.adopt_objects(text[])"); err != nil || !exists {
		return err
	}
	if _, err := conn.Exec(ctx, `call elt_dba.adopt_objects($1)`, schemas); err != nil {
		return fmt.Errorf("give objects to elt_owner: %w", err)
	}
	return nil
}

// checkKnown fails when the database is at a version newer than the n migrations a track has.
func checkKnown(t Track, version int32, n int) error {
	if int(version) <= n {
		return nil
	}
	if t.Name == "elt" {
		return fmt.Errorf("database is at elt schema version %d but this elt binary knows only %d migrations: use a newer elt", version, n)
	}
	return fmt.Errorf("database is at project schema version %d but the project has only %d migrations: is this the project folder the database was migrated from (--project, ELT_PROJECT)?", version, n)
}

// firstMigrate explains the privilege errors of a first migrate run by a role that may not create schemas
// or roles.
func firstMigrate(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == pgerr.InsufficientPrivilege {
		return fmt.Errorf("%w (the first elt migrate creates schemas and roles: run it as a superuser, then as elt_runner)", err)
	}
	return err
}

// describe turns tern's errors into one line an operator can act on.
func describe(t Track, err error) error {
	var mErr migrate.MigrationPgError
	if errors.As(err, &mErr) {
		pg := mErr.PgError
		at := ""
		if line := pgerr.Line(mErr.Sql, pg.Position); line > 0 {
			at = fmt.Sprintf(" at line %d", line)
		}
		msg := fmt.Sprintf("%s migration %s failed%s: %s", t.Name, mErr.MigrationName, at, pgerr.Describe(pg))
		msg += "; nothing of this migration was applied"
		if pg.Code == pgerr.InsufficientPrivilege {
			msg += " (a migration that creates roles, schemas or extensions must run as a superuser)"
		}
		return &Error{Msg: msg, Err: pg}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerr.LockNotAvailable {
		return fmt.Errorf("migrate %s: %w (a lock was held longer than lock_timeout; retry when the holder is done)", t.Name, err)
	}
	return fmt.Errorf("migrate %s: %w", t.Name, err)
}

// Error is a failed migration: a message naming the track, file, line and SQL error, and the
// *pgconn.PgError underneath.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the SQL error.
func (e *Error) Unwrap() error { return e.Err }

//go:embed legacy/upgrade.sql
var legacyUpgrade string

// LegacyVersionTable recorded the single migration track of elt before the elt and project tracks.
const LegacyVersionTable = "public.elt_schema_version"

// upgradeLegacy upgrades, in one transaction, a database migrated by an elt that had one track of six
// migrations with the demo model compiled in (legacy/upgrade.sql): it keeps staging and elt's state, drops
// the model (rebuilt by the next elt refresh), and leaves the tenant map as elt.tenants_legacy for the tenant
// layer to take over. A database at another legacy version is refused.
func upgradeLegacy(ctx context.Context, conn *pgx.Conn) error {
	var legacy bool
	err := conn.QueryRow(ctx, `select to_regclass($1) is not null and to_regclass($2) is null`, LegacyVersionTable, EltVersionTable).Scan(&legacy)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if !legacy {
		return nil
	}
	v, err := readVersion(ctx, conn, LegacyVersionTable)
	if err != nil {
		return fmt.Errorf("migrate: read %s: %w", LegacyVersionTable, err)
	}
	if v != 6 {
		return fmt.Errorf("migrate: this database has the layout of an older elt at version %d of its single track; upgrade it with that elt to version 6 first, then run this elt migrate", v)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, legacyUpgrade)
		return err
	})
	if err != nil {
		var pg *pgconn.PgError
		if errors.As(err, &pg) {
			return firstMigrate(fmt.Errorf("migrate: upgrade of the single-track layout failed at line %d, nothing was changed: %s: %w",
				pgerr.Line(legacyUpgrade, pg.Position), pgerr.Describe(pg), err))
		}
		return fmt.Errorf("migrate: upgrade of the single-track layout: %w", err)
	}
	return nil
}
