package refresh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
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
