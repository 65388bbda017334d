package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeClock is the store's injected time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func register(t *testing.T, s *Store, subject, network, device string, p4, p6 netip.Prefix, max int, clock *fakeClock) (Allocation, Peer, error) {
	t.Helper()
	return registerTTL(t, s, subject, network, device, p4, p6, max, clock, 30*24*time.Hour)
}

func registerTTL(t *testing.T, s *Store, subject, network, device string, p4, p6 netip.Prefix, max int, clock *fakeClock, ttl time.Duration) (Allocation, Peer, error) {
	t.Helper()
	ctx := context.Background()
	a, err := s.AllocateDevice(ctx, AllocRequest{Subject: subject, Network: network, Device: device, Pool4: p4, Pool6: p6, MaxDevices: max})
	if err != nil {
		return a, Peer{}, err
	}
	now := clock.Now()
	p := Peer{ID: "p-" + subject + "-" + device + fmt.Sprint(now.UnixNano()), Subject: subject, Email: subject + "@example.com", Network: network, Device: device,
		PublicKey: "key-" + subject + "-" + device + fmt.Sprint(now.UnixNano()), Hostname: "host-" + device, CreatedAt: now, ExpiresAt: now.Add(ttl), Addr: a}
	if _, err := s.PutPeer(ctx, p); err != nil {
		t.Fatalf("put peer %s/%s: %v", subject, device, err)
	}
	return a, p, nil
}

// 16 devices registered and revoked, then a new device registers: the
// device limit counts live devices only. On main the 17th is refused for
// life ("holds 16 addresses").
func TestRevokedDevicesLeaveTheDeviceLimit(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
		s.SetClock(clock.Now)
		first := map[string]Allocation{}
		for i := range 16 {
			dev := fmt.Sprint("ci-run-", i)
			a, p, err := register(t, s, "alice", "eng", dev, pool4, pool6, 16, clock)
			if err != nil {
				t.Fatalf("device %d: %v", i, err)
			}
			first[dev] = a
			if ok, err := s.DeletePeer(ctx, p.ID, ""); err != nil || !ok {
				t.Fatalf("revoke %d: %v %v", i, ok, err)
			}
		}
		a, _, err := register(t, s, "alice", "eng", "ci-run-16", pool4, pool6, 16, clock)
		if err != nil {
			t.Fatalf("a 17th device after 16 revoked ones: %v", err)
		}
		for dev, old := range first {
			if old.V4 == a.V4 {
				t.Fatalf("the new device got %s, still kept for %s in its grace period", a.V4, dev)
			}
		}
		// A revoked device coming back within the grace period keeps its
		// address (and counts again).
		clock.Add(24 * time.Hour)
		back, _, err := register(t, s, "alice", "eng", "ci-run-3", pool4, pool6, 16, clock)
		if err != nil || back != first["ci-run-3"] {
			t.Fatalf("a device back within its grace period got %v (%v), want its old %v", back, err, first["ci-run-3"])
		}
		// The limit still holds for live devices.
		for i := 17; i < 31; i++ {
			if _, _, err := register(t, s, "alice", "eng", fmt.Sprint("ci-run-", i), pool4, pool6, 16, clock); err != nil {
				t.Fatalf("live device %d: %v", i, err)
			}
		}
		_, _, err = register(t, s, "alice", "eng", "one-too-many", pool4, pool6, 16, clock)
		if !errors.Is(err, ErrDeviceLimit) || !strings.Contains(err.Error(), "16 live devices") {
			t.Fatalf("17th live device: %v, want the device limit", err)
		}
		// Returning from grace is refused at the limit too.
		_, _, err = register(t, s, "alice", "eng", "ci-run-4", pool4, pool6, 16, clock)
		if !errors.Is(err, ErrDeviceLimit) {
			t.Fatalf("a revoked device back while 16 are live: %v, want the device limit", err)
		}
	})
}

