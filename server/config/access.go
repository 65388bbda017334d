package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/clearpath-vpn/clearpath/bpf"
)

// AccessRule gives the users it names, by e-mail or subject (Users) or by
// an OIDC group their token carried when they registered (Groups), their
// own allow list in a network, enforced by the eBPF filter.
//
// Precedence: a user named by one or more rules reaches the union of
// those rules' allow entries (and the gateway's own tunnel addresses), in
// place of the network's allow; a user no rule names reaches the
// network's allow. No rule can take away what another gives.
//
// An entry inside the network's allow narrows; an entry outside it widens
// and must lie inside the network's may_widen (see Network.MayWiden).
// Entries may name ports (AccessTarget).
type AccessRule struct {
	// Users are e-mails (any case) or token subjects.
	Users []string `yaml:"users"`
	// Groups are OIDC group names (exact), as the token carried them at
	// the user's last registration or renewal.
	Groups []string       `yaml:"groups"`
	Allow  []AccessTarget `yaml:"allow"`
}

// AccessTarget is one allow entry of a rule: "PREFIX" (every protocol and
// port) or "PREFIX PORTS..." where each of PORTS is tcp/N, tcp/N-M,
// udp/N, udp/N-M or icmp (ICMP and ICMPv6), separated by spaces or
// commas: "10.10.0.10/32 tcp/5432", "10.10.0.2/32 udp/53 tcp/53".
// Anything else to the prefix is dropped, ping included unless icmp is
// listed.
type AccessTarget struct {
	bpf.Allow
}

// MaxPortRanges bounds the port ranges that apply to one prefix (with
// those of the prefixes covering it, over every rule of a network).
const MaxPortRanges = bpf.MaxPortRanges

// ParseAccessTarget reads "PREFIX [PORTS...]".
func ParseAccessTarget(s string) (AccessTarget, error) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
	if len(f) == 0 {
		return AccessTarget{}, fmt.Errorf("%q: empty; write a prefix, optionally with ports (\"10.10.0.10/32 tcp/5432\")", s)
	}
	p, err := netip.ParsePrefix(f[0])
	if err != nil {
		if a, aerr := netip.ParseAddr(f[0]); aerr == nil {
			return AccessTarget{}, fmt.Errorf("%q: %s is an address, not a prefix (did you mean %s?)", s, f[0], netip.PrefixFrom(a, a.BitLen()))
		}
		return AccessTarget{}, fmt.Errorf("%q: %s is not a prefix (CIDR)", s, f[0])
	}
	t := AccessTarget{bpf.Allow{Prefix: p}}
	for _, spec := range f[1:] {
		r, err := parsePortRange(spec)
		if err != nil {
			return AccessTarget{}, fmt.Errorf("%q: %w", s, err)
		}
		t.Ports = append(t.Ports, r)
	}
	return t, nil
}

func parsePortRange(spec string) (bpf.PortRange, error) {
	proto, ports, hasPorts := strings.Cut(strings.ToLower(spec), "/")
	var r bpf.PortRange
	switch proto {
	case "icmp":
		if hasPorts {
			return r, fmt.Errorf("%s: icmp takes no port (it allows every ICMP and ICMPv6 packet)", spec)
		}
		return bpf.PortRange{Proto: bpf.ProtoICMP}, nil
	case "tcp":
		r.Proto = bpf.ProtoTCP
	case "udp":
		r.Proto = bpf.ProtoUDP
	default:
		return r, fmt.Errorf("%s: unknown protocol %q (tcp/PORT, udp/PORT, tcp/LOW-HIGH or icmp)", spec, proto)
	}
	if !hasPorts || ports == "" {
		return r, fmt.Errorf("%s: name the port (%s/PORT or %s/LOW-HIGH)", spec, proto, proto)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	switch {
	case err1 != nil || err2 != nil || l < 1 || h < 1 || l > 65535 || h > 65535:
		return r, fmt.Errorf("%s: ports are 1-65535", spec)
	case l > h:
		return r, fmt.Errorf("%s: the range runs backwards (%d > %d)", spec, l, h)
	}
	r.Lo, r.Hi = uint16(l), uint16(h)
	return r, nil
}

// UnmarshalYAML reads the entry from a string.
func (t *AccessTarget) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: an allow entry is a string, \"PREFIX\" or \"PREFIX tcp/PORT ...\"", n.Line)
	}
	v, err := ParseAccessTarget(n.Value)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// MarshalYAML writes the entry back as its string.
func (t AccessTarget) MarshalYAML() (any, error) { return t.String(), nil }

// Grant is one destination a user's policy allows and why.
type Grant struct {
	Target AccessTarget
	// Rule is the index of the access rule that gives it, or one of
	// GrantNetwork, GrantGateway.
	Rule int
	// Widen: outside the network's allow (within may_widen).
	Widen bool
}

