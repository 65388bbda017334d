package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/key"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
)

// status runs `vpn status --json` and decodes all of it.
func fullStatus(t *testing.T, c *stack.Client) control.Status {
	t.Helper()
	out, err := c.Run(ctxT(t, 10*time.Second), "status", "--json")
	if err != nil {
		t.Fatalf("vpn status --json: %v\n%s", err, out)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("vpn status --json: %v\n%s", err, out)
	}
	return st
}

// pingRun runs ping from node to dst, count echoes every interval, and
// returns how many came back.
type pingRun struct {
	done chan struct{}
	out  string
	err  error
	sent int
}

func startPing(node *lab.Node, dst string, count int, interval time.Duration) *pingRun {
	p := &pingRun{done: make(chan struct{}), sent: count}
	go func() {
		defer close(p.done)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count+20)*interval+30*time.Second)
		defer cancel()
		p.out, p.err = node.Exec(ctx, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", strconv.FormatFloat(interval.Seconds(), 'f', 2, 64), "-W", "1", dst)
	}()
	return p
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// wait returns the number of echoes lost.
func (p *pingRun) wait(t *testing.T) int {
	t.Helper()
	<-p.done
	m := pingSummary.FindStringSubmatch(p.out)
	if m == nil {
		t.Fatalf("ping: %v\n%s", p.err, p.out)
	}
	sent, _ := strconv.Atoi(m[1])
	got, _ := strconv.Atoi(m[2])
	if sent != p.sent {
		t.Fatalf("ping sent %d of %d:\n%s", sent, p.sent, p.out)
	}
	return sent - got
}

