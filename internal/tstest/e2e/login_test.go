package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// TestUpRefreshesAnExpiredSession: the user logged in yesterday; the cached
// ID token has expired but the refresh token is good. `vpn up` (no token
// file, no browser, no display) refreshes silently and connects.
func TestUpRefreshesAnExpiredSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok, err := e.Dex.Login(ctxT(t, 10*time.Second), dex.ClientID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(e.Dir, "bob-config")
	cache := &auth.Cache{Dir: cfgDir}
	if err := cache.Save(&auth.Tokens{Server: stack.ServerURL, Issuer: dex.Issuer, ClientID: dex.ClientID,
		IDToken: tok.IDToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour), Subject: "bob"}); err != nil {
		t.Fatal(err)
	}
	bob := e.Client("bob")
	cmd := e.Laptop.Command(ctxT(t, time.Minute), e.Bin.VPN, "--state-dir", bob.StateDir, "up", "--interface", bob.Iface, "--login-timeout", "3s")
	cmd.Env = append(cmd.Environ(), "CLEARPATH_CONFIG_DIR="+cfgDir, "DISPLAY=", "WAYLAND_DISPLAY=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vpn up with an expired session: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "Log in at") || strings.Contains(string(out), "enter the code") {
		t.Fatalf("a login was started instead of a silent refresh:\n%s", out)
	}
	refreshed, err := cache.Load(stack.ServerURL)
	if err != nil || refreshed.IDToken == tok.IDToken || !refreshed.Valid(time.Now(), time.Minute) {
		t.Fatalf("the cache does not hold fresh tokens: %+v %v", refreshed, err)
	}
	v4, _ := tunnelAddrs(t, bob)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("vpc-a saw %s, want %s", got, v4)
	}
	down(t, bob)
}

// TestSeveralNetworksMustChoose: erin is in engineering and ops. Without
// --network, `vpn up` fails and lists her networks; with --network ops she
// reaches vpc-b (and not vpc-a).
func TestSeveralNetworksMustChoose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	erin := e.Client("erin")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "erin")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := erin.Up(ctxT(t, 30*time.Second), tok)
	if err == nil || !strings.Contains(out, "eng, ops") || !strings.Contains(out, "--network") {
		t.Fatalf("vpn up without --network must fail listing the networks: %v\n%s", err, out)
	}
	if out, err := erin.Run(ctxT(t, 30*time.Second), "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", erin.Iface, "--network", "ops"); err != nil {
		t.Fatalf("vpn up --network ops: %v\n%s", err, out)
	}
	if got := e.reach(t, vpcB4); got == "" {
		t.Fatal("ops member cannot reach vpc-b")
	}
	e.unreachable(t, vpcA4, "erin joined ops, not eng")
	down(t, erin)
}
