// Package pglock reads who holds a session advisory lock pg_advisory_lock(hashtextextended(key, 0)), the
// kind of lock elt's runs take (one extract per source, one refresh): the session a "locked" error names,
// and, in SQL, whether a run whose row says 'running' still has a process behind it.
package pglock

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// lockOf is the join condition of pg_locks row l with the lock of key (an SQL expression): pg_locks shows a
// bigint advisory key as classid (high half), objid (low half) and objsubid 1.
func lockOf(keyExpr string) string {
	return `l.locktype = 'advisory' and l.granted and l.objsubid = 1
	  and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
	  and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(` + keyExpr + `, 0)`
}

// Held is an SQL boolean expression: true while some session of this database holds the lock of the key
// given by the SQL expression keyExpr (code of elt's, never user input).
func Held(keyExpr string) string {
	return `exists (select from pg_catalog.pg_locks as l where ` + lockOf(keyExpr) + `)`
}

// Holder is the session holding a lock.
type Holder struct {
	PID   int32      // server process id; 0 when no session holds it (any more)
	App   string     // its application_name (elt sets "elt extract HOST pid N")
	Since *time.Time // when it connected
}

// String says who it is, e.g. `backend pid 4242, application "elt extract vm pid 17", connected since ...`.
func (h Holder) String() string {
	if h.PID == 0 {
		return "a session that has gone since"
	}
	s := fmt.Sprintf("backend pid %d", h.PID)
	if h.App != "" {
		s += fmt.Sprintf(", application %q", h.App)
	}
	if h.Since != nil {
		s += ", connected since " + h.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// Querier is what Who needs of a connection.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Who returns the session holding the lock of key (a zero Holder when none does).
func Who(ctx context.Context, q Querier, key string) (Holder, error) {
	var h Holder
	err := q.QueryRow(ctx, `
select l.pid, a.backend_start, coalesce(a.application_name, '')
from pg_catalog.pg_locks as l
left join pg_catalog.pg_stat_activity as a on a.pid = l.pid
where `+lockOf("$1")+`
limit 1`, key).Scan(&h.PID, &h.Since, &h.App)
	if err == pgx.ErrNoRows {
		return Holder{}, nil
	}
	return h, err
}
