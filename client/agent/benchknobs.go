package agent

import (
	"os"

	"github.com/clearpath-vpn/clearpath/routes"
)

// Bench/debug knobs: read only so that bench/tunnelbench's ablation rows
// can switch one suspect off at a time and measure what it costs. They are
// not user settings (not in --help, not in the docs' configuration) and
// weaken nothing an attacker can reach: setting them needs the agent's own
// environment, i.e. root.
const (
	// BenchNoFwMarkEnv=1 leaves the WireGuard socket unmarked (fwmark 0).
	// The tunnel still works while the endpoint is outside every pushed
	// prefix: its packets miss our table and fall through to main.
	BenchNoFwMarkEnv = "CLEARPATH_BENCH_NO_FWMARK"
	// BenchNoRulesEnv=1 puts the tunnel's unicast routes into main and
	// adds no policy rule (no throws, no unreachable holds): what a plain
	// `ip route add PREFIX dev wg0` costs per packet.
	BenchNoRulesEnv = "CLEARPATH_BENCH_NO_RULES"
)

func benchKnob(name string) bool { return os.Getenv(name) == "1" }

// benchFwMark is mark, or 0 under BenchNoFwMarkEnv.
func benchFwMark(mark uint32) uint32 {
	if benchKnob(BenchNoFwMarkEnv) {
		return 0
	}
	return mark
}

// benchPlan is plan, or under BenchNoRulesEnv its unicast routes moved to
// main (still protocol 197: journaled, owned, restored) and nothing else.
func benchPlan(plan []routes.Change) []routes.Change {
	if !benchKnob(BenchNoRulesEnv) {
		return plan
	}
	var out []routes.Change
	for _, c := range plan {
		switch {
		case c.Op == routes.OpAddRoute && c.Route != nil && c.Route.Type == routes.TypeUnicast:
			r := *c.Route
			r.Table = 254
			out = append(out, routes.Change{Op: c.Op, Route: &r})
		case c.Op == routes.OpAddRoute || c.Op == routes.OpAddRule:
			// throws, unreachable holds and rules: none without policy routing
		default:
			out = append(out, c)
		}
	}
	return out
}
