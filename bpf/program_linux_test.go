package bpf

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// These tests run the program in the kernel with BPF_PROG_TEST_RUN on
// packets built here: exact control over headers (options, extension
// headers, fragments, GSO sizes) that real traffic cannot give on demand.
// The kernel hands tc test runs an Ethernet frame, so the program is loaded
// with its IP header at offset 14.

const (
	tcxNext = ^uint32(0) // TCX_NEXT (-1)
	tcxDrop = 2
)

// skbCtx mirrors struct __sk_buff (linux/bpf.h) up to hwtstamp; test runs
// accept ifindex, wire_len, gso_segs and gso_size among others.
type skbCtx struct {
	Head     [10]uint32 // len .. ingress_ifindex
	Ifindex  uint32
	Mid      [27]uint32 // tc_index .. flow_keys
	Tstamp   uint64
	WireLen  uint32
	GsoSegs  uint32
	Sk       uint64
	GsoSize  uint32
	Pad      uint32
	Hwtstamp uint64
}

func ether(ethertype uint16, l3 []byte) []byte {
	b := make([]byte, 14, 14+len(l3))
	binary.BigEndian.PutUint16(b[12:], ethertype)
	return append(b, l3...)
}

// ipv4 builds an IPv4 packet; opts are IP options (a multiple of 4 bytes),
// frag the fragment offset in 8-byte units.
func ipv4(src, dst string, proto uint8, l4 []byte, opts []byte, frag uint16) []byte {
	ihl := 20 + len(opts)
	b := make([]byte, ihl, ihl+len(l4))
	b[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(ihl+len(l4)))
	binary.BigEndian.PutUint16(b[6:], frag&0x1fff)
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	return append(b, l4...)
}

// ipv6 builds an IPv6 packet; ext are extension headers as (type, body)
// pairs chained before the L4 payload of type next.
func ipv6(src, dst string, next uint8, l4 []byte, ext ...[]byte) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	first := next
	var chain []byte
	for i := len(ext) - 1; i >= 0; i-- {
		h := append([]byte(nil), ext[i]...)
		typ := h[0]
		h[0] = first // each header names the one after it
		first = typ
		chain = append(h, chain...)
	}
	b[6] = first
	payload := append(chain, l4...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	return append(b, payload...)
}

// hopByHop is an 8-byte hop-by-hop options header (type in byte 0 until
// ipv6 chains it).
func hopByHop() []byte { return []byte{0, 0, 1, 4, 0, 0, 0, 0} }

// fragHeader is an IPv6 fragment header with offset in 8-byte units.
func fragHeader(offset uint16) []byte {
	h := []byte{44, 0, 0, 0, 0, 0, 0, 1}
	binary.BigEndian.PutUint16(h[2:], offset<<3)
	return h
}

func tcp(sport, dport uint16, optLen int, payload int) []byte {
	hl := 20 + optLen
	b := make([]byte, hl+payload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = byte(hl/4) << 4
	return b
}

func udp(sport, dport uint16, payload int) []byte {
	b := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+payload))
	return b
}

func icmpEcho(typ uint8, id uint16, payload int) []byte {
	b := make([]byte, 8+payload)
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	return b
}

const (
	ethIPv4 = 0x0800
	ethIPv6 = 0x86dd
	ethARP  = 0x0806
)

func run(t testing.TB, p *ebpf.Program, frame []byte, gsoSize uint32) uint32 {
	t.Helper()
	opts := &ebpf.RunOptions{Data: frame}
	if gsoSize != 0 {
		opts.Context = skbCtx{GsoSize: gsoSize}
	}
	ret, err := p.Run(opts)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret
}

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func mustKey(src, dst string, proto uint8, sport, dport uint16) FlowKey {
	return FlowKey{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: proto, SrcPort: sport, DstPort: dport}
}

