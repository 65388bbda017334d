// Package gateway runs the ClearPath gateway: one wireguard-go device per
// network (configured through wgctrl over UAPI), per-network policy routing
// without NAT, the registration API and the expiry timer.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
	"github.com/clearpath-vpn/clearpath/server/auth"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Gateway is a running gateway.
type Gateway struct {
	cfg      *config.Config
	store    *store.Store
	verifier *auth.Verifier
	log      *slog.Logger
	wg       *wgctrl.Client
	now      func() time.Time

	mu       sync.Mutex // serialises device changes
	networks map[string]*network
	// deviceLocks serialise the changes of one device's peer (lockDevice).
	deviceLocks [64]sync.Mutex
}

type network struct {
	index   int
	cfg     config.Network
	dev     *wgdev.Device
	pubKey  wgtypes.Key
	privKey wgtypes.Key // opens registrations and seals session keys
}

// Run starts everything described by cfg and serves until ctx is done, then
// removes what it installed (devices, rules, tables) and returns.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	g := &Gateway{cfg: cfg, store: st, log: log, now: time.Now, networks: map[string]*network{}}
	g.verifier = auth.New(ctx, cfg.OIDC.Issuer, cfg.OIDC.Audience, cfg.OIDC.GroupsClaim, log)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()

	if err := enableForwarding(); err != nil {
		return err
	}
	log.Info("forwarding enabled (IPv4 and IPv6, no NAT)")
	if g.wg, err = wgctrl.New(); err != nil {
		return fmt.Errorf("open wgctrl: %w", err)
	}
	defer g.wg.Close()
	defer g.closeNetworks()
	for i, n := range cfg.Networks {
		if err := g.startNetwork(ctx, i, n); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}

	srv := &http.Server{Handler: g.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go g.expireLoop(ctx)
	log.Info("gateway serving", "listen", ln.Addr().String(), "networks", len(cfg.Networks))
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve API: %w", err)
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	return nil
}

func (g *Gateway) startNetwork(ctx context.Context, i int, n config.Network) error {
	keyStr, err := g.store.NetworkKey(ctx, n.Name, func() (string, error) {
		k, err := wgtypes.GeneratePrivateKey()
		return k.String(), err
	})
	if err != nil {
		return err
	}
	priv, err := wgtypes.ParseKey(keyStr)
	if err != nil {
		return fmt.Errorf("stored key: %w", err)
	}
	dev, err := wgdev.Create(n.Interface, n.MTU, g.log)
	if err != nil {
		return err
	}
	nw := &network{index: i, cfg: n, dev: dev, pubKey: priv.PublicKey(), privKey: priv}
	g.networks[n.Name] = nw
	peers, err := g.store.Peers(ctx, n.Name)
	if err != nil {
		return err
	}
	var pcs []wgtypes.PeerConfig
	now := g.now()
	for _, p := range peers {
		if p.ExpiresAt.After(now) {
			pc, err := peerConfig(p)
			if err != nil {
				g.log.Warn("skip stored peer", "peer", p.ID, "err", err)
				continue
			}
			pcs = append(pcs, pc)
		}
	}
	port := n.ListenPort
	if err := g.wg.ConfigureDevice(n.Interface, wgtypes.Config{PrivateKey: &priv, ListenPort: &port, ReplacePeers: true, Peers: pcs}); err != nil {
		return fmt.Errorf("configure %s through wgctrl: %w", n.Interface, err)
	}
	if err := dev.Up(); err != nil {
		return fmt.Errorf("bring %s up: %w", n.Interface, err)
	}
	if err := setupLink(n); err != nil {
		return err
	}
	if err := setupPolicy(i, n); err != nil {
		return err
	}
	g.log.Info("network up", "network", n.Name, "group", n.Group, "interface", n.Interface,
		"port", n.ListenPort, "table", n.Table, "public_key", nw.pubKey.String(), "peers", len(pcs))
	return nil
}

func (g *Gateway) closeNetworks() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, nw := range g.networks {
		teardownPolicy(nw.index, nw.cfg)
		nw.dev.Close()
		g.log.Info("network down", "network", nw.cfg.Name)
	}
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

// setPeer adds (or replaces) p on its network's device, removing old's key.
func (g *Gateway) setPeer(nw *network, p store.Peer, old *store.Peer) error {
	pc, err := peerConfig(p)
	if err != nil {
		return err
	}
	pcs := []wgtypes.PeerConfig{pc}
	if old != nil && old.PublicKey != p.PublicKey {
		if ok, err := wgtypes.ParseKey(old.PublicKey); err == nil {
			pcs = append(pcs, wgtypes.PeerConfig{PublicKey: ok, Remove: true})
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.wg.ConfigureDevice(nw.cfg.Interface, wgtypes.Config{Peers: pcs})
}

func (g *Gateway) removePeer(nw *network, publicKey string) error {
	k, err := wgtypes.ParseKey(publicKey)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.wg.ConfigureDevice(nw.cfg.Interface, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: k, Remove: true}}})
}

// expireLoop removes peers whose key TTL has passed. It runs on the gateway
// itself, so expiry holds even when nobody calls the API.
func (g *Gateway) expireLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		peers, err := g.store.Peers(ctx, "")
		if err != nil {
			g.log.Warn("expiry check: list peers", "err", err)
			continue
		}
		for _, p := range peers {
			nw := g.networks[p.Network]
			if nw == nil || p.ExpiresAt.After(g.now()) {
				continue
			}
			if gone, err := g.expirePeer(ctx, nw, p); err != nil || !gone {
				if err != nil {
					g.log.Warn("expire peer", "peer", p.ID, "err", err)
				}
				continue
			}
			g.store.Audit(ctx, store.AuditEntry{Actor: "gateway", Action: "expire", Network: p.Network, Detail: fmt.Sprintf("peer %s of %s expired at %s", p.ID, p.Subject, p.ExpiresAt.UTC().Format(time.RFC3339))})
			g.log.Info("peer expired", "peer", p.ID, "user", p.Subject, "network", p.Network)
		}
	}
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
