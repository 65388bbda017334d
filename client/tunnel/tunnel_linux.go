package tunnel

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
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
// addresses are hosts (/32, /128, checked by gwapi) and carry
// IFA_F_NOPREFIXROUTE: the kernel adds no route of its own for them, so
// every route of the tunnel is one the routes engine journaled.
func configureLink(name string, addrs []netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	for _, a := range addrs {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}}
		addr.Flags = unix.IFA_F_NOPREFIXROUTE
		if a.Addr().Is6() {
			addr.Flags |= unix.IFA_F_NODAD // usable at once; nothing else on a point-to-point tunnel can hold it
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("add address %s to %s: %w", a, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}
