package routes

// Platform-neutral half of the macOS backend. system_darwin.go only moves
// golang.org/x/net/route messages in and out of the kernel; every decision
// (mask to prefix, flags to type and ownership, which selectors a change
// carries) is made here, on plain structs, so it builds and is tested on
// Linux too.
//
// Ownership on macOS: the route socket has no protocol number, so every
// route we add carries RTF_PROTO1 (netstat shows it as flag "1"). The
// model reads RTF_PROTO1 back as Protocol 197 (routes.Protocol) and a
// change with Protocol 197 is written with RTF_PROTO1, so the engine,
// journal and doctor stay platform-neutral. Other programs set RTF_PROTO1
// too (NetBird does): under an engine, a marked route reads as ours only
// when the journal names it (bsdowner.go), so the sweep and the reconcile
// never remove theirs.

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Darwin route flags (net/route.h). Declared here rather than taken from
// x/sys/unix so this file builds everywhere; system_darwin.go proves at
// compile time that they equal the kernel's.
const (
	rtfUp        = 0x1
	rtfGateway   = 0x2
	rtfHost      = 0x4
	rtfReject    = 0x8
	rtfDynamic   = 0x10
	rtfModified  = 0x20
	rtfDone      = 0x40
	rtfCloning   = 0x100
	rtfXResolve  = 0x200
	rtfLLInfo    = 0x400
	rtfStatic    = 0x800
	rtfBlackhole = 0x1000
	rtfProto2    = 0x4000
	rtfProto1    = 0x8000
	rtfPRCloning = 0x10000
	rtfWasCloned = 0x20000
	rtfProto3    = 0x40000
	rtfLocal     = 0x200000
	rtfBroadcast = 0x400000
	rtfMulticast = 0x800000
	rtfIfScope   = 0x1000000
	rtfCondemned = 0x2000000
	rtfIfRef     = 0x4000000
	rtfProxy     = 0x8000000
	rtfRouter    = 0x10000000
	rtfGlobal    = 0x40000000
)

// Darwin route message types, address families and interface types.
const (
	rtmAdd     = 0x1
	rtmDelete  = 0x2
	rtmChange  = 0x3
	rtmGet     = 0x4
	rtmNewAddr = 0xc
	rtmDelAddr = 0xd
	rtmIfInfo  = 0xe

	bsdAFInet  = 2
	bsdAFLink  = 18
	bsdAFInet6 = 30

	iftEther = 0x6
	iftLoop  = 0x18
	iftGif   = 0x37
	iftStf   = 0x39
	iftPPP   = 0x17
	iftBrdg  = 0xd1
	iftCell  = 0xff

	iffUp       = 0x1
	iffLoopback = 0x8
)

// bsdFlagLetters is netstat's table (network_cmds netstat.tproj/route.c), in
// its order, so Route.Flags reads like the Flags column of `netstat -rn`.
var bsdFlagLetters = []struct {
	bit    int
	letter string
}{
	{rtfUp, "U"}, {rtfGateway, "G"}, {rtfHost, "H"}, {rtfReject, "R"}, {rtfDynamic, "D"},
	{rtfModified, "M"}, {rtfMulticast, "m"}, {rtfCloning, "C"}, {rtfXResolve, "X"},
	{rtfLLInfo, "L"}, {rtfStatic, "S"}, {rtfProto1, "1"}, {rtfProto2, "2"}, {rtfWasCloned, "W"},
	{rtfPRCloning, "c"}, {rtfProto3, "3"}, {rtfBlackhole, "B"}, {rtfBroadcast, "b"},
	{rtfIfScope, "I"}, {rtfIfRef, "i"}, {rtfProxy, "Y"}, {rtfRouter, "r"}, {rtfGlobal, "g"},
}

// FlagIfScope is the word Route.Flags carries, besides netstat's "I", for a
// route bound to its interface (RTF_IFSCOPE): one of several routes to the
// same destination, used only by traffic bound to that interface.
const FlagIfScope = "IFSCOPE"

// FlagScopeDevice prefixes the Route.Flags entry naming the interface a
// scoped route is bound to when that is not the route's own interface:
// the lo0 route of a utun's fe80:: address is scoped to the utun
// ("ifscope:utun3"), as its zone says.
const FlagScopeDevice = "ifscope:"

// FlagGatewayDevice prefixes the Route.Flags entry naming the interface of
// a link-layer or scoped gateway when it differs from the route's own
// interface, e.g. "gw:utun3" on the lo0 route of a utun's own address.
const FlagGatewayDevice = "gw:"

