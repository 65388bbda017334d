package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/routestest"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
)

// fakeNet is an in-memory gateway host for unit tests of Serve: routes
// through routestest, WireGuard devices as records (a tunnel is a link in
// the routes System, its configuration what wgctrl would have set), and a
// host guard that records what it holds. Not wireguard-go's tun/tuntest:
// the gateway configures devices through wgctrl over UAPI sockets in
// /var/run/wireguard, which only root may create.
type fakeNet struct {
	sys *routestest.System

	mu         sync.Mutex
	devices    map[string]*wgtypes.Device
	failCreate map[string]error
	// upPort moves a device to another listen port when it comes up, as
	// wireguard-go did when a link event had found the port taken.
	upPort   map[string]int
	guard    *hostguard.Spec
	guardOps []string
	wgClosed bool
}

func newFakeNet(sys *routestest.System) *fakeNet {
	return &fakeNet{sys: sys, devices: map[string]*wgtypes.Device{}, failCreate: map[string]error{}, upPort: map[string]int{}}
}

func (f *fakeNet) deps() *netDeps {
	return &netDeps{
		sys: func() (routes.System, error) { return f.sys, nil },
		wg: func() (wgClient, error) {
			f.mu.Lock()
			f.wgClosed = false
			f.mu.Unlock()
			return fakeWG{f}, nil
		},
		newTunnel: func(n config.Network, _ *slog.Logger) (tunnel, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if err := f.failCreate[n.Interface]; err != nil {
				return nil, err
			}
			if _, ok := f.devices[n.Interface]; ok {
				return nil, fmt.Errorf("interface %s: a WireGuard device of that name already runs", n.Interface)
			}
			f.devices[n.Interface] = &wgtypes.Device{Name: n.Interface, Type: wgtypes.Userspace}
			f.sys.AddLink(routes.Link{Name: n.Interface, Type: "tun", MTU: n.MTU})
			return &fakeTunnel{f: f, name: n.Interface}, nil
		},
		guard: fakeGuard{f},
	}
}

func (f *fakeNet) deviceNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.devices {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

type fakeTunnel struct {
	f    *fakeNet
	name string
}

func (t *fakeTunnel) Up() error {
	t.f.mu.Lock()
	if p, ok := t.f.upPort[t.name]; ok {
		t.f.devices[t.name].ListenPort = p
	}
	t.f.mu.Unlock()
	t.f.sys.AddLink(routes.Link{Name: t.name, Type: "tun", Up: true})
	return nil
}

func (t *fakeTunnel) Close() {
	t.f.mu.Lock()
	delete(t.f.devices, t.name)
	t.f.mu.Unlock()
	t.f.sys.RemoveLink(t.name) // with its addresses, as the kernel does
}

type fakeWG struct{ f *fakeNet }

func (w fakeWG) ConfigureDevice(name string, c wgtypes.Config) error {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	d, ok := w.f.devices[name]
	if !ok {
		return fmt.Errorf("configure %s: no such device", name)
	}
	if c.ListenPort != nil {
		for _, o := range w.f.devices {
			if o != d && o.ListenPort == *c.ListenPort {
				return fmt.Errorf("configure %s: listen port %d in use", name, *c.ListenPort)
			}
		}
		d.ListenPort = *c.ListenPort
	}
	if c.PrivateKey != nil {
		d.PrivateKey, d.PublicKey = *c.PrivateKey, c.PrivateKey.PublicKey()
	}
	if c.ReplacePeers {
		d.Peers = nil
	}
	for _, p := range c.Peers {
		d.Peers = slices.DeleteFunc(d.Peers, func(x wgtypes.Peer) bool { return x.PublicKey == p.PublicKey })
		if !p.Remove {
			d.Peers = append(d.Peers, wgtypes.Peer{PublicKey: p.PublicKey, AllowedIPs: p.AllowedIPs})
		}
	}
	return nil
}

func (w fakeWG) Device(name string) (*wgtypes.Device, error) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	d, ok := w.f.devices[name]
	if !ok {
		return nil, os.ErrNotExist
	}
	c := *d
	c.Peers = slices.Clone(d.Peers)
	return &c, nil
}

