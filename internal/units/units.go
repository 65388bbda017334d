// Package units formats quantities for people: one way to write a byte
// count in the CLI, the gateway's admin commands and the tray.
package units

import "fmt"

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
