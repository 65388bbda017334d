package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/clearpath-vpn/clearpath/server/config"
)

// rulePriority of the `iif <wg> lookup <table>` rule of network i: ahead of
// main (32766) and clear of the client-side ranges other VPNs use.
func rulePriority(i int) int { return 1000 + i }

// enableForwarding turns on IPv4 and IPv6 forwarding in the gateway's
// network namespace. There is no NAT: clients keep their own addresses.
func enableForwarding() error {
	for _, p := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable forwarding (%s): %w", p, err)
		}
	}
	return nil
}

// setupLink gives the WireGuard TUN its gateway addresses and brings it up.
func setupLink(n config.Network) error {
	link, err := netlink.LinkByName(n.Interface)
	if err != nil {
		return fmt.Errorf("find link %s: %w", n.Interface, err)
	}
	for _, p := range n.GatewayAddrs() {
		addr := &netlink.Addr{IPNet: prefixToIPNet(p)}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD // usable at once, no duplicate detection on a point-to-multipoint tunnel
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("add address %s to %s: %w", p, n.Interface, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", n.Interface, err)
	}
	return nil
}

// policyRoutes returns the routing table of network n: `throw` for each
// allowed CIDR (so the lookup falls through to main) and `blackhole` defaults.
func policyRoutes(n config.Network) []netlink.Route {
	var rs []netlink.Route
	for _, p := range n.Allow {
		rs = append(rs, netlink.Route{Table: n.Table, Type: unix.RTN_THROW, Dst: prefixToIPNet(p), Family: family(p.Addr())})
	}
	for _, def := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
		if slices.Contains(n.Allow, def) {
			continue // the network may reach everything: its throw /0 is the default
		}
		rs = append(rs, netlink.Route{Table: n.Table, Type: unix.RTN_BLACKHOLE, Dst: prefixToIPNet(def), Family: family(def.Addr())})
	}
	return rs
}

func policyRules(i int, n config.Network) []*netlink.Rule {
	var out []*netlink.Rule
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		r := netlink.NewRule()
		r.Family = fam
		r.IifName = n.Interface
		r.Table = n.Table
		r.Priority = rulePriority(i)
		out = append(out, r)
	}
	return out
}

// setupPolicy installs (replacing what a previous run left) the table and the
// rules that confine network n's clients to its allowed CIDRs.
func setupPolicy(i int, n config.Network) error {
	teardownPolicy(i, n)
	for _, r := range policyRoutes(n) {
		if err := netlink.RouteReplace(&r); err != nil {
			return fmt.Errorf("add %s route %s to table %d: %w", typeName(r.Type), r.Dst, n.Table, err)
		}
	}
	for _, r := range policyRules(i, n) {
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add rule iif %s lookup %d: %w", n.Interface, n.Table, err)
		}
	}
	return nil
}

// teardownPolicy removes network n's rules and every route of its table.
func teardownPolicy(i int, n config.Network) {
	for _, r := range policyRules(i, n) {
		for netlink.RuleDel(r) == nil {
		}
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: n.Table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			continue
		}
		for _, r := range routes {
			netlink.RouteDel(&r)
		}
	}
}

func typeName(t int) string {
	switch t {
	case unix.RTN_THROW:
		return "throw"
	case unix.RTN_BLACKHOLE:
		return "blackhole"
	}
	return fmt.Sprint(t)
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
