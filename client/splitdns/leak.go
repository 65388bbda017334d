package splitdns

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// More findings of Diagnose (see FindingStubOrphaned).
const (
	FindingLeak     = "dns-leak-full-tunnel"
	FindingConflict = "dns-domain-conflict"
)

// RepointFixable says whether a finding's fix is the agent's RepointDNS
// (control POST /v1/dns/repoint): a full tunnel's resolv.conf rewritten
// away from the stub.
func RepointFixable(f analysis.Finding) bool {
	return f.Fixable && f.ID == FindingLeak
}

// ResolverRoute is one resolver the machine's queries reach and the route
// the walk (routes/analysis.Walk) picks for it.
type ResolverRoute struct {
	Addr netip.Addr
	// Role says why queries go there ("resolv.conf nameserver", "stub
	// upstream for names outside the routing domains").
	Role string
	// Device is the route's output device; Route the route as text.
	Device, Route string
	// Refused: no route or a blackhole (dns-unroutable covers it).
	Refused bool
}

// DomainClaim is a routing domain another resolver configuration claims:
// a systemd-resolved link other than ours, or a nameserver listed in
// resolv.conf ahead of our stub ("." then: it takes every name).
type DomainClaim struct {
	Source string
	Domain string
	// Index is the systemd-resolved link's ifindex (0: not a link); Dead
	// says why that link carries no traffic ("down", "no carrier", "a tun
	// no process holds"; "" alive), filled by the caller from the links.
	Index int
	Dead  string
}

// FixableClaims are the claims of a dns-domain-conflict finding the fix
// may revert (systemd-resolved RevertLink): conflicting resolved links
// that are dead. A live link's claim is another VPN's, never reverted.
func FixableClaims(in DoctorInput) []DomainClaim {
	var out []DomainClaim
	seen := map[int]bool{}
	for _, p := range conflictPairs(in) {
		c := p.claim
		if c.Index > 0 && c.Dead != "" && !seen[c.Index] {
			seen[c.Index] = true
			out = append(out, c)
		}
	}
	return out
}

// RevertFixable says whether a finding's fix is reverting dead links in
// systemd-resolved (FixableClaims).
func RevertFixable(f analysis.Finding) bool {
	return f.Fixable && f.ID == FindingConflict
}

// normDomain lower-cases a domain and drops the "~" and trailing dot.
func normDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(d, "~"), "."))
	if d == "" {
		return "."
	}
	return d
}

// overlaps says whether two routing domains claim some name in common
// ("." claims every name).
func overlaps(a, b string) bool {
	a, b = normDomain(a), normDomain(b)
	return a == b || a == "." || b == "." || strings.HasSuffix(a, "."+b) || strings.HasSuffix(b, "."+a)
}

// leak is the check for DNS outside a full tunnel: with all traffic
// captured, every resolver queries reach must be routed into the tunnel.
func leak(in DoctorInput) []analysis.Finding {
	if !in.FullTunnel || in.TunnelDev == "" {
		return nil
	}
	var ev []analysis.Evidence
	for _, r := range in.Resolvers {
		if r.Refused || r.Addr.IsLoopback() || r.Device == in.TunnelDev {
			continue
		}
		ev = append(ev, analysis.Evidence{Kind: "route", Text: fmt.Sprintf("%s %s: route get %s -> %s (dev %s, not the tunnel %s)", r.Role, r.Addr, r.Addr, r.Route, r.Device, in.TunnelDev)})
	}
	if len(ev) == 0 {
		return nil
	}
	f := analysis.Finding{ID: "dns-leak-full-tunnel", Severity: analysis.Error, Owner: "clearpath",
		Title:    fmt.Sprintf("DNS leaks outside the full tunnel: queries go out %s", firstDev(in)),
		Evidence: append([]analysis.Evidence{{Kind: "file", Text: fmt.Sprintf("%s names %s", in.ResolvPath, nameserverList(in.ResolvConf))}}, ev...)}
	switch {
	case in.AgentStub && !PointsAtStub(in.ResolvConf) && !namesServer(in.ResolvConf, ResolvedStub):
		f.Explanation = "All traffic goes through the tunnel, but something rewrote resolv.conf after ClearPath pointed it at its stub resolver, so lookups go straight to a resolver outside the tunnel and your network (and its operator) sees every name you look up. The fix asks the agent to point resolv.conf at the stub again, as it does on a network change: the rewritten file is what `vpn down` puts back, and the stub forwards names outside the routing domains to its servers. Find what rewrites it (a network manager, dhclient) and tell it to leave resolv.conf alone while the VPN is up."
		f.Commands = []string{"vpn doctor --fix " + FindingLeak + " (the agent points " + in.ResolvPath + " back at its stub)"}
		f.Fixable, f.Ours = true, true
	case in.AgentStub:
		f.Explanation = "All traffic goes through the tunnel, but the stub forwards names outside the gateway's routing domains to your network's resolver, which is routed outside the tunnel: your network sees those lookups. Ask the gateway's admin to push dns.servers without domains for full-tunnel users (then every name goes to the tunnel's servers). No --fix: the gateway's DNS configuration decides where these names go, not this machine."
		f.Commands = []string{"vpn status --json (see dns.upstream)"}
	default:
		f.Explanation = "All traffic goes through the tunnel, but the gateway pushed no DNS servers (or split DNS is off), so lookups go to a resolver routed outside the tunnel and your network sees every name you look up. Ask the gateway's admin to set dns.servers. No --fix: without servers from the gateway there is nothing in the tunnel to send lookups to."
		f.Commands = []string{"vpn status --json (see dns)"}
	}
	return []analysis.Finding{f}
}

