package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// session is a long-lived TCP session from host to the laptop (as an SSH
// session would be): host sends a line every 100 ms, the laptop echoes it.
type session struct {
	out  string
	stop func()
}

func startSession(t *testing.T, e *env, dst string) *session {
	t.Helper()
	out := filepath.Join(t.TempDir(), "session.out")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := e.Host.Command(ctx, "bash", "-c", "while sleep 0.1; do echo keepalive; done | socat -T 30 - TCP:"+dst+" > "+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &session{out: out, stop: func() { cancel(); cmd.Wait() }}
	t.Cleanup(s.stop)
	s.waitGrowing(t, "before vpn up")
	return s
}

func (s *session) lines() int {
	b, _ := os.ReadFile(s.out)
	return strings.Count(string(b), "\n")
}

// waitGrowing checks that echoes keep arriving.
func (s *session) waitGrowing(t *testing.T, when string) {
	t.Helper()
	n := s.lines()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if s.lines() >= n+3 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: the session from host to the laptop stopped (%d echoes, none new)", when, n)
}

// TestOverlapKeepsLANAndInboundSessions is the seed scenario of issue 5:
// host and laptop share 10.1.2.0/24 and fd01:2::/64, host holds sessions to
// the laptop, and the gateway pushes 10.0.0.0/8 and fd00::/8, which cover
// the LAN. The sessions survive `vpn up`, new ones work, the laptop reaches
// vpc-a through the tunnel; then the same with a full tunnel; and when a new
// network appears on the laptop its exception follows within a second.
func TestOverlapKeepsLANAndInboundSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg, err := os.ReadFile(e.GatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	wide := strings.Replace(string(cfg), `allow: [`+lab.VPCA4+`, "`+lab.VPCA6+`"]`, `allow: [10.0.0.0/8, "fd00::/8"]`, 1)
	if wide == string(cfg) {
		t.Fatal("could not widen the engineering network in the gateway config")
	}
	os.WriteFile(e.GatewayConfig, []byte(wide), 0o600)
	e.StopGateway()
	if err := e.StartGateway(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	echo := e.Laptop.Command(context.Background(), "socat", "TCP6-LISTEN:2222,ipv6only=0,fork,reuseaddr", "EXEC:cat")
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Process.Kill(); echo.Wait() })
	time.Sleep(200 * time.Millisecond)
	s4 := startSession(t, e, lab.LaptopIP4+":2222")
	s6 := startSession(t, e, "["+lab.LaptopIP6+"]:2222")

	alice := e.Client("ovl")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok)
	if layout, err := e.Laptop.Exec(ctxT(t, 5*time.Second), "sh", "-c",
		"ip rule; ip -6 rule; ip route show table 7411; ip -6 route show table 7411"); err == nil {
		t.Logf("the layout vpn up made:\n%s", layout)
	}
	s4.waitGrowing(t, "IPv4 after vpn up")
	s6.waitGrowing(t, "IPv6 after vpn up")
	newSession(t, e, lab.LaptopIP4+":2222")
	newSession(t, e, "["+lab.LaptopIP6+"]:2222")
	v4, v6 := tunnelAddrs(t, alice)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("vpc-a saw %s, want the tunnel address %s", got, v4)
	}
	if got := e.reach(t, vpcA6); got != v6.String() {
		t.Errorf("vpc-a (IPv6) saw %s, want the tunnel address %s", got, v6)
	}
	out, err := alice.Run(ctxT(t, 5*time.Second), "status")
	if err != nil || !strings.Contains(out, "10.0.0.0/8") || !strings.Contains(out, "lan wins") {
		t.Errorf("vpn status must show the overlap plan:\n%s", out)
	}

	// The LAN changes: a docker-like bridge appears inside the pushed /8.
	ctx := ctxT(t, 10*time.Second)
	for _, argv := range [][]string{
		{"ip", "link", "add", "br-dock", "type", "veth", "peer", "name", "br-dock2"},
		{"ip", "addr", "add", "10.77.0.1/24", "dev", "br-dock"},
		{"ip", "link", "set", "br-dock", "up"}, {"ip", "link", "set", "br-dock2", "up"},
	} {
		if out, err := e.Laptop.Exec(ctx, argv...); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	start := time.Now()
	for {
		out, _ := e.Laptop.Exec(ctx, "ip", "route", "get", "10.77.0.5")
		if strings.Contains(out, "dev br-dock") {
			t.Logf("the new network's exception was in place after %v", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("after 1s 10.77.0.5 still routes: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	down(t, alice)
	s4.waitGrowing(t, "after vpn down")

	// Full tunnel: the LAN and the sessions still live.
	if out, err := alice.Run(ctx, "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface, "--all-traffic"); err != nil {
		t.Fatalf("vpn up --all-traffic: %v\n%s", err, out)
	}
	s4.waitGrowing(t, "IPv4 with a full tunnel")
	s6.waitGrowing(t, "IPv6 with a full tunnel")
	newSession(t, e, lab.LaptopIP4+":2222")
	if r, _ := e.Laptop.Exec(ctx, "ip", "route", "get", "192.0.2.200"); !strings.Contains(r, alice.Iface) {
		t.Errorf("full tunnel: internet traffic does not go through the tunnel: %s", r)
	}
	if r, _ := e.Laptop.Exec(ctx, "ip", "route", "get", "198.51.100.1", "mark", "0x7411"); strings.Contains(r, alice.Iface) {
		t.Errorf("the gateway endpoint must stay outside the tunnel: %s", r)
	}
	down(t, alice)
}

func newSession(t *testing.T, e *env, dst string) {
	t.Helper()
	out, err := e.Host.Exec(ctxT(t, 5*time.Second), "bash", "-c", "echo hello | socat -T 2 - TCP:"+dst)
	if err != nil || !strings.Contains(out, "hello") {
		t.Errorf("a new session from host to %s failed: %v %q", dst, err, out)
	}
}

// reconfigure rewrites the engineering network of the gateway config with
// edit and restarts the gateway.
func reconfigure(t *testing.T, e *env, edit func(string) string) {
	t.Helper()
	cfg, err := os.ReadFile(e.GatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	changed := edit(string(cfg))
	if changed == string(cfg) {
		t.Fatal("gateway config unchanged")
	}
	os.WriteFile(e.GatewayConfig, []byte(changed), 0o600)
	e.StopGateway()
	if err := e.StartGateway(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// TestReverseOverlap: the machine routes all of 10.0.0.0/8 locally (a
// static route via the LAN router) and the tunnel pushes 10.10.0.0/16: the
// pushed /16 wins for 10.10.x, the local /8 keeps the rest of 10.x.
func TestReverseOverlap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t, 30*time.Second)
	if out, err := e.Laptop.Exec(ctx, "ip", "route", "add", "10.0.0.0/8", "via", lab.HostLANIP4); err != nil {
		t.Fatal(out)
	}
	alice := e.Client("rev")
	tok, err := e.TokenFile(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "before.json")
	if out, err := alice.Run(ctx, "routes", "snapshot", "-o", snap); err != nil {
		t.Fatal(out)
	}
	up(t, alice, tok)
	v4, _ := tunnelAddrs(t, alice)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("10.10.x must go through the tunnel: vpc-a saw %q, want %s", got, v4)
	}
	if r, _ := e.Laptop.Exec(ctx, "ip", "route", "get", "10.30.0.1"); !strings.Contains(r, "via "+lab.HostLANIP4) {
		t.Errorf("other 10.x must stay on the LAN: %s", r)
	}
	down(t, alice)
	if out, err := alice.Run(ctx, "routes", "diff", snap); err != nil || !strings.Contains(out, "no difference") {
		t.Fatalf("after vpn down `vpn routes diff` must show nothing:\n%s", out)
	}
}

// TestFullTunnel: an inbound session from the internet (host's public
// address) survives `vpn up --all-traffic`; traffic to the internet goes
// through the tunnel (the far end sees the tunnel address); and a tunnel
// without IPv6 refuses IPv6 at once instead of leaking it.
func TestFullTunnel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reconfigure(t, e, func(s string) string {
		s = strings.Replace(s, `allow: [`+lab.VPCA4+`, "`+lab.VPCA6+`"]`, `allow: [0.0.0.0/0]`, 1)
		return strings.Replace(s, `pool: [`+lab.EngPool4+`, "`+lab.EngPool6+`"]`, `pool: [`+lab.EngPool4+`]`, 1)
	})
	ctx := ctxT(t, time.Minute)
	// The internet knows the way back to the VPN's clients (as it would
	// to a gateway's public range).
	if out, err := e.Host.Exec(ctx, "ip", "route", "add", lab.EngPool4, "via", lab.GWPublicIP4); err != nil {
		t.Fatal(out)
	}
	web, err := lab.StartWhoAmI(e.Host, lab.HostPublicIP4+":8080")
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	echo := e.Laptop.Command(context.Background(), "socat", "TCP-LISTEN:2222,fork,reuseaddr", "EXEC:cat")
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Process.Kill(); echo.Wait() })
	time.Sleep(200 * time.Millisecond)
	inbound := startSession(t, e, lab.LaptopIP4+":2222,bind="+lab.HostPublicIP4)

	alice := e.Client("full")
	tok, err := e.TokenFile(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := alice.Run(ctx, "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface, "--all-traffic"); err != nil {
		t.Fatalf("vpn up --all-traffic: %v\n%s", err, out)
	}
	inbound.waitGrowing(t, "inbound session from the internet with a full tunnel")
	addrs, err := alice.TunnelAddrs(ctx)
	if err != nil || len(addrs) != 1 || !addrs[0].Is4() {
		t.Fatalf("an IPv4-only network must give one IPv4 address: %v %v", addrs, err)
	}
	v4 := addrs[0]
	if got := e.reach(t, lab.HostPublicIP4+":8080"); got != v4.String() {
		t.Errorf("the internet saw the laptop as %q, want its tunnel address %s (traffic must go through the tunnel)", got, v4)
	}
	start := time.Now()
	_, err = e.Laptop.AskWhoAmI(ctxT(t, 5*time.Second), "["+lab.HostPublicIP6+"]:8080")
	took := time.Since(start)
	refused := errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
	if !refused || took > time.Second {
		t.Errorf("IPv6 without IPv6 in the tunnel must be refused at once: %v after %v", err, took)
	}
	newSession(t, e, lab.LaptopIP4+":2222")
	down(t, alice)
	inbound.waitGrowing(t, "after vpn down")
}

// TestFullTunnelIPv6: with IPv6 in the tunnel, `--all-traffic` carries both
// families: an inbound IPv6 session from the internet to the laptop survives
// and the internet sees the laptop's IPv6 tunnel address.
func TestFullTunnelIPv6(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	reconfigure(t, e, func(s string) string {
		return strings.Replace(s, `allow: [`+lab.VPCA4+`, "`+lab.VPCA6+`"]`, `allow: [0.0.0.0/0, "::/0"]`, 1)
	})
	ctx := ctxT(t, time.Minute)
	for _, pool := range []string{lab.EngPool4, lab.EngPool6} {
		via := lab.GWPublicIP4
		if strings.Contains(pool, ":") {
			via = lab.GWPublicIP6
		}
		if out, err := e.Host.Exec(ctx, "ip", "route", "add", pool, "via", via); err != nil {
			t.Fatal(out)
		}
	}
	web, err := lab.StartWhoAmI(e.Host, "[::]:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	echo := e.Laptop.Command(context.Background(), "socat", "TCP6-LISTEN:2222,ipv6only=0,fork,reuseaddr", "EXEC:cat")
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Process.Kill(); echo.Wait() })
	time.Sleep(200 * time.Millisecond)
	inbound := startSession(t, e, "["+lab.LaptopIP6+"]:2222,bind=["+lab.HostPublicIP6+"]")

	alice := e.Client("full6")
	tok, err := e.TokenFile(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := alice.Run(ctx, "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface, "--all-traffic"); err != nil {
		t.Fatalf("vpn up --all-traffic: %v\n%s", err, out)
	}
	inbound.waitGrowing(t, "inbound IPv6 session from the internet with a full tunnel")
	v4, v6 := tunnelAddrs(t, alice)
	if got := e.reach(t, "["+lab.HostPublicIP6+"]:8080"); got != v6.String() {
		t.Errorf("the internet saw the laptop as %q over IPv6, want its tunnel address %s", got, v6)
	}
	if got := e.reach(t, lab.HostPublicIP4+":8080"); got != v4.String() {
		t.Errorf("the internet saw the laptop as %q over IPv4, want its tunnel address %s", got, v4)
	}
	down(t, alice)
	inbound.waitGrowing(t, "after vpn down")
}
