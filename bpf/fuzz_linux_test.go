package bpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// FuzzIngress feeds arbitrary IP packets to the program in the kernel and
// checks its decision against a reference written here: what is not an IP
// packet is dropped without a flow; an unregistered or v4-mapped source is
// dropped without a flow; otherwise exactly one flow with the packet's
// addresses appears, allowed iff the policy contains the destination;
// except an IPv6 packet whose extension headers do not lead to the
// transport header within 6 headers (unparsedIPv6), which is dropped
// without a flow.
// flags bit 0 overwrites the source with a registered peer, so most inputs
// reach the policy; bit 1 picks the IPv6 Ethernet type.
func FuzzIngress(f *testing.F) {
	f.Add(byte(1), ipv4("10.100.0.2", "10.10.1.5", 6, tcp(1, 2, 0, 10), nil, 0))
	f.Add(byte(1), ipv4("10.100.0.2", "10.10.2.5", 17, udp(1, 2, 0), []byte{1, 1, 1, 1, 1, 1, 1, 0}, 0))
	f.Add(byte(0), ipv4("10.100.0.9", "10.10.1.5", 1, icmpEcho(8, 1, 0), nil, 0))
	f.Add(byte(3), ipv6("fd00::2", "fd10::1", 6, tcp(1, 2, 0, 0), hopByHop(), fragHeader(0)))
	f.Add(byte(3), ipv6("fd00::2", "fd11::1", 58, icmpEcho(128, 1, 0), fragHeader(3)))
	f.Add(byte(2), ipv6("::ffff:10.100.0.2", "fd10::1", 17, udp(1, 2, 0)))
	f.Add(byte(1), []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 100, 0, 2, 10, 10, 1, 1, 0xff})
	f.Add(byte(0), []byte("definitely not an IP packet"))
	if testing.Short() {
		f.Skip("loads eBPF programs")
	}
	flt := loadT(f, Options{l3Offset: 14, FlowTableSize: 1024})
	allowed := mustPrefixes("10.10.1.0/24", "fd10::/64")
	if err := flt.SetPolicy(1, allowed); err != nil {
		f.Fatal(err)
	}
	peer4, peer6 := netip.MustParseAddr("10.100.0.2"), netip.MustParseAddr("fd00::2")
	for _, a := range []netip.Addr{peer4, peer6} {
		if err := flt.SetPeer(a, 7, 1); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, flags byte, pkt []byte) {
		if len(pkt) < 20 || len(pkt) > 4000 {
			t.Skip("test runs need a plausible frame")
		}
		pkt = append([]byte(nil), pkt...)
		ethertype := uint16(ethIPv4)
		if flags&2 != 0 {
			ethertype = ethIPv6
		}
		version := pkt[0] >> 4
		if flags&1 != 0 {
			switch {
			case version == 4:
				a := peer4.As4()
				copy(pkt[12:16], a[:])
			case version == 6 && len(pkt) >= 40:
				a := peer6.As16()
				copy(pkt[8:24], a[:])
			}
		}
		ret, err := flt.objs.FlowsIngress.Run(&ebpf.RunOptions{Data: ether(ethertype, pkt)})
		if errors.Is(err, unix.EINVAL) {
			// BPF_PROG_TEST_RUN has sanity checks of its own (IP header
			// present, total length within the frame); the TUN driver
			// has not, but such frames cannot be run here.
			t.Skip("the kernel's test run refuses this frame")
		}
		if err != nil {
			t.Fatal(err)
		}

		var src, dst netip.Addr
		var proto uint8
		isIP := false
		switch {
		case version == 4 && ethertype == ethIPv4 && pkt[0]&0x0f >= 5:
			isIP = true
			src, dst = netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
			proto = pkt[9]
		case version == 6 && ethertype == ethIPv6 && len(pkt) >= 40:
			isIP = true
			src, dst = netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
			proto = pkt[6]
		}
		flows := takeFlows(t, flt)
		registered := src == peer4 || src == peer6
		switch {
		case !isIP, src.Is4In6(), dst.Is4In6(), !registered, version == 6 && unparsedIPv6(pkt):
			if ret != tcxDrop || len(flows) != 0 {
				t.Fatalf("ip %v registered %v: returned %d with flows %+v; want a drop, no flow", isIP, registered, int32(ret), flows)
			}
			return
		}
		if len(flows) != 1 {
			c, _ := flt.Counters()
			t.Fatalf("%d flows for one packet %s -> %s (returned %d, counters %+v): %+v", len(flows), src, dst, int32(ret), c, flows)
		}
		fl := flows[0]
		if fl.Src != src || fl.Dst != dst || fl.UserID != 7 || fl.Packets != 1 || fl.Bytes != uint64(len(pkt)) {
			t.Fatalf("flow %+v for %s -> %s, %d bytes", fl, src, dst, len(pkt))
		}
		// IPv6 extension headers change the protocol the program sees.
		if version == 4 && fl.Proto != proto {
			t.Fatalf("flow protocol %d, packet's %d", fl.Proto, proto)
		}
		want := VerdictDeny
		for _, p := range allowed {
			if p.Contains(dst) {
				want = VerdictAllow
			}
		}
		if fl.Verdict != want || (ret == tcxNext) != (want == VerdictAllow) {
			t.Fatalf("%s -> %s: verdict %v (returned %d), want %v", src, dst, fl.Verdict, int32(ret), want)
		}
		// An unfragmented IPv4 UDP packet's ports are right there.
		if ihl := int(pkt[0]&0x0f) * 4; version == 4 && proto == ProtoUDP && binary.BigEndian.Uint16(pkt[6:8])&0x1fff == 0 && len(pkt) >= ihl+4 {
			sp, dp := binary.BigEndian.Uint16(pkt[ihl:]), binary.BigEndian.Uint16(pkt[ihl+2:])
			if fl.SrcPort != sp || fl.DstPort != dp {
				t.Fatalf("UDP ports %d -> %d, packet's %d -> %d", fl.SrcPort, fl.DstPort, sp, dp)
			}
		}
	})
}

// unparsedIPv6 is the reference of the program's IPv6 header walk: true
// if the extension headers (hop-by-hop, routing, destination options,
// mobility, HIP, shim6, fragment, AH) do not end within 6 headers, or
// claim bytes beyond the packet.
func unparsedIPv6(pkt []byte) bool {
	next, off := pkt[6], 40
	for i := 0; i <= 6; i++ {
		switch next {
		case 0, 43, 60, 135, 139, 140:
			if i == 6 || off+2 > len(pkt) {
				return true
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
		case 44:
			if i == 6 || off+4 > len(pkt) {
				return true
			}
			later := binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 != 0
			next, off = pkt[off], off+8
			if later {
				return false
			}
		case 51:
			if i == 6 || off+2 > len(pkt) {
				return true
			}
			next, off = pkt[off], off+(int(pkt[off+1])+2)*4
		default:
			return off > len(pkt)
		}
	}
	return off > len(pkt)
}

// takeFlows returns the flows in flt's table and takes them out, so the
// next fuzz input starts from an empty table.
func takeFlows(t *testing.T, flt *Filter) []Flow {
	t.Helper()
	var flows []Flow
	for fl, err := range flt.Flows() {
		if err != nil {
			t.Fatal(err)
		}
		flows = append(flows, fl)
	}
	for _, fl := range flows {
		flt.TakeFlow(fl.FlowKey)
	}
	return flows
}
