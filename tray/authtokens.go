package tray

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/trust"
)

// AuthTokens is the token source of a logged-in desktop user: the same
// per-server cache, refresh and browser login as `vpn login`, so a login
// in the terminal counts in the tray and the other way round.
type AuthTokens struct {
	Cache *auth.Cache
	// Out receives what the login has to say (URLs, codes); the browser
	// opens by itself.
	Out io.Writer
}

// State implements Tokens: logged in means a token is cached that is
// still valid or can be refreshed.
func (a AuthTokens) State(_ context.Context, server string) LoginState {
	t, err := a.Cache.Load(server)
	if err != nil || t == nil {
		return LoginState{Supported: true}
	}
	ok := t.Valid(time.Now(), 0) || t.RefreshToken != ""
	return LoginState{Supported: true, LoggedIn: ok, Who: t.Who(), Expiry: t.Expiry}
}

// Token implements Tokens: the cached ID token, refreshed silently when it
// is about to expire; ErrLoginRequired when neither works.
func (a AuthTokens) Token(ctx context.Context, server string) (string, error) {
	t, err := a.Cache.Load(server)
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, ErrLoginRequired)
	}
	if t.Valid(time.Now(), time.Minute) {
		return t.IDToken, nil
	}
	if t == nil || t.RefreshToken == "" {
		return "", fmt.Errorf("not logged in to %s: %w", server, ErrLoginRequired)
	}
	c, err := auth.NewPinned(ctx, a.Cache, server, a.out(), a.httpClient(server))
	if err != nil {
		return "", err
	}
	nt, err := c.Refresh(ctx, t)
	if err != nil {
		return "", fmt.Errorf("your session could not be refreshed (%v): %w", err, ErrLoginRequired)
	}
	if err := a.Cache.Save(nt); err != nil {
		return "", err
	}
	return nt.IDToken, nil
}

// RefreshToken implements Refresher: the cached refresh token, read here in
// the user's process and handed to the agent as bytes so it renews the
// registration like a CLI session (it keeps it in memory only).
func (a AuthTokens) RefreshToken(server string) string {
	t, err := a.Cache.Load(server)
	if err != nil || t == nil {
		return ""
	}
	return t.RefreshToken
}

// Login implements Tokens with the browser flow (device flow where no
// browser can open), as `vpn login` does.
func (a AuthTokens) Login(ctx context.Context, server string) error {
	_, err := auth.Obtain(ctx, a.Cache, server, a.out(), auth.LoginOptions{Force: true, Timeout: 5 * time.Minute, HTTP: a.httpClient(server)})
	return err
}

// Logout implements Tokens: revoke where the provider can, then forget.
func (a AuthTokens) Logout(ctx context.Context, server string) error {
	t, err := a.Cache.Load(server)
	if err == nil && t != nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if c, err := auth.NewPinned(rctx, a.Cache, server, a.out(), a.httpClient(server)); err == nil {
			c.Revoke(rctx, t) // best effort: the cache goes either way
		}
	}
	return a.Cache.Delete(server)
}

// Trust implements the controller's trustTokens: what the user chose for
// server with `vpn login`/`vpn up` (--allow-http, --ca-file), read from the
// same per-server settings; the CA file is read here, as the user.
func (a AuthTokens) Trust(server string) (allowHTTP bool, caPEM []byte) {
	s, err := a.Cache.LoadSettings(server)
	if err != nil {
		return false, nil
	}
	if s.CAFile != "" {
		caPEM, _ = os.ReadFile(s.CAFile)
	}
	return s.AllowHTTP, caPEM
}

// httpClient trusts the remembered CA file of server (nil: the default).
func (a AuthTokens) httpClient(server string) *http.Client {
	_, pem := a.Trust(server)
	if len(pem) == 0 {
		return nil
	}
	hc, err := trust.HTTPClient(trust.Policy{CAPEM: pem}, 20*time.Second)
	if err != nil {
		return nil
	}
	return hc
}

func (a AuthTokens) out() io.Writer {
	if a.Out == nil {
		return io.Discard
	}
	return a.Out
}
