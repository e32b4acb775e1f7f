package tenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/internal/pgerr"
)

// The roles of the elt track's migration 003_roles.sql.
const (
	OwnerRole  = "elt_owner"        // owns every object; no login
	RunnerRole = "elt_runner"       // the login elt runs as
	GroupRole  = "elt_tenant"       // every tenant login belongs to it; it has no privileges
	AdminRole  = "elt_tenant_admin" // owns the functions of schema elt_admin; no login, no members
)

// rolePrefix starts every tenant login's name; the rest is 16 random hex digits.
const rolePrefix = "tenant_"

var roleRE = regexp.MustCompile(`^tenant_[0-9a-f]{16}$`)

var (
	// ErrExists is returned by Add when the customer already has a tenant login.
	ErrExists = errors.New("customer already has a tenant login")
	// ErrNotFound is returned when a customer has no tenant login.
	ErrNotFound = errors.New("customer has no tenant login")
	// ErrUnknownCustomer is returned by Add for a customer that the project's customers relation does not hold.
	ErrUnknownCustomer = errors.New("no such customer")
	// ErrPurged is returned by Add for a customer whose data was purged.
	ErrPurged = errors.New("customer was purged")
)

// Tenant is one customer's login.
type Tenant struct {
	Key           string     // the customer's tenant key value, e.g. cus_0001
	Role          string     // login role name, and the name of its schema (opaque)
	State         string     // active, removed or purged
	CreatedAt     time.Time  // when Add first created it
	PasswordSetAt time.Time  // when the password was last set
	Limits        Limits     // as set by Add or SetLimits
	Sessions      int        // sessions open now, in any database of the cluster
	LastLogin     *time.Time // start of the newest open session; nil when none is open (PostgreSQL keeps no login history)
}

// Limits are the per-login limits. The zero value of a field means its default. A tenant cannot lift the
// connection limit or temp_file_limit; the timeouts are session defaults it can change in its session, which
// elt tenant guard enforces anyway.
type Limits struct {
	ConnectionLimit          int           // concurrent sessions (default 10)
	StatementTimeout         time.Duration // statement_timeout default, and the guard's limit (default 60s)
	IdleInTransactionTimeout time.Duration // idle_in_transaction_session_timeout default, and the guard's (default 60s)
	TransactionTimeout       time.Duration // longest life of a transaction and its snapshot, enforced by the guard (default 15m)
	TempFileLimit            int64         // temp_file_limit in kB (default 1 GiB); a superuser setting the tenant cannot lift
	TimeZone                 string        // TimeZone of the login's sessions (default: the customer's, Layer.ZoneOf)
}

// Default limits (docs/tenants.md).
const (
	DefaultConnectionLimit          = 10
	DefaultStatementTimeout         = 60 * time.Second
	DefaultIdleInTransactionTimeout = 60 * time.Second
	DefaultTransactionTimeout       = 15 * time.Minute
	DefaultTempFileLimit            = 1 << 20 // kB: 1 GiB
	DefaultTimeZone                 = "UTC"
)

// forCustomer is limits with its defaults, and without a TimeZone the customer's (layer.ZoneOf).
func (l Limits) forCustomer(ctx context.Context, q Querier, layer *Layer, customer string) (Limits, error) {
	if l.TimeZone == "" {
		zone, err := layer.ZoneOf(ctx, q, customer)
		if err != nil {
			return Limits{}, err
		}
		l.TimeZone = zone
	}
	return l.withDefaults(), nil
}

func (l Limits) withDefaults() Limits {
	if l.ConnectionLimit <= 0 {
		l.ConnectionLimit = DefaultConnectionLimit
	}
	if l.StatementTimeout <= 0 {
		l.StatementTimeout = DefaultStatementTimeout
	}
	if l.IdleInTransactionTimeout <= 0 {
		l.IdleInTransactionTimeout = DefaultIdleInTransactionTimeout
	}
	if l.TransactionTimeout <= 0 {
		l.TransactionTimeout = DefaultTransactionTimeout
	}
	if l.TempFileLimit <= 0 {
		l.TempFileLimit = DefaultTempFileLimit
	}
	if l.TimeZone == "" {
		l.TimeZone = DefaultTimeZone
	}
	return l
}

