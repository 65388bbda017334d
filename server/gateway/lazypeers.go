package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
	"github.com/clearpath-vpn/clearpath/server/lifecycle"
)

// Lazy peers. A wireguard-go peer costs about 40 KB (queues, timers,
// goroutines) whether its device is online or not, and a gateway serves
// every registered device of a company while most are offline. So each
// network keeps its registered peers in memory (peerSet, the truth: what
// AddPeer and RemovePeer change, first) and its device holds only the
// active ones:
//   - a handshake initiation from a registered key that is not on the
//     device puts it there before wireguard-go sees the packet (wgdev's
//     lazy bind calls lazyAdd), so the first initiation is answered;
//   - the trimmer takes off peers idle (no handshake, no traffic) for
//     idle_peer_timeout, keeping their figures so that Stats, the admin
//     page, the metrics and the lifecycle still see them.
// A key not in the set (never registered, revoked, expired) is never put
// on the device. Tunnels that cannot be lazy (unit tests' fakes) get every
// peer, as before.

// lazyTunnel is a tunnel that can call back for initiations from absent
// keys (wgdev.Device).
type lazyTunnel interface {
	SetLazy(priv, pub [32]byte, hook wgdev.PeerHook) error
	LazyStats() wgdev.LazyStats
}

// peerSet is one network's registered peers.
type peerSet struct {
	// mu is held across the device change that follows a set change, so a
	// lazy add cannot slip between a removal from the set and from the
	// device. Order: peerSet.mu, then Gateway.wgMu.
	mu    sync.Mutex
	lazy  bool // the device holds active peers only
	peers map[wgtypes.Key]*wantPeer
	// seen is the lazy bind's counters at the last trim (trimLoop only).
	seen wgdev.LazyStats
}

type wantPeer struct {
	pc       wgtypes.PeerConfig
	onDevice bool
	// lastActive is the last handshake, traffic or arrival on the device.
	lastActive time.Time
	// base adds up the figures of earlier stays on the device (a peer's
	// counters restart when it comes back); cur is the current stay's.
	base, cur lifecycle.PeerStat
}

func newPeerSet(lazy bool) *peerSet {
	return &peerSet{lazy: lazy, peers: map[wgtypes.Key]*wantPeer{}}
}

// stat is the peer's figures over all its stays on the device.
func (w *wantPeer) stat() lifecycle.PeerStat {
	s := lifecycle.PeerStat{Rx: w.base.Rx + w.cur.Rx, Tx: w.base.Tx + w.cur.Tx, LastHandshake: w.base.LastHandshake, Endpoint: w.base.Endpoint}
	if w.cur.LastHandshake.After(s.LastHandshake) {
		s.LastHandshake = w.cur.LastHandshake
	}
	if w.cur.Endpoint != "" {
		s.Endpoint = w.cur.Endpoint
	}
	return s
}

// observe takes the device's figures of the current stay and notes
// activity.
func (w *wantPeer) observe(s lifecycle.PeerStat, now time.Time) {
	if s.LastHandshake.After(w.cur.LastHandshake) || s.Rx != w.cur.Rx || s.Tx != w.cur.Tx {
		w.lastActive = now
	}
	w.cur = s
}

// leave ends the current stay.
func (w *wantPeer) leave() {
	w.base = w.stat()
	w.cur = lifecycle.PeerStat{}
	w.onDevice = false
}

func peerStat(p wgtypes.Peer) lifecycle.PeerStat {
	s := lifecycle.PeerStat{LastHandshake: p.LastHandshakeTime, Rx: p.ReceiveBytes, Tx: p.TransmitBytes}
	if p.Endpoint != nil {
		s.Endpoint = p.Endpoint.String()
	}
	return s
}

// configure applies peer changes to nw's device (one wgctrl call at a time).
func (g *Gateway) configure(nw *network, pcs ...wgtypes.PeerConfig) error {
	g.wgMu.Lock()
	defer g.wgMu.Unlock()
	if err := g.wg.ConfigureDevice(nw.cfg.Interface, wgtypes.Config{Peers: pcs}); err != nil {
		g.metrics.Errors.WithLabelValues("device").Inc()
		return fmt.Errorf("configure peers of %s: %w", nw.cfg.Interface, err)
	}
	return nil
}

