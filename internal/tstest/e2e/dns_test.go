package e2e

import (
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/tstest/dnstest"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// The laptop's resolv.conf as the LAN's DHCP left it.
const lanResolvConf = "# from the LAN's DHCP server\nnameserver " + lab.HostLANIP4 + "\nsearch lan.example\noptions edns0\n"

type dnsEnv struct {
	*env
	vpcA, vpcB, lan *dnstest.Server
	resolvConf      string // the laptop's resolv.conf, seen from outside
}

// newDNSEnv is the lab with split DNS: eng pushes vpc-a's server for
// corp.internal, ops pushes vpc-b's server for every name (no domains);
// each VPC runs a real DNS server (miekg/dns) for its private zone, the
// LAN's router one for public names, and the laptop has its own
// resolv.conf naming the LAN's server (/etc/netns/<ns>/resolv.conf, which
// `ip netns exec` mounts over /etc/resolv.conf for every program there).
func newDNSEnv(t *testing.T) *dnsEnv {
	t.Helper()
	e := newEnv(t,
		stack.WithNetworkConfig("eng", "    dns: {servers: ["+lab.VPCAIP4+"], domains: [corp.internal]}"),
		stack.WithNetworkConfig("ops", "    dns: {servers: ["+lab.VPCBIP4+"]}"),
		stack.WithGatewayConfig("api:\n  register_per_user: \"off\"\n  register_per_source: \"off\""))
	d := &dnsEnv{env: e}
	serve := func(n *lab.Node, ip string, zone map[string]netip.Addr) *dnstest.Server {
		addr := net.JoinHostPort(ip, "53")
		pc, err := n.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := n.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s := dnstest.Serve(pc, ln, zone)
		t.Cleanup(s.Close)
		return s
	}
	a := netip.MustParseAddr
	d.vpcA = serve(e.VPCA, lab.VPCAIP4, map[string]netip.Addr{"db.corp.internal": a("10.10.0.5"), "www.example.com": a("10.10.0.80")})
	d.vpcB = serve(e.VPCB, lab.VPCBIP4, map[string]netip.Addr{"db.ops.internal": a("10.20.0.5"), "www.example.com": a("10.20.0.80")})
	d.lan = serve(e.Host, lab.HostLANIP4, map[string]netip.Addr{"www.example.com": a("192.0.2.80")})
	var err error
	if d.resolvConf, err = e.Laptop.SetResolvConf([]byte(lanResolvConf)); err != nil {
		t.Fatal(err)
	}
	return d
}

// resolve looks name up in the laptop as any program there would (glibc,
// /etc/resolv.conf): the IPv4 address, or "" when it does not resolve.
func (d *dnsEnv) resolve(t *testing.T, name string) string {
	t.Helper()
	out, err := d.Laptop.Exec(ctxT(t, 15*time.Second), "getent", "ahostsv4", name)
	if err != nil {
		return ""
	}
	return strings.Fields(out)[0]
}

func (d *dnsEnv) resolvConfNow(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(d.resolvConf)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (d *dnsEnv) wantResolvConf(t *testing.T, when string) {
	t.Helper()
	if got := d.resolvConfNow(t); got != lanResolvConf {
		t.Fatalf("%s: the laptop's resolv.conf is not byte-identical:\n%q\nwant\n%q", when, got, lanResolvConf)
	}
}

func dnsStatus(t *testing.T, c *stack.Client) (*control.DNSStatus, string) {
	t.Helper()
	out, err := c.Run(ctxT(t, 10*time.Second), "status", "--json")
	if err != nil {
		t.Fatalf("vpn status --json: %v\n%s", err, out)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	return st.DNS, out
}

// Alice (eng, split tunnel): private names resolve through the tunnel from
// vpc-a's server (which sees her tunnel address), public names through
// the LAN's server (vpc-a never sees them, the LAN never sees the private
// zone); after `vpn down` nothing of the zone resolves and resolv.conf is
// byte-identical; someone else's change to resolv.conf is never
// overwritten.
func TestSplitDNSThroughTheTunnel(t *testing.T) {
	t.Parallel()
	d := newDNSEnv(t)
	alice := d.Client("dns")
	tok, err := d.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.resolve(t, "db.corp.internal"); got != "" {
		t.Fatalf("before vpn up, db.corp.internal resolved to %s", got)
	}
	if got := d.resolve(t, "www.example.com"); got != "192.0.2.80" {
		t.Fatalf("before vpn up, www.example.com = %q, want the LAN's 192.0.2.80", got)
	}
	up(t, alice, tok)
	v4, _ := tunnelAddrs(t, alice)
	conf := d.resolvConfNow(t)
	if !strings.Contains(conf, "nameserver 127.0.74.11\n") || strings.Contains(conf, "nameserver "+lab.HostLANIP4) || !strings.Contains(conf, "search lan.example") {
		t.Fatalf("resolv.conf while up:\n%s", conf)
	}
	lanBefore, _ := d.lan.Saw("db.corp.internal")
	if got := d.resolve(t, "db.corp.internal"); got != "10.10.0.5" {
		t.Fatalf("while up, db.corp.internal = %q, want 10.10.0.5 from vpc-a", got)
	}
	n, from := d.vpcA.Saw("db.corp.internal")
	if n == 0 || !slicesAll(from, v4) {
		t.Errorf("vpc-a's server saw db.corp.internal %d times from %v, want only from alice's tunnel address %s", n, from, v4)
	}
	if got := d.resolve(t, "www.example.com"); got != "192.0.2.80" {
		t.Errorf("while up, www.example.com = %q, want the LAN's 192.0.2.80", got)
	}
	if n, _ := d.vpcA.Saw("www.example.com"); n != 0 {
		t.Errorf("vpc-a's server saw %d queries for a public name (split DNS sent it into the tunnel)", n)
	}
	if n, _ := d.lan.Saw("db.corp.internal"); n != lanBefore {
		t.Errorf("the LAN's server saw db.corp.internal while up (%d -> %d): the private zone leaked", lanBefore, n)
	}
	ds, raw := dnsStatus(t, alice)
	if ds == nil || ds.Mode != "stub" || ds.Domains[0] != "corp.internal" || ds.Servers[0] != lab.VPCAIP4 || ds.ViaTunnel == 0 || ds.ViaUpstream == 0 {
		t.Errorf("status dns = %+v\n%s", ds, raw)
	}
	if out, _ := alice.Run(ctxT(t, 10*time.Second), "status"); !strings.Contains(out, "dns         names under corp.internal via "+lab.VPCAIP4) {
		t.Errorf("vpn status has no dns line:\n%s", out)
	}
	down(t, alice)
	d.wantResolvConf(t, "after vpn down")
	if got := d.resolve(t, "db.corp.internal"); got != "" {
		t.Errorf("after vpn down, db.corp.internal still resolves to %s", got)
	}
	if got := d.resolve(t, "www.example.com"); got != "192.0.2.80" {
		t.Errorf("after vpn down, www.example.com = %q", got)
	}

	// Someone else rewrites resolv.conf while the tunnel is up: down
	// leaves their file and says so.
	up(t, alice, tok)
	theirs := "nameserver " + lab.HostLANIP4 + "\n# NetworkManager was here\n"
	if err := os.WriteFile(d.resolvConf, []byte(theirs), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := alice.Down(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatalf("vpn down: %v\n%s", err, out)
	}
	if got := d.resolvConfNow(t); got != theirs {
		t.Errorf("vpn down overwrote a resolv.conf someone else wrote:\n%q", got)
	}
	if !strings.Contains(out, "not overwritten") || !strings.Contains(out, "resolv.conf.before-vpn") {
		t.Errorf("vpn down did not tell the user:\n%s", out)
	}
	t.Logf("vpn down after someone else's change:\n%s", out)
}

func slicesAll(from []netip.Addr, want netip.Addr) bool {
	for _, a := range from {
		if a != want {
			return false
		}
	}
	return true
}

// kill -9 of the agent while split DNS is on: resolv.conf still points at
// the dead stub until recovery, then it is byte-identical, whichever way
// recovery comes: `vpn down` without an agent, the next agent's start
// (`vpn up`), `vpn routes restore`.
func TestSplitDNSRestoredAfterKill9(t *testing.T) {
	t.Parallel()
	d := newDNSEnv(t)
	alice := d.Client("dnskill")
	tok, err := d.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	kill := func() {
		t.Helper()
		killAgent(ctxT(t, 10*time.Second), d.env, alice.StateDir)
		time.Sleep(200 * time.Millisecond)
		if !strings.Contains(d.resolvConfNow(t), "127.0.74.11") {
			t.Fatal("after kill -9 resolv.conf no longer points at the stub: the test proves nothing")
		}
		if got := d.resolve(t, "db.corp.internal"); got != "" {
			t.Errorf("with the agent dead, db.corp.internal resolved to %s", got)
		}
	}
	// 1. kill -9, then vpn down (no agent: recovery from the journals).
	up(t, alice, tok)
	kill()
	out, err := alice.Down(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatalf("vpn down after kill -9: %v\n%s", err, out)
	}
	t.Logf("vpn down after kill -9:\n%s", out)
	d.wantResolvConf(t, "kill -9, vpn down")
	// 2. kill -9, then the next vpn up: the new agent restores first, and
	// journals the true original again.
	up(t, alice, tok)
	kill()
	up(t, alice, tok)
	if got := d.resolve(t, "db.corp.internal"); got != "10.10.0.5" {
		t.Errorf("after recovery and up, db.corp.internal = %q", got)
	}
	down(t, alice)
	d.wantResolvConf(t, "kill -9, vpn up, vpn down")
	// 3. kill -9, then vpn routes restore.
	up(t, alice, tok)
	kill()
	if out, err := alice.Run(ctxT(t, 30*time.Second), "routes", "restore"); err != nil {
		t.Fatalf("vpn routes restore: %v\n%s", err, out)
	} else if !strings.Contains(out, "restored as it was") {
		t.Errorf("vpn routes restore did not say resolv.conf was restored:\n%s", out)
	}
	d.wantResolvConf(t, "kill -9, vpn routes restore")
	if got := d.resolve(t, "db.corp.internal"); got != "" {
		t.Errorf("after restore, db.corp.internal resolves to %s", got)
	}
	// 4. kill -9, then vpn doctor: the dead stub is found, with evidence,
	// and bare --fix puts resolv.conf back.
	up(t, alice, tok)
	kill()
	out, err = alice.Run(ctxT(t, 30*time.Second), "doctor")
	if err == nil || !strings.Contains(out, "dns-stub-orphaned") || !strings.Contains(out, "no answer from 127.0.74.11:53") || !strings.Contains(out, "dns.journal: written by pid") {
		t.Errorf("vpn doctor after kill -9 (err %v) does not report the dead stub with evidence:\n%s", err, out)
	}
	if out, err := alice.Run(ctxT(t, 30*time.Second), "doctor", "--fix"); !strings.Contains(out, "fixed (dns-stub-orphaned)") {
		t.Errorf("vpn doctor --fix (err %v):\n%s", err, out)
	}
	d.wantResolvConf(t, "kill -9, vpn doctor --fix")
	if out, err := alice.Run(ctxT(t, 30*time.Second), "doctor"); strings.Contains(out, "dns-") {
		t.Errorf("vpn doctor after the fix still reports DNS (err %v):\n%s", err, out)
	}
}

// The stub's address is a privileged port: a local user cannot squat it
// to read everyone's queries (as nobody: refused). When a root service
// already holds it, vpn up fails saying so and leaves resolv.conf and the
// routing table as they were.
func TestSplitDNSStubAddressTaken(t *testing.T) {
	t.Parallel()
	d := newDNSEnv(t)
	alice := d.Client("dnsbusy")
	tok, err := d.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	out, err := d.Laptop.Exec(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		"timeout", "2", "socat", "-u", "UDP4-RECVFROM:53,bind=127.0.74.11", "-")
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("as nobody, binding 127.0.74.11:53 was not refused (err %v):\n%s", err, out)
	}
	t.Logf("attack: nobody binds the stub's address: refused: %s", strings.TrimSpace(out))
	before, err := d.Laptop.RoutingState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := d.Laptop.ListenPacket("udp", "127.0.74.11:53")
	if err != nil {
		t.Fatal(err)
	}
	squat := dnstest.Serve(pc, nil, nil)
	defer squat.Close()
	out, _, err = alice.Up(ctx, tok)
	if err == nil || !strings.Contains(out, "127.0.74.11:53") || !strings.Contains(out, "address already in use") {
		t.Fatalf("vpn up with the stub's address taken: err %v, want a failure naming the address:\n%s", err, out)
	}
	t.Logf("vpn up with the stub address taken:\n%s", out)
	d.wantResolvConf(t, "failed vpn up")
	after, err := d.Laptop.RoutingState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("a failed vpn up changed the routing table:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// Carol (ops: servers, no routing domains) with --all-traffic: every name
// goes to vpc-b's server through the tunnel (seen there from her tunnel
// address), none to the LAN's; without --all-traffic the pushed server is
// not used and status says why.
func TestFullTunnelSendsAllDNSThroughTheTunnel(t *testing.T) {
	t.Parallel()
	d := newDNSEnv(t)
	carol := d.Client("dnsall")
	tok, err := d.TokenFile(ctxT(t, 10*time.Second), "carol")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, time.Minute)
	out, err := carol.Run(ctx, "up", "--server", d.URL, "--ca-file", d.CAFile, "--token-file", tok, "--interface", carol.Iface, "--all-traffic")
	if err != nil {
		t.Fatalf("vpn up --all-traffic: %v\n%s", err, out)
	}
	addrs, err := carol.TunnelAddrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var v4 netip.Addr
	for _, a := range addrs {
		if a.Is4() {
			v4 = a
		}
	}
	lanBefore := len(d.lan.Queries())
	for name, want := range map[string]string{"www.example.com": "10.20.0.80", "db.ops.internal": "10.20.0.5"} {
		if got := d.resolve(t, name); got != want {
			t.Errorf("full tunnel: %s = %q, want vpc-b's %s", name, got, want)
		}
		n, from := d.vpcB.Saw(name)
		if n == 0 || !slicesAll(from, v4) {
			t.Errorf("vpc-b's server saw %s %d times from %v, want only from %s", name, n, from, v4)
		}
	}
	if n := len(d.lan.Queries()) - lanBefore; n != 0 {
		t.Errorf("the LAN's server saw %d queries during the full tunnel: %v", n, d.lan.Queries()[lanBefore:])
	}
	ds, raw := dnsStatus(t, carol)
	if ds == nil || ds.Mode != "stub" || !ds.All {
		t.Errorf("status dns = %+v\n%s", ds, raw)
	}
	down(t, carol)
	d.wantResolvConf(t, "full tunnel, vpn down")

	// Split tunnel: the pushed server answers all names, so it is not used.
	up(t, carol, tok)
	if ds, raw := dnsStatus(t, carol); ds == nil || ds.Mode != "off" || !strings.Contains(ds.Note, "--all-traffic") {
		t.Errorf("split tunnel, no routing domains: status dns = %+v\n%s", ds, raw)
	}
	d.wantResolvConf(t, "split tunnel without routing domains")
	if got := d.resolve(t, "www.example.com"); got != "192.0.2.80" {
		t.Errorf("split tunnel: www.example.com = %q, want the LAN's", got)
	}
	down(t, carol)
}
