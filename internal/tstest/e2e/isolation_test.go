package e2e

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// nodeClient is a vpn installation on any lab node (stack.Client is the
// laptop's), so one user can have devices in two places at once.
type nodeClient struct {
	e     *env
	node  *lab.Node
	name  string
	dir   string
	iface string
}

func (e *env) clientOn(node *lab.Node, name string) *nodeClient {
	iface := e.Prefix + "-" + name
	if len(iface) > 15 {
		iface = iface[:15]
	}
	dir := filepath.Join(e.Dir, "client-"+name)
	os.MkdirAll(dir, 0o700)
	e.AddLogFile("agent of "+name, filepath.Join(dir, "agent.log"))
	return &nodeClient{e: e, node: node, name: name, dir: dir, iface: iface}
}

func (c *nodeClient) run(t *testing.T, args ...string) string {
	t.Helper()
	argv := append([]string{c.e.Bin.VPN, "--state-dir", c.dir}, args...)
	out, err := c.node.Exec(ctxT(t, time.Minute), argv...)
	if err != nil {
		t.Fatalf("%s on %s: vpn %s: %v\n%s", c.name, c.node.Name, strings.Join(args, " "), err, out)
	}
	return out
}

func (c *nodeClient) up(t *testing.T, tokenFile, network string) {
	t.Helper()
	c.run(t, "up", "--server", stack.ServerURL, "--token-file", tokenFile, "--interface", c.iface, "--network", network)
}

// addrs returns the tunnel's IPv4 and IPv6 addresses, checking they are in
// the pools of the network.
func (c *nodeClient) addrs(t *testing.T, pool4, pool6 string) (netip.Addr, netip.Addr) {
	t.Helper()
	out, err := c.node.Exec(ctxT(t, 5*time.Second), "ip", "-o", "addr", "show", "dev", c.iface, "scope", "global")
	if err != nil {
		t.Fatalf("%s: %v\n%s", c.iface, err, out)
	}
	var v4, v6 netip.Addr
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			if p.Addr().Is4() {
				v4 = p.Addr()
			} else {
				v6 = p.Addr()
			}
		}
	}
	if !netip.MustParsePrefix(pool4).Contains(v4) || !netip.MustParsePrefix(pool6).Contains(v6) {
		t.Fatalf("%s has %s %s, want addresses in %s and %s", c.name, v4, v6, pool4, pool6)
	}
	return v4, v6
}

// sees checks that from node the service at hostport answers and sees src.
func (e *env) sees(t *testing.T, node *lab.Node, who, hostport string, src netip.Addr) {
	t.Helper()
	got, err := node.AskWhoAmI(ctxT(t, 5*time.Second), hostport)
	if err != nil {
		t.Errorf("%s cannot reach %s: %v", who, hostport, err)
	} else if got != src.String() {
		t.Errorf("%s reached %s seen as %s, want its own tunnel address %s", who, hostport, got, src)
	}
}

// blocked checks that from node hostport does not answer.
func (e *env) blocked(t *testing.T, node *lab.Node, who, hostport string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if got, err := node.AskWhoAmI(ctx, hostport); err == nil {
		t.Errorf("%s reached %s (seen as %s), want it blocked", who, hostport, got)
	}
}

