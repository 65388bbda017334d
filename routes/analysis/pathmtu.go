package analysis

import (
	"fmt"
	"net/netip"
	"strings"
)

// PathProbe is one path MTU measurement through the tunnel: the largest
// packet (IP header included) that reached Target, the gateway's tunnel
// address, from Source and came back, found with "don't fragment" echo
// requests of binary-searched sizes (client/tunnel.PathMTU).
type PathProbe struct {
	Source  netip.Addr `json:"source"`
	Target  netip.Addr `json:"target"`
	Largest int        `json:"largest,omitempty"` // 0: not measured (Error says why)
	Error   string     `json:"error,omitempty"`
}

// ipv6MinMTU is the smallest link MTU that carries IPv6.
const ipv6MinMTU = 1280

// pathMTU reports a tunnel whose MTU is larger than what the path through
// it carries: small packets pass, larger ones vanish without an error
// (routers on the way drop the ICMP that would say so), and TCP stalls
// on the first full-size segment.
func (c *checker) pathMTU() {
	a := c.in.Agent
	if a == nil || a.MTU == 0 {
		return
	}
	smallest := 0
	var ev []Evidence
	v6 := false
	for _, p := range c.in.PathProbes {
		if p.Largest == 0 {
			continue
		}
		if p.Largest < a.MTU {
			ev = append(ev, Evidence{Kind: "probe", Text: fmt.Sprintf("%s -> %s through %s: %d-byte packets come back, %d-byte ones do not (don't-fragment echo)",
				p.Source, p.Target, a.Interface, p.Largest, p.Largest+1)})
			if smallest == 0 || p.Largest < smallest {
				smallest = p.Largest
			}
		}
		v6 = v6 || p.Target.Is6()
	}
	if smallest == 0 {
		return
	}
	ev = append(ev, Evidence{Kind: "link", Text: fmt.Sprintf("%s mtu %d", a.Interface, a.MTU)})
	why := []string{fmt.Sprintf("The tunnel sends packets of up to %d bytes, but only %d-byte ones cross the path to the gateway and back "+
		"(a PPPoE or mobile link, a double tunnel); larger ones vanish without an error because something on the way drops the ICMP "+
		"messages that would report it. Small requests work, downloads and TLS handshakes hang. Reconnect with `vpn up --mtu auto` "+
		"(measures this and lowers the tunnel MTU) or set it by hand.", a.MTU, smallest)}
	if smallest < ipv6MinMTU && v6 {
		why = append(why, fmt.Sprintf("Below %d bytes a link cannot carry IPv6: on this network the tunnel can carry IPv4 only.", ipv6MinMTU))
	}
	cmd := fmt.Sprintf("sudo ip link set dev %s mtu %d", a.Interface, smallest)
	if c.darwin() {
		cmd = fmt.Sprintf("sudo ifconfig %s mtu %d", a.Interface, smallest)
	}
	c.add(Finding{ID: "path-mtu", Severity: Warning, Owner: "clearpath",
		Title:       fmt.Sprintf("the path through the tunnel carries %d-byte packets, the tunnel sends up to %d", smallest, a.MTU),
		Explanation: strings.Join(why, " "), Evidence: ev,
		Commands: []string{"vpn down && vpn up --mtu auto", cmd}})
}
