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
type xnu struct {
	mu       sync.Mutex
	ifs      []bsdIfMsg
	addrs    []bsdIfAddrMsg
	table    []bsdRouteMsg
	requests []bsdRouteMsg
}

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
	return slices.Clone(k.table), nil
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
	k.mu.Lock()
	defer k.mu.Unlock()
	k.requests = append(k.requests, m)
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
		ifp := k.ifpFor(m)
		if ifp == 0 {
			return bsdRouteMsg{}, errno(syscall.ENETUNREACH)
		}
		k.table = append(k.table, bsdRouteMsg{Type: rtmGet, Flags: m.Flags, Index: ifp, Dst: m.Dst, Gateway: m.Gateway, Netmask: m.Netmask})
		return reply, nil
	case rtmDelete:
		if at < 0 {
			return bsdRouteMsg{}, errno(syscall.ESRCH)
		}
		k.table = slices.Delete(k.table, at, at+1)
		return reply, nil
	case rtmGet:
		dst, _, _ := m.Dst.inet()
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
		for _, a := range k.addrs {
			if a.Index == e.Index && a.Addr.Family == m.Dst.Family {
				reply.IFA = a.Addr
				break
			}
		}
		return reply, nil
	}
	return bsdRouteMsg{}, errno(syscall.EOPNOTSUPP)
}

func mustKey(m bsdRouteMsg) xnuKey {
	k, err := xnuKeyOf(m)
	if err != nil {
		panic(err)
	}
	return k
}

// ifpFor picks the interface of a new route as rtrequest and rt_setif do:
// the one named (RTA_IFP, a link-layer gateway, the scope), lo0 for
// reject and blackhole routes, else the interface of the route to the
// gateway.
func (k *xnu) ifpFor(m bsdRouteMsg) int {
	exists := func(i int) bool { return slices.ContainsFunc(k.ifs, func(f bsdIfMsg) bool { return f.Index == i }) }
	switch {
	case m.IFP.Family == bsdAFLink && exists(m.IFP.Index):
		return m.IFP.Index
	case m.Gateway.Family == bsdAFLink:
		if exists(m.Gateway.Index) {
			return m.Gateway.Index
		}
		return 0
	case m.Flags&rtfIfScope != 0 && exists(m.Index):
		return m.Index
	case m.Flags&(rtfBlackhole|rtfReject) != 0:
		return macLo0
	}
	gw, _, err := m.Gateway.inet()
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
	return 0
}

// detach removes an interface the way a utun goes when its process dies:
// the interface and the routes whose interface it was (if_rtproto_del);
// routes elsewhere that name it only as gateway stay.
func (k *xnu) detach(index int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ifs = slices.DeleteFunc(k.ifs, func(i bsdIfMsg) bool { return i.Index == index })
	k.addrs = slices.DeleteFunc(k.addrs, func(a bsdIfAddrMsg) bool { return a.Index == index })
	k.table = slices.DeleteFunc(k.table, func(e bsdRouteMsg) bool { return e.Index == index })
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
