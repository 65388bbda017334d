package agent

// The rig runs an Agent without root: routes on routestest's in-memory
// System, the tunnel a real wireguard-go device over tun/tuntest and
// conn/bindtest paired with a second one playing the gateway, the gateway's
// API an httptest TLS server that seals registrations as the gateway does,
// and a clock the test moves.

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/tunnel"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/routestest"
	"github.com/clearpath-vpn/clearpath/server/api"
)

var (
	clientAddr = netip.MustParseAddr("100.64.0.2")
	gwAddr     = netip.MustParseAddr("100.64.0.1")
	internet   = netip.MustParseAddr("198.51.100.7") // outside every pushed prefix
	inside     = netip.MustParseAddr("10.20.3.4")    // inside the pushed 10.20.0.0/16
	lanHost    = netip.MustParseAddr("192.168.1.50")
)

// hostSnapshot is a laptop on a home LAN: eth0 192.168.1.10/24, default
// via 192.168.1.1 (DHCP), the usual local table and rules.
func hostSnapshot() *routes.Snapshot {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	return &routes.Snapshot{OS: "linux",
		Links:     []routes.Link{{Index: 1, Name: "lo", Type: "loopback", Up: true}, {Index: 2, Name: "eth0", Type: "ether", Up: true, MTU: 1500}},
		Addresses: []routes.Address{{Device: "lo", Prefix: p("127.0.0.1/8")}, {Device: "eth0", Prefix: p("192.168.1.10/24")}},
		Routes: []routes.Route{
			{Family: 4, Table: 254, Type: routes.TypeUnicast, Dst: p("0.0.0.0/0"), Gateway: a("192.168.1.1"), Device: "eth0", Protocol: 16, Metric: 100},
			{Family: 4, Table: 254, Type: routes.TypeUnicast, Dst: p("192.168.1.0/24"), Device: "eth0", Src: a("192.168.1.10"), Protocol: 2, Scope: 253, Metric: 100},
			{Family: 4, Table: 255, Type: routes.TypeLocal, Dst: p("127.0.0.0/8"), Device: "lo", Src: a("127.0.0.1"), Protocol: 2, Scope: 254},
			{Family: 4, Table: 255, Type: routes.TypeLocal, Dst: p("192.168.1.10/32"), Device: "eth0", Src: a("192.168.1.10"), Protocol: 2, Scope: 254},
		},
		Rules: []routes.Rule{
			{Family: 4, Priority: 0, Table: 255, Action: "lookup", SuppressPrefixLen: -1},
			{Family: 4, Priority: 32766, Table: 254, Action: "lookup", SuppressPrefixLen: -1},
			{Family: 4, Priority: 32767, Table: 253, Action: "lookup", SuppressPrefixLen: -1},
		},
	}
}

// fakeClock is the agent's clock: After channels fire when Advance passes
// their deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []clockWaiter
}

type clockWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, clockWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Waiting is how many After channels have not fired.
func (c *fakeClock) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waiters = slices.DeleteFunc(c.waiters, func(w clockWaiter) bool {
		if w.at.After(c.now) {
			return false
		}
		w.ch <- c.now
		return true
	})
}

// fakeGateway is the gateway's API (networks, sealed registration) and its
// WireGuard device, which answers pings to gwAddr through the tunnel.
type fakeGateway struct {
	t      *testing.T
	srv    *httptest.Server
	caPEM  []byte
	netKey wgtypes.Key // the network's key: also the gateway peer's WireGuard key
	clock  *fakeClock
	tun    *tuntest.ChannelTUN
	dev    *device.Device

	mu       sync.Mutex
	ttl      time.Duration
	status   int    // answer registrations with this HTTP status (0: accept)
	endpoint string // the WireGuard endpoint it pushes
	allowed  []string
	addrs    []string              // the device's tunnel addresses
	spoil    func(*api.PeerConfig) // changes the answer
	mute     bool                  // drop pings (the tunnel carries nothing)
	issuer   string                // the identity provider its discovery names
	regs     []string              // public keys registered, in order
	tokens   []string              // bearer tokens seen on registration
}

