package routes_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/routestest"
)

func gwRoute(table int, typ routes.RouteType, dst string) routes.Change {
	return routes.Change{Op: routes.OpAddRoute, Route: &routes.Route{Table: table, Type: typ, Dst: netip.MustParsePrefix(dst), Protocol: routes.GatewayProtocol}}
}

// The gateway's engine sweeps and replays protocol 198 only: the client's
// items (197, table 7411) and a foreign route in the gateway's table stay.
func TestOwnerEngineTouchesOnlyItsOwn(t *testing.T) {
	sys := routestest.New(nil)
	sys.AddLink(routes.Link{Name: "wg0", Up: true})
	foreignRoute := routes.Change{Op: routes.OpAddRoute, Route: &routes.Route{Table: 1000, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.200.0.0/16"), Device: "wg0", Protocol: 4}}
	client := routes.Change{Op: routes.OpAddRule, Rule: &routes.Rule{Family: routes.FamilyV4, Priority: 4200, Table: routes.Table, Protocol: routes.Protocol, SuppressPrefixLen: -1}}
	for _, c := range []routes.Change{foreignRoute, client} {
		if err := sys.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := sys.Snapshot()
	dir := t.TempDir()
	e := routes.NewOwnerEngine(sys, dir, routes.GatewayOwner)
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	desired := []routes.Change{
		gwRoute(1000, routes.TypeThrow, "10.10.0.0/16"),
		gwRoute(1000, routes.TypeBlackhole, "0.0.0.0/0"),
		{Op: routes.OpAddRule, Rule: &routes.Rule{Family: routes.FamilyV4, Priority: 1000, IIF: "wg0", Table: 1000, Protocol: routes.GatewayProtocol, SuppressPrefixLen: -1}},
		{Op: routes.OpAddAddr, Addr: &routes.Address{Device: "wg0", Prefix: netip.MustParsePrefix("100.64.0.1/24")}},
	}
	added, removed, err := e.Reconcile(desired)
	if err != nil || len(added) != 4 || len(removed) != 0 {
		t.Fatalf("reconcile: added %v removed %v err %v", added, removed, err)
	}
	// Again: nothing to do.
	if added, removed, err := e.Reconcile(desired); err != nil || len(added)+len(removed) != 0 {
		t.Fatalf("second reconcile not empty: %v %v %v", added, removed, err)
	}
	// Allow list change: the new throw comes, the old goes.
	desired[0] = gwRoute(1000, routes.TypeThrow, "10.11.0.0/16")
	added, removed, err = e.Reconcile(desired)
	if err != nil || len(added) != 1 || len(removed) != 1 || removed[0].Route.Dst.String() != "10.10.0.0/16" {
		t.Fatalf("allow change: added %v removed %v err %v", added, removed, err)
	}
	if _, err := e.SetSysctl("net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if got := sys.Sysctl("net/ipv4/ip_forward"); got != "1" {
		t.Fatalf("ip_forward %q", got)
	}
	// kill -9: the engine is dropped without End; a new one recovers.
	rep, err := routes.NewOwnerEngine(sys, dir, routes.GatewayOwner).Recover()
	if err != nil {
		t.Fatal(err)
	}
	if got := sys.Sysctl("net/ipv4/ip_forward"); got != "0" {
		t.Errorf("ip_forward after recovery %q, want the original 0 (report %+v)", got, rep)
	}
	after, _ := sys.Snapshot()
	if d := routes.Compare(before, after); !d.Empty() {
		t.Fatalf("after recovery: %+v", d)
	}
	if len(routes.LinkAddresses(after, "wg0")) != 0 {
		t.Errorf("address left on wg0: %v", after.Addresses)
	}
}

// A journal record naming another owner's route, or a switch not the
// owner's, is reported and not replayed.
func TestOwnerReplayRefusesOthers(t *testing.T) {
	sys := routestest.New(nil)
	sys.SetSysctl("net/ipv4/conf/all/rp_filter", "1")
	dir := t.TempDir()
	e := routes.NewOwnerEngine(sys, dir, routes.GatewayOwner)
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	other := routes.Change{Op: routes.OpDelRoute, Route: &routes.Route{Table: 1000, Type: routes.TypeThrow, Dst: netip.MustParsePrefix("10.0.0.0/8"), Protocol: routes.Protocol}}
	if err := e.Apply(routes.Change{Op: routes.OpAddRoute, Route: other.Route}); err == nil || !strings.Contains(err.Error(), "marker") {
		t.Fatalf("adding a route without the owner's protocol: %v", err)
	}
	sw := routes.Change{Op: routes.OpSetSysctl, Sysctl: &routes.Sysctl{Name: "net/ipv4/conf/all/rp_filter", Value: "1", Old: "0"}}
	if err := e.Apply(other, sw); err != nil {
		t.Fatal(err)
	}
	rep, err := routes.NewOwnerEngine(sys, dir, routes.GatewayOwner).Recover()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 || !strings.Contains(rep.Problems[0], "not ClearPath gateway's (protocol 198)") {
		t.Fatalf("problems %q, want both records skipped", rep.Problems)
	}
	if sys.Sysctl("net/ipv4/conf/all/rp_filter") != "1" {
		t.Error("a switch not the owner's was written back")
	}
	snap, _ := sys.Snapshot()
	if len(snap.Routes) != 0 {
		t.Errorf("the gateway's replay added a route of the client's: %v", snap.Routes)
	}
}

func TestSysctlNamesAreConfined(t *testing.T) {
	for _, n := range []string{"kernel/core_pattern", "net/../kernel/x", "net//x", "/net/ipv4/ip_forward", ""} {
		if routes.ValidSysctl(n) {
			t.Errorf("%q accepted", n)
		}
	}
	if !routes.ValidSysctl("net/ipv6/conf/all/forwarding") {
		t.Error("forwarding refused")
	}
}
