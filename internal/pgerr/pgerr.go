// Package pgerr names the PostgreSQL errors elt reacts to and reads what a server error says: its SQLSTATE
// and the line of the statement it points at. (Appendix A of the PostgreSQL manual lists the codes.)
package pgerr

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATEs elt tells apart.
const (
	UniqueViolation           = "23505"
	NumericValueOutOfRange    = "22003"
	InvalidEscapeSequence     = "22025"
	InvalidTextRepresentation = "22P02"
	UntranslatableCharacter   = "22P05"
	InvalidAuthorization      = "28000"
	InvalidPassword           = "28P01"
	InvalidCatalogName        = "3D000" // no such database
	InsufficientPrivilege     = "42501"
	UndefinedFunction         = "42883"
	UndefinedTable            = "42P01"
	OutOfMemory               = "53200" // also: out of shared memory (max_locks_per_transaction)
	TooManyConnections        = "53300"
	LockNotAvailable          = "55P03" // lock_timeout
)

// Code is the SQLSTATE of the *pgconn.PgError in err's chain, or "".
func Code(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// Is reports whether err's chain holds a server error with one of codes.
func Is(err error, codes ...string) bool {
	c := Code(err)
	for _, code := range codes {
		if c != "" && c == code {
			return true
		}
	}
	return false
}

// Describe is a server error on one line as elt says them: its message, its detail in parentheses, and
// its SQLSTATE, e.g. `relation "s.t" does not exist [SQLSTATE 42P01]`.
func Describe(pe *pgconn.PgError) string {
	msg := pe.Message
	if pe.Detail != "" {
		msg += " (" + pe.Detail + ")"
	}
	return msg + " [SQLSTATE " + pe.Code + "]"
}

// Line is the 1-based line of sql that a server error's 1-based character position points at, or 0 when
// the error has none (or it lies outside sql).
func Line(sql string, position int32) int {
	if position <= 0 {
		return 0
	}
	r := []rune(sql)
	if int(position) > len(r) {
		return 0
	}
	return strings.Count(string(r[:position-1]), "\n") + 1
}