func newFakeGateway(t *testing.T, bind conn.Bind, clock *fakeClock) *fakeGateway {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGateway{t: t, netKey: k, clock: clock, ttl: time.Hour, endpoint: "203.0.113.10:1",
		allowed: []string{"10.20.0.0/16", "100.64.0.1/32"}, addrs: []string{clientAddr.String() + "/32"}, tun: tuntest.NewChannelTUN()}
	g.dev = device.NewDevice(g.tun.TUN(), bind, device.NewLogger(device.LogLevelSilent, ""))
	if err := g.dev.IpcSet("private_key=" + hex.EncodeToString(k[:]) + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := g.dev.Up(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go g.answerPings(done)
	g.srv = httptest.NewTLSServer(http.HandlerFunc(g.serveHTTP))
	g.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.srv.Certificate().Raw})
	t.Cleanup(func() {
		g.srv.Close()
		close(done)
		g.dev.Close()
	})
	return g
}

func (g *fakeGateway) set(f func(g *fakeGateway)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

func (g *fakeGateway) registrations() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.regs)
}

// answerPings turns each ICMPv4 echo request the device delivers into a
// reply sent back through the tunnel.
func (g *fakeGateway) answerPings(done chan struct{}) {
	for {
		var pkt []byte
		select {
		case <-done:
			return
		case pkt = <-g.tun.Inbound:
		}
		g.mu.Lock()
		mute := g.mute
		g.mu.Unlock()
		if mute || len(pkt) < 28 || pkt[0]>>4 != 4 || pkt[9] != 1 || pkt[20] != 8 {
			continue
		}
		reply := slices.Clone(pkt)
		copy(reply[12:16], pkt[16:20])
		copy(reply[16:20], pkt[12:16])
		reply[20] = 0 // echo reply
		reply[22], reply[23] = 0, 0
		binary.BigEndian.PutUint16(reply[22:], icmpChecksum(reply[20:]))
		select {
		case g.tun.Outbound <- reply:
		case <-done:
			return
		}
	}
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func (g *fakeGateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.URL.Path == api.PathDiscovery {
		json.NewEncoder(w).Encode(api.Discovery{Issuer: g.issuer, ClientID: "clearpath", APIVersion: api.APIVersion})
		return
	}
	if tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "); tok == "" || tok == "expired" {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(api.Error{Error: "invalid_token", Message: "the token is not valid"})
		return
	}
	switch r.URL.Path {
	case api.PathNetworks:
		json.NewEncoder(w).Encode(api.NetworkList{Subject: "alice-id", Networks: []api.NetworkInfo{{Name: "eng", PublicKey: g.netKey.PublicKey().String()}}})
	case api.PathPeers:
		if g.status != 0 {
			w.WriteHeader(g.status)
			json.NewEncoder(w).Encode(api.Error{Error: "refused", Message: "registration refused by the test gateway"})
			return
		}
		var req api.RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		pub, err := api.ParseKey(req.PublicKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, _, err := api.OpenRegistration(req, pub, g.netKey); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		psk, _ := wgtypes.GenerateKey()
		sealed, err := api.SealSecret(psk, g.netKey, pub)
		if err != nil {
			g.t.Errorf("seal: %v", err)
		}
		var peer strings.Builder
		fmt.Fprintf(&peer, "public_key=%s\npreshared_key=%s\n", hex.EncodeToString(pub[:]), hex.EncodeToString(psk[:]))
		for _, a := range g.addrs {
			fmt.Fprintf(&peer, "allowed_ip=%s\n", a)
		}
		if err := g.dev.IpcSet(peer.String()); err != nil {
			g.t.Errorf("gateway device: %v", err)
		}
		g.regs = append(g.regs, req.PublicKey)
		g.tokens = append(g.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		pc := api.PeerConfig{PeerID: fmt.Sprintf("peer-%d", len(g.regs)), Network: "eng", Addresses: slices.Clone(g.addrs), MTU: 1420,
			Gateway:   api.GatewayPeer{PublicKey: g.netKey.PublicKey().String(), Endpoint: g.endpoint, AllowedIPs: slices.Clone(g.allowed), Addresses: []string{gwAddr.String()}, Version: "test"},
			ExpiresAt: g.clock.Now().Add(g.ttl).UTC(), Session: &sealed, User: "alice-id"}
		if g.spoil != nil {
			g.spoil(&pc)
		}
		json.NewEncoder(w).Encode(pc)
	default:
		http.NotFound(w, r)
	}
}

// rig is an Agent with its fakes.
type rig struct {
	t     *testing.T
	a     *Agent
	dir   string
	sys   *routestest.System
	gw    *fakeGateway
	clock *fakeClock
	bind  conn.Bind // the client's side
	logs  *strings.Builder

	mu       sync.Mutex
	tun      *tuntest.ChannelTUN // the current device's
	replies  chan []byte         // what it delivered
	devices  int                 // devices made
	prepared int                 // devices prepared during a registration
	open     int                 // devices running
	upErr    error               // tunnelUp fails with this
	onChange func()              // the watcher's callback
}

func newRig(t *testing.T) *rig {
	t.Helper()
	binds := bindtest.NewChannelBinds()
	clock := newFakeClock()
	r := &rig{t: t, dir: t.TempDir(), sys: routestest.New(hostSnapshot()), clock: clock, bind: binds[0], logs: &strings.Builder{}}
	r.gw = newFakeGateway(t, binds[1], clock)
	resolv := filepath.Join(r.dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 192.168.1.1\n"), 0o644)
	r.a = New(filepath.Join(r.dir, "state"), r.sys, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.a.edge = edges{tunnelUp: r.tunnelUp, tunnelPrepare: r.tunnelPrepare, pickName: r.pickName, probe: r.probe, watch: r.watch,
		resolvConf: resolv, now: clock.Now, after: clock.After}
	t.Cleanup(func() {
		r.a.teardown()
		if n := r.running(); n != 0 {
			t.Errorf("%d tunnel devices still run after teardown", n)
		}
	})
	return r
}

func (r *rig) running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open
}

// pickName is the first cpN that is not a link of the in-memory system.
func (r *rig) pickName() (string, error) {
	snap, _ := r.sys.Snapshot()
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("cp%d", i)
		if !slices.ContainsFunc(snap.Links, func(l routes.Link) bool { return l.Name == name }) {
			return name, nil
		}
	}
	return "", fmt.Errorf("no free name")
}

// tunnelPrepare stands for the device made while the registration is in
// flight: the test device is made when Up finishes it.
func (r *rig) tunnelPrepare(name string, mtu int, priv wgtypes.Key, log *slog.Logger) (preparedTunnel, error) {
	r.mu.Lock()
	r.prepared++
	r.mu.Unlock()
	return &lazyTunnel{r: r, name: name, log: log}, nil
}

type lazyTunnel struct {
	r    *rig
	name string
	log  *slog.Logger
}

func (l *lazyTunnel) Name() string { return l.name }
func (l *lazyTunnel) Close()       {}
func (l *lazyTunnel) Up(cfg tunnel.Config) (*tunnel.Tunnel, error) {
	cfg.Interface = l.name
	return l.r.tunnelUp(cfg, l.log)
}

// tunnelUp makes a wireguard-go device over a ChannelTUN and the client's
// bind, and the link with its addresses on the in-memory system, as
// tunnel.Up makes a TUN link; closing it removes the link.
func (r *rig) tunnelUp(cfg tunnel.Config, log *slog.Logger) (*tunnel.Tunnel, error) {
	r.mu.Lock()
	err := r.upErr
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ct := tuntest.NewChannelTUN()
	name := cfg.Interface
	replies := make(chan []byte, 64)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case p := <-ct.Inbound:
				select {
				case replies <- p:
				default:
				}
			case <-stop:
				return
			}
		}
	}()
	t, err := tunnel.UpOver(cfg, name, tunnel.Over{TUN: ct.TUN(), Bind: r.bind, Closed: func() {
		close(stop)
		r.sys.RemoveLink(name)
		r.mu.Lock()
		r.open--
		r.mu.Unlock()
	}}, log)
	if err != nil {
		return nil, err
	}
	r.sys.AddLink(routes.Link{Name: name, Type: "tun", Up: true, MTU: cfg.MTU})
	snap, _ := r.sys.Snapshot()
	for _, a := range cfg.Addresses {
		snap.Addresses = append(snap.Addresses, routes.Address{Device: name, Prefix: a})
	}
	r.sys.Set(snap)
	r.mu.Lock()
	r.tun, r.replies = ct, replies
	r.devices++
	r.open++
	r.mu.Unlock()
	return t, nil
}

