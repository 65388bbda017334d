package analysis_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"github.com/clearpath-vpn/clearpath/routes/analysis/kerneldiff"
)

// TestWalkMatchesKernel installs wg-quick's rule set and generated rule
// sets and tables in namespaces and compares analysis.Walk with
// `ip route get fibmatch` for every flow. WALK_DIFF_CASES sets how many
// generated cases (default 20), WALK_DIFF_FLOWS flows per case (default 200).
func TestWalkMatchesKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	cases, flows := envInt("WALK_DIFF_CASES", 20), envInt("WALK_DIFF_FLOWS", 200)
	walk := func(s *routes.Snapshot, f analysis.Flow) kerneldiff.Answer {
		return kerneldiff.FromDecision(analysis.Walk(s, f))
	}
	var total kerneldiff.Result
	wg := kerneldiff.Run(t, kerneldiff.WgQuick(), walk)
	if wg.Compared < 30 || len(wg.Mismatches) > 0 {
		t.Errorf("wg-quick rule set: %d flows compared, mismatches:\n%s", wg.Compared, lines(wg.Mismatches))
	}
	total.Add(wg)
	for seed := range cases {
		total.Add(kerneldiff.Run(t, kerneldiff.Generate(uint64(seed+1), flows), walk))
	}
	t.Logf("%d rule sets (%d ip commands, %d refused by the kernel), %d flows: %d compared, %d skipped %v, %d mismatches",
		total.Cases, total.Commands, total.Refused, total.Flows, total.Compared, total.Skipped, total.SkipReasons, len(total.Mismatches))
	if len(total.Mismatches) > 0 {
		t.Errorf("the walk disagrees with the kernel:\n%s", lines(total.Mismatches))
	}
	if total.Skipped*10 > total.Flows {
		t.Errorf("%d of %d flows skipped: the comparison proves too little", total.Skipped, total.Flows)
	}
}

func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n >= 0 {
		return n
	}
	return def
}

func lines(ss []string) string {
	out := ""
	for i, s := range ss {
		if i == 40 {
			out += "...\n"
			break
		}
		out += "  " + s + "\n"
	}
	return out
}
