package routes

import (
	"os/exec"
	"testing"
)

// BenchmarkIPRouteShow100k is the baseline for BenchmarkSnapshot100k: what
// the `ip` tool itself takes to dump the same 100,000 routes of every table
// (IPv4 and IPv6, as JSON, as a script would read them), so the snapshot's
// cost reads as a ratio to the tool a user would otherwise run.
func BenchmarkIPRouteShow100k(b *testing.B) {
	_, ns := routeNS(b, benchRoutes)
	for b.Loop() {
		for _, fam := range []string{"-4", "-6"} {
			if out, err := exec.Command("ip", "-n", ns.Name, "-j", fam, "route", "show", "table", "all").Output(); err != nil || len(out) == 0 {
				b.Fatalf("ip route show: %v", err)
			}
		}
	}
	b.ReportMetric(float64(benchRoutes), "routes")
}