// AddOptions configure Add.
type AddOptions struct {
	// Password to set; empty generates one (GeneratePassword).
	Password string
	// Limits of the login.
	Limits Limits
	// AllowUnknownCustomer creates the login even when the project's customers relation has no such customer
	// yet (it sees no rows until refresh brings the customer's data in).
	AllowUnknownCustomer bool
	// Role names the login (tenant_ and 16 hex digits) instead of a random name, for a restore or a test
	// that needs a known name; a customer that had a login keeps its name whatever this says.
	Role string
}

// Add creates the login of customer, maps it, and builds its schema, partitions and views, all in one
// transaction, and returns it with its password. A customer has at most one login: Add returns ErrExists
// (and the existing Tenant) for a second one. A customer whose login was removed gets its old login name,
// schema and partitions back; a purged customer is refused (ErrPurged).
func Add(ctx context.Context, pool *pgxpool.Pool, layer *Layer, customer string, opts AddOptions) (Tenant, string, error) {
	if err := validKey(customer); err != nil {
		return Tenant{}, "", err
	}
	customer, err := layer.Canonical(ctx, pool, customer)
	if err != nil {
		return Tenant{}, "", err
	}
	pw := opts.Password
	if pw == "" {
		pw = GeneratePassword()
	}
	if err := ValidatePassword(pw); err != nil {
		return Tenant{}, "", err
	}
	verifier, err := scramVerifier(pw)
	if err != nil {
		return Tenant{}, "", err
	}
	if opts.Role != "" && !roleRE.MatchString(opts.Role) {
		return Tenant{}, "", fmt.Errorf("login name %q is not tenant_ and 16 hex digits", opts.Role)
	}
	prev, err := get(ctx, pool, customer)
	switch {
	case err == nil && prev.State == "active":
		return prev, "", fmt.Errorf("%w: %s (login %s)", ErrExists, customer, prev.Role)
	case err == nil && prev.State == "purged":
		return prev, "", fmt.Errorf("%w: %s (its data was deleted by elt tenant remove --purge; see elt.purges)", ErrPurged, customer)
	case err != nil && !errors.Is(err, ErrNotFound):
		return Tenant{}, "", err
	}
	if !opts.AllowUnknownCustomer && layer.Customers != "" {
		known, err := layer.customerExists(ctx, pool, customer)
		if err != nil {
			return Tenant{}, "", err
		}
		if !known {
			return Tenant{}, "", fmt.Errorf("%w: %s is not in %s (run elt extract and elt refresh first, or pass --allow-unknown)", ErrUnknownCustomer, customer, layer.Customers)
		}
	}
	if err := layer.ensureDefaults(ctx, pool); err != nil {
		return Tenant{}, "", err
	}
	role := prev.Role
	if role == "" {
		role = opts.Role
	}
	if role == "" {
		role = newRoleName(rolePrefix)
	}
	limits, err := opts.Limits.forCustomer(ctx, pool, layer, customer)
	if err != nil {
		return Tenant{}, "", err
	}
	// Citus: the login is created in a transaction of its own. Citus creates it on the workers over a
	// connection as elt_tenant_admin, and what follows reaches them as other roles over other connections,
	// which would not see an uncommitted login. Until configured below it accepts no connection (limit 0);
	// if the rest fails, it is dropped again.
	createdApart := false
	if layer.Citus {
		if _, err := pool.Exec(ctx, `select elt_admin.create_login($1, $2, null)`, role, verifier); err != nil {
			return Tenant{}, "", fmt.Errorf("add tenant login for %s: %w", customer, describe(err))
		}
		createdApart = true
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if prev.Role != "" {
			_, err = tx.Exec(ctx, `update elt.tenants set state = 'active', removed_at = null, password_set_at = now() where tenant_key = $1`, customer)
		} else {
			_, err = tx.Exec(ctx, `insert into elt.tenants (tenant_key, role_name, connection_limit, statement_timeout,
				idle_in_transaction_timeout, transaction_timeout, temp_file_limit_kb, time_zone)
				values ($1, $2, 0, '0', '0', '0', 0, 'UTC')`, customer, role)
		}
		if err != nil {
			return err
		}
		if !createdApart {
			if _, err := tx.Exec(ctx, `select elt_admin.create_login($1, $2, null)`, role, verifier); err != nil {
				return err
			}
		}
		if err := setLimits(ctx, tx, role, customer, limits); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `select pg_catalog.set_config('lock_timeout', '10s', true)`); err != nil {
			return err
		}
		if err := grantConnect(ctx, tx, role, true); err != nil {
			return err
		}
		return buildTenant(ctx, tx, layer, role, customer)
	})
	if err != nil && createdApart {
		if _, derr := pool.Exec(context.WithoutCancel(ctx), `select elt_admin.drop_login($1)`, role); derr != nil {
			err = fmt.Errorf("%w (and dropping the login %s again failed: %w)", err, role, derr)
		}
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerr.UniqueViolation {
			if t, gerr := Get(ctx, pool, customer); gerr == nil {
				return t, "", fmt.Errorf("%w: %s (login %s)", ErrExists, customer, t.Role)
			}
		}
		return Tenant{}, "", fmt.Errorf("add tenant login for %s: %w", customer, describe(err))
	}
	t, err := Get(ctx, pool, customer)
	if err != nil {
		return Tenant{}, "", err
	}
	return t, pw, nil
}

