package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/elt-dev/elt/internal/syncbuf"
)

// TestDescribePgErrorKeepsChain: the described error says the server's detail and what to do, and callers
// still find the *pgconn.PgError and a cancellation through it (a cancelled run is recorded as cancelled).
func TestDescribePgErrorKeepsChain(t *testing.T) {
	pg := &pgconn.PgError{Code: "55P03", Message: "canceling statement due to lock timeout"}
	err := fmt.Errorf("step x: %w", describePgError(fmt.Errorf("exec: %w", pg)))
	var got *pgconn.PgError
	if !errors.As(err, &got) || got.Code != "55P03" {
		t.Errorf("errors.As through the description: %v", err)
	}
	if !strings.Contains(err.Error(), "[SQLSTATE 55P03]; another session held a lock") {
		t.Errorf("description: %s", err)
	}
	cancelled := fmt.Errorf("step x: %w", describePgError(fmt.Errorf("exec: %w", context.Canceled)))
	if !errors.Is(cancelled, context.Canceled) {
		t.Errorf("errors.Is(context.Canceled) through the description: %v", cancelled)
	}
}

// TestStillRunning: a step that takes long says so at each interval, and stops saying it when it ends.
func TestStillRunning(t *testing.T) {
	old := stillRunningEvery
	stillRunningEvery = 20 * time.Millisecond
	defer func() { stillRunningEvery = old }()
	var buf syncbuf.Buffer
	r := &runner{log: slog.New(slog.NewTextHandler(&buf, nil))}
	stop := r.stillRunning("transform", "030_events.sql", time.Now())
	time.Sleep(110 * time.Millisecond)
	stop()
	n := strings.Count(buf.String(), `msg="refresh step still running" kind=transform step=030_events.sql`)
	time.Sleep(60 * time.Millisecond)
	if after := strings.Count(buf.String(), "still running"); n < 3 || after != n {
		t.Errorf("%d lines while running, %d after stop; want at least 3, then none more:\n%s", n, after, buf.String())
	}
}