// bsdAddr is one socket address of a route message as x/net/route hands it
// over: an internet address or a link-layer one. A netmask is an internet
// address whose bytes may be fewer than the family's (kernel form).
type bsdAddr struct {
	Family int    // 0 when absent, else bsdAFInet, bsdAFInet6 or bsdAFLink
	IP     []byte // inet: address or mask bytes
	Zone   int    // inet6: scope id (interface index), 0 if none
	Index  int    // link: interface index, 0 if unknown
	Name   string // link: interface name, often empty
	LLAddr []byte // link: hardware address
	// Full (link, requests only) writes a whole struct sockaddr_dl
	// (sdl_len at least bsdSockaddrDLSize), as the kernel's own link
	// addresses are (if_attach) and as route(8) copies them for
	// -interface. ARP refuses a shorter one as the gateway of a host
	// route (in_arp.c arp_rtrequest: "bad gateway address").
	Full bool
}

// bsdSockaddrDLSize is sizeof(struct sockaddr_dl) on darwin.
const bsdSockaddrDLSize = 20

// bsdLinkSALen is the sdl_len a request gives link address a on the wire:
// golang.org/x/net/route writes 8 bytes of header, the name and the
// hardware address; bsdFullLinkAddrs widens a Full one to a whole
// sockaddr_dl.
func bsdLinkSALen(a bsdAddr) int {
	n := 8 + len(a.Name) + len(a.LLAddr)
	if a.Full {
		n = max(n, bsdSockaddrDLSize)
	}
	return n
}

func (a bsdAddr) present() bool { return a.Family != 0 }

// bsdRouteMsg mirrors route.RouteMessage with its addresses by role.
type bsdRouteMsg struct {
	Type  int // rtmAdd, rtmDelete, rtmGet, ...
	Flags int // rtf*
	// Index is rtm_index: the route's interface in dumps and replies, and
	// the scope of a request carrying rtfIfScope.
	Index   int
	Seq     int
	Dst     bsdAddr
	Gateway bsdAddr
	Netmask bsdAddr
	IFP     bsdAddr // link address naming the interface
	IFA     bsdAddr // the interface address used as source
}

// bsdIfMsg is an interface (RTM_IFINFO) of NET_RT_IFLIST.
type bsdIfMsg struct {
	Index int
	Name  string
	Flags int // IFF_*
	Type  int // IFT_*
	MTU   int
}

// bsdIfAddrMsg is an interface address (RTM_NEWADDR) of NET_RT_IFLIST.
type bsdIfAddrMsg struct {
	Index int
	Addr  bsdAddr
	Mask  bsdAddr
}

// bsdCached reports whether m is a cache entry rather than configuration:
// clones made on use (ARP/NDP entries, per-destination host routes) and
// routes being deleted. The snapshot leaves them out, as `ip route` leaves
// out the neighbour table, so snapshots compare equal across a session.
func bsdCached(m bsdRouteMsg) bool {
	return m.Flags&(rtfWasCloned|rtfCondemned) != 0
}

// bsdFlagNames renders flags as netstat's letters, in netstat's order.
func bsdFlagNames(flags int) []string {
	var out []string
	for _, f := range bsdFlagLetters {
		if flags&f.bit != 0 {
			out = append(out, f.letter)
		}
	}
	return out
}

// bsdFlagBits is the inverse of bsdFlagNames; unknown letters are ignored
// (newer macOS may add some) and "d" (RTF_DONE) only marks a reply.
func bsdFlagBits(letters string) int {
	bits := 0
	for _, c := range letters {
		if c == 'd' {
			bits |= rtfDone
			continue
		}
		for _, f := range bsdFlagLetters {
			if f.letter == string(c) {
				bits |= f.bit
			}
		}
	}
	return bits
}

// inet returns a's address without zone, and the zone as an interface
// index. KAME stacks embed the zone of link-local and interface/link-local
// multicast addresses in bytes 2-3; that form is undone here.
func (a bsdAddr) inet() (netip.Addr, int, error) {
	switch a.Family {
	case bsdAFInet:
		if len(a.IP) != 4 {
			return netip.Addr{}, 0, fmt.Errorf("IPv4 address of %d bytes", len(a.IP))
		}
		return netip.AddrFrom4([4]byte(a.IP)), 0, nil
	case bsdAFInet6:
		if len(a.IP) != 16 {
			return netip.Addr{}, 0, fmt.Errorf("IPv6 address of %d bytes", len(a.IP))
		}
		b := [16]byte(a.IP)
		zone := a.Zone
		if bsdScopeEmbedded(b) && (b[2] != 0 || b[3] != 0) {
			zone = int(b[2])<<8 | int(b[3])
			b[2], b[3] = 0, 0
		}
		return netip.AddrFrom16(b), zone, nil
	case 0:
		return netip.Addr{}, 0, errors.New("missing")
	}
	return netip.Addr{}, 0, fmt.Errorf("address family %d is not IP", a.Family)
}

