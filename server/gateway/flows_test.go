package gateway

import (
	"net/netip"
	"testing"

	"github.com/clearpath-vpn/clearpath/server/config"
)

func TestPoolCapacity(t *testing.T) {
	nets := []config.Network{
		{Pool: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/24"), netip.MustParsePrefix("fd00:64::/64")}},
		{Pool: []netip.Prefix{netip.MustParsePrefix("100.65.0.0/30")}},
	}
	// 256 - 3 (network, gateway, broadcast) + 4 - 3.
	if got := poolCapacity(nets); got != 254 {
		t.Errorf("poolCapacity = %d, want 254", got)
	}
	if got := poolCapacity(nil); got != 1 {
		t.Errorf("poolCapacity(nil) = %d, want 1", got)
	}
}
