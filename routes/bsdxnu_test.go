package routes

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"
)

// xnu models what a Mac's kernel does with route socket requests, as far
// as the backend relies on it (bsd/net/rtsock.c route_output and
// route.c rtrequest): one route per key (destination, mask, scope);
// RTM_ADD of a taken key is EEXIST, RTM_DELETE and RTM_GET of a missing
// one ESRCH; RTM_DELETE selects by key alone, never by gateway; RTM_GET
// is a longest-prefix match over unscoped routes and answers with the
// interface (RTA_IFP, RTA_IFA); dumps carry destination, gateway and
// netmask, the interface only as rtm_index. It is the one boundary that
// cannot exist on Linux: a macOS route socket.
//
// Beyond the table it models what issue 23 found a real Mac would do:
//   - the interface and interface address of a new route (rtrequest's
//     ifa_ifwithroute with the family fix-up, then rt_setif when the
//     request carries RTA_IFP: ifaof_ifpforaddr of the gateway, so an
//     AF_LINK gateway makes the link-layer address rt_ifa), kept in the
//     entry's IFA, and source selection from it (source: in_pcbladdr
//     reads rt_ifa as IPv4);
//   - ARP's check of a host route's link-layer gateway (arp_rtrequest:
//     shorter than a struct sockaddr_dl, no RTF_LLINFO and the next hop
//     never resolves: forward);
//   - RTF_PROXY in any request is EINVAL (route_output);
//   - every change is broadcast with the route's flags and the sender's
//     pid, deletions with the deleted route's flags (casts);
//   - a departing interface takes its routes (if_rtdel) and the local
//     routes of its addresses (detach);
//   - RTM_CHANGE moves a route in place under its key (rt_lookup of the
//     key, ESRCH without one): a new gateway (rt_setgate), the interface
//     and interface address that gateway gives (rt_setif), and the flags
//     kept ("Changing flags still doesn't work": a blackhole stays one).
//
// watch, when set, runs after each of the System's requests: the moment
// a packet sent then would see the table as it is.
type xnu struct {
	mu       sync.Mutex
	ifs      []bsdIfMsg
	addrs    []bsdIfAddrMsg
	table    []bsdRouteMsg
	requests []bsdRouteMsg
	casts    []xnuCast
	watch    func()
}

// xnuCast is a message every route socket listener receives.
type xnuCast struct {
	Type, Flags, Pid, Index int
	Dst                     netip.Prefix
}

// xnuSelf is the pid of the process the System's requests come from.
const xnuSelf = 4242

func newXNU(ifs []bsdIfMsg, addrs []bsdIfAddrMsg, dump []bsdRouteMsg) *xnu {
	return &xnu{ifs: slices.Clone(ifs), addrs: slices.Clone(addrs), table: slices.Clone(dump)}
}

func (k *xnu) Interfaces() ([]bsdIfMsg, []bsdIfAddrMsg, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ifs), slices.Clone(k.addrs), nil
}

func (k *xnu) Routes() ([]bsdRouteMsg, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := slices.Clone(k.table)
	for i := range out {
		out[i].IFA = bsdAddr{} // sysctl_dumpentry sends no RTAX_IFA
	}
	return out, nil
}

type xnuKey struct {
	dst   netip.Prefix
	scope int
}

func xnuKeyOf(m bsdRouteMsg) (xnuKey, error) {
	dst, zone, err := m.Dst.inet()
	if err != nil {
		return xnuKey{}, err
	}
	bits := dst.BitLen()
	if m.Flags&rtfHost == 0 && m.Netmask.present() {
		if bits, err = bsdMaskBits(m.Netmask.IP, dst.BitLen()); err != nil {
			return xnuKey{}, err
		}
	}
	scope := zone
	if m.Flags&rtfIfScope != 0 {
		scope = bsdScope(m)
	}
	return xnuKey{netip.PrefixFrom(dst, bits).Masked(), scope}, nil
}

func errno(e syscall.Errno) error { return fmt.Errorf("route socket: %w", e) }

func (k *xnu) Request(m bsdRouteMsg) (bsdRouteMsg, error) {
	reply, err := k.requestAs(xnuSelf, m)
	if k.watch != nil {
		k.watch()
	}
	return reply, err
}

