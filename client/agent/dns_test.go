package agent

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// The gateway pushes split DNS: up starts the stub and points resolv.conf
// at it (journal first), status shows it, route planning keeps the old
// resolver as the LAN's; down stops the stub and puts the file back.
func TestUpPointsResolvConfAtTheStubAndDownRestores(t *testing.T) {
	r := newRig(t)
	r.a.edge.stubListen = mustAddrPort("127.0.0.1:0")
	r.gw.set(func(g *fakeGateway) {
		g.spoil = func(pc *api.PeerConfig) { pc.DNS, pc.DNSDomains = []string{"10.20.0.53"}, []string{"corp.internal"} }
	})
	conf := r.a.edge.resolvConf
	before, _ := os.ReadFile(conf)
	st, err := r.up(r.request())
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if st.DNS == nil || st.DNS.Mode != "stub" || !slices.Equal(st.DNS.Domains, []string{"corp.internal"}) || !slices.Equal(st.DNS.Upstream, []string{"192.168.1.1"}) {
		t.Fatalf("status dns = %+v", st.DNS)
	}
	now, _ := os.ReadFile(conf)
	if !strings.Contains(string(now), "nameserver 127.0.0.1\n") || strings.Contains(string(now), "192.168.1.1") {
		t.Errorf("resolv.conf while up:\n%s", now)
	}
	if _, err := os.Stat(filepath.Join(r.a.dir, splitdns.JournalFile)); err != nil {
		t.Errorf("no DNS journal while up: %v", err)
	}
	r.a.mu.Lock()
	res := r.a.spec.Resolvers
	r.a.mu.Unlock()
	if len(res) != 1 || res[0].String() != "192.168.1.1" {
		t.Errorf("route planning sees resolvers %v, want the LAN's 192.168.1.1 (not the stub)", res)
	}
	stub := st.DNS.Stub
	if _, err := r.a.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(conf); string(after) != string(before) {
		t.Errorf("after down resolv.conf = %q, want %q", after, before)
	}
	if _, err := os.Stat(filepath.Join(r.a.dir, splitdns.JournalFile)); !os.IsNotExist(err) {
		t.Errorf("DNS journal still there after down: %v", err)
	}
	pc, err := net.ListenPacket("udp", stub)
	if err != nil {
		t.Errorf("the stub still holds %s after down: %v", stub, err)
	} else {
		pc.Close()
	}
}

// A gateway pushing a DNS server outside the tunnel is refused before
// anything changes; one pushing servers with no routing domains changes
// nothing without --all-traffic and says so.
func TestPushedDNSRefusedOrUnused(t *testing.T) {
	r := newRig(t)
	r.a.edge.stubListen = mustAddrPort("127.0.0.1:0")
	conf := r.a.edge.resolvConf
	before, _ := os.ReadFile(conf)
	snap := r.snapshot()
	r.gw.set(func(g *fakeGateway) {
		g.spoil = func(pc *api.PeerConfig) { pc.DNS, pc.DNSDomains = []string{"192.168.1.1"}, []string{"corp.internal"} }
	})
	if _, err := r.up(r.request()); !contains(err, "dns[0]: 192.168.1.1 is not inside gateway.allowed_ips") {
		t.Fatalf("up with a DNS server outside the tunnel: %v", err)
	}
	r.sameAsBefore(snap, "refused DNS")
	if now, _ := os.ReadFile(conf); string(now) != string(before) {
		t.Errorf("resolv.conf changed by a refused up: %q", now)
	}
	r.gw.set(func(g *fakeGateway) {
		g.spoil = func(pc *api.PeerConfig) { pc.DNS = []string{"10.20.0.53"} }
	})
	st, err := r.up(r.request())
	if err != nil {
		t.Fatal(err)
	}
	if st.DNS == nil || st.DNS.Mode != "off" || !strings.Contains(strings.Join(st.Notices, " "), "--all-traffic") {
		t.Errorf("servers without domains, split tunnel: dns %+v, notices %v", st.DNS, st.Notices)
	}
	if now, _ := os.ReadFile(conf); string(now) != string(before) {
		t.Errorf("resolv.conf changed although DNS is unused: %q", now)
	}
}

