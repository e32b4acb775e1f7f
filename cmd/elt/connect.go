package main

import (
	"errors"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/elt-dev/elt/internal/pgerr"
)

// connectError is a connection failure said on one line, with what to do next; Unwrap keeps the chain
// (errors.As finds the *pgconn.PgError of a refused login).
type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string { return e.msg }
func (e *connectError) Unwrap() error { return e.err }

// unwrapConnect returns the cause of a connection failure on one line. pgx prefixes each attempt with the
// host, which the caller already names, and joins the attempts (TLS, then plain) with newlines.
func unwrapConnect(err error, configured bool) error {
	cause := err
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		cause = ce.Unwrap()
	}
	seen := map[string]bool{}
	var parts []string
	for _, line := range strings.Split(cause.Error(), "\n") {
		if i := strings.Index(line, "): "); i >= 0 && strings.Contains(line[:i], " (") {
			line = line[i+3:] // drop "host:port (addr): "
		}
		if line = strings.TrimSpace(line); line != "" && !seen[line] {
			seen[line] = true
			parts = append(parts, line)
		}
	}
	msg := strings.Join(parts, "; ")
	if hint := connectHint(err, configured); hint != "" {
		msg += " (" + hint + ")"
	}
	return &connectError{msg: msg, err: err}
}

// connectHint says what to do about a connection failure; configured says whether a database URL (flag or
// environment) or PGHOST named the server.
func connectHint(err error, configured bool) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case pgerr.InvalidPassword, pgerr.InvalidAuthorization:
			return "check the password: in DATABASE_URL, PGPASSWORD or the passfile (~/.pgpass, PGPASSFILE)"
		case pgerr.InvalidCatalogName:
			return "no such database: create it (createdb NAME, or elt db start for a local cluster) or fix the database name in DATABASE_URL"
		case pgerr.InsufficientPrivilege: // no CONNECT on the database
			return "this login may not connect to that database: a DBA grants it (grant connect on database NAME to ROLE), or connect as another role"
		case pgerr.TooManyConnections:
			return "the server or this login is at its connection limit: retry later or raise it"
		}
		return ""
	}
	if !configured && os.Getenv("PGHOST") == "" {
		return "no DATABASE_URL or PGHOST is set: export DATABASE_URL=postgres://USER@HOST:PORT/DB, or for the local cluster of make demo export DATABASE_URL=$(bin/elt db url)"
	}
	return "is PostgreSQL running and reachable there?"
}
