// Package pglock says, in SQL, whether a session advisory lock is held: how elt status tells a run that is
// going on from one whose process died (kill -9, a lost machine) and left its row saying 'running'.
package pglock

// Held is an SQL boolean expression: true while some session of this database holds the session-level
// advisory lock pg_advisory_lock(hashtextextended(key, 0)), where key is the SQL expression keyExpr (code
// of elt's, never user input). pg_locks shows a bigint advisory key as classid (high half), objid (low
// half) and objsubid 1.
func Held(keyExpr string) string {
	return `exists (
	select from pg_catalog.pg_locks as l
	where l.locktype = 'advisory' and l.granted and l.objsubid = 1
	  and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
	  and ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(` + keyExpr + `, 0))`
}
