package store

import (
	"context"
	"testing"
	"time"
)

func TestMigrationsSortedAndOpsSchemaApplied(t *testing.T) {
	for i := 1; i < len(migrations); i++ {
		if migrations[i-1].version >= migrations[i].version {
			t.Fatalf("migrations out of order: %d before %d", migrations[i-1].version, migrations[i].version)
		}
	}
	backends(t, func(t *testing.T, open func() *Store) {
		s := open()
		v, err := s.SchemaVersion(context.Background())
		if err != nil || v < 3 {
			t.Fatalf("schema version %d (%v), want >= 3", v, err)
		}
	})
}

func TestAuditRecordsAndQueries(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		t0 := time.Now().Add(-time.Hour)
		recs := []AuditRecord{
			{Time: t0, Actor: "sub-a", Action: "register", Subject: "sub-a", Email: "alice@example.com", Network: "eng", PeerID: "p1", Remote: "198.51.100.2:4242"},
			{Time: t0.Add(30 * time.Minute), Actor: "gateway", Action: "expire", Subject: "sub-a", Email: "alice@example.com", Network: "eng", PeerID: "p1"},
			{Actor: "root@gw", Action: "revoke", Subject: "sub-b", Network: "ops", PeerID: "p2", Remote: "cli@gw"},
		}
		for _, r := range recs {
			if err := s.Record(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		// The older writer (without subject) still works next to Record.
		if err := s.Audit(ctx, AuditEntry{Actor: "sub-c", Action: "delete"}); err != nil {
			t.Fatal(err)
		}
		all, err := s.QueryAudit(ctx, AuditQuery{})
		if err != nil || len(all) != 4 || all[0].Action != "register" || all[3].Action != "delete" {
			t.Fatalf("all = %+v (%v)", all, err)
		}
		if all[0].Remote != "198.51.100.2:4242" || all[0].PeerID != "p1" || all[0].Email != "alice@example.com" {
			t.Errorf("fields lost: %+v", all[0])
		}
		alice, _ := s.QueryAudit(ctx, AuditQuery{User: "alice@example.com"})
		if len(alice) != 2 {
			t.Errorf("by e-mail: %+v", alice)
		}
		bySub, _ := s.QueryAudit(ctx, AuditQuery{User: "sub-a", Action: "expire"})
		if len(bySub) != 1 || bySub[0].Actor != "gateway" {
			t.Errorf("by subject and action: %+v", bySub)
		}
		recent, _ := s.QueryAudit(ctx, AuditQuery{Since: time.Now().Add(-time.Minute)})
		if len(recent) != 2 {
			t.Errorf("since a minute ago: %+v", recent)
		}
		last, _ := s.QueryAudit(ctx, AuditQuery{Limit: 1})
		if len(last) != 1 || last[0].Action != "delete" {
			t.Errorf("limit keeps the newest: %+v", last)
		}
	})
}

func TestPeerByIDDeleteWarningsAndHandshakes(t *testing.T) {
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
		if ok, err := s.DeletePeerByID(ctx, "p1"); !ok || err != nil {
			t.Fatalf("delete = %v, %v", ok, err)
		}
		if ok, _ := s.DeletePeerByID(ctx, "p1"); ok {
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

func TestDisabledUsers(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		if d, err := s.UserDisabled(ctx, "sub-a", "alice@example.com"); d != nil || err != nil {
			t.Fatalf("nobody is disabled yet: %+v %v", d, err)
		}
		if err := s.DisableUser(ctx, "alice@example.com", "left the company", "root@gw"); err != nil {
			t.Fatal(err)
		}
		d, err := s.UserDisabled(ctx, "sub-a", "alice@example.com")
		if err != nil || d == nil || d.Reason != "left the company" || d.Actor != "root@gw" {
			t.Fatalf("disabled by e-mail: %+v %v", d, err)
		}
		if d, _ := s.UserDisabled(ctx, "sub-b", ""); d != nil {
			t.Errorf("an empty e-mail matched: %+v", d)
		}
		list, _ := s.DisabledUsers(ctx)
		if len(list) != 1 {
			t.Errorf("list = %+v", list)
		}
		if ok, _ := s.EnableUser(ctx, "alice@example.com"); !ok {
			t.Error("enable reported nothing to do")
		}
		if d, _ := s.UserDisabled(ctx, "sub-a", "alice@example.com"); d != nil {
			t.Error("still disabled after enable")
		}
	})
}

// E-mails compare case-blind: an administrator typing Alice@Example.COM
// disables the user whose token says alice@example.com. On main the
// mismatched case let the disabled user register.
func TestDisableMatchesEmailCaseBlind(t *testing.T) {
	backends(t, func(t *testing.T, open func() *Store) {
		ctx := context.Background()
		s := open()
		if err := s.DisableUser(ctx, "Alice@Example.COM", "", "root"); err != nil {
			t.Fatal(err)
		}
		if d, err := s.UserDisabled(ctx, "sub-a", "alice@example.com"); d == nil || err != nil {
			t.Fatalf("disabled as Alice@Example.COM, alice@example.com got through: %v", err)
		}
		if d, _ := s.UserDisabled(ctx, "alice@example.com", ""); d != nil {
			t.Errorf("a subject must match exactly: %+v", d)
		}
		s.Record(ctx, AuditRecord{Actor: "sub-a", Action: "login", Subject: "sub-a", Email: "alice@example.com"})
		if recs, _ := s.QueryAudit(ctx, AuditQuery{User: "ALICE@example.com"}); len(recs) != 1 {
			t.Errorf("audit by e-mail in another case: %+v", recs)
		}
		if ok, _ := s.EnableUser(ctx, "alice@EXAMPLE.com"); !ok {
			t.Error("enable in another case did nothing")
		}
		if d, _ := s.UserDisabled(ctx, "sub-a", "alice@example.com"); d != nil {
			t.Error("still disabled")
		}
	})
}
