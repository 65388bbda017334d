package explain

import (
	"net/netip"
	"strings"
	"testing"
)

var P = netip.MustParsePrefix
var A = netip.MustParseAddr

// The lab gateway: eng (cp-eng, table 1000) may reach vpc-a only.
func labTables() ([]Rule, map[int][]Route) {
	rules := []Rule{
		{Priority: 32766, Table: 254, Action: 1},
		{Priority: 0, Table: 255, Action: 1},
		{Priority: 1000, IifName: "cp-eng", Table: 1000, Action: 1},
		{Priority: 1000, IifName: "cp-ops", Table: 1001, Action: 1},
		{Priority: 32767, Table: 253, Action: 1},
	}
	tables := map[int][]Route{
		1000: {{Table: 1000, Type: TypeThrow, Dst: P("10.10.0.0/16")}, {Table: 1000, Type: TypeBlackhole, Dst: P("0.0.0.0/0")}},
		1001: {{Table: 1001, Type: TypeThrow, Dst: P("10.20.0.0/16")}, {Table: 1001, Type: TypeBlackhole, Dst: P("0.0.0.0/0")}},
		254: {
			{Table: 254, Type: TypeUnicast, Dst: P("10.10.0.0/16"), Dev: "veth-a"},
			{Table: 254, Type: TypeUnicast, Dst: P("10.20.0.0/16"), Dev: "veth-b"},
			{Table: 254, Type: TypeUnicast, Dst: P("100.64.0.0/24"), Dev: "cp-eng"},
			{Table: 254, Type: TypeUnicast, Dst: P("0.0.0.0/0"), Gateway: A("198.51.100.2"), Dev: "veth-pub"},
		},
		255: {{Table: 255, Type: TypeLocal, Dst: P("10.10.0.1/32"), Dev: "veth-a"}, {Table: 255, Type: TypeLocal, Dst: P("100.64.0.1/32"), Dev: "cp-eng"}},
	}
	return rules, tables
}

func TestEvaluateLab(t *testing.T) {
	rules, tables := labTables()
	src := A("100.64.0.2")
	cases := []struct {
		dst                string
		forwarded, local   bool
		rule, route, steps string
	}{
		{"10.10.0.10", true, false, "32766:", "10.10.0.0/16 dev veth-a", "throw: on to the next rule"},
		{"10.20.0.10", false, false, "1000:\tfrom all iif cp-eng lookup 1000", "blackhole default table 1000", "decides"},
		{"8.8.8.8", false, false, "1000:", "blackhole default table 1000", ""},
		// Another client of the same network: blackholed, no client-to-client.
		{"100.64.0.3", false, false, "1000:", "blackhole default", ""},
		// The gateway's own address in the VPC: the local table comes first.
		{"10.10.0.1", true, true, "0:", "local 10.10.0.1/32 dev veth-a table local", ""},
	}
	for _, c := range cases {
		d := Evaluate(rules, tables, src, A(c.dst), "cp-eng")
		if d.Forwarded != c.forwarded || d.Local != c.local || d.Rule == nil || !strings.HasPrefix(d.Rule.String(), c.rule) || d.Route == nil || !strings.Contains(d.Route.String(), c.route) {
			t.Errorf("%s: forwarded %v local %v rule %v route %v (%s)", c.dst, d.Forwarded, d.Local, d.Rule, d.Route, d.Why)
			continue
		}
		var outcomes []string
		for _, s := range d.Steps {
			outcomes = append(outcomes, s.Outcome)
		}
		if c.steps != "" && !strings.Contains(strings.Join(outcomes, "|"), c.steps) {
			t.Errorf("%s: steps %+v", c.dst, d.Steps)
		}
	}
	// Without the gateway's rule (say, it crashed half way) ops' clients
	// would reach everything main routes.
	d := Evaluate(rules, tables, A("100.65.0.2"), A("10.10.0.10"), "cp-ops")
	if d.Forwarded {
		t.Errorf("ops reached vpc-a: %s", d.Why)
	}
	d = Evaluate(rules[:2], tables, A("100.65.0.2"), A("10.10.0.10"), "cp-ops")
	if !d.Forwarded {
		t.Errorf("without its rule ops should fall through to main: %s", d.Why)
	}
}

func TestEvaluateRuleFeatures(t *testing.T) {
	tables := map[int][]Route{
		7411: {{Table: 7411, Type: TypeUnicast, Dst: P("0.0.0.0/0"), Dev: "tun0"}},
		254:  {{Table: 254, Type: TypeUnicast, Dst: P("0.0.0.0/0"), Dev: "eth0"}, {Table: 254, Type: TypeUnicast, Dst: P("10.1.2.0/24"), Dev: "eth0"}},
	}
	rules := []Rule{
		{Priority: 10, Table: 254, Action: 1, SuppressPrefixlen: 0},
		{Priority: 5, Table: 254, Action: 1, SuppressPrefixlen: 0, Mark: 0x7411},
		{Priority: 20, Table: 7411, Action: 1, Mark: 0x7411, Invert: true},
		{Priority: 30, Action: TypeProhibit, Src: P("192.0.2.0/24")},
	}
	// suppress_prefixlength 0 ignores the default in main, "not fwmark"
	// matches unmarked packets: the tunnel table decides.
	rules[0].SuppressPrefixlen = 0
	d := Evaluate([]Rule{{Priority: 10, Table: 254, Action: 1, SuppressPrefixlen: 1}, rules[2]}, tables, A("10.1.2.10"), A("8.8.8.8"), "eth1")
	if d.Route == nil || d.Route.Dev != "tun0" || d.Steps[0].Outcome[:10] != "suppressed" {
		t.Errorf("suppress + not fwmark: %+v %s", d.Steps, d.Why)
	}
	d = Evaluate([]Rule{rules[3]}, tables, A("192.0.2.7"), A("8.8.8.8"), "eth1")
	if d.Forwarded || d.Rule == nil || d.Route != nil || !strings.Contains(d.Why, "prohibit") {
		t.Errorf("prohibit rule: %+v", d)
	}
	d = Evaluate(nil, tables, A("192.0.2.7"), A("8.8.8.8"), "eth1")
	if d.Forwarded || !strings.Contains(d.Why, "no rule") {
		t.Errorf("no rules: %+v", d)
	}
}
