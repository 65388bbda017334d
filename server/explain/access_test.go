package explain

import (
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/server/config"
)

func accessNetwork(t *testing.T) config.Network {
	t.Helper()
	tg := func(ss ...string) []config.AccessTarget {
		var out []config.AccessTarget
		for _, s := range ss {
			x, err := config.ParseAccessTarget(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, x)
		}
		return out
	}
	return config.Network{Name: "eng", Pool: []netipPrefix{P("100.64.0.0/24")}, Allow: []netipPrefix{P("10.10.0.0/16")}, MayWiden: []netipPrefix{P("10.99.0.0/16")},
		Access: []config.AccessRule{
			{Groups: []string{"dba"}, Allow: tg("10.10.0.10/32 tcp/5432", "10.99.0.5/32 tcp/22")},
			{Users: []string{"bob@example.com"}, Allow: tg("10.10.0.99/32")},
		}}
}

// explain names the rule, the widening and the port behind each verdict.
func TestJudgeAccess(t *testing.T) {
	n := accessNetwork(t)
	alice := n.PolicyFor("sub-a", "alice@example.com", []string{"engineering", "dba"})
	bob := n.PolicyFor("sub-b", "bob@example.com", []string{"engineering"})
	carol := n.PolicyFor("sub-c", "carol@example.com", nil)
	tgt := func(s string) Target {
		x, err := ParseTarget(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, c := range []struct {
		name   string
		pol    config.Policy
		target string
		ok     bool
		want   string
	}{
		{"alice tcp/5432 by the group rule", alice, "10.10.0.10:5432", true, "networks[eng].access[0] (groups dba): 10.10.0.10/32 tcp/5432"},
		{"alice tcp/22 refused, naming the port she has", alice, "10.10.0.10:22", false, "allows only networks[eng].access[0] (groups dba): 10.10.0.10/32 tcp/5432"},
		{"alice any traffic: only a port", alice, "10.10.0.10", false, "name a port and protocol"},
		{"alice ping a port-limited host", alice, "10.10.0.10/icmp", false, "icmp (ping)"},
		{"alice widened", alice, "10.99.0.5:22", true, "widens beyond allow, within may_widen [10.99.0.0/16]"},
		{"alice elsewhere in allow", alice, "10.10.0.11:5432", false, "rule access[0] gives alice nothing at 10.10.0.11"},
		{"bob at 10.10.0.10", bob, "10.10.0.10:5432", false, "rule access[1] gives bob nothing at 10.10.0.10"},
		{"bob his host", bob, "10.10.0.99:443", true, "networks[eng].access[1] (users bob@example.com): 10.10.0.99/32"},
		{"the gateway's address", bob, "100.64.0.1/icmp", true, "the gateway's own tunnel address"},
		{"carol gets the network's allow", carol, "10.10.0.10:22", true, "the network's allow 10.10.0.0/16"},
		{"carol not the widened host", carol, "10.99.0.5:22", false, "the network's allow gives carol nothing"},
	} {
		who := strings.SplitN(c.name, " ", 2)[0]
		tg := tgt(c.target)
		got := JudgeAccess(n, c.pol, who, A(tg.Host), tg)
		if got.Allowed != c.ok || !got.Filtered || !strings.Contains(got.Why, c.want) {
			t.Errorf("%s: %+v\nwant allowed=%v and %q", c.name, got, c.ok, c.want)
		}
	}
	plain := config.Network{Name: "ops", Allow: []netipPrefix{P("10.20.0.0/16")}}
	if got := JudgeAccess(plain, plain.PolicyFor("x", "", nil), "x", A("10.20.0.1"), tgt("10.20.0.1:22")); got.Filtered || !got.Allowed {
		t.Errorf("a network without rules: %+v", got)
	}
}
