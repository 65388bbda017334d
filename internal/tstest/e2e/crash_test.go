package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// foreignState installs in the laptop what other programs own: another
// VPN's table and rule, a static IPv6 route and an endpoint host route.
// They must survive up, down and crash recovery untouched.
func foreignState(t *testing.T, e *env) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	for _, argv := range [][]string{
		{"ip", "route", "add", "10.200.0.0/16", "via", "10.1.2.1", "table", "52"},
		{"ip", "rule", "add", "priority", "5270", "lookup", "52"},
		{"ip", "-6", "route", "add", "2001:db8:5::/48", "via", "fd01:2::1"},
		{"ip", "route", "add", "203.0.113.9/32", "via", "10.1.2.1"},
	} {
		if out, err := e.Laptop.Exec(ctx, argv...); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
}

// TestCrashDuringUpLeavesNothing kills the agent (kill -9) at random points
// while `vpn up` runs, 50 times, and after each crash checks that the next
// `vpn down` leaves the routing table exactly as the snapshot taken before
// (`vpn routes diff` prints no difference), foreign routes included.
func TestCrashDuringUpLeavesNothing(t *testing.T) {
	t.Parallel()
	// 50 killed `vpn up`s register alice up to 50 times in a minute: more
	// than the gateway's default limit of 10 per user (TestTrustedProxiesAndRegistrationLimits tests the limit).
	e := newEnv(t, stack.WithGatewayConfig("api:\n  register_per_user: \"off\"\n  register_per_source: \"off\""))
	foreignState(t, e)
	alice := e.Client("crash")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(alice.StateDir, "..", "crash-before.json")
	if out, err := alice.Run(ctxT(t, 10*time.Second), "routes", "snapshot", "-o", snap); err != nil {
		t.Fatalf("snapshot: %v\n%s", err, out)
	}
	// A clean up measures how long `vpn up` takes, to spread kill points over it.
	_, full, err := alice.Up(ctxT(t, time.Minute), tok)
	if err != nil {
		t.Fatal(err)
	}
	down(t, alice)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("crash points drawn with seed %d over %v", seed, full)
	runs, leftBehind := 50, 0
	for i := range runs {
		delay := time.Duration(rng.Int64N(int64(full + 20*time.Millisecond)))
		ctx := ctxT(t, time.Minute)
		cmd := e.Laptop.Command(ctx, e.Bin.VPN, "--state-dir", alice.StateDir, "up", "--server", stack.ServerURL,
			"--token-file", tok, "--interface", alice.Iface)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		killAgent(ctx, e, alice.StateDir)
		cmd.Wait()
		if out, _ := e.Laptop.Exec(ctx, "ip", "rule"); strings.Contains(out, "proto 197") {
			leftBehind++ // the crash left our state behind: recovery has work to do
		}
		if out, err := alice.Down(ctx); err != nil {
			t.Fatalf("run %d (kill after %v): vpn down: %v\n%s", i, delay, err, out)
		}
		if out, err := alice.Run(ctx, "routes", "diff", snap); err != nil {
			t.Fatalf("run %d (kill after %v): the table differs after recovery:\n%s", i, delay, out)
		}
	}
	t.Logf("%d crash runs; %d left routes behind that `vpn down` restored", runs, leftBehind)
	if leftBehind == 0 {
		t.Fatal("no crash point fell inside the session: the test proved nothing")
	}
	// Crash during normal operation, then the next `vpn up` starts clean and
	// `vpn down` restores the snapshot.
	up(t, alice, tok)
	killAgent(ctxT(t, 5*time.Second), e, alice.StateDir)
	up(t, alice, tok)
	if got := e.reach(t, vpcA4); got == "" {
		t.Fatal("no traffic after recovering from a crash")
	}
	down(t, alice)
	if out, err := alice.Run(ctxT(t, 10*time.Second), "routes", "diff", snap); err != nil || !strings.Contains(out, "no difference") {
		t.Fatalf("after a full up/down cycle `vpn routes diff` must print no difference:\n%s", out)
	}
}

func killAgent(ctx context.Context, e *env, stateDir string) {
	if b, err := os.ReadFile(filepath.Join(stateDir, "agent.pid")); err == nil {
		exec.CommandContext(ctx, "kill", "-9", strings.TrimSpace(string(b))).Run()
	}
	// An agent still starting has no pid file yet.
	exec.CommandContext(ctx, "pkill", "-9", "-f", "agent --state-dir "+stateDir).Run()
}
