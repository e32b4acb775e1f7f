package refresh

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/internal/pglock"
)

// LockKey names the session advisory lock that keeps two refresh runs from overlapping
// (pg_advisory_lock(hashtextextended(LockKey, 0))); whatever must not run beside a refresh takes it too.
const LockKey = "elt:refresh"

// lock takes the refresh lock on conn for the whole run, or returns ErrBusy naming the session that holds it.
func lock(ctx context.Context, conn *pgxpool.Conn) error {
	var ok bool
	if err := conn.QueryRow(ctx, `select pg_try_advisory_lock(hashtextextended($1, 0))`, LockKey).Scan(&ok); err != nil {
		return fmt.Errorf("refresh: take refresh lock: %w", err)
	}
	if ok {
		return nil
	}
	holder, err := pglock.Who(ctx, conn, LockKey)
	if err != nil {
		return fmt.Errorf("%w (its session could not be identified: %v)", ErrBusy, err)
	}
	return fmt.Errorf("%w (%s); runs never overlap: wait for it to finish", ErrBusy, holder)
}

// unlock releases the refresh lock. If that fails the connection is closed, which releases it too, rather
// than returned to the pool still holding the lock.
func unlock(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `select pg_advisory_unlock(hashtextextended($1, 0))`, LockKey); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}