func testFilter(t *testing.T) *Filter {
	t.Helper()
	f := loadT(t, Options{l3Offset: 14, FlowTableSize: 4096})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.SetPolicy(1, mustPrefixes("10.10.1.0/24", "fd10::/64")))
	must(f.SetPolicy(3, nil)) // deny everything
	must(f.SetPeer(netip.MustParseAddr("10.100.0.2"), 7, 1))
	must(f.SetPeer(netip.MustParseAddr("fd00::2"), 7, 1))
	must(f.SetPeer(netip.MustParseAddr("10.100.0.5"), 8, 0))
	must(f.SetPeer(netip.MustParseAddr("10.100.0.6"), 9, 3))
	return f
}

func TestProgramVerdicts(t *testing.T) {
	f := testFilter(t)
	for _, c := range []struct {
		name    string
		frame   []byte
		want    uint32
		key     FlowKey // zero: no flow expected
		user    uint32
		verdict Verdict
	}{
		{"tcp allowed", ether(ethIPv4, ipv4("10.100.0.2", "10.10.1.5", 6, tcp(40000, 443, 12, 100), nil, 0)),
			tcxNext, mustKey("10.100.0.2", "10.10.1.5", 6, 40000, 443), 7, VerdictAllow},
		{"tcp outside the policy", ether(ethIPv4, ipv4("10.100.0.2", "10.10.2.5", 6, tcp(40000, 443, 0, 10), nil, 0)),
			tcxDrop, mustKey("10.100.0.2", "10.10.2.5", 6, 40000, 443), 7, VerdictDeny},
		{"udp with IP options", ether(ethIPv4, ipv4("10.100.0.2", "10.10.1.9", 17, udp(5353, 53, 30), []byte{1, 1, 1, 0}, 0)),
			tcxNext, mustKey("10.100.0.2", "10.10.1.9", 17, 5353, 53), 7, VerdictAllow},
		{"IPv4 non-first fragment", ether(ethIPv4, ipv4("10.100.0.2", "10.10.2.9", 17, make([]byte, 40), nil, 185)),
			tcxDrop, mustKey("10.100.0.2", "10.10.2.9", 17, 0, 0), 7, VerdictDeny},
		{"no policy: the group decides", ether(ethIPv4, ipv4("10.100.0.5", "192.0.2.1", 17, udp(1, 2, 0), nil, 0)),
			tcxNext, mustKey("10.100.0.5", "192.0.2.1", 17, 1, 2), 8, VerdictAllow},
		{"empty policy denies all", ether(ethIPv4, ipv4("10.100.0.6", "10.10.1.5", 6, tcp(1, 2, 0, 0), nil, 0)),
			tcxDrop, mustKey("10.100.0.6", "10.10.1.5", 6, 1, 2), 9, VerdictDeny},
		{"unregistered source", ether(ethIPv4, ipv4("10.100.0.9", "10.10.1.5", 6, tcp(1, 2, 0, 0), nil, 0)),
			tcxDrop, FlowKey{}, 0, 0},
		{"icmp echo", ether(ethIPv4, ipv4("10.100.0.2", "10.10.1.1", 1, icmpEcho(8, 77, 56), nil, 0)),
			tcxNext, mustKey("10.100.0.2", "10.10.1.1", 1, 77, 8<<8), 7, VerdictAllow},
		{"ipv6 tcp allowed", ether(ethIPv6, ipv6("fd00::2", "fd10::5", 6, tcp(1000, 22, 0, 5))),
			tcxNext, mustKey("fd00::2", "fd10::5", 6, 1000, 22), 7, VerdictAllow},
		{"ipv6 outside the policy", ether(ethIPv6, ipv6("fd00::2", "fd11::5", 6, tcp(1000, 22, 0, 5))),
			tcxDrop, mustKey("fd00::2", "fd11::5", 6, 1000, 22), 7, VerdictDeny},
		{"ipv6 hop-by-hop then udp", ether(ethIPv6, ipv6("fd00::2", "fd10::6", 17, udp(7, 9, 3), hopByHop())),
			tcxNext, mustKey("fd00::2", "fd10::6", 17, 7, 9), 7, VerdictAllow},
		{"ipv6 later fragment", ether(ethIPv6, ipv6("fd00::2", "fd10::7", 17, make([]byte, 16), fragHeader(100))),
			tcxNext, mustKey("fd00::2", "fd10::7", 17, 0, 0), 7, VerdictAllow},
		{"icmpv6 echo", ether(ethIPv6, ipv6("fd00::2", "fd10::8", 58, icmpEcho(128, 5, 10))),
			tcxNext, mustKey("fd00::2", "fd10::8", 58, 5, 128<<8), 7, VerdictAllow},
		{"ipv6 unregistered source", ether(ethIPv6, ipv6("fd00::3", "fd10::5", 6, tcp(1, 2, 0, 0))),
			tcxDrop, FlowKey{}, 0, 0},
		{"ipv6 with a v4-mapped source aliasing a peer", ether(ethIPv6, ipv6("::ffff:10.100.0.2", "fd10::5", 6, tcp(1, 2, 0, 0))),
			tcxDrop, FlowKey{}, 0, 0},
		{"not IP is dropped", ether(ethARP, make([]byte, 28)), tcxDrop, FlowKey{}, 0, 0},
		{"IPv6 ethertype, IPv4 header", ether(ethIPv6, ipv4("10.100.0.2", "10.10.2.5", 6, tcp(1, 2, 0, 0), nil, 0)), tcxDrop, FlowKey{}, 0, 0},
		// A tiny first fragment cannot slip past the policy.
		{"TCP header cut off, judged by address", ether(ethIPv4, ipv4("10.100.0.2", "10.10.2.5", 6, []byte{0, 1, 0}, nil, 0)),
			tcxDrop, mustKey("10.100.0.2", "10.10.2.5", 6, 0, 0), 7, VerdictDeny},
		{"UDP header cut off from an unregistered source", ether(ethIPv4, ipv4("10.100.0.77", "10.10.1.5", 17, []byte{0}, nil, 0)),
			tcxDrop, FlowKey{}, 0, 0},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if got := run(t, f.objs.FlowsIngress, c.frame, 0); got != c.want {
				t.Errorf("returned %d, want %d", int32(got), int32(c.want))
			}
			if c.key == (FlowKey{}) {
				for fl := range f.Flows() {
					t.Errorf("unexpected flow %+v", fl)
				}
				return
			}
			fl, ok, err := f.TakeFlow(c.key)
			if err != nil || !ok {
				var all []string
				for fl := range f.Flows() {
					all = append(all, fl.FlowKey.String())
				}
				t.Fatalf("no flow %s (%v); table has %v", c.key, err, all)
			}
			if fl.UserID != c.user || fl.Verdict != c.verdict || fl.Packets != 1 || fl.Bytes != uint64(len(c.frame)-14) {
				t.Errorf("flow = %+v; want user %d, %v, 1 packet of %d bytes", fl, c.user, c.verdict, len(c.frame)-14)
			}
		})
	}
	c, err := f.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.UnknownSource.Packets != 3 || c.NotIP.Packets != 2 || c.Malformed.Packets != 1 || c.Denied.Packets != 5 || c.Allowed.Packets != 8 {
		t.Errorf("counters = %+v; want 8 allowed, 5 denied, 3 unknown source, 2 not IP, 1 malformed", c)
	}
}