// bsdScopeEmbedded reports whether the kernel keeps the zone of b inside
// it: link-local unicast, interface-local and link-local multicast.
func bsdScopeEmbedded(b [16]byte) bool {
	return b[0] == 0xfe && b[1]&0xc0 == 0x80 || b[0] == 0xff && (b[1]&0x0f == 0x01 || b[1]&0x0f == 0x02)
}

// bsdInetAddr is the socket address of a. A zone (an interface index) is
// embedded KAME-style where the kernel expects it, as route(8) does.
func bsdInetAddr(a netip.Addr, zone int) bsdAddr {
	if a.Is4() {
		b := a.As4()
		return bsdAddr{Family: bsdAFInet, IP: b[:]}
	}
	b := a.As16()
	if zone > 0 && zone <= 0xffff && bsdScopeEmbedded(b) {
		b[2], b[3] = byte(zone>>8), byte(zone)
	}
	return bsdAddr{Family: bsdAFInet6, IP: b[:]}
}

// bsdMaskBits converts a netmask to a prefix length for an address of
// bitLen bits. The kernel shortens masks (a /8 may arrive as one byte, a
// /0 as none): missing bytes are zero. A mask that is not contiguous has
// no prefix length and is refused.
func bsdMaskBits(mask []byte, bitLen int) (int, error) {
	n := bitLen / 8
	if len(mask) > n {
		for _, b := range mask[n:] {
			if b != 0 {
				return 0, fmt.Errorf("netmask %x is longer than an IPv%d address", mask, map[int]int{32: 4, 128: 6}[bitLen])
			}
		}
		mask = mask[:n]
	}
	bits, done := 0, false
	for _, b := range mask {
		for i := 7; i >= 0; i-- {
			one := b&(1<<i) != 0
			switch {
			case one && done:
				return 0, fmt.Errorf("netmask %x is not contiguous", mask)
			case one:
				bits++
			default:
				done = true
			}
		}
	}
	return bits, nil
}

// bsdMask is the netmask of a prefix length, in full length.
func bsdMask(bits int, v6 bool) bsdAddr {
	n, fam := 4, bsdAFInet
	if v6 {
		n, fam = 16, bsdAFInet6
	}
	b := make([]byte, n)
	for i := 0; i < bits && i < n*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return bsdAddr{Family: fam, IP: b}
}

// bsdName names interface index i, or "link#i" (netstat's spelling) when
// no interface has that index any more: a route can outlive its interface
// in a dump, and saying so beats an empty device.
func bsdName(i int, names map[int]string) string {
	if i <= 0 {
		return ""
	}
	if n, ok := names[i]; ok {
		return n
	}
	return "link#" + strconv.Itoa(i)
}

