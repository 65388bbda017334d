package explain

import "testing"

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
