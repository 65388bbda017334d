package routes

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func lanSnap() *Snapshot {
	pp := netip.MustParsePrefix
	pa := netip.MustParseAddr
	return &Snapshot{OS: "linux",
		Routes: []Route{
			{Family: FamilyV4, Table: 254, Type: TypeUnicast, Dst: pp("0.0.0.0/0"), Gateway: pa("10.1.2.1"), Device: "eth0", Protocol: 4},
			{Family: FamilyV4, Table: 254, Type: TypeUnicast, Dst: pp("10.1.2.0/24"), Device: "eth0", Protocol: 2, Scope: 253, Src: pa("10.1.2.10")},
			{Family: FamilyV6, Table: 254, Type: TypeUnicast, Dst: pp("::/0"), Gateway: pa("fd01:2::1"), Device: "eth0", Protocol: 4},
			{Family: FamilyV6, Table: 254, Type: TypeUnicast, Dst: pp("fd01:2::/64"), Device: "eth0", Protocol: 2},
			{Family: FamilyV6, Table: 254, Type: TypeUnicast, Dst: pp("fe80::/64"), Device: "eth0", Protocol: 2},
		},
		Addresses: []Address{{Device: "eth0", Prefix: pp("10.1.2.10/24")}, {Device: "eth0", Prefix: pp("fd01:2::10/64")}, {Device: "lo", Prefix: pp("127.0.0.1/8")}},
	}
}

func TestCheckTunnelAddresses(t *testing.T) {
	pp := netip.MustParsePrefix
	snap := lanSnap()
	if err := CheckTunnelAddresses(snap, []netip.Prefix{pp("100.64.0.2/32"), pp("fd00:64::2/128")}, ""); err != nil {
		t.Fatalf("good addresses refused: %v", err)
	}
	for addr, want := range map[string]string{
		"10.1.2.10/32":   "already an address of eth0",
		"10.1.2.77/32":   "lies in 10.1.2.0/24",
		"fd01:2::10/128": "already an address of eth0",
		"fd01:2::99/128": "lies in fd01:2::/64",
	} {
		err := CheckTunnelAddresses(snap, []netip.Prefix{pp(addr)}, "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want %q, got %v", addr, want, err)
		}
	}
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestCovers(t *testing.T) {
	cases := []struct {
		in   []netip.Prefix
		v6   bool
		want bool
	}{
		{prefixes("0.0.0.0/0"), false, true},
		{prefixes("0.0.0.0/1", "128.0.0.0/1"), false, true},
		{prefixes("128.0.0.0/1", "10.0.0.0/8", "0.0.0.0/1"), false, true},
		{prefixes("0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/2"), false, true},
		{prefixes("0.0.0.0/1", "128.0.0.0/2"), false, false},
		{prefixes("0.0.0.0/1", "192.0.0.0/2"), false, false},
		{prefixes("::/0"), false, false},
		{prefixes("::/1", "8000::/1"), true, true},
		{prefixes("::/1", "8000::/2"), true, false},
		{prefixes("10.0.0.0/8"), false, false},
		{nil, true, false},
	}
	for _, c := range cases {
		if got := Covers(c.in, c.v6); got != c.want {
			t.Errorf("Covers(%v, v6=%v) = %v, want %v", c.in, c.v6, got, c.want)
		}
	}
}

// TestConsentDropsCapture: a default route, or a set capturing a whole
// family, is routed only with the user's --all-traffic; the rest stays.
func TestConsentDropsCapture(t *testing.T) {
	cases := []struct {
		in, kept, dropped []netip.Prefix
	}{
		{prefixes("10.10.0.0/16", "0.0.0.0/0"), prefixes("10.10.0.0/16"), prefixes("0.0.0.0/0")},
		{prefixes("fd10:10::/64", "::/0"), prefixes("fd10:10::/64"), prefixes("::/0")},
		{prefixes("0.0.0.0/1", "10.10.0.0/16", "128.0.0.0/1"), prefixes("10.10.0.0/16", "128.0.0.0/1"), prefixes("0.0.0.0/1")},
		{prefixes("::/1", "8000::/1", "fd10:10::/64"), prefixes("8000::/1", "fd10:10::/64"), prefixes("::/1")},
		{prefixes("10.10.0.0/16", "fd10:10::/64"), prefixes("10.10.0.0/16", "fd10:10::/64"), nil},
	}
	for _, c := range cases {
		kept, dropped := Consent(c.in, false)
		if !slices.Equal(kept, c.kept) || !slices.Equal(dropped, c.dropped) {
			t.Errorf("Consent(%v) = %v, dropped %v; want %v, dropped %v", c.in, kept, dropped, c.kept, c.dropped)
		}
		if kept, dropped := Consent(c.in, true); !slices.Equal(kept, c.in) || dropped != nil {
			t.Errorf("with --all-traffic everything stays: %v %v", kept, dropped)
		}
	}
	if n := ConsentNotice(prefixes("0.0.0.0/0", "::/0")); !strings.Contains(n, "0.0.0.0/0, ::/0") || !strings.Contains(n, "--all-traffic") || strings.Contains(n, "\n") {
		t.Errorf("notice %q must be one line naming the prefixes and the flag", n)
	}
}

