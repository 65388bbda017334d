package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/agent"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// nftIn loads an nftables ruleset into node's namespace (never the
// machine's own) and returns a func that deletes its table.
func nftIn(t *testing.T, node *lab.Node, table, ruleset string) func() {
	t.Helper()
	cmd := node.Command(ctxT(t, 5*time.Second), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet " + table + " {\n" + ruleset + "\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft on %s: %v\n%s", node, err, out)
	}
	return func() {
		if out, err := node.Exec(ctxT(t, 5*time.Second), "nft", "delete", "table", "inet", table); err != nil {
			t.Fatalf("nft delete table %s on %s: %v\n%s", table, node, err, out)
		}
	}
}

// TestUpNamesWhyItFailed: `vpn up` tells apart the three ways a connect
// fails, each with its own message, quickly where the cause is clear,
// and leaves the laptop's routing as it was. The laptop's own firewall
// rejects HTTPS to the gateway (API unreachable), then drops UDP to the
// WireGuard ports (API fine, no handshake), then the gateway drops the
// tunnel's pings (handshake, no traffic). With the rules gone the same
// `vpn up` connects.
func TestUpNamesWhyItFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.Client("fail")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	routing := func() string {
		var b strings.Builder
		for _, argv := range [][]string{{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"}, {"ip", "rule"}, {"ip", "-6", "rule"}, {"ip", "link"}} {
			out, err := e.Laptop.Exec(ctxT(t, 5*time.Second), argv...)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString(out)
		}
		return b.String()
	}
	before := routing()
	cases := []struct {
		cause, table, ruleset string
		node                  *lab.Node
		within                time.Duration
	}{
		{agent.CauseAPIUnreachable, "cpnoapi", `chain out { type filter hook output priority 0; policy accept;
			ip daddr ` + lab.GWPublicIP4 + ` tcp dport 8080 reject with tcp reset
		}`, e.Laptop, 5 * time.Second},
		{agent.CauseUDPBlocked, "cpnoudp", `chain out { type filter hook output priority 0; policy accept;
			udp dport { 51820, 51821 } drop
		}`, e.Laptop, 8 * time.Second},
		{agent.CauseNoTraffic, "cpnoping", `chain in { type filter hook input priority -10; policy accept;
			ip saddr ` + lab.EngPool4 + ` icmp type echo-request drop
			ip6 saddr ` + lab.EngPool6 + ` icmpv6 type echo-request drop
		}`, e.GW, 12 * time.Second},
	}
	for _, tc := range cases {
		undo := nftIn(t, tc.node, tc.table, tc.ruleset)
		out, took, err := c.Up(ctxT(t, time.Minute), tok)
		undo()
		t.Logf("%s: vpn up failed after %v:\n%s", tc.cause, took.Round(time.Millisecond), strings.TrimSpace(out))
		if err == nil {
			t.Fatalf("%s: vpn up succeeded", tc.cause)
		}
		if !strings.Contains(out, tc.cause+":") {
			t.Errorf("want the cause %q in the message, got:\n%s", tc.cause, out)
		}
		for _, other := range []string{agent.CauseAPIUnreachable, agent.CauseUDPBlocked, agent.CauseNoTraffic} {
			if other != tc.cause && strings.Contains(out, other) {
				t.Errorf("%s: the message also names %q:\n%s", tc.cause, other, out)
			}
		}
		// The default --timeout is 15 s; a clear cause is named well before.
		if took > tc.within {
			t.Errorf("%s: took %v, want under %v", tc.cause, took.Round(time.Millisecond), tc.within)
		}
		if after := routing(); after != before {
			t.Errorf("%s: the laptop's routing changed:\nbefore:\n%s\nafter:\n%s", tc.cause, before, after)
		}
	}
	up(t, c, tok)
	down(t, c)
}
