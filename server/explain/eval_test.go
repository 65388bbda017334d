package explain

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

var P = netip.MustParsePrefix
var A = netip.MustParseAddr

type netipPrefix = netip.Prefix

func rule(prio, table int, iif string) routes.Rule {
	return routes.Rule{Family: routes.FamilyV4, Priority: prio, Table: table, IIF: iif, Action: "lookup", SuppressPrefixLen: -1}
}

func route(table int, typ routes.RouteType, dst, dev string) routes.Route {
	return routes.Route{Family: routes.FamilyV4, Table: table, Type: typ, Dst: P(dst), Device: dev}
}

// The lab gateway: eng (cp-eng, table 1000) may reach vpc-a only.
func labSnapshot() *routes.Snapshot {
	return &routes.Snapshot{OS: "linux",
		Rules: []routes.Rule{rule(32766, 254, ""), rule(0, 255, ""), rule(1000, 1000, "cp-eng"), rule(1000, 1001, "cp-ops"), rule(32767, 253, "")},
		Routes: []routes.Route{
			route(1000, routes.TypeThrow, "10.10.0.0/16", ""), route(1000, routes.TypeBlackhole, "0.0.0.0/0", ""),
			route(1001, routes.TypeThrow, "10.20.0.0/16", ""), route(1001, routes.TypeBlackhole, "0.0.0.0/0", ""),
			route(254, routes.TypeUnicast, "10.10.0.0/16", "veth-a"), route(254, routes.TypeUnicast, "10.20.0.0/16", "veth-b"),
			route(254, routes.TypeUnicast, "100.64.0.0/24", "cp-eng"),
			{Family: routes.FamilyV4, Table: 254, Type: routes.TypeUnicast, Dst: P("0.0.0.0/0"), Gateway: A("198.51.100.2"), Device: "veth-pub"},
			route(255, routes.TypeLocal, "10.10.0.1/32", "veth-a"), route(255, routes.TypeLocal, "100.64.0.1/32", "cp-eng"),
		}}
}

func TestJudgeLab(t *testing.T) {
	snap := labSnapshot()
	src := A("100.64.0.2")
	cases := []struct {
		dst                string
		forwarded, local   bool
		rule, route, steps string
	}{
		{"10.10.0.10", true, false, "32766:", "10.10.0.0/16 dev veth-a", "throw: on to the next rule"},
		{"10.20.0.10", false, false, "1000: from all iif cp-eng lookup 1000", "blackhole 0.0.0.0/0 table 1000", "decides"},
		{"8.8.8.8", false, false, "1000:", "blackhole 0.0.0.0/0 table 1000", ""},
		// Another client of the same network: blackholed, no client-to-client.
		{"100.64.0.3", false, false, "1000:", "blackhole 0.0.0.0/0", ""},
		// The gateway's own address in the VPC: the local table comes first.
		{"10.10.0.1", true, true, "0:", "local 10.10.0.1/32 dev veth-a table local", ""},
	}
	for _, c := range cases {
		d := analysis.Walk(snap, analysis.Flow{Src: src, Dst: A(c.dst), IIF: "cp-eng"})
		o := Judge(d, A(c.dst), "cp-eng")
		if o.Forwarded != c.forwarded || o.Local != c.local || d.Rule == nil || !strings.HasPrefix(d.Rule.String(), c.rule) || !strings.Contains(d.Route.String(), c.route) {
			t.Errorf("%s: forwarded %v local %v rule %v route %v (%s)", c.dst, o.Forwarded, o.Local, d.Rule, d.Route, o.Why)
			continue
		}
		if path := strings.Join(Path(d), "\n"); c.steps != "" && !strings.Contains(path, c.steps) {
			t.Errorf("%s: path\n%s", c.dst, path)
		}
	}
	// Without the gateway's rule (say, it crashed half way) ops' clients
	// would reach everything main routes.
	ops := analysis.Walk(snap, analysis.Flow{Src: A("100.65.0.2"), Dst: A("10.10.0.10"), IIF: "cp-ops"})
	if o := Judge(ops, A("10.10.0.10"), "cp-ops"); o.Forwarded || !strings.Contains(strings.Join(Path(ops), "\n"), "1000: from all iif cp-eng lookup 1000 -> no match (iif cp-eng, the packet comes in on cp-ops)") {
		t.Errorf("ops reached vpc-a: %s\n%s", o.Why, strings.Join(Path(ops), "\n"))
	}
	bare := *snap
	bare.Rules = snap.Rules[:2]
	if o := Judge(analysis.Walk(&bare, analysis.Flow{Src: A("100.65.0.2"), Dst: A("10.10.0.10"), IIF: "cp-ops"}), A("10.10.0.10"), "cp-ops"); !o.Forwarded {
		t.Errorf("without its rule ops should fall through to main: %s", o.Why)
	}
}

func TestJudgeRuleFeatures(t *testing.T) {
	snap := &routes.Snapshot{OS: "linux", Routes: []routes.Route{
		route(7411, routes.TypeUnicast, "0.0.0.0/0", "tun0"),
		route(254, routes.TypeUnicast, "0.0.0.0/0", "eth0"), route(254, routes.TypeUnicast, "10.1.2.0/24", "eth0"),
	}}
	// wg-quick: suppress_prefixlength 0 ignores the default in main, "not
	// fwmark" matches unmarked packets: the tunnel table decides.
	main := rule(10, 254, "")
	main.SuppressPrefixLen = 0
	tun := rule(20, 7411, "")
	tun.FwMark, tun.Invert = 0x7411, true
	snap.Rules = []routes.Rule{main, tun}
	d := analysis.Walk(snap, analysis.Flow{Src: A("10.1.2.10"), Dst: A("8.8.8.8"), IIF: "eth1"})
	if o := Judge(d, A("8.8.8.8"), "eth1"); !o.Forwarded || d.Route.Device != "tun0" || d.Steps[0].Outcome != analysis.StepSuppressed {
		t.Errorf("suppress_prefixlength 0 + not fwmark: %v %s", Path(d), o.Why)
	}
	prohibit := routes.Rule{Family: routes.FamilyV4, Priority: 30, Action: "prohibit", From: P("192.0.2.0/24"), SuppressPrefixLen: -1}
	snap.Rules = []routes.Rule{prohibit}
	if o := Judge(analysis.Walk(snap, analysis.Flow{Src: A("192.0.2.7"), Dst: A("8.8.8.8"), IIF: "eth1"}), A("8.8.8.8"), "eth1"); o.Forwarded || !strings.Contains(o.Why, "prohibit") {
		t.Errorf("prohibit rule: %+v", o)
	}
	snap.Rules = []routes.Rule{rule(5, 99, "")}
	if o := Judge(analysis.Walk(snap, analysis.Flow{Src: A("192.0.2.7"), Dst: A("8.8.8.8"), IIF: "eth1"}), A("8.8.8.8"), "eth1"); o.Forwarded || !strings.Contains(o.Why, "no rule") {
		t.Errorf("no route: %+v", o)
	}
}
