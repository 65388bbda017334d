package routes

// Issue 23: what a real Mac would break, each against the XNU model
// (bsdxnu_test.go), which was extended so that each test fails on the
// code before its fix.

import (
	"net/netip"
	"strings"
	"testing"
)

func fullTunnel(blockLAN bool) TunnelSpec {
	return TunnelSpec{Device: "utun5", Prefixes: []netip.Prefix{pfx("0.0.0.0/0")}, Addresses: []netip.Prefix{pfx("100.64.0.2/32")},
		Endpoint: endpoint, BlockLAN: blockLAN}
}

// Point 1: routes into the utun must leave rt_ifa an IPv4 address of the
// utun, or unbound sockets get a bogus source (in_pcbladdr) and the
// gateway drops their packets; `route -n get` shows it as "interface
// address".
func TestBSDOnLinkRoutesGiveUnboundSocketsTheTunnelAddress(t *testing.T) {
	k, sys, e := macSession(t)
	reconcile(t, sys, e, fullTunnel(false))
	for _, dst := range []string{"10.10.1.1", "203.0.113.9"} {
		src, err := k.source(netip.MustParseAddr(dst))
		if err != nil || src != netip.MustParseAddr("100.64.0.2") {
			t.Errorf("an unbound socket to %s gets source %v (%v), want the tunnel address 100.64.0.2", dst, src, err)
		}
		if r := lookup(t, sys, dst); r.Src != netip.MustParseAddr("100.64.0.2") {
			t.Errorf("route get %s: interface address %v, want 100.64.0.2", dst, r.Src)
		}
	}
	// The LAN and the pinned endpoint keep the LAN address.
	for _, dst := range []string{"192.168.1.50", "198.51.100.1"} {
		if src, err := k.source(netip.MustParseAddr(dst)); err != nil || src != netip.MustParseAddr("192.168.1.23") {
			t.Errorf("source to %s: %v (%v), want 192.168.1.23", dst, src, err)
		}
	}
}

// Point 2: with BlockLAN the router gets a host route on en0; ARP takes
// it only with a whole sockaddr_dl as gateway, else the endpoint's next
// hop never resolves.
func TestBSDBlockLANRouterRouteResolves(t *testing.T) {
	k, sys, e := macSession(t)
	reconcile(t, sys, e, fullTunnel(true))
	for _, dst := range []string{"198.51.100.1", "192.168.1.1"} {
		dev, err := k.forward(netip.MustParseAddr(dst))
		if err != nil || dev != "en0" {
			t.Errorf("%s leaves via %q (%v), want en0", dst, dev, err)
		}
	}
	snap, _ := sys.Snapshot()
	for _, r := range snap.Routes {
		if r.Dst == pfx("192.168.1.1/32") && r.Protocol == Protocol && !strings.Contains(strings.Join(r.Flags, ""), "L") {
			t.Errorf("the router's host route has no link-layer info: %s %v", r, r.Flags)
		}
	}
}