// bsdRoute converts a route message (dump entry, RTM_GET reply or a
// request we built) to the model. names maps interface indexes to names.
func bsdRoute(m bsdRouteMsg, names map[int]string) (Route, error) {
	dst, dstZone, err := m.Dst.inet()
	if err != nil {
		return Route{}, fmt.Errorf("destination: %w", err)
	}
	bits := dst.BitLen()
	if m.Netmask.Family == bsdAFLink {
		return Route{}, fmt.Errorf("route to %s: netmask is a link-layer address", dst)
	}
	if m.Netmask.present() && m.Netmask.Family != m.Dst.Family {
		return Route{}, fmt.Errorf("route to %s: netmask of address family %d", dst, m.Netmask.Family)
	}
	if m.Flags&rtfHost == 0 && m.Netmask.present() {
		// A message without netmask is a host route, as for the kernel.
		if bits, err = bsdMaskBits(m.Netmask.IP, dst.BitLen()); err != nil {
			return Route{}, fmt.Errorf("route to %s: %w", dst, err)
		}
	}
	r := Route{Family: FamilyV4, Type: TypeUnicast, Dst: netip.PrefixFrom(dst, bits).Masked()}
	if dst.Is6() {
		r.Family = FamilyV6
	}
	switch {
	case m.Flags&rtfBlackhole != 0:
		r.Type = TypeBlackhole
	case m.Flags&rtfReject != 0:
		r.Type = TypeUnreachable
	case m.Flags&rtfLocal != 0:
		r.Type = TypeLocal
	case m.Flags&rtfBroadcast != 0:
		r.Type = TypeBroadcast
	case m.Flags&rtfMulticast != 0:
		r.Type = TypeMulticast
	}
	if m.Flags&rtfProto1 != 0 {
		r.Protocol = Protocol
	}
	switch {
	case m.IFP.Family == bsdAFLink && m.IFP.Name != "":
		r.Device = m.IFP.Name
	case m.IFP.Family == bsdAFLink && m.IFP.Index > 0:
		r.Device = bsdName(m.IFP.Index, names)
	default:
		r.Device = bsdName(m.Index, names)
	}
	gwDev := ""
	switch m.Gateway.Family {
	case bsdAFInet, bsdAFInet6:
		gw, zone, err := m.Gateway.inet()
		if err != nil {
			return Route{}, fmt.Errorf("route to %s: gateway: %w", r.Dst, err)
		}
		r.Gateway = gw
		gwDev = bsdName(zone, names)
	case bsdAFLink:
		// On-link: the gateway names an interface (netstat: link#N, a
		// name, or the MAC of a neighbour), not a next hop. An index no
		// interface has any more stays visible as link#N: the lo0 routes
		// of a utun's own addresses outlive the utun this way.
		gwDev = m.Gateway.Name
		if gwDev == "" {
			gwDev = bsdName(m.Gateway.Index, names)
		}
		if gwDev == "" {
			gwDev = bsdName(dstZone, names)
		}
	}
	if m.IFA.Family == bsdAFInet || m.IFA.Family == bsdAFInet6 {
		if src, _, err := m.IFA.inet(); err == nil && src.Is4() == dst.Is4() {
			r.Src = src
		}
	}
	if r.Type == TypeBlackhole || r.Type == TypeUnreachable {
		// They point at lo0 via 127.0.0.1 or ::1 because the kernel wants a
		// gateway; the model, as on Linux, has neither gateway nor device.
		if r.Gateway.IsLoopback() {
			r.Gateway = netip.Addr{}
		}
		r.Device, r.Src, gwDev = "", netip.Addr{}, ""
	}
	r.Flags = bsdFlagNames(m.Flags &^ rtfDone)
	if m.Flags&rtfIfScope != 0 {
		r.Flags = append(r.Flags, FlagIfScope)
		if dstZone > 0 && bsdName(dstZone, names) != r.Device {
			r.Flags = append(r.Flags, FlagScopeDevice+bsdName(dstZone, names))
		}
	}
	if gwDev != "" && gwDev != r.Device {
		r.Flags = append(r.Flags, FlagGatewayDevice+gwDev)
	}
	return r, nil
}

// Scoped reports whether r is bound to its interface (macOS RTF_IFSCOPE:
// netstat flag "I"). Scoped routes coexist with an unscoped route to the
// same destination and are selected separately.
func Scoped(r Route) bool {
	return slices.Contains(r.Flags, FlagIfScope) || slices.Contains(r.Flags, "I")
}

// bsdSameRoute reports whether the kernel route got is the route want
// names: same destination, type, owner, gateway, device and scoping.
// Flags the kernel adds by itself (c, g, ...) do not matter, nor the
// device when want leaves it to the kernel (a route via a gateway).
func bsdSameRoute(want, got Route) bool {
	if want.Type == "" {
		want.Type = TypeUnicast
	}
	return want.Dst.Masked() == got.Dst && want.Type == got.Type && want.Protocol == got.Protocol &&
		want.Gateway.WithZone("") == got.Gateway && (want.Device == "" || want.Device == got.Device) && Scoped(want) == Scoped(got)
}

// bsdKeptFlags are the flags of a route that survive a delete and re-add
// (a restore); the others are computed (U G H S B R I 1) or set by the
// kernel alone.
var bsdKeptFlags = map[string]int{"C": rtfCloning, "c": rtfPRCloning, "2": rtfProto2, "3": rtfProto3}

