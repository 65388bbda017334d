package e2e

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testca"
)

// vpnNoSystemCA runs `vpn --state-dir <c's> args...` in laptop with
// SSL_CERT_FILE unset, so the lab's CA is trusted only through --ca-file:
// as on a user's machine whose system store does not hold the company CA.
// The agent the CLI starts inherits that environment.
func vpnNoSystemCA(ctx context.Context, e *env, c *stack.Client, args ...string) (string, error) {
	argv := append([]string{"env", "-u", "SSL_CERT_FILE", "CLEARPATH_CONFIG_DIR=" + c.ConfigDir, e.Bin.VPN, "--state-dir", c.StateDir}, args...)
	return e.Laptop.Exec(ctx, argv...)
}

// servedSerial is the serial of the certificate the gateway's API shows a
// new TLS connection from the laptop, verified against the lab's CA.
func servedSerial(t *testing.T, e *env) string {
	t.Helper()
	ctx := ctxT(t, 5*time.Second)
	raw, err := e.Laptop.DialContext(ctx, "tcp", stack.GatewayListen)
	if err != nil {
		t.Fatalf("dial the gateway's API: %v", err)
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: e.CA.Pool(), ServerName: lab.GWPublicIP4})
	defer conn.Close()
	if err := conn.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS handshake with the gateway: %v", err)
	}
	return testca.SerialHex(conn.ConnectionState().PeerCertificates[0])
}

// The gateway serves its API over TLS. A client that does not trust its CA
// refuses it with what to do and sets nothing up; with --ca-file it
// connects, and the CA file is remembered for the server (the agent, which
// does not trust the CA either, got the PEM bytes). A certificate renewed
// on disk is served after SIGHUP to new connections while a ping loop
// through an existing tunnel loses nothing; a broken certificate file
// fails the reload and the served certificate stays.
func TestGatewayTLSAndCAFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	alice := e.Client("alice")
	upArgs := []string{"up", "--server", stack.ServerURL, "--token-file", tok, "--interface", alice.Iface}

	// 1. Unknown CA: refused, nothing set up.
	out, err := vpnNoSystemCA(ctxT(t, time.Minute), e, alice, upArgs...)
	if err == nil {
		t.Fatalf("vpn up trusted a gateway whose CA it does not know:\n%s", out)
	}
	if !strings.Contains(out, "certificate signed by unknown authority") || !strings.Contains(out, "--ca-file") {
		t.Errorf("the refusal must say the CA is unknown and name --ca-file:\n%s", out)
	}
	if _, err := alice.TunnelAddrs(ctxT(t, 5*time.Second)); err == nil {
		t.Errorf("a tunnel interface exists after the refused vpn up")
	}
	t.Logf("unknown CA refused:\n%s", strings.TrimSpace(out))

	// 2. --ca-file: connects (same agent, which never trusted the CA by itself).
	out, err = vpnNoSystemCA(ctxT(t, time.Minute), e, alice, append(upArgs, "--ca-file", e.CAFile)...)
	if err != nil {
		t.Fatalf("vpn up --ca-file: %v\n%s", err, out)
	}
	e.reach(t, vpcA4)
	down(t, alice)

	// 3. Remembered: the next vpn up needs no --ca-file.
	settings, _ := filepath.Glob(filepath.Join(alice.ConfigDir, "servers", "*.json"))
	if len(settings) != 1 {
		t.Fatalf("server settings remembered: %v", settings)
	}
	if b, _ := os.ReadFile(settings[0]); !strings.Contains(string(b), e.CAFile) {
		t.Errorf("the CA file is not remembered: %s", b)
	}
	if fi, err := os.Stat(settings[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("settings file mode: %v %v", fi.Mode(), err)
	}
	if out, err := vpnNoSystemCA(ctxT(t, time.Minute), e, alice, upArgs...); err != nil {
		t.Fatalf("vpn up with the remembered CA file: %v\n%s", err, out)
	}
	// vpn login reaches the gateway (discovery) with the remembered CA too:
	// it gets as far as the provider's device code, then times out unapproved.
	out, _ = vpnNoSystemCA(ctxT(t, time.Minute), e, alice, "login", "--server", stack.ServerURL, "--device", "--login-timeout", "2s")
	if !strings.Contains(out, "enter the code") || strings.Contains(out, "certificate") {
		t.Errorf("vpn login with the remembered CA file did not reach the provider:\n%s", out)
	}
	key := e.clientKey(t, alice)

	// 4. Certificate renewal on SIGHUP, tunnel untouched.
	before := servedSerial(t, e)
	if first := e.TLSCertSerial(t); before != first {
		t.Fatalf("served serial %s, the configured certificate has %s", before, first)
	}
	ping := startPingLoop(t, e.Laptop, lab.VPCAIP4, 50*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	leaf, err := e.RenewCertificate()
	must(t, err)
	want := testca.SerialHex(leaf.Cert)
	must(t, e.Gateway.Signal(syscall.SIGHUP))
	took, ok := waitUntil(10*time.Second, func() bool { return servedSerial(t, e) == want })
	if !ok {
		t.Fatalf("after SIGHUP the gateway still serves serial %s, want the renewed %s\n%s", servedSerial(t, e), want, e.Gateway.Log())
	}
	time.Sleep(time.Second)
	sent, lost := ping.Stop()
	t.Logf("certificate %s -> %s served %v after SIGHUP; ping through the tunnel: %d sent, %d lost", before, want, took.Round(time.Millisecond), sent, lost)
	if lost > 0 || sent < 20 {
		t.Errorf("the tunnel lost %d of %d pings across the certificate reload", lost, sent)
	}
	if !e.onDevice(t, e.EngIface, key) {
		t.Errorf("alice's peer left the gateway's device on reload")
	}
	e.reach(t, vpcA4)
	st, raw, err := alice.Status(ctxT(t, 10*time.Second))
	if err != nil || st.State != "up" {
		t.Errorf("vpn status after the reload: %v\n%s", err, raw)
	}
	if !strings.Contains(e.Gateway.Log(), "TLS certificate reloaded") {
		t.Errorf("the gateway did not log the reload")
	}

	// 5. A broken certificate file: the reload fails, the served one stays.
	must(t, os.WriteFile(e.TLSCert, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o600))
	out, code := e.admin(t, "reload")
	if code == 0 || !strings.Contains(out, "tls") {
		t.Errorf("reload with a broken certificate: exit %d\n%s", code, out)
	}
	if got := servedSerial(t, e); got != want {
		t.Errorf("after a failed reload the gateway serves %s, want still %s", got, want)
	}
	t.Logf("broken certificate refused on reload:\n%s", strings.TrimSpace(out))

	// 6. `vpn-gateway check`: a missing certificate, and an http issuer
	// without oidc.allow_http, are errors naming the field.
	cfg, err := os.ReadFile(e.GatewayConfig)
	must(t, err)
	for _, c := range []struct{ from, to, want string }{
		{e.TLSCert, filepath.Join(e.Dir, "missing.crt"), "tls.cert: open " + filepath.Join(e.Dir, "missing.crt")},
		{"  allow_http: true", "", "oidc.allow_http: true"},
	} {
		p := filepath.Join(e.Dir, "check.yaml")
		must(t, os.WriteFile(p, []byte(strings.Replace(string(cfg), c.from, c.to, 1)), 0o600))
		out, err := e.GW.Exec(ctxT(t, 10*time.Second), e.Bin.Gateway, "check", "--config", p)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("vpn-gateway check with %q -> %q: %v\n%s", c.from, c.to, err, out)
		}
	}
}

