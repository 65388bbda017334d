package lifecycle

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/server/store"
)

type noDevices struct{}

func (noDevices) AddPeer(store.Peer) error                  { return nil }
func (noDevices) RemovePeer(string, string) error           { return nil }
func (noDevices) Stats(string) (map[string]PeerStat, error) { return nil, nil }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// The store loop's housekeeping prunes audit entries older than
// audit.retain and frees addresses whose grace period ended, by the
// manager's clock. On main the audit table only grows.
func TestHousekeepingPrunesAuditAndFreesAddresses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	st.SetClock(c.Now)
	for _, age := range []time.Duration{500 * 24 * time.Hour, 401 * 24 * time.Hour, 10 * 24 * time.Hour} {
		st.Record(ctx, store.AuditRecord{Time: c.Now().Add(-age), Actor: "a", Action: "register"})
	}
	pool := netip.MustParsePrefix("100.64.0.0/24")
	a, err := st.AllocateDevice(ctx, store.AllocRequest{Subject: "bob", Network: "eng", Device: "phone", Pool4: pool})
	if err != nil {
		t.Fatal(err)
	}
	p := store.Peer{ID: "p1", Subject: "bob", Email: "bob@example.com", Network: "eng", Device: "phone", PublicKey: "k", Hostname: "bobs-phone", CreatedAt: c.Now(), ExpiresAt: c.Now().Add(time.Hour), Addr: a}
	st.PutPeer(ctx, p)
	st.DeletePeer(ctx, "p1", "") // revoked: its grace starts now

	var mu sync.Mutex
	var events []Event
	m := New(Options{Store: st, Devices: noDevices{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: c.Now, HousekeepEvery: time.Hour,
		Settings: Settings{StorePoll: 20 * time.Millisecond, AuditRetain: 400 * 24 * time.Hour},
		Notify:   func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	go m.Run(ctx)
	waitFor(t, "the audit log pruned to the last 400 days", func() bool {
		recs, _ := st.QueryAudit(ctx, store.AuditQuery{})
		return len(recs) == 1
	})
	if devs, _ := st.Devices(ctx, "eng"); len(devs) != 1 || devs[0].State != store.StateRevoked {
		t.Fatalf("inside its grace the address must stay: %+v", devs)
	}
	c.Add(store.DefaultAllocationGrace + time.Hour)
	waitFor(t, "the address freed after the grace period", func() bool {
		devs, _ := st.Devices(ctx, "eng")
		return len(devs) == 0
	})
	waitFor(t, "a freed event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if e.Kind == EventFreed && e.Peer.Email == "bob@example.com" && e.Peer.Addr.V4 == a.V4 && e.Peer.Hostname == "bobs-phone" {
				return true
			}
		}
		return false
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
