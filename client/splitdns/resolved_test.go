package splitdns

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
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

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// privateBus runs a dbus-daemon of its own (never the machine's buses)
// with a fake resolved on it, and returns a client connection.
func privateBus(t *testing.T) (*dbus.Conn, *fakeResolved) {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon not installed (apt-get install dbus)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, filepath.Join(dir, "bus"))), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "dbus-daemon", "--config-file="+conf, "--nofork", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon address: %v", err)
	}
	addr = strings.TrimSpace(addr)
	srv, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f := &fakeResolved{dns: map[int32][]linkDNS{}, domains: map[int32][]linkDomain{}, def: map[int32]bool{}}
	if err := srv.Export(f, resolvedPath, resolvedIface); err != nil {
		t.Fatal(err)
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
	j, err := Pending(state)
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
