package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// End describes one side of a veth link for Connect.
type End struct {
	Node *Node
	// Addrs are interface addresses with prefix length ("10.1.2.10/24",
	// "fd01:2::10/64"). IPv6 addresses skip duplicate address detection.
	Addrs []string
	// Name of the interface; default <prefix><peer node name>, e.g.
	// "cp1a2bhost" in laptop is laptop's side of the laptop-host link.
	Name string
}

// Link is a veth pair between two nodes.
type Link struct {
	A, B LinkEnd
}

// LinkEnd is one side of a Link as built.
type LinkEnd struct {
	Node  *Node
	Name  string
	Addrs []netip.Prefix
}

// Connect joins two nodes with a veth pair created directly inside their
// namespaces (never in the machine's own), assigns the addresses and brings
// both ends up.
func (l *Lab) Connect(a, b End) (*Link, error) {
	if a.Node == nil || b.Node == nil || a.Node.lab != l || b.Node.lab != l {
		return nil, fmt.Errorf("lab: connect: both ends need a node of this lab")
	}
	if a.Node == b.Node {
		return nil, fmt.Errorf("lab: connect %s to itself", a.Node.Name)
	}
	link := &Link{}
	ends := []*End{&a, &b}
	peers := []*Node{b.Node, a.Node}
	out := []*LinkEnd{&link.A, &link.B}
	for i, e := range ends {
		name := e.Name
		if name == "" {
			name = l.Prefix + peers[i].Name
		}
		if len(name) > maxIfName {
			return nil, fmt.Errorf("lab: interface name %q longer than %d bytes", name, maxIfName)
		}
		var addrs []netip.Prefix
		for _, s := range e.Addrs {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("lab: address %q for %s: %w", s, e.Node.Name, err)
			}
			addrs = append(addrs, p)
		}
		*out[i] = LinkEnd{Node: e.Node, Name: name, Addrs: addrs}
	}
	if _, err := run(context.Background(), "ip", "link", "add", link.A.Name, "netns", a.Node.NS,
		"type", "veth", "peer", "name", link.B.Name, "netns", b.Node.NS); err != nil {
		return nil, fmt.Errorf("lab: connect %s-%s: %w", a.Node.Name, b.Node.Name, err)
	}
	for _, e := range []LinkEnd{link.A, link.B} {
		for _, p := range e.Addrs {
			args := []string{"addr", "add", p.String(), "dev", e.Name}
			if p.Addr().Is6() {
				args = append(args, "nodad")
			}
			if err := e.Node.IP(args...); err != nil {
				return nil, err
			}
		}
		if err := e.Node.IP("link", "set", e.Name, "up"); err != nil {
			return nil, err
		}
	}
	// The kernel installs an IPv6 address's local route from a work queue,
	// a moment after the address: wait for it, so the address accepts
	// traffic and a routing snapshot taken now does not change later.
	for _, e := range []LinkEnd{link.A, link.B} {
		for _, p := range e.Addrs {
			if p.Addr().Is6() {
				if err := e.Node.waitLocalRoute(p.Addr()); err != nil {
					return nil, err
				}
			}
		}
	}
	l.log.Debug("linked", "a", a.Node.Name, "a_if", link.A.Name, "b", b.Node.Name, "b_if", link.B.Name)
	return link, nil
}

// Route adds (or replaces) a route in the node's main table: dst is a
// prefix or "default", via a gateway address whose family picks the table
// family (so "default" via an IPv6 address is the IPv6 default).
func (n *Node) Route(dst, via string) error {
	gw, err := netip.ParseAddr(via)
	if err != nil {
		return fmt.Errorf("lab: route %s via %q: %w", dst, via, err)
	}
	fam := "-4"
	if gw.Is6() {
		fam = "-6"
	}
	if err := n.IP(fam, "route", "replace", dst, "via", gw.String()); err != nil {
		return fmt.Errorf("lab: route %s via %s: %w", dst, via, err)
	}
	return nil
}

// Forwarding turns IPv4 and IPv6 forwarding on or off in the node.
func (n *Node) Forwarding(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := n.Sysctl(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) waitLocalRoute(a netip.Addr) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := run(context.Background(), "ip", "-n", n.NS, "-6", "route", "show", "table", "local", a.String())
		if err == nil && strings.TrimSpace(out) != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s: IPv6 address %s not usable after 5s", n.Name, a)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
