package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/lab"
)

// A full tunnel whose gateway pushes routing domains (eng: corp.internal):
// the stub sends every other name to the LAN's resolver, which route
// planning keeps outside the tunnel, so `www.example.com` is looked up on
// the LAN in clear. `vpn doctor` walks the laptop's real routing table and
// reports dns-leak-full-tunnel naming that resolver and its route out of
// the LAN device; a network manager rewriting resolv.conf (the attack:
// queries straight to the LAN) is reported the same way. After `vpn down`
// there is no full tunnel, so no leak.
func TestDoctorReportsDNSLeakOutsideFullTunnel(t *testing.T) {
	t.Parallel()
	d := newDNSEnv(t)
	alice := d.Client("dnsleak")
	tok, err := d.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	if out, err := alice.Run(ctx, "up", "--server", d.URL, "--ca-file", d.CAFile, "--token-file", tok, "--interface", alice.Iface, "--all-traffic"); err != nil {
		t.Fatalf("vpn up --all-traffic: %v\n%s", err, out)
	}
	lanBefore, _ := d.lan.Saw("www.example.com")
	if got := d.resolve(t, "www.example.com"); got != "192.0.2.80" {
		t.Fatalf("www.example.com = %q, want the LAN's answer (the leak this test is about)", got)
	}
	if n, _ := d.lan.Saw("www.example.com"); n == lanBefore {
		t.Fatal("the LAN's server saw no query: no leak to report")
	}
	rep, _, out := doctor(t, alice)
	f := finding(rep, "dns-leak-full-tunnel")
	if f == nil {
		t.Fatalf("no dns-leak-full-tunnel:\n%s", out)
	}
	var ev []string
	for _, e := range f.Evidence {
		ev = append(ev, e.Text)
	}
	text := strings.Join(ev, "\n")
	if !strings.Contains(text, "stub upstream (names outside the routing domains) "+lab.HostLANIP4) || !strings.Contains(text, "not the tunnel "+alice.Iface) {
		t.Errorf("evidence does not name the LAN resolver and its route:\n%s", text)
	}

	// The attack: something rewrites resolv.conf to the LAN's resolver.
	if err := os.WriteFile(d.resolvConf, []byte("nameserver "+lab.HostLANIP4+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, _, out = doctor(t, alice)
	if f = finding(rep, "dns-leak-full-tunnel"); f == nil || !strings.Contains(f.Explanation, "rewrote resolv.conf") {
		t.Fatalf("rewritten resolv.conf: %+v\n%s", f, out)
	}
	down(t, alice)
	if rep, _, out = doctor(t, alice); finding(rep, "dns-leak-full-tunnel") != nil {
		t.Errorf("leak reported without a tunnel:\n%s", out)
	}
}
