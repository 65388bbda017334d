package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// Where the lab's test services listen (both VPCs, IPv4 and IPv6).
var (
	vpcA4 = net.JoinHostPort(lab.VPCAIP4, "8000")
	vpcA6 = net.JoinHostPort(lab.VPCAIP6, "8000")
	vpcB4 = net.JoinHostPort(lab.VPCBIP4, "8000")
	vpcB6 = net.JoinHostPort(lab.VPCBIP6, "8000")
)

type env struct {
	*stack.Stack
	svcA, svcB *lab.WhoAmI
}

// newEnv builds the reference lab, starts Dex and the gateway, and a
// "who am I" service in each VPC.
func newEnv(t *testing.T, opts ...stack.Option) *env {
	t.Helper()
	lab.SkipUnlessRoot(t)
	return startEnv(t, lab.ReferenceT(t, lab.Options{}), opts...)
}

// newHookEnv is newEnv with a webhook receiver started in gw first and
// extra(receiver URL) appended to the gateway configuration.
func newHookEnv(t *testing.T, extra func(hookURL string) string, opts ...stack.Option) (*env, *hook) {
	t.Helper()
	lab.SkipUnlessRoot(t)
	ref := lab.ReferenceT(t, lab.Options{})
	h := startHook(t, ref.GW)
	return startEnv(t, ref, append(opts, stack.WithGatewayConfig(extra(h.URL)))...), h
}

// startEnv starts Dex and the gateway in ref (a lab the caller built,
// with its own options where a test needs them), then envOn.
func startEnv(t *testing.T, ref *lab.Reference, opts ...stack.Option) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, ref, bins, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return envOn(t, ref, s)
}

