// Package gateway runs the ClearPath gateway: one wireguard-go device per
// network (configured through wgctrl over UAPI), per-network policy routing
// without NAT, the registration API, key lifecycle (expiry, warnings,
// revocation), the audit log, metrics, the admin socket and configuration
// reloads.
package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
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
	wg       *wgctrl.Client
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
}

type network struct {
	cfg     config.Network
	dev     *wgdev.Device
	pubKey  wgtypes.Key
	privKey wgtypes.Key // opens registrations and seals session keys
}

// Options configure Serve.
type Options struct {
	Config *config.Config
	// ConfigPath is re-read on reload (SIGHUP, `vpn-gateway reload`).
	ConfigPath string
	Log        *slog.Logger
	// Reload receives a value for every SIGHUP.
	Reload <-chan struct{}
}

// Run starts everything described by cfg and serves until ctx is done (no
// reload source).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	return Serve(ctx, Options{Config: cfg, Log: log})
}

// Serve starts everything described by o.Config and serves until ctx is
// done, then removes what it installed (devices, rules, tables) and returns.
// If any network fails to come up, everything set up so far is torn down
// and the error names the network.
func Serve(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Log
	if err := checkSecretFiles(cfg); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetAllocationGrace(cfg.AllocationGrace)
	host, _ := os.Hostname()
	if o.ConfigPath != "" {
		if abs, err := filepath.Abs(o.ConfigPath); err == nil {
			o.ConfigPath = abs
		}
	}
	g := &Gateway{cfg: cfg, store: st, log: log, now: time.Now, networks: map[string]*network{}, configPath: o.ConfigPath, host: host, logins: newTokenSeen()}
	g.verifier = auth.New(ctx, cfg.OIDC.Issuer, cfg.OIDC.Audience, cfg.OIDC.GroupsClaim, log)
	g.verifier.SetRequireEmailVerified(cfg.OIDC.EmailVerifiedRequired())
	g.metrics = metrics.New(g)
	g.audit = audit.New(st, log)
	g.audit.OnRecord = func(r store.AuditRecord) { g.metrics.Audit.WithLabelValues(r.Action).Inc() }
	g.setWebhook(cfg.Lifecycle.Webhook)
	lifeCtx, stopLife := context.WithCancel(context.Background())
	g.life = lifecycle.New(lifecycle.Options{Store: st, Devices: g, Log: log, Settings: settingsOf(cfg), Notify: g.onLifecycleEvent})
	g.life.OnStoreError = func(error) { g.metrics.Errors.WithLabelValues("store").Inc() }
	g.life.AfterSync = func(ctx context.Context) {
		if g.audit.Pending() > 0 {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			g.audit.Flush(sctx)
			cancel()
		}
	}

	g.guard = newGuards(cfg.API, cfg.TrustedProxies, log)
	capped, err := g.listenAPI(cfg)
	if err != nil {
		stopLife()
		return err
	}
	defer capped.Close()
	// TLS wraps the capped listener, so a refused connection never costs a
	// handshake.
	var ln net.Listener = capped
	apiURL := "http://" + ln.Addr().String()
	if cfg.TLS.Enabled() {
		if g.certs, err = certs.New(cfg.TLS, log, certs.Options{}); err != nil {
			stopLife()
			return err
		}
		ln = tls.NewListener(ln, g.certs.TLSConfig())
		apiURL = "https://" + ln.Addr().String()
		if g.certs.Mode() == "acme" {
			log.Info("TLS certificates from ACME", "domains", cfg.TLS.ACME.Domains, "directory", cfg.TLS.ACME.DirectoryURL, "cache_dir", cfg.TLS.ACME.CacheDir)
		} else {
			log.Info("TLS certificate loaded", "cert", cfg.TLS.Cert, "certificate", certs.Describe(g.certs.Leaf()))
		}
	} else {
		log.Warn("the API serves plain HTTP: clients refuse it (tokens would travel in clear) unless given --allow-http; add a tls block to the configuration or put an HTTPS proxy in front")
	}
	var acmeLn net.Listener
	if g.certs != nil && cfg.TLS.ACME != nil && cfg.TLS.ACME.HTTPListen != "" {
		if acmeLn, err = net.Listen("tcp", cfg.TLS.ACME.HTTPListen); err != nil {
			stopLife()
			return fmt.Errorf("tls.acme.http_listen %s: %w", cfg.TLS.ACME.HTTPListen, err)
		}
		defer acmeLn.Close()
	}
	var metricsLn net.Listener
	if addr := cfg.MetricsAddr(); addr != "" {
		if metricsLn, err = net.Listen("tcp", addr); err != nil {
			stopLife()
			return fmt.Errorf("metrics_listen %s: %w (set metrics_listen to a free address, or off)", addr, err)
		}
		defer metricsLn.Close()
	}

	restoreForwarding, err := enableForwarding()
	if err != nil {
		stopLife()
		return err
	}
	log.Info("forwarding enabled (IPv4 and IPv6, no NAT)")
	if err := g.guardHost(hostguard.FromConfig(cfg)); err != nil {
		restoreForwarding()
		stopLife()
		return err
	}
	defer openHost(log) // after the devices are gone (deferred later, runs earlier)
	log.Info("gateway host closed to the tunnels", "nftables", "inet "+hostguard.TableName)
	if g.wg, err = wgctrl.New(); err != nil {
		restoreForwarding()
		stopLife()
		return fmt.Errorf("open wgctrl: %w", err)
	}
	defer g.wg.Close()
	if g.flows, err = g.startFlows(cfg.Flows); err != nil {
		restoreForwarding()
		stopLife()
		return err
	}
	var started []*network
	for i, n := range cfg.Networks {
		nw, peers, err := g.bringUp(ctx, n)
		if err != nil {
			for _, s := range started {
				g.tearDown(s)
			}
			g.flows.close()
			restoreForwarding()
			stopLife()
			g.metrics.Errors.WithLabelValues("device").Inc()
			return fmt.Errorf("networks[%d] (%s): %w; nothing is left set up", i, n.Name, err)
		}
		started = append(started, nw)
		g.mu.Lock()
		g.networks[n.Name] = nw
		g.mu.Unlock()
		g.life.AddNetwork(ctx, n.Name, peers)
	}
	defer g.closeNetworks()
	defer g.flows.close() // before the devices go: it writes the last flows

	admin, err := g.listenAdmin(cfg.AdminSocket)
	if err != nil {
		stopLife()
		return err
	}
	defer admin.Close()

	// Admin web page hook (adminweb.go): its own listener on admin_listen.
	stopWeb, err := g.startAdminWeb(ctx)
	if err != nil {
		stopLife()
		return err
	}
	defer stopWeb()

	srv := apiServer(g.opsHandler(g.Handler(), cfg.MetricsToken), cfg.API, log)
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(ln) }()
	var msrv *http.Server
	if metricsLn != nil {
		msrv = apiServer(g.metricsMux(), cfg.API, log)
		go func() { errc <- msrv.Serve(metricsLn) }()
		log.Info("metrics serving", "metrics_listen", metricsLn.Addr().String())
	}
	if acmeLn != nil {
		acmeCtx, stopACME := context.WithCancel(ctx)
		defer stopACME()
		go func() {
			if err := g.certs.ServeHTTPChallenges(acmeCtx, acmeLn); err != nil {
				log.Error("ACME HTTP-01 listener stopped", "err", err)
			}
		}()
	}
	asrv := g.adminServer()
	go asrv.Serve(admin)
	lifeDone := make(chan struct{})
	go func() { g.life.Run(lifeCtx); close(lifeDone) }()

	g.audit.Record(ctx, store.AuditRecord{Actor: "gateway", Action: audit.Start, Remote: g.host, Detail: "networks " + strings.Join(networkNames(cfg), ", ")})
	log.Info("gateway serving", "listen", ln.Addr().String(), "url", apiURL, "networks", len(cfg.Networks), "admin_socket", cfg.AdminSocket)
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-o.Reload:
			res, err := g.Reload(ctx, "SIGHUP", "signal")
			if err != nil {
				log.Error("reload failed; the running configuration is unchanged", "err", err)
			} else {
				log.Info("configuration reloaded", "changes", res.Summary())
			}
		case err := <-errc:
			serveErr = fmt.Errorf("serve: %w", err)
			break loop
		}
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	if msrv != nil {
		msrv.Shutdown(shutCtx)
	}
	asrv.Shutdown(shutCtx)
	stopLife()
	<-lifeDone
	g.audit.Record(shutCtx, store.AuditRecord{Actor: "gateway", Action: audit.Stop, Remote: g.host})
	g.webhook().Close(2 * time.Second)
	return serveErr
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

