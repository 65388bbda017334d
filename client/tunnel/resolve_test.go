package tunnel

import (
	"context"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/gwapi"
)

// TestResolveEndpointChecksResolvedAddresses: a gateway endpoint given as a
// name is checked after resolution too; "localhost" resolves (through
// /etc/hosts) to loopback only and is refused, naming what it resolved to.
func TestResolveEndpointChecksResolvedAddresses(t *testing.T) {
	_, err := ResolveEndpoint(context.Background(), "localhost", 53, gwapi.CheckEndpointAddr)
	if err == nil || !strings.Contains(err.Error(), "no usable address") || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("an endpoint name resolving to loopback must be refused: %v", err)
	}
	if _, err := ResolveEndpoint(context.Background(), "::ffff:127.0.0.1", 53, gwapi.CheckEndpointAddr); err == nil {
		t.Fatal("a mapped loopback literal must be refused")
	}
	ap, err := ResolveEndpoint(context.Background(), "198.51.100.1", 51820, gwapi.CheckEndpointAddr)
	if err != nil || ap.String() != "198.51.100.1:51820" {
		t.Fatalf("a good literal: %v %v", ap, err)
	}
}
