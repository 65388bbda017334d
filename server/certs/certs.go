// Package certs gives the gateway's API listener its TLS configuration:
// a certificate from files, held behind tls.Config.GetCertificate and
// swapped on reload without closing a connection, or certificates obtained
// and renewed with ACME (golang.org/x/crypto/acme/autocert).
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/clearpath-vpn/clearpath/server/config"
)

// Source serves the API's certificates.
type Source struct {
	cfg  config.TLS
	log  *slog.Logger
	cert atomic.Pointer[tls.Certificate] // cert mode
	mgr  *autocert.Manager               // acme mode
	// challenges answers HTTP-01 (acme with http_listen).
	challenges http.Handler
}

// Options tune New.
type Options struct {
	// ACMEHTTPClient talks to the ACME CA (default: http.DefaultClient's
	// transport, which trusts the system roots and SSL_CERT_FILE).
	ACMEHTTPClient *http.Client
}

// New loads the certificate files, or sets up ACME, as c says.
func New(c *config.TLS, log *slog.Logger, o Options) (*Source, error) {
	if !c.Enabled() {
		return nil, errors.New("tls: not configured")
	}
	s := &Source{cfg: *c, log: log}
	if c.ACME == nil {
		pair, err := config.LoadKeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, err
		}
		s.cert.Store(pair)
		return s, nil
	}
	a := c.ACME
	client := &acme.Client{DirectoryURL: a.DirectoryURL, UserAgent: "clearpath-gateway"}
	if o.ACMEHTTPClient != nil {
		client.HTTPClient = o.ACMEHTTPClient
	}
	prompt := func(string) bool { return a.AcceptTOS }
	s.mgr = &autocert.Manager{
		Prompt:     prompt,
		HostPolicy: autocert.HostWhitelist(a.Domains...),
		Cache:      autocert.DirCache(a.CacheDir),
		Email:      a.Email,
		Client:     client,
	}
	if a.HTTPListen != "" {
		s.challenges = s.httpChallenges() // before any order: offers HTTP-01
	}
	return s, nil
}

// httpChallenges is autocert's HTTP-01 handler with the port removed from
// the Host header: the host policy matches bare names, and a CA that
// validates on another port than 80 (a test CA, a port forward) sends it.
func (s *Source) httpChallenges() http.Handler {
	h := s.mgr.HTTPHandler(nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = host
		}
		h.ServeHTTP(w, r)
	})
}

// TLSConfig is the API listener's configuration (TLS 1.2 and up).
func (s *Source) TLSConfig() *tls.Config {
	if s.mgr != nil {
		tc := s.mgr.TLSConfig() // answers TLS-ALPN-01 challenges too
		tc.MinVersion = tls.VersionTLS12
		return tc
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	}
}

// Mode is "cert" or "acme".
func (s *Source) Mode() string { return s.cfg.Mode() }

// Leaf is the certificate served now (cert mode; nil with ACME).
func (s *Source) Leaf() *x509.Certificate {
	if c := s.cert.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

// Describe names the certificate served (serial, subject, expiry) for logs.
func Describe(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("serial %x, subject %q, expires %s", c.SerialNumber, c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
}

// CheckReload says whether next can be applied by Reload; a switch between
// files and ACME, or a change of the ACME settings, needs a restart.
func (s *Source) CheckReload(next *config.TLS) error {
	if next.Mode() != s.cfg.Mode() {
		return fmt.Errorf("tls: switching from %s to %s needs a restart of the gateway", ModeName(s.cfg.Mode()), ModeName(next.Mode()))
	}
	if s.mgr != nil && !reflect.DeepEqual(s.cfg.ACME, next.ACME) {
		return errors.New("tls.acme: changing it needs a restart of the gateway")
	}
	return nil
}

// ModeName says what a tls mode is, for messages.
func ModeName(m string) string {
	switch m {
	case "cert":
		return "certificate files"
	case "acme":
		return "ACME"
	}
	return "plain HTTP"
}

// Prepare reads next's certificate files (cert mode) for Reload; nothing
// changes yet, so a bad file leaves the running certificate in place.
func (s *Source) Prepare(next *config.TLS) (*tls.Certificate, error) {
	if err := s.CheckReload(next); err != nil {
		return nil, err
	}
	if s.mgr != nil {
		return nil, nil
	}
	return config.LoadKeyPair(next.Cert, next.Key)
}

// Swap serves pair from the next handshake on (connections already open
// keep theirs) and reports whether it differs from the one it replaces.
func (s *Source) Swap(next *config.TLS, pair *tls.Certificate) (changed bool) {
	s.cfg = *next
	if pair == nil {
		return false
	}
	old := s.cert.Swap(pair)
	return old == nil || old.Leaf == nil || pair.Leaf == nil || !old.Leaf.Equal(pair.Leaf)
}

// ServeHTTPChallenges answers ACME HTTP-01 challenges on ln (and redirects
// every other request to https) until ctx is done. Only with ACME.
func (s *Source) ServeHTTPChallenges(ctx context.Context, ln net.Listener) error {
	if s.mgr == nil {
		return errors.New("tls: HTTP-01 challenges need acme")
	}
	if s.challenges == nil {
		s.challenges = s.httpChallenges()
	}
	srv := &http.Server{Handler: s.challenges, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
