package usererr

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func get(t *testing.T, c *http.Client, url string) error {
	t.Helper()
	resp, err := c.Get(url)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s succeeded", url)
	}
	return fmt.Errorf("discover %s: GET /.well-known/vpn: %w", url, err)
}

// Each common failure, produced for real where it can be, reads as one
// line naming what failed and what to check; --debug prints the chain.
func TestCommonFailuresInOneLine(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	_, port, _ := net.SplitHostPort(tlsSrv.Listener.Addr().String())
	trusting := tlsSrv.Client()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) }))
	defer slow.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()

	cases := []struct {
		name string
		err  error
		want string
	}{
		{"refused", get(t, http.DefaultClient, "http://"+closed+"/x"), "nothing answers at http://" + closed + " (connection refused): check the URL and port, and that the gateway runs"},
		{"unknown CA", get(t, http.DefaultClient, tlsSrv.URL), "is signed by an unknown authority (certificate signed by unknown authority): if your organisation runs its own CA, pass its certificate with --ca-file FILE"},
		{"other name", get(t, trusting, "https://localhost:"+port), "is made for example.com, *.example.com, 127.0.0.1, ::1, not for localhost: use the URL the certificate names"},
		{"timeout", get(t, &http.Client{Timeout: 100 * time.Millisecond}, slow.URL), slow.URL + " did not answer in time"},
		{"not TLS", get(t, http.DefaultClient, strings.Replace(plain.URL, "http:", "https:", 1)), "does not speak TLS (HTTPS) on that port"},
		{"no such host", fmt.Errorf("discover: %w", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Name: "vpn.example.invalid", Err: "no such host", IsNotFound: true}}), "cannot resolve vpn.example.invalid (no such host): check the server URL's spelling"},
		{"UDP port taken", fmt.Errorf("networks[1] (ops): %w; nothing is left set up", fmt.Errorf("configure wg-ops: %w", fmt.Errorf("read: wguser: errno=-98"))), "networks[1] (ops): a port it needs is in use by another program (errno=-98, EADDRINUSE): `vpn-gateway check` names the setting, `ss -lnp` the program; nothing is left set up"},
		{"TCP port taken", fmt.Errorf("listen: %w", &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}), "listen: a port it needs is in use"},
		{"non-root forwarding", fmt.Errorf("enable forwarding: %w", &fs.PathError{Op: "open", Path: "/proc/sys/net/ipv4/ip_forward", Err: syscall.EACCES}), "cannot write /proc/sys/net/ipv4/ip_forward: the gateway runs as root"},
		{"container forwarding", fmt.Errorf("enable forwarding: %w", &fs.PathError{Op: "open", Path: "/proc/sys/net/ipv6/conf/all/forwarding", Err: syscall.EROFS}), "set net.ipv4.ip_forward=1 and net.ipv6.conf.all.forwarding=1 from outside (--sysctl)"},
		{"expired", fmt.Errorf("x: %w", x509.CertificateInvalidError{Reason: x509.Expired, Detail: "current time is after 2020"}), "expired or not yet valid (current time is after 2020); check this machine's clock"},
	}
	for _, c := range cases {
		line, ok := Line(c.err)
		if !ok || !strings.Contains(line, c.want) || strings.Contains(line, "\n") {
			t.Errorf("%s: %q (known %v)\nwant it to contain %q\nfrom %v", c.name, line, ok, c.want, c.err)
		}
	}
	var b bytes.Buffer
	Print(&b, "vpn", cases[0].err, false)
	if strings.Count(b.String(), "\n") != 1 || strings.Contains(b.String(), "dial tcp") {
		t.Errorf("without --debug: %q, want one line without the chain", b.String())
	}
	b.Reset()
	Print(&b, "vpn", cases[0].err, true)
	if !strings.Contains(b.String(), "debug: error chain:") || !strings.Contains(b.String(), "*net.OpError: dial tcp "+closed) {
		t.Errorf("with --debug: %s", b.String())
	}
	b.Reset()
	Print(&b, "vpn", fmt.Errorf("something else"), false)
	if b.String() != "vpn: something else\n" {
		t.Errorf("unknown kinds stay as they are: %q", b.String())
	}
}