// bsdChangeMsg builds the RTM_ADD or RTM_DELETE request for a route change,
// with exact selectors: destination and netmask (none for a host route),
// gateway (an IP, or the interface's link address for an on-link route),
// and for a scoped route RTF_IFSCOPE with the interface index. ifindex
// resolves interface names (and is only called when one is needed).
func bsdChangeMsg(c Change, seq int, ifindex func(string) (int, error)) (bsdRouteMsg, error) {
	var m bsdRouteMsg
	switch c.Op {
	case OpAddRoute:
		m.Type = rtmAdd
	case OpDelRoute:
		m.Type = rtmDelete
	default:
		return m, fmt.Errorf("%s: macOS has no policy rules, only routes", c.Op)
	}
	if c.Route == nil {
		return m, fmt.Errorf("%s: no route given", c.Op)
	}
	r := *c.Route
	if err := bsdCheck(r); err != nil {
		return m, err
	}
	m.Seq = seq
	dst := r.Dst.Masked()
	v6 := dst.Addr().Is6()
	m.Flags = rtfUp | rtfStatic
	if r.Protocol == Protocol {
		m.Flags |= rtfProto1
	}
	for _, f := range r.Flags {
		m.Flags |= bsdKeptFlags[f]
	}
	m.Dst = bsdInetAddr(dst.Addr(), 0)
	if dst.IsSingleIP() {
		m.Flags |= rtfHost
	} else {
		m.Netmask = bsdMask(dst.Bits(), v6)
	}
	index := func() (int, error) {
		i, err := ifindex(r.Device)
		if err != nil {
			return 0, fmt.Errorf("device %s: %w", r.Device, err)
		}
		return i, nil
	}
	switch r.Type {
	case TypeBlackhole, TypeUnreachable:
		// The kernel wants a gateway; route(8) uses the loopback address.
		if r.Type == TypeBlackhole {
			m.Flags |= rtfBlackhole
		} else {
			m.Flags |= rtfReject
		}
		lo := netip.MustParseAddr("127.0.0.1")
		if v6 {
			lo = netip.IPv6Loopback()
		}
		m.Flags |= rtfGateway
		m.Gateway = bsdInetAddr(lo, 0)
		return m, nil
	}
	var dev int
	if r.Device != "" {
		i, err := index()
		if err != nil {
			return m, err
		}
		dev = i
	}
	if r.Gateway.IsValid() {
		// rt_setif binds the route to this interface after the add;
		// the interface address comes from the gateway's family.
		if dev != 0 {
			m.IFP = bsdAddr{Family: bsdAFLink, Index: dev}
		}
		zone := dev
		if z := r.Gateway.Zone(); z != "" {
			i, err := ifindex(z)
			if err != nil {
				return m, fmt.Errorf("gateway %s: %w", r.Gateway, err)
			}
			zone = i
		}
		if r.Gateway.Is6() && r.Gateway.IsLinkLocalUnicast() && zone == 0 {
			return m, fmt.Errorf("gateway %s is link-local: name its device", r.Gateway)
		}
		m.Gateway = bsdInetAddr(r.Gateway.WithZone(""), zone)
		// A gateway without "G" in the route's own flags is the address of
		// a local interface (point-to-point routes): keep it that way.
		if !bsdHasLetters(r.Flags) || slices.Contains(r.Flags, "G") {
			m.Flags |= rtfGateway
		}
	} else {
		if dev == 0 {
			return m, fmt.Errorf("route %s needs a gateway or a device", r)
		}
		// On-link, as route(8) -interface, wg-quick and Tailscale add
		// it: the interface's whole link address as gateway and no
		// RTA_IFP. With RTA_IFP, rt_setif would take the interface
		// address from this AF_LINK gateway (ifaof_ifpforaddr), and
		// IPv4 source selection (in_pcbladdr reads rt_ifa) would give
		// unbound sockets a bogus source. Without it rtrequest picks an
		// address of the destination's family on the interface.
		m.Gateway = bsdAddr{Family: bsdAFLink, Index: dev, Name: r.Device, Full: true}
	}
	if Scoped(r) {
		if dev == 0 {
			return m, fmt.Errorf("scoped route %s needs a device", r)
		}
		scope := dev
		if d := bsdFlagValue(r.Flags, FlagScopeDevice); d != "" {
			i, err := ifindex(d)
			if err != nil {
				return m, fmt.Errorf("scope %s: %w", d, err)
			}
			scope = i
		}
		m.Flags |= rtfIfScope
		m.Index = scope
		m.Dst = bsdInetAddr(dst.Addr(), scope) // a link-local destination carries its scope as zone
	}
	if r.Src.IsValid() {
		m.IFA = bsdInetAddr(r.Src.WithZone(""), 0)
	}
	return m, nil
}

// bsdFlagValue returns what follows prefix in the Route.Flags entry that
// starts with it ("gw:", "ifscope:"), or "".
func bsdFlagValue(flags []string, prefix string) string {
	for _, f := range flags {
		if v, ok := strings.CutPrefix(f, prefix); ok {
			return v
		}
	}
	return ""
}

func bsdHasLetters(flags []string) bool {
	for _, f := range flags {
		if len(f) == 1 {
			return true
		}
	}
	return false
}

