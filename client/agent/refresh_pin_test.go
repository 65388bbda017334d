package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/server/api"
)

// fakeProvider is the discovery document and token endpoint of an OIDC
// provider; it counts the refresh tokens it was sent.
func fakeProvider(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{
				"issuer": srv.URL, "authorization_endpoint": srv.URL + "/auth",
				"token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/keys",
			})
		case "/token":
			hits.Add(1)
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// A gateway that switches its identity provider after `vpn up` must not
// collect the session's refresh token: the agent sends it only to the
// issuer of the token the session began with.
func TestRefreshGoesOnlyToTheSessionsIssuer(t *testing.T) {
	good, goodHits := fakeProvider(t)
	evil, evilHits := fakeProvider(t)
	issuer := evil.URL
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != api.PathDiscovery {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(api.Discovery{Issuer: issuer, ClientID: "clearpath", APIVersion: api.APIVersion})
	}))
	t.Cleanup(gw.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	src := &refreshSource{server: gw.URL, refresh: "r1", issuer: good.URL}
	_, err := src.Token(ctx)
	if err == nil || !strings.Contains(err.Error(), "refusing to send the refresh token") {
		t.Fatalf("switched provider: %v", err)
	}
	if n := evilHits.Load(); n != 0 {
		t.Fatalf("the other provider was sent %d refresh tokens", n)
	}

	// The same provider as the session's: the refresh is tried there.
	issuer = good.URL
	if _, err := src.Token(ctx); err == nil {
		t.Fatal("the fake provider refuses every refresh, yet Token succeeded")
	}
	// (x/oauth2 may try a second client authentication style.)
	if goodHits.Load() == 0 {
		t.Fatal("the session's provider got no refresh request")
	}
}
