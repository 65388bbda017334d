package routes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
)

// The size the issue asks the engine to handle: a router-like table.
const benchRoutes = 100_000

// routeNS returns a namespace holding n routes (nine in ten IPv4 /32s via the
// LAN gateway in main, one in ten IPv6 /64s in table 100) and its System.
func routeNS(b *testing.B, n int) (System, *netnstest.NS) {
	b.Helper()
	ns := netnstest.New(b)
	var batch strings.Builder
	for i := range n {
		if i%10 == 9 {
			fmt.Fprintf(&batch, "route add 2001:db8:%x:%x::/64 via fd01:2::1 dev lan0 table 100\n", i>>16, i&0xffff)
		} else {
			fmt.Fprintf(&batch, "route add 10.%d.%d.%d/32 via 10.1.2.1 dev lan0\n", 100+i>>16, i>>8&0xff, i&0xff)
		}
	}
	path := filepath.Join(b.TempDir(), "routes.batch")
	if err := os.WriteFile(path, []byte(batch.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", ns.Name, "-batch", path).CombinedOutput(); err != nil {
		b.Fatalf("ip -batch: %v\n%s", err, out)
	}
	sys := NewSystemAt(ns.Handle)
	// The kernel adds link-local routes a moment after a link comes up:
	// wait until two snapshots agree, so the benchmarks see a still table.
	prev := snapshotOf(b, sys, n)
	for range 100 {
		time.Sleep(50 * time.Millisecond)
		cur := snapshotOf(b, sys, n)
		if Compare(prev, cur).Empty() {
			return sys, ns
		}
		prev = cur
	}
	b.Fatal("the routing table kept changing for 5 s")
	return nil, nil
}

func snapshotOf(b *testing.B, sys System, atLeast int) *Snapshot {
	b.Helper()
	s, err := sys.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	if len(s.Routes) < atLeast {
		b.Fatalf("snapshot has %d routes, want at least %d", len(s.Routes), atLeast)
	}
	return s
}

// BenchmarkSnapshot100k reads every route, rule, link and address of a
// namespace with 100,000 routes over netlink (`vpn routes snapshot`).
func BenchmarkSnapshot100k(b *testing.B) {
	sys, _ := routeNS(b, benchRoutes)
	b.ReportAllocs()
	for b.Loop() {
		snapshotOf(b, sys, benchRoutes)
	}
	b.ReportMetric(float64(benchRoutes), "routes")
}

// BenchmarkCompare100k diffs two snapshots of 100,000 routes that differ in
// 1% of them (500 removed, 500 added).
func BenchmarkCompare100k(b *testing.B) {
	sys, _ := routeNS(b, benchRoutes)
	before := snapshotOf(b, sys, benchRoutes)
	after := *before
	after.Routes = append([]Route(nil), before.Routes[500:]...)
	for i := range 500 {
		r := before.Routes[i]
		r.Metric += 1000
		after.Routes = append(after.Routes, r)
	}
	b.ReportAllocs()
	var d Diff
	for b.Loop() {
		d = Compare(before, &after)
	}
	if len(d.AddedRoutes) != 500 || len(d.RemovedRoutes) != 500 {
		b.Fatalf("diff: %d added, %d removed, want 500 and 500", len(d.AddedRoutes), len(d.RemovedRoutes))
	}
}

// BenchmarkSnapshotDiff100k is `vpn routes diff FILE` without the file
// reading: a live snapshot of 100,000 routes compared with a saved one.
func BenchmarkSnapshotDiff100k(b *testing.B) {
	sys, ns := routeNS(b, benchRoutes)
	saved := snapshotOf(b, sys, benchRoutes)
	ns.IPIn("route", "add", "203.0.113.0/24", "via", "10.1.2.1", "dev", "lan0")
	b.ReportAllocs()
	for b.Loop() {
		d := Compare(saved, snapshotOf(b, sys, benchRoutes))
		if len(d.AddedRoutes) != 1 || len(d.RemovedRoutes) != 0 {
			b.Fatalf("diff: %+v, want the one added route", d)
		}
	}
}
