package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestWarningsHandshakesAndDelete(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		a, err := s.Allocate(ctx, "alice", "eng", pool4, pool6)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		p := Peer{ID: "p1", Subject: "alice", Network: "eng", PublicKey: "key-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour), Addr: a}
		if _, err := s.PutPeer(ctx, p); err != nil {
			t.Fatal(err)
		}
		if first, err := s.MarkWarned(ctx, "p1", "unused", now); err != nil || !first {
			t.Fatalf("first MarkWarned = %v, %v", first, err)
		}
		if again, _ := s.MarkWarned(ctx, "p1", "unused", now); again {
			t.Error("a warning was recorded twice: two gateways would both send it")
		}
		w, err := s.Warned(ctx)
		if err != nil || !w["p1"]["unused"] {
			t.Errorf("warned = %v, %v", w, err)
		}
		hs := now.Add(-time.Minute).Truncate(time.Second)
		if err := s.SetLastHandshakes(ctx, map[string]time.Time{"p1": hs}); err != nil {
			t.Fatal(err)
		}
		// An older handshake never overwrites a newer one.
		s.SetLastHandshakes(ctx, map[string]time.Time{"p1": hs.Add(-time.Hour)})
		got, err := s.PeerByID(ctx, "p1")
		if err != nil || !got.LastHandshake.Equal(hs) || got.Addr.V4 != a.V4 {
			t.Fatalf("PeerByID = %+v, %v", got, err)
		}
		if ok, err := s.DeletePeer(ctx, "p1", ""); !ok || err != nil {
			t.Fatalf("delete = %v, %v", ok, err)
		}
		if ok, _ := s.DeletePeer(ctx, "p1", ""); ok {
			t.Error("deleted twice")
		}
		if w, _ := s.Warned(ctx); len(w["p1"]) != 0 {
			t.Errorf("warnings of a deleted peer remain: %v", w)
		}
		allocs, err := s.Allocations(ctx, "alice")
		if err != nil || len(allocs) != 1 || allocs[0].Addr.V4 != a.V4 {
			t.Errorf("allocation must survive the peer: %+v, %v", allocs, err)
		}
	})
}

// Every way a peer leaves the store (revoked or expired by the lifecycle,
// deleted by its user through the API, revoked by an administrator) drops
// the warnings sent about it and releases its address for the right
// reason. Before there was one delete, the user's own delete
// (DeletePeerID) left its warnings rows behind for ever: Warned, which the
// lifecycle loads whole at every start, grew with every deleted device.
func TestEveryDeleteDropsTheWarnings(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		now := time.Now()
		cases := []struct {
			id, why, expires string
			wantState        string
		}{
			{"p-user", StateDeleted, "1h", StateDeleted},
			{"p-admin", "", "1h", StateRevoked},
			{"p-timer", "", "-1h", StateExpired},
			{"p-named", StateRevoked, "-1h", StateRevoked},
		}
		for i, c := range cases {
			ttl, _ := time.ParseDuration(c.expires)
			a, err := s.AllocateDevice(ctx, AllocRequest{Subject: "alice", Network: "eng", Device: c.id, Pool4: pool4, Pool6: pool6})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.PutPeer(ctx, Peer{ID: c.id, Subject: "alice", Network: "eng", Device: c.id, PublicKey: fmt.Sprint("key-", i), CreatedAt: now, ExpiresAt: now.Add(ttl), Addr: a}); err != nil {
				t.Fatal(err)
			}
			for _, kind := range []string{"unused", "expiring-24h"} {
				if _, err := s.MarkWarned(ctx, c.id, kind, now); err != nil {
					t.Fatal(err)
				}
			}
		}
		// A bystander whose warnings must stay.
		if _, err := s.MarkWarned(ctx, "p-other", "idle", now); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			if ok, err := s.DeletePeer(ctx, c.id, c.why); !ok || err != nil {
				t.Fatalf("delete %s: %v %v", c.id, ok, err)
			}
		}
		w, err := s.Warned(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			if len(w[c.id]) != 0 {
				t.Errorf("warnings of %s (deleted with why %q) remain: %v", c.id, c.why, w[c.id])
			}
		}
		if !w["p-other"]["idle"] {
			t.Errorf("another peer's warning went too: %v", w)
		}
		devs, err := s.Devices(ctx, "eng")
		if err != nil || len(devs) != len(cases) {
			t.Fatalf("devices: %+v %v", devs, err)
		}
		for _, d := range devs {
			for _, c := range cases {
				if d.Device == c.id && d.State != c.wantState {
					t.Errorf("device of %s released as %q, want %q", c.id, d.State, c.wantState)
				}
			}
		}
	})
}

