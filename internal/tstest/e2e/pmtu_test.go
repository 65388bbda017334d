package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// dfPing sends don't-fragment pings of size bytes (IP header included)
// from the laptop to dst and reports whether one came back.
func dfPing(t *testing.T, e *env, dst string, size int) bool {
	t.Helper()
	_, err := e.Laptop.Exec(ctxT(t, 10*time.Second), "ping", "-n", "-c", "2", "-W", "1", "-M", "do", "-s", strconv.Itoa(size-28), dst)
	return err == nil
}

// TestPathMTUAuto: the lab's public hop is narrowed to 1280 bytes and its
// router drops the ICMP errors that would report it (a PMTU black hole).
// With the gateway's MTU the tunnel passes small packets and loses large
// ones; doctor measures the path through the tunnel (1216 bytes: 1280
// minus IPv4, UDP and WireGuard's 60 is 1220, and WireGuard pads what it
// encrypts to a multiple of 16) and says so. `vpn up --mtu auto`
// measures the same, lowers the tunnel MTU to it (IPv4 only: IPv6 needs
// 1280), and full-size packets cross.
func TestPathMTUAuto(t *testing.T) {
	t.Parallel()
	lab.SkipUnlessRoot(t)
	e := startEnv(t, lab.ReferenceT(t, lab.Options{NarrowHop: 1280, PMTUBlackHole: true}))
	c := e.Client("mtu")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, c, tok)
	link, _ := e.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "link", "show", c.Iface)
	if !strings.Contains(link, "mtu 1420") {
		t.Fatalf("want the gateway's MTU 1420 first: %s", link)
	}
	if !dfPing(t, e, lab.VPCAIP4, 600) || dfPing(t, e, lab.VPCAIP4, 1400) {
		t.Fatal("with MTU 1420 over the narrow hop: want 600-byte packets to cross and 1400-byte ones to vanish")
	}
	rep, code, out := doctor(t, c)
	f := finding(rep, "path-mtu")
	if code != 1 || f == nil || !strings.Contains(f.Title, "1216-byte packets") {
		t.Fatalf("want exit 1 and a path-mtu finding with 1216, got exit %d %v\n%s", code, findingIDs(rep), out)
	}
	if len(rep.PathMTU) != 2 || rep.PathMTU[0].Largest != 1216 || rep.PathMTU[1].Largest != 1216 {
		t.Errorf("want IPv4 and IPv6 measured at 1216: %+v", rep.PathMTU)
	}
	t.Logf("doctor: %s\n%v", f.Title, f.Commands)
	down(t, c)

	start := time.Now()
	upOut, err := c.Run(ctxT(t, time.Minute), "up", "--server", e.URL, "--ca-file", e.CAFile, "--token-file", tok, "--interface", c.Iface, "--mtu", "auto")
	if err != nil {
		t.Fatalf("vpn up --mtu auto: %v\n%s", err, upOut)
	}
	t.Logf("vpn up --mtu auto took %v:\n%s", time.Since(start).Round(time.Millisecond), upOut)
	if !strings.Contains(upOut, "path MTU through the tunnel is 1216 bytes") || !strings.Contains(upOut, "IPv4 only") {
		t.Errorf("the notice must give the measured MTU and say IPv6 is off:\n%s", upOut)
	}
	link, _ = e.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "link", "show", c.Iface)
	if !strings.Contains(link, "mtu 1216") {
		t.Fatalf("want the tunnel MTU lowered to 1216: %s", link)
	}
	if !dfPing(t, e, lab.VPCAIP4, 1216) {
		t.Fatal("full-size (1216-byte) packets do not cross after --mtu auto")
	}
	e.reach(t, vpcA4)
	rep, _, out = doctor(t, c)
	if finding(rep, "path-mtu") != nil || !rep.Summary.Healthy {
		t.Errorf("after --mtu auto doctor still reports problems:\n%s", out)
	}
	// Taking IPv6 off the link (the kernel does below 1280) must not leave
	// the agent failing to re-plan routes it no longer wants.
	if b, err := os.ReadFile(filepath.Join(c.StateDir, "agent.log")); err != nil {
		t.Error(err)
	} else if i := strings.Index(string(b), "path MTU"); i >= 0 && strings.Contains(string(b[i:]), "level=ERROR") {
		t.Errorf("the agent logged errors after lowering the MTU:\n%s", b[i:])
	}
	down(t, c)
}
