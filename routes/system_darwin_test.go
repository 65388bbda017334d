package routes

// Tests of the darwin glue: recorded messages marshalled with
// golang.org/x/net/route and parsed back, hand-built kernel bytes (short
// masks, family-less masks, KAME zones) and a fuzzed parser. They run on
// macOS; CI elsewhere compiles them (make darwin-check).

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// wire is m as the route socket carries it.
func wire(t testing.TB, m bsdRouteMsg) []byte {
	t.Helper()
	b, err := toRouteMessage(m, 4242).Marshal()
	if err != nil {
		t.Fatalf("marshal %+v: %v", m, err)
	}
	return b
}

func parseRoutes(t testing.TB, b []byte) []bsdRouteMsg {
	t.Helper()
	msgs, err := parseRIB(route.RIBTypeRoute, b)
	if err != nil {
		t.Fatal(err)
	}
	var out []bsdRouteMsg
	for _, m := range msgs {
		if rm, ok := m.(*route.RouteMessage); ok {
			out = append(out, fromRouteMessage(rm))
		}
	}
	return out
}

var wireNames = map[int]string{macLo0: "lo0", macEn0: "en0", utun5: "utun5"}

// Every recorded message and every request we build reads the same after
// a trip through the wire format.
func TestDarwinMessagesSurviveTheWire(t *testing.T) {
	msgs := append(macHealthyDump(), tunnelblickLeftovers()...)
	for i, c := range ourMacRoutes() {
		m, err := bsdChangeMsg(c, 1000+i, macDevs)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
		if c.Route.Dst == netip.PrefixFrom(endpoint, 32) {
			m.Type = rtmChange // the pin moving in place (Engine.makeBeforeBreak)
			msgs = append(msgs, m)
		}
	}
	var dump []byte
	for _, m := range msgs {
		dump = append(dump, wire(t, m)...)
	}
	parsed := parseRoutes(t, dump) // a dump is the messages back to back
	if len(parsed) != len(msgs) {
		t.Fatalf("%d messages in, %d out", len(msgs), len(parsed))
	}
	for i, m := range msgs {
		p := parsed[i]
		if p.Type != m.Type || p.Flags != m.Flags || p.Index != m.Index || p.Seq != m.Seq {
			t.Errorf("header %d: %+v became %+v", i, m, p)
		}
		want, err1 := bsdRoute(m, wireNames)
		got, err2 := bsdRoute(p, wireNames)
		if err1 != nil || err2 != nil || want.String() != got.String() || !slices.Equal(want.Flags, got.Flags) || want.Src != got.Src {
			t.Errorf("message %d: %s %v (%v) became %s %v (%v)", i, want, want.Flags, err1, got, got.Flags, err2)
		}
	}
}

