package splitdns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/clearpath-vpn/clearpath/internal/tstest/dbustest"
)

// fakeResolved is org.freedesktop.resolve1.Manager on a private bus: it
// records the calls and keeps per-link state as resolved would.
type fakeResolved struct {
	mu      sync.Mutex
	calls   []string
	dns     map[int32][]linkDNS
	domains map[int32][]linkDomain
	def     map[int32]bool
}

func (f *fakeResolved) rec(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeResolved) SetLinkDNS(idx int32, a []linkDNS) *dbus.Error {
	f.rec(fmt.Sprintf("SetLinkDNS %d %v", idx, a))
	f.mu.Lock()
	f.dns[idx] = a
	f.mu.Unlock()
	return nil
}

func (f *fakeResolved) SetLinkDomains(idx int32, d []linkDomain) *dbus.Error {
	f.rec(fmt.Sprintf("SetLinkDomains %d %v", idx, d))
	f.mu.Lock()
	f.domains[idx] = d
	f.mu.Unlock()
	return nil
}

func (f *fakeResolved) SetLinkDefaultRoute(idx int32, b bool) *dbus.Error {
	f.rec(fmt.Sprintf("SetLinkDefaultRoute %d %v", idx, b))
	f.mu.Lock()
	f.def[idx] = b
	f.mu.Unlock()
	return nil
}

func (f *fakeResolved) RevertLink(idx int32) *dbus.Error {
	f.rec(fmt.Sprintf("RevertLink %d", idx))
	f.mu.Lock()
	delete(f.dns, idx)
	delete(f.domains, idx)
	delete(f.def, idx)
	f.mu.Unlock()
	return nil
}

// GetLink returns a link's object path as resolved does (links 1 to 9
// exist; others do not).
func (f *fakeResolved) GetLink(idx int32) (dbus.ObjectPath, *dbus.Error) {
	if idx < 1 || idx > 9 {
		return "", dbus.NewError("org.freedesktop.resolve1.NoSuchLink", []any{"no such link"})
	}
	return linkPath(idx), nil
}

func linkPath(idx int32) dbus.ObjectPath {
	return dbus.ObjectPath(fmt.Sprintf("%s/link/_3%d", resolvedPath, idx))
}

// fakeLink is org.freedesktop.DBus.Properties of one link's object.
type fakeLink struct {
	f   *fakeResolved
	idx int32
}

func (l fakeLink) Get(iface, prop string) (dbus.Variant, *dbus.Error) {
	if iface != "org.freedesktop.resolve1.Link" || prop != "Domains" {
		return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{prop})
	}
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	d := l.f.domains[l.idx]
	if d == nil {
		d = []linkDomain{}
	}
	return dbus.MakeVariant(d), nil
}

