package localpg

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// A standby is a local cluster that streams the WAL of a primary and serves read-only queries (hot standby):
// BI load (tenant logins, Superset) on a copy of the primary that carries the same roles, privileges,
// tenant layers and planner statistics. It starts from a base backup of the primary (pg_basebackup -R, which
// writes standby.signal and primary_conninfo), and from then on is started and stopped like any local cluster.

// IsStandby reports whether the cluster is a standby (its data directory holds standby.signal).
func (c *Cluster) IsStandby() bool {
	_, err := os.Stat(filepath.Join(c.DataDir(), "standby.signal"))
	return err == nil
}

// standbySettings are written to a standby's postgresql.conf after those it copied from the primary.
var standbySettings = map[string]string{
	"hot_standby": "on",
	// The primary keeps the rows a standby query still reads (within the tenants' transaction limit, which
	// elt tenant guard enforces on the standby too) instead of the standby cancelling the query when vacuum's
	// cleanup reaches it ("canceling statement due to conflict with recovery").
	"hot_standby_feedback": "on",
}

// errPasswordInURL: the primary's URL is an argument of elt and of pg_basebackup, visible in ps.
var errPasswordInURL = errors.New("the primary's URL holds a password, which would show in ps: remove it and give the password in PGPASSWORD or a password file (PGPASSFILE, readable by the postgres user when run as root)")

// baseBackup fills the data directory with a base backup of primary (a postgres:// URL of a superuser or a
// role with REPLICATION, without a password) and configures it as its standby, streaming through slot when
// slot is not empty (created on the primary: it keeps the WAL the standby has not received, even while the
// standby is down).
func (c *Cluster) baseBackup(ctx context.Context, primary, slot string, settings map[string]string) error {
	u, err := url.Parse(primary)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("standby of %q: want a postgres:// URL of the primary", redactURL(primary))
	}
	if _, ok := u.User.Password(); ok || u.Query().Has("password") {
		return errPasswordInURL
	}
	args := []string{"-D", c.DataDir(), "-d", primary, "-X", "stream", "-R", "-c", "fast", "--no-password"}
	if slot != "" {
		args = append(args, "-C", "-S", slot)
	}
	if _, err := c.run(ctx, "pg_basebackup", args...); err != nil {
		os.RemoveAll(c.DataDir())
		hint := "the primary must accept replication connections from this role: pg_hba.conf, max_wal_senders"
		if slot != "" {
			hint += fmt.Sprintf("; if replication slot %s was created, it now holds WAL on the primary: drop it there with select pg_drop_replication_slot('%s') before trying again", slot, slot)
		}
		return fmt.Errorf("base backup of %s into %s: %w (%s)", redactURL(primary), c.DataDir(), err, hint)
	}
	all := map[string]string{}
	for k, v := range standbySettings {
		all[k] = v
	}
	for k, v := range settings {
		all[k] = v
	}
	return c.appendConf(all, "standby")
}

// redactURL drops the password of a URL, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if strings.Contains(s, "password") {
			return "(a connection string with a password)"
		}
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