// The doctor fixtures hold through the wire as well.
func TestDarwinSnapshotThroughTheWireMatchesFixture(t *testing.T) {
	var b []byte
	for _, m := range append(macHealthyDump(), tunnelblickKilled()...) {
		b = append(b, wire(t, m)...)
	}
	ifs, addrs := macInterfaces(false)
	snap, errs := bsdSnapshot(ifs, addrs, parseRoutes(t, b))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	raw, err := os.ReadFile(filepath.Join("analysis", "testdata", "darwin-tunnelblick-force-quit.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fixture Snapshot
	if err := json.Unmarshal(raw, &fixture); err != nil {
		t.Fatal(err)
	}
	if d := Compare(&fixture, snap); !d.Empty() {
		t.Fatalf("through the wire: only in fixture %v, only in parse %v", d.RemovedRoutes, d.AddedRoutes)
	}
}

// Hand-built kernel bytes, laid out as XNU writes them (net/route.h,
// net/if.h): netmasks shortened to their significant bytes and without
// family, link-local zones embedded in the address, sockaddr_dl gateways.
var le = binary.LittleEndian // darwin/arm64 and darwin/amd64

func pad4(b []byte) []byte {
	for len(b)%4 != 0 || len(b) == 0 {
		b = append(b, 0)
	}
	return b
}

func saIn4(s string) []byte {
	b := make([]byte, 16)
	b[0], b[1] = 16, unix.AF_INET
	a := netip.MustParseAddr(s).As4()
	copy(b[4:], a[:])
	return b
}

func saIn6(s string, zone int) []byte {
	b := make([]byte, 28)
	b[0], b[1] = 28, unix.AF_INET6
	a := netip.MustParseAddr(s).As16()
	if zone > 0 {
		a[2], a[3] = byte(zone>>8), byte(zone)
	}
	copy(b[8:], a[:])
	return b
}

// saMask is a netmask in kernel form: sa_len counts up to the last
// non-zero byte, sa_family is 0.
func saMask(bits int, v6 bool) []byte {
	off, n := 4, 4
	if v6 {
		off, n = 8, 16
	}
	m := kmask(bits, v6).IP[:]
	if len(m) == 0 {
		return pad4(nil)
	}
	b := make([]byte, off+len(m))
	b[0] = byte(off + len(m))
	copy(b[off:], m)
	_ = n
	return pad4(b)
}

func saDL(index int, name string, ll []byte) []byte {
	l := 8 + len(name) + len(ll)
	if l < 20 {
		l = 20
	}
	b := make([]byte, l)
	b[0], b[1] = byte(l), unix.AF_LINK
	le.PutUint16(b[2:], uint16(index))
	b[5], b[6] = byte(len(name)), byte(len(ll))
	copy(b[8:], name)
	copy(b[8+len(name):], ll)
	return pad4(b)
}

// rtMsg is an rt_msghdr (92 bytes) followed by its socket addresses, in
// RTAX order, present where non-nil.
func rtMsg(typ, flags, index, pid, seq int, sas ...[]byte) []byte {
	h := make([]byte, 92)
	h[2], h[3] = unix.RTM_VERSION, byte(typ)
	le.PutUint16(h[4:], uint16(index))
	le.PutUint32(h[8:], uint32(flags))
	le.PutUint32(h[16:], uint32(pid))
	le.PutUint32(h[20:], uint32(seq))
	le.PutUint32(h[28:], 77) // rtm_use: a use count, not an errno
	addrs := 0
	for i, sa := range sas {
		if sa != nil {
			addrs |= 1 << i
			h = append(h, sa...)
		}
	}
	le.PutUint32(h[12:], uint32(addrs))
	le.PutUint16(h[0:], uint16(len(h)))
	return h
}

func ifMsg(index, flags, ift, mtu int, name string) []byte {
	h := make([]byte, 112)
	h[2], h[3] = unix.RTM_VERSION, unix.RTM_IFINFO
	le.PutUint32(h[4:], unix.RTA_IFP)
	le.PutUint32(h[8:], uint32(flags))
	le.PutUint16(h[12:], uint16(index))
	h[16] = byte(ift)
	le.PutUint32(h[24:], uint32(mtu))
	h = append(h, saDL(index, name, nil)...)
	le.PutUint16(h[0:], uint16(len(h)))
	return h
}

func ifaMsg(index int, mask, addr []byte) []byte {
	h := make([]byte, 20)
	h[2], h[3] = unix.RTM_VERSION, unix.RTM_NEWADDR
	le.PutUint32(h[4:], unix.RTA_NETMASK|unix.RTA_IFA)
	le.PutUint16(h[12:], uint16(index))
	h = append(h, mask...)
	h = append(h, addr...)
	le.PutUint16(h[0:], uint16(len(h)))
	return h
}

func TestDarwinKernelFormBytes(t *testing.T) {
	get := unix.RTM_GET
	b := slices.Concat(
		rtMsg(get, bsdFlagBits("UGScg"), macEn0, 0, 1, saIn4("0.0.0.0"), saIn4("192.168.1.1"), saMask(0, false)),
		rtMsg(get, bsdFlagBits("UCS"), macEn0, 0, 2, saIn4("192.168.1.0"), saDL(macEn0, "", nil), saMask(24, false)),
		rtMsg(get, bsdFlagBits("UGScg"), macUtun, 0, 3, saIn4("128.0.0.0"), saIn4("10.8.0.1"), saMask(1, false)),
		rtMsg(get, bsdFlagBits("UGcIg"), macUtun, 0, 4, saIn6("::", 0), saIn6("fe80::", macUtun), saMask(0, true)),
		rtMsg(get, bsdFlagBits("UC"), macEn0, 0, 5, saIn6("2001:db8:77::", 0), saDL(macEn0, "", nil), saMask(64, true)),
		rtMsg(get, bsdFlagBits("UHLI"), macLo0, 0, 6, saIn6("fe80::a4b1:c2d3:e4f5:1", macUtun), saDL(macUtun, "", nil), nil),
		rtMsg(get, bsdFlagBits("UGSc1"), macEn0, 0, 7, saIn4("198.51.100.1"), saIn4("192.168.1.1"), nil),
	)
	var got []string
	for _, m := range parseRoutes(t, b) {
		r, err := bsdRoute(m, wireNames)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.String()+" "+strings.Join(r.Flags, " "))
	}
	want := []string{
		"0.0.0.0/0 via 192.168.1.1 dev en0 U G S c g",
		"192.168.1.0/24 dev en0 U C S",
		"128.0.0.0/1 via 10.8.0.1 dev link#15 U G S c g",
		"::/0 via fe80:: dev link#15 U G c I g IFSCOPE",
		"2001:db8:77::/64 dev en0 U C",
		"fe80::a4b1:c2d3:e4f5:1/128 dev lo0 U H L I IFSCOPE ifscope:link#15 gw:link#15",
		"198.51.100.1/32 via 192.168.1.1 dev en0 proto 197 U G S 1 c",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("kernel bytes read as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	iflist := slices.Concat(
		ifMsg(macLo0, unix.IFF_UP|unix.IFF_LOOPBACK, unix.IFT_LOOP, 16384, "lo0"),
		ifaMsg(macLo0, saMask(8, false), saIn4("127.0.0.1")),
		ifMsg(macEn0, unix.IFF_UP, unix.IFT_ETHER, 1500, "en0"),
		ifaMsg(macEn0, saMask(24, false), saIn4("192.168.1.23")),
		ifaMsg(macEn0, saIn6("ffff:ffff:ffff:ffff::", 0), saIn6("fe80::1c2a:3b4c:5d6e:7f80", macEn0)),
		ifMsg(utun5, unix.IFF_UP, 0xff, 1420, "utun5"),
	)
	msgs, err := parseRIB(route.RIBTypeInterface, iflist)
	if err != nil {
		t.Fatal(err)
	}
	ifs, addrs := fromInterfaceMessages(msgs)
	snap, errs := bsdSnapshot(ifs, addrs, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var links, as []string
	for _, l := range snap.Links {
		links = append(links, l.Name+":"+l.Type+":"+map[bool]string{true: "up", false: "down"}[l.Up])
	}
	for _, a := range snap.Addresses {
		as = append(as, a.Device+" "+a.Prefix.String())
	}
	if strings.Join(links, " ") != "lo0:loopback:up en0:ether:up utun5:utun:up" || snap.Links[1].MTU != 1500 {
		t.Errorf("links %v (%+v)", links, snap.Links)
	}
	if strings.Join(as, ", ") != "lo0 127.0.0.1/8, en0 192.168.1.23/24, en0 fe80::1c2a:3b4c:5d6e:7f80/64" {
		t.Errorf("addresses %v", as)
	}
}

// Replies are picked by pid and sequence from everything the socket
// broadcasts.
func TestDarwinReplyMatching(t *testing.T) {
	other := rtMsg(unix.RTM_ADD, bsdFlagBits("UGS"), macEn0, 999, 5, saIn4("10.0.0.0"), saIn4("192.168.1.1"), saMask(8, false))
	mine := rtMsg(unix.RTM_GET, bsdFlagBits("UGScgd"), macEn0, 4242, 5, saIn4("0.0.0.0"), saIn4("192.168.1.1"), saMask(0, false), nil, saDL(macEn0, "en0", macEn0MAC), saIn4("192.168.1.23"))
	if _, ok := matchReply(other, 4242, 5); ok {
		t.Fatal("another process's message taken as the reply")
	}
	if _, ok := matchReply([]byte{1, 2, 3, 4, 5, 6}, 4242, 5); ok {
		t.Fatal("garbage taken as the reply")
	}
	m, ok := matchReply(mine, 4242, 5)
	if !ok {
		t.Fatal("reply not found")
	}
	r, err := bsdRoute(m, nil)
	if err != nil || r.String() != "0.0.0.0/0 via 192.168.1.1 dev en0 src 192.168.1.23" {
		t.Fatalf("reply read as %s, %v", r, err)
	}
}

// FuzzDarwinRouteMessages: whatever the bytes, parsing and converting them
// gives routes or errors, never a panic.
func FuzzDarwinRouteMessages(f *testing.F) {
	for _, m := range append(macHealthyDump(), tunnelblickLeftovers()...) {
		f.Add(wire(f, m))
	}
	f.Add(rtMsg(unix.RTM_GET, bsdFlagBits("UHLI"), macLo0, 0, 6, saIn6("fe80::a4b1:c2d3:e4f5:1", macUtun), saDL(macUtun, "", nil), nil))
	f.Add(ifMsg(macEn0, unix.IFF_UP, unix.IFT_ETHER, 1500, "en0"))
	f.Add(ifaMsg(macEn0, saMask(24, false), saIn4("192.168.1.23")))
	f.Add([]byte{})
	f.Add([]byte{8, 0, 5, 4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if msgs, _ := bsdRawMessages(b); bsdWatchMatters(msgs, 1, func(int) string { return "" }) && len(b) == 0 {
			t.Fatal("nothing read, yet a change")
		}
		for _, typ := range []route.RIBType{route.RIBTypeRoute, route.RIBTypeInterface} {
			msgs, err := parseRIB(typ, b)
			if err != nil {
				if err.Error() == "" {
					t.Fatal("empty error")
				}
				continue
			}
			var rs []bsdRouteMsg
			for _, m := range msgs {
				if rm, ok := m.(*route.RouteMessage); ok {
					rs = append(rs, fromRouteMessage(rm))
				}
			}
			ifs, addrs := fromInterfaceMessages(msgs)
			snap, _ := bsdSnapshot(ifs, addrs, rs)
			for _, r := range snap.Routes {
				if !r.Dst.IsValid() {
					t.Fatalf("invalid destination from %x", b)
				}
			}
		}
	})
}

// Against the real kernel, read-only: any Mac has lo0 and a route for
// 127.0.0.1. RTM_GET needs no privilege.
func TestDarwinLiveReadOnly(t *testing.T) {
	sys, err := NewSystem()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := sys.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(snap.Links, func(l Link) bool { return l.Name == "lo0" && l.Type == "loopback" && l.Up }) {
		t.Fatalf("no lo0 in %+v", snap.Links)
	}
	if !slices.ContainsFunc(snap.Addresses, func(a Address) bool { return a.Device == "lo0" && a.Prefix.Addr() == netip.MustParseAddr("127.0.0.1") }) {
		t.Fatalf("no 127.0.0.1 on lo0 in %v", snap.Addresses)
	}
	r, err := sys.Lookup(Query{Dst: netip.MustParseAddr("127.0.0.1")})
	if err != nil || r.Device != "lo0" {
		t.Fatalf("127.0.0.1 resolves via %s (%v)", r, err)
	}
}

// Against the real kernel, writing: only with CLEARPATH_DARWIN_LIVE=1 as
// root, since macOS has no namespace to hide the change in. It adds our
// blackhole for one TEST-NET-1 host and removes it again.
func TestDarwinLiveAddDelete(t *testing.T) {
	if os.Getenv("CLEARPATH_DARWIN_LIVE") != "1" || os.Geteuid() != 0 {
		t.Skip("changes this Mac's routing table: set CLEARPATH_DARWIN_LIVE=1 and run as root")
	}
	sys, _ := NewSystem()
	r := Route{Type: TypeBlackhole, Dst: netip.MustParsePrefix("192.0.2.77/32"), Protocol: Protocol}
	add := Change{Op: OpAddRoute, Route: &r}
	t.Cleanup(func() { sys.Apply(Inverse(add)) })
	for range 2 { // the second add is a replay
		if err := sys.Apply(add); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ := sys.Snapshot()
	owned, _ := OwnedItems(snap)
	if !slices.ContainsFunc(owned, func(o Route) bool { return bsdSameRoute(r, o) && slices.Contains(o.Flags, "1") }) {
		t.Fatalf("our route is not in the table with RTF_PROTO1: %v", owned)
	}
	if got, err := sys.Lookup(Query{Dst: netip.MustParseAddr("192.0.2.77")}); err != nil || got.Type != TypeBlackhole {
		t.Fatalf("lookup: %s, %v", got, err)
	}
	for range 2 {
		if err := sys.Apply(Inverse(add)); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ = sys.Snapshot()
	if owned, _ := OwnedItems(snap); slices.ContainsFunc(owned, func(o Route) bool { return bsdSameRoute(r, o) }) {
		t.Fatal("our route is still there")
	}
}

// bigDump is a dump of n routes (a Mac with a large VPN pushing /24s).
func bigDump(tb testing.TB, n int) []byte {
	var b []byte
	for _, m := range append(macHealthyDump(), tunnelblickLeftovers()...) {
		b = append(b, wire(tb, m)...)
	}
	for i := range n {
		m := dump(utun5, "UGSc1", in4(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}).String()), in4("100.64.0.1"), kmask(24, false))
		b = append(b, wire(tb, m)...)
	}
	return b
}

// BenchmarkDarwinParseDump reads a 10k-route dump into the model; the
// baseline is x/net/route's ParseRIB alone on the same bytes.
func BenchmarkDarwinParseDump(b *testing.B) {
	raw := bigDump(b, 10000)
	ifs, addrs := macInterfaces(false)
	b.Run("ParseRIB-only", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseRIB(route.RIBTypeRoute, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("to-Snapshot", func(b *testing.B) {
		for b.Loop() {
			msgs, err := parseRIB(route.RIBTypeRoute, raw)
			if err != nil {
				b.Fatal(err)
			}
			rs := make([]bsdRouteMsg, 0, len(msgs))
			for _, m := range msgs {
				rs = append(rs, fromRouteMessage(m.(*route.RouteMessage)))
			}
			if snap, _ := bsdSnapshot(ifs, addrs, rs); len(snap.Routes) < 10000 {
				b.Fatal(len(snap.Routes))
			}
		}
	})
}

// The watcher wakes for others' route changes and address changes, not
// for our own routes or ARP traffic.
func TestDarwinWatcherFilter(t *testing.T) {
	self := 4242
	theirs := rtMsg(unix.RTM_ADD, bsdFlagBits("UGSc"), macEn0, 77, 1, saIn4("0.0.0.0"), saIn4("192.168.1.254"), saMask(0, false))
	ours := rtMsg(unix.RTM_ADD, bsdFlagBits("UGS1"), macEn0, self, 1, saIn4("198.51.100.1"), saIn4("192.168.1.1"), nil)
	oursDeleted := rtMsg(unix.RTM_DELETE, bsdFlagBits("US1"), utun5, 77, 1, saIn4("0.0.0.0"), saDL(utun5, "", nil), saMask(1, false))
	arp := rtMsg(unix.RTM_ADD, bsdFlagBits("UHLWIi"), macEn0, 0, 0, saIn4("192.168.1.9"), saDL(macEn0, "", macEn0MAC), nil)
	addr := ifaMsg(macEn0, saMask(24, false), saIn4("192.168.1.23"))
	addr[3] = unix.RTM_NEWADDR
	for name, c := range map[string]struct {
		b    []byte
		want bool
	}{
		"another's route": {theirs, true}, "ours": {ours, false}, "ARP": {arp, false}, "address": {addr, true},
		"ours then another's":     {slices.Concat(ours, theirs), true},
		"ours deleted by another": {oursDeleted, true},
	} {
		if got := socketChangeMatters(c.b, self, func(int) string { return "" }); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

// Issue 23 point 2: an on-link route's gateway leaves as a whole struct
// sockaddr_dl (sdl_len 20, as the kernel's own and route(8)'s), which
// x/net/route alone does not write, and still parses back the same.
func TestDarwinOnLinkGatewayIsAWholeSockaddrDL(t *testing.T) {
	for _, r := range []Route{ours(mkRoute("0.0.0.0/1", "", "utun5")), ours(mkRoute("192.168.1.1/32", "", "en0"))} {
		m, err := bsdChangeMsg(Change{Op: OpAddRoute, Route: &r}, 7, macDevs)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := toRouteMessage(m, 4242).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b, err := bsdFullLinkAddrs(raw, m)
		if err != nil {
			t.Fatal(err)
		}
		if got := int(binary.LittleEndian.Uint16(b)); got != len(b) || len(b) < len(raw) {
			t.Fatalf("%s: rtm_msglen %d, message %d bytes (was %d)", r, got, len(b), len(raw))
		}
		gw := bsdRtMsghdrSize + 16 // after the IPv4 destination
		if b[gw+1] != unix.AF_LINK || b[gw] < unix.SizeofSockaddrDatalink {
			t.Errorf("%s: gateway sockaddr family %d sdl_len %d, want AF_LINK of at least %d", r, b[gw+1], b[gw], unix.SizeofSockaddrDatalink)
		}
		back := parseRoutes(t, b)
		if len(back) != 1 || back[0].Gateway.Name != r.Device || back[0].Gateway.Index != m.Gateway.Index || back[0].IFP.present() {
			t.Fatalf("%s: parsed back as %+v", r, back)
		}
		if m.Netmask.present() && !slices.Equal(back[0].Netmask.IP[:1], []byte{0x80}) {
			t.Errorf("%s: netmask after the widened gateway %x", r, back[0].Netmask.IP)
		}
	}
}

// Issue 23 point 7: a link going up or down is broadcast as an
// RTM_IFINFO without addresses (rt_ifmsg), which x/net/route parses to
// nothing; and AWDL, low-latency WLAN and IPsec interfaces flap all day
// (Tailscale's netmon filters them), as do other programs' utuns.
func TestDarwinWatcherSeesLinksAndSkipsTheNoisyOnes(t *testing.T) {
	self := 4242
	names := map[int]string{macEn0: "en0", 9: "awdl0", 10: "llw0", 11: "utun7", 12: "ipsec0"}
	name := func(i int) string { return names[i] }
	bare := func(index, flags int) []byte { // rt_ifmsg: no addresses
		b := ifMsg(index, flags, unix.IFT_ETHER, 1500, "")
		b = b[:112]
		le.PutUint32(b[4:], 0)
		le.PutUint16(b[0:], 112)
		return b
	}
	newaddr := func(index int, addr []byte) []byte {
		b := ifaMsg(index, saMask(64, true), addr)
		b[3] = unix.RTM_NEWADDR
		return b
	}
	llRoute := rtMsg(unix.RTM_ADD, bsdFlagBits("UHLW"), 9, 0, 0, saIn6("fe80::1234", 9), saDL(9, "", macEn0MAC), nil)
	for what, c := range map[string]struct {
		b    []byte
		want bool
	}{
		"en0 down":                       {bare(macEn0, 0), true},
		"en0 up":                         {bare(macEn0, unix.IFF_UP), true},
		"awdl0 flaps":                    {bare(9, unix.IFF_UP), false},
		"llw0 flaps":                     {bare(10, 0), false},
		"another program's utun flaps":   {bare(11, unix.IFF_UP), false},
		"ipsec0 flaps":                   {bare(12, 0), false},
		"an address on awdl0":            {newaddr(9, saIn6("fe80::aa", 9)), false},
		"an address on en0":              {newaddr(macEn0, saIn6("2001:db8:77::99", 0)), true},
		"a link-local neighbour on awdl": {llRoute, false},
		"awdl0 flaps, then en0 goes":     {slices.Concat(bare(9, 0), bare(macEn0, 0)), true},
	} {
		if got := socketChangeMatters(c.b, self, name); got != c.want {
			t.Errorf("%s: %v, want %v", what, got, c.want)
		}
	}
}

// Against the real kernel with a ClearPath tunnel up (vpn up): an unbound
// socket towards CLEARPATH_DARWIN_TUNNEL_DST (an IPv4 address behind the
// gateway) gets the utun's IPv4 address as source, and RTM_GET names the
// utun with an IPv4 interface address (issue 23 point 1, which the model
// only imitates). scripts/mac-check.sh runs it.
func TestDarwinLiveTunnelSource(t *testing.T) {
	dst := os.Getenv("CLEARPATH_DARWIN_TUNNEL_DST")
	if dst == "" {
		t.Skip("needs a tunnel up: set CLEARPATH_DARWIN_TUNNEL_DST to an IPv4 address behind the gateway")
	}
	ip, err := netip.ParseAddr(dst)
	if err != nil || !ip.Is4() {
		t.Fatalf("CLEARPATH_DARWIN_TUNNEL_DST=%q: want an IPv4 address", dst)
	}
	sys, err := NewSystem()
	if err != nil {
		t.Fatal(err)
	}
	r, err := sys.Lookup(Query{Dst: ip})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Device, "utun") || !r.Src.Is4() {
		t.Fatalf("route get %s: %s: want a utun and an IPv4 interface address (rt_ifa), got interface %q address %v", ip, r, r.Device, r.Src)
	}
	c, err := net.Dial("udp4", netip.AddrPortFrom(ip, 9).String()) // connect only: nothing is sent
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	ifi, err := net.InterfaceByName(r.Device)
	if err != nil {
		t.Fatal(err)
	}
	addrs, _ := ifi.Addrs()
	onUtun := slices.ContainsFunc(addrs, func(a net.Addr) bool {
		p, err := netip.ParsePrefix(a.String())
		return err == nil && p.Addr() == local
	})
	if local != r.Src || !onUtun {
		t.Fatalf("an unbound socket to %s gets source %s; the route's interface address is %s, %s has %v", ip, local, r.Src, r.Device, addrs)
	}
	t.Logf("%s: via %s, source %s", ip, r.Device, local)
}
