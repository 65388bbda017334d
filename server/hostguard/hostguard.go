// Package hostguard closes the gateway host to its tunnels: a packet that
// arrives on a group's WireGuard interface and is to be delivered to the
// gateway host itself (any of its addresses: tunnel, public, VPC side,
// broadcast or multicast) is dropped, except ping to the network's own
// tunnel address (the client's `vpn up` probe), the registration API port
// (a full-tunnel client renews through its tunnel) and the ports the
// network names in `local_ports`. Forwarded traffic is not touched: what a
// network may reach beyond the host is its routing table's business.
//
// The rules live in an nftables table of ClearPath's own (TableName), in
// one input-hook chain. Apply replaces the whole table in one netlink
// transaction (so there is never a moment without rules, and a table a
// crashed gateway left behind is replaced, never doubled); Remove deletes
// it. Nothing outside that table is read, flushed or changed.
//
// This file is the pure core: the desired rules from the configuration.
// nft_linux.go turns them into nftables expressions.
package hostguard

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/clearpath-vpn/clearpath/server/config"
)

// The table and chain the gateway owns (docs/ARCHITECTURE.md).
const (
	TableName = "clearpath_gw" // family inet: IPv4 and IPv6 in one table
	ChainName = "input"        // type filter, hook input
	// Priority of the chain: filter (0). A drop in any base chain is
	// final whatever the order, so the priority only decides which
	// table sees the packet first.
	Priority = 0
)

// Spec is what the host lets the tunnels reach.
type Spec struct {
	Networks []Network
	// API is the registration API's listen address. A port of 0 means
	// none; an unspecified (or unparsable host name) address means every
	// address of the host.
	API netip.AddrPort
}

// Network is one group interface and what its clients may reach on the host.
type Network struct {
	Name      string
	Interface string
	// TunnelAddrs are the gateway's own addresses on the interface: ping
	// to them is allowed, the client's liveness probe.
	TunnelAddrs []netip.Addr
	Ports       []config.LocalPort
}

// FromConfig is the Spec of a gateway configuration.
func FromConfig(c *config.Config) Spec {
	s := Spec{API: apiAddr(c.Listen)}
	for _, n := range c.Networks {
		nw := Network{Name: n.Name, Interface: n.Interface, Ports: n.Ports()}
		for _, p := range n.GatewayAddrs() {
			nw.TunnelAddrs = append(nw.TunnelAddrs, p.Addr())
		}
		s.Networks = append(s.Networks, nw)
	}
	return s
}

// apiAddr parses the API's listen address. A loopback address is
// unreachable from a tunnel anyway (the kernel drops it as martian), so it
// needs no rule.
func apiAddr(listen string) netip.AddrPort {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.AddrPort{}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil || a.IsUnspecified():
		return netip.AddrPortFrom(netip.Addr{}, uint16(port))
	case a.IsLoopback():
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}

// Merge is the transition between two specs while a reload brings
// interfaces up and down: every interface of either, and for one in both
// only what both allow. Applied before the devices change, it keeps an
// interface that is coming or going closed, and a port that is being
// removed is already shut.
func Merge(a, b Spec) Spec {
	out := Spec{}
	if a.API == b.API {
		out.API = a.API
	}
	inB := map[string]Network{}
	for _, n := range b.Networks {
		inB[n.Interface] = n
	}
	seen := map[string]bool{}
	for _, n := range a.Networks {
		seen[n.Interface] = true
		if m, ok := inB[n.Interface]; ok {
			n.Ports = intersect(n.Ports, m.Ports)
			n.TunnelAddrs = intersect(n.TunnelAddrs, m.TunnelAddrs)
		}
		out.Networks = append(out.Networks, n)
	}
	for _, n := range b.Networks {
		if !seen[n.Interface] {
			out.Networks = append(out.Networks, n)
		}
	}
	return out
}

