package config

import (
	"fmt"
	"strconv"
	"strings"
)

// LocalPort is a port of the gateway host that a network's clients may
// reach through their tunnel (`local_ports: [udp/53]`).
type LocalPort struct {
	Proto string // "tcp" or "udp"
	Port  uint16
}

func (p LocalPort) String() string { return p.Proto + "/" + strconv.Itoa(int(p.Port)) }

// ParseLocalPort parses "tcp/N" or "udp/N" (N in 1-65535).
func ParseLocalPort(s string) (LocalPort, error) {
	proto, port, ok := strings.Cut(s, "/")
	if !ok {
		return LocalPort{}, fmt.Errorf("%q is not protocol/port (e.g. udp/53 or tcp/53)", s)
	}
	if proto != "tcp" && proto != "udp" {
		return LocalPort{}, fmt.Errorf("%q: protocol %q is not tcp or udp", s, proto)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port != strconv.Itoa(n) {
		return LocalPort{}, fmt.Errorf("%q: port %q is not a number in 1-65535", s, port)
	}
	return LocalPort{Proto: proto, Port: uint16(n)}, nil
}

// Ports returns the network's local_ports parsed, without duplicates (the
// configuration has been validated: entries that do not parse are skipped).
func (n Network) Ports() []LocalPort {
	var out []LocalPort
	for _, s := range n.LocalPorts {
		p, err := ParseLocalPort(s)
		if err != nil {
			continue
		}
		dup := false
		for _, q := range out {
			dup = dup || q == p
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
}

func validateLocalPorts(n Network, f func(string) string, bad func(field, format string, args ...any)) {
	seen := map[LocalPort]int{}
	for k, s := range n.LocalPorts {
		pf := fmt.Sprintf("%s[%d]", f("local_ports"), k)
		p, err := ParseLocalPort(s)
		if err != nil {
			bad(pf, "%v", err)
			continue
		}
		if j, ok := seen[p]; ok {
			bad(pf, "%s is listed twice (also local_ports[%d])", p, j)
		}
		seen[p] = k
	}
}
