package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/testpg"
)

var (
	pool4 = netip.MustParsePrefix("100.64.0.0/24")
	pool6 = netip.MustParsePrefix("fd00:64::/64")
)

// backends runs f against SQLite and against a real PostgreSQL.
func backends(t *testing.T, f func(t *testing.T, open func() *Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gw.db")
		f(t, func() *Store { return mustOpen(t, path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testpg.Start(t)
		f(t, func() *Store { return mustOpen(t, dsn) })
	})
}

func mustOpen(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAllocationIsStableAcrossReopen(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		a, err := s.Allocate(ctx, "alice", "eng", pool4, pool6)
		if err != nil {
			t.Fatal(err)
		}
		if a.V4.String() != "100.64.0.2" || a.V6.String() != "fd00:64::2" {
			t.Fatalf("first allocation = %v %v, want 100.64.0.2 fd00:64::2 (the .1 is the gateway's)", a.V4, a.V6)
		}
		b, _ := s.Allocate(ctx, "bob", "eng", pool4, pool6)
		if b.V4 == a.V4 {
			t.Fatal("two users got one address")
		}
		s.Close()
		s2 := open()
		again, err := s2.Allocate(ctx, "alice", "eng", pool4, pool6)
		if err != nil || again != a {
			t.Fatalf("after reopening alice got %v (%v), want %v", again, err, a)
		}
		if v, _ := s2.SchemaVersion(ctx); v != migrations[len(migrations)-1].version {
			t.Errorf("schema version %d", v)
		}
	})
}

func TestConcurrentAllocationsAreUnique(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		// Two handles on one database stand for two gateways sharing it.
		stores := []*Store{open(), open()}
		const n = 120
		var wg sync.WaitGroup
		got := make([]Allocation, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = stores[i%2].Allocate(ctx, subjectOf(i), "eng", pool4, pool6)
			}()
		}
		wg.Wait()
		owner := map[netip.Addr]string{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("allocation %d: %v", i, errs[i])
			}
			subject := subjectOf(i)
			if o, ok := owner[got[i].V4]; ok && o != subject {
				t.Fatalf("%s and %s share %s", o, subject, got[i].V4)
			}
			owner[got[i].V4] = subject
		}
		if len(owner) != n-n/5 {
			t.Fatalf("%d distinct addresses for %d users", len(owner), n-n/5)
		}
	})
}

// subjectOf makes every fifth request a second, simultaneous registration
// of the user before it: that user must still get one address.
func subjectOf(i int) string {
	if i%5 == 4 {
		i--
	}
	return fmt.Sprintf("user-%d", i)
}

func TestPoolExhaustion(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "gw.db"))
	small := netip.MustParsePrefix("10.9.0.0/29") // 8 addresses: network, gateway, broadcast excluded = 5
	for i := range 5 {
		if _, err := s.Allocate(context.Background(), fmt.Sprint(i), "n", small, netip.Prefix{}); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	_, err := s.Allocate(context.Background(), "late", "n", small, netip.Prefix{})
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("sixth allocation: %v, want pool exhausted", err)
	}
}

func TestPeerReplaceKeepsAddressAndRefusesStolenKey(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		a, _ := s.AllocateDevice(ctx, AllocRequest{Subject: "alice", Network: "eng", Device: "laptop", Pool4: pool4, Pool6: pool6})
		p := Peer{ID: "p1", Subject: "alice", Network: "eng", Device: "laptop", PublicKey: "key-1", PresharedKey: "psk-1", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if old, err := s.PutPeer(ctx, p); err != nil || old != nil {
			t.Fatalf("first put: %v %v", old, err)
		}
		// A key rotation: same device, new key and session.
		p2 := p
		p2.ID, p2.PublicKey, p2.PresharedKey = "p2", "key-2", "psk-2"
		old, err := s.PutPeer(ctx, p2)
		if err != nil || old == nil || old.PublicKey != "key-1" {
			t.Fatalf("re-registration must return the replaced key: %v %v", old, err)
		}
		got, err := s.DevicePeer(ctx, "alice", "eng", "laptop")
		if err != nil || got.PublicKey != "key-2" || got.PresharedKey != "psk-2" || got.Addr != a || got.ID != "p2" {
			t.Fatalf("peer after replace: %+v %v", got, err)
		}
		if byKey, err := s.PeerByKey(ctx, "eng", "key-2"); err != nil || byKey.ID != "p2" {
			t.Fatalf("peer by key: %+v %v", byKey, err)
		}
		if _, err := s.PeerByKey(ctx, "eng", "key-1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the replaced key is still found: %v", err)
		}
		s.Allocate(ctx, "mallory", "eng", pool4, pool6)
		_, err = s.PutPeer(ctx, Peer{ID: "p3", Subject: "mallory", Network: "eng", PublicKey: "key-2", CreatedAt: time.Now(), ExpiresAt: time.Now()})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("another user registering alice's key: %v, want conflict", err)
		}
		// Alice's other device may not take the key either.
		_, err = s.PutPeer(ctx, Peer{ID: "p4", Subject: "alice", Network: "eng", Device: "desktop", PublicKey: "key-2", CreatedAt: time.Now(), ExpiresAt: time.Now()})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("a second device with the first one's key: %v, want conflict", err)
		}
		// The same key in another network is another WireGuard device: fine.
		if _, err := s.PutPeer(ctx, Peer{ID: "p5", Subject: "alice", Network: "ops", Device: "laptop", PublicKey: "key-2", CreatedAt: time.Now(), ExpiresAt: time.Now()}); err != nil {
			t.Fatalf("the same key in another network: %v", err)
		}
		if _, err := s.DeletePeer(ctx, "p2", StateDeleted); err != nil {
			t.Fatal(err)
		}
		if again, _ := s.AllocateDevice(ctx, AllocRequest{Subject: "alice", Network: "eng", Device: "laptop", Pool4: pool4, Pool6: pool6}); again != a {
			t.Fatalf("address after delete %v, want %v", again, a)
		}
		if err := s.Record(ctx, AuditRecord{Actor: "alice", Action: "register"}); err != nil {
			t.Fatal(err)
		}
		log, err := s.QueryAudit(ctx, AuditQuery{Since: time.Now().Add(-time.Minute)})
		if err != nil || len(log) != 1 || log[0].Action != "register" {
			t.Fatalf("audit log: %v %v", log, err)
		}
	})
}

