// Package netpolicy turns the gateway's networks into the routing state they
// need, as routes.Changes for the route engine to reconcile: per network an
// `iif <wg> lookup <table>` rule of each family at RulePriority, a `throw`
// route per allowed CIDR (the lookup falls through to main), `blackhole`
// defaults for what is not allowed, and the gateway's tunnel addresses on
// the device. Every route and rule carries routes.GatewayProtocol. It is
// pure: no kernel access.
package netpolicy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// RulePriority of every network's `iif <wg> lookup <table>` rule: ahead of
// main (32766) and clear of the client-side ranges other VPNs use. One
// priority for all networks: the rules differ by iif, and a network keeps
// its rule when others are added or removed by a reload.
const RulePriority = 1000

// Protocol marks every route and rule below.
const Protocol = routes.GatewayProtocol

var defaults = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

func fam(p netip.Prefix) routes.Family {
	if p.Addr().Is4() {
		return routes.FamilyV4
	}
	return routes.FamilyV6
}

// Routes returns network n's table: `throw` for each allowed CIDR and for
// each prefix an access rule widens to (config.Network.WidenRoutes; the
// eBPF filter keeps the users of other rules out of those), and
// `blackhole` defaults (none for a family whose default is thrown).
func Routes(n config.Network) []routes.Route {
	var out []routes.Route
	thrown := append(slices.Clone(n.Allow), n.WidenRoutes()...)
	var seen []netip.Prefix
	for _, p := range thrown {
		if p = p.Masked(); slices.Contains(seen, p) {
			continue
		}
		seen = append(seen, p)
		out = append(out, routes.Route{Family: fam(p), Table: n.Table, Type: routes.TypeThrow, Dst: p, Protocol: Protocol})
	}
	for _, d := range defaults {
		if slices.Contains(seen, d) {
			continue // the network may reach everything: its throw /0 is the default
		}
		out = append(out, routes.Route{Family: fam(d), Table: n.Table, Type: routes.TypeBlackhole, Dst: d, Protocol: Protocol})
	}
	return out
}

// Rules returns network n's rules: `iif <wg> lookup <table>`, both families.
func Rules(n config.Network) []routes.Rule {
	var out []routes.Rule
	for _, f := range []routes.Family{routes.FamilyV4, routes.FamilyV6} {
		out = append(out, routes.Rule{Family: f, Priority: RulePriority, IIF: n.Interface, Table: n.Table,
			SuppressPrefixLen: -1, Protocol: Protocol, Action: "lookup"})
	}
	return out
}

// Addresses returns the gateway's tunnel addresses on n's device (the first
// host of each pool; IPv6 without duplicate address detection).
func Addresses(n config.Network) []routes.Address {
	var out []routes.Address
	for _, p := range n.GatewayAddrs() {
		out = append(out, routes.Address{Device: n.Interface, Prefix: p, NoDAD: p.Addr().Is6()})
	}
	return out
}

// Network returns the changes that give network n its policy: addresses,
// table, then rules (a rule never points at a table not yet filled).
func Network(n config.Network) []routes.Change {
	var out []routes.Change
	for _, a := range Addresses(n) {
		out = append(out, routes.Change{Op: routes.OpAddAddr, Addr: &a})
	}
	for _, r := range Routes(n) {
		out = append(out, routes.Change{Op: routes.OpAddRoute, Route: &r})
	}
	for _, r := range Rules(n) {
		out = append(out, routes.Change{Op: routes.OpAddRule, Rule: &r})
	}
	return out
}

// Desired returns the whole desired state of networks, in order.
func Desired(networks []config.Network) []routes.Change {
	var out []routes.Change
	for _, n := range networks {
		out = append(out, Network(n)...)
	}
	return out
}

// Tables returns the tables networks use, in order, without repeats.
func Tables(networks []config.Network) []int {
	var out []int
	for _, n := range networks {
		if !slices.Contains(out, n.Table) {
			out = append(out, n.Table)
		}
	}
	return out
}

// ForeignError names the routes in the gateway's tables that another
// program owns: the gateway would share the table with them, and its
// policy (throw/blackhole) would mix with routes it must never touch.
type ForeignError struct {
	Routes []routes.Route
}

func (e *ForeignError) Error() string {
	var b strings.Builder
	byTable := map[int][]string{}
	var tables []int
	for _, r := range e.Routes {
		if _, ok := byTable[r.Table]; !ok {
			tables = append(tables, r.Table)
		}
		byTable[r.Table] = append(byTable[r.Table], fmt.Sprintf("%q", r.String()))
	}
	for i, t := range tables {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "table %d holds routes the gateway does not own (not protocol %d): %s", t, Protocol, strings.Join(byTable[t], ", "))
	}
	b.WriteString("; choose a free table for the network (networks[].table) or remove those routes")
	return b.String()
}

// CheckTables returns a *ForeignError when a table of networks holds a route
// not carrying the gateway's protocol, nil otherwise.
func CheckTables(snap *routes.Snapshot, networks []config.Network) error {
	var foreign []routes.Route
	for _, t := range Tables(networks) {
		foreign = append(foreign, routes.GatewayOwner.Foreign(snap, t)...)
	}
	if len(foreign) == 0 {
		return nil
	}
	return &ForeignError{Routes: foreign}
}