// requestAs is a request from process pid (another VPN, configd, route(8)).
func (k *xnu) requestAs(pid int, m bsdRouteMsg) (bsdRouteMsg, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if pid == xnuSelf {
		k.requests = append(k.requests, m)
	}
	if m.Flags&rtfProxy != 0 {
		return bsdRouteMsg{}, errno(syscall.EINVAL) // "RTF_PROXY can only be set internally"
	}
	key, err := xnuKeyOf(m)
	if err != nil {
		return bsdRouteMsg{}, errno(syscall.EINVAL)
	}
	at := slices.IndexFunc(k.table, func(e bsdRouteMsg) bool { ek, err := xnuKeyOf(e); return err == nil && ek == key })
	reply := m
	reply.Flags |= rtfDone
	switch m.Type {
	case rtmAdd:
		if !m.Gateway.present() {
			return bsdRouteMsg{}, errno(syscall.EINVAL)
		}
		if at >= 0 {
			return bsdRouteMsg{}, errno(syscall.EEXIST)
		}
		ifp, ifa := k.setif(m)
		if ifp == 0 {
			return bsdRouteMsg{}, errno(syscall.ENETUNREACH)
		}
		flags := m.Flags &^ rtfDone
		if k.arpHost(ifp, m) {
			// arp_rtrequest: a link-layer gateway shorter than a
			// struct sockaddr_dl is "bad gateway address": the route
			// stays, without link-layer info, and never resolves.
			if m.Gateway.Family == bsdAFLink && bsdLinkSALen(m.Gateway) >= bsdSockaddrDLSize {
				flags |= rtfLLInfo
			}
		}
		e := bsdRouteMsg{Type: rtmGet, Flags: flags, Index: ifp, Dst: m.Dst, Gateway: m.Gateway, Netmask: m.Netmask, IFA: ifa}
		e.Gateway.Full = false
		k.table = append(k.table, e)
		k.cast(rtmAdd, e, pid)
		return reply, nil
	case rtmDelete:
		if at < 0 {
			return bsdRouteMsg{}, errno(syscall.ESRCH)
		}
		gone := k.table[at]
		k.table = slices.Delete(k.table, at, at+1)
		// The report carries the deleted route's flags (rtsock.c
		// report: out_rtm->rtm_flags = rt->rt_flags) and the sender's pid.
		k.cast(rtmDelete, gone, pid)
		return reply, nil
	case rtmChange:
		if at < 0 {
			return bsdRouteMsg{}, errno(syscall.ESRCH)
		}
		e := k.table[at]
		if m.Gateway.present() {
			e.Gateway = m.Gateway
			e.Gateway.Full = false
		}
		probe := m
		probe.Flags = e.Flags // rt_setif sees the route's flags, not the request's
		probe.Gateway = e.Gateway
		ifp, ifa := k.setif(probe)
		if ifp == 0 {
			return bsdRouteMsg{}, errno(syscall.ENETUNREACH)
		}
		e.Index, e.IFA = ifp, ifa
		e.Flags &^= rtfLLInfo
		if k.arpHost(ifp, e) && e.Gateway.Family == bsdAFLink && bsdLinkSALen(m.Gateway) >= bsdSockaddrDLSize {
			e.Flags |= rtfLLInfo
		}
		k.table[at] = e
		k.cast(rtmChange, e, pid)
		return reply, nil
	case rtmGet:
		dst, _, _ := m.Dst.inet()
		best := k.match(dst)
		if best < 0 {
			return bsdRouteMsg{}, errno(syscall.ESRCH)
		}
		e := k.table[best]
		reply = bsdRouteMsg{Type: rtmGet, Seq: m.Seq, Flags: e.Flags | rtfDone, Index: e.Index, Dst: e.Dst, Gateway: e.Gateway, Netmask: e.Netmask}
		for _, i := range k.ifs {
			if i.Index == e.Index {
				reply.IFP = bsdAddr{Family: bsdAFLink, Index: i.Index, Name: i.Name}
			}
		}
		reply.IFA = k.rtIfa(e)
		return reply, nil
	}
	return bsdRouteMsg{}, errno(syscall.EOPNOTSUPP)
}

func (k *xnu) cast(typ int, e bsdRouteMsg, pid int) {
	key, _ := xnuKeyOf(e)
	k.casts = append(k.casts, xnuCast{Type: typ, Flags: e.Flags, Pid: pid, Index: e.Index, Dst: key.dst})
}