// A /29 pool (5 addresses for clients) drained by revoked and expired
// peers serves a new user once the grace period is over, not before. On
// main the pool stays exhausted for ever.
func TestDrainedPoolServesNewUserAfterGrace(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
		s.SetClock(clock.Now)
		small := netip.MustParsePrefix("10.9.0.0/29")
		var peers []Peer
		for i := range 5 {
			_, p, err := registerTTL(t, s, fmt.Sprint("user", i), "n", "d", small, netip.Prefix{}, 16, clock, time.Hour)
			if err != nil {
				t.Fatalf("user %d: %v", i, err)
			}
			peers = append(peers, p)
		}
		if _, _, err := register(t, s, "late", "n", "d", small, netip.Prefix{}, 16, clock); !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("sixth user with the pool full of live devices: %v", err)
		}
		// Three revoked by an admin, one deleted by its user, one expired.
		for _, p := range peers[:3] {
			if ok, err := s.DeletePeer(ctx, p.ID, ""); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
		if ok, err := s.DeletePeer(ctx, peers[3].ID, StateDeleted); !ok || err != nil {
			t.Fatal(ok, err)
		}
		clock.Add(2 * time.Hour) // past the last peer's expiry
		if ok, err := s.DeletePeer(ctx, peers[4].ID, ""); !ok || err != nil {
			t.Fatal(ok, err)
		}
		_, _, err := register(t, s, "late", "n", "d", small, netip.Prefix{}, 16, clock)
		if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "5 of its addresses are kept") || !strings.Contains(err.Error(), "vpn-gateway devices free") {
			t.Fatalf("within the grace period: %v, want pool exhausted naming the kept addresses and the command", err)
		}
		devs, err := s.Devices(ctx, "n")
		if err != nil || len(devs) != 5 {
			t.Fatalf("devices: %+v %v", devs, err)
		}
		states := map[string]int{}
		for _, d := range devs {
			states[d.State]++
			if d.FreedAt.IsZero() || d.Email == "" || d.Hostname != "host-d" {
				t.Errorf("device %+v: missing freed-at, e-mail or host name", d)
			}
		}
		if states[StateRevoked] != 3 || states[StateDeleted] != 1 || states[StateExpired] != 1 {
			t.Errorf("states = %v, want 3 revoked, 1 deleted, 1 expired", states)
		}
		clock.Add(DefaultAllocationGrace)
		a, _, err := register(t, s, "late", "n", "d", small, netip.Prefix{}, 16, clock)
		if err != nil || a.V4.String() != "10.9.0.2" {
			t.Fatalf("after the grace period the new user got %v (%v), want 10.9.0.2 (freed)", a, err)
		}
		// The lazy free took every address whose grace ended.
		devs, _ = s.Devices(ctx, "n")
		if len(devs) != 1 || devs[0].Subject != "late" || devs[0].State != StateLive {
			t.Errorf("after freeing: %+v", devs)
		}
	})
}

func TestFreeReleasedSweepAndFreeDevice(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
		s.SetClock(clock.Now)
		s.SetAllocationGrace(48 * time.Hour)
		_, live, _ := register(t, s, "alice", "eng", "laptop", pool4, pool6, 16, clock)
		_, gone, _ := register(t, s, "bob", "eng", "phone", pool4, pool6, 16, clock)
		_, gone2, _ := register(t, s, "carol", "eng", "tablet", pool4, pool6, 16, clock)
		s.DeletePeer(ctx, gone.ID, "")
		s.DeletePeer(ctx, gone2.ID, "")
		// A registration that allocated and then failed leaves no peer.
		if _, err := s.AllocateDevice(ctx, AllocRequest{Subject: "dave", Network: "eng", Device: "x", Pool4: pool4, Pool6: pool6}); err != nil {
			t.Fatal(err)
		}
		if freed, err := s.FreeReleased(ctx, clock.Now().Add(47*time.Hour)); err != nil || len(freed) != 0 {
			t.Fatalf("sweep within the grace: %+v %v", freed, err)
		}
		freed, err := s.FreeReleased(ctx, clock.Now().Add(48*time.Hour))
		if err != nil || len(freed) != 2 {
			t.Fatalf("sweep after the grace: %+v %v", freed, err)
		}
		// dave's orphan was marked released at the first sweep (47h).
		devs, _ := s.Devices(ctx, "eng")
		var dave *DeviceInfo
		for i := range devs {
			if devs[i].Subject == "dave" {
				dave = &devs[i]
			}
		}
		if len(devs) != 2 || dave == nil || dave.State != StateReleased || !dave.FreedAt.Equal(clock.Now().Add(47*time.Hour+48*time.Hour)) {
			t.Fatalf("after the sweep: %+v", devs)
		}
		// Free refuses a live device unless told to revoke it.
		if _, err := s.FreeDevice(ctx, "alice", "eng", "laptop", false); !errors.Is(err, ErrDeviceLive) || !strings.Contains(err.Error(), "alice@example.com") {
			t.Fatalf("free a live device: %v", err)
		}
		if _, err := s.FreeDevice(ctx, "nobody", "eng", "laptop", false); !errors.Is(err, ErrNotFound) {
			t.Fatalf("free an unknown device: %v", err)
		}
		d, err := s.FreeDevice(ctx, "alice", "eng", "laptop", true)
		if err != nil || d.PeerID != live.ID || d.State != StateLive {
			t.Fatalf("free --revoke: %+v %v", d, err)
		}
		if _, err := s.PeerByID(ctx, live.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("the revoked peer is still in the store: %v", err)
		}
		if d, err := s.FreeDevice(ctx, "dave", "eng", "x", false); err != nil || d.State != StateReleased {
			t.Fatalf("free a released device: %+v %v", d, err)
		}
		if devs, _ := s.Devices(ctx, "eng"); len(devs) != 0 {
			t.Errorf("left: %+v", devs)
		}
	})
}

