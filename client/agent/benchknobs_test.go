package agent

import (
	"net/netip"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
)

func TestBenchKnobs(t *testing.T) {
	plan := routes.PlanTunnel(nil, routes.TunnelSpec{Device: "cp0",
		Prefixes:  []netip.Prefix{netip.MustParsePrefix("10.10.0.0/16"), netip.MustParsePrefix("0.0.0.0/0")},
		Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}})
	if got := benchPlan(plan); len(got) != len(plan) {
		t.Fatalf("without %s the plan must pass unchanged: %d changes, want %d", BenchNoRulesEnv, len(got), len(plan))
	}
	if benchFwMark(routes.FwMark) != routes.FwMark {
		t.Fatalf("without %s the mark must stay", BenchNoFwMarkEnv)
	}

	t.Setenv(BenchNoRulesEnv, "1")
	t.Setenv(BenchNoFwMarkEnv, "1")
	got := benchPlan(plan)
	var unicast int
	for _, c := range plan {
		if c.Route != nil && c.Route.Type == routes.TypeUnicast {
			unicast++
		}
	}
	if len(got) != unicast || unicast == 0 {
		t.Fatalf("%s: %d changes, want the %d unicast routes only: %v", BenchNoRulesEnv, len(got), unicast, got)
	}
	for _, c := range got {
		if c.Rule != nil || c.Route.Table != 254 || c.Route.Protocol != routes.Protocol {
			t.Errorf("%s: %v: want a route of ours (protocol %d) in main, no rule", BenchNoRulesEnv, c, routes.Protocol)
		}
	}
	for _, c := range plan {
		if c.Route != nil && c.Route.Table != routes.Table {
			t.Errorf("benchPlan changed the plan it was given: %v", c)
		}
	}
	if m := benchFwMark(routes.FwMark); m != 0 {
		t.Errorf("%s: mark %#x, want 0", BenchNoFwMarkEnv, m)
	}
}
