// Package lifecycle enforces what happens to registered keys over time, on
// the gateway itself: it keeps an in-memory view of every key's deadlines so
// that expiry fires on time (to the millisecond, from a timer) even while the
// store is unreachable; it warns before expiry and about keys never used or
// gone idle; and it follows the store (re-read every store_poll, or at once
// when poked over the admin socket) so that a revocation made by `vpn-gateway
// peers revoke`, on this host or another, leaves the device within seconds.
//
// Two goroutines do the work so that a slow store never delays an expiry: the
// clock loop (expiry, device statistics, warnings) touches only the devices
// and memory; the store loop (re-reading peers, writing deletions and
// handshake times) may block on the store.
package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/clearpath-vpn/clearpath/server/store"
)

// Devices is what the manager needs of the gateway's WireGuard devices.
type Devices interface {
	// AddPeer puts p on its network's device (or updates it).
	AddPeer(p store.Peer) error
	// RemovePeer takes the key off network's device; a key that is not
	// there is not an error.
	RemovePeer(network, publicKey string) error
	// Stats returns the device's view of its peers, by public key.
	Stats(network string) (map[string]PeerStat, error)
}

// PeerStat is a device's view of one peer.
type PeerStat struct {
	LastHandshake time.Time
	Rx, Tx        int64
	Endpoint      string
}

// Event kinds besides the warning kinds.
const (
	EventExpired = "expired"
	EventRevoked = "revoked"
	// EventFreed: a device's address was freed, its grace period over
	// (Peer holds the device's last owner, host and addresses).
	EventFreed = "freed"
)

// DefaultHousekeepEvery is how often the store loop frees addresses whose
// grace period ended and prunes the audit log.
const DefaultHousekeepEvery = time.Hour

// Event is something that happened to a key, for the audit log, the webhook
// and the metrics.
type Event struct {
	// Kind is KindExpiring, KindUnused, KindIdle, EventExpired or EventRevoked.
	Kind string
	Peer store.Peer
	At   time.Time
	// Lead is how long before expiry an expiring warning was due.
	Lead time.Duration
	// Since is the last activity of an idle key.
	Since         time.Time
	LastHandshake time.Time
	Reason        string
	Actor, Remote string
	// Recorded means the audit entry exists already (a revocation the
	// admin command wrote to the store): do not write another.
	Recorded bool
	// Latency is, for EventExpired, how late after the deadline the key left
	// the device.
	Latency time.Duration
}

// Options configure a Manager.
type Options struct {
	Store    *store.Store
	Devices  Devices
	Log      *slog.Logger
	Settings Settings
	// Notify receives every event, in order, from one goroutine.
	Notify func(Event)
	// Now defaults to time.Now.
	Now func() time.Time
	// StoreTimeout bounds each store operation of the loops (default 3s).
	StoreTimeout time.Duration
	// HousekeepEvery is how often addresses are freed and the audit log
	// pruned (default DefaultHousekeepEvery; the first sweep runs at the
	// first store read).
	HousekeepEvery time.Duration
}

// Manager tracks the keys on the devices.
type Manager struct {
	st      *store.Store
	dev     Devices
	log     *slog.Logger
	notify  func(Event)
	now     func() time.Time
	stTO    time.Duration
	hkEvery time.Duration
	nextHK  time.Time // store loop only

	events  chan Event
	wakeNow chan struct{} // clock loop: re-plan (a deadline changed)
	syncReq chan chan syncReply

	mu         sync.Mutex
	set        Settings
	entries    map[string]*entry // by public key
	networks   map[string]bool   // running networks
	tombs      map[string]time.Time
	pendingDel []string
	hsDirty    map[string]time.Time
	storeErr   error
	storeOK    time.Time // last successful read

	// OnStoreError, if set, is called for each failed read of the store
	// (metrics). Set it before Run.
	OnStoreError func(error)
	// AfterSync, if set, runs after each successful read of the store, on
	// the store loop (writers that queued while it was down flush here).
	AfterSync func(context.Context)
}

