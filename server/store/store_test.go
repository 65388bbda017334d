package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/testpg"
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
		a, _ := s.Allocate(ctx, "alice", "eng", pool4, pool6)
		p := Peer{ID: "p1", Subject: "alice", Network: "eng", PublicKey: "key-1", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if old, err := s.PutPeer(ctx, p); err != nil || old != nil {
			t.Fatalf("first put: %v %v", old, err)
		}
		p2 := p
		p2.ID, p2.PublicKey = "p2", "key-2"
		old, err := s.PutPeer(ctx, p2)
		if err != nil || old == nil || old.PublicKey != "key-1" {
			t.Fatalf("re-registration must return the replaced key: %v %v", old, err)
		}
		got, err := s.Peer(ctx, "alice", "eng")
		if err != nil || got.PublicKey != "key-2" || got.Addr != a {
			t.Fatalf("peer after replace: %+v %v", got, err)
		}
		s.Allocate(ctx, "mallory", "eng", pool4, pool6)
		_, err = s.PutPeer(ctx, Peer{ID: "p3", Subject: "mallory", Network: "eng", PublicKey: "key-2", CreatedAt: time.Now(), ExpiresAt: time.Now()})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("another user registering alice's key: %v, want conflict", err)
		}
		if _, err := s.DeletePeer(ctx, "alice", "eng"); err != nil {
			t.Fatal(err)
		}
		if again, _ := s.Allocate(ctx, "alice", "eng", pool4, pool6); again != a {
			t.Fatalf("address after delete %v, want %v", again, a)
		}
		if err := s.Audit(ctx, AuditEntry{Actor: "alice", Action: "register"}); err != nil {
			t.Fatal(err)
		}
		log, err := s.AuditLog(ctx, time.Now().Add(-time.Minute))
		if err != nil || len(log) != 1 || log[0].Action != "register" {
			t.Fatalf("audit log: %v %v", log, err)
		}
	})
}

func BenchmarkAllocate(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "gw.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	big := netip.MustParsePrefix("100.64.0.0/10")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Allocate(context.Background(), fmt.Sprint(i), "eng", big, pool6); err != nil {
			b.Fatal(err)
		}
	}
}