// probe pings dst from src through the current device until a reply from
// dst comes back or ctx ends, as tunnel.Probe does over a raw socket.
func (r *rig) probe(ctx context.Context, src, dst netip.Addr) error {
	r.mu.Lock()
	ct, replies := r.tun, r.replies
	r.mu.Unlock()
	for {
		select {
		case ct.Outbound <- tuntest.Ping(dst, src):
		case <-ctx.Done():
			return fmt.Errorf("no reply from %s through the tunnel: %w", dst, ctx.Err())
		}
		deadline := time.After(200 * time.Millisecond)
	wait:
		for {
			select {
			case p := <-replies:
				if len(p) >= 20 && netip.AddrFrom4([4]byte(p[12:16])) == dst && p[20] == 0 {
					return nil
				}
			case <-deadline:
				break wait
			case <-ctx.Done():
				return fmt.Errorf("no reply from %s through the tunnel: %w", dst, ctx.Err())
			}
		}
	}
}

func (r *rig) watch(ctx context.Context, _ time.Duration, onChange func()) error {
	r.mu.Lock()
	r.onChange = onChange
	r.mu.Unlock()
	return nil
}

// request is a `vpn up` to the fake gateway.
func (r *rig) request() control.UpRequest {
	return control.UpRequest{Server: r.gw.srv.URL, CAPEM: r.gw.caPEM, Token: "tok-1", Timeout: 10 * time.Second}
}

