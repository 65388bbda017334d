package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/server/api"
)

// TestIdentityProviderIsPinned: a gateway that, after the first login,
// points the login at another issuer or another client id of the
// provider is refused before the provider is contacted, with a message
// naming old and new and how to accept the change.
func TestIdentityProviderIsPinned(t *testing.T) {
	disc := api.Discovery{Issuer: "https://idp.example.com", ClientID: "clearpath", APIVersion: "1"}
	idpHits := 0
	mux := http.NewServeMux()
	mux.HandleFunc(api.PathDiscovery, func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(disc) })
	gw := httptest.NewServer(mux)
	defer gw.Close()
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { idpHits++; http.NotFound(w, r) }))
	defer idp.Close()

	cache := &Cache{Dir: t.TempDir()}
	if err := cache.SavePin(gw.URL, "https://idp.example.com", "clearpath"); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]api.Discovery{
		"another issuer":    {Issuer: idp.URL, ClientID: "clearpath", APIVersion: "1"},
		"another client id": {Issuer: "https://idp.example.com", ClientID: "payroll-app", APIVersion: "1"},
	} {
		disc = d
		_, err := NewPinned(context.Background(), cache, gw.URL, io.Discard, nil)
		var pe *PinError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "--reset-server") || !strings.Contains(err.Error(), d.Issuer) ||
			!strings.Contains(err.Error(), "https://idp.example.com") || !strings.Contains(err.Error(), d.ClientID) {
			t.Errorf("%s: want a pin refusal naming old, new and --reset-server, got %v", name, err)
		}
	}
	if idpHits != 0 {
		t.Errorf("the unpinned provider was contacted %d times", idpHits)
	}
	// Tokens cached before pins existed pin their issuer too.
	legacy := &Cache{Dir: t.TempDir()}
	legacy.Save(&Tokens{Server: gw.URL, Issuer: "https://idp.example.com", ClientID: "clearpath", IDToken: "x"})
	disc = api.Discovery{Issuer: idp.URL, ClientID: "clearpath", APIVersion: "1"}
	if err := legacy.CheckPin(gw.URL, disc.Issuer, disc.ClientID); err == nil {
		t.Error("a cached login's issuer must pin it")
	}
	// --reset-server accepts the change: the check passes, a login pins anew.
	if err := cache.ResetPin(gw.URL); err != nil {
		t.Fatal(err)
	}
	if err := cache.CheckPin(gw.URL, idp.URL, "clearpath"); err != nil {
		t.Errorf("after a reset the new provider must pass: %v", err)
	}
	if err := cache.SavePin(gw.URL, idp.URL, "clearpath"); err != nil {
		t.Fatal(err)
	}
	if err := cache.CheckPin(gw.URL, "https://idp.example.com", "clearpath"); err == nil {
		t.Error("the new pin must hold")
	}
}
