package analysis

import (
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
)

// doctorSnapshot is a laptop with a tunnel up and n more routes in main
// (10,000 is the size the issue asks doctor to handle), some of them stale:
// one in a hundred via a device that is gone.
func doctorSnapshot(n int) *routes.Snapshot {
	s := withTunnel(linuxLaptop(), "10.0.0.0/8")
	for i := range n {
		dev := "eth0"
		if i%100 == 99 {
			dev = "utun9" // gone: dead-device-route findings
		}
		s.Routes = append(s.Routes, r4(254, fmt.Sprintf("172.%d.%d.0/24", 16+i/256%16, i%256), "10.1.2.1", dev, 4))
	}
	return s
}

// BenchmarkDoctor10k is `vpn doctor --json` on 10,000 routes without the
// gathering: every check, then the JSON report.
func BenchmarkDoctor10k(b *testing.B) {
	s := doctorSnapshot(10_000)
	ag := agent("10.0.0.0/8")
	b.ReportAllocs()
	var rep Report
	for b.Loop() {
		rep = Analyze(Input{Snapshot: s, Agent: ag, Now: now})
		if err := json.NewEncoder(io.Discard).Encode(rep); err != nil {
			b.Fatal(err)
		}
	}
	if len(rep.Findings) == 0 {
		b.Fatal("no findings: the stale routes went unnoticed")
	}
}
