package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/server/store"
)

// fakeDevices is the gateway's WireGuard devices as the manager sees them:
// the keys on each network's device, statistics the test sets, and
// removals that can be made to fail.
type fakeDevices struct {
	mu         sync.Mutex
	keys       map[string]store.Peer // network/key
	stats      map[string]PeerStat   // by key
	failRemove int                   // the next n removals fail
	statsCalls int
}

func newFakeDevices() *fakeDevices {
	return &fakeDevices{keys: map[string]store.Peer{}, stats: map[string]PeerStat{}}
}

func (d *fakeDevices) AddPeer(p store.Peer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys[p.Network+"/"+p.PublicKey] = p
	return nil
}

func (d *fakeDevices) RemovePeer(network, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failRemove > 0 {
		d.failRemove--
		return errors.New("wireguard: device busy")
	}
	delete(d.keys, network+"/"+key)
	return nil
}

func (d *fakeDevices) Stats(network string) (map[string]PeerStat, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.statsCalls++
	out := map[string]PeerStat{}
	for _, p := range d.keys {
		if p.Network == network {
			out[p.PublicKey] = d.stats[p.PublicKey]
		}
	}
	return out, nil
}

func (d *fakeDevices) has(network, key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.keys[network+"/"+key]
	return ok
}

func (d *fakeDevices) setStat(key string, s PeerStat) {
	d.mu.Lock()
	d.stats[key] = s
	d.mu.Unlock()
}

func (d *fakeDevices) calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.statsCalls
}

// lc is a Manager on a real SQLite store in a temp dir, fake devices and
// a fake clock.
type lc struct {
	t         *testing.T
	ctx       context.Context
	path      string
	st        *store.Store
	c         *clock
	dev       *fakeDevices
	set       Settings
	m         *Manager
	stop      func()
	storeErrs atomic.Int32

	mu     sync.Mutex
	events []Event
}

var pool4 = netip.MustParsePrefix("100.64.0.0/24")

func newLC(t *testing.T, set Settings) *lc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	path := filepath.Join(t.TempDir(), "gw.db")
	st, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	st.SetClock(c.Now)
	if set.StorePoll == 0 {
		set.StorePoll = 20 * time.Millisecond
	}
	return &lc{t: t, ctx: ctx, path: path, st: st, c: c, dev: newFakeDevices(), set: set}
}

// start runs a manager (a gateway process) with network eng holding the
// store's peers of eng, as the gateway's start does.
func (l *lc) start() {
	l.t.Helper()
	if l.stop != nil {
		l.stop()
	}
	m := New(Options{Store: l.st, Devices: l.dev, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: l.c.Now,
		Settings: l.set, StoreTimeout: 500 * time.Millisecond,
		Notify: func(e Event) { l.mu.Lock(); l.events = append(l.events, e); l.mu.Unlock() }})
	m.OnStoreError = func(error) { l.storeErrs.Add(1) }
	peers, err := l.st.Peers(l.ctx, "eng")
	if err != nil {
		l.t.Fatal(err)
	}
	for _, p := range peers {
		if !l.c.Now().Before(p.ExpiresAt) {
			continue // the gateway puts only live keys on its device
		}
		l.dev.AddPeer(p)
	}
	m.AddNetwork(l.ctx, "eng", slices.DeleteFunc(peers, func(p store.Peer) bool { return !l.c.Now().Before(p.ExpiresAt) }))
	ctx, cancel := context.WithCancel(l.ctx)
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	l.m = m
	l.stop = func() {
		cancel()
		<-done
	}
	l.t.Cleanup(l.stop)
}

// peer makes a peer of eng in the store (as a registration through any
// gateway does), without telling the manager.
func (l *lc) storePeer(id, subject, key string, ttl time.Duration) store.Peer {
	l.t.Helper()
	a, err := l.st.AllocateDevice(l.ctx, store.AllocRequest{Subject: subject, Network: "eng", Device: "d-" + id, Pool4: pool4})
	if err != nil {
		l.t.Fatal(err)
	}
	p := store.Peer{ID: id, Subject: subject, Email: subject + "@example.com", Network: "eng", Device: "d-" + id, PublicKey: key,
		CreatedAt: l.c.Now(), ExpiresAt: l.c.Now().Add(ttl), Addr: a}
	if _, err := l.st.PutPeer(l.ctx, p); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// register is a registration through this gateway: store, then Put.
func (l *lc) register(id, subject, key string, ttl time.Duration) store.Peer {
	l.t.Helper()
	p := l.storePeer(id, subject, key, ttl)
	if err := l.m.Put(p, nil); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// advance moves the clock and waits until the clock loop has run at the
// new time (it reads the device statistics once per second of the clock).
func (l *lc) advance(d time.Duration) {
	l.t.Helper()
	n := l.dev.calls()
	l.c.Add(d)
	l.m.SetSettings(l.set) // wakes the clock loop
	waitFor(l.t, "the clock loop to run", func() bool { return l.dev.calls() > n })
}

func (l *lc) eventsOf(kind, peerID string) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		if e.Kind == kind && (peerID == "" || e.Peer.ID == peerID) {
			out = append(out, e)
		}
	}
	return out
}

