package bpf

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
)

// FuzzPortPolicy runs IPv4 packets of chosen protocol, destination, port
// and fragmentation through a port-limited policy in the kernel and
// checks each verdict against a reference written here: the longest
// folded entry containing the destination (FoldPolicy) decides; an entry
// without ranges allows all; ICMP needs an icmp range; TCP and UDP need a
// range of their protocol holding the destination port, or, for a later
// fragment, any range of their protocol; a cut-off header (port 0) never
// matches.
func FuzzPortPolicy(f *testing.F) {
	f.Add(byte(10), byte(0), uint16(5432), byte(0))
	f.Add(byte(10), byte(0), uint16(22), byte(0))
	f.Add(byte(7), byte(1), uint16(53), byte(0))
	f.Add(byte(7), byte(2), uint16(0), byte(0))
	f.Add(byte(200), byte(3), uint16(1), byte(0))
	f.Add(byte(10), byte(1), uint16(9), byte(1))
	f.Add(byte(10), byte(0), uint16(5432), byte(2))
	f.Add(byte(10), byte(0), uint16(443), byte(4))
	if testing.Short() {
		f.Skip("loads eBPF programs")
	}
	flt := loadT(f, Options{l3Offset: 14, FlowTableSize: 1024})
	pfx := netip.MustParsePrefix
	rules := []Allow{
		{Prefix: pfx("10.20.0.0/16"), Ports: []PortRange{{ProtoTCP, 443, 443}}},
		{Prefix: pfx("10.20.0.0/24"), Ports: []PortRange{{ProtoUDP, 53, 60}, {ProtoICMP, 0, 0}}},
		{Prefix: pfx("10.20.0.10/32"), Ports: []PortRange{{ProtoTCP, 5432, 5432}, {ProtoTCP, 8000, 8100}}},
		{Prefix: pfx("10.20.0.128/25")},
	}
	if err := flt.SetPolicyRules(1, rules); err != nil {
		f.Fatal(err)
	}
	folded := FoldPolicy(rules)
	if err := flt.SetPeer(netip.MustParseAddr("10.100.0.2"), 7, 1); err != nil {
		f.Fatal(err)
	}
	protos := []uint8{ProtoTCP, ProtoUDP, ProtoICMP, 47}
	f.Fuzz(func(t *testing.T, host, protoSel byte, dport uint16, flags byte) {
		proto := protos[int(protoSel)%len(protos)]
		dst := netip.AddrFrom4([4]byte{10, 20, 0, host})
		switch flags >> 2 & 3 {
		case 1:
			dst = netip.AddrFrom4([4]byte{10, 20, 1, host})
		case 2:
			dst = netip.AddrFrom4([4]byte{10, 30, 0, host})
		}
		later := flags&1 != 0
		cut := flags&2 != 0
		var l4 []byte
		switch proto {
		case ProtoTCP:
			l4 = tcp(40000, dport, 0, 8)
		case ProtoUDP:
			l4 = udp(40000, dport, 8)
		case ProtoICMP:
			l4 = icmpEcho(8, 1, 8)
		default:
			l4 = make([]byte, 24)
		}
		if cut {
			l4 = l4[:1]
		}
		frag := uint16(0)
		if later {
			frag = 3
		}
		pkt := ipv4("10.100.0.2", dst.String(), proto, l4, nil, frag)
		ret, err := flt.objs.FlowsIngress.Run(&ebpf.RunOptions{Data: ether(ethIPv4, pkt)})
		if err != nil {
			t.Skip("the kernel's test run refuses this frame")
		}
		flows := takeFlows(t, flt)
		// The reference.
		allow := false
		best := -1
		for i, a := range folded {
			if a.Prefix.Addr().Is4() && a.Prefix.Contains(dst) && (best < 0 || a.Prefix.Bits() > folded[best].Prefix.Bits()) {
				best = i
			}
		}
		if best >= 0 {
			e := folded[best]
			port := dport
			if cut || later || proto == 47 {
				port = 0
			}
			allow = len(e.Ports) == 0 || slices.ContainsFunc(e.Ports, func(r PortRange) bool {
				if proto == ProtoICMP {
					return r.Proto == ProtoICMP
				}
				return r.Proto == proto && (later || (port >= r.Lo && port <= r.Hi && port != 0))
			})
		}
		if (ret == tcxNext) != allow || len(flows) != 1 || (flows[0].Verdict == VerdictAllow) != allow {
			t.Fatalf("%s proto %d dport %d later %v cut %v: returned %d, flows %+v; want allow %v (entry %v)",
				dst, proto, dport, later, cut, int32(ret), flows, allow, best)
		}
	})
}
