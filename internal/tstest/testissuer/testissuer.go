// Package testissuer is a real OpenID Connect issuer over HTTP (discovery
// and JWKS) that signs whatever ID tokens a test asks for, so that tests
// can give the gateway tokens for a thousand users without a thousand
// logins. It signs with ES256 (fast) and serves on any listener, e.g. one
// opened inside a lab namespace.
package testissuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer serves discovery and keys and signs tokens.
type Issuer struct {
	URL    string
	key    *ecdsa.PrivateKey
	signer jose.Signer
	srv    *http.Server
}

// Serve starts an issuer called url (its "iss", e.g. http://192.0.2.10:5600)
// on ln. Close stops it.
func Serve(ln net.Listener, url string) (*Issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "test-1").WithType("JWT"))
	if err != nil {
		return nil, err
	}
	is := &Issuer{URL: url, key: key, signer: sig}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": url, "jwks_uri": url + "/keys", "authorization_endpoint": url + "/auth",
			"token_endpoint": url + "/token", "id_token_signing_alg_values_supported": []string{"ES256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "test-1", Algorithm: "ES256", Use: "sig"}}})
	})
	is.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go is.srv.Serve(ln)
	return is, nil
}

// Close stops serving.
func (is *Issuer) Close() error { return is.srv.Close() }

// Token signs an ID token for subject with groups, valid for ttl, for
// audience.
func (is *Issuer) Token(audience, subject string, groups []string, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := map[string]any{"iss": is.URL, "aud": audience, "sub": subject, "email": subject + "@example.com", "email_verified": true,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "groups": groups}
	raw, err := jwt.Signed(is.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return raw, nil
}
