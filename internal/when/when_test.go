package when

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAgo(t *testing.T) {
	now := time.Date(2026, 11, 25, 8, 12, 0, 0, time.UTC)
	at := func(d time.Duration) string { return Ago(now, now.Add(-d)) }
	got := []string{at(10 * time.Second), at(5 * time.Minute), at(5*time.Hour + 12*time.Minute), at(77 * time.Hour), at(-2 * time.Minute)}
	want := []string{
		"2026-11-25 08:11 UTC (just now)", "2026-11-25 08:07 UTC (5m ago)", "2026-11-25 03:00 UTC (5h12m ago)",
		"2026-11-22 03:12 UTC (3d5h ago)", "2026-11-25 08:14 UTC (in 2m)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Ago (-want +got):\n%s", diff)
	}
	if got := Duration(1298 * time.Millisecond); got != "1s" {
		t.Errorf("Duration(1.298s) = %s", got)
	}
}
