package routes

// Route messages of a Mac, written down as XNU hands them out: a dump
// (sysctl NET_RT_DUMP) carries destination, gateway and netmask only, the
// interface as rtm_index; netmasks come in the kernel's short form;
// link-local addresses carry their zone KAME-style in bytes 2-3. The Linux
// tests convert them directly, the darwin tests marshal them to wire bytes
// with golang.org/x/net/route and parse them back first.
//
// The machine: lo0 (1), gif0 (2), stf0 (3), en0 (4) on a home LAN
// 192.168.1.0/24 and 2001:db8:77::/64. Tunnelblick ran OpenVPN on utun3
// (index 15, 10.8.0.2, fe80::a4b1:c2d3:e4f5:1) with redirect-gateway def1
// to 198.51.100.1 and was force-quit.

import "net/netip"

const (
	macLo0  = 1
	macEn0  = 4
	macUtun = 15
)

var macEn0MAC = []byte{0xa4, 0x83, 0xe7, 0x12, 0x34, 0x56}

func in4(s string) bsdAddr { return bsdInetAddr(netip.MustParseAddr(s), 0) }

// in6 is an IPv6 socket address; a link-local one gets zone embedded as
// the kernel keeps it.
func in6(s string, zone int) bsdAddr { return bsdInetAddr(netip.MustParseAddr(s), zone) }

// kmask is a netmask in the kernel's short form: only the bytes up to the
// last non-zero one (a /0 has none).
func kmask(bits int, v6 bool) bsdAddr {
	m := bsdMask(bits, v6)
	n := len(m.IP)
	for n > 0 && m.IP[n-1] == 0 {
		n--
	}
	m.IP = m.IP[:n]
	return m
}

func lnk(index int) bsdAddr { return bsdAddr{Family: bsdAFLink, Index: index} }

func lnkMAC(index int, mac []byte) bsdAddr {
	return bsdAddr{Family: bsdAFLink, Index: index, LLAddr: mac}
}

// dump is one NET_RT_DUMP entry; netstat's flag letters make it readable.
func dump(index int, flags string, dst, gw, mask bsdAddr) bsdRouteMsg {
	return bsdRouteMsg{Type: rtmGet, Index: index, Flags: bsdFlagBits(flags), Dst: dst, Gateway: gw, Netmask: mask}
}

func macInterfaces(utunAlive bool) ([]bsdIfMsg, []bsdIfAddrMsg) {
	ifs := []bsdIfMsg{
		{Index: macLo0, Name: "lo0", Flags: iffUp | iffLoopback, Type: iftLoop, MTU: 16384},
		{Index: 2, Name: "gif0", Type: iftGif, MTU: 1280},
		{Index: 3, Name: "stf0", Type: iftStf, MTU: 1280},
		{Index: macEn0, Name: "en0", Flags: iffUp, Type: iftEther, MTU: 1500},
	}
	addrs := []bsdIfAddrMsg{
		{Index: macLo0, Addr: in4("127.0.0.1"), Mask: kmask(8, false)},
		{Index: macLo0, Addr: in6("::1", 0), Mask: bsdMask(128, true)},
		{Index: macLo0, Addr: in6("fe80::1", macLo0), Mask: bsdMask(64, true)},
		{Index: macEn0, Addr: lnkMAC(macEn0, macEn0MAC)},
		{Index: macEn0, Addr: in6("fe80::1c2a:3b4c:5d6e:7f80", macEn0), Mask: bsdMask(64, true)},
		{Index: macEn0, Addr: in4("192.168.1.23"), Mask: kmask(24, false)},
		{Index: macEn0, Addr: in6("2001:db8:77::23", 0), Mask: bsdMask(64, true)},
	}
	if utunAlive {
		// Alive but down: the process holding it is gone, the interface
		// not yet.
		ifs = append(ifs, bsdIfMsg{Index: macUtun, Name: "utun3", Type: 0xff, MTU: 1500})
	}
	return ifs, addrs
}