// TLSCertSerial is the serial of the certificate file the lab's gateway
// was configured with.
func (e *env) TLSCertSerial(t *testing.T) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(e.TLSCert, e.TLSKey)
	must(t, err)
	return testca.SerialHex(pair.Leaf)
}

// Plain http to a host that is not the laptop is refused before anything
// starts, with why and what to do; --allow-http lets it through with a
// warning, remembered for that server (warned again each time);
// --allow-http=false forgets it.
func TestPlainHTTPNeedsAllowHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stack.WithPlainHTTP())
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	alice := e.Client("alice")
	plain := "http://" + stack.GatewayListen
	upArgs := []string{"up", "--server", plain, "--token-file", tok, "--interface", alice.Iface}

	out, err := alice.Run(ctxT(t, time.Minute), upArgs...)
	if err == nil {
		t.Fatalf("vpn up sent a token over plain http without --allow-http:\n%s", out)
	}
	for _, want := range []string{"refusing " + plain, "unencrypted", "https://", "--allow-http"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(alice.StateDir, "agent.pid")); err == nil {
		t.Errorf("an agent was started for a refused plain-http server")
	}
	if out, err := alice.Run(ctxT(t, time.Minute), "login", "--server", plain, "--device"); err == nil || !strings.Contains(out, "--allow-http") {
		t.Errorf("vpn login over plain http: %v\n%s", err, out)
	}
	t.Logf("refused:\n%s", strings.TrimSpace(out))

	out, err = alice.Run(ctxT(t, time.Minute), append(upArgs, "--allow-http")...)
	if err != nil {
		t.Fatalf("vpn up --allow-http: %v\n%s", err, out)
	}
	if !strings.Contains(out, "warning: "+plain+" is plain http") {
		t.Errorf("no warning with --allow-http:\n%s", out)
	}
	e.reach(t, vpcA4)
	down(t, alice)

	out, err = alice.Run(ctxT(t, time.Minute), upArgs...)
	if err != nil {
		t.Fatalf("vpn up with --allow-http remembered: %v\n%s", err, out)
	}
	if !strings.Contains(out, "warning: "+plain+" is plain http") {
		t.Errorf("no warning when the remembered --allow-http is used:\n%s", out)
	}
	down(t, alice)

	out, err = alice.Run(ctxT(t, time.Minute), append(upArgs, "--allow-http=false")...)
	if err == nil || !strings.Contains(out, "--allow-http") {
		t.Errorf("--allow-http=false must refuse again: %v\n%s", err, out)
	}
	if out, err := alice.Run(ctxT(t, time.Minute), upArgs...); err == nil {
		t.Errorf("--allow-http=false was not remembered:\n%s", out)
	}
}
