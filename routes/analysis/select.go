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
	IIF    string     // optional
}

// Decision is where a flow goes and why.
type Decision struct {
	Route routes.Route
	// Rule is the policy rule whose table held the route (nil on macOS).
	Rule *routes.Rule
	// Refused is set when the flow ends in a blackhole, unreachable or
	// prohibit route or rule, or finds no route at all.
	Refused bool
	NoRoute bool
}

// Select routes f through snap the way the kernel would: rules in priority
// order (from, to, fwmark/mask, iif, not), longest-prefix match in each
// table, `throw` falling through to the next rule, suppress_prefixlength
// honoured. On macOS (no rules) it is a single longest-prefix match where
// interface-scoped routes apply only to flows bound to their interface.
func Select(snap *routes.Snapshot, f Flow) Decision {
	v6 := f.Dst.Is6()
	if len(snap.Rules) == 0 {
		r, ok := longest(snap.Routes, v6, f.Dst, func(r routes.Route) bool { return !scoped(r) || r.Device == f.IIF })
		if !ok {
			return Decision{NoRoute: true, Refused: true}
		}
		return Decision{Route: r, Refused: refuses(r.Type)}
	}
	rules := slices.Clone(snap.Rules)
	slices.SortStableFunc(rules, func(a, b routes.Rule) int { return a.Priority - b.Priority })
	for i := range rules {
		rule := rules[i]
		if (rule.Family == routes.FamilyV6) != v6 || !ruleMatches(rule, f) {
			continue
		}
		switch rule.Action {
		case "blackhole", "unreachable", "prohibit":
			return Decision{Rule: &rule, Refused: true}
		case "", "lookup":
		default:
			continue
		}
		r, ok := longest(snap.Routes, v6, f.Dst, func(r routes.Route) bool { return r.Table == rule.Table })
		if !ok {
			continue
		}
		if rule.SuppressPrefixLen >= 0 && r.Dst.Bits() <= rule.SuppressPrefixLen {
			continue
		}
		if r.Type == routes.TypeThrow {
			continue
		}
		return Decision{Route: r, Rule: &rule, Refused: refuses(r.Type)}
	}
	return Decision{NoRoute: true, Refused: true}
}

func scoped(r routes.Route) bool {
	return slices.Contains(r.Flags, "IFSCOPE") || slices.Contains(r.Flags, "I")
}

func refuses(t routes.RouteType) bool {
	return t == routes.TypeBlackhole || t == routes.TypeUnreachable || t == routes.TypeProhibit
}

func ruleMatches(r routes.Rule, f Flow) bool {
	match := true
	if r.From.IsValid() && r.From.Bits() > 0 && (!f.Src.IsValid() || !r.From.Contains(f.Src)) {
		match = false
	}
	if r.To.IsValid() && r.To.Bits() > 0 && !r.To.Contains(f.Dst) {
		match = false
	}
	if r.FwMark != 0 || r.FwMask != 0 {
		mask := r.FwMask
		if mask == 0 {
			mask = 0xffffffff
		}
		if f.FwMark&mask != r.FwMark&mask {
			match = false
		}
	}
	if r.IIF != "" && r.IIF != f.IIF && !(r.IIF == "lo" && f.IIF == "") {
		match = false
	}
	if r.Invert {
		return !match
	}
	return match
}

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
