// Package units formats quantities for people: one way to write a byte
// count or a duration in the CLI, the gateway's admin commands and the
// tray.
package units

import (
	"fmt"
	"time"
)

// Bytes formats a byte count with binary units: "1023 B", "1.5 KiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Duration formats d coarsely, by its two largest units, without spaces
// so that it stays one column in a table: "12s", "3m12s", "1h5m", and
// days from 48 hours ("2d3h"). A negative d is formatted as its size.
func Duration(d time.Duration) string {
	if d < 0 {
		d = -d
		if d < 0 { // the most negative Duration has no positive twin
			d = 1<<63 - 1
		}
	}
	d = d.Round(time.Second)
	h, m, s := int64(d/time.Hour), int64(d/time.Minute)%60, int64(d/time.Second)%60
	switch {
	case h >= 48:
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}
