// Package trust decides whether the client may talk to a server and with
// which certificate authorities: plain http only to loopback unless the
// user allowed it for that server, HTTPS verified against the system's
// roots (SSL_CERT_FILE and SSL_CERT_DIR honoured) plus an optional CA file.
// The CLI reads the CA file as the user and hands the agent its bytes.
package trust

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Policy is how the client reaches one server.
type Policy struct {
	// AllowHTTP permits a plain http:// server that is not on loopback.
	AllowHTTP bool
	// CAPEM are extra trusted roots (PEM), added to the system's.
	CAPEM []byte
	// CAFile names where CAPEM came from, for messages.
	CAFile string
}

// HTTPRefusedError is a plain-http server the user did not allow.
type HTTPRefusedError struct{ Server string }

func (e *HTTPRefusedError) Error() string {
	return fmt.Sprintf("refusing %s: it is plain http to a host that is not this machine, so your login token "+
		"would cross the network unencrypted and anyone on the path could read and reuse it. "+
		"Use the gateway's https:// URL (with --ca-file FILE if it uses a private CA); "+
		"for a lab you trust, add --allow-http (remembered for this server)", e.Server)
}

// Check says whether server may be used under p: https always, http to
// loopback always, other http only with AllowHTTP, and then with a warning
// to print.
func Check(server string, p Policy) (warning string, err error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("server %q: want an https URL such as https://vpn.example.com", server)
	}
	if u.Scheme == "https" || IsLoopback(u.Hostname()) {
		return "", nil
	}
	if !p.AllowHTTP {
		return "", &HTTPRefusedError{Server: server}
	}
	return fmt.Sprintf("warning: %s is plain http (allowed with --allow-http): your token travels unencrypted; "+
		"run with --allow-http=false to stop allowing it", server), nil
}

// IsLoopback reports whether host (a name or IP literal) is this machine.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.Unmap().IsLoopback()
}

// HTTPClient is a client trusting the system's roots plus p's CA.
//
// The given CA is tried first and the system's roots only when it does
// not verify the server: Go loads the system store (about 30 ms here) at
// the first verification that needs it, so a gateway under the user's own
// CA costs `vpn up` and the agent no store load.
func HTTPClient(p Policy, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if len(p.CAPEM) > 0 {
		extra := x509.NewCertPool()
		if !extra.AppendCertsFromPEM(p.CAPEM) {
			name := p.CAFile
			if name == "" {
				name = "the CA certificate given"
			}
			return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", name)
		}
		// The standard verification is replaced, never dropped:
		// VerifyConnection runs for every handshake and checks the chain
		// and the name as crypto/tls would, against extra then the system.
		tr.TLSClientConfig.InsecureSkipVerify = true
		tr.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(cs, extra) }
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// verifyChain checks the server's chain and name against extra, then
// against the system's roots (nil Roots: loaded on first use).
func verifyChain(cs tls.ConnectionState, extra *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: inter, Roots: extra}
	if _, err := cs.PeerCertificates[0].Verify(opts); err == nil {
		return nil
	}
	opts.Roots = nil
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// Explain turns a certificate verification failure into what to do about
// it; other errors are returned as they are.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return fmt.Errorf("%w: the server's certificate is signed by an authority this machine does not trust; "+
			"if your organisation runs its own CA, pass its certificate with --ca-file FILE (PEM), or install it in the system's store", err)
	case errors.As(err, &he):
		return fmt.Errorf("%w: the certificate was made for another name; use the URL the certificate names", err)
	case errors.As(err, &ci):
		return fmt.Errorf("%w: the server's certificate is not valid (expired or not yet valid, or not for TLS servers); tell the gateway's operator", err)
	}
	var re tls.RecordHeaderError
	if errors.As(err, &re) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("%w: the server does not speak TLS on that port (the gateway has no tls block?)", err)
	}
	return err
}