// TestFullTunnelFromInstalledRoutes: "full tunnel" is what the installed
// routes capture (two /1s count; throws for the LAN do not undo it).
func TestFullTunnelFromInstalledRoutes(t *testing.T) {
	snap := lanSnap()
	for _, c := range []struct {
		push   []netip.Prefix
		v4, v6 bool
	}{
		{prefixes("10.10.0.0/16", "fd10:10::/64"), false, false},
		{prefixes("0.0.0.0/0", "fd10:10::/64"), true, false},
		{prefixes("0.0.0.0/1", "128.0.0.0/1"), true, false},
		{prefixes("10.10.0.0/16", "::/0"), false, true},
	} {
		var owned []Route
		for _, ch := range PlanTunnel(snap, TunnelSpec{Device: "cp0", Prefixes: c.push, Addresses: prefixes("100.64.0.2/32", "fd00:64::2/128")}) {
			if ch.Route != nil {
				owned = append(owned, *ch.Route)
			}
		}
		if v4, v6 := InstalledFullTunnel(owned, "cp0"); v4 != c.v4 || v6 != c.v6 {
			t.Errorf("push %v: full v4=%v v6=%v, want %v %v", c.push, v4, v6, c.v4, c.v6)
		}
	}
}

// TestLANStaysOutsideForEqualAndWiderPushes: the LAN, its router and the
// resolvers in use stay outside the tunnel whatever the gateway pushes,
// in both families, unless the user passes --route-lan (RouteLAN).
func TestLANStaysOutsideForEqualAndWiderPushes(t *testing.T) {
	snap := lanSnap()
	resolvers := []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8:53::53"), netip.MustParseAddr("127.0.0.53")}
	spec := TunnelSpec{Device: "cp0", Addresses: prefixes("100.64.0.2/32", "fd00:64::2/128"), Resolvers: resolvers}
	cases := []struct {
		name      string
		push      []netip.Prefix
		want, not []string // rendered changes the plan must have / must lack
		reasons   []string // "pushed local reason" overlap entries
	}{
		{"push equal to the v4 LAN", prefixes("10.1.2.0/24", "10.10.0.0/16"),
			[]string{"ip route add 10.10.0.0/16 dev cp0 table 7411 proto 197 scope link"},
			[]string{"ip route add 10.1.2.0/24 dev cp0 table 7411 proto 197 scope link"},
			[]string{"10.1.2.0/24 10.1.2.0/24 connected network"}},
		{"push equal to the v6 LAN", prefixes("fd01:2::/64"), nil,
			[]string{"ip -6 route add fd01:2::/64 dev cp0 table 7411 proto 197"},
			[]string{"fd01:2::/64 fd01:2::/64 connected network"}},
		{"push of the LAN's router (inside the LAN)", prefixes("10.1.2.1/32", "fd01:2::1/128"), nil,
			[]string{"ip route add 10.1.2.1/32 dev cp0 table 7411 proto 197 scope link", "ip -6 route add fd01:2::1/128 dev cp0 table 7411 proto 197"},
			[]string{"10.1.2.1/32 10.1.2.0/24 connected network", "fd01:2::1/128 fd01:2::/64 connected network"}},
		{"wider push covering the LAN and the resolvers", prefixes("10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "fd00::/8"),
			[]string{"ip route add throw 10.1.2.0/24 table 7411 proto 197", "ip route add throw 192.0.2.53/32 table 7411 proto 197",
				"ip -6 route add throw 2001:db8:53::53/128 table 7411 proto 197", "ip -6 route add throw fd01:2::/64 table 7411 proto 197"},
			nil,
			[]string{"192.0.2.0/24 192.0.2.53/32 resolver in use", "2001:db8::/32 2001:db8:53::53/128 resolver in use"}},
		{"push equal to a resolver", prefixes("192.0.2.53/32"), nil,
			[]string{"ip route add 192.0.2.53/32 dev cp0 table 7411 proto 197 scope link"},
			[]string{"192.0.2.53/32 192.0.2.53/32 resolver in use"}},
	}
	for _, c := range cases {
		s := spec
		s.Prefixes = c.push
		got := rendered(PlanTunnel(snap, s))
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: plan lacks %q:\n%s", c.name, w, strings.Join(got, "\n"))
			}
		}
		for _, n := range c.not {
			if slices.Contains(got, n) {
				t.Errorf("%s: plan must not route %q:\n%s", c.name, n, strings.Join(got, "\n"))
			}
		}
		var ov []string
		for _, o := range Overlaps(snap, s) {
			if o.Winner == "lan" {
				ov = append(ov, o.Pushed.String()+" "+o.Local.Dst.String()+" "+o.Reason)
			}
		}
		for _, r := range c.reasons {
			if !slices.Contains(ov, r) {
				t.Errorf("%s: overlaps lack the decision %q: %q", c.name, r, ov)
			}
		}
		// --route-lan: the user lets the gateway take the LAN.
		s.RouteLAN = true
		got = rendered(PlanTunnel(snap, s))
		for _, n := range c.not {
			if !slices.Contains(got, n) {
				t.Errorf("%s with --route-lan: plan lacks %q:\n%s", c.name, n, strings.Join(got, "\n"))
			}
		}
		for _, g := range got {
			if strings.Contains(g, "throw 192.0.2.53") || strings.Contains(g, "throw 2001:db8:53::53") {
				t.Errorf("%s with --route-lan: resolver still thrown: %s", c.name, g)
			}
		}
	}
}
