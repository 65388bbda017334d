package checkcmd

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// check reports the access rules of a valid file, one line each (who,
// what, widening, the precedence), and names the field of a bad rule.
func TestCheckReportsAccessRules(t *testing.T) {
	engAllow := `allow: [10.10.0.0/16, "fd10:10::/64"]`
	write := func(rules string) string {
		p := checkConfig(t, "127.0.0.1:18080", freeUDPPair(t), "")
		b, _ := os.ReadFile(p)
		os.WriteFile(p, []byte(strings.Replace(string(b), engAllow, engAllow+"\n"+rules, 1)), 0o644)
		return p
	}
	p := write(`    may_widen: [10.99.0.0/16]
    access:
      - groups: [dba]
        allow: ["10.10.0.10/32 tcp/5432", "10.99.0.5/32 tcp/22"]
      - users: [bob@example.com]
        allow: [10.10.0.99/32]`)
	out, code := runGW(t, "check", "--offline", "-c", p)
	for _, want := range []string{
		"access: networks[0].access[0] (eng): groups dba -> 10.10.0.10/32 tcp/5432, 10.99.0.5/32 tcp/22 (widens to 10.99.0.5/32)",
		"access: networks[0].access[1] (eng): users bob@example.com -> 10.10.0.99/32",
		"the network's table also routes [10.99.0.5/32]",
		"a user named by several rules gets their union",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("check (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	out, _ = runGW(t, "check", "--offline", "--json", "-c", p)
	var rep struct{ Access []string }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Access) != 3 {
		t.Errorf("check --json access: %v %q", err, rep.Access)
	}
	p = write("    access:\n      - groups: [dba]\n        allow: [\"10.10.0.10/32 tcp/70000\"]")
	out, code = runGW(t, "check", "--offline", "-c", p)
	if code != 1 || !strings.Contains(out, "networks[0].access[0].allow[0]") || !strings.Contains(out, "tcp/70000: ports are 1-65535") {
		t.Errorf("a bad port (exit %d):\n%s", code, out)
	}
}
