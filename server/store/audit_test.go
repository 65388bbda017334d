package store

import (
	"context"
	"testing"
	"time"
)

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
		// An entry that concerns nobody in particular.
		if err := s.Record(ctx, AuditRecord{Actor: "sub-c", Action: "delete"}); err != nil {
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