func intersect[T comparable](a, b []T) []T {
	var out []T
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// Rule is one rule of the chain, in the order of the chain.
type Rule struct {
	Iface string
	// Daddr restricts the rule to one destination address (zero: any).
	Daddr netip.Addr
	// Proto is "tcp", "udp", "icmp" or "icmpv6" ("": any packet). An
	// icmp/icmpv6 rule matches echo requests only.
	Proto   string
	DPort   uint16 // tcp and udp rules
	Drop    bool   // else accept
	Comment string
}

// Plan returns the chain's rules for s: per network, the accepts, then a
// drop of everything else from its interface. The chain sees only packets
// for local delivery (hook input), so "everything else" is every packet
// to the host, broadcast and multicast included.
func Plan(s Spec) []Rule {
	var out []Rule
	for _, n := range s.Networks {
		for _, a := range n.TunnelAddrs {
			proto := "icmp"
			if a.Is6() {
				proto = "icmpv6"
			}
			out = append(out, Rule{Iface: n.Interface, Daddr: a, Proto: proto, Comment: n.Name + ": ping to the tunnel address (vpn up's probe)"})
		}
		if s.API.Port() != 0 {
			out = append(out, Rule{Iface: n.Interface, Daddr: s.API.Addr(), Proto: "tcp", DPort: s.API.Port(), Comment: n.Name + ": registration API (full-tunnel clients renew through the tunnel)"})
		}
		for _, p := range n.Ports {
			out = append(out, Rule{Iface: n.Interface, Proto: p.Proto, DPort: p.Port, Comment: n.Name + ": local_ports " + p.String()})
		}
		out = append(out, Rule{Iface: n.Interface, Drop: true, Comment: n.Name + ": the gateway host is closed to the tunnel"})
	}
	return out
}

// String is the rule in nft's syntax, as `nft list table inet clearpath_gw`
// prints it (counters aside).
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "iifname %q", r.Iface)
	if r.Daddr.IsValid() {
		if r.Daddr.Is4() {
			fmt.Fprintf(&b, " ip daddr %s", r.Daddr)
		} else {
			fmt.Fprintf(&b, " ip6 daddr %s", r.Daddr)
		}
	}
	switch r.Proto {
	case "icmp":
		b.WriteString(" icmp type echo-request")
	case "icmpv6":
		b.WriteString(" icmpv6 type echo-request")
	case "tcp", "udp":
		fmt.Fprintf(&b, " %s dport %d", r.Proto, r.DPort)
	}
	if r.Drop {
		b.WriteString(" counter drop")
	} else {
		b.WriteString(" accept")
	}
	if r.Comment != "" {
		fmt.Fprintf(&b, " comment %q", r.Comment)
	}
	return b.String()
}

// Local answers what the rules of s do with a packet that arrives on
// iface for the host's own address dst: port 0 stands for ping, another
// for a TCP or UDP port. It walks Plan(s) in order as the kernel does and
// returns whether the packet passes and the rule that decides.
func (s Spec) Local(iface string, dst netip.Addr, port int) (bool, string) {
	for _, r := range Plan(s) {
		if r.Iface != iface || r.Daddr.IsValid() && r.Daddr != dst.Unmap() {
			continue
		}
		switch r.Proto {
		case "icmp", "icmpv6":
			if port != 0 || (r.Proto == "icmp") != dst.Unmap().Is4() {
				continue
			}
		case "tcp", "udp":
			if port == 0 || int(r.DPort) != port {
				continue
			}
		}
		if r.Drop {
			return false, fmt.Sprintf("the gateway host is closed to the tunnel (nftables table inet %s: %s)", TableName, r)
		}
		return true, fmt.Sprintf("the host lets it in (nftables table inet %s: %s)", TableName, r)
	}
	// No rule for iface: the interface is not one of the gateway's.
	return true, "no host-guard rule for " + iface
}

// LiveRule is what doctor reads back of one installed rule.
type LiveRule struct {
	Comment string
	Drop    bool
	Packets uint64 // the drop rule's counter
}

// Compare lists how the live chain differs from the rules of s (rules are
// told apart by their comments, which name network and purpose); nothing
// when they agree.
func Compare(s Spec, live []LiveRule) []string {
	want := Plan(s)
	var out []string
	n := max(len(want), len(live))
	for i := 0; i < n; i++ {
		switch {
		case i >= len(live):
			out = append(out, fmt.Sprintf("missing rule %d: %s", i+1, want[i]))
		case i >= len(want):
			out = append(out, fmt.Sprintf("extra rule %d: %q", i+1, live[i].Comment))
		case live[i].Comment != want[i].Comment || live[i].Drop != want[i].Drop:
			out = append(out, fmt.Sprintf("rule %d is %q, want: %s", i+1, live[i].Comment, want[i]))
		}
	}
	return out
}
