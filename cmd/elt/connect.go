package main

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// unwrapConnect returns the cause of a connection failure on one line. pgx prefixes each attempt with the
// host, which the caller already names, and joins the attempts (TLS, then plain) with newlines.
func unwrapConnect(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		err = ce.Unwrap()
	}
	seen := map[string]bool{}
	var parts []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if i := strings.Index(line, "): "); i >= 0 && strings.Contains(line[:i], " (") {
			line = line[i+3:] // drop "host:port (addr): "
		}
		if line = strings.TrimSpace(line); line != "" && !seen[line] {
			seen[line] = true
			parts = append(parts, line)
		}
	}
	return errors.New(strings.Join(parts, "; "))
}