// Coalesced packets (what wireguard-go writes to its TUN device) count as
// the segments they carry, each with its own headers.
func TestProgramGSO(t *testing.T) {
	f := testFilter(t)
	// 3500 bytes of TCP payload in 1000-byte segments: 4 segments of 20
	// (IP) + 32 (TCP with options) bytes of headers each.
	frame := ether(ethIPv4, ipv4("10.100.0.2", "10.10.1.5", 6, tcp(40000, 443, 12, 3500), nil, 0))
	if got := run(t, f.objs.FlowsIngress, frame, 1000); got != tcxNext {
		t.Fatalf("returned %d", int32(got))
	}
	fl, ok, err := f.TakeFlow(mustKey("10.100.0.2", "10.10.1.5", 6, 40000, 443))
	if err != nil || !ok {
		t.Fatalf("no flow: %v", err)
	}
	if fl.Packets != 4 || fl.Bytes != 4*52+3500 {
		t.Errorf("TCP GSO: %d packets, %d bytes; want 4, %d", fl.Packets, fl.Bytes, 4*52+3500)
	}
	// UDP over IPv6: 2500 bytes in 1200-byte segments, 48 bytes of headers.
	frame = ether(ethIPv6, ipv6("fd00::2", "fd10::5", 17, udp(4000, 443, 2500)))
	run(t, f.objs.FlowsIngress, frame, 1200)
	fl, ok, _ = f.TakeFlow(mustKey("fd00::2", "fd10::5", 17, 4000, 443))
	if !ok || fl.Packets != 3 || fl.Bytes != 3*48+2500 {
		t.Errorf("UDP GSO flow = %+v (found %v); want 3 packets, %d bytes", fl, ok, 3*48+2500)
	}
}

