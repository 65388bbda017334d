// Package explain answers "would this user reach that destination, and
// which rule or route decides?" for a gateway: it walks the policy rules and
// routing tables as the kernel does for a packet arriving on the network's
// WireGuard interface from the user's tunnel address, and confirms the
// answer with a real route lookup (`ip route get DST from SRC iif WG`).
//
// The walk (Evaluate) is pure so it can be tested from fixtures; reading the
// live tables and asking the kernel is in explain_linux.go.
package explain

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Route types (rtm_type values).
const (
	TypeUnicast     = 1
	TypeLocal       = 2
	TypeBroadcast   = 3
	TypeBlackhole   = 6
	TypeUnreachable = 7
	TypeProhibit    = 8
	TypeThrow       = 9
)

// Rule is a policy rule as the walk needs it.
type Rule struct {
	Priority int
	Src, Dst netip.Prefix // invalid: any
	IifName  string
	OifName  string
	Mark     uint32
	Invert   bool
	Table    int
	// Action is 1 (lookup table) for the rules this walk follows; other
	// actions (blackhole 6, unreachable 7, prohibit 8) end the walk.
	Action            int
	SuppressPrefixlen int // -1 or 0: none
}

func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:\t", r.Priority)
	if r.Invert {
		b.WriteString("not ")
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, "from %s ", r.Src)
	} else {
		b.WriteString("from all ")
	}
	if r.Dst.IsValid() {
		fmt.Fprintf(&b, "to %s ", r.Dst)
	}
	if r.Mark != 0 {
		fmt.Fprintf(&b, "fwmark %#x ", r.Mark)
	}
	if r.IifName != "" {
		fmt.Fprintf(&b, "iif %s ", r.IifName)
	}
	if r.OifName != "" {
		fmt.Fprintf(&b, "oif %s ", r.OifName)
	}
	switch r.Action {
	case 1:
		fmt.Fprintf(&b, "lookup %s", tableName(r.Table))
	case TypeBlackhole:
		b.WriteString("blackhole")
	case TypeUnreachable:
		b.WriteString("unreachable")
	case TypeProhibit:
		b.WriteString("prohibit")
	default:
		fmt.Fprintf(&b, "action %d", r.Action)
	}
	if r.SuppressPrefixlen > 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixlen)
	}
	return b.String()
}

// Route is a route as the walk needs it.
type Route struct {
	Table    int
	Type     int
	Dst      netip.Prefix // the default route is 0.0.0.0/0 or ::/0
	Gateway  netip.Addr
	Dev      string
	Priority int
}

func (r Route) String() string {
	var b strings.Builder
	switch r.Type {
	case TypeThrow:
		b.WriteString("throw ")
	case TypeBlackhole:
		b.WriteString("blackhole ")
	case TypeUnreachable:
		b.WriteString("unreachable ")
	case TypeProhibit:
		b.WriteString("prohibit ")
	case TypeLocal:
		b.WriteString("local ")
	case TypeBroadcast:
		b.WriteString("broadcast ")
	}
	if r.Dst.Bits() == 0 {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Gateway)
	}
	if r.Dev != "" && r.Dev != "lo" || r.Type == TypeUnicast || r.Type == TypeLocal {
		if r.Dev != "" {
			fmt.Fprintf(&b, " dev %s", r.Dev)
		}
	}
	if r.Table != 254 {
		fmt.Fprintf(&b, " table %s", tableName(r.Table))
	}
	return b.String()
}

func tableName(t int) string {
	switch t {
	case 255:
		return "local"
	case 254:
		return "main"
	case 253:
		return "default"
	}
	return fmt.Sprint(t)
}

// Step is one rule the packet met on its way.
type Step struct {
	Rule Rule
	// Route is the table's longest match (nil: the table had none).
	Route *Route
	// Outcome says what the step did: "no match in table", "throw: next
	// rule", "suppressed (prefix /0 <= 0)", or "decides".
	Outcome string
}

