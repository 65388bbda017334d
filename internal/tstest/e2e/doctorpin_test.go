package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// TestDoctorRepinsEndpointAfterNetworkChange: the laptop's route to the
// gateway endpoint is pinned via its router 10.1.2.1 (as VPN clients and
// scripts do), then the laptop changes network: it moves to 10.1.3.0/24
// with a new default router 10.1.3.1 and the old router goes away. The
// pin still says "via 10.1.2.1" and the tunnel carries nothing. Doctor
// names the stale pin with the current default router as evidence; `--fix
// endpoint-pin-stale` re-pins via 10.1.3.1 and the tunnel carries traffic
// again.
func TestDoctorRepinsEndpointAfterNetworkChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Client("pin")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok)
	e.reach(t, vpcA4)
	lan, hostLAN := e.LaptopLAN, e.Prefix+"laptop"
	exec := func(n *lab.Node, argv ...string) {
		t.Helper()
		if out, err := n.Exec(ctxT(t, 5*time.Second), argv...); err != nil {
			t.Fatalf("%s: %v: %v\n%s", n, argv, err, out)
		}
	}
	exec(e.Laptop, "ip", "route", "add", lab.GWPublicIP4+"/32", "via", lab.HostLANIP4, "dev", lan, "proto", "static")
	e.reach(t, vpcA4) // the pin is right while the laptop is on this network

	// The change of network: new subnet and router, the old router gone.
	exec(e.Host, "ip", "addr", "add", "10.1.3.1/24", "dev", hostLAN)
	exec(e.GW, "ip", "route", "add", "10.1.3.0/24", "via", lab.HostPublicIP4)
	exec(e.Laptop, "ip", "addr", "add", "10.1.3.10/24", "dev", lan)
	exec(e.Laptop, "ip", "route", "replace", "default", "via", "10.1.3.1", "dev", lan)
	exec(e.Laptop, "ip", "addr", "del", lab.LaptopIP4+"/24", "dev", lan)
	exec(e.Host, "ip", "addr", "del", lab.HostLANIP4+"/24", "dev", hostLAN)
	// The old router is another box on the old network: nothing answers
	// for its address here (the lab's host keeps its MAC, so forget it).
	exec(e.Laptop, "ip", "neigh", "flush", "dev", lan)
	if r, _ := e.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "route", "show", lab.GWPublicIP4); !strings.Contains(r, "via "+lab.HostLANIP4) {
		t.Fatalf("the kernel dropped the stale pin by itself (nothing to diagnose): %q", r)
	}
	e.unreachable(t, vpcA4, "with the endpoint pinned to the old router")

	rep, code, out := doctor(t, alice)
	f := finding(rep, "endpoint-pin-stale")
	if code != 1 || f == nil || f.Severity != "error" || !f.Fixable {
		t.Fatalf("want exit 1 and a fixable endpoint-pin-stale error, got exit %d %v\n%s", code, findingIDs(rep), out)
	}
	ev := ""
	for _, x := range f.Evidence {
		ev += x.Text + "\n"
	}
	for _, w := range []string{lab.GWPublicIP4 + "/32 via " + lab.HostLANIP4, "0.0.0.0/0 via 10.1.3.1", "10.1.3.10/24"} {
		if !strings.Contains(ev, w) {
			t.Errorf("evidence lacks %q:\n%s", w, ev)
		}
	}
	t.Logf("finding: %s\n%s%s", f.Title, ev, strings.Join(f.Commands, "\n"))
	doctor(t, alice, "--fix", "endpoint-pin-stale")
	if r, _ := e.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "route", "show", lab.GWPublicIP4); !strings.Contains(r, "via 10.1.3.1") {
		t.Fatalf("after --fix: the pin is %q, want via 10.1.3.1", r)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := e.Laptop.AskWhoAmI(ctxT(t, 3*time.Second), vpcA4)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tunnel does not carry traffic after the re-pin: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if rep, _, out := doctor(t, alice); finding(rep, "endpoint-pin-stale") != nil {
		t.Fatalf("after the fix doctor still reports the pin:\n%s", out)
	}
	down(t, alice)
}
