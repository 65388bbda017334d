package envvar

import (
	"bytes"
	"strings"
	"testing"
)

func TestNewNameWinsOldNameWarnsOnce(t *testing.T) {
	var warn bytes.Buffer
	Warnings = &warn
	t.Setenv("CLEARPATH_T1", "new")
	t.Setenv("VPN_T1", "old")
	if got := Get("T1"); got != "new" || warn.Len() != 0 {
		t.Fatalf("both set: %q, warning %q; want the new one, silently", got, warn.String())
	}
	t.Setenv("VPN_T2", "old")
	if got := Get("T2"); got != "old" {
		t.Fatalf("old only: %q", got)
	}
	Get("T2")
	if n := strings.Count(warn.String(), "\n"); n != 1 || !strings.Contains(warn.String(), "VPN_T2 is deprecated, set CLEARPATH_T2 instead") {
		t.Fatalf("warning %q (%d lines), want one line naming both", warn.String(), n)
	}
	if v, ok := Lookup("T3"); ok || v != "" {
		t.Fatalf("unset: %q %v", v, ok)
	}
	if h := Help([]Var{{"STATE_DIR", "state"}}); !strings.Contains(h, "CLEARPATH_STATE_DIR") {
		t.Fatalf("help %q", h)
	}
}
