package tenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// GuardOptions configure Guard.
type GuardOptions struct {
	// Interval between two looks at the tenants' sessions (default 1s): a limit is enforced at most this
	// late.
	Interval time.Duration
	// Grace is how long a statement may keep running after its cancel before its session is ended (default
	// 5s): a cancel is checked only between rows of some plans.
	Grace time.Duration
	// Logger receives one line per action. Nil discards.
	Logger *slog.Logger
}

// GuardAction is one thing the guard did to a tenant's session.
type GuardAction struct {
	Customer string
	Role     string
	PID      int32
	Action   string        // "cancel" or "terminate"
	Reason   string        // "statement", "idle in transaction" or "transaction"
	Age      time.Duration // how long the statement, idle period or transaction had lasted
	Limit    time.Duration
}

// Guard enforces, until ctx ends, the time limits of every tenant login of this database, which a tenant can
// lift in its own session (SET statement_timeout = 0) but not here: a statement running longer than the
// login's statement timeout is cancelled (and its session ended if it still runs Grace later); a session idle
// in a transaction longer than its idle timeout is ended; a transaction older than its transaction timeout is
// ended, whatever it does, so no tenant holds back vacuum with an old snapshot. It signals sessions through
// elt_admin.signal_tenant, which touches tenant logins only. A look that fails for a passing reason (the
// server restarting, out of connections or of lock memory) is logged, as an error from the third in a row on,
// and tried again (every 30 s from then on); one that cannot succeed by waiting (wrong password, missing
// privilege or database) ends the guard with that error. Otherwise it returns ctx's error.
func Guard(ctx context.Context, pool *pgxpool.Pool, opts GuardOptions) error {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Grace <= 0 {
		opts.Grace = 5 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &guard{pool: pool, opts: opts, cancelled: map[int32]cancelled{}}
	failures := 0
	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	for {
		acts, err := g.once(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && permanent(err):
			return fmt.Errorf("tenant guard: %w (nothing enforces the tenants' limits until it runs again)", err)
		case err != nil:
			failures++
			level := slog.LevelWarn
			if failures >= 3 {
				level = slog.LevelError
			}
			log.Log(ctx, level, "tenant guard: could not look at tenant sessions; trying again", "error", err, "failures in a row", failures)
		default:
			failures = 0
		}
		for _, a := range acts {
			log.Warn("tenant guard: "+a.Action+" ("+a.Reason+" limit)", "customer", a.Customer, "login", a.Role, "pid", a.PID,
				"lasted", a.Age.Round(time.Millisecond).String(), "limit", a.Limit.String())
		}
		wait := tick.C
		if failures >= 3 {
			// Out of connections or lock memory, or the server restarting: try again less often.
			wait = time.After(30 * time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		}
	}
}

// permanent reports whether err will not go away by trying again: wrong credentials (SQLSTATE class 28),
// missing privileges or objects (42), no such database (3D). The guard then exits, so that its supervisor
// and whoever reads its log see it.
func permanent(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || len(pg.Code) < 2 {
		return false
	}
	switch pg.Code[:2] {
	case "28", "42", "3D":
		return true
	}
	return false
}

type guard struct {
	pool      *pgxpool.Pool
	opts      GuardOptions
	cancelled map[int32]cancelled // statements cancelled, by backend
}

type cancelled struct {
	queryStart time.Time
	at         time.Time
}

// once looks at every tenant session once and acts on those over a limit.
func (g *guard) once(ctx context.Context) ([]GuardAction, error) {
	rows, err := g.pool.Query(ctx, `
select a.pid, t.tenant_key, t.role_name, a.state, a.query_start, now() - a.query_start, now() - a.state_change,
       now() - a.xact_start, t.statement_timeout, t.idle_in_transaction_timeout, t.transaction_timeout
from pg_catalog.pg_stat_activity as a
join elt.tenants as t on t.role_name = a.usename::text
where a.backend_type = 'client backend' and t.state = 'active'`)
	if err != nil {
		return nil, describe(err)
	}
	type session struct {
		PID                             int32
		Customer, Role                  string
		State                           *string
		QueryStart                      *time.Time
		QueryAge, StateAge, XactAge     *time.Duration
		StatementLimit, IdleLimit, Xact time.Duration
	}
	sessions, err := pgx.CollectRows(rows, pgx.RowToStructByPos[session])
	if err != nil {
		return nil, err
	}
	now := time.Now()
	seen := map[int32]bool{}
	var acts []GuardAction
	var errs []error
	act := func(s session, terminate bool, reason string, age, limit time.Duration) {
		a := GuardAction{Customer: s.Customer, Role: s.Role, PID: s.PID, Action: "cancel", Reason: reason, Age: age, Limit: limit}
		if terminate {
			a.Action = "terminate"
		}
		var done bool
		if err := g.pool.QueryRow(ctx, `select elt_admin.signal_tenant($1, $2)`, s.PID, terminate).Scan(&done); err != nil {
			errs = append(errs, fmt.Errorf("%s session %d of %s: %w", a.Action, s.PID, s.Customer, describe(err)))
			return
		}
		if done {
			acts = append(acts, a)
		}
	}
	for _, s := range sessions {
		seen[s.PID] = true
		state := ""
		if s.State != nil {
			state = *s.State
		}
		switch {
		case s.XactAge != nil && *s.XactAge > s.Xact:
			act(s, true, "transaction", *s.XactAge, s.Xact)
		case (state == "idle in transaction" || state == "idle in transaction (aborted)") && s.StateAge != nil && *s.StateAge > s.IdleLimit:
			act(s, true, "idle in transaction", *s.StateAge, s.IdleLimit)
		// A function called through the protocol's fastpath is a statement too.
		case (state == "active" || state == "fastpath function call") && s.QueryAge != nil && *s.QueryAge > s.StatementLimit && s.QueryStart != nil:
			c, ok := g.cancelled[s.PID]
			switch {
			case !ok || !c.queryStart.Equal(*s.QueryStart):
				g.cancelled[s.PID] = cancelled{queryStart: *s.QueryStart, at: now}
				act(s, false, "statement", *s.QueryAge, s.StatementLimit)
			case now.Sub(c.at) > g.opts.Grace:
				act(s, true, "statement", *s.QueryAge, s.StatementLimit)
			}
		}
	}
	for pid := range g.cancelled {
		if !seen[pid] {
			delete(g.cancelled, pid)
		}
	}
	return acts, errors.Join(errs...)
}