// envOn is the one setup every e2e test shares, whoever started the stack
// (startEnv; a container or capability-bounded gateway): the env around s
// and a "who am I" service in each VPC of ref.
func envOn(t *testing.T, ref *lab.Reference, s *stack.Stack) *env {
	t.Helper()
	e := &env{Stack: s}
	var err error
	if e.svcA, err = lab.StartWhoAmI(ref.VPCA, "[::]:8000"); err != nil {
		t.Fatal(err)
	}
	if e.svcB, err = lab.StartWhoAmI(ref.VPCB, "[::]:8000"); err != nil {
		t.Fatal(err)
	}
	return e
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// reach asks the service at hostport, from the laptop, who we are.
func (e *env) reach(t *testing.T, hostport string) string {
	t.Helper()
	src, err := e.Laptop.AskWhoAmI(ctxT(t, 5*time.Second), hostport)
	if err != nil {
		t.Fatalf("laptop cannot reach %s: %v", hostport, err)
	}
	return src
}

// unreachable checks that a connection from the laptop to hostport fails
// within a bounded wait.
func (e *env) unreachable(t *testing.T, hostport, why string) {
	t.Helper()
	start := time.Now()
	src, err := e.Laptop.AskWhoAmI(ctxT(t, 2*time.Second), hostport)
	if err == nil {
		t.Errorf("%s: laptop reached %s (seen as %s), want unreachable", why, hostport, src)
		return
	}
	t.Logf("%s: %s unreachable after %v: %v", why, hostport, time.Since(start).Round(time.Millisecond), err)
}

// up runs `vpn up` for c with tokenFile and fails the test if it fails.
func up(t *testing.T, c *stack.Client, tokenFile string) time.Duration {
	t.Helper()
	out, d, err := c.Up(ctxT(t, time.Minute), tokenFile)
	if err != nil {
		t.Fatalf("vpn up (%s): %v\n%s", c.Name, err, out)
	}
	t.Logf("vpn up (%s) took %v:\n%s", c.Name, d.Round(time.Millisecond), strings.TrimSpace(out))
	return d
}

func down(t *testing.T, c *stack.Client) {
	t.Helper()
	if out, err := c.Down(ctxT(t, 30*time.Second)); err != nil {
		t.Fatalf("vpn down (%s): %v\n%s", c.Name, err, out)
	}
}

// tunnelAddrs returns the IPv4 and IPv6 address on c's tunnel interface and
// checks they are in the engineering pools.
func tunnelAddrs(t *testing.T, c *stack.Client) (v4, v6 netip.Addr) {
	t.Helper()
	addrs, err := c.TunnelAddrs(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("tunnel interface %s: %v", c.Iface, err)
	}
	for _, a := range addrs {
		if a.Is4() {
			v4 = a
		} else {
			v6 = a
		}
	}
	if !netip.MustParsePrefix(lab.EngPool4).Contains(v4) || !netip.MustParsePrefix(lab.EngPool6).Contains(v6) {
		t.Fatalf("tunnel %s has addresses %v, want one in %s and one in %s", c.Iface, addrs, lab.EngPool4, lab.EngPool6)
	}
	return v4, v6
}

// Alice (engineering) connects: vpc-a answers over IPv4 and IPv6 and sees
// her own tunnel address (no NAT); vpc-b stays out of reach, even when her
// client forces vpc-b traffic into the tunnel; `vpn down` puts the
// laptop's routing back exactly.
func TestTunnelReachesOnlyAllowedNetworks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	alice := e.Client("alice")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	before, err := e.Laptop.RoutingState(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Without the tunnel the VPCs are private.
	e.unreachable(t, vpcA4, "before vpn up")

	up(t, alice, tok)
	v4, v6 := tunnelAddrs(t, alice)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("vpc-a saw the laptop as %s over IPv4, want its tunnel address %s", got, v4)
	}
	if got := e.reach(t, vpcA6); got != v6.String() {
		t.Errorf("vpc-a saw the laptop as %s over IPv6, want its tunnel address %s", got, v6)
	}
	e.unreachable(t, vpcB4, "vpc-b is not engineering's")
	e.unreachable(t, vpcB6, "vpc-b is not engineering's")

	st, raw, err := alice.Status(ctxT(t, 10*time.Second))
	if err != nil {
		t.Errorf("vpn status --json: %v\n%s", err, raw)
	} else {
		t.Logf("vpn status --json:\n%s", raw)
		if st.State != "up" || !strings.Contains(raw, v4.String()) || !strings.Contains(raw, v6.String()) {
			t.Errorf("status says state %q, addresses %v; want up with %s and %s", st.State, st.Addresses, v4, v6)
		}
		if st.RxBytes == 0 || st.TxBytes == 0 {
			t.Errorf("status counts rx=%d tx=%d bytes after traffic", st.RxBytes, st.TxBytes)
		}
		// Both ends' versions: the lab builds client and gateway from one tree.
		var v struct {
			Client  string `json:"client_version"`
			Agent   string `json:"agent_version"`
			Gateway string `json:"gateway_version"`
		}
		if err := json.Unmarshal([]byte(raw), &v); err != nil || v.Client == "" || v.Agent != v.Client || v.Gateway != v.Client {
			t.Errorf("status --json versions: client %q, agent %q, gateway %q (%v); want one non-empty version for all three", v.Client, v.Agent, v.Gateway, err)
		}
	}
	if out, err := alice.Run(ctxT(t, 10*time.Second), "status"); err != nil || !strings.Contains(out, v4.String()) || !strings.Contains(out, "versions    client ") {
		t.Errorf("vpn status: %v\n%s", err, out)
	}

	// A client that routes vpc-b into the tunnel anyway must still be
	// stopped by the gateway's policy, not merely by its own routes.
	forceIntoTunnel(t, e, alice, lab.VPCB4, lab.VPCB6)
	e.unreachable(t, vpcB4, "forced into the tunnel")
	e.unreachable(t, vpcB6, "forced into the tunnel")
	if seen := e.svcB.Seen(); len(seen) > 0 {
		t.Errorf("vpc-b's service got requests from %v", seen)
	}
	// The forced route is fine for vpc-a: the path itself works.
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("after forcing routes, vpc-a saw %s", got)
	}

	down(t, alice)
	after, err := e.Laptop.RoutingState(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("routing after vpn down differs from before vpn up:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if _, err := alice.TunnelAddrs(ctxT(t, 5*time.Second)); err == nil {
		t.Errorf("interface %s still exists after vpn down", alice.Iface)
	}
	e.unreachable(t, vpcA4, "after vpn down")
	// down is idempotent.
	down(t, alice)
}