// Each (user, device, network) has its own address; a device keeps its
// address in every network it joins, across re-registrations and reopening.
func TestDevicesInSeveralNetworks(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		ops4, ops6 := netip.MustParsePrefix("100.65.0.0/24"), netip.MustParsePrefix("fd00:65::/64")
		pools := map[string][2]netip.Prefix{"eng": {pool4, pool6}, "ops": {ops4, ops6}}
		got := map[string]Allocation{}
		seen := map[netip.Addr]string{}
		for _, network := range []string{"eng", "ops"} {
			for _, device := range []string{"laptop", "desktop"} {
				a, err := s.AllocateDevice(ctx, AllocRequest{Subject: "erin", Network: network, Device: device, Pool4: pools[network][0], Pool6: pools[network][1]})
				if err != nil {
					t.Fatal(err)
				}
				if !pools[network][0].Contains(a.V4) || !pools[network][1].Contains(a.V6) {
					t.Fatalf("%s/%s got %v, outside the network's pools", network, device, a)
				}
				key := network + "/" + device
				for _, ip := range []netip.Addr{a.V4, a.V6} {
					if other, dup := seen[ip]; dup {
						t.Fatalf("%s and %s share %s", other, key, ip)
					}
					seen[ip] = key
				}
				got[key] = a
			}
		}
		s.Close()
		s = open()
		for key, want := range got {
			network, device, _ := strings.Cut(key, "/")
			a, err := s.AllocateDevice(ctx, AllocRequest{Subject: "erin", Network: network, Device: device, Pool4: pools[network][0], Pool6: pools[network][1]})
			if err != nil || a != want {
				t.Errorf("%s after reopening: %v %v, want %v", key, a, err, want)
			}
		}
	})
}