// privateBus runs a dbus-daemon of its own (never the machine's buses)
// with a fake resolved on it, and returns a client connection.
func privateBus(t *testing.T) (*dbus.Conn, *fakeResolved) {
	t.Helper()
	d, err := dbustest.New(t.TempDir())
	if errors.Is(err, dbustest.ErrNotInstalled) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Cmd.Process.Kill(); d.Cmd.Wait() })
	addr, err := d.Address(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f := &fakeResolved{dns: map[int32][]linkDNS{}, domains: map[int32][]linkDomain{}, def: map[int32]bool{}}
	if err := srv.Export(f, resolvedPath, resolvedIface); err != nil {
		t.Fatal(err)
	}
	for i := int32(1); i <= 9; i++ {
		if err := srv.Export(fakeLink{f, i}, linkPath(i), "org.freedesktop.DBus.Properties"); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := srv.RequestName(resolvedName, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", resolvedName, r, err)
	}
	cli, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli, f
}

// The link gets the servers (family + bytes), its routing domains as
// route-only ("~corp.internal"), default route only for all; journaled
// first; Restore reverts it; a full tunnel without domains adds "~.".
func TestResolvedLinkSettingsOverDBus(t *testing.T) {
	cli, f := privateBus(t)
	state := t.TempDir()
	r := NewResolved(cli)
	servers := []netip.Addr{netip.MustParseAddr("10.10.0.10"), netip.MustParseAddr("fd10:10::53")}
	if err := PointResolved(state, r, "lo", 1, servers, []string{"corp.internal"}, false); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	got := fmt.Sprint(f.dns[1], f.domains[1], f.def[1])
	f.mu.Unlock()
	want := "[{2 [10 10 0 10]} {10 [253 16 0 16 0 0 0 0 0 0 0 0 0 0 0 83]}] [{corp.internal true}] false"
	if got != want {
		t.Errorf("link 1 state %s\nwant %s", got, want)
	}
	p, err := Pending(state)
	j := p.DNS
	if err != nil || j == nil || j.Mode != ModeResolved || j.Link != "lo" || j.Index != 1 {
		t.Fatalf("journal %+v, %v", j, err)
	}
	// Restore reverts the link (through the test's bus; "lo" is index 1).
	old := revertResolved
	revertResolved = func(j Journal) error { return r.Revert(j.Index) }
	defer func() { revertResolved = old }()
	res, err := Restore(state)
	if err != nil || !res.Restored || !strings.Contains(res.Message(), "reverted") {
		t.Fatalf("Restore = %+v (%q), %v", res, res.Message(), err)
	}
	f.mu.Lock()
	_, left := f.dns[1]
	calls := slices.Clone(f.calls)
	f.mu.Unlock()
	if left {
		t.Errorf("link 1 keeps DNS after Restore; calls %v", calls)
	}
	if _, doms := LinkArgs(nil, nil, true); len(doms) != 1 || doms[0] != (linkDomain{".", true}) {
		t.Errorf("all: domains %v, want ~.", doms)
	}
	if err := r.SetLink(7, servers[:1], nil, true); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.def[7] || len(f.domains[7]) != 1 || f.domains[7][0].Domain != "." {
		t.Errorf("full tunnel link: default route %v, domains %v", f.def[7], f.domains[7])
	}
}

// Another VPN's link claims our routing domain in resolved: Claims reads
// every link but ours over D-Bus, Diagnose names the link; resolved's
// "~." fallback on the LAN link is not a conflict for a narrower domain,
// and with nobody else claiming, nothing is reported.
func TestResolvedDomainConflict(t *testing.T) {
	cli, _ := privateBus(t)
	r := NewResolved(cli)
	servers := []netip.Addr{netip.MustParseAddr("10.10.0.10")}
	if err := r.SetLink(5, servers, []string{"corp.internal"}, false); err != nil { // ours
		t.Fatal(err)
	}
	if err := r.SetLink(2, []netip.Addr{netip.MustParseAddr("192.168.1.1")}, nil, true); err != nil { // LAN: ~.
		t.Fatal(err)
	}
	links := map[int]string{1: "lo", 2: "eth0", 5: "wg0", 7: "tun0", 42: "gone0"}
	in := DoctorInput{ResolvConf: []byte("nameserver 127.0.0.53\n"), Domains: []string{"corp.internal"}, Servers: []string{"10.10.0.10"}}
	claims, err := r.Claims(links, 5)
	if err != nil {
		t.Fatal(err)
	}
	in.Claims = claims
	if fs := Diagnose(in); len(fs) != 0 {
		t.Fatalf("no other VPN: findings %v (claims %v)", fs, claims)
	}
	if err := r.SetLink(7, []netip.Addr{netip.MustParseAddr("172.16.0.53")}, []string{"eng.corp.internal"}, false); err != nil { // the other VPN
		t.Fatal(err)
	}
	if in.Claims, err = r.Claims(links, 5); err != nil {
		t.Fatal(err)
	}
	fs := Diagnose(in)
	if len(fs) != 1 || fs[0].ID != FindingConflict || len(fs[0].Evidence) != 1 ||
		!strings.Contains(fs[0].Evidence[0].Text, "tun0 (ifindex 7) claims eng.corp.internal") {
		t.Fatalf("findings %+v, want one %s naming tun0", fs, FindingConflict)
	}
	// tun0 is alive (another VPN in use): no fix, and the finding says why.
	if RevertFixable(fs[0]) || len(FixableClaims(in)) != 0 || !strings.Contains(fs[0].Explanation, "No --fix") {
		t.Errorf("live link: fixable %v, claims %v, explanation %q", RevertFixable(fs[0]), FixableClaims(in), fs[0].Explanation)
	}
}

// The other claimant is a dead link (its VPN is gone, its DNS settings
// stayed): the conflict is fixable by reverting that link, and only that
// one; RevertLink over D-Bus (the fake resolve1) drops its domains, and
// the next check finds no conflict. A live claim beside it is not
// reverted and the finding says so.
func TestResolvedDeadLinkConflictRevert(t *testing.T) {
	cli, f := privateBus(t)
	r := NewResolved(cli)
	a := netip.MustParseAddr
	if err := r.SetLink(5, []netip.Addr{a("10.10.0.10")}, []string{"corp.internal"}, false); err != nil { // ours
		t.Fatal(err)
	}
	if err := r.SetLink(7, []netip.Addr{a("172.16.0.53")}, []string{"corp.internal"}, false); err != nil { // dead VPN
		t.Fatal(err)
	}
	if err := r.SetLink(8, []netip.Addr{a("172.17.0.53")}, []string{"eng.corp.internal"}, false); err != nil { // live VPN
		t.Fatal(err)
	}
	links := map[int]string{5: "wg0", 7: "tun0", 8: "tun1"}
	dead := map[int]string{7: "a tun no process holds"}
	claims := func() []DomainClaim {
		cs, err := r.Claims(links, 5)
		if err != nil {
			t.Fatal(err)
		}
		for i := range cs {
			cs[i].Dead = dead[cs[i].Index]
		}
		return cs
	}
	in := DoctorInput{ResolvConf: []byte("nameserver 127.0.0.53\n"), Domains: []string{"corp.internal"}, Servers: []string{"10.10.0.10"}, Claims: claims()}
	fs := Diagnose(in)
	if len(fs) != 1 || !RevertFixable(fs[0]) || fs[0].Ours || !strings.Contains(fs[0].Commands[0], "resolvectl revert 7") ||
		!strings.Contains(fs[0].Explanation, "no --fix for them") || !strings.Contains(fs[0].Evidence[0].Text, "dead: a tun no process holds") {
		t.Fatalf("dead + live claim: %+v", fs)
	}
	fix := FixableClaims(in)
	if len(fix) != 1 || fix[0].Index != 7 {
		t.Fatalf("fixable claims %+v, want tun0 (7) only", fix)
	}
	for _, c := range fix {
		if err := r.Revert(c.Index); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	calls := slices.Clone(f.calls)
	_, live := f.domains[8]
	f.mu.Unlock()
	if !slices.Contains(calls, "RevertLink 7") || slices.Contains(calls, "RevertLink 8") || slices.Contains(calls, "RevertLink 5") || !live {
		t.Fatalf("calls %v (tun1 domains kept %v): only the dead link may be reverted", calls, live)
	}
	in.Claims = claims()
	fs = Diagnose(in)
	if len(fs) != 1 || RevertFixable(fs[0]) || strings.Contains(fs[0].Evidence[0].Text, "tun0") {
		t.Fatalf("after revert: %+v, want only tun1's live claim, not fixable", fs)
	}
	delete(links, 8)
	in.Claims = claims()
	if fs := Diagnose(in); len(fs) != 0 {
		t.Fatalf("dead claim reverted, live one gone: findings %+v", fs)
	}
}
