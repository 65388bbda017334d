package analysis

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/clearpath-vpn/clearpath/routes"
)

// Step outcomes: what one rule did to the flow.
const (
	StepNoMatch    = "no-match"   // the rule's selectors do not match the flow
	StepNop        = "nop"        // matched a nop rule: on to the next
	StepGoto       = "goto"       // matched a goto rule: jump to its target
	StepGotoNone   = "goto-none"  // goto target missing (or backwards): on to the next
	StepNoRoute    = "no-route"   // the table holds no route for the destination
	StepThrow      = "throw"      // the table's route is a throw: on to the next rule
	StepSuppressed = "suppressed" // route prefix not longer than suppress_prefixlength
	StepUnknown    = "unknown"    // an action the model does not know: skipped
	StepDecides    = "decides"    // this rule (and route) decide
)

// Step is one rule the walk considered.
type Step struct {
	Rule    routes.Rule `json:"rule"`
	Matched bool        `json:"matched"`
	// Why says why the rule's selectors matched the flow or not.
	Why string `json:"why,omitempty"`
	// Table is the table looked up (lookup rules that matched), Route
	// its longest match for the destination (nil: none).
	Table   int           `json:"table,omitempty"`
	Route   *routes.Route `json:"route,omitempty"`
	Outcome string        `json:"outcome"`
}

// String renders the step for a terminal, e.g.
// "32765: from all lookup main suppress_prefixlength 0 -> 0.0.0.0/0 via 192.168.1.1 dev eth0 table main: suppressed (/0 <= 0)".
func (s Step) String() string {
	var b strings.Builder
	b.WriteString(s.Rule.String())
	b.WriteString(" -> ")
	if s.Route != nil {
		b.WriteString(s.Route.String())
		b.WriteString(": ")
	}
	switch s.Outcome {
	case StepNoMatch:
		b.WriteString("no match (" + s.Why + ")")
	case StepNop:
		b.WriteString("nop: on to the next rule")
	case StepGoto:
		fmt.Fprintf(&b, "goto %d", s.Rule.Goto)
	case StepGotoNone:
		fmt.Fprintf(&b, "no rule at priority %d after this one: on to the next rule", s.Rule.Goto)
	case StepNoRoute:
		b.WriteString("no route in table " + routes.TableName(s.Table) + ": on to the next rule")
	case StepThrow:
		b.WriteString("throw: on to the next rule")
	case StepSuppressed:
		fmt.Fprintf(&b, "suppressed (/%d <= suppress_prefixlength %d): on to the next rule", s.Route.Dst.Bits(), s.Rule.SuppressPrefixLen)
	case StepUnknown:
		b.WriteString("action " + s.Rule.Action + " is not modelled: skipped")
	case StepDecides:
		b.WriteString("decides")
	default:
		b.WriteString(s.Outcome)
	}
	return b.String()
}

// Verdict names how the walk ended, in the kernel's terms: the deciding
// route's type ("unicast", "local", "blackhole", ...), "rule-blackhole",
// "rule-unreachable" or "rule-prohibit" when a rule's action decided, or
// "no-route".
func (d Decision) Verdict() string {
	switch {
	case d.NoRoute:
		return "no-route"
	case d.Rule != nil && !d.Route.Dst.IsValid():
		return "rule-" + d.Rule.Action
	case d.Route.Type == "":
		return string(routes.TypeUnicast)
	}
	return string(d.Route.Type)
}

