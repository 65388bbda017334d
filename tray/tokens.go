package tray

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
)

// Tokens gives the tray a bearer token for a server. It runs as the user
// who sits at the desktop: the root agent never logs in nor opens a browser.
type Tokens interface {
	// State says whether a token is at hand, without network traffic.
	State(ctx context.Context, server string) LoginState
	// Token returns a valid token, refreshing it silently when it can;
	// ErrLoginRequired (wrapped) when the user must log in.
	Token(ctx context.Context, server string) (string, error)
	// Login runs the interactive login (browser) and caches the result.
	Login(ctx context.Context, server string) error
	// Logout forgets (and where possible revokes) the cached tokens.
	Logout(ctx context.Context, server string) error
}

// Refresher is a Tokens that can also hand the agent a refresh token, so
// the agent renews the registration before it expires (AuthTokens).
type Refresher interface {
	RefreshToken(server string) string
}

// trustTokens is implemented by token sources that know how the user
// reaches a server (AuthTokens: the --allow-http and --ca-file remembered
// by the CLI); the agent gets them with the token.
type trustTokens interface {
	Trust(server string) (allowHTTP bool, caPEM []byte)
}

// FileTokens reads the token from a file written by something else (the
// automation path, as `vpn up --token-file`). It is read on every use, so
// whoever writes it can rotate it.
type FileTokens struct{ Path string }

// ErrNoInteractiveLogin is returned by FileTokens' Login and Logout.
var ErrNoInteractiveLogin = errors.New("the token comes from --token-file: there is no login to run from the tray")

// State implements Tokens.
func (f FileTokens) State(_ context.Context, _ string) LoginState {
	tok, err := ReadTokenFile(f.Path)
	if err != nil {
		return LoginState{}
	}
	c := PeekClaims(tok)
	return LoginState{LoggedIn: true, Who: c.Who(), Expiry: c.Expiry()}
}

// Token implements Tokens.
func (f FileTokens) Token(_ context.Context, _ string) (string, error) {
	tok, err := ReadTokenFile(f.Path)
	if err != nil {
		return "", err
	}
	if exp := PeekClaims(tok).Expiry(); !exp.IsZero() && time.Now().After(exp) {
		return "", fmt.Errorf("the token in %s expired at %s: write a fresh one: %w", f.Path, exp.Local().Format(time.RFC1123), ErrLoginRequired)
	}
	return tok, nil
}

// Login implements Tokens.
func (FileTokens) Login(context.Context, string) error { return ErrNoInteractiveLogin }

// Logout implements Tokens.
func (FileTokens) Logout(context.Context, string) error { return ErrNoInteractiveLogin }

// ReadTokenFile reads the token as control.ReadTokenFile does (the one
// reader, as `vpn up --token-file` and the agent), and makes a missing
// path or an empty file ErrLoginRequired: there is nothing to connect
// with until something writes one.
func ReadTokenFile(path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("no token file configured: %w", ErrLoginRequired)
	}
	tok, err := control.ReadTokenFile(path)
	if errors.Is(err, control.ErrEmptyTokenFile) {
		return "", fmt.Errorf("%w: %w", err, ErrLoginRequired)
	}
	return tok, err
}

// Claims are the JWT claims the tray shows. They are read without checking
// the signature, for display only: the gateway verifies the token.
type Claims struct {
	Subject string `json:"sub"`
	Email   string `json:"email"`
	Name    string `json:"name"`
	Exp     int64  `json:"exp"`
}

// Who is the best name for the user.
func (c Claims) Who() string {
	switch {
	case c.Email != "":
		return c.Email
	case c.Name != "":
		return c.Name
	}
	return c.Subject
}

// Expiry is when the token expires, zero when unknown.
func (c Claims) Expiry() time.Time {
	if c.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(c.Exp, 0)
}

// PeekClaims decodes the payload of a JWT; anything else gives zero Claims.
func PeekClaims(token string) Claims {
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c
	}
	if json.Unmarshal(b, &c) != nil {
		return Claims{}
	}
	return c
}
