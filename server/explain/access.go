package explain

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/clearpath-vpn/clearpath/bpf"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// Target is what explain is asked about: HOST[:PORT][/PROTO].
type Target struct {
	Host string
	// Port is 0 when not given; Proto is "tcp", "udp", "icmp" or "" (any
	// traffic to the address). A port without a protocol is tcp.
	Port  int
	Proto string
}

func (t Target) String() string {
	s := t.Host
	if t.Port != 0 {
		s = net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	}
	if t.Proto != "" {
		s += "/" + t.Proto
	}
	return s
}

// ParseTarget reads HOST[:PORT][/PROTO]: "10.10.0.10:5432", "db:53/udp",
// "[fd10::10]:22/tcp", "10.10.0.10/icmp".
func ParseTarget(s string) (Target, error) {
	rest, proto := s, ""
	if i := strings.LastIndex(s, "/"); i >= 0 {
		rest, proto = s[:i], strings.ToLower(s[i+1:])
		switch proto {
		case "tcp", "udp", "icmp":
		default:
			return Target{}, fmt.Errorf("%q: protocol %q is not tcp, udp or icmp", s, s[i+1:])
		}
	}
	host, port, err := SplitHostPort(rest)
	if err != nil {
		return Target{}, err
	}
	if host == "" {
		return Target{}, fmt.Errorf("%q: no host", s)
	}
	switch {
	case proto == "icmp" && port != 0:
		return Target{}, fmt.Errorf("%q: icmp has no port", s)
	case proto != "" && proto != "icmp" && port == 0:
		return Target{}, fmt.Errorf("%q: name the port (HOST:PORT/%s)", s, proto)
	case proto == "" && port != 0:
		proto = "tcp"
	}
	return Target{Host: host, Port: port, Proto: proto}, nil
}

// Access is the eBPF filter's verdict for one user, network and
// destination, and the rules behind it.
type Access struct {
	// Filtered: the user has a filter policy in this network; false: no
	// rule names them and none widens, so the routing alone decides.
	Filtered bool `json:"filtered"`
	Allowed  bool `json:"allowed"`
	// By names the grant that lets the packet through, or, when refused,
	// what the user may reach at that address (if anything).
	By  string `json:"by,omitempty"`
	Why string `json:"why"`
}

// describeGrant names where a grant comes from, for explain's answer.
func describeGrant(n config.Network, g config.Grant) string {
	switch g.Rule {
	case config.GrantNetwork:
		return fmt.Sprintf("the network's allow %s (no access rule names the user; the network's rules widen, so the filter holds everyone else to allow)", g.Target)
	case config.GrantGateway:
		return fmt.Sprintf("the gateway's own tunnel address %s", g.Target)
	}
	r := n.Access[g.Rule]
	var who []string
	if len(r.Users) > 0 {
		who = append(who, "users "+strings.Join(r.Users, ", "))
	}
	if len(r.Groups) > 0 {
		who = append(who, "groups "+strings.Join(r.Groups, ", "))
	}
	s := fmt.Sprintf("networks[%s].access[%d] (%s): %s", n.Name, g.Rule, strings.Join(who, "; "), g.Target)
	if g.Widen {
		s += fmt.Sprintf(" (widens beyond allow, within may_widen %v)", n.MayWiden)
	}
	return s
}

func protoNum(proto string) uint8 {
	switch proto {
	case "tcp":
		return bpf.ProtoTCP
	case "udp":
		return bpf.ProtoUDP
	case "icmp":
		return bpf.ProtoICMP
	}
	return 0
}

// grantAllows reports whether g lets a packet of proto to port at its
// prefix through, as the filter decides (bpf.FoldPolicy makes the
// kernel's longest match the union of the covering grants). proto ""
// asks about any traffic: only a grant without ports allows all of it.
func grantAllows(g config.Grant, proto string, port int) bool {
	if len(g.Target.Ports) == 0 {
		return true
	}
	p := protoNum(proto)
	return slices.ContainsFunc(g.Target.Ports, func(r bpf.PortRange) bool {
		if r.Proto != p || p == 0 {
			return false
		}
		return r.Proto == bpf.ProtoICMP || (port >= int(r.Lo) && port <= int(r.Hi))
	})
}

// JudgeAccess decides what the eBPF filter does with a packet of user
// (who) to dst under policy pol in network n. It is pure.
func JudgeAccess(n config.Network, pol config.Policy, who string, dst netip.Addr, t Target) Access {
	if !pol.Filtered {
		return Access{Allowed: true, Why: fmt.Sprintf("no access rule of %s names %s: the network's allow and routing decide", n.Name, who)}
	}
	a := Access{Filtered: true}
	var covering []config.Grant
	for _, g := range pol.Grants {
		if g.Target.Prefix.Contains(dst) {
			covering = append(covering, g)
		}
	}
	what := t.Proto + "/" + strconv.Itoa(t.Port)
	switch t.Proto {
	case "":
		what = "all traffic"
	case "icmp":
		what = "icmp (ping)"
	}
	for _, g := range covering {
		if grantAllows(g, t.Proto, t.Port) {
			a.Allowed, a.By = true, describeGrant(n, g)
			a.Why = fmt.Sprintf("the eBPF filter lets %s of %s to %s through by %s", what, who, dst, a.By)
			return a
		}
	}
	var rules []string
	for _, i := range pol.Rules {
		rules = append(rules, "access["+strconv.Itoa(i)+"]")
	}
	from, give, allow := "rules "+strings.Join(rules, ", "), "give", "allow"
	if len(rules) == 1 {
		from, give, allow = "rule "+rules[0], "gives", "allows"
	}
	if len(rules) == 0 {
		from, give, allow = "the network's allow", "gives", "allows"
	}
	if len(covering) == 0 {
		var only []string
		for _, g := range pol.Grants {
			if g.Rule != config.GrantGateway {
				only = append(only, g.Target.String())
			}
		}
		a.Why = fmt.Sprintf("the eBPF filter drops it (a denied flow in the flow log): %s %s %s nothing at %s; the access rules let them reach only %s and the gateway's tunnel addresses",
			from, give, who, dst, strings.Join(only, ", "))
		return a
	}
	var at []string
	for _, g := range covering {
		at = append(at, describeGrant(n, g))
	}
	a.By = strings.Join(at, "; ")
	hint := ""
	if t.Proto == "" {
		hint = " (name a port and protocol, HOST:PORT/tcp, to ask about one)"
	}
	a.Why = fmt.Sprintf("the eBPF filter drops %s to %s (a denied flow with the port in the flow log): at that address %s %s only %s%s", what, dst, from, allow, a.By, hint)
	return a
}
