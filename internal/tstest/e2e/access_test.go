package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// An access rule narrows alice within network eng: after `vpn-gateway
// reload` her tunnel no longer reaches vpc-a's service (the eBPF filter
// drops it and logs a denied flow) within a second, explain says why, and
// removing the rule gives her access back as quickly.
func TestAccessRuleNarrowsAUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Client("alice")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	up(t, alice, tok)
	e.reach(t, vpcA4)

	orig, err := os.ReadFile(e.GatewayConfig)
	must(t, err)
	engAllow := regexp.MustCompile(`(?m)^    allow: \[` + regexp.QuoteMeta(lab.VPCA4) + `.*$`)
	loc := engAllow.FindIndex(orig)
	if loc == nil {
		t.Fatalf("no eng allow line in the lab's configuration:\n%s", orig)
	}
	rule := "\n    access:\n      - users: [alice@example.com]\n        allow: [10.10.0.99/32]"
	narrowed := string(orig[:loc[1]]) + rule + string(orig[loc[1]:])

	// reload measures from the command's start until pings stop (want) or
	// come back.
	reload := func(doc string, wantReach bool) time.Duration {
		t.Helper()
		must(t, os.WriteFile(e.GatewayConfig, []byte(doc), 0o600))
		pl := startPingLoop(t, e.Laptop, lab.VPCAIP4, 20*time.Millisecond)
		defer pl.Stop()
		if wantReach {
			time.Sleep(200 * time.Millisecond)
			if pl.repliedSince(time.Now().Add(-200 * time.Millisecond)) {
				t.Fatal("alice reached vpc-a before the rule was removed")
			}
		} else if _, ok := waitUntil(3*time.Second, func() bool { return !pl.lastReply().IsZero() }); !ok {
			t.Fatal("no ping reply before the reload")
		}
		start := time.Now()
		out := e.adminOK(t, "reload")
		if !strings.Contains(out, "access") {
			t.Errorf("reload does not mention the access change:\n%s", out)
		}
		returned := time.Since(start)
		var took time.Duration
		ok := true
		if wantReach {
			_, ok = waitUntil(3*time.Second, func() bool { return pl.repliedSince(start) })
			took = time.Since(start) // the first answer to a ping sent after the start
		} else {
			// No ping sent 1 s or more after the reload started is answered.
			time.Sleep(time.Until(start.Add(2 * time.Second)))
			ok = !pl.repliedSince(start.Add(time.Second))
			took = returned
		}
		if !ok || took > time.Second {
			t.Errorf("reload (reach %v): traffic did not change within 1 s of the reload's start (took %v, ok %v)", wantReach, took, ok)
		}
		t.Logf("ACCESS reload (alice reaches vpc-a: %v): in effect %v after `vpn-gateway reload` started (the command returned after %v); it said %s", wantReach, took.Round(time.Millisecond), returned.Round(time.Millisecond), strings.TrimSpace(out))
		return took
	}

	reload(narrowed, false)
	e.unreachable(t, vpcA4, "alice narrowed to 10.10.0.99/32")
	if _, ok := waitUntil(3*time.Second, func() bool {
		return strings.Contains(e.Gateway.Log(), "flow denied by the user's policy") && strings.Contains(e.Gateway.Log(), "alice@example.com")
	}); !ok {
		t.Errorf("no denied flow of alice in the gateway's log")
	}
	out, code := e.admin(t, "explain", "alice", vpcA4)
	if code != 1 || !strings.Contains(out, "access rules") || !strings.Contains(out, "10.10.0.99/32") {
		t.Errorf("explain alice %s with the rule: exit %d\n%s", vpcA4, code, out)
	}
	t.Logf("explain with the rule:\n%s", out)
	// The probe of vpn up (the gateway's tunnel address) still answers.
	if _, err := e.Laptop.Ping(ctxT(t, 3*time.Second), "100.64.0.1"); err != nil {
		t.Errorf("alice cannot ping the gateway's tunnel address under her rule: %v", err)
	}

	reload(string(orig), true)
	e.reach(t, vpcA4)
	if out, code := e.admin(t, "explain", "alice", vpcA4); code != 0 {
		t.Errorf("explain alice %s without the rule: exit %d\n%s", vpcA4, code, out)
	}
}
