package refresh_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/elt-dev/elt/refresh"
)

// A nightly job: refresh what extract loaded, and tell a failed data check apart from other failures.
func ExampleRun() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer pool.Close()

	res, err := refresh.Run(ctx, pool, refresh.Options{
		LockTimeout: 30 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	var checks *refresh.CheckError
	switch {
	case errors.As(err, &checks):
		fmt.Fprintf(os.Stderr, "data to fix before the marts move on: %v\n", err)
	case errors.Is(err, refresh.ErrBusy):
		fmt.Fprintln(os.Stderr, "the previous refresh is still running")
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
	default:
		fmt.Printf("run %d: marts include batches up to %d\n", res.RunID, res.BatchTo)
	}
}
