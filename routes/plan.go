package routes

import (
	"cmp"
	"net/netip"
	"slices"
)

// TunnelSpec is the desired state of a tunnel's routing.
type TunnelSpec struct {
	Device string
	// Prefixes are routed into the tunnel (0.0.0.0/0 or ::/0 = full tunnel).
	Prefixes []netip.Prefix
	// Addresses are the tunnel's own addresses (they decide whether IPv6
	// can go through it at all).
	Addresses []netip.Prefix
	// BlockLAN drops the LAN exceptions of a full tunnel.
	BlockLAN bool
	// RouteLAN lets pushed prefixes take the LAN into the tunnel (the
	// user's --route-lan); without it the networks this machine is
	// attached to, its default router and Resolvers stay outside for
	// pushes that equal or contain them, and pushes inside a connected
	// network are not routed.
	RouteLAN bool
	// Resolvers are the DNS servers in use (resolv.conf).
	Resolvers []netip.Addr
	// Endpoint is the WireGuard peer's address. macOS pins it with a host
	// route outside the tunnel; Linux needs no route for it (the socket's
	// fwmark skips our table).
	Endpoint netip.Addr
	// Hold keeps a full tunnel's block while its device changes (a new
	// `vpn up` from the fail-closed "blocked" state): every full family
	// also gets `unreachable default metric HoldMetric` in our table, so
	// when the old device (and its routes) goes, traffic is refused
	// instead of falling through to main, until the new device's routes
	// (metric 0, preferred) are in. Linux only.
	Hold bool
}

// HoldMetric is the metric of the unreachable defaults of TunnelSpec.Hold:
// above the kernel's IPv6 default (1024), so a device route always wins.
const HoldMetric = 0x7411

var default6 = netip.MustParsePrefix("::/0")

// FullTunnel reports whether spec captures all traffic of the family of p.
func (s TunnelSpec) full(v6 bool) bool {
	for _, p := range s.Prefixes {
		if p.Bits() == 0 && p.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

func (s TunnelSpec) hasV6() bool {
	for _, a := range s.Addresses {
		if a.Addr().Is6() {
			return true
		}
	}
	return false
}

// PlanTunnel computes every route and rule of the tunnel, given the
// machine's current routes (snap). It is pure: the agent reconciles the
// kernel to its result whenever links, addresses or routes change.
//
//   - each prefix becomes a route into the tunnel in our table;
//   - every route of main more specific than a covering tunnel prefix gets a
//     `throw` in our table, so longest-prefix match holds across both tables
//     (a LAN /24 beats a pushed /8; a pushed /24 beats a local /8 by itself);
//   - a full IPv4 tunnel without IPv6 in the tunnel gets `unreachable ::/0`,
//     so IPv6 fails at once instead of leaking past the tunnel;
//   - `from <local address> lookup main` keeps replies to inbound sessions
//     (SSH to the LAN or public address) on the path they came in on;
//   - `not fwmark FwMark lookup Table` sends everything else to our table;
//     the WireGuard socket's own packets carry the mark and skip it.
//
// On macOS (snap.OS "darwin") there are neither tables nor rules: see planMac.
func PlanTunnel(snap *Snapshot, spec TunnelSpec) []Change {
	if snap != nil && snap.OS == "darwin" {
		return planMac(snap, spec)
	}
	var routes []Route
	add := func(r Route) {
		r.Table, r.Protocol = Table, Protocol
		if r.Dst.Addr().Is6() {
			r.Family = FamilyV6
		} else {
			r.Family = FamilyV4
		}
		routes = append(routes, r)
	}
	lan := lanDecisions(snap, spec)
	var prefixes []netip.Prefix
	for _, p := range spec.Prefixes {
		if _, inside := lan.inside[p.Masked()]; !inside {
			prefixes = append(prefixes, p.Masked())
		}
	}
	refuse6 := false // IPv6 to the internet is refused, not routed
	specFull := spec
	specFull.Prefixes = prefixes
	if specFull.full(false) && !spec.hasV6() && !specFull.full(true) {
		add(Route{Type: TypeUnreachable, Dst: default6})
		refuse6 = true
	}
	for _, p := range prefixes {
		if p.Addr().Is6() && p.Bits() == 0 && !spec.hasV6() {
			add(Route{Type: TypeUnreachable, Dst: p})
			refuse6 = true
			continue
		}
		r := Route{Type: TypeUnicast, Dst: p, Device: spec.Device, Scope: 253}
		if p.Addr().Is6() {
			r.Scope = 0 // the kernel keeps IPv6 routes at universe scope
		}
		add(r)
	}
	if spec.Hold {
		for _, v6 := range []bool{false, true} {
			if !specFull.full(v6) || (v6 && refuse6) {
				continue // not captured, or refused already
			}
			dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if v6 {
				dst = default6
			}
			add(Route{Type: TypeUnreachable, Dst: dst, Metric: HoldMetric})
		}
	}
	for _, d := range lan.throws {
		add(Route{Type: TypeThrow, Dst: d})
	}
	slices.SortStableFunc(routes, func(a, b Route) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Type, b.Type), a.Dst.Addr().Compare(b.Dst.Addr()), cmp.Compare(a.Dst.Bits(), b.Dst.Bits()))
	})
	var out []Change
	used := map[Family]bool{} // families with routes in our table: only they need rules
	for i := range routes {
		out = append(out, Change{Op: OpAddRoute, Route: &routes[i]})
		used[routes[i].Family] = true
	}
	for _, a := range localAddresses(snap, spec.Device) {
		fam := FamilyV4
		if a.Is6() {
			fam = FamilyV6
		}
		if !used[fam] {
			continue
		}
		r := Rule{Family: fam, Priority: PrioritySourceRules, From: netip.PrefixFrom(a, a.BitLen()), Table: 254,
			SuppressPrefixLen: -1, Protocol: Protocol, Action: "lookup"}
		if fam == FamilyV6 && refuse6 {
			// When a route lookup fails, IPv6 picks a source address and
			// looks up again with it: this rule would then send a new
			// connection out by main's default route, a leak. Ignoring
			// main's default keeps replies to the LAN and to more specific
			// routes on their path and refuses IPv6 to the internet.
			r.SuppressPrefixLen = 0
		}
		out = append(out, Change{Op: OpAddRule, Rule: &r})
	}
	for _, fam := range []Family{FamilyV4, FamilyV6} {
		if !used[fam] {
			continue
		}
		r := Rule{Family: fam, Priority: PriorityTunnelRule, FwMark: FwMark, Invert: true, Table: Table,
			SuppressPrefixLen: -1, Protocol: Protocol, Action: "lookup"}
		out = append(out, Change{Op: OpAddRule, Rule: &r})
	}
	return out
}

