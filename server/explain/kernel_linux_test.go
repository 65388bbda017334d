package explain_test

import (
	"os"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"github.com/clearpath-vpn/clearpath/routes/analysis/kerneldiff"
	"github.com/clearpath-vpn/clearpath/server/explain"
)

// TestEvaluateDisagreesWithKernel runs explain.Evaluate through the same
// differential check as analysis.Walk (TestWalkMatchesKernel), on the
// flows Evaluate models (received on an interface, no mark), and shows
// that it disagrees with the kernel: wg-quick's suppress_prefixlength 0
// first. It is deleted with Evaluate.
func TestEvaluateDisagreesWithKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	evaluate := func(s *routes.Snapshot, f analysis.Flow) kerneldiff.Answer {
		var rules []explain.Rule
		tables := map[int][]explain.Route{}
		for _, r := range s.Rules {
			if (r.Family == routes.FamilyV6) != f.Dst.Is6() {
				continue
			}
			act := map[string]int{"lookup": 1, "blackhole": explain.TypeBlackhole, "unreachable": explain.TypeUnreachable, "prohibit": explain.TypeProhibit, "goto": 2, "nop": 3}[r.Action]
			rules = append(rules, explain.Rule{Priority: r.Priority, Src: r.From, Dst: r.To, IifName: r.IIF, OifName: r.OIF, Mark: r.FwMark, Invert: r.Invert, Table: r.Table, Action: act, SuppressPrefixlen: r.SuppressPrefixLen})
		}
		types := map[routes.RouteType]int{routes.TypeUnicast: explain.TypeUnicast, routes.TypeLocal: explain.TypeLocal, routes.TypeBroadcast: explain.TypeBroadcast,
			routes.TypeBlackhole: explain.TypeBlackhole, routes.TypeUnreachable: explain.TypeUnreachable, routes.TypeProhibit: explain.TypeProhibit, routes.TypeThrow: explain.TypeThrow}
		for _, r := range s.Routes {
			tables[r.Table] = append(tables[r.Table], explain.Route{Table: r.Table, Type: types[r.Type], Dst: r.Dst, Gateway: r.Gateway, Dev: r.Device, Priority: r.Metric})
		}
		d := explain.Evaluate(rules, tables, f.Src, f.Dst, f.IIF)
		switch {
		case d.Route != nil:
			names := map[int]string{}
			for k, v := range types {
				names[v] = string(k)
			}
			return kerneldiff.Answer{Verdict: names[d.Route.Type], Table: d.Route.Table, Dst: d.Route.Dst, Device: d.Route.Dev}
		case d.Rule != nil:
			return kerneldiff.Answer{Verdict: map[int]string{explain.TypeBlackhole: "rule-blackhole", explain.TypeUnreachable: "rule-unreachable", explain.TypeProhibit: "rule-prohibit", 2: "rule-goto", 3: "rule-nop"}[d.Rule.Action]}
		}
		return kerneldiff.Answer{Verdict: "no-route"}
	}
	inDomain := func(c kerneldiff.Case) kerneldiff.Case {
		var fs []analysis.Flow
		for _, f := range c.Flows {
			if f.IIF != "" && f.FwMark == 0 {
				fs = append(fs, f)
			}
		}
		c.Flows = fs
		return c
	}
	var total kerneldiff.Result
	wg := kerneldiff.Run(t, inDomain(kerneldiff.WgQuick()), evaluate)
	t.Logf("wg-quick: %d flows compared, %d mismatches:\n%v", wg.Compared, len(wg.Mismatches), wg.Mismatches)
	total.Add(wg)
	for seed := range 20 {
		total.Add(kerneldiff.Run(t, inDomain(kerneldiff.Generate(uint64(seed+1), 80)), evaluate))
	}
	t.Logf("Evaluate: %d rule sets, %d flows compared, %d skipped, %d mismatches", total.Cases, total.Compared, total.Skipped, len(total.Mismatches))
	for i, m := range total.Mismatches {
		if i < 15 {
			t.Log(m)
		}
	}
	if len(wg.Mismatches) == 0 || len(total.Mismatches) == 0 {
		t.Errorf("Evaluate agreed with the kernel everywhere: the check proves nothing")
	}
}
