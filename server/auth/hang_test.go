package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// silent is a TCP listener that accepts connections and never answers: an
// identity provider that hangs.
func silent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, write nothing
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// A provider that accepts and never answers: each discovery attempt ends
// within FetchTimeout with an error that says so, and the verifier keeps
// answering ErrNotReady instead of hanging. Before the client had
// timeouts, the first attempt never returned.
func TestDiscoveryOfSilentProviderIsBounded(t *testing.T) {
	t.Parallel()
	issuer := "http://" + silent(t)
	start := time.Now()
	v := New(context.Background(), issuer, "clearpath", "groups", quiet())
	var err error
	for time.Since(start) < 3*FetchTimeout && err == nil {
		time.Sleep(50 * time.Millisecond)
		err = v.LastError()
	}
	took := time.Since(start)
	if err == nil {
		t.Fatalf("no discovery error after %s: the attempt hangs", took)
	}
	if !strings.Contains(err.Error(), "did not answer within "+FetchTimeout.String()) || !strings.Contains(err.Error(), issuer) {
		t.Errorf("error does not say the provider did not answer: %v", err)
	}
	if took > FetchTimeout+5*time.Second {
		t.Errorf("first attempt failed after %s, want about %s", took, FetchTimeout)
	}
	if _, verr := v.Verify(context.Background(), "x.y.z"); !errors.Is(verr, ErrNotReady) {
		t.Errorf("Verify: %v, want ErrNotReady", verr)
	}
	t.Logf("silent provider: first discovery attempt failed after %s: %v", took.Round(time.Millisecond), err)
}

// Discovery works but the keys endpoint accepts and never answers: a token
// whose key must be fetched is refused as "not ready" within the bound
// instead of hanging the request (and every later key refresh) forever.
func TestKeyRefreshFromSilentProviderIsBounded(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	keys := "http://" + silent(t) + "/keys"
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "jwks_uri": keys, "authorization_endpoint": srv.URL + "/auth",
			"token_endpoint": srv.URL + "/token", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	v := New(context.Background(), srv.URL, "clearpath", "groups", quiet())
	ready(t, v)
	tok := is.sign(t, is.key, is.claims(func(c map[string]any) { c["iss"] = srv.URL }))
	for i := range 2 { // the second call must not wait on the first's hung fetch
		start := time.Now()
		_, err := v.Verify(context.Background(), tok)
		took := time.Since(start)
		if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "signing keys") {
			t.Errorf("verify %d: %v, want ErrNotReady naming the signing keys", i, err)
		}
		if took > verifyTimeout+5*time.Second {
			t.Errorf("verify %d took %s, want at most about %s", i, took, verifyTimeout)
		}
		t.Logf("verify %d with a silent JWKS endpoint: %s: %v", i, took.Round(time.Millisecond), err)
	}
}
