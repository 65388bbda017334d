package gateway

import (
	"fmt"
	"log/slog"

	"github.com/vishvananda/netlink"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
)

// newSystem is the routes System of the gateway's network namespace: the
// only writer of its routes, rules, addresses and forwarding switches.
func newSystem() (routes.System, error) { return routes.NewSystem() }

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

// setLinkUp sets the WireGuard TUN's link up (its addresses come from the
// route engine with the network's policy).
func setLinkUp(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// linkExists reports whether a link of that name exists in this namespace.
func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}
