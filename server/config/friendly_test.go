package config

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// Durations may be written in days wherever a duration is read; a field
// that is no duration keeps a value that looks like one.
func TestDurationsInDays(t *testing.T) {
	y := strings.Replace(Example, "key_ttl: 720h", "key_ttl: 30d", 1)
	y = strings.Replace(y, "group: ops", `group: "9d"`, 1)
	y += "allocation_grace: 1d12h\nlifecycle:\n  warn_before: [7d, \"1d\", 12h]\n  unused_after: 90d\naudit:\n  retain: 1.5d\n"
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatalf("days: %v", err)
	}
	day := 24 * time.Hour
	if c.KeyTTL != 30*day || c.AllocationGrace != 36*time.Hour || *c.Lifecycle.UnusedAfter != 90*day || *c.Audit.Retain != 36*time.Hour {
		t.Errorf("key_ttl %s, allocation_grace %s, unused_after %s, retain %s", c.KeyTTL, c.AllocationGrace, *c.Lifecycle.UnusedAfter, *c.Audit.Retain)
	}
	if w := c.Lifecycle.WarnBefore; len(w) != 3 || w[0] != 7*day || w[1] != day || w[2] != 12*time.Hour {
		t.Errorf("warn_before %v", w)
	}
	if r, err := ParseRate("100/2d"); err == nil || !strings.Contains(err.Error(), "1s to 24h") {
		t.Errorf("rate 100/2d: %v %v, want read as 48h and refused by the bound", r, err)
	}
	if r, err := ParseRate("100/0.5d"); err != nil || r.Per != 12*time.Hour {
		t.Errorf("rate 100/0.5d: %v %v", r, err)
	}
	if c.Networks[1].Group != "9d" {
		t.Errorf("a group named 9d became %q", c.Networks[1].Group)
	}
	// A bad duration still names its field and line.
	_, err = Parse([]byte(strings.Replace(Example, "key_ttl: 720h", "key_ttl: 30x", 1)))
	if err == nil || !strings.Contains(err.Error(), "key_ttl (line") {
		t.Errorf("key_ttl: 30x: %v", err)
	}
}

// A typo'd key gets the nearest field of its own level, or none when no
// field is close.
func TestUnknownFieldSuggestsTheNearest(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{"key_ttl: 720h", "key_tll: 720h", "key_tll (line _): unknown field; did you mean key_ttl?"},
		{"listen_port: 51821", "listen_prot: 51821", "networks[1].listen_prot (line _): unknown field; did you mean listen_port?"},
		{"client_id: clearpath ", "clientid: clearpath ", "oidc.clientid (line _): unknown field; did you mean client_id?"},
		{"key_ttl: 720h", "colour: blue", "colour (line _): unknown field (a typo? fields are listed by `vpn-gateway init`)"},
	} {
		if !strings.Contains(Example, c.from) {
			t.Fatalf("case does not match the example: %q", c.from)
		}
		_, err := Parse([]byte(strings.Replace(Example, c.from, c.to, 1)))
		if err == nil || !strings.Contains(anyLine(err), c.want) {
			t.Errorf("%s: %v, want %q", c.to, err, c.want)
		}
	}
}

// anyLine is err's text with line numbers as "_" (the example grows).
func anyLine(err error) string { return lineNo.ReplaceAllString(err.Error(), "(line _)") }

var lineNo = regexp.MustCompile(`\(line \d+\)`)

// Listen addresses need a real port: net.SplitHostPort takes ":99999".
func TestListenPortsAreChecked(t *testing.T) {
	for _, c := range []struct{ from, to, want string }{
		{`listen: ":8080"`, `listen: ":99999"`, `listen: ":99999": port "99999" is not a number from 1 to 65535`},
		{`listen: ":8080"`, `listen: ":0"`, `listen: ":0": port "0"`},
		{`listen: ":8080"`, `listen: ":http"`, `listen: ":http": port "http"`},
		{"key_ttl: 720h", "key_ttl: 720h\nmetrics_listen: 127.0.0.1:70000", `metrics_listen: "127.0.0.1:70000": port`},
	} {
		_, err := Parse([]byte(strings.Replace(Example, c.from, c.to, 1)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.to, err, c.want)
		}
	}
}

// A bad prefix or address reads as what is wrong, not as a Go call.
func TestBadPrefixInPlainWords(t *testing.T) {
	for _, c := range []struct{ to, want string }{
		{"allow: [10.10.0.0/33", `networks[0].allow[0] (line _): "10.10.0.0/33" is not a CIDR prefix such as 10.0.0.0/16 (prefix length out of range)`},
		{"allow: [10.10.0.300/16", `"10.10.0.300/16" is not a CIDR prefix such as 10.0.0.0/16 (IPv4 field has value >255)`},
	} {
		_, err := Parse([]byte(strings.Replace(Example, "allow: [10.10.0.0/16", c.to, 1)))
		if err == nil || !strings.Contains(anyLine(err), c.want) || strings.Contains(err.Error(), "netip") {
			t.Errorf("%s: %v, want %q", c.to, err, c.want)
		}
	}
}
