package store

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// A peer keeps the groups its token carried at registration; a renewal
// replaces them; peers stored before migration 5 read back with none.
func TestPeerGroups(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		all := migrations
		migrations = slices.DeleteFunc(slices.Clone(all), func(m migration) bool { return m.version >= 5 })
		s := open()
		migrations = all
		now := time.Unix(time.Now().Unix(), 0)
		if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO peers (id, subject, email, network, device, public_key, created_at, expires_at) VALUES ('p-old', 'old', '', 'eng', 'd', 'key-old', 1, ?)`), now.Add(time.Hour).Unix()); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = open()
		if v, _ := s.SchemaVersion(ctx); v != 5 {
			t.Fatalf("schema version %d, want 5", v)
		}
		old, err := s.PeerByID(ctx, "p-old")
		if err != nil || old.Groups != nil {
			t.Fatalf("a peer from before migration 5: %+v %v", old, err)
		}
		p := Peer{ID: "p1", Subject: "alice", Network: "eng", Device: "laptop", PublicKey: "key-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
			Groups: []string{"engineering", "dba", `we"ird, group`}}
		if _, err := s.PutPeer(ctx, p); err != nil {
			t.Fatal(err)
		}
		got, err := s.DevicePeer(ctx, "alice", "eng", "laptop")
		if err != nil || !slices.Equal(got.Groups, p.Groups) {
			t.Fatalf("groups read back: %+v %v", got, err)
		}
		// Renewal with a token that no longer carries dba.
		p.ID, p.Groups = "p2", []string{"engineering"}
		if _, err := s.PutPeer(ctx, p); err != nil {
			t.Fatal(err)
		}
		peers, err := s.Peers(ctx, "eng")
		if err != nil || len(peers) != 2 || !slices.Equal(peers[1].Groups, []string{"engineering"}) {
			t.Fatalf("after renewal: %+v %v", peers, err)
		}
		p.ID, p.Groups = "p3", make([]string, MaxStoredGroups+1)
		if _, err := s.PutPeer(ctx, p); err == nil || !strings.Contains(err.Error(), "more than 1024") {
			t.Errorf("a token with too many groups: %v", err)
		}
	})
}
