package refresh

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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
	var (
		pid   int32
		since *time.Time
		app   string
	)
	err := conn.QueryRow(ctx, `
select l.pid, a.backend_start, coalesce(a.application_name, '')
from pg_catalog.pg_locks as l
left join pg_catalog.pg_stat_activity as a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.objsubid = 1
  and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)
limit 1`, LockKey).Scan(&pid, &since, &app)
	if err != nil {
		return fmt.Errorf("%w (its session could not be identified: %v)", ErrBusy, err)
	}
	holder := fmt.Sprintf("backend pid %d", pid)
	if app != "" {
		holder += ", application " + app
	}
	if since != nil {
		holder += ", connected since " + since.UTC().Format(time.RFC3339)
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
