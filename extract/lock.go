package extract

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
	var (
		holderApp string
		pid       int32
		since     *time.Time
		runID     *int64
		started   *time.Time
	)
	err = conn.QueryRow(ctx, `
		with k as (select hashtextextended($1, 0) as key)
		select coalesce(a.application_name, ''), coalesce(a.pid, 0), a.backend_start, r.run_id, r.started_at
		from k
		left join pg_catalog.pg_locks l
		  on l.locktype = 'advisory' and l.granted and l.objsubid = 1
		 and ((l.classid::bigint << 32) | l.objid::bigint) = k.key
		left join pg_catalog.pg_stat_activity a on a.pid = l.pid
		left join lateral (
		  select run_id, started_at from elt.runs
		  where kind = 'extract' and target = $2 and status = 'running'
		  order by run_id desc limit 1) r on true
		limit 1`, key, source).Scan(&holderApp, &pid, &since, &runID, &started)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w by another session (and its details are unreadable: %v)", ErrLocked, err)
	}
	msg := ""
	if holderApp != "" {
		msg += fmt.Sprintf(" (%q, server pid %d", holderApp, pid)
		if since != nil {
			msg += ", connected " + since.UTC().Format(time.RFC3339)
		}
		msg += ")"
	}
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