// The registration lives one minute (key_ttl). The agent renews it at two
// thirds of its life from the token file, in place: a ping every 200 ms
// through the tunnel loses nothing across the renewal and beyond the first
// registration's expiry, the address stays, the gateway's preshared key
// for the device changes. `vpn up` while connected renews as well (no
// loss); `vpn up --rotate-key` gives the device a new key and keeps its
// addresses.
func TestRenewalKeepsTheTunnel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	setKeyTTL(t, e, "1m")
	alice := e.Client("renew")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, alice, tok)
	registered := time.Now()
	v4, v6 := tunnelAddrs(t, alice)
	st0 := fullStatus(t, alice)
	if st0.RenewAt == nil || st0.ExpiresAt == nil || !strings.HasPrefix(st0.TokenSource, "file ") {
		t.Fatalf("status does not say when and how it renews: %+v", st0)
	}
	t.Logf("registered until %s, renewal due %s (%s)", st0.ExpiresAt.Format(time.TimeOnly), st0.RenewAt.Format(time.TimeOnly), st0.TokenSource)
	before := wgDump(t, e.GW, e.EngIface)[st0.PublicKey]
	if before.psk == "" || before.psk == "(none)" {
		t.Fatalf("the gateway holds no session key for %s: %+v", st0.PublicKey, before)
	}

	// 80 s of pings: the renewal at ~40 s and the first registration's
	// expiry at 60 s (plus the gateway's 10 s expiry tick) fall inside.
	ping := startPing(e.Laptop, lab.VPCAIP4, 400, 200*time.Millisecond)
	var st control.Status
	for deadline := time.Now().Add(70 * time.Second); ; {
		st = fullStatus(t, alice)
		if st.Renewals >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal 70 s after registering (key_ttl 1m): %+v", st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("renewed after %v; next due %s, expires %s", st.RenewedAt.Sub(registered).Round(100*time.Millisecond), st.RenewAt.Format(time.TimeOnly), st.ExpiresAt.Format(time.TimeOnly))
	if st.RenewError != "" || st.State != "up" || !st.ExpiresAt.After(*st0.ExpiresAt) || st.PublicKey != st0.PublicKey {
		t.Errorf("after the renewal: %+v", st)
	}
	after := wgDump(t, e.GW, e.EngIface)
	if len(after) != 1 || after[st0.PublicKey].psk == before.psk || after[st0.PublicKey].allowedIPs != before.allowedIPs {
		t.Errorf("gateway peer before %+v, after the renewal %+v: want the same key and addresses with a new session key", before, after)
	}
	// And by hand, while connected.
	time.Sleep(5 * time.Second)
	out, _, err := alice.Up(ctxT(t, 30*time.Second), tok)
	if err != nil {
		t.Fatalf("vpn up while connected: %v\n%s", err, out)
	}
	if st := fullStatus(t, alice); st.Renewals != 2 || st.RenewError != "" {
		t.Errorf("vpn up while connected did not renew: %+v", st)
	}
	lost := ping.wait(t)
	t.Logf("ping through the tunnel across two renewals and the first expiry: %d of 400 lost", lost)
	if lost != 0 {
		t.Errorf("%d of 400 pings lost across the renewals", lost)
	}
	if r4, r6 := tunnelAddrs(t, alice); r4 != v4 || r6 != v6 {
		t.Errorf("addresses moved from %s %s to %s %s", v4, v6, r4, r6)
	}
	if got := e.reach(t, vpcA6); got != v6.String() {
		t.Errorf("vpc-a saw %s after the renewals, want %s", got, v6)
	}

	// A new key (as after vpn login): same addresses, old key gone.
	keyBefore, _ := os.ReadFile(filepath.Join(alice.StateDir, key.FileName))
	ping = startPing(e.Laptop, lab.VPCAIP4, 50, 100*time.Millisecond)
	time.Sleep(time.Second)
	out, err = alice.Run(ctxT(t, 30*time.Second), "up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface, "--rotate-key")
	if err != nil {
		t.Fatalf("vpn up --rotate-key: %v\n%s", err, out)
	}
	lost = ping.wait(t)
	t.Logf("ping across the key rotation: %d of 50 lost", lost)
	rot := fullStatus(t, alice)
	keyAfter, _ := os.ReadFile(filepath.Join(alice.StateDir, key.FileName))
	if rot.PublicKey == st0.PublicKey || string(keyAfter) == string(keyBefore) {
		t.Errorf("the key did not rotate: %s (file changed: %v)", rot.PublicKey, string(keyAfter) != string(keyBefore))
	}
	peers := wgDump(t, e.GW, e.EngIface)
	if _, old := peers[st0.PublicKey]; old || len(peers) != 1 || peers[rot.PublicKey].allowedIPs != before.allowedIPs {
		t.Errorf("gateway peers after the rotation: %+v; want only %s with %s", peers, rot.PublicKey, before.allowedIPs)
	}
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("vpc-a saw %s after the rotation, want %s", got, v4)
	}
	down(t, alice)
}