func (l *lc) inStore(id string) bool {
	_, err := l.st.PeerByID(l.ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		l.t.Fatalf("peer %s: %v", id, err)
	}
	return err == nil
}

// A key leaves its device at its deadline, not a second before; the
// expiry is reported (with its lateness) and the store row goes too.
// Another key with a later deadline stays.
func TestExpiryRemovesTheKeyOnTime(t *testing.T) {
	l := newLC(t, Settings{})
	l.start()
	l.register("p1", "alice", "key-1", time.Hour)
	l.register("p2", "bob", "key-2", 2*time.Hour)

	l.advance(time.Hour - time.Second)
	if !l.dev.has("eng", "key-1") || len(l.eventsOf(EventExpired, "")) != 0 {
		t.Fatal("a key left its device before its deadline")
	}
	l.advance(time.Second)
	waitFor(t, "key-1 off the device", func() bool { return !l.dev.has("eng", "key-1") })
	waitFor(t, "the expiry reported", func() bool { return len(l.eventsOf(EventExpired, "p1")) == 1 })
	if e := l.eventsOf(EventExpired, "p1")[0]; e.Latency < 0 || e.Latency > time.Second || e.Peer.Subject != "alice" {
		t.Errorf("expired event: %+v", e)
	}
	waitFor(t, "p1 deleted from the store", func() bool { return !l.inStore("p1") })
	if !l.dev.has("eng", "key-2") || !l.inStore("p2") {
		t.Error("the key with a later deadline went too")
	}
	if tr := l.m.Tracked(); len(tr) != 1 || tr[0].Peer.ID != "p2" {
		t.Errorf("tracked after the expiry: %+v", tr)
	}
}

// A device that refuses the removal does not lose the expiry: the manager
// retries until the key is off, and reports it once.
func TestExpiryRetriesAFailedRemoval(t *testing.T) {
	l := newLC(t, Settings{})
	l.start()
	l.register("p1", "alice", "key-1", time.Hour)
	l.dev.mu.Lock()
	l.dev.failRemove = 2
	l.dev.mu.Unlock()
	l.advance(time.Hour)
	if !l.dev.has("eng", "key-1") {
		t.Fatal("the removal was meant to fail")
	}
	if n := len(l.eventsOf(EventExpired, "")); n != 0 {
		t.Fatalf("expiry reported while the key is still on the device (%d events)", n)
	}
	for i := 0; i < 3 && l.dev.has("eng", "key-1"); i++ {
		l.advance(time.Second)
	}
	waitFor(t, "key-1 off the device after retries", func() bool { return !l.dev.has("eng", "key-1") })
	l.advance(time.Second)
	if n := len(l.eventsOf(EventExpired, "p1")); n != 1 {
		t.Errorf("%d expiry events, want 1", n)
	}
	waitFor(t, "p1 deleted from the store", func() bool { return !l.inStore("p1") })
}

