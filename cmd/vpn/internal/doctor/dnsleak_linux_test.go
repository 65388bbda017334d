package doctor

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
)

// A full tunnel in a namespace of its own (wg0 holding 0.0.0.0/1 and
// 128.0.0.0/1 beside the LAN's lan0 10.1.2.0/24): doctor walks the real
// routing table for each resolver queries reach. A resolv.conf rewritten
// to the LAN's resolver, and the stub's LAN upstream, are routed out of
// lan0: dns-leak-full-tunnel with the resolver and the route as evidence.
// A resolver routed into wg0 is no leak. No query is sent (no tunnel
// servers to probe; the stub is the agent's).
func TestDoctorDNSLeakFullTunnel(t *testing.T) {
	ns := netnstest.New(t)
	tun := openTun(t, ns, "wg0", false) // as wireguard-go holds it
	defer tun.Close()
	ns.IPIn("link", "set", "wg0", "up")
	ns.IPIn("addr", "add", "10.10.0.2/32", "dev", "wg0")
	ns.IPIn("route", "add", "0.0.0.0/1", "dev", "wg0")
	ns.IPIn("route", "add", "128.0.0.0/1", "dev", "wg0")
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	dnsSt := &control.DNSStatus{Mode: "stub", Domains: []string{"corp.internal"}, Stub: splitdns.StubAddr.String()}
	e := env(ns)
	e.StateDir, e.ResolvConf = filepath.Join(dir, "state"), resolv
	os.Mkdir(e.StateDir, 0o700)
	e.Agent = func(context.Context) (*control.Status, error) {
		return &control.Status{State: control.StateUp, Interface: "wg0", FullTunnel: true, Addresses: []string{"10.10.0.2/32"}, DNS: dnsSt}, nil
	}
	cases := []struct {
		name, conf string
		upstream   []string
		leak       string // evidence expected, "" none
	}{
		{"resolv.conf rewritten to the LAN resolver", "nameserver 10.1.2.1\n", nil, "resolv.conf nameserver 10.1.2.1: route get 10.1.2.1 -> 10.1.2.0/24"},
		{"stub forwards other names to the LAN", string(splitdns.Content(nil, splitdns.StubAddr)), []string{"10.1.2.53:53"}, "stub upstream (names outside the routing domains) 10.1.2.53"},
		{"resolver inside the tunnel", "nameserver 10.9.9.9\n", nil, ""},
		{"stub, upstream through the tunnel", string(splitdns.Content(nil, splitdns.StubAddr)), []string{"9.9.9.9:53"}, ""},
	}
	for _, c := range cases {
		os.WriteFile(resolv, []byte(c.conf), 0o644)
		dnsSt.Upstream = c.upstream
		found, cmds, ev := findingOf(t, e, splitdns.FindingLeak)
		switch {
		case c.leak == "" && found:
			t.Errorf("%s: leak reported: %s", c.name, ev)
		case c.leak != "" && !found:
			t.Errorf("%s: no leak finding; findings %s", c.name, ev)
		case c.leak != "" && (!strings.Contains(ev, c.leak) || !strings.Contains(ev, "dev lan0") || len(cmds) == 0):
			t.Errorf("%s: evidence %q, want %q via lan0", c.name, ev, c.leak)
		}
	}

	// --fix: the rewritten resolv.conf is the agent's to re-point (a fake
	// agent here does what RepointDNS does to the file); the stub's LAN
	// upstream is the gateway's DNS config: no fix, the agent is not asked.
	asked := 0
	e.RepointDNS = func(context.Context) (*control.RepointReport, error) {
		asked++
		if err := os.WriteFile(resolv, splitdns.Content(nil, splitdns.StubAddr), 0o644); err != nil {
			return nil, err
		}
		dnsSt.Upstream = []string{"9.9.9.9:53"}
		return &control.RepointReport{Changed: true, Upstream: []string{"10.1.2.1"}}, nil
	}
	os.WriteFile(resolv, []byte("nameserver 10.1.2.1\n"), 0o644)
	dnsSt.Upstream = nil
	rep, _ := run(t, e, &Options{Fix: splitdns.FindingLeak})
	if asked != 1 {
		t.Fatalf("--fix asked the agent to re-point %d times, want 1", asked)
	}
	for _, f := range rep.Findings {
		if f.ID == splitdns.FindingLeak {
			t.Errorf("still reported after --fix: %+v", f.Evidence)
		}
	}
	os.WriteFile(resolv, splitdns.Content(nil, splitdns.StubAddr), 0o644)
	dnsSt.Upstream = []string{"10.1.2.53:53"}
	run(t, e, &Options{Fix: splitdns.FindingLeak})
	if asked != 1 {
		t.Errorf("the gateway's leak (no fix) asked the agent to re-point")
	}
}

