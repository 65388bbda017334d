package cmdutil

import (
	"time"

	"github.com/clearpath-vpn/clearpath/internal/units"
)

// Ago formats how long ago t was ("3m12s ago", "never"; units.Duration).
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return units.Duration(now.Sub(t)) + " ago"
}

// In formats how long until t ("in 29d23h", "expired 5s ago").
func In(t, now time.Time) string {
	if !t.After(now) {
		return "expired " + units.Duration(now.Sub(t)) + " ago"
	}
	return "in " + units.Duration(t.Sub(now))
}
