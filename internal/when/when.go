// Package when formats times the one way elt's status output shows them: UTC to the minute, with how long
// ago, e.g. "2026-11-25 03:00 UTC (5h12m ago)".
package when

import (
	"fmt"
	"strings"
	"time"
)

// Stamp is t in UTC to the minute: "2026-11-25 03:00 UTC".
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") + " UTC" }

// Ago is Stamp(t) with its age relative to now: "2026-11-25 03:00 UTC (5h12m ago)", "(just now)", or
// "(in 2m)" when this host's clock is behind the server's.
func Ago(now, t time.Time) string {
	return fmt.Sprintf("%s (%s)", Stamp(t), Age(now.Sub(t)))
}

// Age is a duration before now as status shows it: "just now", "5m ago", "5h12m ago", "3d4h ago"; a
// negative one (clock skew) is "in 2m".
func Age(d time.Duration) string {
	if d > -30*time.Second && d < 30*time.Second {
		return "just now"
	}
	suffix, prefix := " ago", ""
	if d < 0 {
		d, suffix, prefix = -d, "", "in "
	}
	return prefix + Duration(d) + suffix
}

// Duration is d rounded for people: "850ms", "12s", "5m", "5h12m", "3d4h".
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		s := d.Round(time.Minute).String()
		return strings.TrimSuffix(strings.TrimSuffix(s, "0s"), "h0m")
	}
	days := int(d.Hours()) / 24
	return fmt.Sprintf("%dd%dh", days, int(d.Hours())-24*days)
}
