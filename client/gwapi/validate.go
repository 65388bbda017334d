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
	if _, err := TunnelAddresses(pc.Addresses); err != nil {
		return err
	}
	if k, err := base64.StdEncoding.DecodeString(pc.Gateway.PublicKey); err != nil || len(k) != 32 {
		return fmt.Errorf("gateway.public_key: %q is not a WireGuard key", pc.Gateway.PublicKey)
	}
	ep, err := ParseEndpoint(pc.Gateway.Endpoint)
	if err != nil {
		return fmt.Errorf("gateway.endpoint: %w", err)
	}
	if a, err := netip.ParseAddr(ep.Host); err == nil {
		if err := CheckEndpointAddr(a); err != nil {
			return fmt.Errorf("gateway.endpoint: %w", err)
		}
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
	if _, err := ValidateDNS(pc); err != nil {
		return err
	}
	return nil
}

// TunnelAddresses parses the tunnel addresses a gateway assigned and checks
// they are what the protocol defines: exactly one IPv4 host (/32) and at most
// one IPv6 host (/128), each a private (RFC 1918, shared 100.64.0.0/10, or
// unique-local fc00::/7) unicast address. Anything else could put routes
// into the machine's tables (a /1 address brings a /1 prefix route) or make
// a public host local to this machine (1.1.1.1/32), so it is refused.
func TunnelAddresses(addrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var v4, v6 int
	for i, s := range addrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("addresses[%d]: %q is not an address/prefix", i, s)
		}
		a := p.Addr()
		switch {
		case a.Zone() != "":
			return nil, fmt.Errorf("addresses[%d]: %q: scoped addresses are not tunnel addresses", i, s)
		case a.Is4In6():
			return nil, fmt.Errorf("addresses[%d]: %q: an IPv4-mapped IPv6 address is not a tunnel address", i, s)
		case p.Bits() != a.BitLen():
			return nil, fmt.Errorf("addresses[%d]: %q: a tunnel address must be a single host (/%d)", i, s, a.BitLen())
		}
		if err := checkTunnelAddr(a); err != nil {
			return nil, fmt.Errorf("addresses[%d]: %q: %w", i, s, err)
		}
		if a.Is4() {
			v4++
		} else {
			v6++
		}
		out = append(out, p)
	}
	switch {
	case v4 != 1:
		return nil, fmt.Errorf("addresses: %d IPv4 addresses in %q, want exactly one /32", v4, addrs)
	case v6 > 1:
		return nil, fmt.Errorf("addresses: %d IPv6 addresses in %q, want at most one /128", v6, addrs)
	}
	return out, nil
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func checkTunnelAddr(a netip.Addr) error {
	switch {
	case a.IsUnspecified():
		return errors.New("unspecified address")
	case a.IsLoopback():
		return errors.New("loopback address")
	case a.IsMulticast():
		return errors.New("multicast address")
	case a.IsLinkLocalUnicast():
		return errors.New("link-local address")
	case !a.IsPrivate() && !cgnat.Contains(a):
		return errors.New("not a private address (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): a public address would make that host local to this machine")
	}
	return nil
}

// CheckEndpointAddr refuses a gateway endpoint the tunnel must never send
// to: loopback (the machine's own services), unspecified, multicast,
// broadcast and link-local addresses. A unicast global or private address
// passes. It applies to literals and to what a name resolves to.
func CheckEndpointAddr(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return fmt.Errorf("%s is the unspecified address", a)
	case a.IsLoopback():
		return fmt.Errorf("%s is a loopback address (this machine)", a)
	case a.IsMulticast():
		return fmt.Errorf("%s is a multicast address", a)
	case a.IsLinkLocalUnicast():
		return fmt.Errorf("%s is a link-local address", a)
	case !a.IsGlobalUnicast():
		return fmt.Errorf("%s is not a unicast address", a)
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
