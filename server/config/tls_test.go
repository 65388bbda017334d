package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/internal/tstest/testca"
)

func tlsConfig(block string) string {
	return strings.Replace(Example, "key_ttl: 720h", "key_ttl: 720h\n"+block, 1)
}

func TestTLSCertFiles(t *testing.T) {
	dir := t.TempDir()
	ca, err := testca.New("t")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ca.Issue("vpn.example.com")
	cert, key, err := leaf.Write(dir, "gw")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ca.Issue("vpn.example.com")
	_, otherKey, _ := other.Write(dir, "other")
	os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not pem"), 0o600)

	c, err := Parse([]byte(tlsConfig("tls: {cert: " + cert + ", key: " + key + "}")))
	if err != nil {
		t.Fatalf("valid cert/key refused: %v", err)
	}
	if c.TLS.Mode() != "cert" {
		t.Errorf("mode %q", c.TLS.Mode())
	}
	cases := []struct{ block, want string }{
		{"tls: {cert: " + dir + "/missing.crt, key: " + key + "}", "tls.cert: open " + dir + "/missing.crt: no such file"},
		{"tls: {cert: " + cert + ", key: " + dir + "/missing.key}", "tls.key: open " + dir + "/missing.key: no such file"},
		{"tls: {cert: " + cert + "}", "tls.key: required"},
		{"tls: {key: " + key + "}", "tls.cert: required"},
		{"tls: {cert: " + cert + ", key: " + otherKey + "}", "private key does not match public key"},
		{"tls: {cert: " + dir + "/junk.pem, key: " + key + "}", "failed to find any PEM data in certificate input"},
		{"tls: {}", "tls: empty"},
		{"tls: {cert: " + cert + ", key: " + key + ", acme: {domains: [vpn.example.com], accept_tos: true}}", "cert/key and acme are both set"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tlsConfig(tc.block)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.block, err, tc.want)
		}
	}
	// An unreadable file (root reads anything: make it a directory).
	if _, err := Parse([]byte(tlsConfig("tls: {cert: " + dir + ", key: " + key + "}"))); err == nil || !strings.Contains(err.Error(), "tls.cert: read "+dir) {
		t.Errorf("a directory as cert: %v", err)
	}
}

func TestTLSACME(t *testing.T) {
	c, err := Parse([]byte(tlsConfig("tls: {acme: {domains: [vpn.example.com], email: ops@example.com, accept_tos: true}}")))
	if err != nil {
		t.Fatal(err)
	}
	a := c.TLS.ACME
	if c.TLS.Mode() != "acme" || a.CacheDir != "/var/lib/clearpath-gateway/acme" || a.DirectoryURL != LetsEncryptURL {
		t.Errorf("defaults: %+v", a)
	}
	cases := []struct{ block, want string }{
		{"tls: {acme: {accept_tos: true}}", "tls.acme.domains: at least one"},
		{"tls: {acme: {domains: [localhost], accept_tos: true}}", `tls.acme.domains[0]: "localhost" is not a fully qualified`},
		{"tls: {acme: {domains: [vpn.example.com]}}", "tls.acme.accept_tos: must be true"},
		{"tls: {acme: {domains: [vpn.example.com], accept_tos: true, cache_dir: acme}}", "tls.acme.cache_dir"},
		{"tls: {acme: {domains: [vpn.example.com], accept_tos: true, directory_url: http://ca}}", "tls.acme.directory_url"},
		{"tls: {acme: {domains: [vpn.example.com], accept_tos: true, email: nobody}}", "tls.acme.email"},
		{"tls: {acme: {domains: [vpn.example.com], accept_tos: true, http_listen: \":8080\"}}", "tls.acme.http_listen"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tlsConfig(tc.block)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.block, err, tc.want)
		}
	}
}

func TestHTTPIssuerNeedsAllowHTTP(t *testing.T) {
	http := strings.Replace(Example, "issuer: https://id.example.com/realms/company", "issuer: http://id.example.com/realms/company", 1)
	_, err := Parse([]byte(http))
	if err == nil || !strings.Contains(err.Error(), "oidc.issuer") || !strings.Contains(err.Error(), "oidc.allow_http: true") {
		t.Fatalf("an http issuer must be refused naming the fix, got %v", err)
	}
	if _, err := Parse([]byte(strings.Replace(http, "groups_claim: groups ", "allow_http: true\n  groups_claim: groups ", 1))); err != nil {
		t.Fatalf("allow_http must admit it: %v", err)
	}
}

func TestExampleShowsBothTLSForms(t *testing.T) {
	for _, want := range []string{"#   cert: ", "#   key: ", "#   acme:", "#     domains:", "# allow_http: true"} {
		if !strings.Contains(Example, want) {
			t.Errorf("vpn-gateway init does not show %q", want)
		}
	}
}