// macOS's resolver files, with a temp directory as /etc/resolver: a
// killed agent's files (journaled, or found by their exact header when
// the journal is gone) are dns-resolver-stale with each file as
// evidence; --fix removes only them, never another VPN's file nor one of
// ours edited since; the next doctor is clean. While the agent runs a
// resolver session, nothing is reported.
func TestDoctorResolverFilesStale(t *testing.T) {
	ns := netnstest.New(t)
	dir := t.TempDir()
	e := env(ns)
	e.StateDir, e.ResolvConf, e.ResolverDir = filepath.Join(dir, "state"), filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "resolver")
	os.Mkdir(e.StateDir, 0o700)
	os.WriteFile(e.ResolvConf, []byte("nameserver 10.1.2.1\n"), 0o644)
	os.Mkdir(e.ResolverDir, 0o755)
	foreign := filepath.Join(e.ResolverDir, "other.vpn")
	os.WriteFile(foreign, []byte("nameserver 172.16.0.53\n"), 0o644)
	servers := []netip.Addr{netip.MustParseAddr("10.10.0.10")}
	if _, err := splitdns.PointResolverDir(e.StateDir, e.ResolverDir, servers, []string{"corp.internal"}); err != nil {
		t.Fatal(err)
	}
	// Journal lost, file still there: found by its header. Another of ours
	// the user edited since is not ours any more.
	os.WriteFile(filepath.Join(e.ResolverDir, "lab.corp"), splitdns.ResolverContent("lab.corp", servers), 0o644)
	edited := filepath.Join(e.ResolverDir, "eng.corp")
	os.WriteFile(edited, append(splitdns.ResolverContent("eng.corp", servers), "search_order 1\n"...), 0o644)

	live := e.Agent
	e.Agent = func(context.Context) (*control.Status, error) {
		return &control.Status{State: control.StateUp, Interface: "wg0", DNS: &control.DNSStatus{Mode: "resolver", Domains: []string{"corp.internal"}}}, nil
	}
	if found, _, ev := findingOf(t, e, splitdns.FindingResolverLeft); found {
		t.Fatalf("reported while the agent runs its session: %s", ev)
	}
	e.Agent = live
	found, cmds, ev := findingOf(t, e, splitdns.FindingResolverLeft)
	if !found || !strings.Contains(ev, "corp.internal: written by ClearPath") || !strings.Contains(ev, "lab.corp") ||
		strings.Contains(ev, "eng.corp") || strings.Contains(ev, "other.vpn") || len(cmds) == 0 {
		t.Fatalf("found %v, evidence:\n%s", found, ev)
	}
	rep, _ := run(t, e, &Options{Fix: splitdns.FindingResolverLeft})
	for _, f := range rep.Findings {
		if f.ID == splitdns.FindingResolverLeft {
			t.Errorf("still reported after --fix: %+v", f.Evidence)
		}
	}
	left, _ := os.ReadDir(e.ResolverDir)
	var names []string
	for _, x := range left {
		names = append(names, x.Name())
	}
	if strings.Join(names, ",") != "eng.corp,other.vpn" {
		t.Errorf("after --fix the resolver dir holds %v, want eng.corp,other.vpn", names)
	}
}