// bringUp creates network n's device with its stored key and live peers,
// addresses, table and rules. On failure it removes whatever it created.
func (g *Gateway) bringUp(ctx context.Context, n config.Network) (nw *network, peers []store.Peer, err error) {
	keyStr, err := g.store.NetworkKey(ctx, n.Name, func() (string, error) {
		k, err := wgtypes.GeneratePrivateKey()
		return k.String(), err
	})
	if err != nil {
		return nil, nil, err
	}
	priv, err := wgtypes.ParseKey(keyStr)
	if err != nil {
		return nil, nil, fmt.Errorf("stored key: %w", err)
	}
	stored, err := g.store.Peers(ctx, n.Name)
	if err != nil {
		return nil, nil, err
	}
	// Stock wireguard-go on the gateway: with the in-flight bound of the
	// client's tunnel, a start whose listen port is taken came up serving
	// (and hung the all-or-nothing start) under load; the bound is the
	// client's memory target, not the gateway's.
	dev, err := wgdev.CreateWithInflight(n.Interface, n.MTU, g.log, 0)
	if err != nil {
		return nil, nil, err
	}
	created := &network{cfg: n, dev: dev, pubKey: priv.PublicKey(), privKey: priv}
	defer func() {
		if err != nil {
			g.tearDown(created)
		}
	}()
	var pcs []wgtypes.PeerConfig
	now := g.now()
	for _, p := range stored {
		if !p.ExpiresAt.After(now) {
			continue // the lifecycle manager cleans these up
		}
		pc, err := peerConfig(p)
		if err != nil {
			g.log.Warn("skip stored peer", "peer", p.ID, "err", err)
			continue
		}
		pcs = append(pcs, pc)
		peers = append(peers, p)
	}
	port := n.ListenPort
	g.wgMu.Lock()
	err = g.wg.ConfigureDevice(n.Interface, wgtypes.Config{PrivateKey: &priv, ListenPort: &port, ReplacePeers: true, Peers: pcs})
	g.wgMu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("configure %s through wgctrl (listen_port %d): %w", n.Interface, n.ListenPort, err)
	}
	if err = dev.Up(); err != nil {
		return nil, nil, fmt.Errorf("bring %s up: %w", n.Interface, err)
	}
	if err = setupLink(n); err != nil {
		return nil, nil, err
	}
	if err = setupPolicy(n); err != nil {
		return nil, nil, err
	}
	for _, p := range peers {
		if err = g.flows.add(p); err != nil {
			return nil, nil, fmt.Errorf("flow filter: %w", err)
		}
	}
	if err = g.flows.attach(n.Interface); err != nil {
		return nil, nil, fmt.Errorf("flow filter on %s: %w", n.Interface, err)
	}
	g.log.Info("network up", "network", n.Name, "group", n.Group, "interface", n.Interface,
		"port", n.ListenPort, "table", n.Table, "public_key", created.pubKey.String(), "peers", len(pcs))
	return created, peers, nil
}

