package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/internal/netnstest"
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
}
