package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testpg"
)

// With its PostgreSQL store down, the gateway still expires a key on time
// (from its in-memory deadlines), reports the store as down, and writes
// the deletion and the audit entry once the store is back.
func TestExpiryWhileStoreIsDown(t *testing.T) {
	t.Parallel()
	lab.SkipUnlessRoot(t)
	pg := testpg.StartServer(t)
	e := newEnv(t, stack.WithStore(pg.SocketDSN), stack.WithGatewayConfig("key_ttl: 14s"))
	alice := e.Client("alice")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	up(t, alice, tok)
	key := e.clientKey(t, alice)
	var exp time.Time
	var id string
	for _, p := range e.listPeers(t) {
		if p.PublicKey == key {
			exp, id = p.ExpiresAt, p.PeerID
		}
	}
	if id == "" {
		t.Fatal("alice not listed")
	}
	e.reach(t, vpcA4)

	must(t, pg.Stop())
	stopped := time.Now()
	if _, ok := waitUntil(5*time.Second, func() bool {
		code, body := e.scrape(t, "/healthz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"store"`) && !strings.Contains(body, `"store":"ok"`)
	}); !ok {
		_, body := e.scrape(t, "/healthz")
		t.Errorf("/healthz does not report the store down: %s", body)
	}
	if _, m := e.scrape(t, "/metrics"); !strings.Contains(m, "clearpath_store_up 0") {
		t.Error("clearpath_store_up is not 0 with the store down")
	}
	if _, ok := waitUntil(time.Until(exp)+5*time.Second, func() bool { return !e.onDevice(t, e.EngIface, key) }); !ok {
		t.Fatalf("alice's key is still on the device %v after its expiry, store down", time.Since(exp))
	}
	late := time.Since(exp)
	t.Logf("STORE DOWN: store stopped %v before expiry; key off %s %v after the stored expires_at (deadline in memory, up to 1s after it)",
		exp.Sub(stopped).Round(time.Millisecond), e.EngIface, late.Round(time.Millisecond))
	// Polled through wg show, slow on a loaded machine: loose here; the
	// gateway's own figure is checked below from its audit record.
	if late > 4*time.Second {
		t.Errorf("expiry %v late with the store down, by wg show", late)
	}
	e.unreachable(t, vpcA4, "expired while the store was down")

	must(t, pg.Restart())
	if _, ok := waitUntil(15*time.Second, func() bool {
		out, code := e.admin(t, "audit", "--json", "--action", "expire")
		return code == 0 && strings.Contains(out, id)
	}); !ok {
		t.Errorf("no expire audit entry for %s after the store came back", id)
	} else if late, err := expiryLateness(e.auditLog(t, "--action", "expire"), id); err != nil {
		t.Error(err)
	} else if late < 0 || late > 1500*time.Millisecond { // expires_at is to the second
		t.Errorf("the gateway removed the key %v after the stored expires_at with the store down, want within 1.5 s", late)
	} else {
		t.Logf("STORE DOWN: removed %v after the stored expires_at (audit log)", late)
	}
	for _, p := range e.listPeers(t) {
		if p.PeerID == id {
			t.Errorf("expired peer %s is still in the store after it came back", id)
		}
	}
	if _, ok := waitUntil(5*time.Second, func() bool { code, _ := e.scrape(t, "/healthz"); return code == http.StatusOK }); !ok {
		t.Error("/healthz not ok after the store came back")
	}
	// And the gateway serves registrations again.
	down(t, alice)
	up(t, alice, tok)
	if got := e.reach(t, vpcA4); got == "" {
		t.Error("alice cannot reach vpc-a after registering again")
	}
	var listed struct {
		Records []json.RawMessage `json:"records"`
	}
	out := e.adminOK(t, "audit", "--json", "--user", "alice")
	must(t, json.Unmarshal([]byte(out), &listed))
	t.Logf("alice's audit log has %d entries", len(listed.Records))
}
