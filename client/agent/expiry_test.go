package agent

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/key"
	"github.com/clearpath-vpn/clearpath/routes"
)

func (r *rig) state() string { return r.a.Status().State }

// Before the registration expires the agent renews it with a token from
// the session's source (a token file automation keeps fresh): the same
// device and routes carry on, the gateway sees the new token, the status
// counts the renewal and shows the new expiry.
func TestRenewalKeepsTheTunnel(t *testing.T) {
	r := newRig(t)
	tok := filepath.Join(r.dir, "token")
	os.WriteFile(tok, []byte("tok-2\n"), 0o600)
	req := r.request()
	req.TokenFile = tok
	st, err := r.up(req)
	if err != nil {
		t.Fatal(err)
	}
	firstExpiry := *st.ExpiresAt
	routesBefore := r.snapshot()
	r.advanceUntil(time.Minute, func() bool { return r.a.Status().Renewals == 1 })
	st = r.a.Status()
	if st.State != control.StateUp || st.RenewError != "" || st.TokenSource != "file "+tok {
		t.Fatalf("after the renewal: state %s, renew error %q, source %q", st.State, st.RenewError, st.TokenSource)
	}
	if !st.ExpiresAt.After(firstExpiry) {
		t.Errorf("expiry %v not moved past %v", st.ExpiresAt, firstExpiry)
	}
	g := r.gw
	g.mu.Lock()
	tokens := slices.Clone(g.tokens)
	g.mu.Unlock()
	if !slices.Equal(tokens, []string{"tok-1", "tok-2"}) {
		t.Errorf("gateway saw tokens %v, want the up's then the file's", tokens)
	}
	r.mu.Lock()
	made := r.devices
	r.mu.Unlock()
	if made != 1 {
		t.Errorf("%d devices made: the renewal must not rebuild the tunnel", made)
	}
	if d := routes.Compare(routesBefore, r.snapshot()); !d.Empty() {
		t.Errorf("the renewal changed routes: %+v", d)
	}
}

// A registration that cannot be renewed ends at its expiry: the tunnel
// goes down, routing is restored exactly and the status says why and what
// to do. The agent retried until then.
func TestExpiryEndsTheSessionAndRestoresRouting(t *testing.T) {
	r := newRig(t)
	before := r.snapshot()
	st, err := r.up(r.request()) // a bare token: no source to renew from
	if err != nil {
		t.Fatal(err)
	}
	expires := *st.ExpiresAt
	r.advanceUntil(time.Minute, func() bool { return r.a.Status().RenewError != "" })
	if st := r.a.Status(); st.State != control.StateUp || !strings.Contains(st.RenewError, "no token source") {
		t.Fatalf("a failed renewal before the expiry: state %s, renew error %q", st.State, st.RenewError)
	}
	if r.clock.Now().After(expires) {
		t.Fatal("renewal first tried after the expiry")
	}
	r.advanceUntil(time.Minute, func() bool { return r.state() == control.StateDown })
	if r.clock.Now().Before(expires) {
		t.Errorf("session ended at %v, before its expiry %v", r.clock.Now(), expires)
	}
	st = r.a.Status()
	if !strings.Contains(st.Error, "registration expired") || !strings.Contains(st.Error, "routing is restored") || !strings.Contains(st.Error, "vpn up") {
		t.Errorf("status error after the expiry: %q", st.Error)
	}
	r.sameAsBefore(before, "after the expiry")
	if n := r.running(); n != 0 {
		t.Errorf("%d devices run after the expiry", n)
	}
}

