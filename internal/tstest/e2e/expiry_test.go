package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/server/store"
)

type listedPeer struct {
	User          string     `json:"user"`
	Network       string     `json:"network"`
	PeerID        string     `json:"peer_id"`
	Addresses     []string   `json:"addresses"`
	PublicKey     string     `json:"public_key"`
	ExpiresAt     time.Time  `json:"expires_at"`
	LastHandshake *time.Time `json:"last_handshake"`
	RxBytes       int64      `json:"rx_bytes"`
	TxBytes       int64      `json:"tx_bytes"`
	OnDevice      bool       `json:"on_device"`
}

func (e *env) listPeers(t *testing.T) []listedPeer {
	t.Helper()
	out := e.adminOK(t, "peers", "list", "--json")
	var listed struct {
		Schema string       `json:"schema"`
		Peers  []listedPeer `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil || listed.Schema != "clearpath.peers/v1" {
		t.Fatalf("peers list --json: %v\n%s", err, out)
	}
	return listed.Peers
}

// Keys expire on time and leave the device; warnings go out before expiry
// at each lead time, for a key never used, and for a key gone idle, through
// the webhook (retried: the receiver refuses every first attempt) and the
// audit log.
func TestExpiryAndWarnings(t *testing.T) {
	t.Parallel()
	e, h := newHookEnv(t, func(url string) string {
		return `key_ttl: 16s
lifecycle:
  warn_before: [10s, 5s]
  unused_after: 3s
  idle_after: 4s
  webhook:
    url: ` + url + `
    secret: ` + hookSecret + `
    backoff: 50ms
`
	})
	alice := e.Client("alice")
	tokFile, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	up(t, alice, tokFile)
	aliceKey := e.clientKey(t, alice)
	// A client that cannot renew (its token is gone, as on a laptop left
	// asleep): its key must expire on time. The agent renews at 2/3 of
	// key_ttl from this file.
	must(t, os.Remove(tokFile))
	// A key registered and never used (bob's: one key per user and
	// network, so it must not be alice's).
	bobTok, err := e.TokenFile(ctxT(t, 10*time.Second), "bob")
	must(t, err)
	ghost, ghostPC := registerKey(t, e, readToken(t, bobTok), "")
	ghostKey := ghost.PublicKey().String()
	ghostExp := ghostPC.ExpiresAt
	ghostReg := ghostExp.Add(-16 * time.Second)

	var aliceID string
	var aliceExp time.Time
	for _, p := range e.listPeers(t) {
		if p.PublicKey == aliceKey {
			aliceID, aliceExp = p.PeerID, p.ExpiresAt
		}
	}
	if aliceID == "" {
		t.Fatalf("alice not in peers list")
	}
	// alice is busy for 5 s, then silent: idle after 4 more.
	pl := startPingLoop(t, e.Laptop, lab.VPCAIP4, 100*time.Millisecond)
	time.Sleep(5 * time.Second)
	quietFrom := time.Now()
	pl.Stop()

	// Expiry: both keys leave the device on time.
	for _, k := range []struct {
		who, key string
		exp      time.Time
		slack    time.Duration
	}{{"ghost", ghostKey, ghostExp, 0}, {"alice", aliceKey, aliceExp, time.Second}} {
		// alice's expires_at is read back from the store, to the second:
		// her real deadline is up to 1 s later.
		if !e.onDevice(t, e.EngIface, k.key) && time.Now().Before(k.exp) {
			t.Errorf("%s's key left the device before it expired", k.who)
		}
		_, ok := waitUntil(time.Until(k.exp)+5*time.Second, func() bool { return !e.onDevice(t, e.EngIface, k.key) })
		// Seen from here, through a polled `wg show`: loose, as the
		// polling itself is slow on a loaded machine.
		seen := time.Since(k.exp)
		if !ok || seen > k.slack+3*time.Second || seen < -50*time.Millisecond {
			t.Errorf("%s's key left the device %v after its expiry (%s), by wg show", k.who, seen, k.exp.Format(time.RFC3339Nano))
		}
		t.Logf("EXPIRY %s: key seen off %s %v after expires_at", k.who, e.EngIface, seen.Round(time.Millisecond))
	}
	// How late each removal was, as the gateway measured it at the removal
	// and wrote it in the audit log an operator reads: within 500 ms.
	for _, k := range []struct {
		who, peer string
		slack     time.Duration
	}{{"ghost", ghostPC.PeerID, 0}, {"alice", aliceID, time.Second}} {
		late, err := expiryLateness(e.auditLog(t, "--action", "expire"), k.peer)
		if err != nil {
			t.Errorf("%s: %v", k.who, err)
		} else if late > k.slack+500*time.Millisecond || late < 0 {
			t.Errorf("%s's key left the device %v after it expired (audit log), want within 500ms", k.who, late)
		}
		t.Logf("EXPIRY %s: removed %v after expires_at (audit log)", k.who, late)
	}
	e.unreachable(t, vpcA4, "alice after expiry")

	// Webhook deliveries, each on its second attempt and signed.
	want := []struct {
		event, peer string
		due         time.Time
		lead        string
	}{
		{"peer.unused", ghostPC.PeerID, ghostReg.Add(3 * time.Second), ""},
		{"peer.expiring", ghostPC.PeerID, ghostExp.Add(-10 * time.Second), "10s"},
		{"peer.expiring", ghostPC.PeerID, ghostExp.Add(-5 * time.Second), "5s"},
		{"peer.expired", ghostPC.PeerID, ghostExp, ""},
		{"peer.expiring", aliceID, aliceExp.Add(-10 * time.Second), "10s"},
		{"peer.expiring", aliceID, aliceExp.Add(-5 * time.Second), "5s"},
		{"peer.idle", aliceID, quietFrom.Add(4 * time.Second), ""},
		{"peer.expired", aliceID, aliceExp, ""},
	}
	waitUntil(3*time.Second, func() bool { return len(h.accepted()) >= len(want) })
	for _, w := range want {
		var d hookDelivery
		found := false
		for _, x := range h.accepted() {
			if x.Event.Event == w.event && x.Event.PeerID == w.peer && (w.lead == "" || x.Event.Lead == w.lead) {
				d, found = x, true
			}
		}
		if !found {
			t.Errorf("no %s (lead %q) delivered for peer %s", w.event, w.lead, w.peer)
			continue
		}
		// Warnings are checked every second; the retry adds ~50 ms.
		// alice's expires_at is to the second (see above): her warnings
		// may come up to 1 s later than this due time says.
		slack := time.Duration(0)
		if w.peer == aliceID && w.event != "peer.idle" {
			slack = time.Second
		}
		if off := d.At.Sub(w.due); off < -1100*time.Millisecond || off > slack+2500*time.Millisecond {
			t.Errorf("%s %s for %s arrived %v from when it was due", w.event, w.lead, w.peer, off)
		}
		if d.Attempt != 2 || !d.SigOK || d.Event.Network != "eng" || d.Event.Message == "" {
			t.Errorf("%s delivery: attempt %d, signature ok %v, %+v", w.event, d.Attempt, d.SigOK, d.Event)
		}
		t.Logf("WEBHOOK %-13s lead %-3s peer %s: arrived %+v from due, attempt %d", w.event, w.lead, w.peer, d.At.Sub(w.due).Round(time.Millisecond), d.Attempt)
	}
	for _, d := range h.accepted() {
		if d.Event.PeerID == aliceID && d.Event.Event == "peer.unused" {
			t.Error("alice's key was used but got a peer.unused warning")
		}
		if d.Event.Event == "peer.idle" && d.At.Before(quietFrom) {
			t.Error("an idle warning came while alice was busy")
		}
	}

	// The audit log has each event, with who, what, when, from where.
	recs := e.auditLog(t, "--user", "alice")
	for _, w := range []struct{ action, text string }{
		{"login", "groups: engineering"}, {"register", "10.1.2.10"}, {"warn", "expiring"}, {"warn", "idle"}, {"expire", "expired at"},
	} {
		if !hasAudit(recs, w.action, w.text) {
			t.Errorf("alice's audit log lacks %s %q:\n%+v", w.action, w.text, recs)
		}
	}
	if !hasAudit(e.auditLog(t, "--user", "bob"), "warn", "unused") {
		t.Error("bob's audit log lacks the unused warning")
	}
	if text := e.adminOK(t, "audit", "--since", "5m"); !strings.Contains(text, "expire") || !strings.Contains(text, "TIME") {
		t.Errorf("audit table:\n%s", text)
	}
	// Store rows are gone too; the addresses stay reserved.
	for _, p := range e.listPeers(t) {
		if p.PeerID == aliceID || p.PeerID == ghostPC.PeerID {
			t.Errorf("expired peer %s still listed", p.PeerID)
		}
	}
	_, metrics := e.scrape(t, "/metrics")
	for _, m := range []struct {
		name, label string
		min         float64
	}{
		{"clearpath_lifecycle_events_total", `kind="expired"`, 2},
		{"clearpath_lifecycle_events_total", `kind="expiring"`, 4},
		{"clearpath_lifecycle_events_total", `kind="unused"`, 1},
		{"clearpath_lifecycle_events_total", `kind="idle"`, 1},
		{"clearpath_webhook_deliveries_total", `result="delivered"`, 8},
		{"clearpath_expiry_lateness_seconds_count", "", 2},
	} {
		if v, ok := metricValue(metrics, m.name, m.label); !ok || v < m.min {
			t.Errorf("metric %s{%s} = %v (found %v), want >= %v", m.name, m.label, v, ok, m.min)
		}
	}
}

// expiryLateness reads from peer's expire record in the audit log how long
// after its expiry the gateway removed the key ("removed from the device
// 12ms later").
func expiryLateness(recs []store.AuditRecord, peer string) (time.Duration, error) {
	for _, r := range recs {
		if r.Action != "expire" || r.PeerID != peer {
			continue
		}
		_, rest, ok := strings.Cut(r.Detail, "removed from the device ")
		if !ok {
			return 0, fmt.Errorf("expire record of %s does not say when the key was removed: %q", peer, r.Detail)
		}
		late, _, _ := strings.Cut(rest, " ")
		return time.ParseDuration(late)
	}
	return 0, fmt.Errorf("no expire record for peer %s", peer)
}