// buildTenant builds one tenant's objects (Layer.build) as elt_owner and records the layer's hash, in tx.
func buildTenant(ctx context.Context, tx pgx.Tx, layer *Layer, role, key string) error {
	if err := asOwner(ctx, tx); err != nil {
		return err
	}
	if err := layer.build(ctx, tx, role, key); err != nil {
		return err
	}
	// Back to the session's own role: elt.tenants belongs to elt_owner, but whoever runs elt (elt_runner or
	// a superuser) writes it.
	if _, err := tx.Exec(ctx, `select pg_catalog.set_config('role', 'none', true)`); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `update elt.tenants set layer_sha256 = $2 where tenant_key = $1`, key, layer.SHA)
	return err
}

// validKey accepts a customer key elt can keep and quote: printable, at most 200 characters.
func validKey(key string) error {
	if key == "" {
		return errors.New("customer id is empty")
	}
	if len(key) > 200 {
		return errors.New("customer id is longer than 200 characters")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("customer id %q holds a control character", key)
		}
	}
	return nil
}

// customerExists reports whether the customers relation holds key. The key is sent as an untyped literal
// (simple protocol), so the server reads it as the key column's type and prunes to one partition.
func (l *Layer) customerExists(ctx context.Context, pool *pgxpool.Pool, key string) (bool, error) {
	schema, table, _ := strings.Cut(l.Customers, ".")
	var known bool
	err := pool.QueryRow(ctx, "select exists (select from "+pgx.Identifier{schema, table}.Sanitize()+" where "+pgx.Identifier{l.Key}.Sanitize()+" = $1)",
		pgx.QueryExecModeSimpleProtocol, key).Scan(&known)
	if err != nil {
		return false, fmt.Errorf("look up customer %s in %s: %w", key, l.Customers, err)
	}
	return known, nil
}

// setLimits gives role its connection limit and session defaults (elt_admin.configure_login) and records the
// limits in the map, in tx.
func setLimits(ctx context.Context, tx pgx.Tx, role, key string, limits Limits) error {
	if _, err := tx.Exec(ctx, `select elt_admin.configure_login($1, $2, $3, $4, $5, $6)`,
		role, limits.ConnectionLimit, limits.StatementTimeout, limits.IdleInTransactionTimeout, limits.TempFileLimit, limits.TimeZone); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `update elt.tenants set connection_limit = $2, statement_timeout = $3, idle_in_transaction_timeout = $4,
		transaction_timeout = $5, temp_file_limit_kb = $6, time_zone = $7 where tenant_key = $1`,
		key, limits.ConnectionLimit, limits.StatementTimeout, limits.IdleInTransactionTimeout, limits.TransactionTimeout,
		limits.TempFileLimit, limits.TimeZone)
	return err
}

