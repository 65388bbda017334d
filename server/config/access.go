package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// AccessRule narrows what some users of a network reach: the union of the
// allow lists of the rules naming a user replaces the network's allow for
// the eBPF filter (packets to anything else are dropped and logged as
// denied flows). Rules only narrow: each prefix must lie inside the
// network's allow, which the routing table enforces for everyone.
type AccessRule struct {
	// Users are e-mails (any case) or token subjects.
	Users []string       `yaml:"users"`
	Allow []netip.Prefix `yaml:"allow"`
}

// AllowFor returns the prefixes the access rules give the user (subject,
// email) and whether any rule names the user; false means the network's
// allow applies.
func (n Network) AllowFor(subject, email string) ([]netip.Prefix, bool) {
	var out []netip.Prefix
	found := false
	for _, r := range n.Access {
		if !slices.ContainsFunc(r.Users, func(u string) bool { return u == subject || (email != "" && strings.EqualFold(u, email)) }) {
			continue
		}
		found = true
		for _, p := range r.Allow {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, found
}

// FilterAllowFor is what the eBPF filter lets the user reach when access
// rules name them: AllowFor plus the gateway's own tunnel addresses (vpn
// up's probe, local_ports such as DNS; the host guard still decides
// there). false: no rule names the user and the network's routing decides.
func (n Network) FilterAllowFor(subject, email string) ([]netip.Prefix, bool) {
	allowed, ok := n.AllowFor(subject, email)
	if !ok {
		return nil, false
	}
	for _, gw := range n.GatewayAddrs() {
		allowed = append(allowed, netip.PrefixFrom(gw.Addr(), gw.Addr().BitLen()))
	}
	return allowed, true
}

// HasAccessRules reports whether any network narrows a user.
func (c *Config) HasAccessRules() bool {
	return slices.ContainsFunc(c.Networks, func(n Network) bool { return len(n.Access) > 0 })
}

func validateAccess(c *Config, n Network, f func(string) string, bad func(field, format string, args ...any)) {
	if len(n.Access) > 0 && c.Flows.Filter == FlowFilterOff {
		bad(f("access"), "needs the eBPF filter (flows.filter auto or on): with flows.filter off nothing would enforce it")
	}
	for j, r := range n.Access {
		rf := func(s string) string { return f(fmt.Sprintf("access[%d].%s", j, s)) }
		if len(r.Users) == 0 {
			bad(rf("users"), "name at least one user (e-mail or token subject)")
		}
		for k, u := range r.Users {
			if strings.TrimSpace(u) == "" || u != strings.TrimSpace(u) {
				bad(rf(fmt.Sprintf("users[%d]", k)), "%q is empty or has spaces around it", u)
			}
		}
		if len(r.Allow) == 0 {
			bad(rf("allow"), "at least one prefix is required (to take a user out of the network, use vpn-gateway users disable)")
		}
		for k, p := range r.Allow {
			af := rf(fmt.Sprintf("allow[%d]", k))
			switch {
			case !p.IsValid():
				bad(af, "not a prefix")
			case p != p.Masked():
				bad(af, "%s has host bits set (did you mean %s?)", p, p.Masked())
			case !slices.ContainsFunc(n.Allow, func(a netip.Prefix) bool { return a.Bits() <= p.Bits() && a.Contains(p.Addr()) }):
				bad(af, "%s is outside the network's allow %v: access rules only narrow it", p, n.Allow)
			}
		}
	}
}
