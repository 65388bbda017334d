package e2e

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// leakCounter counts, on the lab's host (the laptop's LAN router and the
// internet), the packets that arrive from the laptop's own LAN addresses
// to anything but the gateway's public address (WireGuard and the API)
// and the LAN itself: every one of them left the laptop outside the
// tunnel, by the LAN default route.
type leakCounter struct{ node *lab.Node }

func newLeakCounter(t *testing.T, node *lab.Node) *leakCounter {
	t.Helper()
	ruleset := `table inet cpleak {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		ip saddr ` + lab.LaptopIP4 + ` ip daddr != { ` + lab.GWPublicIP4 + `, ` + lab.LAN4 + ` } counter
		ip6 saddr ` + lab.LaptopIP6 + ` ip6 daddr != { ` + lab.GWPublicIP6 + `, ` + lab.LAN6 + ` } counter
	}
}
`
	cmd := node.Command(ctxT(t, 5*time.Second), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft on %s: %v\n%s", node, err, out)
	}
	return &leakCounter{node: node}
}

var nftPackets = regexp.MustCompile(`counter packets (\d+)`)

// packets returns the number of leaked packets counted so far.
func (l *leakCounter) packets(t *testing.T) int {
	t.Helper()
	out, err := l.node.Exec(ctxT(t, 5*time.Second), "nft", "list", "table", "inet", "cpleak")
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	n := 0
	for _, m := range nftPackets.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// tunnel4 returns the one IPv4 address of c's IPv4-only tunnel.
func tunnel4(t *testing.T, c *stack.Client) string {
	t.Helper()
	addrs, err := c.TunnelAddrs(ctxT(t, 5*time.Second))
	if err != nil || len(addrs) != 1 || !addrs[0].Is4() {
		t.Fatalf("an IPv4-only network must give one IPv4 address: %v %v", addrs, err)
	}
	return addrs[0].String()
}

// waitState polls `vpn status --json` until the state is want.
func waitState(t *testing.T, c *stack.Client, want string, within time.Duration) control.Status {
	t.Helper()
	st := fullStatus(t, c)
	for deadline := time.Now().Add(within); st.State != want; st = fullStatus(t, c) {
		if time.Now().After(deadline) {
			t.Fatalf("state %q after %v, want %q: %+v", st.State, within, want, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return st
}

// prober sends a TCP connection attempt to the internet from the laptop
// every 20 ms until stopped, and says how many got through.
type prober struct {
	stop   context.CancelFunc
	done   chan struct{}
	tries  int
	passed int
}

func startProber(node *lab.Node, hostport string) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			if _, err := node.AskWhoAmI(c, hostport); err == nil {
				p.passed++
			}
			cancel()
			p.tries++
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return p
}

func (p *prober) wait() (tries, passed int) {
	p.stop()
	<-p.done
	return p.tries, p.passed
}

// TestFailClosedKeepsTheBlock: `vpn up --all-traffic --fail-closed` whose
// registration expires unrenewed (the token file is gone) keeps the full
// tunnel's block: `vpn status` says blocked, `vpn doctor` reports
// fail-closed-block, and nothing leaves by the LAN (the host, the laptop's
// router, counts every packet from the laptop's LAN address to anything but
// the gateway and the LAN: none, while a prober keeps trying the internet).
// A new `vpn up` from blocked switches to the new tunnel without a packet
// leaving by the LAN in between (a prober every 20 ms and a ping every 2 ms
// through the switch); one that fails (the gateway refuses the token)
// stays blocked.
// `vpn down` from blocked restores the routing exactly (`vpn routes diff`
// against the snapshot taken before `vpn up` is empty) and traffic flows by
// the LAN again.
func TestFailClosedKeepsTheBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reconfigure(t, e, func(s string) string {
		s = strings.Replace(s, `allow: [`+lab.VPCA4+`, "`+lab.VPCA6+`"]`, `allow: [0.0.0.0/0]`, 1)
		s = strings.Replace(s, `pool: [`+lab.EngPool4+`, "`+lab.EngPool6+`"]`, `pool: [`+lab.EngPool4+`]`, 1)
		return strings.Replace(s, "\nnetworks:\n", "\nkey_ttl: 10s\nnetworks:\n", 1) // the gateway's minimum
	})
	ctx := ctxT(t, 5*time.Minute)
	if out, err := e.Host.Exec(ctx, "ip", "route", "add", lab.EngPool4, "via", lab.GWPublicIP4); err != nil {
		t.Fatal(out)
	}
	internet := lab.HostPublicIP4 + ":8080"
	web, err := lab.StartWhoAmI(e.Host, internet)
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()

	alice := e.Client("fclosed")
	snap := t.TempDir() + "/before.json"
	if out, err := alice.Run(ctx, "routes", "snapshot", "-o", snap); err != nil {
		t.Fatal(out)
	}
	// Before: the internet is reached by the LAN, and the counter sees it
	// (it can fail).
	leak := newLeakCounter(t, e.Host)
	if got := e.reach(t, internet); got != lab.LaptopIP4 {
		t.Fatalf("before vpn up the internet saw %q, want the LAN address %s", got, lab.LaptopIP4)
	}
	if n := leak.packets(t); n == 0 {
		t.Fatal("the leak counter did not count a connection by the LAN")
	}

	upFull := func(tok string) {
		t.Helper()
		if out, err := alice.Run(ctx, "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface, "--all-traffic", "--fail-closed"); err != nil {
			t.Fatalf("vpn up --all-traffic --fail-closed: %v\n%s", err, out)
		}
	}
	block := func(tok string) control.Status {
		t.Helper()
		st := fullStatus(t, alice)
		if st.ExpiresAt == nil {
			t.Fatalf("no expiry in the status: %+v", st)
		}
		os.Remove(tok) // renewals fail from now on
		st = waitState(t, alice, control.StateBlocked, time.Until(*st.ExpiresAt)+30*time.Second)
		t.Logf("blocked %v after the expiry: %s", time.Since(*st.ExpiresAt).Round(100*time.Millisecond), st.Error)
		return st
	}

	tok, err := e.TokenFile(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	upFull(tok)
	v4 := tunnel4(t, alice)
	if got := e.reach(t, internet); got != v4 {
		t.Fatalf("with the full tunnel the internet saw %q, want the tunnel address %s", got, v4)
	}
	base := leak.packets(t)

	st := block(tok)
	if !st.FailClosed || !st.FullTunnel || !strings.Contains(st.Error, "expired") || !strings.Contains(st.Error, "fail-closed") {
		t.Errorf("blocked status: fail_closed %v full_tunnel %v error %q", st.FailClosed, st.FullTunnel, st.Error)
	}
	if human, _ := alice.Run(ctx, "status"); !strings.Contains(human, "blocked") {
		t.Errorf("vpn status does not say blocked:\n%s", human)
	}
	e.unreachable(t, internet, "blocked")
	if out, err := e.Laptop.Exec(ctxT(t, 10*time.Second), "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", lab.HostPublicIP4); err == nil {
		t.Errorf("blocked: ping to the internet answered:\n%s", out)
	}
	p := startProber(e.Laptop, internet)
	time.Sleep(2 * time.Second)
	if tries, passed := p.wait(); passed != 0 {
		t.Errorf("blocked: %d of %d connections to the internet got through", passed, tries)
	}
	if n := leak.packets(t) - base; n != 0 {
		t.Errorf("blocked: %d packets left the laptop by the LAN", n)
	}
	rep, code, out := doctor(t, alice)
	if code == 0 || len(rep.Findings) == 0 || rep.Findings[0].ID != "fail-closed-block" {
		t.Errorf("vpn doctor while blocked: exit %d, want the fail-closed-block finding first:\n%s", code, out)
	}

	// A `vpn up` from blocked that fails (the gateway refuses the token)
	// leaves the block as it was: still blocked, nothing by the LAN.
	bad := t.TempDir() + "/bad.token"
	os.WriteFile(bad, []byte("not-a-token\n"), 0o600)
	base = leak.packets(t)
	p = startProber(e.Laptop, internet)
	out, err = alice.Run(ctx, "up", "--server", stack.ServerURL, "--token-file", bad, "--interface", alice.Iface, "--all-traffic", "--fail-closed")
	time.Sleep(500 * time.Millisecond)
	tries, passed := p.wait()
	if err == nil {
		t.Errorf("vpn up from blocked with a bad token succeeded:\n%s", out)
	}
	if st := fullStatus(t, alice); st.State != control.StateBlocked || !strings.Contains(st.Error, "still blocked") {
		t.Errorf("after a failed vpn up from blocked: state %q error %q", st.State, st.Error)
	}
	if n := leak.packets(t) - base; n != 0 || passed != 0 {
		t.Errorf("after a failed vpn up from blocked: %d packets by the LAN, %d of %d connections through", n, passed, tries)
	}
	t.Logf("failed vpn up from blocked: %s", strings.TrimSpace(out))

	// A new `vpn up` from blocked: the block holds until the new tunnel
	// carries the traffic.
	tok2, err := e.TokenFile(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	base = leak.packets(t)
	p = startProber(e.Laptop, internet)
	// And a ping every 2 ms: a gap of a few milliseconds would show.
	flood := e.Laptop.Command(context.Background(), "ping", "-n", "-q", "-i", "0.002", lab.HostPublicIP4)
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	upFull(tok2)
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	tries, passed = p.wait()
	flood.Process.Kill()
	flood.Wait()
	leaked := leak.packets(t) - base
	t.Logf("vpn up from blocked took %v; prober: %d of %d connections through (after the switch, by the tunnel); %d packets by the LAN", took.Round(time.Millisecond), passed, tries, leaked)
	if leaked != 0 {
		t.Errorf("vpn up from blocked: %d packets left the laptop by the LAN during the switch", leaked)
	}
	if st := fullStatus(t, alice); st.State != control.StateUp || st.Error != "" {
		t.Errorf("after vpn up from blocked: state %q error %q", st.State, st.Error)
	}
	v4 = tunnel4(t, alice)
	if got := e.reach(t, internet); got != v4 {
		t.Errorf("after vpn up from blocked the internet saw %q, want the tunnel address %s", got, v4)
	}

	// Blocked again, then `vpn down`: routing exactly as before.
	block(tok2)
	e.unreachable(t, internet, "blocked again")
	down(t, alice)
	if out, err := alice.Run(ctx, "routes", "diff", snap); err != nil || !strings.Contains(out, "no difference") {
		t.Errorf("after vpn down from blocked `vpn routes diff` must show nothing:\n%s", out)
	}
	if st := fullStatus(t, alice); st.State != control.StateDown {
		t.Errorf("after vpn down: state %q", st.State)
	}
	if got := e.reach(t, internet); got != lab.LaptopIP4 {
		t.Errorf("after vpn down the internet saw %q, want the LAN address %s", got, lab.LaptopIP4)
	}
}
