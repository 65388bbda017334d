package analysis

import (
	"fmt"
	"net/netip"

	"github.com/clearpath-vpn/clearpath/routes"
)

// endpointPins finds a host route pinning a VPN endpoint to a router this
// machine no longer has: after sleep/wake or a change of network the pin
// (added by a VPN client, a script, or the previous network) still says
// "via the old router", which is not on any network of its device now,
// so the tunnel's own packets go nowhere. For ClearPath's endpoint a pin
// via a router that is no longer a default router is stale too. The fix
// re-pins via the current default router (or, with no tunnel that needs
// the pin, removes it). Linux only: on macOS ClearPath's own pin follows
// each network change (plan_bsd.go) and other pins are interface-scoped.
func (c *checker) endpointPins() {
	if c.darwin() {
		return
	}
	for _, r := range c.snap.Routes {
		if !r.Dst.IsSingleIP() || !r.Gateway.IsValid() || r.Table == 255 || r.Type != routes.TypeUnicast ||
			r.Protocol == 2 || r.Dst.Addr().IsPrivate() || r.Dst.Addr().IsLoopback() || c.tunnelLike(r.Device) {
			continue
		}
		if r.Protocol == routes.Protocol && c.in.Agent == nil {
			continue // reported as leftover-owned
		}
		ours := c.in.Agent != nil && c.in.Agent.Endpoint.Addr() == r.Dst.Addr()
		def, hasDef := c.currentDefault(r.Dst.Addr().Is6())
		offLink := !c.onLink(r.Gateway, r.Device)
		if !offLink && !(ours && hasDef && def.Gateway != r.Gateway) {
			continue
		}
		why := fmt.Sprintf("router %s is not on any network of %s now", r.Gateway, r.Device)
		if !offLink {
			why = fmt.Sprintf("router %s is no longer this network's default router", r.Gateway)
		}
		sev, owner := Warning, "unknown (a VPN client or the previous network)"
		if ours {
			sev, owner = Error, "clearpath"
		}
		f := Finding{ID: "endpoint-pin-stale", Severity: sev, Owner: owner,
			Title:    fmt.Sprintf("the route to %s is pinned to an old router: %s", r.Dst.Addr(), why),
			Evidence: []Evidence{routeEv(r), {Kind: "address", Text: c.addressesOf(r.Device)}}}
		if hasDef {
			f.Evidence = append(f.Evidence, routeEv(def))
		}
		switch {
		case hasDef && (ours || c.liveTunnel()):
			pin := routes.Route{Family: r.Family, Table: r.Table, Type: routes.TypeUnicast, Dst: r.Dst, Gateway: def.Gateway,
				Device: def.Device, Metric: r.Metric, Protocol: r.Protocol}
			f.Fix, f.Fixable = []routes.Change{delRoute(r), {Op: routes.OpAddRoute, Route: &pin}}, true
			f.Explanation = fmt.Sprintf("A VPN pins its server's address to the router outside the tunnel. After a change of network "+
				"(or sleep and wake) this pin still points at %s, so the tunnel's own packets to %s go nowhere and the tunnel "+
				"looks connected but carries nothing. Re-pinning it via the current default router %s (dev %s) fixes it.",
				r.Gateway, r.Dst.Addr(), def.Gateway, def.Device)
		default:
			f.Fix, f.Fixable = []routes.Change{delRoute(r)}, hasDef || offLink
			f.Explanation = fmt.Sprintf("A host route to %s via %s, a router of a network this machine has left. No tunnel needs "+
				"it now and it makes %s unreachable; removing it lets the default route take over.", r.Dst.Addr(), r.Gateway, r.Dst.Addr())
		}
		c.add(f)
	}
}

// currentDefault is the main table's preferred default route of a family
// through a physical (non-tunnel) device: the router a pin should use.
func (c *checker) currentDefault(v6 bool) (routes.Route, bool) {
	var best routes.Route
	found := false
	for _, d := range c.defaultRoutes(v6) {
		if !d.Gateway.IsValid() || c.tunnelLike(d.Device) || len(d.Flags) > 0 {
			continue
		}
		if dead, _ := c.deviceDead(d.Device); dead {
			continue
		}
		if !found || d.Metric < best.Metric {
			best, found = d, true
		}
	}
	return best, found
}

// onLink reports whether gw is reachable directly on dev: inside a
// network of one of dev's addresses, or IPv6 link-local.
func (c *checker) onLink(gw netip.Addr, dev string) bool {
	if gw.IsLinkLocalUnicast() {
		return true
	}
	for _, a := range c.snap.Addresses {
		if a.Device == dev && a.Prefix.Masked().Contains(gw) {
			return true
		}
	}
	// An on-link route for it (`ip route add 10.9.9.1 dev eth0`) counts.
	for _, r := range c.snap.Routes {
		if r.Device == dev && !r.Gateway.IsValid() && r.Type == routes.TypeUnicast && r.Dst.Contains(gw) && r.Table != 255 {
			return true
		}
	}
	return false
}

func (c *checker) addressesOf(dev string) string {
	var ps []netip.Prefix
	for _, a := range c.snap.Addresses {
		if a.Device == dev && !a.Prefix.Addr().IsLinkLocalUnicast() {
			ps = append(ps, a.Prefix)
		}
	}
	return fmt.Sprintf("%s has %s", dev, joinPrefixes(ps))
}
