package tenant

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The roles of migration 005_tenants.sql.
const (
	OwnerRole  = "elt_owner"  // owns every object; no login
	RunnerRole = "elt_runner" // the login elt runs as
	GroupRole  = "elt_tenant" // what every tenant login may read; no login
)

// rolePrefix starts every tenant login's name; the rest is random.
const rolePrefix = "tenant_"

var (
	// ErrExists is returned by Add when the customer already has a tenant login.
	ErrExists = errors.New("customer already has a tenant login")
	// ErrNotFound is returned when a customer has no tenant login.
	ErrNotFound = errors.New("customer has no tenant login")
	// ErrUnknownCustomer is returned by Add for a customer that core.customers does not hold.
	ErrUnknownCustomer = errors.New("no such customer in core.customers")
)

// Tenant is one customer's login.
type Tenant struct {
	CustomerID    string
	Role          string     // login role name (opaque)
	CreatedAt     time.Time  // when Add created it
	PasswordSetAt time.Time  // when the password was last set
	Sessions      int        // sessions open now, in any database of the cluster
	LastLogin     *time.Time // start of the newest open session; nil when none is open (PostgreSQL keeps no login history)
}

// Limits are the per-login limits Add sets. The zero value of a field means its default.
type Limits struct {
	// ConnectionLimit caps the login's concurrent sessions (default 10). A tenant cannot change it.
	ConnectionLimit int
	// StatementTimeout is the login's default statement_timeout (default 60s). A tenant can lower or raise it
	// in its own session.
	StatementTimeout time.Duration
	// IdleInTransactionTimeout is the login's default idle_in_transaction_session_timeout (default 60s). A
	// tenant can change it in its own session.
	IdleInTransactionTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.ConnectionLimit <= 0 {
		l.ConnectionLimit = 10
	}
	if l.StatementTimeout <= 0 {
		l.StatementTimeout = 60 * time.Second
	}
	if l.IdleInTransactionTimeout <= 0 {
		l.IdleInTransactionTimeout = 60 * time.Second
	}
	return l
}

// AddOptions configure Add.
type AddOptions struct {
	// Password to set; empty generates one (GeneratePassword).
	Password string
	// Limits of the login.
	Limits Limits
	// AllowUnknownCustomer creates the login even when core.customers has no such customer yet (it sees no
	// rows until refresh brings the customer in).
	AllowUnknownCustomer bool
}

// Add creates the login of customer and maps it, in one transaction, and returns it with its password. A
// customer has at most one login: Add returns ErrExists (and the existing Tenant) for a second one.
func Add(ctx context.Context, pool *pgxpool.Pool, customer string, opts AddOptions) (Tenant, string, error) {
	if customer == "" {
		return Tenant{}, "", errors.New("customer id is empty")
	}
	pw := opts.Password
	if pw == "" {
		pw = GeneratePassword()
	}
	if err := ValidatePassword(pw); err != nil {
		return Tenant{}, "", err
	}
	if t, err := Get(ctx, pool, customer); err == nil {
		return t, "", fmt.Errorf("%w: %s (login %s)", ErrExists, customer, t.Role)
	} else if !errors.Is(err, ErrNotFound) {
		return Tenant{}, "", err
	}
	if !opts.AllowUnknownCustomer {
		var known bool
		if err := pool.QueryRow(ctx, `select exists (select from core.customers where customer_id = $1)`, customer).Scan(&known); err != nil {
			return Tenant{}, "", fmt.Errorf("look up customer %s: %w", customer, err)
		}
		if !known {
			return Tenant{}, "", fmt.Errorf("%w: %s (run elt extract and elt refresh first, or pass --allow-unknown)", ErrUnknownCustomer, customer)
		}
	}
	role := newRoleName(rolePrefix)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `insert into elt.tenants (role_name, customer_id, kind) values ($1, $2, 'tenant')`, role, customer); err != nil {
			return err
		}
		return createLogin(ctx, tx, role, pw, opts.Limits, time.Time{})
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			t, gerr := Get(ctx, pool, customer)
			if gerr == nil {
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

// createLogin creates role as a member of elt_tenant with the limits (set by applyLimits), inside tx. A
// non-zero validUntil makes the login expire (probe logins).
func createLogin(ctx context.Context, tx pgx.Tx, role, pw string, limits Limits, validUntil time.Time) error {
	verifier, err := scramVerifier(pw)
	if err != nil {
		return err
	}
	ident := pgx.Identifier{role}.Sanitize()
	q := "create role " + ident + " with login inherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls" +
		" password " + quoteLiteral(verifier)
	if !validUntil.IsZero() {
		q += " valid until " + quoteLiteral(validUntil.UTC().Format("2006-01-02 15:04:05+00"))
	}
	q += " in role " + pgx.Identifier{GroupRole}.Sanitize()
	if _, err := tx.Exec(ctx, q); err != nil {
		return err
	}
	return applyLimits(ctx, tx, role, limits)
}

// applyLimits sets the connection limit and the session defaults of role.
func applyLimits(ctx context.Context, tx pgx.Tx, role string, limits Limits) error {
	limits = limits.withDefaults()
	ident := pgx.Identifier{role}.Sanitize()
	stmts := []string{
		"alter role " + ident + " connection limit " + strconv.Itoa(limits.ConnectionLimit),
		"alter role " + ident + " set statement_timeout = " + strconv.FormatInt(limits.StatementTimeout.Milliseconds(), 10),
		"alter role " + ident + " set idle_in_transaction_session_timeout = " + strconv.FormatInt(limits.IdleInTransactionTimeout.Milliseconds(), 10),
		"alter role " + ident + " set default_transaction_read_only = on",
		"alter role " + ident + " set search_path = analytics",
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// SetLimits sets the connection limit and session defaults of customer's login again, e.g. after the tenant
// reset its own defaults (a login may ALTER ROLE itself SET ...; elt tenant check reports it).
func SetLimits(ctx context.Context, pool *pgxpool.Pool, customer string, limits Limits) error {
	t, err := Get(ctx, pool, customer)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return applyLimits(ctx, tx, t.Role, limits) })
	if err != nil {
		return fmt.Errorf("set limits of %s: %w", customer, describe(err))
	}
	return nil
}

// describe adds what an operator can do to the privilege errors elt_runner can meet.
func describe(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return fmt.Errorf("%w (connect as elt_runner, or a role with createrole that is a member of elt_owner)", err)
	}
	return err
}