// Decision is where the walk ended.
type Decision struct {
	Steps []Step
	// Rule and Route decide; Route is nil when a rule action decided or
	// no rule matched.
	Rule  *Rule
	Route *Route
	// Forwarded is true when the packet leaves towards a next hop (a
	// unicast route through another interface), false when it is dropped
	// (blackhole, unreachable, prohibit, no route) or returned into the
	// tunnel interface it came from.
	Forwarded bool
	// Local means the destination is one of the gateway's own addresses.
	Local bool
	Why   string
}

// Evaluate walks rules (any order; sorted here) for a packet from src to dst
// arriving on iif, looking routes up in tables.
func Evaluate(rules []Rule, tables map[int][]Route, src, dst netip.Addr, iif string) Decision {
	rs := append([]Rule(nil), rules...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Priority < rs[j].Priority })
	var d Decision
	for _, r := range rs {
		if !matches(r, src, dst, iif) {
			continue
		}
		if r.Action != 1 {
			r := r
			d.Steps = append(d.Steps, Step{Rule: r, Outcome: "decides"})
			d.Rule = &r
			d.Why = fmt.Sprintf("rule %q drops it", strings.ReplaceAll(r.String(), "\t", " "))
			return d
		}
		rt := longest(tables[r.Table], dst)
		switch {
		case rt == nil:
			d.Steps = append(d.Steps, Step{Rule: r, Outcome: "no match in table " + tableName(r.Table)})
			continue
		case rt.Type == TypeThrow:
			d.Steps = append(d.Steps, Step{Rule: r, Route: rt, Outcome: "throw: on to the next rule"})
			continue
		case r.SuppressPrefixlen > 0 && rt.Dst.Bits() <= r.SuppressPrefixlen:
			d.Steps = append(d.Steps, Step{Rule: r, Route: rt, Outcome: fmt.Sprintf("suppressed (prefix /%d <= %d)", rt.Dst.Bits(), r.SuppressPrefixlen)})
			continue
		}
		r := r
		d.Steps = append(d.Steps, Step{Rule: r, Route: rt, Outcome: "decides"})
		d.Rule, d.Route = &r, rt
		switch rt.Type {
		case TypeUnicast:
			if rt.Dev == iif {
				d.Why = fmt.Sprintf("route %q sends it back into %s", rt, iif)
			} else {
				d.Forwarded = true
				d.Why = fmt.Sprintf("route %q forwards it", rt)
			}
		case TypeLocal:
			d.Local, d.Forwarded = true, true
			d.Why = fmt.Sprintf("%s is the gateway's own address (route %q)", dst, rt)
		default:
			d.Why = fmt.Sprintf("route %q drops it", rt)
		}
		return d
	}
	d.Why = "no rule leads to a route: the kernel has no route for it"
	return d
}

func matches(r Rule, src, dst netip.Addr, iif string) bool {
	m := true
	if r.Src.IsValid() && !r.Src.Contains(src) {
		m = false
	}
	if r.Dst.IsValid() && !r.Dst.Contains(dst) {
		m = false
	}
	if r.IifName != "" && r.IifName != iif {
		m = false
	}
	if r.OifName != "" {
		m = false // an input lookup has no output interface
	}
	if r.Mark != 0 {
		m = false // packets from the tunnel carry no mark
	}
	if r.Invert {
		m = !m
	}
	return m
}

// longest returns the longest-prefix match for dst (lowest priority on a tie).
func longest(routes []Route, dst netip.Addr) *Route {
	var best *Route
	for i := range routes {
		r := &routes[i]
		if !r.Dst.IsValid() || r.Dst.Addr().Is4() != dst.Is4() || !r.Dst.Contains(dst) {
			continue
		}
		if r.Type == TypeBroadcast {
			continue
		}
		if best == nil || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Priority < best.Priority) {
			best = r
		}
	}
	return best
}
