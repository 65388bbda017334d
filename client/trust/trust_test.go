package trust

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/testca"
)

func TestCheck(t *testing.T) {
	for _, s := range []string{"https://vpn.example.com", "http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:80", "http://localhost:8080", "http://[::ffff:127.0.0.1]:1"} {
		if w, err := Check(s, Policy{}); err != nil || w != "" {
			t.Errorf("%s: warning %q err %v, want accepted silently", s, w, err)
		}
	}
	for _, s := range []string{"http://198.51.100.1:8080", "http://vpn.example.com", "http://localhost.example.com", "http://10.0.0.1", "http://[2001:db8::1]:80"} {
		_, err := Check(s, Policy{})
		var he *HTTPRefusedError
		if err == nil || !strings.Contains(err.Error(), "--allow-http") || !strings.Contains(err.Error(), "unencrypted") {
			t.Errorf("%s: %v, want a refusal naming --allow-http and why", s, err)
		} else if !errorsAs(err, &he) {
			t.Errorf("%s: not an HTTPRefusedError", s)
		}
		w, err := Check(s, Policy{AllowHTTP: true})
		if err != nil || !strings.Contains(w, "warning:") || !strings.Contains(w, s) {
			t.Errorf("%s allowed: warning %q err %v", s, w, err)
		}
	}
	for _, s := range []string{"ftp://x", "vpn.example.com", "https://"} {
		if _, err := Check(s, Policy{AllowHTTP: true}); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}

func errorsAs(err error, he **HTTPRefusedError) bool {
	e, ok := err.(*HTTPRefusedError)
	*he = e
	return ok
}

// A server whose CA is unknown is refused with what to do; with the CA
// given, the same server is trusted; the system roots still count.
func TestCAFile(t *testing.T) {
	ca, err := testca.New("trust-test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ca.Issue("127.0.0.1")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	srv.StartTLS()
	defer srv.Close()

	plain, err := HTTPClient(Policy{}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = plain.Get(srv.URL)
	err = Explain(err)
	if err == nil || !strings.Contains(err.Error(), "unknown authority") || !strings.Contains(err.Error(), "--ca-file") {
		t.Fatalf("unknown CA: %v, want a refusal naming --ca-file", err)
	}
	trusted, err := HTTPClient(Policy{CAPEM: ca.PEM}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := trusted.Get(srv.URL)
	if err != nil {
		t.Fatalf("with --ca-file: %v", err)
	}
	resp.Body.Close()

	// Another name than the certificate's.
	_, err = trusted.Get(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	if err = Explain(err); err == nil || !strings.Contains(err.Error(), "another name") {
		t.Errorf("wrong name: %v", err)
	}
	// A --ca-file of another CA does not make the server trusted: the
	// extra roots are tried, then the system's, and both refuse.
	other, err := testca.New("another-ca")
	if err != nil {
		t.Fatal(err)
	}
	wrongCA, err := HTTPClient(Policy{CAPEM: other.PEM}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrongCA.Get(srv.URL)
	if err = Explain(err); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("server of one CA, --ca-file of another: %v, want unknown authority", err)
	}
	if _, err := HTTPClient(Policy{CAPEM: []byte("junk"), CAFile: "/x/ca.pem"}, time.Second); err == nil || !strings.Contains(err.Error(), "/x/ca.pem holds no PEM certificate") {
		t.Errorf("junk CA file: %v", err)
	}
}

// A plain-http server reached as https says so.
func TestExplainPlainHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	hc, _ := HTTPClient(Policy{}, 5*time.Second)
	_, err := hc.Get(strings.Replace(srv.URL, "http://", "https://", 1))
	if err = Explain(err); err == nil || !strings.Contains(err.Error(), "does not speak TLS") {
		t.Errorf("https to a plain http port: %v", err)
	}
}
