package routes

import (
	"fmt"
	"net/netip"
)

// What a client takes from a gateway is checked here against the machine's
// own state: pure functions over a snapshot (see gwapi for the checks that
// need no snapshot).

// connected reports whether m is a route of main to a network this machine
// is attached to: on-link (no gateway), unicast, not ours, not the tunnel's.
func connected(m Route, dev string) bool {
	return m.Table == 254 && m.Type == TypeUnicast && !m.Gateway.IsValid() && m.Protocol != Protocol && m.Device != dev &&
		m.Device != "lo" && m.Dst.Bits() > 0 && !m.Dst.Addr().IsLinkLocalUnicast() && !m.Dst.Addr().IsMulticast() && !m.Dst.Addr().IsLoopback()
}

// Connected returns the networks this machine is attached to outside the
// tunnel device dev (main's on-link routes), without duplicates.
func Connected(snap *Snapshot, dev string) []netip.Prefix {
	if snap == nil {
		return nil
	}
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, m := range snap.Routes {
		if connected(m, dev) && !seen[m.Dst] {
			seen[m.Dst] = true
			out = append(out, m.Dst)
		}
	}
	return out
}

// Routers returns the gateways of main's default routes outside dev.
func Routers(snap *Snapshot, dev string) []netip.Addr {
	if snap == nil {
		return nil
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, m := range snap.Routes {
		if m.Table == 254 && m.Dst.Bits() == 0 && m.Gateway.IsValid() && m.Device != dev && m.Protocol != Protocol && !seen[m.Gateway] {
			seen[m.Gateway] = true
			out = append(out, m.Gateway)
		}
	}
	return out
}

// CheckTunnelAddresses refuses tunnel addresses that collide with the
// machine's own: an address some link already has, or one inside a network
// this machine is attached to (the LAN's hosts would become unreachable,
// or the tunnel address would shadow one of them).
func CheckTunnelAddresses(snap *Snapshot, addrs []netip.Prefix, dev string) error {
	if snap == nil {
		return nil
	}
	for _, p := range addrs {
		a := p.Addr()
		for _, l := range snap.Addresses {
			if l.Device != dev && l.Prefix.Addr() == a {
				return fmt.Errorf("tunnel address %s is already an address of %s on this machine", a, l.Device)
			}
		}
		for _, m := range snap.Routes {
			if connected(m, dev) && m.Dst.Contains(a) {
				return fmt.Errorf("tunnel address %s lies in %s, a network this machine is attached to (%s)", a, m.Dst, m.Device)
			}
		}
	}
	return nil
}
