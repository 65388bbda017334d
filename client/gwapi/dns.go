package gwapi

import (
	"fmt"
	"net/netip"

	"github.com/clearpath-vpn/clearpath/server/api"
)

// PushedDNS is the split DNS a gateway pushed, checked.
type PushedDNS struct {
	Servers []netip.Addr
	// Domains are canonical routing domains (lower case, no final dot).
	Domains []string
}

// ValidateDNS checks the DNS part of a peer config: at most
// api.MaxDNSServers servers, each an address inside the tunnel (covered by
// gateway.allowed_ips, so the queries for the routing domains never leave
// through the LAN), and at most api.MaxDNSDomains valid routing domains.
// A gateway that pushes none (or an older one) gives a zero PushedDNS.
func ValidateDNS(pc *api.PeerConfig) (PushedDNS, error) {
	var out PushedDNS
	if len(pc.DNS) > api.MaxDNSServers {
		return out, fmt.Errorf("dns: %d servers, more than %d", len(pc.DNS), api.MaxDNSServers)
	}
	if len(pc.DNSDomains) > api.MaxDNSDomains {
		return out, fmt.Errorf("dns_domains: %d domains, more than %d", len(pc.DNSDomains), api.MaxDNSDomains)
	}
	if len(pc.DNSDomains) > 0 && len(pc.DNS) == 0 {
		return out, fmt.Errorf("dns_domains: %d routing domains but no dns server", len(pc.DNSDomains))
	}
	var allowed []netip.Prefix
	for _, s := range pc.Gateway.AllowedIPs {
		if p, err := netip.ParsePrefix(s); err == nil {
			allowed = append(allowed, p.Masked())
		}
	}
	for i, s := range pc.DNS {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return out, fmt.Errorf("dns[%d]: %q is not an address", i, s)
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() {
			return out, fmt.Errorf("dns[%d]: %s is not a unicast address inside the tunnel", i, a)
		}
		inside := false
		for _, p := range allowed {
			// A /0 only counts once the user consented to capture it;
			// the agent checks again against what it installs.
			if p.Bits() > 0 && p.Contains(a) {
				inside = true
			}
		}
		if !inside {
			return out, fmt.Errorf("dns[%d]: %s is not inside gateway.allowed_ips %v: its queries would leave outside the tunnel", i, a, pc.Gateway.AllowedIPs)
		}
		out.Servers = append(out.Servers, a)
	}
	for i, d := range pc.DNSDomains {
		c, err := api.CanonicalDomain(d) // quotes what it refuses (%q: terminal-safe)
		if err != nil {
			return out, fmt.Errorf("dns_domains[%d]: %w", i, err)
		}
		out.Domains = append(out.Domains, c)
	}
	return out, nil
}
