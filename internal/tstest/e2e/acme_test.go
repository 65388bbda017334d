package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testacme"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// The real vpn-gateway with tls.acme gets its certificate from Pebble (an
// ACME CA run on gw, its DNS answering gw.clearpath.test with the
// gateway's public address) over TLS-ALPN-01 on its API port, and serves
// it to a client on the laptop that trusts only Pebble's root.
func TestGatewayACME(t *testing.T) {
	t.Parallel()
	lab.SkipUnlessRoot(t)
	ref := lab.ReferenceT(t, lab.Options{})
	const domain = "gw.clearpath.test"
	pebbleBin, err := testacme.Binary()
	must(t, err)
	ca, caFile, err := lab.CA()
	must(t, err)

	dnsLn, err := ref.GW.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer dnsLn.Close()
	go testacme.ServeDNS(dnsLn, netip.MustParseAddr(lab.GWPublicIP4))

	leaf, err := ca.Issue("127.0.0.1")
	must(t, err)
	pCert, pKey, err := leaf.Write(ref.Dir, "pebble")
	must(t, err)
	pcfg := filepath.Join(ref.Dir, "pebble.json")
	must(t, testacme.Config{Listen: "127.0.0.1:14000", Management: "127.0.0.1:15000", CertFile: pCert, KeyFile: pKey,
		HTTPPort: 5002, TLSPort: 8080}.Write(pcfg))
	if _, err := ref.GW.StartEnv("pebble", testacme.Env, append([]string{pebbleBin}, testacme.Args(pcfg, dnsLn.Addr().String())...)...); err != nil {
		t.Fatal(err)
	}
	gwHTTP := ref.GW.HTTPClient(5 * time.Second) // trusts the lab CA, which made Pebble's listener certificate
	if _, ok := waitUntil(20*time.Second, func() bool {
		resp, err := gwHTTP.Get("https://127.0.0.1:14000/dir")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}); !ok {
		t.Fatal("pebble did not start")
	}

	cacheDir := filepath.Join(ref.Dir, "acme")
	cfg := fmt.Sprintf(`listen: "%s"
endpoint: %s
tls:
  acme:
    domains: [%s]
    email: ops@clearpath.test
    cache_dir: %s
    directory_url: https://127.0.0.1:14000/dir
    accept_tos: true
oidc: {issuer: "http://%s:5556/dex", client_id: clearpath, allow_http: true}
store: %s
state_dir: %s
networks:
  - {name: eng, group: engineering, interface: %seng, listen_port: %d, pool: [%s], allow: [%s]}
`, stack.GatewayListen, lab.GWPublicIP4, domain, cacheDir, lab.IDPIP4, filepath.Join(ref.Dir, "gw.db"), filepath.Join(ref.Dir, "gw-state"),
		ref.Prefix, lab.EngPort, lab.EngPool4, lab.VPCA4)
	cfgPath := filepath.Join(ref.Dir, "gateway.yaml")
	must(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	if out, err := ref.GW.Exec(ctxT(t, 10*time.Second), bins.Gateway, "check", "--config", cfgPath); err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	gw, err := ref.GW.StartEnv("gateway", []string{"SSL_CERT_FILE=" + caFile}, bins.Gateway, "serve", "--config", cfgPath)
	must(t, err)

	// Pebble's root, to verify what the gateway serves.
	resp, err := gwHTTP.Get("https://127.0.0.1:15000/roots/0")
	must(t, err)
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %s", rootPEM)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     ref.Laptop.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: domain},
	}}
	var got *x509.Certificate
	var last error
	start := time.Now()
	if _, ok := waitUntil(60*time.Second, func() bool {
		resp, err := client.Get("https://" + stack.GatewayListen + api.PathDiscovery)
		if err != nil {
			last = err
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "clearpath") {
			last = fmt.Errorf("%s: %s", resp.Status, body)
			return false
		}
		got = resp.TLS.PeerCertificates[0]
		return true
	}); !ok {
		t.Fatalf("no HTTPS with an ACME certificate from the gateway after 60s: %v\n%s", last, gw.Log())
	}
	t.Logf("ACME certificate for %v from %q served after %v", got.DNSNames, got.Issuer.CommonName, time.Since(start).Round(time.Millisecond))
	if len(got.DNSNames) != 1 || got.DNSNames[0] != domain || !strings.Contains(got.Issuer.CommonName, "Pebble") {
		t.Errorf("served certificate %v from %q", got.DNSNames, got.Issuer.CommonName)
	}
	if entries, _ := os.ReadDir(cacheDir); len(entries) < 2 {
		t.Errorf("cache_dir %s holds %d entries, want the account key and the certificate", cacheDir, len(entries))
	}
}