// What a killed agent left is put back by the next agent's start.
func TestRecoverDNSAtStart(t *testing.T) {
	r := newRig(t)
	conf := r.a.edge.resolvConf
	before, _ := os.ReadFile(conf)
	os.MkdirAll(r.a.dir, 0o700)
	if _, err := splitdns.Point(r.a.dir, conf, splitdns.StubAddr); err != nil {
		t.Fatal(err)
	}
	r.a.recoverDNS()
	if now, _ := os.ReadFile(conf); string(now) != string(before) {
		t.Errorf("after recovery resolv.conf = %q", now)
	}
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// macOS's split DNS, with a temp directory as /etc/resolver: up writes a
// file per routing domain (journaled), leaves a domain whose file exists
// alone and says so; down removes only our file; resolv.conf is untouched.
func TestUpWritesResolverFilesAndDownRemovesThem(t *testing.T) {
	r := newRig(t)
	dir := filepath.Join(t.TempDir(), "resolver")
	r.a.edge.resolverDir = dir
	os.MkdirAll(dir, 0o755)
	other := filepath.Join(dir, "lab.corp")
	os.WriteFile(other, []byte("nameserver 172.16.0.53\n"), 0o644)
	r.gw.set(func(g *fakeGateway) {
		g.spoil = func(pc *api.PeerConfig) {
			pc.DNS, pc.DNSDomains = []string{"10.20.0.53"}, []string{"corp.internal", "lab.corp"}
		}
	})
	conf := r.a.edge.resolvConf
	before, _ := os.ReadFile(conf)
	st, err := r.up(r.request())
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if st.DNS == nil || st.DNS.Mode != "resolver" || !strings.Contains(st.DNS.Note, "lab.corp") {
		t.Fatalf("status dns = %+v", st.DNS)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "corp.internal")); err != nil || !strings.Contains(string(b), "nameserver 10.20.0.53\n") {
		t.Fatalf("corp.internal: %q, %v", b, err)
	}
	if now, _ := os.ReadFile(conf); string(now) != string(before) {
		t.Errorf("resolv.conf changed in resolver mode: %q", now)
	}
	if _, err := r.a.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "corp.internal")); !os.IsNotExist(err) {
		t.Errorf("our resolver file left after down: %v", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "nameserver 172.16.0.53\n" {
		t.Errorf("another VPN's file changed: %q", b)
	}
}

// The network changes during a session and a network manager rewrites
// resolv.conf with the new LAN's resolver: at the network change the stub
// forwards to it, resolv.conf points at the stub again, route planning
// keeps the new resolver outside the tunnel, and `vpn down` puts back the
// new network's file (not the stale one from before `vpn up`). A change
// with resolv.conf still ours changes nothing.
func TestStubFollowsTheLANResolver(t *testing.T) {
	r := newRig(t)
	r.a.edge.stubListen = mustAddrPort("127.0.0.1:0")
	r.gw.set(func(g *fakeGateway) {
		g.spoil = func(pc *api.PeerConfig) { pc.DNS, pc.DNSDomains = []string{"10.20.0.53"}, []string{"corp.internal"} }
	})
	conf := r.a.edge.resolvConf
	if _, err := r.up(r.request()); err != nil {
		t.Fatalf("up: %v", err)
	}
	ours, _ := os.ReadFile(conf)
	r.mu.Lock()
	changed := r.onChange
	r.mu.Unlock()
	changed() // a network change, resolv.conf still ours
	if now, _ := os.ReadFile(conf); string(now) != string(ours) {
		t.Fatalf("resolv.conf rewritten without cause: %q", now)
	}
	newLAN := "# Generated by NetworkManager\nsearch office\nnameserver 192.168.7.1\n"
	os.WriteFile(conf, []byte(newLAN), 0o644)
	changed()
	now, _ := os.ReadFile(conf)
	if !strings.Contains(string(now), "nameserver 127.0.0.1\n") || !strings.Contains(string(now), "search office") || strings.Contains(string(now), "192.168.7.1") {
		t.Errorf("resolv.conf after the change:\n%s", now)
	}
	st := r.a.Status()
	if st.DNS == nil || !slices.Equal(st.DNS.Upstream, []string{"192.168.7.1"}) {
		t.Errorf("status dns = %+v, want upstream 192.168.7.1", st.DNS)
	}
	r.a.mu.Lock()
	res := r.a.spec.Resolvers
	r.a.mu.Unlock()
	if len(res) != 1 || res[0].String() != "192.168.7.1" {
		t.Errorf("route planning sees resolvers %v, want the new LAN's 192.168.7.1", res)
	}
	if _, err := r.a.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(conf); string(after) != newLAN {
		t.Errorf("after down resolv.conf = %q, want the new network's %q", after, newLAN)
	}
}

// Something rewrites resolv.conf while up (no network change seen): the
// control API's RepointDNS (doctor's --fix for dns-leak-full-tunnel) points
// it back at the stub, the rewritten file's server becomes the upstream,
// a second call changes nothing, and down puts back the rewritten file.
// Without a stub it refuses with ErrNoStub and touches nothing.
func TestRepointDNSOnDemand(t *testing.T) {
	r := newRig(t)
	r.a.edge.stubListen = mustAddrPort("127.0.0.1:0")
	conf := r.a.edge.resolvConf
	before, _ := os.ReadFile(conf)
	if _, err := r.a.RepointDNS(t.Context()); !errors.Is(err, control.ErrNoStub) {
		t.Fatalf("no session: %v, want ErrNoStub", err)
	}
	if now, _ := os.ReadFile(conf); string(now) != string(before) {
		t.Fatalf("refused repoint changed resolv.conf: %q", now)
	}
	r.gw.set(func(g *fakeGateway) {
		g.spoil = func(pc *api.PeerConfig) { pc.DNS, pc.DNSDomains = []string{"10.20.0.53"}, []string{"corp.internal"} }
	})
	if _, err := r.up(r.request()); err != nil {
		t.Fatalf("up: %v", err)
	}
	rewritten := "nameserver 192.168.9.9\n"
	os.WriteFile(conf, []byte(rewritten), 0o644)
	rep, err := r.a.RepointDNS(t.Context())
	if err != nil || !rep.Changed || !slices.Equal(rep.Upstream, []string{"192.168.9.9"}) {
		t.Fatalf("repoint: %+v %v", rep, err)
	}
	if now, _ := os.ReadFile(conf); !strings.Contains(string(now), "nameserver 127.0.0.1\n") || strings.Contains(string(now), "192.168.9.9") {
		t.Errorf("resolv.conf after repoint:\n%s", now)
	}
	if st := r.a.Status(); st.DNS == nil || !slices.Equal(st.DNS.Upstream, []string{"192.168.9.9"}) {
		t.Errorf("status dns = %+v, want upstream 192.168.9.9", st.DNS)
	}
	if rep, err := r.a.RepointDNS(t.Context()); err != nil || rep.Changed {
		t.Errorf("second repoint: %+v %v, want unchanged", rep, err)
	}
	if _, err := r.a.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(conf); string(after) != rewritten {
		t.Errorf("after down resolv.conf = %q, want the rewritten %q", after, rewritten)
	}
}
