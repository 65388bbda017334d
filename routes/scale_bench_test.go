package routes

import (
	"fmt"
	"net/netip"
	"testing"
)

// memSystem is an in-memory System for the planning benchmarks: no kernel,
// so what is measured is the engine's own work.
type memSystem struct{ snap Snapshot }

func (m *memSystem) Snapshot() (*Snapshot, error) {
	s := m.snap
	s.Routes = append([]Route(nil), m.snap.Routes...)
	return &s, nil
}
func (m *memSystem) Apply(Change) error            { return nil }
func (m *memSystem) Lookup(q Query) (Route, error) { return Route{}, fmt.Errorf("no route") }

// pushed10k is 10,000 pushed prefixes: IPv4 /24s in 10.128.0.0/9 and IPv6
// /64s, one in ten.
func pushed(n int) []netip.Prefix {
	var out []netip.Prefix
	for i := range n {
		if i%10 == 9 {
			out = append(out, netip.MustParsePrefix(fmt.Sprintf("fd10:%x:%x::/64", i>>16, i&0xffff)))
		} else {
			out = append(out, netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 128+i>>8&0x7f, i&0xff)))
		}
	}
	return out
}

// scaleState is a laptop (LAN, router, a few hundred routes of its own)
// with the tunnel's plan for n pushed prefixes installed.
func scaleState(b *testing.B, n int) (*memSystem, TunnelSpec, []Change) {
	snap := lanSnap()
	for i := range 500 {
		snap.Routes = append(snap.Routes, Route{Family: FamilyV4, Table: 254, Type: TypeUnicast,
			Dst: netip.MustParsePrefix(fmt.Sprintf("172.%d.%d.0/24", 16+i/256, i%256)), Gateway: netip.MustParseAddr("10.1.2.1"), Device: "eth0", Protocol: 4})
	}
	spec := TunnelSpec{Device: "cp0", Prefixes: pushed(n), Addresses: prefixes("100.64.0.2/32", "fd00:64::2/128")}
	plan := PlanTunnel(snap, spec)
	sys := &memSystem{snap: *snap}
	for _, c := range plan {
		if c.Route != nil {
			sys.snap.Routes = append(sys.snap.Routes, *c.Route)
		}
		if c.Rule != nil {
			sys.snap.Rules = append(sys.snap.Rules, *c.Rule)
		}
	}
	return sys, spec, plan
}

// BenchmarkReplan10k is what the agent does on every network change with
// 10,000 pushed prefixes installed: snapshot, plan, reconcile (nothing to
// change, so only the planning and the comparison are measured).
func BenchmarkReplan10k(b *testing.B) {
	sys, spec, _ := scaleState(b, 10_000)
	e := NewEngine(sys, b.TempDir())
	if err := e.Begin(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		snap, _ := sys.Snapshot()
		added, removed, err := e.Reconcile(PlanTunnel(snap, spec))
		if err != nil || len(added)+len(removed) != 0 {
			b.Fatalf("steady state changed: +%d -%d %v", len(added), len(removed), err)
		}
	}
}

// BenchmarkStatus10k is the agent's part of one `vpn status` (the tray
// polls it every second) with 10,000 pushed prefixes: overlaps and the
// list of installed routes.
func BenchmarkStatus10k(b *testing.B) {
	sys, spec, _ := scaleState(b, 10_000)
	b.ReportAllocs()
	for b.Loop() {
		snap, _ := sys.Snapshot()
		var lines []string
		for _, o := range Overlaps(snap, spec) {
			lines = append(lines, o.Pushed.String()+o.Local.String()+o.Winner)
		}
		rs, rules := OwnedItems(snap)
		for _, r := range rs {
			lines = append(lines, r.String())
		}
		for _, r := range rules {
			lines = append(lines, r.String())
		}
		if len(lines) < 10_000 {
			b.Fatalf("%d lines", len(lines))
		}
	}
}
