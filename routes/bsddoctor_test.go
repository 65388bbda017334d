package routes_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// vpn doctor --fix on a Mac after a Tunnelblick force-quit: the findings
// name the leftovers, and applying their fixes through the macOS backend
// gives back the healthy table, nothing more removed.
func TestMacDoctorFixesTunnelblickLeftoversExactly(t *testing.T) {
	for _, alive := range []bool{false, true} {
		sys := routes.RecordedMac(true, alive)
		snap, err := sys.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		rep := analysis.Analyze(analysis.Input{Snapshot: snap, Now: time.Now()})
		var got []string
		var fixes []routes.Change
		for _, f := range rep.Findings {
			got = append(got, f.ID+":"+f.Severity)
			fixes = append(fixes, f.Fix...)
			if f.ID == "dead-device-route" {
				dev, why := "link#15", "no longer exists"
				if alive {
					dev, why = "utun3", "is down"
				}
				if !strings.Contains(f.Title, dev+", which "+why) || len(f.Fix) != 5 {
					t.Errorf("alive=%v: %q with %d fixes", alive, f.Title, len(f.Fix))
				}
				if alive && !slices.Contains(f.Commands, "sudo route -n delete -inet6 default fe80::%utun3 -ifscope utun3") {
					t.Errorf("commands %q", f.Commands)
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"dead-device-route:error", "stale-endpoint-route:warning"}) {
			t.Fatalf("alive=%v: findings %v", alive, got)
		}
		for _, c := range fixes {
			if err := sys.Apply(c); err != nil {
				t.Fatalf("alive=%v: fix %s: %v", alive, c, err)
			}
		}
		after, _ := sys.Snapshot()
		healthy, _ := routes.RecordedMac(false, alive).Snapshot()
		if d := routes.Compare(healthy, after); !d.Empty() {
			t.Errorf("alive=%v: after --fix: still there %v, removed too %v", alive, d.AddedRoutes, d.RemovedRoutes)
		}
		if rep := analysis.Analyze(analysis.Input{Snapshot: after, Now: time.Now()}); len(rep.Findings) != 0 {
			t.Errorf("doctor still finds %v", rep.Findings)
		}
	}
}
