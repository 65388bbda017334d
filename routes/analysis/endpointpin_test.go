package analysis

import (
	"slices"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
)

// withMovedNetwork: the laptop left 10.1.2.0/24 for 10.9.0.0/24 (router
// 10.9.0.1) while the gateway endpoint stayed pinned via the old router.
func withMovedNetwork(s *routes.Snapshot) *routes.Snapshot {
	s.Addresses = slices.DeleteFunc(s.Addresses, func(a routes.Address) bool { return a.Prefix == p("10.1.2.10/24") })
	s.Addresses = append(s.Addresses, routes.Address{Device: "eth0", Prefix: p("10.9.0.10/24")})
	s.Routes = slices.DeleteFunc(s.Routes, func(r routes.Route) bool {
		return r.Dst == p("0.0.0.0/0") && r.Table == 254 || r.Dst == p("10.1.2.0/24") && r.Table == 254
	})
	s.Routes = append(s.Routes, r4(254, "0.0.0.0/0", "10.9.0.1", "eth0", 4), r4(254, "10.9.0.0/24", "", "eth0", 2),
		r4(254, "198.51.100.1/32", "10.1.2.1", "eth0", 4))
	return s
}

func TestEndpointPinReplacedViaCurrentRouter(t *testing.T) {
	rep := Analyze(Input{Snapshot: withMovedNetwork(withTunnel(linuxLaptop(), "10.10.0.0/16")), Agent: agent("10.10.0.0/16"), Now: now})
	f := rep.Findings[0]
	want := []string{
		"ip route del 198.51.100.1/32 via 10.1.2.1 dev eth0 table main proto 4",
		"ip route add 198.51.100.1/32 via 10.9.0.1 dev eth0 table main proto 4",
	}
	if f.ID != "endpoint-pin-stale" || !f.Fixable || !slices.Equal(f.Commands, want) {
		t.Fatalf("want a fixable re-pin %q, got %s %v", want, f.ID, f.Commands)
	}
	// Without a tunnel that needs it, the stale pin is only removed.
	s := withMovedNetwork(linuxLaptop())
	rep = Analyze(Input{Snapshot: s, Now: now})
	if len(rep.Findings) != 1 || len(rep.Findings[0].Fix) != 1 || rep.Findings[0].Fix[0].Op != routes.OpDelRoute || rep.Findings[0].Severity != Warning {
		t.Fatalf("no tunnel: want one warning removing the pin, got %s", dump(rep))
	}
}