func TestDeviceLimit(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "gw.db"))
	ctx := context.Background()
	req := AllocRequest{Subject: "alice", Network: "eng", Pool4: pool4, Pool6: pool6, MaxDevices: 3}
	for i := range 3 {
		req.Device = fmt.Sprint("d", i)
		if _, err := s.AllocateDevice(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	req.Device = "d3"
	if _, err := s.AllocateDevice(ctx, req); !errors.Is(err, ErrDeviceLimit) {
		t.Fatalf("fourth device: %v, want the device limit", err)
	}
	req.Device = "d1"
	if _, err := s.AllocateDevice(ctx, req); err != nil {
		t.Fatalf("a known device at the limit: %v", err)
	}
}

func TestLowestGapIsReusedWhenThePoolTopIsTaken(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		s := open()
		ctx := context.Background()
		small := netip.MustParsePrefix("10.9.0.0/29") // hosts .2 to .6
		for i := range 5 {
			if _, err := s.Allocate(ctx, fmt.Sprint(i), "n", small, netip.Prefix{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, ip := range []string{"10.9.0.2", "10.9.0.4"} {
			if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM allocations WHERE ipv4 = ?`), ip); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range []string{"10.9.0.2", "10.9.0.4"} {
			a, err := s.Allocate(ctx, "late-"+want, "n", small, netip.Prefix{})
			if err != nil || a.V4.String() != want {
				t.Fatalf("allocation after freeing: %v %v, want %s", a.V4, err, want)
			}
		}
		if _, err := s.Allocate(ctx, "one-too-many", "n", small, netip.Prefix{}); !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("full pool: %v", err)
		}
	})
}

func TestNonceReplay(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		a, b := open(), open() // two gateways
		ctx := context.Background()
		exp := time.Now().Add(time.Minute)
		if err := a.UseNonce(ctx, "n1", exp); err != nil {
			t.Fatal(err)
		}
		if err := b.UseNonce(ctx, "n1", exp); !errors.Is(err, ErrReplay) {
			t.Fatalf("the same nonce at the other gateway: %v, want replay", err)
		}
		if err := b.UseNonce(ctx, "n2", exp); err != nil {
			t.Fatal(err)
		}
	})
}

// A store written by schema 1 (one peer per user and network) migrates:
// allocations and peers survive, an upgraded client naming its device and
// presenting its old key keeps its address, and new devices get new ones.
func TestMigrationFromSchema1(t *testing.T) {
	freshStores(t, func(t *testing.T, dsn func() string) {
		ctx := context.Background()
		d := dsn()
		s := openAt(t, d, 1)
		for i, u := range []string{"alice", "bob"} {
			ip := fmt.Sprintf("100.64.0.%d", i+2)
			if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO allocations (subject, network, ipv4, ipv6, created_at) VALUES (?, 'eng', ?, ?, 1)`), u, ip, fmt.Sprintf("fd00:64::%d", i+2)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO peers (id, subject, network, public_key, created_at, expires_at) VALUES (?, ?, 'eng', ?, 1, 9999999999)`), "p-"+u, u, "key-"+u); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		s = mustOpen(t, d)
		if v, _ := s.SchemaVersion(ctx); v != len(migrations) {
			t.Fatalf("schema version %d after migration", v)
		}
		peers, err := s.Peers(ctx, "eng")
		if err != nil || len(peers) != 2 || peers[0].Addr.V4.String() != "100.64.0.2" {
			t.Fatalf("peers after migration: %+v %v", peers, err)
		}
		a, err := s.AllocateDevice(ctx, AllocRequest{Subject: "alice", Network: "eng", Device: "dev-a", Pool4: pool4, Pool6: pool6, PublicKey: "key-alice"})
		if err != nil || a.V4.String() != "100.64.0.2" || a.V6.String() != "fd00:64::2" {
			t.Fatalf("upgraded client with its old key: %v %v, want its old address", a, err)
		}
		if p, err := s.DevicePeer(ctx, "alice", "eng", "dev-a"); err != nil || p.PublicKey != "key-alice" {
			t.Fatalf("the old peer is not the device's: %+v %v", p, err)
		}
		// Someone with bob's token but not bob's old key gets a new address.
		b, err := s.AllocateDevice(ctx, AllocRequest{Subject: "bob", Network: "eng", Device: "dev-x", Pool4: pool4, Pool6: pool6, PublicKey: "another-key"})
		if err != nil || b.V4.String() != "100.64.0.4" {
			t.Fatalf("a new device of bob: %v %v, want 100.64.0.4 (next after the migrated ones)", b, err)
		}
	})
}

func benchAllocate(b *testing.B, s *Store, prefill int) {
	ctx := context.Background()
	big := netip.MustParsePrefix("100.64.0.0/10")
	for i := range prefill {
		if _, err := s.AllocateDevice(ctx, AllocRequest{Subject: fmt.Sprint("pre-", i), Network: "eng", Device: "d", Pool4: big, Pool6: pool6}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.AllocateDevice(ctx, AllocRequest{Subject: fmt.Sprint(i), Network: "eng", Device: "d", Pool4: big, Pool6: pool6, MaxDevices: 16}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllocate measures a first allocation (a new device) with an
// empty pool and with 10,000 addresses already in use: the cost must not
// grow with the pool's use.
func BenchmarkAllocate(b *testing.B) {
	for _, prefill := range []int{0, 10000} {
		b.Run(fmt.Sprintf("sqlite/used=%d", prefill), func(b *testing.B) {
			s, err := Open(context.Background(), filepath.Join(b.TempDir(), "gw.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchAllocate(b, s, prefill)
		})
		b.Run(fmt.Sprintf("postgres/used=%d", prefill), func(b *testing.B) {
			s, err := Open(context.Background(), testpg.Start(b))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchAllocate(b, s, prefill)
		})
	}
}

// BenchmarkReallocate is the common case: a known device re-registering.
func BenchmarkReallocate(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "gw.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	req := AllocRequest{Subject: "alice", Network: "eng", Device: "d", Pool4: pool4, Pool6: pool6}
	if _, err := s.AllocateDevice(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.AllocateDevice(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
