package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// clientPeer registers a peer for network n0 in the lab gateway's store
// (as the API would) and runs its WireGuard device in the client
// namespace (this test binary re-executed as TestWGClientHelper), with a
// route to the vpc through the tunnel.
func (l *gwLab) clientPeer() {
	t := l.t
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(l.dir, "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gwKey, err := st.NetworkKey(ctx, "n0", func() (string, error) {
		k, err := wgtypes.GeneratePrivateKey()
		return k.String(), err
	})
	if err != nil {
		t.Fatal(err)
	}
	gwPriv, _ := wgtypes.ParseKey(gwKey)
	priv, _ := wgtypes.GeneratePrivateKey()
	a, err := st.AllocateDevice(ctx, store.AllocRequest{Subject: "alice", Network: "n0", Device: "laptop",
		Pool4: netip.MustParsePrefix("100.64.0.0/24"), Pool6: netip.MustParsePrefix("fd00:64:0::/64")})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := st.PutPeer(ctx, store.Peer{ID: "p1", Subject: "alice", Network: "n0", Device: "laptop", PublicKey: priv.PublicKey().String(),
		CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), Addr: a}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.cl, os.Args[0], "-test.run=^TestWGClientHelper$")
	cmd.Env = append(os.Environ(), "CPCL_IFACE=c"+l.iface, "CPCL_PRIV="+priv.String(), "CPCL_PEER="+gwPriv.PublicKey().String(), "CPCL_ADDR="+a.V4.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	})
	buf := make([]byte, 4096)
	n, _ := io.ReadAtLeast(out, buf, 5)
	if !strings.Contains(string(buf[:n]), "ready") {
		t.Fatalf("client helper: %s", buf[:n])
	}
	go io.Copy(io.Discard, out)
}