// macHealthyDump is the table of the laptop on its LAN, no VPN.
func macHealthyDump() []bsdRouteMsg {
	return []bsdRouteMsg{
		// Internet:
		dump(macEn0, "UGScg", in4("0.0.0.0"), in4("192.168.1.1"), kmask(0, false)),
		dump(macLo0, "UCS", in4("127.0.0.0"), in4("127.0.0.1"), kmask(8, false)),
		dump(macLo0, "UH", in4("127.0.0.1"), in4("127.0.0.1"), bsdAddr{}),
		dump(macEn0, "UCS", in4("169.254.0.0"), lnk(macEn0), kmask(16, false)),
		dump(macEn0, "UCS", in4("192.168.1.0"), lnk(macEn0), kmask(24, false)),
		// ARP entries are clones; a snapshot leaves them out.
		dump(macEn0, "UHLWIir", in4("192.168.1.1"), lnkMAC(macEn0, []byte{0, 0x11, 0x22, 0x33, 0x44, 0x55}), bsdAddr{}),
		dump(macEn0, "UmCS", in4("224.0.0.0"), lnk(macEn0), kmask(4, false)),
		// Internet6:
		dump(macEn0, "UGcg", in6("::", 0), in6("fe80::1", macEn0), kmask(0, true)),
		dump(macLo0, "UHL", in6("::1", 0), in6("::1", 0), bsdAddr{}),
		dump(macEn0, "UC", in6("2001:db8:77::", 0), lnk(macEn0), kmask(64, true)),
		dump(macLo0, "UHL", in6("2001:db8:77::23", 0), lnkMAC(macEn0, macEn0MAC), bsdAddr{}),
		dump(macLo0, "UcI", in6("fe80::", macLo0), in6("fe80::1", macLo0), kmask(64, true)),
		dump(macLo0, "UHLI", in6("fe80::1", macLo0), lnk(macLo0), bsdAddr{}),
		dump(macEn0, "UCI", in6("fe80::", macEn0), lnk(macEn0), kmask(64, true)),
		dump(macLo0, "UHLI", in6("fe80::1c2a:3b4c:5d6e:7f80", macEn0), lnkMAC(macEn0, macEn0MAC), bsdAddr{}),
		dump(macLo0, "UmCI", in6("ff01::", macLo0), in6("::1", 0), kmask(32, true)),
		dump(macEn0, "UmCI", in6("ff02::", macEn0), lnk(macEn0), kmask(32, true)),
	}
}

// tunnelblickKilled is what XNU really leaves once the force-quit utun
// is gone (issue 23 point 10): its routes went with it (if_rtdel, the
// address purge), OpenVPN's host route to its server via en0 stays (its
// --down script never ran), and so does the DNS it set (not a route).
func tunnelblickKilled() []bsdRouteMsg {
	return []bsdRouteMsg{
		dump(macEn0, "UGHS", in4("198.51.100.1"), in4("192.168.1.1"), bsdAddr{}),
	}
}

// tunnelblickLeftovers is what the force-quit left while utun3 is still
// there (down, its process gone): OpenVPN's def1 halves
// and its server's host route (its --down script never ran), configd's
// scoped IPv6 default on the utun, the utun's link-local prefix and the
// lo0 route of its fe80:: address, whose gateway is the utun.
func tunnelblickLeftovers() []bsdRouteMsg {
	return []bsdRouteMsg{
		dump(macUtun, "UGScg", in4("0.0.0.0"), in4("10.8.0.1"), kmask(1, false)),
		dump(macUtun, "UGScg", in4("128.0.0.0"), in4("10.8.0.1"), kmask(1, false)),
		dump(macEn0, "UGHS", in4("198.51.100.1"), in4("192.168.1.1"), bsdAddr{}),
		dump(macUtun, "UGcIg", in6("::", 0), in6("fe80::", macUtun), kmask(0, true)),
		dump(macUtun, "UcI", in6("fe80::", macUtun), in6("fe80::a4b1:c2d3:e4f5:1", macUtun), kmask(64, true)),
		dump(macLo0, "UHLI", in6("fe80::a4b1:c2d3:e4f5:1", macUtun), lnk(macUtun), bsdAddr{}),
	}
}

// recordedMac is the XNU model of the recorded Mac (RecordedMac).
func recordedMac(forceQuit, utunAlive bool) *xnu {
	ifs, addrs := macInterfaces(utunAlive)
	dump := macHealthyDump()
	switch {
	case forceQuit && utunAlive:
		dump = append(dump, tunnelblickLeftovers()...)
	case forceQuit:
		dump = append(dump, tunnelblickKilled()...) // the utun took its routes
	}
	return newXNU(ifs, addrs, dump)
}
