package routes

import (
	"cmp"
	"net/netip"
	"slices"
)

// planMac is PlanTunnel for macOS, which has one routing table and no
// policy rules, so longest-prefix match alone must do what our table and
// rules do on Linux:
//
//   - a full tunnel is the two /1 halves (0.0.0.0/1 + 128.0.0.0/1, ::/1 +
//     8000::/1): more specific than the machine's default, which stays in
//     place untouched, and less specific than every connected route, so the
//     LAN keeps working (no throw routes needed);
//   - the gateway endpoint is pinned by a host route through whatever
//     carries it outside the tunnel now (the default gateway, usually);
//     re-planned on every route change, so the pin follows a new network;
//     while nothing carries it, the pin stays, or a blackhole pin holds
//     its place, so WireGuard's own packets never loop into the tunnel;
//   - a full IPv4 tunnel without IPv6 in the tunnel refuses IPv6 in halves
//     (unreachable ::/1 + 8000::/1), so it fails at once instead of leaking;
//   - BlockLAN splits each connected LAN prefix under a full tunnel into
//     halves into the tunnel, which beat the LAN route the same way;
//   - a pushed prefix that equals a route the machine already has cannot be
//     added next to it (XNU keeps one route per destination and mask) and
//     is left to that route; Overlaps reports it.
func planMac(snap *Snapshot, spec TunnelSpec) []Change {
	// first: the endpoint pin (and its next hop when BlockLAN hides it),
	// in place before any tunnel route can capture the endpoint.
	var first, rest []Route
	mark := func(r Route) Route {
		r.Protocol = Protocol
		r.Family = FamilyV4
		if r.Dst.Addr().Is6() {
			r.Family = FamilyV6
		}
		return r
	}
	add := func(r Route) { rest = append(rest, mark(r)) }
	into := func(p netip.Prefix) Route { return Route{Type: TypeUnicast, Dst: p, Device: spec.Device} }
	taken := func(p netip.Prefix) bool {
		return slices.ContainsFunc(snap.Routes, func(m Route) bool {
			return m.Dst == p && m.Protocol != Protocol && !Scoped(m) && m.Device != spec.Device
		})
	}
	pin, pinned := endpointPin(snap, spec)
	if pinned {
		first = append(first, mark(pin))
	}
	if spec.full(false) && !spec.hasV6() && !spec.full(true) {
		for _, h := range halves(default6) {
			add(Route{Type: TypeUnreachable, Dst: h})
		}
	}
	for _, p := range spec.Prefixes {
		p = p.Masked()
		switch {
		case p.Bits() == 0 && p.Addr().Is6() && !spec.hasV6():
			for _, h := range halves(p) {
				add(Route{Type: TypeUnreachable, Dst: h})
			}
		case p.Bits() == 0:
			for _, h := range halves(p) {
				add(into(h))
			}
		case taken(p):
			// the machine's own route keeps it
		default:
			add(into(p))
		}
	}
	if spec.BlockLAN {
		var blocked []netip.Prefix
		for _, m := range snap.Routes {
			if !spec.full(m.Dst.Addr().Is6()) || !connectedLAN(m, spec.Device) {
				continue
			}
			blocked = append(blocked, m.Dst)
			for _, h := range halves(m.Dst) {
				add(into(h))
			}
		}
		// The pin's next hop sits on a blocked LAN: keep it reachable
		// there, or the endpoint would be resolved through the tunnel.
		if pinned && pin.Gateway.IsValid() && slices.ContainsFunc(blocked, func(p netip.Prefix) bool { return p.Contains(pin.Gateway) }) {
			if gw := netip.PrefixFrom(pin.Gateway, pin.Gateway.BitLen()); !taken(gw) {
				first = append(first, mark(Route{Type: TypeUnicast, Dst: gw, Device: pin.Device}))
			}
		}
	}
	slices.SortStableFunc(rest, func(a, b Route) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Type, b.Type), a.Dst.Addr().Compare(b.Dst.Addr()), cmp.Compare(a.Dst.Bits(), b.Dst.Bits()))
	})
	var changes []Change
	seen := map[netip.Prefix]bool{}
	for _, r := range append(first, rest...) {
		if seen[r.Dst] {
			continue
		}
		seen[r.Dst] = true
		changes = append(changes, Change{Op: OpAddRoute, Route: &r})
	}
	return changes
}

// halves splits p into its two halves (a /0 into /1s).
func halves(p netip.Prefix) []netip.Prefix {
	if p.Bits() >= p.Addr().BitLen() {
		return []netip.Prefix{p}
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1).Masked()
	b := lo.Addr().AsSlice()
	b[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	hi, _ := netip.AddrFromSlice(b)
	return []netip.Prefix{lo, netip.PrefixFrom(hi, p.Bits()+1)}
}

// connectedLAN reports whether m is an interface route of a LAN (not the
// tunnel's, not loopback, link-local or multicast).
func connectedLAN(m Route, tunnelDev string) bool {
	a := m.Dst.Addr()
	return m.Type == TypeUnicast && !m.Gateway.IsValid() && m.Protocol != Protocol && !Scoped(m) && m.Device != tunnelDev &&
		m.Device != "lo0" && m.Dst.Bits() > 0 && !m.Dst.IsSingleIP() && !a.IsLinkLocalUnicast() && !a.IsMulticast() && !a.IsLoopback()
}

// endpointPin is the host route keeping the WireGuard endpoint outside
// the tunnel: through the route that carries it when the tunnel is left
// out of the picture. None is needed when no tunnel route would capture
// it, or when a LAN route more specific than any of them already does.
func endpointPin(snap *Snapshot, spec TunnelSpec) (Route, bool) {
	ep := spec.Endpoint.WithZone("")
	if !ep.IsValid() {
		return Route{}, false
	}
	widest := -1 // longest tunnel prefix holding the endpoint
	for _, p := range spec.Prefixes {
		if p.Masked().Contains(ep) && p.Bits() > widest {
			widest = p.Bits()
		}
	}
	if widest < 0 {
		return Route{}, false
	}
	var u Route
	found := false
	for _, m := range snap.Routes {
		if m.Protocol == Protocol || m.Device == spec.Device || Scoped(m) || m.Type != TypeUnicast || !m.Dst.Contains(ep) {
			continue
		}
		if !found || m.Dst.Bits() > u.Dst.Bits() {
			u, found = m, true
		}
	}
	if !found {
		// Nothing carries the endpoint outside the tunnel right now:
		// Wi-Fi off, or configd between deleting and re-adding the
		// default. Without a pin wireguard-go's own UDP would loop
		// into the tunnel's halves. Keep the pin while it is in the
		// table (the network usually comes back the same); when it is
		// gone too, a blackhole holds its place (wg-quick's darwin.bash
		// does the same) until the next re-plan finds a route.
		host := netip.PrefixFrom(ep, ep.BitLen())
		for _, m := range snap.Routes {
			if m.Protocol == Protocol && m.Dst == host && (m.Type == TypeUnicast || m.Type == TypeBlackhole) && m.Device != spec.Device {
				return Route{Type: m.Type, Dst: host, Gateway: m.Gateway, Device: m.Device}, true
			}
		}
		return Route{Type: TypeBlackhole, Dst: host}, true
	}
	if !u.Gateway.IsValid() && u.Dst.Bits() > max(widest, 1) {
		return Route{}, false
	}
	pin := Route{Type: TypeUnicast, Dst: netip.PrefixFrom(ep, ep.BitLen()), Gateway: u.Gateway, Device: u.Device}
	return pin, true
}
