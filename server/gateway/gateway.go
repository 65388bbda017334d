// Package gateway runs the ClearPath gateway: one wireguard-go device per
// network (configured through wgctrl over UAPI), per-network policy routing
// without NAT, the registration API, key lifecycle (expiry, warnings,
// revocation), the audit log, metrics, the admin socket and configuration
// reloads.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/audit"
	"github.com/clearpath-vpn/clearpath/server/auth"
	"github.com/clearpath-vpn/clearpath/server/certs"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
	"github.com/clearpath-vpn/clearpath/server/lifecycle"
	"github.com/clearpath-vpn/clearpath/server/metrics"
	"github.com/clearpath-vpn/clearpath/server/notify"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Gateway is a running gateway.
type Gateway struct {
	// cfg and networks change only on reload, under reloadMu held for
	// writing (and mu); API requests hold reloadMu for reading, so handlers
	// see one consistent configuration.
	cfg      *config.Config
	store    *store.Store
	verifier *auth.Verifier
	log      *slog.Logger
	wg       wgClient
	now      func() time.Time

	reloadMu   sync.RWMutex
	configPath string

	mu       sync.Mutex // serialises device changes; guards networks for writers
	wgMu     sync.Mutex // one wgctrl call at a time
	networks map[string]*network
	// deviceLocks serialise the changes of one device's peer (lockDevice).
	deviceLocks [64]sync.Mutex

	life      *lifecycle.Manager
	audit     *audit.Log
	hookMu    sync.Mutex
	hook      *notify.Webhook
	metrics   *metrics.Metrics
	logins    *tokenSeen
	host      string
	certs     *certs.Source  // the API's certificates; nil for plain HTTP
	flows     *flows         // the eBPF filter; nil when off
	guard     *guards        // API abuse limits (guard.go)
	hostGuard hostguard.Spec // what the host guard's table holds (reload.go)
	net       *hostNet       // routes, rules, addresses, forwarding (networks.go)
	deps      *netDeps       // the host network's edges (deps.go)
	hooks     *TestHooks
}

type network struct {
	cfg     config.Network
	dev     tunnel
	pubKey  wgtypes.Key
	privKey wgtypes.Key // opens registrations and seals session keys
	// peers are the network's registered peers; the device holds the
	// active ones (lazypeers.go).
	peers *peerSet
}

// Options configure Serve.
type Options struct {
	Config *config.Config
	// ConfigPath is re-read on reload (SIGHUP, `vpn-gateway reload`).
	ConfigPath string
	Log        *slog.Logger
	// Reload receives a value for every SIGHUP.
	Reload <-chan struct{}
	// Hooks are seams for tests; the product never sets them.
	Hooks *TestHooks
	// deps replaces the host network's edges (unit tests).
	deps *netDeps
}

// TestHooks are kill points for the gateway's crash test.
type TestHooks struct {
	// Step runs after each start step ("start:<name>") and before each
	// undo at stop or after a failure ("undo:<name>").
	Step func(point string)
	// Routes run around each change of the route engine (one journal
	// record per change while set).
	Routes routes.Hooks
	// NetnsLock replaces the abstract socket name of the instance lock.
	NetnsLock string
}

func (h *TestHooks) step() func(string) {
	if h == nil {
		return nil
	}
	return h.Step
}

// Run starts everything described by cfg and serves until ctx is done (no
// reload source).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	return Serve(ctx, Options{Config: cfg, Log: log})
}

func networkNames(cfg *config.Config) []string {
	var out []string
	for _, n := range cfg.Networks {
		out = append(out, n.Name)
	}
	return out
}

func settingsOf(cfg *config.Config) lifecycle.Settings {
	return lifecycle.Settings{WarnBefore: cfg.Lifecycle.WarnBefore, UnusedAfter: cfg.Lifecycle.Unused(), IdleAfter: cfg.Lifecycle.Idle(), StorePoll: cfg.Lifecycle.StorePoll,
		AuditRetain: cfg.AuditRetain()}
}

func (g *Gateway) setWebhook(c config.Webhook) {
	h := notify.New(c, g.log)
	h.OnResult = func(r notify.Result) {
		if r.Err != nil {
			g.metrics.Webhook.WithLabelValues("failed").Inc()
			g.metrics.Errors.WithLabelValues("webhook").Inc()
		} else {
			g.metrics.Webhook.WithLabelValues("delivered").Inc()
		}
	}
	g.hookMu.Lock()
	old := g.hook
	g.hook = h
	g.hookMu.Unlock()
	if old != nil {
		go old.Close(time.Minute) // deliveries in flight finish to the old URL
	}
}

func (g *Gateway) webhook() *notify.Webhook {
	g.hookMu.Lock()
	defer g.hookMu.Unlock()
	return g.hook
}

func peerConfig(p store.Peer) (wgtypes.PeerConfig, error) {
	k, err := wgtypes.ParseKey(p.PublicKey)
	if err != nil {
		return wgtypes.PeerConfig{}, err
	}
	var allowed []net.IPNet
	for _, a := range []netip.Addr{p.Addr.V4, p.Addr.V6} {
		if a.IsValid() {
			allowed = append(allowed, *prefixToIPNet(netip.PrefixFrom(a, a.BitLen())))
		}
	}
	pc := wgtypes.PeerConfig{PublicKey: k, ReplaceAllowedIPs: true, AllowedIPs: allowed}
	if p.PresharedKey != "" {
		psk, err := wgtypes.ParseKey(p.PresharedKey)
		if err != nil {
			return pc, fmt.Errorf("preshared key: %w", err)
		}
		pc.PresharedKey = &psk
	}
	return pc, nil
}

