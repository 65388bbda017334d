package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
)

// passwordTokens gets real tokens from p's Dex (password grant) for client.
func passwordTokens(t *testing.T, p *provider, client, user string) *oauth2.Token {
	t.Helper()
	u, _ := dex.LookupUser(user)
	tok, err := dex.PasswordGrant(context.Background(), http.DefaultClient, p.issuer+"/token", client, u.Email, u.Password, "openid profile email groups offline_access")
	if err != nil {
		t.Fatal(err)
	}
	return (&oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}).WithExtra(map[string]any{"id_token": tok.IDToken})
}

func tamper(raw string) string {
	parts := strings.Split(raw, ".")
	// Another base64url letter (flipping a bit could leave the alphabet,
	// say '-' to ',', and the token would be malformed, not forged).
	sig := []byte(parts[2])
	if sig[5] == 'A' {
		sig[5] = 'B'
	} else {
		sig[5] = 'A'
	}
	return parts[0] + "." + parts[1] + "." + string(sig)
}

// Every bad response is refused naming the check that failed.
func TestBadResponsesAreRefused(t *testing.T) {
	p := startProvider(t, "2s")
	other := startProvider(t, "10m")
	ctx := context.Background()
	c, err := New(ctx, p.server, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	good := passwordTokens(t, p, "clearpath", "alice")
	if _, err := c.tokens(ctx, good, ""); err != nil {
		t.Fatalf("a good token was refused: %v", err)
	}
	withID := func(raw string) *oauth2.Token { return (&oauth2.Token{}).WithExtra(map[string]any{"id_token": raw}) }
	goodID := good.Extra("id_token").(string)
	cases := []struct {
		name string
		tok  *oauth2.Token
		want string
	}{
		{"tampered", withID(tamper(goodID)), "bad signature"},
		{"wrong audience", passwordTokens(t, p, "other-app", "alice"), "another audience"},
		{"wrong issuer", passwordTokens(t, other, "clearpath", "alice"), "another issuer"},
		{"no id token", &oauth2.Token{AccessToken: "x"}, "no ID token"},
	}
	for _, cs := range cases {
		_, err := c.tokens(ctx, cs.tok, "")
		var le *LoginError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), cs.want) {
			t.Errorf("%s: %v, want a login error saying %q", cs.name, err, cs.want)
		}
	}
	// A replayed token: the nonce is not the one this login sent.
	if _, err := c.tokens(ctx, good, "nonce-of-this-login"); err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Errorf("wrong nonce: %v", err)
	}
	time.Sleep(3 * time.Second)
	if _, err := c.tokens(ctx, good, ""); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired: %v", err)
	}
}

// A forged redirect (wrong state) ends the login with an error, and nothing
// is cached.
func TestWrongStateIsRefusedAndNothingCached(t *testing.T) {
	p := startProvider(t, "10m")
	cache := &Cache{Dir: filepath.Join(t.TempDir(), "cfg")}
	c, err := New(context.Background(), p.server, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	c.OpenBrowser = func(login string) error {
		u, _ := url.Parse(login)
		redirect := u.Query().Get("redirect_uri")
		go http.Get(redirect + "?code=stolen&state=forged")
		return nil
	}
	_, err = c.BrowserLogin(context.Background(), BrowserOptions{Timeout: 10 * time.Second})
	var le *LoginError
	if !errors.As(err, &le) || le.Check != "state" {
		t.Fatalf("forged redirect: %v, want a state error", err)
	}
	if _, err := os.Stat(cache.path(p.server)); !os.IsNotExist(err) {
		t.Fatal("something was cached from a failed login")
	}
}

// An expired ID token with a valid refresh token is refreshed silently: no
// browser is opened.
func TestExpiredTokenIsRefreshedWithoutBrowser(t *testing.T) {
	p := startProvider(t, "2s")
	cache := &Cache{Dir: filepath.Join(t.TempDir(), "cfg")}
	c, err := New(context.Background(), p.server, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.tokens(context.Background(), passwordTokens(t, p, "clearpath", "alice"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Save(first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	var out strings.Builder
	// No browser and no terminal: a login attempt would fail fast.
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := Obtain(ctx, cache, p.server, &out, LoginOptions{NoBrowser: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("refresh: %v\n%s", err, out.String())
	}
	if got.IDToken == first.IDToken || !got.Expiry.After(first.Expiry) || strings.Contains(out.String(), "Log in at") {
		t.Fatalf("not refreshed silently: %q", out.String())
	}
	// After the refresh token is gone (logout elsewhere), the user is told why and a login starts.
	got.RefreshToken = "revoked"
	got.Expiry = time.Now().Add(-time.Minute)
	cache.Save(got)
	out.Reset()
	_, err = Obtain(ctx, cache, p.server, &out, LoginOptions{NoBrowser: true, Timeout: 500 * time.Millisecond})
	if err == nil || !strings.Contains(out.String(), "could not be refreshed") || !strings.Contains(out.String(), "Log in at") {
		t.Fatalf("a failed refresh must say why and fall back to a login: %v\n%s", err, out.String())
	}
}
