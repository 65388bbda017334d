// Package auth logs the user in with the gateway's OIDC provider: the
// authorization code flow with PKCE on a loopback redirect (the browser
// opened with pkg/browser), or the device authorization grant where no
// browser can be opened. It keeps tokens per server and refreshes them
// silently. It runs in the CLI as the user; the root agent only ever
// receives the resulting token.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/mdp/qrterminal/v3"
	"github.com/pkg/browser"
	"golang.org/x/oauth2"

	"github.com/clearpath-vpn/clearpath/client/gwapi"
	"github.com/clearpath-vpn/clearpath/client/trust"
	"github.com/clearpath-vpn/clearpath/internal/jwtpeek"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// Tokens is what a login yields and the cache keeps.
type Tokens struct {
	Server       string    `json:"server"`
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"client_id"`
	IDToken      string    `json:"id_token"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"` // of the ID token
	Subject      string    `json:"subject"`
	Email        string    `json:"email,omitempty"`
	Groups       []string  `json:"groups,omitempty"`
}

// Valid reports whether the ID token is good for at least margin more.
func (t *Tokens) Valid(now time.Time, margin time.Duration) bool {
	return t != nil && t.IDToken != "" && now.Add(margin).Before(t.Expiry)
}

// Who names the logged-in user.
func (t *Tokens) Who() string {
	if t.Email != "" {
		return t.Email
	}
	return t.Subject
}

// Client logs in to one gateway's provider.
type Client struct {
	Server    string
	Discovery *api.Discovery
	provider  *oidc.Provider
	oauth     oauth2.Config
	verifier  *oidc.IDTokenVerifier
	// Out receives what the user must read (URLs, codes).
	Out io.Writer
	// OpenBrowser opens a URL; pkg/browser by default (xdg-open & co.).
	OpenBrowser func(url string) error
	// hc reaches the gateway and the provider (nil: http.DefaultClient).
	hc *http.Client
}

// New discovers the gateway's login settings, then its provider's, with
// the system's trusted roots.
func New(ctx context.Context, server string, out io.Writer) (*Client, error) {
	return NewWithHTTP(ctx, server, out, nil)
}

// NewWithHTTP is New with hc for every request to the gateway and the
// provider (a client trusting a private CA); nil means the default.
func NewWithHTTP(ctx context.Context, server string, out io.Writer, hc *http.Client) (*Client, error) {
	gw, err := gwapi.New(server)
	if err != nil {
		return nil, err
	}
	if hc != nil {
		gw = gw.WithHTTPClient(hc)
	}
	d, err := gw.Discover(ctx)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", server, err)
	}
	c := &Client{hc: hc}
	p, err := oidc.NewProvider(c.ctx(ctx), d.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity provider %s: %w", d.Issuer, trust.Explain(err))
	}
	browser.Stdout, browser.Stderr = io.Discard, io.Discard
	return &Client{hc: hc,
		Server: server, Discovery: d, provider: p, Out: out, OpenBrowser: browser.OpenURL,
		oauth:    oauth2.Config{ClientID: d.ClientID, Endpoint: p.Endpoint(), Scopes: d.Scopes},
		verifier: p.Verifier(&oidc.Config{ClientID: d.ClientID}),
	}, nil
}

// ctx carries c's HTTP client to go-oidc and x/oauth2.
func (c *Client) ctx(ctx context.Context) context.Context {
	if c.hc == nil {
		return ctx
	}
	return oidc.ClientContext(ctx, c.hc)
}

// LoginError says which check a login response failed.
type LoginError struct{ Check, Detail string }

func (e *LoginError) Error() string { return fmt.Sprintf("login refused: %s: %s", e.Check, e.Detail) }

func random() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// BrowserOptions tune the browser flow.
type BrowserOptions struct {
	Port      int  // loopback port for the redirect; 0 picks a free one
	NoBrowser bool // print the URL only
	Timeout   time.Duration
}

