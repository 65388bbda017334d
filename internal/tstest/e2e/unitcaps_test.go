package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// capBits are the capability numbers the units name (linux/capability.h).
var capBits = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_PERFMON": 38, "CAP_BPF": 39,
}

// unitCaps reads CapabilityBoundingSet from a unit in packaging/systemd.
func unitCaps(t *testing.T, unit string) (caps []string, mask uint64) {
	t.Helper()
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "packaging", "systemd", unit))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapabilityBoundingSet="); ok {
			caps = strings.Fields(v)
		}
	}
	for _, c := range caps {
		bit, ok := capBits[c]
		if !ok {
			t.Fatalf("%s: capability %s unknown to this test", unit, c)
		}
		mask |= 1 << bit
	}
	if len(caps) == 0 {
		t.Fatalf("%s has no CapabilityBoundingSet", unit)
	}
	return caps, mask
}

// bounded writes a wrapper that runs bin with only caps in its bounding
// set, as systemd's CapabilityBoundingSet does for a root service.
func bounded(t *testing.T, dir, bin string, caps []string) string {
	t.Helper()
	var set []string
	for _, c := range caps {
		set = append(set, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	w := filepath.Join(dir, filepath.Base(bin))
	script := fmt.Sprintf("#!/bin/sh\nexec setpriv --bounding-set -all,%s -- %s \"$@\"\n", strings.Join(set, ","), bin)
	if err := os.WriteFile(w, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

func capEff(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no CapEff for pid %d", pid)
	return 0
}

// The systemd units' capability sets are enough, measured with the real
// programs: the gateway (eBPF filter required) and the agent run with only
// their unit's CapabilityBoundingSet, as root (setpriv), and alice's vpn up
// reaches vpc-a through them, then vpn down restores the laptop's routes.
// The gateway's effective set is checked to be exactly the unit's: the
// bound is really in force.
func TestUnitCapabilitiesSuffice(t *testing.T) {
	lab.SkipUnlessRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) missing")
	}
	gwCaps, gwMask := unitCaps(t, "clearpath-gateway.service")
	agCaps, _ := unitCaps(t, "clearpath-agent.service")
	dir := t.TempDir()
	capped := bins
	capped.Gateway = bounded(t, dir, bins.Gateway, gwCaps)
	agentDir := filepath.Join(dir, "agent")
	os.Mkdir(agentDir, 0o755)
	capped.VPN = bounded(t, agentDir, bins.VPN, agCaps)

	ref := lab.ReferenceT(t, lab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, ref, capped, stack.WithGatewayConfig("flows:\n  filter: on"))
	if err != nil {
		t.Fatalf("gateway with only %v: %v", gwCaps, err)
	}
	e := envOn(t, ref, s)
	if got := capEff(t, s.Gateway.Pid()); got != gwMask {
		t.Errorf("gateway runs with CapEff %#x, want exactly the unit's %#x (%v)", got, gwMask, gwCaps)
	}
	alice := e.Client("alice")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	before, err := e.Laptop.RoutingState(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok)
	v4, _ := tunnelAddrs(t, alice)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("vpc-a saw %s, want %s", got, v4)
	}
	if st, raw, err := alice.Status(ctxT(t, 10*time.Second)); err != nil || st.State != "up" {
		t.Errorf("vpn status under the agent's bound: %v\n%s", err, raw)
	}
	down(t, alice)
	after, err := e.Laptop.RoutingState(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("routing after vpn down differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if log := s.Gateway.Log(); !strings.Contains(log, "flow") {
		t.Logf("gateway log:\n%s", log)
	}
}