// Grant origins other than a rule.
const (
	GrantNetwork = -1 // the network's allow: no rule names the user
	GrantGateway = -2 // the gateway's own tunnel address (vpn up's probe, local_ports)
)

// Policy is what the eBPF filter lets one user of a network reach.
type Policy struct {
	// Filtered: the user has a policy of their own; false means no rule
	// names them and no rule of the network widens, so the network's
	// routing alone decides (and Grants is empty).
	Filtered bool
	// Rules are the indexes of the rules naming the user.
	Rules  []int
	Grants []Grant
}

// Allows returns the filter's allow list (bpf.FoldPolicy is applied by the
// filter).
func (p Policy) Allows() []bpf.Allow {
	out := make([]bpf.Allow, 0, len(p.Grants))
	for _, g := range p.Grants {
		out = append(out, g.Target.Allow)
	}
	return out
}

// Widened returns the prefixes outside the network's allow that the
// policy reaches: the client must route them into the tunnel too.
func (p Policy) Widened() []netip.Prefix {
	var out []netip.Prefix
	for _, g := range p.Grants {
		if g.Widen && !slices.Contains(out, g.Target.Prefix) {
			out = append(out, g.Target.Prefix)
		}
	}
	return out
}

// Matches reports whether rule r names the user (subject, e-mail) or one
// of their groups.
func (r AccessRule) Matches(subject, email string, groups []string) bool {
	return slices.ContainsFunc(r.Users, func(u string) bool { return u == subject || (email != "" && strings.EqualFold(u, email)) }) ||
		slices.ContainsFunc(r.Groups, func(g string) bool { return slices.Contains(groups, g) })
}

// PolicyFor returns user (subject, email, groups)'s policy in n.
func (n Network) PolicyFor(subject, email string, groups []string) Policy {
	var p Policy
	for i, r := range n.Access {
		if !r.Matches(subject, email, groups) {
			continue
		}
		p.Rules = append(p.Rules, i)
		for _, t := range r.Allow {
			p.Grants = append(p.Grants, Grant{Target: t, Rule: i, Widen: !n.inAllow(t.Prefix)})
		}
	}
	switch {
	case len(p.Rules) > 0:
	case len(n.WidenRoutes()) > 0:
		// The table routes the widened prefixes for the whole group:
		// everyone else is held to the network's allow by the filter.
		for _, a := range n.Allow {
			p.Grants = append(p.Grants, Grant{Target: AccessTarget{bpf.Allow{Prefix: a}}, Rule: GrantNetwork})
		}
	default:
		return p
	}
	p.Filtered = true
	for _, gw := range n.GatewayAddrs() {
		host := netip.PrefixFrom(gw.Addr(), gw.Addr().BitLen())
		p.Grants = append(p.Grants, Grant{Target: AccessTarget{bpf.Allow{Prefix: host}}, Rule: GrantGateway})
	}
	return p
}

// AllowFor returns the prefixes the access rules give the user (subject,
// email; groups as their token carried them) and whether any rule names
// the user; false means the network's allow applies.
func (n Network) AllowFor(subject, email string, groups []string) ([]netip.Prefix, bool) {
	p := n.PolicyFor(subject, email, groups)
	var out []netip.Prefix
	for _, g := range p.Grants {
		if g.Rule >= 0 && !slices.Contains(out, g.Target.Prefix) {
			out = append(out, g.Target.Prefix)
		}
	}
	return out, len(p.Rules) > 0
}

// WidenRoutes are the prefixes rules reach outside the network's allow:
// the network's routing table routes them too (a throw each), and then
// every peer of the network gets a filter policy, so that only the users
// of the widening rules reach them.
func (n Network) WidenRoutes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range n.Access {
		for _, t := range r.Allow {
			if t.Prefix.IsValid() && !n.inAllow(t.Prefix) && !slices.Contains(out, t.Prefix.Masked()) {
				out = append(out, t.Prefix.Masked())
			}
		}
	}
	return out
}

func (n Network) inAllow(p netip.Prefix) bool { return within(n.Allow, p) }

func within(list []netip.Prefix, p netip.Prefix) bool {
	return slices.ContainsFunc(list, func(a netip.Prefix) bool { return a.Bits() <= p.Bits() && a.Contains(p.Addr()) })
}

// HasAccessRules reports whether any network has access rules.
func (c *Config) HasAccessRules() bool {
	return slices.ContainsFunc(c.Networks, func(n Network) bool { return len(n.Access) > 0 || len(n.MayWiden) > 0 })
}

func nonBlank(s string) bool {
	return strings.TrimSpace(s) != "" && s == strings.TrimSpace(s)
}

