package routes

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

var endpoint = netip.MustParseAddr("198.51.100.1")

// macSession is a ClearPath session on the recorded Mac: the XNU model
// with utun5 up, the macOS System, and an engine with an open journal.
func macSession(t *testing.T) (*xnu, System, *Engine) {
	t.Helper()
	k := macWithTunnel()
	sys := newBSDSystem(k)
	e := NewEngine(sys, t.TempDir())
	if err := e.Begin(); err != nil {
		t.Fatal(err)
	}
	return k, sys, e
}

func reconcile(t *testing.T, sys System, e *Engine, spec TunnelSpec) []Change {
	t.Helper()
	snap, err := sys.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	plan := PlanTunnel(snap, spec)
	if _, _, err := e.Reconcile(plan); err != nil {
		t.Fatal(err)
	}
	return plan
}

func routesVia(t *testing.T, sys System, want map[string]string) {
	t.Helper()
	for dst, w := range want {
		r := lookup(t, sys, dst)
		got := r.Device
		if r.Type != TypeUnicast {
			got = string(r.Type)
		}
		if r.Gateway.IsValid() {
			got += " via " + r.Gateway.String()
		}
		if got != w {
			t.Errorf("%s goes to %s (%s), want %s", dst, got, r, w)
		}
	}
}

func TestMacFullTunnelIsHalvesAndAPinnedEndpoint(t *testing.T) {
	_, sys, e := macSession(t)
	spec := TunnelSpec{Device: "utun5", Prefixes: []netip.Prefix{pfx("0.0.0.0/0"), pfx("::/0")},
		Addresses: []netip.Prefix{pfx("100.64.0.2/32")}, Endpoint: endpoint}
	plan := reconcile(t, sys, e, spec)
	want := []string{
		"ip route add 198.51.100.1/32 via 192.168.1.1 dev en0 proto 197", // first: before the halves capture it
		"ip route add 0.0.0.0/1 dev utun5 proto 197",
		"ip route add 128.0.0.0/1 dev utun5 proto 197",
		"ip -6 route add unreachable ::/1 proto 197",
		"ip -6 route add unreachable 8000::/1 proto 197",
	}
	if got := rendered(plan); !slices.Equal(got, want) {
		t.Fatalf("plan\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	routesVia(t, sys, map[string]string{
		"203.0.113.9":        "utun5",
		"10.10.1.1":          "utun5",
		"198.51.100.1":       "en0 via 192.168.1.1", // WireGuard's own packets
		"192.168.1.50":       "en0",                 // the LAN stays reachable
		"127.0.0.1":          "lo0 via 127.0.0.1",
		"2001:db8:ffff::200": "unreachable", // no IPv6 in the tunnel: refused, not leaked
	})
	// The machine's own defaults are untouched: a snapshot still has them.
	snap, _ := sys.Snapshot()
	for _, d := range []string{"0.0.0.0/0", "::/0"} {
		if !slices.ContainsFunc(snap.Routes, func(r Route) bool { return r.Dst == pfx(d) && r.Device == "en0" }) {
			t.Errorf("default %s of en0 is gone", d)
		}
	}
	// A second reconcile with nothing changed changes nothing.
	snap, _ = sys.Snapshot()
	added, removed, err := e.Reconcile(PlanTunnel(snap, spec))
	if err != nil || len(added)+len(removed) != 0 {
		t.Fatalf("idle reconcile: added %v removed %v err %v", added, removed, err)
	}
	rep, err := e.End()
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("end: %v %v", err, rep.Problems)
	}
	routesVia(t, sys, map[string]string{"203.0.113.9": "en0 via 192.168.1.1", "2001:db8:ffff::200": "en0 via fe80::1"})
}

// A new router on the LAN (DHCP) moves the pin on the next reconcile,
// which the agent runs on every route change.
func TestMacEndpointPinFollowsTheDefaultRoute(t *testing.T) {
	k, sys, e := macSession(t)
	spec := TunnelSpec{Device: "utun5", Prefixes: []netip.Prefix{pfx("0.0.0.0/0")}, Addresses: []netip.Prefix{pfx("100.64.0.2/32")}, Endpoint: endpoint}
	reconcile(t, sys, e, spec)
	for i, m := range k.table {
		if mustKey(m).dst == pfx("0.0.0.0/0") && m.Flags&rtfIfScope == 0 {
			k.table[i].Gateway = in4("192.168.1.254")
		}
	}
	reconcile(t, sys, e, spec)
	routesVia(t, sys, map[string]string{"198.51.100.1": "en0 via 192.168.1.254", "203.0.113.9": "utun5"})
	snap, _ := sys.Snapshot()
	if owned, _ := OwnedItems(snap); slices.ContainsFunc(owned, func(r Route) bool { return r.Gateway == netip.MustParseAddr("192.168.1.1") }) {
		t.Errorf("the old pin stayed: %v", owned)
	}
}