// A renewal (the device registered again: a new peer id, same key)
// replaces the device's peer and drops the old one's warnings; a delete
// that lost the race with it removes nothing, and the renewed peer keeps
// its warnings. Freeing a device drops its peer's warnings too.
func TestRenewalAndFreeDropTheWarnings(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		now := time.Now()
		if _, err := s.PutPeer(ctx, Peer{ID: "old", Subject: "a", Network: "eng", Device: "d", PublicKey: "k", CreatedAt: now, ExpiresAt: now.Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
		s.MarkWarned(ctx, "old", "expiring-24h", now)
		if _, err := s.PutPeer(ctx, Peer{ID: "new", Subject: "a", Network: "eng", Device: "d", PublicKey: "k", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if w, _ := s.Warned(ctx); len(w["old"]) != 0 {
			t.Errorf("the renewed peer's old id keeps its warnings: %v", w)
		}
		s.MarkWarned(ctx, "new", "unused", now)
		if gone, err := s.DeletePeer(ctx, "old", ""); err != nil || gone {
			t.Fatalf("deleting the replaced peer: %v %v, want nothing deleted", gone, err)
		}
		if p, err := s.PeerByID(ctx, "new"); err != nil || p.PublicKey != "k" {
			t.Fatalf("the renewed peer: %+v %v", p, err)
		}
		if w, _ := s.Warned(ctx); !w["new"]["unused"] {
			t.Errorf("the renewed peer's warning went: %v", w)
		}
		// Freeing the device (revoking its live key) drops them.
		a, err := s.AllocateDevice(ctx, AllocRequest{Subject: "b", Network: "eng", Device: "e", Pool4: pool4, Pool6: pool6})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutPeer(ctx, Peer{ID: "b1", Subject: "b", Network: "eng", Device: "e", PublicKey: "kb", CreatedAt: now, ExpiresAt: now.Add(time.Hour), Addr: a}); err != nil {
			t.Fatal(err)
		}
		s.MarkWarned(ctx, "b1", "idle", now)
		if _, err := s.FreeDevice(ctx, "b", "eng", "e", true); err != nil {
			t.Fatal(err)
		}
		if w, _ := s.Warned(ctx); len(w["b1"]) != 0 {
			t.Errorf("a freed device's peer keeps its warnings: %v", w)
		}
	})
}

// Warnings rows whose peer is gone (left by earlier versions, whose user
// delete and renewal kept them) are pruned by housekeeping; a live peer's
// stay.
func TestPruneWarningsOfRemovedPeers(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		now := time.Now()
		if _, err := s.PutPeer(ctx, Peer{ID: "live", Subject: "a", Network: "eng", Device: "d", PublicKey: "k", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"live", "gone-1", "gone-2"} {
			if _, err := s.MarkWarned(ctx, id, "unused", now); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.PruneWarnings(ctx)
		if err != nil || n != 2 {
			t.Fatalf("PruneWarnings = %d, %v; want the 2 rows of removed peers", n, err)
		}
		w, _ := s.Warned(ctx)
		if len(w) != 1 || !w["live"]["unused"] {
			t.Errorf("after pruning: %v, want only the live peer's", w)
		}
	})
}
