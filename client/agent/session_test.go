package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
)

func TestTokenSources(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if src := sourceOf(control.UpRequest{Server: "http://gw", Token: "x"}); src != nil || sourceName(src) != "" {
		t.Fatalf("no file and no cache: %v", src)
	}
	file := filepath.Join(dir, "tok")
	os.WriteFile(file, []byte("first\n"), 0o600)
	src := sourceOf(control.UpRequest{TokenFile: file})
	if tok, err := src.Token(ctx); err != nil || tok != "first" {
		t.Fatalf("token file: %q %v", tok, err)
	}
	// Automation rotates the file; the next renewal reads the new token.
	os.WriteFile(file, []byte("second\n"), 0o600)
	if tok, _ := src.Token(ctx); tok != "second" {
		t.Fatalf("re-read token file: %q", tok)
	}
	os.WriteFile(file, []byte("a b\n"), 0o600)
	if _, err := src.Token(ctx); err == nil {
		t.Fatal("a file with two tokens must be refused")
	}

	// The user's refresh token arrives as bytes and lives in memory only;
	// a provider that cannot be reached is an error naming the fix.
	rsrc := sourceOf(control.UpRequest{Server: "http://127.0.0.1:1", Token: "x", RefreshToken: "r1"})
	if !strings.Contains(sourceName(rsrc), "in memory") {
		t.Fatalf("refresh token source: %q", sourceName(rsrc))
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := rsrc.Token(cctx); err == nil {
		t.Fatal("refresh against nothing succeeded")
	}
}

// The agent applies the client's rule itself: a request for a plain-http
// server off loopback without allow_http is refused before the gateway is
// contacted; with it, or over https, a session is made; a CA that is not
// PEM is refused naming it.
func TestSessionRefusesPlainHTTP(t *testing.T) {
	a := &Agent{dir: t.TempDir()}
	if _, err := a.newSession(control.UpRequest{Server: "http://198.51.100.1:8080"}); err == nil || !strings.Contains(err.Error(), "--allow-http") {
		t.Errorf("plain http without allow_http: %v", err)
	}
	for _, req := range []control.UpRequest{
		{Server: "http://198.51.100.1:8080", AllowHTTP: true},
		{Server: "http://127.0.0.1:8080"},
		{Server: "https://vpn.example.com"},
	} {
		if _, err := a.newSession(req); err != nil {
			t.Errorf("%+v: %v", req, err)
		}
	}
	if _, err := a.newSession(control.UpRequest{Server: "https://vpn.example.com", CAPEM: []byte("junk")}); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("junk CA: %v", err)
	}
}
