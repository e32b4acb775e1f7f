package main

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// unwrapConnect returns the innermost cause of a connection failure: pgx's outer message repeats the
// host, user and database, which the caller already names.
func unwrapConnect(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap()
	}
	return err
}
