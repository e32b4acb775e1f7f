package extract

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/internal/pglock"
)

// ErrLocked is returned (wrapped) when another process is extracting the same source.
var ErrLocked = errors.New("source is locked")

// sourceLock is a session advisory lock on one source, held on a dedicated connection for the whole run.
type sourceLock struct {
	conn *pgxpool.Conn
	key  string
	app  string // the connection's application_name before the lock, restored at unlock
}

// lockSource takes the source's advisory lock without waiting; if another session holds it, the error says
// who (its application name, which names host and pid, and since when) and which run it is doing.
func lockSource(ctx context.Context, pool *pgxpool.Pool, source string) (*sourceLock, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	host, _ := os.Hostname()
	app := fmt.Sprintf("elt extract %s pid %d", host, os.Getpid())
	if len(app) > 63 {
		app = app[:63]
	}
	key := "elt:extract:" + source
	var ok bool
	var prevApp string
	err = conn.QueryRow(ctx, `select current_setting('application_name'), set_config('application_name', $2, false) is not null and pg_try_advisory_lock(hashtextextended($1, 0))`, key, app).Scan(&prevApp, &ok)
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock source: %w", err)
	}
	if ok {
		return &sourceLock{conn: conn, key: key, app: prevApp}, nil
	}
	defer func() {
		_, _ = conn.Exec(ctx, `select set_config('application_name', $1, false)`, prevApp)
		conn.Release()
	}()
	holder, err := pglock.Who(ctx, conn, key)
	if err != nil {
		return nil, fmt.Errorf("%w by another session (and its details are unreadable: %v)", ErrLocked, err)
	}
	var runID *int64
	var started *time.Time
	err = conn.QueryRow(ctx, `
		select run_id, started_at from elt.runs
		where kind = 'extract' and target = $1 and status = 'running'
		order by run_id desc limit 1`, source).Scan(&runID, &started)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w by another session (%s; its run is unreadable: %v)", ErrLocked, holder, err)
	}
	msg := " (" + holder.String() + ")"
	if runID != nil && started != nil {
		msg += fmt.Sprintf(", run %d started %s", *runID, started.UTC().Format(time.RFC3339))
	}
	return nil, fmt.Errorf("%w by another elt extract%s; try again when it has finished", ErrLocked, msg)
}

// unlock releases the lock and its connection; it runs even after ctx is cancelled.
func (l *sourceLock) unlock() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `select pg_advisory_unlock(hashtextextended($1, 0)), set_config('application_name', $2, false)`, l.key, l.app); err != nil {
		// The connection is in doubt: close it so the server drops the lock with the session.
		_ = l.conn.Conn().Close(ctx)
	}
	l.conn.Release()
}
