package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TLS makes the API listener serve HTTPS: from certificate files (re-read
// on reload) or from certificates obtained with ACME.
type TLS struct {
	// Cert and Key are PEM files: the certificate (chain) and its key.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	ACME *ACME  `yaml:"acme"`
}

// ACME obtains and renews certificates with ACME (RFC 8555), as Let's
// Encrypt offers, through golang.org/x/crypto/acme/autocert.
type ACME struct {
	// Domains the gateway may get certificates for (its public names).
	Domains []string `yaml:"domains"`
	// Email is given to the CA for expiry notices (optional).
	Email string `yaml:"email"`
	// CacheDir keeps the account key and certificates across restarts;
	// default <state_dir>/acme.
	CacheDir string `yaml:"cache_dir"`
	// DirectoryURL of the CA; default Let's Encrypt's production directory.
	DirectoryURL string `yaml:"directory_url"`
	// HTTPListen, when set (e.g. ":80"), serves HTTP-01 challenges there
	// (and redirects other requests to https). Without it only TLS-ALPN-01
	// is used, which needs the API listener on port 443.
	HTTPListen string `yaml:"http_listen"`
	// AcceptTOS says the operator accepts the CA's terms of service; the
	// CA refuses an account without it.
	AcceptTOS bool `yaml:"accept_tos"`
}

// LetsEncryptURL is the default ACME directory.
const LetsEncryptURL = "https://acme-v02.api.letsencrypt.org/directory"

// Enabled reports whether the API serves HTTPS.
func (t *TLS) Enabled() bool { return t != nil && (t.Cert != "" || t.Key != "" || t.ACME != nil) }

// Mode is "cert", "acme" or "" (plain HTTP).
func (t *TLS) Mode() string {
	switch {
	case t == nil:
		return ""
	case t.ACME != nil:
		return "acme"
	case t.Cert != "" || t.Key != "":
		return "cert"
	}
	return ""
}

func (c *Config) applyTLSDefaults() {
	if c.TLS != nil && c.TLS.ACME != nil {
		a := c.TLS.ACME
		if a.CacheDir == "" {
			a.CacheDir = filepath.Join(c.StateDir, "acme")
		}
		if a.DirectoryURL == "" {
			a.DirectoryURL = LetsEncryptURL
		}
	}
}

// validateTLS checks the tls block; certificate files are read, so a
// missing, unreadable or mismatched pair is an error at `check`, not at the
// first client.
func (c *Config) validateTLS(bad func(field, format string, args ...any)) {
	t := c.TLS
	if t == nil {
		return
	}
	hasFiles := t.Cert != "" || t.Key != ""
	switch {
	case hasFiles && t.ACME != nil:
		bad("tls", "cert/key and acme are both set: use certificate files or ACME, not both")
		return
	case !hasFiles && t.ACME == nil:
		bad("tls", "empty: give cert and key (PEM files), or acme")
		return
	case hasFiles:
		if t.Cert == "" {
			bad("tls.cert", "required with tls.key: the certificate (chain) PEM file")
		}
		if t.Key == "" {
			bad("tls.key", "required with tls.cert: the private key PEM file")
		}
		if t.Cert != "" && t.Key != "" {
			if _, err := LoadKeyPair(t.Cert, t.Key); err != nil {
				var fe *FileError
				if errors.As(err, &fe) {
					bad(fe.Field, "%v", fe.Err)
				} else {
					bad("tls", "%v", err)
				}
			}
		}
		return
	}
	a := t.ACME
	if len(a.Domains) == 0 {
		bad("tls.acme.domains", "at least one domain is required (the gateway's public host name)")
	}
	for i, d := range a.Domains {
		if d == "" || strings.ContainsAny(d, " /:*") || !strings.Contains(strings.Trim(d, "."), ".") {
			bad(fmt.Sprintf("tls.acme.domains[%d]", i), "%q is not a fully qualified host name", d)
		}
	}
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		bad("tls.acme.email", "%q is not an e-mail address", a.Email)
	}
	if !filepath.IsAbs(a.CacheDir) {
		bad("tls.acme.cache_dir", "%q must be an absolute path", a.CacheDir)
	}
	if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("tls.acme.directory_url", "%q is not an https URL", a.DirectoryURL)
	}
	if !a.AcceptTOS {
		bad("tls.acme.accept_tos", "must be true: the CA issues certificates only to accounts that accept its terms of service")
	}
	if a.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(a.HTTPListen); err != nil {
			bad("tls.acme.http_listen", "%q is not host:port (%v)", a.HTTPListen, err)
		} else if a.HTTPListen == c.Listen {
			bad("tls.acme.http_listen", "%q is the API's listen address", a.HTTPListen)
		}
	}
}

// FileError is a certificate or key file that cannot be used; Field is
// tls.cert or tls.key.
type FileError struct {
	Field string
	Err   error
}

func (e *FileError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// LoadKeyPair reads a certificate and key pair; errors name the field and
// file at fault.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, &FileError{"tls.cert", err}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, &FileError{"tls.key", err}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if pair.Leaf != nil && time.Now().After(pair.Leaf.NotAfter) {
		return nil, &FileError{"tls.cert", fmt.Errorf("%s expired on %s", certFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))}
	}
	return &pair, nil
}
