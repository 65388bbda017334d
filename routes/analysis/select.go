package analysis

import (
	"net/netip"
	"slices"

	"github.com/clearpath-vpn/clearpath/routes"
)

// Flow is one packet to route: what the kernel would be asked.
type Flow struct {
	Dst    netip.Addr
	Src    netip.Addr // optional
	FwMark uint32     // optional
	IIF    string     // optional: as if received on this interface ("" = sent by this host)
	OIF    string     // optional: bound to this output interface
}

// Decision is where a flow goes and why.
type Decision struct {
	Route routes.Route
	// Rule is the policy rule whose table held the route, or whose action
	// (blackhole, unreachable, prohibit) decided (nil on macOS).
	Rule *routes.Rule
	// Refused is set when the flow ends in a blackhole, unreachable or
	// prohibit route or rule, or finds no route at all.
	Refused bool
	NoRoute bool
	// Steps are the rules the walk considered, in order (empty on macOS).
	Steps []Step
}

// Select routes f through snap the way the kernel would (see Walk).
func Select(snap *routes.Snapshot, f Flow) Decision { return Walk(snap, f) }

func scoped(r routes.Route) bool {
	return slices.Contains(r.Flags, "IFSCOPE") || slices.Contains(r.Flags, "I")
}

func refuses(t routes.RouteType) bool {
	return t == routes.TypeBlackhole || t == routes.TypeUnreachable || t == routes.TypeProhibit || t == routes.TypeOther
}

// longest is the macOS lookup: one longest-prefix match over every route
// that keep accepts, lowest metric on a tie; broadcast, multicast and
// other entries of the routing socket are not destinations.
func longest(rs []routes.Route, v6 bool, dst netip.Addr, keep func(routes.Route) bool) (routes.Route, bool) {
	var best routes.Route
	found := false
	for _, r := range rs {
		if !r.Dst.IsValid() || r.Dst.Addr().Is6() != v6 || !r.Dst.Contains(dst) || !keep(r) {
			continue
		}
		switch r.Type {
		case routes.TypeBroadcast, routes.TypeMulticast, routes.TypeAnycast, routes.TypeOther:
			continue
		}
		if !found || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric) {
			best, found = r, true
		}
	}
	return best, found
}