// BrowserLogin runs the authorization code flow with PKCE (S256), state and
// nonce, receiving the code on a loopback redirect.
func (c *Client) BrowserLogin(ctx context.Context, o BrowserOptions) (*Tokens, error) {
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port)))
	if err != nil {
		return nil, fmt.Errorf("listen for the login redirect on 127.0.0.1:%d: %w", o.Port, err)
	}
	defer ln.Close()
	cfg := c.oauth
	cfg.RedirectURL = fmt.Sprintf("http://%s/callback", ln.Addr())
	verifier, state, nonce := oauth2.GenerateVerifier(), random(), random()
	url := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

	type result struct {
		t   *Tokens
		err error
	}
	done := make(chan result, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var res result
		switch {
		case q.Get("state") != state:
			res.err = &LoginError{"state", "the redirect's state does not match this login (a forged or stale redirect)"}
		case q.Get("error") != "":
			res.err = &LoginError{"provider", q.Get("error") + ": " + q.Get("error_description")}
		case q.Get("code") == "":
			res.err = &LoginError{"code", "the redirect carries no authorization code"}
		default:
			tok, err := cfg.Exchange(c.ctx(r.Context()), q.Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				res.err = &LoginError{"token exchange", err.Error()}
			} else {
				res.t, res.err = c.tokens(r.Context(), tok, nonce)
			}
		}
		page(w, res.err)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case done <- res:
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	// Shut down gracefully: the browser must still get the "you can close
	// this tab" page the handler is writing when the result arrives.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	fmt.Fprintf(c.Out, "Log in at:\n\n    %s\n\n", url)
	if !o.NoBrowser {
		if err := c.OpenBrowser(url); err != nil {
			fmt.Fprintf(c.Out, "(could not open a browser: %v; open the URL above yourself)\n", err)
		} else {
			fmt.Fprintln(c.Out, "Your browser has been opened; waiting for you to log in...")
		}
	}
	select {
	case res := <-done:
		return res.t, res.err
	case <-time.After(o.Timeout):
		return nil, fmt.Errorf("login timed out after %v", o.Timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func page(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "<!doctype html><title>ClearPath login failed</title><h1>Login failed</h1><p>%s</p>", html.EscapeString(err.Error()))
		return
	}
	io.WriteString(w, "<!doctype html><title>ClearPath</title><h1>Logged in to ClearPath</h1><p>You can close this tab and return to the terminal.</p>")
}

// tokens verifies the ID token of tok (signature, issuer, audience, expiry,
// and nonce when one was sent) and returns what to cache.
func (c *Client) tokens(ctx context.Context, tok *oauth2.Token, nonce string) (*Tokens, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, &LoginError{"id_token", "the provider returned no ID token (is the openid scope allowed?)"}
	}
	idt, err := c.verifier.Verify(ctx, raw)
	if err != nil {
		if iss := jwtpeek.Issuer(raw); iss != "" && iss != c.Discovery.Issuer {
			return nil, &LoginError{"id_token", "issued by another issuer (" + iss + ")"}
		}
		return nil, &LoginError{"id_token", verifyReason(err)}
	}
	if nonce != "" && idt.Nonce != nonce {
		return nil, &LoginError{"nonce", "the ID token's nonce does not match this login (a replayed token)"}
	}
	var claims struct {
		Email  string   `json:"email"`
		Groups []string `json:"groups"`
	}
	idt.Claims(&claims)
	return &Tokens{Server: c.Server, Issuer: c.Discovery.Issuer, ClientID: c.Discovery.ClientID, IDToken: raw,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: idt.Expiry, Subject: idt.Subject,
		Email: claims.Email, Groups: claims.Groups}, nil
}

