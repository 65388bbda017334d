package gwapi

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/clearpath-vpn/clearpath/server/api"
)

// Validate checks a peer config before anything is configured from it, so a
// bad answer never half-applies.
func Validate(pc *api.PeerConfig) error {
	if len(pc.Addresses) == 0 {
		return errors.New("addresses: none")
	}
	for i, a := range pc.Addresses {
		if _, err := netip.ParsePrefix(a); err != nil {
			return fmt.Errorf("addresses[%d]: %q is not an address/prefix", i, a)
		}
	}
	if k, err := base64.StdEncoding.DecodeString(pc.Gateway.PublicKey); err != nil || len(k) != 32 {
		return fmt.Errorf("gateway.public_key: %q is not a WireGuard key", pc.Gateway.PublicKey)
	}
	if _, err := ParseEndpoint(pc.Gateway.Endpoint); err != nil {
		return fmt.Errorf("gateway.endpoint: %w", err)
	}
	if len(pc.Gateway.AllowedIPs) == 0 {
		return errors.New("gateway.allowed_ips: none")
	}
	for i, a := range pc.Gateway.AllowedIPs {
		if _, err := netip.ParsePrefix(a); err != nil {
			return fmt.Errorf("gateway.allowed_ips[%d]: %q is not a prefix", i, a)
		}
	}
	for i, a := range pc.Gateway.Addresses {
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("gateway.addresses[%d]: %q is not an address", i, a)
		}
	}
	if pc.MTU != 0 && (pc.MTU < 1280 || pc.MTU > 9000) {
		return fmt.Errorf("mtu: %d is outside 1280-9000", pc.MTU)
	}
	return nil
}

// Endpoint is a parsed host:port; Host is a name or an IP literal (no brackets).
type Endpoint struct {
	Host string
	Port uint16
}

func (e Endpoint) String() string { return net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port))) }

// ParseEndpoint parses "host:port", "1.2.3.4:51820" or "[2001:db8::1]:51820".
// A bare IPv6 address without brackets is refused: its port is ambiguous.
func ParseEndpoint(s string) (Endpoint, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%q is not host:port (IPv6 needs brackets: [2001:db8::1]:51820): %v", s, err)
	}
	if host == "" {
		return Endpoint{}, fmt.Errorf("%q has no host", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return Endpoint{}, fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return Endpoint{}, fmt.Errorf("%q: scoped addresses are not supported", s)
		}
		host = a.String()
	} else if !validHostname(host) {
		return Endpoint{}, fmt.Errorf("%q: %q is neither an IP address nor a host name", s, host)
	}
	return Endpoint{Host: host, Port: uint16(p)}, nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}