func firstDev(in DoctorInput) string {
	for _, r := range in.Resolvers {
		if !r.Refused && !r.Addr.IsLoopback() && r.Device != in.TunnelDev {
			return r.Device
		}
	}
	return ""
}

func nameserverList(conf []byte) string {
	var ns []string
	for _, a := range Nameservers(conf) {
		ns = append(ns, a.String())
	}
	if PointsAtStub(conf) {
		ns = append([]string{StubAddr.String() + " (ClearPath's stub)"}, ns...)
	}
	if len(ns) == 0 {
		return "no nameserver"
	}
	return "nameserver " + strings.Join(ns, ", ")
}

// conflictPair is one of our routing domains and a claim overlapping it.
type conflictPair struct {
	ours  string
	claim DomainClaim
}

func conflictPairs(in DoctorInput) []conflictPair {
	ours := in.Domains
	if in.All {
		ours = append(ours[:len(ours):len(ours)], ".")
	}
	var out []conflictPair
	for _, d := range ours {
		for _, c := range in.Claims {
			if !overlaps(d, c.Domain) {
				continue
			}
			// A resolved link's "~." is resolved's fallback: a more
			// specific domain of ours still wins there.
			if normDomain(c.Domain) == "." && normDomain(d) != "." && strings.HasPrefix(c.Source, "systemd-resolved") {
				continue
			}
			out = append(out, conflictPair{normDomain(d), c})
		}
	}
	return out
}

// conflict is the check for a routing domain another VPN also claims. A
// dead resolved link's claim (its VPN is gone, its settings stayed) can be
// reverted; a live one's cannot: the finding says which.
func conflict(in DoctorInput) []analysis.Finding {
	pairs := conflictPairs(in)
	if len(pairs) == 0 {
		return nil
	}
	var ev []analysis.Evidence
	var names []string
	live := 0
	for _, p := range pairs {
		c := p.claim
		text := fmt.Sprintf("%s claims %s; ClearPath routes %s to %v", c.Source, normDomain(c.Domain), p.ours, in.Servers)
		if c.Index > 0 && c.Dead != "" {
			text += fmt.Sprintf(" (the link is dead: %s)", c.Dead)
		} else {
			live++
		}
		ev = append(ev, analysis.Evidence{Kind: "dns", Text: text})
		names = append(names, p.ours)
	}
	f := analysis.Finding{ID: "dns-domain-conflict", Severity: analysis.Warning, Owner: "unknown",
		Title:    fmt.Sprintf("routing domain %s is also claimed by another VPN or resolver", strings.Join(dedup(names), ", ")),
		Evidence: ev,
		Commands: []string{"resolvectl domain (lists each link's routing domains)"}}
	dead := FixableClaims(in)
	switch {
	case len(dead) > 0:
		f.Explanation = "Two resolver configurations claim the same names, so which servers answer depends on the order they were set up: names under the domain may resolve to the other network's addresses, or fail. The other claim is on a systemd-resolved link that carries no traffic (its VPN is gone but its DNS settings stayed): reverting that link's DNS settings (RevertLink) removes the stale claim."
		var cmds []string
		for _, c := range dead {
			cmds = append(cmds, fmt.Sprintf("resolvectl revert %d (%s: %s)", c.Index, c.Source, c.Dead))
		}
		f.Commands = append(cmds, f.Commands...)
		f.Fixable = true
		if live > 0 {
			f.Explanation += " The other claims are live (another VPN or resolver in use): no --fix for them; disconnect that VPN or have one of the two drop the domain."
		}
	default:
		f.Explanation = "Two resolver configurations claim the same names, so which servers answer depends on the order they were set up: names under the domain may resolve to the other network's addresses, or fail. Disconnect the other VPN, or have one of the two drop the domain. No --fix: the other claim is live (another VPN or resolver in use) and ClearPath does not change its settings."
	}
	return []analysis.Finding{f}
}

func dedup(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// StubClaims are the claims resolv.conf makes against our stub: each
// nameserver listed ahead of it gets every name (the C library asks the
// first that answers).
func StubClaims(path string, conf []byte) []DomainClaim {
	var out []DomainClaim
	for _, l := range strings.Split(string(conf), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if f[1] == StubAddr.String() {
			return out
		}
		out = append(out, DomainClaim{Source: fmt.Sprintf("%s: nameserver %s listed ahead of ClearPath's stub", path, f[1]), Domain: "."})
	}
	return nil // the stub is not named: not a conflict, the leak or orphan checks say so
}