// Two groups, three users: carol (ops) reaches vpc-b only; erin (in both
// groups) joins both networks at once from two devices, each with its own
// addresses, each reaching only its network's VPC, even when the client
// forces the other VPC into its tunnel; each VPC sees each user's own
// address, over IPv4 and IPv6. (Alice, engineering only, is
// TestTunnelReachesOnlyAllowedNetworks.)
func TestEachUserReachesOnlyItsNetworks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 30*time.Second)
	carolTok, err := e.TokenFile(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	erinTok, err := e.TokenFile(ctx, "erin")
	if err != nil {
		t.Fatal(err)
	}

	carol := e.clientOn(e.Laptop, "carol")
	carol.up(t, carolTok, "ops")
	c4, c6 := carol.addrs(t, lab.OpsPool4, lab.OpsPool6)
	e.sees(t, e.Laptop, "carol", vpcB4, c4)
	e.sees(t, e.Laptop, "carol", vpcB6, c6)
	e.blocked(t, e.Laptop, "carol", vpcA4)
	e.blocked(t, e.Laptop, "carol", vpcA6)
	carol.run(t, "down")

	// carol has no network eng.
	out, err := e.Laptop.Exec(ctx, e.Bin.VPN, "--state-dir", carol.dir, "up", "--server", stack.ServerURL, "--token-file", carolTok, "--interface", carol.iface, "--network", "eng")
	if err == nil || !strings.Contains(out, "eng") {
		t.Errorf("carol joining eng: %v\n%s", err, out)
	}

	// erin: her laptop in eng, her second device (on host) in ops, both up.
	erinEng := e.clientOn(e.Laptop, "erin-eng")
	erinOps := e.clientOn(e.Host, "erin-ops")
	erinEng.up(t, erinTok, "eng")
	erinOps.up(t, erinTok, "ops")
	e4, e6 := erinEng.addrs(t, lab.EngPool4, lab.EngPool6)
	o4, o6 := erinOps.addrs(t, lab.OpsPool4, lab.OpsPool6)
	e.sees(t, e.Laptop, "erin (eng)", vpcA4, e4)
	e.sees(t, e.Laptop, "erin (eng)", vpcA6, e6)
	e.sees(t, e.Host, "erin (ops)", vpcB4, o4)
	e.sees(t, e.Host, "erin (ops)", vpcB6, o6)
	e.blocked(t, e.Laptop, "erin (eng)", vpcB4)
	e.blocked(t, e.Laptop, "erin (eng)", vpcB6)
	e.blocked(t, e.Host, "erin (ops)", vpcA4)
	e.blocked(t, e.Host, "erin (ops)", vpcA6)

	// Each device is its own peer on its network's interface.
	eng, ops := wgDump(t, e.GW, e.EngIface), wgDump(t, e.GW, e.OpsIface)
	engPeer := strings.Join([]string{netip.PrefixFrom(e4, 32).String(), netip.PrefixFrom(e6, 128).String()}, ",")
	opsPeer := strings.Join([]string{netip.PrefixFrom(o4, 32).String(), netip.PrefixFrom(o6, 128).String()}, ",")
	found := map[string]bool{}
	for _, p := range eng {
		found["eng "+p.allowedIPs] = true
	}
	for _, p := range ops {
		found["ops "+p.allowedIPs] = true
	}
	if !found["eng "+engPeer] || !found["ops "+opsPeer] {
		t.Errorf("gateway peers eng %+v ops %+v; want erin's devices as %s and %s", eng, ops, engPeer, opsPeer)
	}

	// Forcing the other VPC into the tunnel changes nothing: the gateway
	// drops it.
	forceOn(t, e.Laptop, erinEng.iface, lab.VPCB4, lab.VPCB6)
	forceOn(t, e.Host, erinOps.iface, lab.VPCA4, lab.VPCA6)
	e.blocked(t, e.Laptop, "erin (eng), forced", vpcB4)
	e.blocked(t, e.Laptop, "erin (eng), forced", vpcB6)
	e.blocked(t, e.Host, "erin (ops), forced", vpcA4)
	e.blocked(t, e.Host, "erin (ops), forced", vpcA6)
	for _, seen := range [][]string{e.svcA.Seen(), e.svcB.Seen()} {
		for _, s := range seen {
			if s != e4.String() && s != e6.String() && s != o4.String() && s != o6.String() && s != c4.String() && s != c6.String() {
				t.Errorf("a VPC saw a request from %s, nobody's own address", s)
			}
		}
	}
	for _, s := range e.svcB.Seen() {
		if s == e4.String() || s == e6.String() {
			t.Errorf("vpc-b got a request from erin's eng address %s", s)
		}
	}
	for _, s := range e.svcA.Seen() {
		if s == o4.String() || s == o6.String() || s == c4.String() || s == c6.String() {
			t.Errorf("vpc-a got a request from an ops address %s", s)
		}
	}
	erinEng.run(t, "down")
	erinOps.run(t, "down")
}

// forceOn routes prefixes into iface on node and lets its WireGuard peer
// carry them, behind the agent's back.
func forceOn(t *testing.T, node *lab.Node, iface string, prefixes ...string) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	out, err := node.Exec(ctx, "wg", "show", iface, "allowed-ips")
	f := strings.Fields(out)
	if err != nil || len(f) < 2 {
		t.Fatalf("wg show %s allowed-ips: %v %q", iface, err, out)
	}
	allowed := append(f[1:], prefixes...)
	if out, err := node.Exec(ctx, "wg", "set", iface, "peer", f[0], "allowed-ips", strings.Join(allowed, ",")); err != nil {
		t.Fatalf("wg set: %v\n%s", err, out)
	}
	for _, p := range prefixes {
		if err := node.IP("route", "replace", p, "dev", iface); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range prefixes {
		dst := netip.MustParsePrefix(p).Addr().Next()
		out, err := node.Exec(ctx, "ip", "route", "get", dst.String())
		if err != nil || !strings.Contains(out, "dev "+iface) {
			t.Fatalf("on %s the route to %s does not use the tunnel: %v\n%s", node.Name, dst, err, out)
		}
	}
}
