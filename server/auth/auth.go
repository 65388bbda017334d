// Package auth verifies the bearer tokens clients present: signature,
// issuer, audience and expiry through go-oidc, then reads the subject, e-mail
// and groups (from a configurable, possibly nested, claim).
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/clearpath-vpn/clearpath/internal/jwtpeek"
)

// Identity is who a verified token speaks for.
type Identity struct {
	Subject string
	Email   string
	Groups  []string
	Expiry  time.Time
	// Nonce is the token's nonce claim, for a login that sent one (the
	// admin page); "" when absent.
	Nonce string
}

// ErrNotReady means the provider's discovery document has not been fetched yet.
var ErrNotReady = errors.New("identity provider not reachable yet")

// InvalidTokenError says why a token was refused.
type InvalidTokenError struct{ Reason string }

func (e *InvalidTokenError) Error() string { return "invalid token: " + e.Reason }

// Verifier checks tokens of one issuer for one audience.
type Verifier struct {
	issuer, audience, groupsClaim string
	log                           *slog.Logger
	client                        *http.Client

	mu       sync.RWMutex
	verifier *oidc.IDTokenVerifier
	lastErr  error // of the last discovery attempt

	// allowUnverified accepts e-mails without email_verified: true
	// (oidc.require_email_verified: false).
	allowUnverified atomic.Bool
}

// Bounds of every request to the identity provider (discovery, keys): a
// provider that accepts connections and never answers costs one attempt
// this long, not a hung start or a hung key refresh.
const (
	FetchTimeout = 10 * time.Second
	dialTimeout  = 5 * time.Second
	// verifyTimeout bounds one Verify, a key refresh included.
	verifyTimeout = 15 * time.Second
)

// HTTPClient is the client the Verifier fetches the provider's discovery
// document and keys with: bounded dial, TLS handshake, response headers and
// whole exchange.
func HTTPClient() *http.Client {
	return &http.Client{
		Timeout: FetchTimeout,
		Transport: &http.Transport{
			Proxy:                  http.ProxyFromEnvironment,
			DialContext:            (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:    dialTimeout,
			ResponseHeaderTimeout:  FetchTimeout,
			MaxResponseHeaderBytes: 64 << 10,
			IdleConnTimeout:        90 * time.Second,
			ForceAttemptHTTP2:      true,
		},
	}
}

// SetRequireEmailVerified sets oidc.require_email_verified: when true (the
// default), a token carrying an e-mail is refused unless its
// email_verified claim is true. An absent claim counts as unverified: an
// e-mail nobody vouched for must not stand for a user (users are disabled
// and named by e-mail), so providers that never send the claim need the
// setting turned off.
func (v *Verifier) SetRequireEmailVerified(require bool) { v.allowUnverified.Store(!require) }

// New returns a Verifier and starts discovering the provider in the
// background, retrying with backoff: the gateway may start before its
// identity provider does. Verify answers ErrNotReady until discovery
// succeeds; each attempt ends within FetchTimeout.
func New(ctx context.Context, issuer, audience, groupsClaim string, log *slog.Logger) *Verifier {
	v := &Verifier{issuer: issuer, audience: audience, groupsClaim: groupsClaim, log: log, client: HTTPClient()}
	go v.discover(ctx)
	return v
}

// LastError says why the last discovery attempt failed (nil once ready).
func (v *Verifier) LastError() error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.lastErr
}

func (v *Verifier) discover(ctx context.Context) {
	delay := 200 * time.Millisecond
	for {
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), v.issuer)
		if err == nil {
			v.mu.Lock()
			v.verifier = p.Verifier(&oidc.Config{ClientID: v.audience})
			v.lastErr = nil
			v.mu.Unlock()
			v.log.Info("identity provider ready", "issuer", v.issuer)
			return
		}
		err = explainFetch(err, v.issuer)
		v.mu.Lock()
		v.lastErr = err
		v.mu.Unlock()
		v.log.Warn("identity provider discovery failed, retrying", "issuer", v.issuer, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// Ready reports whether the provider has been discovered.
func (v *Verifier) Ready() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.verifier != nil
}