// Egress adds replies to the client's flow and never drops.
func TestProgramReplies(t *testing.T) {
	f := testFilter(t)
	run(t, f.objs.FlowsIngress, ether(ethIPv4, ipv4("10.100.0.2", "10.10.1.1", 1, icmpEcho(8, 77, 56), nil, 0)), 0)
	run(t, f.objs.FlowsIngress, ether(ethIPv4, ipv4("10.100.0.2", "10.10.1.5", 17, udp(5000, 53, 20), nil, 0)), 0)
	for _, frame := range [][]byte{
		ether(ethIPv4, ipv4("10.10.1.1", "10.100.0.2", 1, icmpEcho(0, 77, 56), nil, 0)), // echo reply
		ether(ethIPv4, ipv4("10.10.1.5", "10.100.0.2", 17, udp(53, 5000, 100), nil, 0)),
		ether(ethIPv4, ipv4("10.10.1.5", "10.100.0.2", 17, udp(53, 5000, 100), nil, 0)),
		ether(ethIPv4, ipv4("10.10.1.5", "10.100.0.2", 17, udp(53, 5001, 100), nil, 0)), // no such flow
	} {
		if got := run(t, f.objs.FlowsEgress, frame, 0); got != tcxNext {
			t.Errorf("egress returned %d", int32(got))
		}
	}
	fl, _, _ := f.TakeFlow(mustKey("10.100.0.2", "10.10.1.1", 1, 77, 8<<8))
	if fl.ReplyPackets != 1 || fl.ReplyBytes != 84 {
		t.Errorf("ICMP flow replies %d packets, %d bytes; want 1, 84", fl.ReplyPackets, fl.ReplyBytes)
	}
	fl, _, _ = f.TakeFlow(mustKey("10.100.0.2", "10.10.1.5", 17, 5000, 53))
	if fl.ReplyPackets != 2 || fl.ReplyBytes != 2*128 || fl.Packets != 1 {
		t.Errorf("UDP flow = %+v; want 1 packet out, 2 replies of 128 bytes", fl)
	}
	for fl := range f.Flows() {
		t.Errorf("egress created a flow: %+v", fl)
	}
}

// verdictOf runs one TCP packet from src to dst and returns the flow's
// verdict, removing the flow again.
func verdictOf(t *testing.T, f *Filter, src, dst string) Verdict {
	t.Helper()
	var frame []byte
	proto := uint8(6)
	if strings.Contains(src, ":") {
		frame = ether(ethIPv6, ipv6(src, dst, proto, tcp(1, 2, 0, 0)))
	} else {
		frame = ether(ethIPv4, ipv4(src, dst, proto, tcp(1, 2, 0, 0), nil, 0))
	}
	ret := run(t, f.objs.FlowsIngress, frame, 0)
	fl, ok, err := f.TakeFlow(mustKey(src, dst, proto, 1, 2))
	if err != nil || !ok {
		t.Fatalf("%s -> %s: no flow (%v)", src, dst, err)
	}
	if (ret == tcxNext) != (fl.Verdict == VerdictAllow) {
		t.Errorf("%s -> %s: returned %d but recorded %v", src, dst, int32(ret), fl.Verdict)
	}
	return fl.Verdict
}

