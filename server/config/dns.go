package config

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/clearpath-vpn/clearpath/server/api"
)

// NetworkDNS is split DNS for a network's clients: `dns: {servers: [IP...],
// domains: [name...]}`. Domains are routing domains: only names under them
// go to Servers. With no domains, clients that capture all traffic
// (--all-traffic) send all their DNS to Servers; others use none of it.
type NetworkDNS struct {
	Servers []netip.Addr `yaml:"servers"`
	Domains []string     `yaml:"domains"`
}

// PushedDNS returns the servers and canonical routing domains the network
// pushes (nil, nil without dns). The configuration has been validated.
func (n Network) PushedDNS() (servers, domains []string) {
	if n.DNS == nil {
		return nil, nil
	}
	for _, a := range n.DNS.Servers {
		servers = append(servers, a.String())
	}
	for _, d := range n.DNS.Domains {
		if c, err := api.CanonicalDomain(d); err == nil && !slices.Contains(domains, c) {
			domains = append(domains, c)
		}
	}
	return servers, domains
}

// validateDNS checks each server is one the network's clients can reach
// through their tunnel: inside the allow list, or the gateway's own tunnel
// address with local_ports opening udp/53 (the host guard drops everything
// else addressed to the host).
func validateDNS(n Network, f func(string) string, bad func(field, format string, args ...any)) {
	if n.DNS == nil {
		return
	}
	if len(n.DNS.Servers) == 0 {
		bad(f("dns.servers"), "at least one server is required (remove dns: for none)")
	}
	if len(n.DNS.Servers) > api.MaxDNSServers {
		bad(f("dns.servers"), "%d servers: at most %d", len(n.DNS.Servers), api.MaxDNSServers)
	}
	udp53 := slices.Contains(n.Ports(), LocalPort{Proto: "udp", Port: 53})
	for k, a := range n.DNS.Servers {
		sf := fmt.Sprintf("%s[%d]", f("dns.servers"), k)
		if !a.IsValid() || a.Zone() != "" || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
			bad(sf, "%s is not a unicast address a client can send to", a)
			continue
		}
		a = a.Unmap()
		if slices.ContainsFunc(n.Allow, func(p netip.Prefix) bool { return p.Contains(a) }) {
			continue
		}
		own := slices.ContainsFunc(n.GatewayAddrs(), func(p netip.Prefix) bool { return p.Addr() == a })
		switch {
		case own && !udp53:
			bad(sf, "%s is the gateway's own tunnel address, but local_ports does not open udp/53 on it (add local_ports: [udp/53, tcp/53])", a)
		case !own:
			bad(sf, "%s is outside the network's allow list %v and is not the gateway's tunnel address: clients could not reach it through the tunnel", a, n.Allow)
		}
	}
	if len(n.DNS.Domains) > api.MaxDNSDomains {
		bad(f("dns.domains"), "%d domains: at most %d", len(n.DNS.Domains), api.MaxDNSDomains)
	}
	seen := map[string]int{}
	for k, d := range n.DNS.Domains {
		df := fmt.Sprintf("%s[%d]", f("dns.domains"), k)
		c, err := api.CanonicalDomain(d)
		if err != nil {
			bad(df, "%v", err)
			continue
		}
		if j, ok := seen[c]; ok {
			bad(df, "%q is listed twice (also dns.domains[%d])", d, j)
		}
		seen[c] = k
	}
}