func verifyReason(err error) string {
	var exp *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &exp):
		return "expired at " + exp.Expiry.UTC().Format(time.RFC3339)
	case strings.Contains(msg, "different provider"):
		return "issued by another issuer"
	case strings.Contains(msg, "expected audience"):
		return "issued for another audience"
	case strings.Contains(msg, "signature"):
		return "bad signature"
	}
	return msg
}

// DeviceLogin runs the device authorization grant (RFC 8628): it prints the
// verification URL, the code and a QR code, then polls at the interval the
// provider asks for (slowing down when told to) until the user approves or
// the code expires.
func (c *Client) DeviceLogin(ctx context.Context) (*Tokens, error) {
	if c.oauth.Endpoint.DeviceAuthURL == "" {
		return nil, fmt.Errorf("the identity provider %s offers no device login; use the browser login", c.Discovery.Issuer)
	}
	ctx = c.ctx(ctx)
	da, err := c.oauth.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("start device login: %w", err)
	}
	fmt.Fprintf(c.Out, "To log in, open\n\n    %s\n\nand enter the code\n\n    %s\n\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(c.Out, "or scan this QR code (%s):\n\n", da.VerificationURIComplete)
		qrterminal.GenerateHalfBlock(da.VerificationURIComplete, qrterminal.L, c.Out)
		fmt.Fprintln(c.Out)
	}
	if !da.Expiry.IsZero() {
		fmt.Fprintf(c.Out, "Waiting for approval (the code expires at %s)...\n", da.Expiry.Local().Format(time.Kitchen))
	}
	tok, err := c.oauth.DeviceAccessToken(ctx, da)
	if err != nil {
		expired := strings.Contains(err.Error(), "expired_token") || !da.Expiry.IsZero() && !time.Now().Before(da.Expiry)
		if expired {
			return nil, errors.New("the login code expired before it was approved: run `vpn login` again")
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, errors.New("gave up waiting for the login to be approved (login timeout): run `vpn login` again")
		}
		return nil, fmt.Errorf("device login: %w", err)
	}
	return c.tokens(ctx, tok, "")
}

// Refresh trades t's refresh token for new tokens.
func (c *Client) Refresh(ctx context.Context, t *Tokens) (*Tokens, error) {
	if t.RefreshToken == "" {
		return nil, errors.New("no refresh token cached")
	}
	ctx = c.ctx(ctx)
	tok, err := c.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: t.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	nt, err := c.tokens(ctx, tok, "")
	if err != nil {
		return nil, err
	}
	if nt.RefreshToken == "" {
		nt.RefreshToken = t.RefreshToken
	}
	return nt, nil
}

// Revoke revokes t's refresh token at the provider (RFC 7009) when it
// advertises a revocation endpoint; it reports whether it could.
func (c *Client) Revoke(ctx context.Context, t *Tokens) (bool, error) {
	var meta struct {
		Revocation string `json:"revocation_endpoint"`
	}
	if err := c.provider.Claims(&meta); err != nil || meta.Revocation == "" || t.RefreshToken == "" {
		return false, nil
	}
	form := strings.NewReader("token=" + t.RefreshToken + "&token_type_hint=refresh_token&client_id=" + c.Discovery.ClientID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.Revocation, form)
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hc := c.hc
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("revoke: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("revoke: provider answered %s", resp.Status)
	}
	return true, nil
}

// CanOpenBrowser decides whether a browser can be opened here: not over SSH
// without a forwarded display, not on Linux without X11 or Wayland.
func CanOpenBrowser(goos string, env func(string) string) bool {
	display := env("DISPLAY") != "" || env("WAYLAND_DISPLAY") != ""
	if env("SSH_CONNECTION") != "" || env("SSH_TTY") != "" {
		return display && goos != "darwin"
	}
	switch goos {
	case "darwin", "windows":
		return true
	}
	return display
}

// CanOpenBrowserHere applies CanOpenBrowser to this process.
func CanOpenBrowserHere(goos string) bool { return CanOpenBrowser(goos, os.Getenv) }
