package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// TestTunnelAddressesAreOursAndGoWithTheAgent: the tunnel's /32 and /128
// carry noprefixroute (no kernel route names them), `vpn routes show
// --json` lists them as ours and doctor does not flag them. They are not
// journaled: they live on wireguard-go's TUN, which the kernel deletes
// with its addresses when the agent dies; kill -9 shows nothing is left
// before any recovery runs.
func TestTunnelAddressesAreOursAndGoWithTheAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Client("taddr")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok)
	v4, v6 := tunnelAddrs(t, alice)
	ctx := ctxT(t, time.Minute)

	addrs, _ := e.Laptop.Exec(ctx, "ip", "-o", "address", "show", "dev", alice.Iface)
	for _, a := range []string{v4.String() + "/32", v6.String() + "/128"} {
		line := ""
		for _, l := range strings.Split(addrs, "\n") {
			if strings.Contains(l, " "+a+" ") {
				line = l
			}
		}
		if !strings.Contains(line, "noprefixroute") {
			t.Errorf("%s on %s without noprefixroute:\n%s", a, alice.Iface, addrs)
		}
	}
	if kr, _ := e.Laptop.Exec(ctx, "sh", "-c", "ip route show table main proto kernel dev "+alice.Iface+"; ip -6 route show table main proto kernel dev "+alice.Iface); strings.Contains(kr, v4.String()) || strings.Contains(kr, v6.String()+" ") {
		t.Errorf("the kernel made prefix routes for the tunnel addresses (only the local-table ones are expected):\n%s", kr)
	}

	out, err := alice.Run(ctx, "routes", "show", "--json")
	if err != nil {
		t.Fatalf("vpn routes show --json: %v\n%s", err, out)
	}
	var snap routes.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("routes show --json: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, a := range snap.Addresses {
		if a.Device != alice.Iface {
			t.Errorf("routes show lists %s on %s as ours", a.Prefix, a.Device)
		}
		seen[a.Prefix.String()] = true
	}
	if !seen[v4.String()+"/32"] || !seen[v6.String()+"/128"] {
		t.Errorf("routes show --json addresses %v: want %s/32 and %s/128", snap.Addresses, v4, v6)
	}
	out, _ = alice.Run(ctx, "doctor", "--json")
	var rep analysis.Report
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	for _, f := range rep.Findings {
		if f.ID == "tunnel-address" {
			t.Errorf("doctor flags the assigned address: %+v", f)
		}
	}

	// The agent is up, so its pid file names it: kill -9 that pid only.
	pid, err := os.ReadFile(filepath.Join(alice.StateDir, "agent.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "kill", "-9", strings.TrimSpace(string(pid))).CombinedOutput(); err != nil {
		t.Fatalf("kill -9 %s: %v %s", pid, err, out)
	}
	var left string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		left, _ = e.Laptop.Exec(ctx, "ip", "-o", "address")
		if !strings.Contains(left, v4.String()+"/") && !strings.Contains(left, v6.String()+"/") {
			break
		}
	}
	if strings.Contains(left, v4.String()+"/") || strings.Contains(left, v6.String()+"/") {
		t.Errorf("after kill -9 the tunnel addresses are still there:\n%s", left)
	}
	if l, err := e.Laptop.Exec(ctx, "ip", "link", "show", "dev", alice.Iface); err == nil {
		t.Errorf("after kill -9 the tunnel link is still there: %s", l)
	}
	down(t, alice) // recovery of the routes and rules
}