func validateAccess(c *Config, n Network, f func(string) string, bad func(field, format string, args ...any)) {
	if (len(n.Access) > 0 || len(n.MayWiden) > 0) && c.Flows.Filter == FlowFilterOff {
		field := "access"
		if len(n.Access) == 0 {
			field = "may_widen"
		}
		bad(f(field), "needs the eBPF filter (flows.filter auto or on): with flows.filter off nothing would enforce it")
	}
	for k, p := range n.MayWiden {
		wf := f(fmt.Sprintf("may_widen[%d]", k))
		switch {
		case !p.IsValid():
			bad(wf, "not a prefix")
		case p != p.Masked():
			bad(wf, "%s has host bits set (did you mean %s?)", p, p.Masked())
		case n.inAllow(p):
			bad(wf, "%s is inside the network's allow %v already: may_widen lists what rules may reach beyond allow", p, n.Allow)
		}
	}
	for j, r := range n.Access {
		rf := func(s string) string { return f(fmt.Sprintf("access[%d].%s", j, s)) }
		if len(r.Users) == 0 && len(r.Groups) == 0 {
			bad(f(fmt.Sprintf("access[%d]", j)), "name at least one user (users: e-mail or token subject) or group (groups: OIDC group)")
		}
		for k, u := range r.Users {
			if !nonBlank(u) {
				bad(rf(fmt.Sprintf("users[%d]", k)), "%q is empty or has spaces around it", u)
			}
		}
		for k, g := range r.Groups {
			if !nonBlank(g) {
				bad(rf(fmt.Sprintf("groups[%d]", k)), "%q is empty or has spaces around it", g)
			}
		}
		if len(r.Allow) == 0 {
			bad(rf("allow"), "at least one entry is required (to take a user out of the network, use vpn-gateway users disable)")
		}
		for k, t := range r.Allow {
			af := rf(fmt.Sprintf("allow[%d]", k))
			p := t.Prefix
			switch {
			case !p.IsValid():
				bad(af, "not a prefix")
			case p != p.Masked():
				bad(af, "%s has host bits set (did you mean %s?)", p, p.Masked())
			case n.inAllow(p):
			case within(n.MayWiden, p):
			case len(n.MayWiden) == 0:
				bad(af, "%s is outside the network's allow %v: rules only narrow it, unless the network lists where they may widen to (may_widen)", p, n.Allow)
			default:
				bad(af, "%s is outside the network's allow %v and its may_widen %v: a rule may narrow allow, or widen only into may_widen", p, n.Allow, n.MayWiden)
			}
		}
	}
	// A user named by every rule gets the most port ranges on one prefix:
	// the filter holds MaxPortRanges per prefix.
	var all []bpf.Allow
	for _, r := range n.Access {
		for _, t := range r.Allow {
			if t.Prefix.IsValid() {
				all = append(all, t.Allow)
			}
		}
	}
	for _, a := range bpf.FoldPolicy(all) {
		if len(a.Ports) <= MaxPortRanges {
			continue
		}
		for j, r := range n.Access {
			if k := slices.IndexFunc(r.Allow, func(t AccessTarget) bool { return t.Prefix.Masked() == a.Prefix }); k >= 0 {
				bad(f(fmt.Sprintf("access[%d].allow[%d]", j, k)), "%d port ranges apply to %s (with those of the entries covering it, in every rule of the network), more than the filter's %d per prefix: join ranges (tcp/8000-8100) or allow every port", len(a.Ports), a.Prefix, MaxPortRanges)
				break
			}
		}
	}
}

// AccessSummary describes network n's access rules, one line each, for
// `vpn-gateway check` (field is n's path, "networks[0]").
func (n Network) AccessSummary(field string) []string {
	if len(n.Access) == 0 && len(n.MayWiden) == 0 {
		return nil
	}
	var out []string
	for j, r := range n.Access {
		var who []string
		if len(r.Users) > 0 {
			who = append(who, "users "+strings.Join(r.Users, ", "))
		}
		if len(r.Groups) > 0 {
			who = append(who, "groups "+strings.Join(r.Groups, ", "))
		}
		var to, widen []string
		for _, t := range r.Allow {
			to = append(to, t.String())
			if !n.inAllow(t.Prefix) {
				widen = append(widen, t.Prefix.String())
			}
		}
		line := fmt.Sprintf("%s.access[%d] (%s): %s -> %s", field, j, n.Name, strings.Join(who, "; "), strings.Join(to, ", "))
		if len(widen) > 0 {
			line += " (widens to " + strings.Join(widen, ", ") + ")"
		}
		out = append(out, line)
	}
	rest := fmt.Sprintf("%s (%s): users and groups no rule names reach the network's allow %v", field, n.Name, n.Allow)
	if w := n.WidenRoutes(); len(w) > 0 {
		rest += fmt.Sprintf("; the network's table also routes %v (widened), and the eBPF filter holds everyone but the widening rules' users to allow", w)
	}
	out = append(out, rest+"; a user named by several rules gets their union")
	return out
}