// Warnings: the expiry warning goes out once at its lead time, and a
// restarted gateway (same store) does not send it again; a key never used
// is reported unused; one whose handshake is recorded is not, and its
// handshake time reaches the store; a silent key is reported idle.
func TestWarningsOnceAcrossRestart(t *testing.T) {
	l := newLC(t, Settings{WarnBefore: []time.Duration{time.Hour}, UnusedAfter: 30 * time.Minute, IdleAfter: 24 * time.Hour})
	l.start()
	t0 := l.c.Now()
	l.register("used", "alice", "key-u", 48*time.Hour)
	l.register("never", "bob", "key-n", 48*time.Hour)
	hs := t0.Add(10 * time.Minute)
	l.dev.setStat("key-u", PeerStat{LastHandshake: hs, Rx: 100})

	l.advance(31 * time.Minute)
	waitFor(t, "bob's key reported unused", func() bool { return len(l.eventsOf(KindUnused, "never")) == 1 })
	if n := len(l.eventsOf(KindUnused, "used")); n != 0 {
		t.Error("a key with a handshake was reported unused")
	}
	waitFor(t, "alice's handshake recorded in the store", func() bool {
		p, err := l.st.PeerByID(l.ctx, "used")
		return err == nil && p.LastHandshake.Equal(hs)
	})

	// Alice's key stays silent for a day after its last packet.
	l.advance(24 * time.Hour)
	waitFor(t, "alice's key reported idle", func() bool { return len(l.eventsOf(KindIdle, "used")) == 1 })
	if e := l.eventsOf(KindIdle, "used")[0]; e.Since.Before(hs) || e.Since.After(t0.Add(31*time.Minute)) {
		t.Errorf("idle since %v, want the last activity (%v .. %v)", e.Since, hs, t0.Add(31*time.Minute))
	}

	// An hour before the expiry.
	l.advance(48*time.Hour - 24*time.Hour - 31*time.Minute - time.Hour)
	waitFor(t, "the expiry warnings", func() bool {
		return len(l.eventsOf(KindExpiring, "used")) == 1 && len(l.eventsOf(KindExpiring, "never")) == 1
	})
	if e := l.eventsOf(KindExpiring, "used")[0]; e.Lead != time.Hour {
		t.Errorf("lead %v", e.Lead)
	}
	l.advance(time.Minute)
	time.Sleep(100 * time.Millisecond) // warnings are recorded off the clock loop
	if n := len(l.eventsOf(KindExpiring, "")); n != 2 {
		t.Errorf("%d expiry warnings after another minute, want still 2", n)
	}

	// The gateway restarts: nothing already sent goes out again.
	l.start()
	l.advance(time.Second)
	l.advance(time.Second)
	time.Sleep(100 * time.Millisecond)
	for _, k := range []string{KindExpiring, KindUnused, KindIdle} {
		if n := len(l.eventsOf(k, "")); n != map[string]int{KindExpiring: 2, KindUnused: 1, KindIdle: 1}[k] {
			t.Errorf("after a restart: %d %s events", n, k)
		}
	}
}

