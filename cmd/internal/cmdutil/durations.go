package cmdutil

import (
	"fmt"
	"time"
)

// Ago formats how long ago t was ("3m12s ago", "never").
func Ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return Human(now.Sub(t)) + " ago"
}

// In formats how long until t ("in 29d23h", "expired 5s ago").
func In(t, now time.Time) string {
	if !t.After(now) {
		return "expired " + Human(now.Sub(t)) + " ago"
	}
	return "in " + Human(t.Sub(now))
}

// Human formats a duration compactly, to the second (days above 48h).
func Human(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= 48*time.Hour {
		days := d / (24 * time.Hour)
		return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
	}
	return d.String()
}
