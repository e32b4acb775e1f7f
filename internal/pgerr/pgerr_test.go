package pgerr

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestCodeAndLine(t *testing.T) {
	err := fmt.Errorf("step: %w", &pgconn.PgError{Code: LockNotAvailable})
	if Code(err) != "55P03" || !Is(err, UniqueViolation, LockNotAvailable) || Is(err, UniqueViolation) || Is(fmt.Errorf("x"), "") {
		t.Errorf("Code/Is of %v", err)
	}
	sql := "select 1;\n\nselect nope;"
	for pos, want := range map[int32]int{0: 0, 1: 1, 12: 3, 99: 0} {
		if got := Line(sql, pos); got != want {
			t.Errorf("Line(pos %d) = %d, want %d", pos, got, want)
		}
	}
}
