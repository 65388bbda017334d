package routes

import (
	"fmt"
	"slices"
	"strings"
)

// GatewayProtocol marks every route and rule the gateway adds (Linux); the
// client's is Protocol. Both are free in /etc/iproute2/rt_protos.
const GatewayProtocol = 198

// Owner is whose kernel objects an Engine makes, sweeps and replays: the
// protocol number every route and rule it adds carries, and the tables
// that are wholly its own (a rule pointing at one, a route in one, is
// ours whatever its protocol). Sysctls lists the switches it may write
// (names below /proc/sys); replay writes no other.
type Owner struct {
	Name     string
	Protocol int
	Tables   []int
	Sysctls  []string
}

// ClientOwner is the client's (vpn up): protocol 197, table 7411.
var ClientOwner = Owner{Name: "ClearPath", Protocol: Protocol, Tables: []int{Table}}

// ForwardingSysctls are the switches a gateway turns on.
var ForwardingSysctls = []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"}

// GatewayOwner is the gateway's: protocol 198, no table of its own (a
// network's table may hold routes of others, which are never touched),
// and the forwarding switches.
var GatewayOwner = Owner{Name: "ClearPath gateway", Protocol: GatewayProtocol, Sysctls: ForwardingSysctls}

// Owns reports whether c acts on something of o's: a route or rule carrying
// o's protocol or living in (a rule: pointing at) one of o's tables, an
// address (journaled by o before it was made, on a device that goes with
// o's process), or one of o's sysctls. Replay and sweeps act on nothing
// else.
func (o Owner) Owns(c Change) bool {
	switch {
	case c.Route != nil:
		return c.Route.Protocol == o.Protocol || slices.Contains(o.Tables, c.Route.Table)
	case c.Rule != nil:
		return c.Rule.Protocol == o.Protocol || slices.Contains(o.Tables, c.Rule.Table)
	case c.Addr != nil:
		return c.Op == OpAddAddr || c.Op == OpDelAddr
	case c.Sysctl != nil:
		return slices.Contains(o.Sysctls, c.Sysctl.Name)
	}
	return false
}

// Items returns the routes and rules of snap that carry o's protocol.
func (o Owner) Items(snap *Snapshot) ([]Route, []Rule) {
	var rs []Route
	var rules []Rule
	for _, r := range snap.Routes {
		if r.Protocol == o.Protocol {
			rs = append(rs, r)
		}
	}
	for _, r := range snap.Rules {
		if r.Protocol == o.Protocol {
			rules = append(rules, r)
		}
	}
	return rs, rules
}

// Foreign returns the routes of snap in table that do not carry o's
// protocol: another program's, which o must never flush or overwrite.
func (o Owner) Foreign(snap *Snapshot, table int) []Route {
	var out []Route
	for _, r := range snap.Routes {
		if r.Table == table && r.Protocol != o.Protocol {
			out = append(out, r)
		}
	}
	return out
}

func (o Owner) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "protocol %d", o.Protocol)
	for _, t := range o.Tables {
		fmt.Fprintf(&b, ", table %d", t)
	}
	return b.String()
}