// SetLimits sets the limits and session defaults of customer's login again, e.g. after the tenant reset its
// own defaults (a login may ALTER ROLE itself SET ...; elt tenant check reports it) or its customer's time
// zone changed: without a TimeZone in limits, the customer's (layer.ZoneOf; layer may be nil: UTC). It
// returns the limits it set.
func SetLimits(ctx context.Context, pool *pgxpool.Pool, layer *Layer, customer string, limits Limits) (Limits, error) {
	t, err := Get(ctx, pool, customer)
	if err != nil {
		return Limits{}, err
	}
	if limits, err = limits.forCustomer(ctx, pool, layer, customer); err != nil {
		return Limits{}, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return setLimits(ctx, tx, t.Role, customer, limits) })
	if err != nil {
		return Limits{}, fmt.Errorf("set limits of %s: %w", customer, describe(err))
	}
	return limits, nil
}

// describe adds what an operator can do to the privilege errors elt_runner can meet.
func describe(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == pgerr.InsufficientPrivilege && strings.Contains(pgErr.Message, "database"):
			return fmt.Errorf("%w (elt_owner lacks a database privilege: run elt migrate once as a superuser or the database owner, or call elt_dba.harden_database() as one)", err)
		case pgErr.Code == pgerr.InsufficientPrivilege:
			return fmt.Errorf("%w (connect as elt_runner, created by elt migrate, or a superuser)", err)
		case pgErr.Code == pgerr.UndefinedFunction && strings.Contains(pgErr.Message, "elt_admin."):
			return fmt.Errorf("%w (run elt migrate: this database lacks elt's tenant functions)", err)
		}
	}
	return err
}

// Get returns the active login of customer, or ErrNotFound.
func Get(ctx context.Context, pool *pgxpool.Pool, customer string) (Tenant, error) {
	t, err := get(ctx, pool, customer)
	if err == nil && t.State != "active" {
		return t, fmt.Errorf("%w: %s (its login was %s)", ErrNotFound, customer, t.State)
	}
	return t, err
}

// get returns customer's row in the map, whatever its state, or ErrNotFound.
func get(ctx context.Context, pool *pgxpool.Pool, customer string) (Tenant, error) {
	ts, err := list(ctx, pool, customer, true)
	if err != nil {
		return Tenant{}, err
	}
	if len(ts) == 0 {
		return Tenant{}, fmt.Errorf("%w: %s", ErrNotFound, customer)
	}
	return ts[0], nil
}

// List returns every active tenant login, by customer key.
func List(ctx context.Context, pool *pgxpool.Pool) ([]Tenant, error) {
	return list(ctx, pool, "", false)
}

// ListAll returns every tenant this database has had, removed and purged ones included, by customer key.
func ListAll(ctx context.Context, pool *pgxpool.Pool) ([]Tenant, error) {
	return list(ctx, pool, "", true)
}

func list(ctx context.Context, pool *pgxpool.Pool, customer string, anyState bool) ([]Tenant, error) {
	rows, err := pool.Query(ctx, `
select t.tenant_key, t.role_name, t.state, t.created_at, t.password_set_at,
       t.connection_limit, t.statement_timeout, t.idle_in_transaction_timeout, t.transaction_timeout,
       t.temp_file_limit_kb, t.time_zone,
       coalesce(a.sessions, 0), a.last_login
from elt.tenants as t
left join lateral (
    select count(*)::int as sessions, max(s.backend_start) as last_login
    from pg_catalog.pg_stat_activity as s
    where s.usename = t.role_name
) as a on t.state = 'active'
where ($1 or t.state = 'active') and ($2 = '' or t.tenant_key = $2)
order by t.tenant_key`, anyState, customer)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", describe(err))
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tenant, error) {
		var t Tenant
		var limits Limits
		err := r.Scan(&t.Key, &t.Role, &t.State, &t.CreatedAt, &t.PasswordSetAt,
			&limits.ConnectionLimit, &limits.StatementTimeout, &limits.IdleInTransactionTimeout, &limits.TransactionTimeout,
			&limits.TempFileLimit, &limits.TimeZone, &t.Sessions, &t.LastLogin)
		t.Limits = limits
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ts, nil
}

