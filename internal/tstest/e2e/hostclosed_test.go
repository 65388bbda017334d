package e2e

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// The gateway's own addresses a tunnel user might aim at: its tunnel
// addresses (both networks), its public and its VPC-side addresses.
var gatewayHostAddrs = []string{
	"100.64.0.1", "fd00:64::1", // eng's tunnel addresses (alice's network)
	"100.65.0.1", "fd00:65::1", // ops's tunnel addresses
	lab.GWPublicIP4, lab.GWPublicIP6,
	lab.GWVPCAIP4, lab.GWVPCAIP6, // inside eng's allow list
	lab.GWVPCBIP4, lab.GWIDPIP4,
}

// forceHostIntoTunnel routes addrs into c's tunnel as an attacker on the
// laptop would: the WireGuard peer accepts them and a policy rule sends
// everything but the tunnel's own (fwmarked) UDP packets to them through
// the tunnel, so even the gateway's public address, which is also the
// WireGuard endpoint, is reached from inside the tunnel.
func forceHostIntoTunnel(t *testing.T, e *env, c *stack.Client, addrs ...string) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	out, err := e.Laptop.Exec(ctx, "wg", "show", c.Iface, "allowed-ips")
	f := strings.Fields(out)
	if err != nil || len(f) < 2 {
		t.Fatalf("wg show %s allowed-ips: %v %q", c.Iface, err, out)
	}
	allowed := f[1:]
	for _, a := range addrs {
		bits := "/32"
		if strings.Contains(a, ":") {
			bits = "/128"
		}
		allowed = append(allowed, a+bits)
		if err := e.Laptop.IP("route", "replace", a+bits, "dev", c.Iface, "table", "4711"); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := e.Laptop.Exec(ctx, "wg", "set", c.Iface, "peer", f[0], "allowed-ips", strings.Join(allowed, ",")); err != nil {
		t.Fatalf("wg set: %v\n%s", err, out)
	}
	for _, fam := range []string{"-4", "-6"} {
		if err := e.Laptop.IP(fam, "rule", "add", "not", "fwmark", "0x7411", "lookup", "4711", "pref", "4150"); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range addrs {
		out, err := e.Laptop.Exec(ctx, "ip", "route", "get", a)
		if err != nil || !strings.Contains(out, "dev "+c.Iface) {
			t.Fatalf("route to %s does not use the tunnel: %v\n%s", a, err, out)
		}
	}
}

func hostPort(addr string, port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }

// nftTables lists the nftables tables in the gateway's namespace.
func nftTables(t *testing.T, e *env) string {
	t.Helper()
	out, err := e.GW.Exec(ctxT(t, 5*time.Second), "nft", "list", "tables")
	if err != nil {
		t.Fatalf("nft list tables in gw: %v\n%s", err, out)
	}
	return out
}

// A tunnel user cannot reach the gateway host: a service bound to every
// address of the gateway (dual-stack [::]) is unreachable through the
// tunnel at the gateway's tunnel, public and VPC-side addresses, IPv4 and
// IPv6, even when the client forces those addresses into its tunnel; ping
// answers at the network's own tunnel address only (vpn up's probe); the
// same service still answers from outside the tunnel; vpc-a is still
// reachable. A port named in local_ports opens by reload and closes again.
// The gateway's nftables table goes with a clean stop; after kill -9 and
// a restart there is exactly one.
func TestGatewayHostClosedToTunnels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc, err := lab.StartWhoAmI(e.GW, "[::]:9000")
	if err != nil {
		t.Fatal(err)
	}
	_, err = lab.StartWhoAmI(e.GW, "[::]:9053") // stands for a DNS forwarder (local_ports)
	if err != nil {
		t.Fatal(err)
	}
	tables := nftTables(t, e)
	t.Logf("nft tables in gw with the gateway running:\n%s", tables)
	if strings.Count(tables, "table inet clearpath_gw") != 1 {
		t.Errorf("want one table inet clearpath_gw in gw:\n%s", tables)
	}

	alice := e.Client("host")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok) // its probe pings the gateway's tunnel address (IPv4 and IPv6)
	v4, v6 := tunnelAddrs(t, alice)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("vpc-a saw %s, want %s", got, v4)
	}
	if got := e.reach(t, vpcA6); got != v6.String() {
		t.Errorf("vpc-a saw %s, want %s", got, v6)
	}

	forceHostIntoTunnel(t, e, alice, gatewayHostAddrs...)
	for _, a := range gatewayHostAddrs {
		e.unreachable(t, hostPort(a, 9000), "the gateway host through the tunnel")
	}
	if seen := svc.Seen(); len(seen) > 0 {
		t.Errorf("the gateway host's service got requests from %v, want none", seen)
	}
	// Ping: the probe's target answers, nothing else on the host does.
	for _, a := range []string{"100.64.0.1", "fd00:64::1"} {
		if _, err := e.Laptop.Ping(ctxT(t, 5*time.Second), a); err != nil {
			t.Errorf("ping %s (eng's tunnel address) through the tunnel: %v", a, err)
		}
	}
	for _, a := range []string{lab.GWPublicIP4, lab.GWPublicIP6, lab.GWVPCAIP4, "100.65.0.1"} {
		if rtt, err := e.Laptop.Ping(ctxT(t, time.Second), a); err == nil {
			t.Errorf("ping %s through the tunnel answered in %v, want no answer", a, rtt)
		}
	}
	// The registration API is the exception (a full-tunnel client renews
	// through its tunnel): it answers at the address it listens on.
	if resp, err := e.Laptop.HTTPClient(5 * time.Second).Get(stack.ServerURL + api.PathDiscovery); err != nil {
		t.Errorf("the registration API through the tunnel: %v", err)
	} else if resp.Body.Close(); resp.StatusCode != 200 {
		t.Errorf("the registration API through the tunnel: %s", resp.Status)
	}
	// The forced routes did not break the path: vpc-a still answers.
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("after forcing the routes vpc-a saw %s", got)
	}
	// Outside the tunnel the service is what it was.
	for _, hp := range []string{hostPort(lab.GWPublicIP4, 9000), hostPort(lab.GWPublicIP6, 9000)} {
		if got, err := e.Host.AskWhoAmI(ctxT(t, 5*time.Second), hp); err != nil {
			t.Errorf("from host (outside the tunnel) %s: %v", hp, err)
		} else if got != lab.HostPublicIP4 && got != lab.HostPublicIP6 {
			t.Errorf("from host %s saw %s", hp, got)
		}
	}
	listing, _ := e.GW.Exec(ctxT(t, 5*time.Second), "nft", "list", "table", "inet", "clearpath_gw")
	t.Logf("the gateway's table after the attempts:\n%s", listing)
	if !strings.Contains(listing, `iifname "`+e.EngIface+`" counter packets`) || strings.Contains(listing, `iifname "`+e.EngIface+`" counter packets 0 `) {
		t.Errorf("eng's drop rule counted no packets:\n%s", listing)
	}

	// explain tells what the packets do: the gateway's own address inside
	// eng's allow list is refused by the host guard.
	out, code := e.admin(t, "explain", "alice", hostPort(lab.GWVPCAIP4, 9000))
	t.Logf("explain alice %s:\n%s", hostPort(lab.GWVPCAIP4, 9000), out)
	if code != 1 || !strings.HasPrefix(out, "NO") || !strings.Contains(out, "closed to the tunnel") {
		t.Errorf("explain alice %s (exit %d), want NO by the host guard:\n%s", hostPort(lab.GWVPCAIP4, 9000), code, out)
	}

	// doctor sees the table and its drops; deleted behind the gateway's
	// back it is an error, and a reload puts it back.
	out, code = e.admin(t, "doctor", "--json")
	if !strings.Contains(out, `"id": "host-guard"`) || !strings.Contains(out, "eng: the gateway host is closed to the tunnel: ") {
		t.Errorf("doctor (exit %d) does not report the host guard:\n%s", code, out)
	}
	if out, err := e.GW.Exec(ctxT(t, 5*time.Second), "nft", "delete", "table", "inet", "clearpath_gw"); err != nil {
		t.Fatalf("nft delete table: %v\n%s", err, out)
	}
	if out, code = e.admin(t, "doctor", "--json"); code == 0 || !strings.Contains(out, `"id": "host-guard-missing"`) {
		t.Errorf("doctor with the table deleted (exit %d), want host-guard-missing:\n%s", code, out)
	}
	e.adminOK(t, "reload")
	if tables := nftTables(t, e); strings.Count(tables, "clearpath_gw") != 1 {
		t.Errorf("reload did not put the table back:\n%s", tables)
	}
	e.unreachable(t, hostPort(lab.GWPublicIP4, 9000), "after the table came back")

	// local_ports: tcp/9053 opens by reload, at every gateway address; 9000 stays shut.
	dnsTargets := []string{hostPort("100.64.0.1", 9053), hostPort("fd00:64::1", 9053), hostPort(lab.GWPublicIP4, 9053)}
	for _, hp := range dnsTargets {
		e.unreachable(t, hp, "before local_ports names it")
	}
	setEngLocalPorts(t, e, "[udp/9053, tcp/9053]")
	for _, hp := range dnsTargets {
		if got, err := e.Laptop.AskWhoAmI(ctxT(t, 5*time.Second), hp); err != nil || (got != v4.String() && got != v6.String()) {
			t.Errorf("local_ports tcp/9053: %s through the tunnel: %q, %v", hp, got, err)
		}
	}
	e.unreachable(t, hostPort("100.64.0.1", 9000), "a port local_ports does not name")
	if out, code := e.admin(t, "explain", "alice", hostPort(lab.GWVPCAIP4, 9053)); code != 0 || !strings.HasPrefix(out, "YES") || !strings.Contains(out, "the host lets it in") || !strings.Contains(out, "dport 9053 accept") {
		t.Errorf("explain alice %s with local_ports tcp/9053 (exit %d), want YES:\n%s", hostPort(lab.GWVPCAIP4, 9053), code, out)
	}
	setEngLocalPorts(t, e, "[]")
	e.unreachable(t, hostPort("100.64.0.1", 9053), "local_ports emptied by reload")

	// A clean stop removes the table; kill -9 leaves it, the restart
	// replaces it: exactly one, and vpn up works again.
	if err := e.StopGateway(); err != nil {
		t.Fatal(err)
	}
	if tables := nftTables(t, e); strings.Contains(tables, "clearpath_gw") {
		t.Errorf("table left after the gateway stopped:\n%s", tables)
	}
	if err := e.StartGateway(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	p := e.Gateway
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	e.Gateway = nil
	t.Logf("after kill -9: %s", strings.TrimSpace(nftTables(t, e)))
	if err := e.StartGateway(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if tables := nftTables(t, e); strings.Count(tables, "clearpath_gw") != 1 {
		t.Errorf("after kill -9 and a restart, want exactly one table clearpath_gw:\n%s", tables)
	}
	down(t, alice)
	up(t, alice, tok)
	e.unreachable(t, hostPort("100.64.0.1", 9000), "after the restart")
}

// setEngLocalPorts sets eng's local_ports in the gateway's config and
// reloads it through the admin socket.
func setEngLocalPorts(t *testing.T, e *env, list string) {
	t.Helper()
	b, err := os.ReadFile(e.GatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	if i := strings.Index(cfg, "    local_ports: "); i >= 0 {
		j := strings.Index(cfg[i:], "\n")
		cfg = cfg[:i] + cfg[i+j+1:]
	}
	anchor := `allow: [` + lab.VPCA4 + `, "` + lab.VPCA6 + `"]` + "\n"
	if !strings.Contains(cfg, anchor) {
		t.Fatalf("eng's allow line not found in\n%s", cfg)
	}
	cfg = strings.Replace(cfg, anchor, anchor+"    local_ports: "+list+"\n", 1)
	if err := os.WriteFile(e.GatewayConfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := e.adminOK(t, "reload")
	t.Logf("reload (local_ports: %s): %s", list, strings.TrimSpace(out))
}
