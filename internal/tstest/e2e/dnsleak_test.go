package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// A full tunnel whose gateway pushes routing domains (eng: corp.internal):
// the stub sends every other name to the LAN's resolver, which route
// planning keeps outside the tunnel, so `www.example.com` is looked up on
// the LAN in clear. `vpn doctor` walks the laptop's real routing table and
// reports dns-leak-full-tunnel naming that resolver and its route out of
// the LAN device; a network manager rewriting resolv.conf (the attack:
// queries straight to the LAN) is reported the same way, and `vpn doctor
// --fix dns-leak-full-tunnel` has the agent point resolv.conf back at its
// stub, so corp.internal reaches the tunnel's server again. `vpn down`
// then puts back the rewritten file byte for byte; with no full tunnel,
// no leak.
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
	rewritten := []byte("nameserver " + lab.HostLANIP4 + "\n")
	if err := os.WriteFile(d.resolvConf, rewritten, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, _, out = doctor(t, alice)
	if f = finding(rep, "dns-leak-full-tunnel"); f == nil || !strings.Contains(f.Explanation, "rewrote resolv.conf") || !f.Fixable {
		t.Fatalf("rewritten resolv.conf: %+v\n%s", f, out)
	}
	if got := d.resolve(t, "db.corp.internal"); got == "10.10.0.5" {
		t.Fatal("db.corp.internal still resolves through the tunnel with resolv.conf rewritten: the attack did nothing")
	}

	// --fix: the agent points resolv.conf back at its stub; the tunnel's
	// server answers corp.internal again. What is left is the gateway's
	// part (the stub's LAN upstream): reported, with no fix.
	if out, err := alice.Run(ctxT(t, 20*time.Second), "doctor", "--fix", "dns-leak-full-tunnel"); !strings.Contains(out, "fixed (dns-leak-full-tunnel): resolv.conf points at the agent's stub again") {
		t.Fatalf("vpn doctor --fix dns-leak-full-tunnel: %v\n%s", err, out)
	}
	vpcBefore, _ := d.vpcA.Saw("db.corp.internal")
	if got := d.resolve(t, "db.corp.internal"); got != "10.10.0.5" {
		t.Fatalf("after --fix db.corp.internal = %q, want the tunnel server's 10.10.0.5", got)
	}
	if n, _ := d.vpcA.Saw("db.corp.internal"); n == vpcBefore {
		t.Fatal("after --fix the tunnel's server saw no query")
	}
	rep, _, out = doctor(t, alice)
	if f = finding(rep, "dns-leak-full-tunnel"); f != nil && (strings.Contains(f.Explanation, "rewrote resolv.conf") || f.Fixable || !strings.Contains(f.Explanation, "No --fix")) {
		t.Fatalf("after --fix: %+v\n%s", f, out)
	}
	down(t, alice)
	if after, _ := os.ReadFile(d.resolvConf); string(after) != string(rewritten) {
		t.Errorf("after down resolv.conf = %q, want the rewritten file %q byte for byte (the journal's before since --fix)", after, rewritten)
	}
	if rep, _, out = doctor(t, alice); finding(rep, "dns-leak-full-tunnel") != nil {
		t.Errorf("leak reported without a tunnel:\n%s", out)
	}
}