func (w fakeWG) Close() error {
	w.f.mu.Lock()
	w.f.wgClosed = true
	w.f.mu.Unlock()
	return nil
}

type fakeGuard struct{ f *fakeNet }

func (g fakeGuard) Apply(spec hostguard.Spec) error {
	g.f.mu.Lock()
	defer g.f.mu.Unlock()
	g.f.guard = &spec
	g.f.guardOps = append(g.f.guardOps, "apply")
	return nil
}

func (g fakeGuard) Remove(*slog.Logger) {
	g.f.mu.Lock()
	defer g.f.mu.Unlock()
	g.f.guard = nil
	g.f.guardOps = append(g.f.guardOps, "remove")
}

func (g fakeGuard) Exists() (bool, error) {
	g.f.mu.Lock()
	defer g.f.mu.Unlock()
	return g.f.guard != nil, nil
}

// unitGateway runs Serve against a fakeNet in a goroutine.
type unitGateway struct {
	t       *testing.T
	f       *fakeNet
	cfgPath string
	dir     string
	reload  chan struct{}
	cancel  context.CancelFunc
	done    chan error
	result  error
	ended   bool
	mu      sync.Mutex
	points  []string
}

// unitListen remembers the API address of each unit gateway (by its
// directory) so a reload's configuration keeps it.
var unitListen sync.Map

// listenFor is a loopback TCP address free a moment ago, the same for one
// directory: the configuration refuses port 0 (a client could not be told
// the port).
func listenFor(dir string) string {
	if a, ok := unitListen.Load(dir); ok {
		return a.(string)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	a, _ := unitListen.LoadOrStore(dir, ln.Addr().String())
	return a.(string)
}

// listenOf is the API address for dir's configuration; "@DIR@" (filled
// in by startUnit) gets a placeholder filled in with it.
func listenOf(dir string) string {
	if dir == "@DIR@" {
		return "@LISTEN@"
	}
	return listenFor(dir)
}

func unitConfig(dir string, nets ...labNet) string {
	l := &gwLab{flows: "off"}
	return strings.Replace(l.config(dir, listenOf(dir), nets...), "metrics_listen: \"off\"\n", "metrics_listen: \"off\"\nadmin_socket: "+filepath.Join(dir, "a.sock")+"\n", 1)
}

func startUnit(t *testing.T, f *fakeNet, doc string) *unitGateway {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	u := &unitGateway{t: t, f: f, dir: dir, cfgPath: filepath.Join(dir, "gateway.yaml"), reload: make(chan struct{}, 1), done: make(chan error, 1)}
	u.write(strings.ReplaceAll(strings.ReplaceAll(doc, "@DIR@", dir), "@LISTEN@", listenFor(dir)))
	cfg, err := config.Load(u.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	u.cancel = cancel
	hooks := &TestHooks{NetnsLock: fmt.Sprintf("@clearpath-gateway-unit-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-")),
		Step: func(p string) { u.mu.Lock(); u.points = append(u.points, p); u.mu.Unlock() }}
	go func() {
		u.done <- Serve(ctx, Options{Config: cfg, ConfigPath: u.cfgPath, Log: quiet(), Reload: u.reload, Hooks: hooks, deps: f.deps()})
	}()
	t.Cleanup(func() { u.stop() })
	return u
}

func (u *unitGateway) write(doc string) {
	if err := os.WriteFile(u.cfgPath, []byte(doc), 0o600); err != nil {
		u.t.Fatal(err)
	}
}

func (u *unitGateway) trace() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.points)
}