// Get returns the login of customer, or ErrNotFound.
func Get(ctx context.Context, pool *pgxpool.Pool, customer string) (Tenant, error) {
	ts, err := list(ctx, pool, customer)
	if err != nil {
		return Tenant{}, err
	}
	if len(ts) == 0 {
		return Tenant{}, fmt.Errorf("%w: %s", ErrNotFound, customer)
	}
	return ts[0], nil
}

// List returns every tenant login, by customer id.
func List(ctx context.Context, pool *pgxpool.Pool) ([]Tenant, error) {
	return list(ctx, pool, "")
}

func list(ctx context.Context, pool *pgxpool.Pool, customer string) ([]Tenant, error) {
	rows, err := pool.Query(ctx, `
select t.customer_id, t.role_name, t.created_at, t.password_set_at,
       count(a.pid)::int, max(a.backend_start)
from elt.tenants as t
left join pg_catalog.pg_stat_activity as a on a.usename = t.role_name
where t.kind = 'tenant' and ($1 = '' or t.customer_id = $1)
group by t.customer_id, t.role_name, t.created_at, t.password_set_at
order by t.customer_id`, customer)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Tenant, error) {
		var t Tenant
		err := r.Scan(&t.CustomerID, &t.Role, &t.CreatedAt, &t.PasswordSetAt, &t.Sessions, &t.LastLogin)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ts, nil
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
		role, err := mappedRole(ctx, tx, `update elt.tenants set password_set_at = now() where customer_id = $1 and kind = 'tenant' returning role_name`, customer)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "alter role "+pgx.Identifier{role}.Sanitize()+" password "+quoteLiteral(verifier))
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

// Remove cuts customer's access at once and drops its login: in one transaction it unmaps the login (its open
// sessions see no rows from then on) and forbids it to log in; then it ends the login's sessions in every
// database and drops the role. It returns the role name removed.
func Remove(ctx context.Context, pool *pgxpool.Pool, customer string) (string, error) {
	var role string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		role, err = mappedRole(ctx, tx, `delete from elt.tenants where customer_id = $1 and kind = 'tenant' returning role_name`, customer)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "alter role "+pgx.Identifier{role}.Sanitize()+" nologin")
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", err
		}
		return "", fmt.Errorf("remove tenant %s: %w", customer, describe(err))
	}
	if err := dropLogin(ctx, pool, role); err != nil {
		return role, fmt.Errorf("tenant %s can no longer log in or read anything, but: %w", customer, err)
	}
	return role, nil
}

// mappedRole runs sql, an update or delete of customer's mapping ($1) returning role_name, in tx and returns
// the role; ErrNotFound (wrapped) when customer has no login.
func mappedRole(ctx context.Context, tx pgx.Tx, sql, customer string) (string, error) {
	var role string
	err := tx.QueryRow(ctx, sql, customer).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: %s", ErrNotFound, customer)
	}
	return role, err
}

// dropLogin ends role's sessions (waiting up to 5 s for each) and drops it.
func dropLogin(ctx context.Context, pool *pgxpool.Pool, role string) error {
	if _, err := pool.Exec(ctx, `select pg_catalog.pg_terminate_backend(pid, 5000) from pg_catalog.pg_stat_activity where usename = $1`, role); err != nil {
		return fmt.Errorf("end sessions of %s: %w", role, describe(err))
	}
	if _, err := pool.Exec(ctx, "drop role if exists "+pgx.Identifier{role}.Sanitize()); err != nil {
		return fmt.Errorf("drop role %s: %w (drop what it owns with DROP OWNED BY in each database, then DROP ROLE)", role, describe(err))
	}
	return nil
}