// Verify checks raw (an ID token or a JWT access token for our audience).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	v.mu.RLock()
	ver := v.verifier
	v.mu.RUnlock()
	if ver == nil {
		return nil, ErrNotReady
	}
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	tok, err := ver.Verify(ctx, raw)
	if err != nil {
		// go-oidc flattens its errors (%v): a key fetch that timed out or
		// failed is recognised by the deadline and by its words. Either is
		// the provider's fault, not the token's: 503, retry later.
		if ctx.Err() != nil || strings.Contains(err.Error(), "get keys failed") {
			return nil, fmt.Errorf("%w: fetching the signing keys of %s failed: %v", ErrNotReady, v.issuer, err)
		}
		// Name a foreign issuer plainly; go-oidc checks the signature
		// first, which would only say "bad signature". The token is refused
		// either way: the unverified claim only words the message.
		if iss := jwtpeek.Issuer(raw); iss != "" && iss != v.issuer {
			return nil, &InvalidTokenError{Reason: fmt.Sprintf("issued by another issuer (%s; want %s)", iss, v.issuer)}
		}
		return nil, &InvalidTokenError{Reason: classify(err, v.issuer, v.audience)}
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, &InvalidTokenError{Reason: "claims are not a JSON object"}
	}
	if tok.Subject == "" {
		return nil, &InvalidTokenError{Reason: "no subject (sub) claim"}
	}
	groups, err := Groups(claims, v.groupsClaim)
	if err != nil {
		return nil, &InvalidTokenError{Reason: err.Error()}
	}
	email, _ := claims["email"].(string)
	if email != "" && !v.allowUnverified.Load() {
		switch verified := claims["email_verified"]; verified {
		case true, "true":
		case nil:
			return nil, &InvalidTokenError{Reason: fmt.Sprintf("the e-mail %s is not verified: the token has no email_verified claim (set oidc.require_email_verified: false on the gateway if the identity provider never sends it)", email)}
		default:
			return nil, &InvalidTokenError{Reason: fmt.Sprintf("the e-mail %s is not verified (email_verified: %v): verify it with the identity provider", email, verified)}
		}
	}
	// E-mails compare case-blind everywhere (users disable Alice@X
	// matches alice@x): keep one spelling.
	email = strings.ToLower(email)
	return &Identity{Subject: tok.Subject, Email: email, Groups: groups, Expiry: tok.Expiry, Nonce: tok.Nonce}, nil
}

// explainFetch words a failed request to the provider; a timeout says the
// provider accepted the connection (or not) and did not answer in time.
func explainFetch(err error, issuer string) error {
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return fmt.Errorf("identity provider %s did not answer within %s (is it overloaded, or is something else listening there?): %w", issuer, FetchTimeout, err)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func classify(err error, issuer, audience string) string {
	var exp *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &exp):
		return fmt.Sprintf("expired at %s", exp.Expiry.UTC().Format(time.RFC3339))
	case strings.Contains(msg, "issued by a different provider"):
		return fmt.Sprintf("issued by another issuer (want %s)", issuer)
	case strings.Contains(msg, "expected audience"):
		return fmt.Sprintf("wrong audience (want %s)", audience)
	case strings.Contains(msg, "signature"):
		return "bad signature (not signed by the issuer's keys)"
	case strings.Contains(msg, "malformed"):
		return "malformed JWT"
	default:
		return msg
	}
}

// Groups reads a list of group names from claims at path, a claim name or a
// dotted path into nested objects ("realm_access.roles"). A missing claim
// means no groups; a claim of the wrong type is an error naming it.
func Groups(claims map[string]any, path string) ([]string, error) {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("claim %q: %q is not an object", path, part)
		}
		if cur, ok = m[part]; !ok {
			return nil, nil
		}
	}
	switch g := cur.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{g}, nil
	case []any:
		out := make([]string, 0, len(g))
		for _, x := range g {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("claim %q holds a non-string entry", path)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("claim %q is neither a string nor a list of strings", path)
	}
}
