package analysis

import (
	"strings"
	"testing"
)

func TestPathMTUFinding(t *testing.T) {
	st := agent("10.10.0.0/16")
	st.LastHandshake = now
	in := Input{Snapshot: withTunnel(linuxLaptop(), "10.10.0.0/16"), Agent: st, Now: now, PathProbes: []PathProbe{
		{Source: a("100.64.0.2"), Target: a("100.64.0.1"), Largest: 1220},
		{Source: a("fd00:64::2"), Target: a("fd00:64::1"), Largest: 1220},
	}}
	rep := Analyze(in)
	if len(rep.Findings) != 1 || rep.Findings[0].ID != "path-mtu" || rep.Findings[0].Severity != Warning {
		t.Fatalf("want one path-mtu warning, got %s", dump(rep))
	}
	f := rep.Findings[0]
	if !strings.Contains(f.Title, "1220") || !strings.Contains(f.Explanation, "IPv4 only") || f.Commands[1] != "sudo ip link set dev cp0 mtu 1220" {
		t.Errorf("finding: %q %q %v", f.Title, f.Explanation, f.Commands)
	}
	if len(rep.PathMTU) != 2 {
		t.Errorf("the report must carry the measurements: %v", rep.PathMTU)
	}
	// A path that carries the tunnel's MTU is no finding.
	in.PathProbes = []PathProbe{{Source: a("100.64.0.2"), Target: a("100.64.0.1"), Largest: 1420}}
	if rep := Analyze(in); len(rep.Findings) != 0 {
		t.Fatalf("full path: %s", dump(rep))
	}
}
