package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/testacme"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testca"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// The ACME path against Pebble, Let's Encrypt's ACME test server (built
// from tools/pebble), all on loopback: Pebble resolves the gateway's name
// through a tiny DNS server of the test (127.0.0.1), validates the
// challenge against the gateway's listeners for real, and issues a
// certificate that the gateway then serves. Once over TLS-ALPN-01 on the
// API listener, once over HTTP-01 on http_listen (Pebble's TLS-ALPN port
// then leads nowhere, so only HTTP-01 can succeed).

const acmeDomain = "gw.clearpath.test"

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serveDNS resolves every name to 127.0.0.1 for Pebble.
func serveDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go testacme.ServeDNS(ln, netip.MustParseAddr("127.0.0.1"))
	return ln.Addr().String()
}

type pebble struct {
	dirURL string
	mgmt   string
	http   *http.Client // trusts Pebble's own listener
}

// startPebble runs Pebble on loopback validating challenges on httpPort
// and tlsPort of 127.0.0.1, resolving names through dnsAddr.
func startPebble(t *testing.T, httpPort, tlsPort int, dnsAddr string) *pebble {
	t.Helper()
	bin, err := testacme.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca, err := testca.New("pebble listener CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ca.Issue("127.0.0.1")
	certFile, keyFile, err := leaf.Write(dir, "pebble")
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	mgmt := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := (testacme.Config{Listen: listen, Management: mgmt, CertFile: certFile, KeyFile: keyFile, HTTPPort: httpPort, TLSPort: tlsPort}).Write(cfgFile); err != nil {
		t.Fatal(err)
	}
	logFile, _ := os.Create(filepath.Join(dir, "pebble.log"))
	cmd := exec.Command(bin, testacme.Args(cfgFile, dnsAddr)...)
	cmd.Env = append(os.Environ(), testacme.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("pebble log:\n%s", b)
		}
	})
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	p := &pebble{dirURL: "https://" + listen + "/dir", mgmt: "https://" + mgmt, http: hc}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(p.dirURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble not serving %s: %v", p.dirURL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// roots is Pebble's issuing root, to verify what it issued.
func (p *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := p.http.Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root: %s", b)
	}
	return pool
}

func TestACMEAgainstPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	for _, tc := range []struct {
		name     string
		httpPath bool // serve HTTP-01 on http_listen; TLS-ALPN-01 cannot succeed
	}{{"tls-alpn-01", false}, {"http-01", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dns := serveDNS(t)
			apiLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer apiLn.Close()
			httpLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer httpLn.Close()
			tlsPort, httpPort := apiLn.Addr().(*net.TCPAddr).Port, httpLn.Addr().(*net.TCPAddr).Port
			if tc.httpPath {
				tlsPort = freePort(t) // nothing listens there
			}
			peb := startPebble(t, httpPort, tlsPort, dns)

			cacheDir := filepath.Join(t.TempDir(), "acme")
			httpListen := ""
			if tc.httpPath {
				httpListen = "    http_listen: " + httpLn.Addr().String() + "\n"
			}
			doc := fmt.Sprintf(`listen: %q
endpoint: %s
oidc: {issuer: https://id.example.com, client_id: clearpath}
tls:
  acme:
    domains: [%s]
    email: ops@clearpath.test
    cache_dir: %s
    directory_url: %s
    accept_tos: true
%snetworks:
  - {name: eng, group: engineering, interface: wg-eng, listen_port: 51820, pool: [100.64.0.0/24], allow: [10.10.0.0/16]}
`, apiLn.Addr().String(), acmeDomain, acmeDomain, cacheDir, peb.dirURL, httpListen)
			cfg, err := config.Parse([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			src, err := New(cfg.TLS, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{ACMEHTTPClient: peb.http})
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "clearpath") })}
			go srv.Serve(tls.NewListener(apiLn, src.TLSConfig()))
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.httpPath {
				go src.ServeHTTPChallenges(ctx, httpLn)
			}

			// The first handshake for the domain obtains the certificate.
			hc := &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: peb.roots(t), ServerName: acmeDomain},
			}}
			start := time.Now()
			resp, err := hc.Get("https://" + apiLn.Addr().String() + "/")
			if err != nil {
				t.Fatalf("HTTPS to the ACME-served API: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			leaf := resp.TLS.PeerCertificates[0]
			t.Logf("%s: certificate for %v from %q in %v", tc.name, leaf.DNSNames, leaf.Issuer.CommonName, time.Since(start).Round(time.Millisecond))
			if string(body) != "clearpath" || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != acmeDomain || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
				t.Errorf("served %q, certificate %v issued by %q", body, leaf.DNSNames, leaf.Issuer.CommonName)
			}
			// Kept in cache_dir (account key and certificate), 0700.
			entries, _ := os.ReadDir(cacheDir)
			if fi, err := os.Stat(cacheDir); err != nil || fi.Mode().Perm() != 0o700 || len(entries) < 2 {
				t.Errorf("cache_dir %s: %v %v, %d entries", cacheDir, fi, err, len(entries))
			}
			// A name outside domains gets no certificate (no order is placed).
			bad := &tls.Config{RootCAs: peb.roots(t), ServerName: "other.clearpath.test"}
			if c, err := tls.Dial("tcp", apiLn.Addr().String(), bad); err == nil {
				c.Close()
				t.Errorf("a handshake for a name outside tls.acme.domains succeeded")
			}
		})
	}
}