func (r *rig) up(req control.UpRequest) (control.Status, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return r.a.Up(ctx, req)
}

func (r *rig) snapshot() *routes.Snapshot {
	s, _ := r.sys.Snapshot()
	return s
}

// lookup is the route the kernel would pick for dst from an ordinary
// (unmarked) socket.
func (r *rig) lookup(dst netip.Addr) routes.Route {
	rt, err := r.sys.Lookup(routes.Query{Dst: dst})
	if err != nil {
		return routes.Route{Type: routes.TypeUnreachable, Dst: netip.PrefixFrom(dst, dst.BitLen())}
	}
	return rt
}

// owned is what carries our marker on the in-memory system.
func (r *rig) owned() (rs []routes.Route, rules []routes.Rule) {
	return routes.OwnedItems(r.snapshot())
}

func (r *rig) journaled() bool {
	_, err := os.Stat(filepath.Join(r.a.dir, "journal"))
	return err == nil
}

// sameAsBefore fails unless the in-memory system equals before.
func (r *rig) sameAsBefore(before *routes.Snapshot, when string) {
	r.t.Helper()
	if d := routes.Compare(before, r.snapshot()); !d.Empty() {
		r.t.Errorf("%s: routing state differs from before `vpn up`: %+v", when, d)
	}
	rs, rules := r.owned()
	if len(rs)+len(rules) > 0 {
		r.t.Errorf("%s: items with our marker remain: %v %v", when, rs, rules)
	}
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// advanceUntil moves the clock by step whenever the agent waits on it,
// until done holds (or fails the test after many steps).
func (r *rig) advanceUntil(step time.Duration, done func() bool) {
	r.t.Helper()
	for i := 0; i < 10000; i++ {
		if done() {
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for r.clock.Waiting() == 0 && !done() {
			if time.Now().After(deadline) {
				r.t.Fatalf("the agent waits on no timer; status %+v", r.a.Status())
			}
			time.Sleep(time.Millisecond)
		}
		r.clock.Advance(step)
		time.Sleep(time.Millisecond)
	}
	r.t.Fatalf("condition not reached; status %+v", r.a.Status())
}
