package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
)

// RulePriority of every network's `iif <wg> lookup <table>` rule: ahead of
// main (32766) and clear of the client-side ranges other VPNs use. One
// priority for all networks: the rules differ by iif, and a network keeps
// its rule when others are added or removed by a reload.
const RulePriority = 1000

// ForwardingSysctls are the switches the gateway turns on.
var ForwardingSysctls = []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"}

// enableForwarding turns on IPv4 and IPv6 forwarding in the gateway's
// network namespace. There is no NAT: clients keep their own addresses.
// restore puts back what was there, for a start that fails half way.
func enableForwarding() (restore func(), err error) {
	var undo []func()
	restore = func() {
		for _, f := range undo {
			f()
		}
	}
	for _, p := range ForwardingSysctls {
		old, err := os.ReadFile(p)
		if err != nil {
			return restore, fmt.Errorf("read %s: %w", p, err)
		}
		if strings.TrimSpace(string(old)) == "1" {
			// Already on (a container sets it: /proc/sys is read-only there).
			continue
		}
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			restore()
			return func() {}, fmt.Errorf("enable forwarding (%s): %w", p, err)
		}
		undo = append(undo, func() { os.WriteFile(p, old, 0o644) })
	}
	return restore, nil
}

// closeHost closes the gateway host to the group interfaces of spec
// (server/hostguard: table inet clearpath_gw), replacing the table a
// crashed run left. Rules match interfaces by name, so they are in place
// before a device exists.
func closeHost(spec hostguard.Spec) error { return hostguard.Apply(spec) }

// openHost removes the gateway's nftables table, and nothing else.
func openHost(log *slog.Logger) {
	if err := hostguard.Remove(); err != nil {
		log.Warn("remove the host guard", "err", err)
	}
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

func policyRules(n config.Network) []*netlink.Rule {
	var out []*netlink.Rule
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		r := netlink.NewRule()
		r.Family = fam
		r.IifName = n.Interface
		r.Table = n.Table
		r.Priority = RulePriority
		out = append(out, r)
	}
	return out
}

// setupPolicy installs (replacing what a previous run left) the table and the
// rules that confine network n's clients to its allowed CIDRs.
func setupPolicy(n config.Network) error {
	teardownPolicy(n)
	if err := fillTable(n); err != nil {
		return err
	}
	return addRules(n)
}

func fillTable(n config.Network) error {
	for _, r := range policyRoutes(n) {
		if err := netlink.RouteReplace(&r); err != nil {
			return fmt.Errorf("add %s route %s to table %d: %w", typeName(r.Type), r.Dst, n.Table, err)
		}
	}
	return nil
}

func addRules(n config.Network) error {
	for _, r := range policyRules(n) {
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add rule iif %s lookup %d: %w", n.Interface, n.Table, err)
		}
	}
	return nil
}

// teardownPolicy removes network n's rules and every route of its table.
func teardownPolicy(n config.Network) {
	delRules(n.Interface, n.Table)
	flushTable(n.Table)
}

// delRules removes every `iif iface lookup table` rule, whatever its
// priority (an older gateway used one priority per position).
func delRules(iface string, table int) {
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := netlink.RuleList(fam)
		if err != nil {
			continue
		}
		for _, r := range rules {
			if r.IifName == iface && r.Table == table {
				r := r
				netlink.RuleDel(&r)
			}
		}
	}
}

func flushTable(table int) {
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			continue
		}
		for _, r := range routes {
			netlink.RouteDel(&r)
		}
	}
}

// changeAllow brings network n's table from the old allow list to n.Allow:
// new `throw` routes first, then the removed ones go. Nothing else in the
// table, and no other network, is touched.
func changeAllow(n config.Network, old []netip.Prefix) error {
	for _, p := range n.Allow {
		if slices.Contains(old, p) {
			continue
		}
		r := netlink.Route{Table: n.Table, Type: unix.RTN_THROW, Dst: prefixToIPNet(p), Family: family(p.Addr())}
		if err := netlink.RouteReplace(&r); err != nil {
			return fmt.Errorf("add throw route %s to table %d: %w", p, n.Table, err)
		}
	}
	for _, p := range old {
		if slices.Contains(n.Allow, p) {
			continue
		}
		r := netlink.Route{Table: n.Table, Type: unix.RTN_THROW, Dst: prefixToIPNet(p), Family: family(p.Addr())}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("remove throw route %s from table %d: %w", p, n.Table, err)
		}
	}
	return nil
}

// moveTable moves network n from table old to n.Table: the new table is
// filled and its rules added before the old rules and table go, so packets
// always find one of them.
func moveTable(n config.Network, old int) error {
	flushTable(n.Table)
	if err := fillTable(n); err != nil {
		flushTable(n.Table)
		return err
	}
	if err := addRules(n); err != nil {
		delRules(n.Interface, n.Table)
		flushTable(n.Table)
		return err
	}
	delRules(n.Interface, old)
	flushTable(old)
	return nil
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

// linkExists reports whether a link of that name exists in this namespace.
func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}
