package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/clearpath-vpn/clearpath/internal/version"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// GET /.well-known/vpn names the gateway's software version next to the
// API version clients decide compatibility on.
func TestDiscoveryNamesTheGatewayVersion(t *testing.T) {
	old := version.Version
	t.Cleanup(func() { version.Version = old })
	version.Version = "v3.1.4"
	rec := httptest.NewRecorder()
	DiscoveryHandler(config.OIDC{Issuer: "https://idp.example.com", ClientID: "clearpath"}).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.PathDiscovery, nil))
	var d api.Discovery
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatalf("discovery document: %v\n%s", err, rec.Body)
	}
	if d.Version != "v3.1.4" || d.APIVersion != api.APIVersion || d.Issuer != "https://idp.example.com" {
		t.Errorf("discovery = %+v, want version v3.1.4, api_version %s", d, api.APIVersion)
	}
}
