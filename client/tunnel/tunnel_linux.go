package tunnel

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
	"github.com/clearpath-vpn/clearpath/routes"
)

// PickName returns the first cpN that is neither a link here nor a running
// WireGuard device anywhere on the machine (UAPI sockets are machine-wide).
func PickName() (string, error) {
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("cp%d", i)
		if _, err := netlink.LinkByName(name); err == nil {
			continue
		}
		if wgdev.InUse(name) {
			continue
		}
		return name, nil
	}
	return "", fmt.Errorf("no free interface name cp0-cp99")
}

// setMTU changes the tunnel link's MTU; wireguard-go follows the link's
// change on its own.
func setMTU(name string, mtu int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("set %s mtu %d: %w", name, mtu, err)
	}
	return nil
}

// configureLink puts the tunnel addresses on the link and sets it up. The
// addresses are hosts (/32, /128, checked by gwapi), written by routes/
// (AddTunnelAddresses: no kernel prefix route, no DAD).
func configureLink(name string, addrs []netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := routes.AddTunnelAddresses(name, addrs); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}