type entry struct {
	peer      store.Peer
	trackedAt time.Time
	hs        time.Time // latest handshake seen
	active    time.Time // latest handshake or received packet seen
	rx, tx    int64
	warned    map[string]bool
	// retryAt delays another attempt to expire a key whose removal failed.
	retryAt time.Time
}

// New returns a manager; call Run.
func New(o Options) *Manager {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = 3 * time.Second
	}
	if o.HousekeepEvery == 0 {
		o.HousekeepEvery = DefaultHousekeepEvery
	}
	if o.Settings.StorePoll == 0 {
		o.Settings.StorePoll = time.Second
	}
	return &Manager{
		st: o.Store, dev: o.Devices, log: o.Log, notify: o.Notify, now: o.Now, stTO: o.StoreTimeout, hkEvery: o.HousekeepEvery,
		events: make(chan Event, 4096), wakeNow: make(chan struct{}, 1), syncReq: make(chan chan syncReply, 16),
		set: o.Settings, entries: map[string]*entry{}, networks: map[string]bool{}, tombs: map[string]time.Time{},
		hsDirty: map[string]time.Time{},
	}
}

// SetSettings replaces the settings (configuration reload).
func (m *Manager) SetSettings(s Settings) {
	m.mu.Lock()
	m.set = s
	m.mu.Unlock()
	m.wake()
}

func (m *Manager) wake() {
	select {
	case m.wakeNow <- struct{}{}:
	default:
	}
}

func newEntry(p store.Peer, now time.Time, warned map[string]bool) *entry {
	if warned == nil {
		warned = map[string]bool{}
	}
	return &entry{peer: p, trackedAt: now, hs: p.LastHandshake, active: p.LastHandshake, warned: warned}
}

// AddNetwork marks network as running with peers already on its device.
func (m *Manager) AddNetwork(ctx context.Context, network string, peers []store.Peer) {
	warned := map[string]map[string]bool{}
	if len(peers) > 0 {
		sctx, cancel := context.WithTimeout(ctx, m.stTO)
		if w, err := m.st.Warned(sctx); err == nil {
			warned = w
		}
		cancel()
	}
	m.mu.Lock()
	now := m.now()
	m.networks[network] = true
	for _, p := range peers {
		m.entries[p.PublicKey] = newEntry(p, now, warned[p.ID])
	}
	m.mu.Unlock()
	m.wake()
}

// RemoveNetwork forgets network and its keys (its device is gone).
func (m *Manager) RemoveNetwork(network string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.networks, network)
	for k, e := range m.entries {
		if e.peer.Network == network {
			delete(m.entries, k)
		}
	}
}

// Put puts p on its device and tracks it; old is the peer p replaces (its
// key leaves the device if it differs).
func (m *Manager) Put(p store.Peer, old *store.Peer) error {
	m.mu.Lock()
	defer m.wake()
	defer m.mu.Unlock()
	if err := m.dev.AddPeer(p); err != nil {
		return err
	}
	now := m.now()
	if old != nil && old.PublicKey != p.PublicKey {
		if err := m.dev.RemovePeer(old.Network, old.PublicKey); err != nil {
			m.log.Warn("remove replaced key", "peer", old.ID, "err", err)
		}
		delete(m.entries, old.PublicKey)
		m.tombs[old.ID] = now
	}
	if old != nil && old.ID != p.ID {
		m.tombs[old.ID] = now
	}
	e := m.entries[p.PublicKey]
	if e != nil && e.peer.ID != p.ID {
		m.tombs[e.peer.ID] = now
	}
	ne := newEntry(p, now, nil)
	if e != nil { // the same key again: its activity carries over
		ne.hs, ne.active, ne.rx, ne.tx = e.hs, e.active, e.rx, e.tx
		if e.peer.ID == p.ID {
			ne.warned = e.warned
		}
	}
	m.entries[p.PublicKey] = ne
	return nil
}

// Remove takes a key off the device and stops tracking it (the user
// deleted their peer).
func (m *Manager) Remove(network, publicKey string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.dev.RemovePeer(network, publicKey); err != nil {
		return err
	}
	if e := m.entries[publicKey]; e != nil {
		m.tombs[e.peer.ID] = m.now()
		delete(m.entries, publicKey)
	}
	return nil
}