// Ensure is Add for a customer that may have a login already (elt tenant add --if-not-exists, which a demo
// or a provisioning script runs again): an existing login is kept as it is, and gets a new password only when
// newPassword says the caller has lost its own (a password file that is gone), since elt never keeps one.
// created says whether it was made now; the password is "" when the existing one stays.
func Ensure(ctx context.Context, pool *pgxpool.Pool, layer *Layer, customer string, opts AddOptions, newPassword bool) (t Tenant, password string, created bool, err error) {
	t, password, err = Add(ctx, pool, layer, customer, opts)
	if !errors.Is(err, ErrExists) {
		return t, password, err == nil, err
	}
	if !newPassword {
		return t, "", false, nil
	}
	password, err = Rotate(ctx, pool, customer, opts.Password)
	return t, password, false, err
}

// Rotate sets a new password for customer's login (password empty: a generated one) and returns it. Open
// sessions stay open; Remove and Add again to cut them too.
func Rotate(ctx context.Context, pool *pgxpool.Pool, customer, password string) (string, error) {
	if password == "" {
		password = GeneratePassword()
	}
	if err := ValidatePassword(password); err != nil {
		return "", err
	}
	verifier, err := scramVerifier(password)
	if err != nil {
		return "", err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		role, err := mappedRole(ctx, tx, `update elt.tenants set password_set_at = now() where tenant_key = $1 and state = 'active' returning role_name`, customer)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `select elt_admin.set_password($1, $2)`, role, verifier)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", err
		}
		return "", fmt.Errorf("rotate password of %s: %w", customer, describe(err))
	}
	return password, nil
}

// Remove cuts customer's access at once and drops its login: in one transaction it marks the customer
// removed and forbids the login to log in; then it ends the login's sessions, drops the tenant's schema and
// its CONNECT, and drops the login with whatever the tenant made of its own role (default privileges, say).
// The customer's partitions, and so its data, stay (Purge deletes them). If a step after the first fails,
// Remove run again on the removed customer finishes the job. It returns the login name.
func Remove(ctx context.Context, pool *pgxpool.Pool, customer string) (string, error) {
	var role string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		role, err = mappedRole(ctx, tx, `update elt.tenants set state = 'removed', removed_at = now(), layer_sha256 = null
			where tenant_key = $1 and state = 'active' returning role_name`, customer)
		if errors.Is(err, ErrNotFound) {
			// A removal that stopped half-way: its login or schema is still there.
			var left bool
			qerr := tx.QueryRow(ctx, `select t.role_name, exists (select from pg_catalog.pg_roles as r where r.rolname = t.role_name)
				or to_regnamespace(t.role_name) is not null
				from elt.tenants as t where t.tenant_key = $1 and t.state <> 'active'`, customer).Scan(&role, &left)
			if qerr != nil || !left {
				return err
			}
		} else if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `select elt_admin.lock_login($1)`, role)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", err
		}
		return "", fmt.Errorf("remove tenant %s: %w", customer, describe(err))
	}
	// The login can no longer log in (committed): end its sessions; its views are dropped as soon as the
	// ended sessions let go of them (lock_timeout 10s).
	if _, err := pool.Exec(ctx, `select elt_admin.signal_tenant(a.pid, true) from pg_catalog.pg_stat_activity as a where a.usename = $1`, role); err != nil {
		return role, fmt.Errorf("tenant %s can no longer log in, but its sessions could not be ended: %w (run elt tenant remove %s again)", customer, describe(err), customer)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Another tenant may hold a lock on one of the views (catalog functions lock what they inspect).
		if _, err := tx.Exec(ctx, `select elt_admin.end_lock_holders(array(select d.objid::regclass from pg_catalog.pg_depend as d
			where d.refclassid = 'pg_catalog.pg_namespace'::regclass and d.refobjid = to_regnamespace($1)
			  and d.classid = 'pg_catalog.pg_class'::regclass), false)`, role); err != nil {
			return err
		}
		if err := asOwner(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "drop schema if exists "+pgx.Identifier{role}.Sanitize()+" cascade"); err != nil {
			return err
		}
		if err := revokeGranted(ctx, tx, role); err != nil {
			return err
		}
		return grantConnect(ctx, tx, role, false)
	})
	if err != nil {
		return role, fmt.Errorf("tenant %s can no longer log in, but its schema %s could not be dropped: %w (run elt tenant remove %s again)", customer, role, describe(err), customer)
	}
	if _, err := pool.Exec(ctx, `select elt_admin.drop_login($1)`, role); err != nil {
		return role, fmt.Errorf("tenant %s can no longer log in and its schema is gone, but its login %s could not be dropped: %w (it may own objects or hold privileges in another database: drop them there with DROP OWNED BY, then run elt tenant remove %s again)",
			customer, role, describe(err), customer)
	}
	return role, nil
}

