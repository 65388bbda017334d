package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// A user who is no longer in a network's group loses that network's key the
// next time she presents a refreshed token (here: the group of network ops
// changes under her by a reload); registering the same key again is a
// refresh in the audit log.
func TestGroupLossRevokesAtRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tokFile, err := e.TokenFile(ctxT(t, 10*time.Second), "erin")
	must(t, err)
	tok := readToken(t, tokFile)
	engKey, _ := registerKey(t, e, tok, "eng")
	opsKey, _ := registerKey(t, e, tok, "ops")
	if !e.onDevice(t, e.EngIface, engKey.PublicKey().String()) || !e.onDevice(t, e.OpsIface, opsKey.PublicKey().String()) {
		t.Fatal("erin's keys are not on both devices")
	}
	eng := netSpec{"eng", "engineering", e.EngIface, lab.EngPort, []string{lab.EngPool4, lab.EngPool6}, []string{lab.VPCA4, lab.VPCA6}, 0}
	ops := netSpec{"ops", "ops-admins", e.OpsIface, lab.OpsPort, []string{lab.OpsPool4, lab.OpsPool6}, []string{lab.VPCB4, lab.VPCB6}, 0}
	e.writeNetworks(t, eng, ops)
	if out := e.adminOK(t, "reload"); !strings.Contains(out, "update ops group ops -> ops-admins") {
		t.Errorf("reload: %s", out)
	}
	// Her client refreshes: it registers its eng key again with her token.
	start := time.Now()
	pc := registerThis(t, e, tok, "eng", engKey)
	_, ok := waitUntil(3*time.Second, func() bool { return !e.onDevice(t, e.OpsIface, opsKey.PublicKey().String()) })
	took := time.Since(start)
	if !ok || took > 2*time.Second {
		t.Errorf("erin's ops key still on %s %v after her refresh", e.OpsIface, took)
	}
	t.Logf("GROUP LOSS: erin's ops key off %s %v after her refresh began (registration round trip included)", e.OpsIface, took.Round(time.Millisecond))
	if !e.onDevice(t, e.EngIface, engKey.PublicKey().String()) {
		t.Error("erin lost her eng key too")
	}
	recs := e.auditLog(t, "--user", "erin")
	if !hasAudit(recs, "revoke", "ops", "no longer in the network's group", "engineering, ops") {
		t.Errorf("no revoke entry naming the group change: %+v", recs)
	}
	if !hasAudit(recs, "refresh", pc.PeerID, "eng") {
		t.Errorf("re-registering the same key is not audited as a refresh: %+v", recs)
	}
}