// RevokeWhere removes every tracked key whose peer matches, from the device
// at once and then from the store, and reports each as revoked by actor.
func (m *Manager) RevokeWhere(ctx context.Context, match func(store.Peer) bool, reason, actor, remote string) []store.Peer {
	m.mu.Lock()
	var gone []store.Peer
	now := m.now()
	for k, e := range m.entries {
		if !match(e.peer) {
			continue
		}
		if err := m.dev.RemovePeer(e.peer.Network, k); err != nil {
			m.log.Error("revoke: remove from device", "peer", e.peer.ID, "err", err)
			continue
		}
		delete(m.entries, k)
		m.tombs[e.peer.ID] = now
		gone = append(gone, e.peer)
	}
	m.mu.Unlock()
	for _, p := range gone {
		sctx, cancel := context.WithTimeout(ctx, m.stTO)
		if _, err := m.st.DeletePeer(sctx, p.ID, ""); err != nil {
			m.log.Warn("revoke: store unreachable, deletion queued", "peer", p.ID, "err", err)
			m.mu.Lock()
			m.pendingDel = append(m.pendingDel, p.ID)
			m.mu.Unlock()
		}
		cancel()
		m.emit(Event{Kind: EventRevoked, Peer: p, At: now, Reason: reason, Actor: actor, Remote: remote})
	}
	return gone
}

// Tracked is a key as the manager sees it.
type Tracked struct {
	Peer          store.Peer
	LastHandshake time.Time
	LastActive    time.Time
	Rx, Tx        int64
}

// Tracked returns every tracked key.
func (m *Manager) Tracked() []Tracked {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Tracked, 0, len(m.entries))
	for _, e := range m.entries {
		out = append(out, Tracked{Peer: e.peer, LastHandshake: e.hs, LastActive: e.active, Rx: e.rx, Tx: e.tx})
	}
	return out
}

// StoreStatus reports when the store last answered and the last error
// (nil when the last read worked).
func (m *Manager) StoreStatus() (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.storeOK, m.storeErr
}

type syncReply struct {
	removed []string
	err     error
}

// Sync re-reads the store now and returns, once the devices match it, the
// ids of the peers it removed (revoked in the store).
func (m *Manager) Sync(ctx context.Context) ([]string, error) {
	reply := make(chan syncReply, 1)
	select {
	case m.syncReq <- reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.removed, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Run runs the loops until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); m.dispatch(ctx) }()
	go func() { defer wg.Done(); m.clockLoop(ctx) }()
	go func() { defer wg.Done(); m.storeLoop(ctx) }()
	wg.Wait()
}

func (m *Manager) emit(e Event) {
	if e.At.IsZero() {
		e.At = m.now()
	}
	m.events <- e
}

func (m *Manager) dispatch(ctx context.Context) {
	for {
		select {
		case e := <-m.events:
			if m.notify != nil {
				m.notify(e)
			}
		case <-ctx.Done():
			// Deliver what is already queued (the audit of a last expiry).
			for {
				select {
				case e := <-m.events:
					if m.notify != nil {
						m.notify(e)
					}
				default:
					return
				}
			}
		}
	}
}

// clockLoop expires keys at their deadline and, every second, reads the
// devices' statistics and sends the warnings that came due.
func (m *Manager) clockLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextStats time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.wakeNow:
		}
		now := m.now()
		m.expireDue(now)
		if !now.Before(nextStats) {
			m.refreshStats()
			m.warnDue(ctx, m.now())
			nextStats = now.Add(time.Second)
		}
		wake := nextStats
		if next := m.nextExpiry(); !next.IsZero() && next.Before(wake) {
			wake = next
		}
		timer.Reset(max(wake.Sub(m.now()), 0))
	}
}