// The store is the truth shared by gateways and `vpn-gateway peers
// revoke`: a revocation made by another process leaves the device within
// a poll; a key registered through another gateway is put on the device;
// an expiry extended elsewhere (a renewal) moves the deadline here.
func TestStorePollFollowsOtherProcesses(t *testing.T) {
	l := newLC(t, Settings{})
	l.storePeer("p1", "alice", "key-1", time.Hour) // before start: loaded by AddNetwork
	_ = l.storePeer("p2", "bob", "key-2", time.Hour)
	l.start()

	other, err := store.Open(l.ctx, l.path) // another process on the same database
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	waitFor(t, "bob's key, registered elsewhere, on the device", func() bool { return l.dev.has("eng", "key-2") })

	if ok, err := other.DeletePeer(l.ctx, "p1", ""); err != nil || !ok {
		t.Fatalf("revoke in the other process: %v %v", ok, err)
	}
	waitFor(t, "the revoked key off the device", func() bool { return !l.dev.has("eng", "key-1") })
	waitFor(t, "the revocation reported", func() bool { return len(l.eventsOf(EventRevoked, "p1")) == 1 })
	if e := l.eventsOf(EventRevoked, "p1")[0]; !e.Recorded {
		t.Error("a revocation the admin command recorded must not be audited twice (Recorded false)")
	}

	// Bob renews through the other gateway: his expiry moves by a day.
	p2, _ := other.PeerByID(l.ctx, "p2")
	p2.ExpiresAt = p2.ExpiresAt.Add(24 * time.Hour)
	if _, err := other.PutPeer(l.ctx, *p2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.m.Sync(l.ctx); err != nil {
		t.Fatal(err)
	}
	l.advance(time.Hour + time.Minute)
	if !l.dev.has("eng", "key-2") {
		t.Fatal("bob's key expired at its old deadline although renewed elsewhere")
	}
	l.advance(24 * time.Hour)
	waitFor(t, "bob's key expired at the new deadline", func() bool { return !l.dev.has("eng", "key-2") })
}

// outage makes the store fail every read and write of peers, as if the
// database were gone, until the returned func puts it back.
func (l *lc) outage() (restore func()) {
	l.t.Helper()
	db, err := sql.Open("sqlite", "file:"+l.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := db.ExecContext(l.ctx, `ALTER TABLE peers RENAME TO peers_away`); err != nil {
		l.t.Fatal(err)
	}
	return func() {
		if _, err := db.ExecContext(l.ctx, `ALTER TABLE peers_away RENAME TO peers`); err != nil {
			l.t.Fatal(err)
		}
		db.Close()
	}
}

// While the store fails, every failed read is counted and reported, and
// expiry and revocation still take keys off the devices from memory; the
// deletions wait and are written once the store answers again.
func TestStoreOutageKeepsEnforcingAndCatchesUp(t *testing.T) {
	l := newLC(t, Settings{})
	l.start()
	l.register("p1", "alice", "key-1", time.Hour)
	l.register("p2", "bob", "key-2", 10*time.Hour)
	restore := l.outage()

	waitFor(t, "store errors counted", func() bool { return l.storeErrs.Load() >= 2 })
	if _, err := l.m.StoreStatus(); err == nil {
		t.Error("StoreStatus shows no error during the outage")
	}
	if _, err := l.m.Sync(l.ctx); err == nil {
		t.Error("Sync succeeded against a failing store")
	}
	l.advance(time.Hour)
	waitFor(t, "alice's key expired from memory", func() bool { return !l.dev.has("eng", "key-1") })
	gone := l.m.RevokeWhere(l.ctx, func(p store.Peer) bool { return p.Subject == "bob" }, "laptop stolen", "admin", "")
	if len(gone) != 1 || l.dev.has("eng", "key-2") {
		t.Fatalf("revoke during the outage: %v, key on device %v", gone, l.dev.has("eng", "key-2"))
	}
	waitFor(t, "the revocation reported", func() bool { return len(l.eventsOf(EventRevoked, "p2")) == 1 })
	if e := l.eventsOf(EventRevoked, "p2")[0]; e.Actor != "admin" || e.Reason != "laptop stolen" || e.Recorded {
		t.Errorf("revoked event: %+v", e)
	}

	restore()
	waitFor(t, "the queued deletions written", func() bool { return !l.inStore("p1") && !l.inStore("p2") })
	waitFor(t, "the store healthy again", func() bool { ok, err := l.m.StoreStatus(); return err == nil && !ok.IsZero() })
	before := l.storeErrs.Load()
	time.Sleep(200 * time.Millisecond) // about ten polls
	if after := l.storeErrs.Load(); after != before {
		t.Errorf("store errors still counted after it came back: %d -> %d", before, after)
	}
	// The revoked key did not come back from a read that predates it.
	if l.dev.has("eng", "key-2") || l.dev.has("eng", "key-1") {
		t.Error("a removed key is back on the device")
	}
}

// Registration through this gateway: a new key for the same device
// replaces the old one on the device; deleting one's own peer removes it;
// Sync reports what a revocation elsewhere removed.
func TestPutRemoveAndSync(t *testing.T) {
	l := newLC(t, Settings{StorePoll: time.Hour}) // only Sync reads the store
	l.start()
	p := l.register("p1", "alice", "key-1", time.Hour)
	np := p
	np.ID, np.PublicKey = "p1b", "key-1b"
	if _, err := l.st.PutPeer(l.ctx, np); err != nil {
		t.Fatal(err)
	}
	if err := l.m.Put(np, &p); err != nil {
		t.Fatal(err)
	}
	if l.dev.has("eng", "key-1") || !l.dev.has("eng", "key-1b") {
		t.Fatal("the replaced key stayed on the device or the new one is missing")
	}
	q := l.register("p2", "bob", "key-2", time.Hour)
	if err := l.m.Remove("eng", q.PublicKey); err != nil || l.dev.has("eng", "key-2") {
		t.Fatalf("remove: %v", err)
	}
	r := l.register("p3", "carol", "key-3", time.Hour)
	if _, err := l.st.DeletePeer(l.ctx, r.ID, ""); err != nil {
		t.Fatal(err)
	}
	removed, err := l.m.Sync(l.ctx)
	if err != nil || !slices.Equal(removed, []string{"p3"}) {
		t.Fatalf("sync removed %v (%v), want [p3]", removed, err)
	}
	if l.dev.has("eng", "key-3") {
		t.Error("sync left the revoked key on the device")
	}
	// Bob's own delete is not a revocation to report again; alice's new
	// key survives the sync (the store holds it).
	if !l.dev.has("eng", "key-1b") {
		t.Error("sync removed a live key")
	}
	waitFor(t, "p3's revocation reported", func() bool { return len(l.eventsOf(EventRevoked, "p3")) == 1 })
	if got := len(l.eventsOf(EventRevoked, "")); got != 1 {
		t.Errorf("%d revoked events, want 1 (p3)", got)
	}
	l.m.RemoveNetwork("eng")
	if n := len(l.m.Tracked()); n != 0 {
		t.Errorf("%d keys tracked after the network went", n)
	}
}

// A key that expired while no gateway ran is deleted at the first read and
// reported, and never put on the device.
func TestExpiredWhileDownIsDeletedNotAdded(t *testing.T) {
	l := newLC(t, Settings{})
	l.storePeer("old", "dave", "key-old", time.Hour)
	l.c.Add(2 * time.Hour) // the gateway was down
	l.start()
	waitFor(t, "the stale peer deleted", func() bool { return !l.inStore("old") })
	e := l.eventsOf(EventExpired, "old")
	if len(e) != 1 || e[0].Reason == "" || e[0].Latency < time.Hour {
		t.Fatalf("expired-while-down events: %+v", e)
	}
	if l.dev.has("eng", "key-old") {
		t.Error("an expired key was put on the device")
	}
}