// setKeyTTL rewrites the lab gateway's key_ttl and restarts it.
func setKeyTTL(t *testing.T, e *env, ttl string) {
	t.Helper()
	cfg, err := os.ReadFile(e.GatewayConfig)
	if err != nil {
		t.Fatal(err)
	}
	short := strings.Replace(string(cfg), "\nnetworks:\n", "\nkey_ttl: "+ttl+"\nnetworks:\n", 1)
	if short == string(cfg) {
		t.Fatal("could not set key_ttl in the gateway config")
	}
	os.WriteFile(e.GatewayConfig, []byte(short), 0o600)
	e.StopGateway()
	if err := e.StartGateway(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// A user connected with `vpn up` from their login cache: the CLI reads the
// cache in the user's process and hands the agent the ID token and the
// refresh token as bytes. When the renewal is due, the agent refreshes the
// login at the provider (Dex) with the refresh token it holds in memory and
// renews; it never opens the user's cache. The attack of issue 14: the
// cache's owner (nobody) swaps the cache's files for symlinks to a
// root-only file; before, the root agent's refresh wrote through them;
// now the file is untouched and the renewal still succeeds.
func TestRenewalRefreshesTheLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	setKeyTTL(t, e, "1m")
	tok, err := e.Dex.Login(ctxT(t, 10*time.Second), dex.ClientID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(e.Dir, "bob-config")
	cache := &auth.Cache{Dir: cfgDir}
	tokens := &auth.Tokens{Server: stack.ServerURL, Issuer: dex.Issuer, ClientID: dex.ClientID,
		IDToken: tok.IDToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(time.Hour), Subject: "bob"}
	if err := cache.Save(tokens); err != nil {
		t.Fatal(err)
	}
	bob := e.Client("bob")
	cmd := e.Laptop.Command(ctxT(t, time.Minute), e.Bin.VPN, "--state-dir", bob.StateDir, "up", "--interface", bob.Iface)
	cmd.Env = append(cmd.Environ(), "CLEARPATH_CONFIG_DIR="+cfgDir, "DISPLAY=", "WAYLAND_DISPLAY=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vpn up from the login cache: %v\n%s", err, out)
	}
	st := fullStatus(t, bob)
	if st.TokenSource != "refresh token (in memory)" {
		t.Fatalf("token source %q, want the refresh token handed over in memory", st.TokenSource)
	}
	// The attacker owns the cache and points its files at a root-only file.
	secret := filepath.Join(e.Dir, "root-only")
	os.WriteFile(secret, []byte("root secret\n"), 0o600)
	for _, p := range []string{filepath.Join(cfgDir, "server"), filepath.Join(cfgDir, "tokens")} {
		os.RemoveAll(p)
		if err := os.Symlink(secret, p); err != nil {
			t.Fatal(err)
		}
	}
	const nobody = 65534
	filepath.WalkDir(cfgDir, func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			os.Lchown(p, nobody, nobody)
		}
		return nil
	})
	for deadline := time.Now().Add(70 * time.Second); st.Renewals < 1; st = fullStatus(t, bob) {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal 70 s after registering: %+v", st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st.RenewError != "" {
		t.Errorf("renewal error: %s", st.RenewError)
	}
	if b, _ := os.ReadFile(secret); string(b) != "root secret\n" {
		t.Errorf("the root-only file behind the user's symlink changed: %q", b)
	}
	if fi, _ := os.Lstat(secret); fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the root-only file changed owner")
	}
	for _, p := range []string{filepath.Join(cfgDir, "server"), filepath.Join(cfgDir, "tokens")} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the agent touched the user's cache: %s", p)
		}
	}
	v4, _ := tunnelAddrs(t, bob)
	if got := e.reach(t, vpcA4); got != v4.String() {
		t.Errorf("vpc-a saw %s after the renewal, want %s", got, v4)
	}
	down(t, bob)
}

// A registration that cannot be renewed (the token file is gone) ends at
// its expiry with a defined end: the tunnel goes down, ClearPath's routes
// and rules are gone, and `vpn status` (the agent stays to tell) says why.
// Before, the agent stayed "up" on a dead tunnel.
func TestExpiryEndsTheSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	setKeyTTL(t, e, "1m")
	c := e.Client("expiry")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	if err != nil {
		t.Fatal(err)
	}
	up(t, c, tok)
	st := fullStatus(t, c)
	os.Remove(tok)
	for deadline := st.ExpiresAt.Add(30 * time.Second); st.State == control.StateUp; st = fullStatus(t, c) {
		if time.Now().After(deadline) {
			t.Fatalf("still up 30 s after the expiry: %+v", st)
		}
		time.Sleep(time.Second)
	}
	if st.State != control.StateDown || !strings.Contains(st.Error, "expired") || !strings.Contains(st.Error, "routing is restored") {
		t.Fatalf("after the expiry: state %q error %q", st.State, st.Error)
	}
	out, _ := e.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "route", "show", "table", "all", "proto", "197")
	rules, _ := e.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "rule", "show")
	if strings.TrimSpace(out) != "" || strings.Contains(rules, "7411") {
		t.Fatalf("ClearPath routes or rules left after the expiry:\n%s\n%s", out, rules)
	}
	human, _ := c.Run(ctxT(t, 5*time.Second), "status")
	if !strings.Contains(human, "expired") {
		t.Errorf("vpn status does not say why:\n%s", human)
	}
	down(t, c)
}