func (m *Manager) nextExpiry() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	for _, e := range m.entries {
		at := e.peer.ExpiresAt
		if e.retryAt.After(at) {
			at = e.retryAt
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

func (m *Manager) expireDue(now time.Time) {
	var expired []Event
	m.mu.Lock()
	for k, e := range m.entries {
		if now.Before(e.peer.ExpiresAt) || now.Before(e.retryAt) {
			continue
		}
		if err := m.dev.RemovePeer(e.peer.Network, k); err != nil {
			// Say so loudly, this key should be gone; try again shortly.
			m.log.Error("expire: cannot remove the key from its device", "peer", e.peer.ID, "network", e.peer.Network, "err", err)
			e.retryAt = now.Add(time.Second)
			continue
		}
		delete(m.entries, k)
		m.tombs[e.peer.ID] = now
		m.pendingDel = append(m.pendingDel, e.peer.ID)
		expired = append(expired, Event{Kind: EventExpired, Peer: e.peer, At: m.now(), LastHandshake: e.hs, Latency: m.now().Sub(e.peer.ExpiresAt)})
	}
	m.mu.Unlock()
	for _, e := range expired {
		m.log.Info("peer expired", "peer", e.Peer.ID, "user", e.Peer.Subject, "network", e.Peer.Network, "late_by", e.Latency.Round(time.Microsecond))
		m.emit(e)
	}
	if len(expired) > 0 {
		m.requestSync() // write the deletions soon
	}
}

func (m *Manager) requestSync() {
	select {
	case m.syncReq <- nil:
	default:
	}
}

func (m *Manager) refreshStats() {
	m.mu.Lock()
	nets := make([]string, 0, len(m.networks))
	for n := range m.networks {
		nets = append(nets, n)
	}
	m.mu.Unlock()
	stats := map[string]PeerStat{}
	for _, n := range nets {
		s, err := m.dev.Stats(n)
		if err != nil {
			m.log.Debug("read device statistics", "network", n, "err", err)
			continue
		}
		for k, v := range s {
			stats[k] = v
		}
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.entries {
		s, ok := stats[k]
		if !ok {
			continue
		}
		if s.LastHandshake.After(e.hs) {
			e.hs = s.LastHandshake
			m.hsDirty[e.peer.ID] = s.LastHandshake
			if s.LastHandshake.After(e.active) {
				e.active = s.LastHandshake
			}
		}
		if s.Rx > e.rx && !e.hs.IsZero() {
			e.active = now
		}
		e.rx, e.tx = s.Rx, s.Tx
	}
}

type dueWarning struct {
	w    Warning
	peer store.Peer
	hs   time.Time
}

func (m *Manager) warnDue(ctx context.Context, now time.Time) {
	var due []dueWarning
	m.mu.Lock()
	set := m.set
	for _, e := range m.entries {
		t := PeerTimes{Created: e.peer.CreatedAt, Expires: e.peer.ExpiresAt, LastHandshake: e.hs, LastActive: e.active}
		for _, w := range Due(set, t, func(k string) bool { return e.warned[k] }, now) {
			e.warned[w.Key] = true
			due = append(due, dueWarning{w, e.peer, e.hs})
		}
	}
	m.mu.Unlock()
	if len(due) == 0 {
		return
	}
	// Recording that a warning went out needs the store; the clock loop
	// must not wait for it.
	go func() {
		for _, d := range due {
			sctx, cancel := context.WithTimeout(ctx, m.stTO)
			first, err := m.st.MarkWarned(sctx, d.peer.ID, d.w.Key, now)
			cancel()
			if err == nil && !first {
				continue // another gateway sharing the store sent it
			}
			if err != nil {
				m.log.Warn("warning: store unreachable, sending anyway (it may repeat after a restart)", "peer", d.peer.ID, "err", err)
			}
			if d.w.Send {
				m.emit(Event{Kind: d.w.Kind, Peer: d.peer, At: now, Lead: d.w.Lead, Since: d.w.Since, LastHandshake: d.hs})
			}
		}
	}()
}

// storeLoop re-reads the store every store_poll (or on request), writes the
// deletions of expired keys and the handshake times.
func (m *Manager) storeLoop(ctx context.Context) {
	var replies []chan syncReply
	for {
		m.mu.Lock()
		poll := m.set.StorePoll
		m.mu.Unlock()
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			m.flush(context.Background()) // last chance for deletions
			return
		case <-t.C:
		case r := <-m.syncReq:
			t.Stop()
			if r != nil {
				replies = append(replies, r)
			}
		drain:
			for {
				select {
				case r := <-m.syncReq:
					if r != nil {
						replies = append(replies, r)
					}
				default:
					break drain
				}
			}
		}
		m.flush(ctx)
		removed, err := m.sync(ctx)
		if err == nil && m.AfterSync != nil {
			m.AfterSync(ctx)
		}
		if now := m.now(); err == nil && !now.Before(m.nextHK) {
			m.nextHK = now.Add(m.hkEvery)
			m.housekeep(ctx, now)
		}
		for _, r := range replies {
			r <- syncReply{removed, err}
		}
		replies = replies[:0]
	}
}

// flush writes the deletions and handshake times waiting for the store.
func (m *Manager) flush(ctx context.Context) {
	m.mu.Lock()
	del := m.pendingDel
	m.pendingDel = nil
	hs := m.hsDirty
	m.hsDirty = map[string]time.Time{}
	m.mu.Unlock()
	var keep []string
	for i, id := range del {
		sctx, cancel := context.WithTimeout(ctx, m.stTO)
		_, err := m.st.DeletePeer(sctx, id, "")
		cancel()
		if err != nil {
			keep = append(keep, del[i:]...)
			break
		}
	}
	sctx, cancel := context.WithTimeout(ctx, m.stTO)
	err := m.st.SetLastHandshakes(sctx, hs)
	cancel()
	m.mu.Lock()
	m.pendingDel = append(keep, m.pendingDel...)
	if err != nil {
		for id, t := range hs {
			if t.After(m.hsDirty[id]) {
				m.hsDirty[id] = t
			}
		}
	}
	m.mu.Unlock()
}

// sync brings the devices in line with the store: keys registered through
// another gateway (or refreshed there) are added or updated, keys gone from
// the store (revoked) are removed. Keys this gateway put or removed after
// the read began are left alone: the read may predate them.
func (m *Manager) sync(ctx context.Context) (removed []string, err error) {
	start := m.now()
	sctx, cancel := context.WithTimeout(ctx, m.stTO)
	defer cancel()
	peers, err := m.st.Peers(sctx, "")
	if err != nil {
		m.mu.Lock()
		if m.storeErr == nil {
			m.log.Warn("store unreachable: expiry and revocations already known stay enforced from memory", "err", err)
		}
		m.storeErr = err
		m.mu.Unlock()
		if m.OnStoreError != nil {
			m.OnStoreError(err)
		}
		return nil, fmt.Errorf("read peers from the store: %w", err)
	}
	m.mu.Lock()
	needWarned := false
	for _, p := range peers {
		if m.networks[p.Network] && m.entries[p.PublicKey] == nil {
			needWarned = true
			break
		}
	}
	m.mu.Unlock()
	warned := map[string]map[string]bool{}
	if needWarned {
		if w, err := m.st.Warned(sctx); err == nil {
			warned = w
		}
	}

	var events []Event
	m.mu.Lock()
	if m.storeErr != nil {
		m.log.Info("store reachable again")
	}
	m.storeErr, m.storeOK = nil, m.now()
	now := m.now()
	inStore := make(map[string]bool, len(peers))
	for _, p := range peers {
		if !m.networks[p.Network] {
			continue
		}
		inStore[p.PublicKey] = true
		if _, dead := m.tombs[p.ID]; dead {
			continue
		}
		e := m.entries[p.PublicKey]
		if e != nil && e.trackedAt.After(start) {
			continue
		}
		if !now.Before(p.ExpiresAt) {
			if e == nil { // expired while no gateway watched it
				m.tombs[p.ID] = now
				m.pendingDel = append(m.pendingDel, p.ID)
				events = append(events, Event{Kind: EventExpired, Peer: p, At: now, LastHandshake: p.LastHandshake, Reason: "expired while the gateway was not running", Latency: now.Sub(p.ExpiresAt)})
			}
			continue // tracked keys expire by the clock
		}
		switch {
		case e == nil:
			if err := m.dev.AddPeer(p); err != nil {
				m.log.Error("add peer from the store", "peer", p.ID, "network", p.Network, "err", err)
				continue
			}
			m.entries[p.PublicKey] = newEntry(p, now, warned[p.ID])
			m.log.Info("peer added from the store", "peer", p.ID, "user", p.Subject, "network", p.Network)
		case e.peer.ID != p.ID || e.peer.ExpiresAt.Unix() != p.ExpiresAt.Unix() || e.peer.Network != p.Network || e.peer.Addr != p.Addr:
			if e.peer.Network != p.Network {
				m.dev.RemovePeer(e.peer.Network, p.PublicKey)
			}
			if err := m.dev.AddPeer(p); err != nil {
				m.log.Error("update peer from the store", "peer", p.ID, "err", err)
				continue
			}
			if e.peer.ID != p.ID {
				m.tombs[e.peer.ID] = now
				e.warned = warned[p.ID]
				if e.warned == nil {
					e.warned = map[string]bool{}
				}
			}
			e.peer = p
		}
	}
	for k, e := range m.entries {
		if inStore[k] || e.trackedAt.After(start) || !m.networks[e.peer.Network] {
			continue
		}
		if err := m.dev.RemovePeer(e.peer.Network, k); err != nil {
			m.log.Error("revoked key: remove from device", "peer", e.peer.ID, "err", err)
			continue
		}
		delete(m.entries, k)
		m.tombs[e.peer.ID] = now
		removed = append(removed, e.peer.ID)
		events = append(events, Event{Kind: EventRevoked, Peer: e.peer, At: now, Recorded: true, LastHandshake: e.hs,
			Reason: "removed from the store (revoked by an administrator or through another gateway)"})
	}
	for id, t := range m.tombs {
		if now.Sub(t) > 10*time.Minute {
			delete(m.tombs, id)
		}
	}
	m.mu.Unlock()
	for _, e := range events {
		if e.Kind == EventRevoked {
			m.log.Info("peer revoked in the store: removed from the device", "peer", e.Peer.ID, "user", e.Peer.Subject, "network", e.Peer.Network)
		}
		m.emit(e)
	}
	m.wake()
	return removed, nil
}

// housekeep frees the addresses whose grace period ended (reported as
// EventFreed) and prunes audit entries older than AuditRetain. A failure is
// logged and tried again at the next sweep.
func (m *Manager) housekeep(ctx context.Context, now time.Time) {
	sctx, cancel := context.WithTimeout(ctx, m.stTO)
	defer cancel()
	freed, err := m.st.FreeReleased(sctx, now)
	if err != nil {
		m.log.Warn("free addresses whose grace period ended", "err", err)
	}
	for _, d := range freed {
		m.log.Info("address freed", "user", d.Subject, "network", d.Network, "device", d.Device, "v4", d.Addr.V4, "was", d.State)
		m.emit(Event{Kind: EventFreed, At: now, Reason: d.State + " since " + d.ReleasedAt.UTC().Format(time.RFC3339),
			Peer: store.Peer{Subject: d.Subject, Email: d.Email, Network: d.Network, Device: d.Device, Hostname: d.Hostname, Addr: d.Addr}})
	}
	if n, err := m.st.PruneWarnings(sctx); err != nil {
		m.log.Warn("prune the warnings of removed peers", "err", err)
	} else if n > 0 {
		m.log.Info("warnings of removed peers pruned", "rows", n)
	}
	m.mu.Lock()
	retain := m.set.AuditRetain
	m.mu.Unlock()
	if retain <= 0 {
		return
	}
	n, err := m.st.PruneAudit(sctx, now.Add(-retain))
	if err != nil {
		m.log.Warn("prune the audit log", "err", err)
		return
	}
	if n > 0 {
		m.log.Info("audit log pruned", "entries", n, "older_than", now.Add(-retain).UTC().Format(time.RFC3339))
	}
}