// match is the unscoped longest-prefix match for dst (rtalloc1), or -1.
func (k *xnu) match(dst netip.Addr) int {
	best := -1
	for i, e := range k.table {
		ek, err := xnuKeyOf(e)
		if err != nil || e.Flags&rtfIfScope != 0 || bsdCached(e) || !ek.dst.Contains(dst) {
			continue
		}
		if best < 0 || ek.dst.Bits() > mustKey(k.table[best]).dst.Bits() {
			best = i
		}
	}
	return best
}

// rtIfa is the route's interface address: the one its add chose, or for
// a route from a recorded dump, the first of its family on its interface.
func (k *xnu) rtIfa(e bsdRouteMsg) bsdAddr {
	if e.IFA.present() {
		return e.IFA
	}
	return k.ifaOf(e.Index, e.Dst.Family)
}

// ifaOf is the first address of family fam on interface i
// (ifaof_ifpforaddr's ifa_maybe), the link-layer one for AF_LINK.
func (k *xnu) ifaOf(i, fam int) bsdAddr {
	if fam == bsdAFLink {
		return bsdAddr{Family: bsdAFLink, Index: i}
	}
	for _, a := range k.addrs {
		if a.Index == i && a.Addr.Family == fam {
			return a.Addr
		}
	}
	return bsdAddr{}
}

// arpHost reports whether a new route on ifp passes ARP's gateway check:
// an IPv4 host route without RTF_GATEWAY on an Ethernet (Wi-Fi) link.
func (k *xnu) arpHost(ifp int, m bsdRouteMsg) bool {
	i := slices.IndexFunc(k.ifs, func(f bsdIfMsg) bool { return f.Index == ifp })
	return i >= 0 && k.ifs[i].Type == iftEther && m.Dst.Family == bsdAFInet && m.Flags&rtfHost != 0 && m.Flags&rtfGateway == 0
}

// source is the address an unbound socket sending to dst gets
// (in_pcbladdr): the interface address of the route, read as IPv4.
func (k *xnu) source(dst netip.Addr) (netip.Addr, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := k.match(dst)
	if i < 0 {
		return netip.Addr{}, fmt.Errorf("%s: no route", dst)
	}
	e := k.table[i]
	if e.Flags&(rtfReject|rtfBlackhole) != 0 {
		return netip.Addr{}, fmt.Errorf("%s: unreachable", dst)
	}
	ifa := k.rtIfa(e)
	ip, _, err := ifa.inet()
	if err != nil || ip.Is4() != dst.Is4() {
		return netip.Addr{}, fmt.Errorf("%s: rt_ifa of the route is of address family %d: in_pcbladdr reads its bytes as the source", dst, ifa.Family)
	}
	return ip, nil
}

// forward is where a packet to dst leaves: the interface name, after
// resolving the next hop (a route via a gateway needs the gateway's own
// route; on Ethernet a host route there must carry link-layer info).
func (k *xnu) forward(dst netip.Addr) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := k.match(dst)
	if i < 0 {
		return "", fmt.Errorf("%s: no route", dst)
	}
	e := k.table[i]
	if e.Flags&(rtfReject|rtfBlackhole) != 0 {
		return "", fmt.Errorf("%s: unreachable (%s)", dst, bsdFlagNames(e.Flags))
	}
	hop := e
	if e.Flags&rtfGateway != 0 {
		gw, _, err := e.Gateway.inet()
		if err != nil {
			return "", fmt.Errorf("%s: gateway %v", dst, err)
		}
		j := k.match(gw)
		if j < 0 {
			return "", fmt.Errorf("%s: no route to gateway %s", dst, gw)
		}
		hop = k.table[j]
	}
	if k.arpHost(hop.Index, hop) && hop.Flags&rtfLLInfo == 0 {
		return "", fmt.Errorf("%s: next hop %s has no link-layer info (ARP refused its gateway)", dst, mustKey(hop).dst)
	}
	return k.name(e.Index), nil
}

func (k *xnu) name(i int) string {
	for _, f := range k.ifs {
		if f.Index == i {
			return f.Name
		}
	}
	return fmt.Sprintf("link#%d", i)
}

func mustKey(m bsdRouteMsg) xnuKey {
	k, err := xnuKeyOf(m)
	if err != nil {
		panic(err)
	}
	return k
}