func policyEntryCount(t *testing.T, f *Filter, id uint32) int {
	t.Helper()
	n := 0
	var k flowsPolicyKey
	var v flowsPolicyValue
	it := f.objs.Policy.Iterate()
	for it.Next(&k, &v) {
		if k.PolicyId == id {
			n++
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPolicyChanges(t *testing.T) {
	f := loadT(t, Options{l3Offset: 14, FlowTableSize: 1024})
	peer := netip.MustParseAddr("10.100.0.2")
	if err := f.SetPeer(peer, 7, 1); err == nil || !strings.Contains(err.Error(), "policy 1 is not set") {
		t.Errorf("SetPeer with an unset policy = %v", err)
	}
	if err := f.SetPolicy(1, mustPrefixes("10.1.0.0/16", "10.2.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPeer(peer, 7, 1); err != nil {
		t.Fatal(err)
	}
	check := func(dst string, want Verdict) {
		t.Helper()
		if got := verdictOf(t, f, "10.100.0.2", dst); got != want {
			t.Errorf("to %s: %v, want %v", dst, got, want)
		}
	}
	check("10.1.2.3", VerdictAllow)
	check("10.3.2.3", VerdictDeny)

	// Replace: 10.1/16 goes, 10.3/16 comes, and the kernel holds exactly
	// the new list (plus the catch-all).
	if err := f.SetPolicy(1, mustPrefixes("10.2.0.0/16", "10.3.0.0/16", "10.3.0.0/16")); err != nil {
		t.Fatal(err)
	}
	check("10.1.2.3", VerdictDeny)
	check("10.2.2.3", VerdictAllow)
	check("10.3.2.3", VerdictAllow)
	if n := policyEntryCount(t, f, 1); n != 3 {
		t.Errorf("%d kernel entries for policy 1, want 3", n)
	}

	// Bad input changes nothing.
	if err := f.SetPolicy(1, []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), {}}); err == nil || !strings.Contains(err.Error(), "invalid prefix") {
		t.Errorf("SetPolicy with an invalid prefix = %v", err)
	}
	check("10.9.0.1", VerdictDeny)
	check("10.3.2.3", VerdictAllow)
	for _, err := range []error{f.SetPolicy(0, nil), f.SetPeer(peer, 0, 1), f.SetPeer(netip.Addr{}, 1, 1)} {
		if err == nil {
			t.Error("reserved or invalid argument accepted")
		}
	}

	// All of IPv6 does not open IPv4 (IPv4 sits in the v4-mapped range).
	if err := f.SetPolicy(1, mustPrefixes("::/0")); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPeer(netip.MustParseAddr("fd00::2"), 7, 1); err != nil {
		t.Fatal(err)
	}
	check("10.2.2.3", VerdictDeny)
	if got := verdictOf(t, f, "fd00::2", "2001:db8::1"); got != VerdictAllow {
		t.Errorf("::/0 allowed: to 2001:db8::1 %v", got)
	}
	if err := f.SetPolicy(1, mustPrefixes("::/0", "0.0.0.0/0")); err != nil {
		t.Fatal(err)
	}
	check("10.2.2.3", VerdictAllow)
	// IPv4-mapped IPv6 prefixes are IPv4 prefixes.
	if err := f.SetPolicy(1, mustPrefixes("::ffff:10.5.0.0/112")); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.Policy(1); len(p) != 1 || p[0] != netip.MustParsePrefix("10.5.0.0/16") {
		t.Errorf("Policy(1) = %v, want [10.5.0.0/16]", p)
	}
	check("10.5.1.1", VerdictAllow)
	check("10.2.2.3", VerdictDeny)

	// Deleting a policy in use is refused; once unused it leaves the kernel.
	if err := f.DeletePolicy(1); err == nil || !strings.Contains(err.Error(), "still used") {
		t.Errorf("DeletePolicy in use = %v", err)
	}
	if err := f.SetPeer(peer, 7, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.DeletePeer(netip.MustParseAddr("fd00::2")); err != nil {
		t.Fatal(err)
	}
	if err := f.DeletePolicy(1); err != nil {
		t.Fatal(err)
	}
	if n := policyEntryCount(t, f, 1); n != 0 {
		t.Errorf("%d kernel entries left for deleted policy 1", n)
	}
	check("10.9.0.1", VerdictAllow) // no policy: the group decides
	if err := f.DeletePeer(peer); err != nil {
		t.Fatal(err)
	}
	if err := f.DeletePeer(peer); err != nil {
		t.Errorf("deleting an unknown peer: %v", err)
	}
}