// forceIntoTunnel makes the client's WireGuard peer accept prefixes and
// routes them into the tunnel behind the agent's back, as a tampered or
// misconfigured client could.
func forceIntoTunnel(t *testing.T, e *env, c *stack.Client, prefixes ...string) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	out, err := e.Laptop.Exec(ctx, "wg", "show", c.Iface, "allowed-ips")
	if err != nil {
		t.Fatalf("wg show: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("wg show %s allowed-ips: %q", c.Iface, out)
	}
	allowed := append(f[1:], prefixes...)
	if out, err := e.Laptop.Exec(ctx, "wg", "set", c.Iface, "peer", f[0], "allowed-ips", strings.Join(allowed, ",")); err != nil {
		t.Fatalf("wg set: %v\n%s", err, out)
	}
	for _, p := range prefixes {
		if err := e.Laptop.IP("route", "replace", p, "dev", c.Iface); err != nil {
			t.Fatal(err)
		}
	}
	// Prove the packets now really enter the tunnel.
	for _, p := range prefixes {
		dst := netip.MustParsePrefix(p).Addr().Next()
		out, err := e.Laptop.Exec(ctx, "ip", "route", "get", dst.String())
		if err != nil || !strings.Contains(out, "dev "+c.Iface) {
			t.Fatalf("route to %s does not use the tunnel: %v\n%s", dst, err, out)
		}
	}
}

// Two users get distinct addresses; a user keeps hers across vpn down/up
// and across a gateway restart.
func TestAddressesAreDistinctAndStable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 10*time.Second)
	alice, bob := e.Client("alice"), e.Client("bob")
	aliceTok, err := e.TokenFile(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	bobTok, err := e.TokenFile(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}

	up(t, alice, aliceTok)
	a4, a6 := tunnelAddrs(t, alice)
	down(t, alice)

	up(t, bob, bobTok)
	b4, b6 := tunnelAddrs(t, bob)
	if b4 == a4 || b6 == a6 {
		t.Errorf("alice has %s %s and bob %s %s: want distinct", a4, a6, b4, b6)
	}
	if got := e.reach(t, vpcA4); got != b4.String() {
		t.Errorf("vpc-a saw bob as %s, want %s", got, b4)
	}
	down(t, bob)

	up(t, alice, aliceTok)
	if r4, r6 := tunnelAddrs(t, alice); r4 != a4 || r6 != a6 {
		t.Errorf("alice after down/up has %s %s, want %s %s", r4, r6, a4, a6)
	}

	// Restart the gateway while alice is connected.
	if err := e.StopGateway(); err != nil {
		t.Errorf("gateway stop: %v", err)
	}
	if err := e.StartGateway(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	down(t, alice)
	up(t, alice, aliceTok)
	if r4, r6 := tunnelAddrs(t, alice); r4 != a4 || r6 != a6 {
		t.Errorf("alice after a gateway restart has %s %s, want %s %s", r4, r6, a4, a6)
	}
	if got := e.reach(t, vpcA6); got != a6.String() {
		t.Errorf("vpc-a saw alice as %s after the restart, want %s", got, a6)
	}
	down(t, alice)
	up(t, bob, bobTok)
	if r4, r6 := tunnelAddrs(t, bob); r4 != b4 || r6 != b6 {
		t.Errorf("bob after a gateway restart has %s %s, want %s %s", r4, r6, b4, b6)
	}
	down(t, bob)
}
