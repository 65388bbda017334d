package routes_test

import (
	"net/netip"
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
		// What the user suffers while the utun is still there: IPv4 goes
		// into its def1 half; IPv6 still leaves by en0 (the utun's
		// default is scoped). Once the utun is gone, XNU took its routes
		// with it (if_rtdel): only OpenVPN's host route to its server
		// stays, which doctor calls stale.
		dead, want := "en0", []string{"stale-endpoint-route:warning"}
		if alive {
			dead, want = "utun3", []string{"dead-device-route:error", "stale-endpoint-route:warning"}
		}
		goesVia(t, snap, map[string]string{"203.0.113.9": dead, "2001:db8:ffff::200": "en0", "192.168.1.50": "en0"})
		rep := analysis.Analyze(analysis.Input{Snapshot: snap, Now: time.Now()})
		var got []string
		var fixes []routes.Change
		for _, f := range rep.Findings {
			got = append(got, f.ID+":"+f.Severity)
			fixes = append(fixes, f.Fix...)
			if f.ID == "dead-device-route" {
				if !strings.Contains(f.Title, "utun3, which is down") || len(f.Fix) != 5 {
					t.Errorf("alive=%v: %q with %d fixes", alive, f.Title, len(f.Fix))
				}
				if !slices.Contains(f.Commands, "sudo route -n delete -inet6 default fe80::%utun3 -ifscope utun3") {
					t.Errorf("commands %q", f.Commands)
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
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
		goesVia(t, after, map[string]string{"203.0.113.9": "en0", "2001:db8:ffff::200": "en0", "198.51.100.1": "en0"})
		if rep := analysis.Analyze(analysis.Input{Snapshot: after, Now: time.Now()}); len(rep.Findings) != 0 {
			t.Errorf("doctor still finds %v", rep.Findings)
		}
	}
}

func goesVia(t *testing.T, snap *routes.Snapshot, want map[string]string) {
	t.Helper()
	for dst, dev := range want {
		d := analysis.Select(snap, analysis.Flow{Dst: netip.MustParseAddr(dst)})
		if d.Route.Device != dev {
			t.Errorf("%s goes via %s, want %s", dst, d.Route, dev)
		}
	}
}