// revokeGranted revokes, in tx acting as elt_owner, the privileges elt_owner granted role on relations, their
// columns and schemas: on Citus a tenant reads its own partitions with privileges of its own
// (Layer.citusGrants), which elt_admin.drop_login's DROP OWNED BY, run as elt_tenant_admin, may not revoke. On
// PostgreSQL elt grants a login nothing there, and this finds nothing.
func revokeGranted(ctx context.Context, tx pgx.Tx, role string) error {
	rows, err := tx.Query(ctx, `
with r as (select oid from pg_catalog.pg_roles where rolname = $1),
     o as (select oid from pg_catalog.pg_roles where rolname = 'elt_owner')
select pg_catalog.format('revoke all on table %s from %I', c.oid::regclass, $1::text)
from pg_catalog.pg_class as c, r, o
where exists (select from pg_catalog.aclexplode(c.relacl) as a where a.grantee = r.oid and a.grantor = o.oid)
   or exists (select from pg_catalog.pg_attribute as t, pg_catalog.aclexplode(t.attacl) as a
              where t.attrelid = c.oid and t.attacl is not null and a.grantee = r.oid and a.grantor = o.oid)
union all
select pg_catalog.format('revoke all on schema %I from %I', n.nspname, $1::text)
from pg_catalog.pg_namespace as n, r, o
where exists (select from pg_catalog.aclexplode(n.nspacl) as a where a.grantee = r.oid and a.grantor = o.oid)`, role)
	if err != nil {
		return fmt.Errorf("list the privileges of %s: %w", role, err)
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the privileges of %s: %w", role, err)
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// grantConnect grants (or revokes) CONNECT on this database to role, as elt_owner, which holds it with
// grant option (elt_dba.harden_database).
func grantConnect(ctx context.Context, tx pgx.Tx, role string, grant bool) error {
	f := `select pg_catalog.format('grant connect on database %I to %I', pg_catalog.current_database(), $1::text)`
	if !grant {
		var exists bool
		if err := tx.QueryRow(ctx, `select exists (select from pg_catalog.pg_roles where rolname = $1)`, role).Scan(&exists); err != nil || !exists {
			return err
		}
		f = `select pg_catalog.format('revoke connect on database %I from %I', pg_catalog.current_database(), $1::text)`
	}
	var stmt string
	if err := tx.QueryRow(ctx, f, role).Scan(&stmt); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, stmt)
	return err
}

// mappedRole runs sql, an update of customer's mapping ($1) returning role_name, in tx and returns the role;
// ErrNotFound (wrapped) when customer has no active login.
func mappedRole(ctx context.Context, tx pgx.Tx, sql, customer string) (string, error) {
	var role string
	err := tx.QueryRow(ctx, sql, customer).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, customer)
	}
	return role, err
}

// SyncResult says what Sync did.
type SyncResult struct {
	Tenants int // active tenants
	Rebuilt int // tenants whose objects were (re)built
	Adopted int // tenant logins taken over from the single-track layout (elt.tenants_legacy)
}

