package tunnel

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// PickName lets the kernel number the utun: wireguard-go's CreateTUN
// opens the next free one for "utun", and the device reports its name.
func PickName() (string, error) { return "utun", nil }

// setMTU changes the utun's MTU (ifconfig(8), as wg-quick does).
func setMTU(name string, mtu int) error {
	if err := checkUtunName(name); err != nil {
		return err
	}
	if out, err := exec.Command("/sbin/ifconfig", name, "mtu", fmt.Sprint(mtu)).CombinedOutput(); err != nil {
		return fmt.Errorf("ifconfig %s mtu %d: %w: %s", name, mtu, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// configureLink gives the utun its addresses and brings it up. macOS has
// no netlink; ifconfig(8) is what wg-quick uses there too.
func configureLink(name string, addrs []netip.Prefix) error {
	if err := checkUtunName(name); err != nil {
		return err
	}
	for _, args := range ifconfigArgs(name, addrs) {
		if out, err := exec.Command("/sbin/ifconfig", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ifconfig %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
