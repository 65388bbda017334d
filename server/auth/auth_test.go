package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// issuer is a real OIDC issuer over HTTP (discovery + JWKS) with its own key.
type issuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	mux := http.NewServeMux()
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/keys", "authorization_endpoint": is.srv.URL + "/auth",
			"token_endpoint": is.srv.URL + "/token", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	return is
}

func (is *issuer) sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (is *issuer) claims(mod func(map[string]any)) map[string]any {
	c := map[string]any{"iss": is.srv.URL, "aud": "clearpath", "sub": "alice-id", "email": "alice@example.com", "email_verified": true,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "groups": []string{"engineering"},
		"realm_access": map[string]any{"roles": []string{"vpn-ops"}}}
	if mod != nil {
		mod(c)
	}
	return c
}

func ready(t *testing.T, v *Verifier) {
	t.Helper()
	for i := 0; i < 100 && !v.Ready(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !v.Ready() {
		t.Fatal("provider discovery did not finish")
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestVerify(t *testing.T) {
	is := newIssuer(t)
	other := newIssuer(t)
	v := New(context.Background(), is.srv.URL, "clearpath", "groups", quiet())
	ready(t, v)
	id, err := v.Verify(context.Background(), is.sign(t, is.key, is.claims(nil)))
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	if id.Subject != "alice-id" || id.Email != "alice@example.com" || len(id.Groups) != 1 || id.Groups[0] != "engineering" {
		t.Fatalf("identity = %+v", id)
	}
	// The admin page's login compares the nonce of the verified token.
	withNonce, err := v.Verify(context.Background(), is.sign(t, is.key, is.claims(func(c map[string]any) { c["nonce"] = "n-123" })))
	if err != nil || withNonce.Nonce != "n-123" || id.Nonce != "" {
		t.Fatalf("nonce = %q (%v), without one %q", withNonce.Nonce, err, id.Nonce)
	}
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	bad := []struct {
		name, token, want string
	}{
		{"expired", is.sign(t, is.key, is.claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), "expired"},
		{"wrong audience", is.sign(t, is.key, is.claims(func(c map[string]any) { c["aud"] = "other-app" })), "wrong audience"},
		{"bad signature", is.sign(t, stranger, is.claims(nil)), "bad signature"},
		{"other issuer", other.sign(t, other.key, other.claims(nil)), "another issuer"},
		{"garbage", "not.a.jwt", "malformed"},
	}
	for _, b := range bad {
		_, err := v.Verify(context.Background(), b.token)
		var inv *InvalidTokenError
		if !errors.As(err, &inv) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %v, want an invalid-token error saying %q", b.name, err, b.want)
		}
	}
}

func TestNestedGroupsClaim(t *testing.T) {
	is := newIssuer(t)
	v := New(context.Background(), is.srv.URL, "clearpath", "realm_access.roles", quiet())
	ready(t, v)
	id, err := v.Verify(context.Background(), is.sign(t, is.key, is.claims(nil)))
	if err != nil || len(id.Groups) != 1 || id.Groups[0] != "vpn-ops" {
		t.Fatalf("groups from realm_access.roles = %v (%v)", id, err)
	}
}

func TestNotReadyUntilDiscovered(t *testing.T) {
	v := New(context.Background(), "http://127.0.0.1:1/nothing", "clearpath", "groups", quiet())
	if _, err := v.Verify(context.Background(), "x"); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before discovery: %v, want ErrNotReady", err)
	}
}

func TestGroups(t *testing.T) {
	claims := map[string]any{"groups": []any{"a", "b"}, "one": "solo", "bad": []any{"a", 1}, "n": map[string]any{"r": []any{"x"}}, "num": 3.0}
	cases := map[string]string{"groups": "[a b]", "one": "[solo]", "n.r": "[x]", "missing": "[]", "n.missing": "[]"}
	for path, want := range cases {
		g, err := Groups(claims, path)
		if err != nil || strings.ReplaceAll(strings.Trim(jsonish(g), " "), ",", " ") != want {
			t.Errorf("Groups(%q) = %v %v, want %s", path, g, err, want)
		}
	}
	for _, path := range []string{"bad", "num", "one.deeper"} {
		if _, err := Groups(claims, path); err == nil {
			t.Errorf("Groups(%q) must fail", path)
		}
	}
}

func jsonish(g []string) string { return "[" + strings.Join(g, " ") + "]" }

// A token whose e-mail is not verified is refused unless the gateway is
// told its provider never vouches for e-mails; e-mails come out in one
// case. On main any e-mail is taken at its word, in the case it came in.
func TestEmailVerifiedAndCase(t *testing.T) {
	is := newIssuer(t)
	v := New(context.Background(), is.srv.URL, "clearpath", "groups", quiet())
	ready(t, v)
	ctx := context.Background()
	unverified := is.sign(t, is.key, is.claims(func(c map[string]any) { c["email_verified"] = false }))
	absent := is.sign(t, is.key, is.claims(func(c map[string]any) { delete(c, "email_verified") }))
	noEmail := is.sign(t, is.key, is.claims(func(c map[string]any) { delete(c, "email"); delete(c, "email_verified") }))
	mixed := is.sign(t, is.key, is.claims(func(c map[string]any) { c["email"] = "Alice@Example.COM" }))
	if _, err := v.Verify(ctx, unverified); err == nil || !strings.Contains(err.Error(), "not verified (email_verified: false)") {
		t.Errorf("email_verified false: %v", err)
	}
	if _, err := v.Verify(ctx, absent); err == nil || !strings.Contains(err.Error(), "oidc.require_email_verified: false") {
		t.Errorf("email_verified absent: %v", err)
	}
	if id, err := v.Verify(ctx, noEmail); err != nil || id.Email != "" {
		t.Errorf("a token without an e-mail has nothing to verify: %+v %v", id, err)
	}
	if id, err := v.Verify(ctx, mixed); err != nil || id.Email != "alice@example.com" {
		t.Errorf("mixed-case e-mail: %+v %v", id, err)
	}
	v.SetRequireEmailVerified(false)
	for name, tok := range map[string]string{"false": unverified, "absent": absent} {
		if id, err := v.Verify(ctx, tok); err != nil || id.Email != "alice@example.com" {
			t.Errorf("require_email_verified off, claim %s: %+v %v", name, id, err)
		}
	}
}