func TestPruneAudit(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		now := time.Unix(1_800_000_000, 0)
		for i, age := range []time.Duration{500 * 24 * time.Hour, 401 * 24 * time.Hour, 399 * 24 * time.Hour, time.Hour} {
			if err := s.Record(ctx, AuditRecord{Time: now.Add(-age), Actor: "a", Action: fmt.Sprint("act", i)}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.PruneAudit(ctx, now.Add(-400*24*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("pruned %d (%v), want 2", n, err)
		}
		left, _ := s.QueryAudit(ctx, AuditQuery{})
		if len(left) != 2 || left[0].Action != "act2" {
			t.Fatalf("left: %+v", left)
		}
	})
}

// A store of schema 3 whose allocations leaked (peers revoked before
// addresses came back) migrates: the leaked ones start their grace, the
// others keep their owner's e-mail and host.
func TestMigrationReleasesLeakedAllocations(t *testing.T) {
	freshStores(t, func(t *testing.T, dsn func() string) {
		ctx := context.Background()
		d := dsn()
		s := openAt(t, d, 3)
		for i, u := range []string{"alice", "bob"} {
			if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO allocations (subject, network, device, v4num, ipv4, ipv6, created_at) VALUES (?, 'eng', 'd', ?, ?, '', 1)`),
				u, v4Num(netip.MustParseAddr(fmt.Sprintf("100.64.0.%d", i+2))), fmt.Sprintf("100.64.0.%d", i+2)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO peers (id, subject, email, network, device, public_key, hostname, created_at, expires_at) VALUES ('p1', 'alice', 'alice@example.com', 'eng', 'd', 'k', 'lap', 1, 9999999999)`)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = mustOpen(t, d)
		devs, err := s.Devices(ctx, "eng")
		if err != nil || len(devs) != 2 {
			t.Fatalf("devices: %+v %v", devs, err)
		}
		if devs[0].Subject != "alice" || devs[0].State != StateLive || devs[0].Hostname != "lap" {
			t.Errorf("alice: %+v", devs[0])
		}
		if devs[1].Subject != "bob" || devs[1].State != StateReleased || devs[1].FreedAt.IsZero() {
			t.Errorf("bob's leaked allocation: %+v", devs[1])
		}
	})
}

// The store and its -wal and -shm files are created 0600 whatever the
// umask (on main: 0644 under the usual umask 022, readable by every local
// user: every network's private key and preshared key).
func TestStoreFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "sub", "gw.db")
	s := mustOpen(t, path)
	if _, err := s.NetworkKey(context.Background(), "eng", func() (string, error) { return "secret-key", nil }); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, mode)
		}
	}
	if fi, _ := os.Stat(filepath.Dir(path)); fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory mode %04o, want 0700", fi.Mode().Perm())
	}
}