// A split tunnel: pushed prefixes go in, the LAN and the rest stay out; a
// pushed prefix equal to the LAN's is left to the LAN (one route per
// prefix on macOS) and reported as such.
func TestMacSplitTunnel(t *testing.T) {
	_, sys, e := macSession(t)
	spec := TunnelSpec{Device: "utun5", Prefixes: []netip.Prefix{pfx("10.10.0.0/16"), pfx("192.168.0.0/16"), pfx("192.168.1.0/24")},
		Addresses: []netip.Prefix{pfx("100.64.0.2/32")}, Endpoint: endpoint}
	plan := reconcile(t, sys, e, spec)
	if got := rendered(plan); !slices.Equal(got, []string{"ip route add 10.10.0.0/16 dev utun5 proto 197", "ip route add 192.168.0.0/16 dev utun5 proto 197"}) {
		t.Fatalf("plan %q", got)
	}
	routesVia(t, sys, map[string]string{"10.10.1.1": "utun5", "192.168.7.7": "utun5", "192.168.1.50": "en0", "198.51.100.1": "en0 via 192.168.1.1", "203.0.113.9": "en0 via 192.168.1.1"})
	snap, _ := sys.Snapshot()
	var got []string
	for _, o := range Overlaps(snap, spec) {
		got = append(got, o.Pushed.String()+" "+o.Local.Dst.String()+" "+o.Winner)
	}
	if !slices.Contains(got, "192.168.0.0/16 192.168.1.0/24 lan") || !slices.Contains(got, "192.168.1.0/24 192.168.1.0/24 lan") {
		t.Errorf("overlaps %q", got)
	}
}

// BlockLAN: the LAN is split into halves into the tunnel, except the
// router the endpoint pin goes through.
func TestMacFullTunnelBlockLAN(t *testing.T) {
	_, sys, e := macSession(t)
	spec := TunnelSpec{Device: "utun5", Prefixes: []netip.Prefix{pfx("0.0.0.0/0")}, Addresses: []netip.Prefix{pfx("100.64.0.2/32")},
		Endpoint: endpoint, BlockLAN: true}
	plan := reconcile(t, sys, e, spec)
	if got := rendered(plan)[:2]; !slices.Equal(got, []string{"ip route add 198.51.100.1/32 via 192.168.1.1 dev en0 proto 197", "ip route add 192.168.1.1/32 dev en0 proto 197"}) {
		t.Fatalf("plan starts %q", got)
	}
	routesVia(t, sys, map[string]string{"192.168.1.50": "utun5", "192.168.1.200": "utun5", "192.168.1.1": "en0", "198.51.100.1": "en0 via 192.168.1.1",
		"169.254.3.3": "en0", // link-local stays on the link
	})
}

func TestMacPlanIsAddableAsIs(t *testing.T) {
	ifs, addrs := macInterfaces(false)
	snap, _ := bsdSnapshot(ifs, addrs, macHealthyDump())
	for _, spec := range []TunnelSpec{
		{Device: "utun5", Prefixes: []netip.Prefix{pfx("0.0.0.0/0"), pfx("::/0")}, Addresses: []netip.Prefix{pfx("100.64.0.2/32"), pfx("fd00:64::2/128")}, Endpoint: endpoint},
		{Device: "utun5", Prefixes: []netip.Prefix{pfx("10.0.0.0/8"), pfx("fd00::/8")}, Addresses: []netip.Prefix{pfx("100.64.0.2/32")}},
	} {
		for _, c := range PlanTunnel(snap, spec) {
			if c.Rule != nil || c.Route.Table != 0 {
				t.Errorf("%s: macOS has no rules or tables", c)
			}
			if _, err := bsdChangeMsg(c, 1, macDevs); err != nil {
				t.Errorf("%s: %v", c, err)
			}
		}
	}
}

func TestHalves(t *testing.T) {
	for in, want := range map[string]string{"0.0.0.0/0": "0.0.0.0/1 128.0.0.0/1", "::/0": "::/1 8000::/1",
		"192.168.1.0/24": "192.168.1.0/25 192.168.1.128/25", "10.0.0.0/7": "10.0.0.0/8 11.0.0.0/8", "10.0.0.1/32": "10.0.0.1/32"} {
		var got []string
		for _, h := range halves(pfx(in)) {
			got = append(got, h.String())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("halves(%s) = %v, want %s", in, got, want)
		}
	}
}