// waitTraffic pings the vpc host through the client's tunnel until it
// answers (WireGuard re-handshakes with a restarted gateway within about
// 5-15 s) and returns how long that took.
func (l *gwLab) waitTraffic(limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < limit {
		if l.ping("10.10.0.5") {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}

// TestWGClientHelper is the client of gwLab: a wireguard-go device with
// one peer (the gateway), its address and a route to the vpc.
func TestWGClientHelper(t *testing.T) {
	iface := os.Getenv("CPCL_IFACE")
	if iface == "" {
		t.Skip("helper process only")
	}
	fail := func(err error) { fmt.Println("client helper:", err); os.Exit(2) }
	dev, err := wgdev.Create(iface, 1420, slog.New(slog.DiscardHandler))
	if err != nil {
		fail(err)
	}
	defer dev.Close()
	wg, err := wgctrl.New()
	if err != nil {
		fail(err)
	}
	priv, _ := wgtypes.ParseKey(os.Getenv("CPCL_PRIV"))
	peer, _ := wgtypes.ParseKey(os.Getenv("CPCL_PEER"))
	keep := time.Second
	_, vpc, _ := net.ParseCIDR("10.10.0.0/16")
	if err := wg.ConfigureDevice(iface, wgtypes.Config{PrivateKey: &priv, Peers: []wgtypes.PeerConfig{{PublicKey: peer,
		Endpoint: &net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 51820}, PersistentKeepaliveInterval: &keep, AllowedIPs: []net.IPNet{*vpc}}}}); err != nil {
		fail(err)
	}
	if err := dev.Up(); err != nil {
		fail(err)
	}
	if err := setLinkUp(iface); err != nil {
		fail(err)
	}
	// Address and route through the routes System (server/ and its tests
	// hold no netlink route calls).
	sys, err := routes.NewSystem()
	if err != nil {
		fail(err)
	}
	for _, c := range []routes.Change{
		{Op: routes.OpAddAddr, Addr: &routes.Address{Device: iface, Prefix: netip.MustParsePrefix(os.Getenv("CPCL_ADDR") + "/32")}},
		{Op: routes.OpAddRoute, Route: &routes.Route{Table: 254, Type: routes.TypeUnicast, Dst: netip.MustParsePrefix("10.10.0.0/16"), Device: iface}},
	} {
		if err := sys.Apply(c); err != nil {
			fail(err)
		}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("ready")
	<-term // close the device: no UAPI socket left in /var/run/wireguard
}

// TestGatewayCrashAtPoints kills the gateway (-9) at about 30 points spread
// over a start, a reload (allow list grows, the table moves, a network is
// added) and a stop: after an intent record, a change, an undo, or a step.
// After each kill a restart and a clean stop must leave the rules, tables,
// addresses, forwarding switches and nftables tables exactly as before the
// first start, a foreign rule and route untouched; at some points the
// client's tunnel must carry traffic again after the restart.
func TestGatewayCrashAtPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("about 2 minutes: 30 kill -9 runs of the gateway (not with -short)")
	}
	l := newGWLab(t)
	l.exec("ip", "rule", "add", "priority", "5270", "lookup", "52")
	l.exec("ip", "route", "add", "10.200.0.0/16", "via", "10.10.0.5", "table", "52")
	l.clientPeer()
	before := l.state()
	original, _ := os.ReadFile(l.cfgPath)
	reloaded := l.config(l.dir, "127.0.0.1:18080",
		labNet{iface: l.iface, port: 51820, table: 1010, allow: "10.10.0.0/16, 10.11.0.0/16"},
		labNet{iface: l.iface + "b", port: 51821, table: 1001, allow: "10.20.0.0/16"})

	// run goes through start, reload and stop, killed at point k (0: none).
	run := func(k int) (killed bool, log string) {
		t.Helper()
		l.writeConfig(string(original))
		if !l.start(k, l.cfgPath) {
			return l.wait()
		}
		l.writeConfig(reloaded)
		l.signal(syscall.SIGHUP)
		for i := 0; i < 1500 && l.proc.ProcessState == nil; i++ {
			b, _ := os.ReadFile(l.trace)
			if strings.Contains(string(b), " start:reload: network policy\n") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		l.signal(syscall.SIGTERM)
		return l.wait()
	}

	// A clean run counts the points and proves the tunnel works.
	t0 := time.Now()
	if !l.start(0, l.cfgPath) {
		_, log := l.wait()
		t.Fatalf("gateway did not start:\n%s", log)
	}
	if took, ok := l.waitTraffic(30 * time.Second); !ok {
		t.Fatalf("no traffic through the tunnel after %v:\n%s", took, l.exec("ip", "rule"))
	} else {
		t.Logf("first handshake and ping after %v", took.Round(time.Millisecond))
	}
	l.stop()
	if killed, log := run(0); killed || !strings.Contains(strings.Join(l.traceLines(), "\n"), "start:reload: network policy") {
		t.Fatalf("clean run failed:\n%s\ntrace:\n%s", log, strings.Join(l.traceLines(), "\n"))
	}
	points := l.traceLines()
	points = points[:len(points)-1] // "exit"
	l.same("after a clean start, reload and stop", before, l.state())
	n := len(points)
	const want = 30
	var ks []int
	for i := 0; i < want; i++ {
		k := 1 + i*(n-1)/(want-1)
		if len(ks) == 0 || ks[len(ks)-1] != k {
			ks = append(ks, k)
		}
	}
	t.Logf("%d hook points in a start, reload and stop; killing at %d of them", n, len(ks))
	passed, leftBehind := 0, 0
	for i, k := range ks {
		ok := t.Run(fmt.Sprintf("kill-%03d", k), func(t *testing.T) {
			lt := *l
			lt.t = t
			killed, log := run(k)
			if !killed {
				t.Fatalf("point %d (%s) was not reached:\n%s", k, points[k-1], log)
			}
			if strings.Contains(lt.exec("ip", "rule"), "proto 198") || strings.HasPrefix(lt.state().sysctls, "1") {
				leftBehind++
			}
			lt.writeConfig(string(original))
			if !lt.start(0, lt.cfgPath) {
				_, log := lt.wait()
				t.Fatalf("restart after kill at %d (%s) failed:\n%s", k, points[k-1], log)
			}
			if rules := lt.exec("ip", "rule"); strings.Count(rules, "iif "+lt.iface+" lookup 1000 proto 198") != 1 || strings.Contains(rules, "lookup 1010") || strings.Contains(rules, lt.iface+"b") {
				t.Errorf("after the restart the rules are not the configuration's:\n%s", rules)
			}
			if i%10 == 5 {
				took, ok := lt.waitTraffic(40 * time.Second)
				if !ok {
					t.Errorf("no traffic through the tunnel %v after the restart", took)
				} else {
					t.Logf("traffic again %v after the restart", took.Round(time.Millisecond))
				}
			}
			lt.stop()
			lt.same(fmt.Sprintf("kill at %d (%s), restart, stop", k, points[k-1]), before, lt.state())
		})
		if ok {
			passed++
		}
	}
	t.Logf("CRASH: %d kill points (of %d hook points in start+reload+stop), %d passed, %d left state for recovery, %v in all", len(ks), n, passed, leftBehind, time.Since(t0).Round(time.Second))
	for _, k := range ks {
		t.Logf("point %d: %s", k, points[k-1])
	}
}
