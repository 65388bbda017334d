package routes

import (
	"bufio"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// prefixSet finds, for a prefix, the members of a set that contain it, in
// O(number of distinct lengths) map lookups: no pairwise comparison, so
// planning and overlap checks stay linear in the number of routes.
type prefixSet[V any] struct {
	m            map[netip.Prefix][]V
	lens4, lens6 []int // distinct prefix lengths, ascending
}

func newPrefixSet[V any]() *prefixSet[V] { return &prefixSet[V]{m: map[netip.Prefix][]V{}} }

func (s *prefixSet[V]) add(p netip.Prefix, v V) {
	p = p.Masked()
	s.m[p] = append(s.m[p], v)
	lens := &s.lens4
	if p.Addr().Is6() {
		lens = &s.lens6
	}
	if i, found := slices.BinarySearch(*lens, p.Bits()); !found {
		*lens = slices.Insert(*lens, i, p.Bits())
	}
}

// containing calls f for each member containing x (of length below
// x's, or equal too when inclusive), shortest first, until f returns false.
func (s *prefixSet[V]) containing(x netip.Prefix, inclusive bool, f func(netip.Prefix, V) bool) {
	lens := s.lens4
	if x.Addr().Is6() {
		lens = s.lens6
	}
	for _, l := range lens {
		if l > x.Bits() || (l == x.Bits() && !inclusive) {
			return
		}
		q, _ := x.Addr().Prefix(l)
		for _, v := range s.m[q] {
			if !f(q, v) {
				return
			}
		}
	}
}

// Reasons of a LAN decision (Overlap.Reason).
const (
	ReasonConnected    = "connected network"
	ReasonRouter       = "default router"
	ReasonResolver     = "resolver in use"
	ReasonMoreSpecific = "more specific local route"
)

// lanPlan is what PlanTunnel keeps outside the tunnel.
type lanPlan struct {
	throws []netip.Prefix           // throw routes in our table, in order found
	inside map[netip.Prefix]Overlap // pushes not routed at all (inside a connected network, or a protected host)
	hosts  []Overlap                // decisions about the default router and the resolvers
}

// protectedHost is the default router or a resolver.
type protectedHost struct {
	addr   netip.Addr
	reason string
	device string
}

// hosts returns the default routers and the resolvers in use that lie in
// no connected network (those are protected with their network).
func hosts(snap *Snapshot, spec TunnelSpec, conn *prefixSet[Route]) []protectedHost {
	var out []protectedHost
	seen := map[netip.Addr]bool{}
	addHost := func(a netip.Addr, reason, dev string) {
		a = a.Unmap().WithZone("")
		if !a.IsValid() || a.IsLoopback() || a.IsUnspecified() || a.IsLinkLocalUnicast() || a.IsMulticast() || seen[a] {
			return
		}
		in := false
		conn.containing(netip.PrefixFrom(a, a.BitLen()), true, func(netip.Prefix, Route) bool { in = true; return false })
		if in {
			return
		}
		seen[a] = true
		out = append(out, protectedHost{a, reason, dev})
	}
	if snap != nil {
		for _, m := range snap.Routes {
			if m.Table == 254 && m.Dst.Bits() == 0 && m.Gateway.IsValid() && m.Device != spec.Device && m.Protocol != Protocol {
				addHost(m.Gateway, ReasonRouter, m.Device)
			}
		}
	}
	for _, r := range spec.Resolvers {
		addHost(r, ReasonResolver, "")
	}
	return out
}

// lanDecisions decides, for the Linux plan, which of the machine's own
// destinations stay outside the tunnel:
//
//   - any route of main strictly more specific than a push (longest prefix
//     wins across both tables): a throw;
//   - unless RouteLAN, a connected network equal to or inside a push: a
//     throw too, and a push inside a connected network is not routed;
//   - unless RouteLAN, the default router and the resolvers in use (outside
//     the connected networks): a host throw when a push contains them, and
//     a push equal to one is not routed.
//
// BlockLAN keeps the old full-tunnel meaning: a /0 push makes no exception.
func lanDecisions(snap *Snapshot, spec TunnelSpec) lanPlan {
	lp := lanPlan{inside: map[netip.Prefix]Overlap{}}
	pushes := newPrefixSet[netip.Prefix]()
	for _, p := range spec.Prefixes {
		pushes.add(p, p)
	}
	conn := newPrefixSet[Route]()
	if snap == nil {
		return lp
	}
	connected := connectedFn(snap, spec.Device)
	thrown := map[netip.Prefix]bool{}
	throw := func(d netip.Prefix) {
		if !thrown[d] {
			thrown[d] = true
			lp.throws = append(lp.throws, d)
		}
	}
	for _, m := range snap.Routes {
		if m.Table != 254 || m.Device == spec.Device || m.Type != TypeUnicast || m.Protocol == Protocol {
			continue
		}
		if m.Dst.Addr().IsLinkLocalUnicast() || m.Dst.Addr().IsMulticast() {
			continue
		}
		isConn := !spec.RouteLAN && connected(m)
		if isConn {
			conn.add(m.Dst, m)
		}
		if _, eq := pushes.m[m.Dst]; eq {
			if !isConn {
				continue // an equal push wins over a route that is not the LAN
			}
			// The LAN itself pushed: not routed (a throw and a route of
			// the same destination cannot share our table).
			lp.inside[m.Dst] = Overlap{Pushed: m.Dst, Local: m, Winner: "lan", Reason: ReasonConnected}
		}
		pushes.containing(m.Dst, false, func(p netip.Prefix, _ netip.Prefix) bool {
			if spec.BlockLAN && p.Bits() == 0 {
				return true // look on: a narrower push may still make the exception
			}
			throw(m.Dst)
			return false
		})
	}
	if spec.RouteLAN {
		return lp
	}
	for _, p := range spec.Prefixes {
		p = p.Masked()
		conn.containing(p, false, func(_ netip.Prefix, m Route) bool {
			lp.inside[p] = Overlap{Pushed: p, Local: m, Winner: "lan", Reason: ReasonConnected}
			return false
		})
	}
	for _, h := range hosts(snap, spec, conn) {
		hp := netip.PrefixFrom(h.addr, h.addr.BitLen())
		if _, eq := pushes.m[hp]; eq {
			o := Overlap{Pushed: hp, Local: hostRoute(h), Winner: "lan", Reason: h.reason}
			lp.inside[hp] = o
			lp.hosts = append(lp.hosts, o)
		}
		pushes.containing(hp, false, func(p netip.Prefix, _ netip.Prefix) bool {
			if spec.BlockLAN && p.Bits() == 0 {
				return true
			}
			throw(hp)
			lp.hosts = append(lp.hosts, Overlap{Pushed: p, Local: hostRoute(h), Winner: "lan", Reason: h.reason})
			return false
		})
	}
	return lp
}

func hostRoute(h protectedHost) Route {
	fam := FamilyV4
	if h.addr.Is6() {
		fam = FamilyV6
	}
	return Route{Family: fam, Table: 254, Type: TypeUnicast, Dst: netip.PrefixFrom(h.addr, h.addr.BitLen()), Device: h.device}
}

// ReadResolvers returns the nameservers of a resolv.conf (nil when it
// cannot be read).
func ReadResolvers(path string) []netip.Addr {
	fh, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fh.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				out = append(out, a.WithZone(""))
			}
		}
	}
	return out
}
