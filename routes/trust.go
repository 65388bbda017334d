package routes

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// What a client takes from a gateway is checked here against the machine's
// own state: pure functions over a snapshot (see gwapi for the checks that
// need no snapshot).

// connectedFn returns a test for "m is a route of main to a network this
// machine is attached to": on-link (no gateway), unicast, not ours, not the
// tunnel's, and holding an address of this machine on the same device
// (what the kernel adds for an address; an on-link static route to a
// network without one of our addresses is not the LAN).
func connectedFn(snap *Snapshot, dev string) func(Route) bool {
	addrs := map[string][]netip.Addr{}
	if snap != nil {
		for _, a := range snap.Addresses {
			addrs[a.Device] = append(addrs[a.Device], a.Prefix.Addr())
		}
	}
	return func(m Route) bool {
		if m.Table != 254 || m.Type != TypeUnicast || m.Gateway.IsValid() || m.Protocol == Protocol || m.Device == dev ||
			m.Device == "lo" || m.Dst.Bits() == 0 || m.Dst.Addr().IsLinkLocalUnicast() || m.Dst.Addr().IsMulticast() || m.Dst.Addr().IsLoopback() {
			return false
		}
		for _, a := range addrs[m.Device] {
			if m.Dst.Contains(a) {
				return true
			}
		}
		return false
	}
}

// Connected returns the networks this machine is attached to outside the
// tunnel device dev (main's on-link routes), without duplicates.
func Connected(snap *Snapshot, dev string) []netip.Prefix {
	if snap == nil {
		return nil
	}
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	connected := connectedFn(snap, dev)
	for _, m := range snap.Routes {
		if connected(m) && !seen[m.Dst] {
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
	connected := connectedFn(snap, dev)
	for _, p := range addrs {
		a := p.Addr()
		for _, l := range snap.Addresses {
			if l.Device != dev && l.Prefix.Addr() == a {
				return fmt.Errorf("tunnel address %s is already an address of %s on this machine", a, l.Device)
			}
		}
		for _, m := range snap.Routes {
			if connected(m) && m.Dst.Contains(a) {
				return fmt.Errorf("tunnel address %s lies in %s, a network this machine is attached to (%s)", a, m.Dst, m.Device)
			}
		}
	}
	return nil
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Covers reports whether prefixes of the family (v6 or not) together cover
// every address of it, as 0.0.0.0/0 or the two halves 0.0.0.0/1 +
// 128.0.0.0/1 do. Sort and sweep: O(n log n).
func Covers(prefixes []netip.Prefix, v6 bool) bool {
	var fam []netip.Prefix
	for _, p := range prefixes {
		if p.IsValid() && p.Addr().Is6() == v6 {
			fam = append(fam, p.Masked())
		}
	}
	slices.SortFunc(fam, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	next := netip.IPv4Unspecified() // the lowest address not covered yet
	if v6 {
		next = netip.IPv6Unspecified()
	}
	for _, p := range fam {
		if next.Less(p.Addr()) {
			return false // a gap before p
		}
		last := lastAddr(p)
		if !last.Less(next) {
			if !last.Next().IsValid() {
				return true // reached the family's top
			}
			next = last.Next()
		}
	}
	return false
}

// Consent keeps what a gateway may route into the tunnel without the
// user's say: unless allTraffic (the user's --all-traffic), a default route
// (any /0) is dropped, and so is a set of prefixes that together capture a
// whole family (two /1s, say): its widest prefixes are dropped until it no
// longer does. It returns what it kept and what it dropped, in input order.
func Consent(prefixes []netip.Prefix, allTraffic bool) (kept, dropped []netip.Prefix) {
	if allTraffic {
		return slices.Clone(prefixes), nil
	}
	drop := map[netip.Prefix]bool{}
	for _, v6 := range []bool{false, true} {
		var fam []netip.Prefix
		for _, p := range prefixes {
			if p.Addr().Is6() != v6 {
				continue
			}
			if p.Bits() == 0 {
				drop[p] = true
				continue
			}
			fam = append(fam, p)
		}
		slices.SortStableFunc(fam, func(a, b netip.Prefix) int { return a.Bits() - b.Bits() })
		for len(fam) > 0 && Covers(fam, v6) {
			drop[fam[0]] = true
			fam = fam[1:]
		}
	}
	for _, p := range prefixes {
		if drop[p] {
			dropped = append(dropped, p)
		} else {
			kept = append(kept, p)
		}
	}
	return kept, dropped
}

// ConsentNotice is the one line that tells the user what Consent dropped.
func ConsentNotice(dropped []netip.Prefix) string {
	if len(dropped) == 0 {
		return ""
	}
	s := make([]string, len(dropped))
	for i, p := range dropped {
		s[i] = p.String()
	}
	return fmt.Sprintf("the gateway pushed %s, which would send all traffic through the tunnel; not routed (use --all-traffic to accept)", strings.Join(s, ", "))
}

// InstalledFullTunnel reports, per family, whether the routes installed
// into the tunnel (ours, unicast to dev or unreachable) capture every
// address: what "full tunnel" means in status, tray and doctor, derived
// from the kernel rather than from a flag.
func InstalledFullTunnel(owned []Route, dev string) (v4, v6 bool) {
	var caps []netip.Prefix
	for _, r := range owned {
		if r.Protocol != Protocol {
			continue
		}
		if (r.Type == TypeUnicast && r.Device == dev) || r.Type == TypeUnreachable {
			caps = append(caps, r.Dst)
		}
	}
	return Covers(caps, false), Covers(caps, true)
}