// setif picks the interface and interface address of a new route:
// rtrequest first (ifa_ifwithroute: the interface a link-layer gateway
// names, the scope, lo0 for reject and blackhole routes, the interface
// on the gateway's network or of the route to it; then an address of the
// destination's family on it), then rt_setif when the request names an
// interface (RTA_IFP): the address ifaof_ifpforaddr finds there for the
// gateway's family, which for an AF_LINK gateway is the link-layer one.
func (k *xnu) setif(m bsdRouteMsg) (int, bsdAddr) {
	exists := func(i int) bool { return slices.ContainsFunc(k.ifs, func(f bsdIfMsg) bool { return f.Index == i }) }
	ifp := 0
	switch {
	case m.Gateway.Family == bsdAFLink:
		if exists(m.Gateway.Index) {
			ifp = m.Gateway.Index
		}
	case m.Flags&rtfIfScope != 0 && exists(m.Index):
		ifp = m.Index
	case m.Flags&(rtfBlackhole|rtfReject) != 0:
		ifp = macLo0
	default:
		ifp = k.ifpForGateway(m.Gateway)
	}
	if m.IFP.Family == bsdAFLink && exists(m.IFP.Index) && ifp == 0 {
		// rtrequest found nothing; rt_setif is never reached (ENETUNREACH).
		return 0, bsdAddr{}
	}
	if ifp == 0 {
		return 0, bsdAddr{}
	}
	ifa := k.ifaOf(ifp, m.Dst.Family)
	if !ifa.present() {
		ifa = k.ifaOf(ifp, bsdAFLink)
	}
	if m.IFP.Family == bsdAFLink && exists(m.IFP.Index) {
		ifp = m.IFP.Index
		by := m.Gateway
		if m.IFA.present() {
			by = m.IFA
		}
		if a := k.ifaOf(ifp, by.Family); a.present() {
			ifa = a
		}
	}
	return ifp, ifa
}

// ifpForGateway is the interface of an IP gateway: the one holding it
// as address or on its network, else the interface of the route to it.
func (k *xnu) ifpForGateway(g bsdAddr) int {
	gw, _, err := g.inet()
	if err != nil {
		return 0
	}
	for _, a := range k.addrs {
		ip, _, err := a.Addr.inet()
		if err != nil || !a.Mask.present() {
			continue
		}
		bits, err := bsdMaskBits(a.Mask.IP, ip.BitLen())
		if err == nil && netip.PrefixFrom(ip, bits).Contains(gw) {
			return a.Index
		}
	}
	if i := k.match(gw); i >= 0 && k.table[i].Flags&rtfGateway == 0 {
		return k.table[i].Index
	}
	return 0
}

// detach removes an interface the way a utun goes when its process dies:
// the interface, the routes whose interface it was (if_rtproto_del:
// if_rtdel) and the local routes of its addresses (in_purgeaddrs,
// in6_purgeaddrs: on lo0, their zone or link gateway naming it), each
// deletion broadcast by the kernel (pid 0).
func (k *xnu) detach(index int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ifs = slices.DeleteFunc(k.ifs, func(i bsdIfMsg) bool { return i.Index == index })
	k.addrs = slices.DeleteFunc(k.addrs, func(a bsdIfAddrMsg) bool { return a.Index == index })
	k.table = slices.DeleteFunc(k.table, func(e bsdRouteMsg) bool {
		_, zone, _ := e.Dst.inet()
		local := e.Index == macLo0 && (zone == index || e.Gateway.Family == bsdAFLink && e.Gateway.Index == index)
		if e.Index == index || local {
			k.cast(rtmDelete, e, 0) // if_rtdel: the kernel's own deletion
			return true
		}
		return false
	})
}

// attach adds a utun with a point-to-point address, as wireguard-go's
// CreateTUN("utun") and ifconfig do.
func (k *xnu) attach(index int, name string, addr netip.Prefix) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ifs = append(k.ifs, bsdIfMsg{Index: index, Name: name, Flags: iffUp, Type: 0xff, MTU: 1420})
	k.addrs = append(k.addrs, bsdIfAddrMsg{Index: index, Addr: bsdInetAddr(addr.Addr(), 0), Mask: bsdMask(addr.Bits(), addr.Addr().Is6())})
	k.table = append(k.table, bsdRouteMsg{Type: rtmGet, Flags: rtfUp | rtfHost, Index: index, Dst: bsdInetAddr(addr.Addr(), 0), Gateway: bsdInetAddr(addr.Addr(), 0)})
}

func (k *xnu) sent(typ int) []bsdRouteMsg {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []bsdRouteMsg
	for _, m := range k.requests {
		if m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}
