package login

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
)

// The flags reach the run hooks of login and logout: the server, how to
// log in, the trust flags (and whether --allow-http was given at all).
func TestLoginOptions(t *testing.T) {
	f := factory.ForTest(t.TempDir(), io.Discard, io.Discard)
	var got *Options
	cmd := NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--server", "https://vpn.example.com", "--device", "--no-browser", "--port", "8765", "--login-timeout", "2m",
		"--reset-server", "--ca-file", "/etc/ssl/corp.pem", "--allow-http=false"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Server != "https://vpn.example.com" || !got.Device || !got.NoBrowser || got.Port != 8765 || got.Timeout != 2*time.Minute ||
		!got.ResetServer || got.Trust.CAFile != "/etc/ssl/corp.pem" || got.Trust.AllowHTTP || !got.Trust.allowHTTPSet {
		t.Errorf("login: %+v", got)
	}
	cmd = NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil })
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil || got.Server != "" || got.Device || got.Timeout != 5*time.Minute || got.Trust.allowHTTPSet {
		t.Errorf("login defaults: %v %+v", err, got)
	}
	var lo *LogoutOptions
	out := NewLogoutCmd(f, func(_ context.Context, o *LogoutOptions) error { lo = o; return nil })
	out.SetArgs([]string{"--server", "https://vpn.example.com"})
	if err := out.Execute(); err != nil || lo.Server != "https://vpn.example.com" {
		t.Errorf("logout: %v %+v", err, lo)
	}
}

// Without --server and no login ever made, login says the server is
// needed, before any network use.
func TestLoginNeedsAServerFirst(t *testing.T) {
	t.Setenv("CLEARPATH_CONFIG_DIR", t.TempDir())
	err := Run(context.Background(), factory.ForTest(t.TempDir(), io.Discard, io.Discard), &Options{})
	if err == nil || !strings.Contains(err.Error(), "--server is required the first time") {
		t.Errorf("login without a server: %v", err)
	}
}