// Sync makes every active tenant's objects match the layer: after a migration changed a published relation or
// a partitioned table, after the declarations in elt.yaml changed, or after an upgrade from the single-track
// layout. Each tenant is rebuilt in its own transaction (so a failure leaves every tenant either rebuilt or as
// it was, and the next Sync resumes); tenants already built from this layer are skipped unless force is set.
func Sync(ctx context.Context, pool *pgxpool.Pool, layer *Layer, force bool, log *slog.Logger) (SyncResult, error) {
	var res SyncResult
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	adopted, err := adoptLegacy(ctx, pool)
	if err != nil {
		return res, err
	}
	res.Adopted = adopted
	if err := layer.ensureDefaults(ctx, pool); err != nil {
		return res, err
	}
	rows, err := pool.Query(ctx, `select tenant_key, role_name, coalesce(layer_sha256, '') from elt.tenants where state = 'active' order by tenant_key`)
	if err != nil {
		return res, fmt.Errorf("sync tenants: %w", describe(err))
	}
	type row struct{ Key, Role, SHA string }
	ts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		return res, fmt.Errorf("sync tenants: %w", err)
	}
	res.Tenants = len(ts)
	for _, t := range ts {
		if t.SHA == layer.SHA && !force {
			continue
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if t.SHA == "" {
				// Never built (an adopted login): its session defaults and CONNECT come with it.
				if err := configureAdopted(ctx, tx, t.Role, t.Key); err != nil {
					return err
				}
			}
			return buildTenant(ctx, tx, layer, t.Role, t.Key)
		})
		if err != nil {
			return res, fmt.Errorf("sync tenant %s (%s): %w; the tenants before it are done, run elt tenant sync again once fixed", t.Key, t.Role, describe(err))
		}
		res.Rebuilt++
	}
	if res.Rebuilt > 0 {
		log.Info("tenant objects rebuilt", "tenants", res.Rebuilt, "of", res.Tenants)
	}
	return res, nil
}

// adoptLegacy moves the logins of the single-track layout's map (elt.tenants_legacy, left by the upgrade in
// package migrate) into elt.tenants with default limits, and drops the old map.
func adoptLegacy(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var legacy bool
	if err := pool.QueryRow(ctx, `select to_regclass('elt.tenants_legacy') is not null`).Scan(&legacy); err != nil {
		return 0, fmt.Errorf("look for the old tenant map: %w", err)
	}
	if !legacy {
		return 0, nil
	}
	l := Limits{}.withDefaults()
	var n int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
insert into elt.tenants (tenant_key, role_name, created_at, password_set_at, connection_limit, statement_timeout,
                         idle_in_transaction_timeout, transaction_timeout, temp_file_limit_kb, time_zone)
select customer_id, role_name, created_at, password_set_at, $1, $2, $3, $4, $5, $6
from elt.tenants_legacy
where kind = 'tenant'
  and exists (select from pg_catalog.pg_roles as r where r.rolname = role_name)`,
			l.ConnectionLimit, l.StatementTimeout, l.IdleInTransactionTimeout, l.TransactionTimeout, l.TempFileLimit, l.TimeZone)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `drop table elt.tenants_legacy`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("take over the logins of the old tenant map: %w", describe(err))
	}
	return int(n), nil
}

// configureAdopted gives a login taken over from the old map its limits (from the map) and CONNECT.
func configureAdopted(ctx context.Context, tx pgx.Tx, role, key string) error {
	var l Limits
	err := tx.QueryRow(ctx, `select connection_limit, statement_timeout, idle_in_transaction_timeout, transaction_timeout, temp_file_limit_kb, time_zone
		from elt.tenants where tenant_key = $1`, key).Scan(&l.ConnectionLimit, &l.StatementTimeout, &l.IdleInTransactionTimeout,
		&l.TransactionTimeout, &l.TempFileLimit, &l.TimeZone)
	if err != nil {
		return err
	}
	if err := setLimits(ctx, tx, role, key, l); err != nil {
		return err
	}
	return grantConnect(ctx, tx, role, true)
}