// Fail-closed: an expired full tunnel keeps its routes (blocked), so
// nothing leaks outside it; a `vpn up` that fails keeps the block; one
// that works replaces the dead tunnel without a gap; `vpn down` restores.
func TestFailClosedBlocksUntilUpOrDown(t *testing.T) {
	r := newRig(t)
	before := r.snapshot()
	req := r.request()
	req.AllTraffic, req.FailClosed = true, true
	if _, err := r.up(req); err != nil {
		t.Fatal(err)
	}
	r.advanceUntil(time.Minute, func() bool { return r.state() == control.StateBlocked })
	st := r.a.Status()
	if !strings.Contains(st.Error, "fail-closed") || !strings.Contains(st.Error, "vpn down") {
		t.Errorf("blocked status error: %q", st.Error)
	}
	if rt := r.lookup(internet); rt.Device == "eth0" {
		t.Fatalf("blocked, yet %s leaks via %v", internet, rt)
	}

	// A `vpn up` the gateway refuses: still blocked, still no leak.
	r.gw.set(func(g *fakeGateway) { g.status = 403 })
	if _, err := r.up(req); err == nil {
		t.Fatal("up from blocked against a refusing gateway succeeded")
	}
	if st := r.a.Status(); st.State != control.StateBlocked || !strings.Contains(st.Error, "still blocked") {
		t.Errorf("after a failed up from blocked: state %s, error %q", st.State, st.Error)
	}
	if rt := r.lookup(internet); rt.Device == "eth0" {
		t.Fatalf("a failed up from blocked let %s leak via %v", internet, rt)
	}

	// A `vpn up` whose new tunnel carries nothing: the old device is gone
	// by then, the new one is dropped, the holds keep the block.
	r.gw.set(func(g *fakeGateway) { g.status, g.mute = 0, true })
	quick := req
	quick.Timeout = 700 * time.Millisecond
	if _, err := r.up(quick); err == nil || !strings.Contains(err.Error(), "no reply from") {
		t.Fatalf("up from blocked through a dead tunnel: %v", err)
	}
	if st := r.a.Status(); st.State != control.StateBlocked {
		t.Errorf("after a dead new tunnel: state %s, want blocked", st.State)
	}
	if rt := r.lookup(internet); rt.Device == "eth0" {
		t.Fatalf("a failed switch from the block let %s leak via %v", internet, rt)
	}
	if n := r.running(); n != 0 {
		t.Errorf("%d devices run after the failed switch, want none", n)
	}

	// A working `vpn up`: a new device takes over and the holds go.
	r.gw.set(func(g *fakeGateway) { g.status, g.mute = 0, false })
	st, err := r.up(req)
	if err != nil || st.State != control.StateUp {
		t.Fatalf("up from blocked: %+v %v", st, err)
	}
	if rt := r.lookup(internet); rt.Device != st.Interface {
		t.Errorf("after up from blocked %s goes %v, want %s", internet, rt, st.Interface)
	}
	rs, _ := r.owned()
	for _, rt := range rs {
		if rt.Type == routes.TypeUnreachable && rt.Metric == routes.HoldMetric {
			t.Errorf("hold left after the new tunnel came up: %v", rt)
		}
	}
	if n := r.running(); n != 1 {
		t.Errorf("%d devices run, want the new one only", n)
	}
	if _, err := r.a.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.sameAsBefore(before, "after down")
}

// Fail-closed is for full tunnels: an expired split tunnel goes down and
// restores routing even with the flag.
func TestFailClosedSplitTunnelGoesDown(t *testing.T) {
	r := newRig(t)
	before := r.snapshot()
	req := r.request()
	req.FailClosed = true
	if _, err := r.up(req); err != nil {
		t.Fatal(err)
	}
	r.advanceUntil(time.Minute, func() bool { return r.state() != control.StateUp })
	if s := r.state(); s != control.StateDown {
		t.Fatalf("expired split tunnel with fail-closed: state %s, want down", s)
	}
	r.sameAsBefore(before, "after the expiry")
}

