package explain

import (
	"strings"
	"testing"
)

func TestSplitHostPort(t *testing.T) {
	cases := []struct {
		in   string
		host string
		port int
		bad  bool
	}{
		{"10.10.0.10", "10.10.0.10", 0, false},
		{"10.10.0.10:8000", "10.10.0.10", 8000, false},
		{"[fd10:10::10]:22", "fd10:10::10", 22, false},
		{"fd10:10::10", "fd10:10::10", 0, false},
		{"db.internal:5432", "db.internal", 5432, false},
		{"10.10.0.10:0", "", 0, true},
		{"10.10.0.10:http", "", 0, true},
		{"10.10.0.10:70000", "", 0, true},
	}
	for _, c := range cases {
		h, p, err := SplitHostPort(c.in)
		if (err != nil) != c.bad || !c.bad && (h != c.host || p != c.port) {
			t.Errorf("%q -> %q %d %v", c.in, h, p, err)
		}
	}
}

func FuzzSplitHostPort(f *testing.F) {
	for _, s := range []string{"10.10.0.10:8000", "[::1]:22", "::1", "host", ":", "[]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, p, err := SplitHostPort(s)
		if err == nil && (p < 0 || p > 65535) {
			t.Fatalf("%q: port %d accepted", s, p)
		}
	})
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]string{
		"10.10.0.10":           "10.10.0.10",
		"10.10.0.10:5432":      "10.10.0.10:5432/tcp",
		"10.10.0.10:53/udp":    "10.10.0.10:53/udp",
		"[fd10::10]:22/TCP":    "[fd10::10]:22/tcp",
		"10.10.0.10/icmp":      "10.10.0.10/icmp",
		"db.internal:5432":     "db.internal:5432/tcp",
		"10.10.0.10:22/sctp":   `protocol "sctp" is not tcp, udp or icmp`,
		"10.10.0.10/tcp":       "name the port",
		"10.10.0.10:8/icmp":    "icmp has no port",
		"/udp":                 "no host",
		"10.10.0.10:99999/tcp": "port",
	} {
		got, err := ParseTarget(in)
		s := got.String()
		if err != nil {
			s = err.Error()
		}
		if !strings.Contains(s, want) {
			t.Errorf("ParseTarget(%q) = %s, want %s", in, s, want)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"10.10.0.10:5432/tcp", "[::1]:53/udp", "h/icmp", "h:1/", "/", ":/tcp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		switch {
		case tg.Host == "", tg.Port < 0, tg.Port > 65535:
			t.Fatalf("%q: accepted %+v", s, tg)
		case tg.Port != 0 && tg.Proto != "tcp" && tg.Proto != "udp":
			t.Fatalf("%q: a port with protocol %q", s, tg.Proto)
		case tg.Port == 0 && tg.Proto != "" && tg.Proto != "icmp":
			t.Fatalf("%q: %s without a port", s, tg.Proto)
		}
	})
}
