package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/bpf"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// accessRules are eng's rules in TestAccessRulesByGroupAndPort: dba
// (alice) may reach vpc-a's database port and, widened beyond eng's allow,
// vpc-b's service; everyone in engineering (bob) only 10.10.0.99.
const accessRules = `    may_widen: ["` + lab.VPCBIP4 + `/32"]
    access:
      - groups: [dba]
        allow: ["` + lab.VPCAIP4 + `/32 tcp/5432", "` + lab.VPCBIP4 + `/32 tcp/8000"]
      - groups: [engineering]
        allow: [10.10.0.99/32]`

// Access rules by group and port, on real tunnels: alice (group dba)
// reaches 10.10.0.10 tcp/5432 but not tcp/22 nor ping, and vpc-b's
// tcp/8000 through a widening rule; bob (only the engineering-wide rule)
// is denied both, even when he forges his client to send vpc-b's address
// into the tunnel; the flow log holds the denied flows with their ports;
// explain names the rule; a reload that gives dba tcp/22 reaches alice's
// live tunnel within a second, without her registering again.
func TestAccessRulesByGroupAndPort(t *testing.T) {
	t.Parallel()
	lab.SkipUnlessRoot(t)
	ref := lab.ReferenceT(t, lab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, ref, bins, stack.WithNetworkConfig("eng", accessRules))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{Stack: s}
	if e.svcB, err = lab.StartWhoAmI(ref.VPCB, "[::]:8000"); err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"5432", "22"} {
		ln, err := ref.VPCA.Listen("tcp", "[::]:"+port)
		must(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	dial := func(hostport string) error {
		c, err := e.Laptop.DialContext(ctxT(t, 700*time.Millisecond), "tcp", hostport)
		if err == nil {
			c.Close()
		}
		return err
	}
	db, ssh, vpcB := net.JoinHostPort(lab.VPCAIP4, "5432"), net.JoinHostPort(lab.VPCAIP4, "22"), net.JoinHostPort(lab.VPCBIP4, "8000")

	alice := e.Client("alice")
	aliceTok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	up(t, alice, aliceTok)
	aliceV4, _ := tunnelAddrs(t, alice)
	if err := dial(db); err != nil {
		t.Errorf("alice (dba) cannot reach %s: %v", db, err)
	}
	if err := dial(ssh); err == nil {
		t.Errorf("alice reached %s: her rule allows only tcp/5432 there", ssh)
	}
	if _, err := e.Laptop.Ping(ctxT(t, 2*time.Second), lab.VPCAIP4); err == nil {
		t.Errorf("alice pinged %s: a port-limited entry without icmp lets no ICMP through", lab.VPCAIP4)
	}
	if got := e.reach(t, vpcB); got != aliceV4.String() {
		t.Errorf("vpc-b (widened for dba) saw alice as %s, want %s", got, aliceV4)
	}
	out, code := e.admin(t, "explain", "alice", ssh)
	if code != 1 || !strings.Contains(out, "access[0] (groups dba): "+lab.VPCAIP4+"/32 tcp/5432") {
		t.Errorf("explain alice %s: exit %d\n%s", ssh, code, out)
	}
	out, code = e.admin(t, "explain", "alice", vpcB)
	if code != 0 || !strings.Contains(out, "widens beyond allow") {
		t.Errorf("explain alice %s: exit %d\n%s", vpcB, code, out)
	}
	t.Logf("explain alice %s:\n%s", vpcB, out)

	// The reload: dba gets tcp/22 too, on alice's live tunnel.
	registrations := func() int {
		l := e.Gateway.Log()
		return strings.Count(l, "peer register") + strings.Count(l, "peer renew") + strings.Count(l, "peer rotate")
	}
	before := registrations()
	if before == 0 {
		t.Fatalf("alice's registration is not in the gateway's log: the check below would prove nothing")
	}
	orig, err := os.ReadFile(e.GatewayConfig)
	must(t, err)
	widened := strings.Replace(string(orig), `"`+lab.VPCAIP4+`/32 tcp/5432"`, `"`+lab.VPCAIP4+`/32 tcp/5432 tcp/22"`, 1)
	if widened == string(orig) {
		t.Fatalf("rule not found in the lab's configuration:\n%s", orig)
	}
	must(t, os.WriteFile(e.GatewayConfig, []byte(widened), 0o600))
	var mu sync.Mutex
	var firstOK time.Time
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			tried := time.Now()
			c, err := e.Laptop.DialContext(ctxT(t, 100*time.Millisecond), "tcp", ssh)
			if err == nil {
				c.Close()
				mu.Lock()
				if firstOK.IsZero() && tried.After(start) {
					firstOK = time.Now()
				}
				mu.Unlock()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	rout := e.adminOK(t, "reload")
	returned := time.Since(start)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
	close(stop)
	<-done
	mu.Lock()
	took := firstOK.Sub(start)
	mu.Unlock()
	switch {
	case firstOK.IsZero():
		t.Errorf("alice never reached %s after the reload that allows it", ssh)
	case took > time.Second:
		t.Errorf("alice reached %s %v after the reload started, want within 1 s", ssh, took)
	}
	t.Logf("ACCESS reload (dba gets tcp/22): alice's live tunnel reached %s %v after `vpn-gateway reload` started (the command returned after %v): %s",
		ssh, took.Round(time.Millisecond), returned.Round(time.Millisecond), strings.TrimSpace(rout))
	if n := registrations(); n != before {
		t.Errorf("the reload made alice register again (%d registrations before, %d after)", before, n)
	}
	down(t, alice)

	// bob: the engineering-wide rule only.
	bob := e.Client("bob")
	bobTok, err := e.TokenFile(ctxT(t, 10*time.Second), "bob")
	must(t, err)
	up(t, bob, bobTok)
	bobV4, _ := tunnelAddrs(t, bob)
	if err := dial(db); err == nil {
		t.Errorf("bob reached %s: no rule of his allows it", db)
	}
	// The attack: bob sends vpc-b's address into his tunnel (his client
	// was not told to). The gateway's table routes it for all of eng now
	// (the widening); the filter must still drop it.
	forgeRoute(t, e, bob, lab.VPCBIP4+"/32")
	if _, err := e.Laptop.AskWhoAmI(ctxT(t, 2*time.Second), vpcB); err == nil {
		t.Errorf("bob reached %s by routing it into his tunnel: the widening is dba's only", vpcB)
	}
	down(t, bob)

	// The flow log: bob's and alice's denied flows with their ports.
	logPath := filepath.Join(filepath.Dir(e.GatewayConfig), "gateway-state", "flows.jsonl")
	want := map[string]bool{
		"alice@example.com " + aliceV4.String() + " tcp 22":   false,
		"bob@example.com " + bobV4.String() + " tcp 5432":     false,
		"bob@example.com " + bobV4.String() + " tcp 8000":     false,
		"alice@example.com " + aliceV4.String() + " tcp 5432": false, // allowed
	}
	if _, ok := waitUntil(5*time.Second, func() bool {
		f, err := os.Open(logPath)
		if err != nil {
			return false
		}
		defer f.Close()
		for r, err := range bpf.ReadFlowLog(f) {
			if err != nil || r.DstPort == nil {
				continue
			}
			key := r.User + " " + r.Src + " " + r.Proto + " " + strconv.Itoa(int(*r.DstPort))
			if _, ok := want[key]; ok && (r.Verdict == "deny") == !strings.HasSuffix(key, aliceV4.String()+" tcp 5432") {
				want[key] = true
			}
		}
		for _, seen := range want {
			if !seen {
				return false
			}
		}
		return true
	}); !ok {
		t.Errorf("flow log %s lacks flows (false = missing): %v", logPath, want)
	}
}

// forgeRoute makes c's tunnel carry prefix: the WireGuard peer's allowed IPs
// (cryptokey routing) and a route on the laptop, as a user editing their
// own client would.
func forgeRoute(t *testing.T, e *env, c *stack.Client, prefix string) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	out, err := e.Laptop.Command(ctx, "wg", "show", c.Iface, "allowed-ips").CombinedOutput()
	if err != nil {
		t.Fatalf("wg show %s: %v\n%s", c.Iface, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("wg show %s allowed-ips: %q", c.Iface, out)
	}
	ips := strings.Join(append(f[1:], prefix), ",")
	if out, err := e.Laptop.Command(ctx, "wg", "set", c.Iface, "peer", f[0], "allowed-ips", ips).CombinedOutput(); err != nil {
		t.Fatalf("wg set: %v\n%s", err, out)
	}
	if out, err := e.Laptop.Command(ctx, "ip", "route", "replace", prefix, "dev", c.Iface).CombinedOutput(); err != nil {
		t.Fatalf("ip route: %v\n%s", err, out)
	}
}