// jwtFrom is an (unsigned) ID token naming issuer, as the agent peeks at it.
func jwtFrom(issuer string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"iss":"`+issuer+`","sub":"alice-id"}`)) + ".c2ln"
}

// The renewal loop trades the session's refresh token only at the
// provider that issued the session's token: when the gateway names
// another one at renewal time, the refresh token is not sent there, the
// status says why, and the tunnel stays up until the expiry.
func TestRenewalPinsTheRefreshTokensIssuer(t *testing.T) {
	good, goodHits := fakeProvider(t)
	evil, evilHits := fakeProvider(t)
	r := newRig(t)
	r.gw.set(func(g *fakeGateway) { g.issuer = evil.URL })
	req := r.request()
	req.Token, req.RefreshToken = jwtFrom(good.URL), "refresh-1"
	st, err := r.up(req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.TokenSource, "refresh token") {
		t.Fatalf("token source %q", st.TokenSource)
	}
	r.advanceUntil(time.Minute, func() bool { return r.a.Status().RenewError != "" })
	st = r.a.Status()
	if !strings.Contains(st.RenewError, "refusing to send the refresh token") || !strings.Contains(st.RenewError, evil.URL) {
		t.Errorf("renew error: %q", st.RenewError)
	}
	if n := evilHits.Load(); n != 0 {
		t.Fatalf("the provider the gateway switched to got %d refresh requests", n)
	}
	if st.State != control.StateUp {
		t.Errorf("state %s before the expiry, want up", st.State)
	}

	// The gateway names the session's provider again: the refresh is
	// tried there (this fake provider refuses it, naming `vpn login`).
	r.gw.set(func(g *fakeGateway) { g.issuer = good.URL })
	r.advanceUntil(time.Second, func() bool { return goodHits.Load() > 0 })
	r.advanceUntil(time.Second, func() bool { return strings.Contains(r.a.Status().RenewError, "vpn login") })
	if n := evilHits.Load(); n != 0 {
		t.Fatalf("the other provider got %d refresh requests", n)
	}
}

// `vpn up` while connected renews in place with the new token; with
// --rotate-key the device gets a new key, stored once the gateway has it,
// and traffic crosses the same device with it. A gateway that moves the
// device to other addresses is refused, naming the fix, and the tunnel
// stays as it was.
func TestUpWhileUpRenewsInPlace(t *testing.T) {
	r := newRig(t)
	st, err := r.up(r.request())
	if err != nil {
		t.Fatal(err)
	}
	oldKey := st.PublicKey
	req := r.request()
	req.Token, req.RotateKey = "tok-2", true
	st, err = r.up(req)
	if err != nil || st.State != control.StateUp || st.Renewals != 1 {
		t.Fatalf("up while up with a new token: %+v %v", st, err)
	}
	if st.PublicKey == oldKey {
		t.Fatal("--rotate-key kept the old key")
	}
	if regs := r.gw.registrations(); len(regs) != 2 || regs[1] != st.PublicKey {
		t.Errorf("gateway registrations %v, want the new key %s last", regs, st.PublicKey)
	}
	stored, err := key.LoadOrCreate(r.a.dir)
	if err != nil || stored.PublicKey().String() != st.PublicKey {
		t.Errorf("stored device key %v (%v), want the rotated one", stored.PublicKey(), err)
	}
	// The old key is gone from the gateway's device in real life; here the
	// new one must carry traffic on its own: a fresh handshake with it.
	r.gw.dev.IpcSet("public_key=" + hexKey(t, oldKey) + "\nremove=true\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.probe(ctx, clientAddr, gwAddr); err != nil {
		t.Fatalf("no traffic with the rotated key: %v", err)
	}
	if n := r.running(); n != 1 {
		t.Errorf("%d devices: renewal must keep the device", n)
	}

	routesBefore := r.snapshot()
	r.gw.set(func(g *fakeGateway) { g.addrs = []string{"100.64.0.9/32"} })
	req.RotateKey = false
	if _, err := r.up(req); err == nil || !strings.Contains(err.Error(), "vpn down; vpn up") {
		t.Fatalf("renewal moving the device: %v", err)
	}
	st = r.a.Status()
	if st.State != control.StateUp || !strings.Contains(st.RenewError, "moved this device") {
		t.Errorf("after a refused renewal: state %s, renew error %q", st.State, st.RenewError)
	}
	if d := routes.Compare(routesBefore, r.snapshot()); !d.Empty() {
		t.Errorf("a refused renewal changed routes: %+v", d)
	}
}

func hexKey(t *testing.T, b64 string) string {
	k, err := wgtypes.ParseKey(b64)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(k[:])
}