// bsdCheck refuses what macOS routes cannot express, naming the field.
func bsdCheck(r Route) error {
	switch {
	case !r.Dst.IsValid():
		return fmt.Errorf("route has no destination")
	case r.Dst.Addr().Zone() != "":
		return fmt.Errorf("route %s: destination has a zone", r.Dst)
	case r.Family != FamilyAll && (r.Family == FamilyV6) != r.Dst.Addr().Is6():
		return fmt.Errorf("route %s: family %d does not match the destination", r.Dst, r.Family)
	case r.Gateway.IsValid() && r.Gateway.Is6() != r.Dst.Addr().Is6():
		return fmt.Errorf("route %s: gateway %s is of the other family", r.Dst, r.Gateway)
	case r.Src.IsValid() && r.Src.Is6() != r.Dst.Addr().Is6():
		return fmt.Errorf("route %s: source %s is of the other family", r.Dst, r.Src)
	case r.Table != 0:
		return fmt.Errorf("route %s: table %d: macOS has a single routing table", r.Dst, r.Table)
	case r.Metric != 0:
		return fmt.Errorf("route %s: metric %d: macOS routes have no metric", r.Dst, r.Metric)
	case r.Protocol != 0 && r.Protocol != Protocol:
		return fmt.Errorf("route %s: protocol %d: macOS marks only ours (RTF_PROTO1 = protocol %d)", r.Dst, r.Protocol, Protocol)
	}
	switch r.Type {
	case "", TypeUnicast:
	case TypeBlackhole, TypeUnreachable:
		if r.Gateway.IsValid() || r.Device != "" {
			return fmt.Errorf("route %s: a %s route takes no gateway or device", r.Dst, r.Type)
		}
	default:
		return fmt.Errorf("route %s: type %s cannot be added on macOS", r.Dst, r.Type)
	}
	return nil
}

// bsdDeleteMsg is the RTM_DELETE for a route found in a dump: the kernel's
// own key (destination, netmask, scope), so exactly that entry goes. XNU
// selects by key alone (rn_delete on destination and mask, the scope in
// the key); the caller has already matched gateway, device and owner
// against the dump, so a different route under the same key is never hit.
//
// Only the flags that select carry over (bsdDeleteFlags): route_output
// refuses RTF_PROXY with EINVAL ("can only be set internally"), and the
// others a dump shows (RTF_ROUTER, RTF_IFREF, RTF_LLINFO, ...) are the
// kernel's state, not a request's.
func bsdDeleteMsg(k bsdRouteMsg, seq int) bsdRouteMsg {
	m := bsdRouteMsg{Type: rtmDelete, Seq: seq, Flags: k.Flags & bsdDeleteFlags, Dst: k.Dst, Gateway: k.Gateway, Netmask: k.Netmask}
	if k.Flags&rtfIfScope != 0 {
		m.Index = bsdScope(k)
	}
	return m
}

// bsdDeleteFlags are the flags a delete takes from the route it names:
// RTF_HOST (no netmask), RTF_IFSCOPE (the scoped tree), RTF_GATEWAY,
// and the UP, STATIC and PROTO1 route(8) would send.
const bsdDeleteFlags = rtfUp | rtfGateway | rtfHost | rtfStatic | rtfIfScope | rtfProto1

// bsdScope is the interface a scoped route is bound to. A link-local
// destination carries it as its zone (the lo0 route of a utun's own
// fe80:: address is scoped to the utun, not to lo0); otherwise it is the
// route's interface.
func bsdScope(k bsdRouteMsg) int {
	if _, zone, err := k.Dst.inet(); err == nil && zone > 0 {
		return zone
	}
	return k.Index
}

// bsdLookupMsg builds the RTM_GET asking which route the kernel would use
// for q, with the interface in the reply. macOS routes by destination only.
func bsdLookupMsg(q Query, seq int) (bsdRouteMsg, error) {
	switch {
	case !q.Dst.IsValid():
		return bsdRouteMsg{}, errors.New("lookup: no destination")
	case q.Src.IsValid():
		return bsdRouteMsg{}, fmt.Errorf("lookup %s: macOS cannot look up by source address", q.Dst)
	case q.FwMark != 0:
		return bsdRouteMsg{}, fmt.Errorf("lookup %s: macOS has no fwmark", q.Dst)
	case q.IIF != "":
		return bsdRouteMsg{}, fmt.Errorf("lookup %s: macOS cannot look up as if received on %s", q.Dst, q.IIF)
	}
	return bsdRouteMsg{Type: rtmGet, Flags: rtfUp | rtfHost, Seq: seq,
		Dst: bsdInetAddr(q.Dst.WithZone(""), 0), IFP: bsdAddr{Family: bsdAFLink}}, nil
}

// bsdLinkType names an interface's kind from its IFT_* type and name.
func bsdLinkType(name string, ift, flags int) string {
	switch {
	case ift == iftLoop || flags&iffLoopback != 0:
		return "loopback"
	case strings.HasPrefix(name, "utun"):
		return "utun"
	case strings.HasPrefix(name, "bridge") || ift == iftBrdg:
		return "bridge"
	case ift == iftEther:
		return "ether"
	case ift == iftGif:
		return "gif"
	case ift == iftStf:
		return "stf"
	case ift == iftPPP:
		return "ppp"
	case ift == iftCell:
		return "cellular"
	}
	return "other"
}

