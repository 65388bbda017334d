package api

import (
	"strings"
	"testing"
)

// A hostname chosen by the client (any local user on it can set one) that
// would drive the admin's terminal is refused; on main it was stored and
// printed raw by `vpn-gateway peers list`.
func TestCheckHostname(t *testing.T) {
	for _, ok := range []string{"", "alice-laptop", "Alices-MacBook-Pro.local", "DESKTOP-1A2B", "bürо-pc", strings.Repeat("a", 253)} {
		if err := CheckHostname(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"evil\x1b]0;pwned\x07":   `hostname: character U+001B at byte 4`,
		"a\nb":                   "U+000A",
		"x\u202egnp.exe":         "U+202E",
		"bad\xffutf8":            "not valid UTF-8",
		strings.Repeat("a", 254): "254 bytes, at most 253",
		"tab\there":              "U+0009",
	} {
		if err := CheckHostname(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", bad, err, want)
		}
	}
	if err := CheckOS("linux\x1b[2J"); err == nil || !strings.HasPrefix(err.Error(), "os: ") {
		t.Errorf("os: %v", err)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain-host":           "plain-host",
		"evil\x1b]0;pwned\x07": `evil\x1b]0;pwned\a`,
		"x\u202egnp":           `x\u202egnp`,
		"bad\xffutf8":          `bad\xffutf8`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
