package splitdns

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clearpath-vpn/clearpath/internal/tstest/dnstest"
)

func ask(t *testing.T, srv netip.AddrPort, name string, tcp bool) *dns.Msg {
	t.Helper()
	c := &dns.Client{Timeout: 3 * time.Second}
	if tcp {
		c.Net = "tcp"
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := c.Exchange(q, srv.String())
	if err != nil {
		t.Fatalf("ask %s for %s: %v", srv, name, err)
	}
	return r
}

func answerA(r *dns.Msg) string {
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return dns.RcodeToString[r.Rcode]
}

// Names under a routing domain go to the tunnel's server only, the rest to
// the LAN's; the answers are the right side's, over UDP and TCP.
func TestStubSplitsByDomain(t *testing.T) {
	tunnel, err := dnstest.Listen(map[string]netip.Addr{"db.corp.internal": netip.MustParseAddr("10.10.0.5")})
	if err != nil {
		t.Fatal(err)
	}
	defer tunnel.Close()
	lan, err := dnstest.Listen(map[string]netip.Addr{"www.example.com": netip.MustParseAddr("192.0.2.80"), "db.corp.internal": netip.MustParseAddr("10.1.2.99")})
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	s, err := Start(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Tunnel: []netip.AddrPort{tunnel.Addr}, Domains: []string{"corp.internal"}, Upstream: []netip.AddrPort{lan.Addr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tcp := range []bool{false, true} {
		if got := answerA(ask(t, s.Addr(), "DB.Corp.Internal", tcp)); got != "10.10.0.5" {
			t.Errorf("tcp=%v: db.corp.internal = %s, want the tunnel's 10.10.0.5", tcp, got)
		}
		if got := answerA(ask(t, s.Addr(), "www.example.com", tcp)); got != "192.0.2.80" {
			t.Errorf("tcp=%v: www.example.com = %s, want the LAN's 192.0.2.80", tcp, got)
		}
		if got := answerA(ask(t, s.Addr(), "nope.corp.internal", tcp)); got != "NXDOMAIN" {
			t.Errorf("tcp=%v: nope.corp.internal = %s, want NXDOMAIN from the tunnel", tcp, got)
		}
	}
	if n, _ := lan.Saw("db.corp.internal"); n != 0 {
		t.Errorf("the LAN server saw %d queries of the routing domain", n)
	}
	if n, _ := tunnel.Saw("www.example.com"); n != 0 {
		t.Errorf("the tunnel server saw %d queries of a public name", n)
	}
	if s.ViaTunnel.Load() != 4 || s.ViaUpstream.Load() != 2 {
		t.Errorf("counters tunnel=%d upstream=%d, want 4 and 2", s.ViaTunnel.Load(), s.ViaUpstream.Load())
	}
	// "corp.internal.evil" and "xcorp.internal" are not under the domain.
	for _, n := range []string{"corp.internal.evil", "xcorp.internal"} {
		if (Config{Domains: []string{"corp.internal"}}).Route(n) {
			t.Errorf("%s routed to the tunnel", n)
		}
	}
}

// With no routing domains and all traffic captured, every name goes to
// the tunnel; a dead tunnel server gives SERVFAIL, never a LAN answer.
func TestStubAllAndNoFallback(t *testing.T) {
	lan, err := dnstest.Listen(map[string]netip.Addr{"www.example.com": netip.MustParseAddr("192.0.2.80")})
	if err != nil {
		t.Fatal(err)
	}
	defer lan.Close()
	tunnel, err := dnstest.Listen(map[string]netip.Addr{"www.example.com": netip.MustParseAddr("10.10.0.80")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Tunnel: []netip.AddrPort{tunnel.Addr}, All: true, Upstream: []netip.AddrPort{lan.Addr}, Timeout: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := answerA(ask(t, s.Addr(), "www.example.com", false)); got != "10.10.0.80" {
		t.Errorf("full tunnel: www.example.com = %s, want the tunnel's 10.10.0.80", got)
	}
	tunnel.Close()
	if got := answerA(ask(t, s.Addr(), "www.example.com", false)); got != "SERVFAIL" {
		t.Errorf("tunnel server gone: got %s, want SERVFAIL", got)
	}
	if n := len(lan.Queries()); n != 0 {
		t.Errorf("the LAN server saw %d queries in a full tunnel", n)
	}
}

const before = "# made by the DHCP client\nnameserver 10.1.2.1\nnameserver fd01:2::1\nsearch lan.example\noptions edns0 ndots:2\n"

func setup(t *testing.T) (state, conf string) {
	t.Helper()
	d := t.TempDir()
	state, conf = filepath.Join(d, "state"), filepath.Join(d, "resolv.conf")
	os.Mkdir(state, 0o700)
	if err := os.WriteFile(conf, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	return state, conf
}

func TestPointAndRestoreByteForByte(t *testing.T) {
	state, conf := setup(t)
	got, err := Point(state, conf, StubAddr)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != before {
		t.Errorf("Point returned %q", got)
	}
	now, _ := os.ReadFile(conf)
	if !PointsAtStub(now) || len(Nameservers(now)) != 0 || !strings.Contains(string(now), "search lan.example\noptions edns0 ndots:2\n") {
		t.Errorf("resolv.conf while up:\n%s", now)
	}
	if ns := Nameservers([]byte(before)); len(ns) != 2 || ns[0].String() != "10.1.2.1" {
		t.Errorf("nameservers before: %v", ns)
	}
	if _, err := Point(state, conf, StubAddr); err == nil {
		t.Error("a second Point over a pending journal was accepted")
	}
	res, err := Restore(state)
	if err != nil || !res.Restored || res.Changed {
		t.Fatalf("Restore = %+v, %v", res, err)
	}
	if b, _ := os.ReadFile(conf); string(b) != before {
		t.Errorf("after restore:\n%q\nwant\n%q", b, before)
	}
	if res, err := Restore(state); err != nil || res.Journaled {
		t.Errorf("second Restore = %+v, %v: want nothing to do", res, err)
	}
}

// Someone (NetworkManager, the user) rewrote the file while the tunnel was
// up: it is left as they wrote it, the old one is kept aside.
func TestRestoreLeavesSomeoneElsesChange(t *testing.T) {
	state, conf := setup(t)
	if _, err := Point(state, conf, StubAddr); err != nil {
		t.Fatal(err)
	}
	theirs := []byte("nameserver 9.9.9.9\n")
	os.WriteFile(conf, theirs, 0o644)
	res, err := Restore(state)
	if err != nil || !res.Changed || res.Restored {
		t.Fatalf("Restore = %+v, %v: want Changed", res, err)
	}
	if b, _ := os.ReadFile(conf); !bytes.Equal(b, theirs) {
		t.Errorf("their file was overwritten: %q", b)
	}
	if b, _ := os.ReadFile(res.SavedAs); string(b) != before {
		t.Errorf("saved copy %q", b)
	}
	if !strings.Contains(res.Message(), "not overwritten") {
		t.Errorf("message %q", res.Message())
	}
}

// A crash after the journal, before or in the middle of the write.
func TestRestoreAfterCrashPoints(t *testing.T) {
	state, conf := setup(t)
	ours := Content([]byte(before), StubAddr)
	for name, cur := range map[string][]byte{"before the write": []byte(before), "mid-write": ours[:17], "truncated": {}} {
		os.WriteFile(conf, []byte(before), 0o644)
		if err := writeJournal(state, Journal{Path: conf, Before: []byte(before), Ours: ours}); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(conf, cur, 0o644)
		res, err := Restore(state)
		if err != nil || !res.Restored {
			t.Errorf("%s: Restore = %+v, %v", name, res, err)
		}
		if b, _ := os.ReadFile(conf); string(b) != before {
			t.Errorf("%s: file %q", name, b)
		}
	}
	// No file before: restore removes ours.
	os.Remove(conf)
	if _, err := Point(state, conf, StubAddr); err != nil {
		t.Fatal(err)
	}
	if res, err := Restore(state); err != nil || !res.Restored {
		t.Fatalf("Restore = %+v, %v", res, err)
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Errorf("resolv.conf that did not exist before is still there: %v", err)
	}
}

// The LAN's resolver changes during a session: after SetUpstream, names
// outside the routing domains go to the new one only; Repoint makes the
// rewritten resolv.conf the journal's "before" and points it at the stub
// again, and Restore then puts back the new network's file.
func TestStubFollowsUpstreamAndRepoint(t *testing.T) {
	old, err := dnstest.Listen(map[string]netip.Addr{"www.example.com": netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	nu, err := dnstest.Listen(map[string]netip.Addr{"www.example.com": netip.MustParseAddr("192.0.2.2")})
	if err != nil {
		t.Fatal(err)
	}
	defer nu.Close()
	s, err := Start(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Domains: []string{"corp.internal"}, Upstream: []netip.AddrPort{old.Addr}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := answerA(ask(t, s.Addr(), "www.example.com", false)); got != "192.0.2.1" {
		t.Fatalf("before: %s", got)
	}
	s.SetUpstream([]netip.AddrPort{nu.Addr})
	if got := answerA(ask(t, s.Addr(), "www.example.com", false)); got != "192.0.2.2" {
		t.Errorf("after SetUpstream: %s, want the new LAN's 192.0.2.2", got)
	}
	if n, _ := old.Saw("www.example.com"); n != 1 {
		t.Errorf("the old resolver saw %d queries, want 1 (before the change)", n)
	}

	state, conf := setup(t)
	if _, err := Point(state, conf, StubAddr); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := Repoint(state, StubAddr); err != nil || changed {
		t.Fatalf("file still ours: changed=%v, %v", changed, err)
	}
	newLAN := []byte("nameserver 192.168.7.1\nsearch office\n")
	os.WriteFile(conf, newLAN, 0o644)
	before, changed, err := Repoint(state, StubAddr)
	if err != nil || !changed || string(before) != string(newLAN) {
		t.Fatalf("Repoint = %q, %v, %v", before, changed, err)
	}
	if now, _ := os.ReadFile(conf); !PointsAtStub(now) {
		t.Errorf("not pointed at the stub again: %q", now)
	}
	if _, err := Restore(state); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(conf); string(now) != string(newLAN) {
		t.Errorf("after restore %q, want the new network's %q", now, newLAN)
	}
}