// Walk routes f through snap the way the Linux kernel does
// (fib_rules_lookup), recording each rule it considers:
//
//   - rules of the flow's family in priority order (the kernel's list order
//     among equal priorities); the default rules put the local table first;
//   - a rule matches on iif (a flow sent by this host comes from "lo"), oif,
//     fwmark/mask, from and to; "not" inverts the whole match. An IPv4
//     flow without a source has source 0.0.0.0; an IPv6 one matches no
//     rule with a from prefix;
//   - goto jumps to the first rule at the target priority (forward only),
//     nop goes on; blackhole, unreachable and prohibit actions decide;
//   - a lookup takes the table's longest prefix (lowest metric on a tie);
//     no route or a throw route goes on to the next rule; blackhole,
//     unreachable and prohibit routes decide at once (suppress_prefixlength
//     does not apply to them); any other route is suppressed when its
//     prefix length is <= the rule's suppress_prefixlength (0 included:
//     wg-quick's rule skips only default routes), else it decides.
//
// A snapshot without rules (macOS) is a single longest-prefix match where
// interface-scoped routes apply only to flows bound to their interface.
func Walk(snap *routes.Snapshot, f Flow) Decision {
	if snap == nil || !f.Dst.IsValid() {
		return Decision{NoRoute: true, Refused: true}
	}
	f.Dst = f.Dst.Unmap()
	if f.Src.IsValid() {
		f.Src = f.Src.Unmap()
	}
	v6 := f.Dst.Is6()
	if len(snap.Rules) == 0 {
		r, ok := longest(snap.Routes, v6, f.Dst, func(r routes.Route) bool { return !scoped(r) || r.Device == f.IIF })
		if !ok {
			return Decision{NoRoute: true, Refused: true}
		}
		return Decision{Route: r, Refused: refuses(r.Type)}
	}
	rules := make([]routes.Rule, 0, len(snap.Rules))
	for _, r := range snap.Rules {
		if r.Family == routes.FamilyAll || (r.Family == routes.FamilyV6) == v6 {
			rules = append(rules, r)
		}
	}
	slices.SortStableFunc(rules, func(a, b routes.Rule) int { return a.Priority - b.Priority })
	var d Decision
	for i := 0; i < len(rules); i++ {
		rule := rules[i]
		ok, why := RuleMatches(rule, f)
		st := Step{Rule: rule, Matched: ok, Why: why}
		if !ok {
			st.Outcome = StepNoMatch
			d.Steps = append(d.Steps, st)
			continue
		}
		switch rule.Action {
		case "goto":
			j := -1
			if rule.Goto > rule.Priority { // the kernel refuses backward gotos
				j = slices.IndexFunc(rules[i+1:], func(r routes.Rule) bool { return r.Priority == rule.Goto })
			}
			if j < 0 {
				st.Outcome = StepGotoNone
				d.Steps = append(d.Steps, st)
				continue
			}
			st.Outcome = StepGoto
			d.Steps = append(d.Steps, st)
			i += j // the loop's i++ lands on the target, which must match in turn
			continue
		case "nop":
			st.Outcome = StepNop
			d.Steps = append(d.Steps, st)
			continue
		case "blackhole", "unreachable", "prohibit":
			st.Outcome = StepDecides
			d.Steps = append(d.Steps, st)
			d.Rule, d.Refused = &rule, true
			return d
		case "", "lookup":
		default:
			st.Outcome = StepUnknown
			d.Steps = append(d.Steps, st)
			continue
		}
		st.Table = rule.Table
		r, found := lookupTable(snap.Routes, rule.Table, v6, f.Dst)
		if !found {
			st.Outcome = StepNoRoute
			d.Steps = append(d.Steps, st)
			continue
		}
		st.Route = &r
		switch {
		case r.Type == routes.TypeThrow:
			st.Outcome = StepThrow
		case refuses(r.Type):
			st.Outcome = StepDecides
		case r.Dst.Bits() <= rule.SuppressPrefixLen:
			st.Outcome = StepSuppressed
		default:
			st.Outcome = StepDecides
		}
		d.Steps = append(d.Steps, st)
		if st.Outcome == StepDecides {
			d.Route, d.Rule, d.Refused = r, &rule, refuses(r.Type)
			return d
		}
	}
	d.NoRoute, d.Refused = true, true
	return d
}

// RuleMatches reports whether rule's selectors match f (fib_rule_match),
// and why in words.
func RuleMatches(rule routes.Rule, f Flow) (bool, string) {
	why := ""
	match := true
	miss := func(s string) {
		if match {
			why = s
		}
		match = false
	}
	if rule.IIF != "" {
		iif := f.IIF
		if iif == "" {
			iif = "lo" // locally sent packets come from the loopback device
		}
		if rule.IIF != iif {
			miss(fmt.Sprintf("iif %s, the packet comes in on %s", rule.IIF, iif))
		}
	}
	if rule.OIF != "" && rule.OIF != f.OIF {
		miss(fmt.Sprintf("oif %s, the flow is not bound to it", rule.OIF))
	}
	if rule.FwMark != 0 || rule.FwMask != 0 {
		mask := rule.FwMask
		if mask == 0 {
			mask = 0xffffffff
		}
		if (f.FwMark^rule.FwMark)&mask != 0 {
			miss(fmt.Sprintf("fwmark %#x/%#x, the packet has mark %#x", rule.FwMark, mask, f.FwMark))
		}
	}
	if rule.To.IsValid() && rule.To.Bits() > 0 && !rule.To.Contains(f.Dst) {
		miss(fmt.Sprintf("to %s does not contain %s", rule.To, f.Dst))
	}
	if rule.From.IsValid() && rule.From.Bits() > 0 {
		src := f.Src
		switch {
		case !src.IsValid() && f.Dst.Is6():
			miss(fmt.Sprintf("from %s, the flow has no source address", rule.From))
		case !src.IsValid():
			src = netip.IPv4Unspecified()
			fallthrough
		default:
			if !rule.From.Contains(src) {
				miss(fmt.Sprintf("from %s does not contain %s", rule.From, src))
			}
		}
	}
	if rule.Invert {
		if match {
			return false, "not: every selector matches"
		}
		return true, "not: " + why
	}
	if match {
		return true, "selectors match"
	}
	return false, why
}

// lookupTable is one table's longest-prefix match for dst, lowest metric
// among routes of that length (fib_table_lookup; every route type counts,
// local and broadcast ones included).
func lookupTable(rs []routes.Route, table int, v6 bool, dst netip.Addr) (routes.Route, bool) {
	var best routes.Route
	found := false
	for _, r := range rs {
		if r.Table != table || !r.Dst.IsValid() || r.Dst.Addr().Is6() != v6 || !r.Dst.Contains(dst) {
			continue
		}
		if !found || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric) {
			best, found = r, true
		}
	}
	return best, found
}
