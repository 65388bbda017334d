package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/server/store"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/netpolicy"
)

// RulePriority of every network's `iif <wg> lookup <table>` rule
// (netpolicy.RulePriority).
const RulePriority = netpolicy.RulePriority

// RoutesDir is the route engine's directory in state_dir: its journal and
// the snapshot taken at start.
const RoutesDir = "routes"

// hostNet is the gateway's network set-up on the host, apart from the
// devices: the route engine (owner routes.GatewayOwner, protocol 198, its
// journal in <state_dir>/routes), the forwarding switches and every
// network's policy as one desired state (server/netpolicy). Nothing here
// writes the kernel but through the engine.
type hostNet struct {
	sys routes.System
	eng *routes.Engine
	dir string // the journal's
	log *slog.Logger
}

func newHostNet(sys routes.System, stateDir string, log *slog.Logger) *hostNet {
	if log == nil {
		log = slog.Default()
	}
	dir := filepath.Join(stateDir, RoutesDir)
	return &hostNet{sys: sys, eng: routes.NewOwnerEngine(sys, dir, routes.GatewayOwner), dir: dir, log: log}
}

// checkTables refuses tables of networks that hold routes the gateway does
// not own (netpolicy.ForeignError names them).
func (h *hostNet) checkTables(networks []config.Network) error {
	snap, err := h.sys.Snapshot()
	if err != nil {
		return fmt.Errorf("read the routing tables: %w", err)
	}
	return netpolicy.CheckTables(snap, networks)
}

// begin recovers what a killed gateway left (its journal replayed in
// reverse, then every protocol-198 route and rule swept, forwarding
// switches back to what they were) and opens a new journal.
func (h *hostNet) begin() error {
	if err := h.eng.Begin(); err != nil {
		return fmt.Errorf("route engine (journal in %s): %w", h.dir, err)
	}
	return nil
}

// enableForwarding turns IPv4 and IPv6 forwarding on through the journal
// (there is no NAT: clients keep their own addresses). A switch already on
// is not written.
func (h *hostNet) enableForwarding() error {
	for _, name := range routes.ForwardingSysctls {
		changed, err := h.eng.SetSysctl(name, "1")
		if err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
		if changed {
			h.log.Info("forwarding enabled", "sysctl", name)
		}
	}
	return nil
}

// reconcile makes the policy of every network equal networks': what is
// missing is added first, then what is no longer wanted goes, so a table
// move or an allow-list change never leaves a gap. Nothing that does not
// carry protocol 198 is touched, and no table is flushed.
func (h *hostNet) reconcile(networks []config.Network) error {
	added, removed, err := h.eng.Reconcile(netpolicy.Desired(networks))
	if len(added)+len(removed) > 0 {
		h.log.Info("network policy reconciled", "added", len(added), "removed", len(removed))
	}
	if err != nil {
		return fmt.Errorf("network policy: %w", err)
	}
	return nil
}

// end undoes the session: policy, addresses still on their devices and the
// forwarding switches, as the journal recorded them.
func (h *hostNet) end() {
	rep, err := h.eng.End()
	if err != nil {
		h.log.Error("restore the routing state", "err", err)
		return
	}
	if len(rep.Problems) > 0 {
		h.log.Warn("restore the routing state", "undone", len(rep.Undone), "swept", len(rep.Swept), "problems", rep.Problems)
	}
}

// bringUp creates network n's device with its stored key and sets its link
// up; the live stored peers become the network's registered peers, which
// a lazy device takes on as their handshakes arrive (lazypeers.go). Its
// addresses and policy come with the next reconcile.
// On failure it removes whatever it created.
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
	dev, err := g.deps.newTunnel(n, g.log)
	if err != nil {
		return nil, nil, err
	}
	_, lazy := dev.(lazyTunnel)
	created := &network{cfg: n, dev: dev, pubKey: priv.PublicKey(), privKey: priv, peers: newPeerSet(lazy)}
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
		created.peers.peers[pc.PublicKey] = &wantPeer{pc: pc, onDevice: !lazy, lastActive: now}
		if !lazy {
			pcs = append(pcs, pc)
		}
		peers = append(peers, p)
	}
	port := n.ListenPort
	g.wgMu.Lock()
	err = g.wg.ConfigureDevice(n.Interface, wgtypes.Config{PrivateKey: &priv, ListenPort: &port, ReplacePeers: true, Peers: pcs})
	g.wgMu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("configure %s through wgctrl (listen_port %d): %w", n.Interface, n.ListenPort, err)
	}
	if lt, ok := dev.(lazyTunnel); ok {
		if err = lt.SetLazy(priv, priv.PublicKey(), func(k [32]byte) { g.lazyAdd(created, k) }); err != nil {
			return nil, nil, fmt.Errorf("%s: lazy peers: %w", n.Interface, err)
		}
	}
	if err = dev.Up(); err != nil {
		return nil, nil, fmt.Errorf("bring %s up: %w", n.Interface, err)
	}
	// The device must serve on the configured port and no other: clients
	// are told that port (a wireguard-go that lost it once bound a random
	// one and came up, see wgdev's stateTUN).
	g.wgMu.Lock()
	d, err := g.wg.Device(n.Interface)
	g.wgMu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s back through wgctrl: %w", n.Interface, err)
	}
	if d.ListenPort != n.ListenPort {
		err = fmt.Errorf("%s listens on UDP port %d, not listen_port %d", n.Interface, d.ListenPort, n.ListenPort)
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
		"port", n.ListenPort, "table", n.Table, "public_key", created.pubKey.String(), "peers", len(peers), "lazy", lazy)
	return created, peers, nil
}

// tearDown removes network nw's device (the kernel removes its addresses
// with it); its policy goes with the next reconcile or the route session's end.
func (g *Gateway) tearDown(nw *network) {
	g.flows.detach(nw.cfg.Interface)
	nw.dev.Close()
	g.log.Info("network down", "network", nw.cfg.Name, "interface", nw.cfg.Interface)
}

// CheckTables reads this host's routing tables (`vpn-gateway check`) and
// returns a *netpolicy.ForeignError when a table of cfg's networks holds a
// route the gateway does not own. read is false when the tables cannot be
// read here (not Linux), with the reason in err.
func CheckTables(cfg *config.Config) (read bool, err error) {
	sys, err := hostDeps().sys()
	if err != nil {
		return false, err
	}
	snap, err := sys.Snapshot()
	if err != nil {
		return false, fmt.Errorf("read the routing tables: %w", err)
	}
	return true, netpolicy.CheckTables(snap, cfg.Networks)
}

// closeNetworks tears down every running network's device.
func (g *Gateway) closeNetworks() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, nw := range g.networks {
		g.tearDown(nw)
		delete(g.networks, name)
	}
}