// waitPoint waits for hook point p, or for Serve to return (its error).
func (u *unitGateway) waitPoint(p string) error {
	u.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if slices.Contains(u.trace(), p) {
			return nil
		}
		select {
		case err := <-u.done:
			u.done <- err
			return fmt.Errorf("serve returned: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	u.t.Fatalf("no %q after 10 s: %v", p, u.trace())
	return nil
}

// stop cancels Serve's context and returns what it returned.
func (u *unitGateway) stop() error {
	u.cancel()
	return u.wait()
}

// wait returns what Serve returned, once it has.
func (u *unitGateway) wait() error {
	if u.ended {
		return u.result
	}
	select {
	case u.result = <-u.done:
		u.ended = true
		return u.result
	case <-time.After(10 * time.Second):
		u.t.Error("Serve did not return in 10 s")
		return nil
	}
}

// TestServeUnit runs the whole start, a reload (the allow list grows, the
// table moves, a network is added) and the stop against the in-memory
// host, without root: the policy, devices, forwarding and host guard come
// and go exactly.
func TestServeUnit(t *testing.T) {
	sys := host(t)
	sys.RemoveLink("wg-eng")
	sys.RemoveLink("wg-ops")
	before, _ := sys.Snapshot()
	f := newFakeNet(sys)
	u := startUnit(t, f, unitConfig("@DIR@", labNet{iface: "wga", port: 51820, table: 1000, allow: "10.10.0.0/16"}))
	if err := u.waitPoint("start:serving"); err != nil {
		t.Fatal(err)
	}
	got := owned(t, sys)
	for _, w := range []string{"throw 10.10.0.0/16 table 1000 proto 198", "blackhole 0.0.0.0/0 table 1000 proto 198", "wga 100.64.0.1/24", "wga fd00:64::1/64"} {
		if !slices.Contains(got, w) {
			t.Errorf("after start, missing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	if sys.Sysctl("net/ipv4/ip_forward") != "1" || f.guard == nil || !slices.Equal(f.deviceNames(), []string{"wga"}) {
		t.Fatalf("after start: forwarding %s, guard %v, devices %v", sys.Sysctl("net/ipv4/ip_forward"), f.guard, f.deviceNames())
	}
	if d, _ := (fakeWG{f}).Device("wga"); d.ListenPort != 51820 || d.PublicKey == (wgtypes.Key{}) {
		t.Errorf("wga not configured: %+v", d)
	}

	u.write(unitConfig(u.dir, labNet{iface: "wga", port: 51820, table: 1010, allow: "10.10.0.0/16, 10.11.0.0/16"},
		labNet{iface: "wgb", port: 51821, table: 1001, allow: "10.20.0.0/16"}))
	u.reload <- struct{}{}
	if err := u.waitPoint("start:reload: network policy"); err != nil {
		t.Fatal(err)
	}
	got = owned(t, sys)
	for _, w := range []string{"throw 10.11.0.0/16 table 1010 proto 198", "throw 10.20.0.0/16 table 1001 proto 198", "wgb 100.64.1.1/24"} {
		if !slices.Contains(got, w) {
			t.Errorf("after reload, missing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	for _, s := range got {
		if strings.Contains(s, "table 1000") {
			t.Errorf("after the table moved, left in 1000: %s", s)
		}
	}
	if !slices.Equal(f.deviceNames(), []string{"wga", "wgb"}) || len(f.guard.Networks) != 2 {
		t.Errorf("after reload: devices %v, guard %+v", f.deviceNames(), f.guard)
	}

	if err := u.stop(); err != nil {
		t.Fatal(err)
	}
	after, _ := sys.Snapshot()
	if d := routes.Compare(before, after); !d.Empty() || len(after.Addresses) != 0 {
		t.Fatalf("after stop: %+v, addresses %v", d, after.Addresses)
	}
	if sys.Sysctl("net/ipv4/ip_forward") != "0" || sys.Sysctl("net/ipv6/conf/all/forwarding") != "0" || f.guard != nil || len(f.deviceNames()) != 0 || !f.wgClosed {
		t.Fatalf("after stop: forwarding %s, guard %v, devices %v, wgctrl closed %v", sys.Sysctl("net/ipv4/ip_forward"), f.guard, f.deviceNames(), f.wgClosed)
	}
	if _, err := os.Stat(filepath.Join(u.dir, RoutesDir, "journal")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal left after a clean stop: %v", err)
	}
}

// A start whose second device cannot be made undoes exactly the steps
// before it, newest first: the first device, the flow filter, wgctrl, the
// host guard, the route session (forwarding back), the listeners, the
// store, the lock.
func TestServeUnitFailedStartUndoesEarlierSteps(t *testing.T) {
	sys := host(t)
	sys.RemoveLink("wg-eng")
	sys.RemoveLink("wg-ops")
	before, _ := sys.Snapshot()
	f := newFakeNet(sys)
	f.failCreate["wgb"] = errors.New("create TUN wgb: device busy")
	u := startUnit(t, f, unitConfig("@DIR@", labNet{iface: "wga", port: 51820, table: 1000, allow: "10.10.0.0/16"},
		labNet{iface: "wgb", port: 51821, table: 1001, allow: "10.20.0.0/16"}))
	err := u.wait()
	if err == nil || !strings.Contains(err.Error(), "networks[1] (n1): create TUN wgb: device busy; nothing is left set up") {
		t.Fatalf("Serve: %v", err)
	}
	trace := u.trace()
	var starts, undos []string
	for _, p := range trace {
		if s, ok := strings.CutPrefix(p, "start:"); ok {
			starts = append(starts, s)
		} else if s, ok := strings.CutPrefix(p, "undo:"); ok {
			undos = append(undos, s)
		}
	}
	wantStarts := []string{"instance lock", "store", "API listener", "route session", "forwarding", "host guard", "wgctrl", "flow filter", "devices", "network n0"}
	wantUndos := []string{"devices", "flow filter", "wgctrl", "host guard", "route session", "API listener", "store", "instance lock"}
	if !slices.Equal(starts, wantStarts) || !slices.Equal(undos, wantUndos) {
		t.Fatalf("steps %v\nundos %v\nwant %v\nand  %v", starts, undos, wantStarts, wantUndos)
	}
	after, _ := sys.Snapshot()
	if d := routes.Compare(before, after); !d.Empty() || len(after.Addresses) != 0 || sys.Sysctl("net/ipv4/ip_forward") != "0" {
		t.Fatalf("left behind: %+v %v forwarding %s", d, after.Addresses, sys.Sysctl("net/ipv4/ip_forward"))
	}
	if f.guard != nil || len(f.deviceNames()) != 0 || !slices.Equal(f.guardOps, []string{"apply", "remove"}) {
		t.Fatalf("guard %v (ops %v), devices %v", f.guard, f.guardOps, f.deviceNames())
	}
}

// A device that comes up on another port than its listen_port (a random
// one: wireguard-go after a link event found the port taken) fails the
// start, which undoes everything: no network serves where no client looks.
func TestServeUnitDeviceOnOtherPortFails(t *testing.T) {
	sys := host(t)
	sys.RemoveLink("wg-eng")
	sys.RemoveLink("wg-ops")
	f := newFakeNet(sys)
	f.upPort["wgb"] = 40123
	u := startUnit(t, f, unitConfig("@DIR@", labNet{iface: "wga", port: 51820, table: 1000, allow: "10.10.0.0/16"},
		labNet{iface: "wgb", port: 51821, table: 1001, allow: "10.20.0.0/16"}))
	err := u.wait()
	if err == nil || !strings.Contains(err.Error(), "networks[1] (n1): wgb listens on UDP port 40123, not listen_port 51821; nothing is left set up") {
		t.Fatalf("Serve: %v", err)
	}
	if names := f.deviceNames(); len(names) != 0 {
		t.Fatalf("devices left: %v", names)
	}
}

// A foreign route in a network's table refuses the start before the route
// session, the guard or any device: nothing is applied.
func TestServeUnitRefusesForeignTable(t *testing.T) {
	sys := host(t)
	foreign := routes.Route{Family: routes.FamilyV4, Table: 1000, Type: routes.TypeUnicast, Dst: netipPrefix("10.99.0.0/16"), Device: "eth0", Protocol: 4}
	sys.Apply(routes.Change{Op: routes.OpAddRoute, Route: &foreign})
	sys.Applied = nil
	f := newFakeNet(sys)
	u := startUnit(t, f, unitConfig("@DIR@", labNet{iface: "wga", port: 51820, table: 1000, allow: "10.10.0.0/16"}))
	err := u.wait()
	if err == nil || !strings.Contains(err.Error(), `table 1000 holds routes the gateway does not own (not protocol 198): "10.99.0.0/16 dev eth0 table 1000 proto 4"`) {
		t.Fatalf("Serve: %v", err)
	}
	if len(sys.Applied) != 0 || len(f.guardOps) != 0 || len(f.deviceNames()) != 0 {
		t.Fatalf("touched: applied %v guard %v devices %v", sys.Applied, f.guardOps, f.deviceNames())
	}
}

// A reload that fails is rolled back: when the new device cannot be made
// (before any policy changed), and when the kernel refuses a rule half way
// through the policy (after the table's new routes were added). The
// moved network is back in its table, the added one's policy and device
// are gone, and the gateway keeps serving the running configuration.
func TestServeUnitFailedReloadRollsBack(t *testing.T) {
	for _, c := range []struct {
		name string
		fail func(f *fakeNet)
	}{
		{"device", func(f *fakeNet) { f.failCreate["wgb"] = errors.New("create TUN wgb: device busy") }},
		{"policy", func(f *fakeNet) {
			f.sys.Fail = func(c routes.Change) error {
				if c.Op == routes.OpAddRule && c.Rule.Table == 1010 && c.Rule.Family == routes.FamilyV6 {
					return errors.New("rule table full")
				}
				return nil
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sys := host(t)
			sys.RemoveLink("wg-eng")
			sys.RemoveLink("wg-ops")
			f := newFakeNet(sys)
			u := startUnit(t, f, unitConfig("@DIR@", labNet{iface: "wga", port: 51820, table: 1000, allow: "10.10.0.0/16"}))
			if err := u.waitPoint("start:serving"); err != nil {
				t.Fatal(err)
			}
			running := owned(t, sys)
			c.fail(f)
			u.write(unitConfig(u.dir, labNet{iface: "wga", port: 51820, table: 1010, allow: "10.10.0.0/16, 10.11.0.0/16"},
				labNet{iface: "wgb", port: 51821, table: 1001, allow: "10.20.0.0/16"}))
			u.reload <- struct{}{}
			if err := u.waitPoint("undo:reload: update n0"); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !slices.Equal(owned(t, sys), running) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if got := owned(t, sys); !slices.Equal(got, running) {
				t.Fatalf("after a failed reload:\n%s\nwant the running policy:\n%s", strings.Join(got, "\n"), strings.Join(running, "\n"))
			}
			if c.name == "policy" && !slices.ContainsFunc(sys.Applied, func(ch routes.Change) bool { return ch.Route != nil && ch.Route.Table == 1010 }) {
				t.Fatal("the failure came before any policy change: the case tests nothing")
			}
			if !slices.Equal(f.deviceNames(), []string{"wga"}) {
				t.Fatalf("devices %v", f.deviceNames())
			}
			if slices.Contains(u.trace(), "start:reload: network policy") {
				t.Fatal("the failed reload reported its policy applied")
			}
			sys.Fail = nil
			if err := u.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
