package bpf

import (
	"net/netip"
	"strings"
	"testing"
)

// A policy with port ranges: the longest match decides with the ranges of
// the prefixes covering it folded in, ICMP passes only where an entry
// names icmp, a later fragment passes where its protocol has a range, and
// a cut-off transport header (port 0) never matches.
func TestProgramPortPolicy(t *testing.T) {
	f := loadT(t, Options{l3Offset: 14, FlowTableSize: 4096})
	pfx := netip.MustParsePrefix
	rules := []Allow{
		{Prefix: pfx("10.20.0.0/16"), Ports: []PortRange{{ProtoTCP, 443, 443}}},
		{Prefix: pfx("10.20.0.10/32"), Ports: []PortRange{{ProtoTCP, 5432, 5432}, {ProtoUDP, 53, 53}, {ProtoTCP, 8000, 8100}}},
		{Prefix: pfx("10.20.5.0/24")},
		{Prefix: pfx("10.30.0.10/32"), Ports: []PortRange{{ProtoICMP, 0, 0}}},
		{Prefix: pfx("fd20::/64"), Ports: []PortRange{{ProtoUDP, 53, 53}}},
	}
	if err := f.SetPolicyRules(5, rules); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.100.0.20", "fd00::20"} {
		if err := f.SetPeer(netip.MustParseAddr(a), 11, 5); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := f.PolicyRules(5)
	if s := strings.Join(strs(got), "; "); !strings.Contains(s, "10.20.0.10/32 tcp/443 tcp/5432 tcp/8000-8100 udp/53") {
		t.Errorf("folded policy: %s", s)
	}
	v4 := func(dst string, proto uint8, l4 []byte, frag uint16) []byte {
		return ether(ethIPv4, ipv4("10.100.0.20", dst, proto, l4, nil, frag))
	}
	for _, c := range []struct {
		name  string
		frame []byte
		want  uint32
		key   FlowKey
	}{
		{"tcp/5432 on its host", v4("10.20.0.10", 6, tcp(40000, 5432, 0, 10), 0), tcxNext, mustKey("10.100.0.20", "10.20.0.10", 6, 40000, 5432)},
		{"tcp/22 on the same host", v4("10.20.0.10", 6, tcp(40000, 22, 0, 10), 0), tcxDrop, mustKey("10.100.0.20", "10.20.0.10", 6, 40000, 22)},
		{"tcp/443 from the covering /16", v4("10.20.0.10", 6, tcp(40001, 443, 0, 10), 0), tcxNext, mustKey("10.100.0.20", "10.20.0.10", 6, 40001, 443)},
		{"tcp/8050 inside a range", v4("10.20.0.10", 6, tcp(40000, 8050, 0, 10), 0), tcxNext, mustKey("10.100.0.20", "10.20.0.10", 6, 40000, 8050)},
		{"tcp/8101 past a range", v4("10.20.0.10", 6, tcp(40000, 8101, 0, 10), 0), tcxDrop, mustKey("10.100.0.20", "10.20.0.10", 6, 40000, 8101)},
		{"udp/53", v4("10.20.0.10", 17, udp(5353, 53, 20), 0), tcxNext, mustKey("10.100.0.20", "10.20.0.10", 17, 5353, 53)},
		{"tcp/53: udp only", v4("10.20.0.10", 6, tcp(5353, 53, 0, 0), 0), tcxDrop, mustKey("10.100.0.20", "10.20.0.10", 6, 5353, 53)},
		{"ping a port-limited host", v4("10.20.0.10", 1, icmpEcho(8, 9, 8), 0), tcxDrop, mustKey("10.100.0.20", "10.20.0.10", 1, 9, 8<<8)},
		{"ping where icmp is listed", v4("10.30.0.10", 1, icmpEcho(8, 9, 8), 0), tcxNext, mustKey("10.100.0.20", "10.30.0.10", 1, 9, 8<<8)},
		{"tcp where only icmp is listed", v4("10.30.0.10", 6, tcp(1, 80, 0, 0), 0), tcxDrop, mustKey("10.100.0.20", "10.30.0.10", 6, 1, 80)},
		{"every port in the /24", v4("10.20.5.5", 6, tcp(1, 22, 0, 0), 0), tcxNext, mustKey("10.100.0.20", "10.20.5.5", 6, 1, 22)},
		{"tcp/443 elsewhere in the /16", v4("10.20.9.9", 6, tcp(1, 443, 0, 0), 0), tcxNext, mustKey("10.100.0.20", "10.20.9.9", 6, 1, 443)},
		{"tcp/80 elsewhere in the /16", v4("10.20.9.9", 6, tcp(1, 80, 0, 0), 0), tcxDrop, mustKey("10.100.0.20", "10.20.9.9", 6, 1, 80)},
		{"later udp fragment to a host with a udp range", v4("10.20.0.10", 17, make([]byte, 40), 185), tcxNext, mustKey("10.100.0.20", "10.20.0.10", 17, 0, 0)},
		{"later tcp fragment where only icmp is listed", v4("10.30.0.10", 6, make([]byte, 40), 185), tcxDrop, mustKey("10.100.0.20", "10.30.0.10", 6, 0, 0)},
		{"tcp header cut off", v4("10.20.0.10", 6, []byte{0, 1, 0}, 0), tcxDrop, mustKey("10.100.0.20", "10.20.0.10", 6, 0, 0)},
		{"udp6/53", ether(ethIPv6, ipv6("fd00::20", "fd20::1", 17, udp(7, 53, 3))), tcxNext, mustKey("fd00::20", "fd20::1", 17, 7, 53)},
		{"icmpv6 echo to a port-limited prefix", ether(ethIPv6, ipv6("fd00::20", "fd20::1", 58, icmpEcho(128, 5, 10))), tcxDrop, mustKey("fd00::20", "fd20::1", 58, 5, 128<<8)},
		{"outside every entry", v4("10.40.0.1", 6, tcp(1, 443, 0, 0), 0), tcxDrop, mustKey("10.100.0.20", "10.40.0.1", 6, 1, 443)},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if got := run(t, f.objs.FlowsIngress, c.frame, 0); got != c.want {
				t.Errorf("returned %d, want %d", int32(got), int32(c.want))
			}
			fl, ok, err := f.TakeFlow(c.key)
			if err != nil || !ok {
				t.Fatalf("no flow %s (%v)", c.key, err)
			}
			want := VerdictAllow
			if c.want == tcxDrop {
				want = VerdictDeny
			}
			if fl.Verdict != want || fl.DstPort != c.key.DstPort {
				t.Errorf("flow %+v, want verdict %v", fl, want)
			}
		})
	}
	// Replacing the policy narrows live peers at once.
	if err := f.SetPolicyRules(5, []Allow{{Prefix: pfx("10.20.0.10/32"), Ports: []PortRange{{ProtoTCP, 22, 22}}}}); err != nil {
		t.Fatal(err)
	}
	if got := run(t, f.objs.FlowsIngress, v4("10.20.0.10", 6, tcp(40000, 5432, 0, 10), 0), 0); got != tcxDrop {
		t.Errorf("tcp/5432 after the policy changed to tcp/22: %d", int32(got))
	}
	if got := run(t, f.objs.FlowsIngress, v4("10.20.0.10", 6, tcp(40000, 22, 0, 10), 0), 0); got != tcxNext {
		t.Errorf("tcp/22 after the policy changed to tcp/22: %d", int32(got))
	}
	// Bad input is refused and names what is wrong.
	var many []PortRange
	for i := range MaxPortRanges + 1 {
		many = append(many, PortRange{ProtoTCP, uint16(100 + 2*i), uint16(100 + 2*i)})
	}
	for _, c := range []struct {
		rules []Allow
		want  string
	}{
		{[]Allow{{Prefix: pfx("10.0.0.0/8"), Ports: many}}, "17 port ranges apply"},
		{[]Allow{{Prefix: pfx("10.0.0.0/8"), Ports: []PortRange{{ProtoTCP, 0, 5}}}}, "invalid port range tcp/0-5"},
		{[]Allow{{Prefix: pfx("10.0.0.0/8"), Ports: []PortRange{{ProtoTCP, 9, 5}}}}, "invalid port range"},
	} {
		if err := f.SetPolicyRules(6, c.rules); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetPolicyRules(%v) = %v, want %q", c.rules, err, c.want)
		}
	}
}

func strs[T interface{ String() string }](xs []T) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

func TestFoldPolicy(t *testing.T) {
	pfx := netip.MustParsePrefix
	got := FoldPolicy([]Allow{
		{Prefix: pfx("10.0.0.0/8"), Ports: []PortRange{{ProtoTCP, 80, 80}}},
		{Prefix: pfx("10.1.0.0/16"), Ports: []PortRange{{ProtoTCP, 81, 90}, {ProtoTCP, 85, 100}}},
		{Prefix: pfx("10.1.2.0/24")},
		{Prefix: pfx("10.1.2.3/32"), Ports: []PortRange{{ProtoUDP, 53, 53}}},
		{Prefix: pfx("::ffff:10.1.0.0/112"), Ports: []PortRange{{ProtoUDP, 54, 54}}},
		{Prefix: pfx("::/0"), Ports: []PortRange{{ProtoUDP, 1, 1}}},
	})
	want := "10.0.0.0/8 tcp/80; 10.1.0.0/16 tcp/80-100 udp/54; 10.1.2.0/24; 10.1.2.3/32; ::/0 udp/1"
	if s := strings.Join(strs(got), "; "); s != want {
		t.Errorf("FoldPolicy:\n got %s\nwant %s", s, want)
	}
}
