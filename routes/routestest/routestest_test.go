package routestest

import (
	"net/netip"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
)

// TestEngineRoundTrip runs a route session through the real engine against
// the in-memory system: what End leaves equals what Begin saw.
func TestEngineRoundTrip(t *testing.T) {
	sys := New(nil)
	sys.AddLink(routes.Link{Name: "eth0", Up: true})
	sys.AddLink(routes.Link{Name: "cp0", Up: true})
	foreign := routes.Change{Op: routes.OpAddRoute, Route: &routes.Route{Table: 254, Type: routes.TypeUnicast,
		Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.1"), Device: "eth0", Protocol: 4}}
	if err := sys.Apply(foreign); err != nil {
		t.Fatal(err)
	}
	before, _ := sys.Snapshot()
	eng := routes.NewEngine(sys, t.TempDir())
	if err := eng.Begin(); err != nil {
		t.Fatal(err)
	}
	plan := routes.TunnelChanges("cp0", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")})
	if err := eng.Apply(plan...); err != nil {
		t.Fatal(err)
	}
	r, err := sys.Lookup(routes.Query{Dst: netip.MustParseAddr("10.9.1.1")})
	if err != nil || r.Device != "cp0" {
		t.Fatalf("lookup 10.9.1.1 = %v, %v; want via cp0", r, err)
	}
	if _, err := eng.End(); err != nil {
		t.Fatal(err)
	}
	after, _ := sys.Snapshot()
	if d := routes.Compare(before, after); !d.Empty() {
		t.Fatalf("state after End differs from before Begin: %+v", d)
	}
}

func TestFailAndIdempotence(t *testing.T) {
	sys := New(nil)
	sys.AddLink(routes.Link{Name: "cp0", Up: true})
	add := routes.Change{Op: routes.OpAddRoute, Route: &routes.Route{Table: 7411, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.0.0.0/8"), Device: "cp0", Protocol: 197}}
	for range 2 {
		if err := sys.Apply(add); err != nil {
			t.Fatalf("adding an identical route twice: %v", err)
		}
	}
	other := *add.Route
	other.Device, other.Gateway = "", netip.MustParseAddr("10.1.1.1")
	if err := sys.Apply(routes.Change{Op: routes.OpAddRoute, Route: &other}); err == nil {
		t.Fatal("a different route in the same slot was accepted")
	}
	sys.Fail = func(routes.Change) error { return errFake }
	if err := sys.Apply(routes.Inverse(add)); err == nil {
		t.Fatal("Fail was not consulted")
	}
	sys.Fail = nil
	sys.RemoveLink("cp0")
	if s, _ := sys.Snapshot(); len(s.Routes) != 0 {
		t.Fatalf("routes through a removed link remain: %v", s.Routes)
	}
}

var errFake = errorString("refused by the test")

type errorString string

func (e errorString) Error() string { return string(e) }

// Addresses and sysctls follow the netlink backend: adding twice or
// deleting a missing one succeeds, an address needs its device (deleting
// on a gone device succeeds), switch names stay under net/.
func TestAddressesAndSysctls(t *testing.T) {
	s := New(nil)
	s.AddLink(routes.Link{Name: "wg0", Up: true})
	a := &routes.Address{Device: "wg0", Prefix: netip.MustParsePrefix("fd00:64::1/64"), NoDAD: true}
	for _, c := range []routes.Change{{Op: routes.OpAddAddr, Addr: a}, {Op: routes.OpAddAddr, Addr: a}} {
		if err := s.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ := s.Snapshot()
	if len(snap.Addresses) != 1 || snap.Addresses[0].NoDAD {
		t.Fatalf("addresses %v, want one (the flag is not state)", snap.Addresses)
	}
	if err := s.Apply(routes.Change{Op: routes.OpAddAddr, Addr: &routes.Address{Device: "wg9", Prefix: a.Prefix}}); err == nil {
		t.Error("address on a missing device accepted")
	}
	for _, c := range []routes.Change{{Op: routes.OpDelAddr, Addr: a}, {Op: routes.OpDelAddr, Addr: a}, {Op: routes.OpDelAddr, Addr: &routes.Address{Device: "wg9", Prefix: a.Prefix}}} {
		if err := s.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	if snap, _ := s.Snapshot(); len(snap.Addresses) != 0 {
		t.Fatalf("addresses left: %v", snap.Addresses)
	}
	if v, _ := s.ReadSysctl("net/ipv4/ip_forward"); v != "0" {
		t.Errorf("unset switch reads %q, want 0", v)
	}
	if err := s.Apply(routes.Change{Op: routes.OpSetSysctl, Sysctl: &routes.Sysctl{Name: "net/ipv4/ip_forward", Value: "1", Old: "0"}}); err != nil || s.Sysctl("net/ipv4/ip_forward") != "1" {
		t.Fatalf("set: %v %q", err, s.Sysctl("net/ipv4/ip_forward"))
	}
	if err := s.Apply(routes.Change{Op: routes.OpSetSysctl, Sysctl: &routes.Sysctl{Name: "kernel/core_pattern", Value: "|x"}}); err == nil {
		t.Error("a switch outside net/ accepted")
	}
	if _, err := s.ReadSysctl("../x"); err == nil {
		t.Error("bad name read")
	}
}