// localAddresses are the machine's own global addresses outside the tunnel,
// sorted: replies from them must leave the way their requests came.
func localAddresses(snap *Snapshot, tunnelDev string) []netip.Addr {
	if snap == nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range snap.Addresses {
		ip := a.Prefix.Addr()
		if a.Device == tunnelDev || a.Device == "lo" || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
			continue
		}
		if !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// TunnelChanges is PlanTunnel without knowledge of the machine's routes:
// routes into dev and the tunnel rules only.
func TunnelChanges(dev string, prefixes []netip.Prefix) []Change {
	return PlanTunnel(nil, TunnelSpec{Device: dev, Prefixes: prefixes, Addresses: []netip.Prefix{netip.MustParsePrefix("::1/128")}})
}

// Overlap is one pushed prefix against a route of the machine's own.
type Overlap struct {
	Pushed netip.Prefix `json:"pushed"`
	Local  Route        `json:"local"`
	// Winner is "lan" when the local destination stays out of the tunnel
	// and "tunnel" otherwise.
	Winner string `json:"winner"`
	// Reason says why the LAN won: ReasonConnected, ReasonRouter,
	// ReasonResolver or ReasonMoreSpecific.
	Reason string `json:"reason,omitempty"`
}

// Overlaps lists every pushed prefix that overlaps a route of main, and the
// decisions about the default router and the resolvers, with who wins and
// why. Pairs are found through prefix maps (no pairwise comparison).
func Overlaps(snap *Snapshot, spec TunnelSpec) []Overlap {
	if snap == nil {
		return nil
	}
	linux := snap.OS != "darwin"
	mainTable := 254
	if !linux {
		mainTable = 0 // the only table
	}
	connected := connectedFn(snap, spec.Device)
	decide := func(p netip.Prefix, m Route) Overlap {
		o := Overlap{Pushed: p, Local: m, Winner: "tunnel"}
		switch {
		case spec.BlockLAN && p.Bits() == 0:
		case linux && !spec.RouteLAN && connected(m):
			o.Winner, o.Reason = "lan", ReasonConnected
		case m.Dst.Bits() > p.Bits():
			o.Winner, o.Reason = "lan", ReasonMoreSpecific
		}
		if !linux && m.Dst == p.Masked() {
			o.Winner = "lan" // one route per prefix: the machine's own keeps it (planMac)
		}
		return o
	}
	pushes := newPrefixSet[netip.Prefix]()
	for _, p := range spec.Prefixes {
		pushes.add(p, p)
	}
	locals := newPrefixSet[Route]()
	var out []Overlap
	for _, m := range snap.Routes {
		if m.Table != mainTable || Scoped(m) || m.Device == spec.Device || m.Type != TypeUnicast || m.Protocol == Protocol {
			continue
		}
		if m.Dst.Addr().IsLinkLocalUnicast() || m.Dst.Bits() == 0 {
			continue // the default route overlaps everything; not news
		}
		locals.add(m.Dst, m)
		pushes.containing(m.Dst, true, func(_ netip.Prefix, p netip.Prefix) bool {
			out = append(out, decide(p, m))
			return true
		})
	}
	for _, p := range spec.Prefixes {
		locals.containing(p.Masked(), false, func(_ netip.Prefix, m Route) bool {
			out = append(out, decide(p, m))
			return true
		})
	}
	if linux {
		out = append(out, lanDecisions(snap, spec).hosts...)
	}
	slices.SortStableFunc(out, func(a, b Overlap) int {
		return cmp.Or(a.Pushed.Addr().Compare(b.Pushed.Addr()), cmp.Compare(a.Pushed.Bits(), b.Pushed.Bits()),
			a.Local.Dst.Addr().Compare(b.Local.Dst.Addr()), cmp.Compare(a.Local.Dst.Bits(), b.Local.Dst.Bits()))
	})
	return out
}