// bsdSnapshot assembles a Snapshot from NET_RT_IFLIST and NET_RT_DUMP
// messages. Entries it cannot convert are left out and returned as errors
// (one odd kernel entry must not hide the whole table).
func bsdSnapshot(ifs []bsdIfMsg, addrs []bsdIfAddrMsg, msgs []bsdRouteMsg) (*Snapshot, []error) {
	snap := &Snapshot{OS: "darwin"}
	names := map[int]string{}
	for _, i := range ifs {
		names[i.Index] = i.Name
		snap.Links = append(snap.Links, Link{Index: i.Index, Name: i.Name, Type: bsdLinkType(i.Name, i.Type, i.Flags),
			Up: i.Flags&iffUp != 0, MTU: i.MTU})
	}
	sort.Slice(snap.Links, func(a, b int) bool { return snap.Links[a].Index < snap.Links[b].Index })
	var errs []error
	for _, a := range addrs {
		if a.Addr.Family != bsdAFInet && a.Addr.Family != bsdAFInet6 {
			continue // the interface's link-layer address
		}
		ip, _, err := a.Addr.inet()
		if err != nil {
			errs = append(errs, fmt.Errorf("address of %s: %w", bsdName(a.Index, names), err))
			continue
		}
		bits := ip.BitLen()
		if a.Mask.present() && a.Mask.Family != a.Addr.Family {
			errs = append(errs, fmt.Errorf("address %s of %s: netmask of address family %d", ip, bsdName(a.Index, names), a.Mask.Family))
			continue
		}
		if a.Mask.present() {
			if bits, err = bsdMaskBits(a.Mask.IP, ip.BitLen()); err != nil {
				errs = append(errs, fmt.Errorf("address %s of %s: %w", ip, bsdName(a.Index, names), err))
				continue
			}
		}
		snap.Addresses = append(snap.Addresses, Address{Device: bsdName(a.Index, names), Prefix: netip.PrefixFrom(ip, bits)})
	}
	for _, m := range msgs {
		if bsdCached(m) || (m.Dst.Family != bsdAFInet && m.Dst.Family != bsdAFInet6) {
			continue
		}
		r, err := bsdRoute(m, names)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		snap.Routes = append(snap.Routes, r)
	}
	return snap, errs
}

// bsdChangeMatters reports whether a message broadcast on the route socket
// (type, route flags, sending pid) is a change the tunnel plan depends on:
// routes added, deleted or changed by another process or by the kernel,
// addresses and interfaces coming and going. Changes this process sent,
// lookups, ARP/NDP entries and misses are not.
//
// RTF_PROTO1 says nothing about the sender: another program's
// `route delete 0.0.0.0/1` or `route -n flush` is broadcast with the
// deleted route's flags (rtsock.c copies rt_flags into the report), our
// RTF_PROTO1 among them, and NetBird marks its own routes RTF_PROTO1 too.
// Only the pid tells our own changes apart.
func bsdChangeMatters(typ, flags, pid, self int) bool {
	switch typ {
	case rtmNewAddr, rtmDelAddr, rtmIfInfo:
		return true
	case rtmAdd, rtmDelete, rtmChange:
		if pid == self || flags&rtfWasCloned != 0 {
			return false
		}
		// Neighbour entries (arp -s, NDP) carry RTF_LLINFO; our own
		// host route to the router does too once ARP takes it.
		return flags&rtfLLInfo == 0 || flags&rtfProto1 != 0
	}
	return false
}

// bsdRtMsghdrSize is sizeof(struct rt_msghdr) on darwin, where a route
// message's socket addresses start.
const bsdRtMsghdrSize = 92

// bsdFullLinkAddrs rewrites a marshalled route request so that each
// link-layer address m marks Full is a whole struct sockaddr_dl
// (bsdLinkSALen), zero-padded: golang.org/x/net/route writes only the
// bytes it has (8 for an index alone), which arp_rtrequest refuses as a
// host route's gateway. Addresses are 4-byte aligned as on darwin, in
// RTAX order; the bytes after the last address (x/net/route pads darwin
// requests) are kept, and rtm_msglen is updated.
func bsdFullLinkAddrs(b []byte, m bsdRouteMsg) ([]byte, error) {
	if len(b) < bsdRtMsghdrSize {
		return nil, fmt.Errorf("route message of %d bytes is shorter than its header", len(b))
	}
	roles := [8]bsdAddr{m.Dst, m.Gateway, m.Netmask, {}, m.IFP, m.IFA}
	attrs := uint32(b[12]) | uint32(b[13])<<8 | uint32(b[14])<<16 | uint32(b[15])<<24
	out := append(make([]byte, 0, len(b)+64), b[:bsdRtMsghdrSize]...)
	off := bsdRtMsghdrSize
	for i := range roles {
		if attrs&(1<<i) == 0 {
			continue
		}
		if off+1 >= len(b) {
			return nil, fmt.Errorf("route message: address %d past its end", i)
		}
		l := int(b[off])
		space := max(4, (l+3)&^3)
		if off+space > len(b) {
			return nil, fmt.Errorf("route message: address %d of %d bytes past its end", i, l)
		}
		sa := b[off : off+space]
		if b[off+1] == bsdAFLink && roles[i].Full && l < bsdLinkSALen(roles[i]) {
			w := make([]byte, (bsdLinkSALen(roles[i])+3)&^3)
			copy(w, sa[:l])
			w[0] = byte(bsdLinkSALen(roles[i]))
			sa = w
		}
		out = append(out, sa...)
		off += space
	}
	out = append(out, b[off:]...)
	if len(out) > 0xffff {
		return nil, fmt.Errorf("route message of %d bytes", len(out))
	}
	out[0], out[1] = byte(len(out)), byte(len(out)>>8)
	return out, nil
}

