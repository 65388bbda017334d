package adminops

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/server/store"
)

func testStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func putPeer(t *testing.T, st *store.Store, id, subject, email, network string) {
	t.Helper()
	ctx := context.Background()
	a, err := st.AllocateDevice(ctx, store.AllocRequest{Subject: subject, Network: network, Device: id, Pool4: netip.MustParsePrefix("100.64.0.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := st.PutPeer(ctx, store.Peer{ID: id, Subject: subject, Email: email, Network: network, Device: id, PublicKey: "k" + id, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Addr: a}); err != nil {
		t.Fatal(err)
	}
}

// A named user is resolved by e-mail or local part and their keys go; a
// user unknown here is disabled as named (in advance) and nobody's keys
// go; enable by any of the names lifts it, once.
func TestDisableEnableNamed(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	putPeer(t, st, "p1", "sub-a", "alice@example.com", "eng")
	putPeer(t, st, "p2", "sub-b", "bob@example.com", "eng")
	who := Actor{Name: "root", Remote: "cli@gw"}
	// Logins name the subject and the e-mail: the audit finds a user by
	// either after their keys are gone.
	if err := st.Record(ctx, store.AuditRecord{Actor: "sub-a", Action: "login", Subject: "sub-a", Email: "alice@example.com"}); err != nil {
		t.Fatal(err)
	}

	u, res, err := DisableNamed(ctx, st, who, "alice", "left")
	if err != nil || u.Subject != "sub-a" || u.Email != "alice@example.com" || u.Unresolved != nil || len(res) != 1 || res[0].Peer.ID != "p1" {
		t.Fatalf("disable alice: %+v %+v %v", u, res, err)
	}
	u, res, err = DisableNamed(ctx, st, who, "mallory@example.com", "")
	if err != nil || u.Subject != "mallory@example.com" || u.Unresolved == nil || len(res) != 0 {
		t.Fatalf("disable an unknown user: %+v %+v %v", u, res, err)
	}
	if left, _ := st.Peers(ctx, ""); len(left) != 1 || left[0].ID != "p2" {
		t.Errorf("peers left: %+v", left)
	}
	if _, found, err := EnableNamed(ctx, st, who, "alice@example.com"); err != nil || !found {
		t.Errorf("enable alice: %v %v", found, err)
	}
	if _, found, err := EnableNamed(ctx, st, who, "alice"); err != nil || found {
		t.Errorf("enable alice again: %v %v", found, err)
	}
	recs, _ := AuditFor(ctx, st, store.AuditQuery{}, "alice")
	var acts []string
	for _, r := range recs {
		acts = append(acts, r.Action)
	}
	if strings.Join(acts, ",") != "login,disable,revoke,enable" || recs[1].Actor != "root" || recs[1].Remote != "cli@gw" {
		t.Errorf("alice's audit: %v %+v", acts, recs)
	}
	if recs, _ := AuditFor(ctx, st, store.AuditQuery{Limit: 1}, "alice"); len(recs) != 1 || recs[0].Action != "enable" {
		t.Errorf("--limit 1 keeps the newest: %+v", recs)
	}
}

// Targets names an unknown peer id; FreeDevice refuses a live device
// without revoke and frees it with, auditing both.
func TestTargetsAndFreeDevice(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	putPeer(t, st, "p1", "sub-a", "alice@example.com", "eng")
	if _, err := Targets(ctx, st, "", []string{"nope"}, ""); err == nil || !strings.Contains(err.Error(), "--peer nope: no such peer") {
		t.Errorf("unknown peer: %v", err)
	}
	if ps, err := Targets(ctx, st, "alice", []string{"p1"}, ""); err != nil || len(ps) != 1 {
		t.Errorf("peer named twice: %+v %v", ps, err)
	}
	who := Actor{Name: "root", Remote: "cli@gw"}
	if _, err := FreeDevice(ctx, st, who, "alice", "", "p1", false); err == nil || !strings.Contains(err.Error(), "--revoke") {
		t.Fatalf("free a live device: %v", err)
	}
	if _, err := FreeDevice(ctx, st, who, "alice", "", "laptop", false); err == nil || !strings.Contains(err.Error(), "has no device laptop") {
		t.Errorf("free an unknown device: %v", err)
	}
	res, err := FreeDevice(ctx, st, who, "alice@example.com", "", "p1", true)
	if err != nil || !res.Revoked || res.Device.Network != "eng" || strings.Join(Addresses(res.Device.Addr), " ") != "100.64.0.2" {
		t.Fatalf("free with revoke: %+v %v", res, err)
	}
	recs, _ := st.QueryAudit(ctx, store.AuditQuery{})
	if len(recs) != 2 || recs[0].Action != "revoke" || recs[1].Action != "free" || !strings.Contains(recs[1].Detail, "100.64.0.2") {
		t.Errorf("audit: %+v", recs)
	}
}
