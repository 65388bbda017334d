package store

import (
	"context"
	"testing"
)

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
