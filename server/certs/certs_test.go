package certs

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/internal/tstest/testca"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// A reload swaps the certificate for new handshakes; a connection opened
// before keeps working; a bad file leaves the running certificate served.
func TestReloadSwapsCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := testca.New("certs-test")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := ca.Issue("127.0.0.1")
	certFile, keyFile, err := first.Write(dir, "api")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.TLS{Cert: certFile, Key: keyFile}
	src, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(tls.NewListener(ln, src.TLSConfig()))
	defer srv.Close()
	url := "https://" + ln.Addr().String() + "/"

	// serial dials afresh (no keep-alive) and returns the served serial.
	serial := func(hc *http.Client) string {
		t.Helper()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		io.ReadAll(resp.Body)
		return testca.SerialHex(resp.TLS.PeerCertificates[0])
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true}}
	kept := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	if got := serial(fresh); got != testca.SerialHex(first.Cert) {
		t.Fatalf("served serial %s, want %s", got, testca.SerialHex(first.Cert))
	}
	if got := serial(kept); got != testca.SerialHex(first.Cert) {
		t.Fatalf("kept connection: serial %s", got)
	}

	// A client that does not trust the CA is refused by its own checks.
	if _, err := (&http.Client{}).Get(url); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("an untrusted CA must fail verification, got %v", err)
	}

	// Renew: new files in place, then reload.
	second, _ := ca.Issue("127.0.0.1")
	if _, _, err := second.Write(dir, "api"); err != nil {
		t.Fatal(err)
	}
	pair, err := src.Prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !src.Swap(cfg, pair) {
		t.Error("Swap says nothing changed")
	}
	if got := serial(fresh); got != testca.SerialHex(second.Cert) {
		t.Errorf("after reload: serial %s, want the new %s", got, testca.SerialHex(second.Cert))
	}
	if got := serial(kept); got != testca.SerialHex(first.Cert) {
		t.Errorf("the connection opened before the reload changed certificate: %s", got)
	}
	if src.Swap(cfg, pair) {
		t.Error("the same certificate again counts as a change")
	}

	// A broken file fails Prepare; the served certificate stays.
	bad := &config.TLS{Cert: dir + "/missing.crt", Key: keyFile}
	if _, err := src.Prepare(bad); err == nil || !strings.Contains(err.Error(), "tls.cert: open") {
		t.Errorf("missing cert on reload: %v", err)
	}
	if got := serial(fresh); got != testca.SerialHex(second.Cert) {
		t.Errorf("after a failed reload: serial %s", got)
	}
	if _, err := src.Prepare(&config.TLS{ACME: &config.ACME{Domains: []string{"a.example"}}}); err == nil || !strings.Contains(err.Error(), "needs a restart") {
		t.Errorf("cert -> acme on reload: %v", err)
	}
}
