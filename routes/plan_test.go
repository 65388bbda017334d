package routes

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func laptop() *Snapshot {
	return &Snapshot{
		Routes: []Route{
			{Family: FamilyV4, Table: 254, Type: TypeUnicast, Dst: pfx("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.1.2.1"), Device: "eth0", Protocol: 3},
			{Family: FamilyV4, Table: 254, Type: TypeUnicast, Dst: pfx("10.1.2.0/24"), Device: "eth0", Protocol: 2},
			{Family: FamilyV4, Table: 254, Type: TypeUnicast, Dst: pfx("172.16.0.0/12"), Device: "eth1", Protocol: 3},
			{Family: FamilyV6, Table: 254, Type: TypeUnicast, Dst: pfx("fd01:2::/64"), Device: "eth0", Protocol: 2},
			{Family: FamilyV6, Table: 254, Type: TypeUnicast, Dst: pfx("fe80::/64"), Device: "eth0", Protocol: 2},
			{Family: FamilyV4, Table: 255, Type: TypeLocal, Dst: pfx("10.1.2.10/32"), Device: "eth0", Protocol: 2},
		},
		Addresses: []Address{
			{Device: "lo", Prefix: pfx("127.0.0.1/8")},
			{Device: "eth0", Prefix: pfx("10.1.2.10/24")},
			{Device: "eth0", Prefix: pfx("fd01:2::10/64")},
			{Device: "eth0", Prefix: pfx("fe80::1/64")},
			{Device: "cp0", Prefix: pfx("100.64.0.2/32")},
		},
	}
}

func rendered(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

func TestPlanOverlap(t *testing.T) {
	got := rendered(PlanTunnel(laptop(), TunnelSpec{Device: "cp0", Prefixes: []netip.Prefix{pfx("10.0.0.0/8"), pfx("172.16.5.0/24")},
		Addresses: []netip.Prefix{pfx("100.64.0.2/32")}}))
	want := []string{
		"ip route add 10.0.0.0/8 dev cp0 table 7411 proto 197 scope link",
		// the LAN /24 beats the pushed /8
		"ip route add throw 10.1.2.0/24 table 7411 proto 197",
		// the pushed /24 beats the local /12 by itself: no throw for 172.16.0.0/12
		"ip route add 172.16.5.0/24 dev cp0 table 7411 proto 197 scope link",
		"ip rule add priority 4100 from 10.1.2.10/32 lookup main proto 197",
		"ip rule add priority 4200 not from all fwmark 0x7411 lookup 7411 proto 197",
		// no IPv6 prefix is pushed: no IPv6 rules pointing at an empty table
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("plan lacks %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("plan has %d changes, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}

func TestPlanFullTunnelWithoutIPv6RefusesIPv6(t *testing.T) {
	got := rendered(PlanTunnel(laptop(), TunnelSpec{Device: "cp0", Prefixes: []netip.Prefix{pfx("0.0.0.0/0"), pfx("::/0")},
		Addresses: []netip.Prefix{pfx("100.64.0.2/32")}}))
	for _, w := range []string{
		"ip route add 0.0.0.0/0 dev cp0 table 7411 proto 197 scope link",
		"ip -6 route add unreachable ::/0 table 7411 proto 197",
		"ip route add throw 10.1.2.0/24 table 7411 proto 197",    // LAN stays reachable
		"ip route add throw 172.16.0.0/12 table 7411 proto 197",  // and so does every other local route
		"ip -6 route add throw fd01:2::/64 table 7411 proto 197", // on both families
	} {
		if !slices.Contains(got, w) {
			t.Errorf("full-tunnel plan lacks %q:\n%s", w, strings.Join(got, "\n"))
		}
	}
	blocked := rendered(PlanTunnel(laptop(), TunnelSpec{Device: "cp0", Prefixes: []netip.Prefix{pfx("0.0.0.0/0")},
		Addresses: []netip.Prefix{pfx("100.64.0.2/32")}, BlockLAN: true}))
	for _, c := range blocked {
		if strings.Contains(c, "throw") {
			t.Errorf("--block-lan must not keep LAN exceptions: %s", c)
		}
	}
	if !slices.Contains(blocked, "ip -6 route add unreachable ::/0 table 7411 proto 197") {
		t.Errorf("a v4-only full tunnel must refuse IPv6:\n%s", strings.Join(blocked, "\n"))
	}
}

func TestOverlapsNameTheWinner(t *testing.T) {
	ov := Overlaps(laptop(), TunnelSpec{Device: "cp0", Prefixes: []netip.Prefix{pfx("10.0.0.0/8"), pfx("172.16.5.0/24")}})
	got := map[string]string{}
	for _, o := range ov {
		got[o.Pushed.String()+" "+o.Local.Dst.String()] = o.Winner
	}
	if got["10.0.0.0/8 10.1.2.0/24"] != "lan" || got["172.16.5.0/24 172.16.0.0/12"] != "tunnel" || len(got) != 2 {
		t.Fatalf("overlaps = %v", got)
	}
}

// Hold adds an unreachable default per captured family, at HoldMetric (a
// device route wins over it), so the block outlives the tunnel's device;
// an IPv4-only full tunnel's IPv6 is refused already and gets no second
// one. Without Hold, no such route.
func TestPlanHold(t *testing.T) {
	full := []netip.Prefix{pfx("0.0.0.0/0"), pfx("::/0")}
	holds := func(cs []Change) []string {
		var out []string
		for _, c := range cs {
			if c.Route != nil && c.Route.Metric == HoldMetric {
				if c.Route.Type != TypeUnreachable || c.Route.Table != Table || c.Route.Dst.Bits() != 0 {
					t.Errorf("hold route %s", c)
				}
				out = append(out, c.Route.Dst.String())
			}
		}
		return out
	}
	v4only := TunnelSpec{Device: "cp0", Prefixes: full, Addresses: []netip.Prefix{pfx("100.64.0.2/32")}}
	if got := holds(PlanTunnel(laptop(), v4only)); len(got) != 0 {
		t.Errorf("holds without Hold: %v", got)
	}
	v4only.Hold = true
	if got := holds(PlanTunnel(laptop(), v4only)); !slices.Equal(got, []string{"0.0.0.0/0"}) {
		t.Errorf("IPv4-only full tunnel holds %v, want 0.0.0.0/0", got)
	}
	both := TunnelSpec{Device: "cp0", Prefixes: full, Addresses: []netip.Prefix{pfx("100.64.0.2/32"), pfx("fd00:64::2/128")}, Hold: true}
	if got := holds(PlanTunnel(laptop(), both)); !slices.Equal(got, []string{"0.0.0.0/0", "::/0"}) {
		t.Errorf("dual-stack full tunnel holds %v, want both defaults", got)
	}
	split := TunnelSpec{Device: "cp0", Prefixes: []netip.Prefix{pfx("10.10.0.0/16")}, Addresses: v4only.Addresses, Hold: true}
	if got := holds(PlanTunnel(laptop(), split)); len(got) != 0 {
		t.Errorf("a split tunnel has nothing to hold: %v", got)
	}
}