// lazyAdd is the lazy bind's hook: it puts key on nw's device if the key is
// registered on nw, and does nothing otherwise.
func (g *Gateway) lazyAdd(nw *network, key [32]byte) {
	set := nw.peers
	set.mu.Lock()
	defer set.mu.Unlock()
	w := set.peers[wgtypes.Key(key)]
	if w == nil {
		g.log.Debug("handshake from a key not registered on this network", "network", nw.cfg.Name, "public_key", wgtypes.Key(key).String())
		return
	}
	if err := g.configure(nw, w.pc); err != nil {
		g.log.Warn("put an active peer on its device", "network", nw.cfg.Name, "err", err)
		return
	}
	if !w.onDevice {
		w.onDevice, w.lastActive, w.cur = true, g.now(), lifecycle.PeerStat{}
	}
}

// activate puts the registered key k on nw's device now.
func (g *Gateway) activate(nw *network, k wgtypes.Key) error {
	set := nw.peers
	set.mu.Lock()
	defer set.mu.Unlock()
	w := set.peers[k]
	if w == nil || w.onDevice {
		return nil
	}
	if err := g.configure(nw, w.pc); err != nil {
		return err
	}
	w.onDevice, w.lastActive, w.cur = true, g.now(), lifecycle.PeerStat{}
	return nil
}

// trim takes the peers idle for longer than idle off nw's device and
// removes keys the device holds but the set does not (none should).
func (g *Gateway) trim(nw *network, idle time.Duration) (trimmed int, err error) {
	set := nw.peers
	if !set.lazy {
		return 0, nil
	}
	g.wgMu.Lock()
	d, err := g.wg.Device(nw.cfg.Interface)
	g.wgMu.Unlock()
	if err != nil {
		return 0, err
	}
	now := g.now()
	set.mu.Lock()
	defer set.mu.Unlock()
	var rm []wgtypes.PeerConfig
	var left []*wantPeer
	for _, p := range d.Peers {
		w := set.peers[p.PublicKey]
		if w == nil {
			rm = append(rm, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
			continue
		}
		if !w.onDevice { // put there outside lazyAdd: adopt it
			w.onDevice, w.lastActive = true, now
		}
		w.observe(peerStat(p), now)
		if now.Sub(w.lastActive) >= idle {
			rm = append(rm, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
			left = append(left, w)
		}
	}
	if len(rm) == 0 {
		return 0, nil
	}
	if err := g.configure(nw, rm...); err != nil {
		return 0, err
	}
	for _, w := range left {
		w.leave()
	}
	return len(left), nil
}

// trimLoop trims every network's device until ctx ends, every quarter of
// idle_peer_timeout (at most 30 s apart).
func (g *Gateway) trimLoop(ctx context.Context) {
	for {
		idle := g.idlePeerTimeout()
		every := min(max(idle/4, 100*time.Millisecond), 30*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		g.mu.Lock()
		nws := make([]*network, 0, len(g.networks))
		for _, nw := range g.networks {
			nws = append(nws, nw)
		}
		g.mu.Unlock()
		for _, nw := range nws {
			g.reportLazy(nw)
			n, err := g.trim(nw, idle)
			if err != nil {
				g.log.Debug("trim idle peers", "network", nw.cfg.Name, "err", err)
				continue
			}
			if n > 0 {
				g.log.Debug("idle peers left the device", "network", nw.cfg.Name, "peers", n)
			}
		}
	}
}

func (g *Gateway) idlePeerTimeout() time.Duration {
	g.reloadMu.RLock()
	defer g.reloadMu.RUnlock()
	return g.cfg.IdlePeers()
}

// reportLazy logs what the lazy bind refused or could not finish since the
// last trim: initiations over the DH limit (a flood, or many clients behind
// one address) and hooks that outlived wgdev.LazyHookTimeout.
func (g *Gateway) reportLazy(nw *network) {
	lt, ok := nw.dev.(lazyTunnel)
	if !ok {
		return
	}
	st := lt.LazyStats()
	last := nw.peers.seen
	nw.peers.seen = st
	if st.RateLimited > last.RateLimited || st.HookTimeout > last.HookTimeout {
		g.log.Warn("handshake initiations over the DH limit were passed on without adding their peer (a flood, or many clients behind one address: they retry in 5 s)",
			"network", nw.cfg.Name, "over_limit", st.RateLimited-last.RateLimited, "hook_timeouts", st.HookTimeout-last.HookTimeout,
			"opened", st.Opened-last.Opened, "added", st.Hooked-last.Hooked, "bad_mac1", st.BadMAC1-last.BadMAC1, "bad_static", st.BadStatic-last.BadStatic,
			"opened_total", st.Opened, "over_limit_total", st.RateLimited)
	}
	if st.Hooked > last.Hooked {
		g.log.Debug("lazy peers", "network", nw.cfg.Name, "initiations", st.Initiations-last.Initiations, "hooked", st.Hooked-last.Hooked)
	}
}