// setPeer adds (or replaces) p among its network's registered peers,
// removing old's key, and hands it to the lifecycle manager, which expires
// it on time. A key registered through this gateway goes on the device at
// once: its client connects next (the trimmer takes it off if it does not).
func (g *Gateway) setPeer(nw *network, p store.Peer, old *store.Peer) error {
	if err := g.life.Put(p, old); err != nil {
		return err
	}
	if k, err := wgtypes.ParseKey(p.PublicKey); err == nil {
		return g.activate(nw, k)
	}
	return nil
}

func (g *Gateway) removePeer(nw *network, publicKey string) error {
	return g.life.Remove(nw.cfg.Name, publicKey)
}

func (g *Gateway) device(network string) *network {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.networks[network]
}

// AddPeer implements lifecycle.Devices: p joins its network's registered
// peers (lazypeers.go) and, if its key is on the device now (or the device
// is not lazy), the device too.
func (g *Gateway) AddPeer(p store.Peer) error {
	nw := g.device(p.Network)
	if nw == nil {
		return fmt.Errorf("network %s is not running", p.Network)
	}
	pc, err := peerConfig(p)
	if err != nil {
		return err
	}
	if err := g.flows.add(p); err != nil {
		return fmt.Errorf("flow filter: %w", err)
	}
	set := nw.peers
	set.mu.Lock()
	defer set.mu.Unlock()
	w := set.peers[pc.PublicKey]
	if w == nil {
		w = &wantPeer{}
		set.peers[pc.PublicKey] = w
	}
	w.pc = pc
	if !set.lazy || w.onDevice {
		if err := g.configure(nw, pc); err != nil {
			return fmt.Errorf("add peer: %w", err)
		}
		if !w.onDevice {
			w.onDevice, w.lastActive = true, g.now()
		}
	}
	return nil
}

// RemovePeer implements lifecycle.Devices: the key leaves its network's
// registered peers first, so no handshake can bring it back, then the
// device.
func (g *Gateway) RemovePeer(network, publicKey string) error {
	nw := g.device(network)
	if nw == nil {
		return nil // the device is gone, and its peers with it
	}
	k, err := wgtypes.ParseKey(publicKey)
	if err != nil {
		return err
	}
	set := nw.peers
	set.mu.Lock()
	defer set.mu.Unlock()
	delete(set.peers, k)
	// The device is told even when the set says the key is off it: a
	// key the set never knew must not stay either.
	if err := g.configure(nw, wgtypes.PeerConfig{PublicKey: k, Remove: true}); err != nil {
		return fmt.Errorf("remove peer: %w", err)
	}
	if err := g.flows.remove(network, publicKey); err != nil {
		g.log.Warn("flow filter: remove peer", "network", network, "err", err)
	}
	return nil
}

// Stats implements lifecycle.Devices: every registered peer of network,
// with the device's figures for those on it and the last figures of those
// trimmed (lazypeers.go).
func (g *Gateway) Stats(network string) (map[string]lifecycle.PeerStat, error) {
	nw := g.device(network)
	if nw == nil {
		return nil, fmt.Errorf("network %s is not running", network)
	}
	g.wgMu.Lock()
	d, err := g.wg.Device(nw.cfg.Interface)
	g.wgMu.Unlock()
	if err != nil {
		return nil, err
	}
	now := g.now()
	set := nw.peers
	set.mu.Lock()
	defer set.mu.Unlock()
	out := make(map[string]lifecycle.PeerStat, len(set.peers))
	for _, p := range d.Peers {
		if w := set.peers[p.PublicKey]; w != nil && w.onDevice {
			w.observe(peerStat(p), now)
		} else {
			out[p.PublicKey.String()] = peerStat(p) // on the device, not registered: show it
		}
	}
	for k, w := range set.peers {
		out[k.String()] = w.stat()
	}
	return out, nil
}

// MetricNetworks implements metrics.Source.
func (g *Gateway) MetricNetworks() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.networks))
	for n := range g.networks {
		out = append(out, n)
	}
	return out
}

// MetricPeers implements metrics.Source: the devices' peers, read now,
// named by the lifecycle manager's view of whom they belong to.
func (g *Gateway) MetricPeers() []metrics.PeerSample {
	owner := map[string]store.Peer{}
	for _, t := range g.life.Tracked() {
		owner[t.Peer.PublicKey] = t.Peer
	}
	var out []metrics.PeerSample
	for _, n := range g.MetricNetworks() {
		stats, err := g.Stats(n)
		if err != nil {
			continue
		}
		for k, s := range stats {
			p := owner[k]
			user := p.Email
			if user == "" {
				user = p.Subject
			}
			out = append(out, metrics.PeerSample{Network: n, User: user, PeerID: p.ID, LastHandshake: s.LastHandshake, Rx: s.Rx, Tx: s.Tx})
		}
	}
	return out
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// MetricStoreUp implements metrics.Source.
func (g *Gateway) MetricStoreUp() bool {
	_, err := g.life.StoreStatus()
	return err == nil
}