// tearDown removes network nw's rules, table and device.
func (g *Gateway) tearDown(nw *network) {
	g.flows.detach(nw.cfg.Interface)
	teardownPolicy(nw.cfg)
	nw.dev.Close()
	g.log.Info("network down", "network", nw.cfg.Name, "interface", nw.cfg.Interface)
}

func (g *Gateway) closeNetworks() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, nw := range g.networks {
		g.tearDown(nw)
		delete(g.networks, name)
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

// setPeer adds (or replaces) p on its network's device, removing old's key,
// and hands it to the lifecycle manager, which expires it on time.
func (g *Gateway) setPeer(nw *network, p store.Peer, old *store.Peer) error {
	return g.life.Put(p, old)
}

func (g *Gateway) removePeer(nw *network, publicKey string) error {
	return g.life.Remove(nw.cfg.Name, publicKey)
}

func (g *Gateway) device(network string) *network {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.networks[network]
}

// AddPeer implements lifecycle.Devices.
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
	g.wgMu.Lock()
	defer g.wgMu.Unlock()
	if err := g.wg.ConfigureDevice(nw.cfg.Interface, wgtypes.Config{Peers: []wgtypes.PeerConfig{pc}}); err != nil {
		g.metrics.Errors.WithLabelValues("device").Inc()
		return fmt.Errorf("add peer to %s: %w", nw.cfg.Interface, err)
	}
	return nil
}

// RemovePeer implements lifecycle.Devices.
func (g *Gateway) RemovePeer(network, publicKey string) error {
	nw := g.device(network)
	if nw == nil {
		return nil // the device is gone, and its peers with it
	}
	k, err := wgtypes.ParseKey(publicKey)
	if err != nil {
		return err
	}
	g.wgMu.Lock()
	defer g.wgMu.Unlock()
	if err := g.wg.ConfigureDevice(nw.cfg.Interface, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: k, Remove: true}}}); err != nil {
		g.metrics.Errors.WithLabelValues("device").Inc()
		return fmt.Errorf("remove peer from %s: %w", nw.cfg.Interface, err)
	}
	if err := g.flows.remove(network, publicKey); err != nil {
		g.log.Warn("flow filter: remove peer", "network", network, "err", err)
	}
	return nil
}

// Stats implements lifecycle.Devices.
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
	out := make(map[string]lifecycle.PeerStat, len(d.Peers))
	for _, p := range d.Peers {
		s := lifecycle.PeerStat{LastHandshake: p.LastHandshakeTime, Rx: p.ReceiveBytes, Tx: p.TransmitBytes}
		if p.Endpoint != nil {
			s.Endpoint = p.Endpoint.String()
		}
		out[p.PublicKey.String()] = s
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
