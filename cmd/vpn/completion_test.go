package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/envvar"
	"github.com/clearpath-vpn/clearpath/server/api"
)

func complete(t *testing.T, args ...string) []string {
	t.Helper()
	var out bytes.Buffer
	f := factory.ForTest(t.TempDir(), &out, &out)
	root, _ := newRoot(f)
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"__complete"}, args...))
	root.Execute()
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, ":") && !strings.HasPrefix(l, "Completion ended") {
			got = append(got, l)
		}
	}
	return got
}

// --server offers the servers this user logged in to; --network asks the
// gateway which networks the cached login may join (with its bearer
// token), and offers nothing without a valid login.
func TestCompletionOfServersAndNetworks(t *testing.T) {
	var auths []string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != api.PathNetworks {
			http.NotFound(w, r)
			return
		}
		auths = append(auths, r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"subject":"sub-a","networks":[{"name":"eng"},{"name":"ops"}]}`))
	}))
	defer gw.Close()
	dir := t.TempDir()
	t.Setenv("CLEARPATH_CONFIG_DIR", dir)
	if got := complete(t, "up", "--network", ""); len(got) != 0 {
		t.Errorf("--network with no login: %v", got)
	}
	cache := &auth.Cache{Dir: dir}
	if err := cache.Save(&auth.Tokens{Server: gw.URL, IDToken: "id-token", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := cache.SaveSettings(auth.ServerSettings{Server: "https://vpn.other.example"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(complete(t, "up", "--server", ""), ","); got != gw.URL+",https://vpn.other.example" {
		t.Errorf("--server: %q", got)
	}
	if got := strings.Join(complete(t, "up", "--network", ""), ","); got != "eng,ops" {
		t.Errorf("--network: %q", got)
	}
	if len(auths) != 1 || auths[0] != "Bearer id-token" {
		t.Errorf("the gateway was asked with %q", auths)
	}
	if got := strings.Join(complete(t, "up", "--server", gw.URL, "--network", "o"), ","); got != "ops" {
		t.Errorf("--network o: %q", got)
	}
	// An expired login is not sent.
	cache.Save(&auth.Tokens{Server: gw.URL, IDToken: "old", Expiry: time.Now().Add(-time.Minute)})
	if got := complete(t, "up", "--network", ""); len(got) != 0 || len(auths) != 2 {
		t.Errorf("--network with an expired login: %v (asked %d times)", got, len(auths))
	}
}

// --help lists every environment variable under its CLEARPATH_ name, and
// an old VPN_ name still works with one warning line.
func TestHelpListsEnvironment(t *testing.T) {
	var out bytes.Buffer
	root, _ := newRoot(factory.ForTest(t.TempDir(), &out, &out))
	root.SetOut(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, v := range Environment {
		if !strings.Contains(out.String(), "CLEARPATH_"+v.Name) {
			t.Errorf("--help lacks CLEARPATH_%s:\n%s", v.Name, out.String())
		}
	}
	var warn bytes.Buffer
	envvar.Warnings = &warn
	t.Setenv("VPN_STATE_DIR", "/tmp/old-name")
	if f := factory.New(); f.StateDir != "/tmp/old-name" || warn.String() != "warning: VPN_STATE_DIR is deprecated, set CLEARPATH_STATE_DIR instead\n" {
		t.Errorf("VPN_STATE_DIR: state dir %q, warning %q", f.StateDir, warn.String())
	}
}