// bsdRawMsg is what the watcher needs of one route socket message, read
// from its header.
type bsdRawMsg struct {
	Type, Flags, Index, Pid int
	Dst                     netip.Addr // route messages: the destination, if any
}

// bsdRawMessages splits what one read of a route socket returned into
// messages (by rtm_msglen) and reads their headers: interface and
// address messages (if_msghdr, ifa_msghdr: flags at 8, index at 12) and
// route messages (rt_msghdr: index at 4, flags at 8, pid at 16, the
// destination after the header). golang.org/x/net/route returns nothing
// for an RTM_IFINFO without addresses, which is exactly what the kernel
// broadcasts when a link goes up or down (rt_ifmsg). ok is false when
// the bytes do not split into messages.
func bsdRawMessages(b []byte) (msgs []bsdRawMsg, ok bool) {
	u16 := func(p []byte) int { return int(p[0]) | int(p[1])<<8 }
	u32 := func(p []byte) int {
		return int(int32(uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24))
	}
	for len(b) > 0 {
		if len(b) < 4 {
			return msgs, false
		}
		n := u16(b)
		if n < 4 || n > len(b) {
			return msgs, false
		}
		m, rest := b[:n], b[n:]
		b = rest
		typ := int(m[3])
		switch typ {
		case rtmIfInfo, rtmNewAddr, rtmDelAddr:
			if len(m) < 14 {
				return msgs, false
			}
			msgs = append(msgs, bsdRawMsg{Type: typ, Flags: u32(m[8:]), Index: u16(m[12:])})
		case rtmAdd, rtmDelete, rtmChange:
			if len(m) < bsdRtMsghdrSize {
				return msgs, false
			}
			r := bsdRawMsg{Type: typ, Index: u16(m[4:]), Flags: u32(m[8:]), Pid: u32(m[16:])}
			sa := m[bsdRtMsghdrSize:]
			if u32(m[12:])&1 != 0 && len(sa) >= 2 { // RTA_DST
				switch {
				case sa[1] == bsdAFInet && len(sa) >= 8:
					r.Dst = netip.AddrFrom4([4]byte(sa[4:8]))
				case sa[1] == bsdAFInet6 && len(sa) >= 24:
					r.Dst = netip.AddrFrom16([16]byte(sa[8:24]))
				}
			}
			msgs = append(msgs, r)
		}
	}
	return msgs, true
}

// bsdNoisyLink reports whether changes of the named interface never
// matter to the tunnel plan: AWDL (AirDrop), low-latency WLAN and IPsec
// interfaces flap all day (Tailscale's netmon ignores them too), and
// other programs' utuns coming and going change no route by themselves
// (their routes are broadcast on their own).
func bsdNoisyLink(name string) bool {
	switch strings.TrimRight(name, "0123456789") {
	case "awdl", "llw", "ipsec", "utun":
		return true
	}
	return false
}

// bsdWatchMatters reports whether any of msgs is a change the tunnel
// plan depends on (bsdChangeMatters), leaving out the noisy interfaces'
// link and address changes and IPv6 link-local routes (neighbours on
// AWDL and the like). name resolves an interface index ("" when gone:
// that matters).
func bsdWatchMatters(msgs []bsdRawMsg, self int, name func(int) string) bool {
	for _, m := range msgs {
		switch m.Type {
		case rtmIfInfo, rtmNewAddr, rtmDelAddr:
			if bsdNoisyLink(name(m.Index)) {
				continue
			}
			return true
		case rtmAdd, rtmDelete, rtmChange:
			if m.Dst.Is6() && m.Dst.IsLinkLocalUnicast() {
				continue
			}
			if bsdChangeMatters(m.Type, m.Flags, m.Pid, self) {
				return true
			}
		}
	}
	return false
}
